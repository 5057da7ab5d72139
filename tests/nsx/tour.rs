//! `nsx tour`: every supported lesson, a recap each, a summary; JSON is an array.

use crate::common::*;

#[test]
fn the_tour_runs_every_lesson_and_all_hold() {
    if !privileged("tour") {
        return;
    }
    let ids = lesson_ids();
    // The deliberately timed lessons are left out where this build has them.
    let timed: Vec<&str> = ["cpu", "cost"]
        .into_iter()
        .filter(|t| ids.iter().any(|id| id == t))
        .collect();
    let skip = timed.join(",");
    let mut args = vec!["tour", "--format", "json"];
    if !timed.is_empty() {
        args.extend(["--skip", &skip]);
    }
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !timed.contains(id))
        .collect();
    let got: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lesson"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected, "curriculum order, nothing dropped");
    for r in reports.as_array().unwrap() {
        assert!(r["ok"] == true || r["skipped"] == true, "{r:#}");
        if r["skipped"] == true {
            assert!(
                r["reason"].is_string() && r["fix"].is_string(),
                "a skipped lesson says why: {r:#}"
            );
        }
    }
}

#[test]
fn the_tour_in_human_form_recaps_and_summarises() {
    if !privileged("tour (human)") {
        return;
    }
    // The human tour runs the cpu and cost lessons too.
    let _cpu = cpu_heavy();
    let out = nsx()
        .args(["tour", "--step"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a terminal"),
        "--step without a terminal says it will not pause"
    );
    let text = stdout(&out);
    for id in ["pid", "mount", "uts"] {
        assert!(text.contains(&format!("recap [{id}] ✓")), "{text}");
    }
    assert!(text.contains("tour summary"));
    let summary = regex::Regex::new(r"\n  (\d+) of (\d+) lessons held every fact").unwrap();
    let c = summary.captures(&text).expect("a summary line");
    assert_eq!(&c[1], &c[2], "{text}");
}

#[test]
fn tour_skip_rejects_unknown_lessons() {
    let out = run(&["tour", "--skip", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
}

#[test]
fn only_and_from_choose_the_lessons_in_curriculum_order() {
    if !privileged("tour --only/--from") {
        return;
    }
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["tour", "--format", "json"];
        full.extend_from_slice(args);
        let out = run(&full);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["lesson"].as_str().unwrap().to_string())
            .collect()
    };
    // In curriculum order, whatever order they were named in.
    assert_eq!(ids(&["--only", "uts,pid"]), ["pid", "uts"]);
    let all = lesson_ids();
    let from_pod = ids(&["--from", "pod", "--skip", "cost"]);
    let at = all.iter().position(|l| l == "pod").unwrap();
    let expected: Vec<String> = all[at..].iter().filter(|l| *l != "cost").cloned().collect();
    assert_eq!(from_pod, expected);
    // A lesson that does not exist is a usage error naming the choices.
    let out = run(&["tour", "--from", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
}
