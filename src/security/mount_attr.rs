//! Adding per-mount flags (read-only, nosuid, nodev, noexec) to a mount and every mount
//! below it, keeping the flags it has: how a runtime makes a rootfs `nosuid,nodev` or a
//! path such as /proc/sys read-only.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::error::{sys, Error, Result};

/// mount_setattr(2) attributes (linux/mount.h) nsx adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs(u64);

impl Attrs {
    pub const RDONLY: Attrs = Attrs(0x0000_0001);
    pub const NOSUID: Attrs = Attrs(0x0000_0002);
    pub const NODEV: Attrs = Attrs(0x0000_0004);
    pub const NOEXEC: Attrs = Attrs(0x0000_0008);

    pub const fn with(self, other: Attrs) -> Attrs {
        Attrs(self.0 | other.0)
    }

    fn has(self, other: Attrs) -> bool {
        self.0 & other.0 == other.0
    }

    /// `ro,nosuid`, as mount(8) names them.
    pub fn names(self) -> String {
        [
            (Attrs::RDONLY, "ro"),
            (Attrs::NOSUID, "nosuid"),
            (Attrs::NODEV, "nodev"),
            (Attrs::NOEXEC, "noexec"),
        ]
        .iter()
        .filter(|(a, _)| self.has(*a))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
    }

    fn ms_flags(self) -> MsFlags {
        let mut f = MsFlags::empty();
        for (a, m) in [
            (Attrs::RDONLY, MsFlags::MS_RDONLY),
            (Attrs::NOSUID, MsFlags::MS_NOSUID),
            (Attrs::NODEV, MsFlags::MS_NODEV),
            (Attrs::NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if self.has(a) {
                f |= m;
            }
        }
        f
    }
}

/// struct mount_attr (linux/mount.h), the version-0 layout (MOUNT_ATTR_SIZE_VER0 = 32).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Adds `attrs` to the mount at `root` and every mount below it.
///
/// mount_setattr(2) with AT_RECURSIVE sets just these flags on the whole tree and leaves
/// the others as they are. That matters in a user namespace, where the flags a mount
/// inherited from the host (ro, noexec, atime) are locked (mount_namespaces(7)): a
/// remount that left one out would fail with EPERM. Kernels before 5.12 have no
/// mount_setattr (ENOSYS): the top mount is remounted instead, with its current flags
/// (statvfs(3)) kept.
pub fn add_recursive(root: &Path, attrs: Attrs) -> Result<()> {
    let attr = MountAttr {
        attr_set: attrs.0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = cstring(root)?;
    // SAFETY: a valid NUL-terminated path and a struct mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::ENOSYS => remount_adding(root, attrs),
        e => Err(sys(
            format!("mount_setattr ({}, AT_RECURSIVE)", attrs.names()),
            root.display(),
            e,
        )),
    }
}

/// mount(2) with MS_REMOUNT | MS_BIND changes the per-mount flags of a bind mount; the
/// flags it does not name are cleared, so the current ones are read first.
fn remount_adding(root: &Path, attrs: Attrs) -> Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let current = statvfs(root).map_err(|e| sys("statvfs", root.display(), e))?;
    let f = current.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | attrs.ms_flags();
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, root, None::<&str>, flags, None::<&str>).map_err(|e| {
        sys(
            format!("mount -o remount,bind,{}", attrs.names()),
            root.display(),
            e,
        )
    })
}

fn cstring(p: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{}: a NUL byte in the path", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_named_as_mount_names_them() {
        let a = Attrs::RDONLY.with(Attrs::NOSUID);
        assert_eq!(a.names(), "ro,nosuid");
        assert_eq!(a.ms_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(Attrs::NODEV.with(Attrs::NOEXEC).names(), "nodev,noexec");
    }
}
