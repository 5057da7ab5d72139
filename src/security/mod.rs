//! What keeps a container's root in check besides namespaces and cgroups: seccomp
//! filters built from profiles in Docker's format ([`seccomp`]), and the system call
//! tables they need ([`syscalls`]).

pub mod seccomp;
pub mod syscalls;
