//! Errors a student can act on.
//!
//! Every failing system call or file write becomes a [`SysError`]: the operation, what it
//! acted on (a path or a syscall argument), the errno, and, where nsx knows the usual
//! reason on a real machine, the likely cause and the fix. The table of explanations lives
//! in one place, [`explain`], so that every module gets the same advice and each mapping
//! is unit-tested.

use std::fmt;
use std::io;
use std::path::Path;

use nix::errno::Errno;

/// Exit codes shared by every command (ARCHITECTURE.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    /// `nsx run`: the command was found but could not be executed (as a shell's 126).
    pub const CANNOT_EXECUTE: i32 = 126;
    pub const UNSUPPORTED: i32 = 77;
}

/// The operations nsx names in its errors (`sys`, [`Context::ctx`]) that the hint table
/// ([`explain`]) and callers match on: one name each, so a call site and the table cannot
/// drift apart. Other operations are named in place ("fchmod", "readdir", ...): nothing
/// matches on them.
pub mod op {
    pub const PIVOT_ROOT: &str = "pivot_root";
    pub const MOUNT_OVERLAY: &str = "mount overlay";
    pub const MOUNT_TMPFS: &str = "mount tmpfs";
    pub const MOUNT_PROC: &str = "mount proc";
    pub const MOUNT_SYSFS: &str = "mount sysfs";
    pub const MOUNT_BIND: &str = "mount --bind";
    pub const MOUNT_RBIND: &str = "mount --rbind";
    pub const MOUNT_MOVE: &str = "mount --move";
    pub const MOUNT_MAKE_RPRIVATE: &str = "mount --make-rprivate";
    pub const MOUNT_MAKE_SHARED: &str = "mount --make-shared";
    pub const OPENAT2_IN_ROOT: &str = "openat2 (RESOLVE_IN_ROOT)";
    pub const EXECVE: &str = "execve";
    pub const WRITE: &str = "write";
    pub const READ: &str = "read";
    pub const CLONE: &str = "clone";
    pub const UNSHARE: &str = "unshare";
    pub const CLONE3: &str = "clone3";
    pub const MKDIR: &str = "mkdir";
    pub const RMDIR: &str = "rmdir";
    pub const RTM_NEWLINK_VETH: &str = "RTM_NEWLINK veth";
    pub const RTM_NEWLINK_UP: &str = "RTM_NEWLINK up";
    pub const RTM_NEWADDR: &str = "RTM_NEWADDR";
    pub const MMAP: &str = "mmap";
    pub const SETNS: &str = "setns";
    pub const SHMGET: &str = "shmget";
    pub const MSGGET: &str = "msgget";
    pub const SETRESUID: &str = "setresuid";
    pub const SETRESGID: &str = "setresgid";
    pub const SECCOMP_SET_MODE_FILTER: &str = "seccomp SECCOMP_SET_MODE_FILTER";
    pub const SETHOSTNAME: &str = "sethostname";

    /// Every mount nsx makes is named "mount …".
    pub fn is_mount(op: &str) -> bool {
        op == "mount" || op.starts_with("mount ")
    }

    /// rtnetlink requests are named after their message type ("RTM_NEWLINK veth").
    pub fn is_netlink(op: &str) -> bool {
        op.starts_with("RTM_")
    }
}

/// A likely cause and the fix for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub cause: String,
    pub fix: String,
}

impl Hint {
    pub fn new(cause: impl Into<String>, fix: impl Into<String>) -> Self {
        Hint {
            cause: cause.into(),
            fix: fix.into(),
        }
    }
}

