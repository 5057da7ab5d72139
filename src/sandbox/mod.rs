//! Spawning the probe: a clone of nsx itself in new namespaces.
//!
//! The life of a probe, and why each step is there:
//!
//! 1. The parent creates three pipes (close-on-exec) and calls clone(2) with the
//!    namespace flags and SIGCHLD. nsx is single-threaded at that point, so the child is
//!    a plain copy of it, like fork(2), and runs the probe closure directly: no exec.
//! 2. The child asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG, prctl(2)), then
//!    blocks on the `go` pipe. If the parent died before the prctl, `go` reads EOF and the
//!    child exits: no orphan outlives nsx.
//! 3. Meanwhile the parent writes the user-namespace id maps when rootless
//!    (user_namespaces(7): only a process outside the namespace may write them) and
//!    anything else that must happen before the probe runs, then writes `go`.
//! 4. The child sets up what the spec asks for. Mounts happen only in a new mount
//!    namespace whose "/" was first made private (MS_REC|MS_PRIVATE, mount_namespaces(7)),
//!    so nothing can propagate to the host; the hostname is set only in a new UTS
//!    namespace. These checks are in the code path, not in the lessons.
//! 5. The probe's result goes to the parent as JSON over the `data` pipe. The child then
//!    waits for EOF on `release`: it must stay alive while the parent reads /proc/<pid>,
//!    because the host can only observe a live process.
//! 6. [`Child`] is a guard: dropping it without [`Child::finish`] SIGKILLs and reaps the
//!    child, so an error or a signal in the parent leaves no process behind.

mod join;
pub mod netlink;
pub mod signals;
pub mod sysvipc;
pub mod veth;

pub use join::Join;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{getgid, getuid, pipe2, Pid};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{sys, Context, Error, Result};
use crate::observe::{self, Subject, View};

/// What the probe's world should look like.
#[derive(Debug, Clone)]
pub struct Spec {
    /// CLONE_NEW* flags. When nsx is not root and this is not empty, CLONE_NEWUSER is
    /// added and the invoking user is mapped to root inside.
    pub namespaces: CloneFlags,
    /// Mount a fresh procfs on /proc (needs CLONE_NEWNS; with CLONE_NEWPID it shows
    /// only the new namespace's processes).
    pub mount_proc: bool,
    /// sethostname(2) inside (needs CLONE_NEWUTS).
    pub hostname: Option<String>,
    /// Which ids the parent maps into a new user namespace (see [`IdMap`]).
    pub id_map: IdMap,
    /// Namespaces the probe creates itself with unshare(2) after `go`, i.e. after the
    /// parent has prepared it: a cgroup namespace is then rooted at the cgroup the parent
    /// moved the probe into, and a time namespace gets its offsets before anyone enters.
    /// Only CLONE_NEWCGROUP and CLONE_NEWTIME: they are the two whose clone flag would come
    /// too early (CLONE_NEWTIME cannot even be given to clone(2): it overlaps CSIGNAL).
    pub unshare: CloneFlags,
    /// Clock offsets for the time namespace in `unshare` (needs CLONE_NEWTIME there).
    pub time_offsets: Option<TimeOffsets>,
    /// Namespaces of another process to join with setns(2) before the setup, as a pod's
    /// containers join the namespaces its sandbox holds.
    pub join: Option<Join>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            namespaces: CloneFlags::empty(),
            mount_proc: false,
            hostname: None,
            id_map: IdMap::default(),
            unshare: CloneFlags::empty(),
            time_offsets: None,
            join: None,
        }
    }
}

/// The id maps the parent writes for a new user namespace (user_namespaces(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMap {
    /// The invoking uid and gid become 0 inside, one id each: all an unprivileged parent
    /// may map (`0 <uid> 1`).
    #[default]
    Invoker,
    /// Ids 0..count inside are `uid..uid+count` (and `gid..`) outside, the way a runtime
    /// maps a container to a range from /etc/subuid. Only root may write such a map. The
    /// probe then switches to uid and gid 0 inside (setresuid/setresgid), because a map
    /// alone does not change who a process is: a probe cloned by root stays host uid 0
    /// (the owner of every root file) until it takes on a mapped id.
    Range { uid: u32, gid: u32, count: u32 },
    /// Nothing is written: no id is mapped, and the kernel shows every id as the overflow
    /// uid/gid (/proc/sys/kernel/overflowuid, usually 65534).
    Unmapped,
}

/// Offsets of a new time namespace's clocks from the host's, in whole seconds
/// (time_namespaces(7): /proc/<pid>/timens_offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOffsets {
    pub monotonic_secs: i64,
    pub boottime_secs: i64,
}

/// CLONE_NEWTIME as a CloneFlags value (nix 0.32 has no constant for it).
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

