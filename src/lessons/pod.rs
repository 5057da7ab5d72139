//! pod: containers that share a network, IPC and UTS namespace, as in a Kubernetes pod.
//!
//! A holder process (Kubernetes' "pause" container) creates the namespaces the pod's
//! containers share, names the pod and brings lo up, then does nothing but exist. Each
//! workload is cloned into PID and mount namespaces of its own and joins the holder's
//! net, IPC and UTS namespaces with setns(2) before it starts. So the two workloads talk
//! over 127.0.0.1 and share a hostname, while neither sees the other's processes or
//! mounts.
//!
//! setns(2): joining a network, IPC, time or UTS namespace needs CAP_SYS_ADMIN both in
//! the caller's own user namespace and in the one that owns the target. namespaces(7): a
//! namespace lives while a process is in it *or* a file refers to it (an open
//! /proc/<pid>/ns/* or a bind mount of one). The last step shows that: nsx holds the
//! holder's net namespace open, lets every process of the pod exit, and a new probe still
//! joins it, as CRI runtimes keep a pod's network namespace pinned by a bind mount under
//! /var/run/netns.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{op, Context, Result};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::netlink::Rtnl;
use crate::sandbox::tcp::{self, Leg};
use crate::sandbox::{Exit, Inside, Join, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Pod>();

pub struct Pod;

/// The pod's name, set by the holder in the UTS namespace it owns.
pub const POD_HOSTNAME: &str = "nsx-pod";
/// Workload A's port on the pod's loopback.
pub const PORT: u16 = 8080;

/// The namespace types the table shows, the pod's shared ones first.
const TYPES: [Ns; 5] = [Ns::Net, Ns::Ipc, Ns::Uts, Ns::Pid, Ns::Mnt];

/// What every process of the pod reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    getpid: i32,
    view: View,
    /// Workload A: the connection it answered; workload B: the one it made.
    leg: Option<Leg>,
}

/// The pod's net namespace after every process of the pod has gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pinned {
    /// The namespace files of the holder nsx held open: net, and without root its user
    /// namespace too (the net namespace's owner).
    held: Vec<String>,
    /// fstat(2) of the /proc/<holder>/ns/net nsx held open: the namespace's inode.
    inode: u64,
    /// How the holder ended once nsx let it go (it was reaped before the probe below).
    holder_exit: Exit,
    /// Whether /proc/<holder>/ns/uts, which nothing held, could still be reached then.
    uts_reachable: bool,
    /// A probe that joined the net namespace through the file nsx held.
    run: Run<Seen>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    holder: Run<Seen>,
    a: Run<Seen>,
    b: Run<Seen>,
    /// The listeners /proc/<holder>/net/tcp showed while workload A listened.
    listeners: Vec<(Ipv4Addr, u16)>,
    pinned: Pinned,
}

