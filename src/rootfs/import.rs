//! `nsx rootfs import TAR DIR`: unpack a root filesystem tarball (e.g. `docker export`)
//! without ever writing outside DIR.
//!
//! The `tar` crate only parses the archive here; nsx creates every entry itself, each one
//! relative to a parent directory opened with openat2(RESOLVE_IN_ROOT) (see
//! [`super::inroot`]). A tarball that first makes `etc` a symlink to `/etc` and then
//! writes `etc/passwd` therefore resolves `/etc` inside DIR: it cannot reach the host's
//! file, whatever the order or depth of the links.

use std::ffi::CString;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use super::inroot::{clean, ensure_dir, open_in_root, split};
use crate::error::{sys, Context, Error, Result};
use crate::fsat::{printable, printable_path as shown, Dir};

/// What the archive may bring in beyond plain files, links and directories.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Create the archive's device nodes (root only). Off by default: a device node
    /// with a permissive mode gives anyone who can reach it the device itself (a disk
    /// read raw, /dev/mem), whatever the host's /dev says.
    pub keep_devices: bool,
    /// Keep set-user-ID and set-group-ID bits on files. Off by default: an archive's
    /// setuid-root shell would let any user who can reach DIR become root.
    pub keep_setid: bool,
}

/// What an import created.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Imported {
    pub dirs: usize,
    pub files: usize,
    pub symlinks: usize,
    pub hardlinks: usize,
    /// Device nodes and FIFOs created.
    pub devices: usize,
    /// Device nodes not created because --keep-devices was not given.
    pub devices_skipped: usize,
    /// Files whose set-user-ID / set-group-ID bits were cleared (no --keep-setid).
    pub setid_stripped: usize,
    /// Other entries not created, with the reason (e.g. a device node when not root).
    pub skipped: Vec<String>,
}

/// errno values that say the host failed (a full disk, an I/O error), not the archive.
const HOST_ERRNOS: [Errno; 8] = [
    Errno::ENOSPC,
    Errno::EDQUOT,
    Errno::EIO,
    Errno::EMFILE,
    Errno::ENFILE,
    Errno::ENOMEM,
    Errno::EROFS,
    Errno::EFBIG,
];

/// Compressed formats, by their magic bytes, and the command that undoes each.
const COMPRESSED: [(&[u8], &str, &str); 6] = [
    (&[0x1f, 0x8b], "gzip", "gunzip -c"),
    (b"BZh", "bzip2", "bunzip2 -c"),
    (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz", "xz -dc"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "zstd -dc"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4", "lz4 -dc"),
    (&[0x02, 0x21, 0x4c, 0x18], "lz4 (legacy format)", "lz4 -dc"),
];

/// Unpacks `tar` (a path, or `-` for standard input) to `dir`, which nsx creates (or an
/// existing empty directory the caller owns; see [`super::Staging`]). The archive is
/// unpacked into a private directory next to `dir` and renamed into place only when all
/// of it was: a failed import leaves nothing.
pub fn import(tar: &Path, dir: &Path, opts: Options) -> Result<Imported> {
    let name = shown(tar);
    let reader: Box<dyn Read> = if tar == Path::new("-") {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(Error::Usage(
                "standard input is a terminal: `nsx rootfs import - DIR` reads an archive from a pipe (e.g. docker export C | nsx rootfs import - DIR)".into(),
            ));
        }
        Box::new(stdin.lock())
    } else {
        let meta = std::fs::metadata(tar).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!("{name}: no such file")),
            _ => crate::error::io("stat", Path::new(&name), e),
        })?;
        if meta.is_dir() {
            return Err(Error::Usage(format!(
                "{name} is a directory; give a tar archive (e.g. from docker export)"
            )));
        }
        Box::new(std::fs::File::open(tar).ctx("open", &name)?)
    };
    // The archive's first bytes are checked before anything is created.
    let mut reader = BufReader::new(reader);
    refuse_compressed(&mut reader, &name)?;
    let staging = super::Staging::new(dir, "import")?;
    let (got, root_mode) = unpack_into(reader, staging.dir(), &name, opts)?;
    if staging.is_new() && !root_mode {
        staging.dir().chmod(0o755)?;
    }
    staging.commit()?;
    Ok(got)
}

