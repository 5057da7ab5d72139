//! The four things nsx does to a cgroup filesystem, and the record of each one.
//!
//! A cgroup is a directory, a limit is a value written into a file, and joining is a PID
//! written into another file. Every such step goes through [`Recorder`], which performs
//! it on a [`CgroupFs`] and, once it succeeded, appends an [`Action`] so the lesson can
//! print exactly what was done, in order, the way a student would type it.
//!
//! The file system sits behind a trait because cgroupfs behaves unlike a disk: `mkdir`
//! makes control files appear and `rmdir` makes them vanish. Unit tests replace it with a
//! fake that imitates that on a temporary directory; [`RealFs`] is the kernel.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{op, Context, Result};

/// The fewest rmdir attempts [`Recorder::remove_tree`] makes on EBUSY before giving up.
pub const MIN_TRIES: u32 = 5;

/// What was done to the cgroup file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Mkdir,
    Write,
    Rmdir,
    Read,
}

/// One successful step, e.g. `write 33554432 into .../memory.limit_in_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub op: Op,
    pub path: PathBuf,
    /// The value written, or the content read (trimmed); `None` for mkdir and rmdir.
    pub value: Option<String>,
}

impl Action {
    pub fn new(op: Op, path: impl Into<PathBuf>, value: Option<String>) -> Self {
        Action {
            op,
            path: path.into(),
            value,
        }
    }
}

/// The shell command a student would type for this step (`echo 8 > .../pids.max`).
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match self.op {
            Op::Mkdir => write!(f, "mkdir {p}"),
            Op::Rmdir => write!(f, "rmdir {p}"),
            Op::Read => write!(f, "cat {p}"),
            Op::Write => {
                let v = self.value.as_deref().unwrap_or("");
                // Quote values with spaces ("+memory +pids", "20000 100000") as a shell needs.
                if v.contains(' ') {
                    write!(f, "echo '{v}' > {p}")
                } else {
                    write!(f, "echo {v} > {p}")
                }
            }
        }
    }
}

/// The operations nsx performs on a cgroup file system.
pub trait CgroupFs: Send {
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes an (empty, in cgroup terms) cgroup directory; never recursive.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Writes `value` with one write(2): cgroupfs parses each write as a whole.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<String>;
    fn exists(&self, path: &Path) -> bool;
    /// Child directories (child cgroups) of `path`.
    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Whether this process may write `path` (access(2) with W_OK).
    fn writable(&self, path: &Path) -> bool;
}

/// The kernel's cgroupfs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl CgroupFs for RealFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        // mkdir(2) on cgroupfs creates the cgroup; the kernel fills it with control files.
        fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        // rmdir(2) on cgroupfs destroys the cgroup; it fails with EBUSY while the cgroup has
        // live processes or child cgroups (cgroups(7)). Control files do not count.
        fs::remove_dir(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT (a missing control file means a missing controller, which must fail)
        // and no O_TRUNC (meaningless on cgroupfs). The kernel reports a rejected value as
        // the errno of this write(2), not of open(2).
        let mut f = fs::OpenOptions::new().write(true).open(path)?;
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    fn writable(&self, path: &Path) -> bool {
        nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
    }
}

/// Performs cgroup operations and keeps the list of those that succeeded.
pub struct Recorder {
    fs: Box<dyn CgroupFs>,
    actions: Vec<Action>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(fs: Box<dyn CgroupFs>) -> Self {
        Recorder {
            fs,
            actions: Vec::new(),
        }
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }

    pub fn writable(&self, path: &Path) -> bool {
        self.fs.writable(path)
    }

    pub fn subdirs(&self, path: &Path) -> Result<Vec<PathBuf>> {
        self.fs.subdirs(path).ctx("list", path.display())
    }

    pub fn mkdir(&mut self, path: &Path) -> Result<()> {
        self.fs.mkdir(path).ctx(op::MKDIR, path.display())?;
        self.actions.push(Action::new(Op::Mkdir, path, None));
        Ok(())
    }

    /// Like [`Recorder::mkdir`], but an existing directory is fine: returns whether it was
    /// created (and so recorded).
    pub fn mkdir_if_missing(&mut self, path: &Path) -> Result<bool> {
        match self.fs.mkdir(path) {
            Ok(()) => {
                self.actions.push(Action::new(Op::Mkdir, path, None));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).ctx(op::MKDIR, path.display()),
        }
    }

    pub fn write(&mut self, path: &Path, value: &str) -> Result<()> {
        self.fs.write(path, value).ctx(op::WRITE, path.display())?;
        self.actions
            .push(Action::new(Op::Write, path, Some(value.to_string())));
        Ok(())
    }

    pub fn read(&mut self, path: &Path) -> Result<String> {
        let text = self.fs.read(path).ctx(op::READ, path.display())?;
        self.actions.push(Action::new(
            Op::Read,
            path,
            Some(text.trim_end().to_string()),
        ));
        Ok(text)
    }

