//! One `observe` for both sides.
//!
//! The probe calls `observe(/proc, Subject::SelfProcess)` from inside; the host calls
//! `observe(/proc, Subject::Pid(host_pid))` from outside. Both read the same files through
//! a procfs mount; what differs is which procfs and which namespaces the reader is in.
//! That symmetry is the lesson. The procfs root is a parameter so unit tests can point it
//! at captured fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use procfs::process::{MountInfos, MountOptFields};
use procfs::FromRead;
use serde::{Deserialize, Serialize};

use crate::error::{sys, Context, Error, Result};

pub mod cgroup;
pub mod kernel;
pub mod process;
pub mod root;
pub mod security;
pub mod sysvipc;

pub use kernel::{KernelFiles, KernelMount};
pub use security::{Attr, Security};

pub use process::{Signals, Stat};
pub use root::{Root, RootMount};

pub use sysvipc::SysvIpc;
pub mod net;
pub use net::{Link, NetSysctls, Route};

/// Namespace types, in the order namespaces(7) lists them.
pub const NS_TYPES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// A namespace type (namespaces(7)), named as in `/proc/<pid>/ns/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ns {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl Ns {
    /// In the order namespaces(7) lists them, as [`NS_TYPES`].
    pub const ALL: [Ns; 8] = [
        Ns::Cgroup,
        Ns::Ipc,
        Ns::Mnt,
        Ns::Net,
        Ns::Pid,
        Ns::Time,
        Ns::User,
        Ns::Uts,
    ];

    /// The name of its link in `/proc/<pid>/ns`.
    pub const fn name(self) -> &'static str {
        NS_TYPES[self as usize]
    }

    /// The link's text for `inode`, as `ls -l /proc/self/ns` shows it: `pid:[4026531836]`.
    pub fn label(self, inode: u64) -> String {
        format!("{}:[{inode}]", self.name())
    }

    /// The parts of a view that read this type's links.
    pub const fn part(self) -> Parts {
        Parts(1 << (16 + self as u32))
    }
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which process the observer looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The observer itself: `<proc>/self`.
    SelfProcess,
    /// Another process, by its PID in the observer's procfs: `<proc>/<pid>`.
    Pid(i32),
}

impl Subject {
    fn dir(self, proc: &Path) -> PathBuf {
        match self {
            Subject::SelfProcess => proc.join("self"),
            Subject::Pid(pid) => proc.join(pid.to_string()),
        }
    }
}

/// What one side sees: the probe process through its procfs, and its own world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The procfs directory the probe was read through: "/proc/self" or "/proc/4242".
    pub source: String,
    /// The probe process, as this side's procfs shows it.
    pub probe: Proc,
    /// The namespaces the observer itself is in (`<proc>/self/ns/*` inode numbers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub own_ns: BTreeMap<String, u64>,
    /// The hostname in the observer's UTS namespace (`<proc>/sys/kernel/hostname`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Processes this procfs lists (numeric directories of `<proc>`).
    #[serde(default, skip_serializing_if = "Processes::is_empty")]
    pub processes: Processes,
    /// The observer's own mount table (`<proc>/self/mountinfo`).
    #[serde(default, skip_serializing_if = "Mounts::is_empty")]
    pub mounts: Mounts,
    /// System V IPC objects of the observer's IPC namespace (`<proc>/sysvipc/{shm,msg}`:
    /// these show the reader's namespace, not the subject's). Left out of the JSON when
    /// both tables are empty.
    #[serde(default, skip_serializing_if = "SysvIpc::is_empty")]
    pub sysvipc: SysvIpc,
    /// The interfaces of the observer's own network namespace (`<proc>/self/net/dev`),
    /// with state and address asked of that namespace (see [`net::links`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The processes of the probe's PID namespace this procfs lists (`<proc>/*/ns/pid`
    /// naming the probe's), each as its stat shows it, lowest PID first: the host sees
    /// them under host PIDs, the probe (with a /proc of its own) under its namespace's.
    /// `None` when not read ([`Parts::NS_PROCESSES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_processes: Option<Vec<Stat>>,
    /// The observer's own root directory (`<proc>/self/root`): `None` when not read
    /// ([`Parts::ROOT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    /// What ids and capabilities the observer's kernel can name
    /// (`<proc>/sys/kernel/{cap_last_cap,overflowuid,overflowgid}`). `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_limits: Option<IdLimits>,
    /// The first field of `<proc>/uptime`, in hundredths of a second: the boot-time clock
    /// of the *reader's* time namespace (proc(5), time_namespaces(7)). `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_cs: Option<u64>,
    /// The main IPv4 routing table of the observer's own network namespace
    /// (`<proc>/self/net/route`). `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Networking sysctls of the observer's own network namespace (`<proc>/sys/net/…`,
    /// which answers for the reader's namespace). `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_sysctls: Option<NetSysctls>,
    /// What the observer reads of the kernel's files a runtime masks or makes read-only,
    /// of its /dev and of /sys, in its own mount namespace ([`Parts::KERNEL_FILES`],
    /// [`Parts::DEV`]). `None` when neither is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelFiles>,
}

/// Sysctls that say which ids and capabilities a kernel can name (proc(5),
/// capabilities(7), user_namespaces(7)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdLimits {
    /// `cap_last_cap`: the highest capability number this kernel knows.
    pub cap_last_cap: u32,
    /// `overflowuid` and `overflowgid`: what an id with no mapping in the reader's user
    /// namespace shows as (usually 65534, "nobody").
    pub overflowuid: u32,
    pub overflowgid: u32,
}

