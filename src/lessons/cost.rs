//! cost: what isolation costs, measured live.
//!
//! The seed article sets containers beside virtual machines: a VM boots a kernel, a
//! container is a process. This lesson times, on this machine, a plain fork against a
//! fork whose child creates one namespace (unshare(2)), for every namespace type, and a
//! cgroup (mkdir + rmdir), a few hundred times each; then it starts one whole "container"
//! (every namespace at once plus a fresh /proc) and compares it with a plain process.
//!
//! A timing is never one number: `measure` keeps every round, `judge` reports the median
//! and the middle half (the interquartile range) of the rounds, and decides each fact
//! with a margin taken from that spread: a median within its margin of the bound cannot
//! decide (inconclusive, with the reason); a median beyond it either way decides, and a
//! clear contradiction fails. Each round also records the child's CPU time (wait4(2)):
//! wall-clock time the child did not spend on a CPU was spent waiting (for the scheduler,
//! or for a grace period the kernel needs the other CPUs to pass), which measures the
//! machine's load, not the namespace.

use std::time::Instant;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::cgroup::{Controller, LessonCgroup};
use crate::error::{op, Context, Error, Result};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{self, raw_clone, signals, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Cost>();

pub struct Cost;

/// How many rounds each namespace type (and the cgroup) is timed.
const ROUNDS: usize = 150;
/// How many rounds a cgroup's mkdir + rmdir is timed (cheap: about 70 µs each here).
const CGROUP_ROUNDS: usize = 200;
/// A network namespace is timed every this many rounds only: the kernel tears each one
/// down in a worker after the fact, and fewer keep the run short.
const NET_EVERY: usize = 5;
/// A namespace type (net aside), and a whole container, cost less than this many plain
/// forks (process starts): the proportion the lesson teaches, judged against this
/// machine's own fork rather than a fixed clock.
const FORKS: f64 = 5.0;
/// How many plain and container starts alternate.
const STARTS: usize = 30;

/// The namespace types, as unshare(2) names them.
const TYPES: [(CloneFlags, &str); 8] = [
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

const NET: &str = "CLONE_NEWNET";
const UTS: &str = "CLONE_NEWUTS";

/// One namespace type's rounds, each paired with the baseline round run just before it:
/// microseconds of wall-clock time from fork to reaped, and of the child's CPU time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paired {
    /// The flag the round adds to the baseline: "CLONE_NEWUTS".
    what: String,
    base_wall: Vec<f64>,
    wall: Vec<f64>,
    base_cpu: Vec<f64>,
    cpu: Vec<f64>,
}

/// mkdir + rmdir of a cgroup: wall-clock and nsx's own CPU time, each round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupRounds {
    /// The directory made and removed.
    dir: String,
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

/// What a started probe reports: its view, when it had it (CLOCK_MONOTONIC, µs), and
/// the CPU time it had used by then (CLOCK_PROCESS_CPUTIME_ID, µs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    view: View,
    ready_us: f64,
    cpu_us: f64,
}

/// Process starts, alternating: clone to report in wall-clock µs, and the CPU µs spent
/// on it (nsx's clone and setup of the probe, plus the probe's own up to its report).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StartRounds {
    plain_wall: Vec<f64>,
    plain_cpu: Vec<f64>,
    container_wall: Vec<f64>,
    container_cpu: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// What every timed child creates besides the flag measured: nothing as root; a user
    /// namespace without root, which every other type then needs.
    baseline: Vec<String>,
    types: Vec<Paired>,
    cgroup: Option<CgroupRounds>,
    /// Why there is no cgroup timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_cgroup: Option<String>,
    /// Plain processes and whole containers, started in turn.
    starts: StartRounds,
    /// The last plain process and the last container.
    plain: Run<Started>,
    container: Run<Started>,
}

