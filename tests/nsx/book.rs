//! The book cannot drift from the program: every lesson has a chapter, every
//! `{{#include}}` names a file that exists, and the included outputs are the very files
//! the snapshot tests pin, with the header the includes skip.

use std::path::{Path, PathBuf};

use crate::common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chapters() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("book/src"), &mut out);
    out
}

/// (chapter, included path, line range) for every include in the book.
fn includes() -> Vec<(PathBuf, PathBuf, Option<String>)> {
    let re = regex::Regex::new(r"\{\{#include ([^}:\s]+)(?::([^}\s]*))?\}\}").unwrap();
    let mut out = Vec::new();
    for ch in chapters() {
        let text = std::fs::read_to_string(&ch).unwrap();
        for c in re.captures_iter(&text) {
            let target = ch.parent().unwrap().join(&c[1]);
            out.push((ch.clone(), target, c.get(2).map(|m| m.as_str().to_string())));
        }
    }
    out
}

#[test]
fn every_include_names_a_file_that_exists() {
    let all = includes();
    assert!(!all.is_empty());
    for (chapter, target, _) in all {
        assert!(
            target.is_file(),
            "{} includes {}, which does not exist",
            chapter.display(),
            target.display()
        );
    }
}

#[test]
fn every_lesson_has_a_chapter_with_its_story_and_its_pinned_output() {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    let lessons: serde_json::Value =
        serde_json::from_slice(&run(&["lessons", "--format", "json"]).stdout).unwrap();
    for l in lessons.as_array().unwrap() {
        let id = l["id"].as_str().unwrap();
        let chapter = format!("lessons/{id}.md");
        assert!(
            summary.contains(&format!("]({chapter})")),
            "SUMMARY.md has no chapter for lesson {id}"
        );
        let text = std::fs::read_to_string(root().join("book/src").join(&chapter))
            .unwrap_or_else(|_| panic!("book/src/{chapter} is missing"));
        assert!(
            text.contains(&format!("{{{{#include ../../../lessons/{id}.md}}}}")),
            "{chapter}: story not included"
        );
        // A real recorded run, replayed (the unit tests keep the snapshot true).
        let snap =
            format!("src/lessons/snapshots/nsx__lessons__fixture_tests__replay_v2-root_{id}.snap");
        assert!(
            text.contains(&format!("{{{{#include ../../../{snap}:5:}}}}")),
            "{chapter}: pinned output not included"
        );
    }
}

#[test]
fn included_snapshots_start_their_output_on_line_five() {
    for (chapter, target, range) in includes() {
        if target.extension().is_some_and(|x| x == "snap") {
            assert_eq!(range.as_deref(), Some("5:"), "{}", chapter.display());
            let text = std::fs::read_to_string(&target).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[0], "---", "{}", target.display());
            assert_eq!(
                lines[3],
                "---",
                "{}: insta's header is no longer 4 lines",
                target.display()
            );
            assert!(
                lines[4].starts_with("nsx lesson "),
                "{}: line 5 is not the output",
                target.display()
            );
        }
    }
}

#[test]
fn every_chapter_is_in_the_summary_and_every_image_exists() {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    let img = regex::Regex::new(r"!\[[^\]]*\]\(([^)]+)\)").unwrap();
    for ch in chapters() {
        let rel = ch
            .strip_prefix(root().join("book/src"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("]({rel})")),
                "{rel} is not in SUMMARY.md"
            );
        }
        let text = std::fs::read_to_string(&ch).unwrap();
        for c in img.captures_iter(&text) {
            assert!(
                ch.parent().unwrap().join(&c[1]).is_file(),
                "{rel}: image {} is missing",
                &c[1]
            );
        }
    }
}

/// The README's lesson table lists every lesson, in curriculum order: it is written by
/// hand, so a test holds it to the registry (`nsx lessons`).
#[test]
fn the_readme_table_lists_every_lesson_in_order() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let row = regex::Regex::new(r"(?m)^\| `([a-z]+)` \|").unwrap();
    let table: Vec<String> = row
        .captures_iter(&readme)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(table, lesson_ids(), "README.md's lesson table");
}
