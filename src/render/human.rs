//! The side-by-side text a student reads, fitted to the terminal's width.
//!
//! Colour comes from `colored`, switched on or off once in main (--color, NO_COLOR);
//! with colour off the output is plain text and the rows that differ carry a `≠` mark, so
//! the highlight survives a snapshot, a pipe or a projector that washes colours out.
//! Every function takes a [`Fmt`]: no line is wider than `fmt.width`. Text is wrapped and
//! padded plain, then coloured, so escape codes never count towards a width.

use std::fmt::Write;

use colored::{ColoredString, Colorize};

pub use super::text::Fmt;
use super::text::{pad, shorten_middle, width, wrap};
use crate::lessons::{Lesson, Support};
use crate::report::{Cmp, Fact, Privilege, Report, Row, Side, Step, Val};

/// Writes `text` wrapped at the width, the first line after `first`, the rest indented
/// like it; `style` colours each line's text (not its prefix).
fn para(
    s: &mut String,
    fmt: &Fmt,
    first: &str,
    rest: &str,
    text: &str,
    style: fn(&str) -> ColoredString,
) {
    for (i, line) in wrap(text, fmt.width, first, rest).into_iter().enumerate() {
        let prefix = if i == 0 { first } else { rest };
        let body = line.strip_prefix(prefix).unwrap_or(&line);
        let _ = writeln!(s, "{prefix}{}", style(body));
    }
}

fn plain(t: &str) -> ColoredString {
    t.normal()
}

fn bold(t: &str) -> ColoredString {
    t.bold()
}

fn title(lesson: &Lesson) -> String {
    format!("nsx lesson {} · {}", lesson.id, lesson.title)
}

pub fn header(lesson: &Lesson, privilege: Privilege, fmt: &Fmt) -> String {
    let mut s = String::new();
    para(&mut s, fmt, "", "  ", &title(lesson), bold);
    para(
        &mut s,
        fmt,
        "  mechanism: ",
        "    ",
        lesson.mechanism,
        plain,
    );
    if !fmt.compact {
        para(
            &mut s,
            fmt,
            "  the probe: ",
            "    ",
            "a process nsx starts inside the mechanism; the host reads it through /proc/<pid>, the probe reads itself through /proc/self",
            plain,
        );
    }
    let who = match privilege {
        Privilege::Root => "root",
        Privilege::Rootless => "an unprivileged user (rootless, in a user namespace)",
    };
    para(&mut s, fmt, "  running as: ", "    ", who, plain);
    if !fmt.compact {
        para(&mut s, fmt, "  read next: ", "    ", lesson.man, plain);
    }
    s
}

/// The header of a replayed lesson: what it is, and where the run was recorded.
pub fn replay_header(
    lesson: &Lesson,
    file: &std::path::Path,
    rec: &crate::lessons::engine::Recording,
    fmt: &Fmt,
) -> String {
    let mut s = String::new();
    para(&mut s, fmt, "", "  ", &title(lesson), bold);
    para(
        &mut s,
        fmt,
        "  mechanism: ",
        "    ",
        lesson.mechanism,
        plain,
    );
    if !fmt.compact {
        para(
            &mut s,
            fmt,
            "  the probe: ",
            "    ",
            "a process nsx starts inside the mechanism; the host reads it through /proc/<pid>, the probe reads itself through /proc/self",
            plain,
        );
    }
    let what = format!(
        "a run recorded by nsx {} on {} ({}): nothing is measured now",
        rec.nsx,
        rec.env.machine,
        file.display()
    );
    let first = "  replay of ";
    for (i, line) in wrap(&what, fmt.width, first, "    ")
        .into_iter()
        .enumerate()
    {
        if i == 0 {
            let body = line.strip_prefix(first).unwrap_or(&line);
            let _ = writeln!(s, "  {} {body}", "replay of".yellow().bold());
        } else {
            let _ = writeln!(s, "{line}");
        }
    }
    if !fmt.compact {
        para(&mut s, fmt, "  read next: ", "    ", lesson.man, plain);
    }
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
            "host's own /proc/self/…".to_string(),
            "probe's own /proc/self/…".to_string(),
        ),
    }
}

