//! ipc: an IPC namespace gives the probe its own System V IPC objects.
//!
//! ipc_namespaces(7): System V IPC objects (shared-memory segments, message queues,
//! semaphore sets) are found by a numeric key, and the table of keys belongs to an IPC
//! namespace. /proc/sysvipc/* lists the objects of the *reader's* namespace. A segment
//! and a queue the probe creates in a new namespace appear in its /proc/sysvipc and not
//! in the host's, read at the same moment; they vanish with the namespace. The control
//! run creates the same objects without the namespace: the host sees them, and nsx
//! removes them (IPC_RMID), with a guard for every way out.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ns_label, probes_n, Ctx, Lesson, Rootless, Run};
use crate::error::Result;
use crate::observe::sysvipc::{read_sysvipc, SysvIpc};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::sysvipc::{self as ipc, key_label, HostIpcGuard};
use crate::sandbox::{Inside, Spec};

pub const LESSON: Lesson = Lesson {
    id: "ipc",
    title: "IPC namespace: System V objects of its own",
    mechanism: "CLONE_NEWIPC + shmget(2) and msgget(2)",
    man: "ipc_namespaces(7), sysvipc(7), shmget(2), msgget(2), ipcs(1)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/ipc.md"),
    sees: Parts::ns("ipc").with(Parts::SYSVIPC),
    facts: &[],
    words: &[
        "shm",
        "sysv",
        "msgqueue",
        "ipcns",
        "namespace",
        "namespaces",
    ],
    imp: super::Imp::Old(run),
};

/// What the probe made and saw.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    view: View,
    /// shmid and msqid, when the probe created the objects.
    created: Option<(i32, i32)>,
}

fn look(inside: &mut Inside) -> Result<Seen> {
    Ok(Seen {
        view: inside.observe()?,
        created: None,
    })
}

/// The probe's side: create a segment and a queue with `key`, then look.
fn create(key: i32) -> impl FnOnce(&mut Inside) -> Result<Seen> {
    move |inside| {
        let label = key_label(key);
        let shmid = ipc::create_shm(key)?;
        inside.action(format!(
            "shmget({label}, {}, IPC_CREAT | IPC_EXCL | 0600) = shmid {shmid}",
            ipc::SHM_BYTES
        ));
        let msqid = ipc::create_msg(key)?;
        inside.action(format!(
            "msgget({label}, IPC_CREAT | IPC_EXCL | 0600) = msqid {msqid}; msgsnd(msqid {msqid}, \"{}\")",
            String::from_utf8_lossy(ipc::MESSAGE)
        ));
        Ok(Seen {
            view: inside.observe()?,
            created: Some((shmid, msqid)),
        })
    }
}

fn shm_label(table: &SysvIpc, key: i32) -> String {
    match table.shm_with_key(key) {
        Some(s) => format!(
            "shmid {} · {} bytes · uid {} · perms {}",
            s.id, s.size, s.uid, s.perms
        ),
        None => "absent".to_string(),
    }
}

fn msg_label(table: &SysvIpc, key: i32) -> String {
    match table.msg_with_key(key) {
        Some(m) => format!(
            "msqid {} · {} message(s), {} bytes · uid {}",
            m.id, m.qnum, m.cbytes, m.uid
        ),
        None => "absent".to_string(),
    }
}

fn has_both(table: &SysvIpc, key: i32) -> bool {
    table.shm_with_key(key).is_some() && table.msg_with_key(key).is_some()
}

fn has_none(table: &SysvIpc, key: i32) -> bool {
    table.shm_with_key(key).is_none() && table.msg_with_key(key).is_none()
}

fn rows(host: &View, inside: &View, key: i32) -> Vec<Row> {
    let label = key_label(key);
    vec![
        Row::new(
            "ipc namespace",
            ns_label("ipc", host.own_ns("ipc")),
            ns_label("ipc", inside.own_ns("ipc")),
        ),
        Row::new(
            format!("segment {label} in /proc/sysvipc/shm"),
            shm_label(&host.sysvipc, key),
            shm_label(&inside.sysvipc, key),
        ),
        Row::new(
            format!("queue {label} in /proc/sysvipc/msg"),
            msg_label(&host.sysvipc, key),
            msg_label(&inside.sysvipc, key),
        ),
    ]
}

fn step(
    id: &str,
    title: &str,
    key: i32,
    run: Run<Seen>,
    extra: serde_json::Value,
    notes: Vec<String>,
) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        rows: rows(&run.host, &run.inside.view, key),
        actions: run.actions,
        notes,
        extra,
        host: run.host,
        container: run.inside.view,
    }
}

/// How many keys the control step tries when its probe finds the key taken (EEXIST:
/// someone created an object with it between nsx's check and the probe's shmget).
const CONTROL_TRIES: usize = 3;

