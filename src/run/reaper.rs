//! Every process the command starts ends with it.
//!
//! Without a PID namespace, `sh -c 'sleep 1000 &'` leaves the sleep running after sh
//! exits: it is reparented to init (or the nearest subreaper) and lives on, with every
//! namespace it holds. With a PID namespace the kernel kills the rest when PID 1 exits,
//! but only then. So nsx makes itself a *child subreaper* (prctl(2)
//! PR_SET_CHILD_SUBREAPER): a descendant of the command whose parent exits is
//! reparented to nsx instead of to init. While the command runs nsx reaps those orphans
//! as they exit (a zombie would still count in a --pids limit); when the command ends,
//! [`kill_all_children`] kills and reaps every one still there. They are nsx's own children,
//! not yet reaped, so their PIDs cannot have been reused: killing them by PID is safe.
//!
//! Why not a cgroup: the subreaper works without root and without a cgroup of nsx's
//! own (rootless runs, hosts where nsx may create none), and the kernel does the
//! bookkeeping. It cannot hold a process that nsx's SIGKILL orphans (nsx is gone then);
//! with `--pid` the kernel still ends those, because PID 1 gets PR_SET_PDEATHSIG.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{sys, Result};

/// prctl(2) PR_SET_CHILD_SUBREAPER on nsx itself: orphaned descendants of the command
/// come back to nsx. Not inherited by the command (fork(2) clears it).
pub fn become_subreaper() -> Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(sys("prctl PR_SET_CHILD_SUBREAPER", 1, Errno::last()));
    }
    Ok(())
}

/// Reaps the children of nsx that have exited, other than `main` (whose status the
/// caller collects itself). waitid(2) with WNOWAIT looks at an exited child without
/// reaping it, so `main` is never reaped here by accident.
pub fn reap_orphans(main: Pid) {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::All, flags) {
            Ok(status) => match status.pid() {
                Some(pid) if pid != main => {
                    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                }
                // Nothing exited, or only `main` did.
                _ => return,
            },
            Err(Errno::EINTR) => continue,
            Err(_) => return, // ECHILD: no children at all
        }
    }
}

/// SIGKILLs and reaps every child nsx still has, round after round, since each one
/// killed hands its own children to nsx; returns how many it killed. Call it once the
/// command itself has been reaped (its status collected).
pub fn kill_all_children() -> usize {
    let mut killed = 0;
    // Bounded: each round kills every current child; a process cannot fork after its
    // SIGKILL, so the tree only shrinks.
    for _ in 0..10_000 {
        let children = own_children();
        if children.is_empty() {
            break;
        }
        for &pid in &children {
            let _ = kill(pid, Signal::SIGKILL);
        }
        for &pid in &children {
            // A SIGKILLed process exits promptly; reaping it reparents its children to
            // us before waitpid returns, so the next round sees them.
            loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => continue,
                    Ok(WaitStatus::StillAlive) => continue,
                    _ => break,
                }
            }
        }
        killed += children.len();
    }
    killed
}

/// This process's children: the processes whose parent (field 4 of /proc/<pid>/stat,
/// proc(5)) is nsx, zombies included.
fn own_children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // comm may hold spaces and parentheses: count fields after the last ')'.
            let ppid = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?;
            (ppid == me).then_some(Pid::from_raw(pid))
        })
        .collect()
}
