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
        // The step where the probe got its namespace (cgroupns has a shared step first).
        let after = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "after")
            .unwrap_or_else(|| panic!("{id}: no after step: {report:#}"));
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
    // Each workload is cloned by a helper that joined the holder's user namespace; nsx
    // itself never enters it.
    for step in [&report["steps"][1], &report["steps"][2]] {
        let actions = step["actions"].to_string();
        assert!(
            actions.contains("/ns/user\\\"), CLONE_NEWUSER)   (a helper nsx forked"),
            "{actions}"
        );
    }
    assert!(!report.to_string().contains("(nsx itself)"));
    assert!(report["notes"]
        .to_string()
        .contains("nsx itself stays in its own"));
}

/// Runs `nsx tour ARGS --format json` without root (as uid 4242 when the tests run as
/// root) and returns its exit code and the reports; `None` when user namespaces are not
/// available here.
fn rootless_tour(args: &[&str]) -> Option<(Option<i32>, Vec<serde_json::Value>)> {
    let mut all = vec!["tour", "--format", "json"];
    all.extend_from_slice(args);
    let out = if is_root() {
        let (_dir, exe) = copy_binary("nsx");
        run_as_user(&exe, &all)
    } else {
        nsx().args(&all).output().unwrap()
    };
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stderr(&out), stdout(&out)));
    if reports.iter().all(|r| r["skipped"] == true) {
        let why = stderr(&out);
        if std::env::var("NSX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("the rootless tour ran nothing here: {why}");
        }
        eprintln!("rootless tour: skipped: {why}");
        return None;
    }
    Some((out.status.code(), reports))
}

/// The whole tour without root exits 0: every lesson holds, or is skipped with its
/// reason and fix (the cgroup v1 limit lessons need root here). The pod lesson used to
/// leave nsx in its user namespace, and the cost lesson after it failed.
#[test]
fn the_rootless_tour_exits_0_with_every_lesson_ok() {
    let _timing = cpu_heavy();
    let Some((code, reports)) = rootless_tour(&[]) else {
        return;
    };
    for r in &reports {
        if r["skipped"] == true {
            assert!(r["reason"].is_string() && r["fix"].is_string(), "{r:#}");
            continue;
        }
        assert_eq!(r["privilege"], "rootless", "{r:#}");
        assert_eq!(r["ok"], true, "{} did not hold: {r:#}", r["lesson"]);
    }
    for id in ["pod", "cost"] {
        assert!(
            reports.iter().any(|r| r["lesson"] == id && r["ok"] == true),
            "{id} did not run"
        );
    }
    assert_eq!(code, Some(0));
}

/// After the pod lesson, nsx is still in the user namespace it started in: the lesson
/// after it (cost, whose host view is nsx's own /proc/self) shows the host's user
/// namespace, the same as the one this test runs in.
#[test]
fn after_the_pod_lesson_nsx_is_in_its_own_user_namespace() {
    let _timing = cpu_heavy();
    let ids = lesson_ids();
    let skip: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !["pod", "cost"].contains(id))
        .collect();
    let Some((_, reports)) = rootless_tour(&["--skip", &skip.join(",")]) else {
        return;
    };
    let ino = |link: std::path::PathBuf| -> u64 {
        let l = link.to_string_lossy().into_owned();
        l.trim_start_matches("user:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    };
    let host_user = ino(std::fs::read_link("/proc/self/ns/user").unwrap());
    let lessons: Vec<&str> = reports
        .iter()
        .map(|r| r["lesson"].as_str().unwrap())
        .collect();
    assert_eq!(lessons, ["pod", "cost"]);
    for r in &reports {
        for step in r["steps"].as_array().unwrap() {
            assert_eq!(
                step["host"]["own_ns"]["user"], host_user,
                "{}: nsx's own user namespace changed: {:#}",
                r["lesson"], step["host"]["own_ns"]
            );
        }
    }
    let cost = &reports[1];
    assert_eq!(cost["steps"][0]["host"]["source"], "/proc/self", "{cost:#}");
}

/// Without root the caps lesson still shows the three sets and the calls (each counted in
/// the user namespace nsx made), and says why the setuid and ambient steps cannot run:
/// only uid 0 is mapped. Its facts about them are reported apart, not failed.
#[test]
fn caps_runs_rootless_and_says_what_it_cannot_show() {
    let Some(json) = rootless_report("caps") else {
        return;
    };
    let report = typed_report(&json);
    assert_eq!(report.privilege, nsx::report::Privilege::Rootless);
    assert!(report.ok, "{json:#}");
    let apart: Vec<&str> = report.inconclusive.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        apart,
        [
            "setuid-gains-root",
            "bounding-set-is-the-ceiling",
            "no-new-privs-keeps-uid",
            "ambient-survives-exec"
        ]
    );
    for f in &report.inconclusive {
        let why = f.inconclusive.as_deref().unwrap();
        assert!(why.contains("only uid 0 is mapped"), "{}: {why}", f.id);
    }
    assert!(report.facts.iter().any(|f| f.id == "every-cap-allows"));
    let ids: Vec<&str> = report.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["every", "docker", "none"]);
    // Every capability of its own namespace, yet no device node and no clock.
    let every = step_of(&report, "every");
    for label in ["mknod c 1 3", "adjtimex (tick 0)"] {
        let row = row_of(every, label, nsx::report::Side::Probe);
        assert!(
            row.container.starts_with("EPERM"),
            "{label}: {}",
            row.container
        );
    }
    let mount = row_of(every, "mount a tmpfs", nsx::report::Side::Probe);
    assert_eq!(mount.container, "ok");
}

/// Without root the masks still apply (the probe's mount namespace belongs to its own
/// user namespace), and Landlock still refuses; only the LSM list may be unreadable.
#[test]
fn masks_run_rootless() {
    let Some(json) = rootless_report("masks") else {
        return;
    };
    let report = typed_report(&json);
    assert!(report.ok, "{json:#}");
    for id in [
        "masked-files-read-empty",
        "masks-are-the-probes-mounts",
        "proc-paths-read-only",
        "sys-read-only",
        "minimal-dev",
        "docker-caps-keep-masks",
        "sys-admin-undoes-a-mask",
        "landlock-denies-root",
    ] {
        assert!(
            report.facts.iter().any(|f| f.id == id && f.holds),
            "{id} must be decided and hold rootless: {json:#}"
        );
    }
    for f in &report.inconclusive {
        assert_eq!(f.id, "capability-is-an-lsm", "{f:?}");
        assert!(f.inconclusive.as_deref().unwrap().contains("securityfs"));
    }
}
