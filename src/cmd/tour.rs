//! `nsx tour`: every lesson this machine supports, a recap after each, a summary.

use crate::cmd::lesson::{run_one, story_first, Source};
use crate::cmd::output::{out, STDOUT_WRITE};
use crate::cmd::present::{can_pause, pause_here};
use nsx::cli::{Format, TourArgs};
use nsx::error::{Error, Result};
use nsx::lessons;
use nsx::render;
use nsx::render::human::{TourResult, TourRow};

/// Every lesson in curriculum order, a recap after each, a summary at the end. A lesson
/// this machine cannot run is recorded as skipped, with the reason and the fix, whether
/// the check before it refused it or the lesson itself found out while running; a lesson
/// that fails with an error is recorded as failed and the tour goes on. Only an
/// interruption (a signal, q at a pause, a closed output) ends it early.
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
        let mut millis = 0.0;
        // The same check the lesson makes first (lessons::run): asked here too, so that a
        // lesson refused up front prints no header.
        let refused = match lesson.support() {
            lessons::Support::No { reason, fix } => Some(("before", reason, fix)),
            lessons::Support::Yes => None,
        };
        let outcome = match refused {
            Some(r) => Err(r),
            None => {
                if args.explain && human {
                    story_first(lesson, fmt, pause)?;
                }
                let started = std::time::Instant::now();
                let ran = run_one(
                    lesson,
                    lesson.default_options()?,
                    format,
                    fmt,
                    pause,
                    Source::Live { record: None },
                );
                millis = started.elapsed().as_secs_f64() * 1000.0;
                match tour_outcome(ran)? {
                    TourOutcome::Ran(report) => Ok(report),
                    TourOutcome::Refused { reason, fix } => Err(("during", reason, fix)),
                    TourOutcome::Failed(e) => {
                        // Recorded, said on standard error as for a lesson on its own,
                        // and the tour goes on: the lessons after it may well run.
                        nsx::warn!("nsx: lesson {}: {e}", lesson.id);
                        if human {
                            out(&render::human::tour_failed(lesson, &e, fmt))?;
                        }
                        json.push(serde_json::json!({
                            "lesson": lesson.id,
                            "verdict": "failed",
                            "ok": false,
                            "error": e.json(),
                        }));
                        rows.push(TourRow {
                            lesson,
                            result: TourResult::Failed(e.to_string()),
                            millis,
                        });
                        continue;
                    }
                }
            }
        };
        let result = match outcome {
            Ok(report) => {
                if human {
                    out(&render::human::recap(&report, fmt))?;
                    if pause {
                        pause_here("for the next lesson")?;
                    }
                }
                let mut value = serde_json::to_value(&report).expect("serialisable");
                value["verdict"] = if report.ok { "held" } else { "failed" }.into();
                if args.explain {
                    value["narrative"] = lesson.narrative.into();
                }
                json.push(value);
                TourResult::Ran(Box::new(report))
            }
            Err((when, reason, fix)) => {
                if human {
                    out(&render::human::tour_skipped(lesson, &reason, &fix, fmt))?;
                }
                json.push(serde_json::json!({
                    "lesson": lesson.id,
                    "verdict": "skipped",
                    "skipped": true,
                    "refused": when,
                    "reason": reason,
                    "fix": fix,
                }));
                TourResult::Skipped(reason)
            }
        };
        rows.push(TourRow {
            lesson,
            result,
            millis,
        });
    }
    match format {
        Format::Human => out(&render::human::tour_summary(&rows, fmt))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json).expect("serialisable")
        ))?,
    }
    Ok(tour_exit(&rows))
}

/// What became of one lesson of the tour that was started.
#[derive(Debug)]
pub(crate) enum TourOutcome {
    Ran(nsx::report::Report),
    /// The lesson found out while running that this machine cannot run it.
    Refused {
        reason: String,
        fix: String,
    },
    /// It failed with an error: recorded, and the tour goes on.
    Failed(Error),
}

/// Sorts a lesson's result for the tour. Only what ends the tour itself comes back as
/// an error: a signal, q at a pause, standard output gone.
pub(crate) fn tour_outcome(ran: Result<nsx::report::Report>) -> Result<TourOutcome> {
    match ran {
        Ok(report) => Ok(TourOutcome::Ran(report)),
        Err(Error::Unsupported { reason, fix }) => Ok(TourOutcome::Refused { reason, fix }),
        Err(e @ (Error::Interrupted(_) | Error::Quit | Error::BrokenPipe)) => Err(e),
        Err(Error::Other(m)) if m.starts_with(STDOUT_WRITE) => Err(Error::Other(m)),
        Err(e) => Ok(TourOutcome::Failed(e)),
    }
}

/// 0 when every lesson that ran held (skipped ones aside), 1 otherwise.
pub(crate) fn tour_exit(rows: &[TourRow]) -> i32 {
    let all_ok = rows.iter().filter(|r| r.ran()).all(TourRow::held);
    if all_ok {
        nsx::error::exit::OK
    } else {
        nsx::error::exit::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsx::error::op;

    #[test]
    fn a_tour_records_refusals_and_failures_and_stops_only_when_interrupted() {
        let refused = tour_outcome(Err(Error::unsupported("read-only", "the fix")));
        assert!(
            matches!(&refused, Ok(TourOutcome::Refused { reason, fix }) if reason == "read-only" && fix == "the fix"),
            "{refused:?}"
        );
        let failed = tour_outcome(Err(nsx::error::sys(
            op::MKDIR,
            "/sys/fs/cgroup/x",
            nix::errno::Errno::EACCES,
        )));
        assert!(matches!(failed, Ok(TourOutcome::Failed(_))), "{failed:?}");
        let other = tour_outcome(Err(Error::Other("the probe said no".into())));
        assert!(matches!(other, Ok(TourOutcome::Failed(_))), "{other:?}");
        for end in [
            Error::Interrupted(libc::SIGINT),
            Error::Quit,
            Error::BrokenPipe,
            Error::Other(format!("{STDOUT_WRITE}: No space left on device")),
        ] {
            assert!(tour_outcome(Err(end)).is_err());
        }
    }

    #[test]
    fn the_tour_exits_0_when_every_lesson_that_ran_held() {
        let lesson = &nsx::lessons::LESSONS[0];
        let row = |skipped: bool, failed: bool| TourRow {
            lesson,
            result: match (skipped, failed) {
                (true, _) => TourResult::Skipped("no".to_string()),
                (_, true) => TourResult::Failed("boom".to_string()),
                _ => unreachable!(),
            },
            millis: 0.0,
        };
        assert_eq!(tour_exit(&[row(true, false), row(true, false)]), 0);
        assert_eq!(tour_exit(&[row(true, false), row(false, true)]), 1);
    }
}
