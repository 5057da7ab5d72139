//! `nsx inspect PID` and `nsx ps`: the lessons' observer pointed at any process of the
//! host, a container started by docker, podman, containerd or runc included.
//!
//! A container is a process whose namespaces differ from the host's: `inspect` reads one
//! process through the same `observe::read_proc` the lessons use and says which of its
//! namespaces differ from nsx's own (the host's view is nsx's /proc/self: /proc/1/ns is
//! not readable everywhere, even as root), its cgroups and their limits, its user
//! namespace id maps, capabilities, seccomp mode and its PID in each PID namespace. `ps`
//! groups every process by its set of namespaces, so each container shows up as a group.

pub mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use crate::caps::CapSet;
use crate::cgroup::layout::parse_proc_cgroup_of;
use crate::cgroup::limits::{read_limits, Limit};
use crate::cgroup::{Layout, Version};
use crate::doctor::seccomp_mode;
use crate::error::{Error, Result};
use crate::observe::{self, Proc, NS_TYPES};

/// One namespace of the inspected process next to nsx's own of the same type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsRow {
    #[serde(rename = "type")]
    pub ty: String,
    /// The inode number (`ls -l /proc/<pid>/ns`, `lsns`).
    pub inode: u64,
    /// nsx's own namespace of this type.
    pub nsx: Option<u64>,
    pub differs: bool,
}

/// One line of `/proc/<pid>/cgroup` and the limits set on that cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupRow {
    /// 0 for the unified (v2) hierarchy.
    pub hierarchy_id: u32,
    /// v1: the hierarchy's controllers; empty for v2.
    pub controllers: Vec<String>,
    /// The path as the process's cgroup file shows it to nsx (relative to nsx's cgroup
    /// namespace).
    pub path: String,
    /// The directory on this machine, when that hierarchy is mounted here.
    pub dir: Option<PathBuf>,
    pub limits: Vec<Limit>,
}

/// One line of uid_map or gid_map (user_namespaces(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdMap {
    /// The first id inside the namespace.
    pub inside: u64,
    /// The id it is outside (in the namespace of the process reading the map).
    pub outside: u64,
    pub count: u64,
}

/// Parses a uid_map/gid_map line, `ID-inside-ns ID-outside-ns length`; errors name `file`.
pub fn parse_id_map(line: &str, file: &Path) -> Result<IdMap> {
    let bad = || {
        Error::Other(format!(
            "parse {}: {line:?}: expected three numbers, \"inside outside count\"",
            file.display()
        ))
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let [a, b, c] = f[..] else {
        return Err(bad());
    };
    Ok(IdMap {
        inside: a.parse().map_err(|_| bad())?,
        outside: b.parse().map_err(|_| bad())?,
        count: c.parse().map_err(|_| bad())?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub effective: CapSet,
    pub permitted: CapSet,
    pub bounding: Option<CapSet>,
    pub ambient: Option<CapSet>,
}

/// What `nsx inspect PID` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub pid: i32,
    /// The command name (status `Name:`).
    pub name: String,
    pub ppid: i32,
    /// Its PID in each PID namespace, from nsx's outward view inwards (status `NSpid:`):
    /// more than one number means it runs in a nested PID namespace.
    pub nspid: Vec<i32>,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// nsx's own PID, whose namespaces are the comparison.
    pub nsx_pid: i32,
    pub namespaces: Vec<NsRow>,
    /// The namespace types that differ from nsx's.
    pub differs: Vec<String>,
    pub cgroups: Vec<CgroupRow>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub capabilities: Capabilities,
    /// "disabled", "strict" or "filter" (seccomp(2)); `None` without CONFIG_SECCOMP.
    pub seccomp: Option<String>,
    /// How many seccomp filters it has (status `Seccomp_filters`); `None` on kernels
    /// without the line.
    pub seccomp_filters: Option<u32>,
    pub no_new_privs: Option<bool>,
    /// Docker's masked and read-only paths as its mount table shows them
    /// (`<pid>/mountinfo`); `None` when that file could not be read.
    pub masked_paths: Option<Vec<PathState>>,
}

/// How a path shows in a mount table: the top mount on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// /dev/null bound over it (mount root `.../null`) or a read-only tmpfs on it: what
    /// runc's maskPath does.
    Masked,
    /// A mount of its own, read-only (runc's readonlyPath, or a read-only sysfs).
    ReadOnly,
    /// No mount of its own, or a writable one.
    Open,
}

/// One of Docker's masked or read-only paths (and /sys) in a process's mount table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathState {
    pub path: String,
    pub shown: Shown,
}

