//! time: a time namespace shifts the probe's monotonic and boot-time clocks.
//!
//! time_namespaces(7): a time namespace carries offsets for CLOCK_MONOTONIC and
//! CLOCK_BOOTTIME (shown in /proc/<pid>/timens_offsets), so /proc/uptime and
//! clock_gettime(2) inside read the host's clocks plus the offsets. CLOCK_REALTIME, the
//! wall clock, is not virtualised. CLONE_NEWTIME cannot be given to clone(2) (the bit is
//! part of CSIGNAL there), and unshare(2) creates the namespace for the caller's future
//! children only, so its offsets can be written before anyone is inside. The sandbox does
//! exactly that in the probe (Spec::unshare + Spec::time_offsets): unshare, write the
//! offsets, then setns(2) into /proc/self/ns/time_for_children.
//!
//! How "differs by the offset" is checked: nsx reads the host's clocks just before it lets
//! the probe run and again just after the probe's report arrives. Each of the probe's
//! readings, minus its offset, must fall between the two: the tolerance is that interval
//! (a few milliseconds), plus 10 ms for /proc/uptime, which has centisecond resolution.

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ns_label, Ctx, Lesson, Rootless, Run};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{Inside, Spec, TimeOffsets, CLONE_NEWTIME};

pub const LESSON: Lesson = Lesson {
    id: "time",
    title: "Time namespace: uptime and monotonic clock of its own",
    mechanism: "CLONE_NEWTIME + /proc/<pid>/timens_offsets",
    man: "time_namespaces(7), clock_gettime(2), proc(5) (/proc/uptime)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/time.md"),
    sees: Parts::ns("time"),
    facts: &[],
    imp: super::Imp::Old(run),
};

/// The offsets nsx writes: the monotonic clock 2 days ahead, boot time 7 days ahead (the
/// example of time_namespaces(7)).
pub const OFFSETS: TimeOffsets = TimeOffsets {
    monotonic_secs: 2 * 86_400,
    boottime_secs: 7 * 86_400,
};

/// /proc/uptime's resolution (proc(5): seconds with two decimals).
const UPTIME_RESOLUTION: f64 = 0.01;

/// Floating-point slack when comparing clock readings (f64 keeps ~0.2 µs at 1.8e9 s).
const EPSILON: f64 = 1e-5;

/// Clock readings in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Clocks {
    pub monotonic: f64,
    pub boottime: f64,
    pub realtime: f64,
    /// The first field of /proc/uptime.
    pub uptime: f64,
}

fn clock(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // clock_gettime(2): in a time namespace the vDSO adds the namespace's offsets to
    // CLOCK_MONOTONIC and CLOCK_BOOTTIME; CLOCK_REALTIME is read as is.
    // SAFETY: ts is a valid timespec; these clocks exist on every Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn uptime() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/uptime").ctx("read", "/proc/uptime")?;
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| Error::Other(format!("parse /proc/uptime: {text:?}")))
}

/// All four readings, as close together as possible.
pub fn read_clocks() -> Result<Clocks> {
    Ok(Clocks {
        monotonic: clock(libc::CLOCK_MONOTONIC),
        boottime: clock(libc::CLOCK_BOOTTIME),
        realtime: clock(libc::CLOCK_REALTIME),
        uptime: uptime()?,
    })
}

/// `<dir>/timens_offsets`, whitespace folded: ["monotonic 172800 0", "boottime 604800 0"].
fn read_offsets(dir: &str) -> Result<Vec<String>> {
    let path = format!("{dir}/timens_offsets");
    Ok(std::fs::read_to_string(&path)
        .ctx("read", &path)?
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect())
}

fn offsets_lines(off: TimeOffsets) -> Vec<String> {
    vec![
        format!("monotonic {} 0", off.monotonic_secs),
        format!("boottime {} 0", off.boottime_secs),
    ]
}

