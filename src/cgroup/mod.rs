//! cgroups: what a process may *use*, where namespaces decide what it may *see*.
//!
//! This first part finds the cgroup setup (mode, mounts, our own cgroups), performs and
//! records cgroup file operations, and parses the counters the limit lessons show.

pub mod fs;
pub mod layout;
pub mod stats;

pub use fs::{Action, CgroupFs, Op, RealFs, Recorder};
pub use layout::{CgroupMount, Layout, Membership, Mode};
pub use stats::{CpuStats, MemoryStats, PidsStats};
