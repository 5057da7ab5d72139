//! Resource limits as a user types them: `--memory 32M`, `--cpus 0.2`, `--pids 8`.
//!
//! The parsers are pure (no /sys, no cgroup) so that `nsx run` and the memory, cpu and
//! pids lessons share one grammar and one set of error messages. Each parser returns
//! `Err(text)` naming the accepted form; clap turns that into exit 2.
//!
//! Applying a [`Limits`] to a process is not done here: `nsx run` calls one function,
//! `run::limits::apply_limits`, the seam to the cgroup code.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The smallest memory limit accepted: below one MiB not even a static shell starts, and
/// the kernel would OOM-kill the command before it runs a line.
pub const MIN_MEMORY: u64 = 1 << 20;

/// The CFS period nsx writes with a CPU quota (cpu.cfs_period_us, or the second field of
/// cpu.max): 100 ms, the kernel's default.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The largest pids.max that means anything: PID_MAX_LIMIT on 64-bit kernels (proc(5),
/// /proc/sys/kernel/pid_max).
pub const MAX_PIDS: u64 = 4_194_304;

/// What `--memory`, `--cpus` and `--pids` asked for. `None` leaves that resource alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes (memory.limit_in_bytes on v1, memory.max on v2).
    pub memory: Option<u64>,
    pub cpus: Option<Cpus>,
    /// Processes and threads (pids.max).
    pub pids: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }
}

/// A CPU budget in thousandths of one CPU: `0.2` is 200, `1.5` is 1500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cpus {
    pub millis: u32,
}

impl Cpus {
    /// The quota for one [`CPU_PERIOD_US`] period: `0.2` → 20000 µs of CPU time per 100 ms.
    pub fn quota_us(self) -> u64 {
        CPU_PERIOD_US * u64::from(self.millis) / 1000
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.millis / 1000, self.millis % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let text = format!("{whole}.{frac:03}");
            f.write_str(text.trim_end_matches('0'))
        }
    }
}

const MEMORY_FORM: &str = "expected a size like 32M, 512k, 1G or a number of bytes (suffixes k, m, g are powers of 1024; at least 1M)";
const CPUS_FORM: &str =
    "expected a fraction of one CPU like 0.2, 1 or 1.5 (from 0.01 to 1024, at most 3 decimals)";
const PIDS_FORM: &str = "expected a whole number of processes like 8 (from 1 to 4194304)";

/// `32M` → 33554432. Accepts `<digits>[k|m|g|t][b|ib]`, case-insensitive, powers of 1024
/// (as `docker run --memory` does).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid memory size {text:?}: {MEMORY_FORM}");
    let s = text.trim().to_ascii_lowercase();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad());
    }
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    // Only digits: parse fails on overflow alone.
    let too_large = || format!("memory size {text:?} is too large: {MEMORY_FORM}");
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(too_large)?;
    if bytes == 0 {
        return Err(format!("memory size {text:?} is zero: {MEMORY_FORM}"));
    }
    if bytes < MIN_MEMORY {
        return Err(format!(
            "memory size {text:?} is below 1M, too small to start a command: {MEMORY_FORM}"
        ));
    }
    Ok(bytes)
}

/// `0.2` → 200 thousandths. Plain decimal notation only: no sign, exponent, `inf` or `nan`.
pub fn parse_cpus(text: &str) -> Result<Cpus, String> {
    let bad = || format!("invalid CPU fraction {text:?}: {CPUS_FORM}");
    let s = text.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty())
        || !all_digits(whole)
        || !all_digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    if frac.len() > 3 {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_millis: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let millis = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac_millis))
        .ok_or_else(bad)?;
    if millis == 0 {
        return Err(format!("CPU fraction {text:?} is zero: {CPUS_FORM}"));
    }
    if !(10..=1_024_000).contains(&millis) {
        return Err(format!(
            "CPU fraction {text:?} is out of range: {CPUS_FORM}"
        ));
    }
    Ok(Cpus {
        millis: millis as u32,
    })
}

