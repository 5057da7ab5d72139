//! One `observe` for both sides.
//!
//! The probe calls `observe(/proc, Subject::SelfProcess)` from inside; the host calls
//! `observe(/proc, Subject::Pid(host_pid))` from outside. Both read the same files through
//! a procfs mount; what differs is which procfs and which namespaces the reader is in.
//! That symmetry is the lesson. The procfs root is a parameter so unit tests can point it
//! at captured fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use procfs::process::{MountInfos, MountOptFields, Status};
use procfs::FromRead;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub mod cgroup;
pub mod sysvipc;

pub use sysvipc::SysvIpc;
pub mod net;
pub use net::Link;

/// Namespace types, in the order namespaces(7) lists them.
pub const NS_TYPES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// Which process the observer looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The observer itself: `<proc>/self`.
    SelfProcess,
    /// Another process, by its PID in the observer's procfs: `<proc>/<pid>`.
    Pid(i32),
}

impl Subject {
    fn dir(self, proc: &Path) -> PathBuf {
        match self {
            Subject::SelfProcess => proc.join("self"),
            Subject::Pid(pid) => proc.join(pid.to_string()),
        }
    }
}

/// What one side sees: the probe process through its procfs, and its own world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The procfs directory the probe was read through: "/proc/self" or "/proc/4242".
    pub source: String,
    /// The probe process, as this side's procfs shows it.
    pub probe: Proc,
    /// The namespaces the observer itself is in (`<proc>/self/ns/*` inode numbers).
    pub own_ns: BTreeMap<String, u64>,
    /// The hostname in the observer's UTS namespace (`<proc>/sys/kernel/hostname`).
    pub hostname: String,
    /// Processes this procfs lists (numeric directories of `<proc>`).
    pub processes: Processes,
    /// The observer's own mount table (`<proc>/self/mountinfo`).
    pub mounts: Mounts,
    /// System V IPC objects of the observer's IPC namespace (`<proc>/sysvipc/{shm,msg}`:
    /// these show the reader's namespace, not the subject's). Left out of the JSON when
    /// both tables are empty.
    #[serde(default, skip_serializing_if = "SysvIpc::is_empty")]
    pub sysvipc: SysvIpc,
    /// The interfaces of the observer's own network namespace (`<proc>/self/net/dev`),
    /// with state and address asked of that namespace (see [`net::links`]).
    #[serde(default)]
    pub links: Vec<Link>,
}

/// One process as a procfs shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// `Pid:` in status: the PID in the pid namespace of the procfs that was read.
    pub pid: i32,
    pub ppid: i32,
    /// `NSpid:`: the PID in each pid namespace, from the procfs's namespace down.
    pub nspid: Vec<i32>,
    pub uid: u32,
    pub gid: u32,
    /// Effective capabilities, as the hex mask status shows.
    pub cap_eff: String,
    /// `<dir>/ns/*` inode numbers.
    pub ns: BTreeMap<String, u64>,
    /// `<dir>/cgroup` lines, as shown relative to the reader's cgroup namespace.
    pub cgroup: Vec<String>,
    /// `<dir>/uid_map` and `gid_map` lines, whitespace folded.
    pub uid_map: Vec<String>,
    pub gid_map: Vec<String>,
    /// Interface names in `<dir>/net/dev`: the network namespace of this process,
    /// whoever reads it.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// More of status: what `nsx inspect` and `nsx doctor` show. Host-specific and not
    /// compared by the lessons, so it stays out of the lesson JSON.
    #[serde(skip)]
    pub extra: ProcExtra,
}

/// Fields of `<dir>/status` (proc(5)) beyond those the lessons compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcExtra {
    /// `Name:`: the command name (comm), at most 15 bytes.
    pub name: String,
    pub euid: u32,
    pub egid: u32,
    /// `CapPrm:`, `CapEff:`, `CapBnd:` and `CapAmb:` as bit masks (capabilities(7));
    /// the last two are absent on very old kernels.
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: Option<u64>,
    pub cap_amb: Option<u64>,
    /// `Seccomp:`: 0 disabled, 1 strict, 2 filter (seccomp(2)); absent without
    /// CONFIG_SECCOMP.
    pub seccomp: Option<u32>,
    /// `NoNewPrivs:` (prctl(2) PR_SET_NO_NEW_PRIVS).
    pub no_new_privs: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    pub count: usize,
    /// The lowest PIDs listed (at most [`Processes::SHOWN`]).
    pub first: Vec<i32>,
}

impl Processes {
    pub const SHOWN: usize = 8;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounts {
    pub count: usize,
    /// Propagation of the mount at "/": "private", "shared:N", "master:N", ...
    pub root_propagation: String,
    /// Mounts whose source or mount point names nsx: the ones nsx made.
    pub nsx: Vec<Mount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub propagation: String,
}

impl View {
    pub fn own_ns(&self, ty: &str) -> u64 {
        self.own_ns.get(ty).copied().unwrap_or(0)
    }

    pub fn has_mount(&self, mount_point: &str) -> bool {
        self.mounts.nsx.iter().any(|m| m.mount_point == mount_point)
    }

    /// An interface of the observer's own network namespace, by name.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The names of the observer's own interfaces.
    pub fn link_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }
}

impl Proc {
    pub fn ns(&self, ty: &str) -> u64 {
        self.ns.get(ty).copied().unwrap_or(0)
    }
}

