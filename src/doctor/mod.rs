//! `nsx doctor`: what this machine offers the lessons, and for every lesson whether it
//! runs as root, rootless, or not at all here, with the fix.
//!
//! Everything is read from a [`SysRoot`] (the real `/`, or a captured fixture under
//! tests/fixtures/doctor/) by pure functions, so every situation a classroom meets (cgroup
//! v1, hybrid, v2 with and without delegation, user namespaces switched off, Ubuntu's
//! AppArmor restriction, a kernel without time namespaces, containers, WSL, VMs) is
//! unit-tested here on a machine that has none of them. Nothing is created: the doctor
//! only reads.
//!
//! [`check`] is the one decision "can this lesson run here": `nsx doctor`, `nsx lessons`
//! ([`crate::lessons::Lesson::support`]) and the check before a lesson runs all use it.

pub mod render;
mod sysroot;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

pub use sysroot::{parse_owners, Owner, SysRoot, User};

use crate::caps;
use crate::cgroup::{Layout, Mode, Version};
use crate::lessons::needs::Need;
use crate::lessons::{self, Lesson, Rootless, Support};
use crate::observe::{self, NS_TYPES};
use crate::report::Privilege;

/// Why something cannot be used here, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub reason: String,
    pub fix: String,
}

impl Problem {
    fn new(reason: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    fn support(self) -> Support {
        Support::No {
            reason: self.reason,
            fix: self.fix,
        }
    }
}

/// Everything the doctor found out about a machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub kernel: Kernel,
    /// How nsx runs now.
    pub privilege: Privilege,
    /// The unprivileged user the rootless verdicts are for; `None` for "any
    /// unprivileged user" (doctor run by root without sudo).
    pub user: Option<User>,
    /// nsx's own process: what root can do from here.
    pub nsx: NsxProcess,
    pub cgroup: Cgroups,
    pub user_namespaces: UserNamespaces,
    pub namespaces: Vec<NamespaceType>,
    pub overlay: Overlay,
    pub environment: Environment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// /proc/sys/kernel/osrelease, as `uname -r` prints it.
    pub release: String,
    /// major, minor, patch parsed from the release; `None` if it does not start with one.
    pub version: Option<[u32; 3]>,
}

impl Kernel {
    /// Whether the kernel is at least `major.minor`; `None` when the version is unknown.
    pub fn at_least(&self, major: u32, minor: u32) -> Option<bool> {
        self.version.map(|[a, b, _]| (a, b) >= (major, minor))
    }
}

