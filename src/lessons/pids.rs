//! pids: a pids cgroup caps how many tasks it may hold; past the cap, fork(2) fails.
//!
//! Kernel docs cgroup-v1/pids.rst and cgroup-v2.rst (PID): pids.max is the number of
//! tasks (processes and threads) the cgroup may hold, the ones already in it included.
//! A fork or clone that would go over it fails with EAGAIN, and pids.events `max` counts
//! the refusals. The probe forks children that block on a pipe, so they stay counted,
//! until fork fails, and reports how many it got and the errno.
//!
//! The probe runs as PID 1 of a new PID namespace (pid_namespaces(7)): when PID 1 exits,
//! the kernel kills every other process of its namespace, so all the children die with
//! the probe even if it is killed itself, and the kernel has them reaped before the
//! probe's own exit completes. The probe runs to its end ([`Measure::probe_to_end`]), and
//! the host looks for the children the moment waitpid(2) returned.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cgroup_steps as cs;
use super::engine::{Def, Ended, Env, Judged, Measure};
use super::kit::StepExt;
use super::{Lesson, Rootless};
use crate::cgroup::{Action, Controller, PidsStats};
use crate::error::{Context, Error, Result};
use crate::limits;
use crate::observe::{self, Parts, View};
use crate::report::{Fact, Row, Val};
use crate::sandbox::{raw_clone, Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Pids>();

pub struct Pids;

/// pids.max unless `--pids` says otherwise.
pub const DEFAULT_PIDS: u64 = 8;
/// The largest `--pids` the lesson takes: the "before" step forks this many (plus
/// [`BEYOND`]) with no lesson limit.
pub const MAX_PIDS: u64 = 64;
/// Without a limit the probe stops after pids.max + BEYOND forks: enough to show it could
/// go past the limit, never a fork bomb.
pub const BEYOND: u64 = 4;

/// The pids lesson's options.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Options {
    /// pids.max, the number of tasks the cgroup may hold, the probe included, e.g. 8
    /// (1 to 64)
    #[arg(long, value_name = "N", default_value = "8", value_parser = limits::parse_pids, allow_hyphen_values = true)]
    pub pids: u64,
}

/// What the probe reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Forked {
    /// Its view once it stopped forking: its children are in it.
    view: View,
    /// Tasks the probe itself had before forking (Threads: in its /proc/self/status).
    threads: u64,
    /// Children forked successfully (each blocked on a pipe, so still counted).
    ok: u64,
    /// The errno of the first fork that failed, if one did.
    errno: Option<String>,
    errno_text: Option<String>,
    /// How many forks the probe would try at most.
    cap: u64,
}

/// What the host read in the lesson cgroup while the probe's children lived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counters {
    stats: PidsStats,
    reads: Vec<Action>,
}

/// One probe run, and which of its children the host still found once it was reaped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunObs<H> {
    run: Ended<Forked, H>,
    /// Of the children the host saw while the probe lived, those /proc still listed the
    /// moment waitpid(2) for the probe returned.
    left: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    cgroup: cs::Cgroup,
    /// mkdir, the hybrid cgroup2 mount's controllers read, pids.max written.
    setup: Vec<Action>,
    /// In nsx's own cgroup, no lesson limit.
    before: RunObs<()>,
    /// In the lesson cgroup, under pids.max (`None` while nsx pauses after the before
    /// step, with --step).
    after: Option<RunObs<Counters>>,
    /// rmdir, once every observation of the after step was made (empty while nsx pauses
    /// after the after step, the cgroup still there).
    teardown: Vec<Action>,
}

