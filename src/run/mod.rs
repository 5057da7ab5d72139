//! `nsx run`: the seed's `docker run -it busybox /bin/sh`, composed from the lessons.
//!
//! A container is the command, started as a clone of nsx in exactly the namespaces asked
//! for, held until nsx has put it in its cgroups, then set up from the inside (private
//! mounts, hostname, its own root with pivot_root, /proc and /dev) and finally exec'd.
//! From then on nsx is only a relay ([`relay`]): bytes between the user's terminal and
//! the container's pty, signals to the container's PID 1, and the exit status back. nsx
//! is a child subreaper ([`reaper`]), so whatever the command leaves running is killed
//! when it ends.
//!
//! Order in the child, and why:
//! 1. (sandbox) `/` made private (MS_REC|MS_PRIVATE) in the new mount namespace, the
//!    hostname set in the new UTS namespace.
//! 2. unshare(CLONE_NEWCGROUP) after nsx moved it into its cgroups, so `/` of the cgroup
//!    namespace is the container's own cgroup (cgroup_namespaces(7)); unshare(CLONE_NEWTIME)
//!    whose namespace the command enters at execve (time_namespaces(7); clone(2) cannot
//!    take that flag, its bit is the exit-signal field).
//! 3. `lo` up in a new network namespace (it starts down).
//! 4. With --rootfs: bind the rootfs onto itself (pivot_root(2) needs a mount point),
//!    make it nosuid and nodev ([`privileges`]), mount proc and a small nodev /dev,
//!    pivot_root(".", "."), detach the old root.
//! 5. A new session on the pty (-t), standard input from /dev/null (no -i), default
//!    SIGPIPE (Rust ignores it, and ignored signals survive execve).
//! 6. As root: Docker's default capabilities, then execve.

pub mod limits;
pub mod privileges;
pub mod pty;
pub mod reaper;
pub mod relay;

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::wait::WaitStatus;

use crate::error::{sys, Context, Error, Result};
use crate::limits::Limits;
use crate::rootfs::inroot;
use crate::sandbox::{self, Inside, Spec};

/// The PATH a container gets when it has its own rootfs (the host's PATH names host
/// directories).
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hostname a new UTS namespace gets when --hostname is not given.
pub const DEFAULT_HOSTNAME: &str = "nsx";

/// Host devices bind-mounted into the container's /dev (a tmpfs): the ones programs
/// expect to find (bind mounts work without mknod, also rootless).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// CLONE_NEWTIME from linux/sched.h.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// What `nsx run` was asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// CLONE_NEW* flags, CLONE_NEWTIME included.
    pub namespaces: CloneFlags,
    pub limits: Limits,
    pub rootfs: Option<PathBuf>,
    pub hostname: Option<String>,
    pub interactive: bool,
    pub tty: bool,
    pub cmd: Vec<OsString>,
}

/// Every namespace nsx run knows, for --all.
pub fn all_namespaces() -> CloneFlags {
    CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWCGROUP
        | CLONE_NEWTIME
}

/// Everything checked before anything is created.
struct Plan {
    /// The command's path as execve(2) will see it (inside the new root with --rootfs).
    exe: CString,
    argv: Vec<CString>,
    /// `None`: keep nsx's environment.
    env: Option<Vec<CString>>,
    rootfs: Option<PathBuf>,
    hostname: Option<String>,
    clone_ns: CloneFlags,
    unshare_after_go: CloneFlags,
    mount_proc: bool,
    mount_sys: bool,
    /// As root: drop to Docker's default capabilities before execve.
    drop_caps: bool,
}

