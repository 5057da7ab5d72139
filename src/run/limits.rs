//! The seam between `nsx run` and the cgroup code: [`check`] and [`apply_limits`].
//!
//! `nsx run` calls nothing else about cgroups. Both go through the shared
//! [`crate::cgroup`] module, so `nsx run --memory/--cpus/--pids` works wherever the limit
//! lessons do (cgroup v1, hybrid and v2), places its cgroup by the same rules (under
//! nsx's own cgroup on v1, in the nsx subtree on v2), names it `nsx-<pid>-run` so a killed
//! run's leftover is swept, and records every mkdir and write for the student.

use crate::cgroup::{self, Controller, LessonCgroup};
use crate::error::{Error, Result};
use crate::limits::{format_memory, Limits, CPU_PERIOD_US};

/// The controllers `limits` needs.
fn controllers(limits: &Limits) -> Vec<Controller> {
    let mut c = Vec::new();
    if limits.memory.is_some() {
        c.push(Controller::Memory);
    }
    if limits.cpus.is_some() {
        c.push(Controller::Cpu);
    }
    if limits.pids.is_some() {
        c.push(Controller::Pids);
    }
    c
}

/// Checks, creating nothing, that this machine can apply `limits`: exit 77 with the
/// reason and the fix when a controller is missing or not delegated.
pub fn check(limits: &Limits) -> Result<()> {
    // The doctor's decision, as for the memory, cpu and pids lessons: the same reasons,
    // and fixes that name `nsx run`.
    for c in controllers(limits) {
        if let crate::lessons::Support::No { reason, fix } =
            crate::doctor::run_limits_support(&[c.name()])
        {
            return Err(Error::unsupported(
                format!("--{}: {reason}", flag(c)),
                format!("{fix}; or run without --{}", flag(c)),
            ));
        }
    }
    Ok(())
}

fn flag(c: Controller) -> &'static str {
    match c {
        Controller::Memory => "memory",
        Controller::Cpu => "cpus",
        Controller::Pids => "pids",
    }
}

/// The cgroup made for one container; removed by [`Applied::remove`] or on drop.
pub struct Applied {
    cgroup: LessonCgroup,
    /// What was done, as shell lines for the student (`mkdir …`, `echo 33554432 > …`).
    pub actions: Vec<String>,
}

/// Puts `pid` under `limits`: creates the cgroup, writes the limits, moves the process.
/// The caller holds the process before it execs, so the command starts limited.
pub fn apply_limits(pid: i32, limits: &Limits) -> Result<Applied> {
    let _ = cgroup::sweep();
    let mut cg = LessonCgroup::create("run", &controllers(limits))?;
    if let Some(bytes) = limits.memory {
        cg.set_memory_max(bytes)?;
    }
    if let Some(cpus) = limits.cpus {
        cg.set_cpu_quota(cpus.quota_us(), CPU_PERIOD_US)?;
    }
    if let Some(n) = limits.pids {
        cg.set_pids_max(n)?;
    }
    cg.add_process(pid)?;
    let actions = cg
        .take_actions()
        .iter()
        .filter(|a| a.op != cgroup::Op::Read)
        .map(|a| match (&a.value, limits.memory) {
            (Some(v), Some(bytes)) if *v == bytes.to_string() => {
                format!("{a}   ({})", format_memory(bytes))
            }
            _ => a.to_string(),
        })
        .collect();
    Ok(Applied {
        cgroup: cg,
        actions,
    })
}

impl Applied {
    /// The directory holding `controller`'s files.
    pub fn dir(&self, controller: Controller) -> Option<&std::path::Path> {
        self.cgroup.dir(controller)
    }

    /// Removes the cgroup. A process still inside was started by the container (a daemon
    /// the command left behind without a PID namespace to end it): it is killed by PID,
    /// as read from the cgroup's own cgroup.procs, then the removal retries while the
    /// kernel finishes the exits.
    pub fn remove(mut self) -> Result<()> {
        for dir in self.cgroup.dirs() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        self.cgroup.remove()
    }
}
