//! The seam between `nsx run` and the cgroup code: [`check`] and [`apply_limits`].
//!
//! `nsx run` calls nothing else about cgroups. This file is a minimal cgroup v1 backend
//! (v1 and hybrid hosts, like the development machines); the shared `crate::cgroup`
//! module will replace the bodies of these two functions and [`Applied`], and nothing in
//! `run/mod.rs` needs to change.
//!
//! On v1 each controller has its own hierarchy (cgroups(7)). nsx creates
//! `nsx-<pid>-run` *under its own cgroup* in each hierarchy it needs (the path in
//! /proc/self/cgroup), never beside it: whatever limits nsx is under also bind the
//! container. It writes the limits, then the container's PID into `cgroup.procs`, and
//! removes the directories when the command has ended (rmdir(2) only succeeds on a cgroup
//! without processes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{sys, Context, Error, Result};
use crate::limits::{format_memory, Limits, CPU_PERIOD_US};

/// How long removal retries a cgroup whose last process is still exiting.
const REMOVE_BUDGET: Duration = Duration::from_millis(500);

/// One v1 hierarchy nsx uses: where nsx's own cgroup is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub controller: &'static str,
    /// nsx's own cgroup directory, e.g. /sys/fs/cgroup/memory/user.slice
    pub own: PathBuf,
}

/// The limits as files: (controller, file, value) in the order they are written.
pub fn files(limits: &Limits, has_memsw: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(bytes) = limits.memory {
        out.push(("memory", "memory.limit_in_bytes", bytes.to_string()));
        if has_memsw {
            // Same value as the memory limit: no swap on top (docker's default when
            // --memory-swap equals --memory). Written after memory.limit_in_bytes, which
            // the kernel requires to stay <= memsw.
            out.push(("memory", "memory.memsw.limit_in_bytes", bytes.to_string()));
        }
    }
    if let Some(cpus) = limits.cpus {
        out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
        out.push(("cpu", "cpu.cfs_quota_us", cpus.quota_us().to_string()));
    }
    if let Some(n) = limits.pids {
        out.push(("pids", "pids.max", n.to_string()));
    }
    out
}

fn controllers(limits: &Limits) -> Vec<&'static str> {
    let mut c = Vec::new();
    if limits.memory.is_some() {
        c.push("memory");
    }
    if limits.cpus.is_some() {
        c.push("cpu");
    }
    if limits.pids.is_some() {
        c.push("pids");
    }
    c
}

/// Finds the hierarchies `limits` needs, creating nothing. Exit 77 when this machine has
/// no v1 hierarchy for one of them (a cgroup v2-only host, for now).
pub fn check(limits: &Limits) -> Result<Vec<Hierarchy>> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
    let mut out = Vec::new();
    for c in controllers(limits) {
        match own_dir(&mountinfo, &cgroup, c) {
            Some(own) => out.push(Hierarchy { controller: c, own }),
            None => {
                return Err(Error::unsupported(
                    format!("--memory/--cpus/--pids: this machine has no cgroup v1 hierarchy for the {c} controller (a cgroup v2-only host); nsx run applies limits through cgroup v1 for now"),
                    "run without the limit flags, or on a host with cgroup v1 or hybrid cgroups; the cgroup lessons (nsx lesson memory) cover v2",
                ))
            }
        }
    }
    Ok(out)
}

/// nsx's own cgroup directory in the v1 hierarchy of `controller`, from mountinfo (where
/// the hierarchy is mounted, and which part of it) and /proc/self/cgroup (where nsx is).
pub fn own_dir(mountinfo: &str, proc_cgroup: &str, controller: &str) -> Option<PathBuf> {
    // /proc/self/cgroup (cgroups(7)): "hierarchy-ID:controller-list:cgroup-path".
    let path = proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, list, path) = (f.next()?, f.next()?, f.next()?);
        list.split(',').any(|x| x == controller).then_some(path)
    })?;
    // mountinfo (proc(5)): "id parent maj:min root mount-point opts [tags] - fstype source super-opts".
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        if !super_opts.split(',').any(|o| o == controller) {
            continue;
        }
        let l: Vec<&str> = left.split_whitespace().collect();
        let (root, point) = (*l.get(3)?, *l.get(4)?);
        let rel = if root == "/" {
            path
        } else {
            path.strip_prefix(root)?
        };
        let rel = rel.trim_start_matches('/');
        return Some(if rel.is_empty() {
            PathBuf::from(point)
        } else {
            Path::new(point).join(rel)
        });
    }
    None
}

