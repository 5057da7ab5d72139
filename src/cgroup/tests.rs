//! Backends on fixture trees (see testutil): which directories, which files, which values,
//! in which order; and what is left afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::testutil::{self, Fixture};
use super::*;

const PID: u32 = 77;

fn opts() -> Options {
    Options {
        pid: PID,
        rootless: false,
    }
}

fn create(fx: &Fixture, lesson: &str, cs: &[Controller]) -> Result<LessonCgroup> {
    LessonCgroup::create_with(&fx.layout, lesson, cs, opts(), fx.boxed_fs())
}

fn shell(actions: &[Action], root: &Path) -> Vec<String> {
    let prefix = format!("{}", root.display());
    actions
        .iter()
        .map(|a| a.to_string().replace(&prefix, "$CG"))
        .collect()
}

fn nsx_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if e.file_name().to_string_lossy().starts_with("nsx") {
                    found.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    found
}

// ---------------------------------------------------------------- v1 and hybrid

#[test]
fn hybrid_creates_one_directory_per_hierarchy_under_our_own_cgroups() {
    let fx = testutil::hybrid(true);
    let mut cg = create(
        &fx,
        "memory",
        &[Controller::Memory, Controller::Cpu, Controller::Pids],
    )
    .unwrap();
    assert_eq!(cg.name(), "nsx-77-memory");
    assert_eq!(cg.mode(), Mode::Hybrid);
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "mkdir $CG/memory/process_api/16b3/nsx-77-memory",
            "mkdir $CG/cpu/nsx-77-memory",
            "mkdir $CG/cpuacct/nsx-77-memory",
            "mkdir $CG/pids/nsx-77-memory",
        ]
    );
    assert_eq!(
        cg.dir(Controller::Memory).unwrap(),
        fx.root.join("memory/process_api/16b3/nsx-77-memory")
    );
    assert_eq!(cg.dirs().len(), 4);
}

#[test]
fn v1_memory_limit_covers_swap_and_keeps_memsw_above_memory() {
    let mut fx = testutil::hybrid(true);
    fx.layout.swap = true;
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    cg.take_actions();
    cg.set_memory_max(32 << 20).unwrap();
    let d = "$CG/memory/process_api/16b3/nsx-77-memory";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("cat {d}/memory.limit_in_bytes"),
            format!("echo 33554432 > {d}/memory.limit_in_bytes"),
            format!("echo 33554432 > {d}/memory.memsw.limit_in_bytes"),
        ]
    );
    // Raising: memory+swap first, or the kernel says EINVAL.
    cg.set_memory_max(64 << 20).unwrap();
    let a = shell(&cg.take_actions(), &fx.root);
    assert_eq!(
        a[1],
        format!("echo 67108864 > {d}/memory.memsw.limit_in_bytes")
    );
    assert_eq!(a[2], format!("echo 67108864 > {d}/memory.limit_in_bytes"));
}

#[test]
fn v1_memory_limit_without_swap_writes_one_file() {
    // Without swap accounting (no memsw files), or without swap on the machine (then
    // memsw would only hide memory.failcnt).
    for (files, swap) in [(false, true), (true, false)] {
        let mut fx = testutil::hybrid(files);
        fx.layout.swap = swap;
        let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
        cg.take_actions();
        cg.set_memory_max(1 << 20).unwrap();
        let a = shell(&cg.take_actions(), &fx.root);
        assert_eq!(
            a,
            ["echo 1048576 > $CG/memory/process_api/16b3/nsx-77-memory/memory.limit_in_bytes"]
        );
    }
}

#[test]
fn v1_limit_hits_add_the_memsw_failures_when_swap_is_limited() {
    let mut fx = testutil::hybrid(true);
    fx.layout.swap = true;
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    let m = cg.dir(Controller::Memory).unwrap().to_path_buf();
    fs::write(m.join("memory.failcnt"), "3\n").unwrap();
    fs::write(m.join("memory.memsw.failcnt"), "4\n").unwrap();
    assert_eq!(cg.memory_stats().unwrap().limit_hits, 7);
}

