//! cgroups: what a process may *use*, where namespaces decide what it may *see*.
//!
//! A cgroup is a directory in a cgroup file system, a limit is a value written into one of
//! its files, and joining is writing a PID into its membership file (cgroups(7)). The
//! memory, cpu and pids lessons create one [`LessonCgroup`], write a limit, move the probe
//! in, read the controller's counters and remove the cgroup; every one of those steps is
//! recorded as an [`Action`] so the lesson can print exactly what was done.
//!
//! The kernel offers two interfaces, and machines run one of three setups ([`Mode`]):
//! - **v1**: one hierarchy per controller; the lesson cgroup is a directory in each
//!   hierarchy it needs, under nsx's own cgroup there ([`v1`]).
//! - **hybrid**: v1 for the controllers plus a cgroup2 mount used only for process
//!   tracking; the v1 backend is used.
//! - **v2**: one unified hierarchy with the "no internal processes" rule ([`v2`]).
//!
//! The two backends implement one trait, [`Backend`], and [`AnyBackend`] picks one with a
//! `match`, in the way youki's libcgroups does. [`rosetta()`] maps each v1 file a lesson
//! used to its v2 counterpart.

pub mod fs;
pub mod layout;
pub mod limits;
pub mod rosetta;
pub mod standard;
pub mod stats;
pub mod sweep;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

pub use fs::{Action, CgroupFs, Op, RealFs, Recorder};
pub use layout::{CgroupMount, Layout, Membership, Mode};
pub use rosetta::{rosetta, rosetta_for, Rosetta};
pub use stats::{CpuStats, MemoryStats, PidsStats};
pub use sweep::{sweep, sweep_place, sweep_with, Kept, Sweep};

use crate::error::{Error, Result};
use crate::owner::Run;

/// How long [`LessonCgroup::remove`] keeps retrying a cgroup that is still busy because
/// a killed process has not finished exiting.
pub const REMOVE_BUDGET: Duration = Duration::from_millis(100);

