//! init: the single-process model. The app is PID 1 of its PID namespace, and PID 1 has
//! jobs an ordinary process does not.
//!
//! pid_namespaces(7): PID 1 only receives the signals it installed a handler for, from
//! inside its namespace and from ancestors alike, except SIGKILL and SIGSTOP sent from an
//! ancestor; orphans in the namespace are reparented to it; it must reap them; when it
//! exits the kernel SIGKILLs every other process in the namespace. Each of these is
//! observed here, from inside and from the host, with bounded polling of /proc.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, Lesson, Rootless};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{self, describe, raw_clone, Inside, Spec};

pub const LESSON: Lesson = Lesson {
    id: "init",
    title: "The single-process model: the app is PID 1",
    mechanism: "CLONE_NEWPID: signals, orphans, zombies and the end of PID 1",
    man: "pid_namespaces(7), signal(7), wait(2), prctl(2) (PR_SET_CHILD_SUBREAPER)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/init.md"),
    sees: Parts::ns("pid").with(Parts::PROCESSES),
    facts: &[],
    imp: super::Imp::Old(run),
};

/// How long the host waits for something the kernel does asynchronously.
const BUDGET: Duration = Duration::from_secs(2);
/// How long the host gives a signal it expects to be dropped to have an effect.
const GRACE: Duration = Duration::from_millis(100);
/// Children forked for the zombie and teardown steps.
const CHILDREN: usize = 5;

fn spec() -> Spec {
    Spec {
        namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
        mount_proc: true,
        ..Spec::default()
    }
}

/// One process as the host's /proc/<pid>/stat shows it (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub starttime: u64,
}

/// Fields after the `(comm)`, which may itself contain spaces and parentheses.
pub fn parse_stat(pid: i32, text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

/// Every process the host sees in the PID namespace with inode `ns` (by
/// /proc/<pid>/ns/pid), except `except`.
fn in_namespace(ns: u64, except: i32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<Stat> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != except)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .and_then(|l| crate::observe::parse_ns_link(&l.to_string_lossy()))
                == Some(ns)
        })
        .filter_map(stat)
        .collect();
    out.sort_by_key(|s| s.pid);
    out
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

/// `SigCgt:` of /proc/<pid>/status as a mask (proc(5)): the signals with a handler.
fn sig_caught(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|s| {
            let m = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&m, 16).ok()
        })
        .unwrap_or(0)
}

fn has_handler(mask: u64, sig: Signal) -> bool {
    mask & (1 << (sig as i32 - 1)) != 0
}

fn handler_label(mask: u64, sig: Signal) -> String {
    if has_handler(mask, sig) {
        format!("installed ({} bit set in SigCgt)", sig.as_str())
    } else {
        format!("none (SigCgt {mask:016x})")
    }
}

