//! The cgroup-v2 kernel matrix: every lesson, run inside Debian's kernel booted in QEMU
//! by scripts/kernel-matrix.sh, must hold all its facts and match its committed v2
//! snapshot. The boot happens outside this test (it needs a static build and a few
//! seconds of emulation); this test reads the reports from $NSX_V2_MATRIX.

use std::path::PathBuf;

use crate::common::*;

#[test]
fn every_lesson_holds_on_a_cgroup_v2_kernel() {
    let Some(dir) = std::env::var_os("NSX_V2_MATRIX").map(PathBuf::from) else {
        let why = "kernel matrix: skipped, run scripts/kernel-matrix.sh and set NSX_V2_MATRIX=target/v2-matrix (.ci/run does)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}; in CI the matrix must run");
        }
        eprintln!("{why}");
        return;
    };
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
        "the VM's nsx lists other lessons than this build"
    );
    let mut failures = Vec::new();
    for id in &ids {
        let rc = std::fs::read_to_string(dir.join(format!("{id}.rc"))).unwrap_or_default();
        let err = std::fs::read_to_string(dir.join(format!("{id}.err"))).unwrap_or_default();
        if rc.trim() != "0" {
            failures.push(format!("{id}: exit {} on the v2 kernel: {err}", rc.trim()));
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{id}: not JSON: {e}"));
        if report["ok"] != true {
            failures.push(format!("{id}: a fact did not hold on v2: {report:#}"));
            continue;
        }
        // Its recording judges like the one committed as the v2 fixture (the unit tests
        // hold every fact on that one); here its shape must be the same.
        insta::assert_json_snapshot!(format!("v2_{id}_shape"), shape(&report));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
