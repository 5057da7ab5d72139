//! The numbers the limit lessons show, parsed from the text of cgroup files.
//!
//! Each parser takes the file's content as `&str`, so it is tested on captured files; a
//! malformed file is an error naming it, never a panic. The per-file structs keep the
//! kernel's names; [`MemoryStats`], [`CpuStats`] and [`PidsStats`] are what a lesson
//! reads, the same fields on v1 and v2 (the Rosetta table says which file fed which).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn parse_error(file: &str, detail: impl std::fmt::Display) -> Error {
    Error::Other(format!("parse {file}: {detail}"))
}

/// A "flat keyed" file (cgroup-v2.rst, Interface Files/Format): `KEY VALUE` per line.
/// v1's memory.oom_control, cpu.stat and pids.events use the same shape.
pub fn parse_flat_keyed(text: &str, file: &str) -> Result<BTreeMap<String, u64>> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(key), Some(val), None) = (it.next(), it.next(), it.next()) else {
            return Err(parse_error(
                file,
                format!("line {} {line:?}: expected \"<key> <integer>\"", n + 1),
            ));
        };
        let val: u64 = val.parse().map_err(|_| {
            parse_error(
                file,
                format!(
                    "line {} {line:?}: {val:?} is not an unsigned integer",
                    n + 1
                ),
            )
        })?;
        map.insert(key.to_string(), val);
    }
    Ok(map)
}

fn key(map: &BTreeMap<String, u64>, k: &str, file: &str) -> Result<u64> {
    map.get(k)
        .copied()
        .ok_or_else(|| parse_error(file, format!("no \"{k}\" line")))
}

/// A single-value file such as memory.failcnt or pids.current.
pub fn parse_u64(text: &str, file: &str) -> Result<u64> {
    let t = text.trim();
    t.parse()
        .map_err(|_| parse_error(file, format!("expected an unsigned integer, found {t:?}")))
}

/// A limit file that holds a number or `max` (pids.max, memory.max): `None` is "max".
pub fn parse_max(text: &str, file: &str) -> Result<Option<u64>> {
    match text.trim() {
        "max" => Ok(None),
        _ => parse_u64(text, file).map(Some),
    }
}

/// cgroup v1 memory.oom_control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomControl {
    pub oom_kill_disable: bool,
    /// 1 while the cgroup is at its limit and the OOM killer has not yet freed memory.
    pub under_oom: bool,
    /// Processes of this cgroup killed by the OOM killer (the line exists since Linux 4.13).
    pub oom_kill: u64,
}

pub fn parse_oom_control(text: &str) -> Result<OomControl> {
    const F: &str = "memory.oom_control";
    let m = parse_flat_keyed(text, F)?;
    Ok(OomControl {
        oom_kill_disable: key(&m, "oom_kill_disable", F)? != 0,
        under_oom: key(&m, "under_oom", F)? != 0,
        oom_kill: m.get("oom_kill").copied().ok_or_else(|| {
            parse_error(
                F,
                "no \"oom_kill\" line (it appeared in Linux 4.13; this kernel is older)",
            )
        })?,
    })
}

/// cgroup v2 memory.events (hierarchical counts; our lesson cgroup is a leaf).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEvents {
    pub low: u64,
    pub high: u64,
    /// Times usage was about to go over memory.max (reclaim was attempted).
    pub max: u64,
    /// Times usage reached the limit and an allocation was about to fail.
    pub oom: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
    /// Group kills (memory.oom.group), Linux 5.17+.
    pub oom_group_kill: Option<u64>,
}

pub fn parse_memory_events(text: &str) -> Result<MemoryEvents> {
    const F: &str = "memory.events";
    let m = parse_flat_keyed(text, F)?;
    Ok(MemoryEvents {
        low: key(&m, "low", F)?,
        high: key(&m, "high", F)?,
        max: key(&m, "max", F)?,
        oom: key(&m, "oom", F)?,
        oom_kill: key(&m, "oom_kill", F)?,
        oom_group_kill: m.get("oom_group_kill").copied(),
    })
}

