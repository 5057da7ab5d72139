//! user: a user namespace makes the probe root inside and nobody special outside.
//!
//! user_namespaces(7): a new user namespace gets its own uid and gid numbers, tied to the
//! parent namespace's by uid_map and gid_map. The probe is uid 0 with every capability
//! *in that namespace*; the host reads /proc/<pid>/status and sees the mapped uid.
//! Capabilities count only for resources the namespace owns: a permission check against
//! a host-owned process fails.
//!
//! Run as root, nsx maps 0..65535 inside to 100000..165535 outside (the way runtimes that
//! run as root use /etc/subuid) and the probe switches to uid 0 inside, so the host sees
//! uid 100000. A map alone would not do: a probe cloned by root stays host uid 0, the
//! owner of every root file and process, until it takes on a mapped uid (see
//! IdMap::Range in the sandbox). Run unprivileged, nsx maps its own uid to 0.
//!
//! "Defining user and group ID mappings" in user_namespaces(7): a map is written once, by
//! a process in the namespace or in its parent. A writer without CAP_SETUID in the parent
//! namespace may map exactly one id, its own effective uid, to any id inside; for gid_map
//! it must first write "deny" to setgroups. The own-map step shows it: an unprivileged
//! probe unshares a user namespace and writes its own maps. Rootless engines get 65536
//! ids through the setuid newuidmap(1) and newgidmap(1), which write ranges that
//! /etc/subuid and /etc/subgid grant the user (subuid(5)); the subids step shows what
//! this machine grants, and runs them when it grants a range.
//!
//! The capability test is kill(pid, 0) on a process owned by host root: kill(2) with
//! signal 0 sends nothing and only performs the permission check, so it cannot change
//! anything on the host even where it is allowed (it is, from nsx itself as root).
//!
//! The control run writes no map: every id is unmapped and shows as the overflow uid.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, Midway, NoOptions, Prep};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{op, Context, Error, Result};
use crate::observe::{self, IdLimits, Ns, Parts, View};
use crate::report::{Fact, Privilege, Row, Step, Val};
use crate::sandbox::{IdMap, Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<User>();

pub struct User;

/// Where the map puts root's range when nsx runs as root (Docker's userns-remap and
/// rootful Podman allocate from /etc/subuid the same way).
pub const ROOT_MAP_FIRST: u32 = 100_000;
pub const ROOT_MAP_COUNT: u32 = 65_536;

/// CAP_KILL, capabilities(7).
const CAP_KILL: u32 = 5;

/// The id the own-map probe takes inside: any single id will do (user_namespaces(7)).
pub const OWN_MAP_INSIDE: u32 = 42;

/// "nobody": the unprivileged user nsx acts for when it runs as root without sudo.
const NOBODY: u32 = 65_534;

/// Where a setuid newuidmap/newgidmap may be: system directories only, never $PATH, since
/// nsx as root runs what it finds (as the unprivileged user, but still).
const TOOL_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// The host process the probes ask kill(2) about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub pid: i32,
    /// Its real, effective and saved uids (status `Uid:`).
    pub uids: [u32; 3],
}

/// What a probe reports: its view, its ids, and what kill(target, 0) said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    getuid: u32,
    getgid: u32,
    /// kill(target, 0): "allowed" or the errno name.
    kill: String,
    /// The own-map probe only: the maps it wrote itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    own_map: Option<OwnMap>,
}

/// An unprivileged probe's own user namespace, mapped by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnMap {
    /// The uid and gid it had (on the host) when it unshared.
    uid: u32,
    gid: u32,
    /// Every write it tried, in order.
    writes: Vec<Write>,
}

/// One write to a /proc/self file and what it returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    file: String,
    text: String,
    /// "ok" or the errno name.
    result: String,
}

/// Why the lesson acts for this user where it needs an unprivileged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    /// nsx runs as this user.
    Invoker,
    /// nsx runs as root under sudo(8): the user in SUDO_UID.
    Sudo,
    /// nsx runs as root without sudo: "nobody" plays the unprivileged user.
    Nobody,
}

/// The unprivileged user the own-map and subids steps act for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    uid: u32,
    gid: u32,
    /// The login name in /etc/passwd, when there is one.
    name: Option<String>,
    why: Why,
}

impl Person {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// A setuid helper of the uidmap package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    path: String,
    /// Owned by root with the set-user-ID bit: what lets it write a range.
    setuid_root: bool,
}

/// A line of /etc/subuid or /etc/subgid for the person: `name:start:count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    start: u32,
    count: u32,
}

/// newuidmap or newgidmap as nsx ran it, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolRun {
    command: String,
    /// "exit 0", "exit 1", "killed by SIGKILL".
    status: String,
    /// What it printed on standard error, trimmed.
    stderr: String,
}

/// What this machine gives an unprivileged user for 65536 ids, and the run when it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubIds {
    newuidmap: Option<Tool>,
    newgidmap: Option<Tool>,
    subuid: Vec<Range>,
    subgid: Vec<Range>,
    /// The probe whose maps newuidmap and newgidmap wrote: only where all of the above
    /// allow it.
    run: Option<Run<Seen, String>>,
    tools_ran: Vec<ToolRun>,
}

