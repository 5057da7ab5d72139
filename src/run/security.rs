//! What keeps the container's root in check in `nsx run`: Docker's flags and defaults,
//! decided before anything is created, applied by the container just before execve(2).
//!
//! The flags, named and read as `docker run` takes them:
//! - `--cap-add NAME`, `--cap-drop NAME` (any case, with or without `CAP_`, `ALL`):
//!   moby's `TweakCapabilities` over Docker's default set ([`crate::caps::tweak`]);
//! - `--privileged`: every capability, no seccomp filter, no masked or read-only paths, a
//!   writable /sys;
//! - `--security-opt no-new-privileges[=true|false]`: prctl(2) PR_SET_NO_NEW_PRIVS;
//! - `--security-opt seccomp=PROFILE.json|unconfined`: a profile in Docker's format
//!   ([`crate::security::seccomp`]) instead of nsx's default (profiles/seccomp-default.json).
//!
//! The defaults are Docker's: its 14 capabilities, its masked and read-only paths (when
//! the container has a new mount namespace and a fresh /proc: `--pid --mount`), the
//! default seccomp profile, and no_new_privs off (a setuid program in the container still
//! works, as under Docker; the rootfs is mounted nosuid anyway, see [`super::privileges`]).
//!
//! What `--privileged` does not do, unlike Docker: bind the host's /dev into the
//! container. runc's privileged containers get every host device (disks, /dev/mem,
//! /dev/kmsg) and a device cgroup that allows them all; on a shared classroom machine a
//! typo in such a container writes the host's disk. nsx keeps the same small nodev /dev
//! it always gives (null, zero, full, random, urandom, tty, a devpts of its own): the
//! container's root still holds CAP_MKNOD and CAP_SYS_ADMIN, so it could reach a device
//! if it insisted: `--privileged` is host root, and the lesson `caps` shows why.
//!
//! Host safety: without a user namespace the container's capabilities are the host's.
//! A capability that acts on a namespace the container shares with the host is refused
//! before anything is made: CAP_SYS_ADMIN without a UTS namespace and a mount namespace
//! of its own (sethostname(2) would rename the host, mount(2) would change the host's
//! table), CAP_SYS_BOOT without a PID namespace (reboot(2) would restart the machine)
//! and CAP_NET_ADMIN without a network namespace (the host's interfaces, routes,
//! firewall). Those no namespace confines (the clock, modules, raw I/O) get a warning.

use std::path::PathBuf;

use nix::sched::CloneFlags;

use crate::caps::{self, CapArg};
use crate::error::{Error, Result};
use crate::security::seccomp::{self as sc, Filters, Profile};

