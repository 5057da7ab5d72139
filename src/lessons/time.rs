//! time: a time namespace shifts the probe's monotonic and boot-time clocks.
//!
//! time_namespaces(7): a time namespace carries offsets for CLOCK_MONOTONIC and
//! CLOCK_BOOTTIME (shown in /proc/<pid>/timens_offsets), so /proc/uptime and
//! clock_gettime(2) inside read the host's clocks plus the offsets. CLOCK_REALTIME, the
//! wall clock, is not virtualised. Offsets can be written only while no process is in the
//! namespace, which is why unshare(2) creates a time namespace for the caller's future
//! children only: the after step unshares, writes the offsets, then moves the probe in
//! with setns(2) on /proc/self/ns/time_for_children (Spec::unshare + Spec::time_offsets).
//!
//! clone(2) cannot take CLONE_NEWTIME (its bit is part of CSIGNAL there), but clone3(2)
//! can, since Linux 6.3 (commit "fork: allow CLONE_NEWTIME in clone3 flags", also in the
//! stable updates of March 2023). The clone3 step shows what that gives: a child born in
//! a new time namespace whose offsets, copied from the creator's, are frozen at birth. A
//! kernel that refuses (EINVAL) is reported as what it is, a fact about that kernel.
//!
//! How "differs by the offset" is checked: nsx reads the host's clocks just before it lets
//! the probe run and again just after the probe's report arrives (and it has read its own
//! /proc/uptime). Each of the probe's readings, minus its offset, must fall between the
//! two: the tolerance is that interval (a few milliseconds), plus 10 ms for /proc/uptime,
//! which has centisecond resolution. Readings are kept in whole nanoseconds, exactly.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions, Prep};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{Error, Result};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TimeOffsets, CLONE_NEWTIME};

pub const LESSON: Lesson = super::engine::lesson::<Time>();

pub struct Time;

/// The offsets nsx writes: the monotonic clock 2 days ahead, boot time 7 days ahead (the
/// example of time_namespaces(7)).
pub const OFFSETS: TimeOffsets = TimeOffsets {
    monotonic_secs: 2 * 86_400,
    boottime_secs: 7 * 86_400,
};

const NS: i64 = 1_000_000_000;

/// /proc/uptime's resolution (proc(5): seconds with two decimals, truncated).
const UPTIME_RESOLUTION_NS: i64 = 10_000_000;

/// Clock readings, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clocks {
    pub monotonic_ns: i64,
    pub boottime_ns: i64,
    pub realtime_ns: i64,
}

fn clock(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // clock_gettime(2): in a time namespace the vDSO adds the namespace's offsets to
    // CLOCK_MONOTONIC and CLOCK_BOOTTIME; CLOCK_REALTIME is read as is.
    // SAFETY: ts is a valid timespec; these clocks exist on every Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * NS + ts.tv_nsec
}

/// The three clocks, as close together as possible.
pub fn read_clocks() -> Clocks {
    Clocks {
        monotonic_ns: clock(libc::CLOCK_MONOTONIC),
        boottime_ns: clock(libc::CLOCK_BOOTTIME),
        realtime_ns: clock(libc::CLOCK_REALTIME),
    }
}

/// What a probe reports: its clocks, its view (its /proc/uptime and timens_offsets among
/// it), and what a late write of the offsets returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    clocks: Clocks,
    view: View,
    /// After entering: what writing the offsets again returned ("ok" or the errno).
    rewrite: Option<String>,
}

/// The host's clocks just before the probe ran and just after its report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Around {
    before: Clocks,
    after: Clocks,
}

type Probe = Run<Seen, Around>;

/// What clone3(CLONE_NEWTIME) gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Clone3 {
    /// A probe born in a new time namespace.
    Accepted { run: Box<Probe> },
    /// The kernel said no, with this errno.
    Refused { errno: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    before: Probe,
    after: Probe,
    clone3: Clone3,
}

