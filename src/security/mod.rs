//! What keeps a container's root in check when there is no user namespace (Docker's,
//! containerd's and Kubernetes' default): root in the container is uid 0 on the host, and
//! what stops it is a stack of layers, each a library piece here that the lessons show
//! and `nsx run` applies.
//!
//! - [`capset`]: the capability sets (capabilities(7)), no_new_privs (prctl(2)) and the
//!   ambient set; the names and Docker's default set are in [`crate::caps`].
//! - [`masks`]: the paths in /proc and /sys runtimes mask or make read-only, a read-only
//!   /sys and a minimal /dev.
//! - [`lsm`]: which Linux Security Modules are active, and Landlock.
//! - [`mount_attr`]: adding read-only, nosuid, nodev and noexec to a mount tree.
//! - [`helper`]: the tiny program the lessons make a setuid-root copy of.
//! - [`seccomp`]: seccomp filters built from profiles in Docker's format, with the
//!   system call tables they need in [`syscalls`].

pub mod capset;
pub mod helper;
pub mod lsm;
pub mod masks;
pub mod mount_attr;
pub mod seccomp;
pub mod syscalls;
