//! What holds a process back, as its procfs directory shows it: the credentials and
//! capability sets of `<dir>/status` (proc(5), capabilities(7)), `NoNewPrivs` (prctl(2)
//! PR_SET_NO_NEW_PRIVS), the seccomp mode (seccomp(2)), and the label an LSM gives it in
//! `<dir>/attr/current` and `<dir>/attr/apparmor/current` (proc(5): "/proc/pid/attr").
//! The same reader serves the probe's own `/proc/self` and the host's `/proc/<pid>`.

use serde::{Deserialize, Serialize};

use super::{ProcDir, ProcExtra};
use crate::error::{Error, Result};

/// A process's privileges and confinement, as one procfs shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// `Uid:`: real, effective, saved set and file-system user IDs.
    pub uid: [u32; 4],
    /// `CapInh:`, `CapPrm:`, `CapEff:`: the inheritable, permitted and effective sets.
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    /// `CapBnd:` (the bounding set) and `CapAmb:` (the ambient set, Linux 4.3).
    pub cap_bnd: Option<u64>,
    pub cap_amb: Option<u64>,
    /// `NoNewPrivs:`: set, execve(2) never grants privileges (setuid bits, file
    /// capabilities) again.
    pub no_new_privs: Option<bool>,
    /// `Seccomp:`: 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u32>,
    /// `Seccomp_filters:`: filters attached (Linux 5.9).
    pub seccomp_filters: Option<u32>,
    /// `<dir>/attr/current`: the label of the LSM that provides it (SELinux, AppArmor,
    /// Smack).
    pub label: Attr,
    /// `<dir>/attr/apparmor/current`: AppArmor's own label (Linux 5.8), present only where
    /// AppArmor is built in.
    pub apparmor: Attr,
}

/// One read of an LSM attribute file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", content = "value", rename_all = "lowercase")]
pub enum Attr {
    /// The label, without its trailing newline or NUL.
    Label(String),
    /// The read failed with this errno: EINVAL when no active LSM provides the file.
    Error(String),
    /// The file does not exist on this kernel.
    #[default]
    Absent,
}

impl Attr {
    /// The label, when one was read.
    pub fn label(&self) -> Option<&str> {
        match self {
            Attr::Label(l) => Some(l),
            _ => None,
        }
    }
}

impl std::fmt::Display for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attr::Label(l) => f.write_str(l),
            Attr::Error(e) => write!(f, "{e} on read"),
            Attr::Absent => f.write_str("no such file"),
        }
    }
}

/// The [`Security`] of the process whose directory `d` is, its status already parsed
/// (`uid` the real one).
pub(super) fn read_security(d: &ProcDir, uid: u32, x: &ProcExtra) -> Result<Security> {
    let mut buf = Vec::with_capacity(256);
    Ok(Security {
        uid: [uid, x.euid, x.suid, x.fsuid],
        cap_inh: x.cap_inh,
        cap_prm: x.cap_prm,
        cap_eff: x.cap_eff,
        cap_bnd: x.cap_bnd,
        cap_amb: x.cap_amb,
        no_new_privs: x.no_new_privs,
        seccomp: x.seccomp,
        seccomp_filters: x.seccomp_filters,
        label: read_attr(d, "attr/current", &mut buf)?,
        apparmor: read_attr(d, "attr/apparmor/current", &mut buf)?,
    })
}

/// proc(5): reading `attr/current` fails with EINVAL when no LSM that labels processes
/// is active; that, and a missing file, are answers here, not errors.
fn read_attr(d: &ProcDir, name: &str, buf: &mut Vec<u8>) -> Result<Attr> {
    match d.read_if_present(name, buf) {
        Ok(false) => Ok(Attr::Absent),
        Ok(true) => Ok(Attr::Label(clean_label(buf))),
        Err(Error::Sys(s)) => Ok(Attr::Error(format!("{:?}", s.errno))),
        Err(e) => Err(e),
    }
}

/// A label as the kernel writes it ("unconfined\n", SELinux's ends with a NUL).
fn clean_label(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\n', '\0'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lose_their_newline_and_nul() {
        assert_eq!(clean_label(b"unconfined\n"), "unconfined");
        assert_eq!(
            clean_label(b"system_u:system_r:container_t:s0\0"),
            "system_u:system_r:container_t:s0"
        );
        assert_eq!(
            clean_label(b"docker-default (enforce)\n"),
            "docker-default (enforce)"
        );
    }

    #[test]
    fn attrs_read_as_labels_errors_or_absent() {
        assert_eq!(Attr::Label("x".into()).label(), Some("x"));
        assert_eq!(Attr::Error("EINVAL".into()).to_string(), "EINVAL on read");
        assert_eq!(Attr::Absent.label(), None);
        let json = serde_json::to_value(Attr::Error("EINVAL".into())).unwrap();
        assert_eq!(json, serde_json::json!({"is": "error", "value": "EINVAL"}));
    }
}
