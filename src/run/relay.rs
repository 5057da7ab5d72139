//! nsx while the command runs: bytes between the user's terminal and the container's
//! pty, signals to the container's PID 1, orphans reaped, and the exit status back.
//!
//! Nothing here may block. A relay that sat in write(2) to the pty master (the
//! container does not read its input, `yes | nsx run -it -- true`, a large paste into a
//! busy shell) could no longer read the master, see the command exit, or forward a
//! signal, and the container would stay a zombie until SIGKILL. So:
//! - every descriptor the relay writes to is non-blocking, and it writes only what the
//!   other side takes now;
//! - each direction has a bounded buffer; when the one towards the container is full,
//!   nsx stops reading the user's input (the terminal holds it, as it would for a busy
//!   program) but keeps reading the container's output and watching for its exit and
//!   for signals;
//! - one ppoll(2) waits for all of it: standard input, the master, standard output,
//!   the pidfd (pidfd_open(2), readable when the command exits), a signalfd for SIGCHLD
//!   (orphans to reap, see [`super::reaper`]). SIGINT, SIGTERM, SIGHUP and SIGWINCH are
//!   blocked except inside ppoll, which unblocks them atomically while it waits: a signal
//!   cannot slip in between checking for one and going to sleep.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::{pty, reaper};
use crate::error::{sys, Context, Result};
use crate::sandbox::{self, signals};

/// Bytes held in each direction before nsx stops reading that side.
pub const BUFFER: usize = 64 * 1024;

/// How long the final copy of the container's output may wait for standard output to
/// take more, before nsx gives up on it.
const DRAIN_STALL: Duration = Duration::from_secs(2);

/// What the relay connects.
pub struct Ends<'a> {
    /// The pty master (-t), or none.
    pub master: Option<&'a OwnedFd>,
    /// Standard input goes to the container (-i with -t).
    pub interactive: bool,
    /// The user's terminal is in raw mode (\n does not return the carriage).
    pub raw: bool,
    /// The command is PID 1 of a new PID namespace (it drops signals it has no handler
    /// for, pid_namespaces(7)).
    pub pid_ns: bool,
}

/// Waits for the container while relaying terminal bytes and forwarding signals.
pub fn relay(child: &mut sandbox::Child, ends: &Ends<'_>) -> Result<WaitStatus> {
    let pid = child.pid();
    let main = Pid::from_raw(pid);
    let watched = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ];
    signals::watch(Signal::SIGWINCH);
    let mut block = SigSet::empty();
    for s in watched {
        block.add(s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), Some(&mut old))
        .ctx("sigprocmask", "SIG_BLOCK")?;
    let _unblock = Unblock(block);
    // SIGCHLD stays blocked inside ppoll too: signalfd(2) reads only signals that are
    // blocked, which keeps them pending for it (delivered, SIGCHLD's default action
    // would discard it).
    let mut during = old;
    during.add(Signal::SIGCHLD);
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let sigchld = SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
    let pidfd = pidfd_open(pid);

    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    // SAFETY: standard output stays open for the life of the process.
    let stdout_fd = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
    let mut state = State {
        to_container: Buffer::default(),
        to_user: Buffer::default(),
        stdin_open: ends.master.is_some() && ends.interactive,
        master_open: ends.master.is_some(),
        stdout_ok: true,
        forwarded: 0,
    };
    // O_NONBLOCK: our own master outright; the user's standard input and output only
    // while the relay runs (they may be shared with the shell that started nsx), put
    // back as they were on every way out.
    let _nonblocking = match ends.master {
        Some(m) => {
            fcntl(m, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .ctx("fcntl O_NONBLOCK", "the pty master")?;
            let input = state.stdin_open.then(|| NonBlocking::set(stdin_fd));
            let output = NonBlocking::set(stdout_fd);
            Some((input, output))
        }
        None => None,
    };

    loop {
        for sig in signals::take_all() {
            match sig {
                libc::SIGWINCH => {
                    if let (Some(m), Some(ws)) = (ends.master, pty::window_size(stdin_fd)) {
                        pty::set_window_size(m.as_fd(), &ws);
                    }
                }
                _ => state.forward(pid, sig, ends, false),
            }
        }
        reaper::reap_orphans(main);
        if let Some(status) = child.try_wait()? {
            if let Some(m) = ends.master {
                state.drain(m.as_fd(), stdout_fd);
            }
            return Ok(status);
        }

        let master = ends.master.filter(|_| state.master_open);
        let mut fds: Vec<PollFd> = Vec::with_capacity(5);
        // The pidfd is only there to wake ppoll; try_wait above reads the status.
        if let Some(p) = &pidfd {
            slot(&mut fds, p.as_fd(), PollFlags::POLLIN);
        }
        let chld_slot = match &sigchld {
            Some(s) => slot(&mut fds, s.as_fd(), PollFlags::POLLIN),
            None => None,
        };
        let stdin_slot = if state.stdin_open && master.is_some() && state.to_container.room() > 0 {
            slot(&mut fds, stdin_fd, PollFlags::POLLIN)
        } else {
            None
        };
        let master_slot = match master {
            Some(m) => {
                let mut ev = PollFlags::empty();
                if state.to_user.room() > 0 {
                    ev |= PollFlags::POLLIN;
                }
                if !state.to_container.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                // Not at all when nothing is wanted: POLLHUP (the container closed its
                // terminal) is reported whatever the events, and would spin the loop
                // while standard output is full.
                if ev.is_empty() {
                    None
                } else {
                    slot(&mut fds, m.as_fd(), ev)
                }
            }
            None => None,
        };
        let stdout_slot = if !state.to_user.is_empty() {
            slot(&mut fds, stdout_fd, PollFlags::POLLOUT)
        } else {
            None
        };
        // Without a pidfd (kernel < 5.3) or a signalfd, wake up now and then to look.
        let timeout = (pidfd.is_none() || sigchld.is_none())
            .then(|| nix::sys::time::TimeSpec::from(Duration::from_millis(20)));
        match nix::poll::ppoll(&mut fds, timeout, Some(during)) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("ppoll", "the container's terminal", e)),
        }
        let revents = |slot: Option<usize>| {
            slot.and_then(|i| fds[i].revents())
                .unwrap_or(PollFlags::empty())
        };
        let (stdin_ev, master_ev, stdout_ev, chld_ev) = (
            revents(stdin_slot),
            revents(master_slot),
            revents(stdout_slot),
            revents(chld_slot),
        );
        drop(fds);
        if !chld_ev.is_empty() {
            if let Some(s) = &sigchld {
                while let Ok(Some(_)) = s.read_signal() {}
            }
        }
        if let Some(m) = master {
            if !master_ev.is_empty() {
                state.master_io(m.as_fd(), master_ev);
            }
        }
        if !stdout_ev.is_empty() {
            state.flush_output(stdout_fd);
        }
        if !stdin_ev.is_empty() && state.read_input(stdin_fd) == Input::HungUp {
            // The user's terminal is gone (a dropped SSH connection): what a hang-up
            // of a terminal does to its session, done to the container, and since no
            // one is left to send a second signal, a PID 1 that drops it is killed.
            state.forward(pid, libc::SIGHUP, ends, true);
        }
        if let Some(m) = master {
            if !state.to_container.is_empty() {
                state.write_input(m.as_fd());
            }
        }
    }
}

