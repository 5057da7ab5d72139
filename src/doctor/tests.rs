//! The doctor on captured machines: tests/fixtures/doctor/<situation>/ (each has a
//! README saying what machine it is).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::lessons::{Lesson, Rootless};

fn fixture(name: &str) -> SysRoot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(name);
    assert!(dir.is_dir(), "missing fixture {}", dir.display());
    SysRoot::fixture(&dir).unwrap()
}

const UID_1000: Option<User> = Some(User {
    uid: 1000,
    gid: 1000,
});

const fn stand_in(id: &'static str, rootless: Rootless) -> Lesson {
    Lesson {
        id,
        title: id,
        mechanism: "",
        man: "",
        rootless,
        narrative: "",
        sees: crate::observe::Parts::NONE,
        facts: &[],
        words: &[],
        // Never run: these tests only ask what the lesson needs.
        imp: crate::lessons::pid::LESSON.imp,
    }
}

/// The whole curriculum, as these tests model it: the needs come from the real table
/// (lessons::needs); whether a lesson may run rootless is the lesson's own decision, so
/// these stand-ins make one each way for the limits (memory yes, pids no).
static CURRICULUM: [Lesson; 15] = [
    stand_in("pid", Rootless::Yes),
    stand_in("mount", Rootless::Yes),
    stand_in("uts", Rootless::Yes),
    stand_in("ipc", Rootless::Yes),
    stand_in(
        "net",
        Rootless::No("a veth pair needs CAP_NET_ADMIN on the host"),
    ),
    stand_in("user", Rootless::Yes),
    stand_in("cgroupns", Rootless::Yes),
    stand_in("time", Rootless::Yes),
    stand_in("memory", Rootless::Yes),
    stand_in("cpu", Rootless::Yes),
    stand_in("pids", Rootless::No("stand-in that needs root")),
    stand_in("rootfs", Rootless::Yes),
    stand_in("init", Rootless::Yes),
    stand_in("pod", Rootless::Yes),
    stand_in("cost", Rootless::Yes),
];

fn curriculum_report(m: Machine) -> Report {
    let lessons = CURRICULUM.iter().map(|l| verdict(&m, l)).collect();
    Report {
        machine: m,
        lessons,
    }
}

fn verdict_of(r: &Report, id: &str) -> LessonVerdict {
    r.lessons.iter().find(|l| l.id == id).unwrap().clone()
}

fn reason(s: &Support) -> String {
    match s {
        Support::Yes => String::new(),
        Support::No { reason, fix } => format!("{reason} | fix: {fix}"),
    }
}

fn controller<'a>(m: &'a Machine, name: &str) -> &'a ControllerState {
    m.cgroup
        .controllers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no controller {name}: {:#?}", m.cgroup))
}

/// The human report without colour codes, for a snapshot.
fn plain(r: &Report) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&render::human(r), "")
        .into_owned()
}

#[test]
fn cgroup_v1() {
    let m = examine(&fixture("v1"), Privilege::Root, UID_1000);
    assert_eq!(m.kernel.version, Some([5, 10, 0]));
    assert_eq!(m.cgroup.mode, Some(Mode::V1));
    let mem = controller(&m, "memory");
    assert!(mem.available && !mem.delegated, "{mem:#?}");
    assert_eq!(mem.hierarchy, Some(Version::V1));
    assert_eq!(
        mem.dir.as_deref(),
        Some(Path::new(
            "/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope"
        ))
    );
    assert!(
        controller(&m, "cpu").available,
        "cpu is co-mounted with cpuacct"
    );
    assert!(controller(&m, "rdma").unavailable.is_some(), "not mounted");
    assert!(m.cgroup.delegation.is_none(), "delegation is a v2 notion");
    assert!(!m.environment.vm.detected && !m.environment.container.detected);
    let r = curriculum_report(m);
    assert_eq!(verdict_of(&r, "pid").verdict, Verdict::Rootless);
    let memory = verdict_of(&r, "memory");
    assert_eq!(memory.verdict, Verdict::Root);
    let why = reason(&memory.rootless);
    assert!(
        why.contains("belongs to root") && why.contains("sudo nsx lesson memory"),
        "{why}"
    );
    insta::assert_snapshot!("v1", plain(&r));
}