/// `6.18.44-fc-v657` → [6, 18, 44]; `4.19` → [4, 19, 0]; `None` when it does not start
/// with `major.minor`.
pub fn parse_kernel_version(release: &str) -> Option<[u32; 3]> {
    let numeric: &str = release
        .trim()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = numeric.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some([major, minor, patch])
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsxProcess {
    pub uid: u32,
    /// CAP_SYS_ADMIN in nsx's effective set: what creating namespaces and mounting need.
    pub cap_sys_admin: bool,
    /// CAP_SYS_ADMIN in the bounding set: whether root (sudo) started from here gets it.
    pub cap_sys_admin_bounding: bool,
    /// Seccomp mode of nsx itself: "disabled", "strict" or "filter" (a filter may refuse
    /// unshare or mount, as container runtimes' default profiles do).
    pub seccomp: Option<String>,
    /// `/proc/self/uid_map`: the identity map `0 0 4294967295` outside any user
    /// namespace.
    pub uid_map: Vec<String>,
    /// nsx itself runs in a user namespace (its uid_map is not the identity map).
    pub in_user_namespace: bool,
}

/// seccomp(2) modes as `Seccomp:` in status shows them.
pub fn seccomp_mode(mode: u32) -> String {
    match mode {
        0 => "disabled".to_string(),
        1 => "strict".to_string(),
        2 => "filter".to_string(),
        n => format!("mode {n}"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cgroups {
    /// `None` when no cgroup file system could be found.
    pub mode: Option<Mode>,
    /// Where the hierarchies are mounted (/sys/fs/cgroup).
    pub root: PathBuf,
    /// Why the cgroup layout could not be read, when it could not.
    pub problem: Option<Problem>,
    /// Every controller the kernel or the mounts name, sorted.
    pub controllers: Vec<ControllerState>,
    /// cgroup v2: where nsx would create lesson cgroups, and whether the user may.
    pub delegation: Option<Delegation>,
    /// Why the cgroupns lesson has no nested cgroup to show, as root and without root
    /// ([`crate::lessons::cgroupns::obstacle`]); absent when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested_as_root: Option<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested_rootless: Option<Problem>,
    /// cgroup v2: the controllers the limit lessons (and `nsx run`) would switch on, in
    /// which cgroup.subtree_control files above nsx's `nsx/` subtree; nsx never switches
    /// them off again (README, Safety). Empty when everything is on already, or on v1.
    pub switches_on: Vec<SwitchOn>,
    /// cgroup v2: of those controllers, the ones already on in every file on the way
    /// (by nsx's earlier runs, systemd, or the boot).
    pub already_on: Vec<String>,
}

/// One cgroup.subtree_control nsx would write, and what it would add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchOn {
    pub file: PathBuf,
    pub controllers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControllerState {
    pub name: String,
    /// The hierarchy it is bound to here, `None` when it is not mounted.
    pub hierarchy: Option<Version>,
    /// v1: its hierarchy's mount point; v2: the cgroup2 mount.
    pub mount: Option<PathBuf>,
    /// Whether the kernel has it enabled (`/proc/cgroups`); `None` when not listed.
    pub kernel_enabled: Option<bool>,
    /// Root can give a lesson cgroup this controller here.
    pub available: bool,
    /// Why root cannot, when it cannot, and the fix.
    pub unavailable: Option<Problem>,
    /// The (unprivileged) user can, without root: the controller is delegated to them.
    pub delegated: bool,
    /// Why the user cannot, when they cannot.
    pub not_delegated: Option<String>,
    /// Only root can change what stops the user (an ancestor that root owns does not
    /// pass the controller on): a delegated scope of their own would not have it either.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub only_root_can_delegate: bool,
    /// The cgroup delegated to the user that other processes (their shell) share with
    /// nsx: moving them into a leaf of it is the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<PathBuf>,
    /// Where nsx would create lesson cgroups with this controller (v1: nsx's own cgroup in
    /// that hierarchy; v2: the parent of nsx's own cgroup).
    pub dir: Option<PathBuf>,
}

/// cgroup v2: nsx keeps lesson cgroups under `<base>/nsx/`, where `<base>` is the parent
/// of its own cgroup (the "no internal processes" rule; see cgroup::v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// nsx's own cgroup directory.
    pub own: PathBuf,
    pub base: PathBuf,
    /// Who owns `<base>`.
    pub owner: Option<u32>,
    /// The user may create cgroups in `<base>` and move processes into them, or nsx's
    /// own cgroup is delegated to the user ([`Delegation::into_own`]).
    pub writable: bool,
    /// Without root, `<base>` is not the user's but nsx's own cgroup is (its directory,
    /// cgroup.procs and cgroup.subtree_control writable): nsx moves itself into a leaf
    /// of it and keeps lesson cgroups beside that leaf, in `<own>/nsx`
    /// (cgroup::v2::V2::delegate_into_own).
    pub into_own: bool,
    /// Who owns nsx's own cgroup.
    pub own_owner: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserNamespaces {
    /// user.max_user_namespaces (0 forbids them to everyone, root included).
    pub max_user_namespaces: Option<i64>,
    /// kernel.unprivileged_userns_clone (Debian's and older Ubuntu kernels only).
    pub unprivileged_userns_clone: Option<i64>,
    /// kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10 and later).
    pub apparmor_restrict_unprivileged_userns: Option<i64>,
    /// Why an unprivileged user cannot use them, if they cannot.
    pub unprivileged: Option<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceType {
    /// The namespaces(7) name: cgroup, ipc, mnt, net, pid, time, user, uts.
    pub name: String,
    /// `/proc/self/ns/<name>` exists: the kernel has this namespace type.
    pub present: bool,
    /// user.max_<name>_namespaces.
    pub max: Option<i64>,
    /// Why it cannot be created here, when it cannot.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overlay {
    /// `overlay` is in /proc/filesystems.
    pub listed: bool,
    /// The module file, when overlayfs is a module that is not loaded yet (the first
    /// overlay mount by root loads it).
    pub module: Option<PathBuf>,
    pub available: bool,
    /// Why root cannot mount it, when it cannot.
    pub problem: Option<Problem>,
    /// Why an unprivileged user cannot (in a user namespace: Linux 5.11 or later).
    pub rootless_problem: Option<Problem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub container: Detection,
    pub wsl: Detection,
    pub vm: Detection,
    /// PID 1's command name, when readable.
    pub pid1: Option<String>,
}

/// One "am I inside X" question: the answer, what X is, and what it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub detected: bool,
    pub kind: Option<String>,
    pub evidence: Vec<String>,
}

impl Detection {
    fn add(&mut self, kind: Option<&str>, evidence: String) {
        self.detected = true;
        if self.kind.is_none() {
            self.kind = kind.map(str::to_string);
        }
        self.evidence.push(evidence);
    }
}

/// The verdict for one lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Runs for an unprivileged user (and as root).
    Rootless,
    /// Runs as root only.
    Root,
    /// Runs neither way here.
    Blocked,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Rootless => "runs rootless",
            Verdict::Root => "runs as root",
            Verdict::Blocked => "blocked",
        }
    }

    /// The privilege `lesson` needs on the machine this verdict is for, as `nsx lessons`
    /// shows it: "rootless" when an unprivileged user can run it, "root" when only root
    /// can. Blocked both ways, the machine cannot say: what the lesson itself declares.
    pub fn needs(self, lesson: &Lesson) -> &'static str {
        match (self, lesson.rootless) {
            (Verdict::Rootless, _) | (Verdict::Blocked, Rootless::Yes) => "rootless",
            (Verdict::Root, _) | (Verdict::Blocked, Rootless::No(_)) => "root",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LessonVerdict {
    pub id: String,
    pub title: String,
    pub verdict: Verdict,
    pub as_root: Support,
    pub rootless: Support,
}

/// `nsx doctor --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub machine: Machine,
    pub lessons: Vec<LessonVerdict>,
}

/// The whole doctor report for `machine` and the registered lessons.
pub fn report(machine: Machine) -> Report {
    let lessons = lessons::LESSONS
        .iter()
        .map(|l| verdict(&machine, l))
        .collect();
    Report { machine, lessons }
}

pub fn verdict(m: &Machine, lesson: &Lesson) -> LessonVerdict {
    let as_root = check(m, lesson, Privilege::Root);
    let rootless = check(m, lesson, Privilege::Rootless);
    let verdict = match (&as_root, &rootless) {
        (_, Support::Yes) => Verdict::Rootless,
        (Support::Yes, _) => Verdict::Root,
        _ => Verdict::Blocked,
    };
    LessonVerdict {
        id: lesson.id.to_string(),
        title: lesson.title.to_string(),
        verdict,
        as_root,
        rootless,
    }
}

/// This machine, examined once per process.
pub fn host() -> &'static Machine {
    static HOST: OnceLock<Machine> = OnceLock::new();
    HOST.get_or_init(|| examine(&SysRoot::host(), Privilege::current(), User::for_this_run()))
}

/// Whether `lesson` runs here as nsx runs now (root or not).
///
/// `nsx lesson` asks this before it starts, so it examines only what [`check`] reads for
/// this lesson ([`examine_for`]): deciding whether the pid lesson can run does not need
/// /proc/cpuinfo or the cgroup tree.
pub fn support(lesson: &Lesson) -> Support {
    let privilege = Privilege::current();
    let m = examine_for(&SysRoot::host(), privilege, User::for_this_run(), lesson);
    check(&m, lesson, privilege)
}

/// The sections of [`examine`] that [`check`] reads for `lesson` run with `privilege`;
/// the others are left empty (default). The unit tests hold the two verdicts equal for
/// every lesson, both privileges and every captured machine.
pub fn examine_for(
    sys: &SysRoot,
    privilege: Privilege,
    user: Option<User>,
    lesson: &Lesson,
) -> Machine {
    let needs = lesson.needs();
    let wants = |f: fn(&Need) -> bool| needs.iter().any(f);
    let sections = Sections {
        cgroup: wants(|n| matches!(n, Need::CgroupController(_) | Need::NestedCgroup)),
        namespaces: needs
            .iter()
            .filter_map(|n| match n {
                Need::Namespace(ty) => Some(*ty),
                _ => None,
            })
            .collect(),
        overlay: wants(|n| matches!(n, Need::Overlay)),
        // Only a run without root is refused for the user-namespace sysctls or a
        // confining container (see `obstacle`).
        rootless: privilege == Privilege::Rootless,
    };
    examine_sections(sys, privilege, user, sections)
}

/// Reads everything the doctor reports from `sys`, as nsx running with `privilege`, the
/// rootless verdicts being for `user`.
pub fn examine(sys: &SysRoot, privilege: Privilege, user: Option<User>) -> Machine {
    let all = Sections {
        cgroup: true,
        namespaces: NS_TYPES.to_vec(),
        overlay: true,
        rootless: true,
    };
    examine_sections(sys, privilege, user, all)
}

/// Which sections of a [`Machine`] to read (the kernel and nsx's own process always are).
struct Sections {
    cgroup: bool,
    /// The namespace types to look at.
    namespaces: Vec<&'static str>,
    overlay: bool,
    /// The user-namespace sysctls and the environment (container, WSL, VM).
    rootless: bool,
}

fn examine_sections(
    sys: &SysRoot,
    privilege: Privilege,
    user: Option<User>,
    s: Sections,
) -> Machine {
    let release = sys
        .read_line("/proc/sys/kernel/osrelease")
        .unwrap_or_default();
    let kernel = Kernel {
        version: parse_kernel_version(&release),
        release,
    };
    let nsx = nsx_process(sys);
    let cgroup = if s.cgroup {
        cgroups(sys, user)
    } else {
        Cgroups::default()
    };
    let namespaces = namespaces_of(sys, &kernel, &s.namespaces);
    let overlay = if s.overlay {
        overlay(sys, &kernel)
    } else {
        Overlay::default()
    };
    let (user_namespaces, environment) = if s.rootless {
        (user_namespaces(sys), environment(sys, &kernel, &nsx))
    } else {
        (UserNamespaces::default(), Environment::default())
    };
    Machine {
        kernel,
        privilege,
        user,
        nsx,
        cgroup,
        user_namespaces,
        namespaces,
        overlay,
        environment,
    }
}

fn nsx_process(sys: &SysRoot) -> NsxProcess {
    // Status and the id maps are all it uses.
    match observe::read_proc_with(&sys.path("/proc/self"), observe::Parts::ID_MAPS) {
        Ok(p) => {
            let uid_map = p.uid_map().to_vec();
            NsxProcess {
                uid: p.uid,
                cap_sys_admin: caps::has(p.extra.cap_eff, caps::SYS_ADMIN),
                // Kernels older than 2.6.26 have no CapBnd: everything was bounded in.
                cap_sys_admin_bounding: p
                    .extra
                    .cap_bnd
                    .is_none_or(|b| caps::has(b, caps::SYS_ADMIN)),
                seccomp: p.extra.seccomp.map(seccomp_mode),
                in_user_namespace: !uid_map.is_empty() && uid_map != ["0 0 4294967295"],
                uid_map,
            }
        }
        // Without its own status the doctor can say nothing of capabilities: assume the
        // usual (full root) and let the other checks speak.
        Err(_) => NsxProcess {
            uid: 0,
            cap_sys_admin: true,
            cap_sys_admin_bounding: true,
            seccomp: None,
            uid_map: Vec::new(),
            in_user_namespace: false,
        },
    }
}

// ---------------------------------------------------------------------------------------
// cgroups

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Controllers cgroup v2 lists in cgroup.controllers (cgroup-v2.rst, "Controllers"); the
/// others of /proc/cgroups exist only on v1 (their v2 equivalents: io for blkio, cpu.stat
/// for cpuacct, BPF for devices, cgroup.freeze for freezer) or, like perf_event, are
/// always on in v2.
const V2_CONTROLLERS: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// `/proc/cgroups`: `subsys_name hierarchy num_cgroups enabled` per controller, after a
/// header line. Returns (name, enabled).
pub fn parse_proc_cgroups(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [name, _, _, enabled] => Some((name.to_string(), enabled == "1")),
                _ => None,
            }
        })
        .collect()
}