/// Adds `fd` to the poll set; returns its index there.
fn slot<'a>(fds: &mut Vec<PollFd<'a>>, fd: BorrowedFd<'a>, events: PollFlags) -> Option<usize> {
    fds.push(PollFd::new(fd, events));
    Some(fds.len() - 1)
}

#[derive(Debug, PartialEq, Eq)]
enum Input {
    Open,
    HungUp,
}

struct State {
    to_container: Buffer,
    to_user: Buffer,
    stdin_open: bool,
    master_open: bool,
    /// False once standard output failed for good (EPIPE, EIO): output is dropped then,
    /// so the container never waits on a reader that is gone.
    stdout_ok: bool,
    forwarded: u32,
}

impl State {
    /// Passes `sig` to the container's PID 1, saying so when a PID 1 without a handler
    /// will drop it; such a signal sent twice (or a hang-up) SIGKILLs the container.
    fn forward(&mut self, pid: i32, sig: i32, ends: &Ends<'_>, hangup: bool) {
        let name = crate::error::signal_name(sig);
        // pid_namespaces(7): PID 1 only receives the signals it has a handler for
        // (SigCgt in /proc/<pid>/status); the kernel drops the others.
        let dropped = ends.pid_ns && !super::catches(pid, sig);
        let raw = ends.raw;
        if dropped && (self.forwarded > 0 || hangup) {
            let why = if hangup {
                "your terminal hung up"
            } else {
                "again"
            };
            note(
                raw,
                &format!("{name} ({why}): sending SIGKILL to the container (host PID {pid})"),
            );
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            return;
        }
        self.forwarded += 1;
        let _ = kill(
            Pid::from_raw(pid),
            Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
        );
        if dropped {
            note(raw, &format!("forwarded {name} to the container's PID 1 (host PID {pid}), which has no handler for it (SigCgt in /proc/{pid}/status), so the kernel drops it (see nsx lesson init); send it again to SIGKILL the container"));
        }
    }

    /// Reads what the user typed into the buffer towards the container.
    fn read_input(&mut self, stdin: BorrowedFd<'_>) -> Input {
        match self.to_container.fill_from(stdin) {
            // EOF or EIO on a terminal: it hung up (read(2) on a hung-up tty returns 0,
            // or EIO once its other end is closed, pty(7)).
            Ok(0) | Err(Errno::EIO) => {
                self.stdin_open = false;
                Input::HungUp
            }
            Ok(_) | Err(Errno::EAGAIN) => Input::Open,
            Err(_) => {
                self.stdin_open = false;
                Input::HungUp
            }
        }
    }

    fn write_input(&mut self, master: BorrowedFd<'_>) {
        match self.to_container.flush_to(master) {
            Ok(_) | Err(Errno::EAGAIN) => {}
            // EIO: every slave fd is closed; the input has nowhere to go.
            Err(_) => self.to_container.clear(),
        }
    }

