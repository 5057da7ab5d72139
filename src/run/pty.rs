//! The terminal side of `nsx run -t`: a new pty for the container, the user's terminal in
//! raw mode while it runs, and the window size passed along.
//!
//! pty(7): the container gets the slave end as its controlling terminal, so its line
//! discipline (echo, line editing, Ctrl-C → SIGINT to the foreground process group) is
//! the container's own. nsx holds the master end and copies bytes both ways. The user's
//! terminal is put in raw mode so that every key, Ctrl-C included, reaches the container
//! as a byte instead of being acted on by the host's terminal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::{Context, Result};

/// Both ends of a new pseudoterminal.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path (/dev/pts/N), bind-mounted on the container's /dev/console.
    pub slave_path: std::path::PathBuf,
}

/// openpty(3) with the window size of `like` (the user's terminal) when it has one. Both
/// fds are close-on-exec: the child dup2(2)s the slave onto 0, 1 and 2, which clears it.
pub fn open(like: BorrowedFd<'_>) -> Result<Pty> {
    let size = window_size(like);
    let p = openpty(size.as_ref(), None).ctx("openpty", "/dev/ptmx")?;
    for fd in [&p.master, &p.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .ctx("fcntl FD_CLOEXEC", "pty")?;
    }
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))
        .ctx("readlink", "the pty slave")?;
    Ok(Pty {
        master: p.master,
        slave: p.slave,
        slave_path,
    })
}

/// TIOCGWINSZ (tty_ioctl(4)): rows and columns of a terminal, if `fd` is one.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one struct winsize.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(ws)
}

/// TIOCSWINSZ on the master: the kernel sends SIGWINCH to the container's foreground
/// process group, which redraws for the new size.
pub fn set_window_size(master: BorrowedFd<'_>, ws: &Winsize) {
    // SAFETY: TIOCSWINSZ reads one struct winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// The user's terminal in raw mode (termios(3) cfmakeraw); the saved settings are put
/// back when this is dropped, on every way out of `nsx run`.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// `None` when `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<Option<RawMode>> {
        let Ok(saved) = tcgetattr(fd) else {
            return Ok(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSADRAIN, &raw).ctx("tcsetattr", "standard input (raw mode)")?;
        Ok(Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is standard input, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(fd.as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// The child's side: a new session whose controlling terminal is the slave, on 0, 1, 2.
/// setsid(2) makes the child a session leader without a terminal; TIOCSCTTY
/// (tty_ioctl(4)) then makes the slave its controlling terminal, so job control and
/// Ctrl-C work inside.
pub fn become_controlling(slave: RawFd) -> nix::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal from another session).
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } != 0 {
        return Err(nix::errno::Errno::last());
    }
    for target in 0..3 {
        // SAFETY: dup2 on descriptors this process holds; 0..3 are replaced on purpose.
        if unsafe { libc::dup2(slave, target) } < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}
