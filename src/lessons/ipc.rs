//! ipc: an IPC namespace gives the probe its own System V IPC objects.
//!
//! ipc_namespaces(7): System V IPC objects (shared-memory segments, message queues,
//! semaphore sets) are found by a numeric key, and the table of keys belongs to an IPC
//! namespace. proc(5): /proc/sysvipc/* lists the objects of the *reader's* namespace:
//! there is no /proc/<pid>/sysvipc, so the tables are each side's own (the host's read at
//! the same moment as the probe's), and what the host reads *of the probe* is its
//! namespace link. A segment and a queue the probe creates in a new namespace appear in
//! its table and not in the host's; they vanish with the namespace. The control run
//! creates the same objects without the namespace: the host sees them, and nsx removes
//! them (IPC_RMID), with a guard for every way out.

use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::Result;
use crate::observe::sysvipc::SysvIpc;
use crate::observe::{self, Ns, Parts, Subject, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::sysvipc::{self as ipc, key_label, HostIpcGuard};
use crate::sandbox::{Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Ipc>();

pub struct Ipc;

/// What the probe made and saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    /// shmid and msqid, when the probe created the objects.
    created: Option<(i32, i32)>,
}

/// The control run: the objects made in the host's namespace, and what became of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    /// The key it used (a fresh one if the lesson's was taken meanwhile).
    key: i32,
    run: Run<Seen>,
    /// The host's own tables once the probe had exited (not yet reaped).
    outlived: SysvIpc,
    /// The IPC_RMID calls nsx made, as a student would type them.
    removed: Vec<String>,
    /// The host's own tables after the removal.
    left: SysvIpc,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// The random key of the before and after steps.
    key: i32,
    before: Run<Seen>,
    after: Run<Seen>,
    /// The host's own tables once the after probe had exited.
    after_exit: SysvIpc,
    control: Control,
}

