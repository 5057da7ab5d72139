//! cpu: a CPU quota caps how much CPU time a cgroup gets per period.
//!
//! CFS bandwidth control (kernel docs scheduler/sched-bwc.rst): a cgroup may run for
//! `quota` µs of CPU time in every `period` µs (v1 cpu.cfs_quota_us and
//! cpu.cfs_period_us, v2 cpu.max "$QUOTA $PERIOD"). Once the quota of a period is used
//! up, the cgroup's tasks are throttled, taken off the CPU until the next period refills
//! it, and cpu.stat counts it (nr_throttled, throttled time). The probe spins for a fixed
//! wall-clock time and measures the CPU time it got with clock_gettime(2)
//! CLOCK_PROCESS_CPUTIME_ID; without a quota it gets what the machine can give, with one
//! about quota/period of its wall time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cgroup_steps::{self as cs, Log};
use super::{Ctx, Lesson, Rootless};
use crate::cgroup::{Action, Controller, CpuStats, Layout, LessonCgroup, Mode, Op, Version};
use crate::error::{sys, Error, Result};
use crate::limits::{Cpus, CPU_PERIOD_US};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{self, Inside, Spec};

/// The quota the lesson sets unless `--cpus` says otherwise: 20 % of one CPU.
pub const DEFAULT_CPUS: Cpus = Cpus { millis: 200 };
/// The largest `--cpus` the lesson accepts (see [`check_options`]).
pub const MAX_CPUS: Cpus = Cpus { millis: 250 };
/// How long each probe spins, in wall-clock time.
pub const SPIN: Duration = Duration::from_millis(500);
/// The relative part of the tolerance on "CPU time ≈ quota × wall time"; the absolute
/// part is one period's quota. lessons/cpu.md explains both.
pub const TOLERANCE: f64 = 0.5;

pub const LESSON: Lesson = Lesson {
    id: "cpu",
    title: "CPU quota: throttled to a share of one CPU",
    mechanism: "a cpu cgroup: mkdir, write quota and period into files, write the probe's PID into cgroup.procs",
    man: "cgroups(7); kernel docs scheduler/sched-bwc.rst and admin-guide/cgroup-v2.rst (CPU); clock_gettime(2)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/cpu.md"),
    sees: Parts::CGROUP,
    facts: &[],
    words: &["cgroups", "cgroup", "limits", "limit", "quota", "cpus", "throttling"],
    imp: super::Imp::Old(run),
};

/// The lesson compares one spinning thread with and without the quota. A thread uses at
/// most one CPU, and the limited run must stay under half the unlimited one even at the
/// top of its tolerance: quota × (1.5 × 500 ms + 100 ms) < 250 ms holds up to 0.29.
pub fn check_options(cpus: Cpus) -> Result<()> {
    if cpus > MAX_CPUS {
        return Err(Error::Usage(format!(
            "--cpus {cpus}: the cpu lesson takes a fraction from 0.01 to {MAX_CPUS}: its probe is a single thread (it can use at most one CPU), and the limited run must stay clearly below the unlimited one, even at the top of the stated tolerance"
        )));
    }
    Ok(())
}

/// The weight both runs get (v2 units; v1 cpu.shares 102400): the highest v2 allows. It
/// decides how CPU time is shared among groups that compete for it, so other work on a
/// busy machine barely slows the unlimited run; the quota then caps the limited one all
/// the same: a weight is relative, a quota absolute.
pub const WEIGHT: u64 = 10_000;

/// Below this share of one CPU, an unlimited probe that was never throttled was
/// starved by the rest of the machine: a spinning thread alone gets all of one CPU.
pub const STARVED_SHARE: f64 = 0.8;

