//! SIGINT, SIGTERM and SIGHUP end a lesson cleanly.
//!
//! The handler only records the signal. It is installed without SA_RESTART, so a blocking
//! read or waitpid in nsx returns EINTR; the caller sees [`check`] fail, returns
//! `Error::Interrupted`, and every guard on the way out (probe process, temp dir, cgroup,
//! veth) removes what it owns. main then exits with 128 + the signal number.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);
/// Write end of the self-pipe: a wait that must not miss a signal (the --step pause)
/// polls its read end, so a signal that lands just before the wait still wakes it.
static WAKE_W: AtomicI32 = AtomicI32::new(-1);
static WAKE_R: AtomicI32 = AtomicI32::new(-1);

const HANDLED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

extern "C" fn record(sig: libc::c_int) {
    // Only an atomic store and write(2): both async-signal-safe (signal-safety(7)).
    PENDING.store(sig, Ordering::SeqCst);
    let fd = WAKE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writing one byte from a valid buffer; a full pipe just drops it.
        unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
    }
}

/// Installs the recording handler in nsx (the parent).
pub fn install() {
    if let Ok((r, w)) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
    {
        use std::os::fd::IntoRawFd;
        WAKE_R.store(r.into_raw_fd(), Ordering::SeqCst);
        WAKE_W.store(w.into_raw_fd(), Ordering::SeqCst);
    }
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in HANDLED {
        // SAFETY: the handler only stores into an atomic.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// In a freshly cloned probe: back to the default dispositions, so a terminal's Ctrl-C
/// reaches it like any process (a PID 1 still ignores it: that is a lesson of its own).
pub fn reset_in_child() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in HANDLED {
        // SAFETY: restoring the default disposition has no preconditions.
        unsafe {
            let _ = sigaction(sig, &default);
        }
    }
}

/// The signal that arrived, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Fails with `Error::Interrupted` once a handled signal has arrived.
pub fn check() -> Result<()> {
    match pending() {
        Some(sig) => Err(Error::Interrupted(sig)),
        None => Ok(()),
    }
}

/// The read end of the self-pipe, readable once a handled signal has arrived.
pub fn wake_fd() -> Option<std::os::fd::BorrowedFd<'static>> {
    let fd = WAKE_R.load(Ordering::SeqCst);
    // SAFETY: the descriptor is opened once in install() and never closed.
    (fd >= 0).then(|| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}
