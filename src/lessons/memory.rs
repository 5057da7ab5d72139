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
//! The probe may die before its report: it runs to its end through
//! [`Measure::probe_to_end`], and what it must say first (its view of itself, then how
//! far it got) goes through the side pipe as it works.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cgroup_steps::{self as cs, format_mib};
use super::engine::{Def, Ended, Env, Judged, Measure, SideWriter};
use super::kit::StepExt;
use super::{Lesson, Rootless};
use crate::cgroup::{Action, Controller, MemoryStats, Version};
use crate::error::{sys, Error, Result};
use crate::limits::{self, format_memory};
use crate::observe::{Parts, View};
use crate::report::{Fact, Row, Val};
use crate::sandbox::{Exit, Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Memory>();

pub struct Memory;

/// The limit the lesson sets unless `--memory` says otherwise.
pub const DEFAULT_LIMIT: u64 = 32 << 20;
/// What the probe allocates and touches unless `--alloc` says otherwise: twice the limit.
pub const DEFAULT_ALLOC: u64 = 64 << 20;
/// The most `--alloc` may ask for: the "before" step allocates it with no lesson limit,
/// on a machine other people use.
pub const MAX_ALLOC: u64 = 512 << 20;

/// The probe reports its progress on the side pipe every this many bytes written.
const PROGRESS_CHUNK: u64 = 64 << 10;

/// The memory lesson's options.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Options {
    /// The limit written into memory.max (v2) or memory.limit_in_bytes (v1), e.g. 32M, 1G
    /// (at least 1M)
    #[arg(long, visible_alias = "limit", value_name = "SIZE", default_value = "32M", value_parser = limits::parse_memory, allow_hyphen_values = true)]
    pub memory: u64,

    /// How much the probe maps and writes, one byte per page, e.g. 64M (1M to 512M)
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = limits::parse_memory, allow_hyphen_values = true)]
    pub alloc: u64,
}

/// What the probe reports once it has written everything (a probe that is killed never
/// does).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wrote {
    /// Its view after writing: its VmRSS holds what it wrote.
    view: View,
    asked: u64,
    /// Bytes of the mapping written to (every page of it, one byte each).
    written: u64,
    page: u64,
}

/// What the host read in the lesson cgroup once the second probe had reported or died.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counters {
    stats: MemoryStats,
    /// The reads, in order (`cat …/memory.failcnt`, …).
    reads: Vec<Action>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    cgroup: cs::Cgroup,
    /// mkdir, the hybrid cgroup2 mount's controllers read, the limit written.
    setup: Vec<Action>,
    /// In nsx's own cgroup, no lesson limit.
    before: Ended<Wrote>,
    /// The probe's PID written into the lesson cgroup's cgroup.procs, before it ran.
    joined: Vec<Action>,
    /// In the lesson cgroup, under the limit (`None` while nsx pauses after the before
    /// step, with --step).
    after: Option<Ended<Wrote, Counters>>,
    /// rmdir, once every observation of the after step was made (empty while nsx pauses
    /// after the after step, the cgroup still there).
    teardown: Vec<Action>,
}