/// Mount points of cgroup file systems mounted read-only (field 6 of mountinfo, the
/// per-mount options, holds `ro`): in a container, root cannot create cgroups there.
pub fn read_only_cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let pre: Vec<&str> = pre.split(' ').collect();
            let (point, opts) = (pre.get(4)?, pre.get(5)?);
            opts.split(',')
                .any(|o| o == "ro")
                .then(|| PathBuf::from(point))
        })
        .collect()
}

fn cgroups(sys: &SysRoot, user: Option<User>) -> Cgroups {
    let root = PathBuf::from(CGROUP_ROOT);
    let mountinfo = sys.read("/proc/self/mountinfo").unwrap_or_default();
    let own = sys.read("/proc/self/cgroup").unwrap_or_default();
    let layout = match Layout::from_mount_table(&root, &mountinfo, &own) {
        Ok(l) => l,
        Err(e) => {
            let problem = match e {
                crate::Error::Unsupported { reason, fix } => Problem::new(reason, fix),
                other => Problem::new(
                    other.to_string(),
                    "check that /proc is mounted and readable (nsx reads /proc/self/mountinfo and /proc/self/cgroup)",
                ),
            };
            return Cgroups {
                mode: None,
                root,
                problem: Some(problem),
                controllers: Vec::new(),
                delegation: None,
                nested_as_root: None,
                nested_rootless: None,
                switches_on: Vec::new(),
                already_on: Vec::new(),
            };
        }
    };
    let read_only = read_only_cgroup_mounts(&mountinfo);
    let nested = |rootless| {
        crate::lessons::cgroupns::obstacle(&layout, &read_only, rootless)
            .map(|(reason, fix)| Problem::new(reason, fix))
    };
    let (nested_as_root, nested_rootless) = (nested(false), nested(true));
    let kernel: Vec<(String, bool)> = sys
        .read("/proc/cgroups")
        .map(|t| parse_proc_cgroups(&t))
        .unwrap_or_default();
    let v2 = v2_state(sys, &layout, user);

    // On a v2 machine the v1-only names of /proc/cgroups (blkio, cpuacct, devices,
    // freezer, net_cls, ...) are not controllers one could mount: leave them out.
    let mut names: Vec<String> = kernel
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| layout.mode != Mode::V2 || V2_CONTROLLERS.contains(&n.as_str()))
        .collect();
    for m in layout.mounts.iter().filter(|m| !m.v2) {
        names.extend(
            m.controllers
                .iter()
                .filter(|c| !c.starts_with("name="))
                .cloned(),
        );
    }
    if let Some(v2) = &v2 {
        names.extend(v2.controllers.iter().cloned());
    }
    names.sort();
    names.dedup();

    let (switches_on, already_on) = v2_switches(sys, v2.as_ref());
    let controllers = names
        .iter()
        .map(|name| {
            let kernel_enabled = kernel.iter().find(|(n, _)| n == name).map(|(_, e)| *e);
            controller_state(
                sys,
                &layout,
                v2.as_ref(),
                &read_only,
                user,
                name,
                kernel_enabled,
            )
        })
        .collect();
    Cgroups {
        mode: Some(layout.mode),
        root,
        problem: None,
        controllers,
        delegation: v2.as_ref().and_then(|v| v.delegation.clone()),
        nested_as_root,
        nested_rootless,
        switches_on,
        already_on,
    }
}

