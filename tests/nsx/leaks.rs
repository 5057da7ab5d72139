//! Nothing nsx does may outlive it: mounts, hostname, network links and routes,
//! processes, temp directories; also when it is interrupted.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::*;

#[derive(Debug, PartialEq, Eq)]
struct HostState {
    mountinfo: String,
    hostname: String,
    /// Interface names of the host's network namespace (`ip -o link`, from /proc/net/dev).
    links: Vec<String>,
    /// The host's IPv4 routing table, /proc/net/route lines.
    routes: Vec<String>,
}

fn host_state() -> HostState {
    // The mount IDs and the rest of each line: any change shows.
    HostState {
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        links: std::fs::read_to_string("/proc/self/net/dev")
            .unwrap()
            .lines()
            .skip(2)
            .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
            .collect(),
        routes: std::fs::read_to_string("/proc/net/route")
            .unwrap()
            .lines()
            .map(String::from)
            .collect(),
    }
}

/// `state` without the veth ends (and their routes) of nsx runs other tests started
/// meanwhile: only the runs in `ours` count. Runs of this test are never filtered.
fn only_ours(mut state: HostState, ours: &BTreeSet<u32>) -> HostState {
    let foreign = |name: &str| {
        is_nsx_veth(name)
            && !ours.contains(&name[3..name.len() - 1].parse::<u32>().unwrap_or(u32::MAX))
    };
    state.links.retain(|l| !foreign(l));
    state
        .routes
        .retain(|r| !foreign(r.split_whitespace().next().unwrap_or("")));
    state
}

/// Asserts the host is as it was, with our runs' pids known.
fn assert_unchanged(before: HostState, ours: &BTreeSet<u32>) {
    let before = only_ours(before, ours);
    let after = only_ours(host_state(), ours);
    assert_eq!(
        before.mountinfo, after.mountinfo,
        "the host's mount table changed"
    );
    assert_eq!(
        before.hostname, after.hostname,
        "the host's hostname changed"
    );
    assert_eq!(
        before.links, after.links,
        "the host's network links changed"
    );
    assert_eq!(before.routes, after.routes, "the host's routes changed");
}

#[test]
fn twenty_runs_of_each_lesson_leave_the_host_as_it_was() {
    if !privileged("leak test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-leakcheck");
    let before = host_state();
    let pids = lesson_runs_in_turn(&exe, &["pid", "mount", "uts", "net", "pod"], 20);
    assert_unchanged(before, &pids);
    let running = processes_of(&exe);
    assert!(running.is_empty(), "nsx processes left: {running:?}");
    let temp = temp_dirs_of(&pids);
    assert!(temp.is_empty(), "temp dirs left: {temp:?}");
}

#[test]
fn four_concurrent_runs_do_not_interfere() {
    if !privileged("concurrency test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-concurrent");
    let before = host_state();
    let mut pids = BTreeSet::new();
    for id in ["pid", "mount", "uts", "net", "pod"] {
        let mut subnets = BTreeSet::new();
        for (pid, report) in lesson_runs_at_once(&exe, &[id], 4) {
            pids.insert(pid);
            assert_eq!(report["ok"], true);
            if let Some(veth) = report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == "veth")
            {
                subnets.insert(veth["extra"]["subnet"].as_str().unwrap().to_string());
            }
        }
        if id == "net" {
            // Runs whose veth steps overlap hold different /30s (lessons.rs checks the
            // stepping deterministically); all of them stay in the default /24.
            assert!(
                subnets.iter().all(|n| n.starts_with("169.254.73.")),
                "{subnets:?}"
            );
        }
    }
    assert_unchanged(before, &pids);
    assert!(processes_of(&exe).is_empty());
}

