//! A container's own root filesystem, without a registry: built from the host's static
//! busybox ([`busybox`]) or unpacked from a tarball ([`import`]), always resolving paths
//! inside the rootfs ([`inroot`]) and writing only through directory descriptors
//! ([`crate::fsat`]) into a directory nsx made itself ([`Staging`]).

pub mod busybox;
pub mod import;
pub mod inroot;
pub mod tree;

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsat::{self, Dir};

/// Where a rootfs is built: a private directory nsx made next to DIR and renames to DIR
/// when it is complete, or an existing empty DIR of the caller's, filled in place.
///
/// Either way every write goes through [`Staging::dir`], a descriptor opened with
/// O_NOFOLLOW on a directory nsx checked: swapping DIR (or any name below it) for a
/// symlink afterwards redirects nothing. Dropped without [`Staging::commit`] (an error,
/// an interrupt), it removes what it wrote: nothing is left of a failed build.
pub struct Staging {
    parent: Dir,
    name: OsString,
    target: PathBuf,
    dir: Dir,
    /// The temporary name in `parent`, for a DIR that did not exist.
    temp: Option<String>,
    done: bool,
}

impl Staging {
    /// Prepares to build `target` (`what` names the job in the temporary directory's
    /// name). `target` must not exist, or be an empty directory (not a symlink) owned by
    /// the user nsx runs as or the user who ran sudo: a directory anyone else owns could
    /// be changed under the build, or afterwards.
    pub fn new(target: &Path, what: &str) -> Result<Staging> {
        let (parent_path, name) = split_target(target)?;
        let parent = Dir::open(&parent_path).map_err(|e| match e.errno() {
            Some(nix::errno::Errno::ENOENT) => Error::Usage(format!(
                "{}: the parent directory does not exist",
                target.display()
            )),
            _ => e,
        })?;
        let shown = target.display();
        match parent.stat_at(&name)? {
            None => {
                // What a killed build of this kind left here goes first.
                crate::tmp::sweep_staging(&parent, what);
                let (temp, dir) = parent.make_temp(what, 0o700)?;
                Ok(Staging {
                    parent,
                    name,
                    target: target.to_path_buf(),
                    dir,
                    temp: Some(temp),
                    done: false,
                })
            }
            Some(st) => {
                let kind = st.st_mode & libc::S_IFMT;
                if kind == libc::S_IFLNK {
                    return Err(Error::Usage(format!(
                        "{shown} is a symlink: give a new directory, or the real path of an empty one (nsx writes only into a directory it made or one you own)"
                    )));
                }
                if kind != libc::S_IFDIR {
                    return Err(Error::Usage(format!(
                        "{shown} exists and is not a directory"
                    )));
                }
                if !fsat::trusted_owner(st.st_uid) {
                    return Err(Error::Usage(format!(
                        "{shown} belongs to uid {}, not to you (uid {}): give a new directory, nsx makes it",
                        st.st_uid,
                        fsat::invoking_uid()
                    )));
                }
                let dir = parent.open_dir(&name)?;
                let now = dir.stat()?;
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(Error::Usage(format!(
                        "{shown} changed while nsx looked at it: run again"
                    )));
                }
                if !dir.is_empty()? {
                    return Err(Error::Usage(format!(
                        "{shown} is not empty: give a new or empty directory"
                    )));
                }
                Ok(Staging {
                    parent,
                    name,
                    target: target.to_path_buf(),
                    dir,
                    temp: None,
                    done: false,
                })
            }
        }
    }

    /// The directory to build in.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// True when DIR did not exist and nsx made it (the caller sets its final mode).
    pub fn is_new(&self) -> bool {
        self.temp.is_some()
    }

    /// Puts the finished tree in place: renameat2(2) with RENAME_NOREPLACE of the
    /// temporary directory to DIR (EEXIST if something appeared at DIR meanwhile: it is
    /// left alone and the build removed). An existing DIR was built in place already.
    pub fn commit(mut self) -> Result<()> {
        if let Some(temp) = &self.temp {
            // The entry must still be the directory built: a rename by whoever owns the
            // parent would otherwise put their tree at DIR.
            let ours = self.dir.stat()?;
            match self.parent.stat_at(temp)? {
                Some(st) if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino) => {}
                _ => {
                    return Err(Error::Other(format!(
                        "{}: the directory nsx built was moved away before it could be put in place; nothing was installed",
                        self.parent.child(temp).display()
                    )))
                }
            }
            match self.parent.rename_noreplace(temp, &self.name) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(nix::errno::Errno::EEXIST) => {
                    return Err(Error::Usage(format!(
                        "{} appeared while nsx was building it: it was left as it is, and nothing was installed",
                        self.target.display()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let undone = match &self.temp {
            Some(temp) => self.parent.remove(temp),
            None => self.dir.remove_contents(),
        };
        if let Err(e) = undone {
            crate::warn!(
                "nsx: could not remove the partial tree for {}: {e}",
                self.target.display()
            );
        }
    }
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (`.`, `c`). The last component must be a name: `..`,
/// `.` and `/` name a directory by its relation to another, and nsx makes DIR itself.
fn split_target(target: &Path) -> Result<(PathBuf, OsString)> {
    let mut comps: Vec<Component<'_>> = target.components().collect();
    match comps.pop() {
        Some(Component::Normal(name)) => {
            let parent: PathBuf = comps.iter().collect();
            let parent = if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent
            };
            Ok((parent, name.to_os_string()))
        }
        _ => Err(Error::Usage(format!(
            "{}: name the directory itself (not ., .. or /)",
            target.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stage_removes_what_a_killed_build_of_its_kind_left_beside_it() {
        use crate::owner::Run;
        let t = tempfile::tempdir().unwrap();
        let dead = Run {
            pid: u32::MAX - 1,
            start: 1,
        };
        let live = Run::of(Path::new("/proc"), std::os::unix::process::parent_id()).unwrap();
        // A half-imported tree of a run that is gone: removed with all it holds.
        let killed = t.path().join(dead.name("import-aaaaaaaa"));
        std::fs::create_dir_all(killed.join("usr/bin")).unwrap();
        std::fs::write(killed.join("usr/bin/sh"), "x").unwrap();
        // A live run's stage, and a gone run's stage of another kind: kept.
        let running = t.path().join(live.name("import-bbbbbbbb"));
        std::fs::create_dir_all(running.join("etc")).unwrap();
        let other = t.path().join(dead.name("busybox-cccccccc"));
        std::fs::create_dir_all(other.join("bin")).unwrap();
        let stage = Staging::new(&t.path().join("rootfs"), "import").unwrap();
        assert!(!killed.exists());
        assert!(running.join("etc").is_dir() && other.join("bin").is_dir());
        drop(stage);
        // Nothing is swept when the target exists already: nsx makes no stage there.
        let again = t.path().join(dead.name("import-dddddddd"));
        std::fs::create_dir(&again).unwrap();
        std::fs::create_dir(t.path().join("empty")).unwrap();
        let stage = Staging::new(&t.path().join("empty"), "import").unwrap();
        assert!(again.is_dir());
        drop(stage);
    }

    #[test]
    fn dir_is_split_into_parent_and_a_plain_name() {
        assert_eq!(
            split_target(Path::new("/tmp/bb")).unwrap(),
            (PathBuf::from("/tmp"), OsString::from("bb"))
        );
        assert_eq!(
            split_target(Path::new("bb/")).unwrap(),
            (PathBuf::from("."), OsString::from("bb"))
        );
        for bad in ["/", "..", "a/..", "."] {
            assert_eq!(
                split_target(Path::new(bad)).unwrap_err().exit_code(),
                2,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_new_dir_appears_only_on_commit_and_a_dropped_one_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("root");
        let s = Staging::new(&target, "test").unwrap();
        s.dir().write_new("f", b"x", 0o644).unwrap();
        assert!(!target.exists());
        drop(s);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        let s = Staging::new(&target, "test").unwrap();
        s.dir().write_new("f", b"x", 0o644).unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(target.join("f")).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        // Full now: refused.
        let e = Staging::new(&target, "test").err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not empty"), "{e}");
    }

    #[test]
    fn an_existing_empty_dir_is_filled_in_place_and_emptied_on_failure() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("root");
        std::fs::create_dir(&target).unwrap();
        let s = Staging::new(&target, "test").unwrap();
        s.dir().mkdir_all(Path::new("a/b"), 0o755).unwrap();
        drop(s);
        assert!(target.is_dir());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        // A symlink to it is refused, as is a file.
        std::os::unix::fs::symlink(&target, t.path().join("link")).unwrap();
        let e = Staging::new(&t.path().join("link"), "test").err().unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");
        std::fs::write(t.path().join("file"), "").unwrap();
        let e = Staging::new(&t.path().join("file"), "test").err().unwrap();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_target_that_appears_meanwhile_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("root");
        let s = Staging::new(&target, "test").unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("theirs"), "x").unwrap();
        let e = s.commit().unwrap_err();
        assert!(e.to_string().contains("appeared"), "{e}");
        assert!(target.join("theirs").exists());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
