//! cgroup v1 (and hybrid): one hierarchy per controller (or per group of co-mounted
//! controllers), so a lesson cgroup is one directory in each hierarchy it needs.
//!
//! Placement: in every hierarchy the lesson cgroup is created **under the invoking
//! process's own cgroup** in that hierarchy (its path in /proc/self/cgroup). v1 memory and
//! cpu limits are hierarchical (memory.use_hierarchy is always 1 on current kernels,
//! sched-bwc.rst "Hierarchical considerations"), so whatever limits apply to nsx also
//! apply to the probe: nsx can never hand its probe more than it has itself. v1 has no
//! "no internal processes" rule, so a cgroup that holds processes (ours) may have
//! children.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fs::Recorder;
use super::layout::{Layout, Mode};
use super::stats::{
    self, parse_cpu_stat_v1, parse_oom_control, parse_pids_events, parse_u64, CpuStats,
    MemoryStats, PidsStats,
};
use super::{mkdir_fresh, parsed, parsed_optional, Backend, Controller, Version};
use crate::error::{Error, Result};

/// v1 hierarchies a controller needs: (name, required). cpuacct is optional: it only
/// feeds the CPU-time figure, and some machines lack it.
fn subsystems(c: Controller) -> &'static [(&'static str, bool)] {
    match c {
        Controller::Memory => &[("memory", true)],
        Controller::Cpu => &[("cpu", true), ("cpuacct", false)],
        Controller::Pids => &[("pids", true)],
    }
}

#[derive(Debug)]
pub struct V1 {
    /// (v1 subsystem, lesson cgroup directory) in creation order. Co-mounted
    /// subsystems (`cpu,cpuacct`) share one directory.
    dirs: Vec<(&'static str, PathBuf)>,
    /// The machine has swap in use.
    swap: bool,
}

impl V1 {
    /// Decides where the lesson cgroup `name` goes in each hierarchy `controllers` need.
    pub fn plan(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<V1> {
        let mut dirs = Vec::new();
        for &c in controllers {
            for &(sub, required) in subsystems(c) {
                match layout.v1_own_dir(sub)? {
                    Some(own) => dirs.push((sub, own.join(name))),
                    None if required => return Err(not_mounted(sub)),
                    None => {}
                }
            }
        }
        Ok(V1 {
            dirs,
            swap: layout.swap,
        })
    }

    /// The distinct directories, in creation order.
    fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }

    fn dir_of(&self, sub: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(s, _)| *s == sub)
            .map(|(_, d)| d.as_path())
    }

    fn need(&self, sub: &str, c: Controller) -> Result<&Path> {
        self.dir_of(sub).ok_or_else(|| not_requested(c))
    }

    /// Checks, creating nothing, that this process may mkdir the lesson cgroup in every
    /// hierarchy: the parent (nsx's own cgroup there) must be writable. v1 has no
    /// delegation protocol, so without root this is where a lesson stops, with the way out
    /// (`nsx doctor` says so beforehand; this is the check at the moment of creating).
    pub(crate) fn check_writable(
        &self,
        rec: &Recorder,
        mode: Mode,
        lesson: &str,
        rootless: bool,
    ) -> Result<()> {
        for dir in self.unique_dirs() {
            let Some(parent) = dir.parent() else { continue };
            if rec.writable(parent) {
                continue;
            }
            return Err(if rootless {
                Error::unsupported(
                    format!(
                        "cgroup {mode} here: a lesson cgroup is a directory in each v1 hierarchy, and {} is not writable by uid {}; v1 hierarchies belong to root (systemd delegates only cgroup v2 subtrees to users)",
                        parent.display(),
                        nix::unistd::geteuid()
                    ),
                    {
                        let cmd = super::command_for(lesson);
                        format!(
                            "run it as root: sudo {cmd} (on a machine with cgroup v2 an unprivileged user can run it in a delegated scope: systemd-run --user --scope -p Delegate=yes {cmd})"
                        )
                    },
                )
            } else {
                Error::unsupported(
                    format!(
                        "{} is not writable although nsx runs as root: the cgroup file system is read-only here (e.g. inside a container)",
                        parent.display()
                    ),
                    "run nsx on the host, or in a container that has a writable cgroup (a privileged container, or one with a delegated cgroup)",
                )
            });
        }
        Ok(())
    }
}

