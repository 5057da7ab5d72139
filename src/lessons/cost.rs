//! cost: what isolation costs, measured live.
//!
//! The seed article sets containers beside virtual machines: a VM boots a kernel, a
//! container is a process. This lesson times, on this machine, a plain fork against a
//! fork whose child creates one namespace (unshare(2)), for every namespace type, and a
//! cgroup (mkdir + rmdir), a few hundred times each; then it starts one whole "container"
//! (every namespace at once plus a fresh /proc) and compares it with a plain process.

use std::time::Instant;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, Lesson, Rootless};
use crate::cgroup::{Controller, LessonCgroup};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{self, raw_clone, signals, Spec};

pub const LESSON: Lesson = Lesson {
    id: "cost",
    title: "What isolation costs: namespaces and cgroups, timed",
    mechanism: "fork + unshare(2) of each namespace type, cgroup mkdir/rmdir, timed",
    man: "unshare(2), clone(2), namespaces(7), cgroups(7)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/cost.md"),
    sees: Parts::ns("pid").with(Parts::ns("net")),
    facts: &[],
    words: &[
        "speed",
        "overhead",
        "performance",
        "benchmark",
        "timing",
        "vm",
    ],
    imp: super::Imp::Old(run),
};

/// How many times each mechanism is created; network namespaces are torn down by a
/// kernel worker after the fact, so fewer of them keep the run short.
const ROUNDS: usize = 200;
const NET_ROUNDS: usize = 40;
/// The line the output draws between microseconds and milliseconds.
const CHEAP_US: f64 = 1000.0;
/// A namespace type (net aside) costs less than this many plain forks.
const FORKS: f64 = 5.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub what: String,
    pub rounds: usize,
    pub median_us: f64,
    pub p90_us: f64,
    /// Median minus the plain fork's median: what the mechanism itself added.
    pub extra_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() * 9 / 10]
}

/// Rounds of the mechanism interleaved with rounds of the baseline, so that whatever else
/// the machine is doing slows both alike; the extra cost is the median of the paired
/// differences.
fn paired(
    what: &str,
    base: CloneFlags,
    flags: CloneFlags,
    rounds: usize,
) -> Result<(Timing, Vec<f64>)> {
    let (mut with, mut without, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = time_unshare(base)?;
        let x = time_unshare(base | flags)?;
        with.push(x);
        without.push(b);
        diffs.push(x - b);
    }
    let timing = Timing {
        what: what.to_string(),
        rounds,
        median_us: median(with.clone()),
        p90_us: percentile90(with),
        extra_us: median(diffs).max(0.0),
    };
    Ok((timing, without))
}