impl Def for Pod {
    const ID: &'static str = "pod";
    const TITLE: &'static str = "Pod: two containers sharing network, IPC and UTS namespaces";
    const MECHANISM: &'static str = "a holder process owns CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS; workloads join them with setns(2)";
    const MAN: &'static str = "setns(2), namespaces(7), network_namespaces(7), nsenter(1)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/pod.md");
    const SEES: Parts = Ns::Net
        .part()
        .with(Ns::Ipc.part())
        .with(Ns::Uts.part())
        .with(Ns::Pid.part())
        .with(Ns::Mnt.part())
        .with(Parts::HOSTNAME)
        .with(Parts::LINKS)
        .with(Parts::PROCESSES);
    const FACTS: &'static [&'static str] = &[
        "pod-shares-net",
        "pod-shares-ipc",
        "pod-shares-uts",
        "pod-hostname",
        "pod-lo-up",
        "pod-localhost-round-trip",
        "pod-listener-in-holder-netns",
        "workloads-own-pid",
        "workloads-are-pid-1",
        "workloads-own-mnt",
        "netns-outlives-the-pod-while-held",
    ];
    const WORDS: &'static [&'static str] =
        &["pods", "kubernetes", "k8s", "pause", "sidecar", "setns"];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // The holder: the pod's namespaces, its name, its loopback. It stays alive, doing
        // nothing, until nsx lets it go.
        let holder_spec = Spec {
            namespaces: CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS,
            hostname: Some(POD_HOSTNAME.into()),
            ..Spec::default()
        };
        let mut holder = m.start(&holder_spec, |_| Ok(()), holder_probe)?;
        let mut holder_run = holder.report(|_| Ok(()))?;
        holder_run.actions.push(
            "(the holder now waits, doing nothing: it only keeps the namespaces alive)".into(),
        );
        let holder_pid = holder.pid();

        // The workloads: their own PID and mount namespaces, the holder's net, IPC and
        // UTS. Without root, the holder's namespaces belong to the user namespace nsx
        // made with it: each workload is cloned by a helper that joined it first.
        let workload = Spec {
            namespaces: CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
            mount_proc: true,
            join: Some(Join {
                pid: holder_pid,
                namespaces: CloneFlags::CLONE_NEWNET
                    | CloneFlags::CLONE_NEWIPC
                    | CloneFlags::CLONE_NEWUTS
                    | if m.rootless() {
                        CloneFlags::CLONE_NEWUSER
                    } else {
                        CloneFlags::empty()
                    },
            }),
            ..Spec::default()
        };
        let mut a = m.start(&workload, |_| Ok(()), listener_probe)?;
        // The holder never opened a socket, yet its /proc/<pid>/net/tcp lists workload
        // A's listener: the table belongs to the network namespace.
        let listeners =
            tcp::wait_for_listener(holder_pid, SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
        let mut b = m.start(&workload, |_| Ok(()), client_probe)?;
        let b_run = b.report(|_| Ok(()))?;
        let a_run = a.report(|_| Ok(()))?;
        b.finish()?;
        a.finish()?;

        let pinned = pin_and_rejoin(m, holder, holder_pid)?;
        Ok(Obs {
            holder: holder_run,
            a: a_run,
            b: b_run,
            listeners,
            pinned,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let (h, av, bv) = (&o.holder.inside.view, &o.a.inside.view, &o.b.inside.view);
        let (a_host, b_host) = (&o.a.host, &o.b.host);
        let holder_pid = o.holder.pid;
        let a_leg = o.a.inside.leg.clone().unwrap_or_default();
        let b_leg = o.b.inside.leg.clone().unwrap_or_default();
        let listeners: Vec<String> = o
            .listeners
            .iter()
            .map(|(ip, port)| format!("{ip}:{port}"))
            .collect();
        let shared = |ns: Ns| {
            let holder = h.own(ns);
            let holds = kit::same(av.own(ns), holder)
                && kit::same(bv.own(ns), holder)
                && kit::differ(holder, base.own(ns))
                && kit::same(a_host.probe.ns_of(ns), holder)
                && kit::same(b_host.probe.ns_of(ns), holder);
            Fact::new(
                &format!("pod-shares-{ns}"),
                format!(
                    "workload A, workload B and the holder are in the same {ns} namespace ({}), not the host's ({}); the host, reading /proc/<pid>/ns/{ns} of each workload, finds it too",
                    kit::ns_text(ns, holder),
                    kit::ns_text(ns, base.own(ns))
                ),
                holds,
                json!({ "holder": holder, "a": av.own(ns), "b": bv.own(ns), "host": base.own(ns), "host_reads_a": a_host.probe.ns_of(ns), "host_reads_b": b_host.probe.ns_of(ns) }),
            )
        };
        let own = |ns: Ns| {
            let (x, y, holder) = (av.own(ns), bv.own(ns), h.own(ns));
            Fact::new(
                &format!("workloads-own-{ns}"),
                format!(
                    "each workload keeps a {ns} namespace of its own: A {}, B {}, the holder {}",
                    kit::ns_text(ns, x),
                    kit::ns_text(ns, y),
                    kit::ns_text(ns, holder)
                ),
                kit::differ(x, y)
                    && kit::differ(x, holder)
                    && kit::differ(y, holder)
                    && kit::differ(x, base.own(ns))
                    && kit::differ(y, base.own(ns)),
                json!({ "a": x, "b": y, "holder": holder, "host": base.own(ns) }),
            )
        };
        let lo_up = |v: &View| v.link("lo").and_then(|l| l.up) == Some(true);
        let lo = |v: &View| v.link("lo").map(|l| l.state()).unwrap_or("absent");
        let p = &o.pinned;
        let pv = &p.run.inside.view;
        let pod_net = h.own(Ns::Net);
        let facts = vec![
            shared(Ns::Net),
            shared(Ns::Ipc),
            shared(Ns::Uts),
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
                    lo(av),
                    lo(bv)
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
                    "while A listened, /proc/{holder_pid}/net/tcp (the holder's) listed {}",
                    if listeners.is_empty() { "nothing".to_string() } else { listeners.join(" ") }
                ),
                o.listeners.contains(&(Ipv4Addr::LOCALHOST, PORT)),
                json!({ "listeners": listeners }),
            ),
            own(Ns::Pid),
            Fact::new(
                "workloads-are-pid-1",
                format!(
                    "each workload is PID 1 of its PID namespace (getpid() = {} and {}), while the host knows them as {} and {}",
                    o.a.inside.getpid, o.b.inside.getpid, o.a.pid, o.b.pid
                ),
                o.a.inside.getpid == 1
                    && o.b.inside.getpid == 1
                    && av.processes.count == 1
                    && bv.processes.count == 1,
                json!({ "a": o.a.inside.getpid, "b": o.b.inside.getpid, "a_listed": av.processes.count, "b_listed": bv.processes.count }),
            ),
            own(Ns::Mnt),
            Fact::new(
                "netns-outlives-the-pod-while-held",
                format!(
                    "after the holder ({}) and both workloads had exited, a new probe joined the pod's net namespace through the file nsx held open ({}) and found lo {}, as the holder left it; the pod's uts namespace, which nothing held, {}",
                    p.holder_exit,
                    kit::ns_text(Ns::Net, Some(p.inode)),
                    lo(pv),
                    if p.uts_reachable { "could still be reached" } else { "could no longer be reached" }
                ),
                kit::same(Some(p.inode), pod_net)
                    && kit::same(pv.own(Ns::Net), pod_net)
                    && kit::same(p.run.host.probe.ns_of(Ns::Net), pod_net)
                    && lo_up(pv)
                    && !p.uts_reachable,
                json!({ "held": p.inode, "pod": pod_net, "joined": pv.own(Ns::Net), "lo": pv.link("lo"), "holder": p.holder_exit, "uts_reachable": p.uts_reachable }),
            ),
        ];
        let tcp_row = |host: Val, inside: String| {
            Row::own(
                format!("TCP over 127.0.0.1:{PORT}"),
                "a connection",
                host,
                inside,
            )
            .apart("each side's part in one connection")
        };
        let a_rows = {
            let mut rows = rows(&o.a);
            rows.push(tcp_row(
                Val::text(format!(
                    "/proc/{holder_pid}/net/tcp lists {} LISTEN",
                    listeners.join(" ")
                )),
                format!(
                    "got {} from {}, sent {}",
                    a_leg.received,
                    a_leg.peer.rsplit_once(':').map(|(h, _)| h).unwrap_or(""),
                    a_leg.sent
                ),
            ));
            rows
        };
        let b_rows = {
            let mut rows = rows(&o.b);
            rows.push(tcp_row(
                Val::None("the host took no part".into()),
                format!(
                    "sent {} to {}, got {}",
                    b_leg.sent, b_leg.peer, b_leg.received
                ),
            ));
            rows
        };
        let steps = vec![
            kit::step(
                "holder",
                "the pod sandbox: a holder process (the \"pause\" container) creates net, IPC and UTS namespaces",
                &o.holder,
                h,
                rows(&o.holder),
            ),
            kit::step(
                "workload-a",
                "workload A: clone(CLONE_NEWPID | CLONE_NEWNS), setns into the holder's net, IPC and UTS, listen on 127.0.0.1",
                &o.a,
                av,
                a_rows,
            )
            .note(relation("workload A", av, h))
            .note(format!(
                "the holder never opened a socket, yet /proc/{holder_pid}/net/tcp lists workload A's listener: that table belongs to the network namespace, which the whole pod shares"
            ))
            .extra(json!({ "getpid": o.a.inside.getpid, "leg": o.a.inside.leg })),
            kit::step(
                "workload-b",
                "workload B: the same, then connect to 127.0.0.1",
                &o.b,
                bv,
                b_rows,
            )
            .note(relation("workload B", bv, h))
            .takeaway(format!(
                "two workloads, one {}: B reached A over 127.0.0.1:{PORT}, and each is PID 1 of its own PID namespace",
                kit::ns_text(Ns::Net, pod_net)
            ))
            .extra(json!({ "getpid": o.b.inside.getpid, "leg": o.b.inside.leg })),
            pinned_step(p, holder_pid),
        ];
        let mut notes = Vec::new();
        if env.rootless() {
            notes.push("rootless, the holder's namespaces belong to the user namespace nsx created with it, and setns(2) into them needs CAP_SYS_ADMIN both in the caller's own user namespace and in the one that owns them; nsx's uid has every capability in the holder's user namespace but none in its own: so each workload is cloned by a helper that first joined the holder's user namespace (setns CLONE_NEWUSER), as rootless Podman's containers share its user namespace; nsx itself stays in its own".to_string());
        }
        Judged {
            steps,
            facts,
            notes,
            takeaway: Some(format!(
                "a pod is namespaces held by one idle process: the workloads shared its {} and {} and kept their own pid and mnt namespaces; the net namespace outlived every process of the pod while a file held it",
                kit::ns_text(Ns::Net, pod_net),
                kit::ns_text(Ns::Uts, h.own(Ns::Uts))
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "pod-shares-net",
                what: "workload B is in a net namespace of its own",
                change: |o, _| {
                    o.b.inside.view.own_ns.insert("net".into(), 1);
                },
            },
            F {
                fact: "pod-shares-ipc",
                what: "the holder's ipc namespace is the host's",
                change: |o, env| {
                    let host = env.baseline.own_ns["ipc"];
                    for v in [
                        &mut o.holder.inside.view,
                        &mut o.a.inside.view,
                        &mut o.b.inside.view,
                    ] {
                        v.own_ns.insert("ipc".into(), host);
                    }
                    o.a.host.probe.ns.insert("ipc".into(), host);
                    o.b.host.probe.ns.insert("ipc".into(), host);
                },
            },
            F {
                fact: "pod-shares-uts",
                what: "the host reads another uts namespace through /proc/<pid>/ns/uts",
                change: |o, _| {
                    o.a.host.probe.ns.insert("uts".into(), 1);
                },
            },
            F {
                fact: "pod-hostname",
                what: "workload A sees the host's name",
                change: |o, env| o.a.inside.view.hostname = env.baseline.hostname.clone(),
            },
            F {
                fact: "pod-lo-up",
                what: "lo is down for workload B",
                change: |o, _| {
                    if let Some(l) = o.b.inside.view.links.iter_mut().find(|l| l.name == "lo") {
                        l.up = Some(false);
                    }
                },
            },
            F {
                fact: "pod-localhost-round-trip",
                what: "workload A answered another token",
                change: |o, _| {
                    if let Some(leg) = o.a.inside.leg.as_mut() {
                        leg.received = "0x00000000".into();
                    }
                },
            },
            F {
                fact: "pod-listener-in-holder-netns",
                what: "the holder's net/tcp listed no listener",
                change: |o, _| o.listeners.clear(),
            },
            F {
                fact: "workloads-own-pid",
                what: "the two workloads share a pid namespace",
                change: |o, _| {
                    let a = o.a.inside.view.own_ns["pid"];
                    o.b.inside.view.own_ns.insert("pid".into(), a);
                },
            },
            F {
                fact: "workloads-are-pid-1",
                what: "workload B is PID 2",
                change: |o, _| o.b.inside.getpid = 2,
            },
            F {
                fact: "workloads-own-mnt",
                what: "workload A is in the host's mount namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["mnt"];
                    o.a.inside.view.own_ns.insert("mnt".into(), host);
                },
            },
            F {
                fact: "netns-outlives-the-pod-while-held",
                what: "the probe found a new net namespace (nothing had held the pod's)",
                change: |o, _| {
                    o.pinned.run.inside.view.own_ns.insert("net".into(), 1);
                    o.pinned.run.host.probe.ns.insert("net".into(), 1);
                },
            },
            F {
                fact: "netns-outlives-the-pod-while-held",
                what: "lo was down in the joined namespace",
                change: |o, _| {
                    let links = &mut o.pinned.run.inside.view.links;
                    if let Some(l) = links.iter_mut().find(|l| l.name == "lo") {
                        l.up = Some(false);
                    }
                },
            },
            F {
                fact: "netns-outlives-the-pod-while-held",
                what: "the holder's uts namespace could still be reached",
                change: |o, _| o.pinned.uts_reachable = true,
            },
        ]
    }
}

