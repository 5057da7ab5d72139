//! pod: containers that share a network, IPC and UTS namespace, as in a Kubernetes pod.
//!
//! A holder process (Kubernetes' "pause" container) creates the namespaces the pod's
//! containers share, names the pod and brings lo up, then does nothing but exist. Each
//! workload is cloned into PID and mount namespaces of its own and joins the holder's
//! net, IPC and UTS namespaces with setns(2) before it starts. So the two workloads talk
//! over 127.0.0.1 and share a hostname, while neither sees the other's processes or
//! mounts.

use std::net::{Ipv4Addr, SocketAddr};

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tcp::{self, Leg};
use super::{ns_label, Ctx, Lesson, Rootless};
use crate::error::Result;
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::netlink::Rtnl;
use crate::sandbox::{self, Inside, Join, Spec};

pub const LESSON: Lesson = Lesson {
    id: "pod",
    title: "Pod: two containers sharing network, IPC and UTS namespaces",
    mechanism: "a holder process owns CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS; workloads join them with setns(2)",
    man: "setns(2), namespaces(7), network_namespaces(7), nsenter(1)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/pod.md"),
    sees: Parts::NS.with(Parts::HOSTNAME).with(Parts::LINKS).with(Parts::PROCESSES),
    facts: &[],
    words: &["pods", "kubernetes", "k8s", "pause", "sidecar", "setns"],
    imp: super::Imp::Old(run),
};

/// The pod's name, set by the holder in the UTS namespace it owns.
pub const POD_HOSTNAME: &str = "nsx-pod";
/// Workload A's port on the pod's loopback.
pub const PORT: u16 = 8080;

/// What every process of the pod reports.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    getpid: i32,
    view: View,
    /// Workload A: the connection it answered; workload B: the one it made.
    leg: Option<Leg>,
}

fn holder_probe(inside: &mut Inside) -> Result<Seen> {
    // A new network namespace has lo, down (network_namespaces(7)); the pod's
    // containers will talk over 127.0.0.1, so the holder brings it up once for all.
    let mut rtnl = Rtnl::open()?;
    rtnl.set_up("lo")?;
    inside.action("ip link set lo up   (the holder, inside)");
    Ok(Seen {
        getpid: nix::unistd::getpid().as_raw(),
        view: inside.observe()?,
        leg: None,
    })
}

