//! What each lesson needs from the machine, so that `nsx lessons`, `nsx doctor` and the
//! check before a lesson runs all decide "runs here or not" the same way
//! ([`crate::doctor::check`]).
//!
//! The table is keyed by lesson id rather than stored in [`Lesson`], so adding a lesson
//! needs no change to the struct: a lesson that is not listed is assumed to need only what
//! its `rootless` field says (and, without root, the user namespace the sandbox adds);
//! a unit test asks every registered lesson to be listed.

use serde::Serialize;

use super::Lesson;

/// One thing a lesson needs from the kernel or the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Need {
    /// A namespace type (namespaces(7) name: "ipc", "time", ...): the kernel must offer it
    /// (`/proc/self/ns/<type>`, and Linux 5.6 or later for "time") and
    /// `user.max_<type>_namespaces` must not be 0.
    Namespace(&'static str),
    /// A cgroup controller ("memory", "cpu", "pids"): mounted (v1) or enabled on the
    /// unified hierarchy (v2) as root; delegated to the user without root.
    CgroupController(&'static str),
    /// A cgroup below the root of a mounted hierarchy to show from two sides (the cgroupns
    /// lesson): one nsx is in already, or, as root, a child it may create
    /// ([`crate::lessons::cgroupns::obstacle`]).
    NestedCgroup,
    /// The overlay file system (overlayfs): in /proc/filesystems or loadable as a module;
    /// without root, Linux 5.11 or later (overlayfs in user namespaces).
    Overlay,
}

/// What a lesson the table does not list is assumed to need: nothing beyond its
/// `rootless` field and, without root, a user namespace.
const BASE: &[Need] = &[];

/// The needs of each lesson of the curriculum (CURRICULUM.md), beyond a user namespace
/// when run without root (always added by the sandbox, checked separately).
fn table(id: &str) -> Option<&'static [Need]> {
    use Need::*;
    Some(match id {
        "pid" => &[Namespace("pid"), Namespace("mnt")],
        "mount" => &[Namespace("mnt")],
        "uts" => &[Namespace("uts")],
        "ipc" => &[Namespace("ipc")],
        "net" => &[Namespace("net")],
        "user" => &[Namespace("user")],
        "cgroupns" => &[Namespace("cgroup"), NestedCgroup],
        "time" => &[Namespace("time")],
        "memory" => &[CgroupController("memory")],
        "cpu" => &[CgroupController("cpu")],
        "pids" => &[CgroupController("pids")],
        "rootfs" => &[Namespace("mnt"), Overlay],
        "init" => &[Namespace("pid"), Namespace("mnt")],
        "pod" => &[
            Namespace("net"),
            Namespace("ipc"),
            Namespace("uts"),
            Namespace("pid"),
            Namespace("mnt"),
        ],
        // The container step mounts in a mount namespace of its own; its control makes a
        // user namespace to show that one needs no capability.
        "seccomp" => &[Namespace("mnt"), Namespace("user")],
        // Each probe tries its calls in mount, UTS and network namespaces of its own; the
        // setuid steps (as root) run in new mount and PID namespaces.
        "caps" => &[
            Namespace("mnt"),
            Namespace("uts"),
            Namespace("net"),
            Namespace("pid"),
        ],
        // A container's /proc and sysfs: new PID, mount and network namespaces.
        "masks" => &[Namespace("mnt"), Namespace("pid"), Namespace("net")],
        // Times creating every namespace type (time only where the kernel has it, and
        // the cgroup only when one can be made, so neither is a need).
        "cost" => &[
            Namespace("user"),
            Namespace("uts"),
            Namespace("ipc"),
            Namespace("mnt"),
            Namespace("pid"),
            Namespace("cgroup"),
            Namespace("net"),
        ],
        _ => return None,
    })
}

/// The needs of the lesson `id`: its entry in the table, or none for a lesson the table
/// does not know.
pub fn needs(id: &str) -> &'static [Need] {
    table(id).unwrap_or(BASE)
}

/// Whether the table lists `id` (a test keeps every registered lesson listed).
pub fn declared(id: &str) -> bool {
    table(id).is_some()
}

impl Lesson {
    /// What this lesson needs from the machine (see [`needs`]).
    pub fn needs(&self) -> &'static [Need] {
        needs(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_lesson_declares_its_needs() {
        for l in super::super::LESSONS {
            assert!(
                declared(l.id),
                "add lesson {:?} to src/lessons/needs.rs so nsx doctor can tell whether it runs",
                l.id
            );
        }
    }

    #[test]
    fn namespace_needs_name_real_namespace_types() {
        let ids = [
            "pid", "mount", "uts", "ipc", "net", "user", "cgroupns", "time", "memory", "cpu",
            "pids", "rootfs", "init", "pod", "caps", "masks", "cost",
        ];
        for id in ids {
            assert!(declared(id), "{id}");
            for n in needs(id) {
                if let Need::Namespace(ty) = n {
                    assert!(crate::observe::NS_TYPES.contains(ty), "{id}: {ty}");
                }
            }
        }
        assert!(needs("not-a-lesson").is_empty());
    }
}