fn plan(o: &RunOptions) -> Result<Plan> {
    let ns = o.namespaces;
    if o.cmd.is_empty() {
        return Err(Error::Usage(
            "no command: nsx run [OPTIONS] -- CMD [ARGS...]".into(),
        ));
    }
    if o.hostname.is_some() && !ns.contains(CloneFlags::CLONE_NEWUTS) {
        return Err(Error::Usage(
            "--hostname needs --uts (or --all): the hostname belongs to the UTS namespace, and nsx never changes the host's".into(),
        ));
    }
    let rootfs = match &o.rootfs {
        None => None,
        Some(r) => {
            if !ns.contains(CloneFlags::CLONE_NEWNS) {
                return Err(Error::Usage(
                    "--rootfs needs --mount (or --all): pivot_root changes the root of a mount namespace, and without a new one it would be the host's".into(),
                ));
            }
            if !ns.contains(CloneFlags::CLONE_NEWPID) {
                // proc(5): /proc/<pid>/root is that process's root directory. Without a
                // PID namespace the container's /proc lists the host's processes, nsx
                // among them, and /proc/$PPID/root/ is the host's / again.
                return Err(Error::Usage(
                    "--rootfs needs --pid (or --all): without a PID namespace the container's /proc lists the host's processes, and /proc/<pid>/root of any of them leads back to the host's /".into(),
                ));
            }
            Some(check_rootfs(r)?)
        }
    };
    let cmd0 = Path::new(&o.cmd[0]);
    let search_root = rootfs.clone().unwrap_or_else(|| PathBuf::from("/"));
    let path_var = match &rootfs {
        Some(_) => CONTAINER_PATH.to_string(),
        None => std::env::var("PATH").unwrap_or_else(|_| CONTAINER_PATH.to_string()),
    };
    let place = match &rootfs {
        Some(r) => format!("in the rootfs {}", r.display()),
        None => "on this host".to_string(),
    };
    let has_slash = cmd0.as_os_str().as_bytes().contains(&b'/');
    let exe = match resolve_command(&search_root, cmd0, &path_var)? {
        Found::Exe(exe) => exe,
        Found::NotFound => {
            return Err(Error::Usage(if has_slash {
                format!(
                    "{}: no executable file of that name {place}",
                    cmd0.display()
                )
            } else {
                format!(
                    "{}: command not found {place} (searched PATH={path_var})",
                    cmd0.display()
                )
            }))
        }
        Found::Denied(at) => {
            return Err(Error::CannotExecute(format!(
                "{}: permission denied {place}: {} is in a directory you may not search (EACCES){}",
                cmd0.display(),
                at.display(),
                if has_slash {
                    String::new()
                } else {
                    format!(", and no other directory on PATH has it (PATH={path_var})")
                }
            )))
        }
    };
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| Error::Usage("arguments may not contain NUL bytes".into()))
    };
    let argv = o
        .cmd
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let hostname = ns.contains(CloneFlags::CLONE_NEWUTS).then(|| {
        o.hostname
            .clone()
            .unwrap_or_else(|| DEFAULT_HOSTNAME.to_string())
    });
    let env = match &rootfs {
        None => None,
        Some(_) => {
            let mut env = vec![format!("PATH={CONTAINER_PATH}"), "HOME=/root".to_string()];
            if let Some(h) = &hostname {
                env.push(format!("HOSTNAME={h}"));
            }
            if o.tty {
                env.push(format!(
                    "TERM={}",
                    std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
                ));
            }
            Some(
                env.iter()
                    .map(|e| cstr(e.as_bytes()))
                    .collect::<Result<Vec<_>>>()?,
            )
        }
    };
    let root = nix::unistd::geteuid().is_root();
    // clone(2) cannot take CLONE_NEWTIME (0x80 is the exit-signal field) and a cgroup
    // namespace is best made after the cgroup join: the child unshares both after `go`.
    let late = CloneFlags::CLONE_NEWCGROUP | CLONE_NEWTIME;
    let mut clone_ns = ns & !late;
    if !root && ns.intersects(late) {
        clone_ns |= CloneFlags::CLONE_NEWUSER;
    }
    let pid_and_mount = ns.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS);
    Ok(Plan {
        exe: cstr(exe.as_os_str().as_bytes())?,
        argv,
        env,
        mount_proc: rootfs.is_none() && pid_and_mount,
        mount_sys: rootfs.as_ref().is_some_and(|r| r.join("sys").is_dir())
            && (root || ns.contains(CloneFlags::CLONE_NEWNET)),
        rootfs,
        hostname,
        clone_ns,
        unshare_after_go: ns & late,
        drop_caps: root,
    })
}

