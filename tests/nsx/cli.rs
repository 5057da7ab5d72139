//! The command line: help, errors, exit codes.

use crate::common::*;

#[test]
fn help() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", stdout(&out));
}

#[test]
fn lesson_help_has_an_example() {
    let out = run(&["lesson", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("lesson_help", stdout(&out));
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert_eq!(stdout(&out), format!("nsx {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_lesson_names_the_choices() {
    let out = run(&["lesson", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("unknown_lesson", stderr(&out));
}

#[test]
fn bad_colour_names_the_choices() {
    let out = run(&["--color", "purple", "lessons"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: auto, always, never]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = run(&["lesson", "pid", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--frobnicate"));
}

#[test]
fn bad_hostname_is_a_usage_error() {
    let out = run(&["lesson", "uts", "--hostname", "bad name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("letters, digits"), "{}", stderr(&out));
}

#[test]
fn lessons_lists_the_curriculum() {
    let out = run(&["lessons"]);
    assert_eq!(out.status.code(), Some(0));
    if is_root() {
        insta::assert_snapshot!("lessons", stdout(&out));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["lessons", "--format", "json"]).stdout).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..3], ["pid", "mount", "uts"]);
    for l in json.as_array().unwrap() {
        assert!(
            ["root", "rootless", "cgroup"].contains(&l["needs"].as_str().unwrap()),
            "{l}"
        );
        assert!(l["supported"]["status"] == "yes" || l["supported"]["reason"].is_string());
    }
}

#[test]
fn the_glossary_explains_the_words_and_fits_the_width() {
    let out = run(&["glossary", "--width", "60"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for term in [
        "probe:",
        "namespace inode:",
        "cgroup:",
        "pivot_root:",
        "capability:",
    ] {
        assert!(text.contains(term), "{term} not explained: {text}");
    }
    assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
    assert!(!text.contains("**"), "Markdown left: {text}");
}
