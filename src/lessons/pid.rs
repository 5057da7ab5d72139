//! pid: a PID namespace gives the probe its own process numbers, starting at 1.
//!
//! pid_namespaces(7): the first process in a new PID namespace is its PID 1; the parent
//! namespace still sees it under an ordinary PID, and /proc/<pid>/status NSpid lists both.
//! What `ps` shows comes from a procfs mount, and a procfs shows the PID namespace of the
//! process that mounted it: without a fresh /proc in a new mount namespace, the probe
//! still lists the host's processes. The control run shows exactly that.

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{join, Lesson, Rootless, Run};
use crate::error::{op, Result};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::Spec;

pub const LESSON: Lesson = super::engine::lesson::<Pid>();

pub struct Pid;

/// What the probe reports: its view, and what getpid(2) says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    getpid: i32,
    view: View,
    /// What its first child's getpid(2) said (the unshare step only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_child: Option<i32>,
    /// The unshare step only: whether /proc/self/ns/pid_for_children could be read right
    /// after unshare(2), before the first fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_before_fork: Option<bool>,
}

/// The three probe runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// A plain fork: no new namespace.
    before: Run<Seen>,
    /// CLONE_NEWPID | CLONE_NEWNS with a fresh /proc.
    after: Run<Seen>,
    /// CLONE_NEWPID alone: the host's /proc still mounted.
    control: Run<Seen>,
    /// unshare(CLONE_NEWPID) by the probe itself, then one fork.
    unshare: Run<Seen>,
}