impl Def for Memory {
    const ID: &'static str = "memory";
    const TITLE: &'static str = "Memory limit: over it, the OOM killer";
    const MECHANISM: &'static str = "a memory cgroup: mkdir, write the limit into a file, write the probe's PID into cgroup.procs";
    const MAN: &'static str =
        "cgroups(7); kernel docs admin-guide/cgroup-v2.rst (Memory) and cgroup-v1/memory.rst";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/memory.md");
    const SEES: Parts = Parts::CGROUP.with(Parts::MEMORY);
    /// The facts of a probe that allocates more than the limit (the default). With
    /// `--alloc` at or under the limit the judge decides `within-limit-not-killed` and
    /// `host-sees-no-kill` after the first instead.
    const FACTS: &'static [&'static str] = &[
        "before-allocation-succeeds",
        "oom-killed",
        "killed-at-the-limit",
        "host-sees-the-kill",
        "oom-state-and-count",
    ];
    const WORDS: &'static [&'static str] =
        &["cgroups", "cgroup", "limits", "limit", "mem", "ram", "oom"];
    type Options = Options;
    type Obs = Obs;

    /// Any `--memory` the grammar accepts is fine (a limit too small for the probe to
    /// start is an outcome the lesson explains); `--alloc` is capped.
    fn check(o: &Options) -> Result<()> {
        if o.alloc > MAX_ALLOC {
            return Err(Error::Usage(format!(
                "--alloc {}: the memory lesson allocates at most {} (its first step does so with no lesson limit, on a machine others may use); choose a size from 1M to {}",
                format_memory(o.alloc),
                format_memory(MAX_ALLOC),
                format_memory(MAX_ALLOC)
            )));
        }
        Ok(())
    }

    fn measure(m: &mut Measure, o: &Options) -> Result<Obs> {
        let asked = o.alloc;
        // The cgroup is made first (but joined only in the second step), so that a
        // machine that cannot have one says so before anything runs.
        let (mut cg, cgroup) = cs::open(m, Self::ID, Controller::Memory)?;
        cg.set_memory_max(o.memory)?;
        let setup = cg.take_actions();

        // before: nsx's own cgroup, no lesson limit.
        let before = m.probe_to_end(
            &Spec::default(),
            |_| Ok(()),
            move |i, side| allocate(i, asked, side),
            |_| Ok(()),
        )?;
        let mut obs = Obs {
            cgroup,
            setup,
            before,
            joined: Vec::new(),
            after: None,
            teardown: Vec::new(),
        };
        // The probe is gone (reaped); the cgroup it ran in, nsx's own, is still there.
        if m.pauses() {
            let nsx = std::process::id();
            m.pause(&obs, &[format!("cat /proc/{nsx}/cgroup")])?;
        }

        // after: joined to the lesson cgroup before it runs. Its counters are read while
        // it lives after its report, or once it has died: every observation of this step
        // is made before the cgroup is removed.
        let cg = RefCell::new(cg);
        let joined = RefCell::new(Vec::new());
        let after = m.probe_to_end(
            &Spec::default(),
            |p| {
                let mut cg = cg.borrow_mut();
                // The probe is held until it is told to go: it joins before it writes. (It
                // may still be finishing its own start, a few pages of stack, as it is
                // moved.)
                cg.add_process(p.pid())?;
                let acts = cg.take_actions();
                for a in &acts {
                    p.action(a.to_string());
                }
                joined.borrow_mut().extend(acts);
                Ok(())
            },
            move |i, side| allocate(i, asked, side),
            |_| {
                let mut cg = cg.borrow_mut();
                let stats = cg.memory_stats()?;
                Ok(Counters {
                    stats,
                    reads: cg.take_actions(),
                })
            },
        )?;
        let mut cg = cg.into_inner();
        obs.joined = joined.into_inner();
        obs.after = Some(after);
        // The probe is dead; its cgroup, with the limit and the counters the step shows,
        // is there until nsx removes it.
        if m.pauses() {
            let f = files(obs.cgroup.version);
            let look = cs::look(cg.dir(Controller::Memory), &[f.limit, f.peak, f.events]);
            m.pause(&obs, &look)?;
        }
        cg.remove()?;
        obs.teardown = cg.take_actions();
        cs::sweep(m);
        Ok(obs)
    }

    fn judge(o: &Obs, opts: &Options, _env: &Env) -> Judged {
        let (limit, asked) = (opts.memory, opts.alloc);
        let version = o.cgroup.version;
        let f = files(version);
        let b = &o.before;
        let bw = written(b);
        let b_view = probe_view(b).0;
        let host_rss = b.host.probe.memory.map(|m| m.rss);

        // ---- the before step: all a pause after it shows
        let before_rows = vec![
            Row::probe(
                cs::cgroup_label(Controller::Memory, version),
                "cgroup",
                cs::path_val(&b.host, Controller::Memory, version),
                cs::path_val(&b_view, Controller::Memory, version),
            ),
            rss_row(b, &b_view).key(),
            hwm_row(b, &b_view),
            end_row(b, asked),
        ];
        let before_step = cs::step(
            "before",
            format!(
                "before: the probe writes {} in nsx's own cgroup, with no lesson limit",
                format_memory(asked)
            ),
            actions(&[], b, &[]),
            &b.host,
            &b_view,
            before_rows,
        )
        .takeaway(format!(
            "nothing limits it: the host reads its VmRSS at {} after it wrote {}",
            host_rss.map_or("an unknown size".into(), format_mib),
            format_memory(asked)
        ));

        let Some(a) = &o.after else {
            return Judged {
                steps: vec![before_step],
                ..Judged::default()
            };
        };
        let stats = &a.host_extra.stats;
        let aw = written(a);
        let (a_view, a_seen) = probe_view(a);

        let before_fact = Fact::new(
            "before-allocation-succeeds",
            format!(
                "before, with no lesson cgroup, the probe wrote all {} and {}; the host read its VmRSS at {}",
                format_memory(asked),
                b.exit,
                host_rss.map_or("an unknown size".into(), format_mib)
            ),
            b.inside.as_ref().is_some_and(|w| w.written == asked)
                && exited_0(&b.exit)
                && host_rss.is_some_and(|r| r >= asked),
            json!({ "asked": asked, "exit": b.exit, "written": bw, "host_vm_rss": host_rss }),
        );
        let counters = format!(
            "{} {}, {} {}, {}",
            f.kills,
            stats.oom_kill,
            f.hits,
            stats.limit_hits,
            peak_label(stats, &f)
        );
        let setting = format!("{} = {limit} ({})", f.limit, format_memory(limit));
        let observed = json!({
            "limit": limit,
            "asked": asked,
            "exit": a.exit,
            "written": aw,
            "stats": stats,
        });
        let mut facts = vec![before_fact];
        let killed = killed_by_sigkill(&a.exit) && a.inside.is_none();
        if asked > limit {
            facts.push(Fact::new(
                "oom-killed",
                format!(
                    "with {setting}, the probe writing {} was {}",
                    format_memory(asked),
                    a.exit
                ),
                killed,
                observed.clone(),
            ));
            // Every page written is charged, so the probe cannot have written more than
            // the limit; and the cgroup's usage went up to the limit before the kill.
            let near = |p: u64| p <= limit && p + limit / 8 >= limit;
            facts.push(Fact::new(
                "killed-at-the-limit",
                format!(
                    "it died at the limit: it had written at least {} (never more than the {} limit), and the host read {}",
                    format_mib(aw),
                    format_memory(limit),
                    peak_label(stats, &f),
                ),
                a.inside.is_none() && aw <= limit && stats.peak_bytes.is_none_or(near),
                observed.clone(),
            ));
            facts.push(Fact::new(
                "host-sees-the-kill",
                format!("the host reads the kill in the cgroup's files: {counters}"),
                stats.oom_kill >= 1,
                observed.clone(),
            ));
            facts.push(oom_state_fact(version, stats));
        } else {
            facts.push(Fact::new(
                "within-limit-not-killed",
                format!(
                    "with {setting}, the probe writing {} (no more than the limit) {}",
                    format_memory(asked),
                    match &a.inside {
                        Some(_) => format!("wrote all of it and {}", a.exit),
                        None => format!(
                            "was {} after writing at least {}: every page it touches after joining counts, not only its allocation (its stack, the pages of nsx it copies on write, the buffers of its report), and {} leaves no room for them",
                            a.exit,
                            format_mib(aw),
                            format_memory(limit)
                        ),
                    }
                ),
                a.inside.as_ref().is_some_and(|w| w.written == asked) && exited_0(&a.exit),
                observed.clone(),
            ));
            facts.push(Fact::new(
                "host-sees-no-kill",
                format!("the host's counters show no kill: {counters}"),
                stats.oom_kill == 0 && stats.peak_bytes.is_none_or(|p| p <= limit),
                observed,
            ));
        }

        // ---- the after step
        let mut after_rows = vec![Row::probe(
            cs::cgroup_label(Controller::Memory, version),
            "cgroup",
            cs::path_val(&a.host, Controller::Memory, version),
            if a_seen {
                cs::path_val(&a_view, Controller::Memory, version)
            } else {
                Val::None("it never looked".into())
            },
        )];
        if a.inside.is_some() {
            after_rows.push(rss_row(a, &a_view));
        }
        let peak = match stats.peak_bytes {
            Some(p) => Val::Bytes(p),
            None => Val::None("memory.peak needs Linux 5.19".into()),
        };
        after_rows.extend([
            Row::probe("peak charge · written", f.peak, peak, Val::Bytes(aw)).apart(
                "the cgroup's highest charge beside the bytes the probe had written when it ended",
            ),
            Row::probe(
                "times the limit was hit",
                f.hits,
                Val::Count(stats.limit_hits),
                Val::None("the probe cannot count it".into()),
            ),
            {
                let r = Row::probe(
                    "OOM kills",
                    f.kills,
                    Val::Num(stats.oom_kill as i64),
                    Val::None("a killed probe reports nothing".into()),
                );
                if asked > limit {
                    r.key()
                } else {
                    r
                }
            },
        ]);
        match version {
            Version::V1 => after_rows.push(Row::probe(
                "out of memory now (0/1)",
                "memory.oom_control under_oom",
                Val::Num(i64::from(stats.under_oom.unwrap_or(false))),
                Val::None("a state, read after the end".into()),
            )),
            Version::V2 => after_rows.push(Row::probe(
                "times out of memory",
                "memory.events oom",
                match stats.oom {
                    Some(n) => Val::Num(n as i64),
                    None => Val::None("not read".into()),
                },
                Val::None("the probe cannot count it".into()),
            )),
        }
        after_rows.push(end_row(a, asked));

        let all: Vec<Action> = [&o.setup[..], &o.joined, &a.host_extra.reads].concat();
        let rosetta = cs::rosetta(Controller::Memory, version, &all);
        let mut after_step = cs::step(
            "after",
            format!(
                "after: the probe writes {} in a cgroup limited to {}",
                format_memory(asked),
                format_memory(limit)
            ),
            actions(&o.setup, a, &a.host_extra.reads),
            &a.host,
            &a_view,
            after_rows,
        );
        if !a.host_after {
            after_step = after_step.note(format!(
                "the probe died before it reported: the host column is what the host read of /proc/{} just before the probe ran; the cgroup's files, read after its death, tell the rest",
                a.pid
            ));
        }
        if !a_seen {
            after_step = after_step.note(format!(
                "the probe was killed before it could report what it saw: under {}, the pages it touches just to start after joining (its stack, the pages of nsx it copies on write) did not fit; the host still saw the kill",
                format_memory(limit)
            ));
        }
        let after_step = after_step
            .note(cs::mode_note(&o.cgroup, Controller::Memory))
            .note(cs::rosetta_note(&rosetta))
            .extra(cs::extra(&o.cgroup, &all, &rosetta))
            .takeaway(if killed {
                format!(
                    "the kernel killed the probe at {} of its {}: the host read it in {} ({})",
                    format_mib(stats.peak_bytes.unwrap_or(aw)),
                    format_memory(asked),
                    f.kills,
                    stats.oom_kill
                )
            } else {
                format!(
                    "under {} the probe {}; the host's {} reads {}",
                    format_memory(limit),
                    a.exit,
                    f.kills,
                    stats.oom_kill
                )
            });
        Judged {
            steps: vec![before_step, after_step],
            facts,
            notes: cs::teardown_note(&o.teardown).into_iter().collect(),
            takeaway: Some(if killed {
                format!(
                    "the same {} that ran freely in nsx's own cgroup was killed by SIGKILL in a cgroup limited to {}: a limit is a number in a file, enforced by the OOM killer",
                    format_memory(asked),
                    format_memory(limit)
                )
            } else {
                format!(
                    "a probe writing {} under a limit of {} {}",
                    format_memory(asked),
                    format_memory(limit),
                    a.exit
                )
            }),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn after(o: &mut Obs) -> &mut Ended<Wrote, Counters> {
            o.after.as_mut().expect("a recording has its after step")
        }
        vec![
            F {
                fact: "before-allocation-succeeds",
                what: "the unlimited probe was killed",
                change: |o, _| {
                    o.before.exit = Exit::Killed {
                        signal: "SIGKILL".into(),
                    }
                },
            },
            F {
                fact: "before-allocation-succeeds",
                what: "the host read a VmRSS under what was written",
                change: |o, _| {
                    if let Some(m) = o.before.host.probe.memory.as_mut() {
                        m.rss = 1 << 20;
                    }
                },
            },
            F {
                fact: "oom-killed",
                what: "the limited probe exited normally",
                change: |o, _| after(o).exit = Exit::Exited { code: 0 },
            },
            F {
                fact: "killed-at-the-limit",
                what: "the probe said it wrote far past the limit",
                change: |o, _| after(o).said.push_str(&".".repeat(4096)),
            },
            F {
                fact: "killed-at-the-limit",
                what: "the cgroup's peak is half the limit",
                change: |o, _| {
                    if let Some(p) = after(o).host_extra.stats.peak_bytes.as_mut() {
                        *p /= 4;
                    }
                },
            },
            F {
                fact: "host-sees-the-kill",
                what: "the cgroup counted no kill",
                change: |o, _| after(o).host_extra.stats.oom_kill = 0,
            },
            F {
                fact: "oom-state-and-count",
                what: "v1 under_oom still 1 after the kill, v2 memory.events oom 0",
                change: |o, _| {
                    let s = &mut after(o).host_extra.stats;
                    if s.under_oom.is_some() {
                        s.under_oom = Some(true);
                    }
                    if s.oom.is_some() {
                        s.oom = Some(0);
                    }
                },
            },
        ]
    }
}

