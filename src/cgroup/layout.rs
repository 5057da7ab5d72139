//! Where the cgroup hierarchies are, and where this process sits in each of them.
//!
//! Three sources, each parsed from text so tests can feed captured files:
//! - statfs(2) of /sys/fs/cgroup (and of its `unified` directory) gives the [`Mode`], the
//!   same test systemd and runtimes use;
//! - /proc/self/mountinfo gives every cgroup mount: its mount point, the part of the
//!   hierarchy it shows (field 4, "root"), and for v1 the controllers bound to it (super
//!   options such as `rw,cpu,cpuacct`), so co-mounted controllers are found wherever they
//!   are mounted; where the hierarchies nsx uses are mounted at their standard places,
//!   statmount(2) of those places gives the same lines for less ([`super::standard`]);
//! - /proc/self/cgroup gives our own cgroup in each hierarchy
//!   (`hierarchy-ID:controller-list:path`, cgroups(7)).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::standard::{self, Fallback, USED_V1};
use crate::error::{op, sys, Context, Error, Result};

/// Where distributions mount cgroups.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup setup of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies, one per controller (or group of co-mounted controllers).
    V1,
    /// v1 hierarchies for the controllers, plus a cgroup2 mount (usually
    /// /sys/fs/cgroup/unified) that systemd uses for tracking; resource control is v1.
    Hybrid,
    /// One unified cgroup2 hierarchy at /sys/fs/cgroup.
    V2,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::V1 => "v1",
            Mode::Hybrid => "hybrid",
            Mode::V2 => "v2",
        })
    }
}

impl Mode {
    /// The mode of this machine, from statfs(2) of /sys/fs/cgroup.
    pub fn detect() -> Result<Mode> {
        Mode::detect_at(Path::new(DEFAULT_ROOT))
    }

    /// The mode from the file-system magic numbers at `root` (statfs(2)):
    /// cgroup2 at the root is v2; a tmpfs at the root holding v1 mounts is v1, or hybrid
    /// when `root/unified` is a cgroup2 mount.
    pub fn detect_at(root: &Path) -> Result<Mode> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
        let st = match statfs(root) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Err(no_cgroupfs(root, "it does not exist")),
            Err(e) => return Err(sys("statfs", root.display(), e)),
        };
        let t = st.filesystem_type();
        if t == CGROUP2_SUPER_MAGIC {
            return Ok(Mode::V2);
        }
        if t == TMPFS_MAGIC {
            let unified = root.join("unified");
            return Ok(match statfs(&unified) {
                Ok(u) if u.filesystem_type() == CGROUP2_SUPER_MAGIC => Mode::Hybrid,
                _ => Mode::V1,
            });
        }
        if t == CGROUP_SUPER_MAGIC {
            // A single v1 hierarchy mounted directly on the root: unusual, but v1.
            return Ok(Mode::V1);
        }
        Err(no_cgroupfs(
            root,
            "it is neither cgroup2 nor a tmpfs holding cgroup v1 mounts",
        ))
    }

    /// The same decision as [`Mode::detect_at`], taken from a parsed mount table instead of
    /// statfs, so that tests can describe any machine.
    pub fn from_mounts(root: &Path, mounts: &[CgroupMount]) -> Result<Mode> {
        let unified = root.join("unified");
        if mounts.iter().any(|m| m.v2 && m.mount_point == root) {
            return Ok(Mode::V2);
        }
        let any_v1 = mounts.iter().any(|m| !m.v2);
        if mounts.iter().any(|m| m.v2 && m.mount_point == unified) {
            return Ok(Mode::Hybrid);
        }
        if any_v1 {
            return Ok(Mode::V1);
        }
        Err(no_cgroupfs(
            root,
            "the mount table has no cgroup mount there",
        ))
    }
}

fn no_cgroupfs(root: &Path, why: &str) -> Error {
    Error::unsupported(
        format!("no cgroup file system at {}: {why}", root.display()),
        format!(
            "mount one (as root): mount -t cgroup2 none {} (most distributions do this at boot)",
            root.display()
        ),
    )
}