impl SubIds {
    /// What stops newuidmap here, if anything: the first missing piece.
    fn missing(&self, person: &Person) -> Option<String> {
        let tool = |t: &Option<Tool>, name: &str| match t {
            None => Some(format!("{name} is not installed (Debian package uidmap)")),
            Some(t) if !t.setuid_root => Some(format!("{} is not setuid root", t.path)),
            Some(_) => None,
        };
        tool(&self.newuidmap, "newuidmap")
            .or_else(|| tool(&self.newgidmap, "newgidmap"))
            .or_else(|| {
                person.name.is_none().then(|| {
                    format!(
                        "uid {} has no account in /etc/passwd, and newuidmap looks the user up by name",
                        person.uid
                    )
                })
            })
            .or_else(|| {
                self.subuid.is_empty().then(|| {
                    format!("/etc/subuid grants {} no range", person.label())
                })
            })
            .or_else(|| {
                self.subgid.is_empty().then(|| {
                    format!("/etc/subgid grants {} no range", person.label())
                })
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    target: Target,
    person: Person,
    /// A plain fork: no new namespace.
    before: Run<Seen, String>,
    /// CLONE_NEWUSER, maps written by nsx (the parent).
    after: Run<Seen, String>,
    /// CLONE_NEWUSER, no map.
    control: Run<Seen, String>,
    /// A plain fork that becomes the person, unshares and maps itself.
    own_map: Run<Seen, String>,
    subids: SubIds,
}

#[cfg(test)]
/// For falsifiers: the setuid newuidmap and newgidmap installed, an account named
/// "student", and 65536 subordinate ids from `start` granted to it.
fn student_with_subids(o: &mut Obs, start: u32) {
    let tool = |p: &str| {
        Some(Tool {
            path: p.into(),
            setuid_root: true,
        })
    };
    o.subids.newuidmap = tool("/usr/bin/newuidmap");
    o.subids.newgidmap = tool("/usr/bin/newgidmap");
    o.person.name = Some("student".into());
    let r = Range {
        start,
        count: 65_536,
    };
    o.subids.subuid = vec![r];
    o.subids.subgid = vec![r];
}

impl Def for User {
    const ID: &'static str = "user";
    const TITLE: &'static str = "User namespace: root inside, an ordinary user outside";
    const MECHANISM: &'static str = "CLONE_NEWUSER + uid_map/gid_map";
    const MAN: &'static str =
        "user_namespaces(7), capabilities(7), kill(2), credentials(7), newuidmap(1), subuid(5)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/user.md");
    const SEES: Parts = Ns::User.part().with(Parts::ID_MAPS).with(Parts::ID_LIMITS);
    const FACTS: &'static [&'static str] = &[
        "before-same-uid",
        "inside-uid-is-0",
        "host-sees-ordinary-uid",
        "uid-map-translates",
        "full-capeff-inside",
        "same-bits-seen-from-host",
        "caps-stop-at-the-host",
        "user-ns-differs",
        "unmapped-is-overflow",
        "own-map-written-inside",
        "own-map-only-own-id",
        "own-gid-map-after-deny",
        "subids-need-newuidmap",
    ];
    const WORDS: &'static [&'static str] = &[
        "userns",
        "uid",
        "uid_map",
        "root",
        "rootless",
        "namespace",
        "namespaces",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let target = root_owned_target()?;
        let person = person(m.privilege);
        let root = m.privilege == Privilege::Root;
        let after_map = match m.privilege {
            Privilege::Root => IdMap::Range {
                uid: ROOT_MAP_FIRST,
                gid: ROOT_MAP_FIRST,
                count: ROOT_MAP_COUNT,
            },
            Privilege::Rootless => IdMap::Invoker,
        };
        let specs = [
            Spec::new(CloneFlags::empty()),
            Spec {
                namespaces: CloneFlags::CLONE_NEWUSER,
                id_map: after_map,
                ..Spec::default()
            },
            Spec {
                namespaces: CloneFlags::CLONE_NEWUSER,
                id_map: IdMap::Unmapped,
                ..Spec::default()
            },
            // A plain fork: the probe makes its user namespace itself.
            Spec::new(CloneFlags::empty()),
        ];
        let (pid, who) = (target.pid, person.clone());
        // Each probe has a user namespace of its own (or none) and only asks kill(2)
        // whether it may: the four run side by side.
        let [before, after, control, own_map] = m.probes_n(
            specs,
            |k, inside| {
                let own = if k == 3 {
                    if root {
                        become_user(who.uid, who.gid, inside)?;
                    }
                    Some(map_itself(inside)?)
                } else {
                    None
                };
                look(pid, inside, own)
            },
            |_, _| Ok(attempt_kill(pid)),
        )?;
        let subids = subids(m, &person, pid)?;
        Ok(Obs {
            target,
            person,
            before,
            after,
            control,
            own_map,
            subids,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let root = !env.rootless();
        let t = o.target.pid;
        let limits = o.after.inside.view.id_limits.unwrap_or_default();
        let (b, a, c, s) = (&o.before, &o.after, &o.control, &o.own_map);
        let (host, inside) = (&a.host, &a.inside.view);
        let expected_uid = if root {
            ROOT_MAP_FIRST
        } else {
            env.machine.uid
        };
        let mapped = map_id(host.probe.uid_map(), 0);
        let full = limits.full_caps();
        let cap_eff = |v: &View| crate::caps::parse_mask(&v.probe.cap_eff);
        let target_is_root = o.target.uids == [0, 0, 0];
        let overflow = c.inside.view.id_limits.unwrap_or_default();
        let mut facts = vec![
            Fact::new(
                "before-same-uid",
                format!(
                    "before, the probe is uid {} on both sides, in the host's user namespace ({})",
                    b.inside.getuid,
                    kit::ns_text(Ns::User, b.inside.view.own(Ns::User))
                ),
                b.inside.getuid == b.host.probe.uid
                    && b.inside.getuid == env.machine.uid
                    && kit::same(b.inside.view.own(Ns::User), base.own(Ns::User)),
                json!({ "getuid": b.inside.getuid, "host_uid": b.host.probe.uid }),
            ),
            Fact::new(
                "inside-uid-is-0",
                format!(
                    "inside, getuid() returns {} and /proc/self/status says Uid {}: the probe is root in its namespace",
                    a.inside.getuid, inside.probe.uid
                ),
                a.inside.getuid == 0 && inside.probe.uid == 0,
                json!({ "getuid": a.inside.getuid, "status_uid": inside.probe.uid }),
            ),
            Fact::new(
                "host-sees-ordinary-uid",
                format!(
                    "the host's {}/status shows the same process as uid {}, not 0",
                    host.source, host.probe.uid
                ),
                host.probe.uid == expected_uid && host.probe.uid != 0,
                json!({ "host_uid": host.probe.uid, "expected": expected_uid }),
            ),
            Fact::new(
                "uid-map-translates",
                format!(
                    "uid_map \"{}\" maps uid 0 inside to uid {} outside, the uid the host sees",
                    map_label(host.probe.uid_map()),
                    mapped.map_or("nothing".to_string(), |m| m.to_string())
                ),
                mapped == Some(u64::from(host.probe.uid)),
                json!({ "uid_map": host.probe.uid_map(), "maps_0_to": mapped }),
            ),
            Fact::new(
                "full-capeff-inside",
                format!(
                    "inside, CapEff is {}: every capability this kernel has (cap_last_cap is {})",
                    caps_text(&inside.probe.cap_eff),
                    limits.cap_last_cap
                ),
                inside.id_limits.is_some() && cap_eff(inside) == Some(full),
                json!({ "inside": inside.probe.cap_eff, "full": format!("{full:016x}") }),
            ),
            Fact::new(
                "same-bits-seen-from-host",
                format!(
                    "the host reads the same CapEff ({}) in {}/status: the bits are the same, but they count in the probe's user namespace",
                    caps_text(&host.probe.cap_eff),
                    host.source
                ),
                host.probe.cap_eff == inside.probe.cap_eff,
                json!({ "host": host.probe.cap_eff, "inside": inside.probe.cap_eff }),
            ),
            Fact::new(
                "caps-stop-at-the-host",
                format!(
                    "holding CAP_KILL, the probe's kill({t}, 0) on a process owned by host root returns {} (nsx itself, {}: {}): capabilities in a user namespace count only for what that namespace owns",
                    a.inside.kill,
                    if root { "real root" } else { "unprivileged" },
                    a.host_extra
                ),
                target_is_root
                    && a.inside.kill == errno_name(Errno::EPERM)
                    && cap_eff(inside).is_some_and(|m| crate::caps::has(m, CAP_KILL)),
                json!({ "inside": a.inside.kill, "nsx": a.host_extra, "target": o.target }),
            ),
            kit::ns_differs(Ns::User, host, inside, base),
            Fact::new(
                "unmapped-is-overflow",
                format!(
                    "with no map written, getuid() inside returns {} and getgid() {}: the overflow ids (/proc/sys/kernel/overflowuid {}, overflowgid {}); the host still sees uid {}",
                    c.inside.getuid,
                    c.inside.getgid,
                    overflow.overflowuid,
                    overflow.overflowgid,
                    c.host.probe.uid
                ),
                c.inside.view.id_limits.is_some()
                    && c.inside.getuid == overflow.overflowuid
                    && c.inside.getgid == overflow.overflowgid
                    && c.inside.view.probe.uid_map.as_deref() == Some(&[])
                    && c.host.probe.uid == env.machine.uid,
                json!({ "getuid": c.inside.getuid, "getgid": c.inside.getgid, "overflow": overflow, "host_uid": c.host.probe.uid }),
            ),
        ];
        facts.extend(own_map_facts(s, &o.person, base));
        facts.push(subids_fact(o));

        let person = &o.person;
        let mut steps = vec![
            step("before", "before: the probe forked with no new namespace", b, t)
                .note(format!(
                    "T is PID {t}, a process host root owns; on each side kill(T, 0) asks that side's own identity (the host side is nsx)"
                ))
                .note(before_note(b, root)),
            step(
                "after",
                "after: clone(CLONE_NEWUSER), the parent writes uid_map and gid_map",
                a,
                t,
            )
            .note(if root {
                format!(
                    "nsx runs as root, so it mapped a range, 0-{} inside to {ROOT_MAP_FIRST}-{} outside, as runtimes running as root do with /etc/subuid, and the probe switched to uid 0 inside; a map alone would have left it host uid 0",
                    ROOT_MAP_COUNT - 1,
                    ROOT_MAP_FIRST + ROOT_MAP_COUNT - 1
                )
            } else {
                format!(
                    "nsx runs unprivileged (uid {}), so from the parent namespace it may map one id, its own: \"0 {} 1\"",
                    env.machine.uid, env.machine.uid
                )
            })
            .takeaway(format!(
                "one process, two uids: {} to itself, {} to the host; its kill({t}, 0) got {}",
                a.inside.getuid, host.probe.uid, a.inside.kill
            )),
            control_step(c, t, &overflow),
            own_map_step(s, t, person),
        ];
        steps.extend(subids_steps(o, t));
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "the probe was uid {} inside and uid {} on the host; with every capability inside, kill({t}, 0) on a host-root process returned {}",
                a.inside.getuid, host.probe.uid, a.inside.kill
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn write(o: &mut Obs, file: &str, text_start: &str, result: &str) {
            if let Some(own) = o.own_map.inside.own_map.as_mut() {
                for w in own.writes.iter_mut() {
                    if w.file == file && w.text.starts_with(text_start) {
                        w.result = result.to_string();
                    }
                }
            }
        }
        vec![
            F {
                fact: "before-same-uid",
                what: "the host sees the before probe as another uid",
                change: |o, _| o.before.host.probe.uid += 1,
            },
            F {
                fact: "inside-uid-is-0",
                what: "getuid() inside is not 0",
                change: |o, _| o.after.inside.getuid = 7,
            },
            F {
                fact: "host-sees-ordinary-uid",
                what: "the host sees uid 0",
                change: |o, _| o.after.host.probe.uid = 0,
            },
            F {
                fact: "uid-map-translates",
                what: "uid_map maps 0 elsewhere",
                change: |o, _| o.after.host.probe.uid_map = Some(vec!["0 7 1".into()]),
            },
            F {
                fact: "full-capeff-inside",
                what: "inside, CapEff lacks CAP_SYS_ADMIN",
                change: |o, _| {
                    let m = crate::caps::parse_mask(&o.after.inside.view.probe.cap_eff)
                        .unwrap_or(0)
                        & !(1 << crate::caps::SYS_ADMIN);
                    o.after.inside.view.probe.cap_eff = format!("{m:016x}");
                },
            },
            F {
                fact: "same-bits-seen-from-host",
                what: "the host reads other bits",
                change: |o, _| o.after.host.probe.cap_eff = "0000000000000000".into(),
            },
            F {
                fact: "caps-stop-at-the-host",
                what: "the probe's kill(target, 0) is allowed",
                change: |o, _| o.after.inside.kill = "allowed".into(),
            },
            F {
                fact: "caps-stop-at-the-host",
                what: "the target is not owned by host root",
                change: |o, _| o.target.uids = [1000, 1000, 1000],
            },
            F {
                fact: "user-ns-differs",
                what: "the probe is in the host's user namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["user"];
                    o.after.inside.view.own_ns.insert("user".into(), host);
                },
            },
            F {
                fact: "unmapped-is-overflow",
                what: "getuid() without a map is not the overflow uid",
                change: |o, _| o.control.inside.getuid = 0,
            },
            F {
                fact: "own-map-written-inside",
                what: "the probe's write of its own uid_map is refused",
                change: |o, _| write(o, "uid_map", "42 ", "EPERM"),
            },
            F {
                fact: "own-map-written-inside",
                what: "the own-map probe is host root",
                change: |o, _| o.own_map.host.probe.uid = 0,
            },
            F {
                fact: "own-map-only-own-id",
                what: "mapping host root's uid is allowed",
                change: |o, _| write(o, "uid_map", "0 0 1", "ok"),
            },
            F {
                fact: "own-map-only-own-id",
                what: "the map can be written twice",
                change: |o, _| write(o, "uid_map", "43 ", "ok"),
            },
            F {
                fact: "own-gid-map-after-deny",
                what: "gid_map is allowed before setgroups is denied",
                change: |o, _| {
                    if let Some(own) = o.own_map.inside.own_map.as_mut() {
                        if let Some(w) = own.writes.iter_mut().find(|w| w.file == "gid_map") {
                            w.result = "ok".into();
                        }
                    }
                },
            },
            F {
                fact: "subids-need-newuidmap",
                what: "tools, an account and ranges, yet no probe ran",
                change: |o, _| {
                    student_with_subids(o, 200_000);
                    o.subids.run = None;
                },
            },
            F {
                fact: "subids-need-newuidmap",
                what: "newuidmap ran, but the map is not the range /etc/subuid grants",
                change: |o, _| {
                    student_with_subids(o, 300_000);
                    o.subids.run = Some(o.after.clone());
                },
            },
        ]
    }
}

/// The lowest PID whose real, effective and saved uids are all 0: a process host root
/// owns (usually PID 1), read through observe.
fn root_owned_target() -> Result<Target> {
    let found = observe::find_process(Path::new("/proc"), |p| {
        p.uid == 0 && p.extra.euid == 0 && p.extra.suid == 0
    })?;
    let p = found.ok_or_else(|| {
        Error::unsupported(
            "no process owned by uid 0 is visible in /proc, so there is no host-owned process to try the probe's capabilities on",
            "run nsx on a host (or VM) where root-owned processes are visible",
        )
    })?;
    Ok(Target {
        pid: p.pid,
        uids: [p.uid, p.extra.euid, p.extra.suid],
    })
}

/// The unprivileged user the own-map and subids steps act for: nsx's own user without
/// root; under sudo(8) the user in SUDO_UID; root without sudo, "nobody".
fn person(privilege: Privilege) -> Person {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    // passwd(5): name:password:uid:gid:gecos:home:shell.
    let account = |uid: u32| -> Option<(String, u32)> {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid) {
                Some((f[0].to_string(), f[3].parse().ok()?))
            } else {
                None
            }
        })
    };
    let make = |uid: u32, fallback_gid: u32, why: Why| {
        let found = account(uid);
        Person {
            uid,
            gid: found.as_ref().map_or(fallback_gid, |(_, g)| *g),
            name: found.map(|(n, _)| n),
            why,
        }
    };
    match privilege {
        Privilege::Rootless => make(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
            Why::Invoker,
        ),
        Privilege::Root => {
            let env_id = |k: &str| {
                std::env::var(k)
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|v| *v != 0)
            };
            match env_id("SUDO_UID") {
                Some(uid) => make(uid, env_id("SUDO_GID").unwrap_or(uid), Why::Sudo),
                None => make(NOBODY, NOBODY, Why::Nobody),
            }
        }
    }
}

