//! masks: what a container may read and write of the kernel's own files, and the LSM
//! that backs them.
//!
//! procfs and sysfs are not namespaced. A probe with a fresh /proc of its own PID
//! namespace still reads the host's kernel timers in /proc/timer_list, its interrupt
//! counts, its keys, and may write the host's sysctls in /proc/sys. Runtimes close that
//! with mounts (runc libcontainer `maskPath` and `readonlyPath`, Docker's lists in
//! moby's `daemon/pkg/oci/defaults.go`): /dev/null bound over masked files, an empty
//! read-only tmpfs over masked directories, read-only bind mounts over /proc/sys and
//! friends, a read-only sysfs, and a /dev holding six devices and a devpts of its own.
//!
//! Two probes, each PID 1 of new PID, mount and network namespaces with a fresh /proc and
//! a fresh sysfs: one as `--privileged` leaves them (sysfs read-write, the host's /dev),
//! one with Docker's masks (the library's [`crate::security::masks`]). A third shows that
//! a mask is a mount, which CAP_SYS_ADMIN undoes and Docker's default capabilities do
//! not. A fourth shows the last layer, the LSMs: which are active (securityfs `lsm`),
//! the label the probe runs under (`/proc/<pid>/attr/current`), and one refusal by an
//! LSM of root holding every capability, with Landlock, which any process may apply to
//! itself (AppArmor and SELinux need a policy loaded by the administrator: where one is
//! active, nsx shows the probe's label).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::caps;
use crate::error::{Context, Result};
use crate::observe::kernel::{Kind, Peek};
use crate::observe::{Attr, KernelFiles, Parts, Security, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TempDir};
use crate::security::masks::{self, Applied, How};
use crate::security::{capset, lsm};

pub const LESSON: Lesson = super::engine::lesson::<Masks>();

pub struct Masks;

/// What the bare and masked probes report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    /// What the probe masked or made read-only (empty for the bare probe).
    applied: Vec<Applied>,
    /// The devices it bound into its /dev (empty for the bare probe).
    devices: Vec<String>,
}

/// What the undo probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndoSeen {
    view: View,
    /// The masked file it tried to unmount.
    path: String,
    /// umount(2) by a child holding Docker's default capabilities: "ok" or the errno.
    docker: String,
    /// umount(2) by the probe itself, holding every capability.
    every: String,
    /// The file, as the probe reads it after its own umount.
    after: Option<Peek>,
}

/// What the LSM probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LsmSeen {
    view: View,
    /// securityfs `lsm`, and how the probe got to read it.
    lsm: Option<Vec<String>>,
    lsm_how: String,
    /// The Landlock ABI version, or the errno that says there is none.
    landlock_abi: String,
    /// open(DIR/file, O_WRONLY) before and after the Landlock ruleset.
    before: String,
    after: String,
}

/// What the host reads beside the LSM probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostLsm {
    /// securityfs `lsm` in the host's own mount namespace (`None`: not mounted there).
    lsm: Option<Vec<String>>,
    /// open(/proc/<pid>/root/DIR/file, O_WRONLY) by nsx: "ok" or the errno.
    write: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// The directory the LSM probe mounts its tmpfs on.
    dir: String,
    bare: Run<Seen>,
    masked: Run<Seen>,
    undo: Run<UndoSeen>,
    lsm: Run<LsmSeen, HostLsm>,
}

impl Def for Masks {
    const ID: &'static str = "masks";
    const TITLE: &'static str =
        "Masked paths: what a container may read of the kernel, and the LSM behind them";
    const MECHANISM: &'static str =
        "/dev/null and read-only tmpfs over /proc files, read-only /proc/sys and /sys, a minimal /dev; LSMs and Landlock";
    const MAN: &'static str =
        "proc(5), sysfs(5), mount(2), mount_namespaces(7), devpts(5), landlock(7), apparmor(7)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/masks.md");
    const SEES: Parts = Parts::MOUNTS
        .with(Parts::KERNEL_FILES)
        .with(Parts::DEV)
        .with(Parts::KERNEL_MOUNTS)
        .with(Parts::SECURITY);
    const FACTS: &'static [&'static str] = &[
        "masked-files-read-empty",
        "masks-are-the-probes-mounts",
        "host-still-reads-them",
        "proc-paths-read-only",
        "sys-read-only",
        "minimal-dev",
        "docker-caps-keep-masks",
        "sys-admin-undoes-a-mask",
        "capability-is-an-lsm",
        "lsm-label-both-sides",
        "landlock-denies-root",
    ];
    const WORDS: &'static [&'static str] = &[
        "mask",
        "masked",
        "maskedpaths",
        "readonly",
        "proc",
        "sys",
        "sysfs",
        "dev",
        "kcore",
        "lsm",
        "apparmor",
        "selinux",
        "landlock",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let tmp = TempDir::new("masks")?;
        let dir = tmp.path().to_path_buf();
        let rootless = m.rootless();
        let container = Spec {
            mount_proc: true,
            ..Spec::new(
                CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET,
            )
        };
        // Each probe mounts only in its own mount namespace: side by side.
        let [bare, masked] = m.probes_n(
            [container.clone(), container.clone()],
            |k, i| match k {
                0 => bare(i),
                _ => masked(i),
            },
            |_, _| Ok(()),
        )?;
        let undo = m.probe(&container, masked_then_undo, |_| Ok(()))?;
        let lsm_dir = dir.clone();
        let lsm = m.probe(
            &Spec::new(CloneFlags::CLONE_NEWNS),
            |i| lsm_probe(i, &lsm_dir, rootless),
            |pid| {
                Ok(HostLsm {
                    lsm: lsm::active(Path::new("/sys"))?,
                    write: host_write(pid, &lsm_dir),
                })
            },
        )?;
        let obs = Obs {
            dir: dir.display().to_string(),
            bare,
            masked,
            undo,
            lsm,
        };
        drop(tmp);
        Ok(obs)
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        judge(o, env)
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        falsifiers()
    }
}