/// cpu.stat, with the throttled time in microseconds on both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStat {
    /// Enforcement periods that have elapsed while the group had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the group used up its quota and was throttled.
    pub nr_throttled: u64,
    /// Total time throttled: v1 `throttled_time` (ns) / 1000, v2 `throttled_usec`.
    pub throttled_usec: u64,
    /// v2 only: CPU time used, `usage_usec` (v1 has it in cpuacct.usage).
    pub usage_usec: Option<u64>,
}

/// cgroup v1 cpu.stat (sched-bwc.rst: nr_periods, nr_throttled, throttled_time in ns).
pub fn parse_cpu_stat_v1(text: &str) -> Result<CpuStat> {
    const F: &str = "cpu.stat";
    let m = parse_flat_keyed(text, F)?;
    Ok(CpuStat {
        nr_periods: key(&m, "nr_periods", F)?,
        nr_throttled: key(&m, "nr_throttled", F)?,
        throttled_usec: key(&m, "throttled_time", F)? / 1000,
        usage_usec: None,
    })
}

/// cgroup v2 cpu.stat. usage_usec is always there; nr_periods, nr_throttled and
/// throttled_usec only when the cpu controller is enabled for the cgroup
/// (cgroup-v2.rst), so their absence is reported as such.
pub fn parse_cpu_stat_v2(text: &str) -> Result<CpuStat> {
    const F: &str = "cpu.stat";
    let m = parse_flat_keyed(text, F)?;
    let bw = |k: &str| {
        m.get(k).copied().ok_or_else(|| {
            parse_error(
                F,
                format!("no \"{k}\" line: the cpu controller is not enabled for this cgroup"),
            )
        })
    };
    Ok(CpuStat {
        nr_periods: bw("nr_periods")?,
        nr_throttled: bw("nr_throttled")?,
        throttled_usec: bw("throttled_usec")?,
        usage_usec: Some(key(&m, "usage_usec", F)?),
    })
}

/// pids.events: how many times a fork was refused because of pids.max (`max N`).
pub fn parse_pids_events(text: &str) -> Result<u64> {
    const F: &str = "pids.events";
    let m = parse_flat_keyed(text, F)?;
    key(&m, "max", F)
}

/// Memory use and limit events of a lesson cgroup, with the same meaning on v1 and v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// v1 memory.usage_in_bytes, v2 memory.current.
    pub usage_bytes: u64,
    /// Highest usage seen: v1 memory.max_usage_in_bytes, v2 memory.peak (Linux 5.19+).
    pub peak_bytes: Option<u64>,
    /// Times usage hit the limit: v1 memory.failcnt, v2 memory.events `max`.
    pub limit_hits: u64,
    /// v2 memory.events `oom`: times the limit was reached and reclaim could not help.
    pub oom: Option<u64>,
    /// v1 memory.oom_control `under_oom`: the cgroup is out of memory right now.
    pub under_oom: Option<bool>,
    /// Processes killed by the OOM killer: v1 memory.oom_control / v2 memory.events `oom_kill`.
    pub oom_kill: u64,
}

/// CPU bandwidth throttling and use of a lesson cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// v1 cpu.stat throttled_time / 1000, v2 cpu.stat throttled_usec.
    pub throttled_usec: u64,
    /// CPU time used: v1 cpuacct.usage / 1000 (when the cpuacct controller is mounted),
    /// v2 cpu.stat usage_usec.
    pub usage_usec: Option<u64>,
}