impl Def for Ipc {
    const ID: &'static str = "ipc";
    const TITLE: &'static str = "IPC namespace: System V objects of its own";
    const MECHANISM: &'static str = "CLONE_NEWIPC + shmget(2) and msgget(2)";
    const MAN: &'static str = "ipc_namespaces(7), sysvipc(7), shmget(2), msgget(2), ipcs(1)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/ipc.md");
    const SEES: Parts = Ns::Ipc.part().with(Parts::SYSVIPC);
    const FACTS: &'static [&'static str] = &[
        "before-same-ipc-ns",
        "objects-visible-inside",
        "objects-absent-on-host",
        "new-ns-starts-empty",
        "ipc-ns-differs",
        "control-visible-to-host",
        "control-outlives-the-probe",
        "control-removed",
    ];
    const WORDS: &'static [&'static str] = &[
        "shm",
        "sysv",
        "msgqueue",
        "ipcns",
        "namespace",
        "namespaces",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // Objects a killed run left in the host's namespace (its guard never ran).
        let swept = ipc::sweep();
        for r in &swept.removed {
            m.note(format!(
                "removed a System V object left by an nsx run that was killed: {r}"
            ));
        }
        for f in swept.failed {
            let text =
                format!("a System V object left by a killed nsx run could not be removed: {f}");
            crate::warn!("nsx: warning: {text}");
            m.note(text);
        }
        // A random key the host does not hold, or "absent on the host" would prove nothing
        // and the control run's objects could not be told apart.
        let key = ipc::free_key()?;

        // Before: no new namespace, nothing created: both sides read the same tables.
        // After: the objects, created inside a new IPC namespace, where the before probe
        // cannot see them: the two run side by side. The control creates them in the
        // host's namespace, so it runs on its own, after both.
        let [before, after] = m.probes_n(
            [
                Spec::new(CloneFlags::empty()),
                Spec::new(CloneFlags::CLONE_NEWIPC),
            ],
            |k, i| if k == 0 { look(i) } else { create(key)(i) },
            |_, _| Ok(()),
        )?;
        // probes_n only releases the probes; once the after probe is reaped its namespace
        // is gone, and the host looks at its own tables once more.
        crate::sandbox::reap_released();
        let after_exit = host_tables()?;
        let control = control(m, key)?;
        Ok(Obs {
            key,
            before,
            after,
            after_exit,
            control,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let key = o.key;
        let label = key_label(key);
        let b = &o.before;
        let (host, inside) = (&o.after.host, &o.after.inside.view);
        let c = &o.control;
        let (ckey, chost) = (c.key, &c.run.host);
        let ids_match = c.run.inside.created.is_some_and(|(s, m)| {
            chost.sysvipc.shm_with_key(ckey).is_some_and(|x| x.id == s)
                && chost.sysvipc.msg_with_key(ckey).is_some_and(|x| x.id == m)
        });
        let facts = vec![
            Fact::new(
                "before-same-ipc-ns",
                format!(
                    "before, the probe is in the host's IPC namespace ({}) and reads the same /proc/sysvipc as the host: no object has key {label} on either side",
                    kit::ns_text(Ns::Ipc, b.inside.view.own(Ns::Ipc)),
                ),
                kit::same(b.inside.view.own(Ns::Ipc), base.own(Ns::Ipc))
                    && has_none(&b.inside.view.sysvipc, key)
                    && has_none(&b.host.sysvipc, key),
                json!({ "inside": b.inside.view.own(Ns::Ipc), "host": base.own(Ns::Ipc) }),
            ),
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
                    "at the same moment the host's own /proc/sysvipc has no segment and no queue with key {label}"
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
                inside.sysvipc.shm.len() == 1
                    && inside.sysvipc.msg.len() == 1
                    && has_both(&inside.sysvipc, key),
                json!({ "segments": inside.sysvipc.shm.len(), "queues": inside.sysvipc.msg.len() }),
            ),
            kit::ns_differs(Ns::Ipc, host, inside, base),
            Fact::new(
                "control-visible-to-host",
                format!(
                    "without CLONE_NEWIPC the same objects landed in the host's namespace: the host's own /proc/sysvipc lists them ({}; {}), with the ids the probe got",
                    shm_label(&chost.sysvipc, ckey),
                    msg_label(&chost.sysvipc, ckey)
                ),
                has_both(&chost.sysvipc, ckey) && ids_match,
                json!({ "host_shm": chost.sysvipc.shm_with_key(ckey), "host_msg": chost.sysvipc.msg_with_key(ckey), "created": c.run.inside.created.map(|(s, m)| json!({ "shmid": s, "msqid": m })) }),
            ),
            Fact::new(
                "control-outlives-the-probe",
                format!(
                    "after the probe (PID {}) exited, the host's /proc/sysvipc still listed both objects: in the host's namespace they outlive the process that made them",
                    c.run.pid
                ),
                has_both(&c.outlived, ckey),
                json!({ "shm": c.outlived.shm_with_key(ckey), "msg": c.outlived.msg_with_key(ckey) }),
            ),
            Fact::new(
                "control-removed",
                format!(
                    "nsx removed them with IPC_RMID ({} call(s)): the host's /proc/sysvipc no longer lists key {}",
                    c.removed.len(),
                    key_label(ckey)
                ),
                c.removed.len() == 2 && has_none(&c.left, ckey),
                json!({ "removed": c.removed.len(), "left_shm": c.left.shm_with_key(ckey), "left_msg": c.left.msg_with_key(ckey) }),
            ),
        ];
        let steps = vec![
            step(
                "before",
                "before: the probe forked with no new namespace",
                &o.before,
                key,
                key,
            ),
            step(
                "after",
                "after: clone(CLONE_NEWIPC), then shmget and msgget inside",
                &o.after,
                key,
                key,
            )
            .note(format!(
                "the probe (PID {}) has exited and the host's /proc/sysvipc {} key KEY: nsx had nothing to remove, the objects existed only in the probe's IPC namespace",
                o.after.pid,
                if has_none(&o.after_exit, key) { "still has no" } else { "now lists" }
            ))
            .takeaway(format!(
                "one key, two tables: {} in the probe's namespace, nothing in the host's",
                if has_both(&inside.sysvipc, key) { "a segment and a queue" } else { "no objects" }
            )),
            step(
                "control",
                "control: the same objects created without a new IPC namespace",
                &c.run,
                ckey,
                key,
            )
            .note(format!(
                "after the probe exited, the host's table {} key KEY; nsx then made {} IPC_RMID call(s) on the host, and {}",
                if has_both(&c.outlived, ckey) { "still listed" } else { "no longer listed" },
                c.removed.len(),
                if has_none(&c.left, ckey) { "the key is gone" } else { "the key is still listed" }
            ))
            .takeaway("without an IPC namespace the objects are the host's: they outlive their creator until someone removes them"),
        ];
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "the probe's segment and queue lived in its own IPC namespace ({} object(s) there, none with key {label} in the host's) and died with it; made without the namespace, they stayed on the host until IPC_RMID",
                inside.sysvipc.shm.len() + inside.sysvipc.msg.len()
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-ipc-ns",
                what: "the before probe is in another ipc namespace",
                change: |o, _| {
                    o.before.inside.view.own_ns.insert("ipc".into(), 1);
                },
            },
            F {
                fact: "before-same-ipc-ns",
                what: "the host already has an object with the key",
                change: |o, _| {
                    let seg = o.after.inside.view.sysvipc.shm[0].clone();
                    o.before.host.sysvipc.shm.push(seg);
                },
            },
            F {
                fact: "objects-visible-inside",
                what: "the probe's table lacks the queue",
                change: |o, _| o.after.inside.view.sysvipc.msg.clear(),
            },
            F {
                fact: "objects-absent-on-host",
                what: "the host's own table lists the probe's segment",
                change: |o, _| {
                    let seg = o.after.inside.view.sysvipc.shm[0].clone();
                    o.after.host.sysvipc.shm.push(seg);
                },
            },
            F {
                fact: "new-ns-starts-empty",
                what: "the new namespace holds a segment nobody made there",
                change: |o, _| {
                    let mut seg = o.after.inside.view.sysvipc.shm[0].clone();
                    seg.key += 1;
                    seg.id += 1;
                    o.after.inside.view.sysvipc.shm.push(seg);
                },
            },
            F {
                fact: "ipc-ns-differs",
                what: "the probe is in the host's ipc namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["ipc"];
                    o.after.inside.view.own_ns.insert("ipc".into(), host);
                },
            },
            F {
                fact: "control-visible-to-host",
                what: "the host's table lacks the control's objects",
                change: |o, _| o.control.run.host.sysvipc = SysvIpc::default(),
            },
            F {
                fact: "control-visible-to-host",
                what: "the host lists another segment id than the probe created",
                change: |o, _| {
                    if let Some((s, _)) = o.control.run.inside.created.as_mut() {
                        *s += 1;
                    }
                },
            },
            F {
                fact: "control-outlives-the-probe",
                what: "the objects were gone once the probe exited",
                change: |o, _| o.control.outlived = SysvIpc::default(),
            },
            F {
                fact: "control-removed",
                what: "the key is still listed after IPC_RMID",
                change: |o, _| o.control.left = o.control.outlived.clone(),
            },
            F {
                fact: "control-removed",
                what: "nsx made one IPC_RMID call",
                change: |o, _| {
                    o.control.removed.pop();
                },
            },
        ]
    }
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

