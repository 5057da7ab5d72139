//! user: a user namespace makes the probe root inside and nobody special outside.
//!
//! user_namespaces(7): a new user namespace gets its own uid and gid numbers, tied to the
//! parent namespace's by uid_map and gid_map, which only a process outside may write
//! (here the parent, nsx). The probe is uid 0 with every capability *in that namespace*;
//! the host reads /proc/<pid>/status and sees the mapped uid. Capabilities count only for
//! resources the namespace owns: a permission check against a host-owned process fails.
//!
//! Run as root, nsx maps 0..65535 inside to 100000..165535 outside (the way runtimes use
//! /etc/subuid) and the probe switches to uid 0 inside, so the host sees uid 100000. A map
//! alone would not do: a probe cloned by root stays host uid 0, the owner of every root
//! file and process, until it takes on a mapped uid (see IdMap::Range in the sandbox).
//! Run unprivileged, the only map allowed is "0 <your uid> 1".
//!
//! The capability test is kill(pid, 0) on a process owned by host root: kill(2) with
//! signal 0 sends nothing and only performs the permission check, so it cannot change
//! anything on the host even where it is allowed (it is, from nsx itself as root).
//!
//! The control run writes no map: every id is unmapped and shows as the overflow uid.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ns_label, probes_n, Ctx, Lesson, Rootless, Run};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Privilege, Row, Step};
use crate::sandbox::{IdMap, Inside, Spec};

pub const LESSON: Lesson = Lesson {
    id: "user",
    title: "User namespace: root inside, an ordinary user outside",
    mechanism: "CLONE_NEWUSER + uid_map/gid_map written by the parent",
    man: "user_namespaces(7), capabilities(7), kill(2), credentials(7)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/user.md"),
    sees: Parts::ns("user").with(Parts::ID_MAPS),
    facts: &[],
    imp: super::Imp::Old(run),
};

/// Where the map puts root's range when nsx runs as root (Docker's userns-remap and
/// Podman allocate from /etc/subuid the same way).
pub const ROOT_MAP_FIRST: u32 = 100_000;
pub const ROOT_MAP_COUNT: u32 = 65_536;

/// CAP_KILL, capabilities(7).
const CAP_KILL: u32 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    view: View,
    getuid: u32,
    getgid: u32,
    /// kill(target, 0): "allowed" or the errno name.
    kill: String,
}

