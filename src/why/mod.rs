//! `nsx why PID OPERATION [PATH]`: which layer said no.
//!
//! An operation failed with EPERM or EACCES in a process. Several layers may refuse a
//! system call, in this order: a seccomp filter (before the kernel does anything,
//! seccomp(2)), then the call itself, which checks capabilities (capabilities(7), counted
//! in the user namespace that owns the object, user_namespaces(7)), file permissions
//! (path_resolution(7): search permission on every directory, then the mode bits, which
//! CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH override) and a security module (AppArmor,
//! SELinux). no_new_privs refuses nothing by itself: it keeps execve(2) from granting
//! privileges. nsx reads what the process holds ([`gather`]) and says, layer by layer,
//! whether it refuses the operation now, could have, or cannot have ([`analyse`], a pure
//! function over what was read), with the fix for each.

pub mod render;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::caps;
use crate::error::{Error, Result};
use crate::observe::{self, Ns, Parts};
pub use table::{find, Access, Op, Scope, OPS};

/// What nsx read of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub name: String,
    /// Effective and file-system uid and gid, and the supplementary groups.
    pub euid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub cap_eff: u64,
    pub cap_bnd: Option<u64>,
    pub no_new_privs: Option<bool>,
    /// 0 disabled, 1 strict, 2 filter.
    pub seccomp: Option<u32>,
    pub seccomp_filters: Option<u32>,
    /// Its user namespace, and nsx's own (the initial one, when nsx runs on the host).
    pub user_ns: Option<u64>,
    pub host_user_ns: Option<u64>,
    /// uid_map lines of its user namespace.
    pub uid_map: Vec<String>,
    /// The user namespace that owns each of its namespaces (ioctl_ns(2) NS_GET_USERNS).
    pub owners: BTreeMap<String, u64>,
    /// `/proc/<pid>/attr/current`, when a security module labels processes.
    pub lsm_label: Option<String>,
}

/// A file the operation named, and the directories above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// The path as the process sees it.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Each directory on the way, outermost first: path, mode, uid, gid.
    pub dirs: Vec<(String, u32, u32, u32)>,
}

/// What one layer did to the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// It refuses the operation as the process stands now.
    Refuses,
    /// It may have refused it: nsx cannot see its rules.
    Could,
    /// It cannot have refused it.
    Cannot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// `seccomp`, `capabilities`, `file`, `lsm`, `no_new_privs`.
    pub id: &'static str,
    pub judgement: Judgement,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What `nsx why` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Why {
    pub process: Process,
    pub operation: String,
    pub file: Option<FileInfo>,
    pub layers: Vec<Layer>,
    /// The layers that refuse it or could have, in the order the kernel asks them.
    pub suspects: Vec<&'static str>,
}

/// Reads what process `pid` holds, through the procfs at `proc`, and the file at `path`
/// (as the process sees it: resolved inside its root, /proc/<pid>/root).
pub fn gather(proc: &Path, pid: i32) -> Result<Process> {
    let dir = proc.join(pid.to_string());
    if !dir.exists() {
        return Err(Error::Other(format!(
            "no process with PID {pid}: {} does not exist",
            dir.display()
        )));
    }
    let parts = Parts::SECURITY.with(Parts::ID_MAPS).with(Ns::User.part());
    let p = observe::read_proc_with(&dir, parts)?;
    let me = observe::read_proc_with(&proc.join("self"), Ns::User.part())?;
    let sec = p.security.clone().unwrap_or_default();
    let x = &p.extra;
    let mut owners = BTreeMap::new();
    for ns in ["mnt", "uts", "net", "ipc", "pid", "cgroup", "time"] {
        if let Some(owner) = owner_of(&dir.join("ns").join(ns)) {
            owners.insert(ns.to_string(), owner);
        }
    }
    Ok(Process {
        pid,
        name: x.name.clone(),
        euid: x.euid,
        fsuid: x.fsuid,
        fsgid: x.fsgid,
        groups: x.groups.clone(),
        cap_eff: sec.cap_eff,
        cap_bnd: sec.cap_bnd,
        no_new_privs: sec.no_new_privs,
        seccomp: sec.seccomp,
        seccomp_filters: sec.seccomp_filters,
        user_ns: p.ns_of(Ns::User),
        host_user_ns: me.ns_of(Ns::User),
        uid_map: p.uid_map().to_vec(),
        owners,
        lsm_label: lsm_label(&dir),
    })
}