/// A failed operation: `mount /proc: EPERM (Operation not permitted)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// What nsx tried to do, e.g. "mount proc", "write", "pivot_root".
    pub op: String,
    /// What it acted on, e.g. "/proc/4242/uid_map".
    pub target: String,
    pub errno: Errno,
    pub hint: Option<Hint>,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The errno's name is its Debug form ("EACCES"); its Display form is already
        // "EACCES: Permission denied" (nix), so it would print the text a second time.
        write!(
            f,
            "{} {}: {:?} ({})",
            self.op,
            self.target,
            self.errno,
            self.errno.desc()
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  likely cause: {}\n  fix: {}", h.cause, h.fix)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or a file operation failed.
    #[error("{0}")]
    Sys(SysError),
    /// This machine cannot run what was asked (kernel, privileges, cgroup mode): exit 77.
    #[error("not supported here: {reason}\n  fix: {fix}")]
    Unsupported { reason: String, fix: String },
    /// Bad input that clap could not catch: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The command exists but may not be executed (EACCES): exit 126, as a shell says.
    #[error("{0}")]
    CannotExecute(String),
    /// SIGINT/SIGTERM/SIGHUP arrived; everything was cleaned up on the way out.
    #[error("interrupted by {}", signal_name(*.0))]
    Interrupted(i32),
    /// A presenter pressed q at a `--step` pause: end quietly, exit 0.
    #[error("quit at a pause")]
    Quit,
    /// stdout was closed (e.g. `nsx lesson pid | head -3`): end quietly.
    #[error("standard output closed")]
    BrokenPipe,
    /// The probe exited (or was killed) before it sent its report.
    #[error("the probe exited without a report: {}", crate::sandbox::describe(*.0))]
    ProbeExited(nix::sys::wait::WaitStatus),
    /// Something the probe or a parser reported that is not an errno.
    #[error("{0}")]
    Other(String),
    /// An invariant of nsx itself did not hold (a refusal that protects the host, or a
    /// state the code should never reach): a bug to report, never the student's doing.
    #[error("internal error (a bug in nsx; please report it with the command you ran): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The operation a system-call error names (an [`op`] constant where one exists).
    pub fn op(&self) -> Option<&str> {
        match self {
            Error::Sys(s) => Some(&s.op),
            _ => None,
        }
    }

    /// The likely cause and fix nsx knows for a failed system call.
    pub fn hint(&self) -> Option<&Hint> {
        match self {
            Error::Sys(s) => s.hint.as_ref(),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unsupported { .. } => exit::UNSUPPORTED,
            Error::Usage(_) => exit::USAGE,
            Error::CannotExecute(_) => exit::CANNOT_EXECUTE,
            Error::Interrupted(sig) => 128 + sig,
            Error::BrokenPipe => 128 + libc::SIGPIPE,
            Error::Quit => exit::OK,
            Error::Sys(_) | Error::Other(_) | Error::Internal(_) | Error::ProbeExited(_) => {
                exit::FAILURE
            }
        }
    }

    pub fn unsupported(reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Unsupported {
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// What kind of outcome this is, as `--format json` names it in `error.kind`:
    /// `unsupported` (exit 77), `usage` (2), `cannot_execute` (126), `interrupted`
    /// (128 + N), `quit`, `broken_pipe`, `internal` (1, a bug in nsx), and `failure` (1)
    /// for everything else.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unsupported { .. } => "unsupported",
            Error::Usage(_) => "usage",
            Error::CannotExecute(_) => "cannot_execute",
            Error::Interrupted(_) => "interrupted",
            Error::Quit => "quit",
            Error::BrokenPipe => "broken_pipe",
            Error::Internal(_) => "internal",
            Error::Sys(_) | Error::Other(_) | Error::ProbeExited(_) => "failure",
        }
    }

    /// The `error` object of `--format json` (docs/json.md): `kind`, `reason`, `fix`
    /// (null when nsx knows none), and for a failed system call `cause`, `op`, `target`
    /// and `errno`.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "kind": self.kind() });
        match self {
            Error::Unsupported { reason, fix } => {
                v["reason"] = reason.as_str().into();
                v["fix"] = fix.as_str().into();
            }
            Error::Sys(e) => {
                v["reason"] =
                    format!("{} {}: {:?} ({})", e.op, e.target, e.errno, e.errno.desc()).into();
                v["op"] = e.op.as_str().into();
                v["target"] = e.target.as_str().into();
                v["errno"] = format!("{:?}", e.errno).into();
                match &e.hint {
                    Some(h) => {
                        v["cause"] = h.cause.as_str().into();
                        v["fix"] = h.fix.as_str().into();
                    }
                    None => v["fix"] = serde_json::Value::Null,
                }
            }
            other => {
                v["reason"] = other.to_string().into();
                v["fix"] = serde_json::Value::Null;
            }
        }
        v
    }

    /// The whole object `--format json` prints for this outcome:
    /// `{"ok": false, "exit": N, "error": {...}}` ([`Error::json`]).
    pub fn json_outcome(&self) -> serde_json::Value {
        serde_json::json!({ "ok": false, "exit": self.exit_code(), "error": self.json() })
    }

    /// The errno behind this error, if it came from the kernel.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys(e) => Some(e.errno),
            _ => None,
        }
    }
}

