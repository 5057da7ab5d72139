//! Nothing nsx does may outlive it: mounts, hostname, network links and routes,
//! processes, temp directories; also when it is interrupted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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

/// SIGINT while the veth pair exists: nsx ends with 130 and the pair is gone. With
/// --step on a terminal nsx waits at the veth step's pause with the pair up: a
/// deterministic moment.
#[test]
fn sigint_while_the_veth_is_up_removes_it() {
    if !privileged("net interrupted") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sigint");
    let before = host_state();
    let mut run = Presented::start(&exe, &["net"]);
    let pid = run.child.id();
    let host_end = format!("/sys/class/net/nsx{pid}h");
    let within = std::time::Duration::from_secs(60);
    // Enter at the before and after steps' pauses; the third is the veth step's.
    for _ in 0..2 {
        run.next_pause(within).expect("a namespace step's pause");
        run.press(b'\n');
    }
    let veth = run.next_pause(within).expect("the veth step's pause");
    assert!(veth.contains("step 3 · veth"), "{veth}");
    assert!(Path::new(&host_end).exists(), "{host_end} missing: {veth}");
    // Our child, not yet waited for: the PID is still its.
    signal(pid, libc::SIGINT);
    let (status, rest) = run.finish(within);
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted by SIGINT"), "{rest}");
    assert!(!Path::new(&host_end).exists(), "{host_end} left behind");
    let running = processes_of(&exe);
    assert!(running.is_empty(), "{running:?}");
    assert_unchanged(before, &BTreeSet::from([pid]));
}