/// The resource controllers the lessons use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    /// The kernel's name for it (the same on v1 and v2).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }

    /// The v1 hierarchies a lesson cgroup with this controller uses (the CPU lessons
    /// also read cpuacct), the names [`Layout::current_for`] takes.
    pub fn v1_names(self) -> &'static [&'static str] {
        match self {
            Controller::Memory => &["memory"],
            Controller::Cpu => &["cpu", "cpuacct"],
            Controller::Pids => &["pids"],
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which interface a backend speaks (hybrid machines use v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The file of a cgroup's relative CPU weight: v1 cpu.shares, v2 cpu.weight.
    pub fn cpu_weight_file(self) -> &'static str {
        match self {
            Version::V1 => "cpu.shares",
            Version::V2 => "cpu.weight",
        }
    }

    /// The CPU weight's (lowest, default, highest) in this version's own scale. v1
    /// cpu.shares: 2, 1024, 262144 (MIN_SHARES, the default and MAX_SHARES = 1 << 18 of
    /// kernel/sched/sched.h; a value out of range is clamped). v2 cpu.weight: 1, 100,
    /// 10000 (CGROUP_WEIGHT_MIN/DFL/MAX, include/linux/cgroup.h; out of range is ERANGE).
    pub fn cpu_weight_range(self) -> (u64, u64, u64) {
        match self {
            Version::V1 => (2, 1024, 262_144),
            Version::V2 => (1, 100, 10_000),
        }
    }
}

/// Everything a lesson does to its cgroup, once per cgroup version.
///
/// Each operation goes through the [`Recorder`], which performs it and records it.
pub trait Backend {
    fn version(&self) -> Version;
    /// The directories the lesson cgroup consists of (one per v1 hierarchy, one on v2).
    fn dirs(&self) -> Vec<&Path>;
    /// The directory holding `c`'s files, if the cgroup was created with `c`.
    fn dir(&self, c: Controller) -> Option<&Path>;
    fn create(&mut self, rec: &mut Recorder) -> Result<()>;
    fn set_memory_max(&self, rec: &mut Recorder, bytes: u64) -> Result<()>;
    fn set_cpu_quota(&self, rec: &mut Recorder, quota_us: u64, period_us: u64) -> Result<()>;
    /// The group's relative CPU weight, in v2 units (1..10000, default 100).
    fn set_cpu_weight(&self, rec: &mut Recorder, weight: u64) -> Result<()>;
    /// Writes `value` into this version's own weight file, in its own scale, unconverted
    /// and unclamped ([`Version::cpu_weight_file`]): the kernel decides what to keep.
    fn set_cpu_weight_native(&self, rec: &mut Recorder, value: u64) -> Result<()>;
    /// This version's weight file read back, in its own scale.
    fn cpu_weight_native(&self, rec: &mut Recorder) -> Result<u64>;
    /// The CPU quota in µs per period; `None` when there is none.
    fn cpu_quota(&self, rec: &mut Recorder) -> Result<Option<u64>>;
    fn set_pids_max(&self, rec: &mut Recorder, max: u64) -> Result<()>;
    fn add_process(&self, rec: &mut Recorder, pid: i32) -> Result<()>;
    fn memory_stats(&self, rec: &mut Recorder) -> Result<MemoryStats>;
    fn cpu_stats(&self, rec: &mut Recorder) -> Result<CpuStats>;
    fn pids_stats(&self, rec: &mut Recorder) -> Result<PidsStats>;
    /// rmdir every directory, children first, retrying EBUSY until `deadline`.
    fn remove(&self, rec: &mut Recorder, deadline: Instant) -> Result<()>;
}

/// One of the backends, chosen from the machine's [`Mode`].
#[derive(Debug)]
pub enum AnyBackend {
    V1(v1::V1),
    V2(v2::V2),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::V1($b) => $e,
            AnyBackend::V2($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    fn version(&self) -> Version {
        dispatch!(self, b => b.version())
    }
    fn dirs(&self) -> Vec<&Path> {
        dispatch!(self, b => b.dirs())
    }
    fn dir(&self, c: Controller) -> Option<&Path> {
        dispatch!(self, b => b.dir(c))
    }
    fn create(&mut self, rec: &mut Recorder) -> Result<()> {
        dispatch!(self, b => b.create(rec))
    }
    fn set_memory_max(&self, rec: &mut Recorder, bytes: u64) -> Result<()> {
        dispatch!(self, b => b.set_memory_max(rec, bytes))
    }
    fn set_cpu_quota(&self, rec: &mut Recorder, quota_us: u64, period_us: u64) -> Result<()> {
        dispatch!(self, b => b.set_cpu_quota(rec, quota_us, period_us))
    }
    fn set_cpu_weight(&self, rec: &mut Recorder, weight: u64) -> Result<()> {
        dispatch!(self, b => b.set_cpu_weight(rec, weight))
    }
    fn set_cpu_weight_native(&self, rec: &mut Recorder, value: u64) -> Result<()> {
        dispatch!(self, b => b.set_cpu_weight_native(rec, value))
    }
    fn cpu_weight_native(&self, rec: &mut Recorder) -> Result<u64> {
        dispatch!(self, b => b.cpu_weight_native(rec))
    }
    fn cpu_quota(&self, rec: &mut Recorder) -> Result<Option<u64>> {
        dispatch!(self, b => b.cpu_quota(rec))
    }
    fn set_pids_max(&self, rec: &mut Recorder, max: u64) -> Result<()> {
        dispatch!(self, b => b.set_pids_max(rec, max))
    }
    fn add_process(&self, rec: &mut Recorder, pid: i32) -> Result<()> {
        dispatch!(self, b => b.add_process(rec, pid))
    }
    fn memory_stats(&self, rec: &mut Recorder) -> Result<MemoryStats> {
        dispatch!(self, b => b.memory_stats(rec))
    }
    fn cpu_stats(&self, rec: &mut Recorder) -> Result<CpuStats> {
        dispatch!(self, b => b.cpu_stats(rec))
    }
    fn pids_stats(&self, rec: &mut Recorder) -> Result<PidsStats> {
        dispatch!(self, b => b.pids_stats(rec))
    }
    fn remove(&self, rec: &mut Recorder, deadline: Instant) -> Result<()> {
        dispatch!(self, b => b.remove(rec, deadline))
    }
}

/// Who creates the cgroup: the run in its name, and whether nsx runs without root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Goes into the name, `nsx-<pid>-<start>-<lesson>`, so [`sweep()`] can tell a
    /// leftover of a dead run from a cgroup in use.
    pub run: Run,
    /// Decides how the v2 backend explains a missing delegation.
    pub rootless: bool,
}

impl Options {
    /// This process.
    pub fn current() -> Self {
        Options {
            run: Run::current(),
            rootless: !nix::unistd::geteuid().is_root(),
        }
    }
}

/// `nsx-<pid>-<start>-<lesson>` ([`Run::name`]): recognisable after a crash, with the
/// run that made it.
pub fn cgroup_name(run: Run, lesson: &str) -> String {
    run.name(lesson)
}

/// Who made a cgroup with an nsx name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// `nsx-<pid>-<start>-<lesson>`: the run, PID and start time.
    Run(Run),
    /// `nsx-<pid>-<lesson>`, the name nsx gave lesson cgroups before it recorded the
    /// start time: only the PID is known.
    Pid(u32),
}