/// The cgroups made for one container; removed by [`Applied::remove`] or on drop.
#[derive(Debug)]
pub struct Applied {
    /// The directories created, one per hierarchy.
    pub dirs: Vec<(&'static str, PathBuf)>,
    /// What was written, as `echo VALUE > FILE` lines for the student.
    pub actions: Vec<String>,
    removed: bool,
}

/// `nsx-<pid>-run`: recognisable after a crash (the cgroup module sweeps this pattern).
pub fn cgroup_name() -> String {
    format!("nsx-{}-run", std::process::id())
}

/// Puts `pid` under `limits`: creates the cgroups, writes the limits, moves the process.
/// The caller holds the process before it execs, so the command starts limited.
pub fn apply_limits(pid: i32, limits: &Limits) -> Result<Applied> {
    let hierarchies = check(limits)?;
    let name = cgroup_name();
    let mut applied = Applied {
        dirs: Vec::new(),
        actions: Vec::new(),
        removed: false,
    };
    for h in &hierarchies {
        if applied.dirs.iter().any(|(_, d)| *d == h.own.join(&name)) {
            continue; // co-mounted controllers (cpu,cpuacct) share one directory
        }
        let dir = h.own.join(&name);
        // mkdir(2) in a cgroup file system creates a cgroup (cgroups(7)).
        std::fs::create_dir(&dir).ctx("mkdir", dir.display())?;
        applied.actions.push(format!("mkdir {}", dir.display()));
        applied.dirs.push((h.controller, dir));
    }
    let dir_of = |c: &str| {
        applied
            .dirs
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, d)| d.clone())
            .or_else(|| {
                hierarchies
                    .iter()
                    .find(|h| h.controller == c)
                    .map(|h| h.own.join(&name))
            })
    };
    let memory_dir = dir_of("memory");
    let has_memsw = memory_dir
        .as_ref()
        .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    for (c, file, value) in files(limits, has_memsw) {
        let path = dir_of(c).expect("a directory per controller").join(file);
        std::fs::write(&path, &value).ctx("write", path.display())?;
        let shown = if file.starts_with("memory.") {
            format!("{value}   ({})", format_memory(value.parse().unwrap_or(0)))
        } else {
            value
        };
        applied
            .actions
            .push(format!("echo {shown} > {}", path.display()));
    }
    for (_, dir) in applied.dirs.clone() {
        let procs = dir.join("cgroup.procs");
        // Writing a PID to cgroup.procs moves the whole process (cgroups(7)).
        std::fs::write(&procs, pid.to_string()).ctx("write", procs.display())?;
        applied
            .actions
            .push(format!("echo {pid} > {}", procs.display()));
    }
    Ok(applied)
}

impl Applied {
    /// The directory nsx made in `controller`'s hierarchy.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Removes the cgroups. A process still inside was started by the container (a
    /// daemon the command left behind without a PID namespace to end it): it is killed
    /// by PID, as read from the cgroup's own cgroup.procs, then the rmdir is retried for
    /// a bounded time while the kernel finishes the exits.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_dirs(&self.dirs)
    }
}

fn remove_dirs(dirs: &[(&'static str, PathBuf)]) -> Result<()> {
    let deadline = Instant::now() + REMOVE_BUDGET;
    let mut first_error = None;
    for (_, dir) in dirs {
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                    first_error.get_or_insert(sys("rmdir", dir.display(), errno));
                    break;
                }
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = remove_dirs(&self.dirs) {
                eprintln!("nsx: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{parse_cpus, parse_memory};

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 30 0:32 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
    const CGROUP: &str = "\
5:pids:/docker/abc/inner
4:memory:/user.slice/session-1.scope
3:cpu,cpuacct:/
0::/user.slice
";

    #[test]
    fn own_dirs_follow_mount_roots() {
        assert_eq!(
            own_dir(MOUNTINFO, CGROUP, "memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/user.slice/session-1.scope")
        );
        assert_eq!(
            own_dir(MOUNTINFO, CGROUP, "cpu").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        // The pids hierarchy is mounted from /docker/abc: nsx's cgroup is below it.
        assert_eq!(
            own_dir(MOUNTINFO, CGROUP, "pids").unwrap(),
            Path::new("/sys/fs/cgroup/pids/inner")
        );
        assert_eq!(own_dir(MOUNTINFO, CGROUP, "blkio"), None);
        assert_eq!(own_dir("", "0::/\n", "memory"), None);
    }

    #[test]
    fn limits_become_v1_files() {
        let l = Limits {
            memory: Some(parse_memory("32M").unwrap()),
            cpus: Some(parse_cpus("0.2").unwrap()),
            pids: Some(8),
        };
        let f = files(&l, true);
        assert_eq!(
            f,
            vec![
                ("memory", "memory.limit_in_bytes", "33554432".to_string()),
                (
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "33554432".to_string()
                ),
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "20000".to_string()),
                ("pids", "pids.max", "8".to_string()),
            ]
        );
        assert_eq!(files(&Limits::default(), true), vec![]);
    }
}
