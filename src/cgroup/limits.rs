//! The limits set on any cgroup, read from its files: what `nsx inspect` shows for a
//! process (v1 memory.limit_in_bytes, cpu.cfs_quota_us + cpu.cfs_period_us, pids.max;
//! v2 memory.max, cpu.max, pids.max).
//!
//! The parsers take the file's text and its name, so they are tested on captured text;
//! malformed text is an error naming the file, never a panic.

use std::io::ErrorKind;
use std::path::Path;

use serde::Serialize;

use super::stats::{parse_max, parse_u64};
use super::Version;
use crate::error::{op, Context, Error, Result};

/// One limit file of a cgroup and what its value means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// The file, e.g. "memory.max".
    pub file: String,
    /// Its content, trimmed.
    pub value: String,
    /// What it means: "no limit", "32 MiB", "20% of one CPU: 20000 µs every 100000 µs".
    pub meaning: String,
}

/// cgroup v1 has no "max": an unlimited memory.limit_in_bytes is the largest page
/// counter (PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages). Anything from
/// 2^62 bytes up is treated as that.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// v1 memory.limit_in_bytes: `None` when unlimited.
pub fn parse_v1_memory_limit(text: &str) -> Result<Option<u64>> {
    let v = parse_u64(text, "memory.limit_in_bytes")?;
    Ok((v < V1_UNLIMITED_FROM).then_some(v))
}

/// v1 cpu.cfs_quota_us: `-1` (unlimited) is `None`.
pub fn parse_cfs_quota(text: &str) -> Result<Option<u64>> {
    match text.trim() {
        "-1" => Ok(None),
        _ => parse_u64(text, "cpu.cfs_quota_us").map(Some),
    }
}

/// v2 cpu.max: `$MAX $PERIOD`, where `$MAX` is a quota in µs or `max`. Returns (quota,
/// period); a file with only `$MAX` has the default period, 100000 µs.
pub fn parse_cpu_max(text: &str) -> Result<(Option<u64>, u64)> {
    const F: &str = "cpu.max";
    let mut it = text.split_whitespace();
    let bad = || {
        Error::Other(format!(
            "parse {F}: expected \"<quota|max> <period>\", found {:?}",
            text.trim()
        ))
    };
    let quota = match it.next().ok_or_else(bad)? {
        "max" => None,
        q => Some(q.parse().map_err(|_| bad())?),
    };
    let period = match it.next() {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => 100_000,
    };
    if it.next().is_some() || period == 0 {
        return Err(bad());
    }
    Ok((quota, period))
}

/// `33554432` → "32 MiB"; exact powers are shown exactly, others with one decimal.
pub fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut v = b as f64;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} bytes")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn cpu_text(quota: Option<u64>, period: u64) -> String {
    match quota {
        None => "no limit".to_string(),
        Some(q) => {
            let percent = q as f64 * 100.0 / period.max(1) as f64;
            format!("{percent:.0}% of one CPU: {q} µs every {period} µs")
        }
    }
}

/// Reads `dir/file`; `None` when the file does not exist (the controller is not enabled
/// for this cgroup, or it is a root cgroup, which has no limits).
fn read_optional(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(op::READ, path.display()),
    }
}

fn named(e: Error, path: &Path) -> Error {
    match e {
        Error::Other(m) => Error::Other(format!("{m} (in {})", path.display())),
        e => e,
    }
}

/// The limits of the cgroup directory `dir`: on v1 those of `controllers` (the
/// hierarchy's), on v2 whichever of memory.max, cpu.max and pids.max exist.
pub fn read_limits(dir: &Path, version: Version, controllers: &[String]) -> Result<Vec<Limit>> {
    let has = |c: &str| version == Version::V2 || controllers.iter().any(|x| x == c);
    let mut out = Vec::new();
    let mut push = |file: &str, text: &str, meaning: String| {
        out.push(Limit {
            file: file.to_string(),
            value: text.trim().to_string(),
            meaning,
        })
    };
    match version {
        Version::V1 => {
            if has("memory") {
                if let Some(t) = read_optional(dir, "memory.limit_in_bytes")? {
                    let v = parse_v1_memory_limit(&t)
                        .map_err(|e| named(e, &dir.join("memory.limit_in_bytes")))?;
                    push(
                        "memory.limit_in_bytes",
                        &t,
                        v.map(bytes_text).unwrap_or_else(|| "no limit".into()),
                    );
                }
            }
            if has("cpu") {
                let quota = read_optional(dir, "cpu.cfs_quota_us")?;
                let period = read_optional(dir, "cpu.cfs_period_us")?;
                if let (Some(q), Some(p)) = (quota, period) {
                    let qv =
                        parse_cfs_quota(&q).map_err(|e| named(e, &dir.join("cpu.cfs_quota_us")))?;
                    let pv = parse_u64(&p, "cpu.cfs_period_us")
                        .map_err(|e| named(e, &dir.join("cpu.cfs_period_us")))?;
                    push("cpu.cfs_quota_us", &q, cpu_text(qv, pv));
                    push("cpu.cfs_period_us", &p, format!("{pv} µs"));
                }
            }
            if has("pids") {
                if let Some(t) = read_optional(dir, "pids.max")? {
                    let v =
                        parse_max(&t, "pids.max").map_err(|e| named(e, &dir.join("pids.max")))?;
                    push("pids.max", &t, pids_text(v));
                }
            }
        }
        Version::V2 => {
            if let Some(t) = read_optional(dir, "memory.max")? {
                let v =
                    parse_max(&t, "memory.max").map_err(|e| named(e, &dir.join("memory.max")))?;
                push(
                    "memory.max",
                    &t,
                    v.map(bytes_text).unwrap_or_else(|| "no limit".into()),
                );
            }
            if let Some(t) = read_optional(dir, "cpu.max")? {
                let (q, p) = parse_cpu_max(&t).map_err(|e| named(e, &dir.join("cpu.max")))?;
                push("cpu.max", &t, cpu_text(q, p));
            }
            if let Some(t) = read_optional(dir, "pids.max")? {
                let v = parse_max(&t, "pids.max").map_err(|e| named(e, &dir.join("pids.max")))?;
                push("pids.max", &t, pids_text(v));
            }
        }
    }
    Ok(out)
}