#[test]
fn v1_cpu_quota_writes_period_then_quota() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    cg.take_actions();
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "echo 100000 > $CG/cpu/nsx-77-cpu/cpu.cfs_period_us",
            "echo 20000 > $CG/cpu/nsx-77-cpu/cpu.cfs_quota_us"
        ]
    );
}

#[test]
fn v1_join_writes_cgroup_procs_in_every_hierarchy() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "pids", &[Controller::Pids, Controller::Memory]).unwrap();
    cg.take_actions();
    cg.set_pids_max(8).unwrap();
    cg.add_process(4243).unwrap();
    assert_eq!(cg.membership_file(), "cgroup.procs");
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "echo 8 > $CG/pids/nsx-77-pids/pids.max",
            "echo 4243 > $CG/pids/nsx-77-pids/cgroup.procs",
            "echo 4243 > $CG/memory/process_api/16b3/nsx-77-pids/cgroup.procs",
        ]
    );
    assert!(cg.add_process(0).is_err(), "0 would move nsx itself");
}

#[test]
fn v1_comounted_cpu_cpuacct_is_one_directory() {
    let fx = testutil::v1_comounted();
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    let scope = "user.slice/user-1000.slice/session-2.scope";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [format!("mkdir $CG/cpu,cpuacct/{scope}/nsx-77-cpu")]
    );
    cg.add_process(5).unwrap();
    assert_eq!(cg.take_actions().len(), 1, "one hierarchy, one write");
    let dir = cg.dir(Controller::Cpu).unwrap().to_path_buf();
    fs::write(dir.join("cpuacct.usage"), "123456789\n").unwrap();
    fs::write(
        dir.join("cpu.stat"),
        "nr_periods 5\nnr_throttled 4\nthrottled_time 3000000\n",
    )
    .unwrap();
    let s = cg.cpu_stats().unwrap();
    assert_eq!(
        s,
        CpuStats {
            nr_periods: 5,
            nr_throttled: 4,
            throttled_usec: 3000,
            usage_usec: Some(123456)
        }
    );
}

#[test]
fn v1_stats_come_from_the_v1_files() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "memory", &[Controller::Memory, Controller::Pids]).unwrap();
    let m = cg.dir(Controller::Memory).unwrap().to_path_buf();
    fs::write(
        m.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    )
    .unwrap();
    fs::write(m.join("memory.failcnt"), "1234\n").unwrap();
    fs::write(m.join("memory.max_usage_in_bytes"), "33554432\n").unwrap();
    let s = cg.memory_stats().unwrap();
    assert_eq!(s.oom_kill, 1);
    assert_eq!(s.limit_hits, 1234);
    assert_eq!(s.peak_bytes, Some(33554432));
    assert_eq!((s.under_oom, s.oom), (Some(false), None));
    let p = cg.dir(Controller::Pids).unwrap().to_path_buf();
    fs::write(p.join("pids.max"), "8\n").unwrap();
    fs::write(p.join("pids.events"), "max 3\n").unwrap();
    fs::write(p.join("pids.current"), "8\n").unwrap();
    let s = cg.pids_stats().unwrap();
    assert_eq!(
        s,
        PidsStats {
            current: 8,
            max: Some(8),
            max_events: 3,
            peak: None
        }
    );
    let reads: Vec<_> = cg.actions().iter().filter(|a| a.op == Op::Read).collect();
    assert!(reads.iter().any(|a| a.path.ends_with("memory.oom_control")
        && a.value.as_deref() == Some("oom_kill_disable 0\nunder_oom 0\noom_kill 1")));
}

#[test]
fn a_garbled_stat_file_is_an_error_naming_its_path() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    let m = cg.dir(Controller::Memory).unwrap().to_path_buf();
    fs::write(m.join("memory.failcnt"), "many\n").unwrap();
    let e = cg.memory_stats().unwrap_err().to_string();
    assert!(
        e.contains("memory.failcnt") && e.contains(&m.display().to_string()),
        "{e}"
    );
}

