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
//!
//! A spinning thread is always runnable, so its wall time is CPU time, throttled time
//! (its cgroup's quota) and time it waited for a CPU that other work held. That last
//! part, measured in every run, is the noise: a timing fact that fails by no more than
//! it is undecided (inconclusive, with the reason); one that fails by more is a failure.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cgroup_steps as cs;
use super::engine::{Def, Ended, Env, Judged, Measure};
use super::kit::StepExt;
use super::{Lesson, Rootless};
use crate::cgroup::{Action, Controller, CpuStats, Layout, Mode, Version};
use crate::error::{sys, Error, Result};
use crate::limits::{self, Cpus, CPU_PERIOD_US};
use crate::observe::{CpuTime, Parts, View};
use crate::report::{Fact, Row, Val};
use crate::sandbox::{Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Cpu>();

pub struct Cpu;

/// The quota the lesson sets unless `--cpus` says otherwise: 20 % of one CPU.
pub const DEFAULT_CPUS: Cpus = Cpus { millis: 200 };
/// The largest `--cpus` the lesson accepts (see [`Cpu::check`]).
pub const MAX_CPUS: Cpus = Cpus { millis: 250 };
/// How long each probe spins, in wall-clock time.
pub const SPIN: Duration = Duration::from_millis(500);
/// The relative part of the stated tolerance on "CPU time ≈ quota × wall time"; the
/// absolute part is one period's quota. lessons/cpu.md explains both.
pub const TOLERANCE: f64 = 0.5;

/// The cpu lesson's options.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Options {
    /// The CPU quota as a fraction of one CPU, written into cpu.max (v2) or
    /// cpu.cfs_quota_us (v1) per 100 ms period, e.g. 0.1 (0.01 to 0.25)
    #[arg(long, value_name = "FRACTION", default_value = "0.2", value_parser = limits::parse_cpus, allow_hyphen_values = true)]
    pub cpus: Cpus,
}

/// What the probe measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spun {
    /// Its view after the spin: its CPU time is in it.
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

/// What the host read in the cgroup while the probe lived after its report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counters {
    /// Cumulative since the cgroup was made.
    stats: CpuStats,
    reads: Vec<Action>,
}

/// One probe run in the lesson cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunObs {
    /// The quota file's content, as the host read it before the probe ran, and the read.
    quota_host: String,
    quota_read: Vec<Action>,
    spin: Ended<Spun, Counters>,
}

/// The highest weight this version takes, found by asking for one more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weight {
    /// The weight file (cpu.shares or cpu.weight) of the lesson cgroup.
    file: String,
    /// What nsx wrote first: one more than the documented highest.
    asked: u64,
    /// The errno of that write when the kernel refused it (v2: ERANGE).
    refused: Option<String>,
    /// What the file read afterwards.
    kept: u64,
    actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    cgroup: cs::Cgroup,
    /// mkdir (cpu and cpuacct on v1), the hybrid cgroup2 mount's controllers read.
    setup: Vec<Action>,
    weight: Weight,
    /// In the lesson cgroup, no quota.
    before: RunObs,
    /// The counters once the first probe was gone (the second run's are differences
    /// from these), then the quota written.
    baseline: CpuStats,
    quota_set: Vec<Action>,
    /// In the same cgroup, with the quota (`None` while nsx pauses after the before step,
    /// with --step: `quota_set` is then empty too).
    after: Option<RunObs>,
    /// rmdir, once every observation of the after step was made (empty while nsx pauses
    /// after the after step, the cgroup still there).
    teardown: Vec<Action>,
}

