//! The book shows real runs: `book/src/runs/<machine>/<id>.html` is `nsx lesson <id>`
//! replayed from `tests/fixtures/recordings/<machine>/<id>.json` with colour, at the
//! width the snapshots use, turned into HTML by `nsx::render::html`. This test makes
//! every one again and compares, so a run in the book cannot drift from the recording
//! or the renderer. After re-recording a lesson or changing the human renderer, write
//! them anew with `scripts/book.sh` (`NSX_UPDATE_BOOK=1 cargo test --test nsx book`).

use std::path::{Path, PathBuf};

use crate::common::*;

/// The width the book's runs are rendered at: the snapshots' width, and what the book's
/// CSS fits on a page.
pub const WIDTH: usize = 100;

/// Every lesson's chapter shows its run on this machine (most readers have cgroup v2).
pub const FIRST: &str = "v2-root";

/// Lessons whose chapter also shows a run from the hybrid (cgroup v1) machine, because it
/// differs there in what the lesson is about: the cgroup lessons (v1 files, one
/// hierarchy per controller), cgroupns (v1 paths, Docker's other default), rootfs (a
/// real root file system on ext4 instead of the v2 machine's initramfs), user (run
/// without root: one id mapped, the way rootless engines start) and caps (without root
/// every capability is held in a user namespace, and the kernel still refuses what
/// belongs to the whole machine).
pub const SECOND: &[(&str, &str)] = &[
    ("user", "hybrid-rootless"),
    ("caps", "hybrid-rootless"),
    ("cgroupns", "hybrid-root"),
    ("memory", "hybrid-root"),
    ("cpu", "hybrid-root"),
    ("pids", "hybrid-root"),
    ("rootfs", "hybrid-root"),
];

/// The heading a chapter puts above a run of this machine.
pub fn label(machine: &str) -> &'static str {
    match machine {
        "v2-root" => "On a cgroup v2 machine, as root",
        "hybrid-root" => "On a cgroup v1 (hybrid) machine, as root",
        "hybrid-rootless" => "On a cgroup v1 (hybrid) machine, without root",
        other => panic!("no label for machine {other}: add one to tests/nsx/book_runs.rs"),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The runs a lesson's chapter must show: (machine, path of the HTML under book/src).
pub fn runs_of(id: &str) -> Vec<(String, String)> {
    let mut out = vec![(FIRST.to_string(), format!("runs/{FIRST}/{id}.html"))];
    for (lesson, machine) in SECOND {
        if *lesson == id {
            out.push((machine.to_string(), format!("runs/{machine}/{id}.html")));
        }
    }
    out
}

pub fn updating() -> bool {
    std::env::var("NSX_UPDATE_BOOK").as_deref() == Ok("1")
}

/// The replay, coloured, at WIDTH: the command shown above it, and its output.
fn replay(machine: &str, id: &str) -> (String, String) {
    let recording = format!("tests/fixtures/recordings/{machine}/{id}.json");
    assert!(
        root().join(&recording).is_file(),
        "{recording} is missing: record it (scripts/record-fixtures.sh {id})"
    );
    let width = WIDTH.to_string();
    let args = [
        "lesson", id, "--replay", &recording, "--color", "always", "--width", &width,
    ];
    let out = nsx()
        .args(args)
        .current_dir(root())
        .env_remove("COLUMNS")
        .output()
        .expect("run nsx");
    assert_eq!(
        out.status.code(),
        Some(0),
        "nsx {}: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    (format!("nsx {}", args.join(" ")), stdout(&out))
}

fn html(machine: &str, id: &str) -> String {
    let (command, output) = replay(machine, id);
    nsx::render::html::run_block(&command, &output)
}

/// Compare a generated file with the committed one, or write it under NSX_UPDATE_BOOK=1.
fn check_or_write(path: &Path, want: &str) -> Option<String> {
    let have = std::fs::read_to_string(path).ok();
    if have.as_deref() == Some(want) {
        return None;
    }
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, want).unwrap();
        return None;
    }
    Some(format!(
        "{} {}",
        path.strip_prefix(root()).unwrap_or(path).display(),
        if have.is_some() {
            "differs from its recording"
        } else {
            "is missing"
        }
    ))
}

#[test]
fn book_runs_are_the_recordings_replayed() {
    let mut wrong = Vec::new();
    let mut made = Vec::new();
    for id in lesson_ids() {
        for (machine, rel) in runs_of(&id) {
            let path = root().join("book/src").join(&rel);
            wrong.extend(check_or_write(&path, &html(&machine, &id)));
            made.push(path);
        }
    }
    // A run no chapter needs any more is a stale copy: it goes.
    let dirs = std::fs::read_dir(root().join("book/src/runs"))
        .into_iter()
        .flatten();
    for dir in dirs.flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if !made.contains(&f.path()) {
                if updating() {
                    std::fs::remove_file(f.path()).unwrap();
                } else {
                    wrong.push(format!("{} is shown by no chapter", f.path().display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the book's runs are out of date (scripts/book.sh writes them anew):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn book_runs_are_real_values_with_colour() {
    // What the old book showed instead of a run: the snapshots' markers and no colour.
    let pid = html(FIRST, "pid");
    assert!(pid.starts_with("<pre class=\"nsx-run\">"), "{pid}");
    assert!(!pid.contains('\u{1b}'), "an escape left in the HTML");
    assert!(!pid.contains("[PID]") && !pid.contains("[N]"), "{pid}");
    assert!(pid.contains("<span class=\"ansi-bold ansi-fg-yellow\">≠</span>"));
    // The machine it ran on, in the run itself.
    assert!(pid.contains("cgroup v2, as root"), "{pid}");
    // Real padding: the two columns of a row line up as in a terminal.
    let plain = regex::Regex::new("<[^>]+>").unwrap().replace_all(&pid, "");
    let header = plain
        .lines()
        .find(|l| l.contains("host reads /proc/"))
        .unwrap();
    let row = plain
        .lines()
        .find(|l| l.contains("PID (status Pid)"))
        .unwrap();
    assert_eq!(
        header
            .find("probe reads")
            .map(|b| header[..b].chars().count()),
        row.rfind(' ').map(|b| row[..b].chars().count() + 1),
        "{header}\n{row}"
    );
    // No line wider than the width the page is laid out for (the prompt line aside).
    for line in plain.lines().skip(1) {
        let line = line
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert!(line.chars().count() <= WIDTH, "{line}");
    }
}