fn holder_probe(inside: &mut Inside) -> Result<Seen> {
    // A new network namespace has lo, down; the pod's containers will talk over
    // 127.0.0.1, so the holder brings it up once for all.
    let mut rtnl = Rtnl::open()?;
    rtnl.set_up("lo")?;
    inside.action("ip link set lo up   (the holder, inside)");
    seen(inside, None)
}

fn listener_probe(inside: &mut Inside) -> Result<Seen> {
    let listener = tcp::listen(SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
    inside.action(format!("listen on 127.0.0.1:{PORT}   (workload A)"));
    let leg = tcp::serve_one(&listener)?;
    seen(inside, Some(leg))
}

fn client_probe(inside: &mut Inside) -> Result<Seen> {
    let leg = tcp::call(SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)))?;
    inside.action(format!("connect to 127.0.0.1:{PORT}   (workload B)"));
    seen(inside, Some(leg))
}

fn seen(inside: &mut Inside, leg: Option<Leg>) -> Result<Seen> {
    Ok(Seen {
        getpid: nix::unistd::getpid().as_raw(),
        view: inside.observe()?,
        leg,
    })
}

/// nsx holds the holder's net namespace open, lets the holder go, then clones a probe
/// that joins the namespace through that file. Nothing is mounted: a CRI runtime pins
/// it with a bind mount, but nsx never mounts in the host's mount namespace, and an open
/// file descriptor pins a namespace the same way (namespaces(7), "Namespace lifetime").
fn pin_and_rejoin(
    m: &Measure,
    holder: super::engine::Running<Seen>,
    holder_pid: i32,
) -> Result<Pinned> {
    let open = |name: &str| -> Result<OwnedFd> {
        let path = format!("/proc/{holder_pid}/ns/{name}");
        // open(2) of a /proc/<pid>/ns link gives a file that refers to the namespace
        // itself: while it is open the namespace lives, whatever its processes do.
        nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", &path)
    };
    let net = open("net")?;
    // Without root the net namespace belongs to the holder's user namespace: the probe
    // must join that first (setns(2) needs CAP_SYS_ADMIN in the namespace's owner).
    let user = if m.rootless() {
        Some(open("user")?)
    } else {
        None
    };
    // fstat(2): a namespace file's inode number is the namespace's id, the number in
    // its link text (net:[4026532177]).
    let inode = nix::sys::stat::fstat(&net)
        .ctx("fstat", format!("/proc/{holder_pid}/ns/net"))?
        .st_ino;
    let holder_exit = holder.finish()?;
    let uts_reachable = std::path::Path::new(&format!("/proc/{holder_pid}/ns/uts")).exists();
    let (net_fd, user_fd) = (net.as_raw_fd(), user.as_ref().map(|f| f.as_raw_fd()));
    let run = m.probe(
        &Spec::new(CloneFlags::empty()),
        move |i| rejoin(i, holder_pid, net_fd, user_fd),
        |_| Ok(()),
    )?;
    drop((net, user));
    Ok(Pinned {
        held: if user_fd.is_some() {
            vec!["net".into(), "user".into()]
        } else {
            vec!["net".into()]
        },
        inode,
        holder_exit,
        uts_reachable,
        run,
    })
}