/// "7 d 00:26:45": whole seconds, so the days of the offsets stand out.
pub fn pretty(secs: f64) -> String {
    let whole = secs.max(0.0) as u64;
    format!(
        "{} d {:02}:{:02}:{:02}",
        whole / 86_400,
        whole % 86_400 / 3600,
        whole % 3600 / 60,
        whole % 60
    )
}

/// True when `value - offset` lies in [lo - slack, hi + EPSILON].
pub fn within(value: f64, offset: i64, lo: f64, hi: f64, slack: f64) -> bool {
    let v = value - offset as f64;
    v >= lo - slack - EPSILON && v <= hi + EPSILON
}

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    clocks: Clocks,
    view: View,
    offsets: Vec<String>,
    /// After entering: what a second write of the offsets returned ("ok" or the errno).
    rewrite: Option<String>,
}

fn look(rewrite: bool) -> impl FnOnce(&mut Inside) -> Result<Seen> {
    move |inside| {
        // The clocks first, so they fall as close as possible inside the host's interval.
        let clocks = read_clocks()?;
        inside.action(
            "clock_gettime(CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME); cat /proc/uptime",
        );
        let rewrite = rewrite.then(|| {
            // time_namespaces(7): once a process is in the namespace, writes fail (EACCES).
            let r = std::fs::write("/proc/self/timens_offsets", "boottime 0 0\n");
            let text = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e
                    .raw_os_error()
                    .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
                    .unwrap_or_else(|| e.to_string()),
            };
            inside.action(format!(
                "echo 'boottime 0 0' > /proc/self/timens_offsets   (again, from inside) = {text}"
            ));
            text
        });
        Ok(Seen {
            clocks,
            view: inside.observe()?,
            offsets: read_offsets("/proc/self")?,
            rewrite,
        })
    }
}

/// The host's readings around one probe run.
#[derive(Debug, Clone, Serialize)]
struct Around {
    before: Clocks,
    after: Clocks,
    /// /proc/<pid>/timens_offsets as the host reads it.
    offsets: Vec<String>,
}

/// Spawns a probe, reading the host's clocks right before `go` and right after the report.
fn timed(spec: &Spec, rewrite: bool) -> Result<Run<Seen, Around>> {
    let mut child = crate::sandbox::spawn(spec, look(rewrite))?;
    let before = read_clocks()?;
    let inside: Seen = child.run()?;
    let after = read_clocks()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let offsets = read_offsets(&format!("/proc/{pid}"))?;
    let actions = std::mem::take(&mut child.actions);
    // Reaped later, in parallel with the next step (see Child::release).
    child.release();
    Ok(Run {
        inside,
        host,
        host_extra: Around {
            before,
            after,
            offsets,
        },
        actions,
        pid,
    })
}

/// The host's reading to show beside the probe's `inside` (whose offset is `offset`): the
/// host read each clock just before and just after the probe did, and both readings are
/// real; shown is the one in the same second as the probe's reading minus the offset, so
/// that two readings a few milliseconds apart do not look different only because a second
/// ticked between them. (With an interval above 1 s they can still differ, as they should.)
pub fn beside(before: f64, after: f64, inside: f64, offset: i64) -> f64 {
    let second = (inside - offset as f64).floor();
    if before.floor() == second {
        before
    } else {
        after
    }
}

fn rows(run: &Run<Seen, Around>, off: TimeOffsets) -> Vec<Row> {
    let (b, a, i) = (
        &run.host_extra.before,
        &run.host_extra.after,
        &run.inside.clocks,
    );
    let pair = |label: &str, host_before: f64, host_after: f64, inside: f64, offset: i64| {
        Row::new(
            label,
            pretty(beside(host_before, host_after, inside, offset)),
            pretty(inside),
        )
    };
    vec![
        Row::new(
            "time namespace",
            ns_label("time", run.host.own_ns("time")),
            ns_label("time", run.inside.view.own_ns("time")),
        ),
        Row::new(
            "timens_offsets",
            run.host_extra.offsets.join(" / "),
            run.inside.offsets.join(" / "),
        ),
        // /proc/uptime is compared with the host's CLOCK_BOOTTIME, which it shows.
        pair(
            "/proc/uptime",
            b.boottime,
            a.boottime,
            i.uptime,
            off.boottime_secs,
        ),
        pair(
            "CLOCK_MONOTONIC",
            b.monotonic,
            a.monotonic,
            i.monotonic,
            off.monotonic_secs,
        ),
        pair(
            "CLOCK_BOOTTIME",
            b.boottime,
            a.boottime,
            i.boottime,
            off.boottime_secs,
        ),
        Row::new(
            "CLOCK_REALTIME (the wall clock, UTC)",
            utc(beside(b.realtime, a.realtime, i.realtime, 0)),
            utc(i.realtime),
        ),
    ]
}