fn attempt_kill(target: i32) -> String {
    // kill(2): "If sig is 0, then no signal is sent, but existence and permission checks
    // are still performed." The check is the whole point; nothing is delivered.
    match kill(Pid::from_raw(target), None) {
        Ok(()) => "allowed".to_string(),
        Err(e) => errno_name(e),
    }
}

fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

fn look(target: i32, inside: &mut Inside, own_map: Option<OwnMap>) -> Result<Seen> {
    let kill = attempt_kill(target);
    inside.action(format!(
        "kill({target}, 0) = {kill}   (signal 0: a permission check only)"
    ));
    Ok(Seen {
        view: inside.observe()?,
        getuid: nix::unistd::getuid().as_raw(),
        getgid: nix::unistd::getgid().as_raw(),
        kill,
        own_map,
    })
}

/// In a probe of nsx run as root: become an unprivileged user, the way
/// `setpriv --reuid --regid --clear-groups` does, so that what follows is what any user
/// may do.
fn become_user(uid: u32, gid: u32, inside: &mut Inside) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let parent = nix::unistd::getppid();
    // The probe is about to become dumpable as that user (below), so a process of that
    // user could ptrace it: leave nothing of root's worth reaching. Standard input, output
    // and error (root's terminal) become /dev/null, and setsid(2) drops the controlling
    // terminal; the probe reports through its pipe, not through these.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx("open", "/dev/null")?;
    // dup2(2): descriptors 0, 1 and 2 now name /dev/null.
    nix::unistd::dup2_stdin(&null).ctx("dup2", "/dev/null onto standard input")?;
    nix::unistd::dup2_stdout(&null).ctx("dup2", "/dev/null onto standard output")?;
    nix::unistd::dup2_stderr(&null).ctx("dup2", "/dev/null onto standard error")?;
    nix::unistd::setsid().ctx("setsid", "the probe")?;
    // credentials(7): supplementary groups first (setgroups needs CAP_SETGID), then the
    // gid, then the uid; setresuid from root to another uid clears every capability.
    setgroups(&[]).ctx("setgroups", "[]")?;
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
        .ctx(op::SETRESGID, gid)?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
        .ctx(op::SETRESUID, uid)?;
    // prctl(2): changing credentials clears the parent-death signal: set it again, and
    // leave if the parent died meanwhile.
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // proc(5): the change also made the probe non-dumpable, which turns its /proc/self
    // files into root's, and the probe could not write its own uid_map. Dumpable again,
    // as exec(2) would have made it.
    // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    if nix::unistd::getppid() != parent {
        return Err(Error::Other(
            "the parent exited while the probe started".into(),
        ));
    }
    inside.action(format!(
        "setgroups([]); setresgid({gid}, {gid}, {gid}); setresuid({uid}, {uid}, {uid})   (an unprivileged user now)"
    ));
    Ok(())
}