#[test]
fn cgroup_hybrid_as_on_the_development_machines() {
    let m = examine(&fixture("hybrid"), Privilege::Root, None);
    assert_eq!(m.cgroup.mode, Some(Mode::Hybrid));
    let hugetlb = controller(&m, "hugetlb");
    assert_eq!(hugetlb.hierarchy, Some(Version::V2));
    assert!(!hugetlb.available, "hybrid: nsx uses v1");
    let mem = controller(&m, "memory");
    assert!(mem.available);
    assert_eq!(
        mem.dir.as_deref(),
        Some(Path::new(
            "/sys/fs/cgroup/memory/process_api/f6f2043bd1f97f007a9f859f2449f70e"
        ))
    );
    assert!(controller(&m, "net_cls").hierarchy.is_none());
    let env = &m.environment;
    assert_eq!(env.container.kind.as_deref(), Some("Docker"));
    assert!(env.vm.detected && env.vm.kind.is_none(), "{:?}", env.vm);
    assert_eq!(env.pid1.as_deref(), Some("process_api"));
    assert!(!env.wsl.detected, "fc is not Microsoft");
    let r = curriculum_report(m);
    for id in ["pid", "mount", "uts", "time", "pod"] {
        assert_eq!(verdict_of(&r, id).verdict, Verdict::Rootless, "{id}");
    }
    assert_eq!(verdict_of(&r, "cpu").verdict, Verdict::Root);
    insta::assert_snapshot!("hybrid", plain(&r));
}

/// `nsx lessons` says what the doctor says: on a hybrid machine the limit lessons, which
/// run rootless where a v2 subtree is delegated, need root.
#[test]
fn the_needs_column_is_the_doctors_verdict() {
    let hybrid = examine(&fixture("hybrid"), Privilege::Root, UID_1000);
    for id in ["memory", "cpu", "pids"] {
        let lesson = crate::lessons::find(id).unwrap();
        assert_eq!(
            lesson.rootless,
            Rootless::Yes,
            "{id} declares it can run rootless"
        );
        let v = verdict(&hybrid, lesson);
        assert_eq!(v.verdict, Verdict::Root, "{id}: {:?}", v.rootless);
        assert_eq!(v.verdict.needs(lesson), "root", "{id}");
    }
    let pid = crate::lessons::find("pid").unwrap();
    assert_eq!(verdict(&hybrid, pid).verdict.needs(pid), "rootless");
    // Where a v2 subtree is delegated, they do run rootless.
    let v2 = examine(&fixture("v2-delegated"), Privilege::Rootless, UID_1000);
    let memory = crate::lessons::find("memory").unwrap();
    assert_eq!(verdict(&v2, memory).verdict.needs(memory), "rootless");
}

#[test]
fn cgroup_v2_with_delegation() {
    let m = examine(&fixture("v2-delegated"), Privilege::Rootless, UID_1000);
    assert_eq!(m.cgroup.mode, Some(Mode::V2));
    let d = m.cgroup.delegation.as_ref().unwrap();
    assert!(d.writable, "{d:#?}");
    assert_eq!(d.owner, Some(1000));
    assert!(d.base.ends_with("user@1000.service/app.slice"));
    for c in ["memory", "pids", "cpu"] {
        let s = controller(&m, c);
        assert!(s.available && s.delegated, "{s:#?}");
    }
    // Not enabled in app.slice but in its cgroup.controllers, and app.slice's
    // subtree_control belongs to the user: delegated. io is the same; rdma is not
    // passed down to user.slice at all.
    assert!(!controller(&m, "rdma").delegated);
    assert!(!m.nsx.cap_sys_admin);
    let r = curriculum_report(m);
    for id in ["memory", "cpu", "pid"] {
        assert_eq!(verdict_of(&r, id).verdict, Verdict::Rootless, "{id}");
    }
    assert_eq!(
        verdict_of(&r, "pids").verdict,
        Verdict::Root,
        "the stand-in"
    );
    insta::assert_snapshot!("v2_delegated", plain(&r));
}

#[test]
fn cgroup_v2_without_delegation() {
    let m = examine(&fixture("v2-not-delegated"), Privilege::Root, UID_1000);
    let d = m.cgroup.delegation.as_ref().unwrap();
    assert!(!d.writable);
    assert_eq!(d.owner, Some(0));
    let cpu = controller(&m, "cpu");
    assert!(
        cpu.available,
        "root enables cpu down to user-1000.slice: {cpu:#?}"
    );
    assert!(!cpu.delegated);
    assert_eq!(m.environment.vm.kind.as_deref(), Some("QEMU"));
    let r = curriculum_report(m);
    let memory = verdict_of(&r, "memory");
    assert_eq!(memory.verdict, Verdict::Root);
    let why = reason(&memory.rootless);
    assert!(
        why.contains("user-1000.slice belongs to root")
            && why.contains("systemd-run --user --scope -p Delegate=yes nsx lesson memory"),
        "{why}"
    );
    insta::assert_snapshot!("v2_not_delegated", plain(&r));
}