impl Def for Cost {
    const ID: &'static str = "cost";
    const TITLE: &'static str = "What isolation costs: namespaces and cgroups, timed";
    const MECHANISM: &'static str =
        "fork + unshare(2) of each namespace type, cgroup mkdir/rmdir, timed";
    const MAN: &'static str = "unshare(2), clone(2), wait4(2), namespaces(7), cgroups(7)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/cost.md");
    const SEES: Parts = Ns::Pid.part().with(Ns::Net.part());
    const FACTS: &'static [&'static str] = &[
        "namespaces-cost-microseconds",
        "net-namespace-measured",
        "container-start-is-a-process-start",
    ];
    const WORDS: &'static [&'static str] = &[
        "speed",
        "overhead",
        "performance",
        "benchmark",
        "timing",
        "vm",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // Without root every namespace needs a user namespace first: the baseline is then
        // "fork + a user namespace", and each type adds one flag to it.
        let user = if m.rootless() {
            CloneFlags::CLONE_NEWUSER
        } else {
            CloneFlags::empty()
        };
        // Kernels before 5.6 have no time namespace: its link is then missing.
        let has_time = std::path::Path::new("/proc/self/ns/time").exists();
        let measured: Vec<(CloneFlags, &str)> = TYPES
            .into_iter()
            .filter(|(f, _)| !(m.rootless() && *f == CloneFlags::CLONE_NEWUSER))
            .filter(|(_, name)| has_time || *name != "CLONE_NEWTIME")
            .collect();
        let mut types: Vec<Paired> = measured
            .iter()
            .map(|(_, name)| Paired {
                what: name.to_string(),
                base_wall: Vec::new(),
                wall: Vec::new(),
                base_cpu: Vec::new(),
                cpu: Vec::new(),
            })
            .collect();
        // Round robin: a burst of other work on the machine falls on every type alike,
        // and each round is paired with the baseline round just before it.
        for round in 0..ROUNDS {
            for ((flag, name), p) in measured.iter().zip(types.iter_mut()) {
                if *name == NET && round % NET_EVERY != 0 {
                    continue;
                }
                let (bw, bc) = time_unshare(user)?;
                let (w, c) = time_unshare(user | *flag)?;
                p.base_wall.push(bw);
                p.base_cpu.push(bc);
                p.wall.push(w);
                p.cpu.push(c);
            }
        }

        // A cgroup is a directory: creating one is mkdir(2), removing it rmdir(2). A run
        // killed in the loop below leaves its cgroup with the probe directory in it:
        // swept here, children first.
        super::kit::cgroup::sweep(m);
        let (cgroup, no_cgroup) = match LessonCgroup::create(Cost::ID, &[Controller::Memory]) {
            Ok(mut cg) => {
                let rounds = match cg.dir(Controller::Memory) {
                    Some(parent) => Some(time_cgroup(&parent.join("nsx-cost-probe"))?),
                    None => None,
                };
                cg.remove()?;
                (rounds, None)
            }
            Err(Error::Unsupported { reason, .. }) => (None, Some(reason)),
            Err(e) => return Err(e),
        };

        // One whole container: every namespace at once and a fresh /proc, start to report.
        let whole = Spec {
            namespaces: CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWCGROUP,
            mount_proc: true,
            hostname: Some("nsx-cost".into()),
            ..Spec::default()
        };
        let plain = Spec::new(CloneFlags::empty());
        let mut starts = StartRounds::default();
        let mut last = None;
        for _ in 0..STARTS {
            let (pw, pc, plain_run) = time_start(m, &plain)?;
            let (cw, cc, container_run) = time_start(m, &whole)?;
            starts.plain_wall.push(pw);
            starts.plain_cpu.push(pc);
            starts.container_wall.push(cw);
            starts.container_cpu.push(cc);
            last = Some((plain_run, container_run));
        }
        let (plain, container) =
            last.ok_or_else(|| Error::Internal("no container was started".into()))?;
        Ok(Obs {
            baseline: if m.rootless() {
                vec!["CLONE_NEWUSER".into()]
            } else {
                Vec::new()
            },
            types,
            cgroup,
            no_cgroup,
            starts,
            plain,
            container,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = fork_spread(o);
        let bound = FORKS * base.median;
        let cheap: Vec<&Paired> = o
            .types
            .iter()
            .filter(|p| p.what != NET)
            .filter(|p| !p.wall.is_empty())
            .collect();
        let net = o.types.iter().find(|p| p.what == NET);
        let uts = o.types.iter().find(|p| p.what == UTS);
        let starts = Starts::of(o);
        let facts = vec![
            namespaces_fact(&cheap, base, bound),
            net_fact(net, uts),
            container_fact(o, &starts),
        ];
        let steps = vec![measure_step(o, env, base), container_step(o, &starts)];
        let most = cheap
            .iter()
            .filter_map(|p| Some((p, spread(&added(&p.wall, &p.base_wall))?)))
            .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
        let net_added = net.and_then(|n| spread(&added(&n.wall, &n.base_wall)));
        Judged {
            steps,
            facts,
            notes: vec![format!(
                "the facts compare with this machine's own times, not with a fixed clock: a namespace type with {} ({}), a container with a plain process start ({}); where everything is slower (a busy machine, a CPU emulated in software), the bounds grow with it",
                base_what(o),
                micros(base.median),
                starts.plain.map_or("-".to_string(), |s| micros(s.median))
            )],
            takeaway: Some(format!(
                "here a namespace type added at most {} to {} ({}){}, and a whole container started in {} against {} for a plain process: a process start, not a machine boot",
                most.map_or("-".to_string(), |(p, s)| format!("{} ({})", signed(s.median), p.what)),
                base_what(o),
                micros(base.median),
                net_added.map_or(String::new(), |s| format!("; a network namespace {}", signed(s.median))),
                starts.container.map_or("-".to_string(), |s| micros(s.median)),
                starts.plain.map_or("-".to_string(), |s| micros(s.median)),
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "namespaces-cost-microseconds",
                what: "CLONE_NEWNS took 100 forks in wall-clock and CPU time, every round",
                change: |o, _| slow_type(o, "CLONE_NEWNS", 100.0, 100.0),
            },
            F {
                fact: "namespaces-cost-microseconds",
                what: "no namespace type was timed",
                change: |o, _| o.types.retain(|p| p.what == NET),
            },
            F {
                fact: "net-namespace-measured",
                what: "a network namespace used less CPU than a UTS namespace, every round",
                change: |o, _| {
                    let uts = o.types.iter().find(|p| p.what == UTS).cloned();
                    if let (Some(uts), Some(net)) =
                        (uts, o.types.iter_mut().find(|p| p.what == NET))
                    {
                        // Each net round adds a tenth of what the cheapest UTS round added.
                        let least = uts
                            .cpu
                            .iter()
                            .zip(&uts.base_cpu)
                            .map(|(c, b)| c - b)
                            .fold(f64::INFINITY, f64::min);
                        for (c, b) in net.cpu.iter_mut().zip(&net.base_cpu) {
                            *c = b + least / 10.0;
                        }
                    }
                },
            },
            F {
                fact: "net-namespace-measured",
                what: "no network namespace was timed",
                change: |o, _| o.types.retain(|p| p.what != NET),
            },
            F {
                fact: "container-start-is-a-process-start",
                what: "every container start took 100 plain starts more, in CPU time too",
                change: |o, _| slow_containers(o, 100.0, 100.0),
            },
            F {
                fact: "container-start-is-a-process-start",
                what: "the container shared the host's network namespace",
                change: |o, _| {
                    let host = o.container.host.own(Ns::Net).unwrap_or_default();
                    o.container.inside.view.own_ns.insert("net".into(), host);
                },
            },
        ]
    }
}

/// One round: fork; the child unshares `flags` (nothing when empty) and exits at once;
/// wait. Returns the wall-clock microseconds it took and the child's CPU time.
fn time_unshare(flags: CloneFlags) -> Result<(f64, f64)> {
    signals::check()?;
    let start = Instant::now();
    match raw_clone(CloneFlags::empty()).ctx(op::CLONE, "SIGCHLD")? {
        None => {
            // In the child: unshare(2) creates the namespace(s); _exit destroys them.
            let ok = flags.is_empty() || nix::sched::unshare(flags).is_ok();
            // SAFETY: _exit in a forked child skips the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Some(pid) => {
            let (status, cpu) = wait_with_usage(pid.as_raw())?;
            let wall = start.elapsed().as_secs_f64() * 1e6;
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                return Err(Error::Other(format!(
                    "unshare({}) failed in the timing child; run `nsx doctor` to see why",
                    sandbox::flag_names(flags)
                )));
            }
            Ok((tenth(wall), tenth(cpu)))
        }
    }
}

/// Waits for `pid` and returns its wait status and the CPU time it used, in µs.
fn wait_with_usage(pid: i32) -> Result<(i32, f64)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain old data, all zeros a valid value; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // wait4(2): waitpid(2) that also returns the child's resource usage; its
        // ru_utime + ru_stime is the CPU time the child used, its exit included
        // (getrusage(2)), so wall-clock time beyond it was spent waiting.
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
            return Ok((status, tv(usage.ru_utime) + tv(usage.ru_stime)));
        }
        match Errno::last() {
            Errno::EINTR => signals::check()?,
            e => return Err(crate::error::sys("wait4", pid, e)),
        }
    }
}

