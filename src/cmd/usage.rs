//! Usage errors clap cannot word well enough: an unknown lesson, another lesson's flag,
//! and clap's own output written without panicking.

use std::io::Write;
use std::process::ExitCode;

use crate::cmd::output::{json, out};
use nsx::error::Error;
use nsx::lessons;

/// Whether `--format json` (or `--format=json`) is on the command line, before any
/// `--` (after it the words are `nsx run`'s command): clap's own usage errors come before
/// there is a parsed [`Cli`] to ask.
pub(crate) fn json_requested() -> bool {
    json_in(std::env::args().skip(1))
}

pub(crate) fn json_in(args: impl Iterator<Item = String>) -> bool {
    let mut format_next = false;
    let mut json = false;
    for a in args {
        if a == "--" {
            break;
        }
        if format_next {
            json = a == "json";
            format_next = false;
        } else if a == "--format" {
            format_next = true;
        } else if let Some(v) = a.strip_prefix("--format=") {
            json = v == "json";
        }
    }
    json
}

/// A usage error (exit 2) as the JSON object a script reads with `--format json`: the
/// reason, and as the fix the command whose `--help` names the valid arguments.
pub(crate) fn usage_json(e: &clap::Error, reason: &str) {
    if !json_requested() {
        return;
    }
    let rendered = e.render().to_string();
    // clap's text ends with "Usage: nsx tour [OPTIONS]": the command is what precedes
    // the first placeholder.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "nsx".to_string());
    let err = Error::Usage(reason.to_string());
    let mut v = err.json_outcome();
    v["error"]["fix"] = format!("{command} --help lists the valid arguments").into();
    let _ = out(&json(&v));
}

/// clap's message without its "error: " prefix and usage lines: what was wrong.
pub(crate) fn clap_reason(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let body = text.split("\n\nUsage:").next().unwrap_or(&text);
    let body = body
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    body.trim()
        .strip_prefix("error: ")
        .unwrap_or(body.trim())
        .to_string()
}

/// `nsx lesson pdi`: a lesson that does not exist. Names the lessons it may mean (by
/// meaning, then spelling) and all of them.
pub(crate) fn unknown_lesson(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    if args.get(at + 1) != Some(word) {
        return None;
    }
    let mut why = format!("unknown lesson {word:?}");
    let maybe = lessons::suggest(word);
    if !maybe.is_empty() {
        why += &format!("; did you mean {}?", maybe.join(", "));
    }
    why += &format!("\n  the lessons: {}", lessons::ids().join(", "));
    Some(why)
}

/// `nsx lesson pid --memory 32M`: a flag clap does not know for this lesson, that
/// another lesson takes. Says which one, rather than only "unexpected argument".
pub(crate) fn misplaced_lesson_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next()?.strip_prefix("--")?;
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    let id = args.get(at + 1)?;
    lessons::find(id)?;
    let takes = |l: &lessons::Lesson| {
        l.command().get_arguments().any(|a| {
            a.get_long() == Some(flag) || a.get_all_aliases().is_some_and(|al| al.contains(&flag))
        })
    };
    let owner = lessons::LESSONS
        .iter()
        .find(|l| l.id != id && takes(l))
        .map(|l| l.id)?;
    Some(format!(
        "--{flag} belongs to the {owner} lesson (nsx lesson {owner} --{flag} ...), not to {id}; nsx lesson {id} --help lists its options"
    ))
}

/// clap's own output (--help, --version, a usage error), written without ever
/// panicking. Help that cannot be written is an error (exit 1, or 141 quietly for a
/// closed pipe, as for any output of nsx); a usage error keeps exit 2 even when standard
/// error cannot take its message.
pub(crate) fn clap_exit(e: &clap::Error) -> ExitCode {
    if let Some(text) = another_lessons_flag(e) {
        nsx::warn!("nsx: {text}");
        usage_json(e, &text);
        return ExitCode::from(nsx::error::exit::USAGE as u8);
    }
    let code = e.exit_code();
    if code == nsx::error::exit::USAGE {
        usage_json(e, &clap_reason(e));
    }
    let written = e.print().and_then(|()| {
        if code == 0 {
            std::io::stdout().flush()
        } else {
            std::io::stderr().flush()
        }
    });
    match written {
        Err(err) if code == 0 => {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                ExitCode::from(Error::BrokenPipe.exit_code() as u8)
            } else {
                nsx::warn!("nsx: write to standard output: {err}");
                ExitCode::from(nsx::error::exit::FAILURE as u8)
            }
        }
        _ => ExitCode::from(code as u8),
    }
}

/// `nsx lesson ID --flag` where the flag is another lesson's own option (`nsx lesson pid
/// --memory 32M`): the usage error says whose it is, not only that it is unexpected.
pub(crate) fn another_lessons_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next()?;
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "lesson")?;
    let id = args[at + 1..].iter().find_map(|a| lessons::find(a))?.id;
    let owner = lessons::flag_owner(flag)?.id;
    (owner != id).then(|| {
        format!("{flag} belongs to the {owner} lesson (nsx lesson {owner} {flag} ...), not to {id}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_before_any_double_dash() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(json_in(args(&["tour", "--format", "json"]).into_iter()));
        assert!(json_in(
            args(&["--format=json", "lesson", "pdi"]).into_iter()
        ));
        assert!(!json_in(args(&["--format", "human", "tour"]).into_iter()));
        assert!(!json_in(
            args(&["--format", "json", "--format", "human"]).into_iter()
        ));
        assert!(!json_in(
            args(&["run", "--", "jq", "--format", "json"]).into_iter()
        ));
        assert!(!json_in(args(&["tour"]).into_iter()));
    }
}