/// Docker's masked paths, its read-only paths and /sys as the mount table `mountinfo`
/// (proc(5): the 4th field is the mount's root, the 5th its mount point, the 6th its
/// per-mount options, and the file system type follows " - ") shows them.
pub fn path_states(mountinfo: &str) -> Vec<PathState> {
    use crate::security::masks::{MASKED, READONLY};
    MASKED
        .iter()
        .chain(READONLY.iter())
        .chain(std::iter::once(&"/sys"))
        .map(|path| {
            let top = mountinfo
                .lines()
                .rfind(|l| l.split_whitespace().nth(4) == Some(*path));
            let shown = match top {
                None => Shown::Open,
                Some(line) => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let fstype = line
                        .split_once(" - ")
                        .and_then(|(_, r)| r.split_whitespace().next())
                        .unwrap_or("");
                    let ro = f.get(5).is_some_and(|o| o.split(',').any(|o| o == "ro"));
                    let root = f.get(3).copied().unwrap_or("");
                    if root.ends_with("/null") || (fstype == "tmpfs" && ro) {
                        Shown::Masked
                    } else if ro {
                        Shown::ReadOnly
                    } else {
                        Shown::Open
                    }
                }
            };
            PathState {
                path: path.to_string(),
                shown,
            }
        })
        .collect()
}

/// Compares `ns` with nsx's own namespaces.
pub fn ns_rows(ns: &BTreeMap<String, u64>, own: &BTreeMap<String, u64>) -> Vec<NsRow> {
    NS_TYPES
        .iter()
        .filter_map(|ty| {
            let inode = *ns.get(*ty)?;
            let nsx = own.get(*ty).copied();
            Some(NsRow {
                ty: ty.to_string(),
                inode,
                nsx,
                differs: nsx != Some(inode),
            })
        })
        .collect()
}

/// Reads the process `pid` through the procfs at `proc` and compares it with the reader
/// itself (`<proc>/self`). `layout` (this machine's cgroup mounts) turns its cgroup
/// paths into directories whose limits are read; without it no limits are shown.
pub fn inspect(proc: &Path, pid: i32, layout: Option<&Layout>) -> Result<Inspection> {
    let dir = proc.join(pid.to_string());
    let gone = || !dir.exists();
    if gone() {
        return Err(no_such_process(pid, &dir));
    }
    let read = || -> Result<Inspection> {
        let p = observe::read_proc(&dir)?;
        let me = observe::read_proc(&proc.join("self"))?;
        build(&dir, &p, &me, layout)
    };
    let result = read();
    // The process may exit while it is read: whatever happened, a missing /proc/<pid>
    // afterwards is the reason. A zombie keeps its /proc directory and status until its
    // parent reaps it, but its namespace links are gone (readlink: ENOENT).
    if gone() {
        return Err(exited(pid));
    }
    if let Some(parent) = zombie_parent(&dir) {
        return Err(zombie(pid, parent));
    }
    result.map_err(|e| explain_error(pid, e))
}

fn zombie(pid: i32, parent: i32) -> Error {
    Error::Other(format!(
        "PID {pid} has exited: it is a zombie until its parent, PID {parent}, reaps it, and its namespaces are gone"
    ))
}