/// A forked child inside the probe: closes every inherited fd but `keep` (the sandbox's
/// pipes to nsx among them: a child holding the report pipe open would keep nsx waiting
/// for its end), runs `f` and _exits with its code.
fn fork_child(keep: &[i32], f: impl FnOnce() -> i32) -> Result<i32> {
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

/// waitpid with a deadline; SIGKILLs the child when it runs out (never hangs).
fn wait_bounded(pid: i32, budget: Duration) -> Result<WaitStatus> {
    let start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(s) => return Ok(s),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(crate::error::sys("waitpid", pid, e)),
        }
        if start.elapsed() >= budget {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            return waitpid(Pid::from_raw(pid), None).ctx("waitpid", pid);
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

// ---------------------------------------------------------------- step 1: signals

#[derive(Debug, Serialize, Deserialize)]
struct SignalsSeen {
    view: View,
    getpid: i32,
    /// SigCgt of PID 1 itself.
    caught: u64,
    /// How the ordinary process that got SIGTERM ended.
    worker: String,
    worker_killed_by_term: bool,
    /// kill(1, SIGTERM) from a sibling returned 0 (the signal was "sent").
    sent_to_pid1: bool,
}

fn signals_probe(i: &mut Inside) -> Result<SignalsSeen> {
    let worker = fork_child(&[], block_forever)?;
    i.action(format!(
        "fork() = {worker}   (a worker: pause() forever, no handler)"
    ));
    let sender = fork_child(&[], move || {
        let a = kill(Pid::from_raw(worker), Signal::SIGTERM).is_ok();
        let b = kill(Pid::from_raw(1), Signal::SIGTERM).is_ok();
        if a && b {
            0
        } else {
            1
        }
    })?;
    i.action(format!(
        "fork() = {sender}   (a sender: kill({worker}, SIGTERM); kill(1, SIGTERM))"
    ));
    let sent = wait_bounded(sender, BUDGET)?;
    let w = wait_bounded(worker, BUDGET)?;
    i.action(format!("waitpid({worker}): {}", describe(w)));
    Ok(SignalsSeen {
        view: i.observe()?,
        getpid: getpid().as_raw(),
        caught: sig_caught("/proc/self/status"),
        worker: describe(w),
        worker_killed_by_term: matches!(w, WaitStatus::Signaled(_, Signal::SIGTERM, _)),
        sent_to_pid1: matches!(sent, WaitStatus::Exited(_, 0)),
    })
}

fn signals_step(ctx: &mut Ctx, facts: &mut Vec<Fact>) -> Result<()> {
    let mut child = sandbox::spawn(&spec(), signals_probe)?;
    let seen: SignalsSeen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let host_caught = sig_caught(&format!("/proc/{pid}/status"));
    // From the parent namespace: SIGTERM first (dropped too), then SIGKILL.
    kill(Pid::from_raw(pid), Signal::SIGTERM).ctx("kill SIGTERM", pid)?;
    std::thread::sleep(GRACE);
    let after_term = poll(
        BUDGET,
        || stat(pid),
        |s| s.as_ref().is_none_or(|s| s.state == 'S'),
    );
    kill(Pid::from_raw(pid), Signal::SIGKILL).ctx("kill SIGKILL", pid)?;
    let mut actions = std::mem::take(&mut child.actions);
    let status = child.finish()?;
    actions.push(format!(
        "kill({pid}, SIGTERM) from the host; {} s later /proc/{pid}/stat says State {}",
        GRACE.as_secs_f32(),
        after_term.as_ref().map_or('-', |s| s.state)
    ));
    actions.push(format!(
        "kill({pid}, SIGKILL) from the host; waitpid: {}",
        describe(status)
    ));
    let term_survived = after_term
        .as_ref()
        .is_some_and(|s| s.state != 'Z' && s.state != 'X');
    let killed = matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _));
    let rows = vec![
        Row::new("PID of the app", pid, seen.getpid),
        Row::new(
            "SIGTERM handler (SigCgt in …/status)",
            handler_label(host_caught, Signal::SIGTERM),
            handler_label(seen.caught, Signal::SIGTERM),
        ),
        Row::new("an ordinary process gets SIGTERM", "-", &seen.worker),
        Row::new(
            "PID 1 gets SIGTERM from inside",
            "-",
            if seen.sent_to_pid1 {
                "still running"
            } else {
                "kill failed"
            },
        ),
        Row::new(
            "PID 1 gets SIGTERM from the host",
            if term_survived {
                "still running"
            } else {
                "gone"
            },
            "-",
        ),
        Row::new("PID 1 gets SIGKILL from the host", describe(status), "-"),
    ];
    facts.push(Fact::new(
        "app-is-pid-1",
        format!(
            "the app is PID {} of its namespace (the host knows it as PID {pid})",
            seen.getpid
        ),
        seen.getpid == 1 && pid != 1,
        json!({ "getpid": seen.getpid, "host_pid": pid }),
    ));
    facts.push(Fact::new(
        "ordinary-process-dies-of-sigterm",
        format!(
            "an ordinary process in the namespace, with no handler, {} on SIGTERM",
            seen.worker
        ),
        seen.worker_killed_by_term,
        json!({ "worker": seen.worker }),
    ));
    facts.push(Fact::new(
        "pid1-ignores-sigterm-from-inside",
        "PID 1, with no SIGTERM handler, kept running after another process in its namespace sent it SIGTERM: the kernel drops signals PID 1 has no handler for",
        seen.sent_to_pid1 && !has_handler(seen.caught, Signal::SIGTERM),
        json!({ "sent": seen.sent_to_pid1, "sigcgt": format!("{:016x}", seen.caught) }),
    ));
    facts.push(Fact::new(
        "pid1-ignores-sigterm-from-host",
        format!(
            "SIGTERM from the host is dropped too: {} s later PID 1 was still running (State {})",
            GRACE.as_secs_f32(),
            after_term.as_ref().map_or('-', |s| s.state)
        ),
        term_survived,
        json!({ "state": after_term.map(|s| s.state.to_string()) }),
    ));
    facts.push(Fact::new(
        "sigkill-from-host-kills-pid1",
        format!(
            "SIGKILL from the parent namespace cannot be refused: PID 1 was {}",
            describe(status)
        ),
        killed,
        json!({ "status": describe(status) }),
    ));
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "signals".into(),
        title: "signals: what reaches PID 1".into(),
        actions,
        rows,
        notes: vec![],
        extra: json!({ "worker": seen.worker }),
        host,
        container: seen.view,
    })
}

