//! Interrupted runs: SIGINT or SIGTERM at any moment ends a lesson with everything
//! removed; SIGKILL of nsx takes its probes with it (PR_SET_PDEATHSIG) and the next run
//! sweeps what it could not remove.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
}

#[test]
fn sigint_and_sigterm_at_any_moment_leave_nothing() {
    if !privileged("signal test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sigtest");
    let (mounts, name) = (mountinfo(), hostname());
    let mut interrupted = 0;
    for id in lesson_ids() {
        let id = id.as_str();
        for (i, delay_us) in [0u64, 300, 700, 1200, 2000, 3000, 4500, 7000]
            .into_iter()
            .enumerate()
        {
            let sig = if i % 2 == 0 {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            let child = spawn(
                Command::new(&exe)
                    .args(["lesson", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped()),
            );
            let pid = child.id();
            std::thread::sleep(Duration::from_micros(delay_us));
            // The child is ours and not yet waited for, so the PID is still its.
            signal(pid, sig);
            let out = child.wait_with_output().unwrap();
            let code = out.status.code();
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{id} after {delay_us}µs: {err}");
            // Either the signal arrived before nsx set up its handler (killed by it), or
            // nsx ended cleanly with 128+sig, or the lesson had already finished.
            assert!(
                code.is_none() || code == Some(128 + sig) || code == Some(0),
                "{id} after {delay_us}µs: {:?} {err}",
                out.status
            );
            if code == Some(128 + sig) {
                interrupted += 1;
                assert!(err.contains("interrupted by SIG"), "{err}");
            }
            assert!(
                wait_for_no_process_of(&exe, Duration::from_secs(2)).is_empty(),
                "{id}: a probe outlived nsx"
            );
            if code.is_some() {
                // Temp dirs, cgroups, veth ends, IPC objects.
                let left = leftovers_of(&BTreeSet::from([pid]));
                assert!(left.is_empty(), "{id} after {delay_us}µs left {left:?}");
            }
            assert_eq!(
                mountinfo(),
                mounts,
                "{id} after {delay_us}µs changed the host's mounts"
            );
            assert_eq!(hostname(), name);
        }
    }
    assert!(
        interrupted > 0,
        "no run was interrupted mid-lesson: the delays are too long for this machine"
    );
}

#[test]
fn sigkill_takes_the_probes_along_and_the_next_run_sweeps() {
    if !privileged("SIGKILL test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-killtest");
    let mounts = mountinfo();
    let mut killed = Vec::new();
    for delay_us in [500u64, 1500, 3000, 5000] {
        let mut child = spawn(
            Command::new(&exe)
                .args(["lesson", "mount"])
                .stdout(Stdio::null()),
        );
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap();
        child.wait().unwrap();
        killed.push(child.id());
        assert!(
            wait_for_no_process_of(&exe, Duration::from_secs(2)).is_empty(),
            "a probe survived SIGKILL of nsx"
        );
        assert_eq!(mountinfo(), mounts);
    }
    // A killed run cannot remove its temp dir; the next run does.
    let out = Command::new(&exe)
        .args(["lesson", "mount", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for pid in killed {
        let left = temp_dirs_of(&BTreeSet::from([pid]));
        assert!(left.is_empty(), "left by killed run {pid}: {left:?}");
    }
}

/// Starts `nsx lesson <id> --step` with a pseudo-terminal as stdin, so it pauses after
/// its first step, and returns once it is waiting there: a deterministic mid-lesson point.
fn paused_at_first_step(
    exe: &Path,
    id: &str,
) -> (
    std::process::Child,
    std::fs::File,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::io::{BufRead, BufReader};
    let (master, slave) = pty();
    let mut child = spawn(
        Command::new(exe)
            .args(["lesson", id, "--step"])
            .stdin(slave)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !seen.contains(PAUSE_PROMPT) {
        line.clear();
        // The prompt has no newline: read what there is up to it.
        let buf = out.fill_buf().unwrap();
        assert!(!buf.is_empty(), "nsx ended before pausing: {seen}");
        line.push_str(&String::from_utf8_lossy(buf));
        let n = buf.len();
        out.consume(n);
        seen.push_str(&line);
    }
    (child, master, out)
}

#[test]
fn interrupting_a_paused_lesson_removes_everything() {
    if !privileged("paused SIGINT test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-pausetest");
    let (mounts, name) = (mountinfo(), hostname());
    for id in lesson_ids() {
        let id = id.as_str();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let (child, _master, _out) = paused_at_first_step(&exe, id);
            let pid = child.id();
            // Our child, not yet waited for.
            signal(pid, sig);
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(128 + sig), "{id}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("interrupted by SIG"),
                "{}",
                stderr(&out)
            );
            let left = leftovers_of(&BTreeSet::from([pid]));
            assert!(left.is_empty(), "{id}: left {left:?}");
            assert!(wait_for_no_process_of(&exe, Duration::from_secs(2)).is_empty());
            assert_eq!(mountinfo(), mounts);
            assert_eq!(hostname(), name);
        }
    }
}

#[test]
fn a_sigkilled_run_is_swept_by_the_next() {
    if !privileged("SIGKILL sweep test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sweeptest");
    // The mount lesson holds its demo directory from before its first step to its end.
    let (mut child, _master, _out) = paused_at_first_step(&exe, "mount");
    let run = BTreeSet::from([child.id()]);
    assert_eq!(
        temp_dirs_of(&run).len(),
        1,
        "the paused lesson should hold its temp dir"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_for_no_process_of(&exe, Duration::from_secs(2)).is_empty(),
        "a probe survived SIGKILL"
    );
    assert_eq!(
        temp_dirs_of(&run).len(),
        1,
        "SIGKILL gives no chance to clean up"
    );
    let out = Command::new(&exe)
        .args(["lesson", "uts", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let left = temp_dirs_of(&run);
    assert!(left.is_empty(), "the next run did not sweep {left:?}");
}

#[test]
fn enter_moves_a_paused_lesson_on_to_the_end() {
    if !privileged("--step with a terminal") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-steptest");
    let (mut child, mut tty, mut out) = paused_at_first_step(&exe, "uts");
    use std::io::{Read, Write};
    // Two steps in the uts lesson: one Enter per pause.
    tty.write_all(b"\n\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("step 2") && rest.contains("facts hold"),
        "{rest}"
    );
}

#[test]
fn a_terminal_hang_up_during_a_pause_exits_129_and_cleans_up() {
    if !privileged("--step hang-up") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-huptest");
    let (mounts, name) = (mountinfo(), hostname());
    // The mount lesson holds a temp dir across its pauses. A hang-up with or without
    // SIGHUP (nsx is the session leader of its terminal, or only reads from it), and with
    // the output on a pipe or on the terminal itself (SSH).
    for (controlling, all_on_terminal) in [(false, false), (true, false), (false, true)] {
        let what = format!("controlling={controlling} all_on_terminal={all_on_terminal}");
        let (mut child, master) = paused_on_a_terminal(&exe, "mount", controlling, all_on_terminal);
        let pid = child.id();
        assert_eq!(temp_dirs_of(&BTreeSet::from([pid])).len(), 1, "{what}");
        drop(master); // the hang-up
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{what}: nsx did not end after the hang-up");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            e.read_to_string(&mut err).unwrap();
        }
        assert_eq!(status.code(), Some(128 + libc::SIGHUP), "{what}: {err}");
        if !all_on_terminal {
            assert!(err.contains("interrupted by SIGHUP"), "{what}: {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
        let left = leftovers_of(&BTreeSet::from([pid]));
        assert!(left.is_empty(), "{what}: left {left:?}");
        assert!(wait_for_no_process_of(&exe, Duration::from_secs(2)).is_empty());
        assert_eq!(mountinfo(), mounts);
        assert_eq!(hostname(), name);
    }
}
