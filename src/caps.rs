//! Capability names (capabilities(7)), to decode the masks of `/proc/<pid>/status`.
//!
//! `CapEff: 000001ffffffffff` is a bit mask: bit N is the capability numbered N in
//! <linux/capability.h>. Bits this table does not know (a newer kernel) are shown as
//! `cap_<N>`.

use serde::Serialize;

/// The capabilities Linux defines, indexed by number (0 = CAP_CHOWN ... 40 =
/// CAP_CHECKPOINT_RESTORE, Linux 5.9).
pub const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// CAP_SYS_ADMIN: creating most namespaces, mounting, sethostname (capabilities(7)).
pub const SYS_ADMIN: u32 = 21;

/// Docker's default capabilities (moby `oci/caps/defaults.go`), the set `nsx run` keeps
/// as root: everything a container's root usually needs (own files, change ids, bind
/// low ports, chroot, kill its own processes) and nothing that reaches past the container
/// (no sys_admin, sys_module, sys_rawio, sys_ptrace, net_admin, ...).
pub const DOCKER_DEFAULT_NAMES: [&str; 14] = [
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
];

/// [`DOCKER_DEFAULT_NAMES`] as a mask, as `CapEff` in /proc/<pid>/status shows it.
pub const DOCKER_DEFAULT: u64 = 0x0000_0000_a804_25fb;

/// Every capability this table knows, as a mask.
pub const ALL: u64 = (1u64 << NAMES.len()) - 1;

/// The name of capability `bit`: `sys_admin`, or `cap_<N>` for one the table lacks.
pub fn name(bit: u32) -> String {
    NAMES
        .get(bit as usize)
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("cap_{bit}"))
}

/// The names of the bits set in `mask`, lowest first.
pub fn names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(name)
        .collect()
}

pub fn has(mask: u64, bit: u32) -> bool {
    bit < 64 && mask & (1u64 << bit) != 0
}

/// A capability set decoded for display: the mask as status shows it, the names, and the
/// known capabilities it lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapSet {
    /// As status shows it: 16 hex digits.
    pub hex: String,
    pub names: Vec<String>,
    /// Known capabilities not in the set (short for a nearly full set).
    pub missing: Vec<String>,
}

impl CapSet {
    pub fn new(mask: u64) -> CapSet {
        CapSet {
            hex: format!("{mask:016x}"),
            names: names(mask),
            missing: names(ALL & !mask),
        }
    }

    /// "none", "all 41", "all 41 but sys_resource", or the list: whichever is shorter.
    pub fn summary(&self) -> String {
        let known = NAMES.len();
        if self.names.is_empty() {
            "none".to_string()
        } else if self.missing.is_empty() {
            let extra: Vec<&String> = self
                .names
                .iter()
                .filter(|n| n.starts_with("cap_"))
                .collect();
            if extra.is_empty() {
                format!("all {known}")
            } else {
                format!(
                    "all {known}, and {}",
                    extra
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        } else if self.missing.len() < self.names.len() {
            format!("all {known} but {}", self.missing.join(" "))
        } else {
            self.names.join(" ")
        }
    }
}

/// Parses a status mask such as `000001ffffffffff`; `None` if it is not hex.
pub fn parse_mask(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_set_decodes_to_all_41() {
        let s = CapSet::new(0x000001ffffffffff);
        assert_eq!(s.names.len(), 41);
        assert_eq!(s.names[0], "chown");
        assert_eq!(s.names[40], "checkpoint_restore");
        assert_eq!(s.summary(), "all 41");
    }

    #[test]
    fn this_machines_bounding_set_lacks_sys_resource() {
        // CapBnd of a process on the development machine.
        let s = CapSet::new(0x000001fffeffffff);
        assert_eq!(s.missing, ["sys_resource"]);
        assert_eq!(s.summary(), "all 41 but sys_resource");
        assert!(has(0x000001fffeffffff, SYS_ADMIN));
    }

    #[test]
    fn small_sets_are_listed_and_unknown_bits_named_by_number() {
        let docker_default = 0x00000000a80425fb;
        let s = CapSet::new(docker_default);
        assert_eq!(
            s.summary(),
            "chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap"
        );
        assert_eq!(CapSet::new(0).summary(), "none");
        assert_eq!(name(41), "cap_41");
        assert_eq!(CapSet::new(u64::MAX).summary().matches("cap_").count(), 23);
    }

    #[test]
    fn the_docker_default_mask_is_its_14_names() {
        let from_names = DOCKER_DEFAULT_NAMES
            .iter()
            .map(|n| NAMES.iter().position(|k| k == n).expect(n))
            .fold(0u64, |m, bit| m | 1 << bit);
        assert_eq!(from_names, DOCKER_DEFAULT);
        assert_eq!(names(DOCKER_DEFAULT).len(), 14);
        assert!(!has(DOCKER_DEFAULT, SYS_ADMIN));
    }

    #[test]
    fn masks_parse_as_hex() {
        assert_eq!(parse_mask("000001ffffffffff\n"), Some(0x1ffffffffff));
        assert_eq!(parse_mask("xyz"), None);
        assert_eq!(parse_mask(""), None);
        assert_eq!(parse_mask("11111111111111111"), None);
    }
}
