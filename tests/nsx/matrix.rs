//! The cgroup-v2 kernel matrix: every lesson, run inside Debian's kernel booted in QEMU
//! by scripts/kernel-matrix.sh, must hold all its facts and match its committed v2
//! snapshot. The boot happens outside this test (it needs a static build and a few
//! seconds of emulation); this test reads the reports from $NSX_V2_MATRIX, one directory
//! per kernel (Debian 12's 6.1 and 6.12), separated by ':'.

use std::path::PathBuf;

use crate::common::*;

#[test]
fn every_lesson_holds_on_a_cgroup_v2_kernel() {
    let Some(dirs) = std::env::var_os("NSX_V2_MATRIX") else {
        let why = "kernel matrix: skipped, run scripts/kernel-matrix.sh and set NSX_V2_MATRIX=target/v2-matrix (.ci/run does)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}; in CI the matrix must run");
        }
        eprintln!("{why}");
        return;
    };
    let dirs: Vec<PathBuf> = std::env::split_paths(&dirs).collect();
    let mut kernels = Vec::new();
    let mut failures = Vec::new();
    for dir in &dirs {
        let kernel = std::fs::read_to_string(dir.join("kernel.txt"))
            .map(|k| k.trim().to_string())
            .unwrap_or_else(|_| format!("the kernel of {}", dir.display()));
        failures.extend(check_one_kernel(dir, &kernel));
        kernels.push(kernel);
    }
    // In CI both of Debian 12's kernels run: 6.1, and 6.12 with statmount(2).
    if std::env::var("CI").as_deref() == Ok("true") {
        for want in ["6.1.", "6.12."] {
            assert!(
                kernels.iter().any(|k| k.starts_with(want)),
                "the matrix in CI runs Debian 12's {want}x kernel; it ran {kernels:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every lesson's report from one kernel's VM: held, and the committed v2 shape.
fn check_one_kernel(dir: &std::path::Path, kernel: &str) -> Vec<String> {
    let lessons: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("lessons.json")).expect("lessons.json from the VM"),
    )
    .unwrap();
    let ids: Vec<String> = lessons
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    // The VM must run the same curriculum as this build.
    let here: serde_json::Value =
        serde_json::from_slice(&run(&["lessons", "--format", "json"]).stdout).unwrap();
    let here_ids: Vec<&str> = here
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids, here_ids,
        "{kernel}: the VM's nsx lists other lessons than this build"
    );
    let mut failures = Vec::new();
    for id in &ids {
        let rc = std::fs::read_to_string(dir.join(format!("{id}.rc"))).unwrap_or_default();
        let err = std::fs::read_to_string(dir.join(format!("{id}.err"))).unwrap_or_default();
        if rc.trim() != "0" {
            failures.push(format!("{id}: exit {} on {kernel}: {err}", rc.trim()));
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{kernel}, {id}: not JSON: {e}"));
        if report["ok"] != true {
            failures.push(format!("{id}: a fact did not hold on {kernel}: {report:#}"));
            continue;
        }
        // Its recording judges like the one committed as the v2 fixture (the unit tests
        // hold every fact on that one); here its shape must be the same, on every kernel.
        eprintln!("kernel matrix: {kernel}, {id}: the v2 shape");
        insta::assert_json_snapshot!(format!("v2_{id}_shape"), shape(&report));
    }
    failures
}
