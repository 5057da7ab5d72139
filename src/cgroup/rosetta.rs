//! The v1 ↔ v2 "Rosetta": the same idea under its two names.
//!
//! Tutorials and the seed article use v1 file names; most machines now run v2. Each
//! limit lesson prints the rows for the controller it used, whichever version ran.

use std::fmt;

use serde::Serialize;

use super::Controller;

/// One idea and its file (or files) in each version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rosetta {
    pub what: &'static str,
    /// `None` for the core operations every lesson uses.
    pub controller: Option<Controller>,
    pub v1: &'static str,
    pub v2: &'static str,
    /// How the two differ, when they do.
    pub note: &'static str,
}

impl fmt::Display for Rosetta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: v1 {} ↔ v2 {}", self.what, self.v1, self.v2)?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

const fn row(
    what: &'static str,
    controller: Option<Controller>,
    v1: &'static str,
    v2: &'static str,
    note: &'static str,
) -> Rosetta {
    Rosetta {
        what,
        controller,
        v1,
        v2,
        note,
    }
}

use Controller::{Cpu, Memory, Pids};

const TABLE: &[Rosetta] = &[
    row(
        "create a cgroup",
        None,
        "mkdir in each controller's hierarchy (/sys/fs/cgroup/<controller>/...)",
        "mkdir once (/sys/fs/cgroup/...)",
        "v2 first enables the controller in the parent's cgroup.subtree_control",
    ),
    row(
        "join",
        None,
        "tasks (one thread) or cgroup.procs (the whole process)",
        "cgroup.procs",
        "nsx writes cgroup.procs on both, so no thread of the probe stays outside",
    ),
    row(
        "remove a cgroup",
        None,
        "rmdir in each hierarchy",
        "rmdir",
        "only once it has no process and no child",
    ),
    row(
        "memory limit",
        Some(Memory),
        "memory.limit_in_bytes",
        "memory.max",
        "",
    ),
    row(
        "swap limit",
        Some(Memory),
        "memory.memsw.limit_in_bytes",
        "memory.swap.max",
        "v1 limits memory+swap together, v2 limits swap alone",
    ),
    row(
        "memory in use",
        Some(Memory),
        "memory.usage_in_bytes",
        "memory.current",
        "",
    ),
    row(
        "peak memory",
        Some(Memory),
        "memory.max_usage_in_bytes",
        "memory.peak",
        "memory.peak needs Linux 5.19",
    ),
    row(
        "times the limit was hit",
        Some(Memory),
        "memory.failcnt",
        "memory.events max",
        "v1 with a swap limit: plus memory.memsw.failcnt",
    ),
    row(
        "OOM kills",
        Some(Memory),
        "memory.oom_control oom_kill",
        "memory.events oom_kill",
        "",
    ),
    // A state and a count are not one idea under two names: v1's under_oom says whether
    // the cgroup is out of memory right now (0 or 1, cgroup-v1/memory.rst), and v2 keeps
    // no such state; v2's memory.events oom counts the times the limit was reached with
    // nothing left to reclaim (cgroup-v2.rst), and v1 keeps no such count (it can only
    // notify each one, through an eventfd registered in cgroup.event_control).
    row(
        "out of memory now (0/1)",
        Some(Memory),
        "memory.oom_control under_oom",
        "(none: no such state)",
        "a state, back to 0 once the OOM killer has made room",
    ),
    row(
        "times out of memory",
        Some(Memory),
        "(none; memory.oom_control can notify each)",
        "memory.events oom",
        "a count; v1 notifies each one through an eventfd in cgroup.event_control",
    ),
    row(
        "CPU quota",
        Some(Cpu),
        "cpu.cfs_quota_us + cpu.cfs_period_us",
        "cpu.max \"$QUOTA $PERIOD\"",
        "both in microseconds",
    ),
    row(
        "no CPU limit",
        Some(Cpu),
        "cpu.cfs_quota_us = -1",
        "cpu.max \"max 100000\"",
        "",
    ),
    row(
        "throttling",
        Some(Cpu),
        "cpu.stat nr_periods, nr_throttled, throttled_time",
        "cpu.stat nr_periods, nr_throttled, throttled_usec",
        "v1 throttled_time is in nanoseconds",
    ),
    row(
        "CPU time used",
        Some(Cpu),
        "cpuacct.usage (cpuacct controller)",
        "cpu.stat usage_usec",
        "v1 in nanoseconds, v2 in microseconds",
    ),
    row(
        "CPU weight",
        Some(Cpu),
        "cpu.shares (2..262144, default 1024)",
        "cpu.weight (1..10000, default 100)",
        "the kernel counts cpu.weight w as w × 1024 / 100 shares: v2's highest is 102400",
    ),
    row(
        "process limit",
        Some(Pids),
        "pids.max",
        "pids.max",
        "the same file",
    ),
    row(
        "processes now",
        Some(Pids),
        "pids.current",
        "pids.current",
        "",
    ),
    row(
        "forks refused",
        Some(Pids),
        "pids.events max",
        "pids.events max",
        "",
    ),
];

/// The whole table.
pub fn rosetta() -> &'static [Rosetta] {
    TABLE
}

/// The rows a lesson about `c` shows: the core operations, then `c`'s own.
pub fn rosetta_for(c: Controller) -> Vec<&'static Rosetta> {
    TABLE
        .iter()
        .filter(|r| r.controller.is_none() || r.controller == Some(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curriculum_pairs_are_in_the_table() {
        let has = |v1: &str, v2: &str| TABLE.iter().any(|r| r.v1.contains(v1) && r.v2.contains(v2));
        assert!(has("tasks", "cgroup.procs"));
        assert!(has("memory.limit_in_bytes", "memory.max"));
        assert!(has("cpu.cfs_quota_us + cpu.cfs_period_us", "cpu.max"));
        assert!(has("pids.max", "pids.max"));
        assert!(has("memory.oom_control", "memory.events"));
        assert!(has("memory.failcnt", "memory.events max"));
    }

    #[test]
    fn a_state_is_never_paired_with_a_counter() {
        // v1 under_oom is 0 or 1 now; v2 memory.events oom counts: no row may pair them.
        let under = TABLE.iter().find(|r| r.v1.contains("under_oom")).unwrap();
        assert!(!under.v2.contains("memory.events"), "{under}");
        let count = TABLE.iter().find(|r| r.v2 == "memory.events oom").unwrap();
        assert!(!count.v1.contains("under_oom"), "{count}");
        // Each file that has a counterpart is paired with a file of the same kind.
        for r in TABLE {
            if r.v1.contains("oom_kill") {
                assert!(r.v2.contains("oom_kill"), "{r}");
            }
        }
    }

    #[test]
    fn rows_for_a_lesson_are_core_plus_its_controller() {
        let rows = rosetta_for(Controller::Pids);
        assert!(rows
            .iter()
            .all(|r| r.controller.is_none() || r.controller == Some(Controller::Pids)));
        assert!(rows.iter().any(|r| r.v1 == "pids.max"));
        assert!(rows.iter().any(|r| r.what == "join"));
        assert!(!rows.iter().any(|r| r.v2 == "memory.max"));
    }

    #[test]
    fn a_row_reads_as_one_line() {
        let r = TABLE.iter().find(|r| r.v2 == "memory.max").unwrap();
        assert_eq!(
            r.to_string(),
            "memory limit: v1 memory.limit_in_bytes ↔ v2 memory.max"
        );
        let j = serde_json::to_value(r).unwrap();
        assert_eq!(j["controller"], "memory");
    }
}
