//! memory: a memory cgroup caps what a process may use; over the cap, the kernel's OOM
//! killer ends it.
//!
//! cgroups(7): a cgroup is a directory; the memory controller's limit is the file
//! memory.limit_in_bytes (v1) or memory.max (v2); a process joins by having its PID
//! written into cgroup.procs. Memory is charged to the cgroup of the process that first
//! touches a page (an anonymous mapping costs nothing until it is written), so the probe
//! maps more than the limit and writes one byte into every page. When a charge would go
//! over the limit and reclaim cannot make room (no swap, or swap forbidden by the memsw /
//! swap.max limit nsx also writes), the kernel's OOM killer kills a process of the cgroup
//! with SIGKILL and counts it: memory.oom_control `oom_kill` (v1), memory.events
//! `oom_kill` (v2).
//!
//! The probe may die before its report: what it must say first (its view of itself, then
//! how far it got) goes through a side pipe as it works.

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use std::path::Path;

use super::cgroup_steps::{self as cs, format_mib, Log, SidePipe, SideWriter};
use super::{Ctx, Lesson, Rootless};
use crate::cgroup::{Controller, LessonCgroup, MemoryStats, Version};
use crate::error::{sys, Error, Result};
use crate::limits::format_memory;
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{self, describe, Inside, Outcome, Spec};

/// The limit the lesson sets unless `--memory` says otherwise.
pub const DEFAULT_LIMIT: u64 = 32 << 20;
/// What the probe allocates and touches unless `--alloc` says otherwise: twice the limit.
pub const DEFAULT_ALLOC: u64 = 64 << 20;
/// The most `--alloc` may ask for: the "before" step allocates it with no lesson limit,
/// on a machine other people use.
pub const MAX_ALLOC: u64 = 512 << 20;

/// The probe reports its progress on the side pipe every this many bytes written.
const PROGRESS_CHUNK: u64 = 64 << 10;

pub const LESSON: Lesson = Lesson {
    id: "memory",
    title: "Memory limit: over it, the OOM killer",
    mechanism: "a memory cgroup: mkdir, write the limit into a file, write the probe's PID into cgroup.procs",
    man: "cgroups(7); kernel docs admin-guide/cgroup-v2.rst (Memory) and cgroup-v1/memory.rst",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/memory.md"),
    sees: Parts::CGROUP,
    facts: &[],
    words: &["cgroups", "cgroup", "limits", "limit", "mem", "ram", "oom"],
    imp: super::Imp::Old(run),
};

/// Checks `--alloc` against what this lesson can do (the grammar is checked by the CLI;
/// any `--memory` it accepts is fine: a limit too small for the probe to start is an
/// outcome the lesson explains); the message names the accepted range.
pub fn check_options(alloc: u64) -> Result<()> {
    if alloc > MAX_ALLOC {
        return Err(Error::Usage(format!(
            "--alloc {}: the memory lesson allocates at most {} (its first step does so with no lesson limit, on a machine others may use); choose a size from 1M to {}",
            format_memory(alloc),
            format_memory(MAX_ALLOC),
            format_memory(MAX_ALLOC)
        )));
    }
    Ok(())
}

/// What the probe reports once it has written everything.
#[derive(Debug, Serialize, Deserialize)]
struct Wrote {
    view: View,
    asked: u64,
    /// Bytes of the mapping written to (every page of it, one byte each).
    written: u64,
    page: u64,
    /// VmRSS from the probe's own /proc/self/status after writing.
    rss_kib: Option<u64>,
}

/// The probe: look at itself (and say so on the side pipe), map `asked` bytes, write one
/// byte per page, reporting progress every [`PROGRESS_CHUNK`].
fn allocate(inside: &mut Inside, asked: u64, mut side: SideWriter) -> Result<Wrote> {
    let view = inside.observe()?;
    side.send_json(&view);
    // sysconf(3): the page size, the unit memory is charged in.
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    let len = usize::try_from(asked).map_err(|_| Error::Other("--alloc too large".into()))?;
    // mmap(2): a private anonymous mapping is only address space until a page is first
    // written; the page fault then allocates the page and charges it to the memory
    // cgroup of the writer (cgroup-v1/memory.rst "Accounting"; cgroup-v2.rst "Memory
    // Ownership"). MAP_POPULATE is not used: the writes below are the point.
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(sys(
            "mmap",
            format!("{asked} bytes"),
            nix::errno::Errno::last(),
        ));
    }
    let base = ptr.cast::<u8>();
    let mut offset: u64 = 0;
    let mut next_report = PROGRESS_CHUNK;
    while offset < asked {
        // SAFETY: offset < len, inside the mapping made above. A volatile write so the
        // compiler keeps every store: each one is a page fault the cgroup is charged for.
        unsafe { base.add(offset as usize).write_volatile(1) };
        offset += page;
        while offset.min(asked) >= next_report {
            side.send(b".");
            next_report += PROGRESS_CHUNK;
        }
    }
    let pages = asked.div_ceil(page);
    inside.action(format!(
        "mmap {} of anonymous memory, then write one byte into each of its {pages} pages of {page} bytes",
        format_memory(asked)
    ));
    // The mapping stays until the probe exits, so the host can read its VmRSS meanwhile.
    Ok(Wrote {
        view,
        asked,
        written: asked,
        page,
        rss_kib: cs::status_number(Path::new("/proc/self/status"), "VmRSS"),
    })
}

