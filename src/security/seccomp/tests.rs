//! Profiles parsed, refused, resolved and judged without installing anything; then, in a
//! forked child, the compiled filters against the real kernel.

use super::*;

const X86: Context = Context {
    arch: Arch::X86_64,
    kernel: (6, 1),
    caps: crate::caps::DOCKER_DEFAULT,
};

fn nr(name: &str) -> i64 {
    Arch::X86_64.number(name).unwrap()
}

fn parse(text: &str) -> Result<Profile> {
    Profile::parse(text, "test.json")
}

/// The reason a profile is refused; it must be a usage error (exit 2).
fn refusal(text: &str) -> String {
    let e = parse(text).expect_err("refused");
    assert_eq!(e.exit_code(), 2, "{e}");
    e.to_string()
}

#[test]
fn the_default_profile_refuses_what_docker_refuses_to_a_container_without_sys_admin() {
    let plan = Profile::default_profile().resolve(&X86);
    let eperm = vec![Verdict::Errno(1)];
    for call in [
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "mount",
        "umount2",
        "setns",
        "sethostname",
        "init_module",
        "reboot",
        "open_by_handle_at",
        "bpf",
        "settimeofday",
    ] {
        assert_eq!(plan.verdicts_of(call), Some(eperm.clone()), "{call}");
    }
    for call in [
        "read",
        "openat",
        "execve",
        "getpid",
        "uname",
        "sysinfo",
        "getppid",
        "chroot",
        "prctl",
        "capset",
        "ioctl",
        "pipe2",
        "getrandom",
        "io_uring_setup",
        // Docker allows ptrace from Linux 4.8, where a tracer can no longer bypass a filter.
        "ptrace",
    ] {
        assert_eq!(plan.verdicts_of(call), Some(vec![Verdict::Allow]), "{call}");
    }
    // clone3's flags are in memory a filter cannot read: ENOSYS, so libc uses clone.
    assert_eq!(plan.verdicts_of("clone3"), Some(vec![Verdict::Errno(38)]));
    // clone: allowed without namespace flags only.
    let clone = nr("clone");
    let flags = |f: i32| [f as u64, 0, 0, 0, 0, 0];
    assert_eq!(plan.verdict(clone, &flags(libc::SIGCHLD)), Verdict::Allow);
    assert_eq!(
        plan.verdict(clone, &flags(libc::CLONE_NEWUSER | libc::SIGCHLD)),
        Verdict::Errno(1)
    );
    assert_eq!(
        plan.verdicts(clone),
        vec![Verdict::Errno(1), Verdict::Allow]
    );
    // socket: every family but AF_VSOCK; personality: the five values.
    let one = |a: u64| [a, 0, 0, 0, 0, 0];
    assert_eq!(plan.verdict(nr("socket"), &one(2)), Verdict::Allow);
    assert_eq!(plan.verdict(nr("socket"), &one(40)), Verdict::Errno(1));
    for p in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            plan.verdict(nr("personality"), &one(p)),
            Verdict::Allow,
            "{p}"
        );
    }
    assert_eq!(plan.verdict(nr("personality"), &one(1)), Verdict::Errno(1));
    // The default filter and the ENOSYS filter.
    assert_eq!(plan.filter_count(), 2);
    assert_eq!(plan.compile().unwrap().len(), 2);
    plan.check_setup(RUN_SETUP, "default").unwrap();
}

#[test]
fn capabilities_in_the_bounding_set_open_their_calls() {
    let all = Context {
        caps: crate::caps::ALL,
        ..X86
    };
    let plan = Profile::default_profile().resolve(&all);
    for call in [
        "unshare", "mount", "setns", "clone3", "ptrace", "reboot", "bpf",
    ] {
        assert_eq!(plan.verdicts_of(call), Some(vec![Verdict::Allow]), "{call}");
    }
    // Not even all capabilities open keyctl: no rule names it.
    assert_eq!(plan.verdicts_of("keyctl"), Some(vec![Verdict::Errno(1)]));
    assert_eq!(plan.filter_count(), 1);
    // Without CAP_SYS_PTRACE but on a kernel before 4.8, ptrace is refused.
    let old = Context {
        kernel: (4, 4),
        ..X86
    };
    let plan = Profile::default_profile().resolve(&old);
    assert_eq!(plan.verdicts_of("ptrace"), Some(vec![Verdict::Errno(1)]));
    let new = Profile::default_profile().resolve(&X86);
    assert_eq!(new.verdicts_of("ptrace"), Some(vec![Verdict::Allow]));
}

#[test]
fn the_default_profile_names_only_calls_of_the_native_abis() {
    let p = Profile::default_profile();
    let arches = [Arch::X86_64, Arch::Aarch64, Arch::Riscv64];
    for arch in arches {
        let plan = p.resolve(&Context { arch, ..X86 });
        // A name absent here is one of the other two's: no 32-bit call is named.
        for name in &plan.absent {
            assert!(
                arches.iter().any(|a| a.number(name).is_some()),
                "{arch}: {name} is no native call of any of them"
            );
        }
        plan.compile().unwrap();
        plan.check_setup(RUN_SETUP, "default").unwrap();
    }
}

