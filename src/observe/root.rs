//! A process's root directory, as a procfs shows it (proc(5), /proc/pid/root): the same
//! reader for the probe's `/proc/self/root` and the host's `/proc/<pid>/root`.
//!
//! `<dir>/root` is a link whose *text* is the root directory's path as the kernel prints
//! it for the reader (d_path): it walks up from the process's root until it meets the
//! reader's root, or the top of the mount tree it is in. A root in another mount
//! namespace never meets the reader's, so its text is a path in that other tree: after
//! pivot_root, where the root *is* the top of its tree, it is just "/". Yet the link
//! is "not merely a symbolic link" (proc(5)): opening `<dir>/root/` reaches the process's
//! real root, whatever the text says, so listing and stat through it see what the process
//! sees.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use procfs::process::MountInfos;
use procfs::FromRead;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

/// What one side reads of a process's root directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// readlink(`<dir>/root`).
    pub link: String,
    /// `ls <dir>/root/`, sorted.
    pub listing: Vec<String>,
    /// stat(`<dir>/root/`): the root directory's device and inode.
    pub dev: u64,
    pub ino: u64,
    /// The line of `<dir>/mountinfo` whose mount point is "/" (the last one, the mount on
    /// top): `None` when no mount is at the process's root, as after a chroot into a
    /// plain directory.
    pub mount: Option<RootMount>,
}

/// The mount at a process's root: which directory of which file system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMount {
    /// The mountinfo *root* field: the directory of the file system mounted there ("/"
    /// for a whole file system, a path for a bind mount).
    pub root: String,
    pub fstype: String,
}

/// Reads `<dir>/root` and the "/" line of `<dir>/mountinfo`.
pub fn read_root(dir: &Path) -> Result<Root> {
    let link = dir.join("root");
    // readlink(2) gives the link text; the path with a trailing "/" opens the directory
    // itself (proc(5): the link gives the same view as the process has).
    let text = std::fs::read_link(&link).ctx("readlink", link.display())?;
    let top = link.join("");
    let meta = std::fs::metadata(&top).ctx("stat", top.display())?;
    let mut listing: Vec<String> = std::fs::read_dir(&top)
        .ctx("readdir", top.display())?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    listing.sort();
    let info = dir.join("mountinfo");
    let infos = MountInfos::from_read(std::fs::File::open(&info).ctx("open", info.display())?)
        .map_err(|e| super::parse_error(&info, e))?;
    Ok(Root {
        link: text.display().to_string(),
        listing,
        dev: meta.dev(),
        ino: meta.ino(),
        mount: root_mount(&infos),
    })
}

/// The mount on top at "/": the last line with that mount point.
pub fn root_mount(infos: &MountInfos) -> Option<RootMount> {
    infos
        .0
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new("/"))
        .map(|m| RootMount {
            root: m.root.clone(),
            fstype: m.fs_type.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_its_root_as_slash() {
        let own = read_root(Path::new("/proc/self")).unwrap();
        assert_eq!(own.link, "/");
        let meta = std::fs::metadata("/").unwrap();
        assert_eq!((own.dev, own.ino), (meta.dev(), meta.ino()));
        assert!(own.listing.iter().any(|n| n == "proc"));
        assert!(own.mount.is_some());
    }

    #[test]
    fn the_mount_on_top_at_slash_is_the_last_line() {
        let text = "\
22 1 0:21 / / rw - rootfs rootfs rw
27 22 8:1 / / rw shared:1 - ext4 /dev/sda1 rw
30 27 0:22 / /proc rw - proc proc rw
";
        let infos = MountInfos::from_read(text.as_bytes()).unwrap();
        assert_eq!(
            root_mount(&infos),
            Some(RootMount {
                root: "/".into(),
                fstype: "ext4".into()
            })
        );
        let chroot = "30 27 0:22 / /proc rw - proc proc rw\n";
        let infos = MountInfos::from_read(chroot.as_bytes()).unwrap();
        assert_eq!(root_mount(&infos), None);
    }
}