// ---------------------------------------------------------------- step 2: orphans

#[derive(Debug, Serialize, Deserialize)]
struct OrphanSeen {
    view: View,
    parent: i32,
    grandchild: i32,
    /// PPid of the grandchild, as it read its own /proc/self/status after its parent exited.
    ppid_after: i32,
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
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
            let ppid = crate::observe::read_proc(std::path::Path::new("/proc/self"))
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
    let st = wait_bounded(parent, BUDGET)?;
    i.action(format!(
        "fork() = {parent}; it forks a grandchild and exits; waitpid({parent}): {}",
        describe(st)
    ));
    let mut text = String::new();
    std::fs::File::from(report_r)
        .read_to_string(&mut text)
        .ctx("read", "the grandchild's report")?;
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
        grandchild,
        ppid_after,
    })
}

fn orphan_step(ctx: &mut Ctx, facts: &mut Vec<Fact>) -> Result<()> {
    let mut child = sandbox::spawn(&spec(), orphan_probe)?;
    let seen: OrphanSeen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let ns = seen.view.own_ns("pid");
    let others = poll(BUDGET, || in_namespace(ns, pid), |v| !v.is_empty());
    let actions = std::mem::take(&mut child.actions);
    child.finish()?;
    let gc_host = others.first().cloned();
    let gc_for_extra = gc_host.clone();
    let rows = vec![
        Row::new("the app (PID 1)", pid, 1),
        Row::new(
            "the orphaned grandchild",
            gc_host.as_ref().map_or("-".into(), |s| s.pid.to_string()),
            seen.grandchild,
        ),
        Row::new(
            "its parent after its own parent exited",
            gc_host
                .as_ref()
                .map_or("-".into(), |s| format!("PPid {}", s.ppid)),
            format!("PPid {}", seen.ppid_after),
        ),
    ];
    facts.push(Fact::new(
        "orphan-reparented-to-pid1",
        format!(
            "a grandchild whose parent ({}) exited reads PPid {} inside: orphans are reparented to the namespace's PID 1",
            seen.parent, seen.ppid_after
        ),
        seen.ppid_after == 1 && seen.grandchild > 1,
        json!({ "ppid_inside": seen.ppid_after, "grandchild": seen.grandchild }),
    ));
    facts.push(Fact::new(
        "host-sees-app-as-parent",
        format!(
            "the host sees the same grandchild (PID {}) with PPid {}: the app's host PID",
            gc_host.as_ref().map_or(0, |s| s.pid),
            gc_host.as_ref().map_or(0, |s| s.ppid)
        ),
        others.len() == 1 && gc_host.as_ref().is_some_and(|s| s.ppid == pid),
        json!({ "in_namespace": others.len(), "ppid": gc_host.map(|s| s.ppid), "host_pid": pid }),
    ));
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "orphans".into(),
        title: "orphans: PID 1 adopts them".into(),
        actions,
        rows,
        notes: vec![],
        extra: json!({
            "grandchild": { "inside": seen.grandchild, "pid": gc_for_extra.map(|s| s.pid) },
        }),
        host,
        container: seen.view,
    })
}

// ---------------------------------------------------------------- step 3: zombies

#[derive(Debug, Serialize, Deserialize)]
struct ZombieSeen {
    view: View,
    forked: Vec<i32>,
    reaped: usize,
}

