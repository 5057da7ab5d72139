//! The kernel's files as one side reads them in its own mount namespace: the paths
//! runtimes mask or make read-only ([`crate::security::masks`]), the entries of /dev, and
//! whether /sys is mounted read-only; and the mounts a table has on /proc, /sys and /dev.
//!
//! procfs and sysfs show the whole machine, not a namespace: /proc/timer_list lists the
//! host's timers to whoever reads it. What changes between two readers is only what is
//! mounted over those paths in each one's mount namespace, which is what this reads.
//! Nothing is written, and /proc/kcore (the kernel's memory as an ELF core file) is never
//! read, only looked at (stat(2)).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use procfs::process::MountInfos;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::security::masks;

/// The most a masked file is read, in bytes: enough to show it is not empty.
const READ_AT_MOST: u64 = 1 << 20;

/// What one side reads of the kernel's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFiles {
    /// Each path Docker masks ([`masks::masked_paths`]), then each it makes read-only
    /// ([`masks::READONLY`]), as this side finds it.
    pub paths: Vec<Peek>,
    /// The entries of /dev, by name.
    pub dev: Vec<DevEntry>,
    /// Whether /sys is on a read-only mount (statvfs(3) ST_RDONLY); `None` without /sys.
    pub sys_ro: Option<bool>,
}

impl KernelFiles {
    pub fn path(&self, path: &str) -> Option<&Peek> {
        self.paths.iter().find(|p| p.path == path)
    }

    pub fn dev_names(&self) -> Vec<String> {
        self.dev.iter().map(|d| d.name.clone()).collect()
    }

    pub fn dev_entry(&self, name: &str) -> Option<&DevEntry> {
        self.dev.iter().find(|d| d.name == name)
    }
}

/// What a path is (lstat(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    CharDevice,
    BlockDevice,
    Symlink,
    Other,
    Absent,
}

/// One path, as one side finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peek {
    pub path: String,
    pub kind: Kind,
    /// stat(2) st_size (0 for most procfs files; /proc/kcore's is the size of the
    /// kernel's address space).
    pub size: u64,
    /// On a read-only mount (statvfs(3) ST_RDONLY).
    pub ro: bool,
    /// Bytes read from a masked file (at most [`READ_AT_MOST`]), entries listed in a
    /// masked directory; `None` for what is not read (read-only paths, /proc/kcore).
    pub read: Option<u64>,
    /// Why reading failed (the errno's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Peek {
    /// There, and something was read from it.
    pub fn shows_something(&self) -> bool {
        self.kind != Kind::Absent && self.read.is_some_and(|n| n > 0)
    }

    /// There, and nothing could be read from it.
    pub fn shows_nothing(&self) -> bool {
        self.kind != Kind::Absent && self.read == Some(0)
    }
}

/// One entry of /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevEntry {
    pub name: String,
    pub kind: Kind,
    /// A device's major and minor numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<(u32, u32)>,
}

/// A mount on /proc, /sys or /dev, or below one of them, as mountinfo shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// The path in the file system that is mounted ("/null" for a bind of /dev/null).
    pub root: String,
    /// Mounted read-only (the per-mount "ro" option).
    pub ro: bool,
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

fn read_only(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Looks at `path` (absolute, as the reader names it) below `root`; reads it when
/// `read` (never /proc/kcore).
fn peek(root: &Path, path: &str, read: bool) -> Peek {
    let full = root.join(path.trim_start_matches('/'));
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) => {
            return Peek {
                path: path.to_string(),
                kind: Kind::Absent,
                size: 0,
                ro: false,
                read: None,
                error: (e.kind() != std::io::ErrorKind::NotFound).then(|| errno_name(&e)),
            }
        }
    };
    let kind = kind_of(meta.file_type());
    let mut p = Peek {
        path: path.to_string(),
        kind,
        size: meta.size(),
        ro: read_only(&full),
        read: None,
        error: None,
    };
    if !read || path == "/proc/kcore" {
        return p;
    }
    let got = match kind {
        Kind::Dir => std::fs::read_dir(&full).map(|d| d.count() as u64),
        // A masked file is /dev/null, a character device: reading it gives 0 bytes.
        Kind::File | Kind::CharDevice => std::fs::File::open(&full).and_then(|f| {
            let mut n = 0u64;
            let mut buf = [0u8; 8192];
            let mut f = f.take(READ_AT_MOST);
            loop {
                match f.read(&mut buf) {
                    Ok(0) => return Ok(n),
                    Ok(k) => n += k as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }),
        _ => return p,
    };
    match got {
        Ok(n) => p.read = Some(n),
        Err(e) => p.error = Some(errno_name(&e)),
    }
    p
}

/// What the reader whose root directory is `root` ("/" for the live machine) finds: the
/// masked and read-only paths when `files`, /dev and /sys when `dev`.
pub(super) fn read_kernel_files(root: &Path, files: bool, dev: bool) -> Result<KernelFiles> {
    let mut paths = Vec::new();
    if files {
        paths.extend(
            masks::masked_paths(root)
                .iter()
                .map(|p| peek(root, p, true)),
        );
        paths.extend(masks::READONLY.iter().map(|p| peek(root, p, false)));
    }
    if !dev {
        return Ok(KernelFiles {
            paths,
            ..KernelFiles::default()
        });
    }
    let dev_dir = root.join("dev");
    let mut dev = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dev_dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let kind = kind_of(meta.file_type());
            let rdev = matches!(kind, Kind::CharDevice | Kind::BlockDevice).then(|| {
                let r = meta.rdev();
                (libc::major(r), libc::minor(r))
            });
            dev.push(DevEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind,
                rdev,
            });
        }
    }
    dev.sort_by(|a, b| a.name.cmp(&b.name));
    let sys = root.join("sys");
    Ok(KernelFiles {
        paths,
        dev,
        sys_ro: sys.is_dir().then(|| read_only(&sys)),
    })
}

