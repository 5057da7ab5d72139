//! Paths resolved inside a root directory, never outside it.
//!
//! A rootfs is somebody else's tree: `etc` may be a symlink to `/etc`, `lib` to
//! `../../..`. Opening `DIR/etc/passwd` with open(2) would follow that link out of DIR
//! and, as root, write the host's `/etc/passwd`. openat2(2) with `RESOLVE_IN_ROOT` treats
//! the directory fd as "/" for the whole lookup, as if the process had chrooted there:
//! absolute symlinks and `..` stay inside. Every other operation then acts on the last
//! component only (mkdirat, symlinkat, linkat, unlinkat, openat with O_NOFOLLOW), relative
//! to a parent directory fd obtained this way, so no path is ever resolved twice.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::error::{sys, Error, Result};
use crate::fsat::printable_path as shown;

/// `struct open_how` of openat2(2) (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2) with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: `path` is looked up as if
/// `root` were "/", and /proc magic links (which could jump anywhere) are refused.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `how` is a valid open_how of the size passed; `c` is NUL-terminated.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        match Errno::last() {
            // openat2(2): EAGAIN when a concurrent rename raced the lookup; retry.
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Opens a directory to act as the root of the lookups above (O_PATH: no read access is
/// needed to use it as a dirfd).
pub fn open_root(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| sys("open", dir.display(), e))
}

/// An archive or command path made relative and plain: leading `/` and `.` dropped.
/// `..` is refused: inside a rootfs it can only mean an attempt to climb out, and a
/// path with it cannot be shown to the student as the place a file went.
pub fn clean(path: &Path) -> std::result::Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(format!(
                    "{}: contains '..'",
                    crate::fsat::printable_path(path)
                ));
            }
            Component::Prefix(_) => {
                return Err(format!(
                    "{}: not a Unix path",
                    crate::fsat::printable_path(path)
                ))
            }
        }
    }
    Ok(out)
}

/// The parent of a cleaned, non-empty relative path and its last component.
pub fn split(rel: &Path) -> Option<(PathBuf, CString)> {
    let name = rel.file_name()?;
    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    Some((parent, CString::new(name.as_bytes()).ok()?))
}

/// An O_PATH fd of the directory `rel` inside `root`, creating missing components with
/// `mode` (like mkdir -p, but every step resolved inside the root).
pub fn ensure_dir(root: BorrowedFd<'_>, rel: &Path, mode: libc::mode_t) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match open_in_root(root, dir_or_dot(rel), flags, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys("openat2 (RESOLVE_IN_ROOT)", shown(rel), e)),
    }
    let mut so_far = PathBuf::new();
    for comp in rel.components() {
        let parent = ensure_existing(root, &so_far)?;
        so_far.push(comp);
        let name = CString::new(comp.as_os_str().as_bytes())
            .map_err(|_| Error::Other(format!("{}: NUL in path", shown(rel))))?;
        // mkdirat(2) never follows a symlink in its last component: EEXIST instead.
        // SAFETY: a valid dirfd and a NUL-terminated name.
        let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
        if r != 0 && Errno::last() != Errno::EEXIST {
            return Err(sys("mkdirat", shown(&so_far), Errno::last()));
        }
    }
    ensure_existing(root, rel)
}

fn ensure_existing(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd> {
    open_in_root(root, dir_or_dot(rel), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| sys("openat2 (RESOLVE_IN_ROOT)", shown(rel), e))
}

fn dir_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// fstat(2) of an fd.
pub fn fstat(fd: BorrowedFd<'_>) -> nix::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is a valid out pointer for one struct stat.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if r == 0 {
        // SAFETY: fstat filled it.
        Ok(unsafe { st.assume_init() })
    } else {
        Err(Errno::last())
    }
}

/// An executable regular file at `path` inside `root` (symlinks followed, inside the root).
pub fn is_executable_in(root: &Path, path: &Path) -> Result<bool> {
    let fd = open_root(root)?;
    let Ok(rel) = clean(path) else {
        return Ok(false);
    };
    match open_in_root(fd.as_fd_ref(), &rel, libc::O_PATH, 0) {
        Ok(f) => {
            let st = fstat(f.as_fd_ref()).map_err(|e| sys("fstat", path.display(), e))?;
            Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0)
        }
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(false),
        Err(e) => Err(sys("openat2 (RESOLVE_IN_ROOT)", path.display(), e)),
    }
}

/// `fd.as_fd()` without importing the trait at every call site.
pub trait AsFdRef {
    fn as_fd_ref(&self) -> BorrowedFd<'_>;
}

impl AsFdRef for OwnedFd {
    fn as_fd_ref(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_and_dotdot_is_refused() {
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(clean(Path::new("./bin/sh")).unwrap(), Path::new("bin/sh"));
        assert_eq!(clean(Path::new("./")).unwrap(), Path::new(""));
        assert!(clean(Path::new("a/../../etc")).is_err());
    }

    #[test]
    fn an_absolute_symlink_resolves_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        let fd = open_root(root.path()).unwrap();
        let d = ensure_dir(fd.as_fd_ref(), Path::new("link/sub"), 0o755).unwrap();
        drop(d);
        assert!(root.path().join("real/sub").is_dir());
        // "out" points at a directory outside; inside the root that path does not exist.
        assert!(ensure_dir(fd.as_fd_ref(), Path::new("out/x"), 0o755).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
