//! `nsx rootfs busybox DIR`: a minimal root filesystem from the host's static busybox.
//!
//! busybox is one binary that behaves as `sh`, `ls`, `cat`… depending on the name it is
//! run as (argv[0]). A rootfs is that binary, one symlink per applet, a few mount points
//! and the two files programs look users up in. The links are *relative*
//! (`bin/sh -> busybox`, `usr/bin/awk -> ../../bin/busybox`): an absolute link to
//! `/bin/busybox` would still work after a chroot, but it names a host path, and a
//! relative one reads the same from the host and from inside.
//!
//! The binary must be static: after pivot_root there is no host /lib to load a dynamic
//! one from. Debian ships it as `busybox-static`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{op, Context, Error, Result};
use crate::fsat::Dir;

/// Where Debian and others install busybox.
const CANDIDATES: [&str; 4] = [
    "/bin/busybox",
    "/usr/bin/busybox",
    "/sbin/busybox",
    "/usr/sbin/busybox",
];

/// The install command nsx prints when busybox is missing or dynamic.
pub const INSTALL: &str = "apt-get install -y busybox-static";

/// The directories every rootfs gets; `proc`, `sys`, `dev` and `tmp` are mount points.
const DIRS: [(&str, u32); 12] = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
];

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// What a build made.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub busybox: PathBuf,
    pub version: String,
    pub applets: usize,
    pub dirs: Vec<String>,
}

/// The host's static busybox, or exit 77 with the install command.
pub fn find() -> Result<PathBuf> {
    let candidates: Vec<&Path> = CANDIDATES.iter().map(Path::new).collect();
    find_in(&candidates)
}

/// The first static busybox among `candidates`.
pub fn find_in(candidates: &[&Path]) -> Result<PathBuf> {
    let mut dynamic = None;
    for p in candidates.iter().copied() {
        if !p.is_file() {
            continue;
        }
        match is_static(p) {
            Ok(true) => return Ok(p.to_path_buf()),
            Ok(false) => dynamic = Some(p),
            Err(_) => continue,
        }
    }
    Err(match dynamic {
        Some(p) => Error::unsupported(
            format!(
                "{} is dynamically linked (Debian's `busybox` package); a rootfs needs the static one, which runs without the host's /lib",
                p.display()
            ),
            INSTALL,
        ),
        None => Error::unsupported(
            "busybox is not installed: nsx builds the rootfs from the host's static busybox",
            INSTALL,
        ),
    })
}

/// True when the ELF file at `path` has no PT_INTERP program header (no dynamic loader).
pub fn is_static(path: &Path) -> Result<bool> {
    use std::io::Read;
    // The 64-byte header, then only as far as the program headers it points to end:
    // not the whole binary (2 MB for busybox).
    let file = std::fs::File::open(path).ctx("open", path.display())?;
    let mut data = Vec::new();
    let read = |upto: u64, data: &mut Vec<u8>| {
        (&file)
            .take(upto.saturating_sub(data.len() as u64))
            .read_to_end(data)
            .ctx(op::READ, path.display())
    };
    read(64, &mut data)?;
    if let Some(end) = program_headers_end(&data) {
        read(end, &mut data)?;
    }
    elf_is_static(&data)
        .ok_or_else(|| Error::Other(format!("{}: not a 64-bit ELF executable", path.display())))
}

/// Where a 64-bit ELF header says its program headers end: e_phoff + e_phnum ×
/// e_phentsize (elf(5)). `None` for anything else, or an end past 1 MiB.
fn program_headers_end(header: &[u8]) -> Option<u64> {
    if header.len() < 64 || &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let phoff = u64::from_le_bytes(header.get(0x20..0x28)?.try_into().ok()?);
    let phentsize = u64::from(u16::from_le_bytes(header.get(0x36..0x38)?.try_into().ok()?));
    let phnum = u64::from(u16::from_le_bytes(header.get(0x38..0x3a)?.try_into().ok()?));
    phoff
        .checked_add(phnum.checked_mul(phentsize)?)
        .filter(|end| *end <= 1 << 20)
}

/// elf(5): e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38; p_type first in each
/// program header; PT_INTERP = 3.
pub fn elf_is_static(data: &[u8]) -> Option<bool> {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let phoff = u64::from_le_bytes(data.get(0x20..0x28)?.try_into().ok()?) as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let off = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?);
        if p_type == 3 {
            return Some(false);
        }
    }
    Some(true)
}

/// `usr/bin/awk` → `../../bin/busybox`; `bin/sh` → `busybox`.
pub fn link_target(applet: &Path) -> PathBuf {
    let parent = applet.parent().unwrap_or(Path::new(""));
    if parent == Path::new("bin") {
        return PathBuf::from("busybox");
    }
    let mut t = PathBuf::new();
    for _ in parent.components() {
        t.push("..");
    }
    t.join("bin/busybox")
}

/// Builds the rootfs at `dir`, which nsx creates (see [`super::Staging`]: a new
/// directory, or an existing empty one the caller owns), and puts in place only once
/// complete.
pub fn build(dir: &Path) -> Result<Built> {
    let busybox = find()?;
    let staging = super::Staging::new(dir, "busybox")?;
    let built = build_into(&busybox, staging.dir())?;
    if staging.is_new() {
        // The private 0700 of the build, opened up for the container's users.
        staging.dir().chmod(0o755)?;
    }
    staging.commit()?;
    Ok(built)
}

/// Builds into the existing empty directory `dir` (opened once, not a symlink) from the
/// busybox at `busybox`.
pub fn build_from(busybox: &Path, dir: &Path) -> Result<Built> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a directory name", dir.display())))?;
    let root = Dir::open(parent)?.open_dir(name)?;
    build_into(busybox, &root)
}

