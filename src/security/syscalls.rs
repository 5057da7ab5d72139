//! System call names and numbers, per architecture (the `syscalls` crate's tables, which
//! are generated from the kernel's own syscall tables).
//!
//! A seccomp filter matches numbers, and the numbers differ between architectures
//! (`openat` is 257 on x86_64 and 56 on aarch64); a profile names calls. A name that
//! exists on no architecture at all is a typo, and nsx refuses it. A name that exists
//! only on another architecture (`_llseek`, `socketcall`, `arm_fadvise64_64`) is not: one
//! profile serves every architecture, and runc, like libseccomp, skips such names on the
//! machine it runs on. nsx does the same, and says so.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An architecture nsx can build a seccomp filter for (seccompiler's targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
}

impl Arch {
    /// The architecture nsx was built for, when seccompiler can target it.
    pub const fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }

    /// The name Docker's profiles use in `includes.arches` (Go's GOARCH, as libseccomp
    /// spells it): `amd64`, `arm64`, `riscv64`.
    pub const fn docker(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// libseccomp's name, as `architectures` and `archMap` spell it.
    pub const fn scmp(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Riscv64 => "SCMP_ARCH_RISCV64",
        }
    }

    pub const fn target(self) -> seccompiler::TargetArch {
        match self {
            Arch::X86_64 => seccompiler::TargetArch::x86_64,
            Arch::Aarch64 => seccompiler::TargetArch::aarch64,
            Arch::Riscv64 => seccompiler::TargetArch::riscv64,
        }
    }

    /// The number of system call `name` on this architecture.
    pub fn number(self, name: &str) -> Option<i64> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| s.id()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id()),
            Arch::Riscv64 => syscalls::riscv64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id()),
        }
        .map(i64::from)
    }

    /// The name of system call `nr` on this architecture.
    pub fn name(self, nr: i64) -> Option<&'static str> {
        let nr = usize::try_from(nr).ok()?;
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::new(nr).map(|s| s.name()),
            Arch::Riscv64 => syscalls::riscv64::Sysno::new(nr).map(|s| s.name()),
        }
    }

    /// Every system call name of this architecture.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| s.name()).collect(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::iter().map(|s| s.name()).collect(),
            Arch::Riscv64 => syscalls::riscv64::Sysno::iter().map(|s| s.name()).collect(),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
        })
    }
}

/// ARM's private system calls (`__ARM_NR_*` in arch/arm/include/uapi/asm/unistd.h),
/// which the crate's tables leave out and libseccomp knows by these names.
const ARM_PRIVATE: [&str; 6] = [
    "breakpoint",
    "cacheflush",
    "usr26",
    "usr32",
    "set_tls",
    "get_tls",
];

/// Whether `name` is a system call of some Linux architecture.
pub fn known_anywhere(name: &str) -> bool {
    macro_rules! any_arch {
        ($($arch:ident),*) => {
            false $(|| syscalls::$arch::Sysno::from_str(name).is_ok())*
        };
    }
    ARM_PRIVATE.contains(&name)
        || any_arch!(
            x86_64,
            x86,
            aarch64,
            arm,
            riscv64,
            riscv32,
            s390x,
            powerpc,
            powerpc64,
            mips,
            mips64,
            sparc,
            sparc64,
            loongarch64
        )
}

/// The system call of `arch` whose name is closest to `name` (two edits at most), for a
/// "did you mean" after a typo.
pub fn closest(arch: Arch, name: &str) -> Option<&'static str> {
    arch.names()
        .into_iter()
        .map(|n| (crate::lessons::edits(name, n), n))
        .filter(|(d, n)| *d <= 2 && *d < n.len())
        .min()
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_differ_between_architectures_and_names_come_back() {
        assert_eq!(Arch::X86_64.number("openat"), Some(257));
        assert_eq!(Arch::Aarch64.number("openat"), Some(56));
        assert_eq!(Arch::X86_64.number("open"), Some(2));
        // aarch64 has no open(2): only openat.
        assert_eq!(Arch::Aarch64.number("open"), None);
        assert_eq!(Arch::X86_64.name(257), Some("openat"));
        assert_eq!(Arch::X86_64.name(-1), None);
        if Arch::native() == Some(Arch::X86_64) {
            assert_eq!(Arch::X86_64.number("getppid"), Some(libc::SYS_getppid));
            assert_eq!(Arch::X86_64.number("uname"), Some(libc::SYS_uname));
        }
    }

    #[test]
    fn names_of_other_architectures_are_known_and_typos_are_not() {
        for name in [
            "_llseek",
            "socketcall",
            "arm_fadvise64_64",
            "set_tls",
            "s390_runtime_instr",
        ] {
            assert!(known_anywhere(name), "{name}");
            assert_eq!(Arch::X86_64.number(name), None, "{name}");
        }
        assert!(!known_anywhere("opne"));
        assert_eq!(closest(Arch::X86_64, "opne"), Some("open"));
        assert_eq!(closest(Arch::X86_64, "unshar"), Some("unshare"));
        assert_eq!(closest(Arch::X86_64, "zzzzzzzz"), None);
    }
}
