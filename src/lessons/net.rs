//! net: a network namespace has its own interfaces, addresses, routes and ports.
//!
//! network_namespaces(7): a new network namespace starts with a loopback interface only,
//! and it is down. proc(5): /proc/<pid>/net/* shows the namespace of <pid>, so the host
//! can list the probe's interfaces without entering it. Step three connects the two
//! namespaces the way container runtimes do: a veth pair (veth(4)), one end moved into
//! the probe's namespace, a /30 on the pair, and a TCP round trip in each direction.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tcp::{self, Leg};
use super::{join, ns_label, probes_n, Ctx, Lesson, Rootless};
use crate::error::Result;
use crate::observe::net::{interfaces, ipv4_routes, Route};
use crate::observe::Parts;
use crate::observe::{Link, View};
use crate::report::{Fact, Row, Step};
use crate::sandbox::netlink::{self, Rtnl};
use crate::sandbox::veth::{self, Subnet30, Veth};
use crate::sandbox::{self, Inside, Spec};

pub const LESSON: Lesson = Lesson {
    id: "net",
    title: "Network namespace: interfaces, routes and ports of its own",
    mechanism: "CLONE_NEWNET; as root, also a veth pair made over rtnetlink",
    man: "network_namespaces(7), veth(4), rtnetlink(7), netdevice(7), proc(5)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/net.md"),
    sees: Parts::ns("net").with(Parts::INTERFACES).with(Parts::LINKS),
    facts: &[],
    words: &[
        "network",
        "networking",
        "netns",
        "veth",
        "interfaces",
        "namespace",
        "namespaces",
    ],
    imp: super::Imp::Old(run),
};

/// The port the probe listens on inside its namespace: any port is free in a namespace
/// of its own, so it can be a well-known one.
pub const CONTAINER_PORT: u16 = 8080;

/// Names of interfaces, without the veth ends of *other* nsx runs that may come and go
/// on the host while this one runs (nsx<pid>h / nsx<pid>c, pid not ours).
fn without_other_runs(names: &[String]) -> Vec<String> {
    let ours = std::process::id().to_string();
    names
        .iter()
        .filter(|n| {
            let pid = n
                .strip_prefix("nsx")
                .and_then(|r| r.strip_suffix('h').or_else(|| r.strip_suffix('c')));
            match pid {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p == ours,
                _ => true,
            }
        })
        .cloned()
        .collect()
}

fn routes_without_other_runs(routes: Vec<Route>) -> Vec<Route> {
    let devs: Vec<String> = routes.iter().map(|r| r.dev.clone()).collect();
    let keep = without_other_runs(&devs);
    routes
        .into_iter()
        .filter(|r| keep.contains(&r.dev))
        .collect()
}

