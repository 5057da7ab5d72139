//! Joining namespaces another process holds: setns(2), as `nsenter` and a pod's containers do.
//!
//! Joining happens only in the processes nsx clones, never in nsx itself: a namespace nsx
//! entered would stay with it for every later lesson of a tour. Net, IPC, UTS and cgroup
//! namespaces are joined by the probe before its setup ([`Join::enter`]). A user
//! namespace is joined by a short-lived helper ([`clone_in_user_namespace_of`]): joining
//! it is what gives the capabilities to create the probe's own namespaces inside it, so
//! it must happen before the clone that creates them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, Pid};

use super::{flag_names, raw_clone, Inside};
use crate::error::{op, sys, Context, Error, Result};

/// Namespaces of process `pid` that a probe joins before its setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub pid: i32,
    /// Which of them: CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
    /// CLONE_NEWUSER.
    pub namespaces: CloneFlags,
}

/// The order of setns calls. A user namespace comes first: joining it gives the caller
/// its capabilities there (user_namespaces(7)), which setns(2) into the namespaces it
/// owns requires (CAP_SYS_ADMIN in the owning user namespace). nsenter(1) does the same.
const ORDER: [(CloneFlags, &str); 5] = [
    (CloneFlags::CLONE_NEWUSER, "user"),
    (CloneFlags::CLONE_NEWIPC, "ipc"),
    (CloneFlags::CLONE_NEWUTS, "uts"),
    (CloneFlags::CLONE_NEWNET, "net"),
    (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
];

impl Join {
    /// Joining is for namespaces the probe does not also create, and only for the types
    /// whose setns(2) moves the caller itself (a PID or time namespace would only apply
    /// to its children; a mount namespace also needs its root and cwd reset).
    pub(super) fn check(&self, created: CloneFlags) -> Result<()> {
        let joinable = ORDER
            .iter()
            .fold(CloneFlags::empty(), |acc, (f, _)| acc | *f);
        if !joinable.contains(self.namespaces) {
            return Err(Error::Internal(format!(
                "nsx joins only user, ipc, uts, net and cgroup namespaces, not {}",
                flag_names(self.namespaces - joinable)
            )));
        }
        if created.intersects(self.namespaces) {
            return Err(Error::Internal(format!(
                "a probe cannot both create and join {}",
                flag_names(created & self.namespaces)
            )));
        }
        Ok(())
    }

    /// In the probe, before its setup: opens every /proc/<pid>/ns/<type> first (the
    /// files must be reached while the holder's /proc is still the one we see), then
    /// calls setns(2) on each. The user namespace, if asked for, was joined by the helper
    /// that cloned the probe ([`clone_in_user_namespace_of`]): the probe is already in it.
    pub(super) fn enter(&self, inside: &mut Inside) -> Result<()> {
        let mut files = Vec::new();
        for (flag, name) in ORDER {
            if self.namespaces.contains(flag) {
                let path = format!("/proc/{}/ns/{name}", self.pid);
                if flag == CloneFlags::CLONE_NEWUSER {
                    inside.action(format!(
                        "setns(open(\"{path}\"), CLONE_NEWUSER)   (a helper nsx forked, which then cloned this probe: nsx itself stays in its own user namespace)"
                    ));
                    continue;
                }
                files.push((flag, File::open(&path).ctx("open", &path)?, path));
            }
        }
        for (flag, file, path) in files {
            // setns(2): reassociate the calling thread with the namespace the file
            // refers to; the flag makes the kernel check that it is of that type.
            setns(file.as_fd(), flag).ctx(op::SETNS, &path)?;
            inside.action(format!("setns(open(\"{path}\"), {})", flag_names(flag)));
        }
        Ok(())
    }

    /// Whether the probe joins a user namespace (and so does not get one of its own).
    pub fn joins_user(&self) -> bool {
        self.namespaces.contains(CloneFlags::CLONE_NEWUSER)
    }
}

/// Clones a probe into `flags` from inside the user namespace of process `holder`,
/// without nsx itself entering it, as `nsenter --user` followed by `unshare` would.
/// Returns like [`raw_clone`]: `None` in the probe, its PID in nsx.
///
/// A helper is forked (single-threaded, like nsx); it joins the user namespace with
/// setns(2), which gives it every capability there (user_namespaces(7): its uid owns
/// that namespace, a child of nsx's), so its clone(2) may create namespaces that the
/// holder's user namespace owns. CLONE_PARENT makes nsx, not the helper, the probe's
/// parent: nsx waits for it, and its PR_SET_PDEATHSIG follows nsx. The helper sends the
/// probe's PID (or the errno) over a pipe and exits.
pub(super) fn clone_in_user_namespace_of(holder: i32, flags: CloneFlags) -> Result<Option<Pid>> {
    let path = format!("/proc/{holder}/ns/user");
    let userns = File::open(&path).ctx("open", &path)?;
    // pipe2(2) with O_CLOEXEC: the PID travels from the helper to nsx.
    let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "helper")?;
    let helper = match raw_clone(CloneFlags::empty()).ctx(op::CLONE, "the setns helper")? {
        Some(helper) => helper,
        None => {
            // The helper: never returns, except as the probe it clones.
            drop(r);
            let mut w = File::from(w);
            // setns(2): join the holder's user namespace (a single-threaded caller).
            let cloned = setns(userns.as_fd(), CloneFlags::CLONE_NEWUSER)
                .and_then(|()| raw_clone(flags | CloneFlags::CLONE_PARENT));
            let word: i64 = match cloned {
                Ok(None) => {
                    // The probe: nsx's child now. Nothing of the helper's stays open.
                    drop(w);
                    drop(userns);
                    return Ok(None);
                }
                Ok(Some(pid)) => i64::from(pid.as_raw()),
                Err(e) => -(e as i64),
            };
            let ok = w.write_all(&word.to_ne_bytes()).is_ok() && word > 0;
            // SAFETY: _exit in a forked child skips the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
    };
    drop(w);
    drop(userns);
    let mut buf = [0u8; 8];
    let got = File::from(r).read_exact(&mut buf);
    // The helper exits right after writing; reap it whatever it said.
    while let Err(Errno::EINTR) = waitpid(helper, None) {}
    got.map_err(|e| {
        Error::Other(format!(
            "the setns helper of {path} ended without a word: {e}"
        ))
    })?;
    match i64::from_ne_bytes(buf) {
        pid if pid > 0 => Ok(Some(Pid::from_raw(pid as i32))),
        errno => Err(sys(
            "setns + clone",
            format!("{path}, {}", flag_names(flags)),
            Errno::from_raw(-errno as i32),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaces_that_move_the_caller_are_joined() {
        let join = |namespaces| Join { pid: 1, namespaces };
        assert!(join(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS)
            .check(CloneFlags::CLONE_NEWPID)
            .is_ok());
        assert!(join(CloneFlags::CLONE_NEWPID)
            .check(CloneFlags::empty())
            .is_err());
        assert!(join(CloneFlags::CLONE_NEWNET)
            .check(CloneFlags::CLONE_NEWNET)
            .is_err());
    }
}