/// What a write to `/proc/self/<file>` returned: "ok" or the errno name.
fn try_write(inside: &mut Inside, file: &str, text: &str) -> Write {
    let path = format!("/proc/self/{file}");
    // One write(2) per map: the kernel parses the whole map from a single write.
    let result = match std::fs::write(&path, format!("{text}\n")) {
        Ok(()) => "ok".to_string(),
        Err(e) => e
            .raw_os_error()
            .map(|n| errno_name(Errno::from_raw(n)))
            .unwrap_or_else(|| e.to_string()),
    };
    inside.action(format!("echo '{text}' > {path} = {result}"));
    Write {
        file: file.to_string(),
        text: text.to_string(),
        result,
    }
}

/// In the own-map probe: unshare a user namespace, then write its maps from inside,
/// including the writes user_namespaces(7) refuses to an unprivileged writer.
fn map_itself(inside: &mut Inside) -> Result<OwnMap> {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    // unshare(2): the caller itself enters the new user namespace, with every capability
    // in it (user_namespaces(7)), CAP_SETUID and CAP_SETGID among them.
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(op::UNSHARE, "CLONE_NEWUSER")?;
    inside.action("unshare(CLONE_NEWUSER)");
    let inner = OWN_MAP_INSIDE;
    let writes = vec![
        // Host root's uid is not the writer's own: refused without CAP_SETUID in the
        // parent namespace.
        try_write(inside, "uid_map", "0 0 1"),
        // One line, the writer's own effective uid, any id inside: allowed.
        try_write(inside, "uid_map", &format!("{inner} {uid} 1")),
        // A map is written once.
        try_write(inside, "uid_map", &format!("{} {uid} 1", inner + 1)),
        // gid_map needs setgroups denied first.
        try_write(inside, "gid_map", &format!("{inner} {gid} 1")),
        try_write(inside, "setgroups", "deny"),
        try_write(inside, "gid_map", &format!("{inner} {gid} 1")),
    ];
    Ok(OwnMap { uid, gid, writes })
}