#[test]
fn user_namespaces_disabled() {
    let m = examine(&fixture("userns-disabled"), Privilege::Root, UID_1000);
    assert_eq!(m.user_namespaces.max_user_namespaces, Some(0));
    assert!(m.user_namespaces.unprivileged.is_some());
    let r = curriculum_report(m);
    let pid = verdict_of(&r, "pid");
    assert_eq!(pid.verdict, Verdict::Root);
    assert!(reason(&pid.rootless).contains("max_user_namespaces is 0"));
    let user = verdict_of(&r, "user");
    assert_eq!(user.verdict, Verdict::Blocked, "not even root: {user:?}");
    assert!(reason(&user.as_root).contains("sysctl -w user.max_user_namespaces"));
    insta::assert_snapshot!("userns_disabled", plain(&r));
}

#[test]
fn apparmor_restriction() {
    let m = examine(&fixture("apparmor"), Privilege::Root, UID_1000);
    assert_eq!(
        m.user_namespaces.apparmor_restrict_unprivileged_userns,
        Some(1)
    );
    assert_eq!(m.environment.vm.kind.as_deref(), Some("VMware"));
    let r = curriculum_report(m);
    let uts = verdict_of(&r, "uts");
    assert_eq!(uts.verdict, Verdict::Root);
    let why = reason(&uts.rootless);
    assert!(
        why.contains("AppArmor") && why.contains("kernel.apparmor_restrict_unprivileged_userns=0"),
        "{why}"
    );
    assert_eq!(verdict_of(&r, "user").verdict, Verdict::Root);
    insta::assert_snapshot!("apparmor", plain(&r));
}

#[test]
fn kernel_without_time_namespaces() {
    let m = examine(&fixture("kernel-5.4"), Privilege::Root, UID_1000);
    assert_eq!(m.kernel.version, Some([5, 4, 0]));
    assert_eq!(m.cgroup.mode, Some(Mode::Hybrid));
    let time = m.namespaces.iter().find(|n| n.name == "time").unwrap();
    assert!(!time.present);
    assert!(time.problem.as_ref().unwrap().reason.contains("5.6"));
    assert!(m.overlay.available && m.overlay.rootless_problem.is_some());
    assert_eq!(m.environment.vm.kind.as_deref(), Some("VirtualBox"));
    let r = curriculum_report(m);
    let t = verdict_of(&r, "time");
    assert_eq!(t.verdict, Verdict::Blocked);
    assert!(reason(&t.as_root).contains("this kernel is 5.4.0-150-generic"));
    let rootfs = verdict_of(&r, "rootfs");
    assert_eq!(rootfs.verdict, Verdict::Root);
    assert!(reason(&rootfs.rootless).contains("5.11"));
    assert_eq!(verdict_of(&r, "cgroupns").verdict, Verdict::Rootless);
    insta::assert_snapshot!("kernel_5_4", plain(&r));
}

#[test]
fn inside_a_docker_container() {
    let m = examine(&fixture("docker"), Privilege::Root, None);
    assert_eq!(m.environment.container.kind.as_deref(), Some("Docker"));
    assert!(!m.nsx.cap_sys_admin && !m.nsx.cap_sys_admin_bounding);
    assert_eq!(m.nsx.seccomp.as_deref(), Some("filter"));
    let mem = controller(&m, "memory");
    assert!(
        mem.unavailable
            .as_ref()
            .unwrap()
            .reason
            .contains("read-only"),
        "{mem:#?}"
    );
    let r = curriculum_report(m);
    let pid = verdict_of(&r, "pid");
    assert_eq!(pid.verdict, Verdict::Blocked);
    assert!(reason(&pid.as_root).contains("CAP_SYS_ADMIN"), "{pid:?}");
    assert!(reason(&pid.rootless).contains("seccomp filter"), "{pid:?}");
    assert_eq!(verdict_of(&r, "memory").verdict, Verdict::Blocked);
    insta::assert_snapshot!("docker", plain(&r));
}

#[test]
fn doctor_json_has_the_sections_and_a_verdict_per_lesson() {
    let r = curriculum_report(examine(
        &fixture("v2-not-delegated"),
        Privilege::Root,
        UID_1000,
    ));
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "kernel",
        "cgroup",
        "user_namespaces",
        "namespaces",
        "overlay",
        "environment",
        "lessons",
    ] {
        assert!(!v[key].is_null(), "{key}: {v:#}");
    }
    assert_eq!(v["cgroup"]["mode"], "v2");
    assert_eq!(v["lessons"][0]["verdict"], "rootless");
    let memory = &v["lessons"][8];
    assert_eq!(memory["id"], "memory");
    assert_eq!(memory["verdict"], "root");
    assert_eq!(memory["rootless"]["status"], "no");
    assert!(memory["rootless"]["fix"]
        .as_str()
        .unwrap()
        .contains("Delegate=yes"));
}

