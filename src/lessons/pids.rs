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
//! probe's own exit completes.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cgroup_steps::{self as cs, Log};
use super::{Ctx, Lesson, Rootless};
use crate::cgroup::{Controller, LessonCgroup, PidsStats};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{self, describe, raw_clone, Inside, Spec};

/// pids.max unless `--pids` says otherwise.
pub const DEFAULT_PIDS: u64 = 8;
/// The largest `--pids` the lesson takes: the "before" step forks this many (plus
/// [`BEYOND`]) with no lesson limit.
pub const MAX_PIDS: u64 = 64;
/// Without a limit the probe stops after pids.max + BEYOND forks: enough to show it could
/// go past the limit, never a fork bomb.
pub const BEYOND: u64 = 4;

pub const LESSON: Lesson = Lesson {
    id: "pids",
    title: "Process limit: fork fails at pids.max",
    mechanism: "a pids cgroup: mkdir, write pids.max, write the probe's PID into cgroup.procs; the probe is PID 1 of a new PID namespace",
    man: "cgroups(7); kernel docs admin-guide/cgroup-v1/pids.rst and cgroup-v2.rst (PID); fork(2); pid_namespaces(7)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/pids.md"),
    sees: Parts::CGROUP,
    facts: &[],
    words: &["cgroups", "cgroup", "limits", "limit", "fork", "forkbomb"],
    imp: super::Imp::Old(run),
};

pub fn check_options(pids: u64) -> Result<()> {
    if pids > MAX_PIDS {
        return Err(Error::Usage(format!(
            "--pids {pids}: the pids lesson takes a limit from 1 to {MAX_PIDS}: its first step forks that many processes and {BEYOND} more with no lesson limit, on a machine others may use"
        )));
    }
    Ok(())
}

/// What the probe reports.
#[derive(Debug, Serialize, Deserialize)]
struct Forked {
    view: View,
    /// Tasks the probe itself had before forking (Threads: in /proc/self/status).
    threads: u64,
    /// Children forked successfully (each blocked on a pipe, so still counted).
    ok: u64,
    /// The errno of the first fork that failed, if one did.
    errno: Option<String>,
    errno_text: Option<String>,
    /// How many forks the probe would try at most.
    cap: u64,
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

fn threads_of_self() -> u64 {
    cs::status_number(std::path::Path::new("/proc/self/status"), "Threads").unwrap_or(1)
}

/// The probe: fork until fork fails or `cap` children exist; the children block on a
/// pipe whose write end only the probe holds.
fn fork_until_refused(inside: &mut Inside, cap: u64) -> Result<Forked> {
    let view = inside.observe()?;
    let threads = threads_of_self();
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
        view,
        threads,
        ok,
        errno: failed.map(|e| format!("{e:?}")),
        errno_text: failed.map(|e| e.desc().to_string()),
        cap,
    })
}

/// Host PIDs of the children of `pid`, from every /proc/<n>/stat's ppid (proc(5) field 4).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut kids: Vec<i32> = dir
        .flatten()
        .filter_map(|e| {
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let mut stat = String::new();
            File::open(e.path().join("stat"))
                .ok()?
                .read_to_string(&mut stat)
                .ok()?;
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(n)
        })
        .collect();
    kids.sort_unstable();
    kids
}

struct Ran {
    log: Log,
    host: View,
    forked: Forked,
    /// The children the host found while the probe was alive.
    children: Vec<i32>,
    /// Of those, the ones still present once the probe had been reaped.
    survivors: Vec<i32>,
    stats: Option<PidsStats>,
    status: String,
}

fn run_probe(mut cg: Option<&mut LessonCgroup>, cap: u64, mut log: Log) -> Result<Ran> {
    let spec = Spec::new(CloneFlags::CLONE_NEWPID);
    let mut child = sandbox::spawn(&spec, move |inside: &mut Inside| {
        fork_until_refused(inside, cap)
    })?;
    log.extend(std::mem::take(&mut child.actions));
    if let Some(cg) = cg.as_deref_mut() {
        // Held until `go`: the probe joins before its first fork.
        cg.add_process(child.pid())?;
        log.cgroup(cg);
    }
    let forked: Forked = child.run()?;
    log.extend(std::mem::take(&mut child.actions));
    // While the probe waits for its release its children are all alive.
    let host = child.observe_from_host()?;
    let children = children_of(child.pid());
    let stats = match cg {
        Some(cg) => {
            let s = cg.pids_stats()?;
            log.cgroup(cg);
            Some(s)
        }
        None => None,
    };
    // PID 1 exits: the kernel kills the rest of its namespace and reaps them before
    // PID 1's own exit completes, i.e. before waitpid returns here.
    let status = describe(child.finish()?);
    let survivors: Vec<i32> = children
        .iter()
        .copied()
        .filter(|c| std::path::Path::new(&format!("/proc/{c}")).exists())
        .collect();
    Ok(Ran {
        log,
        host,
        forked,
        children,
        survivors,
        stats,
        status,
    })
}

fn forks_label(f: &Forked) -> String {
    match &f.errno {
        Some(e) => format!("{} forks, then {e}", f.ok),
        None => format!("{} forks, all succeeded", f.ok),
    }
}

