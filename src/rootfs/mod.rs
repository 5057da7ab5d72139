//! A container's own root filesystem, without a registry: built from the host's static
//! busybox ([`busybox`]) or unpacked from a tarball ([`import`]), always resolving paths
//! inside the rootfs ([`inroot`]).

pub mod busybox;
pub mod import;
pub mod inroot;
pub mod tree;

use std::path::Path;

use crate::error::{Context, Error, Result};

/// `dir` must not exist (it is created, its parent must exist) or be an empty directory.
pub fn prepare_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(dir).ctx("readdir", dir.display())?;
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} is not empty: give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Ok(_) => Err(Error::Usage(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Usage(format!(
                    "{}: the parent directory does not exist",
                    dir.display()
                )),
                _ => crate::error::io("mkdir", dir, e),
            })
        }
        Err(e) => Err(e).ctx("lstat", dir.display()),
    }
}
