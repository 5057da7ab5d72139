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

/// A capability as `--cap-add` and `--cap-drop` take it (Docker's names): one
/// capability, or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapArg {
    All,
    One(u32),
}

/// The number of a capability named as Docker takes it: case does not matter and the
/// `CAP_` prefix is optional (`NET_ADMIN`, `cap_net_admin`, `net_admin`), as in moby's
/// `NormalizeLegacyCapabilities`. An unknown name is a usage error that lists the known
/// ones.
pub fn parse_arg(text: &str) -> crate::Result<CapArg> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(CapArg::All);
    }
    let bare = upper
        .strip_prefix("CAP_")
        .unwrap_or(&upper)
        .to_ascii_lowercase();
    match NAMES.iter().position(|n| *n == bare) {
        Some(bit) => Ok(CapArg::One(bit as u32)),
        None => Err(crate::Error::Usage(format!(
            "unknown capability {text:?}: give one of ALL, {} (with or without CAP_, any case)",
            NAMES
                .iter()
                .map(|n| n.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The set a container gets from `base` (Docker's default set, [`DOCKER_DEFAULT`]) with
/// `--cap-add`, `--cap-drop` and `--privileged`, as moby's `TweakCapabilities` computes
/// it: `--privileged` is every capability (`all`: the kernel's, see
/// [`crate::observe::IdLimits::full_caps`]); `--cap-add ALL` is every capability but the
/// dropped ones; `--cap-drop ALL` is only the added ones; otherwise the base minus the
/// dropped plus the added.
pub fn tweak(base: u64, add: &[CapArg], drop: &[CapArg], privileged: bool, all: u64) -> u64 {
    let mask = |args: &[CapArg]| {
        args.iter().fold(0u64, |m, a| match a {
            CapArg::All => m | all,
            CapArg::One(bit) => m | (1u64 << bit),
        })
    };
    if privileged {
        return all;
    }
    let (adds, drops) = (mask(add), mask(drop));
    let caps = if add.contains(&CapArg::All) {
        all & !drops
    } else if drop.contains(&CapArg::All) {
        adds
    } else {
        (base & !drops) | adds
    };
    caps & all
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
    fn docker_names_parse_in_any_case_with_or_without_the_prefix() {
        assert_eq!(parse_arg("NET_ADMIN").unwrap(), CapArg::One(12));
        assert_eq!(parse_arg("cap_net_admin").unwrap(), CapArg::One(12));
        assert_eq!(parse_arg("Sys_Admin").unwrap(), CapArg::One(SYS_ADMIN));
        assert_eq!(parse_arg("all").unwrap(), CapArg::All);
        let e = parse_arg("CAP_FLY").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("\"CAP_FLY\"") && e.to_string().contains("NET_ADMIN"));
        assert!(parse_arg("").is_err());
    }

    #[test]
    fn cap_add_and_drop_follow_dockers_rules() {
        let all = ALL;
        let one = |n: &str| parse_arg(n).unwrap();
        // Nothing asked: the base.
        assert_eq!(tweak(DOCKER_DEFAULT, &[], &[], false, all), DOCKER_DEFAULT);
        // --privileged: everything, whatever else was asked.
        assert_eq!(tweak(DOCKER_DEFAULT, &[], &[CapArg::All], true, all), all);
        // --cap-drop ALL --cap-add NET_BIND_SERVICE: that one only.
        assert_eq!(
            tweak(
                DOCKER_DEFAULT,
                &[one("NET_BIND_SERVICE")],
                &[CapArg::All],
                false,
                all
            ),
            1 << 10
        );
        // --cap-add ALL --cap-drop SYS_ADMIN: all but that one.
        assert_eq!(
            tweak(
                DOCKER_DEFAULT,
                &[CapArg::All],
                &[one("sys_admin")],
                false,
                all
            ),
            all & !(1 << SYS_ADMIN)
        );
        // --cap-add SYS_ADMIN --cap-drop CHOWN: the base, changed.
        let t = tweak(
            DOCKER_DEFAULT,
            &[one("sys_admin")],
            &[one("chown")],
            false,
            all,
        );
        assert!(has(t, SYS_ADMIN) && !has(t, 0));
        assert_eq!(names(t).len(), 14);
        // A kernel with fewer capabilities: never more than it has.
        assert_eq!(tweak(0, &[CapArg::All], &[], false, 0xff), 0xff);
    }

    #[test]
    fn masks_parse_as_hex() {
        assert_eq!(parse_mask("000001ffffffffff\n"), Some(0x1ffffffffff));
        assert_eq!(parse_mask("xyz"), None);
        assert_eq!(parse_mask(""), None);
        assert_eq!(parse_mask("11111111111111111"), None);
    }
}
