//! A fake cgroup file system on a temporary directory, for unit tests without root.
//!
//! It imitates what the lessons rely on: mkdir fills a cgroup with control files (on v2,
//! only those of the controllers the parent enables), rmdir refuses a cgroup with
//! processes or children (EBUSY) and otherwise takes its control files with it, a missing
//! control file is ENOENT, and v2 enforces the top-down and no-internal-process rules on
//! cgroup.subtree_control and cgroup.procs.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fs::CgroupFs;
use super::layout::Layout;

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

#[derive(Debug, Default)]
struct State {
    /// The next this many rmdirs (of otherwise empty cgroups) fail with EBUSY.
    busy_rmdirs: usize,
    readonly: BTreeSet<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FakeFs {
    /// v1: (mount point, subsystems bound to it); v2: empty.
    v1_mounts: Vec<(PathBuf, Vec<&'static str>)>,
    /// v2: the cgroup2 mount point (the root cgroup).
    v2_root: Option<PathBuf>,
    swap: bool,
    state: Arc<Mutex<State>>,
}

impl FakeFs {
    pub fn v1(mounts: Vec<(PathBuf, Vec<&'static str>)>, swap: bool) -> Self {
        FakeFs {
            v1_mounts: mounts,
            v2_root: None,
            swap,
            state: Arc::default(),
        }
    }

    pub fn v2(root: PathBuf, swap: bool) -> Self {
        FakeFs {
            v1_mounts: Vec::new(),
            v2_root: Some(root),
            swap,
            state: Arc::default(),
        }
    }

    /// The next `n` rmdirs fail with EBUSY, like a cgroup whose process is still exiting.
    pub fn busy_for(&self, n: usize) {
        self.state.lock().unwrap().busy_rmdirs = n;
    }

    pub fn make_readonly(&self, path: &Path) {
        self.state
            .lock()
            .unwrap()
            .readonly
            .insert(path.to_path_buf());
    }

    fn put(dir: &Path, name: &str, content: &str) {
        fs::write(dir.join(name), content).unwrap();
    }

    fn populate_v1(&self, dir: &Path) {
        let subs: Vec<&str> = self
            .v1_mounts
            .iter()
            .filter(|(m, _)| dir.starts_with(m))
            .max_by_key(|(m, _)| m.as_os_str().len())
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        Self::put(dir, "cgroup.procs", "");
        Self::put(dir, "tasks", "");
        Self::put(dir, "notify_on_release", "0\n");
        for s in subs {
            match s {
                "memory" => {
                    let unlimited = "9223372036854771712\n";
                    Self::put(dir, "memory.limit_in_bytes", unlimited);
                    if self.swap {
                        Self::put(dir, "memory.memsw.limit_in_bytes", unlimited);
                    }
                    Self::put(dir, "memory.usage_in_bytes", "0\n");
                    Self::put(dir, "memory.max_usage_in_bytes", "0\n");
                    Self::put(dir, "memory.failcnt", "0\n");
                    if self.swap {
                        Self::put(dir, "memory.memsw.failcnt", "0\n");
                    }
                    Self::put(
                        dir,
                        "memory.oom_control",
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                    );
                }
                "cpu" => {
                    Self::put(dir, "cpu.cfs_period_us", "100000\n");
                    Self::put(dir, "cpu.cfs_quota_us", "-1\n");
                    Self::put(dir, "cpu.shares", "1024\n");
                    Self::put(
                        dir,
                        "cpu.stat",
                        "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
                    );
                }
                "cpuacct" => Self::put(dir, "cpuacct.usage", "0\n"),
                "pids" => {
                    Self::put(dir, "pids.max", "max\n");
                    Self::put(dir, "pids.current", "0\n");
                    Self::put(dir, "pids.events", "max 0\n");
                }
                _ => {}
            }
        }
    }

    fn words(path: &Path) -> BTreeSet<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// The files controller `c` adds to a v2 cgroup.
    fn add_v2_controller_files(&self, dir: &Path, c: &str) {
        match c {
            "memory" => {
                Self::put(dir, "memory.max", "max\n");
                Self::put(dir, "memory.current", "0\n");
                Self::put(dir, "memory.peak", "0\n");
                Self::put(
                    dir,
                    "memory.events",
                    "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
                );
                if self.swap {
                    Self::put(dir, "memory.swap.max", "max\n");
                }
            }
            "cpu" => {
                Self::put(dir, "cpu.max", "max 100000\n");
                Self::put(dir, "cpu.weight", "100\n");
                Self::put(
                    dir,
                    "cpu.stat",
                    "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
                );
            }
            "pids" => {
                Self::put(dir, "pids.max", "max\n");
                Self::put(dir, "pids.current", "0\n");
                Self::put(dir, "pids.events", "max 0\n");
            }
            _ => {}
        }
    }

    fn populate_v2(&self, dir: &Path) {
        let parent = dir.parent().unwrap();
        let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        Self::put(dir, "cgroup.procs", "");
        Self::put(dir, "cgroup.controllers", &format!("{}\n", enabled.trim()));
        Self::put(dir, "cgroup.subtree_control", "\n");
        Self::put(dir, "cgroup.type", "domain\n");
        Self::put(
            dir,
            "cpu.stat",
            "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
        );
        for c in enabled.split_whitespace() {
            self.add_v2_controller_files(dir, c);
        }
    }

    /// Removes `pid` from every cgroup.procs under `dir`.
    fn take_out(dir: &Path, pid: &str) -> io::Result<()> {
        let procs = dir.join("cgroup.procs");
        if let Ok(text) = fs::read_to_string(&procs) {
            if text.lines().any(|l| l.trim() == pid) {
                let kept: String = text
                    .lines()
                    .filter(|l| l.trim() != pid)
                    .map(|l| format!("{l}\n"))
                    .collect();
                fs::write(&procs, kept)?;
            }
        }
        for child in fs::read_dir(dir)?.flatten().filter(|e| e.path().is_dir()) {
            Self::take_out(&child.path(), pid)?;
        }
        Ok(())
    }

    /// v2 cgroup.subtree_control: top-down and no-internal-process rules.
    fn write_subtree_control(&self, dir: &Path, value: &str) -> io::Result<()> {
        let available = Self::words(&dir.join("cgroup.controllers"));
        let mut enabled = Self::words(&dir.join("cgroup.subtree_control"));
        let is_root = Some(dir) == self.v2_root.as_deref();
        for tok in value.split_whitespace() {
            if let Some(c) = tok.strip_prefix('+') {
                if !available.contains(c) {
                    return Err(errno(libc::ENOENT));
                }
                enabled.insert(c.to_string());
            } else if let Some(c) = tok.strip_prefix('-') {
                enabled.remove(c);
            } else {
                return Err(errno(libc::EINVAL));
            }
        }
        let has_procs = !fs::read_to_string(dir.join("cgroup.procs"))?
            .trim()
            .is_empty();
        if !is_root && has_procs && !enabled.is_empty() {
            return Err(errno(libc::EBUSY));
        }
        let joined = enabled.iter().cloned().collect::<Vec<_>>().join(" ");
        Self::put(dir, "cgroup.subtree_control", &format!("{joined}\n"));
        // Children now see (and get the files of) the newly enabled controllers.
        for child in fs::read_dir(dir)?.flatten().filter(|e| e.path().is_dir()) {
            let child = child.path();
            Self::put(&child, "cgroup.controllers", &format!("{joined}\n"));
            for c in &enabled {
                self.add_v2_controller_files(&child, c);
            }
        }
        Ok(())
    }
}

impl CgroupFs for FakeFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        if self
            .state
            .lock()
            .unwrap()
            .readonly
            .contains(path.parent().unwrap())
        {
            return Err(errno(libc::EACCES));
        }
        fs::create_dir(path)?;
        if self.v2_root.is_some() {
            self.populate_v2(path);
        } else {
            self.populate_v1(path);
        }
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        if !path.is_dir() {
            return Err(errno(libc::ENOENT));
        }
        if fs::read_dir(path)?.flatten().any(|e| e.path().is_dir()) {
            return Err(errno(libc::EBUSY));
        }
        if !fs::read_to_string(path.join("cgroup.procs"))
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            return Err(errno(libc::EBUSY));
        }
        {
            let mut st = self.state.lock().unwrap();
            if st.busy_rmdirs > 0 {
                st.busy_rmdirs -= 1;
                return Err(errno(libc::EBUSY));
            }
        }
        // On cgroupfs the control files vanish with the directory.
        fs::remove_dir_all(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        if !path.is_file() {
            return Err(errno(libc::ENOENT));
        }
        if !self.writable(path) {
            return Err(errno(libc::EACCES));
        }
        let dir = path.parent().unwrap();
        match path.file_name().and_then(|n| n.to_str()).unwrap() {
            "cgroup.subtree_control" => self.write_subtree_control(dir, value),
            "cgroup.procs" | "tasks" => {
                let is_root = Some(dir) == self.v2_root.as_deref();
                if self.v2_root.is_some()
                    && !is_root
                    && !Self::words(&dir.join("cgroup.subtree_control")).is_empty()
                {
                    return Err(errno(libc::EBUSY));
                }
                // A process is in one cgroup of a hierarchy: writing it here takes it
                // out of the one it was in.
                if let Some(root) = &self.v2_root {
                    Self::take_out(root, value.trim())?;
                }
                let mut procs = fs::read_to_string(path)?;
                procs.push_str(value.trim());
                procs.push('\n');
                fs::write(path, procs)
            }
            _ => fs::write(path, format!("{value}\n")),
        }
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    }

    fn writable(&self, path: &Path) -> bool {
        !self.state.lock().unwrap().readonly.contains(path)
    }
}

/// A fixture machine: its layout (paths under a temp dir), the fake file system, and
/// the cgroup directory nsx runs in.
pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub layout: Layout,
    pub fs: FakeFs,
}