/// One round: fork; the child unshares `flags` (nothing when empty) and exits at once;
/// wait. Returns the microseconds it took.
fn time_unshare(flags: CloneFlags) -> Result<f64> {
    signals::check()?;
    let start = Instant::now();
    match raw_clone(CloneFlags::empty()).ctx("clone", "SIGCHLD")? {
        None => {
            // In the child: unshare(2) creates the namespace(s); _exit destroys them.
            let ok = flags.is_empty() || nix::sched::unshare(flags).is_ok();
            // SAFETY: _exit in a forked child skips the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Some(pid) => {
            let status = loop {
                match waitpid(pid, None) {
                    Err(nix::errno::Errno::EINTR) => signals::check()?,
                    other => break other.ctx("waitpid", pid)?,
                }
            };
            if status != nix::sys::wait::WaitStatus::Exited(pid, 0) {
                return Err(sandbox_error(flags));
            }
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6)
}

fn sandbox_error(flags: CloneFlags) -> Error {
    // Re-run the unshare in a way that reports the errno: in a child, as the timing did.
    Error::Other(format!(
        "unshare({}) failed in the timing child; run `nsx lesson {}` or `nsx doctor` to see why",
        sandbox::flag_names(flags),
        LESSON.id
    ))
}

fn bar(value: f64, max: f64) -> String {
    let width = 40.0;
    let cells = if max > 0.0 { value / max * width } else { 0.0 };
    let full = cells.floor() as usize;
    let half = cells - cells.floor() >= 0.5;
    format!("{}{}", "█".repeat(full), if half { "▌" } else { "" })
}

#[derive(Debug, Serialize, Deserialize)]
struct Started {
    view: View,
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let rootless = ctx.rootless();
    // Rootless, every namespace needs a user namespace first: the baseline is then
    // "fork + a user namespace", and each row adds one type to it.
    let user = if rootless {
        CloneFlags::CLONE_NEWUSER
    } else {
        CloneFlags::empty()
    };
    let types: [(CloneFlags, &str); 8] = [
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
        (
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            "CLONE_NEWTIME",
        ),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
    ];
    let has_time = std::path::Path::new("/proc/self/ns/time").exists();
    let mut timings = Vec::new();
    let mut baseline = Vec::new();
    for (flag, name) in types {
        if rootless && flag == CloneFlags::CLONE_NEWUSER {
            continue; // that is the baseline
        }
        if name == "CLONE_NEWTIME" && !has_time {
            continue;
        }
        let rounds = if flag == CloneFlags::CLONE_NEWNET {
            NET_ROUNDS
        } else {
            ROUNDS
        };
        let (timing, base_samples) = paired(name, user, flag, rounds)?;
        timings.push(timing);
        baseline.extend(base_samples);
    }
    let base_what = if rootless {
        "fork + CLONE_NEWUSER (baseline)"
    } else {
        "fork (baseline)"
    };
    let base = Timing {
        what: base_what.to_string(),
        rounds: baseline.len(),
        median_us: median(baseline.clone()),
        p90_us: percentile90(baseline),
        extra_us: 0.0,
    };
    timings.insert(0, base.clone());
    let mut actions = vec![format!(
        "{ROUNDS}× each, alternating with the baseline: clone(SIGCHLD); in the child unshare(<flag>){}; _exit(0); waitpid   ({NET_ROUNDS}× for CLONE_NEWNET)",
        if rootless { " with CLONE_NEWUSER" } else { "" }
    )];

    // A cgroup is a directory: creating one is mkdir(2), removing it rmdir(2). A run
    // killed in the loop below leaves its cgroup with the probe directory in it: swept
    // here, children first.
    let mut cgroup_note = None;
    super::cgroup_steps::sweep(ctx);
    match LessonCgroup::create("cost", &[Controller::Memory]) {
        Ok(mut cg) => {
            let parent = cg.dir(Controller::Memory).map(|p| p.to_path_buf());
            if let Some(parent) = parent {
                let dir = parent.join("nsx-cost-probe");
                let mut samples = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    signals::check()?;
                    let start = Instant::now();
                    std::fs::create_dir(&dir).ctx("mkdir", dir.display())?;
                    let removed = std::fs::remove_dir(&dir);
                    samples.push(start.elapsed().as_secs_f64() * 1e6);
                    removed.ctx("rmdir", dir.display())?;
                }
                actions.push(format!("{ROUNDS}× mkdir {0} && rmdir {0}", dir.display()));
                let m = median(samples.clone());
                timings.push(Timing {
                    what: "cgroup mkdir + rmdir".into(),
                    rounds: ROUNDS,
                    median_us: m,
                    p90_us: percentile90(samples),
                    extra_us: m,
                });
            }
            cg.remove()?;
        }
        Err(Error::Unsupported { reason, .. }) => {
            cgroup_note = Some(format!("no cgroup timing: {reason}"))
        }
        Err(e) => return Err(e),
    }

    let max = timings.iter().map(|t| t.median_us).fold(0.0, f64::max);
    let rows: Vec<Row> = timings
        .iter()
        .map(|t| {
            Row::new(
                &t.what,
                format!("{:.0} µs", t.median_us),
                bar(t.median_us, max),
            )
        })
        .collect();
    let host = crate::observe::observe(
        std::path::Path::new("/proc"),
        crate::observe::Subject::SelfProcess,
    )?;
    let mut notes: Vec<String> = cgroup_note.into_iter().collect();
    notes.push(format!(
        "each bar is the median wall time of one round; the baseline is {} ({:.0} µs); a row's extra cost is the median difference from the baseline round run just before it, which cancels what the rest of the machine is doing",
        base.what, base.median_us
    ));
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "measure".into(),
        title: "measure: a plain fork against creating each namespace and a cgroup".into(),
        actions,
        rows,
        notes,
        extra: json!({ "timings": timings, "columns": ["median", "bar"] }),
        host: host.clone(),
        container: host,
    })?;

    // One whole container: every namespace at once and a fresh /proc, start to report.
    let all = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    let whole_spec = Spec {
        namespaces: all,
        mount_proc: true,
        hostname: Some("nsx-cost".into()),
        ..Spec::default()
    };
    let (plain_us, whole_us, added, whole) =
        time_starts(&Spec::new(CloneFlags::empty()), &whole_spec)?;
    let isolated = whole.1.own_ns("pid") != whole.0.own_ns("pid")
        && whole.1.own_ns("net") != whole.0.own_ns("net");
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "container".into(),
        title: format!("a whole container: every namespace and a fresh /proc, from clone to the probe's report (medians of {STARTS}, alternating)"),
        actions: whole.2,
        rows: vec![
            Row::new("plain process: clone to report", format!("{plain_us:.0} µs"), bar(plain_us, whole_us.max(plain_us))),
            Row::new("container: clone to report", format!("{whole_us:.0} µs"), bar(whole_us, whole_us.max(plain_us))),
        ],
        notes: vec![format!(
            "the namespaces, the private / and the fresh /proc added {added:.0} µs to starting a process (median of the paired differences)"
        )],
        extra: json!({ "plain_us": plain_us, "container_us": whole_us, "columns": ["time", "bar"] }),
        host: whole.0,
        container: whole.1,
    })?;

    let net = timings.iter().find(|t| t.what == "CLONE_NEWNET").cloned();
    let cheap: Vec<&Timing> = timings
        .iter()
        .skip(1)
        .filter(|t| t.what.starts_with("CLONE_") && t.what != "CLONE_NEWNET")
        .collect();
    let most = cheap.iter().map(|t| t.extra_us).fold(0.0, f64::max);
    let side = |us: f64| if us >= CHEAP_US { "over" } else { "under" };
    // Judged against this machine's own fork, not a fixed clock: under CPU emulation
    // (the kernel matrix boots under QEMU's TCG) everything is tens of times slower, and
    // what the lesson teaches is the proportion, a process start's order of magnitude.
    let mut facts = vec![Fact::new(
        "namespaces-cost-microseconds",
        format!(
            "creating and destroying each namespace type other than net added at most {most:.0} µs to a plain fork ({} a millisecond), less than {FORKS} plain forks of {:.0} µs: {} types measured",
            side(most),
            base.median_us,
            cheap.len()
        ),
        !cheap.is_empty() && most < FORKS * base.median_us,
        json!({ "extra_us": cheap.iter().map(|t| (t.what.clone(), t.extra_us)).collect::<Vec<_>>(), "fork_us": base.median_us }),
    )];
    if let Some(net) = net {
        let side = if net.extra_us >= CHEAP_US {
            "over"
        } else {
            "under"
        };
        facts.push(Fact::new(
            "net-namespace-measured",
            format!(
                "a network namespace added {:.0} µs here ({side} a millisecond), measured over {} rounds",
                net.extra_us, net.rounds
            ),
            net.rounds == NET_ROUNDS,
            json!({ "extra_us": net.extra_us, "rounds": net.rounds }),
        ));
    }
    facts.push(Fact::new(
        "container-start-is-a-process-start",
        format!(
            "a container with every namespace started in {whole_us:.0} µs against {plain_us:.0} µs for a plain process: a process start plus {added:.0} µs, less than {FORKS} process starts, not a machine boot"
        ),
        added < FORKS * plain_us && isolated,
        json!({ "plain_us": plain_us, "container_us": whole_us }),
    ));
    Ok(facts)
}