/// µs of CPU time this thread has used (clock_gettime(2), CLOCK_THREAD_CPUTIME_ID).
fn thread_cpu_us() -> f64 {
    clock_us(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CLOCK_MONOTONIC in µs: one clock for every process outside a time namespace, so a
/// probe's reading and its parent's compare.
fn monotonic_us() -> f64 {
    clock_us(libc::CLOCK_MONOTONIC)
}

fn clock_us(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // clock_gettime(2) cannot fail for a clock the kernel always has and a valid pointer.
    // SAFETY: `ts` is a live local timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

/// Rounded to a tenth of a microsecond: finer is below what the clocks resolve here.
fn tenth(us: f64) -> f64 {
    (us * 10.0).round() / 10.0
}

/// [`CGROUP_ROUNDS`] × mkdir and rmdir of `dir`, a child of the lesson's cgroup.
fn time_cgroup(dir: &std::path::Path) -> Result<CgroupRounds> {
    let mut wall = Vec::with_capacity(CGROUP_ROUNDS);
    let mut cpu = Vec::with_capacity(CGROUP_ROUNDS);
    for _ in 0..CGROUP_ROUNDS {
        signals::check()?;
        let (start, start_cpu) = (Instant::now(), thread_cpu_us());
        std::fs::create_dir(dir).ctx(op::MKDIR, dir.display())?;
        let removed = std::fs::remove_dir(dir);
        wall.push(tenth(start.elapsed().as_secs_f64() * 1e6));
        cpu.push(tenth(thread_cpu_us() - start_cpu));
        removed.ctx(op::RMDIR, dir.display())?;
    }
    Ok(CgroupRounds {
        dir: dir.display().to_string(),
        wall,
        cpu,
    })
}

/// One probe with `spec`, timed from before its clone to its report (both read on
/// CLOCK_MONOTONIC), then reaped before the next, so no teardown overlaps a start.
/// Returns the wall-clock µs, the CPU µs (nsx's thread from before the clone until the
/// probe is ready to go, plus the probe's own until its report), and the run.
fn time_start(m: &Measure, spec: &Spec) -> Result<(f64, f64, Run<Started>)> {
    let (t0, cpu0) = (monotonic_us(), thread_cpu_us());
    let mut parent_cpu = 0.0;
    let run = m.probe_with(
        spec,
        |_| {
            // The clone and the setup nsx does for the probe are done: the rest of nsx's
            // part is telling it to go and waiting for its report.
            parent_cpu = thread_cpu_us() - cpu0;
            Ok(())
        },
        |i| {
            let view = i.observe()?;
            Ok(Started {
                view,
                ready_us: monotonic_us(),
                cpu_us: clock_us(libc::CLOCK_PROCESS_CPUTIME_ID),
            })
        },
        |_| Ok(()),
    )?;
    sandbox::reap_released();
    let wall = tenth(run.inside.ready_us - t0);
    Ok((wall, tenth(parent_cpu + run.inside.cpu_us), run))
}

/// The median and the middle half (the quartiles) of some rounds, and how far the median
/// itself may be off: the half-width of the notch of a notched box plot, 1.58 IQR / √n
/// (McGill, Tukey and Larsen, 1978), which two medians must clear to differ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Spread {
    q1: f64,
    median: f64,
    q3: f64,
    rounds: usize,
    margin: f64,
}

/// The spread of `v`, `None` when there are no rounds.
fn spread(v: &[f64]) -> Option<Spread> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    // Nearest rank: the value a quarter, half and three quarters of the way through.
    let at = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    let (q1, q3) = (at(0.25), at(0.75));
    Some(Spread {
        q1,
        median: at(0.5),
        q3,
        rounds: s.len(),
        margin: 1.58 * (q3 - q1) / (s.len() as f64).sqrt(),
    })
}

/// What each round added to the baseline round just before it. Never clamped: a round
/// faster than its baseline adds a negative amount, which is noise made visible.
fn added(with: &[f64], base: &[f64]) -> Vec<f64> {
    with.iter().zip(base).map(|(w, b)| w - b).collect()
}

/// Where a median lies against a bound, given how far it may be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Below it by more than its margin.
    Below,
    /// Above it by more than its margin.
    Above,
    /// Within its margin of the bound: these rounds cannot decide.
    Unclear,
}