/// ioctl_ns(2) NS_GET_USERNS on a namespace link: the inode of the user namespace that
/// owns it (Linux 4.9).
fn owner_of(link: &Path) -> Option<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const NS_GET_USERNS: libc::c_ulong = 0xb701; // _IO(0xb7, 0x1)
    let ns = std::fs::File::open(link).ok()?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    let owner = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&owner).ok()?;
    Some(st.st_ino)
}

/// `/proc/<pid>/attr/current`: EINVAL when no security module that labels processes is
/// active (proc(5)); AppArmor's "unconfined" and SELinux's unconfined types confine
/// nothing either.
fn lsm_label(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join("attr/current")).ok()?;
    let label = String::from_utf8_lossy(&text)
        .trim_end_matches(['\0', '\n'])
        .to_string();
    (!label.is_empty()).then_some(label)
}

/// The file at `path` as process `pid` sees it, with every directory above it: looked up
/// inside the process's root (openat2 RESOLVE_IN_ROOT), relative paths from its working
/// directory.
pub fn file_of(proc: &Path, pid: i32, path: &Path) -> Result<FileInfo> {
    use crate::rootfs::inroot::{fstat, open_in_root, open_root, AsFdRef};
    let dir = proc.join(pid.to_string());
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::fs::read_link(dir.join("cwd"))
            .map_err(|e| crate::error::io("readlink", &dir.join("cwd"), e))?;
        cwd.join(path)
    };
    let root = open_root(&dir.join("root"))?;
    let rel = crate::rootfs::inroot::clean(&absolute).map_err(Error::Usage)?;
    let stat = |p: &Path| -> Result<(u32, u32, u32)> {
        let fd = open_in_root(root.as_fd_ref(), p, libc::O_PATH, 0)
            .map_err(|e| crate::error::sys("openat2 (RESOLVE_IN_ROOT)", absolute.display(), e))?;
        let st =
            fstat(fd.as_fd_ref()).map_err(|e| crate::error::sys("fstat", absolute.display(), e))?;
        Ok((st.st_mode, st.st_uid, st.st_gid))
    };
    let mut dirs = Vec::new();
    let mut at = PathBuf::new();
    let (m, u, g) = stat(Path::new("."))?;
    dirs.push(("/".to_string(), m, u, g));
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len().saturating_sub(1)] {
        at.push(c);
        let (m, u, g) = stat(&at)?;
        dirs.push((format!("/{}", at.display()), m, u, g));
    }
    let (mode, uid, gid) = stat(&rel)?;
    Ok(FileInfo {
        path: absolute.display().to_string(),
        mode,
        uid,
        gid,
        dirs,
    })
}

impl Process {
    fn has(&self, cap: u32) -> bool {
        caps::has(self.cap_eff, cap)
    }

    /// In the initial user namespace (nsx's own, when nsx runs on the host).
    fn in_initial(&self) -> bool {
        self.user_ns.is_some() && self.user_ns == self.host_user_ns
    }

    /// Whether a capability held counts for a namespace owned by `owner`: in the
    /// process's own user namespace and those it created (user_namespaces(7)); from the
    /// initial one, everywhere.
    fn reaches(&self, owner: Option<u64>) -> bool {
        self.in_initial() || (owner.is_some() && owner == self.user_ns)
    }