#[test]
fn malformed_profiles_are_refused_with_the_reason() {
    for (text, reason) in [
        ("{", "not a profile in Docker's format"),
        ("[]", "not a profile in Docker's format"),
        (r#"{"syscalls": []}"#, "missing field `defaultAction`"),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscall": []}"#,
            "unknown field `syscall`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_DENY"}"#,
            "unknown variant `SCMP_ACT_DENY`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["opne"], "action": "SCMP_ACT_ERRNO"}]}"#,
            "syscalls[0]: unknown system call \"opne\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ERRNO"}]}"#,
            "both name and names",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}"#,
            "names is empty",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#,
            "names no system call",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
            "an errno goes with SCMP_ACT_ERRNO",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}"#,
            "errno 5000 is past the largest errno",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index 6",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
            "unknown variant `SCMP_CMP_LIKE`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            "SCMP_ACT_NOTIFY needs a notification listener",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}"#,
            "listenerPath",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
            "unknown flag",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "unknown architecture \"SCMP_ARCH_Z80\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": []}"#,
            "both architectures and archMap",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_GOD"]}}]}"#,
            "unknown capability \"CAP_SYS_GOD\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "excludes": {"arches": ["vax"]}}]}"#,
            "unknown architecture \"vax\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "new"}}]}"#,
            "minKernel",
        ),
    ] {
        let why = refusal(text);
        assert!(why.starts_with("seccomp profile test.json: "), "{why}");
        assert!(
            why.contains(reason),
            "{text}\n  gave: {why}\n  wanted: {reason}"
        );
    }
    // A typo gets the closest name of this architecture.
    if Arch::native() == Some(Arch::X86_64) {
        let why = refusal(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshar"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(why.contains("did you mean unshare?"), "{why}");
    }
}

#[test]
fn a_missing_or_huge_file_is_a_usage_error_naming_it() {
    let e = Profile::load(Path::new("/nonexistent/p.json")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("/nonexistent/p.json"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; (MAX_PROFILE_BYTES + 10) as usize]).unwrap();
    let e = Profile::load(&big).unwrap_err();
    assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
    let ok = dir.path().join("ok.json");
    std::fs::write(&ok, DEFAULT_PROFILE).unwrap();
    assert_eq!(Profile::load(&ok).unwrap(), Profile::default_profile());
}

#[test]
fn names_of_other_architectures_are_skipped_and_said() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "_llseek", "chown32"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm"]}}]}"#,
    )
    .unwrap();
    let plan = p.resolve(&X86);
    assert_eq!(plan.absent, ["_llseek", "chown32"]);
    assert_eq!(plan.left_out, 1);
    assert_eq!(plan.verdicts_of("read"), Some(vec![Verdict::Allow]));
}

#[test]
fn the_strongest_verdict_wins_and_between_errnos_the_rule_wins() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["sysinfo"], "action": "SCMP_ACT_LOG"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let plan = p.resolve(&X86);
    assert_eq!(plan.verdicts_of("uname"), Some(vec![Verdict::Errno(38)]));
    // A log rule under an errno default still lets the call run.
    assert_eq!(plan.verdicts_of("sysinfo"), Some(vec![Verdict::Log]));
    assert_eq!(
        plan.verdicts_of("getppid"),
        Some(vec![Verdict::KillProcess])
    );
    // The same as the default: no rule, no filter.
    assert_eq!(plan.verdicts_of("getpid"), Some(vec![Verdict::Errno(1)]));
    assert!(plan.groups.iter().all(|g| g.verdict != Verdict::Errno(1)));
    // default, ENOSYS, LOG, KILL: four filters (the allow rules live in the default's).
    assert_eq!(plan.filter_count(), 4);
    assert_eq!(plan.compile().unwrap().len(), 4);
}