fn against(s: Spread, bound: f64) -> Side {
    if s.median + s.margin < bound {
        Side::Below
    } else if s.median - s.margin > bound {
        Side::Above
    } else {
        Side::Unclear
    }
}

/// Whether the median of `a` lies above that of `b`, beyond both margins (the notches
/// of the two box plots do not overlap), below it, or neither.
fn compare(a: Spread, b: Spread) -> Side {
    if a.median - a.margin > b.median + b.margin {
        Side::Above
    } else if a.median + a.margin < b.median - b.margin {
        Side::Below
    } else {
        Side::Unclear
    }
}

/// "+133 µs ±8": a median and its margin.
fn with_margin(s: Spread, sign: bool) -> String {
    if sign {
        format!("{:+.0} µs ±{:.0}", s.median, s.margin)
    } else {
        format!("{:.0} µs ±{:.0}", s.median, s.margin)
    }
}

fn micros(us: f64) -> String {
    format!("{us:.0} µs")
}

/// A difference, with its sign: "+30 µs", "-12 µs".
fn signed(us: f64) -> String {
    format!("{us:+.0} µs")
}

/// "+30 µs (+12 to +51)": the median, then the middle half of the rounds.
fn with_spread(s: Spread, sign: bool) -> String {
    if sign {
        format!("{:+.0} µs ({:+.0} to {:+.0})", s.median, s.q1, s.q3)
    } else {
        format!("{:.0} µs ({:.0} to {:.0})", s.median, s.q1, s.q3)
    }
}

fn base_what(o: &Obs) -> String {
    if o.baseline.is_empty() {
        "a plain fork".to_string()
    } else {
        format!("a fork that unshares {}", o.baseline.join(" | "))
    }
}

/// Every baseline round of the run (wall clock), and its spread.
fn fork_spread(o: &Obs) -> Spread {
    let all: Vec<f64> = o.types.iter().flat_map(|p| p.base_wall.clone()).collect();
    spread(&all).unwrap_or(Spread {
        q1: f64::NAN,
        median: f64::NAN,
        q3: f64::NAN,
        rounds: 0,
        margin: f64::NAN,
    })
}