    /// Permission bits granted to this process on a file: owner, group or other class.
    fn class_bits(&self, mode: u32, uid: u32, gid: u32) -> u32 {
        if self.fsuid == uid {
            (mode >> 6) & 7
        } else if self.fsgid == gid || self.groups.contains(&gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    }
}

/// Decides every layer for `op` in `p`, with `file` when the operation names one.
pub fn analyse(p: &Process, op: &Op, file: Option<&FileInfo>) -> Why {
    let mut layers = vec![seccomp_layer(p), caps_layer(p, op)];
    layers.push(file_layer(p, op, file));
    layers.push(lsm_layer(p));
    layers.push(nnp_layer(p, op));
    // A missing capability and a file the mode bits refuse are one finding when the
    // capability is the override: report the file layer, and the capability as its fix.
    let suspects = layers
        .iter()
        .filter(|l| l.judgement != Judgement::Cannot)
        .map(|l| l.id)
        .collect();
    Why {
        process: p.clone(),
        operation: op.name.to_string(),
        file: file.cloned(),
        layers,
        suspects,
    }
}

fn seccomp_layer(p: &Process) -> Layer {
    let (judgement, why, fix) = match p.seccomp {
        Some(0) => (
            Judgement::Cannot,
            "no seccomp filter (Seccomp: 0)".to_string(),
            None,
        ),
        Some(1) => (
            Judgement::Cannot,
            "strict mode (Seccomp: 1) kills a forbidden call with SIGKILL; it never answers EPERM".to_string(),
            None,
        ),
        Some(_) => (
            Judgement::Could,
            format!(
                "{} filter(s) installed (Seccomp: 2): the kernel runs them before the call, and a filter may answer any errno; nsx cannot read a filter's rules from /proc",
                p.seccomp_filters.map_or("some".to_string(), |n| n.to_string())
            ),
            Some("allow the call in the seccomp profile, or run without one (docker run --security-opt seccomp=unconfined); a filter cannot be removed from a running process".to_string()),
        ),
        None => (
            Judgement::Could,
            "not known: this kernel's status has no Seccomp line".to_string(),
            None,
        ),
    };
    Layer {
        id: "seccomp",
        judgement,
        why,
        fix,
    }
}

fn caps_layer(p: &Process, op: &Op) -> Layer {
    let layer = |judgement, why: String, fix: Option<String>| Layer {
        id: "capabilities",
        judgement,
        why,
        fix,
    };
    let Some(cap) = op.cap else {
        return layer(
            Judgement::Cannot,
            format!("{} needs no capability", op.name),
            None,
        );
    };
    let name = caps::name(cap);
    let upper = format!("CAP_{}", name.to_ascii_uppercase());
    // seccomp(2): no_new_privs stands in for CAP_SYS_ADMIN when installing a filter.
    if op.name == "seccomp" && p.no_new_privs == Some(true) {
        return layer(
            Judgement::Cannot,
            "no_new_privs is set, which lets any process install a filter without CAP_SYS_ADMIN"
                .into(),
            None,
        );
    }
    // For a file operation the capability overrides the mode bits: the file layer decides.
    if op.access != Access::None {
        let held = p.has(cap);
        return layer(
            Judgement::Cannot,
            format!(
                "{upper} would override the file's mode bits; the process {} it (see the file layer)",
                if held { "holds" } else { "does not hold" }
            ),
            None,
        );
    }
    let ns_owner = match op.scope {
        Scope::Owner(ns) => p.owners.get(ns).copied(),
        _ => p.user_ns,
    };
    let ns_text = |n: Option<u64>| n.map_or("user:[?]".to_string(), |i| format!("user:[{i}]"));
    if !p.has(cap) {
        return layer(
            Judgement::Refuses,
            format!(
                "{} needs {upper}{}; the process's effective set lacks it (CapEff {})",
                op.name,
                op.scope.text(),
                caps::CapSet::new(p.cap_eff).summary()
            ),
            Some(match p.cap_bnd {
                _ if op.name == "seccomp" => "set no_new_privs first (prctl(PR_SET_NO_NEW_PRIVS, 1)), or install the filter while the process still holds CAP_SYS_ADMIN".to_string(),
                Some(b) if !caps::has(b, cap) => format!(
                    "{upper} is not even in its bounding set: start it with the capability (docker run --cap-add {}), it cannot gain it later",
                    name.to_ascii_uppercase()
                ),
                _ => format!(
                    "give the process {upper} (docker run --cap-add {})",
                    name.to_ascii_uppercase()
                ),
            }),
        );
    }
    let reaches = match op.scope {
        Scope::Init => p.in_initial(),
        Scope::Owner(_) | Scope::Own => p.reaches(ns_owner),
    };
    if !reaches {
        let what = match op.scope {
            Scope::Init => "only in the initial user namespace".to_string(),
            Scope::Owner(ns) => format!(
                "in the user namespace that owns its {ns} namespace, {}",
                ns_text(ns_owner)
            ),
            Scope::Own => "in its own user namespace".to_string(),
        };
        return layer(
            Judgement::Refuses,
            format!(
                "it holds {upper}, but in its user namespace {}, and {} needs it {what}: a capability counts only in the user namespace that holds it and those it created",
                ns_text(p.user_ns),
                op.name
            ),
            Some(match op.scope {
                Scope::Owner(ns) => format!(
                    "give the process a {ns} namespace of its own, created inside its user namespace (unshare(2) after the user namespace, as `unshare --user --map-root-user --{}` does)",
                    table::unshare_flag(ns)
                ),
                _ => "this operation needs root of the host: run it outside the user namespace".to_string(),
            }),
        );
    }
    layer(
        Judgement::Cannot,
        format!(
            "it holds {upper}{}",
            if p.in_initial() {
                " in the initial user namespace".to_string()
            } else {
                format!(" in {}, which owns what it acts on", ns_text(p.user_ns))
            }
        ),
        None,
    )
}

fn file_layer(p: &Process, op: &Op, file: Option<&FileInfo>) -> Layer {
    let layer = |judgement, why: String, fix: Option<String>| Layer {
        id: "file",
        judgement,
        why,
        fix,
    };
    if op.access == Access::None {
        return layer(
            Judgement::Cannot,
            format!("{} acts on no file's permissions", op.name),
            None,
        );
    }
    let Some(f) = file else {
        return layer(
            Judgement::Could,
            format!(
                "{} checks a file's mode bits; give its path to check them: nsx why {} {} PATH",
                op.name, p.pid, op.name
            ),
            None,
        );
    };
    // The file's owner and group must be mapped in the process's user namespace for the
    // override capabilities to count (capabilities(7), inode_owner_or_capable).
    let mapped = p.in_initial() || p.uid_map.iter().any(|l| covers(l, f.uid));
    // CAP_DAC_OVERRIDE (1): any access (execute if some x bit is set); CAP_DAC_READ_SEARCH
    // (2): read files and search directories.
    let override_all = mapped && p.has(1);
    let override_read = mapped && p.has(2);
    for (d, mode, uid, gid) in &f.dirs {
        let bits = p.class_bits(*mode, *uid, *gid);
        if bits & 1 == 0 && !override_all && !override_read {
            return layer(
                Judgement::Refuses,
                format!(
                    "no search (x) permission on the directory {d} (mode {:o}, owner {uid}, group {gid}) for fsuid {}, fsgid {}",
                    mode & 0o7777,
                    p.fsuid,
                    p.fsgid
                ),
                Some(format!("chmod o+x {d}, or run as a user of its owner or group")),
            );
        }
    }
    let want = op.access.bits();
    let bits = p.class_bits(f.mode, f.uid, f.gid);
    let is_dir = f.mode & libc::S_IFMT == libc::S_IFDIR;
    let any_x = f.mode & 0o111 != 0;
    let overridden = override_all && (want & 1 == 0 || is_dir || any_x)
        || override_read && want & 2 == 0 && (want & 1 == 0 || is_dir);
    if bits & want == want || overridden {
        return layer(
            Judgement::Cannot,
            format!(
                "{} (mode {:o}, owner {}, group {}) grants {} to fsuid {}{}",
                f.path,
                f.mode & 0o7777,
                f.uid,
                f.gid,
                op.access.text(),
                p.fsuid,
                if bits & want == want {
                    ""
                } else {
                    " through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH"
                }
            ),
            None,
        );
    }
    layer(
        Judgement::Refuses,
        format!(
            "{} (mode {:o}, owner {}, group {}) does not grant {} to fsuid {}, fsgid {}, and the process holds no CAP_DAC_OVERRIDE that counts for it",
            f.path,
            f.mode & 0o7777,
            f.uid,
            f.gid,
            op.access.text(),
            p.fsuid,
            p.fsgid
        ),
        Some(format!(
            "change the mode or owner (chmod, chown), or run the process as the file's owner ({})",
            f.uid
        )),
    )
}

/// A uid_map line `inside outside count` that maps host uid `uid` into the namespace.
fn covers(line: &str, uid: u32) -> bool {
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    matches!(f[..], [_, outside, count] if (outside..outside + count).contains(&u64::from(uid)))
}

fn lsm_layer(p: &Process) -> Layer {
    match &p.lsm_label {
        None => Layer {
            id: "lsm",
            judgement: Judgement::Cannot,
            why: "no security module labels this process (/proc/<pid>/attr/current: EINVAL): no AppArmor or SELinux policy applies".into(),
            fix: None,
        },
        Some(l) if l == "unconfined" || l.ends_with(":unconfined_t:s0") => Layer {
            id: "lsm",
            judgement: Judgement::Cannot,
            why: format!("its label is {l}: unconfined"),
            fix: None,
        },
        Some(l) => Layer {
            id: "lsm",
            judgement: Judgement::Could,
            why: format!("it runs under the security label {l}, whose policy may deny this"),
            fix: Some("look for the denial in the audit log (journalctl -k | grep -i denied), then change the profile or run with --security-opt apparmor=unconfined".into()),
        },
    }
}

fn nnp_layer(p: &Process, op: &Op) -> Layer {
    let on = p.no_new_privs == Some(true);
    if op.name == "execve" && on {
        return Layer {
            id: "no_new_privs",
            judgement: Judgement::Could,
            why: "no_new_privs is set: a setuid or setgid program, or one with file capabilities, runs without the privileges it would have gained, and may then fail".into(),
            fix: Some("start the process without no_new_privs (no --security-opt no-new-privileges)".into()),
        };
    }
    Layer {
        id: "no_new_privs",
        judgement: Judgement::Cannot,
        why: format!(
            "no_new_privs {} only changes what execve(2) grants; it refuses no call",
            if on {
                "is set, but it"
            } else {
                "is not set; it"
            }
        ),
        fix: None,
    }
}

/// `nsx why PID OPERATION [PATH]`.
pub fn why(proc: &Path, pid: i32, operation: &str, path: Option<&Path>) -> Result<Why> {
    let op = find(operation).ok_or_else(|| {
        Error::Usage(format!(
            "unknown operation {operation:?}; nsx knows: {}",
            OPS.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let p = gather(proc, pid)?;
    let file = match (path, op.access) {
        (Some(path), Access::None) => {
            return Err(Error::Usage(format!(
                "{} acts on no file: drop {}",
                op.name,
                path.display()
            )))
        }
        (Some(path), _) => Some(file_of(proc, pid, path)?),
        (None, _) => None,
    };
    Ok(analyse(&p, op, file.as_ref()))
}

#[cfg(test)]
mod tests;
