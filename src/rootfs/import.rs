//! `nsx rootfs import TAR DIR`: unpack a root filesystem tarball (e.g. `docker export`)
//! without ever writing outside DIR.
//!
//! The `tar` crate only parses the archive here; nsx creates every entry itself, each one
//! relative to a parent directory opened with openat2(RESOLVE_IN_ROOT) (see
//! [`super::inroot`]). A tarball that first makes `etc` a symlink to `/etc` and then
//! writes `etc/passwd` therefore resolves `/etc` inside DIR: it cannot reach the host's
//! file, whatever the order or depth of the links.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use super::inroot::{clean, ensure_dir, open_in_root, open_root, split, AsFdRef};
use crate::error::{sys, Context, Error, Result};

/// What an import created.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Imported {
    pub dirs: usize,
    pub files: usize,
    pub symlinks: usize,
    pub hardlinks: usize,
    pub devices: usize,
    /// Entries not created, with the reason (e.g. a device node when not root).
    pub skipped: Vec<String>,
}

/// Unpacks `tar` (a path, or `-` for standard input) into `dir`, which must not exist or
/// be empty.
pub fn import(tar: &Path, dir: &Path) -> Result<Imported> {
    let reader: Box<dyn Read> = if tar == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let meta = std::fs::metadata(tar).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Usage(format!("{}: no such file", tar.display()))
            }
            _ => crate::error::io("stat", tar, e),
        })?;
        if meta.is_dir() {
            return Err(Error::Usage(format!(
                "{} is a directory; give a tar archive (e.g. from docker export)",
                tar.display()
            )));
        }
        Box::new(std::fs::File::open(tar).ctx("open", tar.display())?)
    };
    super::prepare_empty_dir(dir)?;
    unpack(reader, dir, &tar.display().to_string())
}