/// In the probe: joins the held namespaces through the descriptors it inherited from nsx
/// (clone(2) without CLONE_FILES copies the descriptor table), then looks.
fn rejoin(inside: &mut Inside, holder: i32, net: RawFd, user: Option<RawFd>) -> Result<Seen> {
    use nix::sched::setns;
    if let Some(fd) = user {
        // SAFETY: fd is nsx's open /proc/<holder>/ns/user, inherited and still open here
        // (nsx closes it only after this probe has reported).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // setns(2): a single-threaded process may join a user namespace in which it
        // has CAP_SYS_ADMIN; the holder's is a child of ours, owned by our uid.
        setns(fd, CloneFlags::CLONE_NEWUSER).ctx(op::SETNS, format!("/proc/{holder}/ns/user"))?;
        inside.action(format!(
            "setns(fd of /proc/{holder}/ns/user that nsx held open, CLONE_NEWUSER)"
        ));
    }
    // SAFETY: as above, nsx's open /proc/<holder>/ns/net.
    let fd = unsafe { BorrowedFd::borrow_raw(net) };
    // setns(2): CAP_SYS_ADMIN in our own user namespace and in the net namespace's owner.
    setns(fd, CloneFlags::CLONE_NEWNET).ctx(op::SETNS, format!("/proc/{holder}/ns/net"))?;
    inside.action(format!(
        "setns(fd of /proc/{holder}/ns/net that nsx held open, CLONE_NEWNET)   (the holder and both workloads have exited)"
    ));
    seen(inside, None)
}

