//! One file per command; main.rs parses and dispatches.

pub(crate) mod lesson;
pub(crate) mod lessons;
pub(crate) mod output;
pub(crate) mod present;
pub(crate) mod rootfs;
pub(crate) mod tour;
pub(crate) mod usage;
