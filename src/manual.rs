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

/// Writes nsx.1 and nsx-<command>.1 for every command into `dir` (created if missing)
/// and returns the pages' file names.
pub fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).ctx("mkdir", dir.display())?;
    clap_mangen::generate_to(Cli::command(), dir).ctx("write man pages into", dir.display())?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ctx("readdir", dir.display())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n == "nsx.1" || (n.starts_with("nsx-") && n.ends_with(".1")))
        .collect();
    names.sort();
    Ok(names)
}
