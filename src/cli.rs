//! The command line, defined once with clap's derive API.

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lessons;

#[derive(Debug, Parser)]
#[command(
    name = "nsx",
    version,
    about = "See how Linux containers work, one mechanism at a time",
    long_about = "nsx switches on one Linux isolation mechanism at a time (a namespace, a cgroup limit, a root filesystem), runs a probe inside, and shows what the host and the container each see, read from /proc, side by side. Every teaching point is a fact checked against this run.",
    after_help = "Examples:\n  nsx lessons                   list the lessons and whether they run here\n  sudo nsx lesson pid           run the PID-namespace lesson\n  nsx lesson uts --explain      read the lesson's story first, then run it\n  nsx lesson mount --format json"
)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// When to use colour (NO_COLOR in the environment means never, unless --color=always).
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every lesson in curriculum order and whether this machine can run it.
    #[command(after_help = "Example:\n  nsx lessons --format json")]
    Lessons,
    /// Run one lesson: before and after, host and container side by side, then the facts.
    #[command(
        after_help = "Examples:\n  sudo nsx lesson pid\n  nsx lesson uts --hostname box1 --step\n  nsx lesson mount --format json | jq .ok"
    )]
    Lesson(LessonArgs),
    /// Run every lesson this machine supports, in curriculum order, then a summary.
    #[command(
        after_help = "Examples:\n  sudo nsx tour --step          a live demo: Enter moves on\n  nsx tour --skip cpu,cost      the quick tour\n  nsx tour --format json | jq '.[] | {lesson, ok}'"
    )]
    Tour(TourArgs),
}

#[derive(Debug, Args)]
pub struct TourArgs {
    /// Wait for Enter between steps and between lessons (ignored when stdin is not a terminal).
    #[arg(long)]
    pub step: bool,

    /// Lessons to leave out, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub skip: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LessonArgs {
    /// The lesson to run.
    #[arg(value_parser = PossibleValuesParser::new(lessons::ids()))]
    pub id: String,

    /// Print the lesson's story (lessons/<id>.md) before running it.
    #[arg(long)]
    pub explain: bool,

    /// Wait for Enter between steps, for live demos (ignored when stdin is not a terminal).
    #[arg(long)]
    pub step: bool,

    /// The hostname the uts lesson sets inside its namespace.
    #[arg(long, default_value = "nsx-demo", value_parser = parse_hostname)]
    pub hostname: String,
}

/// sethostname(2) takes at most HOST_NAME_MAX (64) bytes; keep it printable.
fn parse_hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "expected 1 to 64 characters of letters, digits, '-' and '.', not starting with '-'"
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(parse_hostname("box-1.lab").is_ok());
        for bad in ["", "-x", "a b", &"x".repeat(65)] {
            assert!(parse_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