/// What the probe measured.
#[derive(Debug, Serialize, Deserialize)]
struct Spun {
    view: View,
    /// The quota file of its own cgroup as the probe reads it (`cat` from inside).
    quota_file: String,
    quota_seen: String,
    /// Wall-clock time of the spin (CLOCK_MONOTONIC).
    wall_us: u64,
    /// CPU time the spin got (CLOCK_PROCESS_CPUTIME_ID, before and after).
    cpu_us: u64,
    /// The probe's CPU time since it was cloned, when the spin ended.
    total_cpu_us: u64,
}

fn process_cpu_time() -> Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // clock_gettime(2): CLOCK_PROCESS_CPUTIME_ID is the CPU time consumed by all threads of
    // the calling process, the scheduler's own account (the same one cgroups charge).
    // SAFETY: ts is a valid timespec to write into.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Err(sys(
            "clock_gettime",
            "CLOCK_PROCESS_CPUTIME_ID",
            nix::errno::Errno::last(),
        ));
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// The file holding the CPU quota of the caller's own cgroup, found the way any program
/// inside can (JVMs and Go runtimes do this to size themselves): its cgroup path from
/// /proc/self/cgroup, the hierarchy's mount point from /proc/self/mountinfo.
fn own_quota_file() -> Result<PathBuf> {
    let layout = Layout::detect()?;
    match layout.mode {
        Mode::V2 => Ok(layout.v2_own_dir()?.0.join("cpu.max")),
        Mode::V1 | Mode::Hybrid => layout
            .v1_own_dir("cpu")?
            .map(|d| d.join("cpu.cfs_quota_us"))
            .ok_or_else(|| Error::Other("no cpu hierarchy is mounted".into())),
    }
}

/// The probe: read its own quota file, then spin on the clock for [`SPIN`].
fn spin(inside: &mut Inside) -> Result<Spun> {
    let view = inside.observe()?;
    let (quota_file, quota_seen) = match own_quota_file() {
        Ok(f) => {
            let seen = std::fs::read_to_string(&f)
                .map(|t| t.trim().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            inside.action(format!("(the probe) cat {}", f.display()));
            (f.display().to_string(), seen)
        }
        Err(e) => (String::new(), format!("not found: {e}")),
    };
    let cpu0 = process_cpu_time()?;
    // std's Instant is CLOCK_MONOTONIC: wall-clock time that keeps running while the
    // probe is throttled, which is what makes the throttling visible.
    let start = Instant::now();
    let mut spins: u64 = 0;
    while start.elapsed() < SPIN {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    let wall = start.elapsed();
    let cpu1 = process_cpu_time()?;
    inside.action(format!(
        "(the probe) spin for {} ms of wall-clock time, reading CLOCK_PROCESS_CPUTIME_ID before and after",
        SPIN.as_millis()
    ));
    Ok(Spun {
        view,
        quota_file,
        quota_seen,
        wall_us: wall.as_micros() as u64,
        cpu_us: (cpu1.saturating_sub(cpu0)).as_micros() as u64,
        total_cpu_us: cpu1.as_micros() as u64,
    })
}

/// One clock tick (USER_HZ), the unit of utime and stime, in µs.
fn host_tick_us() -> u64 {
    // sysconf(3): clock ticks per second (USER_HZ, 100 on Linux).
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000 / u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100)
}

/// utime + stime of `/proc/<pid>/stat` in µs (proc(5): fields 14 and 15, in clock ticks).
fn host_cpu_us(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * host_tick_us())
}

struct Ran {
    log: Log,
    host: View,
    spun: Spun,
    /// The quota file's content, as the host read it before the probe ran.
    quota_host: String,
    host_cpu_us: Option<u64>,
    /// The cgroup's counters after this run (cumulative since the cgroup was made).
    stats: CpuStats,
}

/// The last value read from the quota file in `actions`.
fn quota_read(actions: &[Action]) -> String {
    actions
        .iter()
        .rev()
        .find(|a| {
            a.op == Op::Read
                && a.path
                    .file_name()
                    .is_some_and(|f| f == "cpu.cfs_quota_us" || f == "cpu.max")
        })
        .and_then(|a| a.value.clone())
        .unwrap_or_default()
}