fn build(dir: &Path, p: &Proc, me: &Proc, layout: Option<&Layout>) -> Result<Inspection> {
    let namespaces = ns_rows(&p.ns, &me.ns);
    let differs = namespaces
        .iter()
        .filter(|r| r.differs)
        .map(|r| r.ty.clone())
        .collect();
    let cgroup_file = dir.join("cgroup");
    let memberships = parse_proc_cgroup_of(&p.cgroup.join("\n"), &cgroup_file)?;
    let mut cgroups = Vec::new();
    for m in memberships {
        let cg_dir = layout.and_then(|l| l.dir_of(&m));
        let version = if m.hierarchy_id == 0 {
            Version::V2
        } else {
            Version::V1
        };
        let limits = match &cg_dir {
            Some(d) if d.is_dir() => read_limits(d, version, &m.controllers)?,
            _ => Vec::new(),
        };
        cgroups.push(CgroupRow {
            hierarchy_id: m.hierarchy_id,
            controllers: m.controllers,
            path: m.path.display().to_string(),
            dir: cg_dir,
            limits,
        });
    }
    let maps = |lines: &[String], file: &str| -> Result<Vec<IdMap>> {
        lines
            .iter()
            .map(|l| parse_id_map(l, &dir.join(file)))
            .collect()
    };
    let x = &p.extra;
    Ok(Inspection {
        pid: p.pid,
        name: x.name.clone(),
        ppid: p.ppid,
        nspid: p.nspid.clone(),
        uid: p.uid,
        euid: x.euid,
        gid: p.gid,
        nsx_pid: me.pid,
        namespaces,
        differs,
        cgroups,
        uid_map: maps(p.uid_map(), "uid_map")?,
        gid_map: maps(p.gid_map(), "gid_map")?,
        capabilities: Capabilities {
            effective: CapSet::new(x.cap_eff),
            permitted: CapSet::new(x.cap_prm),
            bounding: x.cap_bnd.map(CapSet::new),
            ambient: x.cap_amb.map(CapSet::new),
        },
        seccomp: x.seccomp.map(seccomp_mode),
        seccomp_filters: x.seccomp_filters,
        no_new_privs: x.no_new_privs,
        masked_paths: std::fs::read_to_string(dir.join("mountinfo"))
            .ok()
            .map(|m| path_states(&m)),
    })
}

/// The parent's PID when `<dir>/status` says `State: Z (zombie)`.
fn zombie_parent(dir: &Path) -> Option<i32> {
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
    };
    field("State:")?.starts_with('Z').then_some(())?;
    field("PPid:")?.parse().ok()
}

fn no_such_process(pid: i32, dir: &Path) -> Error {
    Error::Other(format!(
        "no process with PID {pid}: {} does not exist (it never existed or has exited; nsx ps lists the running ones)",
        dir.display()
    ))
}

fn exited(pid: i32) -> Error {
    Error::Other(format!(
        "PID {pid} exited while nsx was reading it: there is nothing left to inspect"
    ))
}

/// One line for an error: `readlink /proc/1/ns/cgroup: EACCES (Permission denied)` (a
/// [`crate::error::SysError`]'s first line, without the cause and fix that follow it).
fn short(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// EACCES/EPERM on another process's files: the ptrace access check (proc(5)) refused.
fn explain_error(pid: i32, e: Error) -> Error {
    match e.errno() {
        Some(Errno::EACCES | Errno::EPERM) => {
            let e = short(&e);
            let root = nix::unistd::geteuid().is_root();
            Error::unsupported(
                format!(
                    "the kernel does not let nsx read PID {pid}: {e}; reading another process's namespace links needs the ptrace read-access check to pass (proc(5): same user and dumpable, or CAP_SYS_PTRACE)"
                ),
                if root {
                    format!("nsx runs as root and is still refused: PID {pid} is beyond this root's reach (a process of an outer user namespace, or one the kernel or a security module protects); inspect it from where it runs")
                } else {
                    format!("run it as root: sudo nsx inspect {pid}")
                },
            )
        }
        Some(Errno::ESRCH) => exited(pid),
        _ => e,
    }
}

/// One process in a `nsx ps` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsProcess {
    pub pid: i32,
    pub name: String,
    /// Its PID in each PID namespace (NSpid).
    pub nspid: Vec<i32>,
}