/// Finds a setuid helper in the system directories.
fn find_tool(name: &str) -> Option<Tool> {
    TOOL_DIRS.iter().find_map(|d| {
        let path = Path::new(d).join(name);
        let meta = std::fs::metadata(&path).ok()?;
        meta.is_file().then(|| Tool {
            path: path.display().to_string(),
            setuid_root: meta.uid() == 0 && meta.mode() & 0o4000 != 0,
        })
    })
}

/// The ranges `file` (/etc/subuid or /etc/subgid, subuid(5)) grants `person`, by login
/// name or by uid. A missing file grants nothing.
fn ranges(file: &str, person: &Person) -> Vec<Range> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse_ranges(&text, person)
}

fn parse_ranges(text: &str, person: &Person) -> Vec<Range> {
    let uid = person.uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = Some(who) == person.name.as_deref() || who == uid;
            let r = Range {
                start: start.parse().ok()?,
                count: count.parse().ok()?,
            };
            (mine && r.count > 0).then_some(r)
        })
        .collect()
}

/// What this machine grants the person, and, where it grants a range, a probe whose maps
/// newuidmap and newgidmap write: it becomes the person, unshares a user namespace and
/// asks the host midway, since setuid programs do not run setuid from inside it.
fn subids(m: &mut Measure, person: &Person, target: i32) -> Result<SubIds> {
    let mut s = SubIds {
        newuidmap: find_tool("newuidmap"),
        newgidmap: find_tool("newgidmap"),
        subuid: ranges("/etc/subuid", person),
        subgid: ranges("/etc/subgid", person),
        run: None,
        tools_ran: Vec::new(),
    };
    if s.missing(person).is_some() {
        return Ok(s);
    }
    let (Some(uidmap), Some(gidmap)) = (s.newuidmap.clone(), s.newgidmap.clone()) else {
        return Ok(s);
    };
    let (ur, gr) = (s.subuid[0], s.subgid[0]);
    let root = m.privilege == Privilege::Root;
    let who = person.clone();
    let mut ran = Vec::new();
    let run = m.probe_midway(
        &Spec::new(CloneFlags::empty()),
        |inside: &mut Inside, mid: &mut Midway| {
            if root {
                become_user(who.uid, who.gid, inside)?;
            }
            // unshare(2): a user namespace of its own, unmapped until newuidmap writes.
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(op::UNSHARE, "CLONE_NEWUSER")?;
            inside.action("unshare(CLONE_NEWUSER), then wait for the host");
            mid.ask(inside)?;
            look(target, inside, None)
        },
        |prep: &mut Prep| {
            let pid = prep.pid();
            for (tool, id, r) in [(&uidmap, who.uid, ur), (&gidmap, who.gid, gr)] {
                let args: Vec<String> = [
                    pid as i64,
                    0,
                    id.into(),
                    1,
                    1,
                    r.start.into(),
                    r.count.into(),
                ]
                .iter()
                .map(|n| n.to_string())
                .collect();
                let mut cmd = std::process::Command::new(&tool.path);
                cmd.args(&args)
                    .env_clear()
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped());
                if root {
                    // newuidmap checks that its caller is the user whose ranges it
                    // writes, and that this user owns the target process.
                    cmd.uid(who.uid).gid(who.gid);
                }
                let out = cmd.output().ctx("run", &tool.path)?;
                let command = format!("{} {}", tool.path, args.join(" "));
                let status = match (
                    out.status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&out.status),
                ) {
                    (Some(code), _) => format!("exit {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    (None, None) => "ended".to_string(),
                };
                prep.action(format!("{command}   (as uid {}) = {status}", who.uid));
                ran.push(ToolRun {
                    command,
                    status,
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            Ok(())
        },
        |_| Ok(attempt_kill(target)),
    )?;
    s.run = Some(run);
    s.tools_ran = ran;
    Ok(s)
}

/// The outside id that `inside` maps to, from map lines "inside outside count".
pub fn map_id(lines: &[String], inside: u32) -> Option<u64> {
    lines.iter().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [first_in, first_out, count] = f[..] else {
            return None;
        };
        let id = u64::from(inside);
        (first_in <= id && id < first_in + count).then(|| first_out + id - first_in)
    })
}

fn map_label(lines: &[String]) -> String {
    if lines.is_empty() {
        "(empty: nothing mapped)".to_string()
    } else {
        lines.join(" / ")
    }
}

/// A map as a row value; unread is "not read".
fn map_val(lines: &Option<Vec<String>>) -> Val {
    match lines {
        Some(l) => Val::Text(map_label(l)),
        None => Val::None("not read".into()),
    }
}

