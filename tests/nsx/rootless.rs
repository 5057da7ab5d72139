//! The lessons as an unprivileged user: nsx adds a user namespace and the facts hold.

use crate::common::*;

const UID: &str = TEST_UID;

fn rootless_report(id: &str) -> Option<serde_json::Value> {
    let out = if is_root() {
        let (_dir, exe) = copy_binary("nsx");
        run_as_user(&exe, &["lesson", id, "--format", "json"])
    } else {
        nsx()
            .args(["lesson", id, "--format", "json"])
            .output()
            .unwrap()
    };
    if out.status.code() == Some(77) {
        let why = stderr(&out);
        if std::env::var("NSX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("rootless {id} is not supported here: {why}");
        }
        eprintln!("rootless {id}: skipped: {why}");
        return None;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "rootless {id}: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn pid_uts_and_mount_run_rootless() {
    for id in ["pid", "uts", "mount"] {
        let Some(report) = rootless_report(id) else {
            continue;
        };
        assert_eq!(report["privilege"], "rootless", "{id}");
        assert_facts(&report, &[]);
        let notes = report["notes"].to_string();
        assert!(
            notes.contains("CLONE_NEWUSER"),
            "{id}: the output must say a user namespace was added: {notes}"
        );
        let after = &report["steps"][1];
        assert!(
            after["actions"].to_string().contains("uid_map"),
            "{id}: {after:#}"
        );
        if is_root() {
            let map = after["host"]["probe"]["uid_map"][0].as_str().unwrap();
            assert_eq!(map, format!("0 {UID} 1"), "{id}");
        }
    }
}

#[test]
fn rootfs_and_init_run_rootless() {
    // rootfs: chroot and pivot_root need CAP_SYS_CHROOT and CAP_SYS_ADMIN in the user
    // namespace that owns the mount namespace, which nsx creates; overlay mounts are
    // allowed in a user namespace (Linux 5.11+) with the userxattr option.
    for id in ["rootfs", "init"] {
        let Some(report) = rootless_report(id) else {
            continue;
        };
        assert_eq!(report["privilege"], "rootless", "{id}");
        assert_facts(&report, &[]);
    }
}

#[test]
fn ipc_user_cgroupns_and_time_run_rootless() {
    for id in ["ipc", "user", "cgroupns", "time"] {
        let Some(report) = rootless_report(id) else {
            continue;
        };
        assert_eq!(report["privilege"], "rootless", "{id}");
        assert_facts(&report, &[]);
        let after = &report["steps"][1];
        assert!(
            after["actions"].to_string().contains("uid_map"),
            "{id}: the user namespace nsx added must show in the actions: {after:#}"
        );
        if is_root() {
            let map = after["host"]["probe"]["uid_map"][0].as_str().unwrap();
            assert_eq!(map, format!("0 {UID} 1"), "{id}");
        }
    }
}

#[test]
fn rootless_user_maps_only_the_invoking_uid() {
    use nsx::report::{Side, Val};
    let Some(json) = rootless_report("user") else {
        return;
    };
    let report = typed_report(&json);
    let after = step_of(&report, "after");
    assert_eq!(after.container.probe.uid, 0);
    assert_eq!(row_of(after, "kill(T, 0)", Side::Own).container, "EPERM");
    // The probe mapped itself, without a parent, and only its own uid.
    let own = step_of(&report, "own-map");
    assert_eq!(row_of(own, "getuid()", Side::Probe).values[1], Val::Id(42));
    if is_root() {
        let uid: u32 = UID.parse().unwrap();
        assert_eq!(after.host.probe.uid, uid);
        // The unmapped control keeps the invoking uid on the host.
        assert_eq!(step_of(&report, "control").host.probe.uid, uid);
        assert_eq!(own.host.probe.uid_map(), [format!("42 {UID} 1")]);
    }
}

#[test]
fn net_runs_rootless_without_the_veth_step() {
    let Some(report) = rootless_report("net") else {
        return;
    };
    assert_eq!(report["privilege"], "rootless");
    assert_facts(
        &report,
        &[
            "before-same-interfaces",
            "only-lo",
            "lo-down",
            "host-reads-probe-net-dev",
            "host-sees-other-interfaces",
            "net-ns-differs",
        ],
    );
    // The veth step is skipped, said so, and none of its facts is claimed.
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["before", "after"]);
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("veth step was skipped") && notes.contains("CAP_NET_ADMIN"),
        "{notes}"
    );
    for fact in report["facts"].as_array().unwrap() {
        let id = fact["id"].as_str().unwrap();
        assert!(!id.starts_with("tcp") && !id.contains("veth"), "{id}");
    }
}

#[test]
fn pod_runs_rootless() {
    let Some(report) = rootless_report("pod") else {
        return;
    };
    assert_eq!(report["privilege"], "rootless");
    assert_facts(
        &report,
        &[
            "pod-shares-net",
            "pod-shares-ipc",
            "pod-shares-uts",
            "pod-hostname",
            "pod-localhost-round-trip",
            "workloads-own-pid",
            "workloads-own-mnt",
        ],
    );
    let holder = &report["steps"][0];
    let actions = holder["actions"].to_string();
    assert!(actions.contains("uid_map"), "{actions}");
    assert!(
        actions.contains("CLONE_NEWUSER)   (nsx itself)"),
        "{actions}"
    );
    assert!(report["notes"]
        .to_string()
        .contains("entered that user namespace"));
}
