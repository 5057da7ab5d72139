//! nsx's temporary directories: where they go, how they are made, and how the leftovers
//! of a killed run are swept.
//!
//! - **Where**: `$TMPDIR` only when it is absolute, non-empty, resolves to a directory,
//!   and neither it nor any directory above it lets another user rename what nsx makes
//!   in it (owned by root or by the user nsx runs as, and not writable by others unless
//!   sticky, as /tmp is). It is resolved once to a canonical path, so the lessons that
//!   mount onto a temporary directory get a real path. Anything else: `/tmp`, and nsx
//!   says why it refused `$TMPDIR`.
//! - **How**: mkdtemp-style ([`crate::fsat::Dir::make_temp`]): an unpredictable name
//!   that still carries the run (`nsx-<pid>-<start>-<what>-<random>`), mode 0700, made by
//!   mkdirat(2) so that nothing another user created in advance is ever used, and no
//!   name can be taken ahead of the next run.
//! - **Sweeps**: a leftover is touched only when its name parses as a run
//!   ([`crate::owner::parse_name`]) that is gone ([`crate::owner::Run::is_alive`]), it is
//!   a directory (not a symlink) owned by the user nsx runs as, and it is on the temp
//!   directory's own mount. Trees are removed through directory descriptors
//!   ([`crate::fsat::Dir::remove`]); what cannot be removed is reported.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{op, Error, Result};
use crate::fsat::{self, Dir};
use crate::owner::{parse_name, Run};

/// What leftovers hold a whole tree (removed recursively); any other nsx temp dir must be
/// empty once its run is gone, and is only rmdir'd.
const TREES: &[&str] = &["rootfs"];

/// The temp directory nsx uses, chosen once per process; the refusal of `$TMPDIR`, if
/// any, is said once on standard error.
pub fn root() -> Result<&'static Path> {
    static ROOT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let chosen = ROOT.get_or_init(|| {
        let (path, refused) = choose(std::env::var_os("TMPDIR").as_deref());
        if let Some(why) = refused {
            crate::warn!("nsx: {why}");
        }
        check_chain(&path).map(|()| path)
    });
    match chosen {
        Ok(p) => Ok(p),
        Err(why) => Err(Error::unsupported(
            why.clone(),
            "make /tmp root's, mode 1777 (chmod 1777 /tmp), or set TMPDIR to a directory only you can write to",
        )),
    }
}

/// The directory to use for `TMPDIR` (unset: `None`), and why `TMPDIR` was refused.
pub fn choose(tmpdir: Option<&std::ffi::OsStr>) -> (PathBuf, Option<String>) {
    let fallback = || std::fs::canonicalize("/tmp").unwrap_or_else(|_| PathBuf::from("/tmp"));
    let Some(value) = tmpdir else {
        return (fallback(), None);
    };
    let shown = fsat::printable(value.as_bytes());
    let refuse = |why: String| {
        (
            fallback(),
            Some(format!("TMPDIR={shown:?} {why}: using /tmp instead")),
        )
    };
    if value.is_empty() {
        return refuse("is empty".into());
    }
    let path = Path::new(value);
    if !path.is_absolute() {
        return refuse("is not an absolute path".into());
    }
    let canonical = match std::fs::canonicalize(path) {
        Ok(c) => c,
        Err(e) => return refuse(format!("cannot be resolved ({e})")),
    };
    if !canonical.is_dir() {
        return refuse(format!(
            "is not a directory ({})",
            fsat::printable_path(&canonical)
        ));
    }
    if let Err(why) = check_chain(&canonical) {
        return refuse(why);
    }
    (canonical, None)
}