/// SIGINT or SIGTERM spread over the time one run takes: whatever the net and pod
/// lessons had made (a veth pair, a holder and its workloads) is gone, and no process
/// outlives nsx.
#[test]
fn signals_at_any_point_of_net_and_pod_leave_nothing() {
    use std::os::unix::process::ExitStatusExt;
    if !privileged("net/pod interrupted at several points") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-sigpoints");
    let before = host_state();
    let mut pids = BTreeSet::new();
    let mut interrupted = 0;
    for id in ["net", "pod"] {
        let start = std::time::Instant::now();
        let out = spawn_lesson(&exe, &[id, "--format", "json"])
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let whole = start.elapsed();
        for i in 0..12u32 {
            let sig = if i % 2 == 0 {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            let child = spawn_lesson(&exe, &[id, "--format", "json"]);
            let pid = child.id();
            pids.insert(pid);
            std::thread::sleep(whole * i / 12);
            // Only the nsx process this test started, by its PID.
            signal(pid, sig);
            let out = child.wait_with_output().unwrap();
            match (out.status.code(), out.status.signal()) {
                (Some(0), _) => {}
                (Some(c), _) if c == 128 + sig => {
                    interrupted += 1;
                    assert!(
                        stderr(&out).contains("interrupted by SIG"),
                        "{}",
                        stderr(&out)
                    );
                }
                // Before main installed its handler: nothing was created yet.
                (None, Some(s)) if s == sig => {}
                other => panic!("{id} at {i}/12: {other:?}: {}", stderr(&out)),
            }
            assert!(
                veths_of(&BTreeSet::from([pid])).is_empty(),
                "{id}: nsx{pid}h left after a signal at {i}/12 of a run"
            );
            let running = processes_of(&exe);
            assert!(running.is_empty(), "{id} at {i}/12: {running:?}");
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
    let interrupted = interrupt_each_at_points(&exe, &["ipc", "cgroupns"], 20);
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

/// A PID that is no process any more: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let _ = dead.wait_with_output();
    pid
}

/// Makes the veth pair `nsx<pid>h`/`nsx<pid>c` with iproute2, as a killed run would have
/// left it, with `alias` on the host end.
fn make_veth(pid: u32, alias: Option<&str>) -> (String, String) {
    let (host, peer) = (format!("nsx{pid}h"), format!("nsx{pid}c"));
    let made = Command::new("ip")
        .args(["link", "add", &host, "type", "veth", "peer", "name", &peer])
        .status()
        .expect("ip (iproute2)");
    assert!(made.success());
    if let Some(alias) = alias {
        let set = Command::new("ip")
            .args(["link", "set", &host, "alias", alias])
            .status()
            .unwrap();
        assert!(set.success());
    }
    assert!(Path::new(&format!("/sys/class/net/{host}")).exists());
    (host, peer)
}

#[test]
fn a_veth_left_by_a_dead_run_is_swept() {
    if !privileged("veth sweep") {
        return;
    }
    // The run in the alias: that PID with a start time no process has now.
    let pid = dead_pid();
    let (host, peer) = make_veth(pid, Some(&format!("nsx-{pid}-1-veth")));
    let report = lesson_json("net", &[]);
    assert_eq!(report["ok"], true);
    let gone = !Path::new(&format!("/sys/class/net/{host}")).exists();
    if !gone {
        let _ = Command::new("ip").args(["link", "del", &host]).status();
    }
    assert!(gone, "{host} was not swept");
    assert!(!Path::new(&format!("/sys/class/net/{peer}")).exists());
}

/// A veth whose owner cannot be read (no alias: made by hand, or by an nsx from before
/// the alias) is never deleted, whatever process has the PID in its name.
#[test]
fn a_veth_without_an_owner_is_never_deleted() {
    if !privileged("veth without owner") {
        return;
    }
    let pid = dead_pid();
    let (host, _) = make_veth(pid, None);
    let (alias_host, _) = make_veth(dead_pid(), Some("uplink to the lab switch"));
    let report = lesson_json("net", &[]);
    let kept = Path::new(&format!("/sys/class/net/{host}")).exists();
    let alias_kept = Path::new(&format!("/sys/class/net/{alias_host}")).exists();
    for h in [&host, &alias_host] {
        let _ = Command::new("ip").args(["link", "del", h]).status();
    }
    assert_eq!(report["ok"], true);
    assert!(kept, "{host} (no alias) was deleted");
    assert!(
        alias_kept,
        "{alias_host} (an alias that names no nsx run) was deleted"
    );
}

/// Liveness is the run, PID and start time, never the executable's name: runs of a copy
/// called `labtool` must not take one another's cgroups or veth pairs for leftovers.
#[test]
fn concurrent_runs_of_a_copy_named_labtool_keep_each_others_cgroups_and_veths() {
    if !privileged("labtool concurrency") {
        return;
    }
    let (_dir, exe) = copy_binary("labtool");
    let mut pids = BTreeSet::new();
    // lesson_runs_at_once asserts that every run succeeds.
    for (pid, report) in lesson_runs_at_once(&exe, &["memory"], 8) {
        pids.insert(pid);
        assert_eq!(report["ok"], true);
    }
    for (pid, report) in lesson_runs_at_once(&exe, &["net"], 4) {
        pids.insert(pid);
        assert_eq!(report["ok"], true);
    }
    let left = leftovers_of(&pids);
    assert!(left.is_empty(), "left: {left:?}");
    assert!(processes_of(&exe).is_empty());
}

/// The directory of this test's own cgroup in the v1 `controller` hierarchy (nsx, its
/// child, creates its lesson cgroups there).
fn own_v1_dir(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctl) = (parts.next()?, parts.next()?);
        ctl.split(',')
            .any(|c| c == controller)
            .then(|| parts.next())?
    })?;
    let dir = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// The state letter of `/proc/<pid>/stat` (proc(5): field 3, after the command name).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Starts `exe lesson ARGS` and SIGKILLs it at a moment `at(pid)` says is the one: each
/// time `at` says yes while polling, the run is stopped (SIGSTOP), `at` is asked again
/// with nothing moving, and it is killed if the answer stands, or resumed (SIGCONT).
/// Returns its PID, or `None` if it ended first.
fn kill_when(exe: &Path, args: &[&str], at: &dyn Fn(u32) -> bool) -> Option<u32> {
    use std::os::unix::process::ExitStatusExt;
    let mut child = spawn(
        Command::new(exe)
            .arg("lesson")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if !at(pid) {
            continue;
        }
        // Our child, not yet waited for: the PID is still its.
        signal(pid, libc::SIGSTOP);
        while !matches!(state(pid), Some('T') | None) {
            std::thread::yield_now();
        }
        if at(pid) {
            signal(pid, libc::SIGKILL);
            break;
        }
        signal(pid, libc::SIGCONT);
    }
    let status = child.wait().unwrap();
    (status.signal() == Some(libc::SIGKILL)).then_some(pid)
}

/// The cost lesson times mkdir + rmdir of a child of its cgroup; a SIGKILL in that loop
/// leaves the child in the cgroup. The next run removes both, the child first.
#[test]
fn a_cost_run_killed_in_its_cgroup_loop_is_swept_children_first() {
    if !privileged("cost killed in its cgroup loop") {
        return;
    }
    let Some(memory) = own_v1_dir("memory") else {
        eprintln!("skipping: no v1 memory hierarchy (the v2 matrix covers v2)");
        return;
    };
    let _timing = cpu_heavy();
    let (_dir, exe) = copy_binary("nsx-costkill");
    let cost_dir = |pid: u32| {
        std::fs::read_dir(&memory).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with(&format!("nsx-{pid}-")) && name.ends_with("-cost")).then(|| e.path())
        })
    };
    let mut left = None;
    for _ in 0..5 {
        let Some(pid) = kill_when(&exe, &["cost"], &|pid| {
            cost_dir(pid).is_some_and(|d| d.join("nsx-cost-probe").exists())
        }) else {
            continue;
        };
        left = cost_dir(pid);
        break;
    }
    let left = left.expect("no run was killed with its probe directory in place");
    let out = spawn_lesson(&exe, &["cost", "--format", "json"])
        .wait_with_output()
        .unwrap();
    let gone = !left.exists();
    if !gone {
        let _ = std::fs::remove_dir(left.join("nsx-cost-probe"));
        let _ = std::fs::remove_dir(&left);
    }
    assert!(gone, "{} was left after the next run", left.display());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The cgroupns lesson's child cgroup, left by a run killed while it existed, is removed