/// Exit 2, naming the decompressor, when the stream starts like a compressed file.
fn refuse_compressed(reader: &mut impl BufRead, name: &str) -> Result<()> {
    let head = reader.fill_buf().ctx("read", name)?;
    for (magic, format, undo) in COMPRESSED {
        if head.starts_with(magic) {
            let tool = undo.split_whitespace().next().unwrap_or(undo);
            return Err(Error::Usage(format!(
                "{name} is compressed with {format}: decompress it first ({tool} is needed), e.g. {undo} {name} | nsx rootfs import - DIR"
            )));
        }
    }
    Ok(())
}

/// Unpacks an archive stream into the existing directory `root` (used by tests).
pub fn unpack(reader: impl Read, root: &Dir, name: &str, opts: Options) -> Result<Imported> {
    let mut reader = BufReader::new(reader);
    refuse_compressed(&mut reader, name)?;
    unpack_into(reader, root, name, opts).map(|(got, _)| got)
}

/// Every error of an unpack, sorted: the host's (disk full, I/O) stay exit 1, while any
/// other failure of a write inside the new tree was asked for by the archive (a link
/// loop, a file where a directory must be, an entry replacing a non-empty directory):
/// exit 2, naming the archive.
fn blame(name: &str, e: Error) -> Error {
    match e {
        Error::Sys(s) if HOST_ERRNOS.contains(&s.errno) => Error::Sys(s),
        Error::Sys(s) => Error::Usage(format!("{name}: {s}")),
        Error::Other(text) => Error::Usage(format!("{name}: {text}")),
        other => other,
    }
}

/// A parse error of the tar crate: its text may quote the archive's bytes (a path), so
/// it is made printable. An I/O error of the underlying read is the host's.
fn read_error(name: &str, what: &str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(_) => crate::error::io("read", Path::new(name), e),
        None => Error::Usage(format!(
            "{name}: {what}: {} (a corrupt or truncated archive)",
            printable(e.to_string().as_bytes())
        )),
    }
}

fn unpack_into(
    reader: impl Read,
    root: &Dir,
    name: &str,
    opts: Options,
) -> Result<(Imported, bool)> {
    unpack_entries(reader, root, name, opts).map_err(|e| blame(name, e))
}