impl IdLimits {
    /// The CapEff mask of a process holding every capability this kernel has.
    pub fn full_caps(&self) -> u64 {
        match self.cap_last_cap {
            n if n >= 63 => u64::MAX,
            n => (1u64 << (n + 1)) - 1,
        }
    }
}

/// One process as a procfs shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// `Pid:` in status: the PID in the pid namespace of the procfs that was read.
    pub pid: i32,
    pub ppid: i32,
    /// `NSpid:`: the PID in each pid namespace, from the procfs's namespace down.
    pub nspid: Vec<i32>,
    pub uid: u32,
    pub gid: u32,
    /// Effective capabilities, as the hex mask status shows.
    pub cap_eff: String,
    /// `<dir>/ns/*` inode numbers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ns: BTreeMap<String, u64>,
    /// `<dir>/cgroup` lines, as shown relative to the reader's cgroup namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup: Vec<String>,
    /// `<dir>/uid_map` and `gid_map` lines, whitespace folded: `None` when not read,
    /// empty when nothing is mapped (no map written yet, or no user namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_map: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_map: Option<Vec<String>>,
    /// Interface names in `<dir>/net/dev`: the network namespace of this process,
    /// whoever reads it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// `<dir>/mountinfo`: the mount table of this process's mount namespace, whoever
    /// reads it (paths as seen from the reader's root). `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
    /// The signal masks of `<dir>/status`: `None` when not read ([`Parts::SIGNALS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
    /// `<dir>/stat`: state, parent, flags, start time. `None` when not read
    /// ([`Parts::STAT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Stat>,
    /// `<dir>/root`: the process's root directory as this side reads it. `None` when not
    /// read ([`Parts::ROOT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    /// `<dir>/timens_offsets` lines, whitespace folded ("monotonic 172800 0"): the
    /// offsets of the time namespace this process's *children* get (time_namespaces(7)).
    /// `None` when not read, empty on a kernel without time namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timens_offsets: Option<Vec<String>>,
    /// `<dir>/net/route`: the main IPv4 routing table of this process's network
    /// namespace, whoever reads it. `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// `<dir>/status` VmRSS and VmHWM: the memory the process holds ([`Parts::MEMORY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryUse>,
    /// `<dir>/stat` and `<dir>/schedstat`: the CPU time it used ([`Parts::CPU_TIME`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuTime>,
    /// Its threads and children ([`Parts::TASKS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Tasks>,
    /// `<dir>/status` credentials, capability sets, no_new_privs and seccomp mode, and the
    /// LSM labels in `<dir>/attr`: `None` when not read ([`Parts::SECURITY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// More of status: what `nsx inspect` and `nsx doctor` show. Host-specific and not
    /// compared by the lessons, so it stays out of the lesson JSON.
    #[serde(skip)]
    pub extra: ProcExtra,
}

/// The memory a process holds, from proc(5) `status` (kB there, bytes here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUse {
    /// `VmRSS:` resident set size now.
    pub rss: u64,
    /// `VmHWM:` the highest resident set size so far.
    pub hwm: u64,
}

/// The CPU time a process used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    /// proc(5) `stat` fields 14 and 15, utime and stime of the whole thread group, in
    /// clock ticks.
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    /// One clock tick in µs (sysconf(_SC_CLK_TCK): 10 000 at USER_HZ 100).
    pub tick_us: u64,
    /// `schedstat` (Documentation/scheduler/sched-stats.rst): time on a CPU and time
    /// spent runnable waiting on a run queue, in ns, of the main thread; `None` where
    /// the kernel has no schedstat (CONFIG_SCHED_INFO off).
    pub on_cpu_ns: Option<u64>,
    pub waited_ns: Option<u64>,
}

impl CpuTime {
    /// utime + stime in µs: what `ps` and `top` show, in whole ticks.
    pub fn ticks_us(&self) -> u64 {
        (self.utime_ticks + self.stime_ticks) * self.tick_us
    }
}

/// A process's tasks: its threads, and the processes whose parent it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks {
    /// `Threads:` in status.
    pub threads: u64,
    /// Its children: the PIDs, as this procfs numbers them, of every process whose
    /// `stat` names it as parent (proc(5) field 4), sorted.
    pub children: Vec<i32>,
}

/// Fields of `<dir>/status` (proc(5)) beyond those the lessons compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcExtra {
    /// `Name:`: the command name (comm), at most 15 bytes.
    pub name: String,
    pub euid: u32,
    /// The saved set-user-ID (the third field of `Uid:`).
    pub suid: u32,
    /// The file system user ID (the fourth field of `Uid:`).
    pub fsuid: u32,
    pub egid: u32,
    /// The file system group ID (the fourth field of `Gid:`).
    pub fsgid: u32,
    /// `Groups:`: the supplementary groups.
    pub groups: Vec<u32>,
    /// `CapInh:`, `CapPrm:`, `CapEff:`, `CapBnd:` and `CapAmb:` as bit masks
    /// (capabilities(7)); the last two are absent on very old kernels.
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: Option<u64>,
    pub cap_amb: Option<u64>,
    /// `Seccomp:`: 0 disabled, 1 strict, 2 filter (seccomp(2)); absent without
    /// CONFIG_SECCOMP.
    pub seccomp: Option<u32>,
    /// `Seccomp_filters:`: how many filters are attached (Linux 5.9).
    pub seccomp_filters: Option<u32>,
    /// `NoNewPrivs:` (prctl(2) PR_SET_NO_NEW_PRIVS).
    pub no_new_privs: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    pub count: usize,
    /// The lowest PIDs listed (at most [`Processes::SHOWN`]).
    pub first: Vec<i32>,
}