/// The probe: look at itself (and say so on the side pipe), map `asked` bytes, write one
/// byte per page, reporting progress every [`PROGRESS_CHUNK`], then look again.
fn allocate(inside: &mut Inside, asked: u64, mut side: SideWriter) -> Result<Wrote> {
    side.send_json(&inside.observe()?);
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
        "(the probe) mmap {} of anonymous memory, then write one byte into each of its {pages} pages of {page} bytes",
        format_memory(asked)
    ));
    // The mapping stays until the probe exits, so the host can read its VmRSS meanwhile.
    Ok(Wrote {
        view: inside.observe()?,
        asked,
        written: asked,
        page,
    })
}

/// Parses what the probe said on its side pipe: its view on the first line, then one `.`
/// per [`PROGRESS_CHUNK`] written.
fn parse_side(said: &str) -> (Option<View>, u64) {
    let (first, rest) = said.split_once('\n').unwrap_or((said, ""));
    let view = serde_json::from_str::<View>(first).ok();
    let dots = rest.bytes().filter(|b| *b == b'.').count() as u64;
    (view, dots * PROGRESS_CHUNK)
}

/// Bytes written: the report's figure, or the side pipe's lower bound.
fn written(run: &Ended<Wrote, impl Sized>) -> u64 {
    match &run.inside {
        Some(w) => w.written,
        None => parse_side(&run.said).1,
    }
}

