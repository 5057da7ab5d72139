//! Which nsx run made a leftover, and whether that run is still alive.
//!
//! Everything nsx creates outside its own process (a temp dir, a cgroup, a veth, a System
//! V IPC object) carries the run that made it, so the next run can remove it once that
//! run is gone (SIGKILL gives no chance to clean up). A run is its PID *and* the start
//! time of that process (proc(5), `/proc/<pid>/stat` field 22, in clock ticks since
//! boot): a PID alone is reused by the kernel, and a process's name is whatever its
//! executable is called (a copy named `labtool` is still nsx). The pair names one process
//! for the life of the machine, so liveness never depends on either.
//!
//! proc(5) gives `starttime` as the *reader's* boot-time clock counts it: a reader in a
//! time namespace with a boottime offset (time_namespaces(7); `unshare --time
//! --boottime 200`, or a container made so) reads every start time shifted by it. Start
//! times here are taken back to the initial time namespace, so that such a run neither
//! names its things differently nor takes every other live run for a dead one.

use std::path::Path;
use std::sync::OnceLock;

/// One nsx process: its PID and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Run {
    pub pid: u32,
    /// `starttime` of `/proc/<pid>/stat`, clock ticks after boot.
    pub start: u64,
}

impl Run {
    /// This process. Read once: the start time of a process never changes.
    pub fn current() -> Run {
        static CURRENT: OnceLock<Run> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            // /proc/self is always readable by the process itself; 0 only if procfs is
            // missing, and then every leftover of ours is simply never swept.
            let start = start_time(Path::new("/proc"), pid).unwrap_or(0);
            Run { pid, start }
        })
    }

    /// The process that has `pid` now, read through the procfs at `proc`.
    pub fn of(proc: &Path, pid: u32) -> Option<Run> {
        Some(Run {
            pid,
            start: start_time(proc, pid)?,
        })
    }

    /// True while this very process runs (a zombie has ended: it counts as gone).
    pub fn is_alive(&self) -> bool {
        self.is_alive_in(Path::new("/proc"))
    }

    pub fn is_alive_in(&self, proc: &Path) -> bool {
        // One tick apart at most: an offset that is not a whole number of ticks rounds
        // the shifted and the unshifted reading differently (the kernel converts their
        // sum to ticks).
        Run::of(proc, self.pid).is_some_and(|now| {
            now.pid == self.pid && now.start.abs_diff(self.start) <= 1 && !is_zombie(proc, self.pid)
        })
    }

    /// `4242-98765`: how names carry the run.
    pub fn tag(&self) -> String {
        format!("{}-{}", self.pid, self.start)
    }

    /// `nsx-<pid>-<start>-<what>`: the name of something this run made.
    pub fn name(&self, what: &str) -> String {
        format!("nsx-{}-{what}", self.tag())
    }
}

/// Splits a name made by [`Run::name`] into the run and the `what`; `None` for anything
/// else (other names, the old `nsx-<pid>-<what>` form without a start time).
pub fn parse_name(name: &str) -> Option<(Run, &str)> {
    let rest = name.strip_prefix("nsx-")?;
    let (pid, rest) = split_number(rest)?;
    let (start, what) = split_number(rest)?;
    if what.is_empty() {
        return None;
    }
    Some((
        Run {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        },
        what,
    ))
}

/// `"123-rest"` -> `("123", "rest")`: digits, then a dash.
fn split_number(s: &str) -> Option<(&str, &str)> {
    let (n, rest) = s.split_once('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some((n, rest))
}

/// proc(5): `/proc/<pid>/stat` is `pid (comm) state ppid ...`, and comm may hold spaces
/// and parentheses, so fields are counted after the last `)`: state is field 3 and
/// starttime field 22.
/// `starttime` of `<proc>/<pid>/stat`, less the boot-time offset of the reader's time
/// namespace: clock ticks after boot as the initial time namespace counts them.
fn start_time(proc: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let read = parse_stat_start(&stat)?;
    Some(read.saturating_add_signed(-own_boottime_offset()))
}

/// The boot-time offset of this process's time namespace, in clock ticks, read once:
/// `/proc/self/timens_offsets` (the reader's, whatever procfs the start times come from)
/// shows the offsets of the namespace the process's *children* get, which is its own
/// until it unshares CLONE_NEWTIME; nsx reads it at its first sweep, before any lesson
/// could.
fn own_boottime_offset() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let offsets = std::fs::read_to_string("/proc/self/timens_offsets").unwrap_or_default();
        boottime_offset_ticks(&offsets, clock_ticks())
    })
}