impl Owner {
    /// Whether the run that made the cgroup may still be alive. A [`Owner::Run`] is alive
    /// exactly while that process runs ([`Run::is_alive`]). For an old name only the PID
    /// is known, so any process with that PID, whatever its name, counts as the owner:
    /// the cgroup goes only once no process has the PID at all. A reused PID keeps such a
    /// leftover (it goes later, or by hand); a run's cgroup is never taken from it.
    pub fn may_be_alive(&self, proc: &Path) -> bool {
        match self {
            Owner::Run(run) => run.is_alive_in(proc),
            Owner::Pid(pid) => proc.join(pid.to_string()).exists(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Run(run) => write!(
                f,
                "nsx run {} (PID {}, started at tick {})",
                run.tag(),
                run.pid,
                run.start
            ),
            Owner::Pid(pid) => write!(f, "the process with PID {pid}"),
        }
    }
}

/// The owner of a directory named by [`cgroup_name`], or by the older
/// `nsx-<pid>-<lesson>`; `None` for any other name.
pub fn parse_cgroup_name(name: &str) -> Option<Owner> {
    if let Some((run, _)) = crate::owner::parse_name(name) {
        return Some(Owner::Run(run));
    }
    let rest = name.strip_prefix("nsx-")?;
    let (pid, lesson) = rest.split_once('-')?;
    if lesson.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().map(Owner::Pid)
}

/// A cgroup created for one lesson run; removed by [`LessonCgroup::remove`] or on drop.
#[derive(Debug)]
pub struct LessonCgroup {
    name: String,
    mode: Mode,
    /// The cgroup file systems' root (usually /sys/fs/cgroup).
    root: std::path::PathBuf,
    backend: AnyBackend,
    rec: Recorder,
    removed: bool,
}

impl LessonCgroup {
    /// Creates `nsx-<pid>-<start>-<lesson>` (this run) on this machine for `controllers`.
    pub fn create(lesson: &str, controllers: &[Controller]) -> Result<LessonCgroup> {
        let wanted: Vec<&str> = controllers
            .iter()
            .flat_map(|c| c.v1_names())
            .copied()
            .collect();
        let layout = Layout::current_for(&wanted)?;
        LessonCgroup::create_with(
            &layout,
            lesson,
            controllers,
            Options::current(),
            Box::new(RealFs),
        )
    }