/// `8` → 8.
pub fn parse_pids(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid process count {text:?}: {PIDS_FORM}"));
    }
    let n: u64 = s
        .parse()
        .map_err(|_| format!("process count {text:?} is too large: {PIDS_FORM}"))?;
    if n == 0 {
        return Err(format!("process count {text:?} is zero: {PIDS_FORM}"));
    }
    if n > MAX_PIDS {
        return Err(format!("process count {text:?} is too large: {PIDS_FORM}"));
    }
    Ok(n)
}

/// `33554432` → `32M`, for messages.
pub fn format_memory(bytes: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "k")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("32M"), Ok(32 << 20));
        assert_eq!(parse_memory("32m"), Ok(32 << 20));
        assert_eq!(parse_memory("32MiB"), Ok(32 << 20));
        assert_eq!(parse_memory("32mb"), Ok(32 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("2048k"), Ok(2 << 20));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        assert_eq!(parse_memory(" 64M "), Ok(64 << 20));
    }

    #[test]
    fn bad_memory_sizes_name_the_form() {
        for bad in [
            "", "M", "0", "0M", "-32M", "32X", "3.5M", "32 M", "1k", "999999", "lots", "32MM",
            "1e9", "+32M",
        ] {
            let e = parse_memory(bad).expect_err(bad);
            assert!(e.contains("like 32M"), "{bad:?}: {e}");
        }
        assert!(parse_memory("0").unwrap_err().contains("zero"));
        assert!(parse_memory("1k").unwrap_err().contains("below 1M"));
        assert!(parse_memory("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_memory("16777216T").unwrap_err().contains("too large"));
    }

    #[test]
    fn cpu_fractions() {
        assert_eq!(parse_cpus("0.2"), Ok(Cpus { millis: 200 }));
        assert_eq!(parse_cpus(".5"), Ok(Cpus { millis: 500 }));
        assert_eq!(parse_cpus("1"), Ok(Cpus { millis: 1000 }));
        assert_eq!(parse_cpus("1.5"), Ok(Cpus { millis: 1500 }));
        assert_eq!(parse_cpus("0.01"), Ok(Cpus { millis: 10 }));
        assert_eq!(parse_cpus("0.2").unwrap().quota_us(), 20_000);
        assert_eq!(parse_cpus("2").unwrap().quota_us(), 200_000);
        assert_eq!(parse_cpus("0.25").unwrap().to_string(), "0.25");
        assert_eq!(parse_cpus("2").unwrap().to_string(), "2");
    }

    #[test]
    fn bad_cpu_fractions_name_the_form() {
        for bad in [
            "", ".", "0", "0.0", "-0.5", "abc", "1e-1", "inf", "nan", "0.001", "0.0001", "1.",
            "1,5", "2000", "50%",
        ] {
            let e = parse_cpus(bad).expect_err(bad);
            assert!(e.contains("like 0.2"), "{bad:?}: {e}");
        }
        assert!(parse_cpus("0").unwrap_err().contains("zero"));
        assert!(parse_cpus("0.0001").unwrap_err().contains("invalid"));
        assert!(parse_cpus("0.001").unwrap_err().contains("out of range"));
        assert!(parse_cpus("0.009").unwrap_err().contains("out of range"));
    }

    #[test]
    fn pid_counts() {
        assert_eq!(parse_pids("8"), Ok(8));
        assert_eq!(parse_pids("1"), Ok(1));
        assert_eq!(parse_pids("4194304"), Ok(MAX_PIDS));
        for bad in [
            "",
            "0",
            "-1",
            "8.5",
            "eight",
            "4194305",
            "99999999999999999999999",
        ] {
            let e = parse_pids(bad).expect_err(bad);
            assert!(e.contains("like 8"), "{bad:?}: {e}");
        }
        assert!(parse_pids("0").unwrap_err().contains("zero"));
    }

    #[test]
    fn sizes_print_back_in_the_same_units() {
        assert_eq!(format_memory(32 << 20), "32M");
        assert_eq!(format_memory(1 << 30), "1G");
        assert_eq!(format_memory(1536 << 10), "1536k");
        assert_eq!(format_memory(1_000_001), "1000001");
    }
}