/// sysconf(_SC_CLK_TCK): the unit of `starttime` (proc(5)).
fn clock_ticks() -> i64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz
    } else {
        100
    }
}

/// The `boottime` line of `timens_offsets` ("boottime <secs> <nanosecs>",
/// time_namespaces(7)) in clock ticks, rounded down as the kernel rounds; 0 without one
/// (the initial time namespace, or a kernel without time namespaces).
fn boottime_offset_ticks(offsets: &str, hz: i64) -> i64 {
    offsets
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            if f.next()? != "boottime" {
                return None;
            }
            let secs: i64 = f.next()?.parse().ok()?;
            let nanos: i64 = f.next()?.parse().ok()?;
            let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
            i64::try_from(total.div_euclid(1_000_000_000 / i128::from(hz))).ok()
        })
        .unwrap_or(0)
}

fn parse_stat_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn is_zombie(proc: &Path, pid: u32) -> bool {
    std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 1..];
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_pid_and_start_and_parse_back() {
        let run = Run {
            pid: 4242,
            start: 98765,
        };
        assert_eq!(run.name("memory"), "nsx-4242-98765-memory");
        assert_eq!(parse_name("nsx-4242-98765-memory"), Some((run, "memory")));
        assert_eq!(
            parse_name("nsx-4242-98765-rootfs-x1y2"),
            Some((run, "rootfs-x1y2"))
        );
        for other in [
            "nsx-4242-memory",
            "nsx-4242-98765-",
            "nsx--98765-x",
            "nsx-a-1-x",
            "other-4242-98765-x",
            "nsx-test-bin1234",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_boottime_offset_is_taken_off_in_clock_ticks() {
        assert_eq!(boottime_offset_ticks("", 100), 0);
        assert_eq!(
            boottime_offset_ticks("monotonic 100 0\nboottime 200 0\n", 100),
            20_000
        );
        assert_eq!(boottime_offset_ticks("boottime -5 500000000\n", 100), -450);
        assert_eq!(boottime_offset_ticks("boottime 0 15000000\n", 100), 1);
    }

    #[test]
    fn start_time_is_field_22_even_when_comm_has_spaces_and_parens() {
        let mut fields = vec!["S".to_string()];
        fields.extend((4..=52).map(|n| n.to_string()));
        let stat = format!("77 (a ) b) {}", fields.join(" "));
        assert_eq!(parse_stat_start(&stat), Some(22));
        assert_eq!(parse_stat_start("77 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_another_start_time_is_not() {
        let me = Run::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0);
        assert!(me.is_alive());
        // Same PID, a start time two ticks or more away: a reused PID, so the run that
        // made it is gone. One tick away is the rounding of a time namespace's offset.
        assert!(!Run {
            start: me.start + 2,
            ..me
        }
        .is_alive());
        assert!(Run {
            start: me.start + 1,
            ..me
        }
        .is_alive());
        // Whatever its executable is called.
        let parent = Run::of(Path::new("/proc"), std::os::unix::process::parent_id()).unwrap();
        assert!(parent.is_alive());
    }

    #[test]
    fn a_zombie_is_gone() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let run = Run::of(Path::new("/proc"), pid);
        // Wait until it has exited but is not reaped yet.
        for _ in 0..200 {
            if is_zombie(Path::new("/proc"), pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Some(run) = run {
            assert!(!run.is_alive());
        }
        let mut child = child;
        child.wait().unwrap();
    }
}