/// Reads what the observer sees of `subject` through the procfs mounted at `proc`.
pub fn observe(proc: &Path, subject: Subject) -> Result<View> {
    let dir = subject.dir(proc);
    let probe = read_proc(&dir)?;
    // Observing itself, the observer's namespaces are the probe's: one read serves both.
    let own_ns = match subject {
        Subject::SelfProcess => probe.ns.clone(),
        Subject::Pid(_) => read_ns(&proc.join("self"))?,
    };
    Ok(View {
        source: dir.display().to_string(),
        probe,
        own_ns,
        hostname: read_trimmed(&proc.join("sys/kernel/hostname"))?,
        processes: read_processes(proc)?,
        mounts: read_mounts(&proc.join("self/mountinfo"))?,
        sysvipc: sysvipc::read_sysvipc(proc)?,
        links: net::links(proc)?,
    })
}

/// Reads one process directory (`/proc/<pid>` or `/proc/self`).
pub fn read_proc(dir: &Path) -> Result<Proc> {
    let status_path = dir.join("status");
    let status =
        Status::from_read(open(&status_path)?).map_err(|e| parse_error(&status_path, e))?;
    Ok(Proc {
        pid: status.pid,
        ppid: status.ppid,
        nspid: status.nspid.unwrap_or_else(|| vec![status.pid]),
        uid: status.ruid,
        gid: status.rgid,
        cap_eff: format!("{:016x}", status.capeff),
        ns: read_ns(dir)?,
        cgroup: read_lines(&dir.join("cgroup"))?,
        uid_map: read_lines(&dir.join("uid_map"))?,
        gid_map: read_lines(&dir.join("gid_map"))?,
        interfaces: net::interfaces(&dir.join("net/dev"))?,
        extra: ProcExtra {
            name: status.name,
            euid: status.euid,
            egid: status.egid,
            cap_prm: status.capprm,
            cap_eff: status.capeff,
            cap_bnd: status.capbnd,
            cap_amb: status.capamb,
            seccomp: status.seccomp,
            no_new_privs: status.nonewprivs.map(|v| v != 0),
        },
    })
}

/// `<dir>/ns/<type>` are symlinks whose text is `type:[inode]`; readlink(2) gives it.
/// Types this kernel lacks are left out.
pub fn read_ns(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let ns_dir = dir.join("ns");
    // One O_PATH descriptor for the directory, then readlinkat(2) relative to it: the
    // path walk through /proc happens once, not once per namespace type.
    let fd = nix::fcntl::open(
        &ns_dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", ns_dir.display())?;
    for ty in NS_TYPES {
        let path = ns_dir.join(ty);
        match nix::fcntl::readlinkat(&fd, ty).map_err(std::io::Error::from) {
            Ok(target) => {
                let text = target.to_string_lossy();
                out.insert(
                    ty.to_string(),
                    parse_ns_link(&text).ok_or_else(|| {
                        Error::Other(format!(
                            "parse {}: unexpected link text {text:?}",
                            path.display()
                        ))
                    })?,
                );
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("readlink", path.display()),
        }
    }
    Ok(out)
}

/// `pid:[4026531836]` -> 4026531836
pub fn parse_ns_link(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once(":[")?;
    rest.strip_suffix(']')?.parse().ok()
}

fn read_processes(proc: &Path) -> Result<Processes> {
    let mut pids: Vec<i32> = fs::read_dir(proc)
        .ctx("readdir", proc.display())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let count = pids.len();
    pids.truncate(Processes::SHOWN);
    Ok(Processes { count, first: pids })
}

fn read_mounts(path: &Path) -> Result<Mounts> {
    let infos = MountInfos::from_read(open(path)?).map_err(|e| parse_error(path, e))?;
    Ok(summarize_mounts(&infos))
}

/// Reduces a mount table to what the lessons compare: size, "/"'s propagation, and the
/// mounts nsx made.
pub fn summarize_mounts(infos: &MountInfos) -> Mounts {
    let mut out = Mounts {
        count: infos.0.len(),
        ..Mounts::default()
    };
    for m in &infos.0 {
        let point = m.mount_point.display().to_string();
        let source = m.mount_source.clone().unwrap_or_default();
        if point == "/" {
            // The last "/" wins: after pivot_root or an overmount it is the visible one.
            out.root_propagation = propagation(&m.opt_fields);
        }
        if source.starts_with("nsx") || point.contains("/nsx-") {
            out.nsx.push(Mount {
                mount_point: point,
                fstype: m.fs_type.clone(),
                source,
                propagation: propagation(&m.opt_fields),
            });
        }
    }
    out
}

/// The optional fields of a mountinfo line as mount(8) would name them.
pub fn propagation(fields: &[MountOptFields]) -> String {
    let tags: Vec<String> = fields
        .iter()
        .map(|f| match f {
            MountOptFields::Shared(n) => format!("shared:{n}"),
            MountOptFields::Master(n) => format!("master:{n}"),
            MountOptFields::PropagateFrom(n) => format!("propagate_from:{n}"),
            MountOptFields::Unbindable => "unbindable".to_string(),
        })
        .collect();
    if tags.is_empty() {
        "private".to_string()
    } else {
        tags.join(" ")
    }
}

fn open(path: &Path) -> Result<fs::File> {
    fs::File::open(path).ctx("open", path.display())
}

fn read_trimmed(path: &Path) -> Result<String> {
    Ok(fs::read_to_string(path)
        .ctx("read", path.display())?
        .trim()
        .to_string())
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()),
        // Kernels without user namespaces have no uid_map: nothing to show.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).ctx("read", path.display()),
    }
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("parse {}: {e}", path.display()))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