#[test]
fn every_situation_gives_every_lesson_a_verdict_with_a_fix() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.join("README").is_file(),
            "{}: say what machine it is",
            path.display()
        );
        for privilege in [Privilege::Root, Privilege::Rootless] {
            let m = examine(&SysRoot::fixture(&path).unwrap(), privilege, UID_1000);
            for l in &CURRICULUM {
                for s in [check(&m, l, Privilege::Root), check(&m, l, privilege)] {
                    if let Support::No { reason, fix } = s {
                        assert!(!reason.is_empty() && !fix.is_empty(), "{}", l.id);
                    }
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 8, "{seen} fixtures");
}

#[test]
fn an_empty_root_is_reported_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let m = examine(
        &SysRoot::fixture(tmp.path()).unwrap(),
        Privilege::Rootless,
        None,
    );
    assert!(m.cgroup.problem.is_some());
    assert_eq!(m.kernel.version, None);
    let r = curriculum_report(m);
    assert_eq!(verdict_of(&r, "memory").verdict, Verdict::Blocked);
    assert!(plain(&r).contains("unknown (/proc/sys/kernel/osrelease is unreadable)"));
}

fn tiny_root(files: &[(&str, &str)]) -> (tempfile::TempDir, SysRoot) {
    let tmp = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = tmp.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let sys = SysRoot::fixture(tmp.path()).unwrap();
    (tmp, sys)
}

#[test]
fn wsl_is_recognised_from_the_kernel_release() {
    for (release, kind) in [
        ("5.15.153.1-microsoft-standard-WSL2\n", "WSL 2"),
        ("4.4.0-19041-Microsoft\n", "WSL 1"),
    ] {
        let (_t, sys) = tiny_root(&[("/proc/sys/kernel/osrelease", release)]);
        let m = examine(&sys, Privilege::Rootless, None);
        assert_eq!(m.environment.wsl.kind.as_deref(), Some(kind), "{release}");
    }
    let (_t, sys) = tiny_root(&[("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")]);
    assert!(
        !examine(&sys, Privilege::Rootless, None)
            .environment
            .wsl
            .detected
    );
}

#[test]
fn hypervisors_are_named_from_dmi() {
    for (vendor, product, kind) in [
        (
            "Microsoft Corporation",
            "Virtual Machine",
            "Microsoft Hyper-V",
        ),
        ("Firecracker", "Firecracker", "Firecracker"),
        ("QEMU", "Standard PC (i440FX + PIIX, 1996)", "QEMU"),
        ("Amazon EC2", "m5.large", "Amazon EC2"),
    ] {
        let (_t, sys) = tiny_root(&[
            ("/sys/class/dmi/id/sys_vendor", vendor),
            ("/sys/class/dmi/id/product_name", product),
        ]);
        let m = examine(&sys, Privilege::Rootless, None);
        assert_eq!(m.environment.vm.kind.as_deref(), Some(kind), "{vendor}");
    }
    let (_t, sys) = tiny_root(&[
        ("/sys/class/dmi/id/sys_vendor", "Microsoft Corporation"),
        ("/sys/class/dmi/id/product_name", "Surface Laptop 5"),
    ]);
    assert!(
        !examine(&sys, Privilege::Rootless, None)
            .environment
            .vm
            .detected
    );
}

#[test]
fn container_cgroup_paths_and_inits_count_as_evidence() {
    let (_t, sys) = tiny_root(&[
        (
            "/proc/self/cgroup",
            "0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-abc.scope\n",
        ),
        ("/proc/1/comm", "tini\n"),
    ]);
    let c = examine(&sys, Privilege::Root, None).environment.container;
    assert_eq!(c.kind.as_deref(), Some("Kubernetes"));
    assert_eq!(c.evidence.len(), 2, "{c:?}");
    let (_t, sys) = tiny_root(&[("/proc/self/cgroup", "0::/user.slice/dockerish\n")]);
    assert!(
        !examine(&sys, Privilege::Root, None)
            .environment
            .container
            .detected
    );
}