// ----------------------------------------------------------------- measure

/// The probe as `--privileged` leaves it: a fresh /proc (the sandbox mounted it), a
/// fresh sysfs mounted read-write, and the host's /dev.
fn bare(i: &mut Inside) -> Result<Seen> {
    masks::mount_sysfs(i, Path::new("/sys"), false)?;
    Ok(Seen {
        view: i.observe()?,
        applied: Vec::new(),
        devices: Vec::new(),
    })
}

/// The probe as Docker leaves it: a read-only sysfs, the masks and read-only paths, and
/// a minimal /dev.
fn masked(i: &mut Inside) -> Result<Seen> {
    masks::mount_sysfs(i, Path::new("/sys"), true)?;
    let applied = masks::apply(i, Path::new("/"))?;
    let devices = masks::minimal_dev(i, Path::new("/dev"), Path::new("/dev"))?;
    Ok(Seen {
        view: i.observe()?,
        applied,
        devices,
    })
}

/// The undo probe: masked as Docker does; then a child holding only Docker's default
/// capabilities tries to unmount the first masked file, and the probe itself, holding
/// every capability, does.
fn masked_then_undo(i: &mut Inside) -> Result<UndoSeen> {
    let seen = masked(i)?;
    let path = seen
        .applied
        .iter()
        .find(|a| a.how == How::DevNull && a.path.starts_with("/proc/") && a.path != "/proc/kcore")
        .map(|a| a.path.clone())
        .ok_or_else(|| {
            crate::error::Error::Other("no masked file under /proc on this kernel".into())
        })?;
    let target = PathBuf::from(&path);
    let docker = umount_with(Some(caps::DOCKER_DEFAULT), &target)?;
    i.action(format!(
        "fork(); capset(Docker's 14); umount {path} = {docker}"
    ));
    // umount(2) of a mask the probe made, in its own private mount namespace.
    let every = match nix::mount::umount(target.as_path()) {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    i.action(format!("umount {path} = {every}   (every capability)"));
    let after = i.observe()?.kernel.and_then(|k| k.path(&path).cloned());
    Ok(UndoSeen {
        view: seen.view,
        path,
        docker,
        every,
        after,
    })
}

/// umount(2) of `target` by a forked child that first keeps only `keep`: "ok" or the
/// errno's name, passed back as the child's exit status.
fn umount_with(keep: Option<u64>, target: &Path) -> Result<String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    match crate::sandbox::raw_clone(CloneFlags::empty()).ctx("fork", "umount child")? {
        None => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: PR_SET_PDEATHSIG takes a signal number.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                if let Some(keep) = keep {
                    if capset::limit_to(keep).is_err() {
                        return 255;
                    }
                }
                // umount(2): CAP_SYS_ADMIN in the user namespace owning the mount
                // namespace (the probe's own, private one).
                match nix::mount::umount(target) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                }
            }))
            .unwrap_or(254);
            // SAFETY: _exit skips the atexit handlers and buffers, which are the probe's.
            unsafe { libc::_exit(code) }
        }
        Some(pid) => loop {
            match waitpid(pid, None) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(crate::error::sys("waitpid", pid, e)),
                Ok(WaitStatus::Exited(_, 0)) => return Ok("ok".into()),
                Ok(WaitStatus::Exited(_, c)) if c < 254 => {
                    return Ok(format!("{:?}", Errno::from_raw(c)))
                }
                Ok(other) => {
                    return Ok(format!(
                        "the child ended: {}",
                        crate::sandbox::describe(other)
                    ))
                }
            }
        },
    }
}