/// Unpacks an archive stream into the existing directory `dir`.
pub fn unpack(reader: impl Read, dir: &Path, name: &str) -> Result<Imported> {
    let mut reader = BufReader::new(reader);
    let head = reader.fill_buf().ctx("read", name)?;
    if head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
    {
        return Err(Error::Usage(format!(
            "{name} is compressed; nsx reads plain tar: decompress it first (e.g. gunzip -c {name} | nsx rootfs import - DIR)"
        )));
    }
    let root = open_root(dir)?;
    let as_root = nix::unistd::geteuid().is_root();
    let mut out = Imported::default();
    let mut dir_modes: Vec<(PathBuf, u32, u64, u64)> = Vec::new();
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| Error::Other(format!("read {name}: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Other(format!("read {name}: {e}")))?;
        let raw_path = entry
            .path()
            .map_err(|e| Error::Other(format!("read {name}: bad path: {e}")))?
            .into_owned();
        let rel = clean(&raw_path).map_err(|why| {
            Error::Other(format!(
                "{name}: refusing entry {why}: it would climb out of the rootfs"
            ))
        })?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let context = |e: Error| match e {
            Error::Sys(mut s) => {
                s.target = format!("{} (entry {})", s.target, raw_path.display());
                Error::Sys(s)
            }
            other => other,
        };
        if rel.as_os_str().is_empty() {
            // "./": the root itself. Its mode is applied at the end like any directory.
            if kind.is_dir() {
                dir_modes.push((rel, mode, uid, gid));
            }
            continue;
        }
        let (parent, leaf) = split(&rel).expect("non-empty relative path");
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let fd = ensure_dir(root.as_fd_ref(), &rel, 0o755).map_err(context)?;
                drop(fd);
                dir_modes.push((rel, mode, uid, gid));
                out.dirs += 1;
            }
            T::Regular | T::Continuous => {
                let pfd = ensure_dir(root.as_fd_ref(), &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // openat(2) with O_CREAT|O_EXCL never follows a symlink in the last
                // component (it fails with EEXIST), and replace() removed the old entry.
                // SAFETY: valid dirfd and NUL-terminated name.
                let fd = unsafe {
                    libc::openat(
                        pfd.as_raw_fd(),
                        leaf.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(context(sys(
                        "openat (O_CREAT|O_EXCL)",
                        rel.display(),
                        Errno::last(),
                    )));
                }
                // SAFETY: openat returned a new descriptor.
                let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                std::io::copy(&mut entry, &mut file).ctx("write", rel.display())?;
                if as_root {
                    // chown before chmod: chown(2) clears set-user-ID bits.
                    nix::unistd::fchown(&file, Some(uid_of(uid)), Some(gid_of(gid)))
                        .ctx("fchown", rel.display())?;
                }
                nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(mode))
                    .ctx("fchmod", rel.display())?;
                out.files += 1;
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::Other(format!("{name}: {}: bad link: {e}", rel.display())))?
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "{name}: {}: symlink without a target",
                            rel.display()
                        ))
                    })?;
                let target = CString::new(target.as_os_str().as_bytes())
                    .map_err(|_| Error::Other(format!("{name}: NUL in a link target")))?;
                let pfd = ensure_dir(root.as_fd_ref(), &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // symlinkat(2) stores the target as text; nsx never follows it here.
                // SAFETY: valid dirfd and NUL-terminated strings.
                if unsafe { libc::symlinkat(target.as_ptr(), pfd.as_raw_fd(), leaf.as_ptr()) } != 0
                {
                    return Err(context(sys("symlinkat", rel.display(), Errno::last())));
                }
                if as_root {
                    nix::unistd::fchownat(
                        &pfd,
                        Path::new(std::ffi::OsStr::from_bytes(leaf.as_bytes())),
                        Some(uid_of(uid)),
                        Some(gid_of(gid)),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .ctx("fchownat", rel.display())?;
                }
                out.symlinks += 1;
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::Other(format!("{name}: {}: bad link: {e}", rel.display())))?
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "{name}: {}: hard link without a target",
                            rel.display()
                        ))
                    })?;
                let target_rel = clean(&target)
                    .map_err(|why| Error::Other(format!("{name}: refusing hard link to {why}")))?;
                let Some((tparent, tleaf)) = split(&target_rel) else {
                    return Err(Error::Other(format!(
                        "{name}: {}: empty hard link target",
                        rel.display()
                    )));
                };
                let tfd = open_in_root(
                    root.as_fd_ref(),
                    dot(&tparent),
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )
                .map_err(|e| context(sys("openat2 (RESOLVE_IN_ROOT)", tparent.display(), e)))?;
                let pfd = ensure_dir(root.as_fd_ref(), &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // linkat(2) without AT_SYMLINK_FOLLOW links the entry itself, never what a
                // symlink points to; both parents were resolved inside the root.
                // SAFETY: valid dirfds and NUL-terminated names.
                if unsafe {
                    libc::linkat(
                        tfd.as_raw_fd(),
                        tleaf.as_ptr(),
                        pfd.as_raw_fd(),
                        leaf.as_ptr(),
                        0,
                    )
                } != 0
                {
                    return Err(context(sys("linkat", rel.display(), Errno::last())));
                }
                out.hardlinks += 1;
            }
            T::Char | T::Block | T::Fifo => {
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if fmt != libc::S_IFIFO && !as_root {
                    out.skipped.push(format!(
                        "{}: device node (only root may create one)",
                        rel.display()
                    ));
                    continue;
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let pfd = ensure_dir(root.as_fd_ref(), &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // mknodat(2): the node is created in the resolved parent, never followed.
                // SAFETY: valid dirfd and NUL-terminated name.
                let r = unsafe {
                    libc::mknodat(
                        pfd.as_raw_fd(),
                        leaf.as_ptr(),
                        fmt | mode,
                        libc::makedev(major, minor),
                    )
                };
                if r != 0 {
                    let e = Errno::last();
                    out.skipped
                        .push(format!("{}: mknod failed: {e}", rel.display()));
                    continue;
                }
                out.devices += 1;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => out.skipped.push(format!(
                "{}: unsupported entry type {other:?}",
                rel.display()
            )),
        }
    }
    // Directory modes last, deepest first, so a read-only directory did not stop the
    // entries below it from being created. Each directory is opened again inside the
    // root with O_NOFOLLOW: a later entry may have replaced it with a symlink.
    dir_modes.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (rel, mode, uid, gid) in dir_modes {
        let fd = match open_in_root(
            root.as_fd_ref(),
            dot(&rel),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => continue,
            Err(e) => return Err(sys("openat2 (RESOLVE_IN_ROOT)", rel.display(), e)),
        };
        if as_root {
            nix::unistd::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))
                .ctx("fchown", rel.display())?;
        }
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
            .ctx("fchmod", rel.display())?;
    }
    Ok(out)
}