/// The v1 controllers a `cgroup` mount's super options may name (cgroups(7)).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// A cgroup file system mount, from one line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy appears at the mount point (usually `/`; a
    /// sub-cgroup inside containers).
    pub root: PathBuf,
    /// cgroup2 (true) or a v1 hierarchy (false).
    pub v2: bool,
    /// v1: the controllers bound to this hierarchy, plus `name=<x>` for a named one;
    /// empty for cgroup2.
    pub controllers: Vec<String>,
}

/// Parses the cgroup and cgroup2 mounts out of `/proc/<pid>/mountinfo` (proc(5)).
///
/// Line format: `id parent major:minor root mount-point options [optional...] - fstype
/// source super-options`. Paths use octal escapes for space, tab, newline and backslash.
pub fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>> {
    let mut mounts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            Error::Other(format!(
                "parse /proc/self/mountinfo: line {}: {line:?}",
                n + 1
            ))
        };
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            return Err(bad());
        }
        let fstype = post[0];
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            v1_controllers(post[2])
        };
        mounts.push(CgroupMount {
            root: PathBuf::from(unescape(pre[3])),
            mount_point: PathBuf::from(unescape(pre[4])),
            v2,
            controllers,
        });
    }
    Ok(mounts)
}

/// The controllers (and `name=<x>`) among a v1 mount's super options, in their order.
pub(crate) fn v1_controllers(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` is a space) in mountinfo paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Three octal digits make one byte; `\777` (511) is no byte: kept as text.
        let octal = (b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)))
        .then(|| {
            b[i + 1..i + 4]
                .iter()
                .fold(0u32, |v, c| v * 8 + u32::from(c - b'0'))
        })
        .and_then(|v| u8::try_from(v).ok());
        if let Some(v) = octal {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/<pid>/cgroup`: the process's cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// 0 for the unified (v2) hierarchy.
    pub hierarchy_id: u32,
    /// v1: the hierarchy's controllers (`cpu`, `cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// Path relative to the hierarchy's root (as seen from our cgroup namespace).
    pub path: PathBuf,
}

/// Parses `/proc/self/cgroup` (cgroups(7): `hierarchy-ID:controller-list:cgroup-path`).
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>> {
    parse_proc_cgroup_of(text, Path::new("/proc/self/cgroup"))
}

/// Parses the text of `file`, a `/proc/<pid>/cgroup`; errors name `file`.
///
/// The lines are split by [`crate::observe::cgroup::parse_cgroup`], the parser the
/// lessons show the file with; placement also drops the " (deleted)" a zombie whose
/// cgroup was removed shows after the path, keeping the path it names.
pub fn parse_proc_cgroup_of(text: &str, file: &Path) -> Result<Vec<Membership>> {
    let lines = crate::observe::cgroup::parse_cgroup(text)
        .map_err(|why| Error::Other(format!("parse {}: {why}", file.display())))?;
    Ok(lines
        .into_iter()
        .map(|l| {
            let path = l.path.strip_suffix(" (deleted)").unwrap_or(&l.path);
            Membership {
                hierarchy_id: l.hierarchy,
                controllers: l.controllers,
                path: PathBuf::from(path),
            }
        })
        .collect())
}

/// The cgroup layout as this process sees it: mode, mounts and own memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub mode: Mode,
    /// Usually /sys/fs/cgroup.
    pub root: PathBuf,
    pub mounts: Vec<CgroupMount>,
    pub membership: Vec<Membership>,
    /// Whether the machine has swap in use (/proc/swaps lists a device or file). The v1
    /// backend limits memory+swap only then (see v1::V1::set_memory_max).
    #[serde(default)]
    pub swap: bool,
}

impl Layout {
    /// Where nsx puts lesson cgroups on this machine, seen from this process: the mode
    /// (statfs(2) of /sys/fs/cgroup), our own cgroups (/proc/self/cgroup), whether swap
    /// is in use (sysinfo(2)), and the mounts of the hierarchies nsx uses (those of
    /// [`USED_V1`] on v1 and hybrid, cgroup2 on v2). The mounts come from statmount(2)
    /// of their standard places ([`super::standard`]), or from /proc/self/mountinfo
    /// whenever that is not certain. For every mount, see [`Layout::detect_all`].
    pub fn detect() -> Result<Layout> {
        Layout::detect_traced().map(|(layout, _)| layout)
    }