impl Processes {
    pub const SHOWN: usize = 8;

    /// Not read: a procfs that was read lists at least the process it was read for.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounts {
    pub count: usize,
    /// Propagation of the mount at "/": "private", "shared:N", "master:N", ...
    pub root_propagation: String,
    /// Mounts whose source or mount point names nsx: the ones nsx made.
    pub nsx: Vec<Mount>,
    /// The mounts on /proc, /sys and /dev and below them: the kernel's file systems as
    /// the table has them, masks included ([`Parts::KERNEL_MOUNTS`]; empty when not read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel: Vec<KernelMount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub propagation: String,
}

impl Mounts {
    /// Not read: every mount namespace has at least its root.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl View {
    pub fn own_ns(&self, ty: &str) -> u64 {
        self.own_ns.get(ty).copied().unwrap_or(0)
    }

    /// The observer's own namespace of type `ns` (`<proc>/self/ns/<ns>`): `None` when it
    /// was not read (or the kernel lacks the type), never a made-up 0.
    pub fn own(&self, ns: Ns) -> Option<u64> {
        self.own_ns.get(ns.name()).copied()
    }

    /// The observer's own `<ns>_for_children` link (pid and time only).
    pub fn own_for_children(&self, ns: Ns) -> Option<u64> {
        self.own_ns
            .get(&format!("{}_for_children", ns.name()))
            .copied()
    }

    pub fn has_mount(&self, mount_point: &str) -> bool {
        self.mounts.nsx.iter().any(|m| m.mount_point == mount_point)
    }

    /// An interface of the observer's own network namespace, by name.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The names of the observer's own interfaces.
    pub fn link_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }
}

impl Proc {
    pub fn ns(&self, ty: &str) -> u64 {
        self.ns.get(ty).copied().unwrap_or(0)
    }

    /// The process's namespace of type `ns` (`<dir>/ns/<ns>`): `None` when not read.
    pub fn ns_of(&self, ns: Ns) -> Option<u64> {
        self.ns.get(ns.name()).copied()
    }

    /// `<dir>/ns/<ns>_for_children` (pid and time only): where the process's next
    /// children will be; `None` when not read or not such a type.
    pub fn ns_for_children(&self, ns: Ns) -> Option<u64> {
        self.ns.get(&format!("{}_for_children", ns.name())).copied()
    }

    /// The uid_map lines (none when not read).
    pub fn uid_map(&self) -> &[String] {
        self.uid_map.as_deref().unwrap_or_default()
    }

    /// The gid_map lines (none when not read).
    pub fn gid_map(&self) -> &[String] {
        self.gid_map.as_deref().unwrap_or_default()
    }

    /// The timens_offsets lines (none when not read).
    pub fn timens_offsets(&self) -> &[String] {
        self.timens_offsets.as_deref().unwrap_or_default()
    }
}

/// The parts of a [`View`] beyond the probe's status, which every view reads.
///
/// A lesson reads what its rows and facts show ([`crate::lessons::Lesson::sees`]): the
/// pid lesson lists processes but has no use for the mount table, the ipc lesson reads
/// /proc/sysvipc but not the interfaces. Parts not read are left empty, and out of the
/// JSON. `nsx inspect`, `nsx run` and the doctor read everything ([`Parts::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts(u32);