/// "2026-11-27 05:14:37" from seconds since 1970 (UTC; days to a civil date as in
/// Howard Hinnant's chrono algorithms, so no time crate is needed).
pub fn utc(secs: f64) -> String {
    let s = secs.floor() as i64;
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

fn step(
    id: &str,
    title: &str,
    run: Run<Seen, Around>,
    off: TimeOffsets,
    notes: Vec<String>,
) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        rows: rows(&run, off),
        actions: run.actions,
        notes,
        extra: json!({
            "inside_clocks": run.inside.clocks,
            "host_before": run.host_extra.before,
            "host_after": run.host_extra.after,
            "host_reads_offsets": run.host_extra.offsets,
            "inside_offsets": run.inside.offsets,
            "rewrite": run.inside.rewrite,
        }),
        host: run.host,
        container: run.inside.view,
    }
}

/// The facts about one run's clocks against the host's interval, for `off`.
struct Check {
    uptime: bool,
    boottime: bool,
    monotonic: bool,
    realtime: bool,
    interval_ms: f64,
}

fn check(run: &Run<Seen, Around>, off: TimeOffsets) -> Check {
    let (lo, hi, i) = (
        &run.host_extra.before,
        &run.host_extra.after,
        &run.inside.clocks,
    );
    Check {
        uptime: within(
            i.uptime,
            off.boottime_secs,
            lo.boottime,
            hi.boottime,
            UPTIME_RESOLUTION,
        ),
        boottime: within(i.boottime, off.boottime_secs, lo.boottime, hi.boottime, 0.0),
        monotonic: within(
            i.monotonic,
            off.monotonic_secs,
            lo.monotonic,
            hi.monotonic,
            0.0,
        ),
        realtime: within(i.realtime, 0, lo.realtime, hi.realtime, 0.0),
        interval_ms: (hi.monotonic - lo.monotonic) * 1e3,
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let host_time = ctx.baseline.own_ns("time");
    let zero = TimeOffsets {
        monotonic_secs: 0,
        boottime_secs: 0,
    };

    let before = timed(&Spec::new(CloneFlags::empty()), false)?;
    let c = check(&before, zero);
    let mut facts = vec![Fact::new(
        "before-same-clocks",
        format!(
            "before, the probe shares the host's time namespace ({}) and its clocks fall between the host's readings around it ({:.3} ms apart): no offset",
            ns_label("time", before.inside.view.own_ns("time")),
            c.interval_ms
        ),
        before.inside.view.own_ns("time") == host_time
            && c.uptime
            && c.boottime
            && c.monotonic
            && c.realtime,
        json!({ "uptime": c.uptime, "boottime": c.boottime, "monotonic": c.monotonic, "realtime": c.realtime }),
    )];
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        before,
        zero,
        vec![],
    ))?;

    let spec = Spec {
        unshare: CLONE_NEWTIME,
        time_offsets: Some(OFFSETS),
        ..Spec::default()
    };
    let after = timed(&spec, true)?;
    let c = check(&after, OFFSETS);
    let (inside, around) = (&after.inside, &after.host_extra);
    let wanted = offsets_lines(OFFSETS);
    facts.extend([
        Fact::new(
            "offsets-in-place",
            format!(
                "the host reads /proc/{}/timens_offsets as \"{}\", the offsets written before the probe entered",
                after.pid,
                around.offsets.join(" / ")
            ),
            around.offsets == wanted && inside.offsets == wanted,
            json!({ "host_reads": around.offsets, "inside_reads": inside.offsets }),
        ),
        Fact::new(
            "uptime-shifted",
            format!(
                "inside, /proc/uptime and CLOCK_BOOTTIME read {} s ({} days) ahead of the host: minus that offset they fall between the host's readings taken {:.3} ms apart around them (/proc/uptime: 10 ms resolution on top)",
                OFFSETS.boottime_secs,
                OFFSETS.boottime_secs / 86_400,
                c.interval_ms
            ),
            c.uptime && c.boottime,
            json!({ "uptime": c.uptime, "boottime": c.boottime, "offset": OFFSETS.boottime_secs }),
        ),
        Fact::new(
            "monotonic-shifted",
            format!(
                "inside, CLOCK_MONOTONIC reads {} s ({} days) ahead of the host, within the same interval",
                OFFSETS.monotonic_secs,
                OFFSETS.monotonic_secs / 86_400
            ),
            c.monotonic,
            json!({ "monotonic": c.monotonic, "offset": OFFSETS.monotonic_secs }),
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
                inside.rewrite.as_deref().unwrap_or("nothing")
            ),
            inside.rewrite.as_deref() == Some("EACCES"),
            json!({ "rewrite": inside.rewrite }),
        ),
        Fact::new(
            "time-ns-differs",
            format!(
                "the probe's time namespace ({}) differs from the host's ({})",
                ns_label("time", inside.view.own_ns("time")),
                ns_label("time", host_time)
            ),
            inside.view.own_ns("time") != host_time
                && after.host.probe.ns("time") == inside.view.own_ns("time"),
            json!({ "inside": inside.view.own_ns("time"), "host": host_time, "host_reads": after.host.probe.ns("time") }),
        ),
    ]);
    let wall = format!(
        "wall clock: the host read {:.6} and {:.6}, the probe {:.6} (seconds since 1970; no offset)",
        around.before.realtime, around.after.realtime, inside.clocks.realtime
    );
    ctx.step(step(
        "after",
        "after: unshare(CLONE_NEWTIME), offsets written, then setns into it",
        after,
        OFFSETS,
        vec![wall],
    ))?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_checked_against_the_hosts_interval() {
        // Host read 100.000 and 100.004; the probe 604900.002 with a 604800 s offset.
        assert!(within(604_900.002, 604_800, 100.0, 100.004, 0.0));
        assert!(!within(604_900.010, 604_800, 100.0, 100.004, 0.0));
        // /proc/uptime truncates to centiseconds: 100.00 for a true 100.004.
        assert!(within(
            604_899.999,
            604_800,
            100.0,
            100.004,
            UPTIME_RESOLUTION
        ));
        assert!(!within(100.002, 604_800, 100.0, 100.004, UPTIME_RESOLUTION));
        assert!(within(100.002, 0, 100.0, 100.004, 0.0));
    }

    #[test]
    fn durations_are_shown_in_days() {
        assert_eq!(pretty(606_405.819), "7 d 00:26:45");
        assert_eq!(pretty(59.999), "0 d 00:00:59");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400.5), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_756_849.9), "2026-11-27 05:20:49");
    }

    #[test]
    fn the_host_reading_shown_is_in_the_probes_second() {
        // Probe at 10.999 (after its offset); host read 10.998 before and 11.001 after.
        assert_eq!(beside(10.998, 11.001, 10.999, 0), 10.998);
        // Probe at 11.0005: the host's "after" reading shares its second.
        assert_eq!(beside(10.999, 11.001, 11.0005, 0), 11.001);
        assert_eq!(beside(10.999, 11.001, 604_811.000_5, 604_800), 11.001);
    }

    #[test]
    fn offsets_are_written_as_the_man_page_shows() {
        assert_eq!(
            offsets_lines(OFFSETS),
            ["monotonic 172800 0", "boottime 604800 0"]
        );
    }
}