fn unpack_entries(
    reader: impl Read,
    root: &Dir,
    name: &str,
    opts: Options,
) -> Result<(Imported, bool)> {
    let root_fd = root.fd();
    let as_root = nix::unistd::geteuid().is_root();
    let mut out = Imported::default();
    let mut dir_modes: Vec<(PathBuf, u32, u32, u32)> = Vec::new();
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| read_error(name, "read", e))?;
    for entry in entries {
        // Ctrl-C between two entries: the staged tree is removed on the way out.
        crate::sandbox::signals::check()?;
        let mut entry = entry.map_err(|e| read_error(name, "read an entry header", e))?;
        let raw_path = entry
            .path()
            .map_err(|e| read_error(name, "bad path", e))?
            .into_owned();
        let rel = clean(&raw_path).map_err(|_| {
            Error::Usage(format!(
                "{name}: refusing entry {}: it contains '..' and would climb out of the rootfs",
                shown(&raw_path)
            ))
        })?;
        let header = entry.header();
        let kind = header.entry_type();
        let what = shown(&raw_path);
        // A field left empty (all NUL or spaces, as some writers do) means the default,
        // as it always did here: mode 0644, owner 0. A field that holds anything else
        // must be a number.
        let old = header.as_old();
        let mode = if blank(&old.mode) {
            0o644
        } else {
            header
                .mode()
                .map_err(|e| read_error(name, &format!("entry {what}: mode"), e))?
                & 0o7777
        };
        let uid = if blank(&old.uid) {
            0
        } else {
            id(header.uid(), name, &what, "uid")?
        };
        let gid = if blank(&old.gid) {
            0
        } else {
            id(header.gid(), name, &what, "gid")?
        };
        let context = |e: Error| match e {
            Error::Sys(mut s) => {
                s.target = format!("{} (entry {what})", s.target);
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
        let Some((parent, leaf)) = split(&rel) else {
            return Err(Error::Usage(format!(
                "{name}: entry {what}: not a file name"
            )));
        };
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let fd = ensure_dir(root_fd, &rel, 0o755).map_err(context)?;
                drop(fd);
                dir_modes.push((rel, mode, uid, gid));
                out.dirs += 1;
            }
            T::Regular | T::Continuous => {
                let mut mode = mode;
                if !opts.keep_setid && mode & 0o6000 != 0 {
                    mode &= !0o6000;
                    out.setid_stripped += 1;
                }
                let pfd = ensure_dir(root_fd, &parent, 0o755).map_err(context)?;
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
                        shown(&rel),
                        Errno::last(),
                    )));
                }
                // SAFETY: openat returned a new descriptor.
                let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                copy(&mut entry, &mut file, name, &rel)?;
                if as_root {
                    // chown before chmod: chown(2) clears set-user-ID bits.
                    nix::unistd::fchown(&file, Some(uid_of(uid)), Some(gid_of(gid)))
                        .ctx("fchown", shown(&rel))?;
                }
                nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(mode))
                    .ctx("fchmod", shown(&rel))?;
                out.files += 1;
            }
            T::Symlink => {
                let target = link_name(&entry, name, &what, "symlink")?;
                let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| {
                    Error::Usage(format!("{name}: entry {what}: NUL in a link target"))
                })?;
                let pfd = ensure_dir(root_fd, &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // symlinkat(2) stores the target as text; nsx never follows it here.
                // SAFETY: valid dirfd and NUL-terminated strings.
                if unsafe { libc::symlinkat(target.as_ptr(), pfd.as_raw_fd(), leaf.as_ptr()) } != 0
                {
                    return Err(context(sys("symlinkat", shown(&rel), Errno::last())));
                }
                if as_root {
                    nix::unistd::fchownat(
                        &pfd,
                        Path::new(std::ffi::OsStr::from_bytes(leaf.as_bytes())),
                        Some(uid_of(uid)),
                        Some(gid_of(gid)),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .ctx("fchownat", shown(&rel))?;
                }
                out.symlinks += 1;
            }
            T::Link => {
                let target = link_name(&entry, name, &what, "hard link")?;
                let target_rel = clean(&target).map_err(|_| {
                    Error::Usage(format!(
                        "{name}: entry {what}: refusing a hard link to {}: it contains '..'",
                        shown(&target)
                    ))
                })?;
                let Some((tparent, tleaf)) = split(&target_rel) else {
                    return Err(Error::Usage(format!(
                        "{name}: entry {what}: empty hard link target"
                    )));
                };
                let tfd = open_in_root(root_fd, dot(&tparent), libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| context(sys("openat2 (RESOLVE_IN_ROOT)", shown(&tparent), e)))?;
                let pfd = ensure_dir(root_fd, &parent, 0o755).map_err(context)?;
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
                    return Err(context(sys("linkat", shown(&rel), Errno::last())));
                }
                out.hardlinks += 1;
            }
            T::Char | T::Block | T::Fifo => {
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if fmt != libc::S_IFIFO {
                    if !opts.keep_devices {
                        out.devices_skipped += 1;
                        continue;
                    }
                    if !as_root {
                        out.skipped
                            .push(format!("{what}: device node (only root may create one)"));
                        continue;
                    }
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let pfd = ensure_dir(root_fd, &parent, 0o755).map_err(context)?;
                replace(&pfd, &leaf, &rel).map_err(context)?;
                // mknodat(2): the node is created in the resolved parent, never followed.
                // Its set-id bits go the way of a file's.
                let mode = if opts.keep_setid {
                    mode
                } else {
                    mode & !0o6000
                };
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
                    out.skipped.push(format!("{what}: mknod failed: {e}"));
                    continue;
                }
                out.devices += 1;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => out
                .skipped
                .push(format!("{what}: unsupported entry type {other:?}")),
        }
    }
    // Directory modes last, deepest first, so a read-only directory did not stop the
    // entries below it from being created. Each directory is opened again inside the
    // root with O_NOFOLLOW: a later entry may have replaced it with a symlink.
    dir_modes.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    let mut root_mode = false;
    for (rel, mode, uid, gid) in dir_modes {
        let fd = match open_in_root(
            root_fd,
            dot(&rel),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => continue,
            Err(e) => return Err(sys("openat2 (RESOLVE_IN_ROOT)", shown(&rel), e)),
        };
        if as_root {
            nix::unistd::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))
                .ctx("fchown", shown(&rel))?;
        }
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
            .ctx("fchmod", shown(&rel))?;
        root_mode |= rel.as_os_str().is_empty();
    }
    Ok((out, root_mode))
}