/// What the v2 backend would write on its way from the first cgroup that passes each
/// lesson controller on down to `<base>` (cgroup::v2, enable_down_to_base): the files
/// and the controllers each would gain, and the controllers already on all the way.
fn v2_switches(sys: &SysRoot, v2: Option<&V2State>) -> (Vec<SwitchOn>, Vec<String>) {
    let Some((v, d)) = v2.and_then(|v| v.delegation.as_ref().map(|d| (v, d))) else {
        return (Vec::new(), Vec::new());
    };
    let mut chain = vec![v.mount.clone()];
    let base = if d.into_own { &d.own } else { &d.base };
    if let Ok(rel) = base.strip_prefix(&v.mount) {
        let mut p = v.mount.clone();
        for c in rel.components() {
            p.push(c);
            chain.push(p.clone());
        }
    }
    let mut switches: Vec<SwitchOn> = Vec::new();
    let mut already = Vec::new();
    for name in ["memory", "cpu", "pids"] {
        if !v.controllers.iter().any(|c| c == name) {
            continue;
        }
        let on = |dir: &Path| {
            words(
                &sys.read(dir.join("cgroup.subtree_control"))
                    .unwrap_or_default(),
            )
            .iter()
            .any(|w| w == name)
        };
        let missing: Vec<&PathBuf> = chain.iter().filter(|d| !on(d)).collect();
        if missing.is_empty() {
            already.push(name.to_string());
        }
        for dir in missing {
            let file = dir.join("cgroup.subtree_control");
            match switches.iter_mut().find(|s| s.file == file) {
                Some(s) => s.controllers.push(name.to_string()),
                None => switches.push(SwitchOn {
                    file,
                    controllers: vec![name.to_string()],
                }),
            }
        }
    }
    switches.sort_by(|a, b| a.file.cmp(&b.file));
    (switches, already)
}

/// What the unified hierarchy offers: its controllers, and nsx's place in it.
struct V2State {
    mount: PathBuf,
    /// The hierarchy root's cgroup.controllers.
    controllers: Vec<String>,
    /// nsx's own cgroup and `<base>`, its parent (v2 mode only: in hybrid mode the lesson
    /// cgroups are v1).
    delegation: Option<Delegation>,
    read_only: bool,
}

fn v2_state(sys: &SysRoot, layout: &Layout, user: Option<User>) -> Option<V2State> {
    let (own, mount) = layout.v2_own_dir().ok()?;
    let controllers = words(
        &sys.read(mount.join("cgroup.controllers"))
            .unwrap_or_default(),
    );
    let delegation = (layout.mode == Mode::V2).then(|| {
        let base = v2_base(&own, &mount);
        let subtree = base.join(crate::cgroup::v2::SUBTREE);
        // The same test as the v2 backend: create in <base> (or in an existing nsx/), and
        // move the probe, which needs <base>/cgroup.procs (Delegation Containment).
        let can_create = sys.writable_by(&base, user)
            || (sys.exists(&subtree) && sys.writable_by(&subtree, user));
        let can_move = sys.writable_by(base.join("cgroup.procs"), user);
        // The same decision as the backend's delegate_into_own, for this user.
        let own_delegated = own != mount
            && user.is_some()
            && ["", "cgroup.procs", "cgroup.subtree_control"]
                .iter()
                .all(|f| sys.writable_by(own.join(f), user));
        let into_own = !(can_create && can_move) && own_delegated;
        Delegation {
            owner: sys.owner(&base).map(|o| o.uid),
            own_owner: sys.owner(&own).map(|o| o.uid),
            own: own.clone(),
            base,
            writable: (can_create && can_move) || into_own,
            into_own,
        }
    });
    let read_only = read_only_mount_of(&mount, &read_only_cgroup_mounts_of(sys));
    Some(V2State {
        mount,
        controllers,
        delegation,
        read_only,
    })
}

fn read_only_cgroup_mounts_of(sys: &SysRoot) -> Vec<PathBuf> {
    read_only_cgroup_mounts(&sys.read("/proc/self/mountinfo").unwrap_or_default())
}

fn read_only_mount_of(mount: &Path, read_only: &[PathBuf]) -> bool {
    read_only.iter().any(|r| r == mount)
}

/// nsx's own PID as the machine's /proc/self/status gives it.
fn nsx_pid(sys: &SysRoot) -> Option<String> {
    sys.read("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Pid:").map(|p| p.trim().to_string()))
}

/// The parent of nsx's own cgroup, or the root when nsx is in the root (cgroup::v2).
fn v2_base(own: &Path, mount: &Path) -> PathBuf {
    if own == mount {
        own.to_path_buf()
    } else {
        own.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| mount.to_path_buf())
    }
}

fn user_label(user: Option<User>) -> String {
    match user {
        Some(u) => format!("uid {}", u.uid),
        None => "an unprivileged user".to_string(),
    }
}