/// The rootfs must be a directory with /proc and /dev directories to mount on (real
/// directories, not symlinks that could lead a mount elsewhere). Returns its canonical path.
fn check_rootfs(r: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(r).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "--rootfs {}: no such directory (build one with: nsx rootfs busybox {})",
            r.display(),
            r.display()
        )),
        _ => crate::error::io("stat", r, e),
    })?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "--rootfs {}: not a directory (to unpack a tarball: nsx rootfs import {} DIR)",
            r.display(),
            r.display()
        )));
    }
    let canon = std::fs::canonicalize(r).ctx("realpath", r.display())?;
    if canon == Path::new("/") {
        return Err(Error::Usage(
            "--rootfs /: the host's own root is not a container image".into(),
        ));
    }
    for d in ["proc", "dev"] {
        let p = canon.join(d);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "--rootfs {}: /{d} is not a directory (a symlink?); nsx mounts {d} only on a real directory",
                    r.display()
                )))
            }
            Err(_) => {
                return Err(Error::Usage(format!(
                    "--rootfs {}: no /{d} directory to mount {d} on (mkdir {})",
                    r.display(),
                    p.display()
                )))
            }
        }
    }
    Ok(canon)
}

/// What looking a command up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The path execve(2) will get.
    Exe(PathBuf),
    NotFound,
    /// Nothing executable, and at least one place could not be searched (EACCES): this
    /// candidate, the first such.
    Denied(PathBuf),
}

/// The path execve(2) will get: `cmd` itself when it has a slash, else the first PATH
/// entry holding an executable of that name, all looked up inside `root`.
pub fn resolve_command(root: &Path, cmd: &Path, path_var: &str) -> Result<Found> {
    let bytes = cmd.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Ok(Found::NotFound);
    }
    let host = root == Path::new("/");
    if bytes.contains(&b'/') {
        let inside = if cmd.is_absolute() {
            cmd.to_path_buf()
        } else if host {
            std::env::current_dir().ctx("getcwd", ".")?.join(cmd)
        } else {
            Path::new("/").join(cmd)
        };
        let exe = if host {
            cmd.to_path_buf()
        } else {
            inside.clone()
        };
        return search(std::iter::once(exe), |_| {
            inroot::is_executable_in(root, &inside)
        });
    }
    let candidates = path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|dir| Path::new(dir).join(cmd));
    search(candidates, |c| inroot::is_executable_in(root, c))
}

/// execvp(3)'s rules for a PATH search: a candidate whose directory cannot be searched
/// (EACCES) is remembered and the search goes on; it is reported only if no later entry
/// has the command. A missing directory or file (ENOENT, ENOTDIR, and glibc's ESTALE,
/// ENODEV, ETIMEDOUT) is skipped; any other error ends the search.
fn search(
    candidates: impl IntoIterator<Item = PathBuf>,
    mut is_executable: impl FnMut(&Path) -> Result<bool>,
) -> Result<Found> {
    let mut denied = None;
    for candidate in candidates {
        match is_executable(&candidate) {
            Ok(true) => return Ok(Found::Exe(candidate)),
            Ok(false) => {}
            Err(e) => match e.errno() {
                Some(Errno::EACCES) => {
                    denied.get_or_insert(candidate);
                }
                Some(
                    Errno::ENOENT
                    | Errno::ENOTDIR
                    | Errno::ESTALE
                    | Errno::ENODEV
                    | Errno::ETIMEDOUT,
                ) => {}
                _ => return Err(e),
            },
        }
    }
    Ok(denied.map_or(Found::NotFound, Found::Denied))
}

