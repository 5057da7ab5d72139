//! caps: what root may do is what its capabilities say.
//!
//! capabilities(7): the kernel does not ask "is this uid 0?" before a privileged
//! operation, it asks whether the process holds one capability in its effective set:
//! CAP_SYS_ADMIN to mount, CAP_CHOWN to give a file away, CAP_MKNOD to make a device
//! node, CAP_NET_BIND_SERVICE to bind a port below 1024, CAP_SYS_TIME to set the clock,
//! CAP_DAC_READ_SEARCH to open a file by handle. Docker's containers run as uid 0 with
//! 14 of the 41 (moby `oci/caps/defaults.go`), which is most of what keeps their root
//! from being the host's root.
//!
//! Three probes, each in new mount, UTS and network namespaces: one keeps every
//! capability nsx holds, one keeps Docker's default set, one none; each tries the same
//! seven calls, all on things made for it (a tmpfs of its own, its own hostname, a port
//! in its own network namespace). The clock is not namespaced, so the clock call is one
//! that cannot change it: adjtimex(2) with ADJ_TICK and tick 0. The kernel checks
//! CAP_SYS_TIME first (EPERM without it) and then the value, which it refuses (EINVAL)
//! before touching anything (kernel/time/timekeeping.c, `timekeeping_validate_timex`).
//! The host reads each probe's sets from /proc/<pid>/status.
//!
//! As root, two more steps run a setuid-root copy of a 178-byte program that only
//! reports its euid ([`crate::security::helper`]) as nobody, in a tmpfs that exists only
//! in the probe's mount namespace: with every capability in the bounding set, with
//! Docker's (the ceiling), and after PR_SET_NO_NEW_PRIVS; then a plain copy with and
//! without CAP_NET_BIND_SERVICE in the ambient set.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::caps::{self, CapSet};
use crate::error::{Context, Error, Result};
use crate::observe::{self, Ns, Parts, Proc, Security, Subject, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TempDir};
use crate::security::{capset, helper};

pub const LESSON: Lesson = super::engine::lesson::<Caps>();

pub struct Caps;

/// The uid the exec steps switch to: nobody, which owns nothing.
const NOBODY: u32 = 65534;
const CAP_CHOWN: u32 = 0;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_TIME: u32 = 25;
const CAP_MKNOD: u32 = 27;
/// The hostname the probes try to set (in UTS namespaces of their own).
const HOSTNAME: &str = "nsx-caps";
/// The plain (not setuid) copy of the helper.
const PLAIN: &str = "nsx-euid-plain";

/// One privileged call the probes try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Mount,
    Sethostname,
    Chown,
    Mknod,
    BindLowPort,
    Clock,
    OpenByHandle,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Mount,
        Op::Sethostname,
        Op::Chown,
        Op::Mknod,
        Op::BindLowPort,
        Op::Clock,
        Op::OpenByHandle,
    ];

    /// The capability the kernel asks for.
    pub fn cap(self) -> u32 {
        match self {
            Op::Mount | Op::Sethostname => caps::SYS_ADMIN,
            Op::Chown => CAP_CHOWN,
            Op::Mknod => CAP_MKNOD,
            Op::BindLowPort => CAP_NET_BIND_SERVICE,
            Op::Clock => CAP_SYS_TIME,
            Op::OpenByHandle => CAP_DAC_READ_SEARCH,
        }
    }

    /// The row label.
    fn label(self) -> &'static str {
        match self {
            Op::Mount => "mount a tmpfs",
            Op::Sethostname => "sethostname",
            Op::Chown => "chown to nobody",
            Op::Mknod => "mknod c 1 3",
            Op::BindLowPort => "bind port 80",
            Op::Clock => "adjtimex (tick 0)",
            Op::OpenByHandle => "open_by_handle_at",
        }
    }

    /// The call as a student would type it (DIR is the probe's tmpfs).
    fn command(self) -> String {
        match self {
            Op::Mount => "mount -t tmpfs nsx-caps-try DIR/mnt".into(),
            Op::Sethostname => format!("sethostname(\"{HOSTNAME}\")"),
            Op::Chown => format!("chown {NOBODY} DIR/file"),
            Op::Mknod => "mknod DIR/null c 1 3".into(),
            Op::BindLowPort => "bind(socket(AF_INET, SOCK_STREAM), 0.0.0.0:80)".into(),
            Op::Clock => "adjtimex({modes: ADJ_TICK, tick: 0})".into(),
            Op::OpenByHandle => "open_by_handle_at(DIR, name_to_handle_at(DIR/file))".into(),
        }
    }

    /// Whether holding the capability in a user namespace of the probe's own is enough:
    /// the kernel asks about the namespace that owns the mount, UTS, network namespace or
    /// the file's uid (ns_capable), or only about the initial one (capable(): device
    /// nodes, the clock). `None`: it depends on the kernel (open_by_handle_at was relaxed
    /// in Linux 6.x for handles below a mount the caller's namespace owns).
    fn namespaced(self) -> Option<bool> {
        match self {
            Op::Mount | Op::Sethostname | Op::Chown | Op::BindLowPort => Some(true),
            Op::Mknod | Op::Clock => Some(false),
            Op::OpenByHandle => None,
        }
    }
}

/// What one call returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", content = "why", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The errno's name.
    Failed(String),
    /// Not tried, with the reason.
    NotTried(String),
}

impl Outcome {
    /// Whether the kernel let the call past its capability check: it went through, or
    /// (the clock) it refused the value after the check.
    fn allowed(&self, op: Op) -> Option<bool> {
        match self {
            Outcome::Ok => Some(true),
            Outcome::Failed(e) if op == Op::Clock && e == "EINVAL" => Some(true),
            Outcome::Failed(e) if e == "EPERM" => Some(false),
            // bind(2): "EACCES: the address is protected, and the user is not the
            // superuser", the one call here that says so with another errno.
            Outcome::Failed(e) if op == Op::BindLowPort && e == "EACCES" => Some(false),
            _ => None,
        }
    }

    fn text(&self, op: Op) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed(e) if op == Op::Clock && e == "EINVAL" => {
                "EINVAL (past the check; tick 0 refused)".into()
            }
            Outcome::Failed(e) => e.clone(),
            Outcome::NotTried(_) => "not tried".into(),
        }
    }
}

/// One call and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    pub op: Op,
    pub outcome: Outcome,
}

/// What a caps probe reports: its view, and its calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    tried: Vec<Tried>,
}

/// One run of the helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// nobody runs the setuid-root copy.
    Setuid,
    /// The same, with Docker's bounding set.
    SetuidDockerBounding,
    /// The same, after PR_SET_NO_NEW_PRIVS.
    SetuidNoNewPrivs,
    /// nobody with CAP_NET_BIND_SERVICE in its ambient set runs the plain copy.
    Ambient,
    /// nobody runs the plain copy, with nothing ambient.
    Plain,
}

impl Exec {
    pub const ALL: [Exec; 5] = [
        Exec::Setuid,
        Exec::SetuidDockerBounding,
        Exec::SetuidNoNewPrivs,
        Exec::Ambient,
        Exec::Plain,
    ];

    fn setuid(self) -> bool {
        matches!(
            self,
            Exec::Setuid | Exec::SetuidDockerBounding | Exec::SetuidNoNewPrivs
        )
    }

