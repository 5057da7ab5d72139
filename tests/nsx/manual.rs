//! Shell completions and man pages, generated from the clap definition.

use crate::common::*;

/// The subcommands `nsx --help` lists (the help subcommand aside).
fn subcommands() -> Vec<String> {
    let help = stdout(&run(&["--help"]));
    let section = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    names
}

#[test]
fn bash_completion_knows_the_lessons_and_commands() {
    let out = run(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = stdout(&out);
    assert!(script.contains("lesson"), "{script}");
    for id in lesson_ids() {
        assert!(
            script.contains(&id),
            "lesson {id} missing from the bash completion"
        );
    }
    for cmd in subcommands() {
        assert!(
            script.contains(&cmd),
            "{cmd} missing from the bash completion"
        );
    }
    // bash itself accepts it.
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .expect("bash");
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(stdout(&out).contains("nsx"), "{shell}");
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
}

#[test]
fn the_man_page_lists_every_command() {
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH nsx 1"),
        "{page}"
    );
    assert!(page.contains(".TH nsx 1"));
    for cmd in subcommands() {
        // roff escapes the dash: nsx\-doctor(1).
        assert!(
            page.contains(&format!("nsx\\-{cmd}(1)")),
            "{cmd} missing from the man page"
        );
    }
}

#[test]
fn man_out_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man1");
    let out = run(&["man", "--out-dir", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(target.join("nsx.1").is_file());
    for cmd in subcommands() {
        let page = target.join(format!("nsx-{cmd}.1"));
        assert!(page.is_file(), "{}", page.display());
        assert!(stdout(&out).contains(&page.display().to_string()));
    }
    let lesson = std::fs::read_to_string(target.join("nsx-lesson.1")).unwrap();
    for id in lesson_ids() {
        assert!(lesson.contains(&id), "{id} in nsx-lesson.1");
    }
}