fn label(r: &Row) -> String {
    if r.file.is_empty() {
        r.label.clone()
    } else {
        format!("{} ({})", r.label, r.file)
    }
}

/// The two marks in front of a row: `▶` for the step's point, `≠` for a difference the
/// lesson is about, `~` for drift between two reads.
fn marks(row: &Row, compare: bool) -> (ColoredString, ColoredString) {
    let key = if row.key && compare {
        "▶".bold()
    } else {
        " ".normal()
    };
    let cmp = match &row.cmp {
        Cmp::Differs if compare => "≠".yellow().bold(),
        Cmp::Drift(_) if compare => "~".dimmed(),
        _ => " ".normal(),
    };
    (key, cmp)
}

fn value_style(row: &Row, compare: bool, text: &str) -> ColoredString {
    match row.cmp {
        Cmp::Differs if compare => text.yellow().bold(),
        _ => text.normal(),
    }
}

/// The row cells, with paths shortened to at most `cap` characters; the full paths
/// shortened go in `long`.
fn cells(row: &Row, cap: usize, long: &mut Vec<String>) -> (String, String) {
    let mut cell = |shown: &str, val: &Val| match val {
        Val::Path(p) if width(p) > cap => {
            if !long.contains(p) {
                long.push(p.clone());
            }
            shorten_middle(p, cap)
        }
        _ => shown.to_string(),
    };
    let host = cell(&row.host, &row.values[0]);
    let cont = cell(&row.container, &row.values[1]);
    (host, cont)
}

/// The table's columns fit at `cap` for paths: (label, host, container) widths, or
/// `None` when a line would be wider than the terminal.
fn table_widths(step: &Step, cap: usize, fmt: &Fmt) -> Option<(usize, usize, usize)> {
    let mut ignored = Vec::new();
    let mut label_w = 0;
    let mut host_w = 0;
    let mut cont_w = 0;
    for r in &step.rows {
        let (h, c) = cells(r, cap, &mut ignored);
        label_w = label_w.max(width(&label(r)));
        host_w = host_w.max(width(&h));
        cont_w = cont_w.max(width(&c));
    }
    for side in [Side::Probe, Side::Own] {
        if step.rows.iter().any(|r| r.side == side) {
            let (h, c) = headings(step, side);
            host_w = host_w.max(width(&h));
            cont_w = cont_w.max(width(&c));
        }
    }
    // "  ▶≠ " + label + 2 + host + 2 + container
    (5 + label_w + 2 + host_w + 2 + cont_w <= fmt.width).then_some((label_w, host_w, cont_w))
}