impl Def for Time {
    const ID: &'static str = "time";
    const TITLE: &'static str = "Time namespace: uptime and monotonic clock of its own";
    const MECHANISM: &'static str = "CLONE_NEWTIME + /proc/<pid>/timens_offsets";
    const MAN: &'static str =
        "time_namespaces(7), clock_gettime(2), clone3(2) (clone(2)), proc(5) (/proc/uptime)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/time.md");
    const SEES: Parts = Ns::Time
        .part()
        .with(Parts::TIMENS_OFFSETS)
        .with(Parts::UPTIME);
    const FACTS: &'static [&'static str] = &[
        "before-same-clocks",
        "offsets-in-place",
        "uptime-shifted",
        "monotonic-shifted",
        "wall-clock-same",
        "offsets-frozen",
        "time-ns-differs",
        "clone3-newtime",
    ];
    const WORDS: &'static [&'static str] =
        &["timens", "clock", "uptime", "namespace", "namespaces"];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // One at a time: each probe's clocks are judged against the host's readings
        // around that probe alone.
        let before = timed(m, &Spec::new(CloneFlags::empty()), false)?;
        let after = timed(
            m,
            &Spec {
                unshare: CLONE_NEWTIME,
                time_offsets: Some(OFFSETS),
                ..Spec::default()
            },
            true,
        )?;
        let clone3 = match timed(m, &Spec::new(CLONE_NEWTIME), true) {
            Ok(run) => Clone3::Accepted { run: Box::new(run) },
            // clone3(2) EINVAL: this kernel does not accept CLONE_NEWTIME there (before
            // Linux 6.3 and its stable backports). ENOSYS: no clone3 at all, or a seccomp
            // filter (Docker's default profile) that hides it.
            Err(Error::Sys(e))
                if e.op == "clone3" && matches!(e.errno, Errno::EINVAL | Errno::ENOSYS) =>
            {
                Clone3::Refused {
                    errno: format!("{:?}", e.errno),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Obs {
            before,
            after,
            clone3,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let zero = TimeOffsets {
            monotonic_secs: 0,
            boottime_secs: 0,
        };
        // time_namespaces(7): offsets are relative to the initial time namespace, and nsx
        // itself may run in one with offsets of its own (a container can): the probe's
        // clocks are compared with nsx's, so the shift to expect is the difference.
        let own = own_offsets(base);
        let rel = minus(OFFSETS, own);
        let (b, a) = (&o.before, &o.after);
        let cb = check(b, zero);
        let c = check(a, rel);
        let wanted = offsets_lines(OFFSETS);
        let host_reads = a.host.probe.timens_offsets();
        let facts = vec![
            Fact::new(
                "before-same-clocks",
                format!(
                    "before, the probe shares the host's time namespace ({}) and its clocks fall between the host's readings around it ({} apart): no offset",
                    kit::ns_text(Ns::Time, b.inside.view.own(Ns::Time)),
                    millis(cb.interval_ns)
                ),
                kit::same(b.inside.view.own(Ns::Time), base.own(Ns::Time)) && cb.all(),
                json!({ "uptime": cb.uptime, "boottime": cb.boottime, "monotonic": cb.monotonic, "realtime": cb.realtime, "host_uptime": cb.host_uptime }),
            ),
            Fact::new(
                "offsets-in-place",
                format!(
                    "the host reads {}/timens_offsets as \"{}\", the offsets written before the probe entered",
                    a.host.source,
                    host_reads.join(" / ")
                ),
                host_reads == wanted && a.inside.view.probe.timens_offsets() == wanted,
                json!({ "host_reads": host_reads, "inside_reads": a.inside.view.probe.timens_offsets() }),
            ),
            Fact::new(
                "uptime-shifted",
                format!(
                    "inside, /proc/uptime and CLOCK_BOOTTIME read {} s ({} days) ahead of the host{}: minus that offset they fall between the host's readings taken {} apart around them (/proc/uptime: 10 ms resolution on top)",
                    rel.boottime_secs,
                    rel.boottime_secs / 86_400,
                    relative_to(own.boottime_secs, OFFSETS.boottime_secs),
                    millis(c.interval_ns)
                ),
                c.uptime && c.boottime,
                json!({ "uptime": c.uptime, "boottime": c.boottime, "offset": rel.boottime_secs }),
            ),
            Fact::new(
                "monotonic-shifted",
                format!(
                    "inside, CLOCK_MONOTONIC reads {} s ({} days) ahead of the host{}, within the same interval",
                    rel.monotonic_secs,
                    rel.monotonic_secs / 86_400,
                    relative_to(own.monotonic_secs, OFFSETS.monotonic_secs)
                ),
                c.monotonic,
                json!({ "monotonic": c.monotonic, "offset": rel.monotonic_secs }),
            ),
            Fact::new(
                "wall-clock-same",
                "inside, CLOCK_REALTIME (what date(1) shows) has no offset: it falls between the host's readings around it, because time namespaces do not virtualise the wall clock",
                c.realtime,
                json!({ "realtime": c.realtime }),
            ),
            Fact::new(
                "offsets-frozen",
                format!(
                    "once the probe was inside, writing timens_offsets again returned {}: offsets can only be set before the first process enters",
                    a.inside.rewrite.as_deref().unwrap_or("nothing")
                ),
                a.inside.rewrite.as_deref() == Some("EACCES"),
                json!({ "rewrite": a.inside.rewrite }),
            ),
            kit::ns_differs(Ns::Time, &a.host, &a.inside.view, base),
            clone3_fact(&o.clone3, base, &env.machine.kernel),
        ];
        let mut steps = vec![
            step(
                "before",
                "before: the probe forked with no new namespace",
                b,
                zero,
            ),
            step(
                "after",
                "after: unshare(CLONE_NEWTIME), offsets written, then setns into it",
                a,
                rel,
            )
            .note(format!(
                "wall clock: the host read {} and {}, the probe {} (seconds since 1970; no offset)",
                secs(a.host_extra.before.realtime_ns),
                secs(a.host_extra.after.realtime_ns),
                secs(a.inside.clocks.realtime_ns)
            ))
            .takeaway(format!(
                "same process, two clocks: the probe's uptime is {}, the host's {}",
                uptime_text(a.inside.view.uptime_cs),
                uptime_text(a.host.uptime_cs)
            )),
        ];
        steps.push(clone3_step(&o.clone3, base, &env.machine.kernel));
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "the probe's uptime read {} while the host's read {}: offsets written before it entered, {} days on boot time",
                uptime_text(a.inside.view.uptime_cs),
                uptime_text(a.host.uptime_cs),
                OFFSETS.boottime_secs / 86_400
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-clocks",
                what: "the before probe's monotonic clock is a second ahead",
                change: |o, _| o.before.inside.clocks.monotonic_ns += NS,
            },
            F {
                fact: "offsets-in-place",
                what: "the host reads zero offsets",
                change: |o, _| {
                    o.after.host.probe.timens_offsets =
                        Some(vec!["monotonic 0 0".into(), "boottime 0 0".into()])
                },
            },
            F {
                fact: "uptime-shifted",
                what: "/proc/uptime inside is a second short of the offset",
                change: |o, _| {
                    if let Some(u) = o.after.inside.view.uptime_cs.as_mut() {
                        *u -= 100;
                    }
                },
            },
            F {
                fact: "monotonic-shifted",
                what: "CLOCK_MONOTONIC inside is a day short",
                change: |o, _| o.after.inside.clocks.monotonic_ns -= 86_400 * NS,
            },
            F {
                fact: "wall-clock-same",
                what: "CLOCK_REALTIME inside is an hour ahead",
                change: |o, _| o.after.inside.clocks.realtime_ns += 3600 * NS,
            },
            F {
                fact: "offsets-frozen",
                what: "the second write succeeds",
                change: |o, _| o.after.inside.rewrite = Some("ok".into()),
            },
            F {
                fact: "time-ns-differs",
                what: "the probe is in the host's time namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["time"];
                    o.after.inside.view.own_ns.insert("time".into(), host);
                },
            },
            F {
                fact: "clone3-newtime",
                what: "clone3 refused with EPERM",
                change: |o, _| {
                    o.clone3 = Clone3::Refused {
                        errno: "EPERM".into(),
                    }
                },
            },
            F {
                fact: "clone3-newtime",
                what: "the clone3 probe's offsets are not its creator's",
                change: |o, _| {
                    o.clone3 = Clone3::Accepted {
                        run: Box::new(o.after.clone()),
                    }
                },
            },
            F {
                fact: "clone3-newtime",
                what: "the clone3 probe is in the host's time namespace",
                change: |o, _| {
                    o.clone3 = Clone3::Accepted {
                        run: Box::new(o.before.clone()),
                    }
                },
            },
        ]
    }
}