impl Parts {
    /// `<dir>/cgroup`.
    pub const CGROUP: Parts = Parts(1);
    /// `<dir>/uid_map` and `<dir>/gid_map`.
    pub const ID_MAPS: Parts = Parts(1 << 1);
    /// Interface names in `<dir>/net/dev`: the probe's network namespace.
    pub const INTERFACES: Parts = Parts(1 << 2);
    /// `<proc>/sys/kernel/hostname`.
    pub const HOSTNAME: Parts = Parts(1 << 3);
    /// The numeric directories of `<proc>`.
    pub const PROCESSES: Parts = Parts(1 << 4);
    /// `<dir>/mountinfo` (the probe's mount table) and `<proc>/self/mountinfo` (the
    /// observer's own).
    pub const MOUNTS: Parts = Parts(1 << 5);
    /// `<proc>/sysvipc/{shm,msg}`.
    pub const SYSVIPC: Parts = Parts(1 << 6);
    /// The observer's own interfaces, with state and address ([`net::links`]).
    pub const LINKS: Parts = Parts(1 << 7);
    /// The signal masks of `<dir>/status` (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt).
    pub const SIGNALS: Parts = Parts(1 << 8);
    /// `<dir>/stat` ([`Stat`]).
    pub const STAT: Parts = Parts(1 << 9);
    /// The processes `<proc>` lists in the probe's PID namespace ([`process::ns_processes`]).
    pub const NS_PROCESSES: Parts = Parts(1 << 10);
    /// `<dir>/root` of the probe and `<proc>/self/root` of the observer ([`root::read_root`]).
    pub const ROOT: Parts = Parts(1 << 11);
    /// `<proc>/sys/kernel/cap_last_cap`, `overflowuid` and `overflowgid` ([`IdLimits`]).
    pub const ID_LIMITS: Parts = Parts(1 << 12);
    /// `<dir>/timens_offsets`: the probe's time-namespace offsets.
    pub const TIMENS_OFFSETS: Parts = Parts(1 << 13);
    /// `<proc>/uptime`: the observer's own boot-time clock.
    pub const UPTIME: Parts = Parts(1 << 14);
    /// `<dir>/net/route` (the probe's routing table) and `<proc>/self/net/route` (the
    /// observer's own).
    pub const ROUTES: Parts = Parts(1 << 24);
    /// `<proc>/sys/net/ipv4/ip_forward` and `<proc>/sys/net/core/
    /// fb_tunnels_only_for_init_net` ([`NetSysctls`]), the observer's own.
    pub const NET_SYSCTLS: Parts = Parts(1 << 25);
    /// VmRSS and VmHWM of `<dir>/status`: the memory the process holds.
    pub const MEMORY: Parts = Parts(1 << 26);
    /// `<dir>/stat` utime and stime and `<dir>/schedstat`: the CPU time it used.
    pub const CPU_TIME: Parts = Parts(1 << 27);
    /// Threads of `<dir>/status`, and its children (the `<proc>/*/stat` naming it parent).
    pub const TASKS: Parts = Parts(1 << 28);
    /// `<dir>/status` credentials, capability sets, NoNewPrivs and Seccomp, and
    /// `<dir>/attr/current` and `<dir>/attr/apparmor/current` ([`Security`]).
    pub const SECURITY: Parts = Parts(1 << 15);
    /// The observer's own reads of the files runtimes mask or make read-only
    /// ([`KernelFiles::paths`]).
    pub const KERNEL_FILES: Parts = Parts(1 << 29);
    /// The observer's own /dev entries and whether its /sys is read-only
    /// ([`KernelFiles::dev`], [`KernelFiles::sys_ro`]).
    pub const DEV: Parts = Parts(1 << 31);
    /// The mounts on /proc, /sys and /dev in both tables ([`Mounts::kernel`]).
    pub const KERNEL_MOUNTS: Parts = Parts(1 << 30);
    /// Every namespace link: `<dir>/ns/*` of the probe and `<proc>/self/ns/*` of the
    /// observer. [`Parts::ns`] names one type.
    pub const NS: Parts = Parts(((1 << NS_TYPES.len()) - 1) << 16);
    pub const NONE: Parts = Parts(0);
    /// What `nsx inspect`, `nsx run` and the doctor read: everything but the parts only a
    /// lesson asks for (signal masks, stat, a namespace's processes, the root directory,
    /// and the measurements of the limit lessons: memory, CPU time, tasks, the last a scan
    /// of every process).
    pub const ALL: Parts = Parts((1 << 8) - 1)
        .with(Parts::ID_LIMITS)
        .with(Parts::TIMENS_OFFSETS)
        .with(Parts::UPTIME)
        .with(Parts::ROUTES)
        .with(Parts::NET_SYSCTLS)
        .with(Parts::NS);

    /// The links of one namespace type (a name of [`NS_TYPES`]): `ns/pid` of both.
    pub const fn ns(ty: &str) -> Parts {
        let mut i = 0;
        while i < NS_TYPES.len() {
            if const_eq(NS_TYPES[i], ty) {
                return Parts(1 << (16 + i));
            }
            i += 1;
        }
        panic!("not a namespace type")
    }

    pub const fn with(self, other: Parts) -> Parts {
        Parts(self.0 | other.0)
    }

    pub const fn has(self, other: Parts) -> bool {
        self.0 & other.0 == other.0
    }

    /// These parts without `other`.
    pub const fn without(self, other: Parts) -> Parts {
        Parts(self.0 & !other.0)
    }

