//! `nsx tour`: every lesson this machine supports, a recap after each, a summary.

use crate::cmd::lesson::{run_one, Source};
use crate::cmd::output::out;
use crate::cmd::present::{can_pause, pause_here};
use nsx::cli::{Format, TourArgs};
use nsx::error::Result;
use nsx::lessons;
use nsx::render;

/// Every supported lesson in curriculum order, a recap after each, a summary at the end.
pub(crate) fn tour(format: Format, fmt: &render::human::Fmt, args: &TourArgs) -> Result<i32> {
    let pause = can_pause(args.step, format);
    let human = format == Format::Human;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let start = args
        .from
        .as_deref()
        .and_then(|id| lessons::LESSONS.iter().position(|l| l.id == id))
        .unwrap_or(0);
    for lesson in lessons::LESSONS[start..]
        .iter()
        .filter(|l| !args.skip.iter().any(|s| s == l.id))
        .filter(|l| args.only.is_empty() || args.only.iter().any(|s| s == l.id))
    {
        if let lessons::Support::No { reason, fix } = lesson.support() {
            if human {
                out(&render::human::tour_skipped(lesson, &reason, &fix, fmt))?;
            }
            json.push(serde_json::json!({ "lesson": lesson.id, "skipped": true, "reason": reason, "fix": fix }));
            rows.push(render::human::TourRow {
                lesson,
                report: None,
                millis: 0.0,
                skipped: Some(reason),
            });
            continue;
        }
        let started = std::time::Instant::now();
        let report = run_one(
            lesson,
            lesson.default_options()?,
            format,
            fmt,
            pause,
            Source::Live { record: None },
        )?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        if human {
            out(&render::human::recap(&report, fmt))?;
            if pause {
                pause_here("for the next lesson")?;
            }
        }
        json.push(serde_json::to_value(&report).expect("serialisable"));
        rows.push(render::human::TourRow {
            lesson,
            report: Some(report),
            millis,
            skipped: None,
        });
    }
    match format {
        Format::Human => out(&render::human::tour_summary(&rows, fmt))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("serialisable")
        ))?,
    }
    let all_ok = rows
        .iter()
        .all(|r| r.report.as_ref().is_none_or(|rep| rep.ok));
    Ok(if all_ok { 0 } else { 1 })
}
