//! Walking and writing files through directory descriptors, never by path.
//!
//! Every system call that takes a path looks it up again, component by component. In a
//! tree another user can write into, the tree can change between two calls: a directory
//! checked a moment ago is a symlink to `/etc` now, and root follows it. So nsx opens a
//! directory once, with `O_DIRECTORY|O_NOFOLLOW` (open(2): fail rather than follow a
//! symlink in the last component), and acts on names *in* it through the `*at` calls
//! relative to that descriptor, one component at a time (openat(2), mkdirat(2),
//! unlinkat(2), symlinkat(2), renameat2(2)). A descriptor keeps naming the directory it was
//! opened on whatever happens to its path later, so whatever is swapped in behind nsx's
//! back is at worst not found; it is never written through.
//!
//! Names given to a [`Dir`] are single components: a `/` in one would let openat(2)
//! follow symlinks in the components before the last, which is what this module exists
//! to prevent.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Type;
use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use crate::error::{sys, Error, Result};

/// An open directory and the path it was opened as (for messages only: nothing is ever
/// looked up through it again).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    shown: PathBuf,
}

/// `O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`: a directory, never a symlink to one.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// `name` as one plain path component, or EINVAL.
fn leaf<'a>(name: &'a OsStr, at: &Path) -> Result<&'a OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(sys(
            "use as a single file name",
            at.join(name).display(),
            Errno::EINVAL,
        ));
    }
    Ok(name)
}

