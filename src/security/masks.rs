//! The kernel files a runtime hides from a container or freezes, and the small /dev it
//! gives it: Docker's defaults, as runc applies them.
//!
//! procfs and sysfs are not namespaced: a container whose root owns a fresh /proc still
//! reads the host's kernel timers (/proc/timer_list), its keys (/proc/keys), its memory
//! image (/proc/kcore), and may write the host's sysctls (/proc/sys) and trigger SysRq
//! (/proc/sysrq-trigger). So runtimes, after mounting /proc and /sys:
//! - **mask** a list of paths: a file gets /dev/null bind-mounted over it (reads give
//!   nothing), a directory an empty read-only tmpfs (runc libcontainer `maskPath`);
//! - make another list **read-only**: a bind mount of the path onto itself, remounted
//!   read-only (runc `readonlyPath`);
//! - mount **/sys read-only**, and give the container a **minimal /dev**: a tmpfs holding
//!   null, zero, full, random, urandom and tty, a devpts of its own, and a few links.
//!
//! A mask is a mount: whoever holds CAP_SYS_ADMIN in the container's mount namespace can
//! unmount it. That is one reason Docker's default capabilities leave CAP_SYS_ADMIN out.
//!
//! Every function here mounts, so each takes the probe's [`Inside`] and refuses to run
//! outside a private mount namespace nsx made: nothing can reach the host's table.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use super::mount_attr::{self, Attrs};
use crate::error::{Context, Error, Result};
use crate::sandbox::Inside;

/// Docker's masked paths: moby `daemon/pkg/oci/defaults.go`, `defaultLinuxMaskedPaths`
/// (older releases: `oci/defaults.go`, `DefaultLinuxSpec().Linux.MaskedPaths`, which
/// lacked /proc/interrupts and /sys/devices/virtual/powercap).
pub const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    // GHSA-6fw5-f8r9-fgfm: interrupt counts per CPU leak what other tenants do.
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    // GHSA-jq35-85cj-fj4p: RAPL energy counters (the Platypus side channel).
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Docker's read-only paths (moby `DefaultLinuxSpec().Linux.ReadonlyPaths`).
pub const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where each CPU's thermal throttling counters are (masked too, where present:
/// GHSA-6fw5-f8r9-fgfm).
const CPUS: &str = "/sys/devices/system/cpu";

/// The devices a container's /dev holds (runc's default devices, the OCI runtime spec's
/// "Default Devices"), bind-mounted from the host's /dev.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The links a container's /dev holds (runc `setupDevSymlinks`, and the container's own
/// devpts's ptmx).
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// The names a minimal /dev lists: [`DEVICES`] the host has, `pts`, and [`DEV_LINKS`].
pub fn minimal_dev_names(host_has: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = DEVICES
        .iter()
        .filter(|d| host_has(d))
        .map(|d| d.to_string())
        .chain(std::iter::once("pts".to_string()))
        .chain(DEV_LINKS.iter().map(|(l, _)| l.to_string()))
        .collect();
    names.sort();
    names
}

/// `/sys/devices/system/cpu/cpu<N>/thermal_throttle` for each CPU that has one, below
/// `root` ("/" for this machine), in CPU order.
pub fn thermal_throttle(root: &Path) -> Vec<String> {
    let dir = root.join(CPUS.trim_start_matches('/'));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut cpus: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_prefix("cpu")?.parse().ok()
        })
        .filter(|n| dir.join(format!("cpu{n}/thermal_throttle")).is_dir())
        .collect();
    cpus.sort_unstable();
    cpus.into_iter()
        .map(|n| format!("{CPUS}/cpu{n}/thermal_throttle"))
        .collect()
}

/// Every path Docker masks on the machine whose root is `root`: [`MASKED`], then each
/// CPU's thermal_throttle directory.
pub fn masked_paths(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = MASKED.iter().map(|p| p.to_string()).collect();
    out.extend(thermal_throttle(root));
    out
}

/// What was done to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// A file: /dev/null bind-mounted over it.
    DevNull,
    /// A directory: an empty read-only tmpfs mounted over it.
    EmptyTmpfs,
    /// Bound onto itself and made read-only (with every mount below it).
    ReadOnly,
    /// Not on this kernel: nothing to do.
    Absent,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            How::DevNull => "/dev/null bound over it",
            How::EmptyTmpfs => "empty read-only tmpfs",
            How::ReadOnly => "bound read-only",
            How::Absent => "absent here",
        })
    }
}