impl Spec {
    pub fn new(namespaces: CloneFlags) -> Self {
        Spec {
            namespaces,
            ..Spec::default()
        }
    }

    /// The flags clone(2) will get, user namespace included.
    pub fn clone_flags(&self) -> CloneFlags {
        let mut flags = self.namespaces;
        let wants_namespaces = !flags.is_empty() || !self.unshare.is_empty();
        // A probe that joins a user namespace gets its capabilities there, not from one
        // of its own.
        let joins_user = self.join.as_ref().is_some_and(Join::joins_user);
        if wants_namespaces && !getuid().is_root() && !joins_user {
            flags |= CloneFlags::CLONE_NEWUSER;
        }
        flags
    }

    fn check(&self) -> Result<()> {
        let ns = self.namespaces;
        let late = CloneFlags::CLONE_NEWCGROUP | CLONE_NEWTIME;
        if !late.contains(self.unshare) {
            return Err(Error::Other(format!(
                "internal: the probe may only unshare CLONE_NEWCGROUP and CLONE_NEWTIME itself, not {}",
                flag_names(self.unshare.difference(late))
            )));
        }
        if self.time_offsets.is_some() && !self.unshare.contains(CLONE_NEWTIME) {
            return Err(Error::Other(
                "internal: time offsets need CLONE_NEWTIME in Spec::unshare".into(),
            ));
        }
        if self.id_map != IdMap::Invoker && !self.clone_flags().contains(CloneFlags::CLONE_NEWUSER)
        {
            return Err(Error::Other(
                "internal: an id map needs a new user namespace".into(),
            ));
        }
        if matches!(self.id_map, IdMap::Range { .. }) && !getuid().is_root() {
            return Err(Error::Other(
                "internal: only root may map a range of ids".into(),
            ));
        }
        if self.mount_proc && !ns.contains(CloneFlags::CLONE_NEWNS) {
            return Err(Error::Other(
                "internal: mounting /proc needs a new mount namespace".into(),
            ));
        }
        if self.hostname.is_some() && !ns.contains(CloneFlags::CLONE_NEWUTS) {
            return Err(Error::Other(
                "internal: setting the hostname needs a new UTS namespace".into(),
            ));
        }
        if let Some(join) = &self.join {
            join.check(ns)?;
        }
        Ok(())
    }
}