#[test]
fn an_overlay_module_counts_as_available() {
    let (_t, sys) = tiny_root(&[
        ("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n"),
        ("/proc/filesystems", "nodev\tproc\n\text4\n"),
        (
            "/lib/modules/6.1.0-18-amd64/kernel/fs/overlayfs/overlay.ko.xz",
            "",
        ),
    ]);
    let o = examine(&sys, Privilege::Root, None).overlay;
    assert!(o.available && !o.listed && o.module.is_some(), "{o:?}");
    let (_t, sys) = tiny_root(&[("/proc/filesystems", "nodev\tproc\n")]);
    assert!(examine(&sys, Privilege::Root, None)
        .overlay
        .problem
        .is_some());
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_kernel_version("6.18.44-fc-v657"), Some([6, 18, 44]));
    assert_eq!(parse_kernel_version("5.4.0-150-generic\n"), Some([5, 4, 0]));
    assert_eq!(parse_kernel_version("4.19"), Some([4, 19, 0]));
    assert_eq!(
        parse_kernel_version("5.15.153.1-microsoft-standard-WSL2"),
        Some([5, 15, 153])
    );
    assert_eq!(parse_kernel_version("linux"), None);
    assert_eq!(parse_kernel_version("6"), None);
    assert_eq!(parse_kernel_version(""), None);
    let k = Kernel {
        release: "5.4.0".into(),
        version: Some([5, 4, 0]),
    };
    assert_eq!(k.at_least(5, 6), Some(false));
    assert_eq!(k.at_least(5, 4), Some(true));
}

#[test]
fn ownership_decides_writability() {
    let (_t, sys) = tiny_root(&[("/a/file", ""), ("/b/file", "")]);
    let owned = Owner {
        uid: 1000,
        gid: 1000,
        mode: 0o755,
    };
    let mut table = std::collections::BTreeMap::new();
    table.insert(PathBuf::from("/a"), owned);
    let sys = sys.with_owners(table);
    assert!(sys.writable_by("/a", UID_1000));
    assert!(!sys.writable_by(
        "/a",
        Some(User {
            uid: 1001,
            gid: 1001
        })
    ));
    assert!(sys.writable_by("/a", None), "owned by an unprivileged user");
    assert!(!sys.writable_by("/b", UID_1000), "root's by default");
    assert!(!sys.writable_by("/missing", UID_1000));
}