/// The rows of one process of the pod: its namespaces read by both sides, then each
/// side's own namespaces, hostname and loopback.
fn rows(run: &Run<Seen>) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside.view);
    let mut probe = vec![
        Row::probe(
            "PID",
            "status Pid",
            Val::Pid(host.probe.pid),
            Val::Pid(inside.probe.pid),
        ),
        Row::probe(
            "getpid()",
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::Pid(run.inside.getpid),
        ),
    ];
    let mut own = Vec::new();
    for ns in TYPES {
        let [p, o] = kit::ns_rows(ns, host, inside);
        probe.push(p);
        own.push(o);
    }
    own.push(Row::own(
        "hostname",
        "/proc/sys/kernel/hostname",
        Val::Hostname(host.hostname.clone()),
        Val::Hostname(inside.hostname.clone()),
    ));
    own.push(Row::own(
        "lo",
        "ioctl SIOCGIFFLAGS",
        host.link("lo").map(|l| l.state()).unwrap_or("absent"),
        inside.link("lo").map(|l| l.state()).unwrap_or("absent"),
    ));
    probe.extend(own);
    probe
}

/// "workload A: net:[…], ipc:[…], uts:[…] are the holder's; pid:[…], mnt:[…] are its own"
fn relation(name: &str, seen: &View, holder: &View) -> String {
    let (mut shared, mut own) = (Vec::new(), Vec::new());
    for ns in TYPES {
        let label = kit::ns_text(ns, seen.own(ns));
        if kit::same(seen.own(ns), holder.own(ns)) {
            shared.push(label);
        } else {
            own.push(label);
        }
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "{name}: {} are the holder's; {} are its own",
        list(shared),
        list(own)
    )
}

