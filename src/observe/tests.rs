//! observe() over a captured procfs tree: tests/fixtures/proc holds a host (`self`, in a
//! systemd-style shared "/") looking at a rootless probe, PID 4242 (1 inside).

use std::path::{Path, PathBuf};

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

#[test]
fn reads_the_probe_through_its_pid_directory() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::ALL).unwrap();
    assert!(view.source.ends_with("/proc/4242"));
    assert_eq!(view.probe.pid, 4242);
    assert_eq!(view.probe.ppid, 4241);
    assert_eq!(view.probe.nspid, [4242, 1]);
    assert_eq!(view.probe.uid, 1000);
    assert_eq!(view.probe.cap_eff, "0000000000000000");
    assert_eq!(view.probe.ns("pid"), 4026532301);
    assert_eq!(view.probe.ns.len(), 8);
    assert_eq!(
        view.probe.cgroup,
        ["0::/user.slice/user-1000.slice/session-2.scope"]
    );
    assert_eq!(view.probe.uid_map(), ["0 1000 1"]);
}

#[test]
fn reads_the_observers_own_world() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::ALL).unwrap();
    assert_eq!(view.own_ns("pid"), 4026531836);
    assert_ne!(view.own_ns("pid"), view.probe.ns("pid"));
    assert_eq!(view.hostname, "laptop");
    // Numeric directories only: 1, 77 and 4242 (not self, not sys).
    assert_eq!(
        view.processes,
        Processes {
            count: 3,
            first: vec![1, 77, 4242]
        }
    );
}

#[test]
fn summarises_the_mount_table() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::ALL).unwrap();
    assert_eq!(view.mounts.count, 4);
    assert_eq!(view.mounts.root_propagation, "shared:1");
    assert_eq!(
        view.mounts.nsx,
        [Mount {
            mount_point: "/tmp/nsx-4241-mount".into(),
            fstype: "tmpfs".into(),
            source: "nsx-demo".into(),
            propagation: "master:7".into(),
        }]
    );
    assert!(view.has_mount("/tmp/nsx-4241-mount"));
}

#[test]
fn namespace_links_parse() {
    assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4026531836));
    assert_eq!(parse_ns_link("pid:4026531836"), None);
    assert_eq!(parse_ns_link("pid:[x]"), None);
}

#[test]
fn a_missing_process_is_an_error_naming_the_file() {
    let err = observe_parts(&fixture(), Subject::Pid(99999), Parts::ALL)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/proc/99999:") && err.contains("ENOENT"),
        "{err}"
    );
}

#[test]
fn a_garbled_status_is_an_error_naming_the_file_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("9")).unwrap();
    std::fs::write(dir.path().join("9/status"), "Pid:\tnot-a-number\n").unwrap();
    let err = read_proc(&dir.path().join("9")).unwrap_err().to_string();
    assert!(err.contains("9/status"), "{err}");
}

#[test]
fn reads_the_sysvipc_tables_of_the_readers_namespace() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::ALL).unwrap();
    let ipc = &view.sysvipc;
    assert_eq!(ipc.shm.len(), 2);
    // The fixture holds a key of the form nsx used before its keys were random.
    let key = 0x6e00_1092;
    let seg = ipc.shm_with_key(key).unwrap();
    assert_eq!(
        seg,
        &sysvipc::ShmSegment {
            key,
            id: 32768,
            perms: "600".into(),
            size: 4096,
            cpid: 4242,
            nattch: 0,
            uid: 1000,
        }
    );
    // IPC_PRIVATE segments have key 0 and are listed too.
    assert_eq!(ipc.shm[1].key, 0);
    assert_eq!(ipc.shm[1].nattch, 2);
    let q = ipc.msg_with_key(key).unwrap();
    assert_eq!((q.id, q.qnum, q.cbytes, q.lspid), (0, 1, 14, 4242));
    assert!(ipc.msg_with_key(1).is_none());
}

#[test]
fn missing_sysvipc_tables_are_empty_and_garbled_ones_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(sysvipc::read_sysvipc(dir.path()).unwrap().is_empty());
    std::fs::create_dir(dir.path().join("sysvipc")).unwrap();
    std::fs::write(
        dir.path().join("sysvipc/msg"),
        "       key      msqid perms\n     x  0  600\n",
    )
    .unwrap();
    let err = sysvipc::read_sysvipc(dir.path()).unwrap_err().to_string();
    assert!(err.contains("sysvipc/msg") && err.contains("key"), "{err}");
}