/// How many probes each start-up time is the median of.
const STARTS: usize = 15;

/// A container's views (host, inside) and the actions that made it.
type Made = (View, View, Vec<String>);

/// Time from clone to the probe's report, with both views and the actions taken.
fn time_start(spec: &Spec) -> Result<(f64, View, View, Vec<String>)> {
    let start = Instant::now();
    let mut child = sandbox::spawn(spec, |i| Ok(Started { view: i.observe()? }))?;
    let started: Started = child.run()?;
    let took = start.elapsed().as_secs_f64() * 1e6;
    let host = child.observe_from_host()?;
    let actions = std::mem::take(&mut child.actions);
    child.release();
    sandbox::reap_released();
    Ok((took, host, started.view, actions))
}

/// Plain and whole-container starts, alternating: the medians of each, the median of the
/// paired differences, and the last container's views and actions.
fn time_starts(plain: &Spec, whole: &Spec) -> Result<(f64, f64, f64, Made)> {
    let (mut p, mut w, mut d) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..STARTS {
        let a = time_start(plain)?.0;
        let (b, host, inside, actions) = time_start(whole)?;
        p.push(a);
        w.push(b);
        d.push(b - a);
        last = Some((host, inside, actions));
    }
    Ok((
        median(p),
        median(w),
        median(d).max(0.0),
        last.expect("STARTS > 0"),
    ))
}