/// The probe's own view: from its report, else from its side pipe (taken before it
/// wrote), else nothing; and whether it looked at all.
fn probe_view(run: &Ended<Wrote, impl Sized>) -> (View, bool) {
    match (&run.inside, parse_side(&run.said).0) {
        (Some(w), _) => (w.view.clone(), true),
        (None, Some(v)) => (v, true),
        (None, None) => (
            cs::unseen("the probe was killed before it could look at itself"),
            false,
        ),
    }
}

fn exited_0(e: &Exit) -> bool {
    *e == Exit::Exited { code: 0 }
}

fn killed_by_sigkill(e: &Exit) -> bool {
    matches!(e, Exit::Killed { signal } if signal == "SIGKILL")
}

/// status VmRSS of the probe, read both ways (while it held its memory).
fn rss_row(run: &Ended<Wrote, impl Sized>, inside: &View) -> Row {
    let rss = |v: &View| match v.probe.memory {
        Some(m) => Val::Bytes(m.rss),
        None => Val::None("not read".into()),
    };
    Row::probe(
        "resident memory",
        "status VmRSS",
        rss(&run.host),
        rss(inside),
    )
    .drift_if(
        true,
        "read at two moments: the probe's report takes a few pages of its own",
    )
}

/// status VmHWM: the highest resident size so far.
fn hwm_row(run: &Ended<Wrote, impl Sized>, inside: &View) -> Row {
    let hwm = |v: &View| match v.probe.memory {
        Some(m) => Val::Bytes(m.hwm),
        None => Val::None("not read".into()),
    };
    Row::probe("its highest", "status VmHWM", hwm(&run.host), hwm(inside))
        .drift_if(true, "read at two moments")
}

