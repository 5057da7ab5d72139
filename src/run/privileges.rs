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

use nix::errno::Errno;

use crate::error::{sys, Result};

/// mount_setattr(2) attributes (linux/mount.h).
const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;

/// struct mount_attr (linux/mount.h), the version-0 layout (MOUNT_ATTR_SIZE_VER0 = 32).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `root` and every mount below it `nosuid` and `nodev`.
///
/// mount_setattr(2) with AT_RECURSIVE sets just these two flags on the whole tree and
/// leaves the others as they are. That matters in a user namespace, where the flags a
/// mount inherited from the host (ro, noexec, atime) are locked (mount_namespaces(7)): a
/// remount that left one out would fail with EPERM. Kernels before 5.12 have no
/// mount_setattr (ENOSYS): the top mount is remounted instead, with its current flags
/// (statvfs(3)) kept.
pub fn nosuid_nodev(root: &Path) -> Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
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
        Errno::ENOSYS => remount_nosuid_nodev(root),
        e => Err(sys(
            "mount_setattr (nosuid, nodev, AT_RECURSIVE)",
            root.display(),
            e,
        )),
    }
}

/// mount(2) with MS_REMOUNT | MS_BIND changes the per-mount flags of a bind mount; the
/// flags it does not name are cleared, so the current ones are read first.
fn remount_nosuid_nodev(root: &Path) -> Result<()> {
    use nix::mount::MsFlags;
    use nix::sys::statvfs::{statvfs, FsFlags};
    let current = statvfs(root).map_err(|e| sys("statvfs", root.display(), e))?;
    let f = current.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, root, None::<&str>, flags, None::<&str>)
        .map_err(|e| sys("mount -o remount,bind,nosuid,nodev", root.display(), e))
}

fn cstring(p: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| crate::error::Error::Usage(format!("{}: a NUL byte in the path", p.display())))
}

/// capget(2)/capset(2) header, _LINUX_CAPABILITY_VERSION_3 (64-bit sets, two words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// This process's permitted set (capget(2)).
fn permitted() -> Result<u64> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a v3 header and the two data words v3 fills.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(sys("capget", "this process", Errno::last()));
    }
    Ok(u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32)
}

/// Leaves this process with `keep` (as far as it holds them) in its bounding, permitted
/// and effective sets, nothing inheritable and no ambient capabilities; the next execve
/// keeps exactly that (capabilities(7): for a root process the new permitted set is the
/// bounding set, and the inheritable and ambient sets add nothing).
///
/// The inheritable set is left empty as Docker does since 20.10.14 (CVE-2022-24769): a
/// non-empty one lets any user inside gain a capability from a program that carries it in
/// its inheritable file capabilities.
///
/// Order: the bounding set first, because prctl(PR_CAPBSET_DROP) needs CAP_SETPCAP in the
/// effective set, which capset(2) may drop after it.
pub fn drop_capabilities(keep: u64) -> Result<u64> {
    let keep = keep & permitted()?;
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // prctl(2) PR_CAPBSET_DROP: EINVAL once `cap` is past the last capability this
        // kernel knows (/proc/sys/kernel/cap_last_cap): the numbers are contiguous.
        // SAFETY: PR_CAPBSET_DROP takes a capability number.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            match Errno::last() {
                Errno::EINVAL => break,
                e => return Err(sys("prctl PR_CAPBSET_DROP", crate::caps::name(cap), e)),
            }
        }
    }
    // prctl(2) PR_CAP_AMBIENT_CLEAR_ALL (Linux 4.3; EINVAL before, where there are no
    // ambient capabilities to clear).
    // SAFETY: PR_CAP_AMBIENT with PR_CAP_AMBIENT_CLEAR_ALL takes no pointer.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
        && Errno::last() != Errno::EINVAL
    {
        return Err(sys("prctl PR_CAP_AMBIENT_CLEAR_ALL", "", Errno::last()));
    }
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let word = |i: u32| (keep >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(i),
        permitted: word(i),
        inheritable: 0,
    });
    // SAFETY: a v3 header and two data words, read by the kernel.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(sys(
            "capset",
            format!("{:#x} (Docker's default capabilities)", keep),
            Errno::last(),
        ));
    }
    Ok(keep)
}
