//! The side-by-side text a student reads.
//!
//! Colour comes from `colored`, switched on or off once in main (--color, NO_COLOR);
//! with colour off the output is plain text and the rows that differ carry a `≠` mark, so
//! the highlight survives a snapshot, a pipe or a projector that washes colours out.

use std::fmt::Write;

use colored::Colorize;

use crate::lessons::{Lesson, Support};
use crate::report::{Cmp, Fact, Privilege, Report, Side, Step};

pub fn header(lesson: &Lesson, privilege: Privilege) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {}",
        format!("nsx lesson {}", lesson.id).bold(),
        format!("· {}", lesson.title).bold()
    );
    let _ = writeln!(s, "  mechanism: {}", lesson.mechanism);
    let _ = writeln!(
        s,
        "  running as: {}",
        match privilege {
            Privilege::Root => "root",
            Privilege::Rootless => "an unprivileged user (rootless, in a user namespace)",
        }
    );
    let _ = writeln!(s, "  read next: {}", lesson.man);
    s
}

/// The header of a replayed lesson: what it is, and where the run was recorded.
pub fn replay_header(
    lesson: &Lesson,
    file: &std::path::Path,
    rec: &crate::lessons::engine::Recording,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {}",
        format!("nsx lesson {}", lesson.id).bold(),
        format!("· {}", lesson.title).bold()
    );
    let _ = writeln!(s, "  mechanism: {}", lesson.mechanism);
    let _ = writeln!(
        s,
        "  {} a run recorded by nsx {} on {} ({}): nothing is measured now",
        "replay of".yellow().bold(),
        rec.nsx,
        rec.env.machine,
        file.display()
    );
    let _ = writeln!(s, "  read next: {}", lesson.man);
    s
}

/// The column headings of a group of rows.
fn headings(step: &Step, side: Side) -> (String, String) {
    match (&step.columns, side) {
        (Some([a, b]), _) => (a.clone(), b.clone()),
        (None, Side::Probe) => (
            format!("host reads {}/…", step.host.source),
            format!("probe reads {}/…", step.container.source),
        ),
        (None, Side::Own) => (
            "host's own (nsx's /proc/self)".to_string(),
            "probe's own (/proc/self)".to_string(),
        ),
    }
}

/// One step: what was done, then the two views side by side, in groups: the probe read
/// by both sides, then each side's own world.
pub fn step(step: &Step, number: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{}",
        format!("step {number} · {}", step.title).bold().cyan()
    );
    for action in &step.actions {
        let _ = writeln!(s, "  {} {}", "$".dimmed(), action);
    }
    // A step may name its own two columns (the cost lesson's "median" and "bar"); then
    // the columns are not two views of one thing and a difference marks nothing.
    let compare = step.columns.is_none();
    let label = |r: &crate::report::Row| {
        if r.file.is_empty() {
            r.label.clone()
        } else {
            format!("{} ({})", r.label, r.file)
        }
    };
    let label_w = step
        .rows
        .iter()
        .map(|r| width(&label(r)))
        .max()
        .unwrap_or(0);
    let host_w = step
        .rows
        .iter()
        .map(|r| width(&r.host))
        .chain(
            [Side::Probe, Side::Own]
                .iter()
                .map(|side| width(&headings(step, *side).0)),
        )
        .max()
        .unwrap_or(0);
    let mut group: Option<Side> = None;
    let mut drift: Vec<&str> = Vec::new();
    for row in &step.rows {
        if group != Some(row.side) {
            group = Some(row.side);
            let (h, c) = headings(step, row.side);
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "     {}  {}  {}",
                pad("", label_w),
                pad(&h, host_w).underline(),
                c.underline()
            );
        }
        let key = if row.key && compare {
            "▶".bold()
        } else {
            " ".normal()
        };
        let (mark, host, cont) = match &row.cmp {
            Cmp::Differs if compare => (
                "≠".yellow().bold(),
                pad(&row.host, host_w).yellow().bold(),
                row.container.yellow().bold(),
            ),
            Cmp::Drift(why) if compare => {
                if !drift.contains(&why.as_str()) {
                    drift.push(why);
                }
                (
                    "~".dimmed(),
                    pad(&row.host, host_w).normal(),
                    row.container.normal(),
                )
            }
            _ => (
                " ".normal(),
                pad(&row.host, host_w).normal(),
                row.container.normal(),
            ),
        };
        let text = if row.key && compare {
            pad(&label(row), label_w).bold()
        } else {
            pad(&label(row), label_w).normal()
        };
        let _ = writeln!(s, "  {key}{mark} {text}  {host}  {cont}");
    }
    for why in drift {
        let _ = writeln!(s, "  {} {why}", "~".dimmed());
    }
    for note in &step.notes {
        let _ = writeln!(s);
        let _ = writeln!(s, "  {} {}", "→".cyan(), note);
    }
    if let Some(t) = &step.takeaway {
        let _ = writeln!(s);
        let _ = writeln!(s, "  {} {}", "⇒".green().bold(), t.bold());
    }
    s
}