/// Processes that share one set of namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsGroup {
    /// The inode of each namespace type.
    pub ns: BTreeMap<String, u64>,
    /// The types that differ from nsx's own.
    pub differs: Vec<String>,
    pub processes: Vec<PsProcess>,
    /// The distinct cgroup paths of its processes (unified line, else the first line).
    pub cgroups: Vec<String>,
}

/// A process nsx could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsUnreadable {
    pub pid: i32,
    pub name: String,
    pub error: String,
}

/// What `nsx ps` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ps {
    pub nsx_pid: i32,
    /// nsx's own namespaces.
    pub nsx: BTreeMap<String, u64>,
    /// nsx's own group first (same namespaces as nsx), then by lowest PID.
    pub groups: Vec<PsGroup>,
    pub unreadable: Vec<PsUnreadable>,
    /// nsx ran as root (so more processes cannot be made readable).
    pub as_root: bool,
}

impl Ps {
    pub fn process_count(&self) -> usize {
        self.groups.iter().map(|g| g.processes.len()).sum()
    }
}

/// Every process of the procfs at `proc`, grouped by namespace set. Processes that exit
/// while being read are left out; those nsx may not read are listed apart.
pub fn ps(proc: &Path) -> Result<Ps> {
    let me = observe::read_proc(&proc.join("self"))?;
    let mut pids: Vec<i32> = std::fs::read_dir(proc)
        .map_err(|e| crate::error::io("readdir", proc, e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut groups: BTreeMap<BTreeMap<String, u64>, PsGroup> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for pid in pids {
        let dir = proc.join(pid.to_string());
        match observe::read_proc(&dir) {
            // A zombie's namespace links are gone (readlink: ENOENT, so no types).
            Ok(p) if p.ns.is_empty() && zombie_parent(&dir).is_some() => {
                unreadable.push(PsUnreadable {
                    pid,
                    error: format!(
                        "a zombie (it exited; PID {} has not reaped it yet): no namespaces left",
                        p.ppid
                    ),
                    name: p.extra.name,
                });
            }
            Ok(p) => {
                let cgroup = p
                    .cgroup
                    .iter()
                    .find(|l| l.starts_with("0::"))
                    .or(p.cgroup.first())
                    .and_then(|l| l.splitn(3, ':').nth(2))
                    .unwrap_or("")
                    .to_string();
                let g = groups.entry(p.ns.clone()).or_insert_with(|| PsGroup {
                    differs: ns_rows(&p.ns, &me.ns)
                        .into_iter()
                        .filter(|r| r.differs)
                        .map(|r| r.ty)
                        .collect(),
                    ns: p.ns.clone(),
                    processes: Vec::new(),
                    cgroups: Vec::new(),
                });
                g.processes.push(PsProcess {
                    pid: p.pid,
                    name: p.extra.name,
                    nspid: p.nspid,
                });
                if !g.cgroups.contains(&cgroup) {
                    g.cgroups.push(cgroup);
                }
            }
            Err(_) if !dir.exists() => {}
            Err(e) => unreadable.push(PsUnreadable {
                pid,
                name: std::fs::read_to_string(dir.join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default(),
                error: short(&e),
            }),
        }
    }
    let mut groups: Vec<PsGroup> = groups.into_values().collect();
    groups.sort_by_key(|g| (!g.differs.is_empty(), g.processes[0].pid));
    Ok(Ps {
        nsx_pid: me.pid,
        nsx: me.ns,
        groups,
        unreadable,
        as_root: nix::unistd::geteuid().is_root(),
    })
}

#[cfg(test)]
mod tests;