impl Dir {
    /// Opens the directory that `path` names. Symlinks along `path` are followed (the
    /// caller chose that path); everything below it is then reached through the fd.
    pub fn open(path: &Path) -> Result<Dir> {
        // open(2) with O_DIRECTORY: ENOTDIR unless it is a directory.
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys("open", path.display(), e))?;
        Ok(Dir {
            fd,
            shown: path.to_path_buf(),
        })
    }

    /// Opens the directory `path` names, refusing a symlink as its last component
    /// (open(2) O_NOFOLLOW: ELOOP, or ENOTDIR with O_DIRECTORY).
    pub fn open_nofollow(path: &Path) -> Result<Dir> {
        let fd = nix::fcntl::open(path, dir_flags(), Mode::empty())
            .map_err(|e| sys("open (O_NOFOLLOW|O_DIRECTORY)", path.display(), e))?;
        Ok(Dir {
            fd,
            shown: path.to_path_buf(),
        })
    }

    /// Takes over an fd of a directory (e.g. one openat2(2) resolved inside a root).
    pub fn from_fd(fd: OwnedFd, shown: impl Into<PathBuf>) -> Dir {
        Dir {
            fd,
            shown: shown.into(),
        }
    }

    /// The path this directory was opened as, for messages and for the few calls that
    /// only take a path (mount(2) targets shown to the student).
    pub fn path(&self) -> &Path {
        &self.shown
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `path()/name`, for messages.
    pub fn child(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.shown.join(name.as_ref())
    }

    /// A second descriptor for the same directory (fcntl(2) F_DUPFD_CLOEXEC).
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| crate::error::io("dup", &self.shown, e))?;
        Ok(Dir {
            fd,
            shown: self.shown.clone(),
        })
    }

    /// fstat(2) of the directory itself.
    pub fn stat(&self) -> Result<FileStat> {
        nix::sys::stat::fstat(&self.fd).map_err(|e| sys("fstat", self.shown.display(), e))
    }

    /// fstatat(2) with AT_SYMLINK_NOFOLLOW: what `name` is (a symlink is reported as
    /// one); `None` when there is no such entry.
    pub fn stat_at(&self, name: impl AsRef<OsStr>) -> Result<Option<FileStat>> {
        let name = leaf(name.as_ref(), &self.shown)?;
        match nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(sys("fstatat", self.child(name).display(), e)),
        }
    }

    /// The directory `name` in this one. openat(2) with O_NOFOLLOW|O_DIRECTORY: ELOOP or
    /// ENOTDIR if `name` is a symlink, whatever it points to.
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<Dir> {
        let name = leaf(name.as_ref(), &self.shown)?;
        let shown = self.child(name);
        let fd = nix::fcntl::openat(&self.fd, name, dir_flags(), Mode::empty())
            .map_err(|e| sys("openat (O_NOFOLLOW|O_DIRECTORY)", shown.display(), e))?;
        Ok(Dir { fd, shown })
    }

    /// mkdirat(2) `name` with `mode` (less the umask). Ok(false) when something by that
    /// name exists already: mkdirat never follows a symlink in the last component, it
    /// fails with EEXIST, and [`Dir::open_dir`] then refuses the link.
    pub fn mkdir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<bool> {
        let name = leaf(name.as_ref(), &self.shown)?;
        match nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(sys("mkdirat", self.child(name).display(), e)),
        }
    }

    /// `mkdir -p rel` below this directory, one component at a time, never following a
    /// symlink; new directories get `mode`. Returns the last one, open.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> Result<Dir> {
        let mut cur = self.try_clone()?;
        for c in rel.components() {
            match c {
                Component::Normal(n) => {
                    cur.mkdir(n, mode)?;
                    cur = cur.open_dir(n)?;
                }
                Component::CurDir => {}
                _ => {
                    return Err(sys(
                        "mkdir -p",
                        self.shown.join(rel).display(),
                        Errno::EINVAL,
                    ))
                }
            }
        }
        Ok(cur)
    }

    /// A new directory with an unpredictable name, made by this run (mkdtemp(3)-style):
    /// `nsx-<pid>-<start>-<what>-<random>`, mode `mode`, created with mkdirat(2) so that
    /// nothing someone else put there first is ever used (EEXIST: another name is drawn).
    /// The name carries the run, so a leftover is recognised and swept once it is gone.
    pub fn make_temp(&self, what: &str, mode: u32) -> Result<(String, Dir)> {
        for _ in 0..100 {
            let name = crate::owner::Run::current().name(&format!("{what}-{}", random_tag()?));
            // mkdirat(2) applies the umask; chmod below sets exactly `mode`.
            match nix::sys::stat::mkdirat(&self.fd, name.as_str(), Mode::from_bits_truncate(mode)) {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(sys("mkdirat", self.child(&name).display(), e)),
            }
            let dir = self.open_dir(&name)?;
            let st = dir.stat()?;
            // Ours: made by this euid a moment ago, in a directory checked not to let
            // others rename entries (see tmp::root) or one the caller owns.
            if st.st_uid != nix::unistd::geteuid().as_raw() {
                return Err(sys("mkdirat", dir.path().display(), Errno::EEXIST));
            }
            dir.chmod(mode)?;
            return Ok((name, dir));
        }
        Err(sys(
            "mkdirat (100 random names taken)",
            self.child(format!("nsx-…-{what}-…")).display(),
            Errno::EEXIST,
        ))
    }

    /// A new file `name`: openat(2) with O_CREAT|O_EXCL|O_NOFOLLOW, which fails with
    /// EEXIST on anything already there, a symlink included (it is never followed).
    pub fn create(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let name = leaf(name.as_ref(), &self.shown)?;
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| sys("openat (O_CREAT|O_EXCL)", self.child(name).display(), e))?;
        Ok(File::from(fd))
    }

    /// Writes a new file `name` (see [`Dir::create`]) holding `data`, mode `mode` exactly
    /// (fchmod(2) on the descriptor: the umask does not apply).
    pub fn write_new(&self, name: impl AsRef<OsStr>, data: &[u8], mode: u32) -> Result<()> {
        let name = name.as_ref();
        let mut f = self.create(name, 0o600)?;
        let shown = self.child(name);
        f.write_all(data)
            .map_err(|e| crate::error::io("write", &shown, e))?;
        nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode))
            .map_err(|e| sys("fchmod", shown.display(), e))
    }

    /// Writes `data` to `name`, replacing what is there: a new file with a temporary name
    /// ([`Dir::write_new`]), then renameat(2) over `name`. rename(2) replaces the entry
    /// itself: a symlink planted at `name` is replaced, its target never written.
    pub fn replace_file(&self, name: impl AsRef<OsStr>, data: &[u8], mode: u32) -> Result<()> {
        let name = leaf(name.as_ref(), &self.shown)?;
        let tmp = crate::owner::Run::current().name(&format!("new-{}", random_tag()?));
        self.write_new(&tmp, data, mode)?;
        // renameat2(2) with no flags: atomic replacement of the name.
        if let Err(e) =
            nix::fcntl::renameat2(&self.fd, tmp.as_str(), &self.fd, name, RenameFlags::empty())
        {
            let _ = nix::unistd::unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(sys("renameat", self.child(name).display(), e));
        }
        Ok(())
    }

    /// symlinkat(2): stores `target` as text in a new entry `name`; nothing is followed.
    pub fn symlink(&self, target: &Path, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = leaf(name.as_ref(), &self.shown)?;
        match nix::unistd::symlinkat(target, &self.fd, name) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(sys("symlinkat", self.child(name).display(), e)),
        }
    }

    /// renameat2(2) with RENAME_NOREPLACE: `from` becomes `to` in this same directory,
    /// and nothing already at `to` (a file, a directory, a symlink) is replaced: EEXIST.
    pub fn rename_noreplace(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let from = leaf(from.as_ref(), &self.shown)?;
        let to = leaf(to.as_ref(), &self.shown)?;
        nix::fcntl::renameat2(&self.fd, from, &self.fd, to, RenameFlags::RENAME_NOREPLACE)
            .map_err(|e| sys("renameat2 (RENAME_NOREPLACE)", self.child(to).display(), e))
    }

    /// fchmod(2) of the directory itself: the descriptor, not a path.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        nix::sys::stat::fchmod(&self.fd, Mode::from_bits_truncate(mode))
            .map_err(|e| sys("fchmod", self.shown.display(), e))
    }

    /// The names in this directory ("." and ".." left out) and their type as readdir(3)
    /// reports it (a hint: callers act as if it may have changed since).
    pub fn entries(&self) -> Result<Vec<(OsString, Option<Type>)>> {
        // getdents64(2) through a second descriptor: reading moves the file offset of
        // the open file description, which the dup shares, so each listing starts with
        // a fresh open of "." instead.
        let fd = nix::fcntl::openat(&self.fd, ".", dir_flags(), Mode::empty())
            .map_err(|e| sys("openat", self.shown.display(), e))?;
        let mut d =
            nix::dir::Dir::from_fd(fd).map_err(|e| sys("fdopendir", self.shown.display(), e))?;
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e.map_err(|e| sys("readdir", self.shown.display(), e))?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            out.push((OsStr::from_bytes(name).to_os_string(), e.file_type()));
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.entries()?.is_empty())
    }

    /// Removes the entry `name` and, if it is a directory, everything below it, without
    /// ever following a symlink (a link is removed, not its target) and without crossing
    /// into another mount: a mount below means something still uses it, and nsx does not
    /// delete what it did not make.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = leaf(name.as_ref(), &self.shown)?;
        let top = mount_of(self.fd(), &self.shown)?;
        self.remove_entry(name, top, None)
    }

    /// Removes everything inside this directory, leaving it empty.
    pub fn remove_contents(&self) -> Result<()> {
        let top = mount_of(self.fd(), &self.shown)?;
        for (name, kind) in self.entries()? {
            self.remove_entry(&name, top, kind)?;
        }
        Ok(())
    }

    fn remove_entry(&self, name: &OsStr, top: Mount, kind: Option<Type>) -> Result<()> {
        if kind != Some(Type::Directory) {
            // unlinkat(2) without AT_REMOVEDIR removes the name itself, whatever it is
            // (a symlink included, never its target); a directory answers EISDIR.
            match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => return Ok(()),
                Err(Errno::EISDIR) => {}
                Err(e) => return Err(sys("unlinkat", self.child(name).display(), e)),
            }
        }
        let Some(sub) = self.open_for_removal(name, top)? else {
            return Ok(());
        };
        for (n, k) in sub.entries()? {
            sub.remove_entry(&n, top, k)?;
        }
        drop(sub);
        // unlinkat(2) with AT_REMOVEDIR: only an (now empty) directory by that name.
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(sys(
                "unlinkat (AT_REMOVEDIR)",
                self.child(name).display(),
                e,
            )),
        }
    }

    /// The directory `name`, ready to be emptied: on the same mount as the tree, and
    /// readable and writable by its owner. `None` if it is gone, or turned out not to be
    /// a directory (then it was unlinked as a file).
    fn open_for_removal(&self, name: &OsStr, top: Mount) -> Result<Option<Dir>> {
        let shown = self.child(name);
        // O_PATH|O_DIRECTORY|O_NOFOLLOW: opens a directory even without read permission
        // (overlayfs leaves work/work as d---------), and never a symlink (ENOTDIR).
        let pathfd = match nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                // Not a directory (any more): remove the name itself.
                return match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(None),
                    Err(e) => Err(sys("unlinkat", shown.display(), e)),
                };
            }
            Err(e) => return Err(sys("openat (O_PATH|O_NOFOLLOW)", shown.display(), e)),
        };
        if mount_of(pathfd.as_fd(), &shown)? != top {
            return Err(Error::Other(format!(
                "{} is on another file system (a mount?): not removing it",
                shown.display()
            )));
        }
        let st = nix::sys::stat::fstat(&pathfd).map_err(|e| sys("fstat", shown.display(), e))?;
        if st.st_mode & 0o700 != 0o700 && !nix::unistd::geteuid().is_root() {
            // The owner needs rwx to list and empty it (root does not). There is no
            // fchmod(2) for an O_PATH descriptor; chmod(2) of /proc/self/fd/N acts on
            // the very inode the descriptor holds (proc(5): the magic link is not
            // looked up by name), which is what glibc's fchmodat(AT_SYMLINK_NOFOLLOW)
            // does too.
            let proc = format!("/proc/self/fd/{}", pathfd.as_raw_fd());
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                proc.as_str(),
                Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| sys("chmod u+rwx", shown.display(), e))?;
        }
        // openat(2) of "." relative to the O_PATH descriptor: the same directory, now
        // open for reading.
        let fd = nix::fcntl::openat(&pathfd, ".", dir_flags(), Mode::empty())
            .map_err(|e| sys("openat", shown.display(), e))?;
        Ok(Some(Dir { fd, shown }))
    }
}