/// The host's own System V tables now (/proc/sysvipc of nsx's IPC namespace).
fn host_tables() -> Result<SysvIpc> {
    Ok(observe::observe_parts(Path::new("/proc"), Subject::SelfProcess, Parts::SYSVIPC)?.sysvipc)
}

/// How many keys the control step tries when its probe finds the key taken (EEXIST:
/// someone created an object with it between nsx's check and the probe's shmget).
const CONTROL_TRIES: usize = 3;

/// The control: the same objects in the host's namespace. The guard is armed before the
/// probe exists, so an error or a signal from here on still removes whatever the probe
/// made. The probe exits and stays unreaped while nsx looks at the host's table and
/// removes the objects: its PID, still taken, tells a concurrent run's sweep that they
/// belong to a live run.
fn control(m: &Measure, key: i32) -> Result<Control> {
    let mut key = key;
    let mut tries = 0;
    loop {
        tries += 1;
        let mut guard = HostIpcGuard::new(key)?;
        let run = match m.probe_with(
            &Spec::new(CloneFlags::empty()),
            |p| {
                guard.set_creator(p.pid());
                Ok(())
            },
            create(key),
            |_| Ok(()),
        ) {
            Ok(run) => run,
            Err(e) if e.errno() == Some(Errno::EEXIST) && tries < CONTROL_TRIES => {
                key = ipc::free_key()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        // probe_with released the probe: wait until it has exited, without reaping it.
        wait_exited(run.pid)?;
        let outlived = host_tables()?;
        let removed = guard
            .remove()?
            .into_iter()
            .map(|r| format!("(nsx, on the host) {r}"))
            .collect::<Vec<_>>();
        crate::sandbox::reap_released();
        let left = host_tables()?;
        let mut run = run;
        run.actions.extend(removed.iter().cloned());
        return Ok(Control {
            key,
            run,
            outlived,
            removed,
            left,
        });
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

/// One step: the probe's ipc namespace read by both sides, then each side's own
/// namespace and own tables (/proc/sysvipc shows the reader's namespace).
fn step(id: &str, title: &str, run: &Run<Seen>, key: i32, first_key: i32) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Ipc, host, inside);
    // The probe of the before and control steps reads the host's tables: one table read
    // at two moments, where other processes' objects may come and go.
    let one_table = kit::same(host.own(Ns::Ipc), inside.own(Ns::Ipc));
    // Objects of other nsx runs (their random keys) come and go in the host's table
    // while this run reads it: they are not counted.
    let count = |t: &SysvIpc| {
        let counted = |k: i32| k == key || !ipc::is_nsx_key(k);
        let n = t.shm.iter().filter(|s| counted(s.key)).count()
            + t.msg.iter().filter(|m| counted(m.key)).count();
        Val::Count(n as u64)
    };
    let segment = Row::own(
        "segment KEY",
        "sysvipc/shm",
        shm_label(&host.sysvipc, key),
        shm_label(&inside.sysvipc, key),
    );
    let rows = vec![
        ns_probe,
        ns_own,
        if id == "after" {
            segment.key()
        } else {
            segment
        },
        Row::own(
            "queue KEY",
            "sysvipc/msg",
            msg_label(&host.sysvipc, key),
            msg_label(&inside.sysvipc, key),
        ),
        Row::own(
            "objects listed",
            "sysvipc/shm, msg",
            count(&host.sysvipc),
            count(&inside.sysvipc),
        )
        .drift_if(
            one_table,
            "one table read at two moments: other processes' objects came and went",
        ),
    ];
    let step = kit::step(id, title, run, inside, rows);
    let step = match id {
        "before" => step.note(format!(
            "KEY is {}, a random key nsx checked no object used; /proc/sysvipc lists the objects of the reader's IPC namespace, so each side reads its own table (objects of other nsx runs, which come and go, are not counted)",
            key_label(key)
        )),
        _ if id == "control" && key != first_key => step.note(format!(
            "KEY is {} here: the first key was taken meanwhile, so the control used a fresh one",
            key_label(key)
        )),
        _ => step,
    };
    step.extra(json!({
        "ipc_key": key,
        "key": key_label(key),
        "created": run.inside.created.map(|(s, m)| json!({ "shmid": s, "msqid": m })),
    }))
}