#[test]
fn conditions_on_one_argument_are_alternatives_and_on_several_all_must_hold() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
            {"names": ["tgkill"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mmap"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    )
    .unwrap();
    let plan = p.resolve(&X86);
    let a = |x: [u64; 3]| [x[0], x[1], x[2], 0, 0, 0];
    let kill = nr("kill");
    assert_eq!(plan.verdict(kill, &a([5, 9, 0])), Verdict::Errno(1));
    assert_eq!(plan.verdict(kill, &a([5, 15, 0])), Verdict::Errno(1));
    assert_eq!(plan.verdict(kill, &a([5, 10, 0])), Verdict::Allow);
    let tgkill = nr("tgkill");
    assert_eq!(plan.verdict(tgkill, &a([1, 0, 9])), Verdict::Errno(1));
    assert_eq!(plan.verdict(tgkill, &a([2, 0, 9])), Verdict::Allow);
    // PROT_EXEC (4) set, whatever else.
    let mmap = nr("mmap");
    assert_eq!(plan.verdict(mmap, &a([0, 0, 7])), Verdict::Errno(1));
    assert_eq!(plan.verdict(mmap, &a([0, 0, 3])), Verdict::Allow);
    assert_eq!(plan.verdicts(mmap), vec![Verdict::Errno(1), Verdict::Allow]);
}

#[test]
fn a_profile_that_would_kill_nsxs_own_setup_is_refused_before_anything_changes() {
    let with = |extra: &str| {
        parse(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{extra}]}}"#
        ))
        .unwrap()
        .resolve(&X86)
    };
    for (rule, needle) in [
        (
            r#"{"names": ["execve"], "action": "SCMP_ACT_KILL_PROCESS"}"#,
            "kill the process (SIGSYS) on execve",
        ),
        (
            r#"{"names": ["capset"], "action": "SCMP_ACT_ERRNO"}"#,
            "fail with EPERM on capset",
        ),
        (
            r#"{"names": ["write"], "action": "SCMP_ACT_TRAP"}"#,
            "trap (SIGSYS) on write",
        ),
        (
            r#"{"names": ["prctl"], "action": "SCMP_ACT_KILL", "args": [{"index": 0, "value": 24, "op": "SCMP_CMP_EQ"}]}"#,
            "on prctl for some arguments",
        ),
    ] {
        let e = with(rule).check_setup(RUN_SETUP, "p.json").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let text = e.to_string();
        assert!(text.contains(needle), "{rule}: {text}");
        assert!(text.contains("the container could not start"), "{text}");
    }
    // A write that fails is not fatal: nsx only cannot report a failed exec.
    with(r#"{"names": ["write"], "action": "SCMP_ACT_ERRNO"}"#)
        .check_setup(RUN_SETUP, "p.json")
        .unwrap();
    // Nothing named: nothing refused.
    with(r#"{"names": ["keyctl"], "action": "SCMP_ACT_KILL_PROCESS"}"#)
        .check_setup(RUN_SETUP, "p.json")
        .unwrap();
}

#[test]
fn kernel_releases_read_as_major_minor() {
    assert_eq!(parse_kernel("6.1.0-57-amd64"), Some((6, 1)));
    assert_eq!(parse_kernel("6.18.44-fc-v669"), Some((6, 18)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("six"), None);
    assert_eq!(errno_name(38), "ENOSYS");
    assert_eq!(errno_name(4000), "errno 4000");
}

/// The compiled filters against the kernel, in a forked child (the test process is
/// multi-threaded: the child only makes raw system calls, then _exit).
#[test]
fn compiled_filters_do_in_the_kernel_what_the_plan_says() {
    if Arch::native() != Some(Arch::X86_64) {
        return;
    }
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
    )
    .unwrap();
    let filters = p.resolve(&X86).compile().unwrap();
    assert_eq!(filters.len(), 3);
    // What the child reports: uname's errno, sysinfo's errno, getpid worked.
    let (r, w) = nix::unistd::pipe().unwrap();
    use std::os::fd::AsRawFd;
    let wfd = w.as_raw_fd();
    // SAFETY: the child makes only raw system calls (no allocation, no locks) and leaves
    // with _exit.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: raw calls on values owned by this frame.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(90);
                }
                for (_, prog) in &filters.programs {
                    if install_program(prog, 0).is_err() {
                        libc::_exit(91);
                    }
                }
                let mut buf = [0u8; 3];
                let mut uts: libc::utsname = std::mem::zeroed();
                buf[0] = if libc::syscall(libc::SYS_uname, &mut uts) == -1 {
                    *libc::__errno_location() as u8
                } else {
                    0
                };
                let mut info: libc::sysinfo = std::mem::zeroed();
                buf[1] = if libc::syscall(libc::SYS_sysinfo, &mut info) == -1 {
                    *libc::__errno_location() as u8
                } else {
                    0
                };
                buf[2] = u8::from(libc::syscall(libc::SYS_getpid) > 0);
                libc::write(wfd, buf.as_ptr().cast(), 3);
                // SECCOMP_RET_KILL_PROCESS: this is the last call the child makes. No core
                // file: a non-dumpable process dumps none.
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                libc::syscall(libc::SYS_getppid);
                libc::_exit(92)
            }
        }
        -1 => panic!("fork"),
        child => {
            drop(w);
            let mut buf = [0u8; 3];
            let n = nix::unistd::read(&r, &mut buf).unwrap();
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None).unwrap();
            assert_eq!(n, 3, "the child reported nothing: {status:?}");
            assert_eq!(buf, [libc::EPERM as u8, libc::ENOSYS as u8, 1]);
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Signaled(
                    nix::unistd::Pid::from_raw(child),
                    nix::sys::signal::Signal::SIGSYS,
                    false
                )
            );
        }
    }
}