    /// The namespace types whose links this reads.
    pub fn ns_types(self) -> impl Iterator<Item = &'static str> {
        NS_TYPES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << (16 + i)) != 0)
            .map(|(_, ty)| ty)
    }
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Reads what the observer sees of `subject` through the procfs mounted at `proc`:
/// `parts` of it (the probe's status is always read).
pub fn observe_parts(proc: &Path, subject: Subject, parts: Parts) -> Result<View> {
    let dir = subject.dir(proc);
    let mut buf = Vec::with_capacity(BUF);
    let probe = read_proc_parts(&dir, parts, &mut buf)?;
    let root = ProcDir::open(proc)?;
    // Observing itself, the observer's namespaces are the probe's: one read serves both.
    let own_ns = match subject {
        Subject::SelfProcess => probe.ns.clone(),
        Subject::Pid(_) => read_ns_at(&root, "self/ns", parts)?,
    };
    let hostname = if parts.has(Parts::HOSTNAME) {
        root.read("sys/kernel/hostname", &mut buf)?;
        String::from_utf8_lossy(&buf).trim().to_string()
    } else {
        String::new()
    };
    let processes = if parts.has(Parts::PROCESSES) {
        read_processes(proc)?
    } else {
        Processes::default()
    };
    let mounts = match (&probe.mounts, subject) {
        // Observing itself, the observer's table is the probe's: one read serves both.
        (Some(m), Subject::SelfProcess) => m.clone(),
        _ if parts.has(Parts::MOUNTS) => {
            root.read("self/mountinfo", &mut buf)?;
            parse_mounts(&buf, &root.path("self/mountinfo"), parts)?
        }
        _ => Mounts::default(),
    };
    let sysvipc = if parts.has(Parts::SYSVIPC) {
        sysvipc::read_sysvipc(proc)?
    } else {
        SysvIpc::default()
    };
    let links = if parts.has(Parts::LINKS) {
        net::links(proc)?
    } else {
        Vec::new()
    };
    let ns_processes = if parts.has(Parts::NS_PROCESSES) {
        let ns = match probe.ns_of(Ns::Pid) {
            Some(ns) => ns,
            None => *read_ns_at(&ProcDir::open(&dir)?, "ns", Ns::Pid.part())?
                .get(Ns::Pid.name())
                .ok_or_else(|| sys("readlink", dir.join("ns/pid").display(), Errno::ENOENT))?,
        };
        Some(process::ns_processes(proc, ns)?)
    } else {
        None
    };
    let own_root = match (&probe.root, subject) {
        // Observing itself, the observer's root is the probe's: one read serves both.
        (Some(r), Subject::SelfProcess) => Some(r.clone()),
        _ if parts.has(Parts::ROOT) => Some(root::read_root(&root.path("self"))?),
        _ => None,
    };
    let id_limits = if parts.has(Parts::ID_LIMITS) {
        read_id_limits(&root, &mut buf)?
    } else {
        None
    };
    // proc(5): "the first value is the uptime of the system (seconds)", with two
    // decimals; in a time namespace it includes the reader's boot-time offset.
    let uptime_cs = if parts.has(Parts::UPTIME) && root.read_if_present("uptime", &mut buf)? {
        let text = String::from_utf8_lossy(&buf);
        Some(parse_uptime(&text).map_err(|e| parse_error(&root.path("uptime"), e))?)
    } else {
        None
    };
    let routes = match (&probe.routes, subject) {
        // Observing itself, the observer's table is the probe's: one read serves both.
        (Some(r), Subject::SelfProcess) => Some(r.clone()),
        _ if parts.has(Parts::ROUTES) => {
            Some(if root.read_if_present("self/net/route", &mut buf)? {
                net::parse_routes(&String::from_utf8_lossy(&buf))
            } else {
                Vec::new()
            })
        }
        _ => None,
    };
    let net_sysctls = if parts.has(Parts::NET_SYSCTLS) {
        let mut read = |name: &str| -> Result<Option<String>> {
            Ok(root
                .read_if_present(name, &mut buf)?
                .then(|| String::from_utf8_lossy(&buf).trim().to_string()))
        };
        Some(NetSysctls {
            ip_forward: read(net::IP_FORWARD)?.map(|v| v != "0"),
            fb_tunnels_only_for_init_net: read(net::FB_TUNNELS)?.and_then(|v| v.parse().ok()),
        })
    } else {
        None
    };
    // The observer's own world: the paths below its procfs's parent, "/" for /proc.
    let (files, dev) = (parts.has(Parts::KERNEL_FILES), parts.has(Parts::DEV));
    let kernel = if files || dev {
        Some(kernel::read_kernel_files(
            proc.parent().unwrap_or(Path::new("/")),
            files,
            dev,
        )?)
    } else {
        None
    };
    Ok(View {
        source: dir.display().to_string(),
        probe,
        own_ns,
        hostname,
        processes,
        mounts,
        sysvipc,
        links,
        ns_processes,
        root: own_root,
        id_limits,
        uptime_cs,
        routes,
        net_sysctls,
        kernel,
    })
}

/// Reads one process directory (`/proc/<pid>` or `/proc/self`), every part of it.
pub fn read_proc(dir: &Path) -> Result<Proc> {
    read_proc_parts(dir, Parts::ALL, &mut Vec::with_capacity(BUF))
}

/// Reads the status of one process directory and the `parts` of it.
pub fn read_proc_with(dir: &Path, parts: Parts) -> Result<Proc> {
    read_proc_parts(dir, parts, &mut Vec::with_capacity(BUF))
}