/// One probe run, with or without the lesson cgroup.
struct Ran {
    log: Log,
    host: View,
    container: View,
    /// The probe got as far as sending its view.
    seen: bool,
    /// Bytes written: the report's figure, or the side channel's lower bound.
    written: u64,
    report: Option<Wrote>,
    status: WaitStatus,
    /// VmRSS the host read in /proc/<pid>/status while the probe held its memory.
    host_rss_kib: Option<u64>,
    stats: Option<MemoryStats>,
}

impl Ran {
    fn killed_by_sigkill(&self) -> bool {
        matches!(self.status, WaitStatus::Signaled(_, Signal::SIGKILL, _))
    }

    fn exited_0(&self) -> bool {
        matches!(self.status, WaitStatus::Exited(_, 0))
    }
}

/// Parses the side channel: the probe's view on the first line, then one `.` per
/// [`PROGRESS_CHUNK`] written.
fn parse_side(bytes: &[u8]) -> (Option<View>, u64) {
    let (first, rest) = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    let view = serde_json::from_slice::<View>(first).ok();
    let dots = rest.iter().filter(|b| **b == b'.').count() as u64;
    (view, dots * PROGRESS_CHUNK)
}

/// Spawns the probe, puts it into `cg` (if any) before it runs, lets it allocate, and
/// collects what both sides saw. The cgroup's counters are read while the probe is
/// still alive when it survives, after its death when it does not.
fn run_probe(mut cg: Option<&mut LessonCgroup>, asked: u64, mut log: Log) -> Result<Ran> {
    let (side, writer): (SidePipe, SideWriter) = cs::side_pipe()?;
    let mut child = sandbox::spawn(&Spec::default(), move |inside: &mut Inside| {
        allocate(inside, asked, writer)
    })?;
    log.extend(std::mem::take(&mut child.actions));
    if let Some(cg) = cg.as_deref_mut() {
        // The probe is held until `go`: it joins before it starts writing. (It may still
        // be finishing its own start, a few pages of stack, as it is moved.)
        cg.add_process(child.pid())?;
        log.cgroup(cg);
    }
    // Where the probe's own work goes in the list, once we know how far it got.
    let probe_at = log.lines.len();
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let outcome = child.run_or_exit::<Wrote>()?;
    let (report, host_rss_kib, status) = match outcome {
        Outcome::Reported(wrote) => {
            // Alive, holding its memory until released: read it from outside now.
            let rss = cs::status_number(Path::new(&format!("/proc/{pid}/status")), "VmRSS");
            (Some(wrote), rss, None)
        }
        Outcome::Exited(status) => (None, None, Some(status)),
    };
    let stats = match cg {
        Some(cg) => {
            let s = cg.memory_stats()?;
            log.cgroup(cg);
            Some(s)
        }
        None => None,
    };
    let probe_actions = std::mem::take(&mut child.actions);
    let status = match status {
        Some(s) => {
            drop(child); // already reaped by run_or_exit
            s
        }
        None => child.finish()?,
    };
    let (side_view, progress) = parse_side(&side.read_all()?);
    let seen = report.is_some() || side_view.is_some();
    let mut probe_lines = probe_actions;
    if report.is_none() && seen {
        probe_lines.push(format!(
            "(the probe) mmap {} of anonymous memory, then write one byte into each page, telling its progress on a side pipe",
            format_memory(asked)
        ));
    }
    log.lines.splice(probe_at..probe_at, probe_lines);
    let written = report.as_ref().map_or(progress, |w| w.written);
    let container = match (&report, side_view) {
        (Some(w), _) => w.view.clone(),
        (None, Some(v)) => v,
        (None, None) => cs::unseen("the probe was killed before it could look at itself"),
    };
    Ok(Ran {
        log,
        host,
        container,
        seen,
        written,
        report,
        status,
        host_rss_kib,
        stats,
    })
}