    /// What the child does before execve, as a student would type it.
    fn steps(self) -> &'static str {
        match self {
            Exec::Setuid => "setresuid(65534) then execve the setuid copy",
            Exec::SetuidDockerBounding => {
                "prctl(PR_CAPBSET_DROP) all but Docker's 14, setresuid(65534), execve the setuid copy"
            }
            Exec::SetuidNoNewPrivs => {
                "prctl(PR_SET_NO_NEW_PRIVS, 1), setresuid(65534), execve the setuid copy"
            }
            Exec::Ambient => {
                "PR_SET_KEEPCAPS, setresuid(65534), capset(net_bind_service), PR_CAP_AMBIENT_RAISE, execve the plain copy"
            }
            Exec::Plain => "setresuid(65534) then execve the plain copy",
        }
    }

    /// The row prefix.
    fn short(self) -> &'static str {
        match self {
            Exec::Setuid => "setuid",
            Exec::SetuidDockerBounding => "Docker's bounding",
            Exec::SetuidNoNewPrivs => "no_new_privs",
            Exec::Ambient => "ambient",
            Exec::Plain => "no ambient",
        }
    }
}

/// One helper process, as the probe started and read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRun {
    pub exec: Exec,
    /// Its PID in the probe's PID namespace.
    pub pid: i32,
    /// What it wrote: its geteuid().
    pub said: Option<u32>,
    /// Why it did not run (the execve errno, or what went wrong).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Its status read by the probe, through the probe's /proc.
    pub seen: Option<Proc>,
}

/// What the exec probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSeen {
    view: View,
    runs: Vec<ExecRun>,
}

/// The exec steps, run or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum ExecObs {
    /// The host's reads of the helpers are by host PID; `nspid` says which is which.
    Ran {
        run: Box<Run<ExecSeen, Vec<Proc>>>,
    },
    NotRun {
        why: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// The directory each probe mounts its own tmpfs on.
    dir: String,
    every: Run<Seen>,
    docker: Run<Seen>,
    none: Run<Seen>,
    exec: ExecObs,
}

impl Def for Caps {
    const ID: &'static str = "caps";
    const TITLE: &'static str = "Capabilities: what root may do, one bit at a time";
    const MECHANISM: &'static str =
        "capset(2) and PR_CAPBSET_DROP: every capability, Docker's 14, none; setuid, no_new_privs, ambient";
    const MAN: &'static str =
        "capabilities(7), capset(2), prctl(2) (PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT), execve(2), adjtimex(2)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/caps.md");
    const SEES: Parts = Parts::SECURITY.with(Parts::ID_LIMITS).with(Parts::DEV);
    const FACTS: &'static [&'static str] = &[
        "host-reads-cap-sets",
        "every-cap-held",
        "every-cap-allows",
        "docker-default-set",
        "docker-set-splits",
        "no-caps-refuses-root",
        "clock-never-changed",
        "privileged-adds",
        "setuid-gains-root",
        "bounding-set-is-the-ceiling",
        "no-new-privs-keeps-uid",
        "ambient-survives-exec",
    ];
    const WORDS: &'static [&'static str] = &[
        "capabilities",
        "capability",
        "cap",
        "capset",
        "privileged",
        "setuid",
        "nnp",
        "no_new_privs",
        "no-new-privileges",
        "ambient",
        "bounding",
        "root",
        "eperm",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let tmp = TempDir::new("caps")?;
        let dir = tmp.path().to_path_buf();
        let rootless = m.rootless();
        let spec = Spec::new(
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNET,
        );
        // Each probe is in namespaces of its own and mounts only there: side by side.
        let [every, docker, none] = m.probes_n(
            [spec.clone(), spec.clone(), spec],
            |k, i| {
                let keep = match k {
                    0 => None,
                    1 => Some(caps::DOCKER_DEFAULT),
                    _ => Some(0),
                };
                try_calls(i, &dir, keep, rootless)
            },
            |_, _| Ok(()),
        )?;
        let exec = if rootless {
            ExecObs::NotRun {
                why: "without root only uid 0 is mapped in the probe's user namespace: there is no second user to run a setuid program as".into(),
            }
        } else if helper::program().is_none() {
            ExecObs::NotRun {
                why: format!(
                    "nsx has no {} program for {}",
                    helper::NAME,
                    std::env::consts::ARCH
                ),
            }
        } else {
            let spec = Spec {
                mount_proc: true,
                ..Spec::new(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
            };
            let run = m.probe(&spec, |i| exec_probe(i, &dir), read_helpers)?;
            ExecObs::Ran { run: Box::new(run) }
        };
        let obs = Obs {
            dir: dir.display().to_string(),
            every,
            docker,
            none,
            exec,
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

/// A probe's seven calls: first, with every capability, what they need (a tmpfs of its
/// own at `dir`, a file, its handle), as a runtime sets a container up before dropping
/// capabilities; then `keep` (`None`: everything stays), then the calls.
fn try_calls(i: &mut Inside, dir: &Path, keep: Option<u64>, rootless: bool) -> Result<Seen> {
    i.mount_tmpfs("nsx-caps", dir)?;
    let file = dir.join("file");
    std::fs::write(&file, b"").map_err(|e| crate::error::io("create", &file, e))?;
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| crate::error::io("mkdir", &mnt, e))?;
    let handle = file_handle(&file);
    let dir_fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", dir.display())?;
    if let Some(keep) = keep {
        let kept = capset::limit_to(keep)?;
        i.action(format!(
            "capset(): bounding, permitted, effective = {}; inheritable, ambient = none",
            CapSet::new(kept).summary()
        ));
    }
    let mut tried = Vec::new();
    for op in Op::ALL {
        let outcome = attempt(op, i, dir, &dir_fd, handle, rootless);
        i.action(format!("{} = {}", op.command(), outcome.text(op)));
        tried.push(Tried { op, outcome });
    }
    Ok(Seen {
        view: i.observe()?,
        tried,
    })
}

fn outcome(r: nix::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Failed(format!("{e:?}")),
    }
}

fn attempt(
    op: Op,
    i: &Inside,
    dir: &Path,
    dir_fd: &OwnedFd,
    handle: nix::Result<Handle>,
    rootless: bool,
) -> Outcome {
    match op {
        Op::Mount => {
            // mount(2): CAP_SYS_ADMIN in the user namespace that owns the mount
            // namespace. Only in the probe's own, private mount namespace.
            if !i.mounts_are_private() {
                return Outcome::NotTried("not in a private mount namespace".into());
            }
            outcome(nix::mount::mount(
                Some("nsx-caps-try"),
                &dir.join("mnt"),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("size=64k"),
            ))
        }
        // sethostname(2): CAP_SYS_ADMIN over the UTS namespace, the probe's own.
        Op::Sethostname => outcome(nix::unistd::sethostname(HOSTNAME)),
        Op::Chown if rootless => Outcome::NotTried(
            "only uid 0 is mapped in the probe's user namespace: no other uid to give the file to"
                .into(),
        ),
        // chown(2): giving a file to another uid needs CAP_CHOWN (the file is the
        // probe's, on its own tmpfs).
        Op::Chown => outcome(nix::unistd::chown(
            &dir.join("file"),
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            None,
        )),
        // mknod(2): a device node needs CAP_MKNOD in the initial user namespace. The
        // tmpfs is nodev: the node (the host's /dev/null, 1:3) could not be opened.
        Op::Mknod => outcome(nix::sys::stat::mknod(
            &dir.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 3),
        )),
        Op::BindLowPort => outcome(bind_low_port()),
        Op::Clock => outcome(clock_check()),
        Op::OpenByHandle => match handle {
            Ok(h) => outcome(open_by_handle(dir_fd, h)),
            Err(e) => Outcome::NotTried(format!("name_to_handle_at gave {e:?}")),
        },
    }
}