/// `namespaces-cost-microseconds`: every type but net below `bound` (five forks).
///
/// A type whose wall-clock median lies above the bound is a clear contradiction only if
/// its CPU time does too: when the child used little CPU, the wall-clock time went to
/// waiting on the rest of the machine, and the run cannot decide.
fn namespaces_fact(cheap: &[&Paired], base: Spread, bound: f64) -> Fact {
    let mut rows = Vec::new();
    let (mut above, mut unclear) = (Vec::new(), Vec::new());
    for p in cheap {
        let (Some(wall), Some(cpu)) = (
            spread(&added(&p.wall, &p.base_wall)),
            spread(&added(&p.cpu, &p.base_cpu)),
        ) else {
            continue;
        };
        rows.push(json!({ "what": p.what, "wall_us": wall, "cpu_us": cpu }));
        match (against(wall, bound), against(cpu, bound)) {
            (Side::Below, _) => {}
            (Side::Above, Side::Above) => above.push(format!(
                "{} added {} of wall-clock time and {} of CPU time",
                p.what,
                with_margin(wall, true),
                with_margin(cpu, true)
            )),
            (Side::Above, _) => unclear.push(format!(
                "{} added {} of wall-clock time but only {} of CPU time: the rest was spent waiting (for the scheduler, or for a grace period the other CPUs must pass), which measures how busy the machine was",
                p.what,
                with_margin(wall, true),
                with_margin(cpu, true)
            )),
            (Side::Unclear, _) => unclear.push(format!(
                "{} added {} (middle half {:+.0} to {:+.0}): the bound lies within the margin of its median",
                p.what,
                with_margin(wall, true),
                wall.q1,
                wall.q3
            )),
        }
    }
    let most = cheap
        .iter()
        .filter_map(|p| Some((p.what.as_str(), spread(&added(&p.wall, &p.base_wall))?)))
        .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
    let observed = json!({ "types": rows, "fork_us": base, "bound_us": bound });
    let claim = match most {
        Some((what, s)) => format!(
            "creating and destroying each namespace type other than net added at most {} ({what}) to a fork of {}, less than {FORKS} forks ({}): {} types measured, each median below the bound by more than its margin",
            with_margin(s, true),
            micros(base.median),
            micros(bound),
            rows.len()
        ),
        None => "no namespace type other than net was timed".to_string(),
    };
    if !above.is_empty() {
        let claim = format!(
            "creating and destroying a namespace type other than net cost more than {FORKS} forks ({}), in CPU time too: {}",
            micros(bound),
            above.join("; ")
        );
        return Fact::new("namespaces-cost-microseconds", claim, false, observed);
    }
    let fact = Fact::new(
        "namespaces-cost-microseconds",
        claim,
        most.is_some() && unclear.is_empty(),
        observed,
    );
    if most.is_some() && !unclear.is_empty() {
        fact.inconclusive(format!(
            "the rounds were too spread to compare with {FORKS} forks ({}): {}",
            micros(bound),
            unclear.join("; ")
        ))
    } else {
        fact
    }
}

/// `net-namespace-measured`: a network namespace costs more than a UTS namespace, in the
/// work the kernel does for it: CPU time, which a wait on a lock another process holds
/// (rtnl, when other network namespaces come and go) does not inflate.
fn net_fact(net: Option<&Paired>, uts: Option<&Paired>) -> Fact {
    const ID: &str = "net-namespace-measured";
    let wall = |p: Option<&Paired>| p.and_then(|p| spread(&added(&p.wall, &p.base_wall)));
    let cpu = |p: Option<&Paired>| p.and_then(|p| spread(&added(&p.cpu, &p.base_cpu)));
    let (nw, nc, uc) = (wall(net), cpu(net), cpu(uts));
    let observed = json!({ "net_wall_us": nw, "net_cpu_us": nc, "uts_cpu_us": uc });
    let (Some(nw), Some(n), Some(u)) = (nw, nc, uc) else {
        return Fact::new(
            ID,
            "a network namespace and a UTS namespace were not both timed",
            false,
            observed,
        );
    };
    let claim = format!(
        "a network namespace added {} of wall-clock time over {} rounds, {} of it CPU time, more than a UTS namespace ({} of CPU time, a copy of the hostname and little else): it brings its own loopback device, sysctls and routing tables",
        with_margin(nw, true),
        n.rounds,
        with_margin(n, true),
        with_margin(u, true)
    );
    match compare(n, u) {
        Side::Above => Fact::new(ID, claim, true, observed),
        Side::Below => Fact::new(
            ID,
            format!(
                "a network namespace added {} of CPU time, less than a UTS namespace ({})",
                with_margin(n, true),
                with_margin(u, true)
            ),
            false,
            observed,
        ),
        Side::Unclear => Fact::new(ID, claim, false, observed).inconclusive(format!(
            "the two CPU-time medians are within each other's margins (net {}, UTS {}): the rounds were too spread to tell them apart",
            with_margin(n, true),
            with_margin(u, true)
        )),
    }
}

/// The starts of step 2: each kind's spread, and what the container added, in
/// wall-clock and in CPU time.
struct Starts {
    plain: Option<Spread>,
    container: Option<Spread>,
    added: Option<Spread>,
    plain_cpu: Option<Spread>,
    container_cpu: Option<Spread>,
    added_cpu: Option<Spread>,
}

impl Starts {
    fn of(o: &Obs) -> Starts {
        let s = &o.starts;
        Starts {
            plain: spread(&s.plain_wall),
            container: spread(&s.container_wall),
            added: spread(&added(&s.container_wall, &s.plain_wall)),
            plain_cpu: spread(&s.plain_cpu),
            container_cpu: spread(&s.container_cpu),
            added_cpu: spread(&added(&s.container_cpu, &s.plain_cpu)),
        }
    }
}

