//! Random command lines: nsx never panics and always exits 0, 1, 2 or 77. Lessons are
//! only ever asked for --help here, so the runs stay fast and change nothing.

use proptest::prelude::*;

use crate::common::*;

const TOKENS: &[&str] = &[
    "lessons",
    "lesson",
    "doctor",
    "inspect",
    "ps",
    "completions",
    "man",
    "help",
    "pid",
    "mount",
    "uts",
    "nope",
    "bash",
    "zsh",
    "tcsh",
    "--format",
    "json",
    "human",
    "xml",
    "--color",
    "never",
    "always",
    "--hostname",
    "a b",
    "--explain",
    "--step",
    "--help",
    "-h",
    "--version",
    "-V",
    "1",
    "0",
    "-1",
    "999999999",
    "abc",
    "--",
    "-",
    "--out-dir",
    "",
];

fn argv() -> impl Strategy<Value = Vec<String>> {
    let token = prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ];
    proptest::collection::vec(token, 0..6)
}

/// Whether running `args` could do more than print and read: a lesson runs probes, and
/// `man --out-dir` writes files. Decided by nsx's own parser, as the binary will.
fn acts(args: &[String]) -> bool {
    use clap::Parser;
    use nsx::cli::{Cli, Command};
    let argv = std::iter::once("nsx".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => match cli.command {
            Command::Lesson(_) => true,
            Command::Man(m) => m.out_dir.is_some(),
            _ => false,
        },
        // Usage errors, --help and --version print and exit.
        Err(_) => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_command_lines_exit_cleanly(args in argv()) {
        prop_assume!(!acts(&args));
        let out = nsx().args(&args).output().unwrap();
        let code = out.status.code();
        prop_assert!(
            matches!(code, Some(0 | 1 | 2 | 77)),
            "nsx {:?}: {:?}\n{}", args, out.status, stderr(&out)
        );
        prop_assert!(!stderr(&out).contains("panicked"), "nsx {:?}: {}", args, stderr(&out));
    }
}
