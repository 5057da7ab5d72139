//! SIGINT, SIGTERM and SIGHUP end a lesson cleanly.
//!
//! The handler only records the signal. It is installed without SA_RESTART, so a blocking
//! read or waitpid in nsx returns EINTR; the caller sees [`check`] fail, returns
//! `Error::Interrupted`, and every guard on the way out (probe process, temp dir, cgroup,
//! veth) removes what it owns. main then exits with 128 + the signal number.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);
/// Write end of the self-pipe: a wait that must not miss a signal (the --step pause)
/// polls its read end, so a signal that lands just before the wait still wakes it.
static WAKE_W: AtomicI32 = AtomicI32::new(-1);
static WAKE_R: AtomicI32 = AtomicI32::new(-1);

/// Every signal recorded since the last [`take_all`], one bit per signal number, for
/// callers that forward signals instead of stopping (`nsx run`).
static SEEN: AtomicU64 = AtomicU64::new(0);

const HANDLED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

extern "C" fn record(sig: libc::c_int) {
    // Only an atomic store and write(2): both async-signal-safe (signal-safety(7)).
    PENDING.store(sig, Ordering::SeqCst);
    let fd = WAKE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writing one byte from a valid buffer; a full pipe just drops it.
        unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
    }
    if (1..64).contains(&sig) {
        SEEN.fetch_or(1 << sig, Ordering::SeqCst);
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

/// Records `sig` too (e.g. SIGWINCH for `nsx run -t`), with the same handler.
pub fn watch(sig: Signal) {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores into atomics.
    unsafe {
        let _ = sigaction(sig, &action);
    }
}

/// The signals recorded since the last call, lowest number first, and clears them (and
/// the pending one [`check`] looks at): for a caller that handles each signal itself.
pub fn take_all() -> Vec<i32> {
    let bits = SEEN.swap(0, Ordering::SeqCst);
    PENDING.store(0, Ordering::SeqCst);
    (1..64).filter(|s| bits & (1 << s) != 0).collect()
}

/// In a freshly cloned probe: back to the default dispositions, so a terminal's Ctrl-C
/// reaches it like any process (a PID 1 still ignores it: that is a lesson of its own).
/// A signal nsx recorded just before the clone is nsx's to act on, not the probe's: the
/// probe's copy of the record is cleared, or it would report "interrupted" as a failure
/// of its own while nsx cleans up as for an interruption.
pub fn reset_in_child() {
    PENDING.store(0, Ordering::SeqCst);
    SEEN.store(0, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_starts_with_no_recorded_signal() {
        // As if SIGINT had landed in nsx just before the clone.
        record(libc::SIGINT);
        assert_eq!(pending(), Some(libc::SIGINT));
        reset_in_child();
        assert_eq!(pending(), None);
        assert!(check().is_ok());
        assert!(take_all().is_empty());
    }
}
