//! Diagnostics on standard error that can never panic.
//!
//! `eprintln!` panics when standard error cannot be written (`2>/dev/full`, a closed
//! pipe, a terminal that hung up), and a panic inside `Drop` during unwinding aborts the
//! process before the rest of the clean-up runs. A warning is worth less than removing a
//! cgroup, so nsx writes them with [`warn`], which ignores write errors.

use std::io::Write;

/// Writes one line to standard error, ignoring any error.
pub fn warn(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `warn!("could not remove {}", path)`: like `eprintln!`, but never panics.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::diag::warn(format_args!($($arg)*))
    };
}
