//! The file tree the doctor reads: the real `/` on a machine, or a captured fixture.
//!
//! Every path the doctor reads is an absolute path as it is on a machine
//! (`/proc/self/mountinfo`, `/sys/fs/cgroup/memory`); [`SysRoot::path`] places it under
//! the root. A fixture is a directory with `proc/`, `sys/` and whatever else the
//! situation needs (`.dockerenv`, `lib/modules/...`), plus two files a git checkout
//! cannot express otherwise:
//! - `owners`: file ownership, one `PATH UID GID MODE` line per path (mode in octal); a
//!   path not listed belongs to root, mode 755 for directories and 644 for files;
//! - `env`: `KEY=VALUE` lines, the environment nsx would see (only `container` is read).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// Who owns a file, and its permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// The permission bits (`mode & 0o7777`).
    pub mode: u32,
}

/// An unprivileged user, for whom the rootless verdicts are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// The user whose rootless verdicts `nsx doctor` should give here: the caller when
    /// not root; under `sudo`, the user who called sudo (SUDO_UID, SUDO_GID); `None` for
    /// plain root, which then judges for "any unprivileged user".
    pub fn for_this_run() -> Option<User> {
        let uid = nix::unistd::getuid().as_raw();
        if uid != 0 {
            return Some(User {
                uid,
                gid: nix::unistd::getgid().as_raw(),
            });
        }
        let var = |k: &str| std::env::var(k).ok()?.parse::<u32>().ok();
        match (var("SUDO_UID"), var("SUDO_GID")) {
            (Some(uid), Some(gid)) if uid != 0 => Some(User { uid, gid }),
            _ => None,
        }
    }
}

/// A machine's files, under `root`.
#[derive(Debug, Clone)]
pub struct SysRoot {
    root: PathBuf,
    /// The `container` environment variable (systemd's convention for container
    /// managers: docker does not set it, podman, LXC and systemd-nspawn do).
    pub container_env: Option<String>,
    /// A fixture's ownership table; `None` reads the real owners with lstat(2).
    owners: Option<BTreeMap<PathBuf, Owner>>,
}

impl SysRoot {
    /// This machine, as nsx sees it.
    pub fn host() -> SysRoot {
        SysRoot {
            root: PathBuf::from("/"),
            container_env: std::env::var("container").ok().filter(|v| !v.is_empty()),
            owners: None,
        }
    }

    /// A captured machine in `dir` (see the module documentation).
    pub fn fixture(dir: &Path) -> Result<SysRoot> {
        let mut owners = BTreeMap::new();
        let owners_file = dir.join("owners");
        if let Ok(text) = std::fs::read_to_string(&owners_file) {
            owners = parse_owners(&text, &owners_file)?;
        }
        let container_env = std::fs::read_to_string(dir.join("env"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("container=").map(str::to_string))
            });
        Ok(SysRoot {
            root: dir.to_path_buf(),
            container_env,
            owners: Some(owners),
        })
    }

    /// The same tree with `owners` as its ownership table (as a fixture's `owners` file).
    pub fn with_owners(mut self, owners: BTreeMap<PathBuf, Owner>) -> SysRoot {
        self.owners = Some(owners);
        self
    }

    /// Where the machine's absolute path `abs` is under this root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// The machine path of a path under this root (for messages).
    pub fn machine_path(&self, under_root: &Path) -> PathBuf {
        match under_root.strip_prefix(&self.root) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => under_root.to_path_buf(),
        }
    }

    /// The text of `abs`, or `None` when it is missing or unreadable.
    pub fn read(&self, abs: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.path(abs)).ok()
    }

    /// The first line of `abs`, trimmed.
    pub fn read_line(&self, abs: impl AsRef<Path>) -> Option<String> {
        self.read(abs)
            .map(|t| t.lines().next().unwrap_or("").trim().to_string())
    }

    /// A sysctl-style file holding one integer.
    pub fn read_int(&self, abs: impl AsRef<Path>) -> Option<i64> {
        self.read_line(abs)?.parse().ok()
    }

    /// Whether `abs` exists (a dangling symlink, like a fixture's ns link, counts).
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        std::fs::symlink_metadata(self.path(abs)).is_ok()
    }

    /// The target text of the symlink `abs`.
    pub fn read_link(&self, abs: impl AsRef<Path>) -> Option<String> {
        std::fs::read_link(self.path(abs))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    /// Owner and mode of `abs`; `None` when it does not exist.
    pub fn owner(&self, abs: impl AsRef<Path>) -> Option<Owner> {
        let abs = abs.as_ref();
        let meta = std::fs::symlink_metadata(self.path(abs)).ok()?;
        match &self.owners {
            None => Some(Owner {
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
            }),
            Some(table) => Some(table.get(abs).copied().unwrap_or(Owner {
                uid: 0,
                gid: 0,
                mode: if meta.is_dir() { 0o755 } else { 0o644 },
            })),
        }
    }

    /// Whether `user` could write `abs` by its permission bits (`None`: whether some
    /// unprivileged user could). Root is not asked: it writes anything that exists.
    pub fn writable_by(&self, abs: impl AsRef<Path>, user: Option<User>) -> bool {
        let Some(o) = self.owner(abs) else {
            return false;
        };
        if o.mode & 0o002 != 0 {
            return true;
        }
        match user {
            Some(u) => {
                (o.uid == u.uid && o.mode & 0o200 != 0) || (o.gid == u.gid && o.mode & 0o020 != 0)
            }
            None => o.uid != 0 && o.mode & 0o200 != 0,
        }
    }

    /// Names of the entries of the directory `abs`, sorted.
    pub fn list(&self, abs: impl AsRef<Path>) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(abs))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Parses a fixture's `owners` file: `PATH UID GID MODE` per line, `#` comments.
pub fn parse_owners(text: &str, file: &Path) -> Result<BTreeMap<PathBuf, Owner>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            Error::Other(format!(
                "parse {}: line {}: {line:?}: expected \"PATH UID GID MODE\" (mode in octal)",
                file.display(),
                n + 1
            ))
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let [path, uid, gid, mode] = f[..] else {
            return Err(bad());
        };
        if !path.starts_with('/') {
            return Err(bad());
        }
        out.insert(
            PathBuf::from(path),
            Owner {
                uid: uid.parse().map_err(|_| bad())?,
                gid: gid.parse().map_err(|_| bad())?,
                mode: u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(bad)?,
            },
        );
    }
    Ok(out)
}