/// Every directory from `/` down to the canonical `dir` must be owned by root or by the
/// user nsx runs as, and must not be writable by group or others unless sticky: else
/// another user could rename nsx's directory (or one above it) and put a symlink in its
/// place between the moment nsx makes it and the moment a probe mounts onto its path.
pub fn check_chain(dir: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    let mut at = PathBuf::new();
    for c in dir.components() {
        at.push(c);
        let m = std::fs::symlink_metadata(&at)
            .map_err(|e| format!("{}: {e}", fsat::printable_path(&at)))?;
        if !m.is_dir() {
            return Err(format!("{} is not a directory", fsat::printable_path(&at)));
        }
        if m.uid() != 0 && m.uid() != euid {
            return Err(format!(
                "{} belongs to uid {}, who could replace what nsx makes in it",
                fsat::printable_path(&at),
                m.uid()
            ));
        }
        if m.mode() & 0o022 != 0 && m.mode() & libc::S_ISVTX == 0 {
            return Err(format!(
                "{} is writable by other users and not sticky (mode {:o}), so they could rename what nsx makes in it",
                fsat::printable_path(&at),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// A directory nsx made for one run, in the temp directory, named after the run; removed
/// when dropped (an empty one with rmdir, a tree through descriptors).
pub struct TempDir {
    parent: Dir,
    name: String,
    path: PathBuf,
    dir: Dir,
    tree: bool,
}

impl TempDir {
    /// An empty directory (a mount point for a probe). It must be empty again when
    /// dropped: only rmdir'd, never emptied.
    pub fn new(what: &str) -> Result<Self> {
        Self::make(what, false)
    }

    /// A directory nsx fills (a rootfs and its overlay dirs), removed with all it holds.
    pub fn tree(what: &str) -> Result<Self> {
        Self::make(what, true)
    }

    fn make(what: &str, tree: bool) -> Result<Self> {
        let root = root()?;
        let parent = Dir::open(root)?;
        let (name, dir) = parent.make_temp(what, 0o700)?;
        Ok(TempDir {
            path: root.join(&name),
            parent,
            name,
            dir,
            tree,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory itself, open: build in it through this, not through [`Self::path`].
    pub fn dir(&self) -> &Dir {
        &self.dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let done = if self.tree {
            self.parent.remove(&self.name)
        } else {
            // unlinkat(2) with AT_REMOVEDIR, relative to the temp dir it was made in.
            nix::unistd::unlinkat(
                self.parent.fd(),
                self.name.as_str(),
                nix::unistd::UnlinkatFlags::RemoveDir,
            )
            .or_else(|e| {
                if e == nix::errno::Errno::ENOENT {
                    Ok(())
                } else {
                    Err(crate::error::sys(op::RMDIR, self.path.display(), e))
                }
            })
        };
        if let Err(e) = done {
            crate::warn!("nsx: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Removes the leftovers of gone runs in the temp dir: trees of [`TREES`] kinds with all
/// they hold, any other nsx directory if empty.
pub fn sweep_temp_dirs() {
    if let Ok(root) = root() {
        sweep_in(root, None);
    }
}

/// Removes leftover trees `nsx-<run>-<what>-*` of gone runs in the temp dir.
pub fn sweep_trees(what: &str) {
    if let Ok(root) = root() {
        sweep_in(root, Some(what));
    }
}

/// What [`sweep_in`] did with one entry, for tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Swept {
    Removed(String),
    Kept(String, &'static str),
    Failed(String, String),
}

/// Sweeps the directory `root`: `only` limits it to trees of that kind. Failures are
/// reported with a warning and returned.
pub fn sweep_in(root: &Path, only: Option<&str>) -> Vec<Swept> {
    match Dir::open(root) {
        Ok(dir) => sweep(&dir, only, TREES),
        Err(_) => Vec::new(),
    }
}

/// Removes the half-built trees `nsx-<run>-<what>-*` that gone runs left in `dir` (the
/// directory already open, not looked up again by name): a rootfs build or import stages
/// next to its target, not in the temp dir, and one killed with SIGKILL could not remove
/// its stage. The checks are the temp dir's sweep's.
pub fn sweep_staging(dir: &Dir, what: &str) -> Vec<Swept> {
    sweep(dir, Some(what), &[what])
}

/// Sweeps the open directory `dir` (only leftovers of kind `only`, if given); the kinds
/// in `trees` are removed with all they hold, any other only when empty.
fn sweep(dir: &Dir, only: Option<&str>, trees: &[&str]) -> Vec<Swept> {
    let mut out = Vec::new();
    // Never this run's own directories, alive by definition (and read once here, in
    // the parent, before any probe is cloned: children then name things after it).
    let me = Run::current();
    let Ok(entries) = dir.entries() else {
        return out;
    };
    let Ok(home) = fsat::mount_of(dir.fd(), dir.path()) else {
        return out;
    };
    let euid = nix::unistd::geteuid().as_raw();
    for (name, _) in entries {
        let Some(text) = name.to_str() else { continue };
        let Some((run, what)) = parse_name(text) else {
            continue;
        };
        let kind = what.split('-').next().unwrap_or(what);
        let tree = trees.contains(&kind);
        if only.is_some_and(|o| o != kind) || run == me {
            continue;
        }
        let verdict = sweep_one(dir, text, run, tree, euid, home);
        if let Swept::Failed(n, e) = &verdict {
            crate::warn!(
                "nsx: could not remove the leftover {}: {e}",
                dir.child(n).display()
            );
        }
        out.push(verdict);
    }
    out
}

fn sweep_one(dir: &Dir, name: &str, run: Run, tree: bool, euid: u32, home: fsat::Mount) -> Swept {
    let kept = |why| Swept::Kept(name.to_string(), why);
    if run.is_alive() {
        return kept("its run is alive");
    }
    // fstatat(2) without following: the entry itself, as it is now.
    let st = match dir.stat_at(name) {
        Ok(Some(st)) => st,
        Ok(None) => return kept("gone"),
        Err(e) => return Swept::Failed(name.to_string(), e.to_string()),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return kept("not a directory");
    }
    if st.st_uid != euid {
        return kept("owned by another user");
    }
    // Open it (O_NOFOLLOW) and check that the directory opened is the one judged: same
    // device and inode, and on the temp directory's own mount.
    let sub = match dir.open_dir(name) {
        Ok(d) => d,
        Err(e) => return Swept::Failed(name.to_string(), e.to_string()),
    };
    match (sub.stat(), fsat::mount_of(sub.fd(), sub.path())) {
        (Ok(now), Ok(m)) if now.st_dev == st.st_dev && now.st_ino == st.st_ino && m == home => {}
        (Ok(_), Ok(_)) => return kept("changed while judged, or another mount"),
        (Err(e), _) | (_, Err(e)) => return Swept::Failed(name.to_string(), e.to_string()),
    }
    drop(sub);
    let done = if tree {
        dir.remove(name)
    } else {
        nix::unistd::unlinkat(dir.fd(), name, nix::unistd::UnlinkatFlags::RemoveDir).or_else(|e| {
            match e {
                nix::errno::Errno::ENOENT => Ok(()),
                e => Err(crate::error::sys(op::RMDIR, dir.child(name).display(), e)),
            }
        })
    };
    match done {
        Ok(()) => Swept::Removed(name.to_string()),
        Err(e) => Swept::Failed(name.to_string(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tmpdir_is_used_only_when_absolute_and_a_safe_directory() {
        let tmp = std::fs::canonicalize("/tmp").unwrap();
        assert_eq!(choose(None), (tmp.clone(), None));
        for (value, why) in [
            ("", "is empty"),
            ("relative/dir", "not an absolute path"),
            ("/nonexistent-nsx-test", "cannot be resolved"),
            ("/etc/passwd", "not a directory"),
        ] {
            let (p, refused) = choose(Some(OsStr::new(value)));
            assert_eq!(p, tmp, "{value}");
            let refused = refused.unwrap();
            assert!(
                refused.contains(why) && refused.contains("using /tmp"),
                "{refused}"
            );
        }
        // `..` and symlinks are resolved to the canonical directory.
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let real = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        for v in [real.join("sub/.."), real.join("link")] {
            assert_eq!(choose(Some(v.as_os_str())), (real.clone(), None), "{v:?}");
        }
        // A directory others may write into without the sticky bit is refused.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (p, refused) = choose(Some(real.as_os_str()));
        assert_eq!(p, tmp);
        assert!(refused.unwrap().contains("not sticky"));
        // An escape in TMPDIR is not printed raw.
        let (_, refused) = choose(Some(OsStr::new("x\x1b[2J")));
        assert!(!refused.unwrap().contains('\x1b'));
    }

    #[test]
    fn temp_dirs_are_private_unpredictable_and_removed() {
        let a = TempDir::new("unit").unwrap();
        let b = TempDir::tree("unit").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(a.dir().stat().unwrap().st_mode & 0o777, 0o700);
        b.dir().write_new("f", b"x", 0o644).unwrap();
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        drop((a, b));
        assert!(!pa.exists() && !pb.exists());
    }

    #[test]
    fn a_sweep_keeps_live_runs_others_files_and_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let dead = Run {
            pid: u32::MAX - 1,
            start: 1,
        };
        let live = Run::of(Path::new("/proc"), std::os::unix::process::parent_id()).unwrap();
        // A dead run's tree, with a closed directory inside: removed.
        let gone = root.join(dead.name("rootfs-aaaaaaaa"));
        std::fs::create_dir_all(gone.join("image/bin")).unwrap();
        std::fs::write(gone.join("image/bin/busybox"), "x").unwrap();
        // A live run's tree: kept.
        let alive = root.join(live.name("rootfs-bbbbbbbb"));
        std::fs::create_dir(&alive).unwrap();
        std::fs::write(alive.join("f"), "x").unwrap();
        // A symlink named like a leftover, to a directory that must survive.
        let victim = tempfile::tempdir().unwrap();
        std::fs::write(victim.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(victim.path(), root.join(dead.name("rootfs-cccccccc"))).unwrap();
        // A dead run's empty mount dir: removed by a full sweep, not by a rootfs one.
        let empty = root.join(dead.name("mount-dddddddd"));
        std::fs::create_dir(&empty).unwrap();
        let got = sweep_in(root, Some("rootfs"));
        assert!(!gone.exists(), "{got:?}");
        assert!(alive.join("f").exists() && victim.path().join("keep").exists());
        assert!(empty.exists());
        sweep_in(root, None);
        assert!(!empty.exists());
        assert!(alive.join("f").exists());
    }
}
