//! Shell completions and man pages, generated from the clap definition so they cannot
//! drift from the command line.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Context, Result};

/// The completion script for `shell` (lesson ids included: they are the possible values
/// of `nsx lesson`).
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "nsx", &mut out);
    out
}

/// nsx(1) in roff, with every command listed.
pub fn man_page() -> Result<Vec<u8>> {
    page(Cli::command().disable_help_subcommand(true), true)
}

/// One page in the sections man-pages(7) names: NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
/// COMMANDS, then EXAMPLES (the command's own), EXIT STATUS, ENVIRONMENT (nsx(1) only)
/// and SEE ALSO.
fn page(cmd: clap::Command, top: bool) -> Result<Vec<u8>> {
    let mut cmd = cmd;
    cmd.build();
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let what = man.get_filename();
    man.render_title(&mut out).ctx("render", &what)?;
    man.render_name_section(&mut out).ctx("render", &what)?;
    man.render_synopsis_section(&mut out).ctx("render", &what)?;
    man.render_description_section(&mut out)
        .ctx("render", &what)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).ctx("render", &what)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)
            .ctx("render", &what)?;
    }
    // The after-help text holds the examples, and nsx(1)'s its exit status and
    // environment too: each goes into its own section.
    let help = examples.unwrap_or_default();
    let mut sections: Vec<(&str, String)> = Vec::new();
    for block in help.split("\n\n") {
        let (head, body) = block.split_once('\n').unwrap_or((block, ""));
        let name = match head.trim_end_matches(':').to_ascii_lowercase().as_str() {
            "exit status" => "EXIT STATUS",
            "environment" => "ENVIRONMENT",
            h if h.starts_with("example") => "EXAMPLES",
            _ => "NOTES",
        };
        let body = if name == "NOTES" { block } else { body };
        sections.push((name, body.to_string()));
    }
    if !sections.iter().any(|(n, _)| *n == "EXIT STATUS") {
        sections.push((
            "EXIT STATUS",
            "  0 success; 1 failure (or a fact that did not hold); 2 usage error; 77 not supported here; 128+N interrupted by signal N. See nsx(1).".into(),
        ));
    }
    for (name, body) in sections {
        out.extend_from_slice(format!(".SH \"{name}\"\n").as_bytes());
        for line in body.lines() {
            out.extend_from_slice(format!(".nf\n{}\n.fi\n", roff_escape(line)).as_bytes());
        }
    }
    out.extend_from_slice(b".SH \"SEE ALSO\"\n");
    let see_also = if top {
        "namespaces(7), cgroups(7), cgroup_namespaces(7), user_namespaces(7), pid_namespaces(7), mount_namespaces(7), capabilities(7), unshare(1), nsenter(1), lsns(8), runc(8)"
    } else {
        "nsx(1), namespaces(7), cgroups(7), unshare(1), nsenter(1)"
    };
    out.extend_from_slice(format!("{see_also}\n").as_bytes());
    Ok(out)
}

/// Text safe in a roff line: backslashes doubled, a leading dot or quote escaped.
fn roff_escape(line: &str) -> String {
    let s = line.replace('\\', "\\\\");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Writes nsx.1 and nsx-<command>.1 for every command into `dir` and returns the pages'
/// file names. `dir` is made by nsx, or must be a directory (not a symlink) of the user
/// nsx runs as or who ran sudo ([`crate::fsat::output_dir`]); each page is written to a
/// new file (O_CREAT|O_EXCL|O_NOFOLLOW) and renamed over its name, so a symlink planted
/// there is replaced, never written through.
pub fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    let out = crate::fsat::output_dir(dir)?;
    let mut pages = Vec::new();
    collect_pages(Cli::command().disable_help_subcommand(true), &mut pages)?;
    let mut names = Vec::new();
    for (name, text) in pages {
        out.replace_file(&name, &text, 0o644)?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Every page clap_mangen's generate_to would write (a command and its visible
/// subcommands, recursively), rendered in memory: name and roff text.
fn collect_pages(mut cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        collect_pages(sub, out)?;
    }
    let name = clap_mangen::Man::new(cmd.clone()).get_filename();
    let top = cmd.get_bin_name().is_none_or(|b| b == "nsx") && cmd.get_name() == "nsx";
    out.push((name, page(cmd, top)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_clap_mangens_with_the_sections_man_pages_have() {
        let theirs = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(Cli::command(), theirs.path()).unwrap();
        let ours = tempfile::tempdir().unwrap();
        let names = write_man_pages(&ours.path().join("man1")).unwrap();
        let mut expected: Vec<String> = std::fs::read_dir(theirs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        expected.sort();
        assert_eq!(
            names, expected,
            "one page per command, as clap_mangen names them"
        );
        for n in &names {
            let text = std::fs::read_to_string(ours.path().join("man1").join(n)).unwrap();
            for section in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH \"EXIT STATUS\"",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(text.contains(section), "{n}: no {section}");
            }
            assert!(
                !text.contains(".SH EXTRA"),
                "{n}: examples belong under EXAMPLES"
            );
        }
        let top = std::fs::read_to_string(ours.path().join("man1/nsx.1")).unwrap();
        assert_eq!(top, String::from_utf8(man_page().unwrap()).unwrap());
        for section in [
            ".SH \"EXAMPLES\"",
            ".SH \"ENVIRONMENT\"",
            "namespaces(7)",
            "nsenter(1)",
            "NO_COLOR",
            "77",
        ] {
            assert!(top.contains(section), "nsx.1: no {section}");
        }
    }
}