/// Reads the quota (so both sides show it), spawns the probe into the lesson cgroup
/// before it runs, lets it spin, and reads it and the cgroup from outside.
fn run_probe(cg: &mut LessonCgroup, mut log: Log) -> Result<Ran> {
    cg.cpu_quota()?;
    log.cgroup(cg);
    let quota_host = quota_read(&log.cgroup);
    let mut child = sandbox::spawn(&Spec::default(), spin)?;
    log.extend(std::mem::take(&mut child.actions));
    // Held until `go`: the probe joins before it has used any CPU time.
    cg.add_process(child.pid())?;
    log.cgroup(cg);
    let spun: Spun = child.run()?;
    log.extend(std::mem::take(&mut child.actions));
    // The probe waits for its release: read it from outside while it is alive.
    let host = child.observe_from_host()?;
    let host_cpu_us = host_cpu_us(child.pid());
    let stats = cg.cpu_stats()?;
    log.cgroup(cg);
    child.finish()?;
    Ok(Ran {
        log,
        host,
        spun,
        quota_host,
        host_cpu_us,
        stats,
    })
}

fn ms(us: u64) -> String {
    format!("{} ms", (us + 500) / 1000)
}

/// `0.2` as a number.
fn fraction(cpus: Cpus) -> f64 {
    f64::from(cpus.millis) / 1000.0
}

/// `[lo, hi]` µs of CPU time a quota allows in `wall_us`: quota × wall ± [`TOLERANCE`],
/// widened by one period's quota.
pub fn band(cpus: Cpus, wall_us: u64) -> (u64, u64) {
    let expected = fraction(cpus) * wall_us as f64;
    let one_period = cpus.quota_us() as f64;
    let lo = (expected * (1.0 - TOLERANCE) - one_period).max(0.0);
    let hi = expected * (1.0 + TOLERANCE) + one_period;
    (lo as u64, hi as u64)
}

fn share(spun: &Spun) -> String {
    if spun.wall_us == 0 {
        return "?".into();
    }
    format!(
        "{} %",
        (spun.cpu_us as f64 * 100.0 / spun.wall_us as f64).round()
    )
}

/// The counters of one run: the difference between two readings.
fn delta(now: &CpuStats, before: Option<&CpuStats>) -> CpuStats {
    let Some(b) = before else { return *now };
    CpuStats {
        nr_periods: now.nr_periods.saturating_sub(b.nr_periods),
        nr_throttled: now.nr_throttled.saturating_sub(b.nr_throttled),
        throttled_usec: now.throttled_usec.saturating_sub(b.throttled_usec),
        usage_usec: match (now.usage_usec, b.usage_usec) {
            (Some(n), Some(b)) => Some(n.saturating_sub(b)),
            (n, _) => n,
        },
    }
}

fn measured(ran: &Ran, stats: &CpuStats) -> Value {
    json!({
        "wall_us": ran.spun.wall_us,
        "cpu_us": ran.spun.cpu_us,
        "total_cpu_us": ran.spun.total_cpu_us,
        "host_utime_stime_us": ran.host_cpu_us,
        "stats": stats,
    })
}

