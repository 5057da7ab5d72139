//! Which capability each common operation needs, and where it counts (capabilities(7),
//! user_namespaces(7)), and which file access it makes.

use serde::Serialize;

/// Where a capability must be held for the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "in", content = "ns", rename_all = "snake_case")]
pub enum Scope {
    /// In the initial user namespace only: it acts on the whole machine.
    Init,
    /// In the user namespace that owns the process's namespace of this type.
    Owner(&'static str),
    /// In the process's own user namespace.
    Own,
}

impl Scope {
    pub fn text(self) -> String {
        match self {
            Scope::Init => " in the initial user namespace (it acts on the whole machine)".into(),
            Scope::Owner(ns) => format!(" in the user namespace that owns its {ns} namespace"),
            Scope::Own => String::new(),
        }
    }
}

/// The access an operation makes to the file it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    Read,
    Write,
    Exec,
    /// Creating or removing a name: write and search on the directory.
    Dir,
}

impl Access {
    /// The rwx bits wanted.
    pub fn bits(self) -> u32 {
        match self {
            Access::None => 0,
            Access::Read => 4,
            Access::Write => 2,
            Access::Exec => 1,
            Access::Dir => 3,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Access::None => "nothing",
            Access::Read => "read (r)",
            Access::Write => "write (w)",
            Access::Exec => "execute (x)",
            Access::Dir => "write and search (wx) on the directory",
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Op {
    pub name: &'static str,
    /// Other names a user may type (a command, another system call of the family).
    pub aliases: &'static [&'static str],
    /// The capability that allows it (its number), if any does.
    pub cap: Option<u32>,
    pub scope: Scope,
    pub access: Access,
}

const fn op(
    name: &'static str,
    aliases: &'static [&'static str],
    cap: Option<u32>,
    scope: Scope,
    access: Access,
) -> Op {
    Op {
        name,
        aliases,
        cap,
        scope,
        access,
    }
}

// capabilities(7) numbers.
const CHOWN: u32 = 0;
const DAC_OVERRIDE: u32 = 1;
const FOWNER: u32 = 3;
const KILL: u32 = 5;
const SETGID: u32 = 6;
const SETUID: u32 = 7;
const NET_BIND_SERVICE: u32 = 10;
const NET_ADMIN: u32 = 12;
const NET_RAW: u32 = 13;
const SYS_MODULE: u32 = 16;
const SYS_RAWIO: u32 = 17;
const SYS_CHROOT: u32 = 18;
const SYS_PTRACE: u32 = 19;
const SYS_ADMIN: u32 = 21;
const SYS_BOOT: u32 = 22;
const SYS_NICE: u32 = 23;
const SYS_RESOURCE: u32 = 24;
const SYS_TIME: u32 = 25;
const MKNOD: u32 = 27;
const SYSLOG: u32 = 34;
const DAC_READ_SEARCH: u32 = 2;

use Access as A;
use Scope as S;

/// The operations nsx knows, with capabilities(7)'s word on each.
pub const OPS: &[Op] = &[
    op(
        "mount",
        &[
            "umount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsmount",
            "move_mount",
            "mount_setattr",
        ],
        Some(SYS_ADMIN),
        S::Owner("mnt"),
        A::None,
    ),
    op(
        "sethostname",
        &["hostname", "setdomainname"],
        Some(SYS_ADMIN),
        S::Owner("uts"),
        A::None,
    ),
    op("unshare", &["clone"], Some(SYS_ADMIN), S::Own, A::None),
    op("setns", &["nsenter"], Some(SYS_ADMIN), S::Own, A::None),
    op("keyctl", &["add_key", "request_key"], None, S::Own, A::None),
    op(
        "init_module",
        &[
            "finit_module",
            "delete_module",
            "insmod",
            "modprobe",
            "rmmod",
        ],
        Some(SYS_MODULE),
        S::Init,
        A::None,
    ),
    op(
        "settimeofday",
        &["clock_settime", "stime", "adjtimex", "date"],
        Some(SYS_TIME),
        S::Init,
        A::None,
    ),
    op("reboot", &[], Some(SYS_BOOT), S::Init, A::None),
    op("iopl", &["ioperm"], Some(SYS_RAWIO), S::Init, A::None),
    op(
        "swapon",
        &["swapoff", "quotactl"],
        Some(SYS_ADMIN),
        S::Init,
        A::None,
    ),
    op("syslog", &["dmesg"], Some(SYSLOG), S::Init, A::None),
    op(
        "open_by_handle_at",
        &[],
        Some(DAC_READ_SEARCH),
        S::Init,
        A::None,
    ),
    op("chroot", &[], Some(SYS_CHROOT), S::Owner("mnt"), A::None),
    op(
        "ptrace",
        &["process_vm_readv", "process_vm_writev", "strace", "gdb"],
        Some(SYS_PTRACE),
        S::Own,
        A::None,
    ),
    op("kill", &["tgkill", "tkill"], Some(KILL), S::Own, A::None),
    op(
        "setuid",
        &["setreuid", "setresuid", "setfsuid"],
        Some(SETUID),
        S::Own,
        A::None,
    ),
    op(
        "setgid",
        &["setregid", "setresgid", "setfsgid", "setgroups"],
        Some(SETGID),
        S::Own,
        A::None,
    ),
    op(
        "bind",
        &[],
        Some(NET_BIND_SERVICE),
        S::Owner("net"),
        A::None,
    ),
    op(
        "socket",
        &["raw", "ping"],
        Some(NET_RAW),
        S::Owner("net"),
        A::None,
    ),
    op(
        "ip",
        &["ioctl_siocsifflags", "netlink", "ifconfig"],
        Some(NET_ADMIN),
        S::Owner("net"),
        A::None,
    ),
    op(
        "setpriority",
        &["nice", "renice", "sched_setscheduler"],
        Some(SYS_NICE),
        S::Own,
        A::None,
    ),
    op(
        "setrlimit",
        &["prlimit", "ulimit"],
        Some(SYS_RESOURCE),
        S::Own,
        A::None,
    ),
    op("mknod", &["mknodat"], Some(MKNOD), S::Own, A::None),
    op(
        "bpf",
        &["perf_event_open"],
        Some(SYS_ADMIN),
        S::Init,
        A::None,
    ),
    // seccomp(2): CAP_SYS_ADMIN, or no_new_privs instead (see why::caps_layer).
    op(
        "seccomp",
        &["seccomp_set_mode_filter"],
        Some(SYS_ADMIN),
        S::Own,
        A::None,
    ),
    op(
        "chown",
        &["fchown", "lchown", "fchownat"],
        Some(CHOWN),
        S::Own,
        A::None,
    ),
    op(
        "chmod",
        &["fchmod", "fchmodat", "utime", "utimensat"],
        Some(FOWNER),
        S::Own,
        A::None,
    ),
    op(
        "open",
        &["openat", "read", "cat"],
        Some(DAC_OVERRIDE),
        S::Own,
        A::Read,
    ),
    op(
        "write",
        &["truncate", "append"],
        Some(DAC_OVERRIDE),
        S::Own,
        A::Write,
    ),
    op(
        "execve",
        &["exec", "execveat", "run"],
        Some(DAC_OVERRIDE),
        S::Own,
        A::Exec,
    ),
    op(
        "opendir",
        &["ls", "getdents64", "readdir"],
        Some(DAC_READ_SEARCH),
        S::Own,
        A::Read,
    ),
    op(
        "unlink",
        &[
            "rm", "rmdir", "rename", "mkdir", "creat", "link", "symlink", "create",
        ],
        Some(DAC_OVERRIDE),
        S::Own,
        A::Dir,
    ),
];

/// The operation named `word` (its name or an alias), case-insensitive.
pub fn find(word: &str) -> Option<&'static Op> {
    let w = word.to_ascii_lowercase();
    OPS.iter()
        .find(|o| o.name == w || o.aliases.contains(&w.as_str()))
}

/// The unshare(1) option that makes a namespace of type `ns`.
pub fn unshare_flag(ns: &str) -> &'static str {
    match ns {
        "mnt" => "mount",
        "uts" => "uts",
        "net" => "net",
        "ipc" => "ipc",
        "pid" => "pid --fork",
        "cgroup" => "cgroup",
        _ => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_found() {
        let mut all: Vec<&str> = OPS
            .iter()
            .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name is listed twice");
        assert_eq!(find("HOSTNAME").unwrap().name, "sethostname");
        assert_eq!(find("umount2").unwrap().cap, Some(SYS_ADMIN));
        assert!(find("frobnicate").is_none());
        // capabilities(7): loading modules and setting the clock only from the initial
        // user namespace; mounting where the mount namespace's owner grants it.
        assert_eq!(find("insmod").unwrap().scope, Scope::Init);
        assert_eq!(find("mount").unwrap().scope, Scope::Owner("mnt"));
        assert_eq!(find("keyctl").unwrap().cap, None);
    }
}
