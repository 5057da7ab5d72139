//! Trees nsx made: removing them, and fingerprinting them to prove one did not change.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{op, sys, Context, Error, Result};
use crate::fsat::Dir;

/// Removes the tree at `path`, through descriptors: the parent of `path` is opened once
/// and everything below is reached from it ([`Dir::remove`]): a symlink is removed, not
/// followed, and a mount below `path` stops the removal.
pub fn remove_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Usage(format!(
            "{}: not a directory nsx can remove",
            path.display()
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Dir::open(parent)?.remove(name)
}

/// A tree nsx created for one run (a rootfs, overlay upper and work dirs) in the temp dir,
/// private (0700) and named after the run with a random part
/// (`nsx-<pid>-<start>-<what>-<random>`), removed on drop; a leftover of a killed run is
/// recognised by [`sweep_trees`].
pub struct OwnedTree(crate::tmp::TempDir);

impl OwnedTree {
    pub fn new(what: &str) -> Result<Self> {
        crate::tmp::TempDir::tree(what).map(OwnedTree)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn dir(&self) -> &Dir {
        self.0.dir()
    }
}

/// Removes `nsx-<run>-<what>-*` trees in the temp dir whose run is gone (a run killed by
/// SIGKILL had no chance to clean up); only directories owned by the user nsx runs as, on
/// the temp dir's own mount, walked through descriptors (see [`crate::tmp`]).
pub fn sweep_trees(what: &str) {
    crate::tmp::sweep_trees(what);
}

/// A fingerprint of a tree: every entry's path, type, mode and size, and one hash over
/// those and every file's bytes and every link's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub entries: usize,
    pub bytes: u64,
    /// FNV-1a 64's step taken over 64-bit words (the bytes left over one at a time), in
    /// hex: enough to notice a change, not a security checksum.
    pub hash: String,
}

pub fn digest(root: &Path) -> Result<Digest> {
    let top = Dir::open(root)?;
    let mut found = Vec::new();
    collect(&top, Path::new(""), &mut found)?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Fnv::new();
    let mut bytes = 0;
    for (rel, dir, name) in &found {
        let shown = root.join(rel);
        // fstatat(2) with AT_SYMLINK_NOFOLLOW in the directory already open.
        let st = dir
            .stat_at(name)?
            .ok_or_else(|| sys("fstatat", shown.display(), nix::errno::Errno::ENOENT))?;
        h.write(rel.as_os_str().as_encoded_bytes());
        h.write(&st.st_mode.to_le_bytes());
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                // readlinkat(2): the link's own text.
                let target = nix::fcntl::readlinkat(dir.fd(), name.as_os_str())
                    .ctx("readlinkat", shown.display())?;
                h.write(target.as_encoded_bytes());
            }
            libc::S_IFREG => {
                // openat(2) with O_NOFOLLOW: the file itself, never a link swapped in.
                let fd = nix::fcntl::openat(
                    dir.fd(),
                    name.as_os_str(),
                    nix::fcntl::OFlag::O_RDONLY
                        | nix::fcntl::OFlag::O_NOFOLLOW
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .ctx("openat", shown.display())?;
                let mut data = Vec::new();
                std::fs::File::from(fd)
                    .read_to_end(&mut data)
                    .ctx(op::READ, shown.display())?;
                bytes += data.len() as u64;
                h.write(&(data.len() as u64).to_le_bytes());
                h.write(&data);
            }
            _ => {}
        }
    }
    Ok(Digest {
        entries: found.len(),
        bytes,
        hash: format!("{:016x}", h.0),
    })
}

/// Every entry below `dir` (at `rel` in the tree): its path, its directory (open) and name.
fn collect(
    dir: &Dir,
    rel: &Path,
    out: &mut Vec<(PathBuf, std::rc::Rc<Dir>, PathBuf)>,
) -> Result<()> {
    let here = std::rc::Rc::new(dir.try_clone()?);
    for (name, kind) in dir.entries()? {
        let child = rel.join(&name);
        let is_dir = match kind {
            Some(k) => k == nix::dir::Type::Directory,
            // DT_UNKNOWN (some file systems): ask fstatat(2).
            None => dir
                .stat_at(&name)?
                .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
        };
        if is_dir {
            collect(&dir.open_dir(&name)?, &child, out)?;
        }
        out.push((child, here.clone(), PathBuf::from(name)));
    }
    Ok(())
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    /// A word at a time: a byte at a time, hashing busybox's 2 MB twice was a tenth of
    /// the rootfs lesson. Each step is a bijection of the state, so a single changed word
    /// always changes the hash.
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.step(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for b in words.remainder() {
            self.step(u64::from(*b));
        }
    }

    fn step(&mut self, v: u64) {
        self.0 ^= v;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

/// Names in `dir`, sorted (the `ls` a lesson shows).
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = Dir::open(dir)?
        .entries()?
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("tree");
        std::fs::create_dir_all(victim.join("a/b")).unwrap();
        std::fs::write(victim.join("a/b/f"), "y").unwrap();
        std::os::unix::fs::symlink(outside.path(), victim.join("a/out")).unwrap();
        std::fs::set_permissions(victim.join("a/b"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        remove_tree(&victim).unwrap();
        assert!(!victim.exists());
        assert!(outside.path().join("keep").exists());
    }

    #[test]
    fn digest_notices_a_changed_byte() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), "root\n").unwrap();
        let a = digest(t.path()).unwrap();
        assert_eq!(a, digest(t.path()).unwrap());
        assert_eq!((a.entries, a.bytes), (2, 5));
        std::fs::write(t.path().join("etc/passwd"), "rooT\n").unwrap();
        assert_ne!(a.hash, digest(t.path()).unwrap().hash);
    }

    #[test]
    fn digest_notices_any_one_changed_byte_of_a_longer_file() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("busybox");
        let data: Vec<u8> = (0..29u8).collect();
        std::fs::write(&file, &data).unwrap();
        let a = digest(t.path()).unwrap().hash;
        for i in 0..data.len() {
            let mut changed = data.clone();
            changed[i] ^= 0x40;
            std::fs::write(&file, &changed).unwrap();
            assert_ne!(a, digest(t.path()).unwrap().hash, "byte {i}");
        }
    }
}