/// Runs the container and returns the exit status for nsx: the command's own, or
/// 128 + the signal that killed it.
pub fn run(o: &RunOptions) -> Result<i32> {
    let stdin = std::io::stdin();
    if o.tty && o.interactive && !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
        // What docker run -it says. nsx would put a terminal in raw mode and relay it
        // key by key; a pipe or a file is no terminal (drop -t to pipe input: -i alone
        // hands standard input to the command as it is).
        return Err(Error::Usage(
            "the input device is not a TTY: -it needs a terminal on standard input (to pipe input into the command, use -i without -t)".into(),
        ));
    }
    let plan = plan(o)?;
    // Found before anything is created: a v2-only host is exit 77 with nothing made.
    if !o.limits.is_empty() {
        limits::check(&o.limits)?;
    }
    crate::sandbox::sweep_temp_dirs();
    // Before the command exists, so that none of its descendants can miss it.
    reaper::become_subreaper()?;
    let pty = if o.tty {
        Some(pty::open(stdin.as_fd())?)
    } else {
        None
    };
    // Without -i the command's standard input is /dev/null, as with docker run.
    let devnull = if o.interactive || o.tty {
        None
    } else {
        Some(
            std::fs::File::open("/dev/null")
                .ctx("open", "/dev/null")?
                .into(),
        )
    };
    let spec = Spec {
        namespaces: plan.clone_ns,
        mount_proc: plan.mount_proc,
        hostname: plan.hostname.clone(),
        ..Spec::default()
    };
    let slave_fd = pty.as_ref().map(|p| p.slave.as_raw_fd());
    let slave_path = pty.as_ref().map(|p| p.slave_path.clone());
    let devnull_fd: Option<OwnedFd> = devnull;
    let devnull_raw = devnull_fd.as_ref().map(|f| f.as_raw_fd());
    let plan_ref = &plan;
    let mut child = sandbox::spawn(&spec, move |inside: &mut Inside| -> Result<()> {
        container_main(
            inside,
            plan_ref,
            slave_fd,
            slave_path.as_deref(),
            devnull_raw,
        )
    })?;
    drop(devnull_fd);
    let applied = if o.limits.is_empty() {
        Ok(None)
    } else {
        limits::apply_limits(child.pid(), &o.limits).map(Some)
    };
    let outcome = match &applied {
        Ok(_) => attach(o, &mut child, pty),
        Err(_) => Ok(1),
    };
    // However it went: the command (if it is still there), then everything it left
    // behind, then its cgroup, which only an empty cgroup lets go.
    drop(child);
    reaper::kill_all_children();
    let removed = match applied? {
        Some(a) => a.remove(),
        None => Ok(()),
    };
    let code = outcome?;
    removed?;
    Ok(code)
}

/// Lets the held child exec the command, then relays until it exits.
fn attach(o: &RunOptions, child: &mut sandbox::Child, pty: Option<pty::Pty>) -> Result<i32> {
    if let Err(e) = child.go_exec() {
        // The command never started: its setup or execve failed, and said why.
        let code = match e.errno() {
            Some(Errno::ENOENT) if e.to_string().starts_with("execve") => 127,
            Some(_) if e.to_string().starts_with("execve") => 126,
            _ => return Err(e),
        };
        crate::warn!("nsx: {e}");
        return Ok(code);
    }
    let (master, slave) = match pty {
        Some(p) => (Some(p.master), Some(p.slave)),
        None => (None, None),
    };
    // The container holds its own copy of the slave now; ours would keep the pty open
    // after the container is gone (no EIO on the master).
    drop(slave);
    let stdin = std::io::stdin();
    let raw = match (&master, o.interactive) {
        (Some(_), true) => pty::RawMode::enter(stdin.as_fd())?,
        _ => None,
    };
    let status = relay::relay(
        child,
        &relay::Ends {
            master: master.as_ref(),
            interactive: o.interactive,
            raw: raw.is_some(),
            pid_ns: o.namespaces.contains(CloneFlags::CLONE_NEWPID),
        },
    )?;
    drop(raw);
    Ok(match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    })
}

/// True when `pid` has a handler for `sig`: its bit in the SigCgt mask of
/// /proc/<pid>/status (proc(5)).
pub fn catches(pid: i32, sig: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let mask = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&mask, 16).ok()
        })
        .is_some_and(|m| sig >= 1 && m & (1 << (sig - 1)) != 0)
}

