//! Usage errors clap cannot word well enough: an unknown lesson, another lesson's flag,
//! and clap's own output written without panicking.

use std::io::Write;
use std::process::ExitCode;

use nsx::error::Error;
use nsx::lessons;

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
        return ExitCode::from(nsx::error::exit::USAGE as u8);
    }
    let code = e.exit_code();
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
