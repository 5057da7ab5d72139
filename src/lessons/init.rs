//! init: the single-process model. The app is PID 1 of its PID namespace, and PID 1 has
//! jobs an ordinary process does not.
//!
//! pid_namespaces(7): PID 1 only receives the signals it installed a handler for, from
//! inside its namespace and from ancestors alike, except SIGKILL and SIGSTOP sent from an
//! ancestor; orphans in the namespace are reparented to it; it must reap them; when it
//! exits the kernel SIGKILLs every other process in the namespace. Each of these is
//! observed here, from inside and from the host, through the same reader of /proc
//! (`observe`: status signal masks, stat, the processes of the probe's namespace), with
//! bounded polling.
//!
//! A signal PID 1 drops is never queued (kill(2) still returns 0), so "it survived" is
//! shown directly: after the sender's kill(2) has returned (PID 1 reaped the sender), the
//! host reads PID 1 alive in /proc/<pid>/stat, not exiting, with no SIGTERM pending; and
//! after the host's own SIGTERM it sends SIGSTOP, which an ancestor may send, and reads
//! state T: PID 1 took the later stop alive.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{join, Lesson, Rootless, Run};
use crate::error::{op, Context, Result};
use crate::observe::process::{mask_has, stat_if_present};
use crate::observe::{Ns, Parts, Signals, Stat, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{raw_clone, Exit, Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Init>();

pub struct Init;

/// How long anyone waits for something the kernel does asynchronously.
const BUDGET: Duration = Duration::from_secs(2);
/// Children forked for the zombie steps.
const CHILDREN: usize = 5;
/// Children forked for the teardown step.
const OTHERS: usize = 3;

const SIGTERM: i32 = libc::SIGTERM;

fn spec() -> Spec {
    Spec {
        namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
        mount_proc: true,
        ..Spec::default()
    }
}

// ------------------------------------------------------------------ observations

/// Step 1, inside: PID 1 forks a worker and a sender; the sender sends SIGTERM to both.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalsSeen {
    /// PID 1's view of itself after it reaped the sender: its masks, its namespace.
    view: View,
    getpid: i32,
    worker: i32,
    /// How the worker (no handler) ended.
    worker_exit: Exit,
    sender: i32,
    /// The sender's exit status: bit 0 set when kill(worker, SIGTERM) failed, bit 1 when
    /// kill(1, SIGTERM) failed; 0 when both returned 0.
    sender_exit: Exit,
}

/// Step 1, the host: SIGTERM, then SIGSTOP, then SIGKILL to PID 1 from the parent
/// namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FromHost {
    /// kill(2)'s result for SIGTERM, SIGSTOP and SIGKILL: "0" or the errno.
    term: String,
    stop: String,
    kill: String,
    /// /proc/<pid>/stat once the state settled after SIGTERM and SIGSTOP (T: stopped,
    /// alive; Z: the SIGTERM had killed it). `None`: the process was gone.
    after: Option<Stat>,
    /// /proc/<pid>/status signal masks at the same moment.
    signals: Option<Signals>,
}

/// Step 2: a child of PID 1 forks a grandchild and exits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrphanSeen {
    view: View,
    parent: i32,
    parent_exit: Exit,
    grandchild: i32,
    /// PPid in the grandchild's own /proc/self/status, read after its parent exited.
    ppid_after: i32,
}

/// Steps 3 and 4: PID 1 forks children that exit at once, and reaps them or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZombieSeen {
    view: View,
    forked: Vec<i32>,
    reaped: usize,
}

/// Step 5: PID 1 forks children that ignore SIGTERM and SIGINT, then exits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeardownSeen {
    view: View,
    others: Vec<i32>,
}

/// Step 5, the host after PID 1 exited: the other processes it had listed that are still
/// alive (same PID and start time, not a zombie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Left {
    left: Vec<i32>,
}

/// Step 6: PID 1 is a supervisor whose app fails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorSeen {
    view: View,
    app: i32,
    app_exit: Exit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    signals: Run<SignalsSeen, FromHost>,
    /// How PID 1 of the signals step ended (the host's SIGKILL).
    signals_exit: Exit,
    orphans: Run<OrphanSeen>,
    zombies: Run<ZombieSeen>,
    reaped: Run<ZombieSeen>,
    teardown: Run<TeardownSeen>,
    teardown_exit: Exit,
    after_teardown: Left,
    /// PID 1's stat once it sleeps, the supervisor still running.
    supervisor: Run<SupervisorSeen, Option<Stat>>,
}