impl Fixture {
    pub fn boxed_fs(&self) -> Box<dyn CgroupFs> {
        Box::new(self.fs.clone())
    }
}

fn mkdir_all_cgroups(fs: &FakeFs, root: &Path, rel: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        if !p.exists() {
            fs.mkdir(&p).unwrap();
        }
    }
    p
}

/// This development machine: hybrid, cpu and cpuacct in separate hierarchies, nsx in
/// memory:/process_api/16b3 and `/` elsewhere.
pub fn hybrid(swap: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sys/fs/cgroup");
    let subs: &[&'static str] = &["cpu", "cpuacct", "memory", "pids"];
    let mounts: Vec<(PathBuf, Vec<&'static str>)> =
        subs.iter().map(|s| (root.join(s), vec![*s])).collect();
    let fs = FakeFs::v1(mounts, swap);
    let mut mountinfo = format!(
        "31 23 0:28 / {} rw - tmpfs tmpfs rw,mode=755\n",
        root.display()
    );
    for (i, s) in subs.iter().enumerate() {
        let mp = root.join(s);
        fs::create_dir_all(&mp).unwrap();
        fs.populate_v1(&mp);
        mountinfo += &format!(
            "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{s}\n",
            32 + i,
            29 + i,
            mp.display()
        );
    }
    fs::create_dir_all(root.join("unified")).unwrap();
    mountinfo += &format!(
        "41 31 0:38 / {} rw,relatime - cgroup2 cgroup2 rw\n",
        root.join("unified").display()
    );
    let own = mkdir_all_cgroups(&fs, &root.join("memory"), "process_api/16b3");
    fs.write(&own.join("cgroup.procs"), "4242").unwrap();
    let proc_cgroup = "8:pids:/\n4:memory:/process_api/16b3\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    let layout = Layout::from_mount_table(&root, &mountinfo, proc_cgroup).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        layout,
        fs,
    }
}

/// A classic v1 machine: cpu and cpuacct co-mounted at cpu,cpuacct; nsx in a session.
pub fn v1_comounted() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sys/fs/cgroup");
    let mounts = vec![
        (root.join("cpu,cpuacct"), vec!["cpu", "cpuacct"]),
        (root.join("memory"), vec!["memory"]),
        (root.join("pids"), vec!["pids"]),
    ];
    let fs = FakeFs::v1(mounts.clone(), true);
    let mut mountinfo = format!(
        "25 18 0:22 / {} ro - tmpfs tmpfs ro,mode=755\n",
        root.display()
    );
    for (i, (mp, subs)) in mounts.iter().enumerate() {
        fs::create_dir_all(mp).unwrap();
        fs.populate_v1(mp);
        mountinfo += &format!(
            "{} 25 0:{} / {} rw - cgroup cgroup rw,{}\n",
            26 + i,
            23 + i,
            mp.display(),
            subs.join(",")
        );
    }
    let scope = "user.slice/user-1000.slice/session-2.scope";
    for (mp, _) in &mounts {
        mkdir_all_cgroups(&fs, mp, scope);
    }
    let proc_cgroup = format!("5:pids:/{scope}\n4:memory:/{scope}\n3:cpu,cpuacct:/{scope}\n");
    let layout = Layout::from_mount_table(&root, &mountinfo, &proc_cgroup).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        layout,
        fs,
    }
}

