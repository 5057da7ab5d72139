//! `nsx lesson ID`: one lesson, live or replayed.

use crate::cmd::lessons::list_lessons;
use crate::cmd::output::out;
use crate::cmd::present::{can_pause, pause_here, Live};
use nsx::cli::{Format, LessonArgs};
use nsx::error::{Error, Result};
use nsx::lessons;
use nsx::render;

/// Where a lesson's observations come from: measured now, or a recording.
pub(crate) enum Source<'a> {
    Live { record: Option<&'a std::path::Path> },
    Replay(&'a std::path::Path),
}

/// Runs one lesson, printing its human output as it goes (header, each step, footer).
pub(crate) fn run_one(
    lesson: &'static lessons::Lesson,
    options: serde_json::Value,
    format: Format,
    fmt: &render::human::Fmt,
    pause: bool,
    source: Source,
) -> Result<nsx::report::Report> {
    let human = format == Format::Human;
    if human {
        let head = match source {
            Source::Live { .. } => {
                render::human::header(lesson, nsx::report::Privilege::current(), fmt)
            }
            Source::Replay(file) => {
                let rec = lessons::engine::read_recording(file)?;
                render::human::replay_header(lesson, file, &rec, fmt)
            }
        };
        out(&head)?;
    }
    let mut presenter = Live {
        human,
        fmt,
        pause,
        shown: Vec::new(),
    };
    let report = match source {
        Source::Live { record } => {
            let (report, recording) = lessons::run(lesson, &options, &mut presenter)?;
            if let Some(path) = record {
                lessons::engine::write_recording(path, &recording)?;
            }
            report
        }
        Source::Replay(file) => lessons::replay(lesson, file, &mut presenter)?,
    };
    if human {
        out(&render::human::footer(&report, fmt))?;
    }
    Ok(report)
}

pub(crate) fn lesson(format: Format, fmt: &render::human::Fmt, args: &LessonArgs) -> Result<i32> {
    let Some(id) = &args.id else {
        // A bare `nsx lesson` lists what there is to run.
        return list_lessons(format, fmt);
    };
    let lesson = lessons::find(id).ok_or_else(|| Error::Usage(format!("unknown lesson {id}")))?;
    let options = lesson.options(&args.matches)?;
    let pause = can_pause(args.step, format);
    if args.explain && format == Format::Human {
        story_first(lesson, fmt, pause)?;
    }
    let source = match &args.replay {
        Some(file) => Source::Replay(file),
        None => Source::Live {
            record: args.record.as_deref(),
        },
    };
    let report = run_one(lesson, options, format, fmt, pause, source)?;
    if format == Format::Json {
        let mut value = serde_json::to_value(&report).expect("serialisable");
        if args.explain {
            value["narrative"] = serde_json::Value::String(lesson.narrative.to_string());
        }
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("serialisable")
        ))?;
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// `--explain`: the lesson's story, rendered for the terminal, before anything runs; with
/// --step the class reads it and the presenter moves on.
pub(crate) fn story_first(
    lesson: &lessons::Lesson,
    fmt: &render::human::Fmt,
    pause: bool,
) -> Result<()> {
    out(&render::markdown::render(lesson.narrative, fmt))?;
    out("\n")?;
    if pause {
        pause_here("to run the lesson")?;
        out("\n")?;
    }
    Ok(())
}