fn measured(ran: &Ran) -> Value {
    json!({
        "children_host_pids": ran.children,
        "survivors": ran.survivors,
    })
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let max = ctx.options.pids;
    check_options(max)?;
    let cap = max + BEYOND;
    let mut cg = cs::open(ctx, Controller::Pids)?;
    cg.set_pids_max(max)?;
    let mut setup = Log::default();
    setup.cgroup(&mut cg);
    let version = cg.version();
    let label = cs::cgroup_label(Controller::Pids, version);
    let path = |v: &View| cs::cgroup_path(v, Controller::Pids, version);

    // ---- before: nsx's own cgroup, no lesson limit.
    let before = run_probe(None, cap, Log::default())?;
    let bf = &before.forked;
    let before_fact = Fact::new(
        "before-forks-pass-the-limit",
        format!(
            "before, with no lesson limit, the probe forked {} children, all it tried (nsx stops at pids.max + {BEYOND} = {cap}): past the limit of {max} it is about to get",
            bf.ok
        ),
        bf.ok == cap && bf.errno.is_none() && before.children.len() as u64 == cap,
        json!({ "pids_max": max, "cap": cap, "ok": bf.ok, "errno": bf.errno, "measured": measured(&before) }),
    );
    let extra =
        json!({ "cap": cap, "ok": bf.ok, "errno": bf.errno, "measured": measured(&before) });
    let rows = vec![
        Row::new(label.clone(), path(&before.host), path(&bf.view)),
        Row::new(
            "processes: the probe and its children",
            format!("1 + {} (children in /proc/*/stat)", before.children.len()),
            format!("1 + {}", forks_label(bf)),
        ),
    ];
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "before".into(),
        title: format!(
            "before: the probe, PID 1 of a new PID namespace, forks up to {cap} children in nsx's own cgroup"
        ),
        actions: before.log.lines,
        rows,
        notes: vec![format!(
            "the probe (PID 1 of its namespace) {}; when waitpid() returned, {} of its {} children were left",
            before.status,
            before.survivors.len(),
            before.children.len()
        )],
        extra,
        host: before.host,
        container: before.forked.view,
    })?;

    // ---- after: in the lesson cgroup, under pids.max.
    let mut after = run_probe(Some(&mut cg), cap, setup)?;
    let stats = after
        .stats
        .ok_or_else(|| Error::Other("internal: the pids files were not read".into()))?;
    let mode_note = cs::mode_note(&cg, Controller::Pids);
    cg.remove()?;
    after.log.cgroup(&mut cg);

    let f = &after.forked;
    let expected = max.saturating_sub(f.threads);
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
        "threads": f.threads,
        "ok": f.ok,
        "errno": f.errno,
        "stats": stats,
        "measured": measured(&after),
    });
    let facts = vec![
        before_fact,
        Fact::new(
            "fork-fails-with-eagain",
            format!(
                "with pids.max = {max}, fork number {} failed with {} ({})",
                f.ok + 1,
                f.errno.as_deref().unwrap_or("no error"),
                f.errno_text.as_deref().unwrap_or("it did not fail")
            ),
            f.errno.as_deref() == Some("EAGAIN"),
            observed.clone(),
        ),
        Fact::new(
            "fails-at-the-limit-not-before",
            format!(
                "it failed at the limit, not before: {} fork(s) succeeded, and with the probe's own {} task(s) that makes {} = pids.max (pids.max counts every task in the cgroup, the probe included)",
                f.ok,
                f.threads,
                f.ok + f.threads
            ),
            f.errno.is_some() && f.ok == expected,
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
                "none of its {} children outlived the probe: the moment waitpid() returned its status ({}), {} of them were left, because a PID namespace ends with its PID 1 and the kernel reaps the rest before PID 1's exit completes",
                after.children.len(),
                after.status,
                after.survivors.len()
            ),
            after.survivors.is_empty() && after.children.len() as u64 == f.ok,
            observed.clone(),
        ),
    ];

    let mut notes = vec![format!("the host read the cgroup's files: {counters}")];
    if f.ok == 0 {
        notes.push(format!(
            "with pids.max = {max} the probe alone fills the cgroup: it could not fork at all"
        ));
    }
    notes.push(mode_note);
    let rosetta = cs::rosetta(Controller::Pids, version, &after.log.cgroup);
    notes.push(cs::rosetta_note(&rosetta));
    let rows = vec![
        Row::new(label, path(&after.host), path(&f.view)),
        Row::new(
            "processes: the probe and its children",
            format!("pids.current {}", stats.current),
            format!("1 + {}", forks_label(f)),
        ),
    ];
    let extra = json!({
        "pids_max": max,
        "cap": cap,
        "ok": f.ok,
        "errno": f.errno,
        "stats": stats,
        "measured": measured(&after),
        "cgroup": cs::extra(&cg, &after.log.cgroup, &rosetta),
    });
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "after".into(),
        title: format!("after: the probe forks in a cgroup with pids.max = {max}"),
        actions: after.log.lines,
        rows,
        notes,
        extra,
        host: after.host,
        container: after.forked.view,
    })?;
    cs::sweep(ctx);
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_above_the_lessons_range_are_usage_errors() {
        assert!(check_options(1).is_ok());
        assert!(check_options(MAX_PIDS).is_ok());
        let e = check_options(MAX_PIDS + 1).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("from 1 to 64"), "{e}");
    }

    #[test]
    fn our_own_children_are_found_by_ppid() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = children_of(std::process::id() as i32);
        let pid = child.id() as i32;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kids.contains(&pid), "{kids:?} lacks {pid}");
    }
}
