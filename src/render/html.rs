//! A terminal's text, colour included, as HTML: what the book shows of a recorded run.
//!
//! The human renderer colours with ANSI SGR escape sequences (ECMA-48 "Select Graphic
//! Rendition": `ESC [ n ; … m`). This module reads them back and turns the text into
//! `<span class="ansi-…">` runs inside one `<pre>`, so the book shows a run with the same
//! characters, padding and colours a terminal shows, and the book's CSS decides what each
//! colour looks like. It reads only text: the human renderer's output stays what it is,
//! and a test regenerates the book's fragments from the recordings to keep them true.
//!
//! Only SGR is interpreted (bold, dim, italic, underline, reverse, the 8 + 8 named
//! colours, the 256-colour palette and 24-bit colour); any other escape sequence is
//! dropped, so the HTML never carries a raw escape character.

use std::fmt::Write;

/// The named colours of SGR 30–37 (90–97 are their bright twins).
const NAMES: [&str; 8] = [
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
];

/// A colour as SGR sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    /// SGR 30–37 / 40–47 (0–7) and 90–97 / 100–107 (8–15): styled by a class.
    Named(u8),
    /// SGR 38;5;n / 48;5;n with n ≥ 16, and 38;2;r;g;b: an inline style.
    Rgb(u8, u8, u8),
}

impl Colour {
    /// 38;5;n: the 16 named colours, a 6×6×6 cube, then 24 greys (xterm's palette).
    fn indexed(n: u8) -> Colour {
        match n {
            0..=15 => Colour::Named(n),
            16..=231 => {
                let i = n - 16;
                let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
                Colour::Rgb(level(i / 36), level((i / 6) % 6), level(i % 6))
            }
            _ => {
                let g = 8 + (n - 232) * 10;
                Colour::Rgb(g, g, g)
            }
        }
    }

    fn class(self, prefix: &str) -> Option<String> {
        match self {
            Colour::Named(n) if n < 8 => Some(format!("ansi-{prefix}-{}", NAMES[n as usize])),
            Colour::Named(n) => Some(format!("ansi-{prefix}-bright-{}", NAMES[(n - 8) as usize])),
            Colour::Rgb(..) => None,
        }
    }

    fn style(self, property: &str) -> Option<String> {
        match self {
            Colour::Rgb(r, g, b) => Some(format!("{property}:#{r:02x}{g:02x}{b:02x}")),
            Colour::Named(_) => None,
        }
    }
}

/// The graphic rendition in force: what SGR has set since the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Sgr {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    reverse: bool,
    fg: Option<Colour>,
    bg: Option<Colour>,
}

impl Sgr {
    /// Apply one `ESC [ params m`: the parameters in order, an empty list being a reset.
    fn apply(&mut self, params: &str) {
        let nums: Vec<u32> = params
            .split([';', ':'])
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let mut i = 0;
        while i < nums.len() {
            match nums[i] {
                0 => *self = Sgr::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                7 => self.reverse = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                27 => self.reverse = false,
                n @ 30..=37 => self.fg = Some(Colour::Named((n - 30) as u8)),
                39 => self.fg = None,
                n @ 40..=47 => self.bg = Some(Colour::Named((n - 40) as u8)),
                49 => self.bg = None,
                n @ 90..=97 => self.fg = Some(Colour::Named((n - 90 + 8) as u8)),
                n @ 100..=107 => self.bg = Some(Colour::Named((n - 100 + 8) as u8)),
                n @ (38 | 48) => {
                    let (colour, used) = extended(&nums[i + 1..]);
                    if let Some(c) = colour {
                        if n == 38 {
                            self.fg = Some(c);
                        } else {
                            self.bg = Some(c);
                        }
                    }
                    i += used;
                }
                // Blink, conceal, fonts, frames…: nothing a run uses, nothing to show.
                _ => {}
            }
            i += 1;
        }
    }

    /// The span's opening tag, or None for plain text.
    fn open(&self) -> Option<String> {
        let mut classes = Vec::new();
        for (on, name) in [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
            (self.reverse, "ansi-reverse"),
        ] {
            if on {
                classes.push(name.to_string());
            }
        }
        classes.extend(self.fg.and_then(|c| c.class("fg")));
        classes.extend(self.bg.and_then(|c| c.class("bg")));
        let styles: Vec<String> = [
            self.fg.and_then(|c| c.style("color")),
            self.bg.and_then(|c| c.style("background-color")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if classes.is_empty() && styles.is_empty() {
            return None;
        }
        let mut tag = String::from("<span");
        if !classes.is_empty() {
            let _ = write!(tag, " class=\"{}\"", classes.join(" "));
        }
        if !styles.is_empty() {
            let _ = write!(tag, " style=\"{}\"", styles.join(";"));
        }
        tag.push('>');
        Some(tag)
    }
}

/// `5;n` or `2;r;g;b` after a 38 or 48: the colour, and how many parameters it used.
fn extended(rest: &[u32]) -> (Option<Colour>, usize) {
    let byte = |i: usize| rest.get(i).map(|&v| v.min(255) as u8);
    match rest.first() {
        Some(5) => (byte(1).map(Colour::indexed), 2),
        Some(2) => match (byte(1), byte(2), byte(3)) {
            (Some(r), Some(g), Some(b)) => (Some(Colour::Rgb(r, g, b)), 4),
            _ => (None, rest.len()),
        },
        _ => (None, 0),
    }
}

/// Text with ANSI escape sequences as HTML: each run of one rendition in a span, the
/// text escaped. Spans close at every line's end and reopen on the next, so a line of
/// HTML is a line of the terminal (and a diff of two runs lines up).
pub fn from_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut sgr = Sgr::default();
    // The rendition of the span open in `out`, if one is.
    let mut open: Option<Sgr> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameter and intermediate bytes, then one final byte.
                    let mut params = String::new();
                    let mut fin = None;
                    for p in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            fin = Some(p);
                            break;
                        }
                        params.push(p);
                    }
                    if fin == Some('m') {
                        sgr.apply(&params);
                    }
                } else if chars.peek() == Some(&']') {
                    // OSC (a window title, a hyperlink): a string up to BEL or ST (ESC \),
                    // none of which is text of the page.
                    chars.next();
                    while let Some(p) = chars.next() {
                        if p == '\u{7}' || (p == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                } else {
                    // Any other escape: drop it and the one character that names it.
                    chars.next();
                }
            }
            '\n' => {
                if open.take().is_some() {
                    out.push_str("</span>");
                }
                out.push('\n');
            }
            // Other control characters have no place in a page.
            c if c.is_control() && c != '\t' => {}
            c => {
                if open != Some(sgr) {
                    if open.take().is_some() {
                        out.push_str("</span>");
                    }
                    if let Some(tag) = sgr.open() {
                        out.push_str(&tag);
                        open = Some(sgr);
                    }
                }
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
        }
    }
    if open.is_some() {
        out.push_str("</span>");
    }
    out
}

