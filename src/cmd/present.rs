//! Presenter mode: `--step` pauses and the keys that move on, repeat, go back or quit.

use std::io::IsTerminal;

use crate::cmd::output::out;
use nsx::cli::Format;
use nsx::error::{op, Error, Result};
use nsx::lessons;
use nsx::render;
use nsx::sandbox::signals;

/// Whether --step can pause here; says why not when it cannot.
pub(crate) fn can_pause(step: bool, format: Format) -> bool {
    let human = format == Format::Human;
    let pause = step && human && std::io::stdin().is_terminal();
    if step && human && !pause {
        nsx::warn!(
            "nsx: --step: standard input is not a terminal, so nsx will not pause between steps"
        );
    }
    pause
}

pub(crate) fn pause_here(prompt: &str) -> Result<()> {
    // Probes released so far are done: reap them now so no zombie shows in a student's
    // `ps` during the pause.
    nsx::sandbox::reap_released();
    out(&format!("\n  [press Enter {prompt}] "))?;
    wait_for_enter()
}

/// Prints a lesson's steps as they are judged and, with --step, waits between them: a
/// presenter's keys move on, show the step again, show the one before, or quit.
pub(crate) struct Live<'a> {
    pub(crate) human: bool,
    pub(crate) fmt: &'a render::human::Fmt,
    pub(crate) pause: bool,
    /// Every step shown so far, for the keys that show one again.
    pub(crate) shown: Vec<nsx::report::Step>,
}

impl lessons::Presenter for Live<'_> {
    fn show(&mut self, step: &nsx::report::Step) -> Result<()> {
        self.shown.push(step.clone());
        if self.human {
            out(&render::human::step(step, self.shown.len(), self.fmt))?;
        }
        Ok(())
    }

    fn pause(&mut self, look: &[String]) -> Result<()> {
        if !self.pause || !self.human {
            return Ok(());
        }
        // Probes released so far are done: reap them now so no zombie shows in a
        // student's `ps` during the pause.
        nsx::sandbox::reap_released();
        if !look.is_empty() {
            out("\n  it is still there: look at it from a second terminal\n")?;
            for cmd in look {
                out(&format!("    $ {cmd}\n"))?;
            }
        }
        let mut at = self.shown.len();
        loop {
            out("\n  [Enter: go on · r: this step again · b: the step before · q: quit] ")?;
            match read_key()? {
                Key::Next => {
                    out("\n")?;
                    return Ok(());
                }
                Key::Quit => {
                    out("\n")?;
                    return Err(Error::Quit);
                }
                key => {
                    if key == Key::Back {
                        at = at.saturating_sub(1).max(1);
                    }
                    if let Some(step) = self.shown.get(at.wrapping_sub(1)) {
                        out("\n")?;
                        out(&render::human::step(step, at, self.fmt))?;
                    }
                }
            }
        }
    }

    fn pauses(&self) -> bool {
        self.pause
    }
}

/// Waits for a line on standard input (or Ctrl-D). Polls the signal self-pipe beside
/// stdin, so a Ctrl-C during a --step pause ends the lesson even if it lands just before
/// the wait (std's read_line would retry on EINTR and keep waiting).
///
/// A terminal that hangs up (the SSH connection dropped, the terminal window closed)
/// ends the lesson as SIGHUP does, cleaned up and with exit 129, whether or not the
/// signal comes: poll(2) reports POLLHUP on it and read(2) returns EOF or EIO for ever
/// after (pty(7)), so waiting on would spin.
pub(crate) fn wait_for_enter() -> Result<()> {
    loop {
        match read_key()? {
            Key::Next => return Ok(()),
            Key::Quit => return Err(Error::Quit),
            Key::Repeat | Key::Back => {}
        }
    }
}

/// What a presenter pressed at a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Enter, space (or Ctrl-D on a terminal that is still there).
    Next,
    /// r: show this step again.
    Repeat,
    /// b: show the step before.
    Back,
    /// q: end the lesson cleanly.
    Quit,
}

/// The terminal in non-canonical mode without echo while a pause waits for one key
/// (termios(3)), restored when dropped, whatever ends the wait.
pub(crate) struct OneKey {
    saved: Option<nix::sys::termios::Termios>,
}

impl OneKey {
    fn new() -> OneKey {
        use nix::sys::termios::{
            tcgetattr, tcsetattr, LocalFlags, SetArg, SpecialCharacterIndices,
        };
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return OneKey { saved: None };
        };
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        // ISIG stays on: Ctrl-C still interrupts the lesson (and cleans up).
        match tcsetattr(&stdin, SetArg::TCSANOW, &raw) {
            Ok(()) => OneKey { saved: Some(saved) },
            Err(_) => OneKey { saved: None },
        }
    }
}

impl Drop for OneKey {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Waits for one key on standard input. Polls the signal self-pipe beside it, so a
/// Ctrl-C during a pause ends the lesson even if it lands just before the wait (std's
/// read_line would retry on EINTR and keep waiting).
///
/// A terminal that hangs up (the SSH connection dropped, the terminal window closed)
/// ends the lesson as SIGHUP would: exit 129, after cleaning up.
pub(crate) fn read_key() -> Result<Key> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let _one_key = OneKey::new();
    let stdin = std::io::stdin();
    let mut byte = [0u8; 1];
    loop {
        signals::check()?;
        let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        if let Some(wake) = signals::wake_fd() {
            fds.push(PollFd::new(wake, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(nsx::error::sys("poll", "standard input", e)),
            Ok(_) => {}
        }
        if fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
        {
            continue; // a signal: check() above turns it into Interrupted
        }
        let hung_up = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        if fds[0].revents().is_some_and(|r| r.intersects(hung_up)) {
            return Err(Error::Interrupted(libc::SIGHUP));
        }
        match nix::unistd::read(&stdin, &mut byte) {
            // Ctrl-D on a terminal that is still there: go on, as Enter does.
            Ok(0) => return Ok(Key::Next),
            Ok(_) => match byte[0] {
                b'\n' | b'\r' | b' ' => return Ok(Key::Next),
                b'r' | b'R' => return Ok(Key::Repeat),
                b'b' | b'B' => return Ok(Key::Back),
                b'q' | b'Q' => return Ok(Key::Quit),
                _ => {}
            },
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(nix::errno::Errno::EIO) => return Err(Error::Interrupted(libc::SIGHUP)),
            Err(e) => return Err(nsx::error::sys(op::READ, "standard input", e)),
        }
    }
}