#[test]
fn a_view_reads_only_the_parts_asked_for() {
    let parts = Parts::ns("pid").with(Parts::PROCESSES);
    let view = observe_parts(&fixture(), Subject::Pid(4242), parts).unwrap();
    // The status fields are always there; of the links, only pid's.
    assert_eq!(view.probe.nspid, [4242, 1]);
    assert_eq!(view.probe.ns.keys().collect::<Vec<_>>(), ["pid"]);
    assert_eq!(view.own_ns.keys().collect::<Vec<_>>(), ["pid"]);
    assert_eq!(view.processes.count, 3);
    // The rest was not read, and stays out of the JSON.
    assert!(view.probe.cgroup.is_empty() && view.probe.uid_map.is_none());
    assert!(view.hostname.is_empty() && view.mounts.is_empty() && view.sysvipc.is_empty());
    let json = serde_json::to_value(&view).unwrap();
    for absent in ["hostname", "mounts", "links", "sysvipc"] {
        assert!(json.get(absent).is_none(), "{absent} in {json}");
    }
    for absent in ["cgroup", "uid_map", "gid_map", "interfaces"] {
        assert!(json["probe"].get(absent).is_none(), "{absent} in {json}");
    }
    // Everything, as inspect reads it, is a superset of the same answers.
    let all = observe_parts(&fixture(), Subject::Pid(4242), Parts::ALL).unwrap();
    assert_eq!(all.probe.ns("pid"), view.probe.ns("pid"));
    assert_eq!(all.processes, view.processes);
    assert_eq!(all.probe.uid_map(), ["0 1000 1"]);
}

#[test]
fn an_unmapped_user_namespace_is_an_empty_map_not_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("9");
    std::fs::create_dir_all(p.join("ns")).unwrap();
    std::fs::write(
        p.join("status"),
        "Name:\tnsx\nPid:\t9\nPPid:\t1\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nCapEff:\t000001ffffffffff\n",
    )
    .unwrap();
    std::fs::write(p.join("uid_map"), "").unwrap();
    let proc = read_proc(&p).unwrap();
    assert_eq!(proc.uid_map, Some(vec![]));
    // Kernels without user namespaces have no gid_map file at all: nothing mapped.
    assert_eq!(proc.gid_map, Some(vec![]));
    assert_eq!((proc.uid, proc.extra.euid, proc.pid), (65534, 65534, 9));
    assert_eq!(proc.cap_eff, "000001ffffffffff");
}

#[test]
fn the_status_parser_agrees_with_procfs_on_this_machine() {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let ours = parse_status(&text).unwrap();
    let theirs = procfs::process::Status::from_read(text.as_bytes()).unwrap();
    assert_eq!(
        (ours.pid, ours.ppid, ours.uid, ours.gid),
        (theirs.pid, theirs.ppid, theirs.ruid, theirs.rgid)
    );
    assert_eq!(ours.nspid, theirs.nspid.unwrap_or_default());
    let e = &ours.extra;
    assert_eq!(
        (e.euid, e.egid, &e.name),
        (theirs.euid, theirs.egid, &theirs.name)
    );
    assert_eq!(
        (e.cap_prm, e.cap_eff, e.cap_bnd, e.cap_amb),
        (theirs.capprm, theirs.capeff, theirs.capbnd, theirs.capamb)
    );
    assert_eq!(e.seccomp, theirs.seccomp);
    assert_eq!(e.no_new_privs, theirs.nonewprivs.map(|v| v != 0));
    let s = &ours.signals;
    assert_eq!(
        (s.pending, s.shared_pending, s.blocked, s.ignored, s.caught),
        (
            theirs.sigpnd,
            theirs.shdpnd,
            theirs.sigblk,
            theirs.sigign,
            theirs.sigcgt
        )
    );
}