impl Def for Pid {
    const ID: &'static str = "pid";
    const TITLE: &'static str = "PID namespace: the probe becomes PID 1";
    const MECHANISM: &'static str = "CLONE_NEWPID + a fresh /proc in a new mount namespace";
    const MAN: &'static str = "pid_namespaces(7), proc(5), clone(2)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/pid.md");
    const SEES: Parts = Ns::Pid.part().with(Parts::PROCESSES);
    const FACTS: &'static [&'static str] = &[
        "before-same-view",
        "inside-pid-is-1",
        "host-pid-is-not-1",
        "nspid-lists-both",
        "pid-ns-differs",
        "host-sees-same-ns",
        "inside-sees-only-own",
        "control-old-proc-shows-host",
        "unshare-leaves-the-caller",
        "first-child-is-pid-1",
    ];
    const WORDS: &'static [&'static str] = &[
        "pids",
        "process",
        "processes",
        "ps",
        "pidns",
        "proc",
        "namespace",
        "namespaces",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let after = Spec {
            namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
            mount_proc: true,
            ..Spec::default()
        };
        // The three probes see nothing of one another (two have PID namespaces of their
        // own, none mounts anything the host sees): they run side by side.
        // The unshare probe makes its namespace itself: without root it needs a user
        // namespace of its own to hold CAP_SYS_ADMIN for that (user_namespaces(7)).
        let own_user = if m.rootless() {
            CloneFlags::CLONE_NEWUSER
        } else {
            CloneFlags::empty()
        };
        let [before, after, control, unshare] = m.probes_n(
            [
                Spec::new(CloneFlags::empty()),
                after,
                Spec::new(CloneFlags::CLONE_NEWPID),
                Spec::new(own_user),
            ],
            |k, inside| match k {
                3 => unshare_then_fork(inside),
                _ => Ok(Seen {
                    getpid: nix::unistd::getpid().as_raw(),
                    view: inside.observe()?,
                    first_child: None,
                    link_before_fork: None,
                }),
            },
            |_, _| Ok(()),
        )?;
        Ok(Obs {
            before,
            after,
            control,
            unshare,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let (b, a, c) = (&o.before, &o.after, &o.control);
        let (ai, ah) = (&a.inside.view, &a.host);
        let host_pid = ah.probe.pid;
        let mut facts = vec![
            Fact::new(
                "before-same-view",
                format!(
                    "before, both sides agree: getpid() = {}, the host sees PID {}, same pid namespace",
                    b.inside.getpid, b.host.probe.pid
                ),
                b.inside.getpid == b.host.probe.pid
                    && kit::same(b.inside.view.own(Ns::Pid), base.own(Ns::Pid)),
                json!({ "getpid": b.inside.getpid, "host_pid": b.host.probe.pid }),
            ),
            Fact::new(
                "inside-pid-is-1",
                format!(
                    "inside, getpid() returns {}: the probe is PID 1 of its namespace",
                    a.inside.getpid
                ),
                a.inside.getpid == 1,
                json!({ "getpid": a.inside.getpid }),
            ),
            Fact::new(
                "host-pid-is-not-1",
                format!("the host sees the same process as PID {host_pid}, an ordinary PID"),
                host_pid != 1 && host_pid == a.pid,
                json!({ "host_pid": host_pid, "cloned_pid": a.pid }),
            ),
            Fact::new(
                "nspid-lists-both",
                format!(
                    "NSpid in the host's {}/status lists both numbers: {}",
                    ah.source,
                    join(&ah.probe.nspid)
                ),
                ah.probe.nspid == [host_pid, 1],
                json!({ "nspid": ah.probe.nspid }),
            ),
            kit::ns_differs(Ns::Pid, ah, ai, base),
            Fact::new(
                "host-sees-same-ns",
                format!(
                    "the host reads the probe's namespace through {}/ns/pid and gets the same inode the probe sees ({})",
                    ah.source,
                    kit::ns_text(Ns::Pid, ah.probe.ns_of(Ns::Pid))
                ),
                kit::same(ah.probe.ns_of(Ns::Pid), ai.own(Ns::Pid)),
                json!({ "host_reads": ah.probe.ns_of(Ns::Pid), "inside": ai.own(Ns::Pid) }),
            ),
            Fact::new(
                "inside-sees-only-own",
                format!(
                    "the probe's fresh /proc lists {} process(es) ({}) while the host's lists {}",
                    ai.processes.count,
                    join(&ai.processes.first),
                    ah.processes.count
                ),
                ai.processes.count == 1 && ai.processes.first == [1] && ah.processes.count > 1,
                json!({ "inside": ai.processes.count, "host": ah.processes.count }),
            ),
            control_fact(c),
        ];
        let u = &o.unshare;
        facts.extend(unshare_facts(u, base));

        let cv = &c.inside.view;
        let steps = vec![
            step("before", "before: the probe forked with no new namespace", b),
            step(
                "after",
                "after: clone(CLONE_NEWPID | CLONE_NEWNS) and a fresh /proc",
                a,
            )
            .takeaway(format!(
                "one process, two numbers: PID {host_pid} to the host, PID {} to itself",
                a.inside.getpid
            )),
            step(
                "control",
                "control: CLONE_NEWPID alone, without a new mount namespace and a fresh /proc",
                c,
            )
            .note(format!(
                "getpid() says {}, but the probe still reads the host's /proc: it lists {} processes and /proc/self is {}",
                c.inside.getpid, cv.processes.count, cv.probe.pid
            ))
            .takeaway("ps reads /proc: a PID namespace needs its own /proc to hide the host's processes"),
            unshare_step(u),
        ];
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "the probe was PID {} inside and PID {host_pid} on the host; only with a /proc of its own did it list {} process instead of {}",
                a.inside.getpid, ai.processes.count, ah.processes.count
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-view",
                what: "getpid() before disagrees with the host",
                change: |o, _| o.before.inside.getpid += 1,
            },
            F {
                fact: "inside-pid-is-1",
                what: "getpid() inside is not 1",
                change: |o, _| o.after.inside.getpid = 7,
            },
            F {
                fact: "host-pid-is-not-1",
                what: "the host sees PID 1",
                change: |o, _| o.after.host.probe.pid = 1,
            },
            F {
                fact: "nspid-lists-both",
                what: "NSpid lists one number",
                change: |o, _| o.after.host.probe.nspid.truncate(1),
            },
            F {
                fact: "pid-ns-differs",
                what: "the probe is in the host's pid namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["pid"];
                    o.after.inside.view.own_ns.insert("pid".into(), host);
                },
            },
            F {
                fact: "host-sees-same-ns",
                what: "the host reads another inode through /proc/<pid>/ns/pid",
                change: |o, _| {
                    o.after.host.probe.ns.insert("pid".into(), 1);
                },
            },
            F {
                fact: "inside-sees-only-own",
                what: "the fresh /proc lists more than PID 1",
                change: |o, _| o.after.inside.view.processes.count = 5,
            },
            F {
                fact: "unshare-leaves-the-caller",
                what: "the caller moved into the new pid namespace",
                change: |o, _| {
                    let new = o.unshare.inside.view.own_ns["pid_for_children"];
                    o.unshare.inside.view.own_ns.insert("pid".into(), new);
                },
            },
            F {
                fact: "unshare-leaves-the-caller",
                what: "pid_for_children was not read",
                change: |o, _| {
                    o.unshare.inside.view.own_ns.remove("pid_for_children");
                },
            },
            F {
                fact: "first-child-is-pid-1",
                what: "the first child is PID 2",
                change: |o, _| o.unshare.inside.first_child = Some(2),
            },
            F {
                fact: "control-old-proc-shows-host",
                what: "the control's /proc lists only PID 1",
                change: |o, _| {
                    o.control.inside.view.processes.count = 1;
                },
            },
        ]
    }
}