    /// Creates the lesson cgroup in `layout` through `fs` (tests pass a fixture).
    pub fn create_with(
        layout: &Layout,
        lesson: &str,
        controllers: &[Controller],
        opts: Options,
        fs: Box<dyn CgroupFs>,
    ) -> Result<LessonCgroup> {
        if lesson.is_empty()
            || !lesson
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::Usage(format!(
                "lesson cgroup name {lesson:?}: use lowercase letters, digits and '-'"
            )));
        }
        let mut unique: Vec<Controller> = Vec::new();
        for c in controllers {
            if !unique.contains(c) {
                unique.push(*c);
            }
        }
        let controllers = unique;
        let name = cgroup_name(opts.run, lesson);
        let rec = Recorder::new(fs);
        let backend = match layout.mode {
            Mode::V1 | Mode::Hybrid => {
                let plan = v1::V1::plan(layout, &name, &controllers)?;
                if opts.rootless {
                    // Without root the mkdir would fail with EACCES: say why and what to do.
                    plan.check_writable(&rec, layout.mode, lesson, true)?;
                }
                AnyBackend::V1(plan)
            }
            Mode::V2 => AnyBackend::V2(
                v2::V2::plan(layout, lesson, &name, &controllers, opts.rootless)?
                    .delegate_into_own(&rec, opts.run),
            ),
        };
        let mut cg = LessonCgroup {
            name,
            mode: layout.mode,
            root: layout.root.clone(),
            backend,
            rec,
            removed: false,
        };
        if let Err(e) = cg.backend.create(&mut cg.rec) {
            // Undo what was created before the failure; the creation error is the news.
            let _ = cg.remove();
            return Err(read_only_refusal(e));
        }
        Ok(cg)
    }

    /// `nsx-<pid>-<start>-<lesson>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn version(&self) -> Version {
        self.backend.version()
    }

    /// Every directory of this cgroup (one per v1 hierarchy; one on v2).
    pub fn dirs(&self) -> Vec<&Path> {
        self.backend.dirs()
    }

    /// The directory holding `c`'s control files.
    pub fn dir(&self, c: Controller) -> Option<&Path> {
        self.backend.dir(c)
    }

    /// The file a PID is written into to join: `cgroup.procs` on both versions (v1's
    /// `tasks` would move a single thread; see [`rosetta()`]).
    pub fn membership_file(&self) -> &'static str {
        "cgroup.procs"
    }

    /// Memory hard limit: v1 memory.limit_in_bytes (+ memory.memsw.limit_in_bytes),
    /// v2 memory.max (+ memory.swap.max = 0).
    pub fn set_memory_max(&mut self, bytes: u64) -> Result<()> {
        self.backend.set_memory_max(&mut self.rec, bytes)
    }

    /// CPU bandwidth: at most `quota_us` of CPU time per `period_us` (v1
    /// cpu.cfs_period_us + cpu.cfs_quota_us, v2 cpu.max). Both in microseconds; the
    /// kernel wants the period in 1 ms..1 s and the quota ≥ 1 ms (sched-bwc.rst).
    pub fn set_cpu_quota(&mut self, quota_us: u64, period_us: u64) -> Result<()> {
        self.backend
            .set_cpu_quota(&mut self.rec, quota_us, period_us)
    }

    /// CPU weight, the group's share of CPU time against its siblings when they compete
    /// (relative, unlike the quota): v1 cpu.shares (weight × 1024 / 100), v2 cpu.weight.
    /// In v2 units: 1..10000, default 100.
    pub fn set_cpu_weight(&mut self, weight: u64) -> Result<()> {
        self.backend.set_cpu_weight(&mut self.rec, weight)
    }

    /// Writes `value` into this version's own weight file (v1 cpu.shares, v2
    /// cpu.weight), unconverted: a v1 value out of range is clamped by the kernel, a v2
    /// one refused with ERANGE (the error's errno).
    pub fn set_cpu_weight_native(&mut self, value: u64) -> Result<()> {
        self.backend.set_cpu_weight_native(&mut self.rec, value)
    }

    /// The weight file read back, in this version's own scale.
    pub fn cpu_weight_native(&mut self) -> Result<u64> {
        self.backend.cpu_weight_native(&mut self.rec)
    }

    /// On a hybrid machine, what the cgroup2 mount at `<root>/unified` holds: its
    /// cgroup.controllers (often empty, or hugetlb on some kernels), read and recorded.
    /// `None` on v1 and v2.
    pub fn unified_controllers(&mut self) -> Result<Option<Vec<String>>> {
        if self.mode != Mode::Hybrid {
            return Ok(None);
        }
        let file = self.root.join("unified").join("cgroup.controllers");
        let text = self.rec.read(&file)?;
        Ok(Some(text.split_whitespace().map(str::to_string).collect()))
    }

    /// The CPU quota now in force, µs per period (v1 cpu.cfs_quota_us, v2 cpu.max);
    /// `None` for no limit.
    pub fn cpu_quota(&mut self) -> Result<Option<u64>> {
        self.backend.cpu_quota(&mut self.rec)
    }

    /// Process-count limit: pids.max on both versions.
    pub fn set_pids_max(&mut self, max: u64) -> Result<()> {
        self.backend.set_pids_max(&mut self.rec, max)
    }

    /// Moves the whole process `pid` (all its threads) into the cgroup.
    pub fn add_process(&mut self, pid: i32) -> Result<()> {
        if pid <= 0 {
            // Writing 0 moves the writer itself: nsx would put itself under the limit.
            return Err(Error::Other(format!(
                "refusing to move PID {pid} into a lesson cgroup"
            )));
        }
        self.backend.add_process(&mut self.rec, pid)
    }

    pub fn memory_stats(&mut self) -> Result<MemoryStats> {
        self.backend.memory_stats(&mut self.rec)
    }

    pub fn cpu_stats(&mut self) -> Result<CpuStats> {
        self.backend.cpu_stats(&mut self.rec)
    }

    pub fn pids_stats(&mut self) -> Result<PidsStats> {
        self.backend.pids_stats(&mut self.rec)
    }

    /// Every step so far, in order.
    pub fn actions(&self) -> &[Action] {
        self.rec.actions()
    }

    /// The steps since the last call (so each lesson step shows its own).
    pub fn take_actions(&mut self) -> Vec<Action> {
        self.rec.take_actions()
    }

    /// Removes every directory of the cgroup, children first, waiting up to
    /// [`REMOVE_BUDGET`] for processes that are still exiting. Calling it again after
    /// success does nothing.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.backend
            .remove(&mut self.rec, Instant::now() + REMOVE_BUDGET)?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for LessonCgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Drop cannot return the error, and a silent leak would surprise the next run:
        // say where the leftover is. `nsx` sweeps it once this process is gone.
        if let Err(e) = self.remove() {
            crate::warn!("nsx: could not remove cgroup {}: {e}", self.name);
        }
    }
}