/// Builds a [`SysError`] for `op` on `target`, attaching the explanation nsx knows for it.
pub fn sys(op: impl Into<String>, target: impl fmt::Display, errno: Errno) -> Error {
    let op = op.into();
    let target = target.to_string();
    let hint = explain(&op, &target, errno);
    Error::Sys(SysError {
        op,
        target,
        errno,
        hint,
    })
}

/// Same as [`sys`], from an `io::Error` (which carries the errno as a raw OS error).
pub fn io(op: impl Into<String>, path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Error::BrokenPipe;
    }
    match e.raw_os_error() {
        Some(raw) => sys(op, path.display(), Errno::from_raw(raw)),
        None => Error::Other(format!("{} {}: {e}", op.into(), path.display())),
    }
}

/// Extension to turn `nix::Result` / `io::Result` into nsx errors with context.
pub trait Context<T> {
    fn ctx(self, op: &str, target: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, op: &str, target: impl fmt::Display) -> Result<T> {
        self.map_err(|errno| sys(op, target, errno))
    }
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, op: &str, target: impl fmt::Display) -> Result<T> {
        self.map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Error::BrokenPipe;
            }
            match e.raw_os_error() {
                Some(raw) => sys(op, target, Errno::from_raw(raw)),
                None => Error::Other(format!("{op} {target}: {e}")),
            }
        })
    }
}