/// The control probe: creates the objects in the host's namespace with `key` (or a fresh
/// key, if that one was taken meanwhile) and reports; the host looks at it; it exits and
/// stays unreaped ([`wait_exited`]). Returns the armed guard, what the probe saw, the
/// host's view, its PID and the actions.
fn control(key: i32) -> Result<(HostIpcGuard, Seen, View, i32, Vec<String>)> {
    let mut key = key;
    let mut tries = 0;
    loop {
        tries += 1;
        let mut guard = HostIpcGuard::new(key)?;
        let mut child = crate::sandbox::spawn(&Spec::new(CloneFlags::empty()), create(key))?;
        guard.set_creator(child.pid());
        let seen: Seen = match child.run() {
            Ok(seen) => seen,
            Err(e) if e.errno() == Some(Errno::EEXIST) && tries < CONTROL_TRIES => {
                key = ipc::free_key()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let host = child.observe_from_host()?;
        let pid = child.pid();
        let actions = std::mem::take(&mut child.actions);
        child.release();
        wait_exited(pid)?;
        return Ok((guard, seen, host, pid, actions));
    }
}

/// Waits until the released probe `pid` has exited, without reaping it: waitid(2) with
/// WEXITED | WNOWAIT leaves it a zombie, which [`crate::sandbox::reap_released`] reaps.
fn wait_exited(pid: i32) -> Result<()> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    loop {
        match waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => crate::sandbox::signals::check()?,
            Err(e) => return Err(crate::error::sys("waitid", pid, e)),
        }
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    // Objects a killed run left in the host's namespace (its guard never ran).
    let swept = ipc::sweep();
    for r in &swept.removed {
        ctx.note(format!(
            "removed a System V object left by an nsx run that was killed: {r}"
        ));
    }
    for f in swept.failed {
        super::cgroup_steps::left_behind(
            ctx,
            format!("a System V object left by a killed nsx run could not be removed: {f}"),
        );
    }
    // A random key the host does not hold, or "absent on the host" would prove nothing
    // and the control run's objects could not be told apart.
    let key = ipc::free_key()?;
    let label = key_label(key);
    let host_ipc = ctx.baseline.own_ns("ipc");
    let extra = |key: i32, created: Option<(i32, i32)>| json!({ "ipc_key": key, "key": key_label(key), "created": created.map(|(s, m)| json!({ "shmid": s, "msqid": m })) });

    // Before: no new namespace, nothing created: both sides read the same tables. After:
    // the same objects, created inside a new IPC namespace, where the before probe cannot
    // see them: the two run side by side. The control creates them in the host's
    // namespace, so it runs on its own, after both.
    let [before, after] = probes_n(
        [
            Spec::new(CloneFlags::empty()),
            Spec::new(CloneFlags::CLONE_NEWIPC),
        ],
        |k, i| if k == 0 { look(i) } else { create(key)(i) },
        |_, _| Ok(()),
    )?;
    let b = &before.inside.view;
    let mut facts = vec![Fact::new(
        "before-same-ipc-ns",
        format!(
            "before, the probe is in the host's IPC namespace ({}) and both read the same /proc/sysvipc: {} segment(s), {} queue(s) on the probe's side",
            ns_label("ipc", b.own_ns("ipc")),
            b.sysvipc.shm.len(),
            b.sysvipc.msg.len()
        ),
        b.own_ns("ipc") == host_ipc && has_none(&b.sysvipc, key) && has_none(&before.host.sysvipc, key),
        json!({ "inside": b.own_ns("ipc"), "host": host_ipc }),
    )];
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        key,
        before,
        extra(key, None),
        vec![],
    ))?;

    let (host, inside) = (&after.host, &after.inside.view);
    facts.extend([
        Fact::new(
            "objects-visible-inside",
            format!(
                "inside, /proc/sysvipc lists the segment ({}) and the queue ({}) with key {label}",
                shm_label(&inside.sysvipc, key),
                msg_label(&inside.sysvipc, key)
            ),
            has_both(&inside.sysvipc, key)
                && inside.sysvipc.msg_with_key(key).is_some_and(|m| m.qnum == 1),
            json!({ "shm": inside.sysvipc.shm_with_key(key), "msg": inside.sysvipc.msg_with_key(key) }),
        ),
        Fact::new(
            "objects-absent-on-host",
            format!(
                "at the same moment the host's /proc/sysvipc has no segment and no queue with key {label}"
            ),
            has_none(&host.sysvipc, key),
            json!({ "host_shm": host.sysvipc.shm_with_key(key), "host_msg": host.sysvipc.msg_with_key(key) }),
        ),
        Fact::new(
            "new-ns-starts-empty",
            format!(
                "the new namespace started empty: inside, /proc/sysvipc lists {} segment(s) and {} queue(s), only the probe's own",
                inside.sysvipc.shm.len(),
                inside.sysvipc.msg.len()
            ),
            inside.sysvipc.shm.len() == 1 && inside.sysvipc.msg.len() == 1,
            json!({ "segments": inside.sysvipc.shm.len(), "queues": inside.sysvipc.msg.len() }),
        ),
        Fact::new(
            "ipc-ns-differs",
            format!(
                "the probe's ipc namespace ({}) differs from the host's ({})",
                ns_label("ipc", inside.own_ns("ipc")),
                ns_label("ipc", host_ipc)
            ),
            inside.own_ns("ipc") != host_ipc && host.probe.ns("ipc") == inside.own_ns("ipc"),
            json!({ "inside": inside.own_ns("ipc"), "host": host_ipc, "host_reads": host.probe.ns("ipc") }),
        ),
    ]);
    let created = after.inside.created;
    // probe() only releases the probe; wait until it has exited, then look at the host's
    // table once more.
    crate::sandbox::reap_released();
    let after_exit = read_sysvipc(std::path::Path::new("/proc"))?;
    let note = format!(
        "the probe (PID {}) has exited and the host's /proc/sysvipc {} key {label}: nsx had nothing to remove, the objects existed only in the probe's IPC namespace",
        after.pid,
        if has_none(&after_exit, key) { "still has no" } else { "now lists" }
    );
    ctx.step(step(
        "after",
        "after: clone(CLONE_NEWIPC), then shmget and msgget inside",
        key,
        after,
        extra(key, created),
        vec![note],
    ))?;

    // Control: the same objects without the namespace land in the host's table. The
    // guard is armed before the probe exists, so an error or a signal from here on still
    // removes whatever the probe made.
    let (mut guard, seen, host, pid, mut actions) = control(key)?;
    let key = guard.key();
    let label = key_label(key);
    // The probe has exited, but nsx has not reaped it yet: its objects are still in the
    // host's table, and its PID, still taken, tells a concurrent run's sweep that they
    // belong to a live run.
    let outlived = read_sysvipc(std::path::Path::new("/proc"))?;
    let removed = guard.remove()?;
    crate::sandbox::reap_released();
    actions.extend(removed.iter().map(|r| format!("(nsx, on the host) {r}")));
    let left = read_sysvipc(std::path::Path::new("/proc"))?;
    let ids_match = seen.created.is_some_and(|(s, m)| {
        host.sysvipc.shm_with_key(key).is_some_and(|x| x.id == s)
            && host.sysvipc.msg_with_key(key).is_some_and(|x| x.id == m)
    });
    facts.extend([
        Fact::new(
            "control-visible-to-host",
            format!(
                "without CLONE_NEWIPC the same objects landed in the host's namespace: the host's /proc/sysvipc lists them ({}; {})",
                shm_label(&host.sysvipc, key),
                msg_label(&host.sysvipc, key)
            ),
            has_both(&host.sysvipc, key) && ids_match,
            json!({ "host_shm": host.sysvipc.shm_with_key(key), "host_msg": host.sysvipc.msg_with_key(key), "created": seen.created.map(|(s, m)| json!({ "shmid": s, "msqid": m })) }),
        ),
        Fact::new(
            "control-outlives-the-probe",
            format!(
                "after the probe (PID {pid}) exited, the host's /proc/sysvipc still listed both objects: in the host's namespace they outlive the process that made them"
            ),
            has_both(&outlived, key),
            json!({ "shm": outlived.shm_with_key(key), "msg": outlived.msg_with_key(key) }),
        ),
        Fact::new(
            "control-removed",
            format!(
                "nsx removed them with IPC_RMID ({} call(s)): the host's /proc/sysvipc no longer lists key {label}",
                removed.len()
            ),
            removed.len() == 2 && has_none(&left, key),
            json!({ "removed": removed.len(), "left_shm": left.shm_with_key(key), "left_msg": left.msg_with_key(key) }),
        ),
    ]);
    let removed_count = removed.len();
    let control = Run {
        inside: seen,
        host,
        host_extra: (),
        actions,
        pid,
    };
    let created = control.inside.created;
    ctx.step(step(
        "control",
        "control: the same objects created without a new IPC namespace",
        key,
        control,
        extra(key, created),
        vec![format!(
            "after the probe exited, the host's table {} key {label}; nsx then made {} IPC_RMID call(s) on the host, and {}",
            if has_both(&outlived, key) { "still listed" } else { "no longer listed" },
            removed_count,
            if has_none(&left, key) { "the key is gone" } else { "the key is still listed" }
        )],
    ))?;
    Ok(facts)
}