/// The directory nsx was asked to write its output into (`nsx man --out-dir DIR`): an
/// existing directory that is not a symlink and belongs to the user nsx runs as or the
/// one who ran sudo, or a new one nsx makes (mkdir -p: the missing components made with
/// mkdirat(2) and opened with O_NOFOLLOW, one at a time). Anything else is refused
/// (exit 2): whoever owns a directory can plant links in it, or swap it, while nsx
/// writes.
pub fn output_dir(path: &Path) -> Result<Dir> {
    let shown = printable_path(path);
    let refuse = |why: String| Error::Usage(format!("{shown} {why}"));
    match Dir::open_nofollow(path) {
        Ok(dir) => {
            let st = dir.stat()?;
            if !trusted_owner(st.st_uid) {
                return Err(refuse(format!(
                    "belongs to uid {}, not to you (uid {}): give a directory of yours, or a new one (nsx makes it)",
                    st.st_uid,
                    invoking_uid()
                )));
            }
            return Ok(dir);
        }
        Err(e) => match e.errno() {
            Some(Errno::ENOENT) => {}
            Some(Errno::ELOOP) => {
                return Err(refuse(
                    "is a symlink: give the directory itself (nsx writes only into a directory it made or one you own)".into(),
                ))
            }
            Some(Errno::ENOTDIR) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
                return Err(refuse("is a symlink: give the directory itself".into()))
            }
            Some(Errno::ENOTDIR) => {
                return Err(refuse("exists and is not a directory (or a path above it is not)".into()))
            }
            _ => return Err(e),
        },
    }
    // The deepest directory that exists, then each missing component, made and opened.
    let comps: Vec<Component<'_>> = path.components().collect();
    let mut existing = comps.len();
    while existing > 0 {
        let prefix: PathBuf = comps[..existing].iter().collect();
        if std::fs::metadata(&prefix).is_ok() {
            break;
        }
        existing -= 1;
    }
    let base: PathBuf = comps[..existing].iter().collect();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let mut dir = Dir::open(&base)?;
    for c in &comps[existing..] {
        let Component::Normal(name) = c else {
            return Err(refuse(
                "names a missing directory through . or ..: give a plain path".into(),
            ));
        };
        let made = dir.mkdir(name, 0o755)?;
        dir = dir.open_dir(name)?;
        let st = dir.stat()?;
        if !made && !trusted_owner(st.st_uid) {
            return Err(refuse(format!(
                "was made by uid {} meanwhile: not writing into it",
                st.st_uid
            )));
        }
    }
    Ok(dir)
}

