//! observe() over a captured procfs tree: tests/fixtures/proc holds a host (`self`, in a
//! systemd-style shared "/") looking at a rootless probe, PID 4242 (1 inside).

use std::path::{Path, PathBuf};

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

#[test]
fn reads_the_probe_through_its_pid_directory() {
    let view = observe(&fixture(), Subject::Pid(4242)).unwrap();
    assert!(view.source.ends_with("/proc/4242"));
    assert_eq!(view.probe.pid, 4242);
    assert_eq!(view.probe.ppid, 4241);
    assert_eq!(view.probe.nspid, [4242, 1]);
    assert_eq!(view.probe.uid, 1000);
    assert_eq!(view.probe.cap_eff, "0000000000000000");
    assert_eq!(view.probe.ns("pid"), 4026532301);
    assert_eq!(view.probe.ns.len(), 8);
    assert_eq!(
        view.probe.cgroup,
        ["0::/user.slice/user-1000.slice/session-2.scope"]
    );
    assert_eq!(view.probe.uid_map, ["0 1000 1"]);
}

#[test]
fn reads_the_observers_own_world() {
    let view = observe(&fixture(), Subject::Pid(4242)).unwrap();
    assert_eq!(view.own_ns("pid"), 4026531836);
    assert_ne!(view.own_ns("pid"), view.probe.ns("pid"));
    assert_eq!(view.hostname, "laptop");
    // Numeric directories only: 1, 77 and 4242 (not self, not sys).
    assert_eq!(
        view.processes,
        Processes {
            count: 3,
            first: vec![1, 77, 4242]
        }
    );
}

#[test]
fn summarises_the_mount_table() {
    let view = observe(&fixture(), Subject::Pid(4242)).unwrap();
    assert_eq!(view.mounts.count, 4);
    assert_eq!(view.mounts.root_propagation, "shared:1");
    assert_eq!(
        view.mounts.nsx,
        [Mount {
            mount_point: "/tmp/nsx-4241-mount".into(),
            fstype: "tmpfs".into(),
            source: "nsx-demo".into(),
            propagation: "master:7".into(),
        }]
    );
    assert!(view.has_mount("/tmp/nsx-4241-mount"));
}

#[test]
fn namespace_links_parse() {
    assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4026531836));
    assert_eq!(parse_ns_link("pid:4026531836"), None);
    assert_eq!(parse_ns_link("pid:[x]"), None);
}

#[test]
fn a_missing_process_is_an_error_naming_the_file() {
    let err = observe(&fixture(), Subject::Pid(99999))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/proc/99999/status") && err.contains("ENOENT"),
        "{err}"
    );
}

#[test]
fn a_garbled_status_is_an_error_naming_the_file_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("9")).unwrap();
    std::fs::write(dir.path().join("9/status"), "Pid:\tnot-a-number\n").unwrap();
    let err = read_proc(&dir.path().join("9")).unwrap_err().to_string();
    assert!(err.contains("9/status"), "{err}");
}

#[test]
fn reads_the_sysvipc_tables_of_the_readers_namespace() {
    let view = observe(&fixture(), Subject::Pid(4242)).unwrap();
    let ipc = &view.sysvipc;
    assert_eq!(ipc.shm.len(), 2);
    let key = crate::sandbox::sysvipc::nsx_key(4242);
    let seg = ipc.shm_with_key(key).unwrap();
    assert_eq!(
        seg,
        &sysvipc::ShmSegment {
            key,
            id: 32768,
            perms: "600".into(),
            size: 4096,
            cpid: 4242,
            nattch: 0,
            uid: 1000,
        }
    );
    // IPC_PRIVATE segments have key 0 and are listed too.
    assert_eq!(ipc.shm[1].key, 0);
    assert_eq!(ipc.shm[1].nattch, 2);
    let q = ipc.msg_with_key(key).unwrap();
    assert_eq!((q.id, q.qnum, q.cbytes, q.lspid), (0, 1, 14, 4242));
    assert!(ipc.msg_with_key(1).is_none());
}

#[test]
fn missing_sysvipc_tables_are_empty_and_garbled_ones_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(sysvipc::read_sysvipc(dir.path()).unwrap().is_empty());
    std::fs::create_dir(dir.path().join("sysvipc")).unwrap();
    std::fs::write(
        dir.path().join("sysvipc/msg"),
        "       key      msqid perms\n     x  0  600\n",
    )
    .unwrap();
    let err = sysvipc::read_sysvipc(dir.path()).unwrap_err().to_string();
    assert!(err.contains("sysvipc/msg") && err.contains("key"), "{err}");
}