#[test]
fn using_a_controller_that_was_not_requested_is_an_error() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    let e = cg.set_memory_max(1).unwrap_err().to_string();
    assert!(e.contains("without the memory controller"), "{e}");
    let fx = testutil::v2("/a/b", true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    assert!(cg.set_cpu_quota(1000, 10000).is_err());
}

#[test]
fn v1_remove_takes_every_hierarchy_and_nothing_is_left() {
    let fx = testutil::hybrid(true);
    let mut cg = create(
        &fx,
        "memory",
        &[Controller::Memory, Controller::Cpu, Controller::Pids],
    )
    .unwrap();
    cg.take_actions();
    cg.remove().unwrap();
    let a = shell(&cg.take_actions(), &fx.root);
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(a.iter().all(|s| s.starts_with("rmdir $CG/")), "{a:?}");
    assert!(nsx_dirs(&fx.root).is_empty());
    cg.remove().unwrap();
    assert!(cg.take_actions().is_empty(), "a second remove does nothing");
}

#[test]
fn remove_takes_child_cgroups_first() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    let d = cg.dir(Controller::Pids).unwrap().to_path_buf();
    fx.fs.mkdir(&d.join("inner")).unwrap();
    fx.fs.mkdir(&d.join("inner/deeper")).unwrap();
    cg.take_actions();
    cg.remove().unwrap();
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "rmdir $CG/pids/nsx-77-pids/inner/deeper",
            "rmdir $CG/pids/nsx-77-pids/inner",
            "rmdir $CG/pids/nsx-77-pids"
        ]
    );
}

#[test]
fn remove_retries_a_briefly_busy_cgroup() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    fx.fs.busy_for(3);
    cg.remove().unwrap();
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn remove_gives_up_on_a_cgroup_that_stays_busy_and_says_why() {
    let fx = testutil::hybrid(true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    let d = cg.dir(Controller::Pids).unwrap().to_path_buf();
    fs::write(d.join("cgroup.procs"), "999\n").unwrap();
    let t = Instant::now();
    let e = cg.remove().unwrap_err();
    let waited = t.elapsed();
    assert!(
        waited >= REMOVE_BUDGET && waited < REMOVE_BUDGET + Duration::from_millis(400),
        "{waited:?}"
    );
    assert_eq!(e.errno(), Some(Errno::EBUSY));
    assert!(e.to_string().contains("no process is in it"), "{e}");
    // Once the process is gone, remove (or drop) succeeds.
    fs::write(d.join("cgroup.procs"), "").unwrap();
    drop(cg);
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn drop_removes_the_cgroup() {
    let fx = testutil::hybrid(true);
    let cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    assert_eq!(nsx_dirs(&fx.root).len(), 2);
    drop(cg);
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn a_failed_create_removes_what_it_made() {
    let fx = testutil::hybrid(true);
    fx.fs.make_readonly(&fx.root.join("pids"));
    let e = create(&fx, "pids", &[Controller::Memory, Controller::Pids]).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EACCES));
    assert!(e.to_string().contains("Delegate=yes"), "{e}");
    assert!(
        nsx_dirs(&fx.root).is_empty(),
        "the memory directory was removed again"
    );
}

#[test]
fn a_leftover_with_our_pid_is_replaced() {
    let fx = testutil::hybrid(true);
    fx.fs.mkdir(&fx.root.join("pids/nsx-77-pids")).unwrap();
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        ["rmdir $CG/pids/nsx-77-pids", "mkdir $CG/pids/nsx-77-pids"]
    );
}

#[test]
fn a_missing_v1_controller_is_unsupported_with_the_fix() {
    let fx = testutil::hybrid(true);
    let mut layout = fx.layout.clone();
    layout
        .mounts
        .retain(|m| !m.controllers.contains(&"pids".to_string()));
    let e = LessonCgroup::create_with(&layout, "pids", &[Controller::Pids], opts(), fx.boxed_fs())
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("mount -t cgroup -o pids"), "{e}");
}