/// Builds the rootfs into `root`, through its descriptor: every directory is made with
/// mkdirat(2) and opened with O_NOFOLLOW, every file created with O_CREAT|O_EXCL, every
/// link made with symlinkat(2), so no path below `root` is ever followed.
pub fn build_into(busybox: &Path, root: &Dir) -> Result<Built> {
    for (d, mode) in DIRS {
        let dir = root.mkdir_all(Path::new(d), 0o755)?;
        // fchmod(2) on the directory's descriptor: the exact mode, umask aside.
        dir.chmod(mode)?;
    }
    let bin = root.open_dir("bin")?;
    let mut src = std::fs::File::open(busybox).ctx("open", busybox.display())?;
    let mut dst = bin.create("busybox", 0o700)?;
    std::io::copy(&mut src, &mut dst).ctx("copy busybox to", bin.child("busybox").display())?;
    nix::sys::stat::fchmod(&dst, nix::sys::stat::Mode::from_bits_truncate(0o755))
        .ctx("fchmod", bin.child("busybox").display())?;
    drop(dst);
    // `busybox --list-full` names every applet with its install path (bin/sh, usr/bin/awk).
    let out = output_of(Command::new(busybox).arg("--list-full"))
        .ctx("run", format!("{} --list-full", busybox.display()))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{} --list-full failed: {}",
            busybox.display(),
            out.status
        )));
    }
    let mut applets = 0;
    // Four directories hold every applet: each is made and opened once, and each link is
    // made through its descriptor (walking the path again per applet was most of the
    // rootfs lesson's system calls).
    let mut dirs: std::collections::BTreeMap<PathBuf, Dir> = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(rel) = super::inroot::clean(Path::new(line.trim())) else {
            continue;
        };
        if rel.as_os_str().is_empty() || rel == Path::new("bin/busybox") {
            continue;
        }
        let (Some(parent), Some(leaf)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let dir = match dirs.entry(parent.to_path_buf()) {
            std::collections::btree_map::Entry::Occupied(d) => d.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(root.mkdir_all(parent, 0o755)?)
            }
        };
        if dir.symlink(&link_target(&rel), leaf)? {
            applets += 1;
        }
    }
    let etc = root.open_dir("etc")?;
    for (file, text, mode) in [("passwd", PASSWD, 0o644), ("group", GROUP, 0o644)] {
        etc.write_new(file, text.as_bytes(), mode)?;
    }
    Ok(Built {
        busybox: busybox.to_path_buf(),
        version: version(busybox),
        applets,
        dirs: DIRS.iter().map(|(d, _)| format!("/{d}")).collect(),
    })
}

/// Runs `cmd` with its standard output in a memory file (memfd_create(2)), read once it
/// has exited: busybox writes each word of its lists with a write(2) of its own, and
/// through a pipe every one of them woke nsx to read it. Where there is no memfd, a pipe.
fn output_of(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    use std::io::{Read, Seek};
    use std::process::Stdio;
    let Ok(fd) =
        nix::sys::memfd::memfd_create(c"nsx-busybox", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
    else {
        return cmd.output();
    };
    let mut file = std::fs::File::from(fd);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(Stdio::null())
        .status()?;
    let mut stdout = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut stdout)?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr: Vec::new(),
    })
}

/// `BusyBox v1.35.0 (Debian 1:1.35.0-4+b3)`, from the first line of its usage text.
fn version(busybox: &Path) -> String {
    output_of(&mut Command::new(busybox))
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let line = text.lines().next()?.to_string();
            Some(
                line.split(" multi-call")
                    .next()
                    .unwrap_or(&line)
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "BusyBox (version unknown)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_rootfs() {
        assert_eq!(link_target(Path::new("bin/sh")), Path::new("busybox"));
        assert_eq!(
            link_target(Path::new("sbin/init")),
            Path::new("../bin/busybox")
        );
        assert_eq!(
            link_target(Path::new("usr/bin/awk")),
            Path::new("../../bin/busybox")
        );
        assert_eq!(link_target(Path::new("linuxrc")), Path::new("bin/busybox"));
    }

    #[test]
    fn a_static_binary_has_no_interpreter() {
        let mut elf = vec![0u8; 0x40 + 2 * 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        assert_eq!(elf_is_static(&elf), Some(true));
        elf[0x40 + 56..0x40 + 60].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        assert_eq!(elf_is_static(&elf), Some(false));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn missing_or_dynamic_busybox_is_exit_77_with_the_install_command() {
        let e = find_in(&[]).unwrap_err();
        assert_eq!(e.exit_code(), 77);
        assert!(e.to_string().contains(INSTALL), "{e}");
        // Any dynamically linked binary stands in for Debian's dynamic busybox.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        std::fs::copy("/bin/ls", &fake).unwrap();
        if is_static(&fake).unwrap() {
            return; // a fully static userland: nothing to test here
        }
        let e = find_in(&[fake.as_path()]).unwrap_err();
        assert_eq!(e.exit_code(), 77);
        let text = e.to_string();
        assert!(
            text.contains("dynamically linked") && text.contains(INSTALL),
            "{text}"
        );
    }

    #[test]
    fn this_hosts_shell_is_dynamic() {
        // /bin/sh on any distribution is dynamically linked: the check must say so.
        if let Ok(s) = is_static(Path::new("/bin/sh")) {
            let real = std::fs::canonicalize("/bin/sh").unwrap();
            if !real.ends_with("busybox") {
                assert!(!s, "{}", real.display());
            }
        }
    }
}