/// `container-start-is-a-process-start`: isolated, and less than five process starts.
/// As for the namespace types, a start slower in wall-clock time only (not in CPU time)
/// waited for the rest of the machine: inconclusive, not a failure.
fn container_fact(o: &Obs, st: &Starts) -> Fact {
    const ID: &str = "container-start-is-a-process-start";
    let (host, inside) = (&o.container.host, &o.container.inside.view);
    let isolated = kit::differ(inside.own(Ns::Pid), host.own(Ns::Pid))
        && kit::differ(inside.own(Ns::Net), host.own(Ns::Net));
    let observed = json!({
        "plain_us": st.plain, "container_us": st.container, "added_us": st.added,
        "added_cpu_us": st.added_cpu, "isolated": isolated,
    });
    let (Some(plain), Some(container), Some(add), Some(add_cpu)) =
        (st.plain, st.container, st.added, st.added_cpu)
    else {
        return Fact::new(ID, "no container start was timed", false, observed);
    };
    if !isolated {
        return Fact::new(
            ID,
            format!(
                "the container did not get namespaces of its own (pid {}, net {}), so its start time says nothing",
                kit::ns_text(Ns::Pid, inside.own(Ns::Pid)),
                kit::ns_text(Ns::Net, inside.own(Ns::Net))
            ),
            false,
            observed,
        );
    }
    let bound = FORKS * plain.median;
    let claim = format!(
        "a container with its own pid, mount, UTS, IPC, network and cgroup namespaces started in {} against {} for a plain process: a process start plus {}, less than {FORKS} process starts ({}), not a machine boot",
        micros(container.median),
        micros(plain.median),
        with_margin(add, true),
        micros(bound)
    );
    match (against(add, bound), against(add_cpu, bound)) {
        (Side::Below, _) => Fact::new(ID, claim, true, observed),
        (Side::Above, Side::Above) => Fact::new(
            ID,
            format!(
                "a container took {} more than a plain process ({}), {} of it CPU time: more than {FORKS} process starts ({})",
                with_margin(add, true),
                micros(plain.median),
                with_margin(add_cpu, true),
                micros(bound)
            ),
            false,
            observed,
        ),
        (Side::Above, _) => Fact::new(ID, claim, false, observed).inconclusive(format!(
            "a container took {} more than a plain process but only {} more CPU time: the rest was spent waiting for the rest of the machine, so {FORKS} process starts ({}) cannot be judged",
            with_margin(add, true),
            with_margin(add_cpu, true),
            micros(bound)
        )),
        (Side::Unclear, _) => Fact::new(ID, claim, false, observed).inconclusive(format!(
            "{FORKS} process starts ({}) lie within the margin of what the container added ({}; middle half {:+.0} to {:+.0}): the starts were too spread to decide",
            micros(bound),
            with_margin(add, true),
            add.q1,
            add.q3
        )),
    }
}

/// Why a timing row compares nothing: its two cells are one thing on two clocks.
const TWO_CLOCKS: &str = "wall-clock and CPU time of the same rounds";
/// Why a start row compares nothing by itself: the note says what the container added.
const TWO_STARTS: &str =
    "the spreads of two kinds of start; what one adds to the other is paired in the note";

/// Step 1: each round kind's wall-clock and CPU time.
fn measure_step(o: &Obs, env: &Env, base: Spread) -> Step {
    let base_cpu: Vec<f64> = o.types.iter().flat_map(|p| p.base_cpu.clone()).collect();
    let cell = |s: Option<Spread>, sign: bool| match s {
        Some(s) => Val::Text(with_spread(s, sign)),
        None => Val::None("not timed".into()),
    };
    let base_label = if o.baseline.is_empty() {
        "the baseline: fork".to_string()
    } else {
        format!("the baseline: fork + {}", o.baseline.join(" | "))
    };
    let mut rows = vec![Row::own(
        base_label,
        "clone(2)",
        cell(Some(base), false),
        cell(spread(&base_cpu), false),
    )
    .apart(TWO_CLOCKS)];
    let mut timings = Vec::new();
    for p in &o.types {
        let wall = spread(&added(&p.wall, &p.base_wall));
        let cpu = spread(&added(&p.cpu, &p.base_cpu));
        timings.push(json!({ "what": p.what, "added_wall_us": wall, "added_cpu_us": cpu }));
        rows.push(
            Row::own(
                p.what.clone(),
                "unshare(2)",
                cell(wall, true),
                cell(cpu, true),
            )
            .apart(TWO_CLOCKS),
        );
    }
    let mut step = Step {
        id: "measure".into(),
        title: format!(
            "measure: {} against creating each namespace and a cgroup, alternating",
            base_what(o)
        ),
        actions: vec![format!(
            "{ROUNDS}× each, round robin, each after a baseline round: clone(SIGCHLD); in the child unshare(<flag>){}; _exit(0); wait4   (CLONE_NEWNET every {NET_EVERY}th round)",
            if o.baseline.is_empty() {
                String::new()
            } else {
                format!(" with {}", o.baseline.join(" | "))
            }
        )],
        rows,
        notes: Vec::new(),
        takeaway: None,
        columns: Some(["wall clock".into(), "CPU time".into()]),
        extra: json!({}),
        host: env.baseline.clone(),
        container: env.baseline.clone(),
    };
    if let Some(c) = &o.cgroup {
        let (wall, cpu) = (spread(&c.wall), spread(&c.cpu));
        step.actions.push(format!(
            "{}× mkdir {dir} && rmdir {dir}",
            c.wall.len(),
            dir = c.dir
        ));
        step.rows.push(
            Row::own(
                "a cgroup",
                "mkdir(2) + rmdir(2)",
                cell(wall, false),
                cell(cpu, false),
            )
            .apart(TWO_CLOCKS),
        );
        timings.push(json!({ "what": "cgroup mkdir + rmdir", "wall_us": wall, "cpu_us": cpu }));
    }
    if let Some(why) = &o.no_cgroup {
        step.notes.push(format!("no cgroup timing: {why}"));
    }
    step.notes.push(
        "each cell is the median of the rounds and, in brackets, their middle half (the interquartile range). A namespace row is what its flag added to the baseline round just before it (never rounded up to 0: noise can make it negative). CPU time is the child's own (wait4(2)); wall-clock time beyond it was spent waiting".to_string(),
    );
    step.extra = json!({ "fork_us": base, "timings": timings });
    step
}