fn not_mounted(sub: &str) -> Error {
    Error::unsupported(
        format!(
            "the {sub} controller has no cgroup v1 hierarchy here (no cgroup mount with the {sub} option in /proc/self/mountinfo); on a hybrid system it may be bound to the unified hierarchy instead"
        ),
        format!(
            "check that the kernel has it (cat /proc/cgroups, 'enabled' column; some kernels need cgroup_enable={sub} on the command line) and mount it: mount -t cgroup -o {sub} cgroup /sys/fs/cgroup/{sub}"
        ),
    )
}

pub(super) fn not_requested(c: Controller) -> Error {
    Error::Other(format!(
        "this lesson cgroup was created without the {} controller; pass Controller::{c:?} to LessonCgroup::create",
        c.name()
    ))
}

impl Backend for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn dirs(&self) -> Vec<&Path> {
        self.unique_dirs()
    }

    fn dir(&self, c: Controller) -> Option<&Path> {
        subsystems(c).first().and_then(|(s, _)| self.dir_of(s))
    }

    fn create(&mut self, rec: &mut Recorder) -> Result<()> {
        // A cgroup is a directory: one mkdir per hierarchy.
        for d in self.unique_dirs() {
            mkdir_fresh(rec, d)?;
        }
        Ok(())
    }

    fn set_memory_max(&self, rec: &mut Recorder, bytes: u64) -> Result<()> {
        let dir = self.need("memory", Controller::Memory)?;
        let mem = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let value = bytes.to_string();
        // memory.memsw.limit_in_bytes limits memory+swap, so that a process at the memory
        // limit is not swapped out instead of meeting it. It is written only when the
        // machine has swap: without swap there is nothing to dodge the limit with, and
        // writing it would cost the lesson its counter. The kernel charges memsw before
        // memory, so with equal limits memsw is the one that fails; and recent kernels
        // count failures only on the memory counter (mem_cgroup_css_alloc sets
        // track_failcnt for it alone), so memsw.failcnt stays 0 too. With both limits set,
        // memory.failcnt read 0 after an OOM kill on this machine (6.18); without memsw, 96.
        if !self.swap || !rec.exists(&memsw) {
            return rec.write(&mem, &value);
        }
        // The kernel keeps memsw >= memory (EINVAL otherwise, checked on this machine), so
        // raise memsw first when raising and lower memory first when lowering.
        let current = parsed(rec, &mem, |t| parse_u64(t, "memory.limit_in_bytes"))?;
        if bytes > current {
            rec.write(&memsw, &value)?;
            rec.write(&mem, &value)
        } else {
            rec.write(&mem, &value)?;
            rec.write(&memsw, &value)
        }
    }

    fn set_cpu_quota(&self, rec: &mut Recorder, quota_us: u64, period_us: u64) -> Result<()> {
        let dir = self.need("cpu", Controller::Cpu)?;
        // sched-bwc.rst: the group may run quota µs per period µs. The period goes first:
        // a fresh cgroup has quota -1 (unlimited), with which any valid period is accepted,
        // and the quota is then checked against the period it will be used with.
        rec.write(&dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
        rec.write(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string())
    }

    fn set_cpu_weight(&self, rec: &mut Recorder, weight: u64) -> Result<()> {
        // cpu.shares is the group's relative weight against its siblings (default 1024,
        // 2..262144). cpu.weight w is shares w × 1024 / 100: the kernel's own conversion
        // (sched_weight_from_cgroup turns cpu.weight into the scheduler's weight that
        // way) and systemd's (cgroup_cpu_weight_to_shares). So v2's highest, 10000, is
        // 102400 shares; v1 goes on to 262144, which no v2 weight reaches.
        let (lo, _, hi) = Version::V1.cpu_weight_range();
        let shares = (weight.saturating_mul(1024) / 100).clamp(lo, hi);
        self.set_cpu_weight_native(rec, shares)
    }

    fn set_cpu_weight_native(&self, rec: &mut Recorder, value: u64) -> Result<()> {
        let dir = self.need("cpu", Controller::Cpu)?;
        // The kernel clamps a value outside 2..262144 to that range (cpu_shares_write_u64
        // → sched_group_set_shares) instead of refusing it.
        rec.write(&dir.join("cpu.shares"), &value.to_string())
    }

    fn cpu_weight_native(&self, rec: &mut Recorder) -> Result<u64> {
        let dir = self.need("cpu", Controller::Cpu)?;
        parsed(rec, &dir.join("cpu.shares"), |t| parse_u64(t, "cpu.shares"))
    }

    fn cpu_quota(&self, rec: &mut Recorder) -> Result<Option<u64>> {
        let dir = self.need("cpu", Controller::Cpu)?;
        parsed(
            rec,
            &dir.join("cpu.cfs_quota_us"),
            super::limits::parse_cfs_quota,
        )
    }

    fn set_pids_max(&self, rec: &mut Recorder, max: u64) -> Result<()> {
        let dir = self.need("pids", Controller::Pids)?;
        rec.write(&dir.join("pids.max"), &max.to_string())
    }

    fn add_process(&self, rec: &mut Recorder, pid: i32) -> Result<()> {
        // v1 has two membership files: `tasks` moves one thread, `cgroup.procs` moves the
        // whole thread group (cgroup-v1/cgroups.rst). nsx writes cgroup.procs so no thread
        // of the probe can stay behind outside the limit; it is also the file v2 uses.
        // Each hierarchy has its own membership, so the PID is written once per directory.
        for d in self.unique_dirs() {
            rec.write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn memory_stats(&self, rec: &mut Recorder) -> Result<MemoryStats> {
        let dir = self.need("memory", Controller::Memory)?;
        let usage = parsed(rec, &dir.join("memory.usage_in_bytes"), |t| {
            parse_u64(t, "memory.usage_in_bytes")
        })?;
        let peak = parsed(rec, &dir.join("memory.max_usage_in_bytes"), |t| {
            parse_u64(t, "memory.max_usage_in_bytes")
        })?;
        let failcnt = parsed(rec, &dir.join("memory.failcnt"), |t| {
            parse_u64(t, "memory.failcnt")
        })?;
        // A charge fails at either the memory+swap or the memory counter, never both, so
        // the two counts add up (memsw.failcnt is 0 on kernels that stopped tracking it).
        let memsw_failcnt = if self.swap {
            parsed_optional(rec, &dir.join("memory.memsw.failcnt"), |t| {
                parse_u64(t, "memory.memsw.failcnt")
            })?
            .unwrap_or(0)
        } else {
            0
        };
        let oom = parsed(rec, &dir.join("memory.oom_control"), parse_oom_control)?;
        Ok(MemoryStats {
            usage_bytes: usage,
            peak_bytes: Some(peak),
            limit_hits: failcnt + memsw_failcnt,
            oom: None,
            under_oom: Some(oom.under_oom),
            oom_kill: oom.oom_kill,
        })
    }

    fn cpu_stats(&self, rec: &mut Recorder) -> Result<CpuStats> {
        let dir = self.need("cpu", Controller::Cpu)?;
        let stat = parsed(rec, &dir.join("cpu.stat"), parse_cpu_stat_v1)?;
        // cpuacct.usage is in nanoseconds (cgroup-v1/cpuacct.rst).
        let usage_usec = match self.dir_of("cpuacct") {
            Some(acct) => Some(
                parsed(rec, &acct.join("cpuacct.usage"), |t| {
                    parse_u64(t, "cpuacct.usage")
                })? / 1000,
            ),
            None => None,
        };
        Ok(CpuStats {
            nr_periods: stat.nr_periods,
            nr_throttled: stat.nr_throttled,
            throttled_usec: stat.throttled_usec,
            usage_usec,
        })
    }

    fn pids_stats(&self, rec: &mut Recorder) -> Result<PidsStats> {
        let dir = self.need("pids", Controller::Pids)?;
        pids_stats_at(rec, dir)
    }

    fn remove(&self, rec: &mut Recorder, deadline: Instant) -> Result<()> {
        // Every hierarchy, even if an earlier one failed, so as little as possible is
        // left behind; the first error is reported.
        let mut first = None;
        for d in self.unique_dirs().into_iter().rev() {
            if let Err(e) = rec.remove_tree(d, deadline) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// pids.current, pids.max, pids.events and (when present) pids.peak: the same files on
/// v1 and v2 (cgroup-v1/pids.rst, cgroup-v2.rst).
pub(super) fn pids_stats_at(rec: &mut Recorder, dir: &Path) -> Result<PidsStats> {
    let current = parsed(rec, &dir.join("pids.current"), |t| {
        parse_u64(t, "pids.current")
    })?;
    let max = parsed(rec, &dir.join("pids.max"), |t| {
        stats::parse_max(t, "pids.max")
    })?;
    let max_events = parsed(rec, &dir.join("pids.events"), parse_pids_events)?;
    let peak = parsed_optional(rec, &dir.join("pids.peak"), |t| parse_u64(t, "pids.peak"))?;
    Ok(PidsStats {
        current,
        max,
        max_events,
        peak,
    })
}