/// `000001ffffffffff = all 41`: the mask as status shows it, and its names.
fn caps_text(hex: &str) -> String {
    match crate::caps::parse_mask(hex) {
        Some(m) => format!("{hex} = {}", crate::caps::CapSet::new(m).summary()),
        None => hex.to_string(),
    }
}

/// One step's rows: the probe read two ways (status, its namespace, its maps), then each
/// side's own world (its user namespace, what kill(2) tells it).
fn rows(run: &Run<Seen, String>) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside.view);
    let [ns_probe, ns_own] = kit::ns_rows(Ns::User, host, inside);
    let translated = host.probe.uid != inside.probe.uid;
    let uid = Row::probe(
        "uid",
        "status Uid",
        Val::Id(host.probe.uid),
        Val::Id(inside.probe.uid),
    );
    vec![
        if translated { uid.key() } else { uid },
        Row::probe(
            "gid",
            "status Gid",
            Val::Id(host.probe.gid),
            Val::Id(inside.probe.gid),
        ),
        Row::probe(
            "getuid()",
            "a system call",
            Val::None("only the probe can call it".into()),
            Val::Id(run.inside.getuid),
        ),
        Row::probe(
            "capabilities",
            "status CapEff",
            caps_text(&host.probe.cap_eff),
            caps_text(&inside.probe.cap_eff),
        ),
        ns_probe,
        Row::probe(
            "uid_map",
            "uid_map",
            map_val(&host.probe.uid_map),
            map_val(&inside.probe.uid_map),
        ),
        Row::probe(
            "gid_map",
            "gid_map",
            map_val(&host.probe.gid_map),
            map_val(&inside.probe.gid_map),
        ),
        ns_own,
        Row::own(
            "kill(T, 0)",
            "a system call",
            run.host_extra.as_str(),
            run.inside.kill.as_str(),
        ),
    ]
}

fn step(id: &str, title: &str, run: &Run<Seen, String>, target: i32) -> Step {
    kit::step(id, title, run, &run.inside.view, rows(run)).extra(json!({
        "getuid": run.inside.getuid,
        "getgid": run.inside.getgid,
        "kill_target": target,
        "kill_inside": run.inside.kill,
        "kill_host": run.host_extra,
    }))
}

/// What a default container is, from the before step's values.
fn before_note(b: &Run<Seen, String>, root: bool) -> String {
    let identity = b.host.probe.uid_map() == ["0 0 4294967295"];
    if root && b.host.probe.uid == 0 && identity {
        format!(
            "this is where a default Docker, containerd or Kubernetes container stands: no user namespace (uid_map {}), so root inside is host uid 0, held back only by the capabilities it drops, seccomp and LSMs, not by a user namespace",
            map_label(b.host.probe.uid_map())
        )
    } else {
        format!(
            "no user namespace yet: the probe is uid {} to both sides (uid_map {})",
            b.host.probe.uid,
            map_label(b.host.probe.uid_map())
        )
    }
}

fn control_step(c: &Run<Seen, String>, t: i32, limits: &IdLimits) -> Step {
    let mut s = step(
        "control",
        "control: clone(CLONE_NEWUSER) with no uid_map or gid_map written",
        c,
        t,
    )
    .note(format!(
        "an id with no mapping cannot be named inside, so the kernel shows the overflow uid {} (\"nobody\", /proc/sys/kernel/overflowuid) in its place",
        limits.overflowuid
    ));
    if c.inside.kill == "allowed" {
        s = s.note(format!(
            "with no map to switch to, the probe is still host uid {}, and kill's permission check compares uids: kill({t}, 0) was allowed. A user namespace without a mapped identity is not a sandbox, which is why the after step switched to a mapped uid",
            c.host.probe.uid
        ));
    }
    s.takeaway(format!(
        "unmapped, the probe calls itself uid {}; the host still sees uid {}",
        c.inside.getuid, c.host.probe.uid
    ))
}

fn write_result<'a>(own: &'a OwnMap, file: &str, text: &str) -> Option<&'a str> {
    own.writes
        .iter()
        .find(|w| w.file == file && w.text == text)
        .map(|w| w.result.as_str())
}

/// The own-map probe's facts: it may map itself, one id, its own, once; gid_map after
/// setgroups is denied.
fn own_map_facts(s: &Run<Seen, String>, person: &Person, base: &View) -> Vec<Fact> {
    let own = s.inside.own_map.clone().unwrap_or(OwnMap {
        uid: 0,
        gid: 0,
        writes: Vec::new(),
    });
    let inner = OWN_MAP_INSIDE;
    let uid_line = format!("{inner} {} 1", own.uid);
    let gid_line = format!("{inner} {} 1", own.gid);
    let second = format!("{} {} 1", inner + 1, own.uid);
    let ok = |r: Option<&str>| r == Some("ok");
    let eperm = |r: Option<&str>| r == Some("EPERM");
    let host = &s.host;
    vec![
        Fact::new(
            "own-map-written-inside",
            format!(
                "a probe that is uid {} on the host (unprivileged) unshared a user namespace and wrote \"{uid_line}\" to its own /proc/self/uid_map: {}; getuid() now returns {}, and the host reads {}/uid_map as \"{}\"",
                host.probe.uid,
                write_result(&own, "uid_map", &uid_line).unwrap_or("not tried"),
                s.inside.getuid,
                host.source,
                map_label(host.probe.uid_map())
            ),
            s.inside.own_map.is_some()
                && host.probe.uid != 0
                && host.probe.uid == own.uid
                && own.uid == person.uid
                && ok(write_result(&own, "uid_map", &uid_line))
                && s.inside.getuid == inner
                && host.probe.uid_map() == [uid_line.clone()]
                && kit::differ(s.inside.view.own(Ns::User), base.own(Ns::User)),
            json!({ "host_uid": host.probe.uid, "getuid": s.inside.getuid, "uid_map": host.probe.uid_map(), "writes": own.writes }),
        ),
        Fact::new(
            "own-map-only-own-id",
            format!(
                "the same probe may map only its own uid, and only once: \"0 0 1\" (host root's uid) returned {}, a second map \"{second}\" returned {}",
                write_result(&own, "uid_map", "0 0 1").unwrap_or("not tried"),
                write_result(&own, "uid_map", &second).unwrap_or("not tried")
            ),
            eperm(write_result(&own, "uid_map", "0 0 1"))
                && eperm(write_result(&own, "uid_map", &second)),
            json!({ "writes": own.writes }),
        ),
        Fact::new(
            "own-gid-map-after-deny",
            format!(
                "gid_map \"{gid_line}\" returned {} while setgroups(2) was still allowed, and {} once \"deny\" was written to setgroups; getgid() now returns {}",
                own.writes
                    .iter()
                    .find(|w| w.file == "gid_map")
                    .map_or("not tried", |w| w.result.as_str()),
                own.writes
                    .iter()
                    .rfind(|w| w.file == "gid_map")
                    .map_or("not tried", |w| w.result.as_str()),
                s.inside.getgid
            ),
            {
                let gid: Vec<&Write> = own.writes.iter().filter(|w| w.file == "gid_map").collect();
                gid.len() == 2
                    && gid[0].result == "EPERM"
                    && ok(write_result(&own, "setgroups", "deny"))
                    && gid[1].result == "ok"
                    && s.inside.getgid == inner
                    && host.probe.gid_map() == [gid_line.clone()]
            },
            json!({ "writes": own.writes, "getgid": s.inside.getgid, "gid_map": host.probe.gid_map() }),
        ),
    ]
}