/// Notes, the facts with ✓/✗, and the verdict.
pub fn footer(report: &Report) -> String {
    let mut s = String::new();
    for note in &report.notes {
        let _ = writeln!(s);
        let _ = writeln!(s, "  {} {}", "note:".bold(), note);
    }
    if let Some(t) = &report.takeaway {
        let _ = writeln!(s);
        let line = "─".repeat(width(t).min(76) + 2);
        let _ = writeln!(s, "  ┌{line}┐");
        let _ = writeln!(s, "  │ {} │", t.bold());
        let _ = writeln!(s, "  └{line}┘");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", "facts (computed from this run)".bold());
    for fact in &report.facts {
        let _ = writeln!(s, "  {}", fact_line(fact));
    }
    for fact in &report.undecided {
        let _ = writeln!(
            s,
            "  {} {} {} (undecided: {})",
            "?".yellow().bold(),
            fact.claim,
            format!("[{}]", fact.id).dimmed(),
            fact.undecided.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(s);
    let mut verdict = format!("{} of {} facts hold", report.held(), report.facts.len());
    if !report.undecided.is_empty() {
        verdict += &format!(", {} undecided", report.undecided.len());
    }
    let _ = writeln!(
        s,
        "{}",
        if report.ok {
            verdict.green().bold()
        } else {
            verdict.red().bold()
        }
    );
    if !report.ok {
        let _ = writeln!(s, "the kernel did not behave as the lesson expects: the ✗ lines say what was observed instead");
    }
    s
}

fn fact_line(fact: &Fact) -> String {
    if fact.holds {
        format!(
            "{} {} {}",
            "✓".green().bold(),
            fact.claim,
            format!("[{}]", fact.id).dimmed()
        )
    } else {
        format!(
            "{} {} {} (observed: {})",
            "✗".red().bold(),
            fact.claim.red(),
            format!("[{}]", fact.id).dimmed(),
            fact.observed
        )
    }
}

/// The whole report at once (used by tests and by the book).
pub fn report(lesson: &Lesson, report: &Report) -> String {
    let mut s = header(lesson, report.privilege);
    for (i, st) in report.steps.iter().enumerate() {
        s.push_str(&step(st, i + 1));
    }
    s.push_str(&footer(report));
    s
}

/// A replayed report at once, as `nsx lesson <id> --replay FILE` prints it.
pub fn replayed(
    lesson: &Lesson,
    file: &std::path::Path,
    rec: &crate::lessons::engine::Recording,
    report: &Report,
) -> String {
    let mut s = replay_header(lesson, file, rec);
    for (i, st) in report.steps.iter().enumerate() {
        s.push_str(&step(st, i + 1));
    }
    s.push_str(&footer(report));
    s
}

/// `nsx lessons`: every lesson in curriculum order and whether it runs here.
pub fn lessons(rows: &[(&Lesson, Support)]) -> String {
    let mut s = String::new();
    let id_w = rows
        .iter()
        .map(|(l, _)| width(l.id))
        .max()
        .unwrap_or(2)
        .max(2);
    let title_w = rows.iter().map(|(l, _)| width(l.title)).max().unwrap_or(5);
    let _ = writeln!(
        s,
        "{}  {}  {:<8}  {}",
        pad("id", id_w).bold(),
        pad("lesson", title_w).bold(),
        "needs".bold(),
        "here".bold()
    );
    for (lesson, support) in rows {
        let needs = match lesson.rootless {
            crate::lessons::Rootless::Yes => "rootless",
            crate::lessons::Rootless::No(_) => "root",
        };
        let here = match support {
            Support::Yes => "runs".green().to_string(),
            Support::No { reason, fix } => format!("{}: {reason} (fix: {fix})", "blocked".red()),
        };
        let _ = writeln!(
            s,
            "{}  {}  {needs:<8}  {here}",
            pad(lesson.id, id_w),
            pad(lesson.title, title_w)
        );
        let _ = writeln!(s, "{}  {}", pad("", id_w), lesson.mechanism.dimmed());
    }
    s
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    let n = width(s);
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// One line after a lesson in a tour: what it showed, from its own facts.
pub fn recap(report: &Report) -> String {
    let key = report
        .facts
        .iter()
        .find(|f| !f.id.starts_with("before"))
        .or(report.facts.first());
    let mut s = String::new();
    let _ = writeln!(s);
    if let Some(f) = key {
        let mark = if f.holds {
            "✓".green().bold()
        } else {
            "✗".red().bold()
        };
        let _ = writeln!(
            s,
            "{} {} {mark} {}",
            "recap".bold(),
            format!("[{}]", report.lesson).bold(),
            f.claim
        );
    }
    let _ = writeln!(s, "{}", "─".repeat(72).dimmed());
    s
}

pub fn tour_skipped(lesson: &Lesson, reason: &str, fix: &str) -> String {
    format!(
        "\n{} {}: {reason}\n  fix: {fix}\n{}\n",
        "skipped".yellow().bold(),
        lesson.id.bold(),
        "─".repeat(72).dimmed()
    )
}

/// One lesson's line in the tour's summary.
pub struct TourRow {
    pub lesson: &'static Lesson,
    pub report: Option<Report>,
    pub millis: f64,
    pub skipped: Option<String>,
}

pub fn tour_summary(rows: &[TourRow]) -> String {
    let mut s = String::new();
    let id_w = rows
        .iter()
        .map(|r| width(r.lesson.id))
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", "tour summary".bold());
    let _ = writeln!(
        s,
        "  {}  {:>11}  {:>9}",
        pad("lesson", id_w),
        "facts held",
        "time"
    );
    let mut total = 0.0;
    for row in rows {
        match (&row.report, &row.skipped) {
            (Some(report), _) => {
                total += row.millis;
                let held = format!("{}/{}", report.held(), report.facts.len());
                let held = if report.ok { held.green() } else { held.red() };
                let _ = writeln!(
                    s,
                    "  {}  {:>11}  {:>6.0} ms",
                    pad(row.lesson.id, id_w),
                    held,
                    row.millis
                );
            }
            (None, reason) => {
                let _ = writeln!(
                    s,
                    "  {}  {:>11}  {}",
                    pad(row.lesson.id, id_w),
                    "skipped".yellow(),
                    reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    let ran = rows.iter().filter(|r| r.report.is_some()).count();
    let ok = rows
        .iter()
        .filter(|r| r.report.as_ref().is_some_and(|x| x.ok))
        .count();
    let _ = writeln!(
        s,
        "  {ok} of {ran} lessons held every fact, in {total:.0} ms of lessons"
    );
    s
}