/// The seccomp profile asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// profiles/seccomp-default.json, built in.
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=PROFILE.json`.
    Profile(PathBuf),
}

/// One `--security-opt` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    NoNewPrivileges(bool),
    Seccomp(Seccomp),
}

/// The security flags of `nsx run`, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOptions {
    pub cap_add: Vec<CapArg>,
    pub cap_drop: Vec<CapArg>,
    pub privileged: bool,
    pub no_new_privs: bool,
    pub seccomp: Seccomp,
}

impl SecurityOptions {
    /// Folds `--security-opt` values in, the last of each kind winning (as Docker does).
    pub fn with_opts(mut self, opts: &[SecurityOpt]) -> Self {
        for o in opts {
            match o {
                SecurityOpt::NoNewPrivileges(on) => self.no_new_privs = *on,
                SecurityOpt::Seccomp(s) => self.seccomp = s.clone(),
            }
        }
        self
    }
}

/// `--cap-add` / `--cap-drop` values: [`caps::parse_arg`].
pub fn parse_cap(text: &str) -> std::result::Result<CapArg, String> {
    caps::parse_arg(text).map_err(|e| match e {
        Error::Usage(m) => m,
        other => other.to_string(),
    })
}

/// A `--security-opt` value as Docker takes it: `no-new-privileges`,
/// `no-new-privileges=true|false`, `seccomp=unconfined`, `seccomp=PROFILE.json` (and the
/// old `:` separator Docker still reads). Anything else is refused with what nsx knows.
pub fn parse_security_opt(text: &str) -> std::result::Result<SecurityOpt, String> {
    let (key, value) = match text.find(['=', ':']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    match (key, value) {
        ("no-new-privileges", None) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some(v)) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(SecurityOpt::NoNewPrivileges(true)),
            "false" | "0" => Ok(SecurityOpt::NoNewPrivileges(false)),
            _ => Err(format!(
                "no-new-privileges={v}: give true or false (or no value: true)"
            )),
        },
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::Seccomp(Seccomp::Unconfined)),
        ("seccomp", Some("")) | ("seccomp", None) => Err(
            "seccomp needs a value: seccomp=PROFILE.json (Docker's format) or seccomp=unconfined"
                .into(),
        ),
        ("seccomp", Some(path)) => Ok(SecurityOpt::Seccomp(Seccomp::Profile(path.into()))),
        ("apparmor" | "label" | "systempaths" | "mask" | "writable-cgroups", _) => Err(format!(
            "{text}: nsx run does not take this Docker option (it applies no LSM profile and has no per-path masks); nsx takes no-new-privileges[=true|false] and seccomp=PROFILE.json|unconfined"
        )),
        _ => Err(format!(
            "unknown security option {text:?}: nsx takes no-new-privileges[=true|false] and seccomp=PROFILE.json|unconfined"
        )),
    }
}

/// Where the container's security settings are decided, for [`plan`].
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The namespaces clone(2) and the late unshares will make (a user namespace
    /// included when nsx adds one for a user who is not root).
    pub namespaces: CloneFlags,
    /// The container gets a fresh /proc in a private mount namespace.
    pub fresh_proc: bool,
    /// Every capability this kernel has (cap_last_cap).
    pub full: u64,
    /// nsx's own bounding set: what the container's root can have without a user
    /// namespace.
    pub own_bounding: u64,
    /// nsx runs as root (euid 0).
    pub root: bool,
}

/// What the container applies, decided by [`plan`].
#[derive(Debug, Clone)]
pub struct Security {
    /// The bounding, permitted and effective sets the command gets; `None`: the command
    /// runs as the invoking user, with no capabilities to drop.
    pub caps: Option<u64>,
    /// Docker's masked and read-only paths.
    pub masks: bool,
    /// /sys mounted writable (`--privileged`).
    pub sys_writable: bool,
    pub no_new_privs: bool,
    /// The seccomp filters, compiled and checked against nsx's own set-up.
    pub seccomp: Option<Filters>,
}

/// Checks the flags and decides what the container gets; every refusal is a usage error
/// (exit 2), and nothing has been created when this runs.
pub fn plan(o: &SecurityOptions, s: Setting) -> Result<Security> {
    let userns = s.namespaces.contains(CloneFlags::CLONE_NEWUSER);
    // The command is root inside when nsx is root, or in a user namespace nsx made (root
    // there holds every capability, over that namespace's resources only).
    let root_inside = s.root || userns;
    if !root_inside {
        // Only no_new_privs means something for a process with no capabilities (and
        // seccomp=unconfined, which asks for nothing).
        let harmless = SecurityOptions {
            no_new_privs: o.no_new_privs,
            seccomp: match o.seccomp {
                Seccomp::Unconfined => Seccomp::Unconfined,
                _ => Seccomp::Default,
            },
            ..SecurityOptions::default()
        };
        if *o != harmless {
            return Err(Error::Usage(
                "--cap-add, --cap-drop, --privileged and --security-opt seccomp= need a container root: without namespaces nsx runs the command as you, with no capabilities (add a namespace, e.g. --user, or run as root)".into(),
            ));
        }
        return Ok(Security {
            caps: None,
            masks: false,
            sys_writable: false,
            no_new_privs: o.no_new_privs,
            seccomp: None,
        });
    }
    let wanted = caps::tweak(
        caps::DOCKER_DEFAULT,
        &o.cap_add,
        &o.cap_drop,
        o.privileged,
        s.full,
    );
    // What the command will hold: without a user namespace nothing outside nsx's own
    // bounding set (capabilities(7): it only shrinks).
    let keep = if userns {
        wanted
    } else {
        wanted & s.own_bounding
    };
    if o.privileged && (!o.cap_add.is_empty() || !o.cap_drop.is_empty()) {
        crate::warn!(
            "nsx: --privileged gives every capability; --cap-add and --cap-drop are ignored (as Docker does)"
        );
    }
    if !userns {
        host_safe(keep, s.namespaces)?;
        let wide = host_wide(keep);
        if !wide.is_empty() {
            crate::warn!(
                "nsx: the command gets {}: no namespace confines what they reach (the clock, kernel modules, raw I/O, the kernel log, any file by handle), so in the container they act on this host",
                wide.join(", ")
            );
        }
    }
    let seccomp = match (&o.seccomp, o.privileged) {
        (Seccomp::Unconfined, _) => None,
        (Seccomp::Default, true) => None,
        (Seccomp::Profile(p), true) => {
            return Err(Error::Usage(format!(
                "--privileged runs without a seccomp filter, and Docker would ignore seccomp={} silently: drop one of the two",
                p.display()
            )))
        }
        (Seccomp::Default, false) => match filters(Profile::default_profile(), keep, "default") {
            // An architecture seccompiler cannot target: the default is left out with a
            // warning (as Docker runs without a filter where seccomp is not built in);
            // a profile asked for by name is still refused (exit 77).
            Err(e @ Error::Unsupported { .. }) => {
                crate::warn!("nsx: running without the default seccomp profile: {e}");
                None
            }
            other => Some(other?),
        },
        (Seccomp::Profile(p), false) => {
            let shown = p.display().to_string();
            Some(filters(Profile::load(p)?, keep, &shown)?)
        }
    };
    Ok(Security {
        caps: Some(keep),
        masks: s.fresh_proc && !o.privileged,
        sys_writable: o.privileged,
        no_new_privs: o.no_new_privs,
        seccomp,
    })
}

/// A profile resolved for a container whose bounding set is `caps` (`includes.caps`),
/// checked against what nsx does after installing it ([`sc::RUN_SETUP`]), and compiled.
fn filters(profile: Profile, caps: u64, source: &str) -> Result<Filters> {
    let plan = profile.resolve(&sc::Context::native(caps)?);
    plan.check_setup(sc::RUN_SETUP, source)?;
    plan.compile()
}

/// Refuses capabilities that would act on a namespace the container shares with the host.
pub fn host_safe(keep: u64, ns: CloneFlags) -> Result<()> {
    let shared = |f: CloneFlags| !ns.contains(f);
    let rules: [(u32, CloneFlags, &str, &str); 4] = [
        (
            caps::SYS_ADMIN,
            CloneFlags::CLONE_NEWUTS,
            "--uts",
            "sethostname(2) would rename this host",
        ),
        (
            caps::SYS_ADMIN,
            CloneFlags::CLONE_NEWNS,
            "--mount",
            "mount(2) would change this host's mount table",
        ),
        (
            // pid_namespaces(7): reboot(2) in a PID namespace other than the initial one
            // ends that namespace's init; in the host's it restarts the machine.
            bit("sys_boot"),
            CloneFlags::CLONE_NEWPID,
            "--pid",
            "reboot(2) would restart this machine",
        ),
        (
            bit("net_admin"),
            CloneFlags::CLONE_NEWNET,
            "--net",
            "it could change this host's interfaces, routes and firewall",
        ),
    ];
    for (cap, ns_flag, flag, harm) in rules {
        if caps::has(keep, cap) && shared(ns_flag) {
            return Err(Error::Usage(format!(
                "the command would hold CAP_{} in this host's namespace without {flag}: {harm}; add {flag} (or --all), or a user namespace (--user)",
                caps::name(cap).to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

/// The number of the capability `name` ([`caps::NAMES`]).
fn bit(name: &str) -> u32 {
    caps::NAMES
        .iter()
        .position(|n| *n == name)
        .map_or(u32::MAX, |b| b as u32)
}

/// Capabilities over something no namespace contains (the clock, kernel modules, raw
/// I/O, the kernel log, every file by handle): in the container they act on the host.
/// nsx says so when the command gets one outside Docker's default set.
pub fn host_wide(keep: u64) -> Vec<String> {
    [
        "dac_read_search",
        "sys_module",
        "sys_rawio",
        "sys_time",
        "syslog",
        "mac_admin",
    ]
    .iter()
    .filter(|n| caps::has(keep, bit(n)))
    .map(|n| format!("CAP_{}", n.to_ascii_uppercase()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: u64 = (1 << 41) - 1;

    fn setting(ns: CloneFlags) -> Setting {
        Setting {
            namespaces: ns,
            fresh_proc: ns.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS),
            full: FULL,
            own_bounding: FULL & !(1 << 24),
            root: true,
        }
    }

    fn opts(add: &[&str], drop: &[&str]) -> SecurityOptions {
        SecurityOptions {
            cap_add: add.iter().map(|a| parse_cap(a).unwrap()).collect(),
            cap_drop: drop.iter().map(|a| parse_cap(a).unwrap()).collect(),
            ..SecurityOptions::default()
        }
    }

    #[test]
    fn security_opts_are_read_as_docker_reads_them() {
        use SecurityOpt::*;
        let p = |t| parse_security_opt(t);
        assert_eq!(p("no-new-privileges"), Ok(NoNewPrivileges(true)));
        assert_eq!(p("no-new-privileges=true"), Ok(NoNewPrivileges(true)));
        assert_eq!(p("no-new-privileges:false"), Ok(NoNewPrivileges(false)));
        assert_eq!(p("no-new-privileges=FALSE"), Ok(NoNewPrivileges(false)));
        assert!(p("no-new-privileges=maybe").is_err());
        assert_eq!(
            p("seccomp=unconfined"),
            Ok(Seccomp(super::Seccomp::Unconfined))
        );
        assert_eq!(
            p("seccomp=/x/p.json"),
            Ok(Seccomp(super::Seccomp::Profile("/x/p.json".into())))
        );
        assert!(p("seccomp").is_err() && p("seccomp=").is_err());
        assert!(p("apparmor=unconfined")
            .unwrap_err()
            .contains("does not take"));
        assert!(p("nonsense")
            .unwrap_err()
            .contains("unknown security option"));
        let o = SecurityOptions::default().with_opts(&[
            NoNewPrivileges(true),
            Seccomp(super::Seccomp::Unconfined),
            NoNewPrivileges(false),
        ]);
        assert!(!o.no_new_privs);
        assert_eq!(o.seccomp, super::Seccomp::Unconfined);
    }

    #[test]
    fn cap_names_are_dockers_and_unknown_ones_are_refused() {
        for t in ["NET_ADMIN", "cap_net_admin", "net_admin", "Cap_Net_Admin"] {
            assert_eq!(parse_cap(t), Ok(CapArg::One(12)), "{t}");
        }
        assert_eq!(parse_cap("all"), Ok(CapArg::All));
        assert!(parse_cap("NET_ADMINN")
            .unwrap_err()
            .contains("unknown capability"));
    }

    #[test]
    fn drop_all_then_add_and_the_default_set() {
        let all_ns = crate::run::all_namespaces();
        let s = plan(&opts(&[], &[]), setting(all_ns)).unwrap();
        assert_eq!(s.caps, Some(caps::DOCKER_DEFAULT));
        assert!(s.masks && !s.sys_writable && !s.no_new_privs);
        assert!(s.seccomp.as_ref().is_some_and(|f| !f.is_empty()));
        let s = plan(&opts(&[], &["ALL"]), setting(CloneFlags::empty())).unwrap();
        assert_eq!(s.caps, Some(0));
        assert!(!s.masks, "no fresh /proc, no masks");
        // Docker: drop ALL, then add; the order of the flags does not matter.
        let s = plan(&opts(&["chown"], &["all"]), setting(CloneFlags::empty())).unwrap();
        assert_eq!(s.caps, Some(1));
        let s = plan(&opts(&[], &["CAP_CHOWN"]), setting(CloneFlags::empty())).unwrap();
        assert_eq!(s.caps, Some(caps::DOCKER_DEFAULT & !1));
    }

    #[test]
    fn privileged_is_every_capability_the_host_allows_and_no_filter_or_masks() {
        let o = SecurityOptions {
            privileged: true,
            ..SecurityOptions::default()
        };
        let no_user = crate::run::all_namespaces() - CloneFlags::CLONE_NEWUSER;
        let s = plan(&o, setting(no_user)).unwrap();
        assert_eq!(
            s.caps,
            Some(FULL & !(1 << 24)),
            "nsx's own bounding set is the ceiling"
        );
        let s = plan(&o, setting(crate::run::all_namespaces())).unwrap();
        assert_eq!(
            s.caps,
            Some(FULL),
            "in a user namespace of its own: every one"
        );
        assert!(s.seccomp.is_none() && !s.masks && s.sys_writable);
        let o = SecurityOptions {
            privileged: true,
            seccomp: Seccomp::Profile("/p.json".into()),
            ..SecurityOptions::default()
        };
        assert_eq!(
            plan(&o, setting(crate::run::all_namespaces()))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn host_wide_capabilities_need_the_namespaces_they_act_on() {
        let e = plan(&opts(&["SYS_ADMIN"], &[]), setting(CloneFlags::empty())).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--uts"), "{e}");
        let e = plan(
            &opts(&["SYS_ADMIN"], &[]),
            setting(CloneFlags::CLONE_NEWUTS),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--mount"), "{e}");
        let o = SecurityOptions {
            privileged: true,
            ..SecurityOptions::default()
        };
        let ns = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS;
        assert!(plan(&o, setting(ns))
            .unwrap_err()
            .to_string()
            .contains("--pid"));
        assert!(plan(&o, setting(ns | CloneFlags::CLONE_NEWPID))
            .unwrap_err()
            .to_string()
            .contains("--net"));
        let e = plan(&opts(&["sys_boot"], &[]), setting(ns)).unwrap_err();
        assert!(e.to_string().contains("--pid"), "{e}");
        assert_eq!(host_wide(caps::DOCKER_DEFAULT), Vec::<String>::new());
        assert_eq!(
            host_wide(1 << 25 | 1 << 2),
            ["CAP_DAC_READ_SEARCH", "CAP_SYS_TIME"]
        );
        // In a user namespace they act on that namespace's resources only.
        assert!(plan(&o, setting(CloneFlags::CLONE_NEWUSER)).is_ok());
        assert!(plan(&opts(&["SYS_ADMIN"], &[]), setting(ns)).is_ok());
    }

    #[test]
    fn without_a_container_root_only_no_new_privs_applies() {
        let mut st = setting(CloneFlags::empty());
        st.root = false;
        let o = SecurityOptions {
            no_new_privs: true,
            ..SecurityOptions::default()
        };
        let s = plan(&o, st).unwrap();
        assert!(s.caps.is_none() && s.seccomp.is_none() && s.no_new_privs);
        assert_eq!(plan(&opts(&[], &["ALL"]), st).unwrap_err().exit_code(), 2);
        let profile = SecurityOptions {
            seccomp: Seccomp::Profile("/p.json".into()),
            ..SecurityOptions::default()
        };
        assert_eq!(plan(&profile, st).unwrap_err().exit_code(), 2);
        let unconfined = SecurityOptions {
            seccomp: Seccomp::Unconfined,
            ..SecurityOptions::default()
        };
        assert!(plan(&unconfined, st).is_ok());
    }

    #[test]
    fn a_profile_that_kills_the_setup_or_is_malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("kills.json");
        std::fs::write(
            &bad,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["capset"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        )
        .unwrap();
        let with = |p: &std::path::Path| SecurityOptions {
            seccomp: Seccomp::Profile(p.into()),
            ..SecurityOptions::default()
        };
        let e = plan(&with(&bad), setting(CloneFlags::empty())).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("capset"), "{e}");
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, "{").unwrap();
        assert_eq!(
            plan(&with(&junk), setting(CloneFlags::empty()))
                .unwrap_err()
                .exit_code(),
            2
        );
        let unknown = dir.path().join("unknown.json");
        std::fs::write(
            &unknown,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(
            plan(&with(&unknown), setting(CloneFlags::empty()))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
