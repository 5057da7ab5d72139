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

/// A line as the capstone compares it: blanks collapsed, and every number a `N` (PIDs,
/// counts and times change from run to run), but for an `exit status` line, whose number
/// is the point.
fn loosely(line: &str) -> String {
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.starts_with("exit status") {
        return line;
    }
    regex::Regex::new(r"\d+")
        .unwrap()
        .replace_all(&line, "N")
        .into_owned()
}

/// One command of the capstone: the line after `$ `, what is typed into it (`/ # ` lines,
/// for `-it`), and the output the chapter shows.
struct Shown {
    command: String,
    typed: Vec<String>,
    output: Vec<String>,
}

fn capstone_commands() -> Vec<Shown> {
    let page = std::fs::read_to_string(root().join("book/src/capstone.md")).unwrap();
    let block = regex::Regex::new(r"(?s)```console\n(.*?)\n```").unwrap();
    let mut all = Vec::new();
    for b in block.captures_iter(&page) {
        for line in b[1].lines() {
            if let Some(cmd) = line.strip_prefix("$ ") {
                all.push(Shown {
                    command: cmd.to_string(),
                    typed: Vec::new(),
                    output: Vec::new(),
                });
            } else if let Some(last) = all.last_mut() {
                match line.strip_prefix("/ # ") {
                    Some(typed) => last.typed.push(typed.to_string()),
                    None => last.output.push(line.to_string()),
                }
            }
        }
    }
    all
}

/// The capstone builds `docker run -it busybox /bin/sh` with `nsx run`, one flag at a
/// time. Its commands are run here as written (the image in a directory of the test's
/// instead of /tmp/bb), and each must print what the chapter shows, so a chapter whose
/// command stopped working, or whose output changed, fails.
#[test]
fn the_capstone_commands_work_as_written() {
    if !privileged("the_capstone_commands_work_as_written") {
        return;
    }
    let _cpu = cpu_heavy(); // the --cpus step times a loop
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("bb");
    let shown = capstone_commands();
    assert!(
        shown.len() >= 12,
        "the capstone shows {} commands",
        shown.len()
    );
    assert!(
        shown[0]
            .command
            .starts_with("sudo nsx rootfs busybox /tmp/bb"),
        "the capstone must make its image first"
    );
    for s in &shown {
        assert!(
            s.command.starts_with("sudo nsx "),
            "not an nsx command: {}",
            s.command
        );
        assert!(
            !s.output.is_empty(),
            "{}: the chapter shows no output",
            s.command
        );
        let line = s
            .command
            .replacen("sudo nsx ", &format!("{} ", env!("CARGO_BIN_EXE_nsx")), 1)
            .replace("/tmp/bb", &image.to_string_lossy());
        let mut cmd = if s.typed.is_empty() {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(format!("exec 2>&1; {line}"));
            c.stdin(std::process::Stdio::null());
            c
        } else {
            // -it needs a terminal: script(1) gives it one and feeds it what is typed.
            let mut c = std::process::Command::new("script");
            c.args(["-qec", &line, "/dev/null"]);
            c.stdin(std::process::Stdio::piped());
            c
        };
        cmd.env("NO_COLOR", "1")
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run the capstone command");
        if !s.typed.is_empty() {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(format!("{}\n", s.typed.join("\n")).as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let printed = format!("{}{}", stdout(&out), stderr(&out))
            .replace('\r', "")
            .replace(&*image.to_string_lossy(), "/tmp/bb");
        let printed: Vec<String> = printed.lines().map(loosely).collect();
        for want in &s.output {
            assert!(
                printed.contains(&loosely(want)),
                "{}\nprinted:\n{}\nand not the chapter's line:\n{want}",
                s.command,
                printed.join("\n")
            );
        }
    }
}