impl Def for Cpu {
    const ID: &'static str = "cpu";
    const TITLE: &'static str = "CPU quota: throttled to a share of one CPU";
    const MECHANISM: &'static str = "a cpu cgroup: mkdir, write quota and period into files, write the probe's PID into cgroup.procs";
    const MAN: &'static str = "cgroups(7); kernel docs scheduler/sched-bwc.rst and admin-guide/cgroup-v2.rst (CPU); clock_gettime(2)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/cpu.md");
    const SEES: Parts = Parts::CGROUP.with(Parts::CPU_TIME);
    /// `host-counts-the-cpu-time` needs the cgroup's CPU time: v2's cpu.stat usage_usec,
    /// or cpuacct.usage where v1 mounts cpuacct (judged only then).
    const FACTS: &'static [&'static str] = &[
        "before-unlimited-exceeds-the-quota",
        "limited-near-the-quota",
        "far-below-unlimited",
        "quota-seen-inside",
        "host-sees-throttling",
        "host-counts-the-cpu-time",
        "highest-weight",
    ];
    const WORDS: &'static [&'static str] = &[
        "cgroups",
        "cgroup",
        "limits",
        "limit",
        "quota",
        "cpus",
        "throttling",
    ];
    type Options = Options;
    type Obs = Obs;

    /// The lesson compares one spinning thread with and without the quota. A thread uses
    /// at most one CPU, and the limited run must stay under half the unlimited one even at
    /// the top of its tolerance: quota × (1.5 × 500 ms + 100 ms) < 250 ms holds up to 0.29.
    fn check(o: &Options) -> Result<()> {
        if o.cpus > MAX_CPUS {
            return Err(Error::Usage(format!(
                "--cpus {}: the cpu lesson takes a fraction from 0.01 to {MAX_CPUS}: its probe is a single thread (it can use at most one CPU), and the limited run must stay clearly below the unlimited one, even at the top of the stated tolerance",
                o.cpus
            )));
        }
        Ok(())
    }

    fn measure(m: &mut Measure, o: &Options) -> Result<Obs> {
        let (quota_us, period_us) = (o.cpus.quota_us(), CPU_PERIOD_US);
        let (mut cg, cgroup) = cs::open(m, Self::ID, Controller::Cpu)?;
        let setup = cg.take_actions();

        // The highest weight, for both runs: a weight decides how CPU time is shared among
        // groups that want it at the same moment, so other work on a busy machine barely
        // slows the unlimited run; the quota then caps the limited one all the same. Asked
        // one more than the documented highest, the kernel shows its limit: v1 clamps, v2
        // refuses.
        let (_, _, highest) = cgroup.version.cpu_weight_range();
        let asked = highest + 1;
        let refused = match cg.set_cpu_weight_native(asked) {
            Ok(()) => None,
            Err(e) if e.errno() == Some(nix::errno::Errno::ERANGE) => {
                cg.set_cpu_weight_native(highest)?;
                Some("ERANGE".to_string())
            }
            Err(e) => return Err(e),
        };
        let kept = cg.cpu_weight_native()?;
        let file = cg
            .dir(Controller::Cpu)
            .map(|d| d.join(cgroup.version.cpu_weight_file()))
            .unwrap_or_else(|| PathBuf::from(cgroup.version.cpu_weight_file()));
        let weight = Weight {
            file: file.display().to_string(),
            asked,
            refused,
            kept,
            actions: cg.take_actions(),
        };

        let version = cgroup.version;
        let cg = RefCell::new(cg);
        // before: the lesson cgroup, no quota yet.
        let before = run(m, &cg)?;
        // The counters start from a reading taken once the first probe is gone (its exit
        // is charged to the cgroup too), so the differences belong to the second alone.
        let baseline = cg.borrow_mut().cpu_stats()?;
        let mut obs = Obs {
            cgroup,
            setup,
            weight,
            before,
            baseline,
            quota_set: Vec::new(),
            after: None,
            teardown: Vec::new(),
        };
        // The probe is gone; its cgroup, with no quota yet, is there.
        if m.pauses() {
            let look = cs::look(
                cg.borrow().dir(Controller::Cpu),
                &[quota_file(version), version.cpu_weight_file(), "cpu.stat"],
            );
            m.pause(&obs, &look)?;
        }
        obs.quota_set = {
            let mut cg = cg.borrow_mut();
            cg.set_cpu_quota(quota_us, period_us)?;
            cg.take_actions()
        };
        // after: the same cgroup, now with the quota.
        obs.after = Some(run(m, &cg)?);
        let mut cg = cg.into_inner();
        // The probe is gone; the cgroup, with its quota and the throttling its cpu.stat
        // counted, is there until nsx removes it.
        if m.pauses() {
            let files: &[&str] = match version {
                Version::V1 => &["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.stat"],
                Version::V2 => &["cpu.max", "cpu.stat"],
            };
            let look = cs::look(cg.dir(Controller::Cpu), files);
            m.pause(&obs, &look)?;
        }
        cg.remove()?;
        obs.teardown = cg.take_actions();
        cs::sweep(m);
        Ok(obs)
    }

    fn judge(o: &Obs, opts: &Options, _env: &Env) -> Judged {
        let cpus = opts.cpus;
        let (quota_us, period_us) = (cpus.quota_us(), CPU_PERIOD_US);
        let version = o.cgroup.version;
        let quota_file = quota_file(version);
        let b = &o.before;
        let bs = spun(&b.spin);
        let stats0 = b.spin.host_extra.stats;
        let label = cs::cgroup_label(Controller::Cpu, version);

        // ---- the before step: all a pause after it shows
        let (weight_file, weight_value) = (version.cpu_weight_file(), o.weight.kept);
        let mut before_actions = cs::shell(&o.setup);
        before_actions.extend(weight_lines(&o.weight));
        before_actions.extend(run_lines(b));
        let before_step = cs::step(
            "before",
            format!(
                "before: the probe spins for {} ms in the lesson cgroup, with no quota",
                SPIN.as_millis()
            ),
            before_actions,
            &b.spin.host,
            &bs.view,
            rows(b, &bs, &stats0, version, &label, false),
        )
        .note(format!(
            "nsx gave the lesson cgroup the highest weight ({weight_file} = {weight_value}), for both runs: a weight decides how CPU time is shared among groups that want it at the same time, so other work on this machine barely slows the probe; the quota, next, is a cap no weight gets around"
        ))
        .note(conversion_note(version, o.weight.kept))
        .takeaway(format!(
            "with no quota the probe got {} of one CPU",
            share(&bs)
        ));

        let Some(a) = &o.after else {
            return Judged {
                steps: vec![before_step],
                ..Judged::default()
            };
        };
        let as_ = spun(&a.spin);
        let stats = delta(&a.spin.host_extra.stats, &o.baseline);

        // ---- before
        let no_quota = b.quota_host == "-1" || b.quota_host.starts_with("max ");
        let seen_before = bs.quota_seen == b.quota_host;
        let (u, w0) = (bs.cpu_us, bs.wall_us);
        let (_, hi0) = band(cpus, w0);
        let waited0 = waited(&bs, &stats0);
        let before_fact = Fact::new(
            "before-unlimited-exceeds-the-quota",
            format!(
                "before, in the lesson cgroup with no quota ({quota_file} reads {}), the probe used {} of CPU in {} of spinning ({} of one CPU), more than {cpus} of a CPU allows in that time (at most {} with the tolerance): the quota will have something to cut",
                b.quota_host,
                ms(u),
                ms(w0),
                share(&bs),
                ms(hi0)
            ),
            no_quota && seen_before && u > hi0,
            json!({ "cpus": cpus.to_string(), "quota": b.quota_host, "measured": measured(&bs, &stats0) }),
        )
        // Short of the mark, with no quota: the CPU time it waited for would have carried
        // it over, so the machine, not the kernel, decided. Throttled without a quota, it
        // could not have.
        .inconclusive_when(no_quota && seen_before && u + waited0 > hi0, || {
            format!(
                "with no quota the probe got only {} of CPU in {} of spinning and waited {} for a CPU that other work on this busy machine held (its cgroup throttled it {} times): given that time it would have had up to {}, above {}, so this run cannot tell",
                ms(u),
                ms(w0),
                ms(waited0),
                stats0.nr_throttled,
                ms(u + waited0),
                ms(hi0)
            )
        });

        // ---- after
        let (l, w) = (as_.cpu_us, as_.wall_us);
        let expected = (fraction(cpus) * w as f64) as u64;
        let (lo, hi) = band(cpus, w);
        let waited1 = waited(&as_, &stats);
        let setting = match version {
            Version::V1 => format!(
                "cpu.cfs_quota_us = {quota_us} per cpu.cfs_period_us = {period_us} ({cpus} of a CPU)"
            ),
            Version::V2 => format!("cpu.max = \"{quota_us} {period_us}\" ({cpus} of a CPU)"),
        };
        let usage_file = usage_file(version);
        let observed = |extra: Value| {
            let mut obs = json!({
                "quota_usec": quota_us,
                "period_usec": period_us,
                "quota": a.quota_host,
                "measured": measured(&as_, &stats),
                "measured_before": measured(&bs, &stats0),
            });
            if let (Value::Object(obs), Value::Object(e)) = (&mut obs, extra) {
                obs.extend(e);
            }
            obs
        };
        let mut facts = vec![
            before_fact,
            Fact::new(
                "limited-near-the-quota",
                format!(
                    "with {setting}, the probe used {} of CPU in {} of spinning ({} of one CPU); quota × wall time is {}, and the stated tolerance (±{} %, plus one period's quota) allows {} to {}",
                    ms(l),
                    ms(w),
                    share(&as_),
                    ms(expected),
                    (TOLERANCE * 100.0) as u32,
                    ms(lo),
                    ms(hi)
                ),
                (lo..=hi).contains(&l),
                observed(json!({ "expected_us": expected, "band_us": [lo, hi] })),
            )
            // Under the band by no more than it waited for a CPU: the machine held it
            // back. Over the band is never noise: waiting only takes CPU time away.
            .inconclusive_when(l < lo && l + waited1 >= lo, || {
                format!(
                    "the probe got {} of CPU, under the {} the band starts at, and besides its throttling it waited {} for a CPU that other work on this busy machine held: that, not its quota, kept it short",
                    ms(l),
                    ms(lo),
                    ms(waited1)
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
            // The unlimited run, given the CPU it waited for, would have been more than
            // twice the limited one: two runs starved by the machine cannot decide it.
            .inconclusive_when(l.saturating_mul(2) < u + waited0, || {
                format!(
                    "without the quota the probe got only {} of CPU and waited {} for a CPU that other work on this busy machine held: the comparison is between two starved runs; run the lesson on a quieter machine",
                    ms(u),
                    ms(waited0)
                )
            }),
            Fact::new(
                "quota-seen-inside",
                format!(
                    "inside, the probe read its own cgroup's quota file and found {:?}, what the host wrote",
                    as_.quota_seen
                ),
                as_.quota_seen == a.quota_host && a.quota_host.starts_with(&quota_us.to_string()),
                observed(json!({ "quota_file": as_.quota_file })),
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
            // Never throttled, yet it got no more than its quota allows: the time it
            // waited for a CPU, not the quota, kept it there, so it was never caught
            // wanting more than its quota. More than the quota allows, unthrottled, is the
            // quota not working: waiting only takes CPU time away.
            .inconclusive_when(l <= hi, || {
                format!(
                    "the probe got {} of CPU, no more than the quota allows in that time ({} with the tolerance), and waited {} for a CPU that other work on this busy machine held: it was never caught wanting more than its quota, so there was nothing to throttle",
                    ms(l),
                    ms(hi),
                    ms(waited1)
                )
            }),
        ];
        if let Some(usage) = stats.usage_usec {
            // The cgroup held only this probe since the baseline (the first probe had been
            // reaped): its account covers the spin, and no more than the probe's whole CPU
            // time, which the host read in /proc/<pid>/stat at the same moment (after the
            // probe had gone quiet), in ticks that round down (utime and stime each: two
            // ticks).
            let whole = a.spin.host.probe.cpu;
            let tick = whole.map_or(10_000, |c| c.tick_us);
            facts.push(Fact::new(
                "host-counts-the-cpu-time",
                format!(
                    "the host's {usage_file} for the cgroup grew by {}: at least the probe's {} of spinning, and no more than the {} /proc/{}/stat shows for the whole probe (counted in {} ticks)",
                    ms(usage),
                    ms(l),
                    whole.map_or("(unreadable)".into(), |c| ms(c.ticks_us())),
                    a.spin.host.probe.pid,
                    ms(tick)
                ),
                usage + 1000 >= l && whole.is_some_and(|c| usage <= c.ticks_us() + 2 * tick),
                observed(json!({ "usage_us": usage })),
            ));
        }
        facts.push(weight_fact(version, &o.weight));

        // ---- the after step
        let counters = format!(
            "cpu.stat nr_periods {}, nr_throttled {}, {} {}{}",
            stats.nr_periods,
            stats.nr_throttled,
            throttled_name(version),
            ms(stats.throttled_usec),
            match stats.usage_usec {
                Some(us) => format!(", {usage_file} {}", ms(us)),
                None => String::new(),
            }
        );
        let mut after_actions = cs::shell(&o.quota_set);
        after_actions.extend(run_lines(a));
        let all: Vec<Action> = [
            &o.setup[..],
            &o.weight.actions,
            &b.quota_read,
            &b.spin.host_extra.reads,
            &o.quota_set,
            &a.quota_read,
            &a.spin.host_extra.reads,
        ]
        .concat();
        let rosetta = cs::rosetta(Controller::Cpu, version, &all);
        let after_step = cs::step(
            "after",
            format!(
                "after: the probe spins for {} ms in the same cgroup, now with a quota of {cpus} CPU",
                SPIN.as_millis()
            ),
            after_actions,
            &a.spin.host,
            &as_.view,
            rows(a, &as_, &stats, version, &label, true),
        )
        .note(format!(
            "the host read the cgroup's counters for this run: {counters}"
        ))
        .note(format!(
            "why a tolerance: the quota is handed out per {} ms period, and the {} ms spin starts and ends at arbitrary points of one; the cgroup starts with a full period's quota; and a busy machine may give the probe less than its quota (this run: it waited {} for a CPU besides its throttling)",
            period_us / 1000,
            SPIN.as_millis(),
            ms(waited1)
        ))
        .note(cs::mode_note(&o.cgroup, Controller::Cpu))
        .note(cs::rosetta_note(&rosetta))
        .extra(cs::extra(&o.cgroup, &all, &rosetta))
        .takeaway(format!(
            "with the quota the same probe got {} of one CPU, throttled in {} of {} periods",
            share(&as_),
            stats.nr_throttled,
            stats.nr_periods
        ));
        Judged {
            steps: vec![before_step, after_step],
            facts,
            notes: cs::teardown_note(&o.teardown).into_iter().collect(),
            takeaway: Some(format!(
                "the probe spinning for {} ms got {} of a CPU without a quota and {} with {cpus} CPU: the quota is a cap, paid out per period",
                SPIN.as_millis(),
                share(&bs),
                share(&as_)
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn after(o: &mut Obs) -> &mut RunObs {
            o.after.as_mut().expect("a recording has its after step")
        }
        fn spun(o: &mut RunObs) -> &mut Spun {
            o.spin.inside.get_or_insert_with(Spun::default)
        }
        vec![
            F {
                fact: "before-unlimited-exceeds-the-quota",
                what: "the cgroup already had a quota before",
                change: |o, _| {
                    o.before.quota_host = "20000".into();
                    spun(&mut o.before).quota_seen = "20000".into();
                },
            },
            F {
                fact: "before-unlimited-exceeds-the-quota",
                what: "a cgroup with no quota throttled the unlimited probe down to 50 ms",
                change: |o, _| {
                    let s = spun(&mut o.before);
                    s.cpu_us = 50_000;
                    let rest = s.wall_us.saturating_sub(50_000);
                    o.before.spin.host_extra.stats.nr_throttled = 5;
                    o.before.spin.host_extra.stats.throttled_usec = rest;
                },
            },
            F {
                fact: "limited-near-the-quota",
                what: "the limited probe got most of a CPU",
                change: |o, _| {
                    let s = spun(after(o));
                    s.cpu_us = s.wall_us * 9 / 10;
                },
            },
            F {
                fact: "far-below-unlimited",
                what: "the limited probe got as much as the unlimited one",
                change: |o, _| {
                    let w = spun(&mut o.before).wall_us;
                    spun(&mut o.before).cpu_us = w;
                    spun(after(o)).cpu_us = w;
                },
            },
            F {
                fact: "quota-seen-inside",
                what: "the probe read another quota",
                change: |o, _| spun(after(o)).quota_seen = "max 100000".into(),
            },
            F {
                fact: "host-sees-throttling",
                what: "cpu.stat counted no throttling of a probe that got most of a CPU",
                change: |o, _| {
                    let base = o.baseline;
                    let s = &mut after(o).spin.host_extra.stats;
                    s.nr_throttled = base.nr_throttled;
                    s.throttled_usec = base.throttled_usec;
                    let sp = spun(after(o));
                    sp.cpu_us = sp.wall_us * 9 / 10;
                },
            },
            F {
                fact: "host-counts-the-cpu-time",
                what: "the cgroup's account is far above the probe's whole CPU time",
                change: |o, _| {
                    if let Some(u) = after(o).spin.host_extra.stats.usage_usec.as_mut() {
                        *u += 10_000_000;
                    }
                },
            },
            F {
                fact: "highest-weight",
                what: "the weight file read 102400, v2's highest converted to shares",
                change: |o, _| o.weight.kept = 102_400,
            },
        ]
    }
}

/// One probe run in the lesson cgroup: the host reads the quota, the probe is cloned and
/// joined before it runs, spins, reports, and the host reads it and the cgroup's counters
/// while it lives. The probe is reaped before this returns.
fn run(m: &Measure, cg: &RefCell<crate::cgroup::LessonCgroup>) -> Result<RunObs> {
    let (quota_host, quota_read) = {
        let mut cg = cg.borrow_mut();
        let quota = cg.cpu_quota()?;
        let read = cg.take_actions();
        let text = read
            .last()
            .and_then(|a| a.value.clone())
            .unwrap_or_else(|| quota.map_or("-1".into(), |q| q.to_string()));
        (text, read)
    };
    let spin = m.probe_to_end(
        &Spec::default(),
        |p| {
            let mut cg = cg.borrow_mut();
            // Held until `go`: the probe joins before it has used any CPU time.
            cg.add_process(p.pid())?;
            for a in cg.take_actions() {
                p.action(a.to_string());
            }
            Ok(())
        },
        |i, _side| spin(i),
        |_| {
            let mut cg = cg.borrow_mut();
            let stats = cg.cpu_stats()?;
            Ok(Counters {
                stats,
                reads: cg.take_actions(),
            })
        },
    )?;
    Ok(RunObs {
        quota_host,
        quota_read,
        spin,
    })
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

/// The probe: read its own quota file, spin on the clock for [`SPIN`], then look at
/// itself (its CPU time, through /proc/self).
fn spin(inside: &mut Inside) -> Result<Spun> {
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
        view: inside.observe()?,
        quota_file,
        quota_seen,
        wall_us: wall.as_micros() as u64,
        cpu_us: (cpu1.saturating_sub(cpu0)).as_micros() as u64,
        total_cpu_us: cpu1.as_micros() as u64,
    })
}

/// The probe's report, or an empty one (every fact then fails) if it made none.
fn spun(run: &Ended<Spun, Counters>) -> Spun {
    run.inside.clone().unwrap_or_default()
}

/// The time a spinning probe was runnable but got no CPU and was not throttled: other
/// work held the CPU. Measured per run: the spin's wall time less its CPU time less the
/// cgroup's throttled time.
fn waited(s: &Spun, stats: &CpuStats) -> u64 {
    s.wall_us
        .saturating_sub(s.cpu_us)
        .saturating_sub(stats.throttled_usec)
}

fn ms(us: u64) -> String {
    format!("{} ms", (us + 500) / 1000)
}

fn millis(us: u64) -> Val {
    Val::Millis(us as f64 / 1000.0)
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
fn delta(now: &CpuStats, before: &CpuStats) -> CpuStats {
    CpuStats {
        nr_periods: now.nr_periods.saturating_sub(before.nr_periods),
        nr_throttled: now.nr_throttled.saturating_sub(before.nr_throttled),
        throttled_usec: now.throttled_usec.saturating_sub(before.throttled_usec),
        usage_usec: match (now.usage_usec, before.usage_usec) {
            (Some(n), Some(b)) => Some(n.saturating_sub(b)),
            (n, _) => n,
        },
    }
}

fn measured(s: &Spun, stats: &CpuStats) -> Value {
    json!({
        "wall_us": s.wall_us,
        "cpu_us": s.cpu_us,
        "total_cpu_us": s.total_cpu_us,
        "waited_us": waited(s, stats),
        "stats": stats,
    })
}

fn quota_file(version: Version) -> &'static str {
    match version {
        Version::V1 => "cpu.cfs_quota_us",
        Version::V2 => "cpu.max",
    }
}

fn usage_file(version: Version) -> &'static str {
    match version {
        Version::V1 => "cpuacct.usage",
        Version::V2 => "cpu.stat usage_usec",
    }
}

fn throttled_name(version: Version) -> &'static str {
    match version {
        Version::V1 => "throttled_time",
        Version::V2 => "throttled_usec",
    }
}

/// The rows of one run: its cgroup and quota file read both ways, its CPU time and its
/// waiting read both ways through /proc, the cgroup's account beside the probe's clock,
/// and the throttling only the host can read.
fn rows(
    run: &RunObs,
    s: &Spun,
    stats: &CpuStats,
    version: Version,
    label: &str,
    limited: bool,
) -> Vec<Row> {
    let host = &run.spin.host;
    let ticks =
        |c: Option<CpuTime>| c.map_or(Val::None("not read".into()), |c| millis(c.ticks_us()));
    let wait = |c: Option<CpuTime>| match c.and_then(|c| c.waited_ns) {
        Some(ns) => millis(ns / 1000),
        None => Val::None("no schedstat".into()),
    };
    let quota = Row::probe(
        "quota of that cgroup",
        quota_file(version),
        Val::Text(run.quota_host.clone()),
        Val::Text(s.quota_seen.clone()),
    );
    let used = Row::probe(
        "CPU time: cgroup / spin",
        usage_file(version),
        stats
            .usage_usec
            .map_or(Val::None("no cpuacct".into()), millis),
        millis(s.cpu_us),
    )
    .apart("the cgroup's account of the whole probe beside the probe's own clock over its spin");
    vec![
        Row::probe(
            label,
            "cgroup",
            cs::path_val(host, Controller::Cpu, version),
            cs::path_val(&s.view, Controller::Cpu, version),
        ),
        if limited { quota.key() } else { quota },
        Row::probe(
            "CPU time",
            "stat utime+stime",
            ticks(host.probe.cpu),
            ticks(s.view.probe.cpu),
        )
        .drift_if(true, "read at two moments: the probe ran on to report"),
        Row::probe(
            "waited to run",
            "schedstat",
            wait(host.probe.cpu),
            wait(s.view.probe.cpu),
        )
        .drift_if(true, "read at two moments"),
        if limited { used } else { used.key() },
        Row::probe(
            "throttled",
            format!("cpu.stat nr_throttled, {}", throttled_name(version)),
            Val::Text(format!(
                "{} of {} periods, {}",
                stats.nr_throttled,
                stats.nr_periods,
                ms(stats.throttled_usec)
            )),
            Val::None("the probe only sees time pass".into()),
        ),
    ]
}

/// The step lines of one run: the quota read, the clone and join, the probe's own work,
/// the counters read.
fn run_lines(run: &RunObs) -> Vec<String> {
    let mut lines = cs::shell(&run.quota_read);
    lines.extend(run.spin.actions.iter().cloned());
    lines.extend(cs::shell(&run.spin.host_extra.reads));
    lines
}

/// The weight's lines: the refused write (which the cgroup's record keeps no trace of)
/// first, then what was done.
fn weight_lines(w: &Weight) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(errno) = &w.refused {
        lines.push(format!(
            "echo {} > {}   (refused: {errno})",
            w.asked, w.file
        ));
    }
    lines.extend(cs::shell(&w.actions));
    lines
}

/// `highest-weight`: asked for one more than the documented highest, the kernel kept the
/// highest (v1 clamps cpu.shares to 2..262144) or refused (v2 cpu.weight, ERANGE).
fn weight_fact(version: Version, w: &Weight) -> Fact {
    let (_, _, highest) = version.cpu_weight_range();
    let file = version.cpu_weight_file();
    let observed =
        json!({ "asked": w.asked, "refused": w.refused, "kept": w.kept, "highest": highest });
    match version {
        Version::V1 => Fact::new(
            "highest-weight",
            format!(
                "asked for {file} = {}, the kernel kept {}: v1 clamps the weight to 2..262144, so 262144 is its highest, not the 102400 that v2's highest cpu.weight (10000) stands for",
                w.asked, w.kept
            ),
            w.refused.is_none() && w.asked > w.kept && w.kept == highest,
            observed,
        ),
        Version::V2 => Fact::new(
            "highest-weight",
            format!(
                "asked for {file} = {}, the kernel refused it ({}) and kept {} when asked for that: v2 takes 1..10000",
                w.asked,
                w.refused.as_deref().unwrap_or("no error"),
                w.kept
            ),
            w.refused.as_deref() == Some("ERANGE") && w.kept == highest,
            observed,
        ),
    }
}

/// The two weight scales, and the rules that convert between them, applied to v1's
/// default and to the weight this run kept.
fn conversion_note(version: Version, kept: u64) -> String {
    let (systemd, runc_old, runc_new) = shares_to_weight(1024);
    let this_run = match version {
        Version::V1 => {
            let (s, o, n) = shares_to_weight(kept);
            format!("; this run's cpu.shares {kept} is cpu.weight {s}, {o} and {n} by these three")
        }
        Version::V2 => format!(
            "; this run's cpu.weight {kept} is {} in the scheduler's units",
            kept * 1024 / 100
        ),
    };
    format!(
        "v1 and v2 weigh on different scales: the kernel turns cpu.weight w into the scheduler's w × 1024 / 100, so v2's default 100 is v1's default 1024 and v2's highest, 10000, is 102400, while v1's cpu.shares goes up to 262144. A runtime given v1 shares on v2 (the OCI spec's cpu.shares) converts them by its own rule: cpu.shares 1024 is cpu.weight {systemd} by systemd's (shares × 100 / 1024), {runc_new} by runc's since 1.3.2 (a curve through 2 → 1, 1024 → 100, 262144 → 10000), but {runc_old} by runc's up to 1.3.1 (1 + (shares − 2) × 9999 / 262142){this_run}"
    )
}

/// v1 cpu.shares → v2 cpu.weight: (systemd's cgroup_cpu_shares_to_weight, runc's up to
/// 1.3.1, runc's (opencontainers/cgroups) since 1.3.2).
pub fn shares_to_weight(shares: u64) -> (u64, u64, u64) {
    let systemd = (shares * 100 / 1024).clamp(1, 10_000);
    let runc_old = 1 + (shares.clamp(2, 262_144) - 2) * 9_999 / 262_142;
    let runc_new = match shares {
        0..=2 => 1,
        262_144.. => 10_000,
        s => {
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    };
    (systemd, runc_old, runc_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lessons::fixture_tests::paused_runs_show_the_whole_runs_steps;

    #[test]
    fn a_run_paused_at_each_step_shows_the_steps_the_whole_run_shows() {
        paused_runs_show_the_whole_runs_steps::<Cpu>(|o| {
            let mut before = o.clone();
            (before.quota_set, before.after, before.teardown) = (Vec::new(), None, Vec::new());
            let mut after = o.clone();
            after.teardown.clear();
            vec![(before, 1), (after, 2)]
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/cpu.json");
        let rec = crate::lessons::engine::read_recording(&path).unwrap();
        let o: Obs = serde_json::from_value(rec.observations).unwrap();
        let opts: Options = serde_json::from_value(rec.options).unwrap();
        removal_said_after_the_steps(&Cpu::judge(&o, &opts, &rec.env));
    }

    /// The lesson cgroup is removed once its last step is shown: no step says so (with
    /// --step each was shown while the cgroup was there); a note after them does.
    fn removal_said_after_the_steps(j: &Judged) {
        for step in &j.steps {
            assert!(
                !step.actions.iter().any(|a| a.starts_with("rmdir ")),
                "{}: {:?}",
                step.id,
                step.actions
            );
        }
        assert!(
            j.notes
                .iter()
                .any(|n| n.contains("removed what it made: rmdir /sys/fs/cgroup/")),
            "{:?}",
            j.notes
        );
    }

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
        let o = |millis| Options {
            cpus: Cpus { millis },
        };
        assert!(Cpu::check(&o(10)).is_ok());
        assert!(Cpu::check(&o(MAX_CPUS.millis)).is_ok());
        let e = Cpu::check(&o(500)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 0.01 to 0.25"), "{e}");
    }

    use crate::report::Fact;

    /// A recorded run of this lesson, typed.
    fn recorded(machine: &str) -> (Obs, Options, Env) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/recordings/{machine}/cpu.json"));
        let rec = super::super::engine::read_recording(&path).unwrap();
        (
            serde_json::from_value(rec.observations).unwrap(),
            serde_json::from_value(rec.options).unwrap(),
            rec.env,
        )
    }

    fn fact<'a>(facts: &'a [Fact], id: &str) -> &'a Fact {
        facts.iter().find(|f| f.id == id).unwrap()
    }

    /// The probe of `run` got `1/share` of its wall time and was never throttled: what
    /// eight lessons on one CPU look like.
    fn starve(run: &mut RunObs, base: &CpuStats, share: u64) {
        let s = run.spin.inside.as_mut().unwrap();
        s.cpu_us = s.wall_us / share;
        let cpu = s.cpu_us;
        let stats = &mut run.spin.host_extra.stats;
        stats.nr_throttled = base.nr_throttled;
        stats.throttled_usec = base.throttled_usec;
        stats.usage_usec = base.usage_usec.map(|u| u + cpu);
    }

    #[test]
    fn a_run_starved_by_a_busy_machine_is_inconclusive_not_failed() {
        for machine in ["hybrid-root", "v2-root"] {
            let (mut o, opts, env) = recorded(machine);
            let zero = CpuStats {
                nr_periods: 0,
                nr_throttled: 0,
                throttled_usec: 0,
                usage_usec: o.before.spin.host_extra.stats.usage_usec.map(|_| 0),
            };
            starve(&mut o.before, &zero, 8);
            let base = o.baseline;
            starve(o.after.as_mut().unwrap(), &base, 8);
            let facts = Cpu::judge(&o, &opts, &env).facts;
            for id in [
                "before-unlimited-exceeds-the-quota",
                "far-below-unlimited",
                "host-sees-throttling",
            ] {
                let f = fact(&facts, id);
                assert!(!f.holds && !f.fails(), "{machine} {id}: {f:?}");
                let why = f.inconclusive.as_deref().unwrap();
                assert!(why.contains("busy machine"), "{why}");
            }
            // An eighth of a CPU is within the band of 0.2 CPU's quota: that one decides.
            assert!(fact(&facts, "limited-near-the-quota").holds, "{machine}");
            assert!(facts.iter().all(|f| !f.fails()), "{machine}: {facts:#?}");
            // Just over quota × wall time, unthrottled, on a busy machine: the machine
            // gave it its quota's worth and no more, so the quota never had to cut.
            let s = o.after.as_mut().unwrap().spin.inside.as_mut().unwrap();
            s.cpu_us = s.wall_us / 5 + 2_000;
            let facts = Cpu::judge(&o, &opts, &env).facts;
            let f = fact(&facts, "host-sees-throttling");
            assert!(!f.holds && !f.fails(), "{machine}: {f:?}");
        }
    }

    #[test]
    fn a_quota_that_does_not_cut_fails_whatever_the_noise() {
        for machine in ["hybrid-root", "v2-root"] {
            let (mut o, opts, env) = recorded(machine);
            // The limited probe got 90 % of a CPU and was never throttled: no waiting on a
            // busy machine can add CPU time, so this is a contradiction, not noise.
            let base = o.baseline;
            starve(o.after.as_mut().unwrap(), &base, 1);
            let s = o.after.as_mut().unwrap().spin.inside.as_mut().unwrap();
            s.cpu_us = s.wall_us * 9 / 10;
            let facts = Cpu::judge(&o, &opts, &env).facts;
            for id in [
                "limited-near-the-quota",
                "far-below-unlimited",
                "host-sees-throttling",
            ] {
                assert!(
                    fact(&facts, id).fails(),
                    "{machine} {id}: {:?}",
                    fact(&facts, id)
                );
            }
            // Throttled in a cgroup with no quota, down to 50 ms: no machine explains it.
            let (mut o, opts, env) = recorded(machine);
            let s = o.before.spin.inside.as_mut().unwrap();
            s.cpu_us = 50_000;
            let rest = s.wall_us - 50_000;
            let stats = &mut o.before.spin.host_extra.stats;
            (stats.nr_throttled, stats.throttled_usec) = (4, rest);
            let facts = Cpu::judge(&o, &opts, &env).facts;
            assert!(fact(&facts, "before-unlimited-exceeds-the-quota").fails());
        }
    }

    #[test]
    fn the_weight_conversions_in_use() {
        // systemd keeps the defaults together (1024 ↔ 100); runc up to 1.3.1 did not.
        assert_eq!(shares_to_weight(1024), (100, 39, 100));
        assert_eq!(shares_to_weight(2), (1, 1, 1));
        assert_eq!(shares_to_weight(262_144), (10_000, 10_000, 10_000));
        // v2's highest in shares, by the kernel's rule: 102400, the old lesson's figure.
        assert_eq!(shares_to_weight(102_400).0, 10_000);
        // runc issue 4896: --cpu-shares 2000 was 77 with 1.3.1, 170 with 1.4.0-rc.1.
        let (_, old, new) = shares_to_weight(2000);
        assert_eq!((old, new), (77, 170));
    }
}