#[test]
fn reads_signal_masks_stat_and_the_namespace_processes_when_asked() {
    let parts = Parts::SIGNALS.with(Parts::STAT).with(Parts::NS_PROCESSES);
    let view = observe_parts(&fixture(), Subject::Pid(4242), parts).unwrap();
    let sig = view.probe.signals.expect("signals read");
    // SigCgt 0000000000004002: SIGINT (2) and SIGTERM (15).
    assert_eq!(sig.caught, 0x4002);
    assert!(process::mask_has(sig.caught, 15) && process::mask_has(sig.caught, 2));
    assert_eq!(sig.any_pending(), 0);
    let stat = view.probe.stat.expect("stat read");
    assert_eq!((stat.pid, stat.state, stat.ppid), (4242, 'S', 4241));
    assert_eq!(stat.starttime, 5123456);
    assert!(stat.alive());
    // 1 and 77 have no ns/pid link in the fixture: only the probe is in its namespace.
    let listed = view.ns_processes.expect("namespace processes read");
    assert_eq!(listed, [stat]);
    // Not asked for, not read, and out of the JSON.
    let plain = observe_parts(&fixture(), Subject::Pid(4242), Parts::NONE).unwrap();
    assert!(plain.probe.signals.is_none() && plain.probe.stat.is_none());
    assert!(plain.ns_processes.is_none() && plain.root.is_none());
    let json = serde_json::to_value(&plain).unwrap();
    for absent in ["signals", "stat", "root"] {
        assert!(json["probe"].get(absent).is_none(), "{absent} in {json}");
    }
}

#[test]
fn reads_what_ids_the_kernel_names_and_the_readers_uptime() {
    let parts = Parts::ID_LIMITS
        .with(Parts::UPTIME)
        .with(Parts::TIMENS_OFFSETS);
    let view = observe_parts(&fixture(), Subject::Pid(4242), parts).unwrap();
    let limits = view.id_limits.unwrap();
    assert_eq!(
        (limits.cap_last_cap, limits.overflowuid, limits.overflowgid),
        (40, 65534, 65534)
    );
    assert_eq!(limits.full_caps(), 0x000001ffffffffff);
    assert_eq!(view.uptime_cs, Some(234_567));
    // The probe's offsets, whitespace folded as for the id maps.
    assert_eq!(
        view.probe.timens_offsets(),
        ["monotonic 172800 0", "boottime 604800 0"]
    );
    // Not asked for: not read, and out of the JSON.
    let bare = observe_parts(&fixture(), Subject::Pid(4242), Parts::NONE).unwrap();
    assert!(bare.id_limits.is_none() && bare.uptime_cs.is_none());
    assert!(bare.probe.timens_offsets.is_none());
    let json = serde_json::to_value(&bare).unwrap();
    for absent in ["id_limits", "uptime_cs"] {
        assert!(json.get(absent).is_none(), "{absent} in {json}");
    }
    assert!(json["probe"].get("timens_offsets").is_none());
}

#[test]
fn uptime_is_read_in_hundredths() {
    assert_eq!(parse_uptime("12.34 56.78\n"), Ok(1234));
    assert_eq!(parse_uptime("7.5 1.0"), Ok(750));
    assert_eq!(parse_uptime("3"), Ok(300));
    assert!(parse_uptime("x.12").is_err());
    assert!(parse_uptime("1.123").is_err());
    assert!(parse_uptime("").is_err());
}

#[test]
fn the_saved_uid_is_the_third_of_status_uid() {
    let s = parse_status(
        "Pid:\t9\nPPid:\t1\nUid:\t1000\t0\t42\t0\nGid:\t5\t5\t5\t5\nCapEff:\t0000000000000000\n",
    )
    .unwrap();
    assert_eq!((s.uid, s.extra.euid, s.extra.suid), (1000, 0, 42));
}

#[test]
fn finds_the_lowest_process_a_test_accepts() {
    // 4242 has a status; 77 has none (it "exited" while being read) and is skipped.
    let found = find_process(&fixture(), |p| p.uid == 1000).unwrap();
    assert_eq!(found.map(|p| p.pid), Some(4242));
    assert!(find_process(&fixture(), |p| p.uid == 0).unwrap().is_none());
}