fn read_proc_parts(dir: &Path, parts: Parts, buf: &mut Vec<u8>) -> Result<Proc> {
    let d = ProcDir::open(dir)?;
    d.read("status", buf)?;
    let status = parse_status(&String::from_utf8_lossy(buf))
        .map_err(|e| parse_error(&d.path("status"), e))?;
    let mut lines = |name: &str, wanted: Parts| -> Result<Vec<String>> {
        if !parts.has(wanted) {
            return Ok(Vec::new());
        }
        // Kernels without user namespaces have no uid_map: nothing to show.
        if !d.read_if_present(name, buf)? {
            return Ok(Vec::new());
        }
        Ok(folded_lines(&String::from_utf8_lossy(buf)))
    };
    let cgroup = lines("cgroup", Parts::CGROUP)?;
    let maps = parts.has(Parts::ID_MAPS);
    let uid_map = maps.then(|| lines("uid_map", Parts::ID_MAPS)).transpose()?;
    let gid_map = maps.then(|| lines("gid_map", Parts::ID_MAPS)).transpose()?;
    // Kernels without time namespaces (before 5.6) have no timens_offsets: nothing shown.
    let timens_offsets = parts
        .has(Parts::TIMENS_OFFSETS)
        .then(|| lines("timens_offsets", Parts::TIMENS_OFFSETS))
        .transpose()?;
    let interfaces = if parts.has(Parts::INTERFACES) && d.read_if_present("net/dev", buf)? {
        net::parse_net_dev(&String::from_utf8_lossy(buf))
    } else {
        Vec::new()
    };
    let ns = read_ns_at(&d, "ns", parts)?;
    let stat = if parts.has(Parts::STAT) {
        d.read("stat", buf)?;
        Some(
            process::parse_stat(&String::from_utf8_lossy(buf))
                .ok_or_else(|| parse_error(&d.path("stat"), "not a stat line"))?,
        )
    } else {
        None
    };
    let root = if parts.has(Parts::ROOT) {
        Some(root::read_root(dir)?)
    } else {
        None
    };
    // Always there in a real procfs; captured fixtures may leave it out.
    let mounts = if parts.has(Parts::MOUNTS) && d.read_if_present("mountinfo", buf)? {
        Some(parse_mounts(buf, &d.path("mountinfo"), parts)?)
    } else {
        None
    };
    // proc(5): /proc/<pid>/net is the network namespace of <pid>, so the host reads the
    // probe's routing table here without entering its namespace.
    let routes = if !parts.has(Parts::ROUTES) {
        None
    } else if d.read_if_present("net/route", buf)? {
        Some(net::parse_routes(&String::from_utf8_lossy(buf)))
    } else {
        Some(Vec::new())
    };
    let memory = if parts.has(Parts::MEMORY) {
        // Kernel threads have no Vm lines: nothing to show.
        match (status.vm_rss_kib, status.vm_hwm_kib) {
            (Some(rss), Some(hwm)) => Some(MemoryUse {
                rss: rss * 1024,
                hwm: hwm * 1024,
            }),
            _ => None,
        }
    } else {
        None
    };
    let cpu = if parts.has(Parts::CPU_TIME) {
        read_cpu_time(&d, buf)?
    } else {
        None
    };
    let tasks = if parts.has(Parts::TASKS) {
        // The procfs the directory belongs to: `<proc>/self` and `<proc>/<pid>` alike.
        let proc = dir.parent().unwrap_or(Path::new("/proc"));
        Some(Tasks {
            threads: status.threads.unwrap_or(1),
            children: children_in(proc, status.pid, buf)?,
        })
    } else {
        None
    };
    Ok(Proc {
        pid: status.pid,
        ppid: status.ppid,
        nspid: if status.nspid.is_empty() {
            vec![status.pid]
        } else {
            status.nspid.clone()
        },
        uid: status.uid,
        gid: status.gid,
        cap_eff: format!("{:016x}", status.extra.cap_eff),
        ns,
        cgroup,
        uid_map,
        gid_map,
        interfaces,
        mounts,
        signals: parts.has(Parts::SIGNALS).then_some(status.signals),
        stat,
        root,
        timens_offsets,
        routes,
        memory,
        cpu,
        tasks,
        security: if parts.has(Parts::SECURITY) {
            Some(security::read_security(&d, status.uid, &status.extra)?)
        } else {
            None
        },
        extra: status.extra,
    })
}

/// `<dir>/stat` utime and stime (proc(5) fields 14 and 15, clock ticks) and
/// `<dir>/schedstat` (ns on a CPU, ns waiting on a run queue), read with procfs's parsers.
/// `stat` is always there in a real procfs; captured fixtures may leave it out (`None`).
fn read_cpu_time(d: &ProcDir, buf: &mut Vec<u8>) -> Result<Option<CpuTime>> {
    use procfs::process::{Schedstat, Stat};
    if !d.read_if_present("stat", buf)? {
        return Ok(None);
    }
    let stat = Stat::from_read(&buf[..]).map_err(|e| parse_error(&d.path("stat"), e))?;
    let sched = if d.read_if_present("schedstat", buf)? {
        Some(Schedstat::from_read(&buf[..]).map_err(|e| parse_error(&d.path("schedstat"), e))?)
    } else {
        None
    };
    Ok(Some(CpuTime {
        utime_ticks: stat.utime,
        stime_ticks: stat.stime,
        tick_us: tick_us(),
        on_cpu_ns: sched.as_ref().map(|s| s.sum_exec_runtime),
        waited_ns: sched.as_ref().map(|s| s.run_delay),
    }))
}

/// One clock tick (USER_HZ), the unit of utime and stime, in µs.
fn tick_us() -> u64 {
    // sysconf(3) _SC_CLK_TCK: the clock ticks per second /proc counts in (100 on Linux).
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000 / u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100)
}

/// The processes of the procfs at `proc` whose parent is `pid` (as that procfs numbers
/// them): every numeric directory's `stat`, field 4 (proc(5)). `<dir>/task/*/children`
/// would be shorter, but kernels without CONFIG_PROC_CHILDREN lack it. A process that
/// exits between the listing and the read is skipped.
fn children_in(proc: &Path, pid: i32, buf: &mut Vec<u8>) -> Result<Vec<i32>> {
    use procfs::process::Stat;
    let mut kids = Vec::new();
    for entry in fs::read_dir(proc).ctx("readdir", proc.display())?.flatten() {
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(d) = ProcDir::open(&entry.path()) else {
            continue;
        };
        match d.read_if_present("stat", buf) {
            Ok(true) => {}
            _ => continue,
        }
        if Stat::from_read(&buf[..]).is_ok_and(|s| s.ppid == pid) {
            kids.push(n);
        }
    }
    kids.sort_unstable();
    Ok(kids)
}

/// Which of `pids` the procfs at `proc` still lists: the processes that have not been
/// reaped (a zombie is still listed).
pub fn still_listed(proc: &Path, pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| proc.join(p.to_string()).exists())
        .collect()
}

/// The fields of proc(5) `status` nsx uses.
#[derive(Debug, Default)]
struct StatusFields {
    pid: i32,
    ppid: i32,
    nspid: Vec<i32>,
    uid: u32,
    gid: u32,
    signals: Signals,
    /// `VmRSS:` and `VmHWM:` in kB; absent for kernel threads.
    vm_rss_kib: Option<u64>,
    vm_hwm_kib: Option<u64>,
    /// `Threads:`.
    threads: Option<u64>,
    extra: ProcExtra,
}