/// A late write of the offsets, from inside: time_namespaces(7) says it fails (EACCES)
/// once a process is in the namespace.
fn rewrite(inside: &mut Inside) -> String {
    let r = std::fs::write("/proc/self/timens_offsets", "boottime 0 0\n");
    let text = match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e
            .raw_os_error()
            .map(|n| format!("{:?}", Errno::from_raw(n)))
            .unwrap_or_else(|| e.to_string()),
    };
    inside.action(format!(
        "echo 'boottime 0 0' > /proc/self/timens_offsets   (from inside, after entering) = {text}"
    ));
    text
}

/// Runs a probe with the host's clocks read right before it runs and right after its
/// report (and the host's own view, its /proc/uptime among it).
fn timed(m: &Measure, spec: &Spec, late_write: bool) -> Result<Probe> {
    let mut before = Clocks::default();
    let run = m.probe_with(
        spec,
        |_: &mut Prep| {
            before = read_clocks();
            Ok(())
        },
        move |inside| {
            // The clocks first, so they fall as close as possible inside the host's
            // interval; /proc/uptime is read with the view.
            let clocks = read_clocks();
            inside.action(
                "clock_gettime(CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME); cat /proc/uptime",
            );
            let view = inside.observe()?;
            let rewrite = late_write.then(|| rewrite(inside));
            Ok(Seen {
                clocks,
                view,
                rewrite,
            })
        },
        |_| Ok(read_clocks()),
    )?;
    Ok(Run {
        inside: run.inside,
        host: run.host,
        host_extra: Around {
            before,
            after: run.host_extra,
        },
        actions: run.actions,
        pid: run.pid,
    })
}