/// Copies an entry's data: a short read is the archive's fault (truncated), a failed
/// write the host's.
fn copy(entry: &mut impl Read, file: &mut std::fs::File, name: &str, rel: &Path) -> Result<()> {
    use std::io::Write;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(name, &format!("entry {}", shown(rel)), e)),
        };
        file.write_all(&buf[..n]).ctx("write", shown(rel))?;
    }
}

/// A link entry's target, or exit 2 naming the entry.
fn link_name<R: Read>(
    entry: &tar::Entry<'_, R>,
    name: &str,
    what: &str,
    kind: &str,
) -> Result<PathBuf> {
    entry
        .link_name()
        .map_err(|e| read_error(name, &format!("entry {what}: bad {kind} target"), e))?
        .map(|t| t.into_owned())
        .ok_or_else(|| Error::Usage(format!("{name}: entry {what}: {kind} without a target")))
}

/// A uid or gid from the archive: refused unless it is a valid 32-bit id. (u32::MAX is
/// (uid_t)-1, which chown(2) reads as "leave unchanged"; larger values used to wrap to 0.)
fn id(value: std::io::Result<u64>, name: &str, what: &str, field: &str) -> Result<u32> {
    let n = value.map_err(|e| read_error(name, &format!("entry {what}: {field}"), e))?;
    match u32::try_from(n) {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(Error::Usage(format!(
            "{name}: entry {what}: {field} {n} is outside the ids Linux has (0 to 4294967294): refusing the archive"
        ))),
    }
}

/// A numeric header field with nothing in it.
fn blank(field: &[u8]) -> bool {
    field.iter().all(|b| *b == 0 || *b == b' ')
}