#[test]
fn cpu_without_cpuacct_has_no_usage_figure() {
    let fx = testutil::hybrid(true);
    let mut layout = fx.layout.clone();
    layout
        .mounts
        .retain(|m| !m.controllers.contains(&"cpuacct".to_string()));
    let mut cg =
        LessonCgroup::create_with(&layout, "cpu", &[Controller::Cpu], opts(), fx.boxed_fs())
            .unwrap();
    assert_eq!(cg.dirs().len(), 1);
    assert_eq!(cg.cpu_stats().unwrap().usage_usec, None);
}

#[test]
fn lesson_names_must_be_path_safe() {
    let fx = testutil::hybrid(true);
    for bad in ["", "../x", "a/b", "Memory", "a b"] {
        let e = create(&fx, bad, &[Controller::Pids]).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{bad:?}: {e}");
    }
}

// ---------------------------------------------------------------- v2

const SCOPE: &str = "/user.slice/user-1000.slice/session-2.scope";

#[test]
fn v2_puts_the_lesson_in_a_dedicated_subtree_beside_our_cgroup() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "memory", &[Controller::Memory, Controller::Pids]).unwrap();
    assert_eq!(cg.version(), Version::V2);
    let s = "$CG/user.slice/user-1000.slice";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("cat {s}/cgroup.subtree_control"),
            format!("mkdir {s}/nsx"),
            format!("cat {s}/nsx/cgroup.subtree_control"),
            format!("echo '+memory +pids' > {s}/nsx/cgroup.subtree_control"),
            format!("mkdir {s}/nsx/nsx-77-memory"),
        ]
    );
    let leaf = fx.root.join("user.slice/user-1000.slice/nsx/nsx-77-memory");
    assert_eq!(cg.dirs(), [leaf.as_path()]);
    assert!(leaf.join("memory.max").exists() && leaf.join("pids.max").exists());
}

#[test]
fn v2_enables_a_missing_controller_top_down_from_where_it_is_available() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    let writes: Vec<String> = shell(&cg.take_actions(), &fx.root)
        .into_iter()
        .filter(|a| a.starts_with("echo") || a.starts_with("mkdir"))
        .collect();
    assert_eq!(
        writes,
        [
            "echo +cpu > $CG/cgroup.subtree_control",
            "echo +cpu > $CG/user.slice/cgroup.subtree_control",
            "echo +cpu > $CG/user.slice/user-1000.slice/cgroup.subtree_control",
            "mkdir $CG/user.slice/user-1000.slice/nsx",
            "echo +cpu > $CG/user.slice/user-1000.slice/nsx/cgroup.subtree_control",
            "mkdir $CG/user.slice/user-1000.slice/nsx/nsx-77-cpu",
        ]
    );
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    let a = shell(&cg.take_actions(), &fx.root);
    assert_eq!(
        a,
        ["echo '20000 100000' > $CG/user.slice/user-1000.slice/nsx/nsx-77-cpu/cpu.max"]
    );
}

#[test]
fn v2_at_the_root_uses_the_root_which_may_hold_processes() {
    let fx = testutil::v2("/", true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    assert_eq!(cg.dirs(), [fx.root.join("nsx/nsx-77-pids").as_path()]);
    cg.add_process(4243).unwrap();
    // The fixture's processes never exit by themselves.
    fs::write(fx.root.join("nsx/nsx-77-pids/cgroup.procs"), "").unwrap();
    cg.remove().unwrap();
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn v2_memory_limit_also_forbids_swap() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    cg.take_actions();
    cg.set_memory_max(32 << 20).unwrap();
    let l = "$CG/user.slice/user-1000.slice/nsx/nsx-77-memory";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("echo 33554432 > {l}/memory.max"),
            format!("echo 0 > {l}/memory.swap.max")
        ]
    );
    let fx = testutil::v2(SCOPE, false);
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    cg.take_actions();
    cg.set_memory_max(32 << 20).unwrap();
    assert_eq!(
        cg.take_actions().len(),
        1,
        "no memory.swap.max without swap accounting"
    );
}