/// The mounts on /proc, /sys and /dev and below them, in the table's order.
pub(super) fn kernel_mounts(infos: &MountInfos) -> Vec<KernelMount> {
    let under = |p: &str| {
        ["/proc", "/sys", "/dev"]
            .iter()
            .any(|k| p == *k || p.starts_with(&format!("{k}/")))
    };
    infos
        .0
        .iter()
        .filter_map(|m| {
            let point = m.mount_point.display().to_string();
            under(&point).then(|| KernelMount {
                mount_point: point,
                fstype: m.fs_type.clone(),
                source: m.mount_source.clone().unwrap_or_default(),
                root: m.root.clone(),
                ro: m.mount_options.contains_key("ro"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_root_is_peeked_without_reading_kcore() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("proc/acpi/wakeup")).unwrap();
        std::fs::write(r.join("proc/timer_list"), "Timer List Version: v0.10\n").unwrap();
        std::fs::write(r.join("proc/kcore"), vec![0u8; 4096]).unwrap();
        std::fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
        std::fs::create_dir_all(r.join("dev")).unwrap();
        std::fs::create_dir_all(r.join("sys")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd", r.join("dev/fd")).unwrap();
        let k = read_kernel_files(r, true, true).unwrap();
        let timers = k.path("/proc/timer_list").unwrap();
        assert_eq!((timers.kind, timers.read), (Kind::File, Some(26)));
        assert!(timers.shows_something());
        let acpi = k.path("/proc/acpi").unwrap();
        assert_eq!((acpi.kind, acpi.read), (Kind::Dir, Some(1)));
        let kcore = k.path("/proc/kcore").unwrap();
        assert_eq!(
            (kcore.size, kcore.read),
            (4096, None),
            "kcore is never read"
        );
        let keys = k.path("/proc/keys").unwrap();
        assert_eq!(keys.kind, Kind::Absent);
        assert!(!keys.shows_something() && !keys.shows_nothing());
        let sys = k.path("/proc/sys").unwrap();
        assert_eq!(
            (sys.kind, sys.read),
            (Kind::Dir, None),
            "read-only paths are not read"
        );
        assert_eq!(k.dev_names(), ["fd"]);
        assert_eq!(k.dev[0].kind, Kind::Symlink);
        assert_eq!(k.sys_ro, Some(false));
        assert_eq!(
            k.paths.len(),
            masks::masked_paths(r).len() + masks::READONLY.len()
        );
        let only_dev = read_kernel_files(r, false, true).unwrap();
        assert!(only_dev.paths.is_empty() && only_dev.dev.len() == 1);
        let only_files = read_kernel_files(r, true, false).unwrap();
        assert!(only_files.dev.is_empty() && only_files.sys_ro.is_none());
    }

    #[test]
    fn the_kernel_mounts_are_picked_from_a_table() {
        let table = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid,nodev,noexec - proc proc rw
24 23 0:6 /null /proc/kcore rw,nosuid - devtmpfs udev rw
25 23 0:30 / /proc/acpi ro,nosuid,nodev,noexec - tmpfs nsx-mask ro
26 22 0:31 / /sys ro,nosuid,nodev,noexec - sysfs sysfs rw
27 22 0:32 / /processes rw - tmpfs x rw
";
        let infos = <MountInfos as procfs::FromRead>::from_read(table.as_bytes()).unwrap();
        let k = kernel_mounts(&infos);
        let points: Vec<&str> = k.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/proc", "/proc/kcore", "/proc/acpi", "/sys"]);
        assert_eq!((k[1].root.as_str(), k[1].ro), ("/null", false));
        assert!(k[2].ro && k[3].ro);
        assert_eq!(k[2].source, "nsx-mask");
    }
}
