//! The analysis, over processes described by hand: one per layer.

use super::*;

const HOST: u64 = 4026531837;

fn root() -> Process {
    Process {
        pid: 42,
        name: "sh".into(),
        cap_eff: caps::ALL,
        cap_bnd: Some(caps::ALL),
        no_new_privs: Some(false),
        seccomp: Some(0),
        seccomp_filters: Some(0),
        user_ns: Some(HOST),
        host_user_ns: Some(HOST),
        uid_map: vec!["0 0 4294967295".into()],
        owners: [("mnt", HOST), ("uts", HOST), ("net", HOST)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Process::default()
    }
}

fn verdict(p: &Process, op: &str, file: Option<&FileInfo>) -> Vec<&'static str> {
    analyse(p, find(op).unwrap(), file).suspects
}

#[test]
fn a_dropped_capability_is_the_capabilities_layer() {
    let p = Process {
        cap_eff: caps::DOCKER_DEFAULT,
        cap_bnd: Some(caps::DOCKER_DEFAULT),
        ..root()
    };
    assert_eq!(verdict(&p, "mount", None), ["capabilities"]);
    let w = analyse(&p, find("mount").unwrap(), None);
    let c = w.layers.iter().find(|l| l.id == "capabilities").unwrap();
    assert!(c.why.contains("CAP_SYS_ADMIN"), "{}", c.why);
    assert!(c.fix.as_deref().unwrap().contains("--cap-add SYS_ADMIN"));
    // keyctl needs no capability: with no filter, nothing nsx sees refuses it.
    assert!(verdict(&p, "keyctl", None).is_empty());
}

#[test]
fn a_filter_with_every_capability_is_the_seccomp_layer() {
    let p = Process {
        seccomp: Some(2),
        seccomp_filters: Some(1),
        ..root()
    };
    assert_eq!(verdict(&p, "mount", None), ["seccomp"]);
    assert_eq!(verdict(&p, "keyctl", None), ["seccomp"]);
    // Docker: the filter and the missing capability both may have.
    let docker = Process {
        cap_eff: caps::DOCKER_DEFAULT,
        ..p
    };
    assert_eq!(verdict(&docker, "mount", None), ["seccomp", "capabilities"]);
}

#[test]
fn a_user_namespace_without_the_owner_is_the_capabilities_layer() {
    // Root with every capability in its own user namespace, whose UTS namespace is the
    // host's (owned by the initial user namespace).
    let p = Process {
        user_ns: Some(4026532500),
        uid_map: vec!["0 1000 1".into()],
        ..root()
    };
    assert_eq!(verdict(&p, "hostname", None), ["capabilities"]);
    let w = analyse(&p, find("sethostname").unwrap(), None);
    let c = w.layers.iter().find(|l| l.id == "capabilities").unwrap();
    assert!(
        c.why.contains("user:[4026532500]") && c.why.contains("uts"),
        "{}",
        c.why
    );
    assert!(c.fix.as_deref().unwrap().contains("--uts"), "{:?}", c.fix);
    // With a UTS namespace of its own (owned by its user namespace), nothing refuses.
    let mut own = p.clone();
    own.owners.insert("uts".into(), 4026532500);
    assert!(verdict(&own, "sethostname", None).is_empty());
    // Loading a module needs the initial user namespace, whatever it owns.
    assert_eq!(verdict(&own, "insmod", None), ["capabilities"]);
}

#[test]
fn a_file_mode_is_the_file_layer() {
    let user = Process {
        euid: 4242,
        fsuid: 4242,
        fsgid: 4242,
        cap_eff: 0,
        ..root()
    };
    let dir = ("/".to_string(), 0o40755, 0, 0);
    let secret = FileInfo {
        path: "/tmp/x/secret".into(),
        mode: 0o100600,
        uid: 0,
        gid: 0,
        dirs: vec![
            dir.clone(),
            ("/tmp".into(), 0o41777, 0, 0),
            ("/tmp/x".into(), 0o40755, 0, 0),
        ],
    };
    assert_eq!(verdict(&user, "open", Some(&secret)), ["file"]);
    // Its owner reads it; root reads it through CAP_DAC_OVERRIDE.
    let owner = FileInfo {
        uid: 4242,
        ..secret.clone()
    };
    assert!(verdict(&user, "cat", Some(&owner)).is_empty());
    assert!(verdict(&root(), "open", Some(&secret)).is_empty());
    // A directory on the way without x for others.
    let closed = FileInfo {
        mode: 0o100644,
        dirs: vec![dir, ("/tmp/x".into(), 0o40700, 0, 0)],
        ..secret.clone()
    };
    let w = analyse(&user, find("open").unwrap(), Some(&closed));
    let f = w.layers.iter().find(|l| l.id == "file").unwrap();
    assert_eq!(f.judgement, Judgement::Refuses);
    assert!(
        f.why
            .contains("search (x) permission on the directory /tmp/x"),
        "{}",
        f.why
    );
    // Without a path, the file layer is a could, and says how to check.
    let w = analyse(&user, find("open").unwrap(), None);
    assert!(w.suspects.contains(&"file"));
}

#[test]
fn an_lsm_label_and_no_new_privs_are_named_only_where_they_apply() {
    let p = Process {
        lsm_label: Some("docker-default (enforce)".into()),
        no_new_privs: Some(true),
        ..root()
    };
    assert_eq!(verdict(&p, "mount", None), ["lsm"]);
    assert_eq!(verdict(&p, "execve", None), ["file", "lsm", "no_new_privs"]);
    let unconfined = Process {
        lsm_label: Some("unconfined".into()),
        ..root()
    };
    assert!(verdict(&unconfined, "mount", None).is_empty());
}

#[test]
fn uid_maps_cover_their_ranges() {
    assert!(covers("0 100000 65536", 100000));
    assert!(covers("0 100000 65536", 165535));
    assert!(!covers("0 100000 65536", 165536));
    assert!(!covers("garbage", 0));
}

#[test]
fn this_process_can_be_read() {
    let me = gather(Path::new("/proc"), std::process::id() as i32).unwrap();
    assert!(me.user_ns.is_some() && me.in_initial());
    assert!(!me.owners.is_empty() || !nix::unistd::geteuid().is_root());
    let e = why(Path::new("/proc"), 1, "frobnicate", None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = why(
        Path::new("/proc"),
        std::process::id() as i32,
        "mount",
        Some(Path::new("/")),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let f = file_of(
        Path::new("/proc"),
        std::process::id() as i32,
        Path::new("/etc/passwd"),
    )
    .unwrap();
    assert_eq!(f.dirs.len(), 2);
    assert_eq!(f.mode & 0o777, 0o644);
}

#[test]
fn a_filter_without_sys_admin_needs_no_new_privs() {
    let p = Process {
        cap_eff: 0,
        ..root()
    };
    let w = analyse(&p, find("seccomp").unwrap(), None);
    assert_eq!(w.suspects, ["capabilities"]);
    let c = w.layers.iter().find(|l| l.id == "capabilities").unwrap();
    assert!(
        c.fix.as_deref().unwrap().contains("PR_SET_NO_NEW_PRIVS"),
        "{c:?}"
    );
    let nnp = Process {
        no_new_privs: Some(true),
        ..p
    };
    assert!(verdict(&nnp, "seccomp", None).is_empty());
}