fn offsets_lines(off: TimeOffsets) -> Vec<String> {
    vec![
        format!("monotonic {} 0", off.monotonic_secs),
        format!("boottime {} 0", off.boottime_secs),
    ]
}

/// "7 d 00:26:45": whole seconds, so the days of the offsets stand out.
pub fn pretty(ns: i64) -> String {
    let whole = (ns.max(0) / NS) as u64;
    format!(
        "{} d {:02}:{:02}:{:02}",
        whole / 86_400,
        whole % 86_400 / 3600,
        whole % 3600 / 60,
        whole % 60
    )
}

fn uptime_text(cs: Option<u64>) -> String {
    match cs {
        Some(cs) => pretty(cs as i64 * UPTIME_RESOLUTION_NS),
        None => "not read".to_string(),
    }
}

/// "1796180416.368395": seconds since 1970, to the microsecond.
fn secs(ns: i64) -> String {
    format!("{}.{:06}", ns.div_euclid(NS), ns.rem_euclid(NS) / 1000)
}

/// "1.026 ms".
fn millis(ns: i64) -> String {
    format!("{}.{:03} ms", ns / 1_000_000, ns % 1_000_000 / 1000)
}

/// True when `value - offset` lies in [lo - slack, hi].
pub fn within(value: i64, offset_secs: i64, lo: i64, hi: i64, slack: i64) -> bool {
    let v = value - offset_secs * NS;
    v >= lo - slack && v <= hi
}

/// The host's reading to show beside the probe's `inside` (whose offset is `offset`): the
/// host read each clock just before and just after the probe did, and both readings are
/// real; shown is the one in the same second as the probe's reading minus the offset, so
/// that two readings a few milliseconds apart do not look different only because a second
/// ticked between them. (With an interval above 1 s they can still differ, as they should.)
pub fn beside(before: i64, after: i64, inside: i64, offset_secs: i64) -> i64 {
    let second = (inside - offset_secs * NS).div_euclid(NS);
    if before.div_euclid(NS) == second {
        before
    } else {
        after
    }
}