fn zombie_probe(reap: bool) -> impl FnOnce(&mut Inside) -> Result<ZombieSeen> {
    move |i: &mut Inside| {
        let mut forked = Vec::new();
        for _ in 0..CHILDREN {
            forked.push(fork_child(&[], || 0)?);
        }
        i.action(format!(
            "fork() × {CHILDREN} = {}; each child exits at once",
            super::join(&forked)
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
        Ok(ZombieSeen {
            view: i.observe()?,
            forked,
            reaped,
        })
    }
}

fn zombie_step(ctx: &mut Ctx, facts: &mut Vec<Fact>, reap: bool) -> Result<()> {
    let mut child = sandbox::spawn(&spec(), zombie_probe(reap))?;
    let seen: ZombieSeen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let ns = seen.view.own_ns("pid");
    let zombies = |v: &Vec<Stat>| v.iter().filter(|s| s.state == 'Z').count();
    // Children that exit become zombies (state Z) until their parent waits for them.
    let seen_host = poll(
        BUDGET,
        || in_namespace(ns, pid),
        |v| {
            if reap {
                v.is_empty()
            } else {
                zombies(v) >= CHILDREN
            }
        },
    );
    let z = zombies(&seen_host);
    let actions = std::mem::take(&mut child.actions);
    child.finish()?;
    let (id, title) = if reap {
        ("zombies-reaped", "zombies: a PID 1 that reaps")
    } else {
        ("zombies", "zombies: a PID 1 that does not reap")
    };
    let rows = vec![
        Row::new("children that exited", CHILDREN, super::join(&seen.forked)),
        Row::new("reaped by PID 1 (wait)", "-", seen.reaped),
        Row::new(
            "zombies in the namespace (State Z in /proc/<pid>/stat)",
            z,
            "-",
        ),
        Row::new(
            "processes in the namespace",
            seen_host.len() + 1,
            super::processes_label(&seen.view),
        ),
    ];
    if reap {
        facts.push(Fact::new(
            "no-zombies-when-pid1-reaps",
            format!(
                "when PID 1 waits for its children, the host counts {z} zombies in the namespace ({} of {CHILDREN} reaped)",
                seen.reaped
            ),
            z == 0 && seen.reaped == CHILDREN && seen_host.is_empty(),
            json!({ "zombies": z, "reaped": seen.reaped }),
        ));
    } else {
        let parents_ok = seen_host.iter().all(|s| s.ppid == pid);
        facts.push(Fact::new(
            "zombies-pile-up",
            format!(
                "when PID 1 never waits, the host counts {z} zombies (State Z) in the namespace, all children of the app, for {CHILDREN} children that exited"
            ),
            z == CHILDREN && parents_ok,
            json!({ "zombies": z, "children": CHILDREN, "parents_are_app": parents_ok }),
        ));
    }
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        actions,
        rows,
        notes: vec![],
        extra: json!({ "zombies": z, "reaped": seen.reaped }),
        host,
        container: seen.view,
    })
}

// ------------------------------------------------------ step 4: the end of PID 1

#[derive(Debug, Serialize, Deserialize)]
struct TeardownSeen {
    view: View,
    others: Vec<i32>,
}

fn teardown_probe(i: &mut Inside) -> Result<TeardownSeen> {
    let mut others = Vec::new();
    for _ in 0..3 {
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
        "fork() × 3 = {}; each ignores SIGTERM and SIGINT and pauses forever",
        super::join(&others)
    ));
    i.action("PID 1 (the app) exits when nsx releases it");
    Ok(TeardownSeen {
        view: i.observe()?,
        others,
    })
}

