//! What the container's root may do: no device nodes and no setuid programs from the
//! image, and Docker's default capabilities.
//!
//! A rootfs is whatever someone put in a directory or a tarball: it may hold a device
//! node for the host's disk (`mknod sda b 8 0` in the image) or a setuid-root shell. As
//! root, nsx would hand both to the container. Runtimes close that with three things, and
//! so does `nsx run`:
//! - the rootfs is mounted `nodev` (a device node on it cannot be opened: EACCES) and
//!   `nosuid` (the setuid and setgid bits, and file capabilities, are ignored at execve);
//! - the container's /dev is a `nodev` tmpfs too; the few devices a program expects
//!   (/dev/null, /dev/zero, /dev/tty, ...) are bind mounts of the host's nodes, and a bind
//!   mount keeps the flags of the mount it came from (the host's /dev), so they still open;
//! - the command runs with Docker's default capabilities ([`crate::caps::DOCKER_DEFAULT`]):
//!   no CAP_SYS_ADMIN (mount, pivot_root again), no CAP_SYS_MODULE, CAP_SYS_RAWIO, ...

use std::path::Path;

use crate::error::Result;
use crate::security::mount_attr::{self, Attrs};

/// Makes the mount at `root` and every mount below it `nosuid` and `nodev`
/// ([`mount_attr::add_recursive`]).
pub fn nosuid_nodev(root: &Path) -> Result<()> {
    mount_attr::add_recursive(root, Attrs::NOSUID.with(Attrs::NODEV))
}

/// Leaves this process with `keep` in its bounding, permitted and effective sets, nothing
/// inheritable and no ambient capabilities: see [`crate::security::capset::limit_to`].
pub fn drop_capabilities(keep: u64) -> Result<u64> {
    crate::security::capset::limit_to(keep)
}