fn pids_text(v: Option<u64>) -> String {
    match v {
        None => "no limit".to_string(),
        Some(1) => "1 process".to_string(),
        Some(n) => format!("{n} processes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1_memory_limits() {
        assert_eq!(
            parse_v1_memory_limit("9223372036854771712\n").unwrap(),
            None
        );
        assert_eq!(parse_v1_memory_limit("33554432\n").unwrap(), Some(32 << 20));
        let e = parse_v1_memory_limit("-1").unwrap_err().to_string();
        assert!(e.contains("memory.limit_in_bytes"), "{e}");
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!(parse_cfs_quota("-1\n").unwrap(), None);
        assert_eq!(parse_cfs_quota("20000\n").unwrap(), Some(20000));
        assert_eq!(parse_cpu_max("max 100000\n").unwrap(), (None, 100000));
        assert_eq!(
            parse_cpu_max("20000 100000\n").unwrap(),
            (Some(20000), 100000)
        );
        assert_eq!(parse_cpu_max("max").unwrap(), (None, 100000));
        for bad in ["", "x 1", "1 y", "1 2 3", "1 0"] {
            let e = parse_cpu_max(bad).unwrap_err().to_string();
            assert!(e.contains("cpu.max"), "{bad:?}: {e}");
        }
        assert_eq!(
            cpu_text(Some(20000), 100000),
            "20% of one CPU: 20000 µs every 100000 µs"
        );
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(bytes_text(33554432), "32 MiB");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(7), "7 bytes");
    }

    #[test]
    fn reads_v1_and_v2_directories() {
        let d = tempfile::tempdir().unwrap();
        let w = |f: &str, t: &str| std::fs::write(d.path().join(f), t).unwrap();
        w("memory.limit_in_bytes", "33554432\n");
        w("cpu.cfs_quota_us", "-1\n");
        w("cpu.cfs_period_us", "100000\n");
        let v1 = read_limits(
            d.path(),
            Version::V1,
            &["memory".into(), "cpu".into(), "cpuacct".into()],
        )
        .unwrap();
        let files: Vec<&str> = v1.iter().map(|l| l.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "memory.limit_in_bytes",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us"
            ]
        );
        assert_eq!(v1[0].meaning, "32 MiB");
        assert_eq!(v1[1].meaning, "no limit");
        // Only the hierarchy's own controllers are read on v1.
        assert!(read_limits(d.path(), Version::V1, &["pids".into()])
            .unwrap()
            .is_empty());

        w("memory.max", "max\n");
        w("cpu.max", "50000 100000\n");
        w("pids.max", "8\n");
        let v2 = read_limits(d.path(), Version::V2, &[]).unwrap();
        let m: Vec<(&str, &str)> = v2
            .iter()
            .map(|l| (l.file.as_str(), l.meaning.as_str()))
            .collect();
        assert_eq!(
            m,
            [
                ("memory.max", "no limit"),
                ("cpu.max", "50% of one CPU: 50000 µs every 100000 µs"),
                ("pids.max", "8 processes")
            ]
        );
        w("pids.max", "many\n");
        let e = read_limits(d.path(), Version::V2, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pids.max") && e.contains(&d.path().display().to_string()),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn limit_parsers_never_panic(text in ".{0,60}") {
            for r in [parse_v1_memory_limit(&text).err(), parse_cfs_quota(&text).err(), parse_cpu_max(&text).err()].into_iter().flatten() {
                let m = r.to_string();
                prop_assert!(m.contains("memory.limit_in_bytes") || m.contains("cpu."), "{}", m);
            }
        }

        #[test]
        fn numbers_round_trip(q in 1000u64..1_000_000, p in 1000u64..1_000_000) {
            prop_assert_eq!(parse_cpu_max(&format!("{q} {p}\n")).unwrap(), (Some(q), p));
            prop_assert_eq!(parse_cfs_quota(&format!("{q}\n")).unwrap(), Some(q));
        }
    }
}