    fn master_io(&mut self, master: BorrowedFd<'_>, ev: PollFlags) {
        if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && self.to_user.room() > 0
        {
            match self.to_user.fill_from(master) {
                Ok(n) if n > 0 => {}
                Err(Errno::EAGAIN) => {}
                // EIO (or EOF): every slave fd is closed (pty(7)); nothing more will come.
                _ => {
                    self.master_open = false;
                    self.to_container.clear();
                }
            }
            if !self.stdout_ok {
                self.to_user.clear();
            }
        }
        if ev.contains(PollFlags::POLLOUT) {
            self.write_input(master);
        }
    }

    fn flush_output(&mut self, stdout: BorrowedFd<'_>) {
        match self.to_user.flush_to(stdout) {
            Ok(_) | Err(Errno::EAGAIN) => {}
            Err(_) => {
                self.stdout_ok = false;
                self.to_user.clear();
            }
        }
    }

    /// The container's last output, after it exited: what is buffered and what the pty
    /// still holds, as long as standard output keeps taking it. Bounded: processes the
    /// command left behind may still be writing to the pty (they are killed next).
    fn drain(&mut self, master: BorrowedFd<'_>, stdout: BorrowedFd<'_>) {
        let mut budget: usize = 1024 * 1024;
        let mut last_progress = Instant::now();
        loop {
            if self.master_open && budget > 0 && self.to_user.room() > 0 {
                match self.to_user.fill_from(master) {
                    Ok(n) if n > 0 => budget = budget.saturating_sub(n),
                    _ => self.master_open = false,
                }
            }
            if !self.stdout_ok || self.to_user.is_empty() {
                if !self.master_open || budget == 0 {
                    return;
                }
                self.to_user.clear();
                continue;
            }
            match self.to_user.flush_to(stdout) {
                Ok(n) if n > 0 => last_progress = Instant::now(),
                Ok(_) | Err(Errno::EAGAIN) => {
                    if last_progress.elapsed() > DRAIN_STALL {
                        return;
                    }
                    let mut fds = [PollFd::new(stdout, PollFlags::POLLOUT)];
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8));
                }
                Err(_) => self.stdout_ok = false,
            }
        }
    }
}

/// Bytes on their way from one descriptor to another, at most [`BUFFER`] of them.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
}

impl Buffer {
    fn room(&self) -> usize {
        BUFFER - self.data.len()
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn clear(&mut self) {
        self.data.clear();
    }

    /// One read(2) of at most the room left.
    fn fill_from(&mut self, fd: BorrowedFd<'_>) -> nix::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let want = self.room().min(chunk.len());
        let n = retry(|| nix::unistd::read(fd, &mut chunk[..want]))?;
        self.data.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// One write(2) of what is buffered; keeps what the descriptor did not take.
    fn flush_to(&mut self, fd: BorrowedFd<'_>) -> nix::Result<usize> {
        let n = retry(|| nix::unistd::write(fd, &self.data))?;
        self.data.drain(..n);
        Ok(n)
    }
}

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// O_NONBLOCK on a descriptor nsx shares with others (its standard input and output),
/// for as long as this lives; the flags are put back as they were when it is dropped.
/// The way OpenSSH treats its standard descriptors.
struct NonBlocking {
    fd: libc::c_int,
    saved: Option<OFlag>,
}

impl NonBlocking {
    fn set(fd: BorrowedFd<'_>) -> NonBlocking {
        // fcntl(2) F_GETFL/F_SETFL: the status flags of the open file description.
        let saved = fcntl(fd, FcntlArg::F_GETFL)
            .ok()
            .map(OFlag::from_bits_truncate);
        if let Some(flags) = saved {
            let _ = fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK));
        }
        NonBlocking {
            fd: fd.as_raw_fd(),
            saved,
        }
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if let Some(flags) = self.saved {
            // SAFETY: standard input or output, open for the life of the process.
            let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
            let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
        }
    }
}

/// Unblocks the signals `relay` blocked, however it returns.
struct Unblock(SigSet);

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&self.0), None);
    }
}

/// A line from nsx on standard error, in the middle of the container's output.
fn note(raw: bool, text: &str) {
    // In raw mode the terminal does not turn \n into \r\n.
    let end = if raw { "\r\n" } else { "\n" };
    write_all(libc::STDERR_FILENO, format!("nsx: {text}{end}").as_bytes());
}

/// Writes `data`, waiting a little when the descriptor is non-blocking and full; gives
/// up on any error (a note is worth less than the relay).
fn write_all(fd: libc::c_int, mut data: &[u8]) {
    // SAFETY: standard error stays open for the life of the process.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut stalls = 0;
    while !data.is_empty() {
        match retry(|| nix::unistd::write(borrowed, data)) {
            Ok(n) => data = &data[n..],
            Err(Errno::EAGAIN) if stalls < 10 => {
                stalls += 1;
                let mut fds = [PollFd::new(borrowed, PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8));
            }
            Err(_) => return,
        }
    }
}

/// pidfd_open(2): an fd that polls readable when the process exits. `None` on kernels
/// before 5.3.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a new descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