/// Which mount a file is on: its device, and the mount ID where the kernel reports it
/// (statx(2) STATX_MNT_ID, Linux 5.8): a bind mount of the same file system has the same
/// device but another mount ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    pub dev: u64,
    pub id: Option<u64>,
}

pub fn mount_of(fd: BorrowedFd<'_>, shown: &Path) -> Result<Mount> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // statx(2) with AT_EMPTY_PATH on "": the file the descriptor refers to.
    // SAFETY: a valid fd, a NUL-terminated empty path, and an out pointer to one statx.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            stx.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(sys("statx", shown.display(), Errno::last()));
    }
    // SAFETY: statx filled it (and it started zeroed).
    let stx = unsafe { stx.assume_init() };
    Ok(Mount {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        id: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
    })
}

/// Eight characters from getrandom(2): enough that no one can guess the next name.
pub fn random_tag() -> Result<String> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // getrandom(2) from the urandom source: never blocks once the pool is
        // initialised (long before anyone can log in), EINTR only before any byte.
        // SAFETY: writing at most the rest of `buf`.
        let n = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if n < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(sys("getrandom", "8 bytes", e)),
            }
        }
        got += n as usize;
    }
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    Ok(buf
        .iter()
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect())
}

/// The uid of the person behind this run: under sudo(8) the user who ran sudo
/// (`SUDO_UID`), otherwise the effective uid. Used to accept a directory a user made for
/// nsx to fill; `SUDO_UID` is believed only when nsx runs as root, where it is set by
/// sudo (a user who can set it arbitrarily is root already).
pub fn invoking_uid() -> u32 {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        if let Some(uid) = std::env::var("SUDO_UID")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        {
            return uid;
        }
    }
    euid.as_raw()
}

