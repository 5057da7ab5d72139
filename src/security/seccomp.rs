//! Seccomp profiles in Docker's JSON format, the format runc and containerd take, turned
//! into filters with seccompiler and installed with seccomp(2).
//!
//! A profile's life, and where each check happens, so that a bad profile is refused (exit
//! 2, with the reason) before anything is changed:
//! 1. [`Profile::parse`]: the JSON, typed by serde (unknown fields refused), then checked:
//!    every system call name must exist on some architecture, every action, operator,
//!    argument index, capability and architecture name must be one the format defines.
//! 2. [`Profile::resolve`]: the profile for one machine and one container, as Docker
//!    does it (moby `profiles/seccomp`): rules whose `includes`/`excludes` do not fit this
//!    architecture, this kernel or the container's bounding capabilities are left out,
//!    names this architecture lacks are skipped (runc skips them too), and several
//!    conditions on one argument become separate rules (runc's reading of them).
//! 3. [`Plan::check_setup`]: the system calls nsx itself makes between installing the
//!    filter and execve(2) ([`RUN_SETUP`]) must not be killed, and those it cannot do
//!    without must be allowed.
//! 4. [`Plan::compile`]: BPF programs, built by seccompiler (no hand-assembled BPF).
//!    seccompiler builds a filter with one action for the calls it matches and one for
//!    the rest, so a profile becomes one filter per action: the default filter (every call
//!    a rule names passes, the rest get the default action) and, per other action, a
//!    filter that gives it to the calls of its rules and lets the rest pass. seccomp(2):
//!    the kernel runs every filter and keeps the verdict of highest precedence (kill
//!    process, kill thread, trap, errno, trace, log, allow) and, between equals, the one
//!    of the filter installed last: rules are installed after the default filter, so a
//!    rule's errno wins over the default's. That is the profile's meaning, and the number
//!    the host reads in `Seccomp_filters`.
//! 5. [`Filters::install`]: seccomp(2) SECCOMP_SET_MODE_FILTER in the process about to
//!    exec, after PR_SET_NO_NEW_PRIVS when asked (or when it lacks CAP_SYS_ADMIN).
//!
//! Differences from Docker, documented in profiles/README.md: nsx filters the native ABI
//! only (seccompiler's filters kill a process that makes a system call of another ABI,
//! such as a 32-bit `int 0x80` on x86_64, where Docker's `archMap` lets the x86 and x32
//! calls through the same rules), and it has no SCMP_ACT_NOTIFY (no listener).

use std::collections::BTreeMap;
use std::path::Path;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::syscalls::{self, Arch};
use crate::error::{op, sys, Error, Result};

/// The largest profile nsx reads: Docker's default is 20 KiB.
const MAX_PROFILE_BYTES: u64 = 4 << 20;

/// The kernel clamps an errno from a filter to MAX_ERRNO (include/linux/err.h).
const MAX_ERRNO: u32 = 4095;

/// An action as the format names it (libseccomp's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionName {
    /// libseccomp: the same as SCMP_ACT_KILL_THREAD.
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// A comparison of one argument (libseccomp's operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `(arg & value) == valueTwo`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// One condition on an argument: `args[index] op value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

/// `includes` and `excludes`: when a rule applies (all that are given must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct When {
    /// Capabilities (`CAP_SYS_ADMIN`), checked against the container's bounding set.
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// Architectures as Go names them (`amd64`, `arm64`, `s390x`).
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// `major.minor`: the kernel this rule needs at least (includes) or must be below
    /// (excludes).
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// The older form: one name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    pub action: ActionName,
    /// The errno for SCMP_ACT_ERRNO (default EPERM), or the message for SCMP_ACT_TRACE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions, all of which must hold (but see [`Profile::resolve`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Arg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<When>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<When>,
}

/// One entry of `archMap`: an architecture and the ABIs its filters also cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// A seccomp profile in Docker's JSON format (`docker run --security-opt seccomp=FILE`,
/// the `linux.seccomp` object of an OCI config.json is the same without `archMap`,
/// `includes` and `excludes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    pub default_action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<Rule>>,
    /// SECCOMP_FILTER_FLAG_* names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