/// A mkdir(2) or write(2) in a cgroup file system that failed with EROFS: it is mounted
/// read-only (as in a container), which no retry and no privilege nsx could take
/// changes, so the machine cannot run what needs a new cgroup. That is a refusal (exit
/// 77) with the reason and the fix, as `nsx doctor` gives it, not a failure. Any other
/// error is returned as it is.
pub fn read_only_refusal(e: Error) -> Error {
    match &e {
        Error::Sys(s) if s.errno == Errno::EROFS => Error::unsupported(
            format!(
                "the cgroup file system is mounted read-only (as in a container): {} {} failed with EROFS, so nsx cannot create a cgroup",
                s.op, s.target
            ),
            READ_ONLY_FIX,
        ),
        _ => e,
    }
}

/// The command the user ran to get the cgroup named for `lesson`, as a fix names it:
/// `nsx lesson memory`, or `nsx run ...` for the cgroup `nsx run` makes ("run", which is
/// no lesson).
pub fn command_for(lesson: &str) -> String {
    if crate::lessons::find(lesson).is_some() {
        format!("nsx lesson {lesson}")
    } else {
        format!("nsx {lesson} ...")
    }
}

/// What makes a read-only cgroup file system writable for nsx (doctor says the same).
pub const READ_ONLY_FIX: &str = "run nsx on the host or in a VM, or in a container with a writable cgroup file system (docker run --privileged)";

/// mkdir `dir`. If it exists it is a leftover of this very run (the name holds our PID
/// and start time, so no other process made it; a lesson that creates its cgroup again,
/// as in a tour): remove it, which only works when it is empty, and create it again.
pub(crate) fn mkdir_fresh(rec: &mut Recorder, dir: &Path) -> Result<()> {
    match rec.mkdir(dir) {
        Err(e) if e.errno() == Some(Errno::EEXIST) => {
            rec.rmdir(dir)?;
            rec.mkdir(dir)
        }
        other => other,
    }
}

/// Reads `path` and parses it; a parse error also names the full path.
pub(crate) fn parsed<T>(
    rec: &mut Recorder,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    let text = rec.read(path)?;
    parse(&text).map_err(|e| in_file(e, path))
}

/// Like [`parsed`] for files only some kernels have: `None` when absent.
pub(crate) fn parsed_optional<T>(
    rec: &mut Recorder,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<Option<T>> {
    match rec.read_optional(path)? {
        Some(text) => parse(&text).map(Some).map_err(|e| in_file(e, path)),
        None => Ok(None),
    }
}

fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Other(m) => Error::Other(format!("{m} (in {})", path.display())),
        e => e,
    }
}
