//! `nsx run` as root on a shared machine: what the image may not do (devices, setuid,
//! capabilities, the host's / through /proc), what the command may not leave behind,
//! a relay that cannot be wedged, a PATH search like execvp's, and output that cannot
//! make nsx panic.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use crate::common::*;

// ----------------------------------------------------------------- 5: output that fails

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new and owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Stdio::from(w)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[test]
fn an_unwritable_standard_error_never_panics() {
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["inspect", "99999999"], 1),
        (vec!["lesson", "nope"], 2),
        (vec!["--bogus"], 2),
        (vec!["run", "--rootfs", "/nonexistent", "--", "true"], 2),
        (vec!["run", "--", "nsx-no-such-command"], 2),
        (vec!["run", "--", "sh", "-c", "exit 3"], 3),
    ];
    for (args, code) in cases {
        for (what, err) in [
            ("2>/dev/full", dev_full()),
            ("2> closed pipe", closed_pipe()),
        ] {
            let out = spawn(nsx().args(&args).stdout(Stdio::null()).stderr(err))
                .wait_with_output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{args:?} {what}");
        }
    }
}

#[test]
fn help_that_cannot_be_written_is_an_error() {
    for args in [&["--help"][..], &["run", "--help"][..], &["--version"][..]] {
        let out = spawn(nsx().args(args).stdout(dev_full()).stderr(Stdio::piped()))
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} >/dev/full");
        assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
        // A reader that went away: ended quietly, as any output of nsx.
        let out = spawn(
            nsx()
                .args(args)
                .stdout(closed_pipe())
                .stderr(Stdio::piped()),
        )
        .wait_with_output()
        .unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?} > closed pipe");
        assert_eq!(stderr(&out), "");
        // Both unwritable: still no panic (101).
        let out = spawn(nsx().args(args).stdout(dev_full()).stderr(dev_full()))
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}