/// A v2 machine as systemd sets it up: memory and pids enabled down the slices, cpu
/// available at the root but not enabled; nsx in `own` (a path like
/// "/user.slice/user-1000.slice/session-2.scope", or "/" for the root).
pub fn v2(own: &str, swap: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sys/fs/cgroup");
    fs::create_dir_all(&root).unwrap();
    FakeFs::put(
        &root,
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    FakeFs::put(&root, "cgroup.subtree_control", "\n");
    FakeFs::put(&root, "cgroup.procs", "1\n");
    let fs = FakeFs::v2(root.clone(), swap);
    fs.write(&root.join("cgroup.subtree_control"), "+memory +pids")
        .unwrap();
    let mut dir = root.clone();
    let parts: Vec<&str> = own.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in parts.iter().enumerate() {
        dir.push(c);
        fs.mkdir(&dir).unwrap();
        if i + 1 < parts.len() {
            fs.write(&dir.join("cgroup.subtree_control"), "+memory +pids")
                .unwrap();
        }
    }
    fs.write(&dir.join("cgroup.procs"), "4242").unwrap();
    let mountinfo = format!(
        "24 29 0:22 / {} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
        root.display()
    );
    let layout = Layout::from_mount_table(&root, &mountinfo, &format!("0::{own}\n")).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        layout,
        fs,
    }
}
