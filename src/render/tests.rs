//! Rendering reports built from fixture views: no root, no /proc.

use serde_json::json;

use super::human;
use crate::lessons;
use crate::observe::View;
use crate::report::{Fact, Privilege, Report, Row, Step};

fn report(holds: bool) -> Report {
    let host = View {
        source: "/proc/4242".into(),
        ..View::default()
    };
    let container = View {
        source: "/proc/self".into(),
        ..View::default()
    };
    Report {
        lesson: "pid".into(),
        title: "t".into(),
        mechanism: "m".into(),
        ok: holds,
        privilege: Privilege::Root,
        notes: vec!["a note".into()],
        steps: vec![Step {
            id: "after".into(),
            title: "after: something".into(),
            actions: vec!["clone(CLONE_NEWPID | SIGCHLD) = 4242".into()],
            rows: vec![
                Row::new("PID of the probe", 4242, 1),
                Row::new("same", "x", "x"),
            ],
            notes: vec![],
            takeaway: None,
            columns: None,
            extra: json!({}),
            host,
            container,
        }],
        facts: vec![
            Fact::new("inside-pid-is-1", "the probe is PID 1", true, json!({})),
            Fact::new("other", "something else", holds, json!({ "seen": 7 })),
        ],
        inconclusive: vec![],
        takeaway: None,
        machine: None,
        replay: None,
    }
}

fn plain<T>(f: impl FnOnce() -> T) -> T {
    colored::control::set_override(false);
    f()
}

#[test]
fn columns_line_up_and_differences_are_marked() {
    let text = plain(|| human::step(&report(true).steps[0], 2, &human::Fmt::new(120, false)));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"step 2 · after: something"), "{text}");
    assert!(
        lines.contains(&"  $ clone(CLONE_NEWPID | SIGCHLD) = 4242"),
        "{text}"
    );
    let header = lines.iter().find(|l| l.contains("host reads")).unwrap();
    let differs = lines
        .iter()
        .find(|l| l.contains("PID of the probe"))
        .unwrap();
    let same = lines.iter().find(|l| l.contains("same")).unwrap();
    assert!(differs.starts_with("   ≠ "), "{differs:?}");
    assert!(same.starts_with("     "), "{same:?}");
    // The host column starts at the same character in every line.
    let col = |l: &str, s: &str| {
        l.chars()
            .collect::<String>()
            .find(s)
            .map(|b| l[..b].chars().count())
    };
    assert_eq!(col(header, "host reads"), col(differs, "4242"));
    assert_eq!(col(header, "host reads"), col(same, "x"));
    let container_col = col(header, "probe reads").unwrap();
    let rest: String = differs.chars().skip(container_col).collect();
    assert_eq!(rest, "1", "{text}");
}

#[test]
fn facts_show_ticks_crosses_and_what_was_observed() {
    let ok = plain(|| human::footer(&report(true), &human::Fmt::new(120, false)));
    assert!(
        ok.contains("✓ the probe is PID 1 [inside-pid-is-1]"),
        "{ok}"
    );
    assert!(ok.contains("2 of 2 facts hold"));
    let bad = plain(|| human::footer(&report(false), &human::Fmt::new(120, false)));
    assert!(
        bad.contains("✗ something else (observed: {\"seen\":7}) [other]"),
        "{bad}"
    );
    assert!(bad.contains("1 of 2 facts hold"));
    assert!(bad.contains("note: a note"));
}

#[test]
fn json_keeps_the_contract_fields() {
    let v: serde_json::Value = serde_json::from_str(&super::json(&report(true))).unwrap();
    for key in ["lesson", "ok", "privilege", "facts", "steps"] {
        assert!(!v[key].is_null(), "{key}");
    }
    assert_eq!(v["privilege"], "root");
    assert_eq!(v["facts"][0]["id"], "inside-pid-is-1");
    assert!(v["steps"][0]["host"].is_object() && v["steps"][0]["container"].is_object());
}

#[test]
fn lessons_table_says_why_a_lesson_is_blocked() {
    let rows = vec![
        (&lessons::LESSONS[0], lessons::Support::Yes, "rootless"),
        (
            &lessons::LESSONS[1],
            lessons::Support::No {
                reason: "needs root: x".into(),
                fix: "sudo nsx".into(),
            },
            "root",
        ),
    ];
    let text = plain(|| human::lessons(&rows, &human::Fmt::new(120, false)));
    // The needs column is what the caller (the doctor's verdict) says, not the lesson's
    // own declaration (mount declares it runs rootless).
    let mount = text.lines().find(|l| l.starts_with("mount")).unwrap();
    assert!(mount.contains(" root "), "{mount}");
    assert!(text.contains("(runs here)"));
    assert!(text.contains("(blocked here)"));
    assert!(text.contains("why: needs root: x"), "{text}");
    assert!(text.contains("fix: sudo nsx"), "{text}");
}