fn dot(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

fn uid_of(n: u32) -> nix::unistd::Uid {
    nix::unistd::Uid::from_raw(n)
}

fn gid_of(n: u32) -> nix::unistd::Gid {
    nix::unistd::Gid::from_raw(n)
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
                Err(sys("rmdir (to replace it)", shown(rel), Errno::last()))
            }
        }
        e => Err(sys("unlinkat", shown(rel), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(p: &Path) -> Dir {
        Dir::open(p).unwrap()
    }

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
        let got = unpack(&tar[..], &open(dir.path()), "test.tar", Options::default()).unwrap();
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
        let e = unpack(
            &tar[..],
            &open(dir.path()),
            "hostile.tar",
            Options::default(),
        )
        .unwrap_err();
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
        unpack(&tar[..], &open(dir.path()), "t.tar", Options::default()).unwrap();
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
        let e = unpack(&tar[..], &open(dir.path()), "t.tar", Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'..'"), "{e}");
        let e = unpack(
            &[0x1f, 0x8b, 8, 0][..],
            &open(dir.path()),
            "t.tar.gz",
            Options::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("gunzip"));
    }

    #[test]
    fn setid_bits_are_cleared_and_devices_skipped_unless_asked() {
        use std::os::unix::fs::MetadataExt;
        let tar = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 0o6755);
            h.set_size(2);
            b.append_data(&mut h, "bin/su", &b"#!"[..]).unwrap();
            let mut h = header(tar::EntryType::Char, 0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            b.append_data(&mut h, "dev/null", &[][..]).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let got = unpack(&tar[..], &open(dir.path()), "t.tar", Options::default()).unwrap();
        assert_eq!(
            (got.setid_stripped, got.devices_skipped, got.devices),
            (1, 1, 0)
        );
        let mode = std::fs::metadata(dir.path().join("bin/su")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert!(!dir.path().join("dev/null").exists());
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["setid_stripped"], 1);
        assert_eq!(json["devices_skipped"], 1);
        // Asked for: kept (a device node only as root).
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            keep_devices: true,
            keep_setid: true,
        };
        let got = unpack(&tar[..], &open(dir.path()), "t.tar", opts).unwrap();
        assert_eq!((got.setid_stripped, got.devices_skipped), (0, 0));
        let mode = std::fs::metadata(dir.path().join("bin/su")).unwrap().mode();
        assert_eq!(mode & 0o6000, 0o6000);
        if nix::unistd::geteuid().is_root() {
            assert_eq!(got.devices, 1);
            let m = std::fs::symlink_metadata(dir.path().join("dev/null")).unwrap();
            assert_eq!(m.rdev(), libc::makedev(1, 3));
        }
    }

    #[test]
    fn ids_outside_32_bits_are_refused_not_wrapped_to_root() {
        for bad in [1u64 << 32, u64::from(u32::MAX)] {
            let tar = archive(|b| {
                let mut h = header(tar::EntryType::Regular, 0o644);
                h.set_uid(bad);
                h.set_size(1);
                b.append_data(&mut h, "etc/x", &b"x"[..]).unwrap();
            });
            let dir = tempfile::tempdir().unwrap();
            let e = unpack(&tar[..], &open(dir.path()), "t.tar", Options::default()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(&format!("uid {bad}")), "{e}");
            assert!(!dir.path().join("etc/x").exists());
        }
        // A field that is not a number is refused too (it used to read as uid 0); an
        // empty one is the default, 0, as GNU-style writers leave it.
        let mut h = header(tar::EntryType::Regular, 0o644);
        h.set_size(1);
        h.as_old_mut().uid.copy_from_slice(b"12x4567\0");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut h, "etc/x", &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], &open(dir.path()), "t.tar", Options::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("uid"), "{e}");
    }

    #[test]
    fn zstd_and_lz4_are_recognised_and_named() {
        let dir = tempfile::tempdir().unwrap();
        for (magic, tool) in [
            (&[0x28, 0xb5, 0x2f, 0xfd, 0][..], "zstd -dc"),
            (&[0x04, 0x22, 0x4d, 0x18, 0][..], "lz4 -dc"),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], "xz -dc"),
            (&b"BZh91AY"[..], "bunzip2 -c"),
        ] {
            let e = unpack(magic, &open(dir.path()), "x.tar", Options::default()).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(tool), "{e}");
        }
    }

    #[test]
    fn hostile_names_are_printed_escaped_and_exit_2() {
        // A ".." entry whose name carries a terminal escape.
        let mut h = header(tar::EntryType::Regular, 0o644);
        h.set_size(1);
        let name = b"../\x1b]0;owned\x07\x1b[2J";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], &open(dir.path()), "t.tar", Options::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(text.contains("\\e]0;owned"), "{text}");
        // A corrupt header (bad checksum) is exit 2 too.
        let mut bad = archive(|b| file(b, "a", b"x"));
        bad[148] ^= 1;
        let e = unpack(&bad[..], &open(dir.path()), "t.tar", Options::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}