fn control_fact(c: &Run<Seen>) -> Fact {
    let cv = &c.inside.view;
    Fact::new(
        "control-old-proc-shows-host",
        format!(
            "without a fresh /proc the probe is PID {} yet lists {} of the host's processes: ps reads /proc, and this /proc belongs to the host's PID namespace",
            c.inside.getpid, cv.processes.count
        ),
        c.inside.getpid == 1 && cv.processes.count > 1 && cv.probe.pid == c.host.probe.pid,
        json!({ "getpid": c.inside.getpid, "listed": cv.processes.count, "proc_self_pid": cv.probe.pid }),
    )
}

/// One step: the probe read two ways (status and its pid namespace link), then each
/// side's own world (its pid namespace, the processes its /proc lists).
fn step(id: &str, title: &str, run: &Run<Seen>) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    // A probe whose /proc/self is its host PID reads the host's procfs: the two counts
    // are one list read at two moments, and other processes came and went meanwhile.
    let one_procfs = inside.probe.pid == host.probe.pid;
    let isolated = inside.probe.pid != host.probe.pid;
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Pid, host, inside);
    let pid_row = Row::probe(
        "PID",
        "status Pid",
        Val::Pid(host.probe.pid),
        Val::Pid(inside.probe.pid),
    );
    let processes = Row::own(
        "processes listed",
        "/proc",
        kit::processes_val(host),
        kit::processes_val(inside),
    )
    .drift_if(
        one_procfs,
        "one /proc read at two moments: other processes came and went",
    );
    let rows = vec![
        if isolated { pid_row.key() } else { pid_row },
        Row::probe(
            "NSpid",
            "status NSpid",
            Val::Pids(host.probe.nspid.clone()),
            Val::Pids(inside.probe.nspid.clone()),
        ),
        Row::probe(
            "getpid()",
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::Pid(run.inside.getpid),
        ),
        ns_probe,
        ns_own,
        if id == "control" {
            processes.key()
        } else {
            processes
        },
    ];
    kit::step(id, title, run, inside, rows).extra(json!({ "getpid": run.inside.getpid }))
}

/// unshare(2) with CLONE_NEWPID: the caller stays where it is, and only its next child is
/// born in the new namespace (as its PID 1). pid_namespaces(7): "the first child created
/// by the calling process after unshare() ... has the PID 1". That is why `unshare --pid`
/// needs `--fork`.
fn unshare_then_fork(inside: &mut crate::sandbox::Inside) -> Result<Seen> {
    use crate::error::Context;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID).ctx(op::UNSHARE, "CLONE_NEWPID")?;
    inside.action("unshare(CLONE_NEWPID)");
    // The kernel hands out the new namespace's link only once it has a process (its
    // child reaper): until the first fork, readlink(2) of pid_for_children fails.
    let link_before_fork = nix::fcntl::readlink("/proc/self/ns/pid_for_children").is_ok();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "first child")?;
    // SAFETY: the probe is single-threaded (a clone of single-threaded nsx), so the child
    // may run any code; it only writes to the pipe and leaves with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(crate::error::sys(
            "fork",
            "the first child",
            nix::errno::Errno::last(),
        )),
        0 => {
            drop(r);
            let pid = nix::unistd::getpid().as_raw().to_ne_bytes();
            let ok = nix::unistd::write(&w, &pid).is_ok_and(|n| n == pid.len());
            // SAFETY: leaves without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        child => {
            drop(w);
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < buf.len() {
                match nix::unistd::read(&r, &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(crate::error::sys(op::READ, "the first child's pipe", e)),
                }
            }
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            inside.action(format!(
                "fork() = {child}   (its PID in the probe's own namespace)"
            ));
            Ok(Seen {
                getpid: nix::unistd::getpid().as_raw(),
                view: inside.observe()?,
                first_child: (got == buf.len()).then(|| i32::from_ne_bytes(buf)),
                link_before_fork: Some(link_before_fork),
            })
        }
    }
}

