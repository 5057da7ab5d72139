//! The book cannot drift from the program: every lesson has a chapter with its story, its
//! recorded runs (book_runs.rs keeps them true) and its sections, and every
//! `{{#include}}` and image names a file that exists.

use std::path::{Path, PathBuf};

use crate::book_runs;
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

/// Where a lesson's chapter cuts its story (lessons/<id>.md, 1-based lines): the story
/// up to its "What to watch" comes first, then the chapter's "Run it" with the recorded
/// runs; the rest of "What to watch" (and the story's sections after it) go under "What
/// you see"; the story's "Try it yourself" goes under "Try it by hand". A story without
/// "What to watch" (cpu) is cut at the first section after "What nsx does", heading
/// included. The three includes, in order.
fn story_includes(id: &str) -> Vec<String> {
    let story = std::fs::read_to_string(root().join(format!("lessons/{id}.md"))).unwrap();
    let lines: Vec<&str> = story.lines().collect();
    let heading = |prefix: &str, after: usize| {
        (after..lines.len())
            .find(|&i| lines[i].starts_with(prefix))
            .map(|i| i + 1)
    };
    let (watch, mid) = match heading("## What to watch", 0) {
        Some(w) => (w, w + 1),
        None => {
            let does = heading("## What nsx does", 0)
                .unwrap_or_else(|| panic!("lessons/{id}.md has no \"## What nsx does\""));
            let next = heading("## ", does).unwrap_or_else(|| {
                panic!("lessons/{id}.md has no section after \"What nsx does\"")
            });
            (next, next)
        }
    };
    let try_it = heading("## Try it yourself", watch)
        .unwrap_or_else(|| panic!("lessons/{id}.md has no \"## Try it yourself\""));
    let story = format!("../../../lessons/{id}.md");
    vec![
        format!("{{{{#include {story}::{}}}}}", watch - 1),
        format!("{{{{#include {story}:{mid}:{}}}}}", try_it - 1),
        format!("{{{{#include {story}:{}:}}}}", try_it + 1),
    ]
}

/// A lesson chapter's sections, in order after its story (the included title): run it,
/// what you see, why, try it by hand, exercises.
const SECTIONS: &[&str] = &[
    "## Run it",
    "## What you see",
    "## Why",
    "## Try it by hand",
    "## Exercises",
];

/// The chapter with every include of its story expanded, as mdBook will see it.
fn expanded(id: &str, chapter: &str) -> String {
    let story = std::fs::read_to_string(root().join(format!("lessons/{id}.md"))).unwrap();
    let lines: Vec<&str> = story.lines().collect();
    let re = regex::Regex::new(&format!(
        r"\{{\{{#include \.\./\.\./\.\./lessons/{id}\.md:(\d*):(\d*)\}}\}}"
    ))
    .unwrap();
    re.replace_all(chapter, |c: &regex::Captures| {
        let from = c[1].parse::<usize>().unwrap_or(1);
        let to = c[2].parse::<usize>().unwrap_or(lines.len());
        lines[from - 1..to].join("\n")
    })
    .into_owned()
}

