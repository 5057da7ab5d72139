//! A lesson's story (lessons/<id>.md) rendered for a terminal: what `--explain` prints.
//!
//! The stories use a small part of Markdown: `#`/`##` headings, paragraphs, `-` and
//! `1.` lists (with continuation lines), fenced code blocks, `**bold**`, `*emphasis*`
//! and `` `code` ``. Headings become bold lines, emphasis becomes bold or underlined,
//! code loses its backticks and fences (a block is indented instead), and every
//! paragraph and list item is wrapped to the width with a hanging indent. Nothing else
//! is interpreted: text the renderer does not know is printed as it is.

use colored::Colorize;

use super::text::{wrap, Fmt};

/// The story, rendered for a terminal of `fmt.width` columns.
pub fn render(md: &str, fmt: &Fmt) -> String {
    let mut out = String::new();
    let mut block: Vec<String> = Vec::new();
    let mut in_code = false;
    // A paragraph or list item being gathered: (first prefix, rest prefix, text).
    let mut item: Option<(String, String, String)> = None;
    let flush = |item: &mut Option<(String, String, String)>, out: &mut String| {
        if let Some((first, rest, text)) = item.take() {
            let (plain, styles) = spans(&text);
            let mut j = 0;
            let chars: Vec<char> = plain.chars().collect();
            for (i, line) in wrap(&plain, fmt.width, &first, &rest)
                .into_iter()
                .enumerate()
            {
                let prefix = if i == 0 { &first } else { &rest };
                out.push_str(prefix);
                let body = line.strip_prefix(prefix.as_str()).unwrap_or(&line);
                for c in body.chars() {
                    // The wrap dropped the spaces it broke lines at: skip them here too.
                    while j < chars.len() && chars[j] != c && chars[j] == ' ' {
                        j += 1;
                    }
                    let style = styles.get(j).copied().unwrap_or(Style::Plain);
                    j += 1;
                    let c = c.to_string();
                    out.push_str(&match style {
                        Style::Plain => c,
                        Style::Bold => c.bold().to_string(),
                        Style::Emphasis => c.underline().to_string(),
                    });
                }
                out.push('\n');
            }
        }
    };
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut item, &mut out);
            if in_code {
                for l in block.drain(..) {
                    for w in wrap(&l, fmt.width, "    ", "      ") {
                        out.push_str(&w.dimmed().to_string());
                        out.push('\n');
                    }
                }
            }
            in_code = !in_code;
            continue;
        }
        if in_code {
            block.push(line.to_string());
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            flush(&mut item, &mut out);
            if !out.ends_with("\n\n") && !out.is_empty() {
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("# ") {
            flush(&mut item, &mut out);
            for l in wrap(&strip_marks(h), fmt.width, "", "") {
                out.push_str(&l.bold().underline().to_string());
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("## ") {
            flush(&mut item, &mut out);
            for l in wrap(&strip_marks(h), fmt.width, "", "") {
                out.push_str(&l.bold().cyan().to_string());
                out.push('\n');
            }
            continue;
        }
        let bullet = trimmed
            .strip_prefix("- ")
            .map(|rest| ("•".to_string(), rest))
            .or_else(|| {
                let (n, rest) = trimmed.split_once(". ")?;
                n.chars()
                    .all(|c| c.is_ascii_digit())
                    .then(|| (format!("{n}."), rest))
            });
        match bullet {
            Some((mark, rest)) => {
                flush(&mut item, &mut out);
                let pad = " ".repeat(indent);
                let first = format!("{pad}{mark} ");
                let hang = " ".repeat(first.chars().count());
                item = Some((first, hang, rest.to_string()));
            }
            None => match item.as_mut() {
                // A continuation line of the paragraph or item being gathered.
                Some((_, _, text)) => {
                    text.push(' ');
                    text.push_str(trimmed);
                }
                None => item = Some((String::new(), String::new(), trimmed.to_string())),
            },
        }
    }
    flush(&mut item, &mut out);
    out
}

/// `**bold**` and `*emphasis*` and `` `code` `` without their marks.
fn strip_marks(s: &str) -> String {
    s.replace("**", "").replace('`', "")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Bold,
    Emphasis,
}

/// A paragraph's text without its inline marks (`**x**` bold, `*x*` emphasis, `` `x` ``
/// code, shown as is), and the style of each character: wrapping happens on the plain
/// text, so marks never count towards a width and a styled span may cross a line break.
/// A mark without its closing twin is kept as text.
fn spans(s: &str) -> (String, Vec<Style>) {
    let mut plain = String::new();
    let mut styles = Vec::new();
    let mut push = |text: &str, style: Style, plain: &mut String| {
        for c in text.chars() {
            plain.push(c);
            styles.push(style);
        }
    };
    let mut rest = s;
    while !rest.is_empty() {
        let next = ["**", "*", "`"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, m)| (*i, std::cmp::Reverse(m.len())));
        let Some((i, mark)) = next else {
            push(rest, Style::Plain, &mut plain);
            break;
        };
        let after = &rest[i + mark.len()..];
        match after.find(mark) {
            Some(j) if j > 0 => {
                push(&rest[..i], Style::Plain, &mut plain);
                let style = match mark {
                    "**" => Style::Bold,
                    "*" => Style::Emphasis,
                    _ => Style::Plain,
                };
                push(&after[..j], style, &mut plain);
                rest = &after[j + mark.len()..];
            }
            _ => {
                push(&rest[..i + mark.len()], Style::Plain, &mut plain);
                rest = after;
            }
        }
    }
    (plain, styles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(md: &str, width: usize) -> String {
        colored::control::set_override(false);
        render(md, &Fmt::new(width, false))
    }

    #[test]
    fn headings_lists_and_code_lose_their_markdown() {
        let md = "# pid: the probe\n\nRun `ps`, and the **shell** is *PID 1*.\n\n## What nsx does\n\n1. **Before**: a probe\n   forked with nothing.\n- a bullet\n\n```sh\nsudo unshare --pid\n```\n";
        let text = plain(md, 80);
        assert!(
            !text.contains('#') && !text.contains("**") && !text.contains('`'),
            "{text}"
        );
        assert!(text.contains("pid: the probe\n"), "{text}");
        assert!(text.contains("Run ps, and the shell is PID 1."), "{text}");
        assert!(
            text.contains("1. Before: a probe forked with nothing.\n"),
            "{text}"
        );
        assert!(text.contains("• a bullet"), "{text}");
        assert!(text.contains("    sudo unshare --pid"), "{text}");
        // Code split over two source lines loses both backticks.
        let split = plain("Run `docker run\nbusybox` now.", 80);
        assert_eq!(split, "Run docker run busybox now.\n");
    }

    #[test]
    fn every_story_fits_the_width() {
        for lesson in crate::lessons::LESSONS {
            for width in [60, 80, 100] {
                let text = plain(lesson.narrative, width);
                for line in text.lines() {
                    assert!(
                        line.chars().count() <= width,
                        "{} at {width}: {line:?}",
                        lesson.id
                    );
                }
                assert!(!text.contains("```"), "{}", lesson.id);
            }
        }
    }

    #[test]
    fn list_items_hang_under_their_text() {
        let md = "- a long item that will certainly not fit on one line of forty columns at all\n";
        let text = plain(md, 40);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("• a long"));
        assert!(lines[1].starts_with("  ") && !lines[1].starts_with("   "));
    }
}