/// The usual cause of `errno` from `op` on `target` on a real machine, and the fix.
///
/// `op` is the operation as nsx names it ("clone", "write", "mkdir", "mount proc",
/// "pivot_root", "setns", ...); `target` is the path or argument. Keep this table small
/// and true: a wrong hint is worse than none.
pub fn explain(operation: &str, target: &str, errno: Errno) -> Option<Hint> {
    let file = target.rsplit('/').next().unwrap_or(target);
    let h = match (operation, file, errno) {
        (op::PIVOT_ROOT, _, Errno::EINVAL) => Hint::new(
            "the old root is on a mount with shared propagation, the new root is not a mount point, or the current root is the initial ramfs (rootfs), which pivot_root(2) refuses",
            "make / private first (mount --make-rprivate /, done by nsx in its own mount namespace) and bind-mount the new root onto itself; on an initramfs root, switch_root first, or move the new root onto / and chroot (runc --no-pivot)",
        ),
        (op::MOUNT_OVERLAY, _, Errno::ENODEV) => Hint::new(
            "the overlay file system is not available: its kernel module is not loaded (no \"overlay\" line in /proc/filesystems)",
            "sudo modprobe overlay",
        ),
        (op::OPENAT2_IN_ROOT, _, Errno::ELOOP) => Hint::new(
            "a symlink in the rootfs leads back to itself once resolved inside the rootfs (e.g. etc -> /etc, which inside DIR means DIR/etc, the link itself): the archive wants a path outside DIR",
            "nothing outside DIR was touched; fix or drop that link in the archive (nsx never follows links out of the rootfs)",
        ),
        (op::OPENAT2_IN_ROOT, _, Errno::ENOSYS) => Hint::new(
            "this kernel has no openat2(2) (added in Linux 5.6), which nsx needs to resolve paths inside the rootfs safely",
            "use a kernel >= 5.6 (uname -r shows the running one)",
        ),
        (op::EXECVE, _, Errno::ENOENT) => Hint::new(
            "the command exists but its ELF interpreter does not: a dynamically linked program needs its loader (e.g. /lib64/ld-linux-x86-64.so.2) and libraries inside the rootfs",
            "run a static binary (busybox's applets are), or use a rootfs with the program's libraries (nsx rootfs import of a full image)",
        ),
        (op::WRITE, "cgroup.procs", Errno::EBUSY) => Hint::new(
            "cgroup v2's \"no internal processes\" rule: a cgroup that hands controllers to its children (cgroup.subtree_control) cannot hold processes itself",
            "put the process in a leaf cgroup, or move the processes of this cgroup into a child before enabling controllers",
        ),
        (op::WRITE, "cgroup.subtree_control", Errno::EBUSY) => Hint::new(
            "cgroup v2's \"no internal processes\" rule: this cgroup holds processes, so it cannot hand controllers to its children (only the root cgroup may)",
            "create the lesson cgroup under a cgroup that holds no processes (nsx uses the parent of its own cgroup), or move this cgroup's processes into a child first",
        ),
        (op::WRITE, "cgroup.subtree_control", Errno::ENOENT) => Hint::new(
            "the controller is not in this cgroup's cgroup.controllers: its parent does not pass it on, or it is bound to a cgroup v1 hierarchy (hybrid systems)",
            "enable it in every ancestor's cgroup.subtree_control from the root down; cat cgroup.controllers shows what each cgroup may enable",
        ),
        (op::WRITE, "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes", Errno::EBUSY) => Hint::new(
            "cgroup v1 refuses a memory limit below what the cgroup already uses when the kernel cannot reclaim enough (anonymous memory and no swap)",
            "set the limit before the process allocates (before it joins the cgroup), or choose a limit above memory.usage_in_bytes",
        ),
        (op::WRITE, "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes", Errno::EINVAL) => Hint::new(
            "cgroup v1 keeps memory.memsw.limit_in_bytes (memory+swap) at or above memory.limit_in_bytes",
            "when raising, write memory.memsw.limit_in_bytes first; when lowering, write memory.limit_in_bytes first",
        ),
        (op::WRITE, "cpu.cfs_quota_us" | "cpu.cfs_period_us" | "cpu.max", Errno::EINVAL) => Hint::new(
            "CFS bandwidth out of range: the period must be 1000..1000000 µs and the quota at least 1000 µs; on v1 a cgroup also cannot get a larger quota/period ratio than its parent",
            "use values such as 20000 100000 (20% of one CPU), and check the parent's cpu.cfs_quota_us or cpu.max",
        ),
        (op::WRITE | op::READ, f, Errno::ENOENT) if is_controller_file(f) && target.contains("/cgroup") => Hint::new(
            "this controller's files are missing: on cgroup v2 the parent does not enable the controller in its cgroup.subtree_control; on v1 the controller's hierarchy is not mounted here, or the file needs a kernel feature (memory.memsw.* needs swap accounting)",
            "v2: enable it with echo +<controller> > <parent>/cgroup.subtree_control; v1: mount the controller's hierarchy (cat /proc/cgroups lists what the kernel has)",
        ),
        (op::WRITE, "uid_map" | "gid_map" | "setgroups", Errno::EPERM) => Hint::new(
            "the kernel refused the user-namespace id map: an unprivileged process may map only its own uid/gid, once, and gid_map needs setgroups=deny first; some distributions also restrict unprivileged user namespaces",
            "run nsx as root, or allow unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04, kernel.unprivileged_userns_clone=1 on older Debian)",
        ),
        (op::CLONE | op::UNSHARE, _, Errno::ENOSPC) => Hint::new(
            "a max_*_namespaces limit was reached (/proc/sys/user/max_user_namespaces and friends), often 0 to forbid a namespace type",
            "raise it, e.g. sysctl -w user.max_user_namespaces=15000",
        ),
        (op::CLONE | op::UNSHARE, _, Errno::EPERM) => Hint::new(
            "creating this namespace needs CAP_SYS_ADMIN, and unprivileged user namespaces are not allowed here",
            "run nsx as root (sudo), or allow unprivileged user namespaces (see `nsx doctor`)",
        ),
        (op::CLONE3, _, Errno::EINVAL) if target.contains("CLONE_NEWTIME") => Hint::new(
            "this kernel refuses CLONE_NEWTIME in clone3(2): it was accepted from Linux 6.3 (and the stable updates of March 2023), or the kernel has no time namespaces (CONFIG_TIME_NS)",
            "create the time namespace with unshare(CLONE_NEWTIME) and enter it through /proc/self/ns/time_for_children, as nsx's time lesson does",
        ),
        (op::CLONE3, _, Errno::ENOSYS) => Hint::new(
            "clone3(2) is not available: the kernel predates Linux 5.3, or a seccomp filter (Docker's default profile, for one) makes it fail with ENOSYS",
            "use unshare(2) and setns(2) instead, or run outside that seccomp profile",
        ),
        (op::CLONE | op::UNSHARE, _, Errno::EINVAL) => Hint::new(
            "this kernel does not know one of the requested namespace flags (it was built without it or is too old)",
            "use a kernel with the namespace enabled (CONFIG_*_NS); `uname -r` shows the running kernel",
        ),
        (op::MKDIR | op::WRITE | op::RMDIR, _, Errno::EACCES) if target.contains("/cgroup") => Hint::new(
            "this part of the cgroup tree is not delegated to you",
            "run as root, or get a delegated subtree: systemd-run --user --scope -p Delegate=yes nsx ...",
        ),
        (op::WRITE, "tasks" | "cgroup.procs", Errno::ESRCH) => Hint::new(
            "the process exited before it could join the cgroup",
            "this is usually a race with a probe that failed early; run the lesson again",
        ),
        (op::RMDIR, _, Errno::EBUSY) if target.contains("/cgroup") => Hint::new(
            "a cgroup can only be removed once no process is in it and it has no children",
            "wait for its processes to exit (cat cgroup.procs), then remove it",
        ),
        (op::RTM_NEWLINK_VETH, _, Errno::EOPNOTSUPP) => Hint::new(
            "this kernel has no veth driver (CONFIG_VETH), or it is a module that is not loaded",
            "sudo modprobe veth, or run `nsx lesson net --no-veth` to skip the veth step",
        ),
        (op::RTM_NEWLINK_VETH, _, Errno::EEXIST) => Hint::new(
            "an interface with this name already exists in the host's network namespace (nsx names its veth ends nsx<pid>h and nsx<pid>c)",
            "if no nsx with that pid is running, remove it: sudo ip link del NAME",
        ),
        (op::RTM_NEWADDR, _, Errno::EEXIST) => Hint::new(
            "the interface already has this address",
            "choose another /30 with --veth-net",
        ),
        (o, _, Errno::EPERM) if op::is_netlink(o) => Hint::new(
            "changing interfaces, addresses or routes needs CAP_NET_ADMIN in the user namespace that owns the network namespace: for the host's, that is real root",
            "run nsx as root, or skip the veth step with --no-veth",
        ),
        (op::MMAP, _, Errno::ENOMEM) => Hint::new(
            "the kernel refused to map that much memory: strict overcommit (vm.overcommit_memory = 2) counts every mapping against a commit limit, or a ulimit -v (RLIMIT_AS) is set",
            "ask for less (nsx lesson memory --alloc 32M), or check cat /proc/sys/vm/overcommit_memory and ulimit -v",
        ),
        (op::SETNS, _, Errno::EPERM) => Hint::new(
            "joining a namespace needs CAP_SYS_ADMIN in the user namespace that owns it",
            "run nsx as root, or as the user who created that namespace",
        ),
        (o, _, Errno::EPERM) if op::is_mount(o) => Hint::new(
            "mounting needs CAP_SYS_ADMIN in the user namespace that owns the current mount namespace",
            "run nsx as root, or let it create a user namespace (unprivileged user namespaces must be allowed)",
        ),
        (op::SHMGET | op::MSGGET, _, Errno::EEXIST) => Hint::new(
            "a System V IPC object with nsx's key already exists in this IPC namespace: left by an nsx run that was killed with SIGKILL, or another program chose the same key",
            "look at it with ipcs -m -q; if it is a leftover of nsx, remove it with ipcrm -M <key> (segment) or ipcrm -Q <key> (queue)",
        ),
        (op::WRITE, "timens_offsets", Errno::EACCES) => Hint::new(
            "a process is already in this time namespace, and its offsets froze when the first one entered",
            "write the offsets right after unshare(CLONE_NEWTIME), before any fork(2) or setns(2) into it",
        ),
        (op::WRITE, "timens_offsets", Errno::EPERM) => Hint::new(
            "writing time offsets needs CAP_SYS_TIME in the user namespace that owns the time namespace",
            "run nsx as root, or let it create a user namespace first (it does when run unprivileged)",
        ),
        (op::SETRESUID | op::SETRESGID, _, Errno::EINVAL) => Hint::new(
            "id 0 is not mapped in the probe's user namespace: uid_map or gid_map was not written",
            "the parent must write /proc/<pid>/uid_map and gid_map before the probe switches ids",
        ),
        (op::MKDIR, _, Errno::EROFS) if target.contains("/cgroup") => Hint::new(
            "the cgroup filesystem is mounted read-only, as inside most containers",
            "run nsx on the host (or in a VM), where the cgroup tree is writable by root",
        ),
        (op::SECCOMP_SET_MODE_FILTER, _, Errno::EACCES) => Hint::new(
            "seccomp(2) lets a process install a filter only if it holds CAP_SYS_ADMIN in its user namespace or has set no_new_privs",
            "set no_new_privs first (prctl(PR_SET_NO_NEW_PRIVS, 1), docker's --security-opt no-new-privileges), or install the filter before dropping CAP_SYS_ADMIN; nsx why PID seccomp says which layer applies",
        ),
        (op::SETHOSTNAME, _, Errno::EPERM) => Hint::new(
            "changing the hostname needs CAP_SYS_ADMIN in the user namespace that owns the UTS namespace",
            "run the lesson as root, or let nsx create a user namespace",
        ),
        _ => return None,
    };
    Some(h)
}