#[test]
fn every_lesson_has_a_chapter_with_its_story_its_runs_and_its_sections() {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    let story_re =
        regex::Regex::new(r"\{\{#include \.\./\.\./\.\./lessons/[a-z]+\.md[^}]*\}\}").unwrap();
    let mut wrong = Vec::new();
    for id in lesson_ids() {
        let chapter = format!("lessons/{id}.md");
        assert!(
            summary.contains(&format!("]({chapter})")),
            "SUMMARY.md has no chapter for lesson {id}"
        );
        let path = root().join("book/src").join(&chapter);
        let mut text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("book/src/{chapter} is missing"));
        // The story, cut where it should be: the ranges move when a story is edited,
        // and scripts/book.sh writes them anew.
        let want = story_includes(&id);
        let have: Vec<String> = story_re
            .find_iter(&text)
            .map(|m| m.as_str().to_string())
            .collect();
        assert_eq!(
            have.len(),
            3,
            "{chapter}: the story must be included in three parts, not {have:?}"
        );
        if have != want {
            if book_runs::updating() {
                let mut parts = want.iter();
                text = story_re
                    .replace_all(&text, |_: &regex::Captures| parts.next().unwrap().clone())
                    .into_owned();
                std::fs::write(&path, &text).unwrap();
            } else {
                wrong.push(format!(
                    "{chapter} includes {have:?}, its story now needs {want:?}"
                ));
            }
        }
        // Each run it must show, under the heading that names its machine.
        for (machine, rel) in book_runs::runs_of(&id) {
            let block = format!(
                "### {}\n\n{{{{#include ../{rel}}}}}",
                book_runs::label(&machine)
            );
            if !text.contains(&block) {
                wrong.push(format!("{chapter} does not show {rel} as:\n{block}"));
            }
        }
        // The sections, in order.
        let full = expanded(&id, &text);
        let Some(mut at) = full.find(&format!("# {id}: ")) else {
            wrong.push(format!("{chapter} does not start with its story's title"));
            continue;
        };
        for section in SECTIONS {
            match full[at..].find(&format!("\n{section}")) {
                Some(i) => at += i + 1,
                None => wrong.push(format!("{chapter}: no \"{section}\" after the one before")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_book_shows_runs_not_snapshots() {
    // The snapshots replace values with markers and collapse padding: they are for the
    // tests. The book shows the recorded runs (book_runs.rs keeps those true).
    for (chapter, target, _) in includes() {
        assert!(
            target.extension().is_none_or(|x| x != "snap"),
            "{} includes the snapshot {}",
            chapter.display(),
            target.display()
        );
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

/// The sidebar names each lesson by its story's title ("pid: the probe becomes PID 1"),
/// not by its bare id, and "Reading the output" comes before the first lesson needs it.
#[test]
fn the_sidebar_names_the_lessons_and_reading_the_output_comes_first() {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    let ids = lesson_ids();
    for id in &ids {
        let story = std::fs::read_to_string(root().join(format!("lessons/{id}.md"))).unwrap();
        let title = story.lines().next().unwrap().trim_start_matches("# ");
        assert!(
            summary.contains(&format!("[{title}](lessons/{id}.md)")),
            "SUMMARY.md does not name lessons/{id}.md \"{title}\""
        );
    }
    let reading = summary
        .find("(reading-output.md)")
        .expect("no Reading the output");
    let first = summary
        .find(&format!("(lessons/{}.md)", ids[0]))
        .expect("no first lesson");
    assert!(
        reading < first,
        "Reading the output comes after lesson {}",
        ids[0]
    );
}

/// "Reading the output" quotes a real run: every line of its text blocks is a line of the
/// pid lesson's v2 replay (but for the two it says are not: a live run's `running as`
/// and the elision of the other facts), so it changes when the output does.
#[test]
fn reading_the_output_quotes_the_output_as_it_is() {
    let page = std::fs::read_to_string(root().join("book/src/reading-output.md")).unwrap();
    let out = nsx()
        .args([
            "lesson",
            "pid",
            "--replay",
            "tests/fixtures/recordings/v2-root/pid.json",
            "--color",
            "never",
            "--width",
            "100",
        ])
        .current_dir(root())
        .env_remove("COLUMNS")
        .output()
        .expect("run nsx");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replay = stdout(&out);
    let lines: Vec<&str> = replay.lines().collect();
    let block = regex::Regex::new(r"(?s)```text\n(.*?)\n```").unwrap();
    let mut quoted = 0;
    for b in block.captures_iter(&page) {
        for line in b[1].lines() {
            if line.is_empty() || line == "  running as: root" || line == "  (… eight more)" {
                continue;
            }
            assert!(
                lines.contains(&line),
                "reading-output.md quotes a line nsx does not print:\n{line}"
            );
            quoted += 1;
        }
    }
    assert!(quoted > 20, "reading-output.md quotes only {quoted} lines");
}

/// The diagrams the chapters need exist, each is referenced from a chapter, and each is
/// accessible: a `<title>` and a `<desc>` a screen reader reads instead of the picture.
#[test]
fn every_diagram_is_referenced_and_described() {
    let dir = root().join("book/src/images");
    let mut svgs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    svgs.sort();
    for needed in [
        "veth-pair.svg",
        "mount-propagation.svg",
        "uid-map.svg",
        "overlay-layers.svg",
        "cgroup-tree.svg",
        "two-views.svg",
    ] {
        assert!(
            svgs.iter().any(|s| s == needed),
            "book/src/images/{needed} is missing"
        );
    }
    let text: String = chapters()
        .iter()
        .map(|c| std::fs::read_to_string(c).unwrap())
        .collect();
    for svg in &svgs {
        assert!(
            text.contains(&format!("images/{svg})")),
            "images/{svg} is shown by no chapter"
        );
        let body = std::fs::read_to_string(dir.join(svg)).unwrap();
        for tag in ["<title", "<desc"] {
            assert!(body.contains(tag), "images/{svg} has no {tag}> element");
        }
    }
}