/// "2026-11-27 05:14:37" from nanoseconds since 1970 (UTC; days to a civil date as in
/// Howard Hinnant's chrono algorithms, so no time crate is needed).
pub fn utc(ns: i64) -> String {
    let s = ns.div_euclid(NS);
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The probe's clocks against the host's interval, for offsets `off`.
struct Check {
    uptime: bool,
    boottime: bool,
    monotonic: bool,
    realtime: bool,
    /// The host's own /proc/uptime, read between its two clock readings.
    host_uptime: bool,
    interval_ns: i64,
}

impl Check {
    fn all(&self) -> bool {
        self.uptime && self.boottime && self.monotonic && self.realtime && self.host_uptime
    }
}

fn check(run: &Probe, off: TimeOffsets) -> Check {
    let (lo, hi, i) = (
        &run.host_extra.before,
        &run.host_extra.after,
        &run.inside.clocks,
    );
    let uptime_ok = |cs: Option<u64>, offset: i64| {
        cs.is_some_and(|cs| {
            within(
                cs as i64 * UPTIME_RESOLUTION_NS,
                offset,
                lo.boottime_ns,
                hi.boottime_ns,
                UPTIME_RESOLUTION_NS,
            )
        })
    };
    Check {
        uptime: uptime_ok(run.inside.view.uptime_cs, off.boottime_secs),
        host_uptime: uptime_ok(run.host.uptime_cs, 0),
        boottime: within(
            i.boottime_ns,
            off.boottime_secs,
            lo.boottime_ns,
            hi.boottime_ns,
            0,
        ),
        monotonic: within(
            i.monotonic_ns,
            off.monotonic_secs,
            lo.monotonic_ns,
            hi.monotonic_ns,
            0,
        ),
        realtime: within(i.realtime_ns, 0, lo.realtime_ns, hi.realtime_ns, 0),
        interval_ns: hi.monotonic_ns - lo.monotonic_ns,
    }
}

/// nsx's own offsets (its /proc/self/timens_offsets before the lesson): zero in the
/// initial time namespace.
fn own_offsets(base: &View) -> TimeOffsets {
    parse_offsets(base.probe.timens_offsets()).unwrap_or(TimeOffsets {
        monotonic_secs: 0,
        boottime_secs: 0,
    })
}

/// `a - b`, clock by clock.
fn minus(a: TimeOffsets, b: TimeOffsets) -> TimeOffsets {
    TimeOffsets {
        monotonic_secs: a.monotonic_secs - b.monotonic_secs,
        boottime_secs: a.boottime_secs - b.boottime_secs,
    }
}

/// "" when nsx runs with no offset of its own, else how the shift comes about.
fn relative_to(own: i64, written: i64) -> String {
    if own == 0 {
        String::new()
    } else {
        format!(" (written {written} s, from the initial time namespace; nsx's own namespace is {own} s ahead of it)")
    }
}

/// The offsets a timens_offsets file shows, in whole seconds ("monotonic 172800 0").
fn parse_offsets(lines: &[String]) -> Option<TimeOffsets> {
    let mut off = TimeOffsets {
        monotonic_secs: 0,
        boottime_secs: 0,
    };
    let mut seen = 0;
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [clock, secs, _nanos] = f[..] else {
            return None;
        };
        let secs: i64 = secs.parse().ok()?;
        match clock {
            "monotonic" => off.monotonic_secs = secs,
            "boottime" => off.boottime_secs = secs,
            _ => return None,
        }
        seen += 1;
    }
    (seen == 2).then_some(off)
}

