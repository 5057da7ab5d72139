//! Fitting text to a width: wrapping with a hanging indent, padding, shortening a path
//! in the middle. Widths count characters (nsx prints no double-width ones) and never
//! the escape codes colour adds: callers pad and wrap plain text, then colour it.

/// How wide human output may be, and how much of it to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmt {
    /// No line is longer than this many characters.
    pub width: usize,
    /// For a projector: no `$` lines, no fact ids, fewer blank lines.
    pub compact: bool,
}

impl Fmt {
    /// The narrowest width nsx lays out for; narrower asks are raised to it.
    pub const MIN: usize = 40;

    pub fn new(width: usize, compact: bool) -> Fmt {
        Fmt {
            width: width.max(Fmt::MIN),
            compact,
        }
    }

    /// The width of this terminal: `--width`, then `COLUMNS`, then the terminal on
    /// standard output (TIOCGWINSZ), else 80 (piped output).
    pub fn detect(asked: Option<usize>, compact: bool) -> Fmt {
        let columns = || {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse::<usize>().ok())
                .filter(|&c| c > 0)
        };
        let tty = || {
            let mut ws = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes a winsize into the struct passed; fd 1 may be
            // anything, and a non-terminal just fails with ENOTTY.
            let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
            (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
        };
        Fmt::new(asked.or_else(columns).or_else(tty).unwrap_or(80), compact)
    }
}

impl Default for Fmt {
    fn default() -> Fmt {
        Fmt::new(80, false)
    }
}

/// Characters on screen.
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` padded with spaces to `w` characters (never cut).
pub fn pad(s: &str, w: usize) -> String {
    let n = width(s);
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// `text` in lines of at most `width` characters: the first starts with `first`, the
/// rest with `rest` (a hanging indent). Each line of `text` that fits is kept as it is
/// (a small aligned table in a note stays aligned); one that does not is broken at
/// spaces, and a word longer than a whole line is cut.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut prefix = first;
    for para in text.split('\n') {
        if self::width(prefix) + self::width(para) <= width {
            out.push(format!("{prefix}{para}"));
            prefix = rest;
            continue;
        }
        let mut line = prefix.to_string();
        let mut has_word = false;
        for word in para.split_whitespace() {
            if has_word && self::width(&line) + 1 + self::width(word) > width {
                out.push(std::mem::replace(&mut line, rest.to_string()));
                has_word = false;
            }
            if !has_word && self::width(&line) + self::width(word) > width {
                for c in word.chars() {
                    if self::width(&line) >= width {
                        out.push(std::mem::replace(&mut line, rest.to_string()));
                    }
                    line.push(c);
                }
                has_word = true;
                continue;
            }
            if has_word {
                line.push(' ');
            }
            line.push_str(word);
            has_word = true;
        }
        out.push(line);
        prefix = rest;
    }
    out
}

/// `path` shortened to `w` characters by an ellipsis in the middle, keeping its start
/// and as much of its end (the part that names the thing) as fits.
pub fn shorten_middle(path: &str, w: usize) -> String {
    let n = width(path);
    if n <= w || w < 5 {
        return path.to_string();
    }
    let chars: Vec<char> = path.chars().collect();
    let keep = w - 1;
    let head = keep / 3;
    let tail = keep - head;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[n - tail..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_line_within_the_width_with_a_hanging_indent() {
        let text = "the probe's pid namespace differs from the host's own and the host reading /proc/4242/ns/pid finds it too";
        let lines = wrap(text, 40, "  ✓ ", "    ");
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(width(l) <= 40, "{l:?}");
        }
        assert!(lines[0].starts_with("  ✓ the"));
        assert!(lines[1].starts_with("    ") && !lines[1].starts_with("     "));
        let joined: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(joined[1..].join(" "), text);
    }

    #[test]
    fn a_word_longer_than_the_line_is_cut() {
        let long = "x".repeat(100);
        let lines = wrap(&long, 40, "  ", "  ");
        assert!(lines.iter().all(|l| width(l) <= 40), "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), long);
    }

    #[test]
    fn newlines_start_new_lines() {
        let lines = wrap("a b\nc d", 40, "> ", "  ");
        assert_eq!(lines, ["> a b", "  c d"]);
    }

    #[test]
    fn paths_shorten_in_the_middle_keeping_both_ends() {
        let p =
            "/sys/fs/cgroup/memory/process_api/60006a1122318326c89b77298451e1b1/nsx-42-7-memory";
        let s = shorten_middle(p, 40);
        assert_eq!(width(&s), 40);
        assert!(s.starts_with("/sys/fs/"));
        assert!(s.ends_with("nsx-42-7-memory"));
        assert!(s.contains('…'));
        assert_eq!(shorten_middle("/short", 40), "/short");
    }

    #[test]
    fn widths_below_the_minimum_are_raised() {
        assert_eq!(Fmt::new(10, false).width, Fmt::MIN);
        assert_eq!(Fmt::detect(Some(100), false).width, 100);
    }
}