/// A cgroup controller's interface file (memory.max, cpu.stat, pids.max, ...).
fn is_controller_file(file: &str) -> bool {
    ["memory.", "cpu.", "cpuacct.", "pids."]
        .iter()
        .any(|p| file.starts_with(p))
}

pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_op_target_errno_and_its_text_once_then_cause_and_fix() {
        let e = sys(
            "mkdir",
            "/sys/fs/cgroup/user.slice/nsx-1-memory",
            Errno::EACCES,
        )
        .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines[0], "mkdir /sys/fs/cgroup/user.slice/nsx-1-memory: EACCES (Permission denied)",
            "{e}"
        );
        assert_eq!(e.matches("Permission denied").count(), 1, "{e}");
        assert!(lines[1].starts_with("  likely cause: "), "{e}");
        assert!(lines[2].starts_with("  fix: "), "{e}");
        assert_eq!(lines.len(), 3, "{e}");
        // Without a known explanation: the one line, nothing after it.
        let e = sys("read", "/proc/self/status", Errno::EIO).to_string();
        assert_eq!(e, "read /proc/self/status: EIO (I/O error)");
    }

    #[test]
    fn pivot_root_einval_names_shared_propagation() {
        let e = sys("pivot_root", "/tmp/nsx-root", Errno::EINVAL).to_string();
        assert!(e.starts_with("pivot_root /tmp/nsx-root: EINVAL"), "{e}");
        assert!(e.contains("shared propagation"), "{e}");
        assert!(e.contains("fix: make / private"), "{e}");
        // pivot_root(2) ERRORS: also EINVAL when the current root is the rootfs.
        assert!(
            e.contains("initial ramfs") && e.contains("--no-pivot"),
            "{e}"
        );
    }

    #[test]
    fn cgroup_procs_ebusy_names_no_internal_processes() {
        let e = sys("write", "/sys/fs/cgroup/nsx/cgroup.procs", Errno::EBUSY).to_string();
        assert!(e.contains("no internal processes"), "{e}");
    }

    #[test]
    fn uid_map_eperm_names_the_restriction() {
        let e = sys("write", "/proc/42/uid_map", Errno::EPERM).to_string();
        assert!(e.contains("apparmor_restrict_unprivileged_userns"), "{e}");
    }

    #[test]
    fn enospc_on_clone_names_max_namespaces() {
        let e = sys("clone", "CLONE_NEWUSER", Errno::ENOSPC).to_string();
        assert!(e.contains("max_user_namespaces"), "{e}");
    }

    #[test]
    fn clone3_refusing_a_time_namespace_says_which_kernels_accept_it() {
        let e = sys("clone3", "CLONE_NEWTIME", Errno::EINVAL).to_string();
        assert!(
            e.contains("Linux 6.3") && e.contains("time_for_children"),
            "{e}"
        );
        let e = sys("clone3", "CLONE_NEWUSER | CLONE_NEWTIME", Errno::ENOSYS).to_string();
        assert!(e.contains("seccomp"), "{e}");
    }

    #[test]
    fn eacces_on_cgroup_names_delegation() {
        let e = sys(
            "mkdir",
            "/sys/fs/cgroup/user.slice/nsx-1-memory",
            Errno::EACCES,
        )
        .to_string();
        assert!(e.contains("Delegate=yes"), "{e}");
    }

    #[test]
    fn subtree_control_ebusy_names_no_internal_processes() {
        let e = sys(
            "write",
            "/sys/fs/cgroup/a/cgroup.subtree_control",
            Errno::EBUSY,
        )
        .to_string();
        assert!(
            e.contains("no internal processes") && e.contains("holds processes"),
            "{e}"
        );
    }

    #[test]
    fn subtree_control_enoent_names_the_parent() {
        let e = sys(
            "write",
            "/sys/fs/cgroup/a/cgroup.subtree_control",
            Errno::ENOENT,
        )
        .to_string();
        assert!(
            e.contains("cgroup.controllers") && e.contains("from the root down"),
            "{e}"
        );
    }

    #[test]
    fn v1_memory_limit_ebusy_names_reclaim() {
        let e = sys(
            "write",
            "/sys/fs/cgroup/memory/x/memory.limit_in_bytes",
            Errno::EBUSY,
        )
        .to_string();
        assert!(
            e.contains("cannot reclaim") && e.contains("memory.usage_in_bytes"),
            "{e}"
        );
    }

    #[test]
    fn v1_memsw_einval_names_the_order() {
        let e = sys(
            "write",
            "/sys/fs/cgroup/memory/x/memory.memsw.limit_in_bytes",
            Errno::EINVAL,
        )
        .to_string();
        assert!(e.contains("memory+swap") && e.contains("first"), "{e}");
    }

    #[test]
    fn cpu_quota_einval_names_the_ranges() {
        for f in ["cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us"] {
            let e = sys("write", format!("/sys/fs/cgroup/x/{f}"), Errno::EINVAL).to_string();
            assert!(e.contains("1000..1000000"), "{f}: {e}");
        }
    }

    #[test]
    fn missing_controller_file_names_subtree_control_and_mounts() {
        let e = sys("write", "/sys/fs/cgroup/x/memory.max", Errno::ENOENT).to_string();
        assert!(
            e.contains("subtree_control") && e.contains("not mounted"),
            "{e}"
        );
        let e = sys("read", "/sys/fs/cgroup/pids/x/pids.events", Errno::ENOENT).to_string();
        assert!(e.contains("controller's files are missing"), "{e}");
        assert!(explain("read", "/etc/cpu.conf", Errno::ENOENT).is_none());
    }

    #[test]
    fn overlay_enodev_names_modprobe() {
        let e = sys("mount overlay", "/tmp/nsx-1-rootfs/merged", Errno::ENODEV).to_string();
        assert!(e.contains("modprobe overlay"), "{e}");
    }

    #[test]
    fn eloop_in_a_rootfs_names_the_self_link() {
        let e = sys(
            "openat2 (RESOLVE_IN_ROOT)",
            "etc (entry etc/passwd)",
            Errno::ELOOP,
        )
        .to_string();
        assert!(
            e.contains("etc -> /etc") && e.contains("nothing outside DIR"),
            "{e}"
        );
        let e = sys("openat2 (RESOLVE_IN_ROOT)", "etc", Errno::ENOSYS).to_string();
        assert!(e.contains("5.6"), "{e}");
    }

    #[test]
    fn execve_enoent_names_the_missing_loader() {
        let e = sys("execve", "/usr/bin/python3", Errno::ENOENT).to_string();
        assert!(e.contains("ELF interpreter") && e.contains("static"), "{e}");
    }

    #[test]
    fn eexist_on_an_ipc_key_names_ipcrm() {
        let e = sys("shmget", "0x6e001092 (held by shmid 3)", Errno::EEXIST).to_string();
        assert!(e.starts_with("shmget 0x6e001092"), "{e}");
        assert!(e.contains("ipcrm -M"), "{e}");
        let e = sys("msgget", "0x6e001092", Errno::EEXIST).to_string();
        assert!(e.contains("ipcrm -Q"), "{e}");
    }

    #[test]
    fn timens_offsets_errors_name_the_rule_broken() {
        let e = sys("write", "/proc/self/timens_offsets", Errno::EACCES).to_string();
        assert!(e.contains("froze when the first one entered"), "{e}");
        let e = sys("write", "/proc/42/timens_offsets", Errno::EPERM).to_string();
        assert!(e.contains("CAP_SYS_TIME"), "{e}");
    }

    #[test]
    fn setresuid_einval_names_the_missing_map() {
        let e = sys("setresuid", 0, Errno::EINVAL).to_string();
        assert!(e.contains("uid_map"), "{e}");
    }

    #[test]
    fn erofs_on_cgroup_mkdir_names_read_only_cgroupfs() {
        let e = sys(
            "mkdir",
            "/sys/fs/cgroup/memory/nsx-1-cgroupns",
            Errno::EROFS,
        )
        .to_string();
        assert!(e.contains("read-only"), "{e}");
        assert!(explain("mkdir", "/tmp/x", Errno::EROFS).is_none());
    }

    #[test]
    fn veth_without_the_driver_names_modprobe() {
        let e = sys("RTM_NEWLINK veth", "nsx42h", Errno::EOPNOTSUPP).to_string();
        assert!(
            e.contains("CONFIG_VETH") && e.contains("modprobe veth"),
            "{e}"
        );
    }

    #[test]
    fn veth_name_clash_names_the_leftover() {
        let e = sys("RTM_NEWLINK veth", "nsx42h", Errno::EEXIST).to_string();
        assert!(e.contains("ip link del"), "{e}");
    }

    #[test]
    fn address_clash_names_the_option() {
        let e = sys("RTM_NEWADDR", "169.254.73.1/30 dev nsx42h", Errno::EEXIST).to_string();
        assert!(e.contains("--veth-net"), "{e}");
    }

    #[test]
    fn netlink_eperm_names_cap_net_admin() {
        let e = sys("RTM_NEWLINK veth", "nsx42h", Errno::EPERM).to_string();
        assert!(
            e.contains("CAP_NET_ADMIN") && e.contains("--no-veth"),
            "{e}"
        );
        let e = sys("RTM_NEWLINK up", "lo", Errno::EPERM).to_string();
        assert!(e.contains("CAP_NET_ADMIN"), "{e}");
    }

    #[test]
    fn mmap_enomem_names_overcommit_and_a_smaller_alloc() {
        let e = sys("mmap", "67108864 bytes", Errno::ENOMEM).to_string();
        assert!(e.contains("overcommit_memory"), "{e}");
        assert!(e.contains("--alloc"), "{e}");
    }

    #[test]
    fn a_refused_filter_names_no_new_privs_and_cap_sys_admin() {
        let e = sys(
            "seccomp SECCOMP_SET_MODE_FILTER",
            "the filter that makes calls fail with EPERM",
            Errno::EACCES,
        )
        .to_string();
        assert!(
            e.contains("no_new_privs")
                && e.contains("CAP_SYS_ADMIN")
                && e.contains("PR_SET_NO_NEW_PRIVS"),
            "{e}"
        );
    }

    #[test]
    fn unknown_errors_carry_no_hint() {
        assert!(explain("read", "/proc/self/status", Errno::EIO).is_none());
    }

    #[test]
    fn every_error_has_a_json_object_with_kind_reason_and_fix() {
        let all = [
            Error::unsupported("no cgroup here", "sudo nsx lesson memory"),
            Error::Usage("unknown lesson pdi".into()),
            Error::Other("boom".into()),
            sys("mkdir", "/sys/fs/cgroup/memory/x", Errno::EROFS),
            sys("read", "/proc/self/status", Errno::EIO),
            Error::Interrupted(libc::SIGTERM),
            Error::CannotExecute("/bin/x: EACCES".into()),
        ];
        for e in &all {
            let o = e.json_outcome();
            assert_eq!(o["ok"], false, "{o}");
            assert_eq!(o["exit"], e.exit_code(), "{o}");
            let err = &o["error"];
            assert!(err["kind"].is_string(), "{o}");
            assert!(err["reason"].as_str().is_some_and(|r| !r.is_empty()), "{o}");
            assert!(
                err.get("fix").is_some(),
                "fix is present, null when unknown: {o}"
            );
        }
        let u = all[0].json();
        assert_eq!(u["kind"], "unsupported");
        assert_eq!(u["fix"], "sudo nsx lesson memory");
        let s = all[3].json();
        assert_eq!(s["errno"], "EROFS");
        assert!(s["fix"].is_string() && s["cause"].is_string(), "{s}");
        assert!(all[4].json()["fix"].is_null());
        assert_eq!(all[1].json()["kind"], "usage");
        assert_eq!(all[5].json_outcome()["exit"], 128 + libc::SIGTERM);
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Error::unsupported("x", "y").exit_code(), 77);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Other("x".into()).exit_code(), 1);
        assert_eq!(Error::Interrupted(libc::SIGINT).exit_code(), 130);
    }
}