/// by the lesson's next run.
#[test]
fn a_cgroupns_run_killed_with_its_child_cgroup_is_swept_by_the_next() {
    if !privileged("cgroupns killed") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-cgnskill");
    let child_of = |pid: u32| {
        cgroups_of(&BTreeSet::from([pid]))
            .into_iter()
            .find(|d| d.to_string_lossy().ends_with("-cgroupns"))
    };
    let mut left = None;
    for _ in 0..10 {
        let Some(pid) = kill_when(&exe, &["cgroupns"], &|pid| child_of(pid).is_some()) else {
            continue;
        };
        left = child_of(pid);
        break;
    }
    let left = left.expect("no run was killed while its child cgroup existed");
    let report = lesson_json("cgroupns", &[]);
    let gone = !left.exists();
    if !gone {
        let _ = std::fs::remove_dir(&left);
    }
    assert!(gone, "{} was left after the next run", left.display());
    assert_eq!(report["ok"], true);
}

/// A run killed during the ipc lesson's control step leaves its segment and queue in
/// the host's IPC namespace; the next run removes them. Done in an IPC namespace of this
/// test's own (a process holds it; the runs enter it with nsenter), so no other test
/// ever sees the objects.
#[test]
fn ipc_objects_of_a_run_killed_in_its_control_step_are_swept() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    if !privileged("ipc killed in its control step") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-ipckill");
    let exe = exe.to_str().unwrap().to_string();
    let mut holder = spawn(
        Command::new("unshare")
            .args(["--ipc", "--", "sleep", "600"])
            .stdin(Stdio::null()),
    );
    let ns = holder.id().to_string();
    let link = |p: &str| std::fs::read_link(p).ok();
    let unshared = (0..1000).any(|_| {
        let differs = link(&format!("/proc/{ns}/ns/ipc")) != link("/proc/self/ns/ipc");
        if !differs {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        differs
    });
    assert!(unshared, "unshare --ipc did not make a namespace");
    let in_ns = |args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.args(["--ipc", "--target", &ns, "--"]).args(args);
        c
    };
    let read = |table: &str| {
        let out = in_ns(&["cat", &format!("/proc/sysvipc/{table}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // Any key of nsx's, old (0x6e + PID) or new (0x6e8 + random): the namespace is ours.
    let orphans = || ipc_orphans_in(&read("shm"), &read("msg"), &|k| (k as u32) >> 24 == 0x6e);
    let mut left = Vec::new();
    for _ in 0..30 {
        let nsx = spawn(
            in_ns(&[&exe, "lesson", "ipc", "--format", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let pid = nsx.id().to_string();
        // In the namespace, the first queue is the control step's (the after step's live
        // in the probe's own namespace): SIGKILL nsx as soon as it appears.
        let mut watcher = spawn(
            in_ns(&[
                "bash",
                "-c",
                "until mapfile -t q < /proc/sysvipc/msg; [ ${#q[@]} -gt 1 ]; do :; done; kill -KILL \"$0\"",
                &pid,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        );
        let status = nsx.wait_with_output().unwrap().status;
        let _ = watcher.kill();
        let _ = watcher.wait();
        if status.signal() != Some(libc::SIGKILL) {
            continue;
        }
        // The probe dies with nsx (PR_SET_PDEATHSIG) and init reaps it.
        for _ in 0..300 {
            left = orphans();
            if !left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !left.is_empty() {
            break;
        }
    }
    let next = in_ns(&[&exe, "lesson", "ipc", "--format", "json"])
        .output()
        .unwrap();
    let after = orphans();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        !left.is_empty(),
        "no run was killed during its control step: the test proved nothing"
    );
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(
        after.is_empty(),
        "not swept: {after:?} (left before: {left:?})"
    );
    let report: serde_json::Value = serde_json::from_slice(&next.stdout).unwrap();
    assert!(
        report["notes"]
            .to_string()
            .contains("removed a System V object left by an nsx run that was killed"),
        "{:#}",
        report["notes"]
    );
}

/// Another user who creates the IPC objects a run is about to use must not make it fail:
/// keys used to be `0x6e000000 | <nsx's PID>`, which anyone could compute the moment the
/// process appeared. Now they are random, and a taken key is simply not chosen.
#[test]
fn objects_created_in_advance_under_a_predictable_key_do_not_stop_a_run() {
    if !privileged("predictable IPC keys") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-ipckey");
    let child = spawn_lesson(&exe, &["ipc", "--format", "json"]);
    let key = (0x6e00_0000 | (child.id() & 0x00ff_ffff)) as libc::key_t;
    // What the other user would do, as fast as it can (here as root, then handed to uid
    // 4242 with IPC_SET: the kernel keeps the creator, and shows the owner).
    // SAFETY: shmget and msgget take plain integers.
    let shm = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o644) };
    // SAFETY: as above.
    let msg = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o644) };
    for (id, is_shm) in [(shm, true), (msg, false)] {
        if id < 0 {
            continue;
        }
        // SAFETY: IPC_STAT fills a zeroed struct of the right kind; IPC_SET reads it.
        unsafe {
            if is_shm {
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                libc::shmctl(id, libc::IPC_STAT, &mut ds);
                ds.shm_perm.uid = 4242;
                libc::shmctl(id, libc::IPC_SET, &mut ds);
            } else {
                let mut ds: libc::msqid_ds = std::mem::zeroed();
                libc::msgctl(id, libc::IPC_STAT, &mut ds);
                ds.msg_perm.uid = 4242;
                libc::msgctl(id, libc::IPC_SET, &mut ds);
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    // SAFETY: IPC_RMID ignores the buffer; the ids are the objects this test made.
    unsafe {
        if shm >= 0 {
            libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut());
        }
        if msg >= 0 {
            libc::msgctl(msg, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
    assert!(
        shm >= 0 && msg >= 0,
        "the test could not take the key first"
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        failed_facts(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(report["steps"][2]["extra"]["ipc_key"], i64::from(key));
}

/// What the caps and masks lessons would change on the host if they were wrong: the
/// capability sets of this test and of PID 1, the mount table, /dev, sysctls a
/// container runtime guards, and the clock's tick.
#[derive(Debug, PartialEq, Eq)]
struct Guarded {
    caps: Vec<String>,
    mountinfo: String,
    /// Name, mode and device number of each /dev entry.
    dev: Vec<(String, u32, u64)>,
    sysctls: Vec<(String, String)>,
    /// adjtimex(2) with no mode bits: reads, changes nothing.
    tick: i64,
}

fn guarded() -> Guarded {
    use std::os::unix::fs::MetadataExt;
    let caps = ["/proc/self/status", "/proc/1/status"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut dev: Vec<(String, u32, u64)> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                m.mode(),
                m.rdev(),
            ))
        })
        // pts entries come and go with other sessions; /dev/pts itself stays.
        .collect();
    dev.sort();
    let sysctls = [
        "kernel/hostname",
        "kernel/domainname",
        "kernel/sysrq",
        "kernel/cap_last_cap",
        "net/ipv4/ip_forward",
        "net/ipv4/ip_unprivileged_port_start",
        "user/max_user_namespaces",
        "vm/overcommit_memory",
    ]
    .iter()
    .filter_map(|k| {
        let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).ok()?;
        Some((k.to_string(), v))
    })
    .collect();
    // SAFETY: a zeroed struct timex with modes 0 only reads the clock's parameters.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a valid struct timex.
    assert!(unsafe { libc::adjtimex(&mut t) } >= 0);
    Guarded {
        caps,
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        dev,
        sysctls,
        tick: t.tick,
    }
}

/// Processes running the lessons' setuid helper (`nsx-euid`) that no running probe of
/// another test holds: each is the child of a probe (a clone of nsx, so its parent's
/// executable is the test binary); one left by a run of `exe`, or orphaned, is a leak.
fn helpers_left(exe: &Path) -> Vec<String> {
    let shared = Path::new(env!("CARGO_BIN_EXE_nsx"));
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            if !comm.starts_with("nsx-euid") {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .to_string();
            let parent = std::fs::read_link(format!("/proc/{ppid}/exe")).ok();
            let held = parent.as_deref() == Some(shared) && parent.as_deref() != Some(exe);
            (!held).then(|| format!("{} ({comm:?}, parent {ppid})", e.path().display()))
        })
        .collect()
}

/// The directories caps and masks runs mount their own tmpfs on, as the host sees them:
/// always empty (the setuid copy exists only in the probe's mount namespace).
fn lesson_dirs_with_entries() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("nsx-") && (n.contains("-caps-") || n.contains("-masks-"))
        })
        .filter_map(|e| {
            let entries: Vec<String> = std::fs::read_dir(e.path())
                .ok()?
                .flatten()
                .map(|x| x.file_name().to_string_lossy().into_owned())
                .collect();
            (!entries.is_empty()).then(|| format!("{}: {entries:?}", e.path().display()))
        })
        .collect()
}

#[test]
fn caps_and_masks_leave_capabilities_mounts_dev_and_sysctls_as_they_were() {
    if !privileged("caps and masks leak test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-capsleak");
    let before = guarded();
    // While the runs go on, the host's side of their directories stays empty.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                seen.extend(lesson_dirs_with_entries());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            seen
        })
    };
    let pids = lesson_runs_in_turn(&exe, &["caps", "masks"], 3);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    assert!(
        seen.is_empty(),
        "the host saw files in a lesson's directory: {seen:?}"
    );
    assert_eq!(before, guarded(), "caps/masks changed the host");
    let running = processes_of(&exe);
    assert!(running.is_empty(), "nsx processes left: {running:?}");
    let helpers = helpers_left(&exe);
    assert!(helpers.is_empty(), "helpers left: {helpers:?}");
    let left = leftovers_of(&pids);
    assert!(left.is_empty(), "left: {left:?}");
}