/// What the kernel does with a system call (seccomp(2) SECCOMP_RET_*), in order of
/// precedence: when several filters answer, the first of this list wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", content = "data", rename_all = "snake_case")]
pub enum Verdict {
    /// The whole process dies, as if by SIGSYS (and would dump core).
    KillProcess,
    /// The calling thread dies, as if by SIGSYS.
    KillThread,
    /// SIGSYS is sent; the call is not made.
    Trap,
    /// The call is not made and fails with this errno.
    Errno(u32),
    /// A ptrace(2) tracer is told; without one the call fails with ENOSYS.
    Trace(u32),
    /// Made, and logged.
    Log,
    Allow,
}

impl Verdict {
    /// seccomp(2)'s precedence: lower is stronger.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::KillProcess => 0,
            Verdict::KillThread => 1,
            Verdict::Trap => 2,
            Verdict::Errno(_) => 3,
            Verdict::Trace(_) => 4,
            Verdict::Log => 5,
            Verdict::Allow => 6,
        }
    }

    /// The call is made.
    pub fn runs(self) -> bool {
        matches!(self, Verdict::Allow | Verdict::Log)
    }

    /// The process (or thread) dies: kill, or SIGSYS, whose default action ends it.
    pub fn fatal(self) -> bool {
        matches!(
            self,
            Verdict::KillProcess | Verdict::KillThread | Verdict::Trap
        )
    }

    fn action(self) -> seccompiler::SeccompAction {
        use seccompiler::SeccompAction as A;
        match self {
            Verdict::KillProcess => A::KillProcess,
            Verdict::KillThread => A::KillThread,
            Verdict::Trap => A::Trap,
            Verdict::Errno(e) => A::Errno(e),
            Verdict::Trace(m) => A::Trace(m),
            Verdict::Log => A::Log,
            Verdict::Allow => A::Allow,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::KillProcess => f.write_str("kill the process (SIGSYS)"),
            Verdict::KillThread => f.write_str("kill the thread (SIGSYS)"),
            Verdict::Trap => f.write_str("trap (SIGSYS)"),
            Verdict::Errno(e) => write!(f, "fail with {}", errno_name(*e)),
            Verdict::Trace(m) => write!(f, "trace ({m})"),
            Verdict::Log => f.write_str("allow and log"),
            Verdict::Allow => f.write_str("allow"),
        }
    }
}

/// `EPERM`, or `errno 4000` for one without a name.
pub fn errno_name(e: u32) -> String {
    match i32::try_from(e).map(Errno::from_raw) {
        Ok(Errno::UnknownErrno) | Err(_) => format!("errno {e}"),
        Ok(errno) => format!("{errno:?}"),
    }
}

/// The machine and the container a profile is resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub arch: Arch,
    /// The kernel, `major.minor` (`includes.minKernel`).
    pub kernel: (u32, u32),
    /// The container's bounding capability set (`includes.caps` and `excludes.caps`
    /// are checked against it, as Docker does).
    pub caps: u64,
}

impl Context {
    /// This machine, for a container with bounding set `caps`. Not supported (exit 77) on
    /// an architecture seccompiler cannot target.
    pub fn native(caps: u64) -> Result<Context> {
        let arch = Arch::native().ok_or_else(|| {
            Error::unsupported(
                format!(
                    "nsx builds seccomp filters with seccompiler, which targets x86_64, aarch64 and riscv64, not {}",
                    std::env::consts::ARCH
                ),
                "run without a seccomp profile (seccomp=unconfined)",
            )
        })?;
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .map_err(|e| sys("uname", "the kernel release", e))?;
        let kernel = parse_kernel(&release).ok_or_else(|| {
            Error::Other(format!(
                "uname: kernel release {release:?} is not major.minor..."
            ))
        })?;
        Ok(Context { arch, kernel, caps })
    }
}