/// The LSM probe: which LSMs are active, then a Landlock ruleset on itself that denies
/// opening files for writing, around a write to a file of its own tmpfs.
fn lsm_probe(i: &mut Inside, dir: &Path, rootless: bool) -> Result<LsmSeen> {
    let (lsm_list, lsm_how) = match lsm::active(Path::new("/sys"))? {
        Some(l) => (Some(l), "read".to_string()),
        None if rootless => (
            None,
            "securityfs is not mounted, and only root may mount it".to_string(),
        ),
        None => {
            // securityfs in the probe's own mount namespace only. A kernel without it
            // (CONFIG_SECURITYFS) has no list to show: said, not failed.
            let target = Path::new("/sys/kernel/security");
            match i.mount(
                "securityfs",
                target,
                Some("securityfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None,
                format!("mount -t securityfs securityfs {}", target.display()),
            ) {
                Ok(()) => (
                    lsm::active(Path::new("/sys"))?,
                    "mounted securityfs".to_string(),
                ),
                Err(e) => (None, format!("securityfs could not be mounted: {e}")),
            }
        }
    };
    if let Some(l) = &lsm_list {
        i.action(format!("cat /sys/kernel/security/lsm = {}", l.join(",")));
    }
    i.mount_tmpfs("nsx-masks", dir)?;
    let file = dir.join("file");
    std::fs::write(&file, b"").map_err(|e| crate::error::io("create", &file, e))?;
    let view = i.observe()?;
    let before = open_for_writing(&file);
    i.action(format!("open DIR/file, O_WRONLY = {before}"));
    let landlock_abi = match lsm::landlock_abi() {
        Ok(v) => v.to_string(),
        Err(e) => format!("{e:?}"),
    };
    let after = match lsm::deny_writes() {
        Ok(()) => {
            i.action(
                "landlock_create_ruleset({handled_access_fs: WRITE_FILE}) and landlock_restrict_self(): no rule allows writing",
            );
            open_for_writing(&file)
        }
        Err(e) => format!("no ruleset: {e}"),
    };
    i.action(format!("open DIR/file, O_WRONLY = {after}"));
    Ok(LsmSeen {
        view,
        lsm: lsm_list,
        lsm_how,
        landlock_abi,
        before,
        after,
    })
}

/// open(2) for writing, closed at once: "ok" or the errno's name.
fn open_for_writing(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(n) => format!("{:?}", Errno::from_raw(n)),
            None => e.to_string(),
        },
    }
}

/// The host opens the probe's file for writing through /proc/<pid>/root (proc(5)): the
/// same file, from outside the probe's Landlock domain.
fn host_write(pid: i32, dir: &Path) -> String {
    let path = Path::new("/proc")
        .join(pid.to_string())
        .join("root")
        .join(dir.strip_prefix("/").unwrap_or(dir))
        .join("file");
    open_for_writing(&path)
}

// ----------------------------------------------------------------- judge

fn kernel(v: &View) -> KernelFiles {
    v.kernel.clone().unwrap_or_default()
}

fn sec(v: &View) -> Security {
    v.probe.security.clone().unwrap_or_default()
}

/// A peek as a row value: "12345 bytes", "2 entries", "absent".
fn peek_val(p: Option<&Peek>) -> Val {
    let Some(p) = p else {
        return Val::None("not read".into());
    };
    if let Some(e) = &p.error {
        return Val::text(format!("{e} on read"));
    }
    match (p.kind, p.read) {
        (Kind::Absent, _) => Val::text("absent"),
        (Kind::Dir, Some(1)) => Val::text("1 entry"),
        (Kind::Dir, Some(n)) => Val::text(format!("{n} entries")),
        (_, Some(n)) => Val::text(format!("{n} bytes")),
        (Kind::CharDevice, None) => Val::text(format!("a device, {} bytes (not read)", p.size)),
        (_, None) => Val::text(format!("{} bytes (size, not read)", p.size)),
    }
}

/// Nothing to read there: absent, an empty read, or (kcore, never read) /dev/null.
fn masked_ok(p: &Peek) -> bool {
    p.kind == Kind::Absent
        || p.read == Some(0)
        || (p.read.is_none() && p.kind == Kind::CharDevice && p.size == 0)
}

fn ro_val(ro: Option<bool>) -> Val {
    match ro {
        Some(true) => Val::text("read-only"),
        Some(false) => Val::text("read-write"),
        None => Val::None("absent".into()),
    }
}

/// The masked paths that showed something without masks, and the masked files a
/// table must hold: the facts are about these.
fn revealing(o: &Obs) -> Vec<String> {
    kernel(&o.bare.inside.view)
        .paths
        .iter()
        .filter(|p| p.shows_something() || (p.path == "/proc/kcore" && p.kind == Kind::File))
        .map(|p| p.path.clone())
        .filter(|p| !masks::READONLY.contains(&p.as_str()))
        .collect()
}