/// socket(2) and bind(2) on 0.0.0.0:80, in the probe's own network namespace (nothing
/// else listens there). Ports below net.ipv4.ip_unprivileged_port_start (1024 in a new
/// namespace) need CAP_NET_BIND_SERVICE in the user namespace that owns it.
fn bind_low_port() -> nix::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a descriptor just returned, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 80u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: libc::INADDR_ANY,
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// adjtimex(2) with ADJ_TICK and tick 0: a call that cannot change the clock. The clock
/// belongs to the whole machine (time_namespaces(7) offset only the monotonic and
/// boot-time clocks), so nsx never sets it. The kernel validates before it changes
/// anything (kernel/time/timekeeping.c, `timekeeping_validate_timex`): first "any mode
/// bit needs CAP_SYS_TIME" (EPERM), then "tick must be within 10% of 1000000/USER_HZ"
/// (EINVAL). So EINVAL means the capability check passed and nothing changed.
fn clock_check() -> nix::Result<()> {
    // SAFETY: a zeroed struct timex is valid input.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    t.modes = libc::ADJ_TICK;
    t.tick = 0;
    // SAFETY: a valid struct timex, read and written by the kernel.
    let r = unsafe { libc::adjtimex(&mut t) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// struct file_handle with room for MAX_HANDLE_SZ bytes (name_to_handle_at(2)).
#[repr(C)]
#[derive(Clone, Copy)]
struct Handle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

/// name_to_handle_at(2): a file's handle, which any process may ask for.
fn file_handle(path: &Path) -> nix::Result<Handle> {
    let mut h = Handle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id: libc::c_int = 0;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a NUL-terminated path, a file_handle with handle_bytes of room, and an int.
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut h as *mut Handle as *mut libc::file_handle,
            &mut mount_id,
            0,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(h)
}

/// open_by_handle_at(2): opening a file by its handle skips the permission checks of
/// every directory on the way, so it needs CAP_DAC_READ_SEARCH (in 2014, a container
/// holding it read the host's /etc/shadow this way: "shocker"). Here the handle is of
/// the probe's own file, below its own tmpfs.
fn open_by_handle(dir: &OwnedFd, mut h: Handle) -> nix::Result<()> {
    // SAFETY: a file_handle filled by name_to_handle_at; the descriptor is open.
    let fd = unsafe {
        libc::open_by_handle_at(
            dir.as_raw_fd(),
            &mut h as *mut Handle as *mut libc::file_handle,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a descriptor just returned, closed once.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

/// The exec probe: a tmpfs of its own without nosuid, a setuid-root copy and a plain
/// copy of the helper on it, and one helper process per [`Exec`], each left waiting on
/// its standard input until the probe exits (the probe is PID 1 of its PID namespace:
/// when it exits the kernel kills and reaps them all).
fn exec_probe(i: &mut Inside, dir: &Path) -> Result<ExecSeen> {
    // Not nosuid, so that the setuid bit counts here. The tmpfs exists only in this
    // mount namespace: nothing outside it can reach the setuid copy, and it is gone
    // when the namespace is (the host's DIR, mode 0700, stays empty).
    i.mount(
        "nsx-caps",
        dir,
        Some("tmpfs"),
        MsFlags::MS_NODEV,
        Some("size=1m,mode=0755"),
        format!(
            "mount -t tmpfs -o nodev,mode=0755 nsx-caps {}   (not nosuid: the setuid bit counts)",
            dir.display()
        ),
    )?;
    on_a_tmpfs(dir)?;
    let setuid = helper::install(dir, helper::NAME, 0o4755)?;
    i.action(format!(
        "install -o root -m 4755 {} DIR/{}   (setuid root)",
        helper::NAME,
        helper::NAME
    ));
    let plain = helper::install(dir, PLAIN, 0o755)?;
    i.action(format!(
        "install -o root -m 0755 {} DIR/{PLAIN}",
        helper::NAME
    ));
    let held = capset::get()?.permitted;
    let docker = caps::DOCKER_DEFAULT & held;
    let mut runs = Vec::new();
    for exec in Exec::ALL {
        let prog = if exec.setuid() { &setuid } else { &plain };
        let mut run = start(exec, prog, docker)?;
        i.action(format!(
            "fork() = {}: {}: wrote euid {}",
            run.pid,
            exec.steps(),
            run.said
                .map_or_else(|| run.failed.clone().unwrap_or_default(), |u| u.to_string())
        ));
        if run.failed.is_none() {
            // The helper waits on its standard input: read its status through the
            // probe's own /proc (a procfs of its PID namespace).
            let path = Path::new("/proc").join(run.pid.to_string());
            run.seen = Some(observe::read_proc_with(&path, Parts::SECURITY)?);
        }
        runs.push(run);
    }
    Ok(ExecSeen {
        view: i.observe()?,
        runs,
    })
}

/// statfs(2): the setuid copy is made only on a tmpfs (the probe's own), never on the
/// host's file system: were the mount somehow missing, the file would land in the host's
/// DIR and outlive the run.
fn on_a_tmpfs(dir: &Path) -> Result<()> {
    let fs = nix::sys::statfs::statfs(dir).ctx("statfs", dir.display())?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Err(Error::Other(format!(
            "internal: refusing to make a setuid file in {}: it is not the probe's own tmpfs",
            dir.display()
        )));
    }
    Ok(())
}

/// Forks a child that sets up `exec`'s credentials and execs `prog` with a pipe on its
/// standard input (held open by this process) and one on its standard output; returns
/// once the program has written its euid, or once the exec failed.
fn start(exec: Exec, prog: &Path, docker: u64) -> Result<ExecRun> {
    use nix::fcntl::OFlag;
    let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("pipe2", "helper stdin")?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("pipe2", "helper stdout")?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("pipe2", "helper exec error")?;
    let path = CString::new(prog.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("{}: a NUL in the path", prog.display())))?;
    match crate::sandbox::raw_clone(CloneFlags::empty()).ctx("fork", prog.display())? {
        None => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // prctl(2): die with the probe (a setuid execve clears this again, but the
                // probe is PID 1 of the PID namespace: its exit kills everything in it).
                // SAFETY: PR_SET_PDEATHSIG takes a signal number.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                let errno = exec_as(exec, &path, &in_r, &out_w, docker);
                let mut err = std::fs::File::from(err_w);
                let _ = std::io::Write::write_all(&mut err, &(errno as i32).to_le_bytes());
                127
            }))
            .unwrap_or(101);
            // SAFETY: _exit skips the atexit handlers and buffers, which are the probe's.
            unsafe { libc::_exit(code) }
        }
        Some(pid) => {
            drop((in_r, out_w, err_w));
            let mut run = ExecRun {
                exec,
                pid: pid.as_raw(),
                said: None,
                failed: None,
                seen: None,
            };
            // The error pipe is close-on-exec: EOF with nothing read means execve
            // succeeded; four bytes are the errno it failed with.
            let mut err = std::fs::File::from(err_r);
            let mut bytes = Vec::new();
            err.read_to_end(&mut bytes)
                .map_err(|e| crate::error::io("read", Path::new("helper exec error pipe"), e))?;
            if let Ok(b) = <[u8; 4]>::try_from(bytes.as_slice()) {
                run.failed = Some(format!(
                    "execve: {:?}",
                    Errno::from_raw(i32::from_le_bytes(b))
                ));
                return Ok(run);
            }
            // The program's first act: its euid, four bytes. They also say it runs with
            // its final credentials (an EOF on the error pipe comes before execve
            // installs them).
            let mut out = std::fs::File::from(out_r);
            let mut euid = [0u8; 4];
            match out.read_exact(&mut euid) {
                Ok(()) => run.said = Some(u32::from_le_bytes(euid)),
                Err(e) => run.failed = Some(format!("the program wrote no euid: {e}")),
            }
            // Its standard input stays open until this probe exits: the program waits
            // on it, alive for the host to read.
            let _held = in_w.into_raw_fd();
            Ok(run)
        }
    }
}