fn own_map_step(s: &Run<Seen, String>, t: i32, person: &Person) -> Step {
    let who = match person.why {
        Why::Invoker => "nsx's own user".to_string(),
        Why::Sudo => format!("{}, who ran sudo", person.label()),
        Why::Nobody => format!("{}, as nsx runs as root without sudo", person.label()),
    };
    step(
        "own-map",
        "own map: an unprivileged probe unshares a user namespace and writes its own uid_map",
        s,
        t,
    )
    .note(format!(
        "the probe was {who}: with no capability on the host, it may map one id, its own, to any id inside (here {OWN_MAP_INSIDE}); user_namespaces(7), \"Defining user and group ID mappings\""
    ))
    .takeaway(format!(
        "no parent needed: the probe mapped itself, uid {} on the host and {} inside",
        s.host.probe.uid, s.inside.getuid
    ))
}

/// Holds when newuidmap ran where this machine allows it and wrote the range granted, or
/// when the machine lacks one of the pieces it needs (and the lesson names it).
fn subids_fact(o: &Obs) -> Fact {
    let s = &o.subids;
    let p = &o.person;
    let missing = s.missing(p);
    let (holds, claim) = match (&s.run, &missing) {
        (None, Some(why)) => (
            true,
            format!(
                "newuidmap is not run here: {why}; with it, a probe of {} would get \"0 {} 1\" plus a range of 65536 from /etc/subuid",
                p.label(),
                p.uid
            ),
        ),
        (None, None) => (
            false,
            "newuidmap could have run here, but no probe was mapped with it".to_string(),
        ),
        (Some(run), _) => {
            let want = match (s.subuid.first(), missing) {
                (Some(r), None) => vec![format!("0 {} 1", p.uid), format!("1 {} {}", r.start, r.count)],
                _ => Vec::new(),
            };
            let tools_ok = s.tools_ran.len() == 2 && s.tools_ran.iter().all(|t| t.status == "exit 0");
            (
                !want.is_empty()
                    && tools_ok
                    && run.host.probe.uid_map() == want
                    && run.host.probe.uid == p.uid
                    && run.inside.getuid == 0,
                format!(
                    "newuidmap, setuid root and run as {}, wrote \"{}\" for the probe from /etc/subuid: getuid() inside is {}, the host sees uid {}",
                    p.label(),
                    map_label(run.host.probe.uid_map()),
                    run.inside.getuid,
                    run.host.probe.uid
                ),
            )
        }
    };
    Fact::new(
        "subids-need-newuidmap",
        claim,
        holds,
        json!({ "missing": s.missing(p), "subuid": s.subuid, "subgid": s.subgid, "tools_ran": s.tools_ran }),
    )
}

