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

/// PIDs of processes running `exe`.
fn processes_of(exe: &Path) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read_link(e.path().join("exe")).ok()? == exe).then_some(pid)
        })
        .collect()
}

/// nsx-<pid>-* directories in the temp dir whose <pid> is one of `pids`.
fn temp_dirs_of(pids: &BTreeSet<u32>) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: u32 = name.strip_prefix("nsx-")?.split('-').next()?.parse().ok()?;
            pids.contains(&pid).then_some(name)
        })
        .collect()
}

#[test]
fn twenty_runs_of_each_lesson_leave_the_host_as_it_was() {
    if !privileged("leak test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-leakcheck");
    let before = host_state();
    let mut pids = BTreeSet::new();
    for id in ["pid", "mount", "uts", "net", "pod"] {
        for _ in 0..20 {
            let child = spawn(
                Command::new(&exe)
                    .args(["lesson", id, "--format", "json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped()),
            );
            pids.insert(child.id());
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "nsx lesson {id} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
        }
    }
    assert_unchanged(before, &pids);
    assert!(
        processes_of(&exe).is_empty(),
        "nsx processes left: {:?}",
        processes_of(&exe)
    );
    assert!(
        temp_dirs_of(&pids).is_empty(),
        "temp dirs left: {:?}",
        temp_dirs_of(&pids)
    );
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
        let children: Vec<_> = (0..4)
            .map(|_| {
                spawn(
                    Command::new(&exe)
                        .args(["lesson", id, "--format", "json"])
                        .stdout(std::process::Stdio::piped()),
                )
            })
            .collect();
        pids.extend(children.iter().map(|c| c.id()));
        let mut subnets = BTreeSet::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent nsx lesson {id} failed: {}",
                failed_facts(&out.stdout)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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

/// A pseudo-terminal for nsx's standard input, so that --step pauses; the master end
/// is returned and must stay open.
fn pty() -> (std::fs::File, std::process::Stdio) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; the name, termios and winsize are optional.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited by the processes other tests spawn meanwhile (the child's stdin is a
    // dup2 of the slave, which clears the flag there).
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors are new and owned here.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(slave)),
        )
    }
}

fn send(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn sigint_while_the_veth_is_up_removes_it() {
    use std::io::{BufRead, BufReader, Write};
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
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("nsx ended before its veth step")
            .unwrap();
        let done = line.starts_with("step 3 · veth");
        seen.push(line);
        if done {
            break;
        }
    }
    // The step is printed while nsx waits for Enter: the pair exists now.
    assert!(
        Path::new(&host_end).exists(),
        "{host_end} missing: {seen:#?}"
    );
    send(pid, libc::SIGINT);
    for _ in lines.by_ref() {}
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted by SIGINT"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&host_end).exists(), "{host_end} left behind");
    assert!(processes_of(&exe).is_empty(), "{:?}", processes_of(&exe));
    assert_unchanged(before, &BTreeSet::from([pid]));
    drop(master);
}

#[test]
fn signals_at_any_point_of_net_and_pod_leave_nothing() {
    use std::io::{BufRead, BufReader};
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
            let mut child = spawn(
                Command::new(&exe)
                    .args(["lesson", id])
                    .env("NO_COLOR", "1")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped()),
            );
            let pid = child.id();
            pids.insert(pid);
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            // Mid-lesson: after the first step's line has appeared.
            for line in lines.by_ref() {
                if line.unwrap().starts_with("step 1 ·") {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            send(pid, sig);
            // Keep reading so nsx never blocks on a full pipe.
            for _ in lines.by_ref() {}
            let out = child.wait_with_output().unwrap();
            match out.status.code() {
                Some(0) => {}
                Some(c) if c == 128 + sig => interrupted += 1,
                other => panic!("{id} after {delay_ms} ms: {other:?}: {}", stderr(&out)),
            }
            assert!(
                !Path::new(&format!("/sys/class/net/nsx{pid}h")).exists(),
                "{id}: nsx{pid}h left after a signal at {delay_ms} ms"
            );
            assert!(
                processes_of(&exe).is_empty(),
                "{id} {delay_ms} ms: {:?}",
                processes_of(&exe)
            );
        }
    }
    assert!(
        interrupted > 0,
        "no run was interrupted: the test proved nothing"
    );
    assert_unchanged(before, &pids);
}