/// In the forked child: `exec`'s credentials, then execve. Returns the errno that
/// stopped it.
fn exec_as(exec: Exec, path: &CString, stdin: &OwnedFd, stdout: &OwnedFd, docker: u64) -> Errno {
    let errno = |e: Error| match e {
        Error::Sys(s) => s.errno,
        _ => Errno::EINVAL,
    };
    // dup2(2): the pipes become descriptors 0 and 1, which execve keeps (dup2 clears
    // close-on-exec on the new descriptor).
    // SAFETY: dup2 onto 0 and 1, replaced on purpose.
    if unsafe { libc::dup2(stdin.as_raw_fd(), 0) } < 0
        || unsafe { libc::dup2(stdout.as_raw_fd(), 1) } < 0
    {
        return Errno::last();
    }
    let before = match exec {
        // The bounding set is the ceiling of what execve may grant: Docker's 14 here.
        Exec::SetuidDockerBounding => capset::drop_bounding(docker),
        Exec::SetuidNoNewPrivs => capset::set_no_new_privs(),
        // Keep the permitted set across the change of uid below.
        Exec::Ambient => capset::set_keep_caps(),
        _ => Ok(()),
    };
    if let Err(e) = before {
        return errno(e);
    }
    // credentials(7): groups, then gid, then uid; from uid 0 to 65534 everywhere, which
    // clears the effective and ambient sets (and the permitted one without KEEPCAPS).
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let (u, g) = (Uid::from_raw(NOBODY), Gid::from_raw(NOBODY));
    if let Err(e) = setgroups(&[])
        .and_then(|()| setresgid(g, g, g))
        .and_then(|()| setresuid(u, u, u))
    {
        return e;
    }
    if exec == Exec::Ambient {
        // capabilities(7): an ambient capability must be permitted and inheritable.
        let nbs = 1u64 << CAP_NET_BIND_SERVICE;
        let raised = capset::set(capset::Sets {
            effective: nbs,
            permitted: nbs,
            inheritable: nbs,
        })
        .and_then(|()| capset::raise_ambient(CAP_NET_BIND_SERVICE));
        if let Err(e) = raised {
            return errno(e);
        }
    }
    // execve(2) with an empty environment and argv[0] the path.
    let argv = [path.as_c_str()];
    let env: [&std::ffi::CStr; 0] = [];
    nix::unistd::execve(path, &argv, &env).unwrap_err()
}