fn owner_label(sys: &SysRoot, p: &Path) -> String {
    match sys.owner(p) {
        Some(o) if o.uid == 0 => "belongs to root".to_string(),
        Some(o) => format!("belongs to uid {}", o.uid),
        None => "does not exist".to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn controller_state(
    sys: &SysRoot,
    layout: &Layout,
    v2: Option<&V2State>,
    read_only: &[PathBuf],
    user: Option<User>,
    name: &str,
    kernel_enabled: Option<bool>,
) -> ControllerState {
    let v1_mount = layout
        .mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == name));
    let on_v2 = v2.filter(|v| v.controllers.iter().any(|c| c == name));
    let mut s = ControllerState {
        name: name.to_string(),
        hierarchy: None,
        mount: None,
        kernel_enabled,
        available: false,
        unavailable: None,
        delegated: false,
        not_delegated: None,
        only_root_can_delegate: false,
        shared_with: None,
        dir: None,
    };
    // The backend nsx uses: v1 on v1 and hybrid machines, v2 on unified ones.
    let uses_v1 = matches!(layout.mode, Mode::V1 | Mode::Hybrid);
    match (v1_mount, on_v2) {
        (Some(m), _) if uses_v1 || on_v2.is_none() => {
            s.hierarchy = Some(Version::V1);
            s.mount = Some(m.mount_point.clone());
        }
        (_, Some(v)) => {
            s.hierarchy = Some(Version::V2);
            s.mount = Some(v.mount.clone());
        }
        _ => {}
    }
    match (s.hierarchy, uses_v1) {
        (None, _) => {
            s.unavailable = Some(match kernel_enabled {
                Some(false) => Problem::new(
                    format!("the kernel has the {name} controller switched off (/proc/cgroups: enabled 0)"),
                    format!("boot without cgroup_disable={name} on the kernel command line"),
                ),
                _ if uses_v1 => Problem::new(
                    format!("the {name} controller is not mounted on any cgroup hierarchy"),
                    format!("mount it (as root): mkdir -p /sys/fs/cgroup/{name} && mount -t cgroup -o {name} cgroup /sys/fs/cgroup/{name}"),
                ),
                _ => Problem::new(
                    format!("the {name} controller is not on the unified (v2) hierarchy"),
                    "boot with every controller on cgroup v2 (systemd.unified_cgroup_hierarchy=1, or cgroup_no_v1=all) and without cgroup_disable= for it",
                ),
            });
        }
        (Some(Version::V2), true) => {
            s.unavailable = Some(Problem::new(
                format!(
                    "the {name} controller is bound to the unified (v2) hierarchy, and nsx uses the v1 hierarchies on this {} machine",
                    layout.mode
                ),
                format!("boot with {name} on cgroup v1 (without cgroup_no_v1={name}), or with every controller on v2 (systemd.unified_cgroup_hierarchy=1)"),
            ));
        }
        (Some(Version::V1), false) => {
            s.unavailable = Some(Problem::new(
                format!("the {name} controller is bound to a cgroup v1 hierarchy, and nsx uses cgroup v2 on this machine"),
                format!("boot with {name} on the unified hierarchy (cgroup_no_v1={name}, or cgroup_no_v1=all)"),
            ));
        }
        (Some(Version::V1), true) => {
            let mount = s.mount.clone().unwrap_or_default();
            let own = layout.v1_own_dir(name).ok().flatten();
            s.dir = own.clone();
            if read_only_mount_of(&mount, read_only) {
                s.unavailable = Some(read_only_problem(&mount));
            } else if own.is_none() {
                s.unavailable = Some(Problem::new(
                    format!("nsx's own {name} cgroup is not visible under {}", mount.display()),
                    "run nsx where its own cgroup is visible: on the host, or in a container with its own cgroup namespace (--cgroupns=private)",
                ));
            } else {
                s.available = true;
            }
        }
        (Some(Version::V2), false) => {
            let v = on_v2.expect("the hierarchy is v2 only when the controller is on it");
            let delegation = v.delegation.as_ref();
            s.dir = delegation.map(|d| d.base.clone());
            if v.read_only {
                s.unavailable = Some(read_only_problem(&v.mount));
            } else if let Some(d) = delegation {
                match v2_enable_path(sys, &v.mount, &d.base, name, None, None) {
                    Ok(()) => s.available = true,
                    Err(p) => s.unavailable = Some(p),
                }
            }
        }
    }
    // Without root: where nsx would create the lesson cgroup must belong to the user.
    if !s.available {
        s.not_delegated = s.unavailable.as_ref().map(|p| p.reason.clone());
    } else if s.hierarchy == Some(Version::V1) {
        let dir = s.dir.clone().unwrap_or_default();
        if sys.writable_by(&dir, user) {
            s.delegated = true;
        } else {
            s.not_delegated = Some(format!(
                "on cgroup v1 nsx creates lesson cgroups under its own {name} cgroup, {}, which {} (not {})",
                dir.display(),
                owner_label(sys, &dir),
                user_label(user)
            ));
        }
    } else if let Some(d) = v2.and_then(|v| v.delegation.as_ref()) {
        if !d.writable {
            // A delegated scope of the user's own (systemd-run --user --scope) gets only
            // what the user's slice is given: with the controller missing there, root
            // alone can help.
            s.only_root_can_delegate = !user_slice_has(sys, &d.base, user, name);
            s.not_delegated = Some(format!(
                "without root, nsx needs a delegated cgroup v2 subtree: {} {} (not {}); nsx runs in {} and keeps lesson cgroups next to it",
                d.base.display(),
                owner_label(sys, &d.base),
                user_label(user),
                d.own.display()
            ));
        } else {
            let mount = s.mount.clone().unwrap_or_default();
            // In a cgroup delegated to the user, lesson cgroups go under nsx's own, which
            // nsx leaves for a leaf of it: nsx itself is no internal process there.
            let (base, nsx) = if d.into_own {
                (&d.own, nsx_pid(sys))
            } else {
                (&d.base, None)
            };
            match v2_enable_path(sys, &mount, base, name, Some(user), nsx.as_deref()) {
                Ok(()) => s.delegated = true,
                Err(p) if p.fix.contains("/shell ") => {
                    s.shared_with = Some(base.clone());
                    s.not_delegated = Some(p.reason);
                }
                Err(p) => {
                    s.only_root_can_delegate = true;
                    s.not_delegated = Some(p.reason);
                }
            }
        }
    }
    s
}

/// Whether the cgroup systemd gives `user`'s sessions (the nearest `user-<uid>.slice`
/// above `below`, or `below` itself) has `controller` in its cgroup.controllers: what a
/// scope the user starts could be handed at most.
fn user_slice_has(sys: &SysRoot, below: &Path, user: Option<User>, controller: &str) -> bool {
    let slice = user.and_then(|u| {
        let name = format!("user-{}.slice", u.uid);
        below
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == name.as_str()))
            .map(Path::to_path_buf)
    });
    let dir = slice.unwrap_or_else(|| below.to_path_buf());
    words(&sys.read(dir.join("cgroup.controllers")).unwrap_or_default())
        .iter()
        .any(|w| w == controller)
}

/// The fix when only root can hand `controller` on: run as root, or have root delegate
/// it to user sessions for good (systemd.resource-control(5), Delegate=).
pub fn root_delegation_fix(cmd: &str, controllers: &str) -> String {
    format!(
        "sudo {cmd}; or, for every later session, have root delegate it: sudo systemctl edit user@.service (add [Service] and Delegate={controllers}), then log in again"
    )
}