/// Step 2: the last plain process and the last container, side by side.
fn container_step(o: &Obs, st: &Starts) -> Step {
    let (plain, container) = (&o.plain.inside.view, &o.container.inside.view);
    let cell = |s: Option<Spread>| match s {
        Some(s) => Val::Text(with_spread(s, false)),
        None => Val::None("not timed".into()),
    };
    let rows = vec![
        Row::own(
            "clone to report",
            "CLOCK_MONOTONIC",
            cell(st.plain),
            cell(st.container),
        )
        .apart(TWO_STARTS),
        Row::own(
            "CPU time used",
            "CLOCK_*_CPUTIME_ID",
            cell(st.plain_cpu),
            cell(st.container_cpu),
        )
        .apart(TWO_STARTS),
        Row::own(
            "pid namespace",
            "ns/pid",
            kit::ns_val(Ns::Pid, plain.own(Ns::Pid)),
            kit::ns_val(Ns::Pid, container.own(Ns::Pid)),
        ),
        Row::own(
            "net namespace",
            "ns/net",
            kit::ns_val(Ns::Net, plain.own(Ns::Net)),
            kit::ns_val(Ns::Net, container.own(Ns::Net)),
        ),
    ];
    let mut step = kit::step(
        "container",
        &format!(
            "a whole container: every namespace and a fresh /proc, from clone to the probe's report ({STARTS} of each, alternating)"
        ),
        &o.container,
        container,
        rows,
    );
    step.columns = Some(["plain process".into(), "container".into()]);
    let step = match st.added {
        Some(a) => step.note(format!(
            "the namespaces, the private / and the fresh /proc added {} to starting a process: the median of the {} paired differences, with the middle half of them in brackets{}",
            with_spread(a, true),
            a.rounds,
            if a.median < 0.0 {
                "; a negative median means the container started faster in most pairs, which only noise can do"
            } else {
                ""
            }
        )),
        None => step,
    };
    step.extra(json!({
        "plain_us": st.plain, "container_us": st.container, "added_us": st.added,
        "plain_cpu_us": st.plain_cpu, "container_cpu_us": st.container_cpu, "added_cpu_us": st.added_cpu,
    }))
}

/// Makes every container start take `wall` and `cpu` median plain starts more than the
/// plain start before it.
#[cfg(test)]
fn slow_containers(o: &mut Obs, wall: f64, cpu: f64) {
    let s = &mut o.starts;
    let plain = spread(&s.plain_wall).map_or(100.0, |x| x.median);
    for (c, p) in s.container_wall.iter_mut().zip(&s.plain_wall) {
        *c = p + wall * plain;
    }
    for (c, p) in s.container_cpu.iter_mut().zip(&s.plain_cpu) {
        *c = p + cpu * plain;
    }
}