/// One step: what was done, then the two views side by side, in groups: the probe read
/// by both sides, then each side's own world. When the table is wider than the terminal,
/// long paths are shortened in the middle; when it still is, each row is stacked.
pub fn step(step: &Step, number: usize, fmt: &Fmt) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    para(
        &mut s,
        fmt,
        "",
        "  ",
        &format!("step {number} · {}", step.title),
        |t| t.bold().cyan(),
    );
    if !fmt.compact {
        for action in &step.actions {
            for (i, line) in wrap(action, fmt.width, "  $ ", "      ")
                .into_iter()
                .enumerate()
            {
                match i {
                    0 => {
                        let _ = writeln!(s, "  {} {}", "$".dimmed(), &line[4..]);
                    }
                    _ => {
                        let _ = writeln!(s, "{line}");
                    }
                }
            }
        }
    }
    // A step may name its own two columns (the cost lesson's "median" and "bar"); then
    // the columns are not two views of one thing and a difference marks nothing.
    let compare = step.columns.is_none();
    let mut long = Vec::new();
    let mut drift: Vec<&str> = Vec::new();
    let fitted = table_widths(step, usize::MAX, fmt)
        .map(|w| (w, usize::MAX))
        .or_else(|| {
            // Shorten paths just enough: the widest cap that fits, down to 24.
            (24..=fmt.width)
                .rev()
                .find_map(|cap| table_widths(step, cap, fmt).map(|w| (w, cap)))
        });
    let mut group: Option<Side> = None;
    for row in &step.rows {
        if let Cmp::Drift(why) = &row.cmp {
            if compare && !drift.contains(&why.as_str()) {
                drift.push(why);
            }
        }
        let new_group = group != Some(row.side);
        group = Some(row.side);
        let (h_head, c_head) = headings(step, row.side);
        let (key, mark) = marks(row, compare);
        match fitted {
            Some(((label_w, host_w, _), cap)) => {
                if new_group && !(fmt.compact && s.ends_with("\n\n")) {
                    let _ = writeln!(s);
                    let _ = writeln!(
                        s,
                        "     {}  {}  {}",
                        pad("", label_w),
                        pad(&h_head, host_w).underline(),
                        c_head.underline()
                    );
                }
                let (h, c) = cells(row, cap, &mut long);
                let name = if row.key && compare {
                    pad(&label(row), label_w).bold()
                } else {
                    pad(&label(row), label_w).normal()
                };
                let _ = writeln!(
                    s,
                    "  {key}{mark} {name}  {}  {}",
                    value_style(row, compare, &pad(&h, host_w)),
                    value_style(row, compare, &c)
                );
            }
            None => {
                // Stacked: the label, then `host │ probe`, or one line each.
                if new_group {
                    let _ = writeln!(s);
                    para(
                        &mut s,
                        fmt,
                        "     ",
                        "       ",
                        &format!("{h_head} │ {c_head}"),
                        |t| t.underline(),
                    );
                }
                let cap = fmt.width.saturating_sub(14).max(24);
                let (h, c) = cells(row, cap, &mut long);
                for (i, line) in wrap(&label(row), fmt.width, "     ", "       ")
                    .into_iter()
                    .enumerate()
                {
                    let body = line.trim_start();
                    let body = if row.key && compare {
                        body.bold()
                    } else {
                        body.normal()
                    };
                    if i == 0 {
                        let _ = writeln!(s, "  {key}{mark} {body}");
                    } else {
                        let _ = writeln!(s, "       {body}");
                    }
                }
                let both = format!("{h} │ {c}");
                if 7 + width(&both) <= fmt.width {
                    let _ = writeln!(
                        s,
                        "       {} │ {}",
                        value_style(row, compare, &h),
                        value_style(row, compare, &c)
                    );
                } else {
                    for (who, v) in [("host: ", &h), ("probe: ", &c)] {
                        for (i, line) in wrap(v, fmt.width, &format!("       {who}"), "         ")
                            .into_iter()
                            .enumerate()
                        {
                            let prefix = if i == 0 {
                                format!("       {who}")
                            } else {
                                "         ".to_string()
                            };
                            let body = line.strip_prefix(&prefix).unwrap_or(&line);
                            let _ = writeln!(s, "{prefix}{}", value_style(row, compare, body));
                        }
                    }
                }
            }
        }
    }
    for why in drift {
        para(&mut s, fmt, "  ~ ", "    ", why, |t| t.dimmed());
    }
    for p in long {
        para(
            &mut s,
            fmt,
            "  … ",
            "    ",
            &format!("in full: {p}"),
            |t| t.dimmed(),
        );
    }
    for note in &step.notes {
        if !fmt.compact {
            let _ = writeln!(s);
        }
        let first = "  → ";
        for (i, line) in wrap(note, fmt.width, first, "    ").into_iter().enumerate() {
            if i == 0 {
                let _ = writeln!(s, "  {} {}", "→".cyan(), &line[first.len()..]);
            } else {
                let _ = writeln!(s, "{line}");
            }
        }
    }
    if let Some(t) = &step.takeaway {
        let _ = writeln!(s);
        let first = "  ⇒ ";
        for (i, line) in wrap(t, fmt.width, first, "    ").into_iter().enumerate() {
            if i == 0 {
                let _ = writeln!(s, "  {} {}", "⇒".green().bold(), line[first.len()..].bold());
            } else {
                let _ = writeln!(s, "    {}", line[4..].bold());
            }
        }
    }
    s
}