/// SIGTERM at points spread over a run of each: no probe, no helper, no temp dir
/// outlives nsx, and the host's capabilities, mounts, /dev and sysctls are unchanged.
#[test]
fn interrupted_caps_and_masks_runs_leave_nothing() {
    if !privileged("interrupted caps and masks") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-capsint");
    let before = guarded();
    let interrupted = interrupt_each_at_points(&exe, &["caps", "masks"], 10);
    // A probe dies with nsx (PR_SET_PDEATHSIG), and its helpers with its PID namespace.
    let running = wait_for_no_process_of(&exe, std::time::Duration::from_secs(5));
    assert!(running.is_empty(), "nsx processes left: {running:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut helpers = helpers_left(&exe);
    while !helpers.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        helpers = helpers_left(&exe);
    }
    assert!(helpers.is_empty(), "helpers left: {helpers:?}");
    assert_eq!(before, guarded(), "an interrupted run changed the host");
    assert!(
        interrupted > 0,
        "no run was interrupted mid-way: the test proved nothing"
    );
}

/// Runs each lesson of `ids` once whole, then `points` times, each sent SIGTERM (only the
/// nsx process this test started, by its PID) at a point spread over the time the whole
/// run took; after each, nothing of that run is left (IPC objects, cgroups, temp dirs,
/// veth ends). Returns how many runs were interrupted mid-way.
fn interrupt_each_at_points(exe: &std::path::Path, ids: &[&str], points: u32) -> usize {
    use std::os::unix::process::ExitStatusExt;
    let mut interrupted = 0;
    for id in ids {
        let start = std::time::Instant::now();
        let out = spawn_lesson(exe, &[id, "--format", "json"])
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let whole = start.elapsed();
        for i in 0..points {
            let child = spawn_lesson(exe, &[id, "--format", "json"]);
            let pid = child.id();
            std::thread::sleep(whole * i / points);
            signal(pid, libc::SIGTERM);
            let out = child.wait_with_output().unwrap();
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
            let left = leftovers_of(&BTreeSet::from([pid]));
            assert!(left.is_empty(), "nsx lesson {id} left: {left:?}");
        }
    }
    interrupted
}

/// A run in a time namespace with a boottime offset reads every process's start time
/// shifted (proc(5) starttime is the reader's boot clock): its sweep must still see a
/// live run as alive. Here the live run is this test process, with a tree named after
/// it; nsx runs under `unshare --time --boottime` and sweeps the temp dir first thing.
#[test]
fn a_run_in_a_time_namespace_keeps_the_trees_of_live_runs() {
    if !privileged("sweep from a time namespace") {
        return;
    }
    let me = nsx::owner::Run::current();
    let tmp = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let tree = tmp.join(me.name("rootfs-timens00"));
    std::fs::create_dir_all(tree.join("image/proc")).unwrap();
    let out = Command::new("unshare")
        .args(["--time", "--fork", "--boottime", "86400"])
        .arg(env!("CARGO_BIN_EXE_nsx"))
        .args(["lesson", "uts", "--format", "json"])
        .output()
        .unwrap();
    let kept = tree.join("image/proc").is_dir();
    let _ = std::fs::remove_dir_all(&tree);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        kept,
        "a live run's tree was swept by nsx in a time namespace"
    );
}