#[cfg(test)]
fn slow_type(o: &mut Obs, what: &str, forks_wall: f64, forks_cpu: f64) {
    let all: Vec<f64> = o.types.iter().flat_map(|p| p.base_wall.clone()).collect();
    let fork = spread(&all).map_or(100.0, |s| s.median);
    if let Some(p) = o.types.iter_mut().find(|p| p.what == what) {
        for (w, b) in p.wall.iter_mut().zip(&p.base_wall) {
            *w = b + forks_wall * fork;
        }
        for (c, b) in p.cpu.iter_mut().zip(&p.base_cpu) {
            *c = b + forks_cpu * fork;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lessons::engine::{read_recording, Def};

    fn recorded(machine: &str) -> (Obs, Env) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings")
            .join(machine)
            .join("cost.json");
        let rec = read_recording(&path).unwrap();
        (serde_json::from_value(rec.observations).unwrap(), rec.env)
    }

    fn fact(o: &Obs, env: &Env, id: &str) -> Fact {
        Cost::judge(o, &NoOptions {}, env)
            .facts
            .into_iter()
            .find(|f| f.id == id)
            .unwrap()
    }

    #[test]
    fn quartiles_are_read_from_the_sorted_rounds() {
        let s = spread(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.q1, s.median, s.q3, s.rounds), (2.0, 3.0, 4.0, 5));
        assert!(spread(&[]).is_none());
        assert_eq!(against(s, 4.5), Side::Below);
        assert_eq!(against(s, 1.5), Side::Above);
        assert_eq!(against(s, 3.0), Side::Unclear);
    }

    #[test]
    fn a_faster_round_adds_a_negative_amount_never_zero() {
        assert_eq!(added(&[90.0, 120.0], &[100.0, 100.0]), [-10.0, 20.0]);
        assert_eq!(signed(-10.0), "-10 µs");
        assert_eq!(
            with_spread(spread(&[-20.0, -10.0, -5.0, 20.0, 30.0]).unwrap(), true),
            "-5 µs (-10 to +20)"
        );
    }

    /// A type slow in wall-clock time only (the child waited, it did not work) is too
    /// noisy to decide; slow in CPU time too, it is a clear contradiction.
    #[test]
    fn waiting_is_inconclusive_and_working_is_a_failure() {
        for machine in ["hybrid-root", "hybrid-rootless", "v2-root"] {
            let (mut o, env) = recorded(machine);
            assert!(fact(&o, &env, "namespaces-cost-microseconds").holds);
            slow_type(&mut o, "CLONE_NEWNS", 20.0, 0.0);
            let f = fact(&o, &env, "namespaces-cost-microseconds");
            assert!(!f.holds && !f.fails(), "{machine}: {f:?}");
            assert!(f.inconclusive.unwrap().contains("waiting"));
            slow_type(&mut o, "CLONE_NEWNS", 20.0, 20.0);
            let f = fact(&o, &env, "namespaces-cost-microseconds");
            assert!(f.fails(), "{machine}: {f:?}");
        }
    }

    /// Rounds spread evenly from nothing to twice the bound cannot decide: the bound is
    /// within the margin of their median.
    #[test]
    fn rounds_spread_across_the_bound_are_inconclusive() {
        let (mut o, env) = recorded("hybrid-root");
        let bound = FORKS * fork_spread(&o).median;
        let p = o
            .types
            .iter_mut()
            .find(|p| p.what == "CLONE_NEWIPC")
            .unwrap();
        let n = p.wall.len() as f64;
        for (k, (w, b)) in p.wall.iter_mut().zip(&p.base_wall).enumerate() {
            *w = b + 2.0 * bound * k as f64 / n;
        }
        let f = fact(&o, &env, "namespaces-cost-microseconds");
        assert!(!f.holds && !f.fails(), "{f:?}");
        assert!(f.inconclusive.unwrap().contains("margin"));
    }

    /// A network namespace clearly cheaper than a UTS namespace is a contradiction, not
    /// noise (the old fact compared its round count with a constant and held anyway).
    #[test]
    fn a_net_namespace_cheaper_than_uts_fails() {
        for machine in ["hybrid-root", "hybrid-rootless", "v2-root"] {
            let (mut o, env) = recorded(machine);
            assert!(fact(&o, &env, "net-namespace-measured").holds);
            let uts = o.types.iter().find(|p| p.what == UTS).cloned().unwrap();
            let net = o.types.iter_mut().find(|p| p.what == NET).unwrap();
            for (k, (c, b)) in net.cpu.iter_mut().zip(net.base_cpu.iter_mut()).enumerate() {
                *b = uts.base_cpu[k];
                *c = uts.base_cpu[k] - 1000.0;
            }
            let f = fact(&o, &env, "net-namespace-measured");
            assert!(f.fails(), "{machine}: {f:?}");
        }
    }

    #[test]
    fn overlapping_net_and_uts_rounds_are_inconclusive() {
        let (mut o, env) = recorded("hybrid-root");
        let uts = o.types.iter().find(|p| p.what == UTS).cloned().unwrap();
        let net = o.types.iter_mut().find(|p| p.what == NET).unwrap();
        let n = net.wall.len();
        net.base_cpu = uts.base_cpu[..n].to_vec();
        net.cpu = uts.cpu[..n].to_vec();
        let f = fact(&o, &env, "net-namespace-measured");
        assert!(!f.holds && !f.fails(), "{f:?}");
    }

    #[test]
    fn a_container_start_spread_across_the_bound_is_inconclusive() {
        let (mut o, env) = recorded("hybrid-root");
        let plain = o.starts.plain_wall.clone();
        let bound = FORKS * spread(&plain).unwrap().median;
        let n = plain.len() as f64;
        for (k, (c, p)) in o.starts.container_wall.iter_mut().zip(plain).enumerate() {
            *c = p + 2.0 * bound * k as f64 / n;
        }
        let f = fact(&o, &env, "container-start-is-a-process-start");
        assert!(!f.holds && !f.fails(), "{f:?}");
        assert!(f.inconclusive.unwrap().contains("margin"));
    }

    /// Containers that started slowly because they waited (wall-clock time, not CPU
    /// time) are inconclusive; slow in CPU time too, the fact fails.
    #[test]
    fn a_container_that_waited_is_inconclusive_one_that_worked_fails() {
        for machine in ["hybrid-root", "hybrid-rootless", "v2-root"] {
            let (mut o, env) = recorded(machine);
            assert!(fact(&o, &env, "container-start-is-a-process-start").holds);
            slow_containers(&mut o, 20.0, 0.0);
            let f = fact(&o, &env, "container-start-is-a-process-start");
            assert!(!f.holds && !f.fails(), "{machine}: {f:?}");
            assert!(f.inconclusive.unwrap().contains("waiting"));
            slow_containers(&mut o, 20.0, 20.0);
            assert!(fact(&o, &env, "container-start-is-a-process-start").fails());
        }
    }
}