/// A takeaway in a box, wrapped to the width.
fn boxed(s: &mut String, text: &str, fmt: &Fmt) {
    let inner = fmt.width.saturating_sub(6).min(76);
    let lines = wrap(text, inner, "", "");
    let w = lines.iter().map(|l| width(l)).max().unwrap_or(0);
    let rule = "─".repeat(w + 2);
    let _ = writeln!(s, "  ┌{rule}┐");
    for l in &lines {
        let _ = writeln!(s, "  │ {} │", pad(l, w).bold());
    }
    let _ = writeln!(s, "  └{rule}┘");
}

/// Notes, the takeaway, the facts with ✓/✗, and the verdict.
pub fn footer(report: &Report, fmt: &Fmt) -> String {
    let mut s = String::new();
    for note in &report.notes {
        let _ = writeln!(s);
        let first = "  note: ";
        for (i, line) in wrap(note, fmt.width, first, "    ").into_iter().enumerate() {
            if i == 0 {
                let _ = writeln!(s, "  {} {}", "note:".bold(), &line[first.len()..]);
            } else {
                let _ = writeln!(s, "{line}");
            }
        }
    }
    if let Some(t) = &report.takeaway {
        let _ = writeln!(s);
        boxed(&mut s, t, fmt);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", "facts (computed from this run)".bold());
    for fact in &report.facts {
        fact_lines(&mut s, fact, fmt);
    }
    for fact in &report.inconclusive {
        fact_lines(&mut s, fact, fmt);
    }
    let _ = writeln!(s);
    let mut verdict = format!("{} of {} facts hold", report.held(), report.facts.len());
    if !report.inconclusive.is_empty() {
        verdict += &format!(", {} inconclusive", report.inconclusive.len());
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
        para(
            &mut s,
            fmt,
            "",
            "",
            "the kernel did not behave as the lesson expects: the ✗ lines say what was observed instead",
            plain,
        );
    }
    s
}

/// One fact: its mark, its claim, its id (dimmed, not in --compact), and for a failed or
/// inconclusive one what was observed or why.
fn fact_lines(s: &mut String, fact: &Fact, fmt: &Fmt) {
    let (mark, tail) = match (&fact.inconclusive, fact.holds) {
        (Some(why), _) => ("?".yellow().bold(), format!(" (inconclusive: {why})")),
        (None, true) => ("✓".green().bold(), String::new()),
        (None, false) => ("✗".red().bold(), format!(" (observed: {})", fact.observed)),
    };
    let id = if fmt.compact {
        String::new()
    } else {
        format!(" [{}]", fact.id)
    };
    let text = format!("{}{tail}{id}", fact.claim);
    let claim_end = width(&fact.claim);
    let tail_end = claim_end + width(&tail);
    // Colour by position in the whole text: the claim (red when failed), the tail, the id.
    let mut pos = 0;
    for (i, line) in wrap(&text, fmt.width, "  ✓ ", "    ")
        .into_iter()
        .enumerate()
    {
        let body: String = line.chars().skip(4).collect();
        let mut out = String::new();
        for ch in body.chars() {
            let styled = if pos < claim_end {
                if !fact.holds && fact.inconclusive.is_none() {
                    ch.to_string().red()
                } else {
                    ch.to_string().normal()
                }
            } else if pos < tail_end {
                ch.to_string().normal()
            } else {
                ch.to_string().dimmed()
            };
            out.push_str(&styled.to_string());
            pos += 1;
        }
        // The space the wrap turned into a line break.
        pos += 1;
        if i == 0 {
            let _ = writeln!(s, "  {mark} {out}");
        } else {
            let _ = writeln!(s, "    {out}");
        }
    }
}

/// The whole report at once (used by tests and by the book).
pub fn report(lesson: &Lesson, report: &Report, fmt: &Fmt) -> String {
    let mut s = header(lesson, report.privilege, fmt);
    for (i, st) in report.steps.iter().enumerate() {
        s.push_str(&step(st, i + 1, fmt));
    }
    s.push_str(&footer(report, fmt));
    s
}

/// A replayed report at once, as `nsx lesson <id> --replay FILE` prints it.
pub fn replayed(
    lesson: &Lesson,
    file: &std::path::Path,
    rec: &crate::lessons::engine::Recording,
    report: &Report,
    fmt: &Fmt,
) -> String {
    let mut s = replay_header(lesson, file, rec, fmt);
    for (i, st) in report.steps.iter().enumerate() {
        s.push_str(&step(st, i + 1, fmt));
    }
    s.push_str(&footer(report, fmt));
    s
}

/// `nsx lessons`: every lesson in curriculum order and whether it runs here. Each row: the lesson, whether it runs here as nsx runs now, and the privilege it needs
/// on this machine (the doctor's verdict, [`crate::doctor::Verdict::needs`]).
pub fn lessons(rows: &[(&Lesson, Support, &str)], fmt: &Fmt) -> String {
    let mut s = String::new();
    let id_w = rows
        .iter()
        .map(|(l, _, _)| width(l.id))
        .max()
        .unwrap_or(2)
        .max(2);
    let needs_w = 8;
    // id  needs  lesson title (wrapped); then the mechanism, then why it cannot run.
    let _ = writeln!(
        s,
        "{}  {}  {}",
        pad("id", id_w).bold(),
        pad("needs", needs_w).bold(),
        "lesson".bold()
    );
    let indent = " ".repeat(id_w + 2 + needs_w + 2);
    for (lesson, support, needs) in rows {
        let here = match support {
            Support::Yes => "runs here".to_string(),
            Support::No { .. } => "blocked here".to_string(),
        };
        let first = format!("{}  {}  ", pad(lesson.id, id_w), pad(needs, needs_w));
        let text = format!("{} ({here})", lesson.title);
        for line in wrap(&text, fmt.width, &first, &indent) {
            let line = line
                .replace("(runs here)", &"(runs here)".green().to_string())
                .replace("(blocked here)", &"(blocked here)".red().to_string());
            let _ = writeln!(s, "{line}");
        }
        para(&mut s, fmt, &indent, &indent, lesson.mechanism, |t| {
            t.dimmed()
        });
        if let Support::No { reason, fix } = support {
            para(
                &mut s,
                fmt,
                &format!("{indent}why: "),
                &indent,
                reason,
                plain,
            );
            para(&mut s, fmt, &format!("{indent}fix: "), &indent, fix, plain);
        }
    }
    s
}

/// One line after a lesson in a tour: what it showed, from its own facts.
pub fn recap(report: &Report, fmt: &Fmt) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    let text = match &report.takeaway {
        Some(t) => Some((report.ok, t.clone())),
        None => report
            .facts
            .iter()
            .find(|f| !f.id.starts_with("before"))
            .or(report.facts.first())
            .map(|f| (f.holds, f.claim.clone())),
    };
    if let Some((holds, claim)) = text {
        let mark = if holds { "✓" } else { "✗" };
        let first = format!("recap [{}] {mark} ", report.lesson);
        for (i, line) in wrap(&claim, fmt.width, &first, "    ")
            .into_iter()
            .enumerate()
        {
            if i == 0 {
                let body = &line[first.len()..];
                let m = if holds {
                    mark.green().bold()
                } else {
                    mark.red().bold()
                };
                let _ = writeln!(
                    s,
                    "{} {} {m} {body}",
                    "recap".bold(),
                    format!("[{}]", report.lesson).bold()
                );
            } else {
                let _ = writeln!(s, "{line}");
            }
        }
    }
    let _ = writeln!(s, "{}", "─".repeat(fmt.width.min(72)).dimmed());
    s
}