fn unshare_facts(u: &Run<Seen>, base: &View) -> Vec<Fact> {
    let uv = &u.inside.view;
    let (own, children) = (uv.own(Ns::Pid), uv.own_for_children(Ns::Pid));
    vec![
        Fact::new(
            "unshare-leaves-the-caller",
            format!(
                "after unshare(CLONE_NEWPID) the probe is still in the host's pid namespace ({}); only its pid_for_children link names the new one ({})",
                kit::ns_text(Ns::Pid, own),
                kit::ns_text(Ns::Pid, children)
            ),
            kit::same(own, base.own(Ns::Pid)) && kit::differ(children, own),
            json!({ "pid": own, "pid_for_children": children, "host": base.own(Ns::Pid) }),
        ),
        Fact::new(
            "first-child-is-pid-1",
            format!(
                "its first child's getpid() returned {}: the first process born in the new namespace is its PID 1, which is why unshare --pid needs --fork",
                u.inside.first_child.map_or("nothing".to_string(), |p| p.to_string())
            ),
            u.inside.first_child == Some(1),
            json!({ "first_child": u.inside.first_child }),
        ),
    ]
}

/// The unshare step: the caller's two links, and its first child.
fn unshare_step(u: &Run<Seen>) -> Step {
    let (host, inside) = (&u.host, &u.inside.view);
    let children = |v: Option<u64>| kit::ns_val(Ns::Pid, v);
    let rows = vec![
        Row::probe(
            "PID",
            "status Pid",
            Val::Pid(host.probe.pid),
            Val::Pid(inside.probe.pid),
        ),
        Row::probe(
            "pid namespace",
            "ns/pid",
            children(host.probe.ns_of(Ns::Pid)),
            children(inside.probe.ns_of(Ns::Pid)),
        ),
        Row::probe(
            "children's pid namespace",
            "ns/pid_for_children",
            children(host.probe.ns_for_children(Ns::Pid)),
            children(inside.probe.ns_for_children(Ns::Pid)),
        ),
        Row::own(
            "pid namespace",
            "ns/pid",
            children(host.own(Ns::Pid)),
            children(inside.own(Ns::Pid)),
        ),
        Row::own(
            "children's pid namespace",
            "ns/pid_for_children",
            children(host.own_for_children(Ns::Pid)),
            children(inside.own_for_children(Ns::Pid)),
        )
        .key(),
        Row::own(
            "its first child's getpid()",
            "a system call",
            Val::None("the host made no child there".into()),
            match u.inside.first_child {
                Some(p) => Val::Pid(p),
                None => Val::None("no report".into()),
            },
        ),
    ];
    kit::step(
        "unshare",
        "unshare: unshare(CLONE_NEWPID) in the probe itself, then one fork",
        u,
        inside,
        rows,
    )
    .note(match u.inside.link_before_fork {
        Some(false) => "right after unshare(), /proc/self/ns/pid_for_children could not be read: the kernel gives the new namespace to readers only once its first process, its PID 1, exists".to_string(),
        Some(true) => "right after unshare(), /proc/self/ns/pid_for_children could already be read on this kernel".to_string(),
        None => "the probe did not say whether pid_for_children could be read before the fork".to_string(),
    })
    .takeaway(format!(
        "unshare moved nobody: the probe kept PID {}; its first child became PID {} of the new namespace",
        u.inside.getpid,
        u.inside.first_child.map_or("-".to_string(), |p| p.to_string())
    ))
}