fn dot(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

fn uid_of(n: u64) -> nix::unistd::Uid {
    nix::unistd::Uid::from_raw(n as u32)
}

fn gid_of(n: u64) -> nix::unistd::Gid {
    nix::unistd::Gid::from_raw(n as u32)
}

/// Removes an existing non-directory (or empty directory) `leaf` in `parent`, as tar does
/// when a later entry replaces an earlier one. unlinkat(2) acts on the name itself.
fn replace(parent: &OwnedFd, leaf: &CString, rel: &Path) -> Result<()> {
    // SAFETY: valid dirfd and NUL-terminated name.
    if unsafe { libc::unlinkat(parent.as_raw_fd(), leaf.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::ENOENT => Ok(()),
        Errno::EISDIR => {
            // SAFETY: as above.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), leaf.as_ptr(), libc::AT_REMOVEDIR) } == 0
            {
                Ok(())
            } else {
                Err(sys("rmdir (to replace it)", rel.display(), Errno::last()))
            }
        }
        e => Err(sys("unlinkat", rel.display(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_size(0);
        h
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, 0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = header(kind, 0o777);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn an_ordinary_rootfs_unpacks() {
        let tar = archive(|b| {
            let mut h = header(tar::EntryType::Directory, 0o755);
            b.append_data(&mut h, "bin/", &[][..]).unwrap();
            file(b, "bin/busybox", b"#!fake\n");
            link(b, tar::EntryType::Symlink, "bin/sh", "busybox");
            link(b, tar::EntryType::Symlink, "etc/mtab", "/proc/mounts");
            link(b, tar::EntryType::Link, "bin/ash", "bin/busybox");
            file(b, "etc/hostname", b"box\n");
        });
        let dir = tempfile::tempdir().unwrap();
        let got = unpack(&tar[..], dir.path(), "test.tar").unwrap();
        assert_eq!(
            (got.dirs, got.files, got.symlinks, got.hardlinks),
            (1, 2, 2, 1)
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("etc/mtab")).unwrap(),
            Path::new("/proc/mounts")
        );
        assert_eq!(
            std::fs::read(dir.path().join("bin/ash")).unwrap(),
            b"#!fake\n"
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/hostname")).unwrap(),
            b"box\n"
        );
    }

    #[test]
    fn an_absolute_symlink_cannot_carry_a_write_outside() {
        let outside = tempfile::tempdir().unwrap();
        let canary = outside.path().join("passwd");
        let tar = archive(|b| {
            link(
                b,
                tar::EntryType::Symlink,
                "etc",
                outside.path().to_str().unwrap(),
            );
            file(b, "etc/passwd", b"hostile\n");
        });
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], dir.path(), "hostile.tar").unwrap_err();
        assert!(e.to_string().contains("etc/passwd"), "{e}");
        assert!(!canary.exists(), "the import wrote outside the rootfs");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_symlinked_parent_is_followed_only_inside() {
        // usr/lib -> /lib is common in real images: a file under it lands in DIR/lib.
        let tar = archive(|b| {
            let mut h = header(tar::EntryType::Directory, 0o755);
            b.append_data(&mut h, "lib/", &[][..]).unwrap();
            link(b, tar::EntryType::Symlink, "usr/lib", "/lib");
            file(b, "usr/lib/libx.so", b"x");
        });
        let dir = tempfile::tempdir().unwrap();
        unpack(&tar[..], dir.path(), "t.tar").unwrap();
        assert_eq!(std::fs::read(dir.path().join("lib/libx.so")).unwrap(), b"x");
    }

    #[test]
    fn dotdot_and_compression_are_refused() {
        let mut h = header(tar::EntryType::Regular, 0o644);
        h.set_size(1);
        // set_path refuses "..", so write the name bytes directly.
        h.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], dir.path(), "t.tar")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'..'"), "{e}");
        let e = unpack(&[0x1f, 0x8b, 8, 0][..], dir.path(), "t.tar.gz").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("gunzip"));
    }
}