#[test]
fn v2_join_and_stats() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "memory", &[Controller::Memory, Controller::Pids]).unwrap();
    cg.take_actions();
    cg.set_pids_max(8).unwrap();
    cg.add_process(4243).unwrap();
    let l = "$CG/user.slice/user-1000.slice/nsx/nsx-77-memory";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("echo 8 > {l}/pids.max"),
            format!("echo 4243 > {l}/cgroup.procs")
        ]
    );
    let leaf = cg.dirs()[0].to_path_buf();
    fs::write(
        leaf.join("memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    fs::write(leaf.join("memory.peak"), "33554432\n").unwrap();
    fs::write(leaf.join("memory.current"), "0\n").unwrap();
    let m = cg.memory_stats().unwrap();
    assert_eq!(
        m,
        MemoryStats {
            usage_bytes: 0,
            peak_bytes: Some(33554432),
            limit_hits: 12,
            oom: Some(1),
            under_oom: None,
            oom_kill: 1
        }
    );
    fs::remove_file(leaf.join("memory.peak")).unwrap();
    assert_eq!(
        cg.memory_stats().unwrap().peak_bytes,
        None,
        "memory.peak needs 5.19"
    );
    fs::write(leaf.join("pids.events"), "max 2\n").unwrap();
    fs::write(leaf.join("pids.peak"), "8\n").unwrap();
    assert_eq!(
        cg.pids_stats().unwrap(),
        PidsStats {
            current: 0,
            max: Some(8),
            max_events: 2,
            peak: Some(8)
        }
    );
}

#[test]
fn v2_cpu_stats() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    let leaf = cg.dirs()[0].to_path_buf();
    fs::write(
        leaf.join("cpu.stat"),
        "usage_usec 200000\nuser_usec 200000\nsystem_usec 0\nnr_periods 10\nnr_throttled 8\nthrottled_usec 800000\n",
    )
    .unwrap();
    assert_eq!(
        cg.cpu_stats().unwrap(),
        CpuStats {
            nr_periods: 10,
            nr_throttled: 8,
            throttled_usec: 800000,
            usage_usec: Some(200000)
        }
    );
}

#[test]
fn v2_remove_takes_the_leaf_and_the_empty_subtree() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    cg.take_actions();
    cg.remove().unwrap();
    let s = "$CG/user.slice/user-1000.slice";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("rmdir {s}/nsx/nsx-77-pids"),
            format!("rmdir {s}/nsx")
        ]
    );
    assert!(!fx.root.join("user.slice/user-1000.slice/nsx").exists());
}

