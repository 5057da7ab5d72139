//! The side-by-side text a student reads.
//!
//! Colour comes from `colored`, switched on or off once in main (--color, NO_COLOR);
//! with colour off the output is plain text and the rows that differ carry a `≠` mark, so
//! the highlight survives a snapshot, a pipe or a projector that washes colours out.

use std::fmt::Write;

use colored::Colorize;

use crate::lessons::{Lesson, Support};
use crate::report::{Fact, Privilege, Report, Step};

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

/// One step: what was done, then the two views side by side.
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
    let columns: Option<Vec<&str>> = step
        .extra
        .get("columns")
        .and_then(|c| c.as_array())
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect());
    let (host_head, cont_head, compare) = match columns.as_deref() {
        Some([a, b]) => (a.to_string(), b.to_string(), false),
        _ => (
            format!("host sees ({})", step.host.source),
            format!("container sees ({})", step.container.source),
            true,
        ),
    };
    let label_w = step.rows.iter().map(|r| width(&r.label)).max().unwrap_or(0);
    let host_w = step
        .rows
        .iter()
        .map(|r| width(&r.host))
        .chain([width(&host_head)])
        .max()
        .unwrap_or(0);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "    {}  {}  {}",
        pad("", label_w),
        pad(&host_head, host_w).underline(),
        cont_head.underline()
    );
    for row in &step.rows {
        let (mark, host, cont) = if compare && row.differs() {
            (
                "≠".yellow().bold(),
                pad(&row.host, host_w).yellow().bold(),
                row.container.yellow().bold(),
            )
        } else {
            (
                " ".normal(),
                pad(&row.host, host_w).normal(),
                row.container.normal(),
            )
        };
        let _ = writeln!(s, "  {mark} {}  {host}  {cont}", pad(&row.label, label_w));
    }
    for note in &step.notes {
        let _ = writeln!(s);
        let _ = writeln!(s, "  {} {}", "→".cyan(), note);
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
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", "facts (computed from this run)".bold());
    for fact in &report.facts {
        let _ = writeln!(s, "  {}", fact_line(fact));
    }
    let _ = writeln!(s);
    let unjudged = report
        .facts
        .iter()
        .filter(|f| f.inconclusive.is_some())
        .count();
    let mut verdict = format!("{} of {} facts hold", report.held(), report.facts.len());
    if unjudged > 0 {
        verdict += &format!("; {unjudged} could not be judged on this run (the ? lines say why)");
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
    if let Some(why) = fact.inconclusive.as_ref().filter(|_| !fact.holds) {
        return format!(
            "{} {} {} (inconclusive: {why})",
            "?".yellow().bold(),
            fact.claim,
            format!("[{}]", fact.id).dimmed(),
        );
    }
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