/// The child, after `go`: the rest of the container's setup, then execve. Returns only
/// on failure (the error goes back to nsx over the data pipe).
fn container_main(
    inside: &mut Inside,
    plan: &Plan,
    slave: Option<libc::c_int>,
    slave_path: Option<&Path>,
    devnull: Option<libc::c_int>,
) -> Result<()> {
    if plan.unshare_after_go.contains(CloneFlags::CLONE_NEWCGROUP) {
        // cgroup_namespaces(7): the namespace's root is the caller's cgroup now, the
        // one nsx just moved us into.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).ctx("unshare", "CLONE_NEWCGROUP")?;
    }
    if plan.unshare_after_go.contains(CLONE_NEWTIME) {
        // time_namespaces(7): the new namespace is for children, and for this process
        // from its next execve.
        nix::sched::unshare(CLONE_NEWTIME).ctx("unshare", "CLONE_NEWTIME")?;
    }
    if plan.clone_ns.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up()?;
    }
    if let Some(root) = &plan.rootfs {
        if !inside.mounts_are_private() {
            return Err(Error::Other(
                "internal: refusing to mount outside a private mount namespace".into(),
            ));
        }
        // plan() refused --rootfs without a PID namespace: the procfs mounted below
        // must show the container's processes only.
        if !plan.clone_ns.contains(CloneFlags::CLONE_NEWPID) {
            return Err(Error::Other(
                "internal: refusing a rootfs without a PID namespace".into(),
            ));
        }
        enter_rootfs(root, plan.mount_sys, slave_path)?;
    }
    if let Some(fd) = slave {
        pty::become_controlling(fd).ctx("setsid + TIOCSCTTY", "the container's pty")?;
    }
    if let Some(fd) = devnull {
        // SAFETY: dup2 onto standard input, which is replaced on purpose.
        if unsafe { libc::dup2(fd, 0) } < 0 {
            return Err(sys("dup2", "/dev/null to standard input", Errno::last()));
        }
    }
    // signal(7): dispositions set to "ignore" survive execve; Rust ignores SIGPIPE.
    // SAFETY: restoring the default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if plan.drop_caps {
        // Last, since mounting and pivot_root above needed CAP_SYS_ADMIN.
        privileges::drop_capabilities(crate::caps::DOCKER_DEFAULT)?;
    }
    let err = match &plan.env {
        Some(env) => nix::unistd::execve(&plan.exe, &plan.argv, env),
        None => nix::unistd::execv(&plan.exe, &plan.argv),
    }
    .unwrap_err();
    Err(sys("execve", plan.exe.to_string_lossy(), err))
}

/// pivot_root(2) into `root`, with /proc, /dev (and /sys) mounted first.
fn enter_rootfs(root: &Path, mount_sys: bool, console: Option<&Path>) -> Result<()> {
    let none = None::<&str>;
    // pivot_root(2): new_root must be a mount point. Binding the directory onto itself
    // makes it one (MS_REC keeps mounts below it).
    mount(
        Some(root),
        root,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .ctx("mount --rbind", root.display())?;
    // Before anything is mounted on top: the image's own files (and mounts) only. A
    // device node in the image cannot be opened, a setuid program does not change ids.
    privileges::nosuid_nodev(root)?;
    let proc = root.join("proc");
    // proc(5): a procfs shows the PID namespace of the process that mounts it.
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .ctx("mount proc", proc.display())?;
    let dev = root.join("dev");
    // nodev too: the container's root keeps CAP_MKNOD (Docker's default set), and a
    // node it makes here must not open the host's disk. The devices below are bind
    // mounts, each with the flags of the host's /dev, so they still open.
    mount(
        Some("nsx-dev"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=755,size=64k"),
    )
    .ctx("mount tmpfs", dev.display())?;
    let mut binds: Vec<(PathBuf, PathBuf)> = DEVICES
        .iter()
        .map(|d| (Path::new("/dev").join(d), dev.join(d)))
        .collect();
    if let Some(c) = console {
        // runc's convention: the container's terminal is also its /dev/console.
        binds.push((c.to_path_buf(), dev.join("console")));
    }
    for (host, target) in &binds {
        if !host.exists() {
            continue;
        }
        std::fs::File::create(target).ctx("create", target.display())?;
        // A bind mount of a device node: no mknod(2) privilege needed.
        mount(Some(host.as_path()), target, none, MsFlags::MS_BIND, none)
            .ctx("mount --bind", target.display())?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let l = dev.join(link);
        std::os::unix::fs::symlink(to, &l).ctx("symlink", l.display())?;
    }
    for d in ["pts", "shm"] {
        let p = dev.join(d);
        std::fs::create_dir(&p).ctx("mkdir", p.display())?;
    }
    if mount_sys {
        let sys_dir = root.join("sys");
        mount(
            Some("sysfs"),
            &sys_dir,
            Some("sysfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        )
        .ctx("mount sysfs", sys_dir.display())?;
    }
    pivot(root)
}

/// pivot_root(".", ".") then umount2(".", MNT_DETACH): the idiom from pivot_root(2)'s
/// notes, used by runc, that needs no directory for the old root. After the call the old
/// root is stacked on top of the new one at "/"; detaching it leaves the container with
/// no path back to the host's tree.
pub fn pivot(root: &Path) -> Result<()> {
    if root_is_initramfs() {
        give_root_a_parent()?;
    }
    nix::unistd::chdir(root).ctx("chdir", root.display())?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root", root.display())?;
    umount2(".", MntFlags::MNT_DETACH).ctx("umount2 (MNT_DETACH)", "the old root")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    Ok(())
}

/// True when "/" of this mount namespace is the initial ramfs itself (fstype `rootfs`
/// in mountinfo), as on a machine that boots from an initramfs without switch_root.
fn root_is_initramfs() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(4) == Some(&"/")
                    && l.split_once(" - ")
                        .is_some_and(|(_, r)| r.starts_with("rootfs "))
            })
        })
        .unwrap_or(false)
}