/// True when `uid` may own a directory nsx is asked to write into: the user nsx runs as,
/// or the user who invoked it through sudo.
pub fn trusted_owner(uid: u32) -> bool {
    uid == nix::unistd::geteuid().as_raw() || uid == invoking_uid()
}

/// Bytes from outside (an archive's names, an environment variable) made safe to print:
/// control characters (terminal escapes among them), invisible bidirectional controls,
/// backslashes and invalid UTF-8 are written as escapes (`\e`, `\x9b`, `\u{202e}`, `\\`).
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\x1b' => out.push_str("\\e"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || is_invisible_format(c) => {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32))
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// [`printable`] of a path.
pub fn printable_path(p: &Path) -> String {
    printable(p.as_os_str().as_bytes())
}

/// Zero-width and direction-changing characters: they make a name read as another.
fn is_invisible_format(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn names_with_a_slash_or_dots_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        for bad in ["", ".", "..", "a/b", "/etc"] {
            let e = d.mkdir(bad, 0o755).unwrap_err();
            assert_eq!(e.errno(), Some(Errno::EINVAL), "{bad}");
        }
    }

    #[test]
    fn open_dir_refuses_a_symlink_and_create_refuses_what_exists() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), t.path().join("flink")).unwrap();
        let d = Dir::open(t.path()).unwrap();
        let e = d.open_dir("link").unwrap_err();
        assert!(
            matches!(e.errno(), Some(Errno::ELOOP | Errno::ENOTDIR)),
            "{e}"
        );
        // mkdir of an existing link: not made, and then not opened.
        assert!(!d.mkdir("link", 0o755).unwrap());
        assert!(d.mkdir_all(Path::new("link/x"), 0o755).is_err());
        // O_CREAT|O_EXCL|O_NOFOLLOW on a dangling link: EEXIST, the target is not made.
        let e = d.create("flink", 0o644).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EEXIST));
        assert!(!outside.path().join("f").exists());
        // replace_file replaces the link itself.
        d.replace_file("flink", b"new", 0o644).unwrap();
        assert!(!outside.path().join("f").exists());
        assert_eq!(std::fs::read(t.path().join("flink")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_does_not_follow_symlinks_and_opens_up_closed_dirs() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::create_dir(outside.path().join("closed")).unwrap();
        std::fs::set_permissions(
            outside.path().join("closed"),
            std::fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "y").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("a/out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("closed"), tree.join("closed")).unwrap();
        std::fs::set_permissions(tree.join("a/b"), std::fs::Permissions::from_mode(0o000)).unwrap();
        Dir::open(t.path()).unwrap().remove("tree").unwrap();
        assert!(!tree.exists());
        assert!(outside.path().join("keep").exists());
        let mode = std::fs::metadata(outside.path().join("closed"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o7777, 0o500, "a directory outside was chmodded");
        // Removing what is not there is done already.
        Dir::open(t.path()).unwrap().remove("tree").unwrap();
    }

    #[test]
    fn make_temp_names_carry_the_run_and_differ() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let (a, _) = d.make_temp("test", 0o700).unwrap();
        let (b, bd) = d.make_temp("test", 0o700).unwrap();
        assert_ne!(a, b);
        let (run, what) = crate::owner::parse_name(&a).unwrap();
        assert_eq!(run, crate::owner::Run::current());
        assert!(
            what.starts_with("test-") && what.len() == "test-".len() + 8,
            "{what}"
        );
        assert_eq!(bd.stat().unwrap().st_mode & 0o7777, 0o700);
    }

    #[test]
    fn printable_escapes_terminal_controls_and_bad_bytes() {
        assert_eq!(printable(b"bin/sh"), "bin/sh");
        assert_eq!(printable(b"a\x1b[31mred"), "a\\e[31mred");
        assert_eq!(printable(b"x\xffy"), "x\\xffy");
        assert_eq!(printable("a\u{9b}b".as_bytes()), "a\\u{9b}b");
        assert_eq!(printable("evil\u{202e}txt".as_bytes()), "evil\\u{202e}txt");
        assert_eq!(printable(b"back\\slash\n"), "back\\\\slash\\n");
        assert_eq!(printable("café".as_bytes()), "café");
    }

    #[test]
    fn mounts_differ_across_a_mount_point() {
        let a = Dir::open(Path::new("/")).unwrap();
        let b = Dir::open(Path::new("/proc")).unwrap();
        assert_ne!(
            mount_of(a.fd(), a.path()).unwrap(),
            mount_of(b.fd(), b.path()).unwrap()
        );
        let _ = std::fs::metadata("/").unwrap().dev();
    }
}
