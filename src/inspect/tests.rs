//! inspect and ps over tests/fixtures/inspect, a procfs tree: nsx itself (4100, `self`),
//! a kernel thread (2), a rootless lesson probe and its child (4242, 4243), a Docker
//! container's process (5000), a process with a malformed uid_map (6000) and a zombie
//! (7000, whose namespace links are gone).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect")
}

fn plain(text: String) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&text, "")
        .into_owned()
}

#[test]
fn a_docker_container_differs_in_six_namespaces() {
    let i = inspect(&fixture(), 5000, None).unwrap();
    assert_eq!(i.name, "sleep");
    assert_eq!(i.nspid, [5000, 1]);
    assert_eq!(i.nsx_pid, 4100);
    assert_eq!(i.differs, ["cgroup", "ipc", "mnt", "net", "pid", "uts"]);
    let user = i.namespaces.iter().find(|r| r.ty == "user").unwrap();
    assert!(!user.differs && user.nsx == Some(user.inode));
    assert_eq!(i.cgroups.len(), 1);
    assert_eq!(i.cgroups[0].path, "/system.slice/docker-5e1f.scope");
    assert_eq!(i.seccomp.as_deref(), Some("filter"));
    assert_eq!(i.no_new_privs, Some(true));
    assert_eq!(i.seccomp_filters, Some(1));
    assert!(!i
        .capabilities
        .effective
        .names
        .contains(&"sys_admin".to_string()));
    assert_eq!(i.capabilities.effective.names.len(), 14);
    insta::assert_snapshot!("inspect_docker", plain(render::inspection(&i)));
}

#[test]
fn a_rootless_probe_shows_its_user_namespace_map() {
    let i = inspect(&fixture(), 4242, None).unwrap();
    assert_eq!(i.differs, ["mnt", "pid", "user"]);
    assert_eq!(
        i.uid_map,
        [IdMap {
            inside: 0,
            outside: 1000,
            count: 1
        }]
    );
    assert_eq!(i.capabilities.effective.summary(), "none");
    let text = plain(render::inspection(&i));
    assert!(text.contains("uid 0 inside is uid 1000 outside"), "{text}");
    assert!(
        text.contains("4242 → 1 (it runs in a PID namespace 1 level below nsx's)"),
        "{text}"
    );
}

#[test]
fn nsx_itself_differs_in_nothing() {
    let i = inspect(&fixture(), 4100, None).unwrap();
    assert!(i.differs.is_empty());
    assert!(plain(render::inspection(&i)).contains("the same namespaces as nsx"));
    assert_eq!(
        i.capabilities.bounding.as_ref().unwrap().summary(),
        "all 41 but sys_resource"
    );
}

#[test]
fn bad_pids_and_bad_files_are_errors_with_reasons() {
    let e = inspect(&fixture(), 99999, None).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("no process with PID 99999"), "{e}");
    let e = inspect(&fixture(), 6000, None).unwrap_err().to_string();
    assert!(e.contains("6000/uid_map") && e.contains("not a map"), "{e}");
    let e = inspect(&fixture(), 7000, None).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string()
            .contains("zombie until its parent, PID 4242, reaps it"),
        "{e}"
    );
}

#[test]
fn permission_errors_become_exit_77_with_the_fix() {
    let denied = crate::error::sys("readlink", "/proc/1/ns/cgroup", Errno::EACCES);
    let e = explain_error(1, denied);
    assert_eq!(e.exit_code(), 77);
    let text = e.to_string();
    assert!(text.contains("EACCES") && text.contains("ptrace"), "{text}");
    // The refusal in one line, its errno's text once.
    assert!(
        text.contains("read PID 1: readlink /proc/1/ns/cgroup: EACCES (Permission denied); "),
        "{text}"
    );
    assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
    assert!(text.contains("fix:"), "{text}");
    if nix::unistd::geteuid().is_root() {
        assert!(text.contains("beyond this root's reach"), "{text}");
    } else {
        assert!(text.contains("sudo nsx inspect 1"), "{text}");
    }
    let gone = explain_error(7, crate::error::sys("open", "/proc/7/status", Errno::ESRCH));
    assert!(gone.to_string().contains("exited"), "{gone}");
}

#[test]
fn ps_groups_processes_by_namespace_set() {
    let mut p = ps(&fixture()).unwrap();
    // The snapshot is the same whoever runs the tests: no "run it as root" line.
    p.as_root = true;
    assert_eq!(p.nsx_pid, 4100);
    let sets: Vec<Vec<i32>> = p
        .groups
        .iter()
        .map(|g| g.processes.iter().map(|x| x.pid).collect())
        .collect();
    assert_eq!(sets, [vec![2, 4100, 6000], vec![4242, 4243], vec![5000]]);
    assert!(p.groups[0].differs.is_empty());
    assert_eq!(p.groups[1].differs, ["mnt", "pid", "user"]);
    assert_eq!(p.groups[2].cgroups, ["/system.slice/docker-5e1f.scope"]);
    assert_eq!(p.unreadable.len(), 1, "the zombie");
    assert_eq!(p.unreadable[0].pid, 7000);
    assert!(p.unreadable[0].error.contains("zombie"));
    insta::assert_snapshot!("ps", plain(render::ps(&p)));
}

#[test]
fn id_maps_parse_or_name_the_file() {
    let f = Path::new("/proc/1/uid_map");
    assert_eq!(
        parse_id_map("0 100000 65536", f).unwrap(),
        IdMap {
            inside: 0,
            outside: 100000,
            count: 65536
        }
    );
    for bad in ["", "0 1", "a b c", "0 1 2 3", "-1 0 1"] {
        let e = parse_id_map(bad, f).unwrap_err().to_string();
        assert!(e.contains("/proc/1/uid_map"), "{bad:?}: {e}");
    }
}

#[test]
fn this_process_inspects_itself() {
    let me = std::process::id() as i32;
    let layout = Layout::detect_all().ok();
    let i = inspect(Path::new("/proc"), me, layout.as_ref()).unwrap();
    assert_eq!(i.pid, me);
    assert!(i.differs.is_empty(), "a process shares nsx's namespaces");
    assert!(!i.cgroups.is_empty());
}

proptest! {
    #[test]
    fn id_map_parser_never_panics(line in ".{0,60}") {
        if let Err(e) = parse_id_map(&line, Path::new("uid_map")) {
            prop_assert!(e.to_string().contains("uid_map"));
        }
    }
}

#[test]
fn docker_s_masked_and_read_only_paths_are_read_from_mountinfo() {
    let i = inspect(&fixture(), 5000, None).unwrap();
    let states = i.masked_paths.as_ref().unwrap();
    let of = |p: &str| states.iter().find(|s| s.path == p).unwrap().shown;
    // /dev/null bound over a file, a read-only tmpfs over a directory.
    assert_eq!(of("/proc/kcore"), Shown::Masked);
    assert_eq!(of("/proc/acpi"), Shown::Masked);
    assert_eq!(of("/sys/firmware"), Shown::Masked);
    // A read-only bind of the path onto itself, and a read-only sysfs.
    assert_eq!(of("/proc/sys"), Shown::ReadOnly);
    assert_eq!(of("/sys"), Shown::ReadOnly);
    // Not mounted on in this container.
    assert_eq!(of("/proc/sched_debug"), Shown::Open);
    let text = plain(render::inspection(&i));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("masked "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("/proc/kcore") && !line.contains("/proc/sys "),
        "{line}"
    );
    // A process without a mountinfo file (the fixture's nsx itself has none).
    assert!(path_states("").iter().all(|s| s.shown == Shown::Open));
}