fn listener_probe(inside: &mut Inside) -> Result<Seen> {
    let listener = tcp::listen(SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
    inside.action(format!("listen on 127.0.0.1:{PORT}   (workload A)"));
    let leg = tcp::serve_one(&listener)?;
    Ok(Seen {
        getpid: nix::unistd::getpid().as_raw(),
        view: inside.observe()?,
        leg: Some(leg),
    })
}

fn client_probe(inside: &mut Inside) -> Result<Seen> {
    let leg = tcp::call(SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
    inside.action(format!("connect to 127.0.0.1:{PORT}   (workload B)"));
    Ok(Seen {
        getpid: nix::unistd::getpid().as_raw(),
        view: inside.observe()?,
        leg: Some(leg),
    })
}

fn rows(host: &View, seen: &Seen, tcp_host: String, tcp_inside: String) -> Vec<Row> {
    let inside = &seen.view;
    let mut rows = vec![
        Row::new("PID (getpid)", host.probe.pid, seen.getpid),
        Row::new("hostname", &host.hostname, &inside.hostname),
        Row::new(
            "lo",
            host.link("lo").map(|l| l.state()).unwrap_or("absent"),
            inside.link("lo").map(|l| l.state()).unwrap_or("absent"),
        ),
    ];
    for ty in ["net", "ipc", "uts", "pid", "mnt"] {
        rows.push(Row::new(
            format!("{ty} namespace"),
            ns_label(ty, host.own_ns(ty)),
            ns_label(ty, inside.own_ns(ty)),
        ));
    }
    if seen.leg.is_some() {
        rows.push(Row::new(
            format!("TCP over 127.0.0.1:{PORT}"),
            tcp_host,
            tcp_inside,
        ));
    }
    rows
}

/// "net, ipc and uts are the holder's; pid and mnt are its own"
fn relation(name: &str, seen: &Seen, holder: &Seen) -> String {
    let (mut shared, mut own) = (Vec::new(), Vec::new());
    for ty in ["net", "ipc", "uts", "pid", "mnt"] {
        let label = ns_label(ty, seen.view.own_ns(ty));
        if seen.view.own_ns(ty) == holder.view.own_ns(ty) {
            shared.push(label);
        } else {
            own.push(label);
        }
    }
    format!(
        "{name}: {} are the holder's; {} are its own",
        if shared.is_empty() {
            "none".into()
        } else {
            shared.join(", ")
        },
        if own.is_empty() {
            "none".into()
        } else {
            own.join(", ")
        }
    )
}

fn step(
    id: &str,
    title: &str,
    host: View,
    seen: &Seen,
    actions: Vec<String>,
    rows: Vec<Row>,
    notes: Vec<String>,
) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        actions,
        rows,
        notes,
        extra: json!({ "getpid": seen.getpid, "leg": seen.leg }),
        host,
        container: seen.view.clone(),
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let base = ctx.baseline.clone();

    // The holder: the pod's namespaces, its name, its loopback.
    let holder_spec = Spec {
        namespaces: CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
        hostname: Some(POD_HOSTNAME.into()),
        ..Spec::default()
    };
    let mut holder = sandbox::spawn(&holder_spec, holder_probe)?;
    let holder_pid = holder.pid();
    let holder_seen: Seen = holder.run()?;
    let holder_host = holder.observe_from_host()?;
    let mut holder_actions = std::mem::take(&mut holder.actions);
    holder_actions
        .push("(the holder now waits, doing nothing: it only keeps the namespaces alive)".into());
    if ctx.rootless() {
        ctx.note("rootless, the holder's namespaces belong to the user namespace nsx created with it, and joining a namespace needs CAP_SYS_ADMIN in the user namespace that owns it: so each workload is cloned by a helper that first joined the holder's user namespace (setns CLONE_NEWUSER), as rootless Podman's containers share its user namespace; nsx itself stays in its own");
    }
    let holder_rows = rows(&holder_host, &holder_seen, String::new(), String::new());
    ctx.step(step(
        "holder",
        "the pod sandbox: a holder process (the \"pause\" container) creates net, IPC and UTS namespaces",
        holder_host.clone(),
        &holder_seen,
        holder_actions,
        holder_rows,
        vec![],
    ))?;

    // The workloads: their own PID and mount namespaces, the holder's net, IPC and UTS.
    let workload = Spec {
        namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
        mount_proc: true,
        join: Some(Join {
            pid: holder_pid,
            namespaces: CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
                | if ctx.rootless() {
                    CloneFlags::CLONE_NEWUSER
                } else {
                    CloneFlags::empty()
                },
        }),
        ..Spec::default()
    };
    let mut a = sandbox::spawn(&workload, listener_probe)?;
    a.go()?;
    // The holder never opened a socket, yet its /proc/<pid>/net/tcp lists workload A's
    // listener: the table belongs to the network namespace.
    let listeners =
        tcp::wait_for_listener(holder_pid, SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
    let mut b = sandbox::spawn(&workload, client_probe)?;
    let b_seen: Seen = b.run()?;
    let b_host = b.observe_from_host()?;
    let a_seen: Seen = a.run()?;
    let a_host = a.observe_from_host()?;
    let (a_pid, b_pid) = (a.pid(), b.pid());
    let a_actions = std::mem::take(&mut a.actions);
    let b_actions = std::mem::take(&mut b.actions);
    b.finish()?;
    a.finish()?;
    holder.finish()?;

    let a_leg = a_seen.leg.clone().unwrap_or_default();
    let b_leg = b_seen.leg.clone().unwrap_or_default();
    let listeners_label: Vec<String> = listeners
        .iter()
        .map(|(ip, port)| format!("{ip}:{port}"))
        .collect();
    let a_rows = rows(
        &a_host,
        &a_seen,
        format!(
            "/proc/{holder_pid}/net/tcp lists {} LISTEN",
            listeners_label.join(" ")
        ),
        format!(
            "got {} from {}, sent {}",
            a_leg.received,
            a_leg.peer.rsplit_once(':').map(|(h, _)| h).unwrap_or(""),
            a_leg.sent
        ),
    );
    ctx.step(step(
        "workload-a",
        "workload A: clone(CLONE_NEWPID | CLONE_NEWNS), setns into the holder's net, IPC and UTS, listen on 127.0.0.1",
        a_host.clone(),
        &a_seen,
        a_actions,
        a_rows,
        vec![
            relation("workload A", &a_seen, &holder_seen),
            format!("the holder never opened a socket, yet /proc/{holder_pid}/net/tcp lists workload A's listener: that table belongs to the network namespace, which the whole pod shares"),
        ],
    ))?;
    let b_rows = rows(
        &b_host,
        &b_seen,
        "-".into(),
        format!(
            "sent {} to {}, got {}",
            b_leg.sent, b_leg.peer, b_leg.received
        ),
    );
    ctx.step(step(
        "workload-b",
        "workload B: the same, then connect to 127.0.0.1",
        b_host.clone(),
        &b_seen,
        b_actions,
        b_rows,
        vec![relation("workload B", &b_seen, &holder_seen)],
    ))?;

    let (h, av, bv) = (&holder_seen.view, &a_seen.view, &b_seen.view);
    let shared = |ty: &str| {
        let holds = av.own_ns(ty) == h.own_ns(ty)
            && bv.own_ns(ty) == h.own_ns(ty)
            && h.own_ns(ty) != base.own_ns(ty)
            && a_host.probe.ns(ty) == h.own_ns(ty)
            && b_host.probe.ns(ty) == h.own_ns(ty);
        Fact::new(
            &format!("pod-shares-{ty}"),
            format!(
                "workload A, workload B and the holder are in the same {ty} namespace ({}), not the host's ({})",
                ns_label(ty, h.own_ns(ty)),
                ns_label(ty, base.own_ns(ty))
            ),
            holds,
            json!({ "holder": h.own_ns(ty), "a": av.own_ns(ty), "b": bv.own_ns(ty), "host": base.own_ns(ty) }),
        )
    };
    let own = |ty: &str| {
        let (x, y) = (av.own_ns(ty), bv.own_ns(ty));
        Fact::new(
            &format!("workloads-own-{ty}"),
            format!(
                "each workload keeps a {ty} namespace of its own: A {}, B {}, the holder {}",
                ns_label(ty, x),
                ns_label(ty, y),
                ns_label(ty, h.own_ns(ty))
            ),
            x != y
                && x != h.own_ns(ty)
                && y != h.own_ns(ty)
                && x != base.own_ns(ty)
                && y != base.own_ns(ty),
            json!({ "a": x, "b": y, "holder": h.own_ns(ty), "host": base.own_ns(ty) }),
        )
    };
    let lo_up = |v: &View| v.link("lo").and_then(|l| l.up) == Some(true);
    Ok(vec![
        shared("net"),
        shared("ipc"),
        shared("uts"),
        Fact::new(
            "pod-hostname",
            format!(
                "the holder named the pod \"{}\": workload A sees \"{}\", workload B \"{}\", while the host is still \"{}\"",
                h.hostname, av.hostname, bv.hostname, a_host.hostname
            ),
            h.hostname == POD_HOSTNAME
                && av.hostname == POD_HOSTNAME
                && bv.hostname == POD_HOSTNAME
                && a_host.hostname == base.hostname,
            json!({ "holder": h.hostname, "a": av.hostname, "b": bv.hostname }),
        ),
        Fact::new(
            "pod-lo-up",
            format!(
                "lo, brought up once by the holder, is {} for workload A and {} for workload B",
                av.link("lo").map(|l| l.state()).unwrap_or("absent"),
                bv.link("lo").map(|l| l.state()).unwrap_or("absent")
            ),
            lo_up(h) && lo_up(av) && lo_up(bv),
            json!({ "holder": h.link("lo"), "a": av.link("lo"), "b": bv.link("lo") }),
        ),
        Fact::new(
            "pod-localhost-round-trip",
            format!(
                "workload B connected to 127.0.0.1:{PORT}, sent {} and got {} back from workload A: one loopback for the whole pod",
                b_leg.sent, b_leg.received
            ),
            tcp::round_trip_ok(&b_leg, &a_leg) && a_leg.peer.starts_with("127.0.0.1:"),
            json!({ "client": b_leg, "server": a_leg }),
        ),
        Fact::new(
            "pod-listener-in-holder-netns",
            format!(
                "while A listened, /proc/{holder_pid}/net/tcp (the holder's) listed 127.0.0.1:{PORT}"
            ),
            listeners.contains(&(Ipv4Addr::LOCALHOST, PORT)),
            json!({ "listeners": listeners_label }),
        ),
        own("pid"),
        Fact::new(
            "workloads-are-pid-1",
            format!(
                "each workload is PID 1 of its PID namespace (getpid() = {} and {}), while the host knows them as {a_pid} and {b_pid}",
                a_seen.getpid, b_seen.getpid
            ),
            a_seen.getpid == 1 && b_seen.getpid == 1 && av.processes.count == 1 && bv.processes.count == 1,
            json!({ "a": a_seen.getpid, "b": b_seen.getpid, "a_listed": av.processes.count, "b_listed": bv.processes.count }),
        ),
        own("mnt"),
    ])
}