/// How the probe ended: the host's wait status beside the probe's last word.
fn end_row(run: &Ended<Wrote, impl Sized>, asked: u64) -> Row {
    let inside = match &run.inside {
        Some(w) => format!(
            "reported: wrote all {} ({} pages)",
            format_memory(w.asked),
            w.asked.div_ceil(w.page)
        ),
        None if parse_side(&run.said).0.is_some() => format!(
            "no report: it died while writing, after at least {} of {}",
            format_mib(written(run)),
            format_memory(asked)
        ),
        None => "no report: it died before it could look".to_string(),
    };
    Row::probe(
        "how it ended",
        "waitpid(2) · report",
        Val::Text(run.exit.to_string()),
        Val::Text(inside),
    )
    .apart("the host's wait status beside what the probe itself said last")
}

/// The step's actions in the order they happened: the cgroup's setup, the probe's clone
/// and join, the probe's own work, the host's reads, the cgroup's removal.
/// (The join is among the probe's actions already, where it happened.)
fn actions(setup: &[Action], run: &Ended<Wrote, impl Sized>, reads: &[Action]) -> Vec<String> {
    let mut lines = cs::shell(setup);
    lines.extend(run.actions.iter().cloned());
    if run.inside.is_none() && parse_side(&run.said).0.is_some() {
        lines.push(
            "(the probe) mmap anonymous memory, then write one byte into each page, telling its progress on a side pipe"
                .to_string(),
        );
    }
    lines.extend(cs::shell(reads));
    lines
}