/// "lo UP 127.0.0.1/8, eth0 UP 10.0.0.2/24"
fn links_label(links: &[Link]) -> String {
    links
        .iter()
        .map(|l| match &l.ipv4 {
            Some(a) => format!("{} {} {a}", l.name, l.state()),
            None => format!("{} {}", l.name, l.state()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn lo_state(view: &View) -> String {
    view.link("lo")
        .map(|l| l.state())
        .unwrap_or("absent")
        .to_string()
}

fn ns_rows(host: &View, inside: &View) -> Vec<Row> {
    vec![
        Row::new(
            "interfaces in …/net/dev (the probe's netns)",
            join(&host.probe.interfaces),
            join(&inside.probe.interfaces),
        ),
        Row::new(
            "interfaces of the reader's own netns",
            join(&host.link_names()),
            join(&inside.link_names()),
        ),
        Row::new(
            "lo, asked with SIOCGIFFLAGS",
            lo_state(host),
            lo_state(inside),
        ),
        Row::new(
            "net namespace",
            ns_label("net", host.own_ns("net")),
            ns_label("net", inside.own_ns("net")),
        ),
    ]
}

fn ns_step(id: &str, title: &str, run: super::Run<View>, notes: Vec<String>) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        rows: ns_rows(&run.host, &run.inside),
        actions: run.actions,
        notes,
        extra: json!({}),
        host: run.host,
        container: run.inside,
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let host_net = ctx.baseline.own_ns("net");

    // The after probe's namespace holds only its own lo: the two run side by side.
    let [before, after] = probes_n(
        [
            Spec::new(CloneFlags::empty()),
            Spec::new(CloneFlags::CLONE_NEWNET),
        ],
        |_, i| i.observe(),
        |_, _| Ok(()),
    )?;
    let (b_in, b_host) = (&before.inside, &before.host);
    let mut facts = vec![Fact::new(
        "before-same-interfaces",
        format!(
            "before, the probe lists the host's interfaces ({}) and is in the host's net namespace",
            join(&without_other_runs(&b_in.probe.interfaces))
        ),
        without_other_runs(&b_in.probe.interfaces) == without_other_runs(&b_host.link_names())
            && b_in.own_ns("net") == host_net,
        json!({ "inside": b_in.probe.interfaces, "host": b_host.link_names(), "inside_ns": b_in.own_ns("net"), "host_ns": host_net }),
    )];
    ctx.step(ns_step(
        "before",
        "before: the probe forked with no new namespace",
        before,
        vec![],
    ))?;

    let (a_in, a_host) = (&after.inside, &after.host);
    // The host's interfaces, less the veth ends of other nsx runs that come and go.
    let kept = without_other_runs(&a_host.link_names());
    let host_links: Vec<Link> = a_host
        .links
        .iter()
        .filter(|l| kept.contains(&l.name))
        .cloned()
        .collect();
    facts.extend([
        Fact::new(
            "only-lo",
            format!(
                "inside, /proc/self/net/dev lists {}: a new network namespace has a loopback interface and nothing else",
                join(&a_in.probe.interfaces)
            ),
            a_in.probe.interfaces == ["lo"],
            json!({ "inside": a_in.probe.interfaces }),
        ),
        Fact::new(
            "lo-down",
            format!("inside, lo is {} (SIOCGIFFLAGS): nobody has brought it up", lo_state(a_in)),
            a_in.link("lo").and_then(|l| l.up) == Some(false),
            json!({ "lo": a_in.link("lo") }),
        ),
        Fact::new(
            "host-reads-probe-net-dev",
            format!(
                "the host reads /proc/{}/net/dev and gets the probe's list ({}), not its own: that file shows the network namespace of the process it belongs to",
                after.pid,
                join(&a_host.probe.interfaces)
            ),
            a_host.probe.interfaces == a_in.probe.interfaces,
            json!({ "host_reads": a_host.probe.interfaces, "inside": a_in.probe.interfaces }),
        ),
        Fact::new(
            "host-sees-other-interfaces",
            format!(
                "the host's own namespace has {}; the probe's has {}: other interfaces, even where a name is the same",
                links_label(&host_links),
                links_label(&a_in.links)
            ),
            host_links != a_in.links,
            json!({ "host": host_links, "inside": a_in.links }),
        ),
        Fact::new(
            "net-ns-differs",
            format!(
                "the probe's net namespace ({}) differs from the host's ({})",
                ns_label("net", a_in.own_ns("net")),
                ns_label("net", host_net)
            ),
            a_in.own_ns("net") != host_net && a_host.probe.ns("net") == a_in.own_ns("net"),
            json!({ "inside": a_in.own_ns("net"), "host": host_net, "host_reads": a_host.probe.ns("net") }),
        ),
    ]);
    let a_note = format!(
        "the host lists the probe's interfaces through /proc/{}/net/dev, but cannot ask their state: an ioctl answers for the caller's own namespace",
        after.pid
    );
    ctx.step(ns_step(
        "after",
        "after: clone(CLONE_NEWNET)",
        after,
        vec![a_note],
    ))?;

    if ctx.rootless() {
        ctx.note("the veth step was skipped: creating a veth pair in the host's network namespace needs CAP_NET_ADMIN there, and nsx is root only inside its own user namespace (run it with sudo to see the veth step)");
    } else if !ctx.options.veth {
        ctx.note("the veth step was skipped (--no-veth)");
    } else {
        facts.extend(veth_step(ctx)?);
    }
    Ok(facts)
}

/// What the probe of the veth step is given.
#[derive(Debug, Clone)]
struct Plan {
    subnet: Subnet30,
    peer: String,
    host_port: u16,
}

/// What the probe of the veth step reports.
#[derive(Debug, Serialize, Deserialize)]
struct VethSeen {
    view: View,
    routes: Vec<Route>,
    /// The probe connecting to the host.
    client: Leg,
    /// The probe answering the host.
    server: Leg,
}

fn veth_probe(inside: &mut Inside, plan: &Plan) -> Result<VethSeen> {
    let addr = plan.subnet.container();
    // A netlink socket opened here speaks to this namespace's routing subsystem.
    let mut rtnl = Rtnl::open()?;
    rtnl.add_ipv4(&plan.peer, addr, 30)?;
    inside.action(format!(
        "ip addr add {addr}/30 dev {}   (inside)",
        plan.peer
    ));
    rtnl.set_up(&plan.peer)?;
    inside.action(format!("ip link set {} up   (inside)", plan.peer));
    // Listen only once the end is up: the host takes the listener as the sign to start.
    wait_running(&plan.peer)?;
    let listener = tcp::listen(SocketAddr::from((addr, CONTAINER_PORT)))?;
    inside.action(format!("listen on {addr}:{CONTAINER_PORT}   (inside)"));
    let server = tcp::serve_one(&listener)?;
    let client = tcp::call(SocketAddr::from((plan.subnet.host(), plan.host_port)))?;
    Ok(VethSeen {
        view: inside.observe()?,
        routes: ipv4_routes(Path::new("/proc/net/route"))?,
        client,
        server,
    })
}

/// Waits until `name` is IFF_RUNNING (operationally up). The kernel attaches a working
/// queueing discipline to an interface only once its carrier is up and the link watcher
/// has run; a packet sent through it before that is dropped, and a lost ARP reply or SYN
/// costs a one-second retransmission (seen here as 1 s runs, with the host end's TX
/// "dropped" counter at 1).
fn wait_running(name: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + tcp::TIMEOUT;
    while crate::observe::net::link_flags(name).unwrap_or(0) & libc::IFF_RUNNING == 0 {
        crate::sandbox::signals::check()?;
        if std::time::Instant::now() > deadline {
            return Err(crate::error::Error::Other(format!(
                "{name} did not come up (IFF_RUNNING) within {}s",
                tcp::TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    Ok(())
}

fn host_routes() -> Result<Vec<Route>> {
    Ok(routes_without_other_runs(ipv4_routes(Path::new(
        "/proc/net/route",
    ))?))
}

fn link_label(view: &View, name: &str) -> String {
    match view.link(name) {
        Some(l) => format!(
            "{name} {} {}",
            l.ipv4.as_deref().unwrap_or("(no address)"),
            l.state()
        ),
        None => format!("no {name}"),
    }
}

fn routes_label(routes: &[Route], subnet: Subnet30) -> String {
    let r: Vec<String> = routes
        .iter()
        .filter(|r| subnet.overlaps(r.destination, r.prefix) && r.prefix > 16)
        .map(|r| r.to_string())
        .collect();
    if r.is_empty() {
        "none".into()
    } else {
        r.join(", ")
    }
}

fn veth_step(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let mut actions = Vec::new();
    let routes_before = host_routes()?;
    let mut rtnl = Rtnl::open()?;
    let swept = veth::sweep(&mut rtnl);
    let claim = veth::claim(ctx.options.veth_net)?;
    let subnet = claim.subnet;
    let mut notes: Vec<String> = Vec::new();
    if !swept.removed.is_empty() {
        notes.push(format!(
            "removed veth ends left by killed nsx runs: {}",
            swept.removed.join(", ")
        ));
    }
    for failed in swept.failed {
        super::cgroup_steps::left_behind(
            ctx,
            format!("a veth pair left by a killed nsx run could not be removed: {failed}"),
        );
    }
    if !claim.skipped.is_empty() {
        notes.push(format!(
            "used {subnet} because {}",
            claim.skipped.join("; ")
        ));
    }

    let mut pair = Veth::create(&mut rtnl)?;
    let (host_end, peer) = (pair.host.clone(), pair.peer.clone());
    actions.push(format!(
        "ip link add {host_end} type veth peer name {peer}   (rtnetlink RTM_NEWLINK)"
    ));
    actions.push(format!(
        "ip link set {host_end} alias {}   (IFLA_IFALIAS: the run that made it, for a later run's sweep)",
        veth::alias()
    ));
    // The host end carries IPv4 only: without IPv6 it gets no fe80:: address and no IPv6
    // route, so the host's routing tables gain exactly the connected /30.
    let v6 = format!("/proc/sys/net/ipv6/conf/{host_end}/disable_ipv6");
    if Path::new(&v6).exists() {
        std::fs::write(&v6, "1").map_err(|e| crate::error::io("write", Path::new(&v6), e))?;
        actions.push(format!("echo 1 > {v6}"));
    }
    rtnl.add_ipv4(&host_end, subnet.host(), 30)?;
    actions.push(format!("ip addr add {}/30 dev {host_end}", subnet.host()));
    rtnl.set_up(&host_end)?;
    actions.push(format!("ip link set {host_end} up"));
    let listener = tcp::listen(SocketAddr::from((subnet.host(), 0)))?;
    let host_port = listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| crate::error::Error::Other(format!("getsockname: {e}")))?;
    actions.push(format!("listen on {}:{host_port}", subnet.host()));

    let plan = Plan {
        subnet,
        peer: peer.clone(),
        host_port,
    };
    let mut child = sandbox::spawn(&Spec::new(CloneFlags::CLONE_NEWNET), |i| {
        veth_probe(i, &plan)
    })?;
    let pid = child.pid();
    actions.append(&mut child.actions);
    rtnl.move_to_netns_of(&peer, pid)?;
    actions.push(format!(
        "ip link set {peer} netns {pid}   (rtnetlink IFLA_NET_NS_PID)"
    ));
    child.go()?;
    // No packet before both ends are up: the host waits for its end, and for the probe's
    // listener, which the probe opens once its end is up. The host speaks first; the
    // probe calls back when it has answered.
    wait_running(&host_end)?;
    tcp::wait_for_listener(pid, SocketAddr::from((subnet.container(), CONTAINER_PORT)))?;
    let host_client = tcp::call(SocketAddr::from((subnet.container(), CONTAINER_PORT)))?;
    let host_server = tcp::serve_one(&listener)?;
    let seen: VethSeen = child.run()?;
    actions.append(&mut child.actions);
    let host = child.observe_from_host()?;
    let routes_during = host_routes()?;

    let to_container = tcp::round_trip_ok(&host_client, &seen.server)
        && seen.server.peer.starts_with(&format!("{}:", subnet.host()));
    let to_host = tcp::round_trip_ok(&seen.client, &host_server)
        && host_server
            .peer
            .starts_with(&format!("{}:", subnet.container()));

    let rows = vec![
        Row::new(
            "interfaces in …/net/dev (the probe's netns)",
            join(&host.probe.interfaces),
            join(&seen.view.probe.interfaces),
        ),
        Row::new(
            "its end of the veth pair",
            link_label(&host, &host_end),
            link_label(&seen.view, &peer),
        ),
        Row::new(
            format!("routes into {subnet} (/proc/net/route)"),
            routes_label(&routes_during, subnet),
            routes_label(&seen.routes, subnet),
        ),
        Row::new(
            "TCP host → container",
            leg_label("sent", &host_client),
            leg_label("answered", &seen.server),
        ),
        Row::new(
            "TCP container → host",
            leg_label("answered", &host_server),
            leg_label("sent", &seen.client),
        ),
        Row::new(
            "net namespace",
            ns_label("net", host.own_ns("net")),
            ns_label("net", seen.view.own_ns("net")),
        ),
    ];
    notes.push(format!(
        "nsx now deletes {host_end}; the kernel deletes {peer} with it, inside the probe's namespace"
    ));
    let extra = json!({
        "subnet": subnet.to_string(),
        "host_end": host_end,
        "container_end": peer,
        "host_to_container": { "client": host_client, "server": seen.server },
        "container_to_host": { "client": seen.client, "server": host_server },
    });
    let step_host = host.clone();
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "veth".into(),
        title: format!("veth: a pair of linked interfaces, one end moved into the probe's namespace, on {subnet}"),
        actions,
        rows,
        notes,
        extra,
        host: step_host,
        container: seen.view.clone(),
    })?;

    // Deleting the host end while the probe is alive shows the pair going together.
    pair.remove(&mut rtnl)?;
    let probe_after_delete = interfaces(&Path::new("/proc").join(pid.to_string()).join("net/dev"))?;
    child.finish()?;
    drop(claim);
    let host_end_gone = !netlink::exists(&host_end);
    let routes_after = host_routes()?;

    let added: Vec<&Route> = routes_during
        .iter()
        .filter(|r| !routes_before.contains(r))
        .collect();
    let removed: Vec<&Route> = routes_before
        .iter()
        .filter(|r| !routes_during.contains(r))
        .collect();
    let expected = Route {
        dev: host_end.clone(),
        destination: subnet.network(),
        prefix: 30,
        gateway: Ipv4Addr::UNSPECIFIED,
    };
    let host_link = host.link(&host_end).cloned();
    let inside_link = seen.view.link(&peer).cloned();
    Ok(vec![
        Fact::new(
            "veth-ends-placed",
            format!(
                "{host_end} is in the host's namespace with {}, {peer} in the probe's with {}; the host finds {peer} only in /proc/{pid}/net/dev",
                host_link.as_ref().and_then(|l| l.ipv4.clone()).unwrap_or_else(|| "no address".into()),
                inside_link.as_ref().and_then(|l| l.ipv4.clone()).unwrap_or_else(|| "no address".into()),
            ),
            host_link.as_ref().is_some_and(|l| l.up == Some(true) && l.ipv4 == Some(format!("{}/30", subnet.host())))
                && inside_link.as_ref().is_some_and(|l| l.up == Some(true) && l.ipv4 == Some(format!("{}/30", subnet.container())))
                && host.probe.interfaces.contains(&peer)
                && host.link(&peer).is_none(),
            json!({ "host_end": host_link, "container_end": inside_link, "host_reads": host.probe.interfaces }),
        ),
        Fact::new(
            "tcp-host-to-container",
            format!(
                "TCP host → container: the host connected to {}:{CONTAINER_PORT} from {}, sent {} and got {} back, the complement only the probe could compute",
                subnet.container(),
                subnet.host(),
                host_client.sent,
                host_client.received
            ),
            to_container,
            json!({ "client": host_client, "server": seen.server }),
        ),
        Fact::new(
            "tcp-container-to-host",
            format!(
                "TCP container → host: the probe connected to {}:{host_port} from {}, sent {} and got {} back",
                subnet.host(),
                subnet.container(),
                seen.client.sent,
                seen.client.received
            ),
            to_host,
            json!({ "client": seen.client, "server": host_server }),
        ),
        Fact::new(
            "host-routes-only-the-30",
            format!(
                "while the veth was up, the host's routing table gained {} and lost {}: no NAT, no forwarding, no other route",
                if added.is_empty() { "nothing".to_string() } else { added.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ") },
                if removed.is_empty() { "nothing".to_string() } else { removed.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ") },
            ),
            added == [&expected] && removed.is_empty(),
            json!({ "added": added, "removed": removed }),
        ),
        Fact::new(
            "pair-deleted-together",
            format!(
                "after nsx deleted {host_end}, /proc/{pid}/net/dev lists {}: deleting one end of a veth pair deletes both",
                join(&probe_after_delete)
            ),
            probe_after_delete == ["lo"],
            json!({ "probe_after_delete": probe_after_delete }),
        ),
        Fact::new(
            "host-end-gone",
            format!(
                "after the lesson {host_end} {} and the host's routes are {}",
                if host_end_gone { "is gone" } else { "still exists" },
                if routes_after == routes_before { "as before" } else { "different" }
            ),
            host_end_gone && routes_after == routes_before,
            json!({ "gone": host_end_gone, "routes_before": routes_before, "routes_after": routes_after }),
        ),
    ])
}

fn leg_label(verb: &str, leg: &Leg) -> String {
    if let Some(e) = &leg.error {
        return format!("failed: {}", e.lines().next().unwrap_or(e));
    }
    match verb {
        "sent" => format!("sent {} to {}, got {}", leg.sent, leg.peer, leg.received),
        _ => format!(
            "got {} from {}, sent {}",
            leg.received,
            host_of(&leg.peer),
            leg.sent
        ),
    }
}

/// "169.254.73.1:41234" -> "169.254.73.1": the client's port is the kernel's choice.
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_runs_veths_are_left_out() {
        let me = std::process::id();
        let names: Vec<String> = [
            "lo",
            "eth0",
            "nsx1h",
            &format!("nsx{me}h"),
            "nsxfoo",
            "nsx2c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            without_other_runs(&names),
            ["lo", "eth0", &format!("nsx{me}h"), "nsxfoo"]
        );
    }
}