/// Process-count limit state of a lesson cgroup (same files on v1 and v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// pids.current: tasks (threads count too) in the cgroup.
    pub current: u64,
    /// pids.max; `None` is "max".
    pub max: Option<u64>,
    /// pids.events `max`: forks refused because of the limit.
    pub max_events: u64,
    /// pids.peak (Linux 6.13+).
    pub peak: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on the development machine (kernel 6.18, v1 hybrid): after a 32 MiB
    // cgroup's `tail` was OOM-killed, and after 1 s of spinning under a 20000/100000 quota.
    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    const V1_CPU_STAT: &str =
        "nr_periods 11\nnr_throttled 11\nthrottled_time 743530570\nnr_bursts 0\nburst_time 0\n";
    // The shape of a v2 kernel's files (cgroup-v2.rst).
    const V2_MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 57\noom 2\noom_kill 1\noom_group_kill 0\n";
    const V2_CPU_STAT: &str = "usage_usec 204812\nuser_usec 200000\nsystem_usec 4812\n\
        core_sched.force_idle_usec 0\nnr_periods 10\nnr_throttled 8\nthrottled_usec 790123\n\
        nr_bursts 0\nburst_usec 0\n";

    #[test]
    fn v1_oom_control() {
        let o = parse_oom_control(V1_OOM_CONTROL).unwrap();
        assert_eq!(
            o,
            OomControl {
                oom_kill_disable: false,
                under_oom: false,
                oom_kill: 1
            }
        );
    }

    #[test]
    fn v1_oom_control_without_oom_kill_names_the_kernel_version() {
        let e = parse_oom_control("oom_kill_disable 0\nunder_oom 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("memory.oom_control") && e.contains("4.13"),
            "{e}"
        );
    }

    #[test]
    fn v2_memory_events() {
        let e = parse_memory_events(V2_MEMORY_EVENTS).unwrap();
        assert_eq!(
            (e.max, e.oom, e.oom_kill, e.oom_group_kill),
            (57, 2, 1, Some(0))
        );
        let old = parse_memory_events("low 0\nhigh 0\nmax 1\noom 0\noom_kill 0\n").unwrap();
        assert_eq!(old.oom_group_kill, None);
    }

    #[test]
    fn cpu_stat_v1_converts_nanoseconds() {
        let s = parse_cpu_stat_v1(V1_CPU_STAT).unwrap();
        assert_eq!(
            (s.nr_periods, s.nr_throttled, s.throttled_usec, s.usage_usec),
            (11, 11, 743530, None)
        );
    }

    #[test]
    fn cpu_stat_v2() {
        let s = parse_cpu_stat_v2(V2_CPU_STAT).unwrap();
        assert_eq!(
            (s.nr_periods, s.nr_throttled, s.throttled_usec),
            (10, 8, 790123)
        );
        assert_eq!(s.usage_usec, Some(204812));
    }

    #[test]
    fn cpu_stat_v2_without_the_controller_says_so() {
        let e = parse_cpu_stat_v2("usage_usec 1\nuser_usec 1\nsystem_usec 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu.stat") && e.contains("not enabled"), "{e}");
    }

    #[test]
    fn pids_files() {
        assert_eq!(parse_pids_events("max 3\n").unwrap(), 3);
        // Newer kernels add keys (e.g. max.imposed); they must not confuse the parser.
        assert_eq!(parse_pids_events("max 3\nmax.imposed 5\n").unwrap(), 3);
        assert_eq!(parse_max("max\n", "pids.max").unwrap(), None);
        assert_eq!(parse_max("8\n", "pids.max").unwrap(), Some(8));
        assert_eq!(parse_u64("2\n", "pids.current").unwrap(), 2);
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let e = parse_u64("lots", "memory.failcnt").unwrap_err().to_string();
        assert!(e.contains("memory.failcnt") && e.contains("lots"), "{e}");
        let e = parse_flat_keyed("nr_periods x\n", "cpu.stat")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu.stat") && e.contains("line 1"), "{e}");
        let e = parse_flat_keyed("a 1 2\n", "pids.events")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pids.events"), "{e}");
        let e = parse_max("-1", "pids.max").unwrap_err().to_string();
        assert!(e.contains("pids.max"), "{e}");
        assert!(parse_oom_control("").is_err());
        assert!(parse_memory_events("garbage").is_err());
    }
}