#[test]
fn v2_subtree_stays_while_another_run_uses_it() {
    let fx = testutil::v2(SCOPE, true);
    let other = LessonCgroup::create_with(
        &fx.layout,
        "pids",
        &[Controller::Pids],
        Options {
            pid: 88,
            rootless: false,
        },
        fx.boxed_fs(),
    )
    .unwrap();
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    cg.remove().unwrap();
    assert!(fx
        .root
        .join("user.slice/user-1000.slice/nsx/nsx-88-pids")
        .exists());
    drop(other);
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn v2_parent_with_processes_hits_the_no_internal_process_rule() {
    // /a holds a process and passes no controller on; nsx runs in /a/b.
    let fx = testutil::v2("/a/b", true);
    let a = fx.root.join("a");
    fs::write(a.join("cgroup.subtree_control"), "\n").unwrap();
    fs::write(a.join("cgroup.procs"), "100\n").unwrap();
    let e = create(&fx, "memory", &[Controller::Memory]).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EBUSY), "{e}");
    assert!(e.to_string().contains("no internal processes"), "{e}");
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn v2_rootless_without_delegation_is_unsupported_with_systemd_run() {
    let fx = testutil::v2(SCOPE, true);
    let base = fx.root.join("user.slice/user-1000.slice");
    fx.fs.make_readonly(&base);
    let o = Options {
        pid: PID,
        rootless: true,
    };
    let e = LessonCgroup::create_with(
        &fx.layout,
        "memory",
        &[Controller::Memory],
        o,
        fx.boxed_fs(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("systemd-run --user --scope -p Delegate=yes nsx lesson memory"),
        "{s}"
    );
    assert!(s.contains(&base.display().to_string()), "{s}");
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn v2_rootless_in_a_delegated_scope_without_the_controller() {
    // The user's subtree is writable, but cpu was never passed down to it and the
    // ancestors above are not the user's to change.
    let fx = testutil::v2(SCOPE, true);
    fx.fs
        .make_readonly(&fx.root.join("user.slice/cgroup.subtree_control"));
    fx.fs.make_readonly(&fx.root.join("cgroup.subtree_control"));
    let o = Options {
        pid: PID,
        rootless: true,
    };
    let e = LessonCgroup::create_with(&fx.layout, "cpu", &[Controller::Cpu], o, fx.boxed_fs())
        .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{s}");
    assert!(
        s.contains("cpu controller") && s.contains("Delegate=yes"),
        "{s}"
    );
}

#[test]
fn v2_without_the_controller_on_the_unified_hierarchy_is_unsupported() {
    let fx = testutil::v2(SCOPE, true);
    // Like this machine's /sys/fs/cgroup/unified: only hugetlb.
    fs::write(fx.root.join("cgroup.controllers"), "hugetlb\n").unwrap();
    let e = create(&fx, "cpu", &[Controller::Cpu]).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().contains("cpu controller is not available"),
        "{e}"
    );
}

#[test]
fn actions_serialize_for_the_json_report() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    cg.take_actions();
    cg.set_pids_max(8).unwrap();
    let j = serde_json::to_value(cg.actions()).unwrap();
    assert_eq!(j[0]["op"], "write");
    assert_eq!(j[0]["value"], "8");
    assert!(j[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/nsx/nsx-77-pids/pids.max"));
}

// ---------------------------------------------------------------- names and sweep

#[test]
fn cgroup_names_round_trip() {
    assert_eq!(cgroup_name(42, "memory"), "nsx-42-memory");
    assert_eq!(parse_cgroup_name("nsx-42-memory"), Some(42));
    assert_eq!(parse_cgroup_name("nsx-42-a-b"), Some(42));
    for not in [
        "nsx",
        "nsx-",
        "nsx-42",
        "nsx-42-",
        "nsx-x-memory",
        "nsx--1-memory",
        "other-42-memory",
    ] {
        assert_eq!(parse_cgroup_name(not), None, "{not}");
    }
}

#[test]
fn sweep_removes_only_empty_leftovers_of_dead_runs() {
    let fx = testutil::hybrid(true);
    let mem = fx.root.join("memory/process_api/16b3");
    let pids = fx.root.join("pids");
    for d in [
        mem.join("nsx-1-memory"),
        pids.join("nsx-2-pids"),
        pids.join("nsx-3-pids"),
        pids.join("nsx-x-y"),
        pids.join("keep"),
    ] {
        fx.fs.mkdir(&d).unwrap();
    }
    fs::write(pids.join("nsx-3-pids/cgroup.procs"), "555\n").unwrap();
    let alive = |pid: u32| pid == 2;
    let s = sweep_with(&fx.layout, fx.boxed_fs(), &alive, opts()).unwrap();
    assert_eq!(
        s.removed,
        [Action::new(Op::Rmdir, mem.join("nsx-1-memory"), None)]
    );
    let kept: Vec<&Path> = s.kept.iter().map(|k| k.path.as_path()).collect();
    assert_eq!(
        kept,
        [
            pids.join("nsx-2-pids").as_path(),
            pids.join("nsx-3-pids").as_path()
        ]
    );
    assert!(
        s.kept[0].reason.contains("still running"),
        "{:?}",
        s.kept[0]
    );
    assert!(s.kept[1].reason.contains("EBUSY"), "{:?}", s.kept[1]);
    assert!(pids.join("nsx-x-y").exists() && pids.join("keep").exists());
}

#[test]
fn sweep_on_v2_also_removes_the_empty_subtree() {
    let fx = testutil::v2(SCOPE, true);
    let cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    std::mem::forget(cg); // a run killed before Drop
    let s = sweep_with(&fx.layout, fx.boxed_fs(), &|_| false, opts()).unwrap();
    assert_eq!(s.removed.len(), 2, "{s:?}");
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn liveness_is_an_nsx_comm_in_proc() {
    let proc = tempfile::tempdir().unwrap();
    for (pid, comm) in [(10, "nsx\n"), (11, "bash\n"), (12, "nsx-0a1b2c3d4e5\n")] {
        fs::create_dir(proc.path().join(pid.to_string())).unwrap();
        fs::write(proc.path().join(format!("{pid}/comm")), comm).unwrap();
    }
    assert!(sweep::is_nsx_alive(proc.path(), 10));
    assert!(
        !sweep::is_nsx_alive(proc.path(), 11),
        "a reused PID of another program is dead for us"
    );
    assert!(
        sweep::is_nsx_alive(proc.path(), 12),
        "a cargo test binary of nsx"
    );
    assert!(!sweep::is_nsx_alive(proc.path(), 13));
}

// ---------------------------------------------------------------- without root on v1

fn rootless() -> Options {
    Options {
        pid: PID,
        rootless: true,
    }
}

#[test]
fn v1_rootless_without_write_access_is_unsupported_with_sudo() {
    let fx = testutil::hybrid(false);
    let own_memory = fx.layout.v1_own_dir("memory").unwrap().unwrap();
    fx.fs.make_readonly(&own_memory);
    let e = LessonCgroup::create_with(
        &fx.layout,
        "memory",
        &[Controller::Memory],
        rootless(),
        fx.boxed_fs(),
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{s}");
    assert!(s.contains("cgroup hybrid here"), "{s}");
    assert!(s.contains(&own_memory.display().to_string()), "{s}");
    assert!(s.contains("sudo nsx lesson memory"), "{s}");
    assert!(s.contains("Delegate=yes"), "{s}");
    assert!(nsx_dirs(&fx.root).is_empty());
}

// ---------------------------------------------------------------- cpu weight and quota

#[test]
fn cpu_weight_and_quota_on_both_versions() {
    let fx = testutil::hybrid(false);
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    cg.take_actions();
    assert_eq!(cg.cpu_quota().unwrap(), None);
    cg.set_cpu_weight(10_000).unwrap();
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    assert_eq!(cg.cpu_quota().unwrap(), Some(20_000));
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "cat $CG/cpu/nsx-77-cpu/cpu.cfs_quota_us",
            "echo 102400 > $CG/cpu/nsx-77-cpu/cpu.shares",
            "echo 100000 > $CG/cpu/nsx-77-cpu/cpu.cfs_period_us",
            "echo 20000 > $CG/cpu/nsx-77-cpu/cpu.cfs_quota_us",
            "cat $CG/cpu/nsx-77-cpu/cpu.cfs_quota_us",
        ]
    );
    cg.remove().unwrap();

    let fx = testutil::v2(SCOPE, false);
    let mut cg = create(&fx, "cpu", &[Controller::Cpu]).unwrap();
    cg.take_actions();
    assert_eq!(cg.cpu_quota().unwrap(), None);
    cg.set_cpu_weight(10_000).unwrap();
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    assert_eq!(cg.cpu_quota().unwrap(), Some(20_000));
    let leaf = "$CG/user.slice/user-1000.slice/nsx/nsx-77-cpu";
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            format!("cat {leaf}/cpu.max"),
            format!("echo 10000 > {leaf}/cpu.weight"),
            format!("echo '20000 100000' > {leaf}/cpu.max"),
            format!("cat {leaf}/cpu.max"),
        ]
    );
    // The weight is clamped to each version's range.
    cg.set_cpu_weight(0).unwrap();
    assert_eq!(
        fs::read_to_string(
            fx.root
                .join("user.slice/user-1000.slice/nsx/nsx-77-cpu/cpu.weight")
        )
        .unwrap()
        .trim(),
        "1"
    );
    cg.remove().unwrap();
}