/// A blank line, then "WORD ID: text" wrapped under a two-space indent, WORD shown as
/// `word.1` (its colour) and measured as `word.0`.
fn headline(
    s: &mut String,
    word: (&str, colored::ColoredString),
    lesson: &Lesson,
    text: &str,
    fmt: &Fmt,
) {
    let _ = writeln!(s);
    let first = format!("{} {}: ", word.0, lesson.id);
    for (i, line) in wrap(text, fmt.width, &first, "  ").into_iter().enumerate() {
        if i == 0 {
            let _ = writeln!(
                s,
                "{} {}: {}",
                word.1,
                lesson.id.bold(),
                &line[first.len()..]
            );
        } else {
            let _ = writeln!(s, "{line}");
        }
    }
}

pub fn tour_skipped(lesson: &Lesson, reason: &str, fix: &str, fmt: &Fmt) -> String {
    let mut s = String::new();
    headline(
        &mut s,
        ("skipped", "skipped".yellow().bold()),
        lesson,
        reason,
        fmt,
    );
    para(&mut s, fmt, "  fix: ", "    ", fix, plain);
    let _ = writeln!(s, "{}", "─".repeat(fmt.width.min(72)).dimmed());
    s
}

/// A lesson of the tour that failed with an error (not a fact): what went wrong.
pub fn tour_failed(lesson: &Lesson, error: &crate::error::Error, fmt: &Fmt) -> String {
    let mut s = String::new();
    let text = error.to_string();
    let mut lines = text.lines();
    headline(
        &mut s,
        ("failed", "failed".red().bold()),
        lesson,
        lines.next().unwrap_or(""),
        fmt,
    );
    match error.hint() {
        // The cause and the fix nsx knows, each wrapped under its label.
        Some(h) => {
            para(&mut s, fmt, "  likely cause: ", "      ", &h.cause, plain);
            para(&mut s, fmt, "  fix: ", "      ", &h.fix, plain);
        }
        None => {
            for line in lines {
                para(&mut s, fmt, "  ", "  ", line.trim_start(), plain);
            }
        }
    }
    para(
        &mut s,
        fmt,
        "  ",
        "  ",
        "the tour goes on with the next lesson",
        plain,
    );
    let _ = writeln!(s, "{}", "─".repeat(fmt.width.min(72)).dimmed());
    s
}