/// `CLONE_NEWPID | CLONE_NEWNS`, or `none` for a plain fork.
pub fn flag_names(flags: CloneFlags) -> String {
    const NAMES: [(CloneFlags, &str); 8] = [
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
        (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
        (
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            "CLONE_NEWTIME",
        ),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "no new namespaces".to_string()
    } else {
        names.join(" | ")
    }
}

/// The probe's side of the sandbox, handed to the probe closure.
pub struct Inside {
    private_mounts: bool,
    actions: Vec<String>,
}

impl Inside {
    /// What the probe sees of itself: `observe(/proc, self)`.
    pub fn observe(&self) -> Result<View> {
        observe::observe(Path::new("/proc"), Subject::SelfProcess)
    }

    /// Records a step the probe took, for the lesson's action list.
    pub fn action(&mut self, text: impl Into<String>) {
        self.actions.push(text.into());
    }

    /// True when this probe runs in an nsx-made mount namespace whose "/" is private.
    pub fn mounts_are_private(&self) -> bool {
        self.private_mounts
    }

    /// Mounts a tmpfs named `source` on `target`. Refused unless the probe is in its own
    /// mount namespace with private propagation: a mount here can never reach the host.
    pub fn mount_tmpfs(&mut self, source: &str, target: &Path) -> Result<()> {
        if !self.private_mounts {
            return Err(Error::Other(
                "internal: refusing to mount outside a private mount namespace".into(),
            ));
        }
        Self::mount_tmpfs_quiet(source, target)?;
        self.action(format!("mount -t tmpfs {source} {}", target.display()));
        Ok(())
    }
}

impl Inside {
    /// Marks a mount nsx made (at `target`) as shared, so mounts below it propagate to
    /// its peers. Refused outside a private nsx mount namespace: there the only peers
    /// are copies inside this namespace's own descendants.
    pub fn make_shared(&mut self, target: &Path) -> Result<()> {
        if !self.private_mounts {
            return Err(Error::Other(
                "internal: refusing to change propagation outside a private mount namespace".into(),
            ));
        }
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .ctx("mount --make-shared", target.display())?;
        self.action(format!("mount --make-shared {}", target.display()));
        Ok(())
    }

    /// Runs `f` in a grandchild with a new mount namespace (CLONE_NEWNS), first making
    /// its "/" private when `make_private` is true, and waits for it. Only from inside a
    /// private nsx mount namespace: whatever propagates out of the grandchild lands here,
    /// in a namespace the host never shares, and dies with it.
    pub fn in_new_mount_ns(
        &mut self,
        make_private: bool,
        f: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if !self.private_mounts {
            return Err(Error::Other(
                "internal: nested mount namespaces only inside a private one".into(),
            ));
        }
        match raw_clone(CloneFlags::CLONE_NEWNS).ctx("clone", "CLONE_NEWNS")? {
            None => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: as in child_main.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                    let private = if make_private {
                        mount(
                            None::<&str>,
                            "/",
                            None::<&str>,
                            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                            None::<&str>,
                        )
                        .is_ok()
                    } else {
                        true
                    };
                    if private && f().is_ok() {
                        0
                    } else {
                        1
                    }
                }))
                .unwrap_or(101);
                // SAFETY: see child_main.
                unsafe { libc::_exit(code) }
            }
            Some(pid) => {
                let status = loop {
                    match waitpid(pid, None) {
                        Err(Errno::EINTR) => continue,
                        other => break other.ctx("waitpid", pid)?,
                    }
                };
                self.action(format!(
                    "clone(CLONE_NEWNS) = {pid}{}: {}",
                    if make_private {
                        ", mount --make-rprivate /"
                    } else {
                        ", / left as inherited"
                    },
                    describe(status)
                ));
                match status {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    other => Err(Error::Other(format!(
                        "the nested mount namespace step failed: {}",
                        describe(other)
                    ))),
                }
            }
        }
    }

    /// mount(2) of anything, recorded as `shown`. Refused unless the probe is in its own
    /// mount namespace with private propagation, like every mount nsx makes.
    pub fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
        shown: impl Into<String>,
    ) -> Result<()> {
        if !self.private_mounts {
            return Err(Error::Other(
                "internal: refusing to mount outside a private mount namespace".into(),
            ));
        }
        mount(Some(source), target, fstype, flags, data).ctx(
            &format!("mount {}", fstype.unwrap_or("--bind")),
            target.display(),
        )?;
        self.action(shown);
        Ok(())
    }

    /// Mounts the cgroup hierarchy named by `options` (v1: its controllers, e.g. "memory",
    /// or "none,name=systemd"; v2: `None`) on `target`, through [`Inside::mount`], so only
    /// in a private nsx mount namespace. cgroup_namespaces(7): inside a cgroup namespace
    /// the mount's root is the namespace's root cgroup, not the hierarchy's.
    pub fn mount_cgroup(&mut self, target: &Path, options: Option<&str>) -> Result<()> {
        let fstype = if options.is_some() {
            "cgroup"
        } else {
            "cgroup2"
        };
        let shown = match options {
            Some(o) => format!("mount -t cgroup -o {o} cgroup {}", target.display()),
            None => format!("mount -t cgroup2 cgroup2 {}", target.display()),
        };
        // mount(2): cgroupfs needs no device; v1 selects the hierarchy by its controllers.
        self.mount(
            fstype,
            target,
            Some(fstype),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            options,
            shown,
        )
    }

    /// Mounts a tmpfs without recording it (for nested children that report nothing).
    /// Callers are inside a private mount namespace: [`Inside::mount_tmpfs`] checks, and
    /// [`Inside::in_new_mount_ns`] only runs inside one.
    pub fn mount_tmpfs_quiet(source: &str, target: &Path) -> Result<()> {
        // mount(2): a tmpfs needs no device; nosuid/nodev as container runtimes use.
        mount(
            Some(source),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("size=1m,mode=0755"),
        )
        .ctx("mount tmpfs", target.display())
    }
}

// The temporary directories of the lessons (made private and unpredictable, swept
// through descriptors) live in `crate::tmp`; these names keep the lessons' imports.
pub use crate::tmp::{sweep_temp_dirs, TempDir};

/// `nsx-4242-mount` -> 4242
pub fn leftover_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("nsx-")?;
    let (pid, what) = rest.split_once('-')?;
    if what.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// True when `pid` is alive and runs nsx (its comm starts with "nsx").
pub fn is_nsx_process(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("nsx"))
}

/// What the probe sends back: its result, or the error that stopped it.
#[derive(Serialize, Deserialize)]
enum Message<T> {
    Ok {
        actions: Vec<String>,
        value: T,
    },
    Err {
        op: String,
        target: String,
        errno: i32,
        text: String,
    },
}

/// How a probe ended up: it reported, or it exited first (and was reaped).
#[derive(Debug)]
pub enum Outcome<T> {
    Reported(T),
    Exited(WaitStatus),
}

/// The parent's end of one of a probe's pipes. While it is open its descriptor is listed
/// in `PARENT_ENDS`, and a probe cloned meanwhile closes every listed one first
/// ([`close_parent_ends`]): a probe holding another probe's `release` pipe would keep
/// that one from exiting until it exits itself, and one holding another's `go` pipe
/// would keep it from seeing EOF if nsx died.
struct End(File);