/// A whole terminal capture as one `<pre class="nsx-run">` block: `command` (shown as
/// the prompt line that produced it) and its output. The block starts with `<pre`, so
/// Markdown (CommonMark's HTML block of type 1) passes it through untouched up to
/// `</pre>`, blank lines included; it holds no `<code>`, which mdBook would hand to its
/// syntax highlighter.
pub fn run_block(command: &str, output: &str) -> String {
    let mut s = String::from("<pre class=\"nsx-run\">");
    let _ = writeln!(
        s,
        "<span class=\"nsx-prompt\">$ {}</span>",
        from_ansi(command)
    );
    s.push_str(from_ansi(output).trim_end_matches('\n'));
    s.push_str("</pre>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_escaped_and_unwrapped() {
        assert_eq!(
            from_ansi("a < b && c > d\n"),
            "a &lt; b &amp;&amp; c &gt; d\n"
        );
    }

    #[test]
    fn the_renditions_the_human_renderer_uses_become_classes() {
        // What `colored` writes for .yellow().bold(), .dimmed(), .underline(), .cyan().
        let s = from_ansi("\u{1b}[1;33m≠\u{1b}[0m x \u{1b}[2m$\u{1b}[0m \u{1b}[4mhost\u{1b}[0m");
        assert_eq!(
            s,
            "<span class=\"ansi-bold ansi-fg-yellow\">≠</span> x \
             <span class=\"ansi-dim\">$</span> <span class=\"ansi-underline\">host</span>"
        );
        assert_eq!(
            from_ansi("\u{1b}[36mc\u{1b}[39m \u{1b}[91mr\u{1b}[0m"),
            "<span class=\"ansi-fg-cyan\">c</span> <span class=\"ansi-fg-bright-red\">r</span>"
        );
    }

    #[test]
    fn a_rendition_lasts_until_it_is_reset_and_spans_do_not_cross_lines() {
        let s = from_ansi("\u{1b}[1mone\ntwo\u{1b}[22m three");
        assert_eq!(
            s,
            "<span class=\"ansi-bold\">one</span>\n<span class=\"ansi-bold\">two</span> three"
        );
        // A change that leaves the rendition as it was opens no new span.
        assert_eq!(
            from_ansi("\u{1b}[1ma\u{1b}[1mb\u{1b}[0m"),
            "<span class=\"ansi-bold\">ab</span>"
        );
        // An escape with nothing after it leaves nothing open.
        assert_eq!(from_ansi("\u{1b}[1m\u{1b}[0mx"), "x");
    }

    #[test]
    fn extended_colours_become_inline_styles() {
        assert_eq!(
            from_ansi("\u{1b}[38;2;255;128;0mo\u{1b}[0m"),
            "<span style=\"color:#ff8000\">o</span>"
        );
        assert_eq!(
            from_ansi("\u{1b}[38;5;196mr\u{1b}[48;5;2mg\u{1b}[0m"),
            "<span style=\"color:#ff0000\">r</span>\
             <span class=\"ansi-bg-green\" style=\"color:#ff0000\">g</span>"
        );
        assert_eq!(
            from_ansi("\u{1b}[38;5;244mg\u{1b}[0m"),
            "<span style=\"color:#808080\">g</span>"
        );
    }

    #[test]
    fn other_escapes_and_controls_leave_no_trace() {
        let s = from_ansi("\u{1b}[2Kx\u{1b}[1Ay\u{1b}7z\r\u{7}\tw");
        assert_eq!(s, "xyz\tw");
        assert!(!from_ansi("\u{1b}[").contains('\u{1b}'));
        // An OSC string (a title, a hyperlink) is dropped whole, up to BEL or ST.
        assert_eq!(from_ansi("a\u{1b}]0;owned\u{7}b"), "ab");
        assert_eq!(
            from_ansi("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\ c"),
            "link c"
        );
        assert_eq!(from_ansi("x\u{1b}]unterminated"), "x");
        assert!(!from_ansi("\u{1b}").contains('\u{1b}'));
    }

    #[test]
    fn a_run_block_is_one_pre_without_code() {
        let b = run_block("nsx lesson pid", "\u{1b}[1mtitle\u{1b}[0m\n\nrow\n");
        assert_eq!(
            b,
            "<pre class=\"nsx-run\"><span class=\"nsx-prompt\">$ nsx lesson pid</span>\n\
             <span class=\"ansi-bold\">title</span>\n\nrow</pre>\n"
        );
        assert!(!b.contains("<code"));
    }
}