/// What became of one lesson of the tour.
pub enum TourResult {
    /// It ran and judged its facts.
    Ran(Box<Report>),
    /// This machine could not run it (before it started, or found while it ran): why.
    Skipped(String),
    /// It failed with this error.
    Failed(String),
}

/// One lesson's line in the tour's summary.
pub struct TourRow {
    pub lesson: &'static Lesson,
    pub result: TourResult,
    pub millis: f64,
}

impl TourRow {
    /// Whether it ran, held or not (a skipped lesson did not).
    pub fn ran(&self) -> bool {
        !matches!(self.result, TourResult::Skipped(_))
    }

    /// Whether it ran and every fact held.
    pub fn held(&self) -> bool {
        matches!(&self.result, TourResult::Ran(r) if r.ok)
    }
}

pub fn tour_summary(rows: &[TourRow], fmt: &Fmt) -> String {
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
    let indent = " ".repeat(2 + id_w + 2 + 11 + 2);
    for row in rows {
        match &row.result {
            TourResult::Ran(report) => {
                total += row.millis;
                let held = format!("{}/{}", report.held(), report.facts.len());
                let held = if report.ok {
                    format!("{held:>11}").green()
                } else {
                    format!("{held:>11}").red()
                };
                let _ = writeln!(
                    s,
                    "  {}  {held}  {:>6.0} ms",
                    pad(row.lesson.id, id_w),
                    row.millis
                );
            }
            TourResult::Failed(error) => {
                total += row.millis;
                let first = format!("  {}  {:>11}  ", pad(row.lesson.id, id_w), "failed");
                let why = error.lines().next().unwrap_or("");
                for line in wrap(why, fmt.width, &first, &indent) {
                    let _ = writeln!(
                        s,
                        "{}",
                        line.replacen("failed", &"failed".red().to_string(), 1)
                    );
                }
            }
            TourResult::Skipped(reason) => {
                let first = format!("  {}  {:>11}  ", pad(row.lesson.id, id_w), "skipped");
                for line in wrap(reason, fmt.width, &first, &indent) {
                    let _ = writeln!(
                        s,
                        "{}",
                        line.replacen("skipped", &"skipped".yellow().to_string(), 1)
                    );
                }
            }
        }
    }
    let ran = rows.iter().filter(|r| r.ran()).count();
    let ok = rows.iter().filter(|r| r.held()).count();
    para(
        &mut s,
        fmt,
        "  ",
        "  ",
        &format!("{ok} of {ran} lessons held every fact, in {total:.0} ms of lessons"),
        plain,
    );
    s
}