    /// [`Layout::detect`], also saying why /proc/self/mountinfo had to be read (`None`
    /// when the standard places answered).
    pub fn detect_traced() -> Result<(Layout, Option<Fallback>)> {
        Layout::detect_for_traced(&USED_V1)
    }

    /// [`Layout::detect`] with the mounts of the hierarchies of `wanted` only (v1
    /// controller names, e.g. `["memory"]`; on v2 any name means the one hierarchy, and
    /// none means no mount). [`Layout::extend_to`] adds more later.
    pub fn detect_for(wanted: &[&str]) -> Result<Layout> {
        Layout::detect_for_traced(wanted).map(|(layout, _)| layout)
    }

    fn detect_for_traced(wanted: &[&str]) -> Result<(Layout, Option<Fallback>)> {
        let root = Path::new(DEFAULT_ROOT);
        let mode = Mode::detect_at(root)?;
        let cg = Path::new("/proc/self/cgroup");
        let membership = parse_proc_cgroup(&read_proc(cg)?)?;
        let mut layout = Layout {
            mode,
            root: root.to_path_buf(),
            mounts: Vec::new(),
            membership,
            swap: swap_in_use(),
        };
        let fallback = layout.add_mounts(wanted)?;
        Ok((layout, fallback))
    }

    /// Adds the mounts of the hierarchies of `wanted` that this layout lacks, found as
    /// [`Layout::detect`] finds them. Returns why /proc/self/mountinfo was read, if it was
    /// (then every hierarchy nsx uses is in).
    pub fn extend_to(&mut self, wanted: &[&str]) -> Result<Option<Fallback>> {
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !self.covers(&[w]))
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        self.add_mounts(&missing)
    }

    /// Whether the mounts of the hierarchies of `wanted` are in (a controller with no
    /// hierarchy in /proc/self/cgroup has none to be in).
    pub fn covers(&self, wanted: &[&str]) -> bool {
        match self.mode {
            Mode::V2 => wanted.is_empty() || self.mounts.iter().any(|m| m.v2),
            Mode::V1 | Mode::Hybrid => wanted.iter().all(|w| {
                standard::v1_line(&self.membership, w).is_none()
                    || self
                        .mounts
                        .iter()
                        .any(|m| !m.v2 && m.controllers.iter().any(|c| c == w))
            }),
        }
    }

    /// The standard places of `wanted`, or else mountinfo.
    fn add_mounts(&mut self, wanted: &[&str]) -> Result<Option<Fallback>> {
        let found = standard::standard_mounts(
            self.mode,
            &self.root,
            &self.membership,
            wanted,
            &mut standard::mount_at,
        );
        match found {
            Ok(found) => {
                for m in found {
                    if !self.mounts.contains(&m) {
                        self.mounts.push(m);
                    }
                }
                Ok(None)
            }
            Err(why) => {
                let mi = Path::new("/proc/self/mountinfo");
                let all = parse_mountinfo(&read_proc(mi)?)?;
                self.mounts = used_mounts(self.mode, all);
                Ok(Some(why))
            }
        }
    }

    /// Like [`Layout::detect`] with every cgroup mount of /proc/self/mountinfo, for
    /// finding the directory of any process's cgroup in any hierarchy.
    pub fn detect_all() -> Result<Layout> {
        let root = Path::new(DEFAULT_ROOT);
        let mode = Mode::detect_at(root)?;
        let mi = Path::new("/proc/self/mountinfo");
        let cg = Path::new("/proc/self/cgroup");
        let mut layout = Layout::from_parts(mode, root, &read_proc(mi)?, &read_proc(cg)?)?;
        layout.swap = swap_in_use();
        Ok(layout)
    }

    /// This process's layout, detected once and extended as callers need more
    /// hierarchies (`wanted` as for [`Layout::detect_for`]): later calls return the same
    /// answer, with the mounts asked for so far.
    ///
    /// A lesson needs the layout several times (to sweep leftovers, to create its cgroup),
    /// and detection costs a good part of creating, joining and removing a cgroup
    /// (docs/performance.md); each hierarchy's mount is looked up only once it is needed.
    /// Neither the mounts nor nsx's own cgroup change while nsx runs. A process that moves
    /// itself to another cgroup (a probe) must call [`Layout::detect`] instead: a forked
    /// child inherits this cache.
    pub fn current_for(wanted: &[&str]) -> Result<Arc<Layout>> {
        /// The layout, and whether mountinfo was read (then nothing more can be found).
        static CURRENT: Mutex<Option<(Arc<Layout>, bool)>> = Mutex::new(None);
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        let (layout, complete) = match current.take() {
            None => {
                let (layout, fallback) = Layout::detect_for_traced(wanted)?;
                (Arc::new(layout), fallback.is_some())
            }
            Some((layout, complete)) if complete || layout.covers(wanted) => (layout, complete),
            Some((mut layout, _)) => {
                // Copied only if a caller still holds the previous answer.
                let fallback = Arc::make_mut(&mut layout).extend_to(wanted);
                // On an error the cache keeps what it had (extend_to adds nothing then).
                let fallback = match fallback {
                    Ok(f) => f,
                    Err(e) => {
                        *current = Some((layout, false));
                        return Err(e);
                    }
                };
                (layout, fallback.is_some())
            }
        };
        *current = Some((Arc::clone(&layout), complete));
        Ok(layout)
    }

    /// A layout from a known mode and the text of mountinfo and `/proc/<pid>/cgroup`.
    pub fn from_parts(
        mode: Mode,
        root: &Path,
        mountinfo: &str,
        proc_cgroup: &str,
    ) -> Result<Layout> {
        Ok(Layout {
            mode,
            root: root.to_path_buf(),
            mounts: parse_mountinfo(mountinfo)?,
            membership: parse_proc_cgroup(proc_cgroup)?,
            swap: false,
        })
    }

    /// A layout whose mode is decided from the mount table ([`Mode::from_mounts`]).
    pub fn from_mount_table(root: &Path, mountinfo: &str, proc_cgroup: &str) -> Result<Layout> {
        let mounts = parse_mountinfo(mountinfo)?;
        let mode = Mode::from_mounts(root, &mounts)?;
        Ok(Layout {
            mode,
            root: root.to_path_buf(),
            mounts,
            membership: parse_proc_cgroup(proc_cgroup)?,
            swap: false,
        })
    }

    /// The v1 hierarchy that `controller` (e.g. "cpuacct") is bound to: its mount, and our
    /// own cgroup directory in it. `None` when no v1 hierarchy has that controller.
    pub fn v1_own_dir(&self, controller: &str) -> Result<Option<PathBuf>> {
        let member = self
            .membership
            .iter()
            .find(|m| m.hierarchy_id != 0 && m.controllers.iter().any(|c| c == controller));
        let candidates: Vec<&CgroupMount> = self
            .mounts
            .iter()
            .filter(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
            .collect();
        let (Some(member), false) = (member, candidates.is_empty()) else {
            return Ok(None);
        };
        own_dir(&candidates, &self.root, &member.path, controller).map(Some)
    }

    /// The directory, on this machine, of the cgroup that a line of any process's
    /// `/proc/<pid>/cgroup` names (read in our cgroup namespace, as the mounts are): the
    /// mount of that hierarchy plus the path below the mount's root. `None` when that
    /// hierarchy is not mounted here or the cgroup lies outside the mounted part.
    pub fn dir_of(&self, m: &Membership) -> Option<PathBuf> {
        let mut wanted = m.controllers.clone();
        wanted.sort();
        let candidates: Vec<&CgroupMount> = self
            .mounts
            .iter()
            .filter(|c| {
                if m.hierarchy_id == 0 {
                    return c.v2;
                }
                let mut have = c.controllers.clone();
                have.sort();
                !c.v2 && !wanted.is_empty() && have == wanted
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        own_dir(&candidates, &self.root, &m.path, "").ok()
    }

    /// Our own cgroup directory on the unified (v2) hierarchy, and that hierarchy's mount
    /// point.
    pub fn v2_own_dir(&self) -> Result<(PathBuf, PathBuf)> {
        let member = self
            .membership
            .iter()
            .find(|m| m.hierarchy_id == 0)
            .ok_or_else(|| {
                Error::unsupported(
                "this process has no cgroup v2 membership (no \"0::\" line in /proc/self/cgroup)",
                "use a kernel with cgroup v2 (Linux 4.5 or later) and mount it at /sys/fs/cgroup",
            )
            })?;
        let candidates: Vec<&CgroupMount> = self.mounts.iter().filter(|m| m.v2).collect();
        if candidates.is_empty() {
            return Err(no_cgroupfs(
                &self.root,
                "no cgroup2 mount in /proc/self/mountinfo",
            ));
        }
        let dir = own_dir(&candidates, &self.root, &member.path, "cgroup2")?;
        let mount = candidates
            .iter()
            .find(|m| dir.starts_with(&m.mount_point))
            .map(|m| m.mount_point.clone())
            .unwrap_or_else(|| self.root.clone());
        Ok((dir, mount))
    }
}

/// The mounts of the hierarchies nsx creates lesson cgroups in: cgroup2 on v2, on v1 and
/// hybrid the v1 hierarchies of [`USED_V1`].
pub fn used_mounts(mode: Mode, mounts: Vec<CgroupMount>) -> Vec<CgroupMount> {
    mounts
        .into_iter()
        .filter(|m| match mode {
            Mode::V2 => m.v2,
            Mode::V1 | Mode::Hybrid => {
                !m.v2 && m.controllers.iter().any(|c| USED_V1.contains(&c.as_str()))
            }
        })
        .collect()
}

/// Whether the machine has swap in use: sysinfo(2)'s total swap is the size of the
/// active swap areas, the ones /proc/swaps lists, without reading (and the kernel
/// printing) a file.
fn swap_in_use() -> bool {
    let mut info = std::mem::MaybeUninit::<libc::sysinfo>::zeroed();
    // SAFETY: info is a writable sysinfo buffer; sysinfo(2) fills it or fails.
    if unsafe { libc::sysinfo(info.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: sysinfo returned 0.
    unsafe { info.assume_init() }.totalswap > 0
}

/// Reads a small /proc file with one open(2), read(2)s until the end (a procfs file of
/// a few lines comes in one, then the empty read at the end) and close(2); without the
/// extra statx(2) and lseek(2) that `std::fs::read_to_string` spends on sizing a buffer
/// procfs cannot size.
pub(crate) fn read_proc(path: &Path) -> Result<String> {
    use std::io::Read;
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(len);
        String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    };
    read().ctx(op::READ, path.display())
}

/// `mount point + (own path relative to the mount's root)`, preferring mounts under the
/// cgroup root (a hierarchy may also be bind-mounted elsewhere).
fn own_dir(candidates: &[&CgroupMount], root: &Path, own: &Path, what: &str) -> Result<PathBuf> {
    let mut sorted: Vec<&&CgroupMount> = candidates.iter().collect();
    sorted.sort_by_key(|m| !m.mount_point.starts_with(root));
    for m in sorted {
        if let Ok(rel) = own.strip_prefix(&m.root) {
            if rel.as_os_str().is_empty() {
                return Ok(m.mount_point.clone());
            }
            return Ok(m.mount_point.join(rel));
        }
    }
    Err(Error::unsupported(
        format!(
            "our {what} cgroup {} is outside every mounted part of that hierarchy (mounted: {})",
            own.display(),
            candidates.iter().map(|m| m.root.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
        "run nsx where its own cgroup is visible, e.g. on the host, or in a container started with its own cgroup namespace (--cgroupns=private)",
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// This development machine: v1 controllers in separate hierarchies (cpu and cpuacct
    /// apart) plus cgroup2 at /sys/fs/cgroup/unified.
    pub const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    pub const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/16b3
2:cpuacct:/
1:cpu:/
0::/
";

    /// A classic v1 machine: cpu and cpuacct co-mounted, systemd's usual options.
    pub const V1_MOUNTINFO: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
";

    pub const V1_CGROUP: &str = "\
5:pids:/user.slice/user-1000.slice/session-2.scope
4:memory:/user.slice/user-1000.slice/session-2.scope
3:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
";

    pub const V2_MOUNTINFO: &str = "\
24 29 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    pub const V2_CGROUP: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";

    #[test]
    fn parses_v1_mounts_with_comounted_controllers() {
        let m = parse_mountinfo(V1_MOUNTINFO).unwrap();
        assert_eq!(m.len(), 4, "the tmpfs is not a cgroup mount: {m:?}");
        assert_eq!(m[0].controllers, vec!["name=systemd"]);
        assert_eq!(m[1].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(m.iter().all(|m| !m.v2 && m.root == Path::new("/")));
    }

    #[test]
    fn parses_cgroup2_without_controllers() {
        let m = parse_mountinfo(V2_MOUNTINFO).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m[0].v2);
        assert!(
            m[0].controllers.is_empty(),
            "nsdelegate is an option, not a controller"
        );
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let line = "1 2 0:3 /a\\040b /mnt/c\\134d rw - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(line).unwrap();
        assert_eq!(m[0].root, Path::new("/a b"));
        assert_eq!(m[0].mount_point, Path::new("/mnt/c\\d"));
        // Not a byte: left as written (this overflowed a u8 before).
        let m = parse_mountinfo("1 2 0:3 /x\\777 /y rw - cgroup2 cgroup2 rw\n").unwrap();
        assert_eq!(m[0].root, Path::new("/x\\777"));
    }

    #[test]
    fn a_malformed_mountinfo_line_is_an_error_naming_the_file() {
        let e = parse_mountinfo("garbage\n").unwrap_err().to_string();
        assert!(
            e.contains("/proc/self/mountinfo") && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn mode_from_mounts_matches_the_statfs_rule() {
        let root = Path::new("/sys/fs/cgroup");
        let m = |t| Mode::from_mounts(root, &parse_mountinfo(t).unwrap()).unwrap();
        assert_eq!(m(HYBRID_MOUNTINFO), Mode::Hybrid);
        assert_eq!(m(V1_MOUNTINFO), Mode::V1);
        assert_eq!(m(V2_MOUNTINFO), Mode::V2);
        let none = Mode::from_mounts(root, &[]).unwrap_err();
        assert!(matches!(none, Error::Unsupported { .. }), "{none}");
    }

    #[test]
    fn statfs_detection_takes_the_root_as_a_parameter() {
        let e = Mode::detect_at(Path::new("/nonexistent/cgroup")).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        // A temp dir with a plain "unified" directory: never v2 or hybrid. (A tmpfs root
        // with v1 mounts looks like v1 to statfs, which is what it would then be.)
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("unified")).unwrap();
        match Mode::detect_at(tmp.path()) {
            Ok(m) => assert_eq!(m, Mode::V1),
            Err(e) => assert!(matches!(e, Error::Unsupported { .. }), "{e}"),
        }
    }

    #[test]
    fn statfs_and_mount_table_agree_on_this_machine() {
        let root = Path::new(DEFAULT_ROOT);
        let Ok(by_statfs) = Mode::detect_at(root) else {
            eprintln!("skipping: no cgroup file system at {DEFAULT_ROOT}");
            return;
        };
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let by_mounts = Mode::from_mounts(root, &parse_mountinfo(&mi).unwrap()).unwrap();
        assert_eq!(by_statfs, by_mounts);
        let layout = Layout::detect().unwrap();
        assert_eq!(layout.mode, by_statfs);
    }

    #[test]
    fn current_is_detected_once_and_extended_as_needed() {
        let Ok(first) = Layout::current_for(&[]) else {
            eprintln!("skipping: no cgroup file system here");
            return;
        };
        // Other tests of this binary may have extended it already: only growth is seen.
        let again = Layout::current_for(&[]).unwrap();
        assert_eq!(first.mode, again.mode);
        assert_eq!(first.membership, again.membership);
        let memory = Layout::current_for(&["memory"]).unwrap();
        assert!(memory.covers(&["memory"]));
        let same = Layout::current_for(&["memory"]).unwrap();
        assert!(Arc::ptr_eq(&memory, &same), "looked up twice");
        let all = Layout::current_for(&USED_V1).unwrap();
        let fresh = Layout::detect().unwrap();
        assert_eq!(all.mode, fresh.mode);
        let mut a = all.mounts.clone();
        let mut b = fresh.mounts.clone();
        a.sort_by(|x, y| x.mount_point.cmp(&y.mount_point));
        b.sort_by(|x, y| x.mount_point.cmp(&y.mount_point));
        assert_eq!(a, b);
    }

    #[test]
    fn a_layout_is_extended_hierarchy_by_hierarchy() {
        let Ok(mut l) = Layout::detect_for(&[]) else {
            eprintln!("skipping: no cgroup file system here");
            return;
        };
        if l.mode == Mode::V2 {
            assert!(l.mounts.is_empty());
            l.extend_to(&["memory"]).unwrap();
            assert!(l.covers(&USED_V1));
            return;
        }
        assert!(l.mounts.is_empty() && l.covers(&[]));
        assert!(!l.covers(&["memory"]) || standard::v1_line(&l.membership, "memory").is_none());
        l.extend_to(&["memory"]).unwrap();
        assert!(l.covers(&["memory"]));
        let full = Layout::detect().unwrap();
        assert_eq!(
            l.v1_own_dir("memory").unwrap(),
            full.v1_own_dir("memory").unwrap()
        );
        l.extend_to(&USED_V1).unwrap();
        for c in USED_V1 {
            assert_eq!(l.v1_own_dir(c).ok(), full.v1_own_dir(c).ok(), "{c}");
        }
    }

    #[test]
    fn mode_serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Mode::Hybrid).unwrap(), "\"hybrid\"");
        assert_eq!(serde_json::to_string(&Mode::V1).unwrap(), "\"v1\"");
        assert_eq!(serde_json::to_string(&Mode::V2).unwrap(), "\"v2\"");
    }

    #[test]
    fn parses_proc_self_cgroup() {
        let m = parse_proc_cgroup(V1_CGROUP).unwrap();
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[2].path, Path::new("/user.slice"));
        let v2 = parse_proc_cgroup("0::/a/b (deleted)\n").unwrap();
        assert_eq!(v2[0].hierarchy_id, 0);
        assert!(v2[0].controllers.is_empty());
        assert_eq!(v2[0].path, Path::new("/a/b"));
        let e = parse_proc_cgroup("x:y\n").unwrap_err().to_string();
        assert!(e.contains("/proc/self/cgroup"), "{e}");
    }

    #[test]
    fn v1_own_dirs_follow_our_path_in_each_hierarchy() {
        let l =
            Layout::from_mount_table(Path::new("/sys/fs/cgroup"), HYBRID_MOUNTINFO, HYBRID_CGROUP)
                .unwrap();
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(
            l.v1_own_dir("memory").unwrap().unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/16b3")
        );
        assert_eq!(
            l.v1_own_dir("cpu").unwrap().unwrap(),
            Path::new("/sys/fs/cgroup/cpu")
        );
        assert_eq!(
            l.v1_own_dir("cpuacct").unwrap().unwrap(),
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(l.v1_own_dir("blkio").unwrap(), None);

        let l =
            Layout::from_mount_table(Path::new("/sys/fs/cgroup"), V1_MOUNTINFO, V1_CGROUP).unwrap();
        let cpu = l.v1_own_dir("cpu").unwrap().unwrap();
        assert_eq!(cpu, Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice"));
        assert_eq!(
            l.v1_own_dir("cpuacct").unwrap().unwrap(),
            cpu,
            "co-mounted: one directory"
        );
    }

    #[test]
    fn a_mount_showing_a_sub_cgroup_is_translated() {
        // Inside a container: the hierarchy's /docker/abc is mounted at /sys/fs/cgroup/memory.
        let mi = "1 0 0:1 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let l = Layout::from_parts(
            Mode::V1,
            Path::new("/sys/fs/cgroup"),
            mi,
            "4:memory:/docker/abc/x\n",
        )
        .unwrap();
        assert_eq!(
            l.v1_own_dir("memory").unwrap().unwrap(),
            Path::new("/sys/fs/cgroup/memory/x")
        );
        let outside = Layout::from_parts(
            Mode::V1,
            Path::new("/sys/fs/cgroup"),
            mi,
            "4:memory:/elsewhere\n",
        )
        .unwrap();
        let e = outside.v1_own_dir("memory").unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }

    #[test]
    fn v2_own_dir_is_under_the_cgroup2_mount() {
        let l =
            Layout::from_mount_table(Path::new("/sys/fs/cgroup"), V2_MOUNTINFO, V2_CGROUP).unwrap();
        let (own, mount) = l.v2_own_dir().unwrap();
        assert_eq!(
            own,
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(mount, Path::new("/sys/fs/cgroup"));
    }
}