fn teardown_step(ctx: &mut Ctx, facts: &mut Vec<Fact>) -> Result<()> {
    let mut child = sandbox::spawn(&spec(), teardown_probe)?;
    let seen: TeardownSeen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let ns = seen.view.own_ns("pid");
    // Bounded wait until all three sleep in pause(): just forked, one may still run.
    let before = poll(
        BUDGET,
        || in_namespace(ns, pid),
        |v| v.len() >= 3 && v.iter().all(|s| s.state == 'S'),
    );
    let mut actions = std::mem::take(&mut child.actions);
    // The probe exits 0 when released; the kernel's part is what happens to the others.
    let status = child.finish()?;
    let alive =
        |s: &Stat| stat(s.pid).is_some_and(|now| now.starttime == s.starttime && now.state != 'Z');
    let after = poll(
        BUDGET,
        || before.iter().filter(|s| alive(s)).count(),
        |n| *n == 0,
    );
    actions.push(format!("waitpid({pid}): {}", describe(status)));
    let host_pids: Vec<i32> = before.iter().map(|s| s.pid).collect();
    let states: String = before.iter().map(|s| s.state).collect();
    let rows = vec![
        Row::new(
            "other processes while PID 1 runs",
            format!(
                "{} ({}; states {states})",
                before.len(),
                super::join(&host_pids)
            ),
            format!("{} ({})", seen.others.len(), super::join(&seen.others)),
        ),
        Row::new("PID 1", describe(status), "exits"),
        Row::new("other processes after PID 1 exited", after, "-"),
    ];
    facts.push(Fact::new(
        "pid1-exit-kills-namespace",
        format!(
            "when PID 1 exited, the {} other processes in its namespace (even ones ignoring SIGTERM) were killed by the kernel: the host finds {after} of them left",
            before.len()
        ),
        before.len() == 3 && after == 0 && before.iter().all(|s| s.state != 'Z'),
        json!({ "before": before.len(), "after": after }),
    ));
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "pid1-exits".into(),
        title: "the end of PID 1 is the end of the container".into(),
        actions,
        rows,
        notes: vec![],
        extra: json!({ "others_inside": seen.others }),
        host,
        container: seen.view,
    })
}

// ------------------------------------------- step 5: a supervisor as PID 1

#[derive(Debug, Serialize, Deserialize)]
struct SupervisorSeen {
    view: View,
    app: i32,
    app_status: String,
}

fn supervisor_probe(i: &mut Inside) -> Result<SupervisorSeen> {
    let app = fork_child(&[], || 1)?;
    let st = wait_bounded(app, BUDGET)?;
    i.action(format!(
        "PID 1 is a supervisor: fork() = {app} runs the app, which fails: waitpid: {}",
        describe(st)
    ));
    i.action("the supervisor keeps running (as supervisord would, restarting or not)");
    Ok(SupervisorSeen {
        view: i.observe()?,
        app,
        app_status: describe(st),
    })
}

fn supervisor_step(ctx: &mut Ctx, facts: &mut Vec<Fact>) -> Result<()> {
    let mut child = sandbox::spawn(&spec(), supervisor_probe)?;
    let seen: SupervisorSeen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    // Wait (bounded) until it sleeps: a moment after reporting it may still be running
    // on its way to the blocking read.
    let state = poll(
        BUDGET,
        || stat(pid).map(|s| s.state).unwrap_or('-'),
        |s| *s == 'S',
    );
    let actions = std::mem::take(&mut child.actions);
    child.finish()?;
    let rows = vec![
        Row::new("the app", "-", &seen.app_status),
        Row::new(
            "the container's PID 1 (the supervisor)",
            format!("running (State {state})"),
            "running",
        ),
    ];
    facts.push(Fact::new(
        "supervisor-hides-dead-app",
        format!(
            "with a supervisor as PID 1, the app {} but the container's PID 1 was still running (State {state}): from outside, the container looks alive",
            seen.app_status
        ),
        seen.app_status == "exited with status 1" && matches!(state, 'S' | 'R'),
        json!({ "app": seen.app_status, "pid1_state": state.to_string() }),
    ));
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "supervisor".into(),
        title: "control: a supervisor as PID 1 hides a dead app".into(),
        actions,
        rows,
        notes: vec![],
        extra: json!({ "app_inside": seen.app }),
        host,
        container: seen.view,
    })
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let mut facts = Vec::new();
    signals_step(ctx, &mut facts)?;
    orphan_step(ctx, &mut facts)?;
    zombie_step(ctx, &mut facts, false)?;
    zombie_step(ctx, &mut facts, true)?;
    teardown_step(ctx, &mut facts)?;
    supervisor_step(ctx, &mut facts)?;
    if facts.is_empty() {
        return Err(Error::Other(
            "internal: the init lesson computed no facts".into(),
        ));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let text = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(
            parse_stat(42, text),
            Some(Stat {
                pid: 42,
                state: 'S',
                ppid: 7,
                starttime: 123456
            })
        );
        assert_eq!(parse_stat(1, "garbage"), None);
    }

    #[test]
    fn handlers_are_read_from_sigcgt_bits() {
        // SIGTERM is 15: bit 14.
        assert!(has_handler(1 << 14, Signal::SIGTERM));
        assert!(!has_handler(1 << 13, Signal::SIGTERM));
        assert!(handler_label(0, Signal::SIGTERM).starts_with("none"));
    }
}