/// The rows of one step: the probe read two ways (its time namespace, its offsets), then
/// each side's own clocks. A clock pair read a few milliseconds apart may straddle a
/// second: where the check found them in the interval, that is drift, not a difference.
fn step(id: &str, title: &str, run: &Probe, off: TimeOffsets) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let (b, a, i) = (
        &run.host_extra.before,
        &run.host_extra.after,
        &run.inside.clocks,
    );
    let c = check(run, off);
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Time, host, inside);
    let offsets = |p: &crate::observe::Proc| match &p.timens_offsets {
        Some(l) if !l.is_empty() => Val::text(l.join(" / ")),
        Some(_) => Val::None("no time namespaces in this kernel".into()),
        None => Val::None("not read".into()),
    };
    let ticked = "read a few milliseconds apart: a second ticked between them";
    let clock = |label: &str, file: &str, host_ns: i64, inside_ns: i64, ok: bool, key: bool| {
        let r = Row::own(label, file, pretty(host_ns), pretty(inside_ns)).drift_if(ok, ticked);
        if key {
            r.key()
        } else {
            r
        }
    };
    let shifted = off.boottime_secs != 0;
    let zero = |offset: i64| offset == 0;
    let uptime = |cs: Option<u64>| match cs {
        Some(cs) => Val::text(pretty(cs as i64 * UPTIME_RESOLUTION_NS)),
        None => Val::None("not read".into()),
    };
    let rows = vec![
        ns_probe,
        Row::probe(
            "timens_offsets",
            "timens_offsets",
            offsets(&host.probe),
            offsets(&inside.probe),
        ),
        ns_own,
        {
            let r = Row::own(
                "uptime",
                "/proc/uptime",
                uptime(host.uptime_cs),
                uptime(inside.uptime_cs),
            )
            .drift_if(zero(off.boottime_secs) && c.uptime && c.host_uptime, ticked);
            if shifted {
                r.key()
            } else {
                r
            }
        },
        clock(
            "CLOCK_BOOTTIME",
            "clock_gettime",
            beside(
                b.boottime_ns,
                a.boottime_ns,
                i.boottime_ns,
                off.boottime_secs,
            ),
            i.boottime_ns,
            zero(off.boottime_secs) && c.boottime,
            false,
        ),
        clock(
            "CLOCK_MONOTONIC",
            "clock_gettime",
            beside(
                b.monotonic_ns,
                a.monotonic_ns,
                i.monotonic_ns,
                off.monotonic_secs,
            ),
            i.monotonic_ns,
            zero(off.monotonic_secs) && c.monotonic,
            false,
        ),
        Row::own(
            "CLOCK_REALTIME, UTC",
            "clock_gettime",
            utc(beside(b.realtime_ns, a.realtime_ns, i.realtime_ns, 0)),
            utc(i.realtime_ns),
        )
        .drift_if(c.realtime, ticked),
    ];
    kit::step(id, title, run, inside, rows).extra(json!({
        "inside_clocks": run.inside.clocks,
        "host_before": run.host_extra.before,
        "host_after": run.host_extra.after,
        "rewrite": run.inside.rewrite,
    }))
}