/// File names for the rows and sentences about the counters, per version.
struct Files {
    peak: &'static str,
    hits: &'static str,
    kills: &'static str,
    limit: &'static str,
    /// The file that counts the kills, whole.
    events: &'static str,
}

fn files(version: Version) -> Files {
    match version {
        Version::V1 => Files {
            peak: "memory.max_usage_in_bytes",
            hits: "memory.failcnt",
            kills: "memory.oom_control oom_kill",
            limit: "memory.limit_in_bytes",
            events: "memory.oom_control",
        },
        Version::V2 => Files {
            peak: "memory.peak",
            hits: "memory.events max",
            kills: "memory.events oom_kill",
            limit: "memory.max",
            events: "memory.events",
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

/// `oom-state-and-count`: v1's under_oom is a state, back to 0 once the kill made room
/// (while oom_kill counted the kill); v2's memory.events oom is a count.
fn oom_state_fact(version: Version, s: &MemoryStats) -> Fact {
    let observed = json!({ "under_oom": s.under_oom, "oom": s.oom, "oom_kill": s.oom_kill });
    match version {
        Version::V1 => Fact::new(
            "oom-state-and-count",
            format!(
                "after the kill memory.oom_control reads under_oom {} beside oom_kill {}: under_oom is a state (out of memory right now), not a count; v2 has no such state, and v1 no count of OOM events (v2's memory.events oom)",
                u8::from(s.under_oom.unwrap_or(true)),
                s.oom_kill
            ),
            s.under_oom == Some(false) && s.oom_kill >= 1,
            observed,
        ),
        Version::V2 => Fact::new(
            "oom-state-and-count",
            format!(
                "memory.events oom counted {}: the times the cgroup reached its limit with nothing left to reclaim, a count v1 does not keep (its memory.oom_control under_oom only says whether it is out of memory now)",
                s.oom.map_or("nothing".into(), |n| n.to_string())
            ),
            s.oom.is_some_and(|n| n >= 1) && s.under_oom.is_none(),
            observed,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lessons::fixture_tests::paused_runs_show_the_whole_runs_steps;

    #[test]
    fn a_run_paused_at_each_step_shows_the_steps_the_whole_run_shows() {
        paused_runs_show_the_whole_runs_steps::<Memory>(|o| {
            let mut before = o.clone();
            (before.joined, before.after, before.teardown) = (Vec::new(), None, Vec::new());
            let mut after = o.clone();
            after.teardown.clear();
            vec![(before, 1), (after, 2)]
        });
        let (o, opts, env) = within_limit();
        removal_said_after_the_steps(&Memory::judge(&o, &opts, &env));
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
    fn the_side_channel_gives_the_view_and_a_lower_bound() {
        let view = View {
            source: "/proc/self".into(),
            ..View::default()
        };
        let mut text = serde_json::to_string(&view).unwrap();
        text.push('\n');
        text.push_str("...");
        let (v, written) = parse_side(&text);
        assert_eq!(v.unwrap().source, "/proc/self");
        assert_eq!(written, 3 * PROGRESS_CHUNK);
        // Killed halfway through the first line: no view, nothing written.
        let (v, written) = parse_side(&text[..10]);
        assert!(v.is_none());
        assert_eq!(written, 0);
        assert_eq!(parse_side(""), (None, 0));
    }

    /// The hybrid recording turned into a run that allocated 16M under the 32M limit and
    /// survived: the path the judge takes when `--alloc` is at most the limit.
    fn within_limit() -> (Obs, Options, Env) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/memory.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        let mut o: Obs = serde_json::from_value(rec.observations).unwrap();
        let opts = Options {
            memory: DEFAULT_LIMIT,
            alloc: 16 << 20,
        };
        let mut report = o.before.inside.clone().unwrap();
        (report.asked, report.written) = (opts.alloc, opts.alloc);
        o.before.inside = Some(report.clone());
        let after = o.after.as_mut().unwrap();
        after.inside = Some(report);
        after.exit = Exit::Exited { code: 0 };
        let stats = &mut after.host_extra.stats;
        (stats.oom_kill, stats.peak_bytes) = (0, Some(17 << 20));
        (o, opts, rec.env)
    }

    #[test]
    fn within_the_limit_the_probe_survives_and_each_fact_can_fail() {
        let judge = |o: &Obs, opts: &Options, env: &Env| {
            let j = Memory::judge(o, opts, env);
            j.facts
                .into_iter()
                .map(|f| (f.id.clone(), f.holds))
                .collect::<Vec<_>>()
        };
        let (o, opts, env) = within_limit();
        assert_eq!(
            judge(&o, &opts, &env),
            [
                ("before-allocation-succeeds".to_string(), true),
                ("within-limit-not-killed".to_string(), true),
                ("host-sees-no-kill".to_string(), true),
            ]
        );
        let mut killed = o.clone();
        killed.after.as_mut().unwrap().inside = None;
        killed.after.as_mut().unwrap().exit = Exit::Killed {
            signal: "SIGKILL".into(),
        };
        assert!(!judge(&killed, &opts, &env)[1].1);
        let mut counted = o.clone();
        counted.after.as_mut().unwrap().host_extra.stats.oom_kill = 1;
        assert!(!judge(&counted, &opts, &env)[2].1);
        let mut over = o;
        over.after.as_mut().unwrap().host_extra.stats.peak_bytes = Some(DEFAULT_LIMIT + 4096);
        assert!(!judge(&over, &opts, &env)[2].1);
    }

    #[test]
    fn alloc_is_capped_with_the_range_named() {
        let o = |alloc| Options {
            memory: DEFAULT_LIMIT,
            alloc,
        };
        assert!(Memory::check(&o(64 << 20)).is_ok());
        assert!(Memory::check(&o(MAX_ALLOC)).is_ok());
        let e = Memory::check(&o(MAX_ALLOC + 4096)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 1M to 512M"), "{e}");
    }
}