fn end_row(ran: &Ran) -> Row {
    let inside = match &ran.report {
        Some(w) => format!(
            "reported: wrote all {} ({} pages)",
            format_memory(w.asked),
            w.asked.div_ceil(w.page)
        ),
        None if ran.seen => "no report: it died while writing".to_string(),
        None => "no report: it died before it could look".to_string(),
    };
    Row::new("how the probe ended", describe(ran.status), inside)
}

fn written_label(ran: &Ran, asked: u64) -> String {
    match &ran.report {
        Some(_) => format!("{} of {}", format_memory(asked), format_memory(asked)),
        None => format!(
            "at least {} of {}, then nothing",
            format_mib(ran.written),
            format_memory(asked)
        ),
    }
}

/// File names for the sentences about the counters, per version.
struct Files {
    peak: &'static str,
    hits: &'static str,
    kills: &'static str,
    limit: &'static str,
}

fn files(version: Version) -> Files {
    match version {
        Version::V1 => Files {
            peak: "memory.max_usage_in_bytes",
            hits: "memory.failcnt",
            kills: "memory.oom_control oom_kill",
            limit: "memory.limit_in_bytes",
        },
        Version::V2 => Files {
            peak: "memory.peak",
            hits: "memory.events max",
            kills: "memory.events oom_kill",
            limit: "memory.max",
        },
    }
}

fn peak_label(stats: &MemoryStats, f: &Files) -> String {
    match stats.peak_bytes {
        Some(p) => format!("{} {}", f.peak, format_mib(p)),
        None => format!(
            "{} unknown (it needs Linux 5.19), usage now {}",
            f.peak,
            format_mib(stats.usage_bytes)
        ),
    }
}