/// Holds when clone3(CLONE_NEWTIME) made a probe born in a new time namespace with its
/// creator's offsets, frozen; or when this kernel refused it with EINVAL or ENOSYS.
fn clone3_fact(c: &Clone3, base: &View, kernel: &str) -> Fact {
    let own = base.probe.timens_offsets();
    match c {
        Clone3::Accepted { run } => {
            let reads = run.host.probe.timens_offsets();
            let offsets = parse_offsets(reads);
            let ch = offsets.map(|off| check(run, minus(off, own_offsets(base))));
            Fact::new(
                "clone3-newtime",
                format!(
                    "clone3(2) took CLONE_NEWTIME on this kernel ({kernel}): the child was born in a new time namespace ({}, nsx's is {}) whose offsets, \"{}\", are its creator's (nsx's \"{}\"), and writing them from inside returned {}: frozen from birth, so to set offsets, unshare and write them before anyone enters",
                    kit::ns_text(Ns::Time, run.inside.view.own(Ns::Time)),
                    kit::ns_text(Ns::Time, base.own(Ns::Time)),
                    reads.join(" / "),
                    own.join(" / "),
                    run.inside.rewrite.as_deref().unwrap_or("nothing")
                ),
                kit::differ(run.inside.view.own(Ns::Time), base.own(Ns::Time))
                    && kit::same(run.host.probe.ns_of(Ns::Time), run.inside.view.own(Ns::Time))
                    && !own.is_empty()
                    && reads == own
                    && run.inside.view.probe.timens_offsets() == own
                    && ch.is_some_and(|c| c.monotonic && c.boottime)
                    && run.inside.rewrite.as_deref() == Some("EACCES"),
                json!({ "host_reads": reads, "creator": own, "rewrite": run.inside.rewrite }),
            )
        }
        Clone3::Refused { errno } => Fact::new(
            "clone3-newtime",
            match errno.as_str() {
                "EINVAL" => format!(
                    "this kernel ({kernel}) refuses CLONE_NEWTIME in clone3(2) with EINVAL: it predates Linux 6.3 and the stable updates that allowed it; unshare(2) is the way here"
                ),
                "ENOSYS" => format!(
                    "clone3(2) is not available here ({kernel}): ENOSYS, a kernel before 5.3 or a seccomp filter that hides it; unshare(2) is the way here"
                ),
                other => format!("clone3(CLONE_NEWTIME) failed with {other}, which neither an old kernel nor a filter explains"),
            },
            matches!(errno.as_str(), "EINVAL" | "ENOSYS"),
            json!({ "errno": errno }),
        ),
    }
}

