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
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .ctx("render", "the man page")?;
    Ok(out)
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
    let man = clap_mangen::Man::new(cmd);
    let mut text = Vec::new();
    man.render(&mut text).ctx("render", man.get_filename())?;
    out.push((man.get_filename(), text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_the_ones_clap_mangen_writes() {
        let theirs = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(Cli::command(), theirs.path()).unwrap();
        let ours = tempfile::tempdir().unwrap();
        let names = write_man_pages(&ours.path().join("man1")).unwrap();
        let mut expected: Vec<String> = std::fs::read_dir(theirs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        for n in &names {
            assert_eq!(
                std::fs::read(ours.path().join("man1").join(n)).unwrap(),
                std::fs::read(theirs.path().join(n)).unwrap(),
                "{n}"
            );
        }
    }
}