/// The probe's routing table is read through its own directory (/proc/<pid>/net/route,
/// its network namespace) and the observer's through <proc>/self: two tables, one code.
/// The net sysctls are the observer's own; a file missing for this reader is `None`.
#[test]
fn routes_and_net_sysctls_are_read_for_each_side() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    let header =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
    for (sub, routes) in [
        (
            "4242",
            "nsx7c\t0049FEA9\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0\n",
        ),
        (
            "self",
            "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        ),
    ] {
        let d = proc.join(sub);
        std::fs::create_dir_all(d.join("net")).unwrap();
        std::fs::write(
            d.join("status"),
            "Name:\tnsx\nPid:\t4242\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0\n",
        )
        .unwrap();
        std::fs::write(d.join("net/route"), format!("{header}{routes}")).unwrap();
    }
    std::fs::create_dir_all(proc.join("sys/net/ipv4")).unwrap();
    std::fs::write(proc.join("sys/net/ipv4/ip_forward"), "1\n").unwrap();
    let parts = Parts::ROUTES.with(Parts::NET_SYSCTLS);
    let view = observe_parts(proc, Subject::Pid(4242), parts).unwrap();
    let probe = view.probe.routes.as_ref().unwrap();
    let own = view.routes.as_ref().unwrap();
    assert_eq!((probe.len(), own.len()), (1, 1));
    assert_eq!((probe[0].dev.as_str(), probe[0].prefix), ("nsx7c", 30));
    assert_eq!((own[0].dev.as_str(), own[0].prefix), ("eth0", 0));
    let sysctls = view.net_sysctls.unwrap();
    assert_eq!(sysctls.ip_forward, Some(true));
    // Only the initial network namespace has this file: not there, not read.
    assert_eq!(sysctls.fb_tunnels_only_for_init_net, None);
    // Not asked for: None, and out of the JSON.
    let none = observe_parts(proc, Subject::Pid(4242), Parts::NONE).unwrap();
    assert!(none.routes.is_none() && none.probe.routes.is_none() && none.net_sysctls.is_none());
    let json = serde_json::to_value(&none).unwrap();
    assert!(json.get("routes").is_none() && json.get("net_sysctls").is_none());
    assert!(json["probe"].get("routes").is_none());
}

#[test]
fn memory_cpu_time_and_tasks_are_read_only_when_asked() {
    let p = Parts::MEMORY.with(Parts::CPU_TIME).with(Parts::TASKS);
    let view = observe_parts(&fixture(), Subject::Pid(4242), p).unwrap();
    let probe = &view.probe;
    // status VmRSS and VmHWM, in bytes.
    assert_eq!(
        probe.memory,
        Some(MemoryUse {
            rss: 65536 * 1024,
            hwm: 70000 * 1024
        })
    );
    // stat utime 48 + stime 2 ticks; schedstat in ns.
    let cpu = probe.cpu.unwrap();
    assert_eq!((cpu.utime_ticks, cpu.stime_ticks), (48, 2));
    assert_eq!(cpu.ticks_us(), 50 * cpu.tick_us);
    assert_eq!(cpu.on_cpu_ns, Some(503_117_862));
    assert_eq!(cpu.waited_ns, Some(14_529_331));
    // Threads from status; the child is 77, whose stat names 4242 as parent (its
    // command name holds a space and a parenthesis would not fool the parser either).
    assert_eq!(
        probe.tasks,
        Some(Tasks {
            threads: 1,
            children: vec![77]
        })
    );
    // Not asked: not read, and out of the JSON.
    let plain = observe_parts(&fixture(), Subject::Pid(4242), Parts::NONE).unwrap();
    assert!(plain.probe.memory.is_none() && plain.probe.cpu.is_none());
    assert!(plain.probe.tasks.is_none());
    let json = serde_json::to_value(&plain).unwrap();
    for absent in ["memory", "cpu", "tasks"] {
        assert!(json["probe"].get(absent).is_none(), "{absent} in {json}");
    }
}

#[test]
fn this_process_reads_its_own_cpu_time_children_and_memory() {
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let p = Parts::MEMORY.with(Parts::CPU_TIME).with(Parts::TASKS);
    let me = observe_parts(Path::new("/proc"), Subject::SelfProcess, p).unwrap();
    let pid = child.id() as i32;
    let listed = still_listed(Path::new("/proc"), &[pid]);
    child.kill().unwrap();
    child.wait().unwrap();
    let tasks = me.probe.tasks.unwrap();
    assert!(tasks.children.contains(&pid), "{tasks:?} lacks {pid}");
    assert!(tasks.threads >= 1);
    assert_eq!(listed, [pid]);
    assert!(still_listed(Path::new("/proc"), &[pid]).is_empty());
    let mem = me.probe.memory.unwrap();
    assert!(mem.rss > 0 && mem.hwm >= mem.rss, "{mem:?}");
    assert!(me.probe.cpu.unwrap().tick_us > 0);
}