fn clone3_step(c: &Clone3, base: &View, kernel: &str) -> Step {
    match c {
        Clone3::Accepted { run } => {
            let off = parse_offsets(run.host.probe.timens_offsets())
                .map_or(TimeOffsets {
                    monotonic_secs: 0,
                    boottime_secs: 0,
                }, |off| minus(off, own_offsets(base)));
            step(
                "clone3",
                "clone3: CLONE_NEWTIME at clone time, no offsets to write",
                run,
                off,
            )
            .note(format!(
                "clone(2) cannot take CLONE_NEWTIME (its bit is part of CSIGNAL, the exit signal); clone3(2) takes the exit signal in a field of its own, and this kernel ({kernel}) accepts it. The child starts inside the new namespace, so its offsets, copied from nsx's ({}), froze before anyone could write them",
                base.probe.timens_offsets().join(" / ")
            ))
            .takeaway(format!(
                "a new time namespace ({}) with nsx's offsets, {}: clone3 gives the namespace, unshare gives the chance to set it",
                kit::ns_text(Ns::Time, run.inside.view.own(Ns::Time)),
                run.host.probe.timens_offsets().join(" / ")
            ))
        }
        Clone3::Refused { errno } => Step {
            id: "clone3".into(),
            title: "clone3: CLONE_NEWTIME at clone time, refused by this kernel".into(),
            actions: vec![format!(
                "clone3({{flags: CLONE_NEWTIME, exit_signal: SIGCHLD}}) = -1 {errno}"
            )],
            rows: vec![Row::own(
                "time namespace",
                "ns/time",
                kit::ns_val(Ns::Time, base.own(Ns::Time)),
                Val::None(format!("no probe: clone3 returned {errno}")),
            )],
            notes: Vec::new(),
            takeaway: None,
            columns: None,
            extra: json!({ "errno": errno }),
            host: base.clone(),
            container: View::default(),
        }
        .note(format!(
            "where the kernel accepts it (Linux 6.3, and the stable updates of March 2023), the child would start in a new time namespace with nsx's offsets ({}), frozen at once: an offset can only be set through unshare(CLONE_NEWTIME) and /proc/self/timens_offsets, before anyone enters",
            base.probe.timens_offsets().join(" / ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(machine: &str) -> (Obs, Env) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings")
            .join(machine)
            .join("time.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        (serde_json::from_value(rec.observations).unwrap(), rec.env)
    }

    /// No machine the fixtures come from refuses CLONE_NEWTIME in clone3 (Debian's 6.1
    /// has the stable backport): the refusal is judged from a recording changed to it.
    #[test]
    fn a_kernel_refusing_clone3_newtime_is_a_fact_about_that_kernel() {
        let (mut o, env) = recorded("v2-root");
        for errno in ["EINVAL", "ENOSYS"] {
            o.clone3 = Clone3::Refused {
                errno: errno.into(),
            };
            let j = Time::judge(&o, &NoOptions {}, &env);
            let f = j.facts.iter().find(|f| f.id == "clone3-newtime").unwrap();
            assert!(f.holds && f.inconclusive.is_none(), "{errno}: {}", f.claim);
            assert!(f.claim.contains(errno), "{}", f.claim);
            let step = j.steps.iter().find(|s| s.id == "clone3").unwrap();
            assert_eq!(
                step.actions,
                [format!(
                    "clone3({{flags: CLONE_NEWTIME, exit_signal: SIGCHLD}}) = -1 {errno}"
                )]
            );
            assert!(step
                .notes
                .iter()
                .any(|n| n.contains("unshare(CLONE_NEWTIME)")));
            assert!(!step.rows.is_empty());
        }
        // Every other fact is judged as before.
        let j = Time::judge(&o, &NoOptions {}, &env);
        assert!(j.facts.iter().all(|f| f.holds), "{:#?}", j.facts);
    }

    #[test]
    fn readings_are_checked_against_the_hosts_interval() {
        let s = NS;
        // Host read 100.000 and 100.004 s; the probe 604900.002 s with a 604800 s offset.
        assert!(within(
            604_900 * s + 2_000_000,
            604_800,
            100 * s,
            100 * s + 4_000_000,
            0
        ));
        assert!(!within(
            604_900 * s + 10_000_000,
            604_800,
            100 * s,
            100 * s + 4_000_000,
            0
        ));
        // /proc/uptime truncates to centiseconds: 100.00 for a true 100.004.
        assert!(within(
            604_899 * s + 990_000_000,
            604_800,
            100 * s,
            100 * s + 4_000_000,
            UPTIME_RESOLUTION_NS
        ));
        assert!(!within(
            100 * s + 2_000_000,
            604_800,
            100 * s,
            100 * s + 4_000_000,
            UPTIME_RESOLUTION_NS
        ));
        assert!(within(
            100 * s + 2_000_000,
            0,
            100 * s,
            100 * s + 4_000_000,
            0
        ));
    }

    #[test]
    fn durations_are_shown_in_days() {
        assert_eq!(pretty(606_405 * NS + 819_000_000), "7 d 00:26:45");
        assert_eq!(pretty(59 * NS + 999_000_000), "0 d 00:00:59");
        assert_eq!(uptime_text(Some(60_640_581)), "7 d 00:26:45");
        assert_eq!(millis(1_026_400), "1.026 ms");
        assert_eq!(secs(1_796_180_416_368_395_123), "1796180416.368395");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400 * NS + NS / 2), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_756_849 * NS + 900_000_000), "2026-11-27 05:20:49");
    }

    #[test]
    fn the_host_reading_shown_is_in_the_probes_second() {
        let ms = 1_000_000;
        // Probe at 10.999 (after its offset); host read 10.998 before and 11.001 after.
        assert_eq!(
            beside(10_998 * ms, 11_001 * ms, 10_999 * ms, 0),
            10_998 * ms
        );
        // Probe at 11.0005: the host's "after" reading shares its second.
        assert_eq!(
            beside(10_999 * ms, 11_001 * ms, 11_000 * ms + ms / 2, 0),
            11_001 * ms
        );
        assert_eq!(
            beside(10_999 * ms, 11_001 * ms, 604_811 * NS + ms / 2, 604_800),
            11_001 * ms
        );
    }

    #[test]
    fn offsets_are_written_and_read_as_the_man_page_shows() {
        assert_eq!(
            offsets_lines(OFFSETS),
            ["monotonic 172800 0", "boottime 604800 0"]
        );
        assert_eq!(parse_offsets(&offsets_lines(OFFSETS)), Some(OFFSETS));
        assert_eq!(parse_offsets(&["monotonic 1 0".to_string()]), None);
        assert_eq!(
            parse_offsets(&["monotonic 1 0".to_string(), "realtime 1 0".to_string()]),
            None
        );
    }
}