/// Everything measured, in one place, so tests can tell measurements from settings.
fn measured(ran: &Ran) -> Value {
    json!({
        "written": ran.written,
        "host_vm_rss_kib": ran.host_rss_kib,
        "probe_vm_rss_kib": ran.report.as_ref().and_then(|w| w.rss_kib),
        "stats": ran.stats,
    })
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let (limit, asked) = (ctx.options.memory, ctx.options.alloc);
    check_options(asked)?;
    // The cgroup is made first (but joined only in the second step), so that a machine
    // that cannot have one says so before anything runs.
    let mut cg = cs::open(ctx, Controller::Memory)?;
    cg.set_memory_max(limit)?;
    let mut setup = Log::default();
    setup.cgroup(&mut cg);
    let version = cg.version();
    let f = files(version);
    let path_of = |v: &View| cs::cgroup_path(v, Controller::Memory, version);
    let cgroup_label = cs::cgroup_label(Controller::Memory, version);

    // ---- before: nsx's own cgroup, no lesson limit.
    let before = run_probe(None, asked, Log::default())?;
    let host_rss = before.host_rss_kib.map(|k| k * 1024);
    let before_fact = Fact::new(
        "before-allocation-succeeds",
        format!(
            "before, with no lesson cgroup, the probe wrote all {} and {}; the host read its VmRSS at {}",
            format_memory(asked),
            describe(before.status),
            host_rss.map_or("an unknown size".into(), format_mib)
        ),
        before.report.as_ref().is_some_and(|w| w.written == asked)
            && before.exited_0()
            && host_rss.is_some_and(|r| r >= asked),
        json!({ "asked": asked, "status": describe(before.status), "measured": measured(&before) }),
    );
    let rows = vec![
        Row::new(
            cgroup_label.clone(),
            path_of(&before.host),
            path_of(&before.container),
        ),
        Row::new(
            "memory the probe wrote",
            match host_rss {
                Some(r) => format!(
                    "VmRSS {} (/proc/{}/status)",
                    format_mib(r),
                    before.host.probe.pid
                ),
                None => "VmRSS unreadable".into(),
            },
            written_label(&before, asked),
        ),
        end_row(&before),
    ];
    let extra =
        json!({ "asked": asked, "status": describe(before.status), "measured": measured(&before) });
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "before".into(),
        title: format!(
            "before: the probe writes {} in nsx's own cgroup, with no lesson limit",
            format_memory(asked)
        ),
        actions: before.log.lines,
        rows,
        notes: vec![],
        extra,
        host: before.host,
        container: before.container,
    })?;

    // ---- after: in the lesson cgroup, under the limit.
    let mut after = run_probe(Some(&mut cg), asked, setup)?;
    let stats = after
        .stats
        .ok_or_else(|| Error::Other("internal: the cgroup's counters were not read".into()))?;
    let mode_note = cs::mode_note(&cg, Controller::Memory);
    cg.remove()?;
    after.log.cgroup(&mut cg);

    let mut facts = vec![before_fact];
    let counters = format!(
        "{} {}, {} {}, {}",
        f.kills,
        stats.oom_kill,
        f.hits,
        stats.limit_hits,
        peak_label(&stats, &f)
    );
    let setting = format!("{} = {limit} ({})", f.limit, format_memory(limit));
    let observed = json!({
        "limit": limit,
        "asked": asked,
        "status": describe(after.status),
        "measured": measured(&after),
    });
    if asked > limit {
        facts.push(Fact::new(
            "oom-killed",
            format!(
                "with {setting}, the probe writing {} was {}",
                format_memory(asked),
                describe(after.status)
            ),
            after.killed_by_sigkill() && after.report.is_none(),
            observed.clone(),
        ));
        // Every page written is charged, so the probe cannot have written more than the
        // limit; and the cgroup's usage went up to the limit before the kill.
        let near = |p: u64| p <= limit && p + limit / 8 >= limit;
        facts.push(Fact::new(
            "killed-at-the-limit",
            format!(
                "it died at the limit: it had written at least {} (never more than the {} limit), and the host read {}",
                format_mib(after.written),
                format_memory(limit),
                peak_label(&stats, &f),
            ),
            after.report.is_none() && after.written <= limit && stats.peak_bytes.is_none_or(near),
            observed.clone(),
        ));
        facts.push(Fact::new(
            "host-sees-the-kill",
            format!("the host reads the kill in the cgroup's files: {counters}"),
            stats.oom_kill >= 1,
            observed.clone(),
        ));
    } else {
        facts.push(Fact::new(
            "within-limit-not-killed",
            format!(
                "with {setting}, the probe writing {} (no more than the limit) {}",
                format_memory(asked),
                match &after.report {
                    Some(_) => format!("wrote all of it and {}", describe(after.status)),
                    None => format!(
                        "was {} after writing at least {}: every page it touches after joining counts, not only its allocation (its stack, the pages of nsx it copies on write, the buffers of its report), and {} leaves no room for them",
                        describe(after.status),
                        format_mib(after.written),
                        format_memory(limit)
                    ),
                }
            ),
            after.report.as_ref().is_some_and(|w| w.written == asked) && after.exited_0(),
            observed.clone(),
        ));
        facts.push(Fact::new(
            "host-sees-no-kill",
            format!("the host's counters show no kill: {counters}"),
            stats.oom_kill == 0 && stats.peak_bytes.is_none_or(|p| p <= limit),
            observed.clone(),
        ));
    }

    let mut notes = vec![format!("the host read the cgroup's counters: {counters}")];
    if !after.seen {
        notes.push(format!(
            "the probe was killed before it could report what it saw: under {}, the pages it touches just to start after joining (its stack, the pages of nsx it copies on write) did not fit; the host still saw the kill",
            format_memory(limit)
        ));
    }
    notes.push(mode_note);
    let rosetta = cs::rosetta(Controller::Memory, version, &after.log.cgroup);
    notes.push(cs::rosetta_note(&rosetta));

    let rows = vec![
        Row::new(
            cgroup_label,
            path_of(&after.host),
            if after.seen {
                path_of(&after.container)
            } else {
                "(it never looked)".into()
            },
        ),
        Row::new(
            "memory the probe wrote",
            peak_label(&stats, &f),
            written_label(&after, asked),
        ),
        end_row(&after),
    ];
    let extra = json!({
        "limit": limit,
        "asked": asked,
        "status": describe(after.status),
        "measured": measured(&after),
        "cgroup": cs::extra(&cg, &after.log.cgroup, &rosetta),
    });
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "after".into(),
        title: format!(
            "after: the probe writes {} in a cgroup limited to {}",
            format_memory(asked),
            format_memory(limit)
        ),
        actions: after.log.lines,
        rows,
        notes,
        extra,
        host: after.host,
        container: after.container,
    })?;
    cs::sweep(ctx);
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_channel_gives_the_view_and_a_lower_bound() {
        let view = View {
            source: "/proc/self".into(),
            ..View::default()
        };
        let mut bytes = serde_json::to_vec(&view).unwrap();
        bytes.push(b'\n');
        bytes.extend_from_slice(b"...");
        let (v, written) = parse_side(&bytes);
        assert_eq!(v.unwrap().source, "/proc/self");
        assert_eq!(written, 3 * PROGRESS_CHUNK);
        // Killed halfway through the first line: no view, nothing written.
        let (v, written) = parse_side(&bytes[..10]);
        assert!(v.is_none());
        assert_eq!(written, 0);
        assert_eq!(parse_side(b""), (None, 0));
    }

    #[test]
    fn alloc_is_capped_with_the_range_named() {
        assert!(check_options(64 << 20).is_ok());
        assert!(check_options(MAX_ALLOC).is_ok());
        let e = check_options(MAX_ALLOC + 4096).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 1M to 512M"), "{e}");
    }
}