/// `6.1.0-57-amd64` -> (6, 1): the major and minor numbers; the rest is ignored, as
/// Docker ignores it for `minKernel`.
pub fn parse_kernel(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A condition of a resolved rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

impl Cond {
    fn holds(self, args: &[u64; 6]) -> bool {
        let a = args[usize::from(self.index)];
        match self.op {
            Op::Ne => a != self.value,
            Op::Lt => a < self.value,
            Op::Le => a <= self.value,
            Op::Eq => a == self.value,
            Op::Ge => a >= self.value,
            Op::Gt => a > self.value,
            Op::MaskedEq => a & self.value == self.value_two & self.value,
        }
    }

    fn condition(self) -> Result<seccompiler::SeccompCondition> {
        use seccompiler::{SeccompCmpArgLen as Len, SeccompCmpOp as C};
        let (op, value) = match self.op {
            Op::Ne => (C::Ne, self.value),
            Op::Lt => (C::Lt, self.value),
            Op::Le => (C::Le, self.value),
            Op::Eq => (C::Eq, self.value),
            Op::Ge => (C::Ge, self.value),
            Op::Gt => (C::Gt, self.value),
            Op::MaskedEq => (C::MaskedEq(self.value), self.value_two),
        };
        // libseccomp compares whole 64-bit arguments on a 64-bit architecture.
        seccompiler::SeccompCondition::new(self.index, Len::Qword, op, value)
            .map_err(|e| Error::Other(format!("seccompiler: {e}")))
    }
}

/// When a call matches within one action: always, or when any of these conjunctions
/// holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    Always,
    Any(Vec<Vec<Cond>>),
}

impl Match {
    fn add(&mut self, conds: Vec<Cond>) {
        match (&mut *self, conds.is_empty()) {
            (Match::Always, _) => {}
            (_, true) => *self = Match::Always,
            (Match::Any(list), false) => {
                if !list.contains(&conds) {
                    list.push(conds)
                }
            }
        }
    }

    fn holds(&self, args: &[u64; 6]) -> bool {
        match self {
            Match::Always => true,
            Match::Any(list) => list.iter().any(|c| c.iter().all(|c| c.holds(args))),
        }
    }
}

/// The calls one action applies to, by number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub verdict: Verdict,
    pub calls: BTreeMap<i64, Match>,
}

/// A profile resolved for one machine and container: what the filters will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub arch: Arch,
    pub default: Verdict,
    /// One per action other than the default, in install order.
    pub groups: Vec<Group>,
    /// Names the profile gives that this architecture does not have (skipped).
    pub absent: Vec<String>,
    /// How many rules `includes`/`excludes` left out for this container.
    pub left_out: usize,
    /// SECCOMP_FILTER_FLAG_* bits for seccomp(2).
    pub flags: u32,
}

/// A system call nsx makes after installing a filter, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    pub name: &'static str,
    pub why: &'static str,
    /// Without it nsx cannot go on: it must run, not merely not kill.
    pub essential: bool,
    /// The arguments nsx passes, when a rule on them may matter (`None`: every verdict
    /// the call may get counts).
    pub args: Option<[u64; 6]>,
}

/// What `nsx run` does between installing the filter and execve(2): drop capabilities
/// (capget, prctl PR_CAPBSET_DROP and PR_CAP_AMBIENT, capset), then exec; when the exec
/// fails it reports why over its pipe and exits. The filter is installed before the
/// capabilities are dropped, as runc does without no_new_privs: installing it needs
/// CAP_SYS_ADMIN then.
pub const RUN_SETUP: &[Needed] = &[
    Needed {
        name: "capget",
        why: "nsx reads the permitted set before dropping capabilities",
        essential: true,
        args: None,
    },
    Needed {
        name: "prctl",
        why: "nsx drops the bounding and ambient capabilities (PR_CAPBSET_DROP, PR_CAP_AMBIENT)",
        essential: true,
        args: None,
    },
    Needed {
        name: "capset",
        why: "nsx drops the effective, permitted and inheritable capabilities",
        essential: true,
        args: None,
    },
    Needed {
        name: "execve",
        why: "nsx starts the command with it",
        essential: true,
        args: None,
    },
    Needed {
        name: "write",
        why: "a failed exec is reported to nsx over a pipe",
        essential: false,
        args: None,
    },
    Needed {
        name: "read",
        why: "after a failed exec the child waits on a pipe for nsx",
        essential: false,
        args: None,
    },
    Needed {
        name: "close",
        why: "the pipe is closed after the report",
        essential: false,
        args: None,
    },
    Needed {
        name: "exit_group",
        why: "the child exits after a failed exec",
        essential: false,
        args: None,
    },
    Needed {
        name: "brk",
        why: "the report of a failed exec allocates memory",
        essential: false,
        args: None,
    },
    Needed {
        name: "mmap",
        why: "the report of a failed exec allocates memory",
        essential: false,
        args: None,
    },
    Needed {
        name: "munmap",
        why: "the report of a failed exec frees memory",
        essential: false,
        args: None,
    },
    Needed {
        name: "mremap",
        why: "the report of a failed exec grows a buffer",
        essential: false,
        args: None,
    },
];