#[test]
fn owners_files_are_checked() {
    let f = Path::new("owners");
    let t = parse_owners("# c\n/a 1000 1000 755\n\n", f).unwrap();
    assert_eq!(t[Path::new("/a")].mode, 0o755);
    for bad in [
        "a 1 1 755",
        "/a x 1 755",
        "/a 1 1 999",
        "/a 1 1",
        "/a 1 1 17777",
    ] {
        let e = parse_owners(bad, f).unwrap_err().to_string();
        assert!(
            e.contains("parse owners") && e.contains("line 1"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn proc_cgroups_and_read_only_mounts() {
    let t =
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\nmemory\t0\t1\t0\nbad line\n";
    assert_eq!(
        parse_proc_cgroups(t),
        [("cpu".to_string(), true), ("memory".to_string(), false)]
    );
    let mi = "611 610 0:28 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n\
              612 610 0:29 / /sys/fs/cgroup/x rw,nosuid - cgroup cgroup ro,memory\n\
              613 610 0:30 / /mnt ro - ext4 /dev/sda ro\n";
    assert_eq!(
        read_only_cgroup_mounts(mi),
        [PathBuf::from("/sys/fs/cgroup")],
        "per-mount options decide; super options and other file systems do not"
    );
}

#[test]
fn this_machine_agrees_with_nsx_lessons() {
    let m = host();
    for l in crate::lessons::LESSONS {
        assert_eq!(l.support(), check(m, l, m.privilege), "{}", l.id);
        let v = verdict(m, l);
        let now = if m.privilege == Privilege::Root {
            &v.as_root
        } else {
            &v.rootless
        };
        assert_eq!(&l.support(), now, "{}", l.id);
    }
}

proptest! {
    #[test]
    fn text_parsers_never_panic(text in ".{0,400}") {
        let _ = parse_kernel_version(&text);
        let _ = parse_proc_cgroups(&text);
        let _ = read_only_cgroup_mounts(&text);
        let _ = cpuinfo_has_hypervisor_flag(&text);
        if let Err(e) = parse_owners(&text, Path::new("owners")) {
            prop_assert!(e.to_string().contains("owners"));
        }
    }

    #[test]
    fn examine_survives_any_file_content(
        osrelease in ".{0,40}",
        cgroup in ".{0,200}",
        mountinfo in ".{0,300}",
        status in ".{0,300}",
        max in ".{0,12}",
    ) {
        let (_t, sys) = tiny_root(&[
            ("/proc/sys/kernel/osrelease", osrelease.as_str()),
            ("/proc/self/cgroup", cgroup.as_str()),
            ("/proc/self/mountinfo", mountinfo.as_str()),
            ("/proc/self/status", status.as_str()),
            ("/proc/sys/user/max_user_namespaces", max.as_str()),
        ]);
        let r = curriculum_report(examine(&sys, Privilege::Rootless, None));
        prop_assert_eq!(r.lessons.len(), CURRICULUM.len());
        let _ = render::human(&r);
    }
}

#[test]
fn the_lessons_partial_examination_gives_the_full_verdict() {
    let machines =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>();
    assert!(machines.len() >= 8, "{machines:?}");
    let mut refused = 0;
    for name in &machines {
        let sys = fixture(name);
        for privilege in [Privilege::Root, Privilege::Rootless] {
            let full = examine(&sys, privilege, UID_1000);
            for lesson in crate::lessons::LESSONS {
                let partial = examine_for(&sys, privilege, UID_1000, lesson);
                let verdict = check(&full, lesson, privilege);
                assert_eq!(
                    check(&partial, lesson, privilege),
                    verdict,
                    "{name}, {privilege:?}, lesson {}",
                    lesson.id
                );
                refused += usize::from(verdict != Support::Yes);
            }
        }
    }
    // The fixtures refuse lessons for many reasons: the equality is not only Yes == Yes.
    assert!(refused > 20, "only {refused} refusals");
}

/// Every fixture machine, by name.
fn machines() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    names.sort();
    names
}

/// System commands a fix may tell a user to run: each is on a Debian 12 machine
/// (procps, mount, kmod, systemd, coreutils) or names the container runtime in use.
const SYSTEM_COMMANDS: &[&str] = &[
    "sysctl",
    "mount",
    "modprobe",
    "systemctl",
    "systemd-run",
    "mkdir",
    "echo",
    "docker",
    "nsx",
];

/// Checks that every command `fix` names exists: `nsx <sub>` is a subcommand of nsx
/// (`nsx lesson <id>` a lesson), `sudo <cmd>` a known system command; and that it names
/// at least one command or a boot parameter to change.
fn assert_real_commands(fix: &str, context: &str) {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let subcommands: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let words: Vec<&str> = fix
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | ':'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut named = false;
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        if *w == "nsx" && !next.is_empty() && !next.starts_with('-') && next != "..." {
            if [
                "on", "in", "as", "runs", "then", "creates", "itself", "needs",
            ]
            .contains(&next)
            {
                continue; // prose: "run nsx on the host"
            }
            assert!(
                subcommands.iter().any(|s| s == next),
                "{context}: `nsx {next}` is no nsx subcommand: {fix}"
            );
            if next == "lesson" {
                let id = words.get(i + 2).copied().unwrap_or("");
                assert!(
                    crate::lessons::find(id).is_some(),
                    "{context}: `nsx lesson {id}` is no lesson: {fix}"
                );
            }
            named = true;
        }
        if *w == "sudo" {
            assert!(
                SYSTEM_COMMANDS.contains(&next),
                "{context}: `sudo {next}`: not a command this test knows: {fix}"
            );
            named = true;
        }
        if SYSTEM_COMMANDS.contains(w) || w.starts_with("cgroup_") || w.contains('=') {
            named = true;
        }
    }
    assert!(named, "{context}: the fix names no command: {fix}");
}

#[test]
fn every_fix_names_real_commands_on_every_machine() {
    let mut fixes = 0;
    for name in machines() {
        let sys = fixture(&name);
        for privilege in [Privilege::Root, Privilege::Rootless] {
            let m = examine(&sys, privilege, UID_1000);
            let mut supports: Vec<(String, Support)> = crate::lessons::LESSONS
                .iter()
                .chain(CURRICULUM.iter())
                .map(|l| (l.id.to_string(), check(&m, l, privilege)))
                .collect();
            for c in ["memory", "cpu", "pids"] {
                supports.push((format!("run --{c}"), run_limits_check(&m, &[c], privilege)));
            }
            for (what, s) in supports {
                if let Support::No { reason, fix } = s {
                    assert!(!reason.is_empty(), "{name} {what}");
                    assert_real_commands(&fix, &format!("{name}, {privilege:?}, {what}"));
                    fixes += 1;
                }
            }
        }
    }
    assert!(fixes > 50, "only {fixes} fixes checked");
}

#[test]
fn the_fix_checker_catches_commands_that_do_not_exist() {
    let caught = |fix: &str| std::panic::catch_unwind(|| assert_real_commands(fix, "t")).is_err();
    assert!(caught("run nsx lesson run as root"), "no lesson called run");
    assert!(caught("sudo nsx frobnicate"));
    assert!(caught("sudo frobnicate --now"));
    assert!(caught("think about it"));
    assert!(!caught("sudo nsx lesson memory"));
    assert!(!caught("sudo nsx run ... ; or run without --memory"));
    assert!(!caught(
        "boot without cgroup_disable=memory on the kernel command line"
    ));
}

fn fix_of(s: &Support) -> String {
    match s {
        Support::Yes => panic!("supported"),
        Support::No { fix, .. } => fix.clone(),
    }
}

#[test]
fn the_fixes_address_the_cause_found() {
    // Memory disabled at boot: only the boot parameter helps; enabling it in a
    // subtree_control cannot work, for a lesson or for nsx run.
    let m = examine(&fixture("v2-memory-disabled"), Privilege::Root, UID_1000);
    for s in [
        check(&m, &CURRICULUM[8], Privilege::Root),
        run_limits_check(&m, &["memory"], Privilege::Root),
    ] {
        let fix = fix_of(&s);
        assert!(fix.contains("cgroup_disable=memory"), "{fix}");
        assert!(
            !fix.contains("echo +memory") && !fix.contains("subtree_control"),
            "{fix}"
        );
        assert!(!reason(&s).contains("(V2)"), "{}", reason(&s));
    }
    assert_eq!(
        check(&m, &CURRICULUM[9], Privilege::Root),
        Support::Yes,
        "cpu is on"
    );

    // Without root on cgroup v1 (and hybrid), nsx run --memory: root runs `nsx run`,
    // there is no `nsx lesson run`.
    for machine in ["v1", "hybrid"] {
        let m = examine(&fixture(machine), Privilege::Rootless, UID_1000);
        let fix = fix_of(&run_limits_check(&m, &["memory"], Privilege::Rootless));
        assert!(fix.contains("sudo nsx run"), "{machine}: {fix}");
        assert!(!fix.contains("nsx lesson run"), "{machine}: {fix}");
    }

    // A slice root owns does not pass cpu on to uid 1000's sessions: a scope of the
    // user's own would not get it either, so the fix is root's.
    let m = examine(&fixture("v2-not-delegated"), Privilege::Rootless, UID_1000);
    let cpu = fix_of(&check(&m, &CURRICULUM[9], Privilege::Rootless));
    assert!(
        cpu.contains("sudo nsx lesson cpu") && cpu.contains("Delegate="),
        "{cpu}"
    );
    assert!(!cpu.contains("systemd-run --user"), "{cpu}");
    // memory does reach user-1000.slice: a delegated scope gets it.
    let memory = fix_of(&check(&m, &CURRICULUM[8], Privilege::Rootless));
    assert!(
        memory.contains("systemd-run --user --scope -p Delegate=yes nsx lesson memory"),
        "{memory}"
    );
    let m = examine(
        &fixture("v2-controllers-off"),
        Privilege::Rootless,
        UID_1000,
    );
    let memory = fix_of(&check(&m, &CURRICULUM[8], Privilege::Rootless));
    assert!(!memory.contains("systemd-run --user"), "{memory}");

    // A read-only cgroup file system: every cgroup lesson, root or not, and cgroupns at
    // the root cgroup, name a writable one.
    let m = examine(&fixture("v2-read-only"), Privilege::Root, UID_1000);
    for l in ["memory", "cpu", "pids", "cgroupns"] {
        let lesson = crate::lessons::find(l).unwrap();
        let s = check(&m, lesson, Privilege::Root);
        assert!(reason(&s).contains("read-only"), "{l}: {}", reason(&s));
        assert!(fix_of(&s).contains("writable cgroup file system"), "{l}");
    }
    // No cgroup file system: mount one.
    let m = examine(&fixture("no-cgroupfs"), Privilege::Root, UID_1000);
    let s = check(
        &m,
        crate::lessons::find("cgroupns").unwrap(),
        Privilege::Root,
    );
    assert!(fix_of(&s).contains("mount -t cgroup2"), "{}", reason(&s));
}

#[test]
fn cgroupns_runs_where_its_own_check_says_it_does() {
    // The lesson's own decision (cgroupns::obstacle) is the doctor's for every machine:
    // nested below a hierarchy's root, it runs either way; at the root, only root can
    // make a child, and not on a read-only file system.
    let cgroupns = crate::lessons::find("cgroupns").unwrap();
    let expect = [
        ("v2-delegated", true, true),
        ("v2-not-delegated", true, true),
        ("hybrid", true, true),
        ("v2-read-only", false, false),
        ("no-cgroupfs", false, false),
        ("v2-delegated-scope", true, true),
    ];
    for (name, as_root, rootless) in expect {
        let m = examine(&fixture(name), Privilege::Root, UID_1000);
        assert_eq!(
            m.cgroup.nested_as_root.is_none() && m.cgroup.problem.is_none(),
            as_root,
            "{name}"
        );
        let v = verdict(&m, cgroupns);
        assert_eq!(
            v.rootless == Support::Yes,
            rootless,
            "{name}: {:?}",
            v.rootless
        );
    }
    // nsx in the root cgroup, unprivileged: refused before it starts, with the reason.
    let (_tmp, sys) = tiny_root(&[
        (
            "proc/self/mountinfo",
            "26 25 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        ),
        ("proc/self/cgroup", "0::/\n"),
        ("proc/self/ns/user", ""),
        ("proc/self/ns/cgroup", ""),
        ("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n"),
    ]);
    let m = examine(&sys, Privilege::Rootless, UID_1000);
    let s = check(&m, cgroupns, Privilege::Rootless);
    assert!(reason(&s).contains("root cgroup"), "{}", reason(&s));
    assert_eq!(check(&m, cgroupns, Privilege::Root), Support::Yes);
}

#[test]
fn doctor_lists_the_controllers_nsx_would_switch_on_and_where() {
    // Switched off at the root: nsx would write the root's subtree_control and each
    // slice's down to where lesson cgroups go.
    let m = examine(&fixture("v2-controllers-off"), Privilege::Root, UID_1000);
    let files: Vec<String> = m
        .cgroup
        .switches_on
        .iter()
        .map(|w| format!("{} {}", w.file.display(), w.controllers.join(" ")))
        .collect();
    assert_eq!(
        files,
        [
            "/sys/fs/cgroup/cgroup.subtree_control memory cpu pids",
            "/sys/fs/cgroup/user.slice/cgroup.subtree_control memory cpu pids",
            "/sys/fs/cgroup/user.slice/user-1000.slice/cgroup.subtree_control memory cpu pids",
        ]
    );
    assert!(m.cgroup.already_on.is_empty());
    let text = plain(&curriculum_report(m));
    assert!(
        text.contains("echo +memory +cpu +pids > /sys/fs/cgroup/cgroup.subtree_control"),
        "{text}"
    );
    assert!(text.contains("never switches off"), "{text}");
    // A delegated scope whose slice passes memory and pids on: only cpu is left.
    let m = examine(&fixture("v2-delegated"), Privilege::Rootless, UID_1000);
    assert_eq!(m.cgroup.already_on, ["memory", "pids"]);
    assert_eq!(m.cgroup.switches_on.len(), 1);
    assert_eq!(m.cgroup.switches_on[0].controllers, ["cpu"]);
    // cgroup v1 and hybrid: nothing is switched on, only directories made.
    for name in ["v1", "hybrid"] {
        let m = examine(&fixture(name), Privilege::Root, UID_1000);
        assert!(
            m.cgroup.switches_on.is_empty() && m.cgroup.already_on.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn a_cgroup_delegated_to_the_user_is_found_and_used() {
    // nsx alone in a cgroup chowned to uid 1000 whose parent is root's: nsx will move
    // itself into a leaf of it, so the limits run without root.
    let m = examine(
        &fixture("v2-delegated-scope"),
        Privilege::Rootless,
        UID_1000,
    );
    let d = m.cgroup.delegation.clone().unwrap();
    assert!(d.into_own && d.writable, "{d:#?}");
    assert_eq!(d.own_owner, Some(1000));
    assert_eq!(d.owner, Some(0), "its parent is root's");
    for c in ["memory", "cpu", "pids"] {
        assert!(controller(&m, c).delegated, "{c}: {:#?}", controller(&m, c));
    }
    let r = curriculum_report(m);
    assert_eq!(verdict_of(&r, "memory").verdict, Verdict::Rootless);
    assert_eq!(verdict_of(&r, "cpu").verdict, Verdict::Rootless);
    let text = plain(&r);
    assert!(
        text.contains("delegated to uid 1000: cpu io memory pids"),
        "{text}"
    );
    assert!(
        text.contains(
            "echo +memory +cpu +pids > /sys/fs/cgroup/user-1000.delegated/cgroup.subtree_control"
        ),
        "{text}"
    );
    assert!(!text.contains("delegated to uid 1000: none"), "{text}");
    assert!(
        text.contains("nsx moves itself into a leaf of it"),
        "{text}"
    );
    insta::assert_snapshot!("v2_delegated_scope", text);

    // The user's shell shares the cgroup: the reason names it, and the fix moves it.
    let m = examine(
        &fixture("v2-delegated-scope-shell"),
        Privilege::Rootless,
        UID_1000,
    );
    let memory = check(&m, &CURRICULUM[8], Privilege::Rootless);
    assert!(reason(&memory).contains("201"), "{}", reason(&memory));
    let fix = fix_of(&memory);
    assert!(
        fix.contains("mkdir /sys/fs/cgroup/user-1000.delegated/shell")
            && fix.contains("nsx lesson memory"),
        "{fix}"
    );
}