impl End {
    fn new(fd: OwnedFd) -> End {
        PARENT_ENDS.with(|e| e.borrow_mut().push(fd.as_raw_fd()));
        End(File::from(fd))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        // The File closes the descriptor right after this: unlist it first, so a later
        // descriptor with the same number is never closed by a probe.
        let fd = self.0.as_raw_fd();
        PARENT_ENDS.with(|e| e.borrow_mut().retain(|&f| f != fd));
    }
}

thread_local! {
    static PARENT_ENDS: std::cell::RefCell<Vec<std::os::fd::RawFd>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// In a new probe: closes the copies of other probes' pipe ends it inherited from nsx.
fn close_parent_ends() {
    for fd in PARENT_ENDS.with(|e| std::mem::take(&mut *e.borrow_mut())) {
        // SAFETY: fd is a pipe end nsx opened and this process inherited; nothing in this
        // process uses it (the File that owns it in the parent is never dropped here, as a
        // probe leaves through _exit).
        unsafe { libc::close(fd) };
    }
}

/// A probe process. Dropping it kills and reaps the process.
pub struct Child {
    pid: Pid,
    go: Option<End>,
    data: Option<End>,
    release: Option<End>,
    reaped: bool,
    /// The clone flags, user namespace included when nsx added one.
    flags: CloneFlags,
    id_map: IdMap,
    /// What was done to make this child, in order, parent and child side.
    pub actions: Vec<String>,
}

/// Clones a probe into the namespaces of `spec`; `probe` runs inside once [`Child::go`] is
/// called. The child is held until then, so the parent can prepare (id maps, cgroups).
pub fn spawn<T, F>(spec: &Spec, probe: F) -> Result<Child>
where
    T: Serialize,
    F: FnOnce(&mut Inside) -> Result<T>,
{
    spec.check()?;
    signals::check()?;
    ensure_single_threaded()?;
    let flags = spec.clone_flags();
    let parent = nix::unistd::getpid();

    let (go_r, go_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "go")?;
    let (data_r, data_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "data")?;
    let (release_r, release_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "release")?;

    // A probe that joins a user namespace is cloned from inside it by a helper, so that
    // nsx itself never enters it (join::clone_in_user_namespace_of).
    let cloned = match spec.join.filter(Join::joins_user) {
        Some(join) => join::clone_in_user_namespace_of(join.pid, flags)?,
        None => {
            raw_clone(flags).map_err(|e| rootless_refusal(flags, "clone", &flag_names(flags), e))?
        }
    };
    match cloned {
        None => {
            drop((go_w, data_r, release_w));
            child_main(spec, flags, parent, probe, go_r, data_w, release_r)
        }
        Some(pid) => {
            drop((go_r, data_w, release_r));
            let mut child = Child {
                pid,
                go: Some(End::new(go_w)),
                data: Some(End::new(data_r)),
                release: Some(End::new(release_w)),
                reaped: false,
                flags,
                id_map: spec.id_map,
                actions: vec![format!("clone({} | SIGCHLD) = {pid}", flag_names(flags))],
            };
            if flags.contains(CloneFlags::CLONE_NEWUSER) {
                child.write_id_maps()?;
            }
            Ok(child)
        }
    }
}

impl Child {
    /// The probe's PID as the host sees it.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Lets the probe run, waits for its result, and returns it. The probe stays alive
    /// until [`Child::finish`].
    pub fn run<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.go()?;
        let buf = self.read_data("the probe's data pipe")?;
        if buf.is_empty() {
            // The probe died before writing its report (an OOM kill, a signal): the status
            // is the news, and run_or_exit hands it to the lesson as an outcome.
            let status = self.wait()?;
            return Err(Error::ProbeExited(status));
        }
        match serde_json::from_slice::<Message<T>>(&buf) {
            Ok(Message::Ok { actions, value }) => {
                self.actions.extend(actions);
                Ok(value)
            }
            Ok(Message::Err {
                op,
                target,
                errno,
                text,
            }) => Err(if errno != 0 {
                // In a user namespace nsx made, EPERM on a mount or sethostname means the
                // namespace got no capabilities (an LSM restriction): not supported here.
                rootless_refusal(self.flags, &op, &target, Errno::from_raw(errno))
            } else {
                Error::Other(text)
            }),
            Err(e) => Err(Error::Other(format!(
                "the probe's report is not valid JSON: {e}"
            ))),
        }
    }

    /// Lets the probe run without waiting for its result, for a parent that takes part in
    /// what the probe does (answers its connection, say); [`Child::run`] then collects
    /// the result. Calling it twice does nothing.
    pub fn go(&mut self) -> Result<()> {
        if let Some(mut go) = self.go.take() {
            match retry(|| go.0.write(b"g")) {
                Ok(_) => {}
                // EPIPE (nsx ignores SIGPIPE): the probe died before it was told to go, e.g.
                // OOM-killed in a tiny memory cgroup by a page it touched while still
                // starting. Its status is the news, not a closed standard output.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    let status = self.wait()?;
                    return Err(Error::ProbeExited(status));
                }
                Err(e) => return Err(e).ctx("write", "the probe's go pipe"),
            }
        }
        Ok(())
    }

    /// Like [`Child::run`], but a probe that dies before reporting (an OOM kill, a
    /// signal, a failed fork) is an outcome to show, not an error.
    pub fn run_or_exit<T: DeserializeOwned>(&mut self) -> Result<Outcome<T>> {
        match self.run() {
            Ok(value) => Ok(Outcome::Reported(value)),
            Err(Error::ProbeExited(status)) => Ok(Outcome::Exited(status)),
            Err(e) => Err(e),
        }
    }

    /// For a child that ends by exec'ing a command (`nsx run`): lets it run and waits
    /// until it has exec'd. The data pipe is close-on-exec (pipe2(2) O_CLOEXEC), so EOF
    /// with nothing read means execve(2) succeeded and the child *is* the command now; a
    /// report means its setup or the exec failed, and that error is returned.
    pub fn go_exec(&mut self) -> Result<()> {
        // A child killed before it could read `go` (an OOM kill in a tiny --memory) is
        // Error::ProbeExited with its status, as for a probe.
        self.go()?;
        let buf = self.read_data("the child's data pipe")?;
        if buf.is_empty() {
            // The exec'd command does not hold the release pipe (close-on-exec) either.
            self.release.take();
            return Ok(());
        }
        match serde_json::from_slice::<Message<()>>(&buf) {
            Ok(Message::Err {
                op,
                target,
                errno,
                text,
            }) => Err(if errno != 0 {
                sys(op, target, Errno::from_raw(errno))
            } else {
                Error::Other(text)
            }),
            _ => Err(Error::Other(
                "internal: the child reported instead of exec'ing".into(),
            )),
        }
    }

    /// Everything the child writes to the data pipe, until it closes it (by exiting,
    /// exec'ing, or after its report). Plain read(2)s: std's read_to_end would first ask
    /// statx(2) and lseek(2) for the size of a pipe.
    fn read_data(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let Some(mut data) = self.data.take() else {
            return Ok(buf);
        };
        let mut chunk = [0u8; 4096];
        loop {
            match data.0.read(&mut chunk) {
                Ok(0) => return Ok(buf),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
                Err(e) => return Err(e).ctx("read", what),
            }
        }
    }

    /// Reaps the child if it has exited (waitpid(2) with WNOHANG), without blocking.
    pub fn try_wait(&mut self) -> Result<Option<WaitStatus>> {
        if self.reaped {
            return Err(Error::Other(
                "internal: the child was already reaped".into(),
            ));
        }
        match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => Ok(None),
            Ok(status) => {
                self.reaped = true;
                Ok(Some(status))
            }
            Err(e) => Err(sys("waitpid", self.pid, e)),
        }
    }

    /// What the host sees of the probe, through its own /proc.
    pub fn observe_from_host(&self) -> Result<View> {
        observe::observe(Path::new("/proc"), Subject::Pid(self.pid()))
    }

    /// Releases the probe without waiting for it to exit: tearing down its namespaces
    /// (a mount or PID namespace goes away with its last process) then overlaps with the
    /// lesson's next step. [`reap_released`] collects it; so does the end of the lesson.
    pub fn release(mut self) {
        self.release.take();
        RELEASED.with(|r| r.borrow_mut().push(self.pid));
        self.reaped = true; // the RELEASED list owns the reaping now
    }

    /// Releases the probe and reaps it.
    pub fn finish(mut self) -> Result<WaitStatus> {
        self.release.take();
        self.wait()
    }

    fn wait(&mut self) -> Result<WaitStatus> {
        self.release.take();
        loop {
            match waitpid(self.pid, None) {
                Ok(status) => {
                    self.reaped = true;
                    return Ok(status);
                }
                Err(Errno::EINTR) => signals::check()?,
                Err(e) => return Err(sys("waitpid", self.pid, e)),
            }
        }
    }

    /// user_namespaces(7): only a process outside the namespace (here the parent) may
    /// write its maps, once. [`IdMap::Invoker`]: `setgroups` = deny (required before an
    /// unprivileged gid_map), then the invoking uid and gid become 0 inside.
    /// [`IdMap::Range`] (root): a range, with setgroups left allowed so the probe can drop
    /// the host's supplementary groups. [`IdMap::Unmapped`]: nothing.
    fn write_id_maps(&mut self) -> Result<()> {
        let (uid, gid) = (getuid(), getgid());
        let dir = format!("/proc/{}", self.pid);
        let writes = match self.id_map {
            IdMap::Invoker => vec![
                ("setgroups", "deny".to_string()),
                ("uid_map", format!("0 {uid} 1")),
                ("gid_map", format!("0 {gid} 1")),
            ],
            IdMap::Range { uid, gid, count } => vec![
                ("uid_map", format!("0 {uid} {count}")),
                ("gid_map", format!("0 {gid} {count}")),
            ],
            IdMap::Unmapped => {
                self.actions
                    .push(format!("(no uid_map or gid_map written to {dir})"));
                vec![]
            }
        };
        for (file, text) in writes {
            let path = format!("{dir}/{file}");
            std::fs::write(&path, &text).map_err(|e| {
                rootless_refusal(
                    CloneFlags::CLONE_NEWUSER,
                    "write",
                    &path,
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?;
            self.actions.push(format!("echo '{text}' > {path}"));
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // The probe is ours (we cloned it and have not reaped it, so the PID cannot
            // have been reused): kill it and reap it.
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

thread_local! {
    static RELEASED: std::cell::RefCell<Vec<Pid>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reaps every probe handed to [`Child::release`]. Each was told to exit, so this only
/// waits for the kernel to finish tearing it down; a probe that is somehow still alive
/// after its release is killed (it is ours: not yet reaped, its PID cannot be reused).
pub fn reap_released() {
    let pids = RELEASED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for pid in pids {
        // Interrupted while waiting (Ctrl-C): do not wait politely any more.
        while let Err(Errno::EINTR) = waitpid(pid, None) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// A kernel refusal to let an unprivileged user create a user namespace or map ids in it
/// (EPERM, EACCES, ENOSPC, from a sysctl, an LSM such as AppArmor, or a seccomp filter
/// in an outer container) means "not supported here" (exit 77) with the reason and the
/// fix; any other failure stays an error.
pub fn rootless_refusal(flags: CloneFlags, op: &str, target: &str, errno: Errno) -> Error {
    let refused = matches!(errno, Errno::EPERM | Errno::EACCES | Errno::ENOSPC);
    if flags.contains(CloneFlags::CLONE_NEWUSER) && refused {
        let hint = crate::error::explain(op, target, errno);
        let (cause, fix) = match hint {
            Some(h) => (h.cause, h.fix),
            None => (
                "this kernel or its security policy does not let an unprivileged user create user namespaces".to_string(),
                "run nsx as root, or see `nsx doctor`".to_string(),
            ),
        };
        return Error::Unsupported {
            reason: format!("{op} {target}: {errno} ({cause})"),
            fix,
        };
    }
    sys(op, target, errno)
}

/// "exited with status 3", "killed by SIGKILL"
pub fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
        other => format!("{other:?}"),
    }
}

/// clone(2) without a new stack: in a single-threaded process the child continues on a
/// copy-on-write copy of the caller's stack, exactly like fork(2), but already inside the
/// new namespaces (and, with CLONE_NEWPID, as PID 1 of its own PID namespace, which
/// unshare(2) cannot give the caller itself).
pub fn raw_clone(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    let bits = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: no CLONE_VM and a null stack make this fork(2)-like; nsx checked that it is
    // single-threaded, so no lock held by another thread is copied into the child.
    let ret = unsafe { libc::syscall(libc::SYS_clone, bits, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

fn ensure_single_threaded() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .ctx("readdir", "/proc/self/task")?
        .count();
    if threads != 1 {
        return Err(Error::Other(format!(
            "internal: nsx has {threads} threads; cloning a probe is only safe from a single-threaded process"
        )));
    }
    Ok(())
}

fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The child: never returns.
fn child_main<T, F>(
    spec: &Spec,
    flags: CloneFlags,
    parent: Pid,
    probe: F,
    go: OwnedFd,
    data: OwnedFd,
    release: OwnedFd,
) -> !
where
    T: Serialize,
    F: FnOnce(&mut Inside) -> Result<T>,
{
    // A panic must never unwind out of here into the parent's code paths.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // prctl(2): SIGKILL us when the parent dies; the parent may be gone already,
        // in which case the go pipe reads EOF below.
        // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        signals::reset_in_child();
        close_parent_ends();
        let mut go = File::from(go);
        let mut byte = [0u8; 1];
        if !matches!(retry(|| go.read(&mut byte)), Ok(1)) {
            return 1;
        }
        let mut inside = Inside {
            private_mounts: false,
            actions: Vec::new(),
        };
        let joined = match &spec.join {
            Some(join) => join.enter(&mut inside),
            None => Ok(()),
        };
        let result = joined
            .and_then(|()| setup(spec, flags, parent, &mut inside))
            .and_then(|()| probe(&mut inside));
        let message = match result {
            Ok(value) => Message::Ok {
                actions: std::mem::take(&mut inside.actions),
                value,
            },
            Err(e) => {
                let (op, target, errno) = match &e {
                    Error::Sys(s) => (s.op.clone(), s.target.clone(), s.errno as i32),
                    _ => (String::new(), String::new(), 0),
                };
                Message::Err {
                    op,
                    target,
                    errno,
                    text: e.to_string(),
                }
            }
        };
        // One write(2): the pipe buffer (64 KiB, pipe(7)) holds a whole report, and the
        // parent reads until EOF.
        let Ok(bytes) = serde_json::to_vec(&message) else {
            return 1;
        };
        let mut data = File::from(data);
        if data.write_all(&bytes).is_err() {
            return 1;
        }
        drop(data);
        // Stay alive until the parent has looked at us from outside.
        let mut release = File::from(release);
        let _ = retry(|| release.read(&mut byte));
        0
    }))
    .unwrap_or(101);
    // SAFETY: _exit skips the parent's atexit handlers and buffered output, which belong
    // to the parent.
    unsafe { libc::_exit(code) }
}

/// Runs in the child before the probe.
fn setup(spec: &Spec, flags: CloneFlags, parent: Pid, inside: &mut Inside) -> Result<()> {
    if let IdMap::Range { uid, gid, .. } = spec.id_map {
        become_mapped_root(parent, inside, uid, gid)?;
    }
    if !spec.unshare.is_empty() {
        // unshare(2): the namespace is created now, after the parent prepared the probe.
        // A cgroup namespace takes the caller's current cgroup as its root
        // (cgroup_namespaces(7)); a time namespace is created for the caller's *children*
        // only (time_namespaces(7)), which is what lets its offsets be set first.
        nix::sched::unshare(spec.unshare).ctx("unshare", flag_names(spec.unshare))?;
        inside.action(format!("unshare({})", flag_names(spec.unshare)));
    }
    if spec.unshare.contains(CLONE_NEWTIME) {
        enter_new_time_ns(spec.time_offsets, inside)?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNS) {
        let before = root_propagation();
        // mount_namespaces(7): a new mount namespace starts as a copy whose mounts keep
        // their propagation, so a shared "/" (systemd makes it shared) would carry every
        // mount made here back to the host. Make the whole tree private first.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx("mount --make-rprivate", "/")?;
        inside.private_mounts = true;
        inside.action(format!("mount --make-rprivate /   (it was {before})"));
    }
    if spec.mount_proc {
        // proc(5): a procfs shows the PID namespace of the process that mounted it.
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .ctx("mount proc", "/proc")?;
        inside.action("mount -t proc proc /proc");
    }
    if let Some(name) = &spec.hostname {
        // uts_namespaces(7): the hostname belongs to the UTS namespace, a new one here.
        nix::unistd::sethostname(name).ctx("sethostname", name)?;
        inside.action(format!("sethostname(\"{name}\")"));
    }
    Ok(())
}

/// [`IdMap::Range`]: take on uid and gid 0 inside, which the kernel stores as the mapped
/// host ids. credentials(7): groups first (setgroups needs CAP_SETGID, and the host's
/// supplementary groups are unmapped here), then the gid, then the uid. The probe keeps its
/// capabilities in the new namespace (capabilities(7): they are cleared only when a uid
/// that *is* root in that namespace changes to non-root). prctl(2): changing credentials
/// clears the parent-death signal, so it is set again, and if the parent died meanwhile
/// the probe exits.
fn become_mapped_root(parent: Pid, inside: &mut Inside, uid: u32, gid: u32) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    setgroups(&[]).ctx("setgroups", "[]")?;
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).ctx("setresgid", 0)?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).ctx("setresuid", 0)?;
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // proc(5): the id change also made the probe non-dumpable, which turns its /proc/self
    // files into host root's, so the probe could no longer write its own (timens_offsets,
    // for one). It holds nothing secret: dumpable again, as runtimes do.
    // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    if nix::unistd::getppid() != parent {
        return Err(Error::Other(
            "the parent exited while the probe started".into(),
        ));
    }
    inside.action(format!(
        "setgroups([]); setresgid(0, 0, 0); setresuid(0, 0, 0)   (the host sees gid {gid}, uid {uid})"
    ));
    Ok(())
}

/// time_namespaces(7): unshare(CLONE_NEWTIME) made a namespace for the probe's future
/// children (/proc/self/ns/time_for_children). Its offsets can be written only before the
/// first process is in it, so write them now, then move the probe itself in with setns(2)
/// on that link: no extra fork, and the host keeps observing the same PID.
fn enter_new_time_ns(offsets: Option<TimeOffsets>, inside: &mut Inside) -> Result<()> {
    if let Some(off) = offsets {
        let path = "/proc/self/timens_offsets";
        for line in [
            format!("monotonic {} 0", off.monotonic_secs),
            format!("boottime {} 0", off.boottime_secs),
        ] {
            // One record per write: "<clock> <secs> <nanosecs>\n".
            std::fs::write(path, format!("{line}\n")).ctx("write", path)?;
            inside.action(format!("echo '{line}' > {path}"));
        }
    }
    let link = "/proc/self/ns/time_for_children";
    let fd = File::open(link).ctx("open", link)?;
    // setns(2) into a time namespace needs a single-threaded caller (the probe is) and
    // CAP_SYS_ADMIN in the namespace's owner; from here on its offsets are frozen.
    nix::sched::setns(&fd, CLONE_NEWTIME).ctx("setns", link)?;
    inside.action(format!("setns({link}, CLONE_NEWTIME)"));
    Ok(())
}

/// Propagation of "/" in the caller's mount namespace, for the action log.
fn root_propagation() -> String {
    std::fs::File::open("/proc/self/mountinfo")
        .ok()
        .and_then(|f| <procfs::process::MountInfos as procfs::FromRead>::from_read(f).ok())
        .map(|m| observe::summarize_mounts(&m).root_propagation)
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_user_namespace_is_unsupported_not_a_failure() {
        let user = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID;
        for errno in [Errno::EPERM, Errno::EACCES, Errno::ENOSPC] {
            let e = rootless_refusal(user, "clone", "CLONE_NEWUSER | CLONE_NEWPID", errno);
            assert_eq!(e.exit_code(), 77, "{e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
        let e = rootless_refusal(user, "write", "/proc/42/uid_map", Errno::EPERM);
        assert!(
            e.to_string()
                .contains("apparmor_restrict_unprivileged_userns"),
            "{e}"
        );
        // As root (no user namespace asked for) an EPERM is a plain failure.
        assert_eq!(
            rootless_refusal(CloneFlags::CLONE_NEWPID, "clone", "x", Errno::EPERM).exit_code(),
            1
        );
        assert_eq!(
            rootless_refusal(user, "clone", "x", Errno::ENOMEM).exit_code(),
            1
        );
    }

    #[test]
    fn leftovers_are_recognised_by_name() {
        assert_eq!(leftover_owner("nsx-4242-mount"), Some(4242));
        assert_eq!(leftover_owner("nsx-4242-"), None);
        assert_eq!(leftover_owner("nsx-test-bin1234"), None);
        assert_eq!(leftover_owner("other-4242-mount"), None);
    }

    #[test]
    fn flags_are_named_like_the_man_page() {
        assert_eq!(flag_names(CloneFlags::empty()), "no new namespaces");
        assert_eq!(
            flag_names(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID),
            "CLONE_NEWPID | CLONE_NEWNS"
        );
    }

    #[test]
    fn late_namespaces_and_their_options_are_checked() {
        let spec = Spec {
            unshare: CloneFlags::CLONE_NEWPID,
            ..Spec::default()
        };
        assert!(spec
            .check()
            .unwrap_err()
            .to_string()
            .contains("CLONE_NEWPID"));
        let spec = Spec {
            time_offsets: Some(TimeOffsets {
                monotonic_secs: 1,
                boottime_secs: 1,
            }),
            ..Spec::default()
        };
        assert!(spec.check().is_err(), "offsets without CLONE_NEWTIME");
        let spec = Spec {
            unshare: CLONE_NEWTIME | CloneFlags::CLONE_NEWCGROUP,
            ..Spec::default()
        };
        assert!(spec.check().is_ok());
        // An unprivileged probe that unshares needs a user namespace for it.
        if !getuid().is_root() {
            assert!(spec.clone_flags().contains(CloneFlags::CLONE_NEWUSER));
        }
        // No user namespace, nothing to map.
        let spec = Spec {
            id_map: IdMap::Unmapped,
            ..Spec::default()
        };
        assert!(spec.check().is_err());
        let spec = Spec {
            id_map: IdMap::Range {
                uid: 100_000,
                gid: 100_000,
                count: 65_536,
            },
            ..Spec::new(CloneFlags::CLONE_NEWUSER)
        };
        assert_eq!(spec.check().is_ok(), getuid().is_root());
    }

    #[test]
    fn mounting_needs_a_new_mount_namespace() {
        let spec = Spec {
            mount_proc: true,
            ..Spec::new(CloneFlags::CLONE_NEWPID)
        };
        assert!(spec.check().is_err());
        let spec = Spec {
            hostname: Some("x".into()),
            ..Spec::new(CloneFlags::CLONE_NEWNS)
        };
        assert!(spec.check().is_err());
    }
}