/// pivot_root(2) refuses to move the initial ramfs (EINVAL: it is the root of the
/// mount tree and has no parent). As switch_root does for a whole system, give this
/// namespace a root that has one: bind "/" recursively onto a directory, move that mount
/// onto "/" (MS_MOVE) and chroot into it. Only in the caller's own private mount
/// namespace (nsx made it private at clone), and the host never sees it.
fn give_root_a_parent() -> Result<()> {
    let none = None::<&str>;
    // The bind's way in: a directory of this run's own, with an unpredictable name (a
    // name fixed in advance could be taken, or be a symlink, before nsx gets to it), made
    // in /tmp with mkdirat(2) and opened O_NOFOLLOW (see fsat::Dir::make_temp).
    let tmp = crate::fsat::Dir::open(Path::new("/tmp"))
        .or_else(|_| crate::fsat::Dir::open(Path::new("/")))?;
    let (name, made) = tmp.make_temp("newroot", 0o700)?;
    let dir = tmp.child(&name);
    // mount(2) onto /proc/self/fd/N: the target is the very directory the descriptor
    // holds (proc(5): the magic link is not looked up by name).
    let target = format!("/proc/self/fd/{}", made.fd().as_raw_fd());
    let bound = mount(
        Some("/"),
        target.as_str(),
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    );
    let bound = match bound {
        // No /proc yet: the path, which only this run's 0700 directory can be.
        Err(Errno::ENOENT) => mount(
            Some("/"),
            &dir,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        ),
        other => other,
    };
    bound.ctx("mount --rbind", "/ (the initramfs)")?;
    drop(made);
    // openat(2) of the name crosses into the mount just made on it (O_NOFOLLOW: never a
    // link); check it is "/" itself before moving it.
    let inside = tmp.open_dir(&name)?;
    let (a, b) = (inside.stat()?, nix::sys::stat::stat("/").ctx("stat", "/")?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(Error::Other(format!(
            "{}: the bind mount of / is not where nsx made it",
            dir.display()
        )));
    }
    nix::unistd::fchdir(inside.fd()).ctx("fchdir", dir.display())?;
    drop(inside);
    mount(Some("."), "/", none, MsFlags::MS_MOVE, none).ctx("mount --move", "/")?;
    nix::unistd::chroot(".").ctx("chroot", ".")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    // The directory was only the bind's way in; it is empty again. unlinkat(2) relative
    // to the /tmp it was made in, opened before the move.
    let _ = nix::unistd::unlinkat(
        tmp.fd(),
        name.as_str(),
        nix::unistd::UnlinkatFlags::RemoveDir,
    );
    Ok(())
}