fn read_only_problem(mount: &Path) -> Problem {
    Problem::new(
        format!(
            "the cgroup file system at {} is mounted read-only (as in a container)",
            mount.display()
        ),
        crate::cgroup::READ_ONLY_FIX,
    )
}

/// Whether `controller` can be handed down to `<base>`'s children, the way the v2
/// backend does it: walking up from `<base>` to the first cgroup that already passes it
/// on, every cgroup.subtree_control on the way must be writable (by root always; by
/// `as_user` when given) and its cgroup hold no processes (the "no internal processes"
/// rule, from which only the root is exempt).
fn v2_enable_path(
    sys: &SysRoot,
    mount: &Path,
    base: &Path,
    controller: &str,
    as_user: Option<Option<User>>,
    nsx: Option<&str>,
) -> Result<(), Problem> {
    let mut chain = vec![mount.to_path_buf()];
    if let Ok(rel) = base.strip_prefix(mount) {
        let mut p = mount.to_path_buf();
        for c in rel.components() {
            p.push(c);
            chain.push(p.clone());
        }
    }
    let has = |dir: &Path, file: &str| {
        words(&sys.read(dir.join(file)).unwrap_or_default())
            .iter()
            .any(|w| w == controller)
    };
    let mut to_enable = Vec::new();
    for (i, dir) in chain.iter().enumerate().rev() {
        if has(dir, "cgroup.subtree_control") {
            break;
        }
        to_enable.push(dir.clone());
        if has(dir, "cgroup.controllers") {
            break;
        }
        if i == 0 {
            return Err(Problem::new(
                format!(
                    "the {controller} controller is not in {}/cgroup.controllers: it is bound to a cgroup v1 hierarchy or switched off",
                    mount.display()
                ),
                "boot with the controller on cgroup v2 (systemd.unified_cgroup_hierarchy=1, or cgroup_no_v1=all) and without cgroup_disable= for it",
            ));
        }
    }
    for dir in to_enable.iter().rev() {
        if let Some(user) = as_user {
            let file = dir.join("cgroup.subtree_control");
            if !sys.writable_by(&file, user) {
                return Err(Problem::new(
                    format!(
                        "{} does not pass the {controller} controller on to its children, and {} cannot write its cgroup.subtree_control, which {}",
                        dir.display(),
                        user_label(user),
                        owner_label(sys, &file)
                    ),
                    root_delegation_fix("nsx ...", "cpu memory pids"),
                ));
            }
        }
        let others: Vec<String> = words(&sys.read(dir.join("cgroup.procs")).unwrap_or_default())
            .into_iter()
            .filter(|p| Some(p.as_str()) != nsx)
            .collect();
        if dir != mount && !others.is_empty() && nsx.is_some() && dir == base {
            return Err(Problem::new(
                format!(
                    "nsx runs in {}, a cgroup delegated to {}, which also holds the processes {}: cgroup v2 lets a cgroup pass controllers on to child cgroups only while it holds no process itself (\"no internal processes\"), and nsx moves only itself",
                    dir.display(),
                    user_label(as_user.flatten()),
                    others.join(" ")
                ),
                format!(
                    "move them (your shell) into a leaf first: mkdir {d}/shell && echo $$ > {d}/shell/cgroup.procs (from that shell), then run nsx again",
                    d = dir.display()
                ),
            ));
        }
        let busy = dir != mount && !others.is_empty();
        if busy {
            return Err(Problem::new(
                format!(
                    "{} holds processes, so it cannot pass the {controller} controller on to its children (cgroup v2's \"no internal processes\" rule)",
                    dir.display()
                ),
                "start nsx in a cgroup of its own, whose parent holds no processes: systemd-run --scope nsx ... (or --user --scope -p Delegate=yes without root)",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// namespaces

fn user_namespaces(sys: &SysRoot) -> UserNamespaces {
    let proc_sys = sys.path("/proc/sys");
    let mut unprivileged =
        lessons::userns_restriction_in(&proc_sys).map(|(reason, fix)| Problem::new(reason, fix));
    if unprivileged.is_none() && !sys.exists("/proc/self/ns/user") {
        unprivileged = Some(Problem::new(
            "this kernel has no user namespaces (/proc/self/ns/user is missing: built without CONFIG_USER_NS)",
            "run nsx as root, or boot a kernel built with CONFIG_USER_NS=y",
        ));
    }
    UserNamespaces {
        max_user_namespaces: sys.read_int("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: sys.read_int("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict_unprivileged_userns: sys
            .read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        unprivileged,
    }
}

/// The kernel configuration option behind each namespace type.
fn kconfig(ty: &str) -> &'static str {
    match ty {
        "cgroup" => "CONFIG_CGROUPS",
        "ipc" => "CONFIG_IPC_NS",
        "net" => "CONFIG_NET_NS",
        "pid" => "CONFIG_PID_NS",
        "time" => "CONFIG_TIME_NS",
        "user" => "CONFIG_USER_NS",
        "uts" => "CONFIG_UTS_NS",
        _ => "CONFIG_NAMESPACES",
    }
}

/// The namespace types in `types` (names of [`NS_TYPES`]).
fn namespaces_of(sys: &SysRoot, kernel: &Kernel, types: &[&str]) -> Vec<NamespaceType> {
    types
        .iter()
        .map(|ty| {
            let present = sys.exists(format!("/proc/self/ns/{ty}"));
            let max = sys.read_int(format!("/proc/sys/user/max_{ty}_namespaces"));
            let too_old = *ty == "time" && kernel.at_least(5, 6) == Some(false);
            let problem = if too_old {
                Some(Problem::new(
                    format!(
                        "time namespaces need Linux 5.6 or later; this kernel is {}",
                        kernel.release
                    ),
                    "boot a kernel of version 5.6 or later (built with CONFIG_TIME_NS=y)",
                ))
            } else if !present {
                Some(Problem::new(
                    format!(
                        "this kernel has no {ty} namespaces (/proc/self/ns/{ty} is missing: built without {})",
                        kconfig(ty)
                    ),
                    format!("boot a kernel built with {}=y", kconfig(ty)),
                ))
            } else if max == Some(0) {
                Some(Problem::new(
                    format!("user.max_{ty}_namespaces is 0, so no {ty} namespace can be created, not even by root"),
                    format!("sudo sysctl -w user.max_{ty}_namespaces=15000"),
                ))
            } else {
                None
            };
            NamespaceType {
                name: ty.to_string(),
                present,
                max,
                problem,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// overlayfs

fn overlay(sys: &SysRoot, kernel: &Kernel) -> Overlay {
    // /proc/filesystems: one file system per line, "nodev" first for virtual ones.
    let listed = sys.read("/proc/filesystems").is_some_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    let dir = PathBuf::from(format!(
        "/lib/modules/{}/kernel/fs/overlayfs",
        kernel.release
    ));
    let module = if listed || kernel.release.is_empty() {
        None
    } else {
        sys.list(&dir)
            .into_iter()
            .find(|f| f.starts_with("overlay.ko"))
            .map(|f| dir.join(f))
    };
    let available = listed || module.is_some();
    let problem = (!available).then(|| {
        Problem::new(
            "this kernel has no overlay file system (overlay is not in /proc/filesystems, and there is no overlay module to load)",
            "boot a kernel built with CONFIG_OVERLAY_FS, or install its modules package (modprobe overlay)",
        )
    });
    let rootless_problem = if !available {
        problem.clone()
    } else if kernel.at_least(5, 11) == Some(false) {
        Some(Problem::new(
            format!(
                "unprivileged overlay mounts (in a user namespace) need Linux 5.11 or later; this kernel is {}",
                kernel.release
            ),
            "run it as root (sudo nsx lesson rootfs), or boot a kernel of version 5.11 or later",
        ))
    } else {
        None
    };
    Overlay {
        listed,
        module,
        available,
        problem,
        rootless_problem,
    }
}

// ---------------------------------------------------------------------------------------
// where nsx runs

/// Container managers' cgroup path components (`/docker/<id>`, `/kubepods/...`).
const CONTAINER_CGROUPS: &[(&str, &str)] = &[
    ("kubepods", "Kubernetes"),
    ("docker", "Docker"),
    ("libpod", "Podman"),
    ("lxc", "LXC"),
    ("containerd", "containerd"),
    ("crio", "CRI-O"),
    ("machine.slice", "systemd-nspawn"),
];

/// Programs that run as PID 1 of containers, not of machines.
const CONTAINER_INITS: &[&str] = &[
    "tini",
    "docker-init",
    "dumb-init",
    "catatonit",
    "pause",
    "conmon",
];

/// DMI vendor or product substrings (lowercase) that name a hypervisor.
const HYPERVISORS: &[(&str, &str)] = &[
    ("qemu", "QEMU"),
    ("kvm", "KVM"),
    ("vmware", "VMware"),
    ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"),
    ("firecracker", "Firecracker"),
    ("xen", "Xen"),
    ("bochs", "Bochs"),
    ("parallels", "Parallels"),
    ("bhyve", "bhyve"),
    ("amazon ec2", "Amazon EC2"),
    ("google compute engine", "Google Compute Engine"),
    ("cloud hypervisor", "Cloud Hypervisor"),
];

/// Whether /proc/cpuinfo's `flags` include `hypervisor` (the CPUID bit a hypervisor sets).
pub fn cpuinfo_has_hypervisor_flag(cpuinfo: &str) -> bool {
    cpuinfo.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim() == "flags" && v.split_whitespace().any(|f| f == "hypervisor")
        })
    })
}

fn environment(sys: &SysRoot, kernel: &Kernel, nsx: &NsxProcess) -> Environment {
    let mut container = Detection::default();
    if sys.exists("/.dockerenv") {
        container.add(Some("Docker"), "/.dockerenv exists".into());
    }
    if sys.exists("/run/.containerenv") {
        container.add(Some("Podman"), "/run/.containerenv exists".into());
    }
    if let Some(c) = &sys.container_env {
        container.add(
            Some(c.as_str()),
            format!("the environment variable container={c}"),
        );
    }
    let own_cgroups = sys.read("/proc/self/cgroup").unwrap_or_default();
    'lines: for line in own_cgroups.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for part in path.split('/') {
            for (needle, kind) in CONTAINER_CGROUPS {
                if part == *needle || part.starts_with(&format!("{needle}-")) {
                    container.add(
                        Some(kind),
                        format!("nsx's cgroup {path} names {needle} (/proc/self/cgroup)"),
                    );
                    break 'lines;
                }
            }
        }
    }
    let pid1 = sys.read_line("/proc/1/comm").filter(|c| !c.is_empty());
    if let Some(comm) = &pid1 {
        if CONTAINER_INITS.contains(&comm.as_str()) {
            container.add(
                None,
                format!("PID 1 is {comm}, a container's init (/proc/1/comm)"),
            );
        }
    }
    if nsx.in_user_namespace {
        container.add(
            None,
            format!(
                "nsx runs in a user namespace (/proc/self/uid_map: {})",
                nsx.uid_map.join(", ")
            ),
        );
    }

    let mut wsl = Detection::default();
    let lower = kernel.release.to_lowercase();
    if lower.contains("microsoft") || lower.contains("wsl") {
        let kind = if lower.contains("wsl2") || lower.contains("microsoft-standard") {
            "WSL 2"
        } else {
            "WSL 1"
        };
        wsl.add(
            Some(kind),
            format!(
                "the kernel release {} names Microsoft (/proc/sys/kernel/osrelease)",
                kernel.release
            ),
        );
    }
    if sys.exists("/proc/sys/fs/binfmt_misc/WSLInterop") {
        wsl.add(
            Some("WSL"),
            "/proc/sys/fs/binfmt_misc/WSLInterop exists".into(),
        );
    }

    let mut vm = Detection::default();
    let vendor = sys
        .read_line("/sys/class/dmi/id/sys_vendor")
        .unwrap_or_default();
    let product = sys
        .read_line("/sys/class/dmi/id/product_name")
        .unwrap_or_default();
    let dmi = format!("{vendor} {product}").to_lowercase();
    let hyper_v = vendor.to_lowercase().contains("microsoft") && dmi.contains("virtual machine");
    let found = if hyper_v {
        Some("Microsoft Hyper-V")
    } else {
        HYPERVISORS
            .iter()
            .find(|(needle, _)| dmi.contains(needle))
            .map(|(_, kind)| *kind)
    };
    if let Some(kind) = found {
        vm.add(
            Some(kind),
            format!("DMI says {vendor} / {product} (/sys/class/dmi/id)"),
        );
    }
    if let Some(t) = sys
        .read_line("/sys/hypervisor/type")
        .filter(|t| !t.is_empty())
    {
        vm.add(Some(&t), format!("/sys/hypervisor/type is {t}"));
    }
    if sys
        .read("/proc/cpuinfo")
        .is_some_and(|c| cpuinfo_has_hypervisor_flag(&c))
    {
        vm.add(
            None,
            "the CPU has the hypervisor flag (/proc/cpuinfo)".into(),
        );
    }
    Environment {
        container,
        wsl,
        vm,
        pid1,
    }
}

// ---------------------------------------------------------------------------------------
// the verdicts

/// Whether `lesson` runs on `m` as root or as an unprivileged user, and if not why and
/// how to fix it. The first obstacle found is reported.
pub fn check(m: &Machine, lesson: &Lesson, privilege: Privilege) -> Support {
    match obstacle(m, lesson, privilege) {
        Some(p) => p.support(),
        None => Support::Yes,
    }
}

fn obstacle(m: &Machine, lesson: &Lesson, privilege: Privilege) -> Option<Problem> {
    let cmd = format!("nsx lesson {}", lesson.id);
    let rootless = privilege == Privilege::Rootless;
    if rootless {
        if let Rootless::No(why) = lesson.rootless {
            return Some(Problem::new(
                format!("needs root: {why}"),
                format!("sudo {cmd}"),
            ));
        }
        // Without root the sandbox always adds a user namespace.
        if let Some(p) = &m.user_namespaces.unprivileged {
            return Some(p.clone());
        }
        if let Some(p) = confined_container(m) {
            return Some(p);
        }
    } else {
        // Running as root now: nsx's own effective set counts. Otherwise, root started
        // from here (sudo) gets at most the bounding set.
        let cap = if m.privilege == Privilege::Root {
            m.nsx.cap_sys_admin
        } else {
            m.nsx.cap_sys_admin_bounding
        };
        if !cap {
            return Some(Problem::new(
                "root here has no CAP_SYS_ADMIN (a container started without --privileged drops it), so it cannot create namespaces or mount",
                "run nsx on the host or in a VM, or in a container with CAP_SYS_ADMIN (docker run --privileged)",
            ));
        }
    }
    lesson
        .needs()
        .iter()
        .find_map(|need| need_obstacle(m, &cmd, *need, rootless))
}

/// Whether `nsx run` can give its command cgroups with `controllers` (memory, cpu,
/// pids) here, as nsx runs now: the same decision and the same fixes as for the limit
/// lessons, for the command `nsx run`.
pub fn run_limits_support(controllers: &[&'static str]) -> Support {
    let privilege = Privilege::current();
    let sections = Sections {
        cgroup: true,
        namespaces: Vec::new(),
        overlay: false,
        rootless: false,
    };
    let m = examine_sections(&SysRoot::host(), privilege, User::for_this_run(), sections);
    run_limits_check(&m, controllers, privilege)
}

/// [`run_limits_support`] on the machine `m`, for `privilege`.
pub fn run_limits_check(
    m: &Machine,
    controllers: &[&'static str],
    privilege: Privilege,
) -> Support {
    let rootless = privilege == Privilege::Rootless;
    match controllers
        .iter()
        .find_map(|c| need_obstacle(m, "nsx run ...", Need::CgroupController(c), rootless))
    {
        Some(p) => p.support(),
        None => Support::Yes,
    }
}

/// `Delegate=` for the three controllers the lessons use, and `c`.
fn delegate_list(c: &str) -> String {
    let mut list = vec!["cpu", "memory", "pids"];
    if !list.contains(&c) {
        list.push(c);
    }
    list.join(" ")
}

/// A container whose processes lack CAP_SYS_ADMIN even in the bounding set and run under
/// a seccomp filter: the default profiles of Docker and Podman then refuse unshare(2) and
/// clone(2) with namespace flags, user namespaces included.
fn confined_container(m: &Machine) -> Option<Problem> {
    let filtered = m.nsx.seccomp.as_deref() == Some("filter");
    (m.environment.container.detected && filtered && !m.nsx.cap_sys_admin_bounding).then(|| {
        Problem::new(
            "nsx runs in a container, under a seccomp filter and without CAP_SYS_ADMIN: the default profiles of Docker and Podman refuse such processes unshare and clone with namespace flags, user namespaces included",
            "run nsx on the host or in a VM, or start the container with docker run --privileged (or --cap-add SYS_ADMIN --security-opt seccomp=unconfined)",
        )
    })
}

/// What stands in the way of `need` on `m`, the fixes naming `cmd`, the command the user
/// ran (`nsx lesson memory`, `nsx run ...`).
fn need_obstacle(m: &Machine, cmd: &str, need: Need, rootless: bool) -> Option<Problem> {
    match need {
        Need::Namespace(ty) => m
            .namespaces
            .iter()
            .find(|n| n.name == ty)
            .and_then(|n| n.problem.clone()),
        Need::Overlay => {
            if rootless {
                m.overlay.rootless_problem.clone()
            } else {
                m.overlay.problem.clone()
            }
        }
        Need::NestedCgroup => {
            if let Some(p) = &m.cgroup.problem {
                return Some(p.clone());
            }
            if rootless {
                m.cgroup.nested_rootless.clone()
            } else {
                m.cgroup.nested_as_root.clone()
            }
        }
        Need::CgroupController(c) => {
            if let Some(p) = &m.cgroup.problem {
                return Some(p.clone());
            }
            let state = m.cgroup.controllers.iter().find(|s| s.name == c);
            let Some(state) = state else {
                return Some(Problem::new(
                    format!("this kernel has no {c} controller (it is not in /proc/cgroups)"),
                    format!("boot a kernel built with the {c} controller"),
                ));
            };
            if !state.available {
                return Some(state.unavailable.clone().unwrap_or_else(|| {
                    Problem::new(
                        format!("the {c} controller cannot be used here"),
                        format!("sudo nsx doctor shows the cgroup setup; then sudo {cmd}"),
                    )
                }));
            }
            if rootless && !state.delegated {
                let why = state.not_delegated.clone().unwrap_or_default();
                let fix = match m.cgroup.mode {
                    Some(Mode::V2) if state.shared_with.is_some() => {
                        let d = state.shared_with.as_deref().unwrap_or(Path::new("")).display();
                        format!(
                            "move them (your shell) into a leaf first: mkdir {d}/shell && echo $$ > {d}/shell/cgroup.procs (from that shell), then {cmd}; or sudo {cmd}"
                        )
                    }
                    Some(Mode::V2) if state.only_root_can_delegate => {
                        root_delegation_fix(cmd, &delegate_list(c))
                    }
                    Some(Mode::V2) => format!(
                        "systemd-run --user --scope -p Delegate=yes {cmd} (a delegated scope), or sudo {cmd}"
                    ),
                    _ => format!("sudo {cmd}"),
                };
                return Some(Problem::new(why, fix));
            }
            None
        }
    }
}