/// One path and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub path: String,
    pub how: How,
}

fn private(inside: &Inside, what: &str) -> Result<()> {
    if inside.mounts_are_private() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "internal: refusing to {what} outside a private mount namespace"
        )))
    }
}

fn errno(e: &Error) -> Option<Errno> {
    match e {
        Error::Sys(s) => Some(s.errno),
        _ => None,
    }
}

/// Masks `target` as runc's `maskPath` does: /dev/null bound over a file; over a
/// directory (the bind fails with ENOTDIR) an empty read-only tmpfs. A path this kernel
/// lacks (ENOENT) is left alone.
pub fn mask(inside: &mut Inside, target: &Path) -> Result<How> {
    private(inside, "mask a path")?;
    let shown = target.display();
    // mount(2) MS_BIND: the target gets the very inode of /dev/null, so reads return 0
    // bytes and writes vanish; a directory cannot be the target of a file's bind.
    match inside.mount(
        "/dev/null",
        target,
        None,
        MsFlags::MS_BIND,
        None,
        format!("mount --bind /dev/null {shown}"),
    ) {
        Ok(()) => Ok(How::DevNull),
        Err(e) if errno(&e) == Some(Errno::ENOENT) => Ok(How::Absent),
        Err(e) if errno(&e) == Some(Errno::ENOTDIR) => {
            // An empty file system over the directory, read-only so nothing can be put
            // there either.
            inside.mount(
                "nsx-mask",
                target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None,
                format!("mount -t tmpfs -o ro nsx-mask {shown}"),
            )?;
            Ok(How::EmptyTmpfs)
        }
        Err(e) => Err(e),
    }
}

/// Makes `target` read-only as runc's `readonlyPath` does: a recursive bind mount of the
/// path onto itself, then read-only on it and every mount below it. A path this kernel
/// lacks is left alone.
pub fn make_read_only(inside: &mut Inside, target: &Path) -> Result<How> {
    private(inside, "remount a path")?;
    let shown = target.display();
    // mount(2): a bind mount makes the path a mount of its own, whose flags can then be
    // changed without touching the file system around it.
    match inside.mount(
        &target.to_string_lossy(),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        format!("mount --rbind {shown} {shown}"),
    ) {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(Errno::ENOENT) => return Ok(How::Absent),
        Err(e) => return Err(e),
    }
    mount_attr::add_recursive(target, Attrs::RDONLY)?;
    inside.action(format!("mount -o remount,bind,ro {shown}   (and below)"));
    Ok(How::ReadOnly)
}

/// Docker's masks and read-only paths under `root` ("/" for the probe's own world):
/// [`masked_paths`] masked, then [`READONLY`] made read-only.
pub fn apply(inside: &mut Inside, root: &Path) -> Result<Vec<Applied>> {
    let mut out = Vec::new();
    for p in masked_paths(root) {
        let how = mask(inside, &root.join(p.trim_start_matches('/')))?;
        out.push(Applied { path: p, how });
    }
    for p in READONLY {
        let how = make_read_only(inside, &root.join(p.trim_start_matches('/')))?;
        out.push(Applied {
            path: p.to_string(),
            how,
        });
    }
    Ok(out)
}

/// Mounts a fresh sysfs on `target`, read-only when `read_only` (as Docker does) or
/// writable (as `--privileged` does). sysfs(5): it shows the network devices of the
/// mounter's network namespace, so without root the probe needs one of its own.
pub fn mount_sysfs(inside: &mut Inside, target: &Path, read_only: bool) -> Result<()> {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    inside.mount(
        "sysfs",
        target,
        Some("sysfs"),
        flags,
        None,
        format!(
            "mount -t sysfs -o {},nosuid,nodev,noexec sysfs {}",
            if read_only { "ro" } else { "rw" },
            target.display()
        ),
    )
}