impl Def for Init {
    const ID: &'static str = "init";
    const TITLE: &'static str = "The single-process model: the app is PID 1";
    const MECHANISM: &'static str = "CLONE_NEWPID: signals, orphans, zombies and the end of PID 1";
    const MAN: &'static str =
        "pid_namespaces(7), signal(7), proc(5), wait(2), prctl(2) (PR_SET_CHILD_SUBREAPER)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/init.md");
    const SEES: Parts = Ns::Pid
        .part()
        .with(Parts::SIGNALS)
        .with(Parts::STAT)
        .with(Parts::NS_PROCESSES);
    const FACTS: &'static [&'static str] = &[
        "app-is-pid-1",
        "pid1-has-no-sigterm-handler",
        "ordinary-process-dies-of-sigterm",
        "pid1-ignores-sigterm-from-inside",
        "pid1-ignores-sigterm-from-host",
        "sigkill-from-host-kills-pid1",
        "orphan-reparented-to-pid1",
        "host-sees-app-as-parent",
        "zombies-pile-up",
        "no-zombies-when-pid1-reaps",
        "pid1-exit-kills-namespace",
        "supervisor-hides-dead-app",
    ];
    const WORDS: &'static [&'static str] = &[
        "pid1",
        "signals",
        "zombie",
        "zombies",
        "orphans",
        "supervisor",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // Each probe is PID 1 of a namespace of its own; they run one after the other,
        // since the host signals some of them and waits for the end of others.
        let (signals, signals_exit) = m.probe_to_exit(&spec(), signals_probe, signal_from_host)?;
        let orphans = m.probe(&spec(), orphan_probe, |_| Ok(()))?;
        let zombies = m.probe(&spec(), zombie_probe(false), |_| Ok(()))?;
        let reaped = m.probe(&spec(), zombie_probe(true), |_| Ok(()))?;
        let (teardown, teardown_exit) = m.probe_to_exit(&spec(), teardown_probe, |_| Ok(()))?;
        let after_teardown = still_alive(&teardown)?;
        let supervisor = m.probe(&spec(), supervisor_probe, |pid| {
            // A moment after its report it may still run on its way to the blocking read:
            // wait (bounded) until it sleeps.
            let dir = proc_dir(pid);
            let mut last = None;
            poll(
                BUDGET,
                || {
                    last = stat_if_present(&dir).ok().flatten();
                    last
                },
                |s| s.is_none_or(|s| s.state != 'R'),
            );
            Ok(last)
        })?;
        Ok(Obs {
            signals,
            signals_exit,
            orphans,
            zombies,
            reaped,
            teardown,
            teardown_exit,
            after_teardown,
            supervisor,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let mut facts = Vec::new();
        let mut steps = Vec::new();
        let (s1, f1) = signals_judged(o, env);
        steps.push(s1);
        facts.extend(f1);
        let (s2, f2) = orphans_judged(&o.orphans);
        steps.push(s2);
        facts.extend(f2);
        let (s3, f3) = zombies_judged(&o.zombies, false);
        steps.push(s3);
        facts.push(f3);
        let (s4, f4) = zombies_judged(&o.reaped, true);
        steps.push(s4);
        facts.push(f4);
        let (s5, f5) = teardown_judged(o);
        steps.push(s5);
        facts.push(f5);
        let (s6, f6) = supervisor_judged(&o.supervisor);
        steps.push(s6);
        facts.push(f6);
        let survived = o.signals.host.probe.stat.is_some_and(|s| s.alive());
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "the app was PID 1: it {} SIGTERM, adopted an orphan, held {} zombies until it reaped, and its exit took {} processes with it",
                if survived { "outlived" } else { "did not outlive" },
                zombie_count(&o.zombies.host),
                other_processes(&o.teardown.host, o.teardown.pid).len(),
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn host_stat(o: &mut Obs) -> &mut Stat {
            o.signals.host.probe.stat.as_mut().expect("a recorded stat")
        }
        fn zombie(pid: i32, ppid: i32) -> Stat {
            Stat {
                pid,
                state: 'Z',
                ppid,
                flags: Stat::PF_EXITING,
                starttime: 1,
            }
        }
        vec![
            F {
                fact: "app-is-pid-1",
                what: "getpid() inside is not 1",
                change: |o, _| o.signals.inside.getpid = 7,
            },
            F {
                fact: "pid1-has-no-sigterm-handler",
                what: "PID 1 has a SIGTERM handler",
                change: |o, _| {
                    for v in [&mut o.signals.host, &mut o.signals.inside.view] {
                        let s = v.probe.signals.as_mut().expect("recorded masks");
                        s.caught = crate::observe::process::mask_with(s.caught, SIGTERM);
                    }
                },
            },
            F {
                fact: "pid1-has-no-sigterm-handler",
                what: "the host reads another SigCgt than the probe",
                change: |o, _| {
                    let s = o.signals.host.probe.signals.as_mut().expect("masks");
                    s.caught ^= 1 << 9;
                },
            },
            F {
                fact: "ordinary-process-dies-of-sigterm",
                what: "the worker exited on its own",
                change: |o, _| o.signals.inside.worker_exit = Exit::Exited { code: 0 },
            },
            F {
                fact: "pid1-ignores-sigterm-from-inside",
                what: "the host reads PID 1 as a zombie after the sender's kill",
                change: |o, _| host_stat(o).state = 'Z',
            },
            F {
                fact: "pid1-ignores-sigterm-from-inside",
                what: "PID 1 is exiting (PF_EXITING) after the sender's kill",
                change: |o, _| host_stat(o).flags |= Stat::PF_EXITING,
            },
            F {
                fact: "pid1-ignores-sigterm-from-inside",
                what: "SIGTERM is pending for PID 1",
                change: |o, _| {
                    let s = o.signals.host.probe.signals.as_mut().expect("masks");
                    s.shared_pending = crate::observe::process::mask_with(0, SIGTERM);
                },
            },
            F {
                fact: "pid1-ignores-sigterm-from-inside",
                what: "kill(1, SIGTERM) failed",
                change: |o, _| o.signals.inside.sender_exit = Exit::Exited { code: 2 },
            },
            F {
                fact: "pid1-ignores-sigterm-from-host",
                what: "PID 1 is a zombie after the host's SIGTERM and SIGSTOP",
                change: |o, _| {
                    if let Some(s) = o.signals.host_extra.after.as_mut() {
                        s.state = 'Z';
                    }
                },
            },
            F {
                fact: "pid1-ignores-sigterm-from-host",
                what: "the host's SIGTERM is still pending",
                change: |o, _| {
                    if let Some(s) = o.signals.host_extra.signals.as_mut() {
                        s.shared_pending = crate::observe::process::mask_with(0, SIGTERM);
                    }
                },
            },
            F {
                fact: "sigkill-from-host-kills-pid1",
                what: "PID 1 exited on its own",
                change: |o, _| o.signals_exit = Exit::Exited { code: 0 },
            },
            F {
                fact: "orphan-reparented-to-pid1",
                what: "the grandchild reads another parent",
                change: |o, _| o.orphans.inside.ppid_after = 2,
            },
            F {
                fact: "host-sees-app-as-parent",
                what: "the host sees the grandchild with another parent",
                change: |o, _| {
                    let app = o.orphans.pid;
                    if let Some(list) = o.orphans.host.ns_processes.as_mut() {
                        for s in list.iter_mut().filter(|s| s.pid != app) {
                            s.ppid = 1;
                        }
                    }
                },
            },
            F {
                fact: "zombies-pile-up",
                what: "the host counts one zombie less",
                change: |o, _| {
                    let app = o.zombies.pid;
                    if let Some(list) = o.zombies.host.ns_processes.as_mut() {
                        if let Some(z) = list.iter_mut().find(|s| s.pid != app) {
                            z.state = 'S';
                        }
                    }
                },
            },
            F {
                fact: "no-zombies-when-pid1-reaps",
                what: "a zombie is left in the namespace",
                change: |o, _| {
                    let app = o.reaped.pid;
                    if let Some(list) = o.reaped.host.ns_processes.as_mut() {
                        list.push(zombie(app + 1, app));
                    }
                },
            },
            F {
                fact: "pid1-exit-kills-namespace",
                what: "one process outlived PID 1",
                change: |o, _| o.after_teardown.left.push(4242),
            },
            F {
                fact: "supervisor-hides-dead-app",
                what: "the supervisor was found dead",
                change: |o, _| {
                    if let Some(s) = o.supervisor.host_extra.as_mut() {
                        s.state = 'Z';
                    }
                },
            },
            F {
                fact: "supervisor-hides-dead-app",
                what: "the app is still in the namespace",
                change: |o, _| {
                    let app = o.supervisor.pid;
                    if let Some(list) = o.supervisor.host.ns_processes.as_mut() {
                        list.push(Stat {
                            pid: app + 1,
                            state: 'S',
                            ppid: app,
                            flags: 0,
                            starttime: 1,
                        });
                    }
                },
            },
        ]
    }
}

// ------------------------------------------------------------ the probe's helpers

/// A forked child inside the probe: closes every inherited fd but `keep` (the sandbox's
/// pipes to nsx among them: a child holding the report pipe open would keep nsx waiting
/// for its end), runs `f` and _exits with its code.
fn fork_child(keep: &[i32], f: impl FnOnce() -> i32) -> Result<i32> {
    // clone(2) with no flags but SIGCHLD: fork(2), in the probe's namespaces.
    match raw_clone(CloneFlags::empty()).ctx("fork", "a child of PID 1")? {
        None => {
            close_fds_except(keep);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit skips the parent's atexit handlers and buffers.
            unsafe { libc::_exit(code) }
        }
        Some(pid) => Ok(pid.as_raw()),
    }
}

/// waitpid(2) with a deadline; SIGKILLs the child when it runs out (never hangs).
fn wait_bounded(pid: i32, budget: Duration) -> Result<Exit> {
    let start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(s) => return Ok(Exit::from(s)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(crate::error::sys("waitpid", pid, e)),
        }
        if start.elapsed() >= budget {
            // kill(2) on our own unreaped child: its PID cannot have been reused.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            return Ok(Exit::from(
                waitpid(Pid::from_raw(pid), None).ctx("waitpid", pid)?,
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn close_fds_except(keep: &[i32]) {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this freshly forked child inherited; the
            // directory fd read_dir used is already closed (and EBADF is harmless).
            unsafe { libc::close(fd) };
        }
    }
}

fn block_forever() -> i32 {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Polls until `done` holds or the budget runs out; returns the last value seen.
fn poll<T>(budget: Duration, mut look: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let start = Instant::now();
    loop {
        let v = look();
        if done(&v) || start.elapsed() >= budget {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The probe looks at itself until `done` holds (bounded): a child's exit or pause is
/// asynchronous, and the probe reports only once its own /proc shows it.
fn observe_until(i: &Inside, done: impl Fn(&View) -> bool) -> Result<View> {
    let start = Instant::now();
    loop {
        let v = i.observe()?;
        if done(&v) || start.elapsed() >= BUDGET {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn proc_dir(pid: i32) -> std::path::PathBuf {
    Path::new("/proc").join(pid.to_string())
}

/// "0", or the errno kill(2) failed with.
fn sent(r: nix::Result<()>) -> String {
    match r {
        Ok(()) => "0".into(),
        Err(e) => format!("{e}"),
    }
}

// ------------------------------------------------------------------ step 1: signals

fn signals_probe(i: &mut Inside) -> Result<SignalsSeen> {
    let worker = fork_child(&[], block_forever)?;
    i.action(format!(
        "fork() = {worker}   (a worker: pause() forever, no handler)"
    ));
    let sender = fork_child(&[], move || {
        // kill(2) returns 0 once the signal is sent; for a PID 1 without a handler the
        // kernel then drops it (pid_namespaces(7)), which kill(2) does not say.
        let to_worker = kill(Pid::from_raw(worker), Signal::SIGTERM).is_ok();
        let to_pid1 = kill(Pid::from_raw(1), Signal::SIGTERM).is_ok();
        i32::from(!to_worker) | (i32::from(!to_pid1) << 1)
    })?;
    i.action(format!(
        "fork() = {sender}   (a sender: kill({worker}, SIGTERM); kill(1, SIGTERM))"
    ));
    // Once the sender is reaped, both its kill(2) calls have returned: the signal to PID
    // 1 was sent before PID 1 looks at itself and reports.
    let sender_exit = wait_bounded(sender, BUDGET)?;
    i.action(format!("waitpid({sender}): {sender_exit}"));
    let worker_exit = wait_bounded(worker, BUDGET)?;
    i.action(format!("waitpid({worker}): {worker_exit}"));
    Ok(SignalsSeen {
        view: i.observe()?,
        getpid: getpid().as_raw(),
        worker,
        worker_exit,
        sender,
        sender_exit,
    })
}

/// The host's signals to PID 1, after the probe reported: SIGTERM, then SIGSTOP (which an
/// ancestor may send: pid_namespaces(7)), then SIGKILL. A SIGTERM that was queued would
/// either still be pending (ShdPnd) or, with no handler, have killed PID 1 (its default
/// action, signal(7)); the order in which pending standard signals are taken is
/// unspecified (signal(7)), so the proof does not rest on it: state T with no SIGTERM
/// pending means PID 1 was alive after both, with the SIGTERM neither waiting nor acted on.
fn signal_from_host(pid: i32) -> Result<FromHost> {
    let p = Pid::from_raw(pid);
    // kill(2) on nsx's own unreaped child: its PID cannot have been reused.
    let term = sent(kill(p, Signal::SIGTERM));
    let stop = sent(kill(p, Signal::SIGSTOP));
    let dir = proc_dir(pid);
    let parts = Parts::SIGNALS.with(Parts::STAT);
    let read = || crate::observe::read_proc_with(&dir, parts).ok();
    let settled = poll(BUDGET, read, |p| {
        p.as_ref()
            .and_then(|p| p.stat)
            .is_none_or(|s| s.state == 'T' || !s.alive())
    });
    let killed = sent(kill(p, Signal::SIGKILL));
    Ok(FromHost {
        term,
        stop,
        kill: killed,
        after: settled.as_ref().and_then(|p| p.stat),
        signals: settled.as_ref().and_then(|p| p.signals),
    })
}

/// `SIGBUS SIGSEGV`, or "none": every signal in a status mask, by name (signal(7)).
pub fn signal_names(mask: u64) -> String {
    let names: Vec<String> = (1..=64)
        .filter(|n| mask_has(mask, *n))
        .map(signal_name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(" ")
    }
}

fn signal_name(n: i32) -> String {
    match Signal::try_from(n) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {n}"),
    }
}

/// Where a handler (`caught`) or an ignored disposition of a probe comes from.
fn origin(signo: i32, caught: bool) -> &'static str {
    match (signo, caught) {
        (libc::SIGSEGV | libc::SIGBUS, true) => {
            "the Rust runtime's handlers, which catch a fault on a thread's stack guard page to report a stack overflow"
        }
        (libc::SIGPIPE, false) => {
            "the Rust runtime ignores it, so that a write to a closed pipe fails with EPIPE instead of killing"
        }
        (_, true) => "a handler nsx installed before the clone (fork keeps handlers, execve resets them)",
        (_, false) => {
            "inherited from whoever started nsx (an ignored disposition survives fork and execve, signal(7))"
        }
    }
}

/// The sentence that decodes a probe's SigCgt and SigIgn, with nsx's own for contrast.
fn masks_note(probe: &Signals, nsx: Option<&Signals>) -> String {
    let mut parts = vec![decoded("SigCgt", probe.caught, true)];
    if let Some(nsx) = nsx {
        let reset: Vec<String> = (1..=64)
            .filter(|n| mask_has(nsx.caught, *n) && !mask_has(probe.caught, *n))
            .map(signal_name)
            .collect();
        if !reset.is_empty() {
            parts.push(format!(
                "nsx's own handlers for {} (its SigCgt {:016x}) are reset to the default in every probe (sandbox::signals::reset_in_child), so PID 1 has none for them",
                reset.join(", "),
                nsx.caught
            ));
        }
    }
    parts.push(decoded("SigIgn", probe.ignored, false));
    parts.join(". ")
}

/// `SigCgt 0000000000000440 = SIGBUS SIGSEGV: <where they come from>`.
fn decoded(line: &str, mask: u64, caught: bool) -> String {
    let signals: Vec<i32> = (1..=64).filter(|n| mask_has(mask, *n)).collect();
    let head = format!("{line} {mask:016x} = {}", signal_names(mask));
    let groups = group_by_origin(&signals, caught);
    match groups.as_slice() {
        [] => head,
        [(_, origin)] => format!("{head}: {origin}"),
        many => {
            let each: Vec<String> = many
                .iter()
                .map(|(names, origin)| format!("{names}: {origin}"))
                .collect();
            format!("{head} ({})", each.join("; "))
        }
    }
}

/// The signals grouped by where their disposition comes from: (names, origin).
fn group_by_origin(signals: &[i32], caught: bool) -> Vec<(String, &'static str)> {
    let mut groups: Vec<(&'static str, Vec<String>)> = Vec::new();
    for n in signals {
        let o = origin(*n, caught);
        match groups.iter_mut().find(|(g, _)| *g == o) {
            Some((_, names)) => names.push(signal_name(*n)),
            None => groups.push((o, vec![signal_name(*n)])),
        }
    }
    groups
        .into_iter()
        .map(|(o, names)| (names.join(" and "), o))
        .collect()
}

fn masks_val(s: Option<&Signals>, pick: fn(&Signals) -> u64) -> Val {
    match s {
        Some(s) => Val::text(signal_names(pick(s))),
        None => Val::None("not read".into()),
    }
}

fn stat_val(s: Option<&Stat>) -> Val {
    match s {
        Some(s) if s.exiting() && s.alive() => Val::text(format!("{} exiting", s.state_name())),
        Some(s) => Val::text(s.state_name()),
        None => Val::None("gone".into()),
    }
}

fn exit_val(e: &Exit) -> Val {
    Val::text(e.to_string())
}

/// "no signal pending", or the signals pending (SigPnd and ShdPnd together).
fn pending_text(s: Option<&Signals>) -> String {
    match s {
        None => "nothing read of its status".into(),
        Some(s) if s.any_pending() == 0 => "no signal pending".into(),
        Some(s) => format!("{} pending", signal_names(s.any_pending())),
    }
}

/// What the sender's exit status says about its two kill(2) calls.
fn sender_sent(e: &Exit) -> (bool, bool) {
    match e {
        Exit::Exited { code } => (code & 1 == 0, code & 2 == 0),
        _ => (false, false),
    }
}

fn signals_judged(o: &Obs, env: &Env) -> (Step, Vec<Fact>) {
    let run = &o.signals;
    let seen = &run.inside;
    let host = &run.host;
    let pid = run.pid;
    let h = &run.host_extra;
    let host_sig = host.probe.signals.as_ref();
    let inside_sig = seen.view.probe.signals.as_ref();
    let nsx_sig = env.baseline.probe.signals.as_ref();
    let after_inside = host.probe.stat.as_ref();
    let (to_worker, to_pid1) = sender_sent(&seen.sender_exit);
    let term_pending = |s: Option<&Signals>| s.is_none_or(|s| mask_has(s.any_pending(), SIGTERM));
    let no_handler = |s: Option<&Signals>| {
        s.is_some_and(|s| !mask_has(s.caught, SIGTERM) && !mask_has(s.blocked, SIGTERM))
    };
    let survived_inside = to_pid1
        && after_inside.is_some_and(|s| s.alive())
        && !term_pending(host_sig)
        && no_handler(host_sig);
    let stopped = h.term == "0" && h.stop == "0" && h.after.is_some_and(|s| s.state == 'T');
    let survived_host = stopped && !term_pending(h.signals.as_ref());
    let killed = o.signals_exit
        == Exit::Killed {
            signal: "SIGKILL".into(),
        };
    let worker_killed = seen.worker_exit
        == Exit::Killed {
            signal: "SIGTERM".into(),
        };
    let same_masks = host_sig.is_some() && host_sig == inside_sig;

    let facts = vec![
        Fact::new(
            "app-is-pid-1",
            format!(
                "the app is PID {} of its namespace (the host knows it as PID {pid})",
                seen.getpid
            ),
            seen.getpid == 1 && pid != 1 && host.probe.nspid == [pid, 1],
            json!({ "getpid": seen.getpid, "host_pid": pid, "nspid": host.probe.nspid }),
        ),
        Fact::new(
            "pid1-has-no-sigterm-handler",
            format!(
                "PID 1's handlers, SigCgt in {}/status as the host reads it, are {} (the same mask the probe reads): no SIGTERM handler, and the mask is not empty",
                host.source,
                host_sig.map_or("not read".into(), |s| signal_names(s.caught)),
            ),
            same_masks && no_handler(host_sig),
            json!({
                "host": host_sig.map(|s| format!("{:016x}", s.caught)),
                "inside": inside_sig.map(|s| format!("{:016x}", s.caught)),
                "nsx": nsx_sig.map(|s| format!("{:016x}", s.caught)),
            }),
        ),
        Fact::new(
            "ordinary-process-dies-of-sigterm",
            format!(
                "an ordinary process in the namespace, with no handler, got the same sender's SIGTERM and was {}",
                seen.worker_exit
            ),
            to_worker && worker_killed,
            json!({ "worker": seen.worker_exit }),
        ),
        Fact::new(
            "pid1-ignores-sigterm-from-inside",
            format!(
                "kill(1, SIGTERM) from another process in the namespace {}, and after it had returned the host read PID 1 in {}/stat as {}, with {}: with no handler, the kernel dropped the signal",
                if to_pid1 { "returned 0" } else { "failed" },
                host.source,
                stat_val(after_inside),
                pending_text(host_sig),
            ),
            survived_inside,
            json!({
                "kill_returned_0": to_pid1,
                "state": after_inside.map(|s| s.state.to_string()),
                "exiting": after_inside.map(|s| s.exiting()),
                "pending": host_sig.map(|s| format!("{:016x}", s.any_pending())),
            }),
        ),
        Fact::new(
            "pid1-ignores-sigterm-from-host",
            format!(
                "SIGTERM from the host is dropped too: after kill({pid}, SIGTERM) = {} and then SIGSTOP, the host read State {}, with {}: PID 1 took the later stop alive",
                h.term,
                stat_val(h.after.as_ref()),
                pending_text(h.signals.as_ref()),
            ),
            survived_host,
            json!({
                "term": h.term,
                "stop": h.stop,
                "state": h.after.map(|s| s.state.to_string()),
                "pending": h.signals.map(|s| format!("{:016x}", s.any_pending())),
            }),
        ),
        Fact::new(
            "sigkill-from-host-kills-pid1",
            format!(
                "SIGKILL from the parent namespace cannot be refused: PID 1 was {}",
                o.signals_exit
            ),
            killed && h.kill == "0",
            json!({ "status": o.signals_exit }),
        ),
    ];

    let pending_row = |label: &str, hv: Option<&Signals>, iv: Val| {
        Row::probe(
            label,
            "status SigPnd+ShdPnd",
            masks_val(hv, |s| s.any_pending()),
            iv,
        )
    };
    let rows = vec![
        Row::probe(
            "PID",
            "status Pid",
            Val::Pid(host.probe.pid),
            Val::Pid(seen.view.probe.pid),
        ),
        Row::probe(
            "handlers",
            "status SigCgt",
            masks_val(host_sig, |s| s.caught),
            masks_val(inside_sig, |s| s.caught),
        ),
        Row::probe(
            "ignored",
            "status SigIgn",
            masks_val(host_sig, |s| s.ignored),
            masks_val(inside_sig, |s| s.ignored),
        ),
        Row::probe(
            "blocked",
            "status SigBlk",
            masks_val(host_sig, |s| s.blocked),
            masks_val(inside_sig, |s| s.blocked),
        ),
        Row::probe(
            "worker after its TERM",
            "waitpid",
            Val::None("only its parent, PID 1, can wait for it".into()),
            exit_val(&seen.worker_exit),
        ),
        pending_row(
            "pending after kill(1,TERM)",
            host_sig,
            masks_val(inside_sig, |s| s.any_pending()),
        ),
        Row::probe(
            "state after kill(1,TERM)",
            "stat",
            stat_val(after_inside),
            Val::None("it reads itself running".into()),
        )
        .key(),
        Row::probe(
            "state after host TERM+STOP",
            "stat",
            stat_val(h.after.as_ref()),
            Val::None("sent from outside".into()),
        )
        .key(),
        pending_row(
            "pending then",
            h.signals.as_ref(),
            Val::None("stopped".into()),
        ),
        Row::probe(
            "exit after host KILL",
            "waitpid",
            exit_val(&o.signals_exit),
            Val::None("killed".into()),
        ),
        Row::own(
            "handlers",
            "status SigCgt",
            masks_val(nsx_sig, |s| s.caught),
            masks_val(inside_sig, |s| s.caught),
        ),
    ];
    let mut actions = run.actions.clone();
    actions.push(format!(
        "kill({pid}, SIGTERM) = {}; kill({pid}, SIGSTOP) = {}   (from the host)",
        h.term, h.stop
    ));
    actions.push(format!(
        "{}/stat: State {}",
        host.source,
        h.after.map_or("gone".into(), |s| s.state.to_string())
    ));
    actions.push(format!(
        "kill({pid}, SIGKILL) = {}; waitpid({pid}): {}",
        h.kill, o.signals_exit
    ));
    let mut step = kit::step(
        "signals",
        "signals: what reaches PID 1",
        run,
        &seen.view,
        rows,
    );
    step.actions = actions;
    let mut step = step.extra(json!({ "worker": seen.worker_exit }));
    if let Some(sig) = inside_sig {
        step = step.note(masks_note(sig, nsx_sig));
    }
    let step = step.takeaway(if survived_inside && survived_host {
        "kill(2) returned 0, yet PID 1 lived on: with no handler, the kernel drops SIGTERM to a namespace's PID 1, from inside and from the host alike; only SIGKILL (and SIGSTOP) from an ancestor get through".to_string()
    } else {
        "PID 1 did not survive a SIGTERM here: see the facts".to_string()
    });
    (step, facts)
}

// ------------------------------------------------------------------ step 2: orphans

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    // pipe(2): a report channel from the grandchild, and a hold it blocks on.
    nix::unistd::pipe().ctx("pipe", "inside the probe")
}

fn orphan_probe(i: &mut Inside) -> Result<OrphanSeen> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (report_r, report_w) = pipe()?;
    let (hold_r, hold_w) = pipe()?;
    // Raw numbers for the children: a closure that owned the fds would close them in
    // PID 1 when it is dropped there.
    let (rw, hr, hw) = (report_w.as_raw_fd(), hold_r.as_raw_fd(), hold_w.as_raw_fd());
    let parent = fork_child(&[rw, hr, hw], move || {
        let grandchild = fork_child(&[rw, hr], move || {
            // SAFETY: these fds were inherited by this process and are used once here.
            let (report, mut hold) = unsafe {
                (
                    std::fs::File::from_raw_fd(rw),
                    std::fs::File::from_raw_fd(hr),
                )
            };
            let me = getpid().as_raw();
            let start = Instant::now();
            // Wait (bounded) for our parent to be gone, then read who our parent is now.
            while nix::unistd::getppid().as_raw() != 1 && start.elapsed() < BUDGET {
                std::thread::sleep(Duration::from_millis(1));
            }
            let ppid = crate::observe::read_proc(Path::new("/proc/self"))
                .map(|p| p.ppid)
                .unwrap_or(-1);
            let mut w = report;
            let _ = w.write_all(format!("{me} {ppid}").as_bytes());
            drop(w);
            // Stay alive, so the host can look at us, until PID 1 goes.
            let mut b = [0u8; 1];
            let _ = hold.read(&mut b);
            0
        });
        if grandchild.is_ok() {
            0
        } else {
            1
        }
    })?;
    drop((report_w, hold_r));
    let parent_exit = wait_bounded(parent, BUDGET)?;
    i.action(format!(
        "fork() = {parent}; it forks a grandchild and exits; waitpid({parent}): {parent_exit}"
    ));
    let mut text = String::new();
    std::fs::File::from(report_r)
        .read_to_string(&mut text)
        .ctx(op::READ, "the grandchild's report")?;
    let mut f = text
        .split_whitespace()
        .map(|x| x.parse::<i32>().unwrap_or(-1));
    let (grandchild, ppid_after) = (f.next().unwrap_or(-1), f.next().unwrap_or(-1));
    i.action(format!(
        "the grandchild ({grandchild}) reads PPid in /proc/self/status after its parent exited: {ppid_after}"
    ));
    // PID 1 keeps the hold pipe open until it exits: the grandchild waits on it.
    std::mem::forget(hold_w);
    Ok(OrphanSeen {
        view: i.observe()?,
        parent,
        parent_exit,
        grandchild,
        ppid_after,
    })
}

/// The processes of a view's namespace other than `app` (the probe, as that side names
/// it).
fn other_processes(v: &View, app: i32) -> Vec<Stat> {
    v.ns_processes
        .iter()
        .flatten()
        .filter(|s| s.pid != app)
        .copied()
        .collect()
}

/// The row naming the app by the PID each side reads in its status.
fn app_row(host: i32, inside: i32) -> Row {
    Row::probe("the app", "status Pid", Val::Pid(host), Val::Pid(inside))
}

/// The row of the processes each side lists in the app's PID namespace.
fn namespace_row(host: &View, inside: &View) -> Row {
    Row::probe(
        "in the namespace",
        "*/stat",
        listed_val(host),
        listed_val(inside),
    )
}

fn listed_val(v: &View) -> Val {
    match &v.ns_processes {
        Some(list) => Val::Listed {
            count: list.len() as u64,
            first: list.iter().map(|s| s.pid).collect(),
        },
        None => Val::None("not read".into()),
    }
}

fn orphans_judged(run: &Run<OrphanSeen>) -> (Step, Vec<Fact>) {
    let seen = &run.inside;
    let app = run.pid;
    let host_others = other_processes(&run.host, app);
    let inside_others = other_processes(&seen.view, 1);
    let gc_host = host_others.first();
    let gc_inside = inside_others.first();
    let facts = vec![
        Fact::new(
            "orphan-reparented-to-pid1",
            format!(
                "a grandchild whose parent ({}) exited reads PPid {} in its own /proc/self/status: orphans are reparented to the namespace's PID 1",
                seen.parent, seen.ppid_after
            ),
            seen.ppid_after == 1
                && seen.grandchild > 1
                && gc_inside.is_some_and(|s| s.pid == seen.grandchild && s.ppid == 1),
            json!({ "ppid_inside": seen.ppid_after, "grandchild": seen.grandchild }),
        ),
        Fact::new(
            "host-sees-app-as-parent",
            format!(
                "the host lists {} other process in the probe's namespace, PID {} with PPid {} in its stat: the app's host PID",
                host_others.len(),
                gc_host.map_or(0, |s| s.pid),
                gc_host.map_or(0, |s| s.ppid)
            ),
            host_others.len() == 1 && gc_host.is_some_and(|s| s.ppid == app),
            json!({ "in_namespace": host_others.len(), "ppid": gc_host.map(|s| s.ppid), "host_pid": app }),
        ),
    ];
    let rows = vec![
        app_row(app, run.inside.view.probe.pid),
        namespace_row(&run.host, &seen.view),
        Row::probe(
            "the orphan",
            "*/stat",
            gc_host.map_or(Val::None("not listed".into()), |s| Val::Pid(s.pid)),
            gc_inside.map_or(Val::None("not listed".into()), |s| Val::Pid(s.pid)),
        ),
        Row::probe(
            "the orphan's parent",
            "*/stat PPid",
            gc_host.map_or(Val::None("not listed".into()), |s| Val::Pid(s.ppid)),
            gc_inside.map_or(Val::None("not listed".into()), |s| Val::Pid(s.ppid)),
        )
        .key(),
    ];
    let step = kit::step(
        "orphans",
        "orphans: PID 1 adopts them",
        run,
        &seen.view,
        rows,
    )
    .extra(json!({ "grandchild": { "inside": seen.grandchild, "pid": gc_host.map(|s| s.pid) } }))
    .takeaway(format!(
        "the orphan's parent is PID {} inside and PID {app} on the host: one process, the app",
        gc_inside.map_or(0, |s| s.ppid)
    ));
    (step, facts)
}

// ------------------------------------------------------------------ steps 3, 4: zombies

fn zombie_count(v: &View) -> usize {
    v.ns_processes
        .iter()
        .flatten()
        .filter(|s| s.state == 'Z')
        .count()
}

fn zombie_probe(reap: bool) -> impl FnOnce(&mut Inside) -> Result<ZombieSeen> {
    move |i: &mut Inside| {
        let mut forked = Vec::new();
        for _ in 0..CHILDREN {
            forked.push(fork_child(&[], || 0)?);
        }
        i.action(format!(
            "fork() × {CHILDREN} = {}; each child exits at once",
            join(&forked)
        ));
        let mut reaped = 0;
        if reap {
            for p in &forked {
                if wait_bounded(*p, BUDGET).is_ok() {
                    reaped += 1;
                }
            }
            i.action(format!("waitpid() × {CHILDREN}: PID 1 reaps each one"));
        } else {
            i.action("PID 1 never calls wait()");
        }
        // A child that exits is a zombie (State Z) until its parent waits for it: report
        // once the probe's own /proc shows every child's end.
        let view = observe_until(i, |v| {
            if reap {
                other_processes(v, 1).is_empty()
            } else {
                zombie_count(v) >= CHILDREN
            }
        })?;
        Ok(ZombieSeen {
            view,
            forked,
            reaped,
        })
    }
}

fn zombies_judged(run: &Run<ZombieSeen>, reap: bool) -> (Step, Fact) {
    let seen = &run.inside;
    let app = run.pid;
    let (zh, zi) = (zombie_count(&run.host), zombie_count(&seen.view));
    let host_others = other_processes(&run.host, app);
    let fact = if reap {
        Fact::new(
            "no-zombies-when-pid1-reaps",
            format!(
                "when PID 1 waits for its children ({} of {CHILDREN} reaped), the host lists no other process in the namespace and counts {zh} zombies",
                seen.reaped
            ),
            zh == 0 && seen.reaped == CHILDREN && host_others.is_empty(),
            json!({ "zombies": zh, "reaped": seen.reaped, "others": host_others.len() }),
        )
    } else {
        let parents_ok = host_others.iter().all(|s| s.ppid == app);
        Fact::new(
            "zombies-pile-up",
            format!(
                "when PID 1 never waits, the host counts {zh} zombies (State Z in their stat) in the namespace, all children of the app (PPid {app}), for {CHILDREN} children that exited; inside, PID 1 counts {zi}"
            ),
            zh == CHILDREN && zi == CHILDREN && host_others.len() == CHILDREN && parents_ok,
            json!({ "zombies": zh, "inside": zi, "children": CHILDREN, "parents_are_app": parents_ok }),
        )
    };
    let parent = |v: &View, me: i32| {
        let others = other_processes(v, me);
        match others.first() {
            Some(s) if others.iter().all(|o| o.ppid == s.ppid) => Val::Pid(s.ppid),
            Some(_) => Val::text("several"),
            None => Val::None("none left".into()),
        }
    };
    let rows = vec![
        app_row(app, seen.view.probe.pid),
        namespace_row(&run.host, &seen.view),
        Row::probe(
            "zombies",
            "*/stat State Z",
            Val::Num(zh as i64),
            Val::Num(zi as i64),
        )
        .key(),
        Row::probe(
            "their parent",
            "*/stat PPid",
            parent(&run.host, app),
            parent(&seen.view, 1),
        ),
        Row::probe(
            "reaped by PID 1",
            "waitpid",
            Val::None("only the parent can wait".into()),
            Val::Num(seen.reaped as i64),
        ),
    ];
    let (id, title) = if reap {
        ("zombies-reaped", "zombies: a PID 1 that reaps")
    } else {
        ("zombies", "zombies: a PID 1 that does not reap")
    };
    let step = kit::step(id, title, run, &seen.view, rows)
        .extra(json!({ "zombies": zh, "reaped": seen.reaped }))
        .takeaway(if reap {
            format!("PID 1 waited: {zh} zombies, and each child's PID is free again")
        } else {
            format!(
                "{zh} zombies hold their PIDs until their parent waits; orphans make that parent PID 1"
            )
        });
    (step, fact)
}

// ------------------------------------------------------------ step 5: the end of PID 1

fn teardown_probe(i: &mut Inside) -> Result<TeardownSeen> {
    let mut others = Vec::new();
    for _ in 0..OTHERS {
        others.push(fork_child(&[], || {
            // Even a process that ignores SIGTERM and SIGINT goes.
            // SAFETY: setting a disposition to SIG_IGN has no preconditions.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
            }
            block_forever()
        })?);
    }
    i.action(format!(
        "fork() × {OTHERS} = {}; each ignores SIGTERM and SIGINT and pauses forever",
        join(&others)
    ));
    i.action("PID 1 (the app) exits when nsx releases it");
    // Report once all of them sleep in pause(): just forked, one may still run.
    let view = observe_until(i, |v| {
        let o = other_processes(v, 1);
        o.len() >= OTHERS && o.iter().all(|s| s.state == 'S')
    })?;
    Ok(TeardownSeen { view, others })
}

/// After PID 1 of the teardown step exited: which of the other processes the host had
/// listed are still alive (the same PID and start time, not a zombie), bounded.
fn still_alive(run: &Run<TeardownSeen>) -> Result<Left> {
    let before = other_processes(&run.host, run.pid);
    let look = || -> Vec<i32> {
        before
            .iter()
            .filter(|s| {
                stat_if_present(&proc_dir(s.pid))
                    .ok()
                    .flatten()
                    .is_some_and(|now| now.starttime == s.starttime && now.alive())
            })
            .map(|s| s.pid)
            .collect()
    };
    Ok(Left {
        left: poll(BUDGET, look, |v| v.is_empty()),
    })
}

fn teardown_judged(o: &Obs) -> (Step, Fact) {
    let run = &o.teardown;
    let seen = &run.inside;
    let before = other_processes(&run.host, run.pid);
    let sleeping = before.iter().filter(|s| s.state == 'S').count();
    let left = &o.after_teardown.left;
    let fact = Fact::new(
        "pid1-exit-kills-namespace",
        format!(
            "when PID 1 {}, the {} other processes of its namespace (asleep, ignoring SIGTERM) were killed by the kernel: the host finds {} of them left",
            o.teardown_exit,
            before.len(),
            left.len()
        ),
        before.len() == OTHERS
            && sleeping == OTHERS
            && o.teardown_exit == (Exit::Exited { code: 0 })
            && left.is_empty(),
        json!({ "before": before.len(), "sleeping": sleeping, "left": left, "pid1": o.teardown_exit }),
    );
    let rows = vec![
        app_row(run.pid, seen.view.probe.pid),
        namespace_row(&run.host, &seen.view),
        Row::probe(
            "asleep in pause()",
            "*/stat State S",
            Val::Num(sleeping as i64),
            Val::Num(
                other_processes(&seen.view, 1)
                    .iter()
                    .filter(|s| s.state == 'S')
                    .count() as i64,
            ),
        ),
        Row::probe(
            "PID 1",
            "waitpid",
            exit_val(&o.teardown_exit),
            Val::None("it exited".into()),
        ),
        Row::probe(
            "left after PID 1 exited",
            "*/stat",
            Val::Num(left.len() as i64),
            Val::None("the namespace is gone".into()),
        )
        .key(),
    ];
    let mut step = kit::step(
        "pid1-exits",
        "the end of PID 1 is the end of the container",
        run,
        &seen.view,
        rows,
    );
    step.actions
        .push(format!("waitpid({}): {}", run.pid, o.teardown_exit));
    let step = step
        .extra(json!({ "others_inside": seen.others }))
        .takeaway(format!(
            "PID 1 exited and the kernel killed the {} others, even those ignoring SIGTERM: the container lives exactly as long as its PID 1",
            before.len()
        ));
    (step, fact)
}

// ------------------------------------------------ step 6: a supervisor as PID 1

fn supervisor_probe(i: &mut Inside) -> Result<SupervisorSeen> {
    let app = fork_child(&[], || 1)?;
    let app_exit = wait_bounded(app, BUDGET)?;
    i.action(format!(
        "PID 1 is a supervisor: fork() = {app} runs the app, which fails: waitpid: {app_exit}"
    ));
    i.action("the supervisor keeps running (as supervisord would, restarting or not)");
    Ok(SupervisorSeen {
        view: i.observe()?,
        app,
        app_exit,
    })
}

fn supervisor_judged(run: &Run<SupervisorSeen, Option<Stat>>) -> (Step, Fact) {
    let seen = &run.inside;
    let pid1 = run.host_extra.as_ref();
    let alive = pid1.is_some_and(|s| s.alive());
    let others = other_processes(&run.host, run.pid);
    let failed = seen.app_exit == (Exit::Exited { code: 1 });
    let fact = Fact::new(
        "supervisor-hides-dead-app",
        format!(
            "with a supervisor as PID 1, the app {} and the host lists {} in the namespace, yet PID 1 reads {} in its stat: a runtime that watches PID 1 sees a live container",
            seen.app_exit,
            match others.len() {
                0 => "no other process".to_string(),
                n => format!("{n} other processes"),
            },
            stat_val(pid1)
        ),
        failed && alive && others.is_empty(),
        json!({ "app": seen.app_exit, "others": others.len(), "pid1_state": pid1.map(|s| s.state.to_string()) }),
    );
    let rows = vec![
        Row::probe(
            "the app",
            "waitpid",
            Val::None("the supervisor's child".into()),
            exit_val(&seen.app_exit),
        ),
        namespace_row(&run.host, &seen.view),
        Row::probe(
            "PID 1, the supervisor",
            "stat",
            stat_val(pid1),
            Val::None("it reads itself running".into()),
        )
        .key(),
    ];
    let step = kit::step(
        "supervisor",
        "control: a supervisor as PID 1 hides a dead app",
        run,
        &seen.view,
        rows,
    )
    .extra(json!({ "app_inside": seen.app }))
    .note(format!(
        "a live PID 1 is not a healthy app: here PID 1 is {} while the app {} and is no longer in the namespace. A liveness probe (Kubernetes: an HTTP GET, a TCP connect or a command that must succeed) or a Docker HEALTHCHECK asks the app itself, and restarts the container or marks it unhealthy when the answer fails",
        stat_val(pid1),
        seen.app_exit
    ))
    .takeaway("watch the app, not PID 1: with the app as PID 1 its exit ends the container; under a supervisor only a health check finds it dead");
    (step, fact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_named_and_their_origin_said() {
        assert_eq!(signal_names(0), "none");
        assert_eq!(signal_names(0x440), "SIGBUS SIGSEGV");
        assert_eq!(signal_names(1 << 33), "signal 34");
        let probe = Signals {
            caught: 0x440,
            ignored: 0x1000,
            ..Signals::default()
        };
        let nsx = Signals {
            caught: 0x4443,
            ..probe
        };
        let note = masks_note(&probe, Some(&nsx));
        assert!(
            note.contains("SigCgt 0000000000000440 = SIGBUS SIGSEGV"),
            "{note}"
        );
        assert!(note.contains("stack overflow"), "{note}");
        assert!(note.contains("SIGHUP, SIGINT, SIGTERM"), "{note}");
        assert!(note.contains("SigIgn 0000000000001000 = SIGPIPE"), "{note}");
        // An ignored signal nsx does not set itself came from whoever started nsx.
        let quit = Signals {
            ignored: 0x1004,
            ..probe
        };
        let note = masks_note(&quit, None);
        assert!(note.contains("(SIGQUIT: inherited"), "{note}");
        assert!(note.contains("SIGPIPE: the Rust runtime"), "{note}");
    }

    #[test]
    fn the_senders_status_says_which_kill_failed() {
        assert_eq!(sender_sent(&Exit::Exited { code: 0 }), (true, true));
        assert_eq!(sender_sent(&Exit::Exited { code: 2 }), (true, false));
        assert_eq!(
            sender_sent(&Exit::Killed {
                signal: "SIGKILL".into()
            }),
            (false, false)
        );
    }
}