fn rows(ran: &Ran, version: Version, label: &str, path: &dyn Fn(&View) -> String) -> Vec<Row> {
    let file = match version {
        Version::V1 => "cpu.cfs_quota_us",
        Version::V2 => "cpu.max",
    };
    vec![
        Row::new(label, path(&ran.host), path(&ran.spun.view)),
        Row::new(
            format!("{file} of that cgroup"),
            &ran.quota_host,
            &ran.spun.quota_seen,
        ),
        Row::new(
            "CPU time of the probe",
            match ran.host_cpu_us {
                Some(us) => format!("utime+stime {} (/proc/{}/stat)", ms(us), ran.host.probe.pid),
                None => "unreadable".into(),
            },
            format!(
                "{} in {} of spinning ({} of one CPU)",
                ms(ran.spun.cpu_us),
                ms(ran.spun.wall_us),
                share(&ran.spun)
            ),
        ),
    ]
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let cpus = ctx.options.cpus;
    check_options(cpus)?;
    let (quota_us, period_us) = (cpus.quota_us(), CPU_PERIOD_US);
    let mut cg = cs::open(ctx, Controller::Cpu)?;
    cg.set_cpu_weight(WEIGHT)?;
    let mut setup = Log::default();
    setup.cgroup(&mut cg);
    let version = cg.version();
    let label = cs::cgroup_label(Controller::Cpu, version);
    let path = |v: &View| cs::cgroup_path(v, Controller::Cpu, version);
    let (weight_file, weight_value) = match version {
        Version::V1 => ("cpu.shares", WEIGHT * 1024 / 100),
        Version::V2 => ("cpu.weight", WEIGHT),
    };
    let setting = match version {
        Version::V1 => format!(
            "cpu.cfs_quota_us = {quota_us} per cpu.cfs_period_us = {period_us} ({cpus} of a CPU)"
        ),
        Version::V2 => format!("cpu.max = \"{quota_us} {period_us}\" ({cpus} of a CPU)"),
    };

    // ---- before: the lesson cgroup, no quota yet.
    let before = run_probe(&mut cg, setup)?;
    let stats0 = before.stats;
    let no_quota = matches!(before.quota_host.as_str(), "-1" | "max 100000")
        || before.quota_host.starts_with("max ");
    let (u, w0) = (before.spun.cpu_us, before.spun.wall_us);
    let (_, hi0) = band(cpus, w0);
    let before_fact = Fact::new(
        "before-unlimited-exceeds-the-quota",
        format!(
            "before, in the lesson cgroup with no quota ({} reads {}), the probe used {} of CPU in {} of spinning ({} of one CPU), more than {cpus} of a CPU allows in that time (at most {} with the tolerance): the quota will have something to cut",
            match version {
                Version::V1 => "cpu.cfs_quota_us",
                Version::V2 => "cpu.max",
            },
            before.quota_host,
            ms(u),
            ms(w0),
            share(&before.spun),
            ms(hi0)
        ),
        no_quota && before.spun.quota_seen == before.quota_host && u > hi0,
        json!({ "cpus": cpus.to_string(), "quota": before.quota_host, "measured": measured(&before, &stats0) }),
    );
    // Starved: with no quota and never throttled in its cgroup, the probe still got
    // clearly less than the one CPU a spinning thread takes on an idle machine. Nothing
    // in its cgroup held it back, so the machine did: other runnable work took the CPUs
    // (or a limit above nsx's cgroup). A comparison with the quota that fails then
    // cannot be blamed on the kernel.
    let starved = stats0.nr_throttled == 0 && (u as f64) < STARVED_SHARE * w0 as f64;
    let starved_why = format!(
        "with no quota and never throttled in its cgroup (cpu.stat nr_throttled 0), the probe got only {} of CPU in {} of spinning ({} of one CPU): other work on this machine (or a limit above nsx's own cgroup) took the rest, so this run cannot show what the quota cuts; run the lesson on a quieter machine",
        ms(u),
        ms(w0),
        share(&before.spun)
    );
    let before_fact = before_fact.inconclusive_when(
        starved && no_quota && before.spun.quota_seen == before.quota_host,
        || starved_why.clone(),
    );
    let step_rows = rows(&before, version, &label, &path);
    let measured_before = measured(&before, &stats0);
    let before_cgroup_actions = before.log.cgroup.clone();
    let extra = json!({ "weight": WEIGHT, "measured": measured_before });
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "before".into(),
        title: format!(
            "before: the probe spins for {} ms in the lesson cgroup, with no quota",
            SPIN.as_millis()
        ),
        actions: before.log.lines,
        rows: step_rows,
        notes: vec![format!(
            "nsx gave the lesson cgroup the highest weight ({weight_file} = {weight_value}), for both runs: a weight decides how CPU time is shared among groups that want it at the same time, so other work on this machine barely slows the probe; the quota, next, is a cap no weight gets around"
        )],
        extra,
        host: before.host,
        container: before.spun.view,
    })?;

    // ---- after: the same cgroup, now with the quota. The counters start from a reading
    // taken once the first probe is gone (its exit is charged to the cgroup too), so
    // the differences belong to the second probe alone.
    let baseline = cg.cpu_stats()?;
    cg.set_cpu_quota(quota_us, period_us)?;
    let mut quota_log = Log::default();
    quota_log.cgroup(&mut cg);
    let mut after = run_probe(&mut cg, quota_log)?;
    let stats = delta(&after.stats, Some(&baseline));
    let mode_note = cs::mode_note(&cg, Controller::Cpu);
    cg.remove()?;
    after.log.cgroup(&mut cg);

    let (l, w) = (after.spun.cpu_us, after.spun.wall_us);
    let expected = (fraction(cpus) * w as f64) as u64;
    let (lo, hi) = band(cpus, w);
    // The quota cut in fewer than half of the periods: the limited probe mostly could
    // not even use its quota, so what held it back was the busy machine.
    let limited_starved = stats.nr_throttled * 2 <= stats.nr_periods;
    let throttled_file = match version {
        Version::V1 => "throttled_time",
        Version::V2 => "throttled_usec",
    };
    let usage_file = match version {
        Version::V1 => "cpuacct.usage",
        Version::V2 => "cpu.stat usage_usec",
    };
    let counters = format!(
        "cpu.stat nr_periods {}, nr_throttled {}, {throttled_file} {}{}",
        stats.nr_periods,
        stats.nr_throttled,
        ms(stats.throttled_usec),
        match stats.usage_usec {
            Some(us) => format!(", {usage_file} {}", ms(us)),
            None => String::new(),
        }
    );
    let observed = |extra: Value| {
        let mut o = json!({
            "quota_usec": quota_us,
            "period_usec": period_us,
            "quota": after.quota_host,
            "measured": measured(&after, &stats),
            "measured_before": measured_before,
        });
        if let (Value::Object(o), Value::Object(e)) = (&mut o, extra) {
            o.extend(e);
        }
        o
    };
    let mut facts = vec![
        before_fact,
        Fact::new(
            "limited-near-the-quota",
            format!(
                "with {setting}, the probe used {} of CPU in {} of spinning ({} of one CPU); quota × wall time is {}, and the stated tolerance (±{} %, plus one period's quota) allows {} to {}",
                ms(l),
                ms(w),
                share(&after.spun),
                ms(expected),
                (TOLERANCE * 100.0) as u32,
                ms(lo),
                ms(hi)
            ),
            (lo..=hi).contains(&l),
            observed(json!({ "expected_us": expected, "band_us": [lo, hi] })),
        )
        .inconclusive_when(l < lo && limited_starved, || {
            format!(
                "the probe got less CPU than its quota allows and was throttled in only {} of {} periods: it was waiting for a CPU, not for its quota, on a busy machine",
                stats.nr_throttled, stats.nr_periods
            )
        }),
        Fact::new(
            "far-below-unlimited",
            format!(
                "that is less than half of the {} the same probe used without the quota, at the same weight",
                ms(u)
            ),
            l.saturating_mul(2) < u,
            observed(json!({})),
        )
        .inconclusive_when(starved, || starved_why),
        Fact::new(
            "quota-seen-inside",
            format!(
                "inside, the probe read its own cgroup's quota file and found {:?}, what the host wrote",
                after.spun.quota_seen
            ),
            after.spun.quota_seen == after.quota_host && after.quota_host.starts_with(&quota_us.to_string()),
            observed(json!({ "file": after.spun.quota_file })),
        ),
        Fact::new(
            "host-sees-throttling",
            format!(
                "the host reads the throttling in the cgroup's cpu.stat: throttled in {} of {} periods, for {} in all",
                stats.nr_throttled,
                stats.nr_periods,
                ms(stats.throttled_usec)
            ),
            stats.nr_throttled >= 1 && stats.throttled_usec > 0,
            observed(json!({})),
        )
        .inconclusive_when(stats.nr_throttled == 0 && l < expected, || {
            format!(
                "the probe got {} of CPU, less than the {} the quota allows in that time: it never used up a period's quota, so there was nothing to throttle (this machine was busy)",
                ms(l),
                ms(expected)
            )
        }),
    ];
    if let Some(usage) = stats.usage_usec {
        // The cgroup held only this probe since the baseline (the first probe had been
        // reaped): its account covers the spin, and no more than the
        // probe's whole CPU time, which the host read in /proc/<pid>/stat at the same
        // moment (after the probe had gone quiet), in ticks that round down (utime and
        // stime each: two ticks).
        let tick = host_tick_us();
        let whole = after.host_cpu_us;
        facts.push(Fact::new(
            "host-counts-the-cpu-time",
            format!(
                "the host's {usage_file} for the cgroup grew by {}: at least the probe's {} of spinning, and no more than the {} /proc/{}/stat shows for the whole probe (counted in {} ticks)",
                ms(usage),
                ms(l),
                whole.map_or("(unreadable)".into(), ms),
                after.host.probe.pid,
                ms(tick)
            ),
            usage + 1000 >= l && whole.is_some_and(|w| usage <= w + 2 * tick),
            observed(json!({ "usage_us": usage })),
        ));
    }

    let mut notes = vec![
        format!("the host read the cgroup's counters for this run: {counters}"),
        format!(
            "why a tolerance: the quota is handed out per {} ms period, and the {} ms spin starts and ends at arbitrary points of one; the cgroup starts with a full period's quota; and a busy machine may give the probe less than its quota",
            period_us / 1000,
            SPIN.as_millis()
        ),
        mode_note,
    ];
    let mut all = before_cgroup_actions;
    all.extend(after.log.cgroup.iter().cloned());
    let rosetta = cs::rosetta(Controller::Cpu, version, &all);
    notes.push(cs::rosetta_note(&rosetta));
    let step_rows = rows(&after, version, &label, &path);
    let extra = json!({
        "quota_usec": quota_us,
        "period_usec": period_us,
        "weight": WEIGHT,
        "measured": measured(&after, &stats),
        "cgroup": cs::extra(&cg, &all, &rosetta),
    });
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "after".into(),
        title: format!(
            "after: the probe spins for {} ms in the same cgroup, now with a quota of {cpus} CPU",
            SPIN.as_millis()
        ),
        actions: after.log.lines,
        rows: step_rows,
        notes,
        extra,
        host: after.host,
        container: after.spun.view,
    })?;
    cs::sweep(ctx);
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tolerance_band() {
        let c = Cpus { millis: 200 };
        // 500 ms at 0.2: 100 ms expected, ±50 %, ± one period's 20 ms.
        assert_eq!(band(c, 500_000), (30_000, 170_000));
        let tiny = Cpus { millis: 10 };
        assert_eq!(band(tiny, 500_000), (1_500, 8_500));
        // The largest accepted quota keeps the top of the band under half a CPU.
        let (_, hi) = band(MAX_CPUS, SPIN.as_micros() as u64);
        assert!(hi < SPIN.as_micros() as u64 / 2, "{hi}");
    }

    #[test]
    fn quotas_above_the_lessons_range_are_usage_errors() {
        assert!(check_options(Cpus { millis: 10 }).is_ok());
        assert!(check_options(MAX_CPUS).is_ok());
        let e = check_options(Cpus { millis: 500 }).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 0.01 to 0.25"), "{e}");
    }

    #[test]
    fn host_cpu_time_of_this_process_is_readable() {
        let us = host_cpu_us(std::process::id() as i32);
        assert!(us.is_some());
    }
}