    /// Reads `path` if it exists (for files that only newer kernels or some configurations
    /// have, e.g. memory.peak); `None` when it does not.
    pub fn read_optional(&mut self, path: &Path) -> Result<Option<String>> {
        match self.fs.read(path) {
            Ok(text) => {
                self.actions.push(Action::new(
                    Op::Read,
                    path,
                    Some(text.trim_end().to_string()),
                ));
                Ok(Some(text))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e).ctx(op::READ, path.display()),
        }
    }

    /// One rmdir attempt. `Ok(false)` when the directory was already gone.
    pub fn rmdir(&mut self, path: &Path) -> Result<bool> {
        match self.fs.rmdir(path) {
            Ok(()) => {
                self.actions.push(Action::new(Op::Rmdir, path, None));
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e).ctx(op::RMDIR, path.display()),
        }
    }

    /// Removes the cgroup at `dir` and every child cgroup under it, children first.
    ///
    /// rmdir fails with EBUSY while a cgroup still has child cgroups or processes. The
    /// rmdir is tried first (a lesson cgroup rarely has children, and listing a cgroup's
    /// directory costs as much as removing it); on EBUSY the children are removed and the
    /// rmdir tried again. A process that was just killed leaves its cgroup only once it
    /// has finished exiting, so EBUSY without children is retried until `deadline` (and
    /// at least [`MIN_TRIES`] times, so a process descheduled past the deadline on a busy
    /// machine still gets its retries), after which the error is returned.
    pub fn remove_tree(&mut self, dir: &Path, deadline: Instant) -> Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match self.rmdir(dir) {
                // Removed, or already gone.
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.errno(), Some(Errno::EBUSY | Errno::ENOTEMPTY)) => e,
                // Never created, or gone: on a read-only file system rmdir(2) says EROFS
                // before it looks the name up, which is no leftover to warn about.
                Err(_) if !self.fs.exists(dir) => return Ok(()),
                Err(e) => return Err(e),
            };
            let children = match self.fs.subdirs(dir) {
                Ok(c) => c,
                // Removed meanwhile: the next rmdir says so.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Vec::new(),
                Err(err) => return Err(err).ctx("list", dir.display()),
            };
            if !children.is_empty() {
                for child in children {
                    self.remove_tree(&child, deadline)?;
                }
                continue;
            }
            if Instant::now() >= deadline && tries >= MIN_TRIES {
                return Err(e);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read-only cgroup file system: every mkdir and rmdir says EROFS, as rmdir(2)
    /// does there even for a name that does not exist; `present` lists what exists.
    struct ReadOnly {
        present: Vec<PathBuf>,
    }

    impl CgroupFs for ReadOnly {
        fn mkdir(&self, _: &Path) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        }
        fn rmdir(&self, _: &Path) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        }
        fn write(&self, _: &Path, _: &str) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        }
        fn read(&self, _: &Path) -> io::Result<String> {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn exists(&self, path: &Path) -> bool {
            self.present.iter().any(|p| p == path)
        }
        fn subdirs(&self, _: &Path) -> io::Result<Vec<PathBuf>> {
            Ok(Vec::new())
        }
        fn writable(&self, _: &Path) -> bool {
            false
        }
    }

    #[test]
    fn removing_a_cgroup_that_was_never_created_is_no_error_on_a_read_only_fs() {
        let never = Path::new("/sys/fs/cgroup/memory/nsx-1-2-cost");
        let mut rec = Recorder::new(Box::new(ReadOnly { present: vec![] }));
        rec.remove_tree(never, Instant::now())
            .expect("nothing was there: nothing is left behind, so no error");
        // One that does exist and cannot be removed is still an error, EROFS and all.
        let mut rec = Recorder::new(Box::new(ReadOnly {
            present: vec![never.to_path_buf()],
        }));
        let e = rec.remove_tree(never, Instant::now()).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EROFS), "{e}");
    }

    #[test]
    fn actions_display_as_shell_commands() {
        let w = Action::new(Op::Write, "/cg/x/pids.max", Some("8".into()));
        assert_eq!(w.to_string(), "echo 8 > /cg/x/pids.max");
        let w = Action::new(Op::Write, "/cg/x/cpu.max", Some("20000 100000".into()));
        assert_eq!(w.to_string(), "echo '20000 100000' > /cg/x/cpu.max");
        assert_eq!(
            Action::new(Op::Mkdir, "/cg/x", None).to_string(),
            "mkdir /cg/x"
        );
        assert_eq!(
            Action::new(Op::Rmdir, "/cg/x", None).to_string(),
            "rmdir /cg/x"
        );
        let r = Action::new(Op::Read, "/cg/x/pids.current", Some("1".into()));
        assert_eq!(r.to_string(), "cat /cg/x/pids.current");
    }

    #[test]
    fn actions_serialize_with_lowercase_ops() {
        let w = Action::new(Op::Write, "/cg/x/tasks", Some("42".into()));
        let j = serde_json::to_value(&w).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"op": "write", "path": "/cg/x/tasks", "value": "42"})
        );
        let m = serde_json::to_value(Action::new(Op::Mkdir, "/cg/x", None)).unwrap();
        assert_eq!(m["op"], "mkdir");
        assert!(m["value"].is_null());
    }
}
