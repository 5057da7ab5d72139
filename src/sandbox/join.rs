//! Joining namespaces another process holds: setns(2), as `nsenter` and a pod's containers do.

use std::fs::File;
use std::os::fd::AsFd;

use nix::sched::{setns, CloneFlags};

use super::{ensure_single_threaded, flag_names, Inside};
use crate::error::{Context, Error, Result};

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
            return Err(Error::Other(format!(
                "internal: nsx joins only user, ipc, uts, net and cgroup namespaces, not {}",
                flag_names(self.namespaces - joinable)
            )));
        }
        if created.intersects(self.namespaces) {
            return Err(Error::Other(format!(
                "internal: a probe cannot both create and join {}",
                flag_names(created & self.namespaces)
            )));
        }
        Ok(())
    }

    /// In the probe, before its setup: opens every /proc/<pid>/ns/<type> first (the
    /// files must be reached while the holder's /proc is still the one we see), then
    /// calls setns(2) on each.
    pub(super) fn enter(&self, inside: &mut Inside) -> Result<()> {
        let mut files = Vec::new();
        for (flag, name) in ORDER {
            if self.namespaces.contains(flag) {
                let path = format!("/proc/{}/ns/{name}", self.pid);
                files.push((flag, File::open(&path).ctx("open", &path)?, path));
            }
        }
        for (flag, file, path) in files {
            // setns(2): reassociate the calling thread with the namespace the file
            // refers to; the flag makes the kernel check that it is of that type.
            setns(file.as_fd(), flag).ctx("setns", &path)?;
            inside.action(format!("setns(open(\"{path}\"), {})", flag_names(flag)));
        }
        Ok(())
    }
}

/// Moves nsx itself into the user namespace of `pid`, as `nsenter --user` or rootless
/// Podman's `podman unshare` do: nsx is then root there and can create namespaces that
/// this user namespace owns, for probes that must join each other's. Returns the action
/// for the log.
pub fn enter_user_namespace_of(pid: i32) -> Result<String> {
    // setns(2): joining a user namespace is refused to a multithreaded process.
    ensure_single_threaded()?;
    let path = format!("/proc/{pid}/ns/user");
    let file = File::open(&path).ctx("open", &path)?;
    // user_namespaces(7): the owner of a user namespace, from its parent namespace, has
    // every capability in it, so setns succeeds and gives nsx a full capability set there.
    setns(file.as_fd(), CloneFlags::CLONE_NEWUSER).ctx("setns", &path)?;
    Ok(format!(
        "setns(open(\"{path}\"), CLONE_NEWUSER)   (nsx itself)"
    ))
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