fn attempt_kill(target: i32) -> String {
    // kill(2): "If sig is 0, then no signal is sent, but existence and permission checks
    // are still performed." The check is the whole point; nothing is delivered.
    match kill(Pid::from_raw(target), None) {
        Ok(()) => "allowed".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

fn look(target: i32) -> impl FnOnce(&mut Inside) -> Result<Seen> {
    move |inside| {
        let kill = attempt_kill(target);
        inside.action(format!(
            "kill({target}, 0) = {kill}   (signal 0: a permission check only)"
        ));
        Ok(Seen {
            view: inside.observe()?,
            getuid: nix::unistd::getuid().as_raw(),
            getgid: nix::unistd::getgid().as_raw(),
            kill,
        })
    }
}

/// The lowest PID whose real, effective and saved uids are all 0: a process host root
/// owns (usually PID 1). None when the host shows none.
fn root_owned_target() -> Result<Option<i32>> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ctx("readdir", "/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let uids: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        if uids.len() == 4 && uids.iter().all(|u| *u == "0") {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

fn read_number(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).ctx("read", path)?;
    text.trim()
        .parse()
        .map_err(|_| Error::Other(format!("parse {path}: {:?} is not a number", text.trim())))
}

/// The CapEff mask of a process holding every capability this kernel has.
fn full_caps() -> Result<String> {
    let last = read_number("/proc/sys/kernel/cap_last_cap")?;
    Ok(format!("{:016x}", (1u64 << (last + 1)) - 1))
}

fn has_cap(cap_eff: &str, cap: u32) -> bool {
    u64::from_str_radix(cap_eff, 16).is_ok_and(|m| m & (1 << cap) != 0)
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

fn rows(run: &Run<Seen, String>, target: i32) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside.view);
    vec![
        Row::new(
            "uid (host: Uid in status; inside: getuid())",
            host.probe.uid,
            run.inside.getuid,
        ),
        Row::new(
            "gid (host: Gid in status; inside: getgid())",
            host.probe.gid,
            run.inside.getgid,
        ),
        Row::new(
            "CapEff in status",
            &host.probe.cap_eff,
            &inside.probe.cap_eff,
        ),
        Row::new(
            "user namespace",
            ns_label("user", host.own_ns("user")),
            ns_label("user", inside.own_ns("user")),
        ),
        Row::new(
            "uid_map",
            map_label(host.probe.uid_map()),
            map_label(inside.probe.uid_map()),
        ),
        Row::new(
            "gid_map",
            map_label(host.probe.gid_map()),
            map_label(inside.probe.gid_map()),
        ),
        Row::new(
            format!("kill({target}, 0), PID {target} owned by host root (host side: nsx)"),
            &run.host_extra,
            &run.inside.kill,
        ),
    ]
}

fn step(id: &str, title: &str, run: Run<Seen, String>, target: i32, notes: Vec<String>) -> Step {
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        rows: rows(&run, target),
        actions: run.actions,
        notes,
        extra: json!({
            "getuid": run.inside.getuid,
            "getgid": run.inside.getgid,
            "kill_target": target,
            "kill_inside": run.inside.kill,
            "kill_host": run.host_extra,
        }),
        host: run.host,
        container: run.inside.view,
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let target = root_owned_target()?.ok_or_else(|| {
        Error::unsupported(
            "no process owned by uid 0 is visible in /proc, so there is no host-owned process to try the probe's capabilities on",
            "run nsx on a host (or VM) where root-owned processes are visible",
        )
    })?;
    let full = full_caps()?;
    let overflow_uid = read_number("/proc/sys/kernel/overflowuid")?;
    let overflow_gid = read_number("/proc/sys/kernel/overflowgid")?;
    let my_uid = nix::unistd::getuid().as_raw();
    let host_user = ctx.baseline.own_ns("user");
    let host_kill = move |_: i32| -> Result<String> { Ok(attempt_kill(target)) };

    let (id_map, expected_uid) = match ctx.privilege {
        Privilege::Root => (
            IdMap::Range {
                uid: ROOT_MAP_FIRST,
                gid: ROOT_MAP_FIRST,
                count: ROOT_MAP_COUNT,
            },
            ROOT_MAP_FIRST,
        ),
        Privilege::Rootless => (IdMap::Invoker, my_uid),
    };
    let spec = Spec {
        namespaces: CloneFlags::CLONE_NEWUSER,
        id_map,
        ..Spec::default()
    };
    let control_spec = Spec {
        namespaces: CloneFlags::CLONE_NEWUSER,
        id_map: IdMap::Unmapped,
        ..Spec::default()
    };
    // Each probe has a user namespace of its own (or none) and only asks kill(2) whether
    // it may: the three run side by side.
    let [before, after, control] = probes_n(
        [Spec::new(CloneFlags::empty()), spec, control_spec],
        |_, i| look(target)(i),
        |_, pid| host_kill(pid),
    )?;
    let mut facts = vec![Fact::new(
        "before-same-uid",
        format!(
            "before, the probe is uid {} on both sides, in the host's user namespace ({})",
            before.inside.getuid,
            ns_label("user", before.inside.view.own_ns("user"))
        ),
        before.inside.getuid == before.host.probe.uid
            && before.inside.getuid == my_uid
            && before.inside.view.own_ns("user") == host_user,
        json!({ "getuid": before.inside.getuid, "host_uid": before.host.probe.uid }),
    )];
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        before,
        target,
        vec![],
    ))?;

    let (host, inside) = (&after.host, &after.inside.view);
    let mapped = map_id(host.probe.uid_map(), 0);
    facts.extend([
        Fact::new(
            "inside-uid-is-0",
            format!(
                "inside, getuid() returns {} and /proc/self/status says Uid {}: the probe is root in its namespace",
                after.inside.getuid, inside.probe.uid
            ),
            after.inside.getuid == 0 && inside.probe.uid == 0,
            json!({ "getuid": after.inside.getuid, "status_uid": inside.probe.uid }),
        ),
        Fact::new(
            "host-sees-ordinary-uid",
            format!(
                "the host's /proc/{}/status shows the same process as uid {}, not 0",
                after.pid, host.probe.uid
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
                "inside, CapEff is {}: every capability this kernel has (cap_last_cap gives {full})",
                inside.probe.cap_eff
            ),
            inside.probe.cap_eff == full,
            json!({ "inside": inside.probe.cap_eff, "full": full }),
        ),
        Fact::new(
            "same-bits-seen-from-host",
            format!(
                "the host reads the same CapEff ({}) in /proc/{}/status: the bits are the same, but they count in the probe's user namespace",
                host.probe.cap_eff, after.pid
            ),
            host.probe.cap_eff == inside.probe.cap_eff,
            json!({ "host": host.probe.cap_eff, "inside": inside.probe.cap_eff }),
        ),
        Fact::new(
            "caps-stop-at-the-host",
            format!(
                "holding CAP_KILL, the probe's kill({target}, 0) on a process owned by host root returns {} (nsx itself, {}: {}): capabilities in a user namespace count only for what that namespace owns",
                after.inside.kill,
                if ctx.privilege == Privilege::Root { "real root" } else { "unprivileged" },
                after.host_extra
            ),
            after.inside.kill == format!("{:?}", Errno::EPERM) && has_cap(&inside.probe.cap_eff, CAP_KILL),
            json!({ "inside": after.inside.kill, "nsx": after.host_extra, "target": target }),
        ),
        Fact::new(
            "user-ns-differs",
            format!(
                "the probe's user namespace ({}) differs from the host's ({})",
                ns_label("user", inside.own_ns("user")),
                ns_label("user", host_user)
            ),
            inside.own_ns("user") != host_user && host.probe.ns("user") == inside.own_ns("user"),
            json!({ "inside": inside.own_ns("user"), "host": host_user, "host_reads": host.probe.ns("user") }),
        ),
    ]);
    let note = match ctx.privilege {
        Privilege::Root => format!(
            "nsx runs as root, so it mapped a range, 0-{} inside to {ROOT_MAP_FIRST}-{} outside, as runtimes do with /etc/subuid, and the probe switched to uid 0 inside; a map alone would have left it host uid 0",
            ROOT_MAP_COUNT - 1,
            ROOT_MAP_FIRST + ROOT_MAP_COUNT - 1
        ),
        Privilege::Rootless => format!(
            "nsx runs unprivileged (uid {my_uid}), and the only map it may write is its own uid to 0: \"0 {my_uid} 1\""
        ),
    };
    ctx.step(step(
        "after",
        "after: clone(CLONE_NEWUSER), the parent writes uid_map and gid_map",
        after,
        target,
        vec![note],
    ))?;

    let c = (&control.host, &control.inside);
    let mut notes = vec![format!(
        "an id with no mapping cannot be named inside, so the kernel shows the overflow uid {overflow_uid} (\"nobody\") in its place"
    )];
    if c.1.kill == "allowed" {
        notes.push(format!(
            "with no map to switch to, the probe is still host uid {}, and kill's permission check compares uids: kill({target}, 0) was allowed. A user namespace without a mapped identity is not a sandbox, which is why the after step switched to a mapped uid",
            c.0.probe.uid
        ));
    }
    facts.push(Fact::new(
        "unmapped-is-overflow",
        format!(
            "with no map written, getuid() inside returns {} and getgid() {}: the overflow ids (/proc/sys/kernel/overflowuid {overflow_uid}, overflowgid {overflow_gid}); the host still sees uid {}",
            c.1.getuid, c.1.getgid, c.0.probe.uid
        ),
        u64::from(c.1.getuid) == overflow_uid
            && u64::from(c.1.getgid) == overflow_gid
            && c.1.view.probe.uid_map().is_empty()
            && c.0.probe.uid == my_uid,
        json!({ "getuid": c.1.getuid, "getgid": c.1.getgid, "overflowuid": overflow_uid, "overflowgid": overflow_gid, "host_uid": c.0.probe.uid }),
    ));
    ctx.step(step(
        "control",
        "control: clone(CLONE_NEWUSER) with no uid_map or gid_map written",
        control,
        target,
        notes,
    ))?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn capability_masks() {
        assert!(has_cap("000001ffffffffff", CAP_KILL));
        assert!(!has_cap("0000000000000000", CAP_KILL));
        assert!(has_cap("0000000000000020", CAP_KILL));
    }
}