fn failed_facts(stdout: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(stdout) {
        Ok(r) => r["facts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["holds"] != true)
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => String::from_utf8_lossy(stdout).into_owned(),
    }
}

/// The key nsx's ipc lesson uses, from the PID of the nsx process (see sandbox::sysvipc).
fn ipc_key(nsx_pid: u32) -> i64 {
    i64::from(0x6e00_0000 | (nsx_pid & 0x00ff_ffff))
}

/// System V objects in the host's IPC namespace whose key belongs to one of `pids`.
fn ipc_objects_of(pids: &BTreeSet<u32>) -> Vec<String> {
    let keys: BTreeSet<i64> = pids.iter().map(|p| ipc_key(*p)).collect();
    let mut found = Vec::new();
    for table in ["shm", "msg", "sem"] {
        let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let key: Option<i64> = line.split_whitespace().next().and_then(|k| k.parse().ok());
            if key.is_some_and(|k| keys.contains(&k)) {
                found.push(format!("{table}: {line}"));
            }
        }
    }
    found
}

/// cgroup directories named nsx-<pid>-* anywhere under /sys/fs/cgroup, for `pids`.
fn cgroups_of(pids: &BTreeSet<u32>) -> Vec<String> {
    fn walk(dir: &Path, pids: &BTreeSet<u32>, out: &mut Vec<String>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let owner: Option<u32> = name
                .strip_prefix("nsx-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse().ok());
            if owner.is_some_and(|p| pids.contains(&p)) {
                out.push(e.path().display().to_string());
            }
            if depth < 8 {
                walk(&e.path(), pids, out, depth + 1);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), pids, &mut out, 0);
    out
}

#[test]
fn twenty_runs_of_ipc_user_cgroupns_and_time_leave_nothing() {
    if !privileged("namespace leak test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-leakns");
    let before = host_state();
    let mut pids = BTreeSet::new();
    for id in ["ipc", "user", "cgroupns", "time"] {
        for _ in 0..20 {
            let child = spawn(
                Command::new(&exe)
                    .args(["lesson", id, "--format", "json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped()),
            );
            pids.insert(child.id());
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "nsx lesson {id} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
        }
    }
    let after = host_state();
    assert_eq!(
        before.mountinfo, after.mountinfo,
        "the host's mount table changed"
    );
    assert_eq!(
        before.hostname, after.hostname,
        "the host's hostname changed"
    );
    assert!(
        processes_of(&exe).is_empty(),
        "nsx processes left: {:?}",
        processes_of(&exe)
    );
    assert!(
        temp_dirs_of(&pids).is_empty(),
        "temp dirs left: {:?}",
        temp_dirs_of(&pids)
    );
    assert!(
        ipc_objects_of(&pids).is_empty(),
        "IPC objects left: {:?}",
        ipc_objects_of(&pids)
    );
    assert!(
        cgroups_of(&pids).is_empty(),
        "cgroups left: {:?}",
        cgroups_of(&pids)
    );
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
        // spawn(): retries ETXTBSY on the freshly copied binary.
        let out = spawn(
            Command::new(&exe)
                .args(["lesson", id, "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
        .wait_with_output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let whole = start.elapsed();
        for i in 0..20u32 {
            let child = spawn(
                Command::new(&exe)
                    .args(["lesson", id, "--format", "json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped()),
            );
            let pid = child.id();
            pids.insert(pid);
            std::thread::sleep(whole * i / 20);
            // Only the nsx process this test started, by its PID.
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
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
            let one = BTreeSet::from([pid]);
            assert!(
                ipc_objects_of(&one).is_empty(),
                "IPC objects left: {:?}",
                ipc_objects_of(&one)
            );
            assert!(
                cgroups_of(&one).is_empty(),
                "cgroups left: {:?}",
                cgroups_of(&one)
            );
            assert!(
                temp_dirs_of(&one).is_empty(),
                "temp dirs left: {:?}",
                temp_dirs_of(&one)
            );
        }
    }
    assert!(
        processes_of(&exe).is_empty(),
        "nsx processes left: {:?}",
        processes_of(&exe)
    );
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
        let children: Vec<_> = (0..4)
            .map(|_| {
                spawn(
                    Command::new(&exe)
                        .args(["lesson", id, "--format", "json"])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped()),
                )
            })
            .collect();
        for child in children {
            pids.insert(child.id());
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent nsx lesson {id} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
        }
    }
    let after = host_state();
    assert_eq!(before.mountinfo, after.mountinfo);
    assert_eq!(before.hostname, after.hostname);
    assert!(processes_of(&exe).is_empty());
    assert!(
        ipc_objects_of(&pids).is_empty(),
        "{:?}",
        ipc_objects_of(&pids)
    );
    assert!(cgroups_of(&pids).is_empty(), "{:?}", cgroups_of(&pids));
    assert!(temp_dirs_of(&pids).is_empty(), "{:?}", temp_dirs_of(&pids));
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