/// proc(5) `/proc/<pid>/status`: `Key:\tvalue` lines. Pid, PPid, Uid, Gid and the
/// capability sets are required; the rest are absent on some kernels.
fn parse_status(text: &str) -> std::result::Result<StatusFields, String> {
    fn num<T: std::str::FromStr>(key: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{key}: {v:?} is not a number"))
    }
    fn mask(key: &str, v: &str) -> std::result::Result<u64, String> {
        u64::from_str_radix(v, 16).map_err(|_| format!("{key}: {v:?} is not a hex mask"))
    }
    fn first<T: std::str::FromStr>(key: &str, v: &str) -> std::result::Result<T, String> {
        num(key, v.split_whitespace().next().unwrap_or(""))
    }
    let mut s = StatusFields::default();
    let mut seen = 0u8;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let v = value.trim();
        match key {
            "Name" => s.extra.name = v.to_string(),
            "Pid" => (s.pid, seen) = (num(key, v)?, seen | 1),
            "PPid" => (s.ppid, seen) = (num(key, v)?, seen | 2),
            "NSpid" => {
                s.nspid = v
                    .split_whitespace()
                    .map(|n| num(key, n))
                    .collect::<std::result::Result<_, _>>()?
            }
            // Real, effective, saved set, file system.
            "Uid" => {
                s.uid = first(key, v)?;
                s.extra.euid = num(key, v.split_whitespace().nth(1).unwrap_or(""))?;
                s.extra.suid = num(key, v.split_whitespace().nth(2).unwrap_or(""))?;
                s.extra.fsuid = num(key, v.split_whitespace().nth(3).unwrap_or(""))?;
                seen |= 4;
            }
            "Gid" => {
                s.gid = first(key, v)?;
                s.extra.egid = num(key, v.split_whitespace().nth(1).unwrap_or(""))?;
                s.extra.fsgid = num(key, v.split_whitespace().nth(3).unwrap_or(""))?;
                seen |= 8;
            }
            "CapInh" => s.extra.cap_inh = mask(key, v)?,
            "CapPrm" => s.extra.cap_prm = mask(key, v)?,
            "CapEff" => (s.extra.cap_eff, seen) = (mask(key, v)?, seen | 16),
            "CapBnd" => s.extra.cap_bnd = Some(mask(key, v)?),
            "CapAmb" => s.extra.cap_amb = Some(mask(key, v)?),
            "Seccomp" => s.extra.seccomp = Some(num(key, v)?),
            "Seccomp_filters" => s.extra.seccomp_filters = Some(num(key, v)?),
            "NoNewPrivs" => s.extra.no_new_privs = Some(num::<u8>(key, v)? != 0),
            "Groups" => {
                s.extra.groups = v
                    .split_whitespace()
                    .map(|g| num(key, g))
                    .collect::<std::result::Result<_, _>>()?
            }
            "SigPnd" => s.signals.pending = mask(key, v)?,
            "ShdPnd" => s.signals.shared_pending = mask(key, v)?,
            "SigBlk" => s.signals.blocked = mask(key, v)?,
            "SigIgn" => s.signals.ignored = mask(key, v)?,
            "SigCgt" => s.signals.caught = mask(key, v)?,
            "VmRSS" => s.vm_rss_kib = Some(first(key, v)?),
            "VmHWM" => s.vm_hwm_kib = Some(first(key, v)?),
            "Threads" => s.threads = Some(num(key, v)?),
            _ => {}
        }
    }
    if seen != 31 {
        return Err("a required field (Pid, PPid, Uid, Gid or CapEff) is missing".into());
    }
    Ok(s)
}

/// Procfs files are small and generated on each read(2): one buffer, read to EOF.
const BUF: usize = 4096;

/// A procfs directory opened once (O_PATH): files under it are opened relative to it
/// with openat(2), so the path walk through /proc happens once per directory.
struct ProcDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl ProcDir {
    fn open(path: &Path) -> Result<ProcDir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", path.display())?;
        Ok(ProcDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads `name` into `buf` (replacing its contents), with plain read(2)s: std's
    /// read_to_end would first ask statx(2) and lseek(2) for a size procfs does not know.
    fn read(&self, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        if self.read_if_present(name, buf)? {
            Ok(())
        } else {
            Err(sys("open", self.path(name).display(), Errno::ENOENT))
        }
    }

    /// Like [`ProcDir::read`], but a missing file is `false`.
    fn read_if_present(&self, name: &str, buf: &mut Vec<u8>) -> Result<bool> {
        let fd = match nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(sys("open", self.path(name).display(), e)),
        };
        buf.clear();
        let mut chunk = [0u8; BUF];
        loop {
            match nix::unistd::read(&fd, &mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(sys("read", self.path(name).display(), e)),
            }
        }
    }
}

