//! Nothing nsx does may outlive it: mounts, hostname, processes, temp directories.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::*;

struct HostState {
    mountinfo: String,
    hostname: String,
}

fn host_state() -> HostState {
    // The mount IDs and the rest of each line: any change shows.
    HostState {
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
    }
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
    for id in ["pid", "mount", "uts"] {
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
}

#[test]
fn four_concurrent_runs_do_not_interfere() {
    if !privileged("concurrency test") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-concurrent");
    let before = host_state();
    for id in ["pid", "mount", "uts"] {
        let children: Vec<_> = (0..4)
            .map(|_| {
                spawn(
                    Command::new(&exe)
                        .args(["lesson", id, "--format", "json"])
                        .stdout(std::process::Stdio::piped()),
                )
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent nsx lesson {id} failed: {}",
                failed_facts(&out.stdout)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["ok"], true);
        }
    }
    let after = host_state();
    assert_eq!(before.mountinfo, after.mountinfo);
    assert_eq!(before.hostname, after.hostname);
    assert!(processes_of(&exe).is_empty());
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
