//! net: a network namespace has its own interfaces, addresses, routes and ports.
//!
//! network_namespaces(7): a network namespace isolates network devices, the IPv4 and IPv6
//! stacks, routing tables, firewall rules, /proc/net (a link to /proc/<pid>/net) and the
//! files under /proc/sys/net. proc(5): /proc/<pid>/net/* shows the namespace of <pid>, so
//! the host can list the probe's interfaces and routes without entering it. A new
//! namespace gets its own loopback device, down, and, where tunnel modules (ipip, ip_gre,
//! sit, ...) are loaded and net.core.fb_tunnels_only_for_init_net is 0 (the default),
//! their fallback devices (tunl0, gre0, sit0, ...): never one of the host's interfaces.
//! The veth step connects the two namespaces the way container runtimes do: a veth pair
//! (veth(4)), one end moved into the probe's namespace, a /30 on the pair, and a TCP
//! round trip in each direction.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure};
use super::kit::{self, StepExt};
use super::tcp::{self, Leg};
use super::{join, Lesson, Rootless, Run};
use crate::error::{Error, Result};
use crate::observe::{self, Link, Ns, Parts, Route, Subject, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::netlink::Rtnl;
use crate::sandbox::veth::{self, Subnet30, Veth};
use crate::sandbox::{Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Net>();

pub struct Net;

/// The net lesson's options.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct NetOptions {
    /// The /30 the veth pair is put on: A.B.C.D/30 inside 169.254.0.0/16 (link-local),
    /// never the one holding 169.254.169.254 [default: 169.254.73.0/30, or the next free
    /// /30 when another nsx run holds it]
    #[arg(long, value_name = "ADDR/30", value_parser = crate::cli::parse_veth_net)]
    pub veth_net: Option<Subnet30>,

    /// Skip the veth step (namespaces only, nothing created on the host)
    #[arg(long)]
    pub no_veth: bool,
}

/// The port the probe listens on inside its namespace: any port is free in a namespace
/// of its own, so it can be a well-known one.
pub const CONTAINER_PORT: u16 = 8080;

/// The fallback devices tunnel modules create in every new network namespace while
/// net.core.fb_tunnels_only_for_init_net is 0, with the module that makes each (kernel
/// Documentation/admin-guide/sysctl/net.rst).
const FALLBACK_TUNNELS: &[(&str, &str)] = &[
    ("tunl0", "ipip"),
    ("gre0", "ip_gre"),
    ("gretap0", "ip_gre"),
    ("erspan0", "ip_gre"),
    ("sit0", "sit"),
    ("ip6tnl0", "ip6_tunnel"),
    ("ip6gre0", "ip6_gre"),
    ("ip_vti0", "ip_vti"),
    ("ip6_vti0", "ip6_vti"),
];

/// `tunl0@NONE` (as `ip link` shows it) and `tunl0` are one device.
fn device(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// The module behind a fallback tunnel device, if `name` is one.
fn fallback_module(name: &str) -> Option<&'static str> {
    FALLBACK_TUNNELS
        .iter()
        .find(|(n, _)| *n == device(name))
        .map(|(_, m)| *m)
}

/// What the veth step's probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VethSeen {
    view: View,
    /// Its own routing table after `ip addr add`, while its end was still down.
    routes_down: Vec<Route>,
    /// The probe connecting to the host.
    client: Leg,
    /// The probe answering the host.
    server: Leg,
}

/// The veth step, as measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VethRun {
    subnet: Subnet30,
    host_end: String,
    peer: String,
    /// Why nsx did not take the /30s it tried first.
    skipped: Vec<String>,
    /// What the host did before it cloned the probe.
    actions: Vec<String>,
    /// The host's own view (routes, sysctls) before the pair existed.
    before: View,
    /// The host's own routing table after `ip addr add`, its end still down.
    routes_down: Vec<Route>,
    /// The host's own routing table right after `ip link set up`.
    routes_up: Vec<Route>,
    /// The probe's run: its report, and the host's view of it (and of itself) meanwhile.
    run: Run<VethSeen>,
    /// The host connecting to the probe, and answering it.
    host_client: Leg,
    host_server: Leg,
    host_port: u16,
    /// `/proc/<pid>/net/dev` of the probe, read after nsx deleted the host end (`None`
    /// while nsx pauses at the veth step, with --step: the pair is still there).
    probe_after_delete: Option<Vec<String>>,
    /// The host's own view (interfaces, routes) after the lesson removed everything
    /// (`None` while nsx pauses at the veth step).
    after: Option<View>,
}