/// The last step: the probe that joined the held net namespace.
fn pinned_step(p: &Pinned, holder_pid: i32) -> Step {
    let (host, inside) = (&p.run.host, &p.run.inside.view);
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Net, host, inside);
    let rows = vec![
        Row::probe(
            "PID",
            "status Pid",
            Val::Pid(host.probe.pid),
            Val::Pid(inside.probe.pid),
        ),
        ns_probe,
        ns_own.key(),
        Row::own(
            "lo",
            "ioctl SIOCGIFFLAGS",
            host.link("lo").map(|l| l.state()).unwrap_or("absent"),
            inside.link("lo").map(|l| l.state()).unwrap_or("absent"),
        ),
    ];
    let mut step = kit::step(
        "pinned",
        "pinned: nsx holds the pod's net namespace open, lets every process of the pod exit, and a new probe joins it",
        &p.run,
        inside,
        rows,
    );
    let mut actions: Vec<String> = p
        .held
        .iter()
        .map(|ns| {
            let what = if ns == "net" {
                kit::ns_text(Ns::Net, Some(p.inode))
            } else {
                format!("the owner of {}", kit::ns_text(Ns::Net, Some(p.inode)))
            };
            format!("open(\"/proc/{holder_pid}/ns/{ns}\", O_RDONLY)   (nsx holds it: {what})")
        })
        .collect();
    actions.push(format!(
        "(nsx lets the holder go: it {}, and nsx reaps it)",
        p.holder_exit
    ));
    actions.append(&mut step.actions);
    step.actions = actions;
    step.note(format!(
        "namespaces(7): a namespace lives while a process is in it or a file refers to it. nsx held an open descriptor; a CRI runtime (containerd, CRI-O) bind-mounts the pod's net namespace (a /proc/…/ns/net file) on a file such as /var/run/netns/cni-<id> before it calls the CNI plugin, so the pod's network, its interfaces and its IP address outlive the pause process. The uts namespace, which nothing held, went with the holder: /proc/{holder_pid}/ns/uts {}",
        if p.uts_reachable { "could still be reached" } else { "no longer exists" }
    ))
    .takeaway(format!(
        "no process of the pod was left, yet {} was still there with lo {}: held by a file",
        kit::ns_text(Ns::Net, Some(p.inode)),
        inside.link("lo").map(|l| l.state()).unwrap_or("absent")
    ))
}
