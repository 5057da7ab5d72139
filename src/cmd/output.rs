//! Writing to standard output: colour once, text and JSON, a closed pipe or a hang-up
//! turned into the right exit.

use std::io::{IsTerminal, Write};

use nsx::cli::Color;
use nsx::error::{Error, Result};

/// Whether standard output was a terminal when nsx started: after a hang-up it no
/// longer answers as one (tty_ioctl(4) fails), but its EIO still means the hang-up.
pub(crate) static STDOUT_WAS_TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn set_colour(choice: Color) {
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    colored::control::set_override(on);
}

pub(crate) fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Error::BrokenPipe,
            // write(2) on a terminal that hung up fails with EIO (pty(7)): the user is
            // gone, as with SIGHUP, which may arrive too.
            _ if e.raw_os_error() == Some(libc::EIO)
                && STDOUT_WAS_TERMINAL.get().copied().unwrap_or(false) =>
            {
                Error::Interrupted(libc::SIGHUP)
            }
            _ => Error::Other(format!("{STDOUT_WRITE}: {e}")),
        })
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("serialisable")
    )
}

/// How a failed write to standard output begins ([`out`]): the tour cannot go on.
pub(crate) const STDOUT_WRITE: &str = "write to standard output";