/// Why a profile is refused: a usage error, exit 2.
fn refused(source: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("seccomp profile {source}: {why}"))
}

const FLAGS: [(&str, u32); 6] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_NEW_LISTENER", 8),
    ("SECCOMP_FILTER_FLAG_TSYNC_ESRCH", 16),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32),
];

/// libseccomp's architecture names (`architectures`, `archMap`).
const SCMP_ARCHES: [&str; 22] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];

/// Go's architecture names as Docker's `includes.arches` uses them.
const DOCKER_ARCHES: [&str; 18] = [
    "amd64",
    "x86",
    "x32",
    "arm",
    "arm64",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64n32",
    "mipsel64",
    "mips3l64n32",
    "ppc",
    "ppc64",
    "ppc64le",
    "s390",
    "s390x",
    "riscv64",
];

impl Profile {
    /// Reads and checks the profile in `path`: a missing, unreadable, oversized or
    /// malformed file is a usage error (exit 2) naming the file and the reason.
    pub fn load(path: &Path) -> Result<Profile> {
        use std::io::Read;
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| refused(&shown, e))?;
        let mut text = String::new();
        file.take(MAX_PROFILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| refused(&shown, e))?;
        if text.len() as u64 > MAX_PROFILE_BYTES {
            return Err(refused(
                &shown,
                format!(
                    "larger than {} MiB: not a seccomp profile",
                    MAX_PROFILE_BYTES >> 20
                ),
            ));
        }
        Profile::parse(&text, &shown)
    }

    /// Parses and checks a profile; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Profile> {
        let profile: Profile = serde_json::from_str(text)
            .map_err(|e| refused(source, format!("not a profile in Docker's format: {e}")))?;
        profile.check().map_err(|why| refused(source, why))?;
        Ok(profile)
    }

    /// nsx's default profile (profiles/seccomp-default.json): Docker's default in effect
    /// on x86_64 and aarch64 (see profiles/README.md for what differs).
    pub fn default_profile() -> Profile {
        // The unit tests parse this file: it cannot fail here.
        Profile::parse(DEFAULT_PROFILE, "profiles/seccomp-default.json")
            .unwrap_or_else(|e| unreachable!("the built-in profile is checked by the tests: {e}"))
    }

    fn rules(&self) -> &[Rule] {
        self.syscalls.as_deref().unwrap_or_default()
    }

    /// Everything that makes the profile malformed, as one reason.
    fn check(&self) -> std::result::Result<(), String> {
        check_action(self.default_action, self.default_errno_ret, "defaultAction")?;
        if self.architectures.is_some() && self.arch_map.is_some() {
            return Err("both architectures and archMap are given: use one of them".into());
        }
        let mut arches: Vec<&String> = self.architectures.iter().flatten().collect();
        for m in self.arch_map.iter().flatten() {
            arches.push(&m.architecture);
            arches.extend(m.sub_architectures.iter().flatten());
        }
        for a in arches {
            if !SCMP_ARCHES.contains(&a.as_str()) {
                return Err(format!(
                    "unknown architecture {a:?}; libseccomp's names are {}",
                    SCMP_ARCHES.join(", ")
                ));
            }
        }
        for f in self.flags.iter().flatten() {
            match FLAGS.iter().find(|(n, _)| n == f) {
                None => {
                    return Err(format!(
                        "unknown flag {f:?}; the flags are {}",
                        FLAGS.map(|(n, _)| n).join(", ")
                    ))
                }
                Some((n, _)) if n.contains("LISTENER") || n.contains("KILLABLE_RECV") => {
                    return Err(format!(
                        "{n} needs a seccomp notification listener, which nsx does not provide"
                    ))
                }
                _ => {}
            }
        }
        if self.listener_path.is_some() {
            return Err(
                "listenerPath: nsx has no seccomp notification (SCMP_ACT_NOTIFY) support".into(),
            );
        }
        let native = Arch::native();
        for (i, rule) in self.rules().iter().enumerate() {
            let at = format!("syscalls[{i}]");
            check_action(rule.action, rule.errno_ret, &at)?;
            let names = match (&rule.name, &rule.names) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{at}: both name and names are given: use one of them"
                    ))
                }
                (None, None) => return Err(format!("{at}: names no system call")),
                (Some(n), None) => std::slice::from_ref(n),
                (None, Some(n)) => n.as_slice(),
            };
            if names.is_empty() {
                return Err(format!("{at}: names is empty"));
            }
            for name in names {
                if !syscalls::known_anywhere(name) {
                    let hint = native
                        .and_then(|a| syscalls::closest(a, name))
                        .map(|c| format!(" (did you mean {c}?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "{at}: unknown system call {name:?}: no Linux architecture has it{hint}"
                    ));
                }
            }
            for arg in rule.args.iter().flatten() {
                if arg.index > 5 {
                    return Err(format!(
                        "{at}: argument index {} (a system call has arguments 0 to 5)",
                        arg.index
                    ));
                }
            }
            for (what, when) in [("includes", &rule.includes), ("excludes", &rule.excludes)] {
                let Some(when) = when else { continue };
                for cap in when.caps.iter().flatten() {
                    if cap_bit(cap).is_none() {
                        return Err(format!(
                            "{at}.{what}.caps: unknown capability {cap:?} (capabilities(7) names, such as CAP_SYS_ADMIN)"
                        ));
                    }
                }
                for arch in when.arches.iter().flatten() {
                    if !DOCKER_ARCHES.contains(&arch.as_str()) {
                        return Err(format!(
                            "{at}.{what}.arches: unknown architecture {arch:?}; Docker's names are {}",
                            DOCKER_ARCHES.join(", ")
                        ));
                    }
                }
                if let Some(k) = &when.min_kernel {
                    if parse_kernel(k).is_none() {
                        return Err(format!(
                            "{at}.{what}.minKernel: {k:?} is not a kernel version such as 4.8"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The profile for `ctx`: see the module's doc. Rules that would do what the default
    /// does anyway are dropped.
    pub fn resolve(&self, ctx: &Context) -> Plan {
        let default = verdict(self.default_action, self.default_errno_ret);
        let mut groups: Vec<Group> = Vec::new();
        let mut absent = Vec::new();
        let mut left_out = 0;
        for rule in self.rules() {
            if !applies(rule, ctx) {
                left_out += 1;
                continue;
            }
            let v = verdict(rule.action, rule.errno_ret);
            let names = rule.names.as_deref().unwrap_or_default();
            let names = names.iter().chain(rule.name.as_ref());
            for name in names {
                let Some(nr) = ctx.arch.number(name) else {
                    if !absent.contains(name) {
                        absent.push(name.clone());
                    }
                    continue;
                };
                if v == default {
                    continue;
                }
                let at = match groups.iter().position(|g| g.verdict == v) {
                    Some(at) => at,
                    None => {
                        groups.push(Group {
                            verdict: v,
                            calls: BTreeMap::new(),
                        });
                        groups.len() - 1
                    }
                };
                let m = groups[at]
                    .calls
                    .entry(nr)
                    .or_insert_with(|| Match::Any(Vec::new()));
                for conds in conjunctions(rule.args.as_deref().unwrap_or_default()) {
                    m.add(conds);
                }
            }
        }
        absent.sort();
        let flags = self
            .flags
            .iter()
            .flatten()
            .filter_map(|f| FLAGS.iter().find(|(n, _)| n == f).map(|(_, b)| *b))
            .fold(0, |a, b| a | b);
        Plan {
            arch: ctx.arch,
            default,
            groups,
            absent,
            left_out,
            flags,
        }
    }
}

/// nsx's default profile, as shipped.
pub const DEFAULT_PROFILE: &str = include_str!("../../profiles/seccomp-default.json");

/// `CAP_SYS_ADMIN` -> 21.
fn cap_bit(name: &str) -> Option<u32> {
    let short = name.strip_prefix("CAP_")?.to_ascii_lowercase();
    crate::caps::NAMES
        .iter()
        .position(|n| *n == short)
        .map(|i| i as u32)
}

fn check_action(
    action: ActionName,
    errno: Option<u32>,
    at: &str,
) -> std::result::Result<(), String> {
    if action == ActionName::Notify {
        return Err(format!(
            "{at}: SCMP_ACT_NOTIFY needs a notification listener, which nsx does not provide"
        ));
    }
    match errno {
        Some(_) if !matches!(action, ActionName::Errno | ActionName::Trace) => Err(format!(
            "{at}: an errno goes with SCMP_ACT_ERRNO or SCMP_ACT_TRACE only"
        )),
        Some(e) if e > MAX_ERRNO => Err(format!(
            "{at}: errno {e} is past the largest errno, {MAX_ERRNO}"
        )),
        _ => Ok(()),
    }
}

/// runc's reading: ERRNO without an errno is EPERM, and so is TRACE's message.
fn verdict(action: ActionName, errno: Option<u32>) -> Verdict {
    let e = errno.unwrap_or(libc::EPERM as u32);
    match action {
        ActionName::Kill | ActionName::KillThread => Verdict::KillThread,
        ActionName::KillProcess => Verdict::KillProcess,
        ActionName::Trap => Verdict::Trap,
        ActionName::Errno => Verdict::Errno(e),
        ActionName::Trace => Verdict::Trace(e),
        ActionName::Log => Verdict::Log,
        // check() refused NOTIFY.
        ActionName::Allow | ActionName::Notify => Verdict::Allow,
    }
}

/// Docker's filter (moby profiles/seccomp/seccomp_linux.go): every `excludes` that is
/// given must not hold and every `includes` must; capabilities against the bounding set.
fn applies(rule: &Rule, ctx: &Context) -> bool {
    let has = |cap: &String| cap_bit(cap).is_some_and(|b| crate::caps::has(ctx.caps, b));
    let kernel_at_least = |k: &String| parse_kernel(k).is_some_and(|k| ctx.kernel >= k);
    let arch = ctx.arch.docker().to_string();
    if let Some(ex) = &rule.excludes {
        if ex.arches.as_ref().is_some_and(|a| a.contains(&arch))
            || ex.caps.iter().flatten().any(has)
            || ex.min_kernel.as_ref().is_some_and(kernel_at_least)
        {
            return false;
        }
    }
    if let Some(inc) = &rule.includes {
        if inc.arches.as_ref().is_some_and(|a| !a.contains(&arch))
            || !inc.caps.iter().flatten().all(has)
            || inc.min_kernel.as_ref().is_some_and(|k| !kernel_at_least(k))
        {
            return false;
        }
    }
    true
}

/// A rule's conditions as the conjunctions to match: none (always), all of them, or, when
/// two compare the same argument, each on its own (runc: "if two or more arguments have
/// the same index, add each condition as a separate rule", since libseccomp refuses two
/// comparisons of one argument in one rule).
fn conjunctions(args: &[Arg]) -> Vec<Vec<Cond>> {
    let conds: Vec<Cond> = args
        .iter()
        .map(|a| Cond {
            index: a.index as u8,
            op: a.op,
            value: a.value,
            value_two: a.value_two,
        })
        .collect();
    let mut seen = [0u8; 6];
    for c in &conds {
        seen[usize::from(c.index)] += 1;
    }
    if seen.iter().any(|n| *n > 1) {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    }
}

impl Plan {
    /// How many filters [`Plan::compile`] makes: `Seccomp_filters` after install.
    pub fn filter_count(&self) -> usize {
        usize::from(self.default != Verdict::Allow)
            + self
                .groups
                .iter()
                .filter(|g| g.verdict != Verdict::Allow)
                .count()
    }

    /// What the filters answer for call `nr` with arguments `args`, as the kernel
    /// combines them: the verdict of highest precedence, and between equals the one of
    /// the filter installed last.
    pub fn verdict(&self, nr: i64, args: &[u64; 6]) -> Verdict {
        let matching: Vec<(usize, Verdict)> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.calls.get(&nr).is_some_and(|m| m.holds(args)))
            .map(|(i, g)| (i + 1, g.verdict))
            .collect();
        // The default filter (installed first) lets through whatever a rule matched.
        let first = if matching.is_empty() {
            self.default
        } else {
            Verdict::Allow
        };
        std::iter::once((0, first))
            .chain(matching)
            .min_by_key(|(i, v)| (v.rank(), std::cmp::Reverse(*i)))
            .map(|(_, v)| v)
            .unwrap_or(Verdict::Allow)
    }

    /// Every verdict call `nr` may get, whatever its arguments: one when they do not
    /// matter.
    pub fn verdicts(&self, nr: i64) -> Vec<Verdict> {
        let matches: Vec<(usize, &Group, &Match)> = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.calls.get(&nr).map(|m| (i + 1, g, m)))
            .collect();
        let best = |set: &[(usize, Verdict)]| {
            set.iter()
                .min_by_key(|(i, v)| (v.rank(), std::cmp::Reverse(*i)))
                .map(|(_, v)| *v)
                .unwrap_or(Verdict::Allow)
        };
        let always: Vec<(usize, Verdict)> = matches
            .iter()
            .filter(|(_, _, m)| **m == Match::Always)
            .map(|(i, g, _)| (*i, g.verdict))
            .collect();
        let sometimes: Vec<(usize, Verdict)> = matches
            .iter()
            .filter(|(_, _, m)| **m != Match::Always)
            .map(|(i, g, _)| (*i, g.verdict))
            .collect();
        let mut out = Vec::new();
        // No conditional rule matching: the unconditional ones, or the default.
        out.push(if always.is_empty() {
            self.default
        } else {
            best(&always)
        });
        // One conditional rule matching (several give the best of them, one of these).
        for s in &sometimes {
            let mut set = always.clone();
            set.push(*s);
            out.push(best(&set));
        }
        out.sort_by_key(|v| v.rank());
        out.dedup();
        out
    }

    /// The verdicts of call `name` on this plan's architecture (`None` when the
    /// architecture has no such call).
    pub fn verdicts_of(&self, name: &str) -> Option<Vec<Verdict>> {
        self.arch.number(name).map(|nr| self.verdicts(nr))
    }

    /// Refuses (exit 2) a profile under which nsx could not finish its own set-up after
    /// installing the filter: a call of `needed` that the filter kills, or an essential
    /// one it does not let run. Nothing has been changed when this is asked.
    pub fn check_setup(&self, needed: &[Needed], source: &str) -> Result<()> {
        for n in needed {
            let Some(nr) = self.arch.number(n.name) else {
                continue;
            };
            let verdicts = match &n.args {
                Some(args) => vec![self.verdict(nr, args)],
                None => self.verdicts(nr),
            };
            let bad = verdicts
                .iter()
                .find(|v| v.fatal() || (n.essential && !v.runs()));
            if let Some(v) = bad {
                let how = if verdicts.len() > 1 {
                    " for some arguments"
                } else {
                    ""
                };
                return Err(refused(
                    source,
                    format!(
                        "it would {v} on {}{how}, and {}: the container could not start; allow {} in the profile",
                        n.name, n.why, n.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The BPF programs, in install order, built by seccompiler.
    pub fn compile(&self) -> Result<Filters> {
        use seccompiler::{BpfProgram, SeccompFilter, SeccompRule};
        let target = self.arch.target();
        let rules = |calls: &BTreeMap<i64, Match>| -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
            calls
                .iter()
                .map(|(nr, m)| {
                    let chain = match m {
                        // seccompiler: an empty chain matches the call whatever its arguments.
                        Match::Always => Vec::new(),
                        Match::Any(list) => list
                            .iter()
                            .map(|conds| {
                                let c = conds
                                    .iter()
                                    .map(|c| c.condition())
                                    .collect::<Result<Vec<_>>>()?;
                                SeccompRule::new(c)
                                    .map_err(|e| Error::Other(format!("seccompiler: {e}")))
                            })
                            .collect::<Result<Vec<_>>>()?,
                    };
                    Ok((*nr, chain))
                })
                .collect()
        };
        let build = |calls: BTreeMap<i64, Vec<SeccompRule>>, mismatch: Verdict, on: Verdict| {
            let filter = SeccompFilter::new(calls, mismatch.action(), on.action(), target)
                .map_err(|e| Error::Other(format!("seccompiler: {e}")))?;
            BpfProgram::try_from(filter).map_err(|e| Error::Other(format!("seccompiler: {e}")))
        };
        let mut programs = Vec::new();
        if self.default != Verdict::Allow {
            // Every call some rule names passes this one; the rule's own filter decides.
            let mut all: BTreeMap<i64, Match> = BTreeMap::new();
            for g in &self.groups {
                for (nr, m) in &g.calls {
                    let entry = all.entry(*nr).or_insert_with(|| Match::Any(Vec::new()));
                    match m {
                        Match::Always => *entry = Match::Always,
                        Match::Any(list) => list.iter().for_each(|c| entry.add(c.clone())),
                    }
                }
            }
            programs.push((
                self.default,
                build(rules(&all)?, self.default, Verdict::Allow)?,
            ));
        }
        for g in self.groups.iter().filter(|g| g.verdict != Verdict::Allow) {
            programs.push((
                g.verdict,
                build(rules(&g.calls)?, Verdict::Allow, g.verdict)?,
            ));
        }
        Ok(Filters {
            programs,
            flags: self.flags,
        })
    }
}

/// Compiled filters, ready to install.
#[derive(Debug, Clone)]
pub struct Filters {
    /// What each filter gives the calls it singles out, and its program.
    programs: Vec<(Verdict, seccompiler::BpfProgram)>,
    flags: u32,
}

/// struct sock_fprog (linux/filter.h): the program seccomp(2) takes.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

impl Filters {
    /// How many filters [`Filters::install`] adds.
    pub fn len(&self) -> usize {
        self.programs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// Installs every filter in this process (and so in what it execs: seccomp(2), filters
    /// are kept across execve and inherited by children). With `no_new_privs`, first
    /// prctl(PR_SET_NO_NEW_PRIVS): seccomp(2) lets only a process holding CAP_SYS_ADMIN
    /// in its user namespace install a filter without it (EACCES otherwise), so that a
    /// filter cannot be used to trick a setuid program into misbehaving with privileges.
    /// A filter is forever: nothing removes it from a process.
    pub fn install(&self, no_new_privs: bool) -> Result<()> {
        if no_new_privs {
            set_no_new_privs()?;
        }
        for (verdict, program) in &self.programs {
            install_program(program, self.flags).map_err(|e| {
                sys(
                    op::SECCOMP_SET_MODE_FILTER,
                    format!("the filter that makes calls {verdict}"),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

/// prctl(2) PR_SET_NO_NEW_PRIVS: from now on execve(2) grants no privilege (setuid and
/// setgid bits and file capabilities are ignored), for this process and its children,
/// irrevocably.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(sys("prctl PR_SET_NO_NEW_PRIVS", 1, Errno::last()));
    }
    Ok(())
}

/// seccomp(2) SECCOMP_SET_MODE_FILTER with `program`: the raw errno on failure (EACCES
/// without CAP_SYS_ADMIN or no_new_privs).
fn install_program(
    program: &seccompiler::BpfProgram,
    flags: u32,
) -> std::result::Result<(), Errno> {
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let fprog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: fprog points to `len` instructions that outlive the call; the kernel copies
    // the program (copy_from_user) and keeps no pointer to it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const SockFprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

#[cfg(test)]
mod tests;