#[test]
fn the_security_lines_of_status_are_typed_when_asked_for() {
    let text = "Name:\tsh\nPid:\t7\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n";
    let s = parse_status(text).unwrap();
    assert_eq!(s.extra.cap_eff, crate::caps::DOCKER_DEFAULT);
    assert_eq!(
        (
            s.extra.no_new_privs,
            s.extra.seccomp,
            s.extra.seccomp_filters
        ),
        (Some(true), Some(2), Some(3))
    );
    // Without the line (an older kernel): unknown, not 0.
    let old = parse_status(&text.replace("Seccomp_filters:\t3\n", "")).unwrap();
    assert_eq!(old.extra.seccomp_filters, None);
    // Read from a real procfs only when asked for, and then the same as the extra fields.
    let me = Path::new("/proc/self");
    assert_eq!(read_proc_with(me, Parts::NONE).unwrap().security, None);
    let p = read_proc_with(me, Parts::SECURITY).unwrap();
    let sec = p.security.as_ref().unwrap();
    assert_eq!(
        (sec.cap_eff, sec.no_new_privs, sec.seccomp_filters),
        (
            p.extra.cap_eff,
            p.extra.no_new_privs,
            p.extra.seccomp_filters
        )
    );
    let json = serde_json::to_value(&p).unwrap();
    assert!(json["security"]["cap_eff"].is_u64(), "{json}");
}

#[test]
fn security_reads_the_credentials_caps_and_labels_of_status_and_attr() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::SECURITY).unwrap();
    let s = view.probe.security.expect("read");
    assert_eq!(s.uid, [1000; 4]);
    assert_eq!((s.cap_inh, s.cap_prm, s.cap_eff), (0, 0, 0));
    assert_eq!((s.cap_bnd, s.cap_amb), (Some(0x1ff_ffff_ffff), Some(0)));
    assert_eq!(
        (s.no_new_privs, s.seccomp, s.seccomp_filters),
        (Some(false), Some(0), Some(0))
    );
    // The fixture has no attr directory.
    assert_eq!((s.label, s.apparmor), (Attr::Absent, Attr::Absent));
    // Not asked for, not read.
    let plain = observe_parts(&fixture(), Subject::Pid(4242), Parts::NONE).unwrap();
    assert!(plain.probe.security.is_none());
}

#[test]
fn this_process_labels_read_like_the_kernel_answers() {
    let view = observe_parts(Path::new("/proc"), Subject::SelfProcess, Parts::SECURITY).unwrap();
    let s = view.probe.security.unwrap();
    match std::fs::read("/proc/self/attr/current") {
        Ok(bytes) => assert_eq!(
            s.label.label(),
            Some(String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\0']))
        ),
        Err(e) => assert_eq!(
            s.label,
            Attr::Error(format!(
                "{:?}",
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap())
            ))
        ),
    }
    assert_eq!(s.uid[1], nix::unistd::geteuid().as_raw());
}

#[test]
fn kernel_files_and_mounts_are_read_only_when_asked() {
    let view = observe_parts(&fixture(), Subject::Pid(4242), Parts::MOUNTS).unwrap();
    assert!(view.kernel.is_none() && view.mounts.kernel.is_empty());
    let parts = Parts::MOUNTS
        .with(Parts::KERNEL_FILES)
        .with(Parts::DEV)
        .with(Parts::KERNEL_MOUNTS);
    let view = observe_parts(&fixture(), Subject::Pid(4242), parts).unwrap();
    // The fixture's root (tests/fixtures) has a proc directory and nothing masked in it.
    let k = view.kernel.expect("read");
    assert!(k
        .paths
        .iter()
        .all(|p| p.kind == kernel::Kind::Absent || p.path.starts_with("/proc/sys")));
    let points: Vec<&str> = view
        .mounts
        .kernel
        .iter()
        .map(|m| m.mount_point.as_str())
        .collect();
    assert_eq!(points, ["/proc", "/sys"]);
}
