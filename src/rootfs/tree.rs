//! Trees nsx made: removing them, and fingerprinting them to prove one did not change.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// Removes the tree at `path` that nsx created. It never follows a symlink (a link is
/// removed, not its target) and refuses to cross into another file system: a mount below
/// `path` would mean something is still using it, and nsx does not delete what it did not
/// make. Directories without write or search permission (overlayfs leaves `work/work`
/// as d---------) are opened up first.
pub fn remove_tree(path: &Path) -> Result<()> {
    let top = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("lstat", path.display()),
    };
    if !top.is_dir() {
        return std::fs::remove_file(path).ctx("unlink", path.display());
    }
    remove_dir(path, top.dev())
}

fn remove_dir(dir: &Path, dev: u64) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).ctx("lstat", dir.display())?;
    if meta.dev() != dev {
        return Err(Error::Other(format!(
            "{} is on another file system (a mount?): not removing it",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx("chmod", dir.display())?;
    }
    for entry in std::fs::read_dir(dir).ctx("readdir", dir.display())? {
        let entry = entry.ctx("readdir", dir.display())?;
        let path = entry.path();
        let kind = entry.file_type().ctx("lstat", path.display())?;
        if kind.is_dir() {
            remove_dir(&path, dev)?;
        } else {
            std::fs::remove_file(&path).ctx("unlink", path.display())?;
        }
    }
    std::fs::remove_dir(dir).ctx("rmdir", dir.display())
}

/// A tree nsx created for one run (a rootfs, overlay upper and work dirs), removed on drop.
/// Named `nsx-<pid>-<what>` in the temp dir, so a leftover of a killed run is recognised
/// by [`sweep_trees`].
pub struct OwnedTree {
    path: PathBuf,
}

impl OwnedTree {
    pub fn new(what: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("nsx-{}-{what}", std::process::id()));
        std::fs::create_dir(&path).ctx("mkdir", path.display())?;
        Ok(OwnedTree { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedTree {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.path) {
            crate::warn!("nsx: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Removes `nsx-<pid>-<what>` trees in the temp dir whose nsx process is gone (a run
/// killed by SIGKILL had no chance to clean up).
pub fn sweep_trees(what: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = crate::sandbox::leftover_owner(&name) else {
            continue;
        };
        if name.ends_with(&format!("-{what}")) && !crate::sandbox::is_nsx_process(pid) {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// A fingerprint of a tree: every entry's path, type, mode and size, and one hash over
/// those and every file's bytes and every link's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub entries: usize,
    pub bytes: u64,
    /// FNV-1a 64 in hex: enough to notice a change, not a security checksum.
    pub hash: String,
}

pub fn digest(root: &Path) -> Result<Digest> {
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths)?;
    paths.sort();
    let mut h = Fnv::new();
    let mut bytes = 0;
    for rel in &paths {
        let path = root.join(rel);
        let meta = std::fs::symlink_metadata(&path).ctx("lstat", path.display())?;
        h.write(rel.as_os_str().as_encoded_bytes());
        h.write(&meta.mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).ctx("readlink", path.display())?;
            h.write(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            let data = std::fs::read(&path).ctx("read", path.display())?;
            bytes += data.len() as u64;
            h.write(&(data.len() as u64).to_le_bytes());
            h.write(&data);
        }
    }
    Ok(Digest {
        entries: paths.len(),
        bytes,
        hash: format!("{:016x}", h.0),
    })
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).ctx("readdir", dir.display())? {
        let entry = entry.ctx("readdir", dir.display())?;
        let child = rel.join(entry.file_name());
        if entry.file_type().ctx("lstat", child.display())?.is_dir() {
            collect(root, &child, out)?;
        }
        out.push(child);
    }
    Ok(())
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Names in `dir`, sorted (the `ls` a lesson shows).
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ctx("readdir", dir.display())?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