/// Gives `dev` a minimal /dev: a tmpfs (nosuid, noexec, nodev: a node made there by the
/// container's CAP_MKNOD opens nothing) holding bind mounts of [`DEVICES`] from `from`
/// (the host's /dev), a devpts of its own on pts (`newinstance`: its own pty numbers,
/// not the host's), and [`DEV_LINKS`]. The host's devices are opened (O_PATH) before the
/// tmpfs hides them, and bound from /proc/self/fd, so `dev` may be `from` itself.
/// Returns the devices it bound.
pub fn minimal_dev(inside: &mut Inside, from: &Path, dev: &Path) -> Result<Vec<String>> {
    private(inside, "mount a /dev")?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut held = Vec::new();
    for d in DEVICES {
        let p = from.join(d);
        // open(2) O_PATH: a handle on the node itself, no device driver opened.
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&p)
        {
            Ok(f) => held.push((d, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::error::io("open (O_PATH)", &p, e)),
        }
    }
    inside.mount(
        "nsx-dev",
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=755,size=64k"),
        format!(
            "mount -t tmpfs -o nosuid,noexec,nodev,mode=755 nsx-dev {}",
            dev.display()
        ),
    )?;
    let mut bound = Vec::new();
    for (d, f) in &held {
        let target = dev.join(d);
        std::fs::File::create(&target).ctx("create", target.display())?;
        // A bind mount of a device node needs no mknod(2) privilege, and keeps the flags
        // of the host's /dev mount, so the node opens although the tmpfs is nodev.
        let source = format!("/proc/self/fd/{}", f.as_raw_fd());
        inside.mount(
            &source,
            &target,
            None,
            MsFlags::MS_BIND,
            None,
            format!(
                "mount --bind {} {}",
                from.join(d).display(),
                target.display()
            ),
        )?;
        bound.push(d.to_string());
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).ctx("mkdir", pts.display())?;
    // devpts(5) newinstance: pty numbers of the container's own; ptmxmode=0666 so its
    // pts/ptmx opens for everyone, as a container's /dev/ptmx must.
    inside.mount(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
        format!(
            "mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts {}",
            pts.display()
        ),
    )?;
    for (link, to) in DEV_LINKS {
        let l = dev.join(link);
        std::os::unix::fs::symlink(to, &l).ctx("symlink", l.display())?;
    }
    inside.action(format!(
        "ln -s {} in {}",
        DEV_LINKS
            .iter()
            .map(|(l, t)| format!("{t} {l}"))
            .collect::<Vec<_>>()
            .join(", "),
        dev.display()
    ));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_dockers() {
        // moby daemon/pkg/oci/defaults.go (checked 2026): twelve masked, five read-only.
        assert!(MASKED.contains(&"/proc/kcore") && MASKED.contains(&"/sys/firmware"));
        assert!(READONLY.contains(&"/proc/sys") && READONLY.contains(&"/proc/sysrq-trigger"));
        for p in MASKED.iter().chain(READONLY.iter()) {
            assert!(p.starts_with("/proc/") || p.starts_with("/sys/"), "{p}");
        }
        let mut all: Vec<&str> = MASKED.iter().chain(READONLY.iter()).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), MASKED.len() + READONLY.len(), "no path twice");
    }

    #[test]
    fn thermal_throttle_dirs_are_found_per_cpu_in_order() {
        let root = tempfile::tempdir().unwrap();
        let cpus = root.path().join("sys/devices/system/cpu");
        for d in [
            "cpu10/thermal_throttle",
            "cpu2/thermal_throttle",
            "cpu3",
            "cpufreq",
        ] {
            std::fs::create_dir_all(cpus.join(d)).unwrap();
        }
        assert_eq!(
            thermal_throttle(root.path()),
            [
                "/sys/devices/system/cpu/cpu2/thermal_throttle",
                "/sys/devices/system/cpu/cpu10/thermal_throttle"
            ]
        );
        assert_eq!(masked_paths(root.path()).len(), MASKED.len() + 2);
        assert!(thermal_throttle(&root.path().join("nothing")).is_empty());
    }

    #[test]
    fn a_minimal_dev_lists_the_devices_the_host_has_pts_and_the_links() {
        let names = minimal_dev_names(|d| d != "tty");
        assert_eq!(
            names,
            [
                "fd", "full", "null", "ptmx", "pts", "random", "stderr", "stdin", "stdout",
                "urandom", "zero"
            ]
        );
    }
}
