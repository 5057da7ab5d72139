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

use super::{join, ns_label, probes_n, processes_label, Ctx, Lesson, Rootless, Run};
use crate::error::Result;
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::Spec;

pub const LESSON: Lesson = Lesson {
    id: "pid",
    title: "PID namespace: the probe becomes PID 1",
    mechanism: "CLONE_NEWPID + a fresh /proc in a new mount namespace",
    man: "pid_namespaces(7), proc(5), clone(2)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/pid.md"),
    sees: Parts::ns("pid").with(Parts::PROCESSES),
    run,
};

/// What the probe reports: its view, and what getpid(2) says.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    getpid: i32,
    view: View,
}

fn look(inside: &mut crate::sandbox::Inside) -> Result<Seen> {
    Ok(Seen {
        getpid: nix::unistd::getpid().as_raw(),
        view: inside.observe()?,
    })
}

fn rows(run: &Run<Seen>) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside.view);
    vec![
        Row::new("PID of the probe", host.probe.pid, run.inside.getpid),
        Row::new(
            "NSpid in /proc/…/status",
            join(&host.probe.nspid),
            join(&inside.probe.nspid),
        ),
        Row::new(
            "PID the probe's /proc/self shows",
            host.probe.pid,
            inside.probe.pid,
        ),
        Row::new(
            "pid namespace",
            ns_label("pid", host.own_ns("pid")),
            ns_label("pid", inside.own_ns("pid")),
        ),
        Row::new(
            "processes listed in /proc",
            processes_label(host),
            processes_label(inside),
        ),
    ]
}

fn step(id: &str, title: &str, run: Run<Seen>, notes: Vec<String>) -> Step {
    Step {
        id: id.into(),
        title: title.into(),
        rows: rows(&run),
        actions: run.actions,
        notes,
        extra: json!({ "getpid": run.inside.getpid }),
        host: run.host,
        container: run.inside.view,
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let after_spec = Spec {
        namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
        mount_proc: true,
        ..Spec::default()
    };
    // The three probes see nothing of one another (two have PID namespaces of their own,
    // none mounts anything the host sees): they run side by side.
    let specs = [
        Spec::new(CloneFlags::empty()),
        after_spec,
        Spec::new(CloneFlags::CLONE_NEWPID),
    ];
    let [before, after, control] = probes_n(specs, |_, i| look(i), |_, _| Ok(()))?;
    let before_same = before.inside.getpid == before.host.probe.pid
        && before.inside.view.own_ns("pid") == ctx.baseline.own_ns("pid");
    let (b_getpid, b_host_pid) = (before.inside.getpid, before.host.probe.pid);
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        before,
        vec![],
    ))?;

    let a = (&after.host, &after.inside.view, after.inside.getpid);
    let host_pid = a.0.probe.pid;
    let facts_after = vec![
        Fact::new(
            "inside-pid-is-1",
            format!("inside, getpid() returns {}: the probe is PID 1 of its namespace", a.2),
            a.2 == 1,
            json!({ "getpid": a.2 }),
        ),
        Fact::new(
            "host-pid-is-not-1",
            format!("the host sees the same process as PID {host_pid}, an ordinary PID"),
            host_pid != 1 && host_pid == after.pid,
            json!({ "host_pid": host_pid, "cloned_pid": after.pid }),
        ),
        Fact::new(
            "nspid-lists-both",
            format!("NSpid in the host's /proc/{host_pid}/status lists both numbers: {}", join(&a.0.probe.nspid)),
            a.0.probe.nspid == [host_pid, 1],
            json!({ "nspid": a.0.probe.nspid }),
        ),
        Fact::new(
            "pid-ns-differs",
            format!(
                "the probe's pid namespace ({}) differs from the host's ({})",
                ns_label("pid", a.1.own_ns("pid")),
                ns_label("pid", ctx.baseline.own_ns("pid"))
            ),
            a.1.own_ns("pid") != ctx.baseline.own_ns("pid"),
            json!({ "inside": a.1.own_ns("pid"), "host": ctx.baseline.own_ns("pid") }),
        ),
        Fact::new(
            "host-sees-same-ns",
            "the host reads the probe's namespace through /proc/<pid>/ns/pid and gets the same inode the probe sees",
            a.0.probe.ns("pid") == a.1.own_ns("pid"),
            json!({ "host_reads": a.0.probe.ns("pid"), "inside": a.1.own_ns("pid") }),
        ),
        Fact::new(
            "inside-sees-only-own",
            format!(
                "the probe's fresh /proc lists {} process(es) ({}) while the host lists {}",
                a.1.processes.count,
                join(&a.1.processes.first),
                a.0.processes.count
            ),
            a.1.processes.count == 1 && a.1.processes.first == [1] && a.0.processes.count > 1,
            json!({ "inside": a.1.processes.count, "host": a.0.processes.count }),
        ),
    ];
    ctx.step(step(
        "after",
        "after: clone(CLONE_NEWPID | CLONE_NEWNS) and a fresh /proc",
        after,
        vec![],
    ))?;

    let c = (&control.host, &control.inside.view, control.inside.getpid);
    let control_note = format!(
        "getpid() says {}, but the probe still reads the host's /proc: it lists {} processes and /proc/self is {}",
        c.2, c.1.processes.count, c.1.probe.pid
    );
    let control_fact = Fact::new(
        "control-old-proc-shows-host",
        format!(
            "without a fresh /proc the probe is PID {} yet lists {} of the host's processes: ps reads /proc, and this /proc belongs to the host's PID namespace",
            c.2, c.1.processes.count
        ),
        c.2 == 1 && c.1.processes.count > 1 && c.1.probe.pid == c.0.probe.pid,
        json!({ "getpid": c.2, "listed": c.1.processes.count, "proc_self_pid": c.1.probe.pid }),
    );
    ctx.step(step(
        "control",
        "control: CLONE_NEWPID alone, without a new mount namespace and a fresh /proc",
        control,
        vec![control_note],
    ))?;

    let mut facts = vec![Fact::new(
        "before-same-view",
        format!("before, both sides agree: getpid() = {b_getpid}, the host sees PID {b_host_pid}, same pid namespace"),
        before_same,
        json!({ "getpid": b_getpid, "host_pid": b_host_pid }),
    )];
    facts.extend(facts_after);
    facts.push(control_fact);
    Ok(facts)
}
