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