fn judge(o: &Obs, env: &Env) -> Judged {
    let _ = env;
    let (bk, mk) = (kernel(&o.bare.inside.view), kernel(&o.masked.inside.view));
    let host_k = kernel(&o.masked.host);
    let shown = revealing(o);
    let masked_names: Vec<String> = shown
        .iter()
        .map(|p| format!("{p} ({} → {})", peek_val(bk.path(p)), peek_val(mk.path(p))))
        .collect();
    let applied = &o.masked.inside.applied;
    let table = o
        .masked
        .host
        .probe
        .mounts
        .clone()
        .unwrap_or_default()
        .kernel;
    let host_table = &o.masked.host.mounts.kernel;
    let in_table = |a: &Applied| match a.how {
        How::Absent => true,
        How::DevNull => table
            .iter()
            .any(|m| m.mount_point == a.path && m.root == "/null"),
        How::EmptyTmpfs => table
            .iter()
            .any(|m| m.mount_point == a.path && m.fstype == "tmpfs" && m.ro),
        How::ReadOnly => table.iter().any(|m| m.mount_point == a.path && m.ro),
    };
    let present: Vec<&Applied> = applied.iter().filter(|a| a.how != How::Absent).collect();
    let ro_present: Vec<&str> = masks::READONLY
        .iter()
        .copied()
        .filter(|p| bk.path(p).is_some_and(|x| x.kind != Kind::Absent))
        .collect();
    let host_has = |d: &str| host_k.dev_entry(d).is_some();
    let minimal = masks::minimal_dev_names(host_has);
    let devices_are_hosts = masks::DEVICES.iter().all(|d| match host_k.dev_entry(d) {
        Some(h) => mk
            .dev_entry(d)
            .is_some_and(|c| c.rdev == h.rdev && c.kind == Kind::CharDevice),
        None => true,
    });
    let u = &o.undo.inside;
    let lsm_seen = &o.lsm.inside;
    let (lh, li) = (sec(&o.lsm.host), sec(&lsm_seen.view));
    let mac_active = lsm_seen
        .lsm
        .as_ref()
        .map(|l| l.iter().any(|x| lsm::MAC.contains(&x.as_str())));
    let facts = vec![
        Fact::new(
            "masked-files-read-empty",
            format!(
                "without masks the probe read {}; with Docker's masks each reads nothing",
                if masked_names.is_empty() {
                    "nothing of the masked paths".to_string()
                } else {
                    masked_names.join(", ")
                }
            ),
            !shown.is_empty()
                && shown
                    .iter()
                    .all(|p| mk.path(p).is_some_and(masked_ok))
                && mk.paths.iter().filter(|p| !masks::READONLY.contains(&p.path.as_str())).all(masked_ok),
            json!({ "bare": bk.paths, "masked": mk.paths }),
        ),
        Fact::new(
            "masks-are-the-probes-mounts",
            format!(
                "the host, reading the probe's {}/mountinfo, finds each of its {} masks and read-only paths as a mount of its own (/dev/null bound, an empty read-only tmpfs, a read-only bind); the host's own table has none of them",
                o.masked.host.source,
                present.len()
            ),
            !present.is_empty()
                && applied.iter().all(in_table)
                && !present
                    .iter()
                    .any(|a| host_table.iter().any(|m| m.mount_point == a.path)),
            json!({ "applied": applied, "probe_table": table, "host_table": host_table }),
        ),
        Fact::new(
            "host-still-reads-them",
            format!(
                "at the same moment the host, in its own mount namespace, still reads {}: the masks are the probe's alone",
                shown
                    .iter()
                    .map(|p| format!("{p} ({})", peek_val(host_k.path(p))))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            !shown.is_empty()
                && shown.iter().all(|p| {
                    host_k
                        .path(p)
                        .is_some_and(|x| x.shows_something() || x.path == "/proc/kcore")
                }),
            json!({ "host": host_k.paths }),
        ),
        Fact::new(
            "proc-paths-read-only",
            format!(
                "{} are read-write in the probe without masks and read-only with them",
                ro_present.join(", ")
            ),
            !ro_present.is_empty()
                && ro_present.iter().all(|p| {
                    bk.path(p).is_some_and(|x| !x.ro) && mk.path(p).is_some_and(|x| x.ro)
                }),
            json!({ "bare": ro_present.iter().map(|p| bk.path(p)).collect::<Vec<_>>(), "masked": ro_present.iter().map(|p| mk.path(p)).collect::<Vec<_>>() }),
        ),
        Fact::new(
            "sys-read-only",
            format!(
                "the probe's fresh sysfs is mounted {} without masks (as --privileged leaves it) and {} with them",
                ro_text(bk.sys_ro),
                ro_text(mk.sys_ro)
            ),
            bk.sys_ro == Some(false) && mk.sys_ro == Some(true),
            json!({ "bare": bk.sys_ro, "masked": mk.sys_ro }),
        ),
        Fact::new(
            "minimal-dev",
            format!(
                "the masked probe's /dev lists {} entries ({}), each device the host's own node bound in; the probe without masks lists the host's {}",
                mk.dev.len(),
                mk.dev_names().join(" "),
                bk.dev.len()
            ),
            mk.dev_names() == minimal && devices_are_hosts && bk.dev.len() > minimal.len(),
            json!({ "masked": mk.dev, "bare": bk.dev.len(), "minimal": minimal }),
        ),
        Fact::new(
            "docker-caps-keep-masks",
            format!(
                "a child holding Docker's 14 capabilities could not undo the mask on {}: umount returned {}",
                u.path, u.docker
            ),
            u.docker == "EPERM",
            json!({ "path": u.path, "umount": u.docker }),
        ),
        Fact::new(
            "sys-admin-undoes-a-mask",
            format!(
                "the probe itself, holding CAP_SYS_ADMIN, unmounted it ({}) and read {} again: a mask is a mount, only as strong as the capabilities left",
                u.every,
                peek_val(u.after.as_ref())
            ),
            u.every == "ok" && u.after.as_ref().is_some_and(|p| p.shows_something()),
            json!({ "umount": u.every, "after": u.after }),
        ),
        {
            let f = Fact::new(
                "capability-is-an-lsm",
                format!(
                    "the active LSMs are {} ({}): the capability checks are themselves one",
                    lsm_seen.lsm.as_ref().map_or("unknown".into(), |l| l.join(", ")),
                    lsm_seen.lsm_how
                ),
                lsm_seen
                    .lsm
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|x| x == "capability")),
                json!({ "lsm": lsm_seen.lsm }),
            );
            match &lsm_seen.lsm {
                Some(_) => f,
                None => f.inconclusive(format!(
                    "the LSM list could not be read: {}",
                    lsm_seen.lsm_how
                )),
            }
        },
        Fact::new(
            "lsm-label-both-sides",
            format!(
                "the host reads the probe's attr/current as {}, the probe its own as {}: {}",
                lh.label,
                li.label,
                match mac_active {
                    Some(true) => "an LSM that labels processes is active, and this is the probe's label",
                    Some(false) => "no LSM that labels processes (AppArmor, SELinux, Smack) is active here, so none gives one",
                    None => "the LSM list was not read",
                }
            ),
            o.lsm.host.probe.security.is_some()
                && lh.label == li.label
                && lh.apparmor == li.apparmor
                && match mac_active {
                    Some(true) => li.label.label().is_some(),
                    Some(false) => li.label.label().is_none(),
                    None => true,
                },
            json!({ "host": [lh.label, lh.apparmor], "probe": [li.label, li.apparmor], "mac_active": mac_active }),
        ),
        Fact::new(
            "landlock-denies-root",
            format!(
                "the probe (uid {}, CapEff {}, Seccomp {}) opened its own file for writing ({}), then, under a Landlock ruleset, got {}; the host opened the same file through /proc/<pid>/root: {}",
                li.uid[1],
                caps::CapSet::new(lh.cap_eff).summary(),
                lh.seccomp.map_or("-".into(), |s| s.to_string()),
                lsm_seen.before,
                lsm_seen.after,
                o.lsm.host_extra.write
            ),
            lsm_seen.before == "ok"
                && lsm_seen.after == "EACCES"
                && o.lsm.host_extra.write == "ok"
                && caps::has(lh.cap_eff, caps::SYS_ADMIN)
                && caps::has(lh.cap_eff, 1)
                && lh.seccomp == Some(0),
            json!({ "before": lsm_seen.before, "after": lsm_seen.after, "host": o.lsm.host_extra.write, "eff": lh.cap_eff, "seccomp": lh.seccomp, "landlock_abi": lsm_seen.landlock_abi }),
        )
        // A kernel without Landlock (before 5.13, or not enabled at boot) says so with
        // ENOSYS or EOPNOTSUPP: nothing to show, not a failure.
        .inconclusive_when(lsm_seen.landlock_abi.parse::<u32>().is_err(), || {
            format!(
                "Landlock is not available on this kernel (landlock_create_ruleset: {})",
                lsm_seen.landlock_abi
            )
        }),
    ];

    let absent: Vec<String> = mk
        .paths
        .iter()
        .filter(|p| {
            p.kind == Kind::Absent && bk.path(&p.path).is_some_and(|b| b.kind == Kind::Absent)
        })
        .map(|p| p.path.clone())
        .collect();
    let steps = vec![
        files_step(
            "bare",
            "without masks: a fresh /proc and a read-write sysfs, as --privileged leaves them",
            &o.bare,
            false,
        )
        .takeaway(format!(
            "a /proc of its own PID namespace still shows the host's kernel: {}",
            shown
                .iter()
                .map(|p| format!("{p} {}", peek_val(bk.path(p))))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        files_step(
            "masked",
            "Docker's masks: /dev/null and empty tmpfs over them, read-only paths and /sys, a minimal /dev",
            &o.masked,
            true,
        )
        .note(format!(
            "absent on this kernel, so nothing to mask: {}",
            if absent.is_empty() {
                "none".into()
            } else {
                absent.join(", ")
            }
        ))
        .takeaway(
            "the same files read empty in the probe and full on the host, at the same moment: a mask is a mount in the probe's table",
        ),
        undo_step(&o.undo),
        lsm_step(&o.lsm, &o.dir, mac_active),
    ];
    Judged {
        steps,
        facts,
        notes: Vec::new(),
        takeaway: Some(format!(
            "procfs and sysfs show the whole machine; Docker hides {} of what they show behind {} mounts in the container's own table, which CAP_SYS_ADMIN could remove, and an LSM is the layer that refuses even root with every capability (here: {})",
            shown.len(),
            present.len(),
            lsm_seen.after
        )),
    }
}

fn ro_text(ro: Option<bool>) -> &'static str {
    match ro {
        Some(true) => "read-only",
        Some(false) => "read-write",
        None => "nowhere",
    }
}

