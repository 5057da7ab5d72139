//! `nsx doctor` on this machine: its answers are host-specific, so the structure is
//! checked here and the wording is pinned by the fixture snapshots (src/doctor/tests.rs).

use serde_json::Value;

use crate::common::*;

fn doctor_json() -> Value {
    let out = run(&["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn doctor_reports_every_section_and_every_lesson() {
    let d = doctor_json();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(d["kernel"]["release"], release.trim());
    assert!(["v1", "hybrid", "v2"].contains(&d["cgroup"]["mode"].as_str().unwrap()));
    let namespaces: Vec<&str> = d["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        namespaces,
        ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
    );
    for n in d["namespaces"].as_array().unwrap() {
        let ty = n["name"].as_str().unwrap();
        assert_eq!(
            n["present"],
            std::path::Path::new(&format!("/proc/self/ns/{ty}")).exists(),
            "{ty}"
        );
    }
    for key in ["container", "wsl", "vm"] {
        assert!(d["environment"][key]["detected"].is_boolean(), "{key}");
    }
    assert_eq!(
        d["environment"]["container"]["detected"],
        std::path::Path::new("/.dockerenv").exists()
            || std::path::Path::new("/run/.containerenv").exists()
            || d["environment"]["container"]["evidence"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
    );
    let lessons: Vec<&str> = d["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    let listed = run(&["lessons", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(lessons, ids);
    for l in d["lessons"].as_array().unwrap() {
        let v = l["verdict"].as_str().unwrap();
        assert!(["rootless", "root", "blocked"].contains(&v), "{l:#}");
        for side in ["as_root", "rootless"] {
            let s = &l[side];
            assert!(
                s["status"] == "yes" || (s["reason"].is_string() && s["fix"].is_string()),
                "{l:#}"
            );
        }
    }
}

#[test]
fn doctor_and_lessons_agree() {
    let d = doctor_json();
    let listed: Value =
        serde_json::from_slice(&run(&["lessons", "--format", "json"]).stdout).unwrap();
    let side = if is_root() { "as_root" } else { "rootless" };
    for (verdict, lesson) in d["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .zip(listed.as_array().unwrap())
    {
        assert_eq!(verdict[side], lesson["supported"], "{}", lesson["id"]);
        // The needs column is the doctor's verdict, not the lesson's own declaration.
        let needs = match verdict["verdict"].as_str().unwrap() {
            "rootless" => "rootless",
            "root" => "root",
            _ => lesson["needs"].as_str().unwrap(),
        };
        assert_eq!(lesson["needs"], needs, "{}: {verdict:#}", lesson["id"]);
    }
}

#[test]
fn doctor_on_this_development_machine() {
    if !privileged("doctor as root here") {
        return;
    }
    let d = doctor_json();
    // Every lesson on main runs here as root (the lesson tests prove it).
    for l in d["lessons"].as_array().unwrap() {
        assert_ne!(l["verdict"], "blocked", "{l:#}");
        assert_eq!(l["as_root"]["status"], "yes", "{l:#}");
    }
    let text = stdout(&run(&["doctor"]));
    for heading in [
        "kernel",
        "cgroups",
        "namespaces",
        "overlayfs",
        "where nsx runs",
        "lessons",
    ] {
        assert!(
            text.contains(&format!("\n{heading}\n")),
            "{heading}: {text}"
        );
    }
}

#[test]
fn doctor_as_an_unprivileged_user_judges_for_that_user() {
    if !privileged("doctor as uid 4242") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx");
    let out = run_as_user(&exe, &["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["privilege"], "rootless");
    assert_eq!(d["user"]["uid"], 4242);
    assert_eq!(d["nsx"]["cap_sys_admin"], false);
    // Nothing of the cgroup tree belongs to uid 4242.
    for c in d["cgroup"]["controllers"].as_array().unwrap() {
        assert_eq!(c["delegated"], false, "{c:#}");
    }
}

/// scripts/kernel-matrix.sh also runs `nsx doctor` inside the cgroup-v2 VM (Debian's
/// kernel under QEMU): there it must see v2, the limits' controllers usable by root,
/// every namespace type, and QEMU. Without the matrix, matrix.rs says why it skipped.
#[test]
fn doctor_on_the_cgroup_v2_kernel() {
    let Some(dirs) = std::env::var_os("NSX_V2_MATRIX") else {
        eprintln!("doctor on v2: skipped, no NSX_V2_MATRIX (the kernel matrix did not run)");
        return;
    };
    // One directory per kernel, separated by ':' (.ci/run: 6.1 and 6.12).
    for dir in std::env::split_paths(&dirs) {
        doctor_in_the_vm(&dir);
    }
}

fn doctor_in_the_vm(dir: &std::path::Path) {
    let path = dir.join("doctor.json");
    let d: Value = serde_json::from_slice(&std::fs::read(&path).expect("doctor.json from the VM"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(d["cgroup"]["mode"], "v2", "{d:#}");
    assert_eq!(d["privilege"], "root");
    for name in ["memory", "cpu", "pids"] {
        let c = d["cgroup"]["controllers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {d:#}"));
        assert_eq!(c["hierarchy"], "v2", "{c:#}");
        assert_eq!(c["available"], true, "{c:#}");
    }
    for n in d["namespaces"].as_array().unwrap() {
        assert_eq!(n["present"], true, "{n:#}");
    }
    assert_eq!(d["environment"]["vm"]["kind"], "QEMU", "{d:#}");
    for l in d["lessons"].as_array().unwrap() {
        assert_eq!(l["as_root"]["status"], "yes", "{l:#}");
    }
}
