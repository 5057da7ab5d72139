//! `nsx tour`: every lesson, a recap each (or why it was skipped or failed), a summary;
//! JSON is an array with every lesson's verdict.

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

#[test]
fn a_tour_on_a_read_only_cgroupfs_records_every_lesson_and_goes_on() {
    if !privileged("tour on a read-only cgroupfs") {
        return;
    }
    // cost is timed; the others that run here are quick.
    let _cpu = cpu_heavy();
    let ids = ["pid", "cgroupns", "memory", "cpu", "pids", "cost"];
    let only = ids.join(",");
    let out = on_read_only_cgroupfs(&["tour", "--only", &only, "--format", "json"]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "every lesson that ran held: {err}"
    );
    assert!(
        !err.contains("could not remove"),
        "nothing was created: {err}"
    );
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["lesson"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "every lesson listed, in curriculum order");
    for e in &entries {
        let verdict = e["verdict"].as_str().unwrap();
        match e["lesson"].as_str().unwrap() {
            "memory" | "cpu" | "pids" => {
                assert_eq!(verdict, "skipped", "{e:#}");
                assert!(e["reason"].as_str().unwrap().contains("read-only"), "{e:#}");
                assert!(e["fix"].is_string(), "{e:#}");
            }
            "cost" => {
                assert_eq!(verdict, "held", "{e:#}");
                let text = e.to_string();
                assert!(
                    text.contains("no cgroup timing") && text.contains("read-only"),
                    "{e:#}"
                );
            }
            _ => assert!(verdict == "held" || verdict == "skipped", "{e:#}"),
        }
    }
}

#[test]
fn cgroup_lessons_on_a_read_only_cgroupfs_exit_77_with_a_json_reason() {
    if !privileged("cgroup lessons on a read-only cgroupfs") {
        return;
    }
    for id in ["memory", "cpu", "pids"] {
        let out = on_read_only_cgroupfs(&["lesson", id, "--format", "json"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(77), "{id}: {err}");
        assert!(!err.contains("could not remove"), "{id}: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON object");
        assert_eq!(v["ok"], false, "{v:#}");
        assert_eq!(v["exit"], 77, "{v:#}");
        assert_eq!(v["error"]["kind"], "unsupported", "{v:#}");
        assert!(
            v["error"]["reason"].as_str().unwrap().contains("read-only"),
            "{v:#}"
        );
        assert!(v["error"]["fix"].is_string(), "{v:#}");
    }
    // cgroupns either shows the nesting nsx already has (it is nested here) or refuses:
    // never a raw EROFS failure.
    let out = on_read_only_cgroupfs(&["lesson", "cgroupns", "--format", "json"]);
    assert!(
        matches!(out.status.code(), Some(0 | 77)),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("could not remove"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_print_a_json_object_when_json_is_asked_for() {
    for args in [
        &["tour", "--skip", "nope", "--format", "json"][..],
        &["--format", "json", "lesson", "pdi"],
        &["lesson", "pid", "--memory", "32M", "--format=json"],
        &["lessons", "--bogus", "--format", "json"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            !stderr(&out).is_empty(),
            "the human message stays on stderr: {args:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)));
        assert_eq!(v["ok"], false, "{v:#}");
        assert_eq!(v["exit"], 2, "{v:#}");
        assert_eq!(v["error"]["kind"], "usage", "{v:#}");
        assert!(
            v["error"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{v:#}"
        );
        assert!(
            v["error"]["fix"].as_str().unwrap().contains("--help"),
            "{v:#}"
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["tour", "--skip", "nope", "--format", "json"]).stdout)
            .unwrap();
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("possible values"),
        "{v:#}"
    );
    // Without --format json, stdout stays empty.
    assert!(run(&["tour", "--skip", "nope"]).stdout.is_empty());
}

/// `tour --explain`: each lesson's story, rendered for the terminal (no Markdown marks),
/// comes before that lesson's header; in JSON each report carries its story.
#[test]
fn tour_explain_tells_each_story_before_its_lesson() {
    if !privileged("tour --explain") {
        return;
    }
    let out = run(&[
        "tour",
        "--only",
        "pid,uts",
        "--explain",
        "--color",
        "never",
        "--width",
        "80",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
    };
    // The stories' titles, without the "# " of their Markdown, each before its lesson.
    let (pid_story, uts_story) = (
        at("pid: the probe becomes PID 1"),
        at("uts: a hostname of its own"),
    );
    let (pid_run, uts_run) = (at("nsx lesson pid ·"), at("nsx lesson uts ·"));
    assert!(pid_story < pid_run && pid_run < uts_story && uts_story < uts_run);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("# ") || l.starts_with("```")),
        "{text}"
    );
    let out = run(&["tour", "--only", "uts", "--explain", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["narrative"].as_str().unwrap().starts_with("# uts"),
        "{v}"
    );
}