/// The host's reads of the helpers, by their host PIDs: the processes of the probe's
/// PID namespace other than the probe.
fn read_helpers(pid: i32) -> Result<Vec<Proc>> {
    let v = observe::observe_parts(
        Path::new("/proc"),
        Subject::Pid(pid),
        Ns::Pid.part().with(Parts::NS_PROCESSES),
    )?;
    let mut out = Vec::new();
    for s in v.ns_processes.unwrap_or_default() {
        if s.pid == pid {
            continue;
        }
        let dir = Path::new("/proc").join(s.pid.to_string());
        match observe::read_proc_with(&dir, Parts::SECURITY) {
            Ok(p) => out.push(p),
            Err(Error::Sys(e)) if matches!(e.errno, Errno::ENOENT | Errno::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

// ----------------------------------------------------------------- judge

fn sec(v: &View) -> Security {
    v.probe.security.clone().unwrap_or_default()
}

fn caps_text(mask: u64) -> String {
    format!("{mask:016x} = {}", CapSet::new(mask).summary())
}

fn opt_caps(mask: Option<u64>) -> Val {
    match mask {
        Some(m) => Val::Text(caps_text(m)),
        None => Val::None("not in this kernel's status".into()),
    }
}

/// What the probe should have been allowed, from what the host read of its CapEff:
/// `None` where that is not decided (not tried, or a kernel-dependent case rootless).
fn expected(op: Op, eff: u64, rootless: bool) -> Option<bool> {
    if !caps::has(eff, op.cap()) {
        return Some(false);
    }
    if !rootless {
        return Some(true);
    }
    op.namespaced()
}

/// Every decided call matched what the host read of the capabilities: (holds, the calls
/// allowed, the calls refused).
fn matches(run: &Run<Seen>, rootless: bool) -> (bool, Vec<&'static str>, Vec<&'static str>) {
    let eff = sec(&run.host).cap_eff;
    let (mut ok, mut allowed, mut refused) = (true, Vec::new(), Vec::new());
    let mut decided = 0;
    for t in &run.inside.tried {
        if matches!(t.outcome, Outcome::NotTried(_)) {
            continue;
        }
        let got = t.outcome.allowed(t.op);
        match got {
            Some(true) => allowed.push(t.op.label()),
            Some(false) => refused.push(t.op.label()),
            None => ok = false,
        }
        if let Some(want) = expected(t.op, eff, rootless) {
            decided += 1;
            ok &= got == Some(want);
        }
    }
    (ok && decided > 0, allowed, refused)
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

fn sets_equal(a: &Security, b: &Security) -> bool {
    (a.cap_inh, a.cap_prm, a.cap_eff, a.cap_bnd, a.cap_amb)
        == (b.cap_inh, b.cap_prm, b.cap_eff, b.cap_bnd, b.cap_amb)
}

fn uid_text(s: &Security) -> String {
    let [r, e, sv, f] = s.uid;
    format!("{r} {e} {sv} {f}")
}

/// The host's read of helper `exec` (by its PID in the probe's namespace), and the run.
fn helper(run: &Run<ExecSeen, Vec<Proc>>, exec: Exec) -> Option<(&ExecRun, Option<&Proc>)> {
    let r = run.inside.runs.iter().find(|r| r.exec == exec)?;
    let host = run
        .host_extra
        .iter()
        .find(|p| p.nspid.last() == Some(&r.pid) && p.nspid.len() > 1);
    Some((r, host))
}

fn judge(o: &Obs, env: &Env) -> Judged {
    let rootless = env.rootless();
    let base = sec(&env.baseline);
    let (every, docker, none) = (&o.every, &o.docker, &o.none);
    let (eh, dh, nh) = (sec(&every.host), sec(&docker.host), sec(&none.host));
    let full = every.inside.view.id_limits.map(|l| l.full_caps());
    // What "every capability" is: nsx's own bounding set as root; the kernel's whole set
    // in the user namespace nsx made without root.
    let all = if rootless {
        full
    } else {
        base.cap_bnd.or(Some(base.cap_prm))
    };
    let docker_want = all.map(|a| caps::DOCKER_DEFAULT & a);
    let (every_ok, every_allowed, every_refused) = matches(every, rootless);
    let (docker_ok, docker_allowed, docker_refused) = matches(docker, rootless);
    let (none_ok, none_allowed, _) = matches(none, rootless);
    let clocks: Vec<&Outcome> = [every, docker, none]
        .iter()
        .flat_map(|r| r.inside.tried.iter())
        .filter(|t| t.op == Op::Clock)
        .map(|t| &t.outcome)
        .collect();
    let every_kernel = every.inside.view.kernel.clone().unwrap_or_default();
    let host_kernel = every.host.kernel.clone().unwrap_or_default();
    let minimal = crate::security::masks::minimal_dev_names(|_| true).len();
    let not_run = |why: &str| format!("not shown on this run: {why}");
    let exec_facts = exec_facts(o, all, docker_want);
    let mut facts = vec![
        Fact::new(
            "host-reads-cap-sets",
            format!(
                "the host, reading each probe's /proc/<pid>/status, finds the five sets the probe reads in its own /proc/self/status (CapEff: {}, {} and {} capabilities)",
                CapSet::new(eh.cap_eff).names.len(),
                CapSet::new(dh.cap_eff).names.len(),
                CapSet::new(nh.cap_eff).names.len()
            ),
            [every, docker, none]
                .iter()
                .all(|r| r.host.probe.security.is_some() && sets_equal(&sec(&r.host), &sec(&r.inside.view))),
            json!({ "every": [eh.cap_eff, sec(&every.inside.view).cap_eff], "docker": [dh.cap_eff, sec(&docker.inside.view).cap_eff], "none": [nh.cap_eff, sec(&none.inside.view).cap_eff] }),
        ),
        Fact::new(
            "every-cap-held",
            format!(
                "the first probe holds {} in its effective, permitted and bounding sets: {}",
                all.map_or("-".into(), |a| CapSet::new(a).summary()),
                if rootless {
                    "every capability the kernel has (cap_last_cap), in the user namespace nsx made"
                } else {
                    "every capability nsx itself holds (its own CapBnd)"
                }
            ),
            all.is_some_and(|a| {
                eh.cap_eff == a && eh.cap_prm == a && eh.cap_bnd == Some(a)
            }),
            json!({ "eff": eh.cap_eff, "prm": eh.cap_prm, "bnd": eh.cap_bnd, "all": all }),
        ),
        Fact::new(
            "every-cap-allows",
            if rootless {
                format!(
                    "with every capability of its own user namespace, {} went through; {} were refused: device nodes and the clock ask for the capability in the initial user namespace, which the probe does not have",
                    list(&every_allowed),
                    list(&every_refused)
                )
            } else {
                format!(
                    "with every capability, {} went through (the clock call only past the capability check: tick 0 is refused, so nothing changed)",
                    list(&every_allowed)
                )
            },
            every_ok && (rootless || every_refused.is_empty()),
            json!({ "tried": every.inside.tried }),
        ),
        Fact::new(
            "docker-default-set",
            format!(
                "the second probe keeps Docker's default set (moby oci/caps/defaults.go) in its effective, permitted and bounding sets, and nothing inheritable or ambient: {}",
                docker_want.map_or("-".into(), |w| CapSet::new(w).summary())
            ),
            docker_want.is_some_and(|w| {
                dh.cap_eff == w
                    && dh.cap_prm == w
                    && dh.cap_bnd == Some(w)
                    && dh.cap_inh == 0
                    && dh.cap_amb.unwrap_or(0) == 0
            }),
            json!({ "eff": dh.cap_eff, "prm": dh.cap_prm, "bnd": dh.cap_bnd, "inh": dh.cap_inh, "amb": dh.cap_amb, "want": docker_want }),
        ),
        Fact::new(
            "docker-set-splits",
            format!(
                "with Docker's set, {} went through and {} were refused: each call checks its one capability{}",
                list(&docker_allowed),
                list(&docker_refused),
                if rootless {
                    " (device nodes and the clock in the initial user namespace)"
                } else {
                    ""
                }
            ),
            docker_ok && !docker_allowed.is_empty() && !docker_refused.is_empty(),
            json!({ "tried": docker.inside.tried }),
        ),
        Fact::new(
            "no-caps-refuses-root",
            format!(
                "the third probe is uid {} (its own status) with CapEff {}: every call it tried was refused (EPERM; bind says EACCES); root's power is its capabilities, not its uid",
                sec(&none.inside.view).uid[1],
                CapSet::new(nh.cap_eff).summary()
            ),
            none_ok
                && none_allowed.is_empty()
                && nh.cap_eff == 0
                && sec(&none.inside.view).uid[1] == 0,
            json!({ "uid": sec(&none.inside.view).uid, "eff": nh.cap_eff, "tried": none.inside.tried }),
        ),
        Fact::new(
            "clock-never-changed",
            format!(
                "adjtimex(ADJ_TICK, tick 0) never changed the clock: it returned {}; the kernel checks CAP_SYS_TIME (EPERM), then refuses tick 0 (EINVAL) before it changes anything",
                clocks
                    .iter()
                    .map(|c| c.text(Op::Clock))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            clocks.len() == 3
                && clocks.iter().all(|c| {
                    matches!(c, Outcome::Failed(e) if e == "EINVAL" || e == "EPERM")
                }),
            json!({ "clock": clocks }),
        ),
        Fact::new(
            "privileged-adds",
            format!(
                "the first probe also has what --privileged adds to every capability: no seccomp filter (Seccomp {}), the host's {} /dev entries (a container's has {minimal}), and /sys mounted {}",
                sec(&every.inside.view).seccomp.map_or("-".into(), |s| s.to_string()),
                every_kernel.dev.len(),
                match every_kernel.sys_ro {
                    Some(true) => "read-only",
                    Some(false) => "read-write",
                    None => "nowhere",
                }
            ),
            sec(&every.inside.view).seccomp == Some(0)
                && every_kernel.sys_ro == Some(false)
                && every_kernel.dev_names() == host_kernel.dev_names()
                && every_kernel.dev.len() > minimal,
            json!({ "seccomp": sec(&every.inside.view).seccomp, "dev": every_kernel.dev.len(), "sys_ro": every_kernel.sys_ro }),
        ),
    ];
    match &o.exec {
        ExecObs::Ran { .. } => facts.extend(exec_facts),
        ExecObs::NotRun { why } => {
            facts.extend(EXEC_CLAIMS.iter().map(|(id, claim)| {
                Fact::new(id, *claim, false, json!({})).inconclusive(not_run(why))
            }))
        }
    }

    let mut steps = vec![
        caps_step(
            "every",
            if rootless {
                "every capability: the probe keeps all its user namespace gives"
            } else {
                "every capability: the probe keeps all nsx holds"
            },
            every,
            rootless,
            true,
        )
        .takeaway(format!(
            "with {}, {} went through",
            CapSet::new(eh.cap_eff).summary(),
            list(&every_allowed)
        ))
        .note(
            "--privileged gives a container every capability, and more: no seccomp filter, all of the host's devices in /dev, and /sys read-write; the rows below the calls show this probe has the same".to_string(),
        ),
        caps_step(
            "docker",
            "Docker's default set: capset() keeps 14",
            docker,
            rootless,
            false,
        )
        .takeaway(format!(
            "Docker's 14 kept {}; {} were refused",
            list(&docker_allowed),
            list(&docker_refused)
        )),
        caps_step("none", "none: capset() drops them all", none, rootless, false).takeaway(
            format!(
                "uid {} with no capability: every call was refused",
                nh.uid[0]
            ),
        ),
    ];
    let mut notes = Vec::new();
    match &o.exec {
        ExecObs::Ran { run } => steps.extend(exec_steps(run, &o.dir)),
        ExecObs::NotRun { why } => notes.push(format!(
            "the setuid, no_new_privs and ambient steps did not run: {why}"
        )),
    }
    for s in steps.iter_mut() {
        if s.id != "setuid" && s.id != "ambient" {
            s.notes.insert(
                0,
                format!(
                    "DIR is {}, a directory nsx made; the probe mounted a tmpfs of its own on it, in its own mount namespace",
                    o.dir
                ),
            );
        }
    }
    Judged {
        steps,
        facts,
        notes,
        takeaway: Some(format!(
            "uid 0 was the same in all three probes; what changed was CapEff ({}, {}, {}), and with it which calls the kernel allowed",
            CapSet::new(eh.cap_eff).summary(),
            CapSet::new(dh.cap_eff).names.len(),
            CapSet::new(nh.cap_eff).summary()
        )),
    }
}

/// The facts of the exec steps, as claimed when they did not run.
const EXEC_CLAIMS: [(&str, &str); 4] = [
    (
        "setuid-gains-root",
        "nobody running a setuid-root program gets euid 0 and the bounding set's capabilities",
    ),
    (
        "bounding-set-is-the-ceiling",
        "with Docker's bounding set, the same setuid-root program gets only Docker's 14",
    ),
    (
        "no-new-privs-keeps-uid",
        "after prctl(PR_SET_NO_NEW_PRIVS), the setuid bit counts for nothing",
    ),
    (
        "ambient-survives-exec",
        "nobody with net_bind_service ambient keeps it across execve of an ordinary program",
    ),
];

/// The facts of the exec steps (decided when they ran).
fn exec_facts(o: &Obs, all: Option<u64>, docker_want: Option<u64>) -> Vec<Fact> {
    let run = match &o.exec {
        ExecObs::Ran { run } => Some(run.as_ref()),
        ExecObs::NotRun { .. } => None,
    };
    let read = |exec: Exec| -> (Option<&ExecRun>, Security) {
        match run.and_then(|r| helper(r, exec)) {
            Some((r, h)) => (
                Some(r),
                h.and_then(|p| p.security.clone()).unwrap_or_default(),
            ),
            None => (None, Security::default()),
        }
    };
    let said = |r: Option<&ExecRun>| r.and_then(|r| r.said);
    let said_text = |r: Option<&ExecRun>| said(r).map_or("nothing".into(), |u| u.to_string());
    let (su, s) = read(Exec::Setuid);
    let (bu, b) = read(Exec::SetuidDockerBounding);
    let (nu, n) = read(Exec::SetuidNoNewPrivs);
    let (au, a) = read(Exec::Ambient);
    let (pu, p) = read(Exec::Plain);
    let nbs = 1u64 << CAP_NET_BIND_SERVICE;
    vec![
        Fact::new(
            "setuid-gains-root",
            format!(
                "nobody ran the setuid-root copy: the host reads Uid {} (real, effective, saved, fs) and CapEff {}, its whole bounding set; the program said euid {}",
                uid_text(&s),
                CapSet::new(s.cap_eff).summary(),
                said_text(su)
            ),
            s.uid[0] == NOBODY
                && s.uid[1] == 0
                && said(su) == Some(0)
                && all.is_some_and(|a| s.cap_eff == a && s.cap_bnd == Some(a)),
            json!({ "uid": s.uid, "eff": s.cap_eff, "said": said(su) }),
        ),
        Fact::new(
            "bounding-set-is-the-ceiling",
            format!(
                "with Docker's bounding set (and nothing inheritable), the same setuid-root program got euid {} and only CapEff {}: execve grants a setuid program nothing outside the bounding set",
                b.uid[1],
                CapSet::new(b.cap_eff).summary()
            ),
            b.uid[1] == 0
                && b.cap_inh == 0
                && said(bu) == Some(0)
                && docker_want.is_some_and(|w| {
                    b.cap_eff == w && b.cap_prm == w && b.cap_bnd == Some(w)
                })
                && all.is_some_and(|a| b.cap_eff != a),
            json!({ "uid": b.uid, "eff": b.cap_eff, "bnd": b.cap_bnd, "want": docker_want }),
        ),
        Fact::new(
            "no-new-privs-keeps-uid",
            format!(
                "after prctl(PR_SET_NO_NEW_PRIVS), the setuid bit counted for nothing: the host reads NoNewPrivs {}, Uid {} and CapEff {}; the program said euid {}",
                n.no_new_privs.map_or("-".into(), |v| u8::from(v).to_string()),
                uid_text(&n),
                CapSet::new(n.cap_eff).summary(),
                said_text(nu)
            ),
            n.no_new_privs == Some(true)
                && n.uid == [NOBODY; 4]
                && n.cap_eff == 0
                && n.cap_prm == 0
                && said(nu) == Some(NOBODY),
            json!({ "nnp": n.no_new_privs, "uid": n.uid, "eff": n.cap_eff, "said": said(nu) }),
        ),
        Fact::new(
            "ambient-survives-exec",
            format!(
                "nobody with net_bind_service ambient kept it across execve of an ordinary program (CapAmb {}, CapEff {}); without, the same program had CapEff {}",
                CapSet::new(a.cap_amb.unwrap_or(0)).summary(),
                CapSet::new(a.cap_eff).summary(),
                CapSet::new(p.cap_eff).summary()
            ),
            a.uid == [NOBODY; 4]
                && a.cap_amb == Some(nbs)
                && a.cap_eff == nbs
                && a.cap_prm == nbs
                && said(au) == Some(NOBODY)
                && p.uid == [NOBODY; 4]
                && p.cap_eff == 0
                && p.cap_amb == Some(0)
                && said(pu) == Some(NOBODY),
            json!({ "ambient": { "amb": a.cap_amb, "eff": a.cap_eff, "prm": a.cap_prm }, "plain": { "eff": p.cap_eff, "amb": p.cap_amb } }),
        ),
    ]
}

/// One caps probe: its sets read two ways, then its calls, each beside whether the host
/// reads the capability it needs in the probe's CapEff.
fn caps_step(id: &str, title: &str, run: &Run<Seen>, rootless: bool, privileged: bool) -> Step {
    let (h, i) = (sec(&run.host), sec(&run.inside.view));
    let mut rows = vec![
        Row::probe("uid", "status Uid", Val::Id(h.uid[0]), Val::Id(i.uid[0])),
        Row::probe(
            "effective",
            "status CapEff",
            caps_text(h.cap_eff),
            caps_text(i.cap_eff),
        )
        .key(),
        Row::probe(
            "permitted",
            "status CapPrm",
            caps_text(h.cap_prm),
            caps_text(i.cap_prm),
        ),
        Row::probe(
            "bounding",
            "status CapBnd",
            opt_caps(h.cap_bnd),
            opt_caps(i.cap_bnd),
        ),
        Row::probe(
            "inheritable",
            "status CapInh",
            caps_text(h.cap_inh),
            caps_text(i.cap_inh),
        ),
        Row::probe(
            "ambient",
            "status CapAmb",
            opt_caps(h.cap_amb),
            opt_caps(i.cap_amb),
        ),
    ];
    for t in &run.inside.tried {
        let cap = caps::name(t.op.cap());
        let held = if caps::has(h.cap_eff, t.op.cap()) {
            format!("{cap} held")
        } else {
            format!("no {cap}")
        };
        let mut shown = t.outcome.text(t.op);
        if rootless && t.outcome.allowed(t.op) == Some(false) && caps::has(h.cap_eff, t.op.cap()) {
            shown.push_str(" (initial namespace)");
        }
        rows.push(
            Row::probe(t.op.label(), "status CapEff", held, shown).apart(
                "the host reads the capability in the probe's CapEff; the probe made the call",
            ),
        );
    }
    if privileged {
        let (hk, ik) = (
            run.host.kernel.clone().unwrap_or_default(),
            run.inside.view.kernel.clone().unwrap_or_default(),
        );
        let seccomp = |s: &Security| {
            s.seccomp
                .map_or(Val::None("not read".into()), |v| Val::Num(v.into()))
        };
        let sys = |k: &observe::KernelFiles| match k.sys_ro {
            Some(true) => Val::text("read-only"),
            Some(false) => Val::text("read-write"),
            None => Val::None("no /sys".into()),
        };
        rows.push(Row::probe(
            "seccomp mode",
            "status Seccomp",
            seccomp(&h),
            seccomp(&i),
        ));
        rows.push(Row::own(
            "/dev",
            "readdir /dev",
            Val::Names(hk.dev_names()),
            Val::Names(ik.dev_names()),
        ));
        rows.push(Row::own("/sys", "statvfs /sys", sys(&hk), sys(&ik)));
    }
    kit::step(id, title, run, &run.inside.view, rows).extra(json!({ "tried": run.inside.tried }))
}

/// The setuid and ambient steps, from the exec probe.
fn exec_steps(run: &Run<ExecSeen, Vec<Proc>>, dir: &str) -> Vec<Step> {
    let row = |exec: Exec, what: &str, file: &str, f: &dyn Fn(&Security) -> Val| -> Row {
        let (host, inside) = match helper(run, exec) {
            Some((r, h)) => (
                h.and_then(|p| p.security.as_ref())
                    .map_or(Val::None("not read".into()), f),
                r.seen
                    .as_ref()
                    .and_then(|p| p.security.as_ref())
                    .map_or(Val::None("not read".into()), f),
            ),
            None => (Val::None("not run".into()), Val::None("not run".into())),
        };
        Row::probe(format!("{}: {what}", exec.short()), file, host, inside)
    };
    let said = |exec: Exec| -> Row {
        let v = match helper(run, exec) {
            Some((r, _)) => match (r.said, &r.failed) {
                (Some(u), _) => Val::Id(u),
                (None, Some(f)) => Val::text(f.clone()),
                (None, None) => Val::None("said nothing".into()),
            },
            None => Val::None("not run".into()),
        };
        Row::probe(
            format!("{}: geteuid()", exec.short()),
            "its standard output",
            Val::None("the program's own answer".into()),
            v,
        )
    };
    let uid = |s: &Security| Val::text(uid_text(s));
    let eff = |s: &Security| Val::text(caps_text(s.cap_eff));
    let bnd = |s: &Security| {
        s.cap_bnd
            .map_or(Val::None("-".into()), |m| Val::text(caps_text(m)))
    };
    let amb = |s: &Security| {
        s.cap_amb
            .map_or(Val::None("-".into()), |m| Val::text(caps_text(m)))
    };
    let nnp = |s: &Security| {
        s.no_new_privs
            .map_or(Val::None("-".into()), |v| Val::Num(v.into()))
    };
    let view = &run.inside.view;
    let ambient_fork =
        |a: &String| a.contains(Exec::Ambient.steps()) || a.contains(Exec::Plain.steps());
    let setuid_run = with_actions(run, |a| !ambient_fork(a));
    let ambient_run = with_actions(run, |a| !a.starts_with("fork()") || ambient_fork(a));
    let setuid = kit::step(
        "setuid",
        "setuid root, the bounding set as ceiling, and no_new_privs",
        &setuid_run,
        view,
        vec![
            row(Exec::Setuid, "Uid", "status Uid", &uid).key(),
            said(Exec::Setuid),
            row(Exec::Setuid, "CapEff", "status CapEff", &eff),
            row(Exec::SetuidDockerBounding, "Uid", "status Uid", &uid),
            row(Exec::SetuidDockerBounding, "CapBnd", "status CapBnd", &bnd),
            row(Exec::SetuidDockerBounding, "CapEff", "status CapEff", &eff),
            row(Exec::SetuidNoNewPrivs, "NoNewPrivs", "status NoNewPrivs", &nnp),
            row(Exec::SetuidNoNewPrivs, "Uid", "status Uid", &uid),
            said(Exec::SetuidNoNewPrivs),
            row(Exec::SetuidNoNewPrivs, "CapEff", "status CapEff", &eff),
        ],
    )
    .note(format!(
        "the probe (PID 1 of a new PID namespace, in its own mount namespace) mounted a tmpfs without nosuid on {dir} and put two copies of {} there, a 178-byte program that writes its geteuid() and waits: one setuid root, one plain; each row names a child that became nobody (65534) and ran one. Uid is real, effective, saved, file system",
        helper::NAME
    ))
    .takeaway(
        "a setuid-root program makes its caller root, with the bounding set's capabilities and none outside it; after no_new_privs the bit is ignored",
    );
    let ambient = kit::step(
        "ambient",
        "ambient: a capability kept across execve without root",
        &ambient_run,
        view,
        vec![
            row(Exec::Ambient, "Uid", "status Uid", &uid),
            row(Exec::Ambient, "CapAmb", "status CapAmb", &amb).key(),
            row(Exec::Ambient, "CapEff", "status CapEff", &eff),
            row(Exec::Plain, "CapAmb", "status CapAmb", &amb),
            row(Exec::Plain, "CapEff", "status CapEff", &eff),
        ],
    )
    .takeaway(
        "an ordinary program run by nobody gets only the ambient set: net_bind_service with it, nothing without",
    );
    vec![setuid, ambient]
}

/// The exec run with only the actions `keep` accepts: each of its two steps lists the
/// children it shows.
fn with_actions(run: &Run<ExecSeen, Vec<Proc>>, keep: impl Fn(&String) -> bool) -> Run<(), ()> {
    Run {
        inside: (),
        host: run.host.clone(),
        host_extra: (),
        actions: run.actions.iter().filter(|a| keep(a)).cloned().collect(),
        pid: run.pid,
    }
}

// ----------------------------------------------------------------- falsifiers

#[cfg(test)]
fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
    use super::engine::Falsifier as F;
    fn set_outcome(run: &mut Run<Seen>, op: Op, outcome: Outcome) {
        for t in run.inside.tried.iter_mut().filter(|t| t.op == op) {
            t.outcome = outcome.clone();
        }
    }
    fn host_sec(run: &mut Run<Seen>) -> &mut Security {
        run.host
            .probe
            .security
            .get_or_insert_with(Security::default)
    }
    fn helper_sec(o: &mut Obs, exec: Exec) -> Option<&mut Security> {
        let ExecObs::Ran { run } = &mut o.exec else {
            return None;
        };
        let pid = run.inside.runs.iter().find(|r| r.exec == exec)?.pid;
        run.host_extra
            .iter_mut()
            .find(|p| p.nspid.last() == Some(&pid))?
            .security
            .as_mut()
    }
    fn said(o: &mut Obs, exec: Exec, euid: u32) {
        if let ExecObs::Ran { run } = &mut o.exec {
            for r in run.inside.runs.iter_mut().filter(|r| r.exec == exec) {
                r.said = Some(euid);
            }
        }
    }
    vec![
        F {
            fact: "host-reads-cap-sets",
            what: "the host reads another CapEff for the every probe",
            change: |o, _| host_sec(&mut o.every).cap_eff ^= 1,
        },
        F {
            fact: "every-cap-held",
            what: "the every probe's bounding set lacks a capability",
            change: |o, _| {
                let s = host_sec(&mut o.every);
                s.cap_bnd = s.cap_bnd.map(|b| b & !(1 << CAP_CHOWN));
            },
        },
        F {
            fact: "every-cap-allows",
            what: "the every probe's sethostname got EPERM",
            change: |o, _| {
                set_outcome(
                    &mut o.every,
                    Op::Sethostname,
                    Outcome::Failed("EPERM".into()),
                )
            },
        },
        F {
            fact: "docker-default-set",
            what: "the docker probe kept CAP_SYS_ADMIN",
            change: |o, _| host_sec(&mut o.docker).cap_eff |= 1 << caps::SYS_ADMIN,
        },
        F {
            fact: "docker-set-splits",
            what: "the docker probe's mount went through",
            change: |o, _| set_outcome(&mut o.docker, Op::Mount, Outcome::Ok),
        },
        F {
            fact: "no-caps-refuses-root",
            what: "the none probe bound port 80",
            change: |o, _| set_outcome(&mut o.none, Op::BindLowPort, Outcome::Ok),
        },
        F {
            fact: "clock-never-changed",
            what: "the every probe's clock call succeeded",
            change: |o, _| set_outcome(&mut o.every, Op::Clock, Outcome::Ok),
        },
        F {
            fact: "privileged-adds",
            what: "the every probe runs under a seccomp filter",
            change: |o, _| {
                if let Some(s) = o.every.inside.view.probe.security.as_mut() {
                    s.seccomp = Some(2);
                }
            },
        },
        F {
            fact: "privileged-adds",
            what: "the every probe's /sys is read-only",
            change: |o, _| {
                if let Some(k) = o.every.inside.view.kernel.as_mut() {
                    k.sys_ro = Some(true);
                }
            },
        },
        F {
            fact: "setuid-gains-root",
            what: "the setuid copy ran with euid 65534",
            change: |o, _| {
                if let Some(s) = helper_sec(o, Exec::Setuid) {
                    s.uid[1] = NOBODY;
                }
            },
        },
        F {
            fact: "bounding-set-is-the-ceiling",
            what: "the setuid copy under Docker's bounding set got CAP_SYS_ADMIN",
            change: |o, _| {
                if let Some(s) = helper_sec(o, Exec::SetuidDockerBounding) {
                    s.cap_eff |= 1 << caps::SYS_ADMIN;
                }
            },
        },
        F {
            fact: "bounding-set-is-the-ceiling",
            what: "the setuid copy under Docker's bounding set had something inheritable",
            change: |o, _| {
                if let Some(s) = helper_sec(o, Exec::SetuidDockerBounding) {
                    s.cap_inh = 1 << 12;
                }
            },
        },
        F {
            fact: "no-new-privs-keeps-uid",
            what: "the setuid copy after no_new_privs said euid 0",
            change: |o, _| said(o, Exec::SetuidNoNewPrivs, 0),
        },
        F {
            fact: "ambient-survives-exec",
            what: "the ambient set was empty after execve",
            change: |o, _| {
                if let Some(s) = helper_sec(o, Exec::Ambient) {
                    s.cap_amb = Some(0);
                }
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_says_which_calls_a_set_allows() {
        let docker = caps::DOCKER_DEFAULT;
        assert_eq!(expected(Op::Chown, docker, false), Some(true));
        assert_eq!(expected(Op::Mount, docker, false), Some(false));
        assert_eq!(expected(Op::Clock, docker, false), Some(false));
        assert_eq!(expected(Op::BindLowPort, docker, false), Some(true));
        let all = caps::ALL;
        assert_eq!(expected(Op::Clock, all, false), Some(true));
        // In a user namespace of its own, the clock and device nodes stay out of reach.
        assert_eq!(expected(Op::Clock, all, true), Some(false));
        assert_eq!(expected(Op::Mknod, all, true), Some(false));
        assert_eq!(expected(Op::Mount, all, true), Some(true));
        assert_eq!(expected(Op::OpenByHandle, all, true), None);
        assert_eq!(expected(Op::OpenByHandle, 0, true), Some(false));
    }

    #[test]
    fn the_clock_counts_as_allowed_only_past_its_check() {
        let einval = Outcome::Failed("EINVAL".into());
        assert_eq!(einval.allowed(Op::Clock), Some(true));
        assert_eq!(einval.allowed(Op::Mount), None);
        assert_eq!(
            Outcome::Failed("EPERM".into()).allowed(Op::Clock),
            Some(false)
        );
        assert_eq!(Outcome::Ok.allowed(Op::Clock), Some(true));
        assert_eq!(Outcome::NotTried("x".into()).allowed(Op::Chown), None);
    }

    #[test]
    fn the_setuid_copy_is_refused_outside_a_tmpfs() {
        // The crate's own directory is on the build machine's disk, not a tmpfs.
        let e = on_a_tmpfs(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(
            e.to_string().contains("refusing to make a setuid file"),
            "{e}"
        );
        let shm = Path::new("/dev/shm");
        if nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        {
            on_a_tmpfs(shm).unwrap();
        }
    }

    #[test]
    fn every_op_names_a_capability_docker_splits() {
        let kept: Vec<bool> = Op::ALL
            .iter()
            .map(|op| caps::has(caps::DOCKER_DEFAULT, op.cap()))
            .collect();
        assert_eq!(kept, [false, false, true, true, true, false, false]);
    }
}