#[test]
fn sigint_while_the_veth_is_up_removes_it() {
    use std::io::Write;
    if !privileged("net interrupted") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sigint");
    let before = host_state();
    let (mut master, stdin) = pty();
    // --step waits for a line after each step: answer the first two, so nsx stops after
    // the third, the veth step, with the pair and the probe alive.
    master.write_all(b"\n\n").unwrap();
    let mut child = spawn(
        Command::new(&exe)
            .args(["lesson", "net", "--step"])
            .env("NO_COLOR", "1")
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let pid = child.id();
    let host_end = format!("/sys/class/net/nsx{pid}h");
    let (seen, mut rest) = read_until_line(&mut child, "step 3 · veth");
    // The step is printed while nsx waits for Enter: the pair exists now.
    assert!(
        Path::new(&host_end).exists(),
        "{host_end} missing: {seen:#?}"
    );
    signal(pid, libc::SIGINT);
    std::io::copy(&mut rest, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted by SIGINT"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&host_end).exists(), "{host_end} left behind");
    let running = processes_of(&exe);
    assert!(running.is_empty(), "{running:?}");
    assert_unchanged(before, &BTreeSet::from([pid]));
    drop(master);
}

#[test]
fn signals_at_any_point_of_net_and_pod_leave_nothing() {
    if !privileged("net/pod interrupted at several points") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sigpoints");
    let before = host_state();
    let mut pids = BTreeSet::new();
    let mut interrupted = 0;
    for id in ["net", "pod"] {
        for (i, delay_ms) in [0u64, 1, 3, 6, 10, 20, 40, 80].into_iter().enumerate() {
            let sig = if i % 2 == 0 {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            let mut child = spawn_lesson(&exe, &[id]);
            let pid = child.id();
            pids.insert(pid);
            // Mid-lesson: after the first step's line has appeared.
            let (_, mut rest) = read_until_line(&mut child, "step 1 ·");
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            signal(pid, sig);
            // Keep reading so nsx never blocks on a full pipe.
            std::io::copy(&mut rest, &mut std::io::sink()).unwrap();
            let out = child.wait_with_output().unwrap();
            match out.status.code() {
                Some(0) => {}
                Some(c) if c == 128 + sig => interrupted += 1,
                other => panic!("{id} after {delay_ms} ms: {other:?}: {}", stderr(&out)),
            }
            assert!(
                veths_of(&BTreeSet::from([pid])).is_empty(),
                "{id}: nsx{pid}h left after a signal at {delay_ms} ms"
            );
            let running = processes_of(&exe);
            assert!(running.is_empty(), "{id} {delay_ms} ms: {running:?}");
        }
    }
    assert!(
        interrupted > 0,
        "no run was interrupted: the test proved nothing"
    );
    assert_unchanged(before, &pids);
}

/// After runs `pids` of the ipc, user, cgroupns and time lessons: the host's mount table
/// and hostname are as `before`, no process runs `exe`, and nothing named after the runs
/// is left (temp dirs, IPC objects, cgroups, veth ends).
fn assert_namespace_runs_left_nothing(before: HostState, exe: &Path, pids: &BTreeSet<u32>) {
    let after = host_state();
    assert_eq!(
        before.mountinfo, after.mountinfo,
        "the host's mount table changed"
    );
    assert_eq!(
        before.hostname, after.hostname,
        "the host's hostname changed"
    );
    let running = processes_of(exe);
    assert!(running.is_empty(), "nsx processes left: {running:?}");
    let left = leftovers_of(pids);
    assert!(left.is_empty(), "left: {left:?}");
}

#[test]
fn twenty_runs_of_ipc_user_cgroupns_and_time_leave_nothing() {
    if !privileged("namespace leak test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-leakns");
    let before = host_state();
    let pids = lesson_runs_in_turn(&exe, &["ipc", "user", "cgroupns", "time"], 20);
    assert_namespace_runs_left_nothing(before, &exe, &pids);
}

/// SIGTERM at every point of a run (spread over the time one run takes): whatever the
/// lesson had created is removed, and no process outlives nsx.
#[test]
fn interrupted_ipc_and_cgroupns_runs_leave_nothing() {
    if !privileged("interrupted namespace runs") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-interrupt");
    let mut pids = BTreeSet::new();
    let mut interrupted = 0;
    for id in ["ipc", "cgroupns"] {
        let start = std::time::Instant::now();
        let out = spawn_lesson(&exe, &[id, "--format", "json"])
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let whole = start.elapsed();
        for i in 0..20u32 {
            let child = spawn_lesson(&exe, &[id, "--format", "json"]);
            let pid = child.id();
            pids.insert(pid);
            std::thread::sleep(whole * i / 20);
            // Only the nsx process this test started, by its PID.
            signal(pid, libc::SIGTERM);
            let out = child.wait_with_output().unwrap();
            use std::os::unix::process::ExitStatusExt;
            match (out.status.code(), out.status.signal()) {
                (Some(0), _) => {}
                (Some(143), _) => {
                    interrupted += 1;
                    assert!(
                        stderr(&out).contains("interrupted by SIGTERM"),
                        "{}",
                        stderr(&out)
                    );
                }
                // Before main installed its handler: nothing was created yet.
                (None, Some(libc::SIGTERM)) => {}
                other => panic!(
                    "nsx lesson {id}: unexpected end {other:?}: {}",
                    stderr(&out)
                ),
            }
            // IPC objects, cgroups, temp dirs (and veth ends).
            let left = leftovers_of(&BTreeSet::from([pid]));
            assert!(left.is_empty(), "nsx lesson {id} left: {left:?}");
        }
    }
    let running = processes_of(&exe);
    assert!(running.is_empty(), "nsx processes left: {running:?}");
    assert!(
        interrupted > 0,
        "no run was interrupted mid-way: the test proved nothing"
    );
}

#[test]
fn four_concurrent_runs_of_ipc_user_cgroupns_and_time_do_not_interfere() {
    if !privileged("namespace concurrency test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-concns");
    let before = host_state();
    let mut pids = BTreeSet::new();
    for id in ["ipc", "user", "cgroupns", "time"] {
        pids.extend(lesson_runs_at_once(&exe, &[id], 4).into_iter().map(|r| r.0));
    }
    assert_namespace_runs_left_nothing(before, &exe, &pids);
}

#[test]
fn a_veth_left_by_a_dead_run_is_swept() {
    if !privileged("veth sweep") {
        return;
    }
    // A pid that is no nsx process any more: a child that has exited and been reaped.
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let _ = dead.wait_with_output();
    let (host, peer) = (format!("nsx{pid}h"), format!("nsx{pid}c"));
    // The test makes the leftover with iproute2, as a killed run would have left it.
    let made = Command::new("ip")
        .args(["link", "add", &host, "type", "veth", "peer", "name", &peer])
        .status()
        .expect("ip (iproute2)");
    assert!(made.success());
    assert!(Path::new(&format!("/sys/class/net/{host}")).exists());
    let report = lesson_json("net", &[]);
    assert_eq!(report["ok"], true);
    let gone = !Path::new(&format!("/sys/class/net/{host}")).exists();
    if !gone {
        let _ = Command::new("ip").args(["link", "del", &host]).status();
    }
    assert!(gone, "{host} was not swept");
    assert!(!Path::new(&format!("/sys/class/net/{peer}")).exists());
}