/// The three sysctls of [`IdLimits`], or `None` where this procfs has none of them.
fn read_id_limits(root: &ProcDir, buf: &mut Vec<u8>) -> Result<Option<IdLimits>> {
    let mut values = [0u32; 3];
    for (value, name) in values.iter_mut().zip([
        "sys/kernel/cap_last_cap",
        "sys/kernel/overflowuid",
        "sys/kernel/overflowgid",
    ]) {
        if !root.read_if_present(name, buf)? {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(buf);
        *value = text.trim().parse().map_err(|_| {
            parse_error(
                &root.path(name),
                format!("{:?} is not a number", text.trim()),
            )
        })?;
    }
    let [cap_last_cap, overflowuid, overflowgid] = values;
    Ok(Some(IdLimits {
        cap_last_cap,
        overflowuid,
        overflowgid,
    }))
}

/// `12345.67 23456.78` -> 1234567 (hundredths of a second).
fn parse_uptime(text: &str) -> std::result::Result<u64, String> {
    let first = text.split_whitespace().next().unwrap_or("");
    let (secs, cents) = first.split_once('.').unwrap_or((first, "0"));
    let bad = || format!("{first:?} is not seconds with two decimals");
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let cents: u64 = match cents.len() {
        1 => cents.parse::<u64>().map_err(|_| bad())? * 10,
        2 => cents.parse().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(secs * 100 + cents)
}

/// The first process, lowest PID first, that `wanted` accepts, as the procfs mounted at
/// `proc` shows its status. A process that exits while it is read is skipped.
pub fn find_process(proc: &Path, wanted: impl Fn(&Proc) -> bool) -> Result<Option<Proc>> {
    let mut pids: Vec<i32> = fs::read_dir(proc)
        .ctx("readdir", proc.display())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut buf = Vec::with_capacity(BUF);
    for pid in pids {
        match read_proc_parts(&proc.join(pid.to_string()), Parts::NONE, &mut buf) {
            Ok(p) if wanted(&p) => return Ok(Some(p)),
            Ok(_) => {}
            Err(Error::Sys(e)) if matches!(e.errno, Errno::ENOENT | Errno::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// `<dir>/ns/<type>` are symlinks whose text is `type:[inode]`; readlink(2) gives it.
/// Only the types in `parts`; types this kernel lacks are left out.
fn read_ns_at(d: &ProcDir, ns_dir: &str, parts: Parts) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    // pid and time also have a `<type>_for_children` link: the namespace the process's
    // next children will be born in (namespaces(7)), which unshare(2) changes for these
    // two types instead of moving the caller.
    let links = parts.ns_types().flat_map(|ty| {
        let children = matches!(ty, "pid" | "time").then(|| format!("{ty}_for_children"));
        std::iter::once(ty.to_string()).chain(children)
    });
    for ty in links {
        let name = format!("{ns_dir}/{ty}");
        // readlinkat(2) relative to the directory already open: no walk from "/".
        match nix::fcntl::readlinkat(&d.fd, name.as_str()) {
            Ok(target) => {
                let text = target.to_string_lossy();
                out.insert(
                    ty.to_string(),
                    parse_ns_link(&text).ok_or_else(|| {
                        Error::Other(format!(
                            "parse {}: unexpected link text {text:?}",
                            d.path(&name).display()
                        ))
                    })?,
                );
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys("readlink", d.path(&name).display(), e)),
        }
    }
    Ok(out)
}

/// `pid:[4026531836]` -> 4026531836
pub fn parse_ns_link(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once(":[")?;
    rest.strip_suffix(']')?.parse().ok()
}

/// The PIDs a procfs lists (its numeric directories), lowest first.
fn numeric_entries(proc: &Path) -> Result<Vec<i32>> {
    let mut pids: Vec<i32> = fs::read_dir(proc)
        .ctx("readdir", proc.display())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn read_processes(proc: &Path) -> Result<Processes> {
    let mut pids = numeric_entries(proc)?;
    let count = pids.len();
    pids.truncate(Processes::SHOWN);
    Ok(Processes { count, first: pids })
}

/// A mountinfo file's bytes, summarised (with the kernel's mounts when `parts` asks);
/// errors name `path`.
fn parse_mounts(bytes: &[u8], path: &Path, parts: Parts) -> Result<Mounts> {
    let infos = MountInfos::from_read(bytes).map_err(|e| parse_error(path, e))?;
    let mut mounts = summarize_mounts(&infos);
    if parts.has(Parts::KERNEL_MOUNTS) {
        mounts.kernel = kernel::kernel_mounts(&infos);
    }
    Ok(mounts)
}

/// Reduces a mount table to what the lessons compare: size, "/"'s propagation, and the
/// mounts nsx made.
pub fn summarize_mounts(infos: &MountInfos) -> Mounts {
    let mut out = Mounts {
        count: infos.0.len(),
        ..Mounts::default()
    };
    for m in &infos.0 {
        let point = m.mount_point.display().to_string();
        let source = m.mount_source.clone().unwrap_or_default();
        if point == "/" {
            // The last "/" wins: after pivot_root or an overmount it is the visible one.
            out.root_propagation = propagation(&m.opt_fields);
        }
        if source.starts_with("nsx") || point.contains("/nsx-") {
            out.nsx.push(Mount {
                mount_point: point,
                fstype: m.fs_type.clone(),
                source,
                propagation: propagation(&m.opt_fields),
            });
        }
    }
    out
}

/// The optional fields of a mountinfo line as mount(8) would name them.
pub fn propagation(fields: &[MountOptFields]) -> String {
    let tags: Vec<String> = fields
        .iter()
        .map(|f| match f {
            MountOptFields::Shared(n) => format!("shared:{n}"),
            MountOptFields::Master(n) => format!("master:{n}"),
            MountOptFields::PropagateFrom(n) => format!("propagate_from:{n}"),
            MountOptFields::Unbindable => "unbindable".to_string(),
        })
        .collect();
    if tags.is_empty() {
        "private".to_string()
    } else {
        tags.join(" ")
    }
}

/// Lines with their whitespace folded to single spaces, empty ones dropped.
fn folded_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("parse {}: {e}", path.display()))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