/// The subids step: what newuidmap needs, beside what this machine has; and the run,
/// where there is one.
fn subids_steps(o: &Obs, t: i32) -> Vec<Step> {
    let s = &o.subids;
    let p = &o.person;
    let tool = |t: &Option<Tool>| match t {
        Some(t) if t.setuid_root => Val::text(format!("{} (setuid root)", t.path)),
        Some(t) => Val::text(format!("{} (not setuid root)", t.path)),
        None => Val::None("not installed".into()),
    };
    let granted = |r: &[Range]| match r {
        [] => Val::None("no range".into()),
        r => Val::text(
            r.iter()
                .map(|r| {
                    format!(
                        "{}-{} ({} ids)",
                        r.start,
                        u64::from(r.start) + u64::from(r.count) - 1,
                        r.count
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    let who = p.name.clone().unwrap_or_else(|| p.uid.to_string());
    let rows = vec![
        Row::own(
            "newuidmap",
            "uidmap package",
            tool(&s.newuidmap),
            "setuid root",
        ),
        Row::own(
            "newgidmap",
            "uidmap package",
            tool(&s.newgidmap),
            "setuid root",
        ),
        Row::own(
            "an account for U",
            "/etc/passwd",
            p.name.clone().map_or(Val::None("none".into()), Val::Text),
            "a login name",
        ),
        Row::own(
            "U's subordinate uids",
            "/etc/subuid",
            granted(&s.subuid),
            "a range",
        ),
        Row::own(
            "U's subordinate gids",
            "/etc/subgid",
            granted(&s.subgid),
            "a range",
        ),
    ];
    let mut need = Step {
        id: "subids".into(),
        title: "subids: how a rootless engine gets 65536 ids (newuidmap, /etc/subuid)".into(),
        actions: Vec::new(),
        rows,
        notes: Vec::new(),
        takeaway: None,
        columns: Some(["this machine".into(), "newuidmap needs".into()]),
        extra: json!({}),
        host: View::default(),
        container: View::default(),
    }
    .note(format!(
        "U is {}; an unprivileged process may map only its own id, so rootless Podman and Docker run the setuid newuidmap and newgidmap, which map the ranges /etc/subuid and /etc/subgid grant the user (subuid(5)) into the new namespace from outside it",
        p.label()
    ));
    match s.missing(p) {
        Some(why) => {
            let (user, uid) = match (p.why, &p.name) {
                // nobody only stands in for a user, and a uid without an account cannot
                // be granted a range: name the one to set up.
                (Why::Nobody, _) | (_, None) => ("USER".to_string(), "<USER's uid>".to_string()),
                (Why::Invoker | Why::Sudo, Some(_)) => (who, p.uid.to_string()),
            };
            let mut text = format!("not run here: {why}.");
            if p.why == Why::Nobody {
                text.push_str(" nsx ran as root without sudo, so it asked for nobody; run it with sudo from your own account to see your ranges.");
            }
            text.push_str(&format!(
                " An administrator grants an account a range (this edits /etc/subuid and /etc/subgid): sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}; then, as {user}, unshare --user --map-auto --map-root-user cat /proc/self/uid_map shows \"0 {uid} 1\" and \"1 100000 65535\" (unshare leaves out the id that 0 took), written by newuidmap"
            ));
            need = need.note(text);
            vec![need]
        }
        None => {
            let mut out = vec![need];
            if let Some(run) = &s.run {
                let mut st = step(
                    "newuidmap",
                    "newuidmap: the probe unshares, and setuid newuidmap and newgidmap write its ranges from outside",
                    run,
                    t,
                );
                for r in &s.tools_ran {
                    if !r.stderr.is_empty() {
                        st = st.note(format!("{}: {}", r.command, r.stderr));
                    }
                }
                out.push(st.takeaway(format!(
                    "{} ids mapped: uid 0 inside is uid {} outside, uids 1 and up come from /etc/subuid",
                    run.host.probe.uid_map().iter().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum::<u64>(),
                    run.host.probe.uid
                )));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// None of the three machines the fixtures come from grants a range, so the run of
    /// newuidmap is judged from a recording changed to one that did (the integration test
    /// user_runs_newuidmap_where_a_range_is_granted runs it for real).
    #[test]
    fn a_granted_range_mapped_by_newuidmap_holds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/recordings/hybrid-root/user.json");
        let rec = super::super::engine::read_recording(&path).unwrap();
        let mut o: Obs = serde_json::from_value(rec.observations).unwrap();
        let r = Range {
            start: 200_000,
            count: 65_536,
        };
        o.subids.subuid = vec![r];
        o.subids.subgid = vec![r];
        let mut run = o.own_map.clone();
        let maps = vec!["0 65534 1".to_string(), "1 200000 65536".to_string()];
        run.host.probe.uid = 65534;
        run.host.probe.uid_map = Some(maps.clone());
        run.inside.getuid = 0;
        run.inside.own_map = None;
        o.subids.run = Some(run);
        o.subids.tools_ran = ["newuidmap", "newgidmap"]
            .iter()
            .map(|t| ToolRun {
                command: format!("/usr/bin/{t} 9 0 65534 1 1 200000 65536"),
                status: "exit 0".into(),
                stderr: String::new(),
            })
            .collect();
        let fact = |o: &Obs| {
            let j = User::judge(o, &NoOptions {}, &rec.env);
            let f = j
                .facts
                .into_iter()
                .find(|f| f.id == "subids-need-newuidmap");
            (f.unwrap(), j.steps.iter().any(|s| s.id == "newuidmap"))
        };
        let (f, shown) = fact(&o);
        assert!(f.holds && shown, "{}", f.claim);
        // newuidmap failing, or mapping another range, is not the lesson.
        o.subids.tools_ran[0].status = "exit 1".into();
        assert!(!fact(&o).0.holds);
    }

    #[test]
    fn maps_translate_inside_ids() {
        let root = vec!["0 100000 65536".to_string()];
        assert_eq!(map_id(&root, 0), Some(100_000));
        assert_eq!(map_id(&root, 1000), Some(101_000));
        assert_eq!(map_id(&root, 65_536), None);
        let rootless = vec!["0 4242 1".to_string()];
        assert_eq!(map_id(&rootless, 0), Some(4242));
        assert_eq!(map_id(&rootless, 1), None);
        assert_eq!(map_id(&[], 0), None);
        // The initial namespace maps everything to itself.
        assert_eq!(map_id(&["0 0 4294967295".to_string()], 7), Some(7));
    }

    #[test]
    fn capability_masks_are_shown_with_their_names() {
        assert_eq!(caps_text("000001ffffffffff"), "000001ffffffffff = all 41");
        assert_eq!(
            caps_text("000001fffeffffff"),
            "000001fffeffffff = all 41 but sys_resource"
        );
        assert_eq!(caps_text("0000000000000000"), "0000000000000000 = none");
        assert_eq!(caps_text("0000000000000020"), "0000000000000020 = kill");
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_uid() {
        let p = Person {
            uid: 1000,
            gid: 1000,
            name: Some("ada".into()),
            why: Why::Sudo,
        };
        let text = "bob:100000:65536\nada:165536:65536\n1000:300000:10\nada:1:0\ngarbage\n";
        assert_eq!(
            parse_ranges(text, &p),
            [
                Range {
                    start: 165_536,
                    count: 65_536
                },
                Range {
                    start: 300_000,
                    count: 10
                }
            ]
        );
        let nameless = Person { name: None, ..p };
        assert_eq!(parse_ranges(text, &nameless).len(), 1);
        assert!(parse_ranges("", &nameless).is_empty());
    }

    #[test]
    fn what_stops_newuidmap_is_named_first_missing_first() {
        let p = Person {
            uid: 65534,
            gid: 65534,
            name: Some("nobody".into()),
            why: Why::Nobody,
        };
        let tool = Some(Tool {
            path: "/usr/bin/newuidmap".into(),
            setuid_root: true,
        });
        let mut s = SubIds {
            newuidmap: None,
            newgidmap: tool.clone(),
            subuid: vec![],
            subgid: vec![],
            run: None,
            tools_ran: vec![],
        };
        assert!(s.missing(&p).unwrap().contains("not installed"));
        s.newuidmap = tool;
        assert!(s.missing(&p).unwrap().contains("/etc/subuid grants nobody"));
        let r = Range { start: 1, count: 2 };
        s.subuid = vec![r];
        assert!(s.missing(&p).unwrap().contains("/etc/subgid"));
        s.subgid = vec![r];
        assert_eq!(s.missing(&p), None);
        let nameless = Person { name: None, ..p };
        assert!(s.missing(&nameless).unwrap().contains("no account"));
    }
}