/// The bare or masked probe: each path as the host reads it in its own mount namespace
/// beside the probe in its own, then /sys and /dev, then the probe's kernel mounts read
/// two ways.
fn files_step(id: &str, title: &str, run: &Run<Seen>, masked: bool) -> Step {
    let (hk, ik) = (kernel(&run.host), kernel(&run.inside.view));
    let mut rows = Vec::new();
    for p in &ik.paths {
        let host = hk.path(&p.path);
        if p.kind == Kind::Absent && host.is_none_or(|h| h.kind == Kind::Absent) {
            continue;
        }
        let row = if masks::READONLY.contains(&p.path.as_str()) {
            Row::own(
                p.path.clone(),
                "statvfs",
                ro_val(host.map(|h| h.ro)),
                ro_val(Some(p.ro)),
            )
        } else {
            Row::own(p.path.clone(), "read", peek_val(host), peek_val(Some(p)))
                .drift_if(!masked, "read at two moments: the kernel's counters moved")
        };
        rows.push(if masked && p.path == "/proc/timer_list" {
            row.key()
        } else {
            row
        });
    }
    rows.push(Row::own(
        "/sys",
        "statvfs /sys",
        ro_val(hk.sys_ro),
        ro_val(ik.sys_ro),
    ));
    rows.push(Row::own(
        "/dev",
        "readdir /dev",
        Val::Names(hk.dev_names()),
        Val::Names(ik.dev_names()),
    ));
    let points = |v: Option<&crate::observe::Mounts>| {
        Val::Names(
            v.map(|m| m.kernel.iter().map(|k| k.mount_point.clone()).collect())
                .unwrap_or_default(),
        )
    };
    rows.push(Row::probe(
        "mounts on /proc, /sys, /dev",
        "mountinfo",
        points(run.host.probe.mounts.as_ref()),
        points(Some(&run.inside.view.mounts)),
    ));
    let mut step = kit::step(id, title, run, &run.inside.view, rows);
    if masked {
        step = step.note(format!(
            "masked and made read-only: {}",
            run.inside
                .applied
                .iter()
                .filter(|a| a.how != How::Absent)
                .map(|a| format!("{} ({})", a.path, a.how))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    step
}

fn undo_step(run: &Run<UndoSeen>) -> Step {
    let u = &run.inside;
    let host = kernel(&run.host);
    let rows = vec![
        Row::probe(
            "umount, Docker's 14",
            "a system call",
            Val::None("not tried on the host".into()),
            Val::text(u.docker.clone()),
        ),
        Row::probe(
            "umount, every capability",
            "a system call",
            Val::None("not tried on the host".into()),
            Val::text(u.every.clone()),
        )
        .key(),
        Row::own(
            u.path.clone(),
            "read",
            peek_val(host.path(&u.path)),
            peek_val(u.after.as_ref()),
        )
        .drift_if(true, "read at two moments: the kernel's counters moved"),
    ];
    kit::step(
        "undo",
        "a mask is a mount: who may unmount it",
        run,
        &u.view,
        rows,
    )
    .takeaway(format!(
        "with Docker's capabilities umount {} said {}; with CAP_SYS_ADMIN the mask came off and the host's data was back",
        u.path, u.docker
    ))
}

fn lsm_step(run: &Run<LsmSeen, HostLsm>, dir: &str, mac: Option<bool>) -> Step {
    let s = &run.inside;
    let (h, i) = (sec(&run.host), sec(&s.view));
    let list = |l: &Option<Vec<String>>, why: &str| match l {
        Some(l) => Val::text(l.join(",")),
        None => Val::None(why.to_string()),
    };
    let attr = |a: &Attr| match a {
        Attr::Label(l) => Val::text(l.clone()),
        other => Val::text(other.to_string()),
    };
    let rows = vec![
        Row::own(
            "active LSMs",
            "/sys/kernel/security/lsm",
            list(&run.host_extra.lsm, "securityfs not mounted"),
            list(&s.lsm, &s.lsm_how),
        ),
        Row::probe("label", "attr/current", attr(&h.label), attr(&i.label)),
        Row::probe(
            "AppArmor label",
            "attr/apparmor/current",
            attr(&h.apparmor),
            attr(&i.apparmor),
        ),
        Row::probe(
            "effective",
            "status CapEff",
            caps::CapSet::new(h.cap_eff).summary(),
            caps::CapSet::new(i.cap_eff).summary(),
        ),
        Row::probe(
            "seccomp mode",
            "status Seccomp",
            h.seccomp
                .map_or(Val::None("-".into()), |v| Val::Num(v.into())),
            i.seccomp
                .map_or(Val::None("-".into()), |v| Val::Num(v.into())),
        ),
        Row::own(
            "open DIR/file for writing",
            "a system call",
            Val::text(run.host_extra.write.clone()),
            Val::text(s.after.clone()),
        )
        .key(),
    ];
    kit::step(
        "lsm",
        "the last layer: LSMs, and Landlock refusing root",
        run,
        &s.view,
        rows,
    )
    .note(format!(
        "DIR is {dir}: the probe mounted a tmpfs there in its own mount namespace; the host opened the file as /proc/<pid>/root{dir}/file"
    ))
    .note(match mac {
        Some(true) if i.label.label() == Some("unconfined") => "AppArmor is active here, and the probe runs unconfined: no profile is loaded for it, so AppArmor refuses it nothing. Docker would start it under docker-default (enforce), which the host would read in the same file; that profile refuses mounts and writes to /proc/sysrq-trigger and most of /proc/sys, whatever the capabilities".to_string(),
        Some(true) => format!("an LSM that labels processes is active here, and the probe runs under {}: its policy decides what it refuses, whatever the capabilities (Docker's would be AppArmor's docker-default or SELinux's container_t)", i.label),
        Some(false) => "no LSM that labels processes is active here (no AppArmor, SELinux or Smack in the list), so attr/current has nothing to say; where AppArmor is active, the host would read the probe's profile there (docker-default (enforce) for a Docker container) and the profile would refuse writes to /proc/sysrq-trigger and mounts, whatever the capabilities".to_string(),
        None => "the LSM list could not be read here".to_string(),
    })
    .takeaway(format!(
        "root with every capability and no seccomp filter wrote the file ({}), then got {} under Landlock: neither DAC nor capabilities said no, an LSM did",
        s.before, s.after
    ))
}

// ----------------------------------------------------------------- falsifiers

#[cfg(test)]
fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
    use super::engine::Falsifier as F;
    fn first_revealing(o: &Obs) -> String {
        revealing(o).first().cloned().unwrap_or_default()
    }
    fn peek_mut<'a>(v: &'a mut View, path: &str) -> Option<&'a mut Peek> {
        v.kernel.as_mut()?.paths.iter_mut().find(|p| p.path == path)
    }
    vec![
        F {
            fact: "masked-files-read-empty",
            what: "a masked file still reads bytes in the masked probe",
            change: |o, _| {
                let p = first_revealing(o);
                if let Some(x) = peek_mut(&mut o.masked.inside.view, &p) {
                    x.read = Some(100);
                    x.kind = Kind::File;
                }
            },
        },
        F {
            fact: "masks-are-the-probes-mounts",
            what: "the host reads no mounts in the probe's table",
            change: |o, _| {
                if let Some(m) = o.masked.host.probe.mounts.as_mut() {
                    m.kernel.clear();
                }
            },
        },
        F {
            fact: "masks-are-the-probes-mounts",
            what: "the host's own table has the probe's masks",
            change: |o, _| {
                let probe = o.masked.host.probe.mounts.clone().unwrap_or_default();
                o.masked.host.mounts.kernel = probe.kernel;
            },
        },
        F {
            fact: "host-still-reads-them",
            what: "the host reads a masked file empty too",
            change: |o, _| {
                let p = first_revealing(o);
                if let Some(x) = peek_mut(&mut o.masked.host, &p) {
                    x.read = Some(0);
                }
            },
        },
        F {
            fact: "proc-paths-read-only",
            what: "/proc/sys is writable in the masked probe",
            change: |o, _| {
                if let Some(x) = peek_mut(&mut o.masked.inside.view, "/proc/sys") {
                    x.ro = false;
                }
            },
        },
        F {
            fact: "sys-read-only",
            what: "the masked probe's /sys is read-write",
            change: |o, _| {
                if let Some(k) = o.masked.inside.view.kernel.as_mut() {
                    k.sys_ro = Some(false);
                }
            },
        },
        F {
            fact: "minimal-dev",
            what: "the masked probe's /dev has the host's sda",
            change: |o, _| {
                if let Some(k) = o.masked.inside.view.kernel.as_mut() {
                    k.dev.push(crate::observe::kernel::DevEntry {
                        name: "sda".into(),
                        kind: Kind::BlockDevice,
                        rdev: Some((8, 0)),
                    });
                    k.dev.sort_by(|a, b| a.name.cmp(&b.name));
                }
            },
        },
        F {
            fact: "minimal-dev",
            what: "the masked probe's /dev/null is another device",
            change: |o, _| {
                if let Some(k) = o.masked.inside.view.kernel.as_mut() {
                    for d in k.dev.iter_mut().filter(|d| d.name == "null") {
                        d.rdev = Some((1, 5));
                    }
                }
            },
        },
        F {
            fact: "docker-caps-keep-masks",
            what: "Docker's capabilities unmounted the mask",
            change: |o, _| o.undo.inside.docker = "ok".into(),
        },
        F {
            fact: "sys-admin-undoes-a-mask",
            what: "the file still read empty after umount",
            change: |o, _| {
                if let Some(p) = o.undo.inside.after.as_mut() {
                    p.read = Some(0);
                }
            },
        },
        F {
            fact: "capability-is-an-lsm",
            what: "the LSM list lacks capability",
            change: |o, _| {
                if let Some(l) = o.lsm.inside.lsm.as_mut() {
                    l.retain(|x| x != "capability");
                }
            },
        },
        F {
            fact: "lsm-label-both-sides",
            what: "the host reads another label",
            change: |o, _| {
                if let Some(s) = o.lsm.host.probe.security.as_mut() {
                    s.label = Attr::Label("docker-default (enforce)".into());
                }
            },
        },
        F {
            fact: "landlock-denies-root",
            what: "the write under Landlock went through",
            change: |o, _| o.lsm.inside.after = "ok".into(),
        },
        F {
            fact: "landlock-denies-root",
            what: "the probe ran under a seccomp filter",
            change: |o, _| {
                if let Some(s) = o.lsm.host.probe.security.as_mut() {
                    s.seccomp = Some(2);
                }
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(kind: Kind, read: Option<u64>, size: u64) -> Peek {
        Peek {
            path: "/proc/x".into(),
            kind,
            size,
            ro: false,
            read,
            error: None,
        }
    }

    #[test]
    fn a_mask_shows_nothing() {
        assert!(masked_ok(&peek(Kind::CharDevice, Some(0), 0)));
        assert!(masked_ok(&peek(Kind::Absent, None, 0)));
        assert!(masked_ok(&peek(Kind::CharDevice, None, 0)), "kcore masked");
        assert!(!masked_ok(&peek(Kind::File, Some(3), 0)));
        assert!(!masked_ok(&peek(Kind::File, None, 1 << 40)), "kcore bare");
    }

    /// A kernel without Landlock cannot show the refusal: the fact is reported apart, with
    /// the reason, not failed.
    #[test]
    fn without_landlock_the_denial_is_inconclusive_not_failed() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/masks.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        let mut o: Obs = serde_json::from_value(rec.observations.clone()).unwrap();
        o.lsm.inside.landlock_abi = "EOPNOTSUPP".into();
        o.lsm.inside.after = "no ruleset: landlock_create_ruleset: EOPNOTSUPP".into();
        let judged = judge(&o, &rec.env);
        let f = judged
            .facts
            .iter()
            .find(|f| f.id == "landlock-denies-root")
            .unwrap();
        assert!(!f.fails(), "{f:?}");
        assert!(f.inconclusive.as_deref().unwrap().contains("EOPNOTSUPP"));
        // With Landlock there, the same write going through is a plain failure.
        o.lsm.inside.landlock_abi = "3".into();
        o.lsm.inside.after = "ok".into();
        let judged = judge(&o, &rec.env);
        let f = judged
            .facts
            .iter()
            .find(|f| f.id == "landlock-denies-root")
            .unwrap();
        assert!(f.fails(), "{f:?}");
    }

    #[test]
    fn peeks_read_as_sizes_and_entries() {
        assert_eq!(
            peek_val(Some(&peek(Kind::File, Some(12), 0))).to_string(),
            "12 bytes"
        );
        assert_eq!(
            peek_val(Some(&peek(Kind::Dir, Some(2), 0))).to_string(),
            "2 entries"
        );
        assert_eq!(
            peek_val(Some(&peek(Kind::Absent, None, 0))).to_string(),
            "absent"
        );
    }
}