/// Whether the veth step ran, and what it saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)]
pub enum VethStep {
    Ran(VethRun),
    /// Not run, and why.
    Skipped {
        why: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// nsx's PID: its own veth ends are nsx<pid>h and nsx<pid>c; those of other runs
    /// come and go on the host while this one runs.
    nsx_pid: u32,
    before: Run<View>,
    /// `None` while nsx pauses after the before step, with --step.
    after: Option<Run<View>>,
    /// `None` while nsx pauses after the after step, with --step.
    veth: Option<VethStep>,
}

const NET_FACTS: [&str; 6] = [
    "before-same-interfaces",
    "only-lo",
    "lo-down",
    "host-reads-probe-net-dev",
    "host-sees-other-interfaces",
    "net-ns-differs",
];

const VETH_FACTS: [&str; 7] = [
    "veth-ends-placed",
    "tcp-host-to-container",
    "tcp-container-to-host",
    "route-needs-link-up",
    "host-routes-only-the-30",
    "pair-deleted-together",
    "host-end-gone",
];

impl Def for Net {
    const ID: &'static str = "net";
    const TITLE: &'static str = "Network namespace: interfaces, routes and ports of its own";
    const MECHANISM: &'static str = "CLONE_NEWNET; as root, also a veth pair made over rtnetlink";
    const MAN: &'static str = "network_namespaces(7), veth(4), rtnetlink(7), netdevice(7), proc(5)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/net.md");
    const SEES: Parts = Ns::Net
        .part()
        .with(Parts::INTERFACES)
        .with(Parts::LINKS)
        .with(Parts::ROUTES)
        .with(Parts::NET_SYSCTLS);
    const FACTS: &'static [&'static str] = &[
        NET_FACTS[0],
        NET_FACTS[1],
        NET_FACTS[2],
        NET_FACTS[3],
        NET_FACTS[4],
        NET_FACTS[5],
        VETH_FACTS[0],
        VETH_FACTS[1],
        VETH_FACTS[2],
        VETH_FACTS[3],
        VETH_FACTS[4],
        VETH_FACTS[5],
        VETH_FACTS[6],
    ];
    const WORDS: &'static [&'static str] = &[
        "network",
        "networking",
        "netns",
        "veth",
        "interfaces",
        "namespace",
        "namespaces",
    ];
    type Options = NetOptions;
    type Obs = Obs;

    fn check(options: &NetOptions) -> Result<()> {
        if options.no_veth {
            if let Some(net) = options.veth_net {
                return Err(Error::Usage(format!(
                    "--veth-net {net} has no use with --no-veth: give one or the other"
                )));
            }
        }
        Ok(())
    }

    fn measure(m: &mut Measure, options: &NetOptions) -> Result<Obs> {
        let nsx_pid = std::process::id();
        // Each probe lives until the presenter has looked at it (with --step), one at a
        // time: the after probe's namespace holds only what the kernel gives a new one.
        let mut before = m.start(&Spec::new(CloneFlags::empty()), |_| Ok(()), |i| i.observe())?;
        let mut obs = Obs {
            nsx_pid,
            before: before.report(|_| Ok(()))?,
            after: None,
            veth: None,
        };
        if m.pauses() {
            m.pause(&obs, &look_at_namespace(before.pid()))?;
        }
        before.finish()?;
        let mut after = m.start(
            &Spec::new(CloneFlags::CLONE_NEWNET),
            |_| Ok(()),
            |i| i.observe(),
        )?;
        obs.after = Some(after.report(|_| Ok(()))?);
        if m.pauses() {
            m.pause(&obs, &look_at_namespace(after.pid()))?;
        }
        after.finish()?;
        if m.rootless() {
            obs.veth = Some(VethStep::Skipped {
                why: "creating a veth pair in the host's network namespace needs CAP_NET_ADMIN there, and nsx is root only inside its own user namespace (run it with sudo to see the veth step)".into(),
            });
        } else if options.no_veth {
            obs.veth = Some(VethStep::Skipped {
                why: "--no-veth".into(),
            });
        } else {
            veth_step(m, options.veth_net, &mut obs)?;
        }
        Ok(obs)
    }

    fn judge(o: &Obs, _: &NetOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let ours = |names: &[String]| without_other_runs(names, o.nsx_pid);
        let before_step = ns_step(
            "before",
            "before: the probe forked with no new namespace",
            &o.before,
            o.nsx_pid,
        );
        let Some(after) = &o.after else {
            return Judged {
                steps: vec![before_step],
                ..Judged::default()
            };
        };
        let (b_in, b_host) = (&o.before.inside, &o.before.host);
        let (a_in, a_host) = (&after.inside, &after.host);
        let inside_names = &a_in.probe.interfaces;
        let fallback: Vec<&str> = inside_names
            .iter()
            .map(|n| device(n))
            .filter(|n| fallback_module(n).is_some())
            .collect();
        let beyond_lo: Vec<&str> = inside_names
            .iter()
            .map(|n| device(n))
            .filter(|n| *n != "lo" && fallback_module(n).is_none())
            .collect();
        // The host's own interfaces that are its alone: not lo, not a fallback tunnel
        // (every namespace has its own of those), not another run's veth end.
        let host_own: Vec<String> = ours(&a_host.link_names())
            .into_iter()
            .filter(|n| n != "lo" && fallback_module(n).is_none())
            .collect();
        let leaked: Vec<&String> = host_own
            .iter()
            .filter(|n| inside_names.iter().any(|i| device(i) == n.as_str()))
            .collect();
        let lo = |v: &View| v.link("lo").and_then(|l| l.up);
        let mut facts = vec![
            Fact::new(
                "before-same-interfaces",
                format!(
                    "before, the probe is in the host's net namespace ({}) and lists the host's interfaces ({})",
                    kit::ns_text(Ns::Net, b_in.own(Ns::Net)),
                    join(&ours(&b_in.probe.interfaces))
                ),
                ours(&b_in.probe.interfaces) == ours(&b_host.link_names())
                    && kit::same(b_in.own(Ns::Net), base.own(Ns::Net)),
                json!({ "inside": b_in.probe.interfaces, "host": b_host.link_names(), "inside_ns": b_in.own(Ns::Net), "host_ns": base.own(Ns::Net) }),
            ),
            Fact::new(
                "only-lo",
                if fallback.is_empty() {
                    format!(
                        "inside, /proc/self/net/dev lists {}: a new network namespace has a loopback interface of its own and none of the host's",
                        join(inside_names)
                    )
                } else {
                    format!(
                        "inside, /proc/self/net/dev lists {}: a loopback interface of its own and the fallback tunnel devices the loaded tunnel modules give every new namespace ({}), none of the host's",
                        join(inside_names),
                        fallback.join(", ")
                    )
                },
                inside_names.iter().any(|n| n == "lo") && beyond_lo.is_empty(),
                json!({ "inside": inside_names, "fallback_tunnels": fallback, "other": beyond_lo }),
            ),
            Fact::new(
                "lo-down",
                format!(
                    "inside, lo is {} (SIOCGIFFLAGS): nobody has brought it up",
                    state(a_in, "lo")
                ),
                lo(a_in) == Some(false),
                json!({ "lo": a_in.link("lo") }),
            ),
            Fact::new(
                "host-reads-probe-net-dev",
                format!(
                    "the host reads {0}/net/dev and gets the probe's interfaces ({1}), and {0}/net/route its routing table ({2}), not its own: files under /proc/<pid>/net show the network namespace of that process",
                    a_host.source,
                    join(&a_host.probe.interfaces),
                    routes_text(a_host.probe.routes.as_deref())
                ),
                a_host.probe.interfaces == a_in.probe.interfaces
                    && a_host.probe.routes.is_some()
                    && a_host.probe.routes == a_in.probe.routes,
                json!({ "host_reads": a_host.probe.interfaces, "inside": a_in.probe.interfaces, "host_reads_routes": a_host.probe.routes, "inside_routes": a_in.probe.routes }),
            ),
            Fact::new(
                "host-sees-other-interfaces",
                format!(
                    "at the same moment the host's own namespace has {}, the probe's {}: {}, and the probe's lo is another device, {} while the host's is {}",
                    links_label(&ours_links(a_host, o.nsx_pid)),
                    links_label(&a_in.links),
                    if host_own.is_empty() {
                        "the host has no interface besides lo".to_string()
                    } else {
                        format!("none of the host's own interfaces ({}) is in the probe's", host_own.join(", "))
                    },
                    state(a_in, "lo"),
                    state(a_host, "lo"),
                ),
                leaked.is_empty()
                    && lo(a_host) == Some(true)
                    && lo(a_in) == Some(false),
                json!({ "host": ours_links(a_host, o.nsx_pid), "inside": a_in.links, "host_interfaces_inside": leaked }),
            ),
            kit::ns_differs(Ns::Net, a_host, a_in, base),
        ];
        let mut notes = Vec::new();
        let mut after_step = ns_step("after", "after: clone(CLONE_NEWNET)", after, o.nsx_pid)
            .note(format!(
                "the host lists the probe's interfaces through {}/net/dev, but cannot ask their state: an ioctl answers for the caller's own namespace",
                a_host.source
            ))
            .takeaway(if host_own.is_empty() {
                format!(
                    "the probe's namespace has {} of its own: the host's lo is another device",
                    join(inside_names)
                )
            } else {
                format!(
                    "the probe's namespace has {} of its own and none of the host's {}",
                    join(inside_names),
                    join(&host_own)
                )
            });
        if !fallback.is_empty() {
            after_step = after_step.note(fallback_note(&fallback, a_host));
        }
        let mut steps = vec![before_step, after_step];
        let Some(veth) = &o.veth else {
            return Judged {
                steps,
                ..Judged::default()
            };
        };
        match veth {
            VethStep::Ran(v) => {
                let (step, veth_facts, deleted) = judge_veth(v, o.nsx_pid);
                steps.push(step);
                facts.extend(veth_facts);
                notes.extend(deleted);
            }
            VethStep::Skipped { why } => {
                notes.push(format!("the veth step was skipped: {why}"));
                let reason = if env.rootless() {
                    "the veth step needs root"
                } else {
                    "the veth step was skipped"
                };
                facts.extend(VETH_FACTS.iter().map(|id| {
                    Fact::new(id, "not decided without the veth step", false, json!(null))
                        .inconclusive(reason)
                }));
            }
        }
        let takeaway = match veth {
            VethStep::Ran(v) => format!(
                "a new namespace starts with {} and no route; a veth pair on {} joined it to the host, and TCP crossed it both ways",
                join(inside_names),
                v.subnet
            ),
            VethStep::Skipped { .. } => format!(
                "a new namespace starts with {} and no route, and the host reads them through {}/net",
                join(inside_names),
                a_host.source
            ),
        };
        Judged {
            steps,
            facts,
            notes,
            takeaway: Some(takeaway),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn after(o: &mut Obs) -> &mut Run<View> {
            o.after.as_mut().expect("a recording has its after step")
        }
        fn veth(o: &mut Obs) -> Option<&mut VethRun> {
            match &mut o.veth {
                Some(VethStep::Ran(v)) => Some(v),
                _ => None,
            }
        }
        vec![
            F {
                fact: "before-same-interfaces",
                what: "the before probe lists an interface the host does not have",
                change: |o, _| o.before.inside.probe.interfaces.push("eth9".into()),
            },
            F {
                fact: "only-lo",
                what: "the new namespace holds one of the host's interfaces",
                change: |o, _| after(o).inside.probe.interfaces.push("eth0".into()),
            },
            F {
                fact: "only-lo",
                what: "the new namespace has no lo",
                change: |o, _| after(o).inside.probe.interfaces.retain(|n| n != "lo"),
            },
            F {
                fact: "lo-down",
                what: "lo is up inside",
                change: |o, _| {
                    if let Some(l) = after(o).inside.links.iter_mut().find(|l| l.name == "lo") {
                        l.up = Some(true);
                    }
                },
            },
            F {
                fact: "host-reads-probe-net-dev",
                what: "the host reads an interface through /proc/<pid>/net/dev the probe lacks",
                change: |o, _| after(o).host.probe.interfaces.push("eth0".into()),
            },
            F {
                fact: "host-reads-probe-net-dev",
                what: "the host reads its own routes through /proc/<pid>/net/route",
                change: |o, _| {
                    let own = after(o).host.routes.clone();
                    after(o).host.probe.routes = own.or(Some(vec![]));
                    after(o)
                        .host
                        .probe
                        .routes
                        .get_or_insert_with(Vec::new)
                        .push(Route {
                            dev: "eth0".into(),
                            destination: Ipv4Addr::UNSPECIFIED,
                            prefix: 0,
                            gateway: Ipv4Addr::new(192, 0, 2, 1),
                        });
                },
            },
            F {
                fact: "host-sees-other-interfaces",
                what: "a host interface shows up in the probe's namespace",
                change: |o, _| {
                    let name = after(o)
                        .host
                        .link_names()
                        .into_iter()
                        .find(|n| n != "lo" && fallback_module(n).is_none())
                        .unwrap_or_else(|| "eth0".into());
                    if after(o).host.link(&name).is_none() {
                        after(o).host.links.push(Link {
                            name: name.clone(),
                            up: Some(true),
                            ipv4: None,
                        });
                    }
                    after(o).inside.probe.interfaces.push(name);
                },
            },
            F {
                fact: "host-sees-other-interfaces",
                what: "the host's lo is as down as the probe's",
                change: |o, _| {
                    if let Some(l) = after(o).host.links.iter_mut().find(|l| l.name == "lo") {
                        l.up = Some(false);
                    }
                },
            },
            F {
                fact: "net-ns-differs",
                what: "the probe is in the host's net namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["net"];
                    after(o).inside.own_ns.insert("net".into(), host);
                },
            },
            F {
                fact: "veth-ends-placed",
                what: "the host finds the probe's end in its own namespace",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let peer = v.peer.clone();
                        v.run.host.links.push(Link {
                            name: peer,
                            up: Some(true),
                            ipv4: None,
                        });
                    }
                },
            },
            F {
                fact: "tcp-host-to-container",
                what: "the probe answered something else than the complement",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        v.host_client.received = "0x00000000".into();
                    }
                },
            },
            F {
                fact: "tcp-container-to-host",
                what: "the probe's connection failed",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        v.run.inside.client.error = Some("connect: ECONNREFUSED".into());
                    }
                },
            },
            F {
                fact: "route-needs-link-up",
                what: "the /30 route was there while the link was down",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        v.routes_down = v.routes_up.clone();
                    }
                },
            },
            F {
                fact: "route-needs-link-up",
                what: "no route came with ip link set up inside",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        v.run.inside.view.routes = Some(vec![]);
                    }
                },
            },
            F {
                fact: "host-routes-only-the-30",
                what: "the host gained a default route",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let host_end = v.host_end.clone();
                        v.run.host.routes.get_or_insert_with(Vec::new).push(Route {
                            dev: host_end,
                            destination: Ipv4Addr::UNSPECIFIED,
                            prefix: 0,
                            gateway: Ipv4Addr::new(169, 254, 73, 2),
                        });
                    }
                },
            },
            F {
                fact: "host-routes-only-the-30",
                what: "ip_forward was turned on during the lesson",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let mut before = v.before.net_sysctls.clone().unwrap_or_default();
                        let was = before.ip_forward.unwrap_or(false);
                        before.ip_forward = Some(was);
                        let mut during = before.clone();
                        during.ip_forward = Some(!was);
                        v.before.net_sysctls = Some(before);
                        v.run.host.net_sysctls = Some(during);
                    }
                },
            },
            F {
                fact: "host-routes-only-the-30",
                what: "the probe got a default route via the host end",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let peer = v.peer.clone();
                        v.run
                            .inside
                            .view
                            .routes
                            .get_or_insert_with(Vec::new)
                            .push(Route {
                                dev: peer,
                                destination: Ipv4Addr::UNSPECIFIED,
                                prefix: 0,
                                gateway: v.subnet.host(),
                            });
                    }
                },
            },
            F {
                fact: "pair-deleted-together",
                what: "the probe's end outlived the host's",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let peer = v.peer.clone();
                        v.probe_after_delete.get_or_insert_with(Vec::new).push(peer);
                    }
                },
            },
            F {
                fact: "host-end-gone",
                what: "the host end is still there after the lesson",
                change: |o, _| {
                    if let Some(v) = veth(o) {
                        let host_end = v.host_end.clone();
                        v.after.get_or_insert_with(View::default).links.push(Link {
                            name: host_end,
                            up: Some(false),
                            ipv4: None,
                        });
                    }
                },
            },
        ]
    }
}