/// netdevice(7): SIOCGIFFLAGS/SIOCSIFFLAGS to set IFF_UP on `lo`, which a new network
/// namespace has, down.
fn loopback_up() -> Result<()> {
    // SAFETY: a plain socket(2) call; the fd is wrapped in OwnedFd right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(sys("socket", "AF_INET", Errno::last()));
    }
    // SAFETY: socket returned a new descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(sys("ioctl SIOCGIFFLAGS", "lo", Errno::last()));
    }
    // SAFETY: reading and writing the flags member of the union SIOCGIFFLAGS set.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(sys("ioctl SIOCSIFFLAGS", "lo up", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(s: &str) -> OsString {
        OsString::from_vec(s.as_bytes().to_vec())
    }

    fn opts(ns: CloneFlags, cmd: &[&str]) -> RunOptions {
        RunOptions {
            namespaces: ns,
            limits: Limits::default(),
            rootfs: None,
            hostname: None,
            interactive: false,
            tty: false,
            cmd: cmd.iter().map(|c| os(c)).collect(),
        }
    }

    #[test]
    fn hostname_needs_uts_and_rootfs_needs_mount() {
        let mut o = opts(CloneFlags::CLONE_NEWPID, &["true"]);
        o.hostname = Some("box".into());
        assert_eq!(plan(&o).err().unwrap().exit_code(), 2);
        let mut o = opts(CloneFlags::CLONE_NEWPID, &["true"]);
        o.rootfs = Some("/".into());
        let e = plan(&o).err().unwrap();
        assert!(e.to_string().contains("--mount"), "{e}");
    }

    #[test]
    fn a_missing_command_is_a_usage_error() {
        let e = plan(&opts(CloneFlags::empty(), &["nsx-no-such-command"]))
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("command not found"), "{e}");
        assert_eq!(
            plan(&opts(CloneFlags::empty(), &[]))
                .err()
                .unwrap()
                .exit_code(),
            2
        );
    }

    #[test]
    fn late_namespaces_are_not_given_to_clone() {
        let p = plan(&opts(all_namespaces(), &["true"])).unwrap();
        assert!(!p.clone_ns.contains(CLONE_NEWTIME));
        assert!(!p.clone_ns.contains(CloneFlags::CLONE_NEWCGROUP));
        assert_eq!(
            p.unshare_after_go,
            CloneFlags::CLONE_NEWCGROUP | CLONE_NEWTIME
        );
        assert_eq!(p.hostname.as_deref(), Some(DEFAULT_HOSTNAME));
        assert!(p.mount_proc);
    }

    #[test]
    fn commands_resolve_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        let exe = root.path().join("bin/busybox");
        std::fs::write(&exe, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", root.path().join("bin/sh")).unwrap();
        let r = root.path();
        assert_eq!(
            resolve_command(r, Path::new("sh"), CONTAINER_PATH).unwrap(),
            Found::Exe(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            resolve_command(r, Path::new("/bin/sh"), CONTAINER_PATH).unwrap(),
            Found::Exe(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            resolve_command(r, Path::new("ls"), CONTAINER_PATH).unwrap(),
            Found::NotFound
        );
    }

    /// A fake file system for [`search`]: each candidate's answer.
    fn lookup(answers: &[(&str, std::result::Result<bool, Errno>)]) -> Result<Found> {
        let candidates = answers.iter().map(|(p, _)| PathBuf::from(p));
        search(candidates, |c| {
            let (_, answer) = answers.iter().find(|(p, _)| Path::new(p) == c).unwrap();
            answer.map_err(|e| sys("openat2 (RESOLVE_IN_ROOT)", c.display(), e))
        })
    }

    #[test]
    fn path_search_follows_execvp() {
        // execvp(3): EACCES is remembered and the search goes on.
        assert_eq!(
            lookup(&[
                ("/locked/true", Err(Errno::EACCES)),
                ("/bin/true", Ok(true))
            ])
            .unwrap(),
            Found::Exe("/bin/true".into())
        );
        // ... and reported only if nothing else is found.
        assert_eq!(
            lookup(&[
                ("/gone/x", Err(Errno::ENOENT)),
                ("/locked/x", Err(Errno::EACCES)),
                ("/other/x", Err(Errno::EACCES)),
                ("/bin/x", Ok(false)),
            ])
            .unwrap(),
            Found::Denied("/locked/x".into())
        );
        // Missing directories are skipped silently.
        assert_eq!(
            lookup(&[("/a/x", Err(Errno::ENOTDIR)), ("/b/x", Err(Errno::ESTALE))]).unwrap(),
            Found::NotFound
        );
        // Anything else ends the search.
        let e = lookup(&[("/a/x", Err(Errno::EIO)), ("/bin/x", Ok(true))]).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EIO));
    }

    #[test]
    fn a_rootfs_needs_a_pid_namespace_and_root_drops_capabilities() {
        let root = tempfile::tempdir().unwrap();
        for d in ["proc", "dev", "bin"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let mut o = opts(CloneFlags::CLONE_NEWNS, &["/bin/sh"]);
        o.rootfs = Some(root.path().into());
        let e = plan(&o).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--rootfs needs --pid"), "{e}");
        let p = plan(&opts(CloneFlags::CLONE_NEWPID, &["true"])).unwrap();
        assert_eq!(p.drop_caps, nix::unistd::geteuid().is_root());
    }
}