impl Def for Pids {
    const ID: &'static str = "pids";
    const TITLE: &'static str = "Process limit: fork fails at pids.max";
    const MECHANISM: &'static str = "a pids cgroup: mkdir, write pids.max, write the probe's PID into cgroup.procs; the probe is PID 1 of a new PID namespace";
    const MAN: &'static str = "cgroups(7); kernel docs admin-guide/cgroup-v1/pids.rst and cgroup-v2.rst (PID); fork(2); pid_namespaces(7)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/pids.md");
    const SEES: Parts = Parts::CGROUP.with(Parts::TASKS);
    const FACTS: &'static [&'static str] = &[
        "before-forks-pass-the-limit",
        "fork-fails-with-eagain",
        "fails-at-the-limit-not-before",
        "host-sees-the-limit",
        "children-die-with-pid-1",
    ];
    const WORDS: &'static [&'static str] =
        &["cgroups", "cgroup", "limits", "limit", "fork", "forkbomb"];
    type Options = Options;
    type Obs = Obs;

    fn check(o: &Options) -> Result<()> {
        if o.pids > MAX_PIDS {
            return Err(Error::Usage(format!(
                "--pids {}: the pids lesson takes a limit from 1 to {MAX_PIDS}: its first step forks that many processes and {BEYOND} more with no lesson limit, on a machine others may use",
                o.pids
            )));
        }
        Ok(())
    }

    fn measure(m: &mut Measure, o: &Options) -> Result<Obs> {
        let cap = o.pids + BEYOND;
        let (mut cg, cgroup) = cs::open(m, Self::ID, Controller::Pids)?;
        cg.set_pids_max(o.pids)?;
        let setup = cg.take_actions();
        let spec = Spec::new(CloneFlags::CLONE_NEWPID);

        // before: nsx's own cgroup, no lesson limit.
        let run = m.probe_to_end(
            &spec,
            |_| Ok(()),
            move |i, _side| fork_until_refused(i, cap),
            |_| Ok(()),
        )?;
        let before = RunObs {
            left: left_after(&run),
            run,
        };
        let mut obs = Obs {
            cgroup,
            setup,
            before,
            after: None,
            teardown: Vec::new(),
        };
        // The probe and its children are gone; the cgroup they ran in, nsx's own, is
        // still there.
        if m.pauses() {
            let nsx = std::process::id();
            m.pause(&obs, &[format!("cat /proc/{nsx}/cgroup")])?;
        }

        // after: joined to the lesson cgroup before its first fork; the host reads the
        // cgroup's files while the children live, before the cgroup is removed.
        let cg = RefCell::new(cg);
        let run = m.probe_to_end(
            &spec,
            |p| {
                let mut cg = cg.borrow_mut();
                cg.add_process(p.pid())?;
                for a in cg.take_actions() {
                    p.action(a.to_string());
                }
                Ok(())
            },
            move |i, _side| fork_until_refused(i, cap),
            |_| {
                let mut cg = cg.borrow_mut();
                let stats = cg.pids_stats()?;
                Ok(Counters {
                    stats,
                    reads: cg.take_actions(),
                })
            },
        )?;
        obs.after = Some(RunObs {
            left: left_after(&run),
            run,
        });
        let mut cg = cg.into_inner();
        // The probe and its children are gone (pids.current is back to 0); the cgroup,
        // with its limit and its count of refused forks, is there until nsx removes it.
        if m.pauses() {
            let look = cs::look(
                cg.dir(Controller::Pids),
                &["pids.max", "pids.events", "pids.current"],
            );
            m.pause(&obs, &look)?;
        }
        cg.remove()?;
        obs.teardown = cg.take_actions();
        cs::sweep(m);
        Ok(obs)
    }

    fn judge(o: &Obs, opts: &Options, _env: &Env) -> Judged {
        let max = opts.pids;
        let cap = max + BEYOND;
        let version = o.cgroup.version;
        let b = &o.before;
        let bf = forked(&b.run);
        let b_children = children(&b.run.host);
        let label = cs::cgroup_label(Controller::Pids, version);

        // ---- the before step: all a pause after it shows
        let before_step = cs::step(
            "before",
            format!(
                "before: the probe, PID 1 of a new PID namespace, forks up to {cap} children in nsx's own cgroup"
            ),
            b.run.actions.clone(),
            &b.run.host,
            &bf.view,
            vec![
                Row::probe(
                    label.clone(),
                    "cgroup",
                    cs::path_val(&b.run.host, Controller::Pids, version),
                    cs::path_val(&bf.view, Controller::Pids, version),
                ),
                children_row(&b.run, &bf).key(),
                threads_row(&b.run, &bf),
                end_row(&b.run, &bf),
            ],
        )
        .note(format!(
            "the probe (PID 1 of its namespace) {}; the moment waitpid() returned, /proc listed {} of its {} children",
            b.run.exit,
            b.left.len(),
            b_children.len()
        ))
        .takeaway(format!(
            "nothing limits it: {} forks, all succeeded",
            bf.ok
        ));

        let Some(a) = &o.after else {
            return Judged {
                steps: vec![before_step],
                ..Judged::default()
            };
        };
        let af = forked(&a.run);
        let stats = &a.run.host_extra.stats;
        let a_children = children(&a.run.host);

        let before_fact = Fact::new(
            "before-forks-pass-the-limit",
            format!(
                "before, with no lesson limit, the probe forked {} children, all it tried (nsx stops at pids.max + {BEYOND} = {cap}), and the host found {} of them: past the limit of {max} it is about to get",
                bf.ok,
                b_children.len()
            ),
            bf.ok == cap && bf.errno.is_none() && b_children.len() as u64 == cap,
            json!({ "pids_max": max, "cap": cap, "ok": bf.ok, "errno": bf.errno, "children": b_children }),
        );
        let expected = max.saturating_sub(af.threads);
        let counters = format!(
            "pids.max {}, pids.current {}, pids.events max {}{}",
            stats.max.map_or("max".into(), |m| m.to_string()),
            stats.current,
            stats.max_events,
            stats
                .peak
                .map(|p| format!(", pids.peak {p}"))
                .unwrap_or_default()
        );
        let observed = json!({
            "pids_max": max,
            "threads": af.threads,
            "ok": af.ok,
            "errno": af.errno,
            "stats": stats,
            "children": a_children,
            "left": a.left,
        });
        let facts = vec![
            before_fact,
            Fact::new(
                "fork-fails-with-eagain",
                format!(
                    "with pids.max = {max}, fork number {} failed with {} ({})",
                    af.ok + 1,
                    af.errno.as_deref().unwrap_or("no error"),
                    af.errno_text.as_deref().unwrap_or("it did not fail")
                ),
                af.errno.as_deref() == Some("EAGAIN"),
                observed.clone(),
            ),
            Fact::new(
                "fails-at-the-limit-not-before",
                format!(
                    "it failed at the limit, not before: {} fork(s) succeeded, and with the probe's own {} task(s) that makes {} = pids.max (pids.max counts every task in the cgroup, the probe included)",
                    af.ok,
                    af.threads,
                    af.ok + af.threads
                ),
                af.errno.is_some() && af.ok == expected,
                observed.clone(),
            ),
            Fact::new(
                "host-sees-the-limit",
                format!("the host reads the cgroup's files while the children live: {counters}"),
                stats.current == max && stats.max == Some(max) && stats.max_events >= 1,
                observed.clone(),
            ),
            Fact::new(
                "children-die-with-pid-1",
                format!(
                    "none of its {} children outlived the probe: the moment waitpid() returned its status ({}), /proc listed {} of them, because a PID namespace ends with its PID 1 and the kernel reaps the rest before PID 1's exit completes",
                    a_children.len(),
                    a.run.exit,
                    a.left.len()
                ),
                a.left.is_empty() && a_children.len() as u64 == af.ok,
                observed,
            ),
        ];

        // ---- the after step
        let mut rows = vec![
            Row::probe(
                label,
                "cgroup",
                cs::path_val(&a.run.host, Controller::Pids, version),
                cs::path_val(&af.view, Controller::Pids, version),
            ),
            // The cgroup's count beside the probe's own: itself and the children its /proc
            // lists.
            Row::probe(
                "tasks: the probe and its children",
                "pids.current",
                Val::Num(stats.current as i64),
                Val::Num((af.threads + children(&af.view).len() as u64) as i64),
            )
            .key(),
            Row::probe(
                "limit",
                "pids.max",
                stats.max.map_or(Val::text("max"), |m| Val::Num(m as i64)),
                Val::None("not read inside".into()),
            ),
            Row::probe(
                "forks refused",
                "pids.events max",
                Val::Num(stats.max_events as i64),
                Val::Text(match &af.errno {
                    Some(e) => format!("fork {}: {e}", af.ok + 1),
                    None => "none".to_string(),
                }),
            )
            .apart("the cgroup's count of refusals beside the error the probe's fork got"),
        ];
        if let Some(peak) = stats.peak {
            rows.push(Row::probe(
                "most tasks at once",
                "pids.peak",
                Val::Num(peak as i64),
                Val::None("not read inside".into()),
            ));
        }
        rows.push(children_row(&a.run, &af));
        rows.push(end_row(&a.run, &af));
        let mut after_actions = cs::shell(&o.setup);
        after_actions.extend(a.run.actions.iter().cloned());
        after_actions.extend(cs::shell(&a.run.host_extra.reads));
        let all: Vec<Action> = [&o.setup[..], &a.run.host_extra.reads].concat();
        let rosetta = cs::rosetta(Controller::Pids, version, &all);
        let mut after_step = cs::step(
            "after",
            format!("after: the probe forks in a cgroup with pids.max = {max}"),
            after_actions,
            &a.run.host,
            &af.view,
            rows,
        )
        .note(format!("the host read the cgroup's files: {counters}"))
        .note(format!(
            "the probe (PID 1 of its namespace) {}; the moment waitpid() returned, /proc listed {} of its {} children",
            a.run.exit,
            a.left.len(),
            a_children.len()
        ));
        if af.ok == 0 {
            after_step = after_step.note(format!(
                "with pids.max = {max} the probe alone fills the cgroup: it could not fork at all"
            ));
        }
        let after_step = after_step
            .note(cs::mode_note(&o.cgroup, Controller::Pids))
            .note(cs::rosetta_note(&rosetta))
            .extra(cs::extra(&o.cgroup, &all, &rosetta))
            .takeaway(format!(
                "fork {} failed with {}: pids.current was {} = pids.max",
                af.ok + 1,
                af.errno.as_deref().unwrap_or("nothing"),
                stats.current
            ));
        Judged {
            steps: vec![before_step, after_step],
            facts,
            notes: cs::teardown_note(&o.teardown).into_iter().collect(),
            takeaway: Some(format!(
                "{} forks went through with no limit; under pids.max = {max} the probe got {} children before fork failed with {}",
                bf.ok,
                af.ok,
                af.errno.as_deref().unwrap_or("nothing")
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn after(o: &mut Obs) -> &mut RunObs<Counters> {
            o.after.as_mut().expect("a recording has its after step")
        }
        fn report<H>(r: &mut RunObs<H>) -> &mut Forked {
            r.run.inside.get_or_insert_with(Forked::default)
        }
        vec![
            F {
                fact: "before-forks-pass-the-limit",
                what: "one fork fewer without a limit",
                change: |o, _| report(&mut o.before).ok -= 1,
            },
            F {
                fact: "before-forks-pass-the-limit",
                what: "the host found one child fewer",
                change: |o, _| {
                    if let Some(t) = o.before.run.host.probe.tasks.as_mut() {
                        t.children.pop();
                    }
                },
            },
            F {
                fact: "fork-fails-with-eagain",
                what: "fork failed with ENOMEM",
                change: |o, _| report(after(o)).errno = Some("ENOMEM".into()),
            },
            F {
                fact: "fails-at-the-limit-not-before",
                what: "fork failed one task early",
                change: |o, _| report(after(o)).ok -= 1,
            },
            F {
                fact: "host-sees-the-limit",
                what: "pids.current one under pids.max",
                change: |o, _| after(o).run.host_extra.stats.current -= 1,
            },
            F {
                fact: "host-sees-the-limit",
                what: "pids.events counted no refusal",
                change: |o, _| after(o).run.host_extra.stats.max_events = 0,
            },
            F {
                fact: "children-die-with-pid-1",
                what: "a child was still listed after waitpid returned",
                change: |o, _| {
                    let first = children(&after(o).run.host).first().copied().unwrap_or(2);
                    after(o).left.push(first);
                },
            },
        ]
    }
}

/// Blocks until the probe's end of `pipe` closes (the probe exited), then exits. Runs in
/// a forked child: only close, read and _exit, all async-signal-safe (signal-safety(7)).
fn child_wait(read_end: &OwnedFd) -> ! {
    let fd = read_end.as_raw_fd();
    // close_range(2): drop every inherited descriptor but the pipe. The child must not
    // keep nsx's pipes (the probe's report pipe would never see EOF) or its stdout.
    // SAFETY: closing descriptors this process owns; fd stays open.
    unsafe {
        if fd > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (fd - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32);
    }
    let mut byte = [0u8; 1];
    // SAFETY: reading into a local buffer from a descriptor we own.
    unsafe {
        while libc::read(fd, byte.as_mut_ptr().cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        libc::_exit(0)
    }
}

/// The probe: fork until fork fails or `cap` children exist; the children block on a
/// pipe whose write end only the probe holds. It looks at itself before (its threads)
/// and after (its children).
fn fork_until_refused(inside: &mut Inside, cap: u64) -> Result<Forked> {
    let threads = inside.observe()?.probe.tasks.map_or(1, |t| t.threads);
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "the children's pipe")?;
    let mut ok = 0;
    let mut failed: Option<Errno> = None;
    while ok < cap {
        // fork(2) (a clone without new namespaces): the pids controller refuses it with
        // EAGAIN when the cgroup already holds pids.max tasks (cgroup-v1/pids.rst).
        match raw_clone(CloneFlags::empty()) {
            Ok(None) => {
                drop(write_end);
                child_wait(&read_end);
            }
            Ok(Some(_)) => ok += 1,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // The write end stays open until the probe exits: the children stay blocked (and
    // counted) while the host looks.
    std::mem::forget(write_end);
    inside.action(match failed {
        Some(e) => format!(
            "(the probe) fork() {} times: {ok} children, each blocked reading a pipe, then fork() failed with {e:?}",
            ok + 1,
        ),
        None => format!(
            "(the probe) fork() {ok} times: {ok} children, each blocked reading a pipe; it stopped there (nsx's cap)"
        ),
    });
    Ok(Forked {
        view: inside.observe()?,
        threads,
        ok,
        errno: failed.map(|e| format!("{e:?}")),
        errno_text: failed.map(|e| e.desc().to_string()),
        cap,
    })
}

/// Of the children the host saw while the probe lived, those /proc still lists now that
/// waitpid(2) for the probe has returned.
fn left_after<H>(run: &Ended<Forked, H>) -> Vec<i32> {
    observe::still_listed(Path::new("/proc"), &children(&run.host))
}

/// The probe's report, or an empty one (every fact then fails) if it made none.
fn forked<H>(run: &Ended<Forked, H>) -> Forked {
    run.inside.clone().unwrap_or_default()
}

/// The children a view lists for the probe.
fn children(view: &View) -> Vec<i32> {
    view.probe
        .tasks
        .as_ref()
        .map(|t| t.children.clone())
        .unwrap_or_default()
}

/// A view's children as a row value: how many, and the lowest PIDs.
fn children_val(view: &View) -> Val {
    match &view.probe.tasks {
        Some(t) => Val::Listed {
            count: t.children.len() as u64,
            first: t.children.iter().copied().take(8).collect(),
        },
        None => Val::None("not read".into()),
    }
}

/// The probe's children, found both ways: every /proc/<n>/stat naming it as parent.
fn children_row<H>(run: &Ended<Forked, H>, f: &Forked) -> Row {
    Row::probe(
        "its children",
        "*/stat ppid",
        children_val(&run.host),
        children_val(&f.view),
    )
}

/// Threads: of status, both ways.
fn threads_row<H>(run: &Ended<Forked, H>, f: &Forked) -> Row {
    let threads = |v: &View| match &v.probe.tasks {
        Some(t) => Val::Num(t.threads as i64),
        None => Val::None("not read".into()),
    };
    Row::probe(
        "its threads",
        "status Threads",
        threads(&run.host),
        threads(&f.view),
    )
}

/// How PID 1 ended, beside how its forks went.
fn end_row<H>(run: &Ended<Forked, H>, f: &Forked) -> Row {
    let forks = match &f.errno {
        Some(e) => format!("{} forks, then {e}", f.ok),
        None => format!("{} forks, all succeeded", f.ok),
    };
    Row::probe(
        "how it ended",
        "waitpid(2) · report",
        Val::Text(run.exit.to_string()),
        Val::Text(forks),
    )
    .apart("the host's wait status beside the probe's own account of its forks")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lessons::fixture_tests::paused_runs_show_the_whole_runs_steps;

    #[test]
    fn a_run_paused_at_each_step_shows_the_steps_the_whole_run_shows() {
        paused_runs_show_the_whole_runs_steps::<Pids>(|o| {
            let mut before = o.clone();
            (before.after, before.teardown) = (None, Vec::new());
            let mut after = o.clone();
            after.teardown.clear();
            vec![(before, 1), (after, 2)]
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/pids.json");
        let rec = crate::lessons::engine::read_recording(&path).unwrap();
        let o: Obs = serde_json::from_value(rec.observations).unwrap();
        let opts: Options = serde_json::from_value(rec.options).unwrap();
        removal_said_after_the_steps(&Pids::judge(&o, &opts, &rec.env));
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
    fn limits_above_the_lessons_range_are_usage_errors() {
        let o = |pids| Options { pids };
        assert!(Pids::check(&o(1)).is_ok());
        assert!(Pids::check(&o(MAX_PIDS)).is_ok());
        let e = Pids::check(&o(MAX_PIDS + 1)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 1 to 64"), "{e}");
    }
}