/// Names of interfaces, without the veth ends of *other* nsx runs that may come and go
/// on the host while this one runs (nsx<pid>h / nsx<pid>c, pid not `ours`).
fn without_other_runs(names: &[String], ours: u32) -> Vec<String> {
    let ours = ours.to_string();
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

fn routes_without_other_runs(routes: &[Route], ours: u32) -> Vec<Route> {
    let devs: Vec<String> = routes.iter().map(|r| r.dev.clone()).collect();
    let keep = without_other_runs(&devs, ours);
    routes
        .iter()
        .filter(|r| keep.contains(&r.dev))
        .cloned()
        .collect()
}

/// The observer's own links, less other runs' veth ends.
fn ours_links(view: &View, ours: u32) -> Vec<Link> {
    let keep = without_other_runs(&view.link_names(), ours);
    view.links
        .iter()
        .filter(|l| keep.contains(&l.name))
        .cloned()
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

/// "UP", "DOWN", or "absent" for an interface of the observer's own namespace.
fn state(view: &View, name: &str) -> &'static str {
    view.link(name).map(|l| l.state()).unwrap_or("absent")
}

/// "169.254.73.0/30 dev nsx7c", "none", or "not read".
fn routes_text(routes: Option<&[Route]>) -> String {
    match routes {
        None => "not read".into(),
        Some([]) => "none".into(),
        Some(r) => r
            .iter()
            .map(Route::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn routes_val(routes: Option<&[Route]>) -> Val {
    match routes {
        None => Val::None("not read".into()),
        Some(_) => Val::text(routes_text(routes)),
    }
}

/// Why a new namespace has tunnel devices, from what this run saw.
fn fallback_note(devices: &[&str], host: &View) -> String {
    let mut modules: Vec<&str> = devices.iter().filter_map(|d| fallback_module(d)).collect();
    modules.dedup();
    let sysctl = match host
        .net_sysctls
        .as_ref()
        .and_then(|s| s.fb_tunnels_only_for_init_net)
    {
        Some(v) => format!("{v} on this host"),
        None => "not readable here: the file exists in the initial network namespace only".into(),
    };
    format!(
        "{} are fallback tunnel devices, not the host's: the {} module(s) create one of each in every new network namespace while net.core.fb_tunnels_only_for_init_net is 0, the default ({sysctl}; Calico nodes, which load ipip, show tunl0 in every pod). They stay down and carry nothing until configured; 1 keeps them out of new namespaces",
        devices.join(", "),
        modules.join(", ")
    )
}

/// The before and after steps: the probe's network namespace read by both sides
/// (/proc/<pid>/net), then each side's own interfaces, lo and routes.
fn ns_step(id: &str, title: &str, run: &Run<View>, ours: u32) -> Step {
    let (host, inside) = (&run.host, &run.inside);
    // Other nsx runs' veth ends (and their routes) come and go on the host while this
    // run reads it: they are left out of every list, so what is shown is this run's.
    let names = |n: &[String]| join(&without_other_runs(n, ours));
    let routes = |r: &Option<Vec<Route>>| match r {
        Some(r) => routes_val(Some(&routes_without_other_runs(r, ours))),
        None => routes_val(None),
    };
    let count = |v: &View| match &v.routes {
        Some(r) => Val::Count(routes_without_other_runs(r, ours).len() as u64),
        None => Val::None("not read".into()),
    };
    // In one namespace (before) the two sides read one list at two moments.
    let one_ns = kit::same(host.own(Ns::Net), inside.own(Ns::Net));
    let moved = "one namespace read at two moments: its interfaces or routes changed meanwhile";
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Net, host, inside);
    let own_names = Row::own(
        "interfaces",
        "net/dev",
        names(&host.link_names()),
        names(&inside.link_names()),
    )
    .drift_if(one_ns, moved);
    let rows = vec![
        Row::probe(
            "interfaces",
            "net/dev",
            names(&host.probe.interfaces),
            names(&inside.probe.interfaces),
        )
        .drift_if(one_ns, moved),
        Row::probe(
            "routes",
            "net/route",
            routes(&host.probe.routes),
            routes(&inside.probe.routes),
        )
        .drift_if(one_ns, moved),
        ns_probe,
        ns_own,
        if id == "after" {
            own_names.key()
        } else {
            own_names
        },
        Row::own(
            "lo",
            "ioctl SIOCGIFFLAGS",
            state(host, "lo"),
            state(inside, "lo"),
        ),
        Row::own("routes", "net/route", count(host), count(inside)).drift_if(one_ns, moved),
    ];
    let step = kit::step(id, title, run, inside, rows);
    let others = without_other_runs(&host.link_names(), ours).len() < host.links.len();
    if others {
        step.note("the veth ends of other nsx runs, which come and go on this host, are left out of the lists")
    } else {
        step
    }
}

/// For a presenter's second terminal: the probe's network namespace beside the
/// terminal's own (readlink(1) of both links), and its interfaces as `ip` lists them
/// from inside it (nsenter(1) joins the namespace of `pid`).
fn look_at_namespace(pid: i32) -> Vec<String> {
    vec![
        format!("readlink /proc/{pid}/ns/net /proc/self/ns/net"),
        format!("nsenter -t {pid} -n ip link"),
    ]
}

/// What the veth step's probe is given.
#[derive(Debug, Clone)]
struct Plan {
    subnet: Subnet30,
    peer: String,
    host_port: u16,
}

/// The observer's own view of `parts`, read through its own /proc/self.
fn own_view(parts: Parts) -> Result<View> {
    observe::observe_parts(Path::new("/proc"), Subject::SelfProcess, parts)
}

fn own_routes() -> Result<Vec<Route>> {
    Ok(own_view(Parts::ROUTES)?.routes.unwrap_or_default())
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
    // Before the link is up: the kernel has the address, but no route to its /30 yet.
    let routes_down = own_routes()?;
    inside.action("cat /proc/self/net/route   (inside, the link still down)");
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
        routes_down,
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
    while observe::net::link_flags(name).unwrap_or(0) & libc::IFF_RUNNING == 0 {
        crate::sandbox::signals::check()?;
        if std::time::Instant::now() > deadline {
            return Err(Error::Other(format!(
                "{name} did not come up (IFF_RUNNING) within {}s",
                tcp::TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    Ok(())
}

/// The veth step, into `obs`: a pair made on the host, one end moved into a probe's new
/// namespace, a /30 on it, a TCP round trip each way; with --step, a pause while all of
/// it is up; then the host end deleted while the probe lives. Everything is owned by
/// guards (the pair, the /30's claim, the probe) that remove it on every way out.
fn veth_step(m: &mut Measure, wanted: Option<Subnet30>, obs: &mut Obs) -> Result<()> {
    let before = own_view(Parts::ROUTES.with(Parts::NET_SYSCTLS))?;
    let mut rtnl = Rtnl::open()?;
    let swept = veth::sweep(&mut rtnl);
    if !swept.removed.is_empty() {
        m.note(format!(
            "removed veth ends left by killed nsx runs: {}",
            swept.removed.join(", ")
        ));
    }
    for failed in swept.failed {
        let text = format!("a veth pair left by a killed nsx run could not be removed: {failed}");
        crate::warn!("nsx: warning: {text}");
        m.note(text);
    }
    let claim = veth::claim(wanted)?;
    let (subnet, skipped) = (claim.subnet, claim.skipped.clone());

    let mut actions = Vec::new();
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
    let routes_down = own_routes()?;
    actions.push("cat /proc/net/route   (the link still down)".into());
    rtnl.set_up(&host_end)?;
    actions.push(format!("ip link set {host_end} up"));
    let routes_up = own_routes()?;
    let listener = tcp::listen(SocketAddr::from((subnet.host(), 0)))?;
    let host_port = listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Other(format!("getsockname: {e}")))?;
    actions.push(format!("listen on {}:{host_port}", subnet.host()));

    let plan = Plan {
        subnet,
        peer: peer.clone(),
        host_port,
    };
    let mut probe = m.start(
        &Spec::new(CloneFlags::CLONE_NEWNET),
        |p| {
            rtnl.move_to_netns_of(&peer, p.pid())?;
            p.action(format!(
                "ip link set {peer} netns {}   (rtnetlink IFLA_NET_NS_PID)",
                p.pid()
            ));
            Ok(())
        },
        |i| veth_probe(i, &plan),
    )?;
    let pid = probe.pid();
    // No packet before both ends are up: the host waits for its end, and for the probe's
    // listener, which the probe opens once its end is up. The host speaks first; the
    // probe calls back when it has answered.
    wait_running(&host_end)?;
    tcp::wait_for_listener(pid, SocketAddr::from((subnet.container(), CONTAINER_PORT)))?;
    let host_client = tcp::call(SocketAddr::from((subnet.container(), CONTAINER_PORT)))?;
    let host_server = tcp::serve_one(&listener)?;
    let run = probe.report(|_| Ok(()))?;
    obs.veth = Some(VethStep::Ran(VethRun {
        subnet,
        host_end: host_end.clone(),
        peer: peer.clone(),
        skipped,
        actions,
        before,
        routes_down,
        routes_up,
        run,
        host_client,
        host_server,
        host_port,
        probe_after_delete: None,
        after: None,
    }));
    // Both ends are up, with their addresses and routes, the probe alive in its namespace.
    if m.pauses() {
        let inside = format!("nsenter -t {pid} -n");
        m.pause(
            &*obs,
            &[
                format!("ip addr show dev {host_end}"),
                format!("{inside} ip addr show dev {peer}"),
                format!("{inside} ip route"),
            ],
        )?;
    }

    // Deleting the host end while the probe is alive shows the pair going together.
    pair.remove(&mut rtnl)?;
    let probe_after_delete = probe.observe()?.probe.interfaces;
    probe.finish()?;
    drop(claim);
    let after = own_view(Parts::LINKS.with(Parts::ROUTES))?;
    if let Some(VethStep::Ran(v)) = &mut obs.veth {
        v.probe_after_delete = Some(probe_after_delete);
        v.after = Some(after);
    }
    Ok(())
}

/// The routes of `routes` into `subnet` (a zeroconf 169.254.0.0/16 route is no route
/// into the /30: only prefixes longer than /16 count).
fn into(subnet: Subnet30, routes: &[Route]) -> Vec<Route> {
    routes
        .iter()
        .filter(|r| r.prefix > 16 && subnet.overlaps(r.destination, r.prefix))
        .cloned()
        .collect()
}

/// "nsx7h 169.254.73.1/30 UP", or "no nsx7h".
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

fn forward_val(view: &View) -> Val {
    match view.net_sysctls.as_ref().and_then(|s| s.ip_forward) {
        Some(on) => Val::Num(i64::from(on)),
        None => Val::None("not read".into()),
    }
}

fn forward_text(on: Option<bool>) -> &'static str {
    match on {
        Some(true) => "1 (on)",
        Some(false) => "0 (off)",
        None => "unknown",
    }
}

fn list_text(routes: &[&Route]) -> String {
    if routes.is_empty() {
        "nothing".to_string()
    } else {
        routes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The veth step and its facts, from what was measured.
/// The veth step, its facts, and what the deletion that followed it showed (`None`
/// before nsx deleted the pair: with --step it shows the step first).
fn judge_veth(v: &VethRun, ours: u32) -> (Step, Vec<Fact>, Option<String>) {
    let (host, seen) = (&v.run.host, &v.run.inside);
    let inside = &seen.view;
    let (subnet, host_end, peer) = (v.subnet, v.host_end.as_str(), v.peer.as_str());
    let route = |dev: &str| Route {
        dev: dev.to_string(),
        destination: subnet.network(),
        prefix: 30,
        gateway: Ipv4Addr::UNSPECIFIED,
    };
    let (host_route, peer_route) = (route(host_end), route(peer));
    let keep = |r: Option<&[Route]>| routes_without_other_runs(r.unwrap_or_default(), ours);
    let before = keep(v.before.routes.as_deref());
    let during = keep(host.routes.as_deref());
    let after = keep(v.after.as_ref().and_then(|a| a.routes.as_deref()));
    let added: Vec<&Route> = during.iter().filter(|r| !before.contains(r)).collect();
    let removed: Vec<&Route> = before.iter().filter(|r| !during.contains(r)).collect();
    let probe_routes = inside.routes.clone().unwrap_or_default();
    let fwd = |view: &View| view.net_sysctls.as_ref().and_then(|s| s.ip_forward);
    let (fwd_before, fwd_during) = (fwd(&v.before), fwd(host));
    let down = (
        into(subnet, &v.routes_down),
        into(subnet, &seen.routes_down),
    );
    let up = (into(subnet, &v.routes_up), into(subnet, &probe_routes));
    let to_container = tcp::round_trip_ok(&v.host_client, &seen.server)
        && seen.server.peer.starts_with(&format!("{}:", subnet.host()));
    let to_host = tcp::round_trip_ok(&seen.client, &v.host_server)
        && v.host_server
            .peer
            .starts_with(&format!("{}:", subnet.container()));
    let host_link = host.link(host_end).cloned();
    let inside_link = inside.link(peer).cloned();
    let addr = |l: &Option<Link>| {
        l.as_ref()
            .and_then(|l| l.ipv4.clone())
            .unwrap_or_else(|| "no address".into())
    };
    let placed = |l: &Option<Link>, ip: Ipv4Addr| {
        l.as_ref()
            .is_some_and(|l| l.up == Some(true) && l.ipv4 == Some(format!("{ip}/30")))
    };
    let without_peer: Vec<String> = inside
        .probe
        .interfaces
        .iter()
        .filter(|n| n.as_str() != peer)
        .cloned()
        .collect();
    let host_end_gone = v
        .after
        .as_ref()
        .is_some_and(|a| !a.links.iter().any(|l| l.name == host_end));
    let deleted = v.probe_after_delete.as_deref();
    let facts = vec![
        Fact::new(
            "veth-ends-placed",
            format!(
                "{host_end} is in the host's namespace with {}, {peer} in the probe's with {}; the host finds {peer} only in {}/net/dev",
                addr(&host_link),
                addr(&inside_link),
                host.source
            ),
            placed(&host_link, subnet.host())
                && placed(&inside_link, subnet.container())
                && host.probe.interfaces.iter().any(|n| n == peer)
                && host.link(peer).is_none(),
            json!({ "host_end": host_link, "container_end": inside_link, "host_reads": host.probe.interfaces }),
        ),
        Fact::new(
            "tcp-host-to-container",
            format!(
                "TCP host → container: the host connected to {}:{CONTAINER_PORT} from {}, sent {} and got {} back, the complement only the probe could compute",
                subnet.container(),
                subnet.host(),
                v.host_client.sent,
                v.host_client.received
            ),
            to_container,
            json!({ "client": v.host_client, "server": seen.server }),
        ),
        Fact::new(
            "tcp-container-to-host",
            format!(
                "TCP container → host: the probe connected to {}:{} from {}, sent {} and got {} back",
                subnet.host(),
                v.host_port,
                subnet.container(),
                seen.client.sent,
                seen.client.received
            ),
            to_host,
            json!({ "client": seen.client, "server": v.host_server }),
        ),
        Fact::new(
            "route-needs-link-up",
            format!(
                "after ip addr add, with the links still down, the host's table had {} and the probe's {} into {subnet}; ip link set up added {} on the host and {} in the probe: an address's prefix route exists only while its interface is up",
                routes_text(Some(&down.0)),
                routes_text(Some(&down.1)),
                routes_text(Some(&up.0)),
                routes_text(Some(&up.1)),
            ),
            down.0.is_empty()
                && down.1.is_empty()
                && up.0.contains(&host_route)
                && up.1.contains(&peer_route),
            json!({ "host_down": down.0, "probe_down": down.1, "host_up": up.0, "probe_up": up.1 }),
        ),
        Fact::new(
            "host-routes-only-the-30",
            format!(
                "while the veth was up, the host's routing table gained {} and lost {}, ip_forward stayed {}, and the probe's table held only {}: no route leads the probe past the host end",
                list_text(&added),
                list_text(&removed),
                forward_text(fwd_during),
                routes_text(Some(&probe_routes)),
            ),
            added == [&host_route]
                && removed.is_empty()
                && fwd_before.is_some()
                && fwd_before == fwd_during
                && probe_routes == [peer_route.clone()],
            json!({ "added": added, "removed": removed, "ip_forward_before": fwd_before, "ip_forward_during": fwd_during, "probe_routes": probe_routes }),
        ),
        Fact::new(
            "pair-deleted-together",
            match deleted {
                Some(left) => format!(
                    "after nsx deleted {host_end}, {}/net/dev lists {}: deleting one end of a veth pair deletes both",
                    host.source,
                    join(left)
                ),
                None => format!("not measured: nsx has not deleted {host_end} yet"),
            },
            inside.probe.interfaces.iter().any(|n| n == peer) && deleted == Some(&without_peer[..]),
            json!({ "probe_before_delete": inside.probe.interfaces, "probe_after_delete": deleted }),
        ),
        Fact::new(
            "host-end-gone",
            match &v.after {
                Some(_) => format!(
                    "after the lesson {host_end} {} and the host's routes are {}",
                    if host_end_gone { "is gone" } else { "still exists" },
                    if after == before { "as before" } else { "different" }
                ),
                None => format!("not measured: nsx has not deleted {host_end} yet"),
            },
            host_end_gone && after == before,
            json!({ "gone": host_end_gone, "routes_before": before, "routes_after": after }),
        ),
    ];

    let connection = "each side's end of one connection";
    let rows = vec![
        Row::probe(
            "interfaces",
            "net/dev",
            join(&host.probe.interfaces),
            join(&inside.probe.interfaces),
        ),
        Row::probe(
            "routes",
            "net/route",
            routes_val(host.probe.routes.as_deref()),
            routes_val(inside.probe.routes.as_deref()),
        ),
        kit::ns_rows(Ns::Net, host, inside)[0].clone(),
        kit::ns_rows(Ns::Net, host, inside)[1].clone(),
        Row::own(
            "its end of the pair",
            "ioctl SIOCGIFADDR",
            link_label(host, host_end),
            link_label(inside, peer),
        )
        .apart("the two ends of one pair"),
        Row::own(
            "routes into the /30, link down",
            "net/route",
            routes_text(Some(&down.0)),
            routes_text(Some(&down.1)),
        ),
        Row::own(
            "routes into the /30, link up",
            "net/route",
            routes_text(Some(&into(subnet, &during))),
            routes_text(Some(&up.1)),
        )
        .apart("each side's route leads to its own end"),
        Row::own(
            "ip_forward",
            "/proc/sys/net/ipv4/ip_forward",
            forward_val(host),
            forward_val(inside),
        ),
        Row::own(
            "TCP host → container",
            "a connection",
            leg_label("sent", &v.host_client),
            leg_label("answered", &seen.server),
        )
        .apart(connection)
        .key(),
        Row::own(
            "TCP container → host",
            "a connection",
            leg_label("answered", &v.host_server),
            leg_label("sent", &seen.client),
        )
        .apart(connection),
    ];
    let mut step = kit::step(
        "veth",
        &format!("veth: a pair of linked interfaces, one end moved into the probe's namespace, on {subnet}"),
        &v.run,
        inside,
        rows,
    );
    step.actions = v.actions.iter().chain(&v.run.actions).cloned().collect();
    if !v.skipped.is_empty() {
        step = step.note(format!("used {subnet} because {}", v.skipped.join("; ")));
    }
    let step = step
        .note("the /30 route came with ip link set up, not with ip addr add: while a link is down the kernel keeps only the address itself, in the local table (ip route show table local), which /proc/net/route does not list")
        .note(format!(
            "ip_forward was {} before the pair and {} while it was up: nsx does not change it, and the probe, whose only route is {subnet}, has no route past the host end. nsx adds no NAT rule either (it never touches the host's netfilter tables; this run does not read them, which needs iptables or nft)",
            forward_text(fwd_before),
            forward_text(fwd_during)
        ))
        .takeaway(format!(
            "one cable between two namespaces: the host reached {}:{CONTAINER_PORT} and the probe reached {}, over {host_end} and {peer}",
            subnet.container(),
            subnet.host()
        ))
        .extra(json!({
            "subnet": subnet.to_string(),
            "host_end": host_end,
            "container_end": peer,
            "host_to_container": { "client": v.host_client, "server": seen.server },
            "container_to_host": { "client": seen.client, "server": v.host_server },
        }));
    let deletion = deleted.map(|left| {
        format!(
            "after the veth step nsx deleted {host_end}; the kernel deleted {peer} with it, inside the probe's namespace: {}/net/dev then listed {}",
            host.source,
            join(left)
        )
    });
    (step, facts, deletion)
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

    use crate::lessons::fixture_tests::paused_runs_show_the_whole_runs_steps;

    #[test]
    fn a_run_paused_at_each_step_shows_the_steps_the_whole_run_shows() {
        paused_runs_show_the_whole_runs_steps::<Net>(|o| {
            let mut before = o.clone();
            (before.after, before.veth) = (None, None);
            let mut after = o.clone();
            after.veth = None;
            let mut veth = o.clone();
            match &mut veth.veth {
                // The pause of the veth step: the pair is up, not deleted yet.
                Some(VethStep::Ran(v)) => {
                    (v.probe_after_delete, v.after) = (None, None);
                    vec![(before, 1), (after, 2), (veth, 3)]
                }
                _ => vec![(before, 1), (after, 2)],
            }
        });
    }

    /// At the veth step's pause the pair is up: the step does not say it was deleted
    /// (issue 14); the deletion, measured once the presenter moved on, is said after it.
    #[test]
    fn the_deletion_is_said_after_the_veth_step_not_in_it() {
        let (o, options, env) = recorded();
        let j = Net::judge(&o, &options, &env);
        let veth = j.steps.iter().find(|s| s.id == "veth").unwrap();
        assert!(
            !veth.notes.iter().any(|n| n.contains("deleted")),
            "{:?}",
            veth.notes
        );
        assert!(
            j.notes
                .iter()
                .any(|n| n.starts_with("after the veth step nsx deleted nsx")),
            "{:?}",
            j.notes
        );
    }

    #[test]
    fn other_runs_veths_are_left_out() {
        let names: Vec<String> = ["lo", "eth0", "nsx1h", "nsx42h", "nsxfoo", "nsx2c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            without_other_runs(&names, 42),
            ["lo", "eth0", "nsx42h", "nsxfoo"]
        );
    }

    /// A recorded run of this host, as root.
    fn recorded() -> (Obs, NetOptions, Env) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/net.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        (
            serde_json::from_value(rec.observations).unwrap(),
            serde_json::from_value(rec.options).unwrap(),
            rec.env,
        )
    }

    fn fact<'a>(j: &'a Judged, id: &str) -> &'a Fact {
        j.facts.iter().find(|f| f.id == id).unwrap()
    }

    fn after_notes(j: &Judged) -> String {
        j.steps
            .iter()
            .find(|s| s.id == "after")
            .unwrap()
            .notes
            .join("\n")
    }

    /// Where the ipip and sit modules are loaded (a Calico node) and
    /// net.core.fb_tunnels_only_for_init_net is 0, every new namespace has tunl0 and sit0
    /// besides lo (`ip link` shows them as tunl0@NONE, sit0@NONE), and so does the host:
    /// the facts still hold, and the after step says what those devices are.
    #[test]
    fn fallback_tunnels_in_a_new_namespace_are_explained_not_failed() {
        let (mut o, options, mut env) = recorded();
        let plain = Net::judge(&o, &options, &env);
        assert!(fact(&plain, "only-lo").holds);
        assert!(!after_notes(&plain).contains("fallback tunnel"));

        let after = o.after.as_mut().unwrap();
        for name in ["tunl0@NONE", "sit0"] {
            after.inside.probe.interfaces.push(name.into());
            after.host.probe.interfaces.push(name.into());
            after.inside.links.push(Link {
                name: device(name).into(),
                up: Some(false),
                ipv4: None,
            });
            after.host.links.push(Link {
                name: device(name).into(),
                up: Some(false),
                ipv4: None,
            });
        }
        after
            .host
            .net_sysctls
            .get_or_insert_with(Default::default)
            .fb_tunnels_only_for_init_net = Some(0);
        env.baseline.links = after.host.links.clone();
        let j = Net::judge(&o, &options, &env);
        for id in NET_FACTS {
            assert!(fact(&j, id).holds, "{id}: {}", fact(&j, id).claim);
        }
        let only_lo = fact(&j, "only-lo");
        assert!(
            only_lo.claim.contains("fallback tunnel devices"),
            "{}",
            only_lo.claim
        );
        let notes = after_notes(&j);
        assert!(
            notes.contains("tunl0, sit0 are fallback tunnel devices"),
            "{notes}"
        );
        assert!(notes.contains("ipip, sit module(s)"), "{notes}");
        assert!(notes.contains("(0 on this host;"), "{notes}");

        // A device of the host's own is still a failure, tunnels or not.
        o.after
            .as_mut()
            .unwrap()
            .inside
            .probe
            .interfaces
            .push("eth0".into());
        let j = Net::judge(&o, &options, &env);
        assert!(!fact(&j, "only-lo").holds);
    }

    /// The same, live: the v2 kernel of the matrix with the ipip and sit modules loaded
    /// (recorded with scripts/vm/run.sh --module ipip --module sit, a script running
    /// `nsx lesson net --record /out/net.rec.json`).
    #[test]
    fn a_real_kernel_with_ipip_and_sit_loaded_passes_and_says_why() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/v2-root-ipip/net.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        let o: Obs = serde_json::from_value(rec.observations).unwrap();
        let options: NetOptions = serde_json::from_value(rec.options).unwrap();
        assert!(o
            .after
            .as_ref()
            .unwrap()
            .inside
            .probe
            .interfaces
            .iter()
            .any(|n| n == "tunl0"));
        let j = Net::judge(&o, &options, &rec.env);
        for f in &j.facts {
            assert!(f.holds, "{}: {}", f.id, f.claim);
        }
        assert_eq!(j.facts.len(), Net::FACTS.len());
        let notes = after_notes(&j);
        assert!(
            notes.contains("tunl0, sit0 are fallback tunnel devices"),
            "{notes}"
        );
    }

    #[test]
    fn fallback_tunnels_are_known_by_name() {
        assert_eq!(fallback_module("tunl0"), Some("ipip"));
        assert_eq!(fallback_module("tunl0@NONE"), Some("ipip"));
        assert_eq!(fallback_module("sit0"), Some("sit"));
        assert_eq!(fallback_module("eth0"), None);
        assert_eq!(fallback_module("lo"), None);
    }
}
