//! Linux Security Modules: which are active, and one that any process may use on itself.
//!
//! An LSM is a set of hooks the kernel calls before an operation, after the ordinary
//! permission checks: it can only refuse more, never allow what DAC or capabilities
//! refused. The capability checks themselves are one (`capability`, always first).
//! AppArmor and SELinux label every process (`/proc/<pid>/attr/current`) and refuse by a
//! policy an administrator loads: Docker runs containers under AppArmor's
//! `docker-default` profile, or SELinux's `container_t` type. Landlock (Linux 5.13) lets
//! an unprivileged process restrict itself and its children (landlock(7)): nsx uses it
//! to show an LSM refusing root holding every capability.

use std::path::Path;

use nix::errno::Errno;

use crate::error::{sys, Result};

/// The active LSMs, in the order the kernel calls them, from securityfs's `lsm` file
/// (Linux 5.1) under `sys` ("/sys"): `None` when securityfs is not mounted there.
pub fn active(sys_dir: &Path) -> Result<Option<Vec<String>>> {
    let path = sys_dir.join("kernel/security/lsm");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_list(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::error::io("read", &path, e)),
    }
}

/// `lockdown,capability,landlock,bpf` -> its names.
pub fn parse_list(text: &str) -> Vec<String> {
    text.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The LSMs that label processes and load policies: where one is active,
/// `/proc/<pid>/attr/current` holds its label.
pub const MAC: [&str; 3] = ["apparmor", "selinux", "smack"];

/// landlock_create_ruleset(2) flag: ask for the ABI version instead of a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;
/// landlock(7): opening a file for writing (and truncating it with open).
const LANDLOCK_ACCESS_FS_WRITE_FILE: u64 = 1 << 1;

/// struct landlock_ruleset_attr, its first field (ABI 1): the kernel takes the size as
/// the version, and a smaller struct leaves the later fields zero.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// The Landlock ABI version this kernel offers, or the errno that says it offers none
/// (ENOSYS: not built in; EOPNOTSUPP: built in but not enabled at boot).
pub fn landlock_abi() -> std::result::Result<i64, Errno> {
    // landlock_create_ruleset(2): NULL, 0 and LANDLOCK_CREATE_RULESET_VERSION return the
    // highest ABI version supported.
    // SAFETY: a null attribute pointer with size 0 is what the version query takes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// Restricts this process, and every child it makes from now on, so that no file can be
/// opened for writing: a ruleset that handles LANDLOCK_ACCESS_FS_WRITE_FILE and has no
/// rule allowing it anywhere. It can never be lifted.
///
/// landlock_restrict_self(2) needs no_new_privs or CAP_SYS_ADMIN in the caller's user
/// namespace (so that a restricted process cannot fool a setuid program); a probe holding
/// every capability has the latter.
pub fn deny_writes() -> Result<()> {
    let attr = RulesetAttr {
        handled_access_fs: LANDLOCK_ACCESS_FS_WRITE_FILE,
    };
    // SAFETY: a landlock_ruleset_attr of the size passed, no flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(sys(
            "landlock_create_ruleset",
            "handled: write_file",
            Errno::last(),
        ));
    }
    let fd = fd as libc::c_int;
    // SAFETY: fd is the ruleset descriptor just returned; no flags.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0 as libc::c_uint) };
    let err = Errno::last();
    // SAFETY: fd is ours and used no more.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(sys("landlock_restrict_self", "the ruleset", err));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lsm_list_is_comma_separated() {
        assert_eq!(
            parse_list("lockdown,capability,landlock,bpf"),
            ["lockdown", "capability", "landlock", "bpf"]
        );
        assert_eq!(
            parse_list("capability,apparmor\n"),
            ["capability", "apparmor"]
        );
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn a_missing_securityfs_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(active(dir.path()).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("kernel/security")).unwrap();
        std::fs::write(dir.path().join("kernel/security/lsm"), "capability,yama").unwrap();
        assert_eq!(
            active(dir.path()).unwrap(),
            Some(vec!["capability".into(), "yama".into()])
        );
    }
}
