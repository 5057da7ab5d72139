//! Backends on fixture trees (see testutil): which directories, which files, which values,
//! in which order; and what is left afterwards.

use crate::error::op;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::testutil::{self, Fixture};
use super::*;
use crate::owner::Run;

const RUN: Run = Run { pid: 77, start: 5 };

fn opts() -> Options {
    Options {
        run: RUN,
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
    assert_eq!(cg.name(), "nsx-77-5-memory");
    assert_eq!(cg.mode(), Mode::Hybrid);
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "mkdir $CG/memory/process_api/16b3/nsx-77-5-memory",
            "mkdir $CG/cpu/nsx-77-5-memory",
            "mkdir $CG/cpuacct/nsx-77-5-memory",
            "mkdir $CG/pids/nsx-77-5-memory",
        ]
    );
    assert_eq!(
        cg.dir(Controller::Memory).unwrap(),
        fx.root.join("memory/process_api/16b3/nsx-77-5-memory")
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
    let d = "$CG/memory/process_api/16b3/nsx-77-5-memory";
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
            ["echo 1048576 > $CG/memory/process_api/16b3/nsx-77-5-memory/memory.limit_in_bytes"]
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
            "echo 100000 > $CG/cpu/nsx-77-5-cpu/cpu.cfs_period_us",
            "echo 20000 > $CG/cpu/nsx-77-5-cpu/cpu.cfs_quota_us"
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
            "echo 8 > $CG/pids/nsx-77-5-pids/pids.max",
            "echo 4243 > $CG/pids/nsx-77-5-pids/cgroup.procs",
            "echo 4243 > $CG/memory/process_api/16b3/nsx-77-5-pids/cgroup.procs",
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
        [format!("mkdir $CG/cpu,cpuacct/{scope}/nsx-77-5-cpu")]
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
            "rmdir $CG/pids/nsx-77-5-pids/inner/deeper",
            "rmdir $CG/pids/nsx-77-5-pids/inner",
            "rmdir $CG/pids/nsx-77-5-pids"
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
    fx.fs.mkdir(&fx.root.join("pids/nsx-77-5-pids")).unwrap();
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    assert_eq!(
        shell(&cg.take_actions(), &fx.root),
        [
            "rmdir $CG/pids/nsx-77-5-pids",
            "mkdir $CG/pids/nsx-77-5-pids"
        ]
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
            format!("mkdir {s}/nsx/nsx-77-5-memory"),
        ]
    );
    let leaf = fx
        .root
        .join("user.slice/user-1000.slice/nsx/nsx-77-5-memory");
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
            "mkdir $CG/user.slice/user-1000.slice/nsx/nsx-77-5-cpu",
        ]
    );
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    let a = shell(&cg.take_actions(), &fx.root);
    assert_eq!(
        a,
        ["echo '20000 100000' > $CG/user.slice/user-1000.slice/nsx/nsx-77-5-cpu/cpu.max"]
    );
}

#[test]
fn v2_at_the_root_uses_the_root_which_may_hold_processes() {
    let fx = testutil::v2("/", true);
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    assert_eq!(cg.dirs(), [fx.root.join("nsx/nsx-77-5-pids").as_path()]);
    cg.add_process(4243).unwrap();
    // The fixture's processes never exit by themselves.
    fs::write(fx.root.join("nsx/nsx-77-5-pids/cgroup.procs"), "").unwrap();
    cg.remove().unwrap();
    assert!(nsx_dirs(&fx.root).is_empty());
}

#[test]
fn v2_memory_limit_also_forbids_swap() {
    let fx = testutil::v2(SCOPE, true);
    let mut cg = create(&fx, "memory", &[Controller::Memory]).unwrap();
    cg.take_actions();
    cg.set_memory_max(32 << 20).unwrap();
    let l = "$CG/user.slice/user-1000.slice/nsx/nsx-77-5-memory";
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
    let l = "$CG/user.slice/user-1000.slice/nsx/nsx-77-5-memory";
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
            format!("rmdir {s}/nsx/nsx-77-5-pids"),
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
            run: Run { pid: 88, start: 5 },
            rootless: false,
        },
        fx.boxed_fs(),
    )
    .unwrap();
    let mut cg = create(&fx, "pids", &[Controller::Pids]).unwrap();
    cg.remove().unwrap();
    assert!(fx
        .root
        .join("user.slice/user-1000.slice/nsx/nsx-88-5-pids")
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
    // A login session's scope belongs to root, as its parent does: nothing is delegated.
    let own = fx.root.join(SCOPE.trim_start_matches('/'));
    for p in [
        own.clone(),
        own.join("cgroup.procs"),
        own.join("cgroup.subtree_control"),
    ] {
        fx.fs.make_readonly(&p);
    }
    let o = Options {
        run: RUN,
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
        run: RUN,
        rootless: true,
    };
    let e = LessonCgroup::create_with(&fx.layout, "cpu", &[Controller::Cpu], o, fx.boxed_fs())
        .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{s}");
    assert!(s.contains("cpu controller"), "{s}");
    // Only root can pass cpu on from above the user's subtree: a scope of the user's
    // own (systemd-run --user) would not have it either (issue 15).
    assert!(
        s.contains("sudo nsx lesson cpu") && s.contains("Delegate=cpu"),
        "{s}"
    );
    assert!(!s.contains("systemd-run --user"), "{s}");
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
        .ends_with("/nsx/nsx-77-5-pids/pids.max"));
}

// ---------------------------------------------------------------- names and sweep

#[test]
fn cgroup_names_round_trip() {
    let run = Run {
        pid: 42,
        start: 1234,
    };
    assert_eq!(cgroup_name(run, "memory"), "nsx-42-1234-memory");
    assert_eq!(
        parse_cgroup_name("nsx-42-1234-memory"),
        Some(Owner::Run(run))
    );
    assert_eq!(parse_cgroup_name("nsx-42-1234-a-b"), Some(Owner::Run(run)));
    // The names of nsx before it recorded the start time.
    assert_eq!(parse_cgroup_name("nsx-42-memory"), Some(Owner::Pid(42)));
    assert_eq!(parse_cgroup_name("nsx-42-a-b"), Some(Owner::Pid(42)));
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
fn sweep_removes_only_leftovers_of_dead_runs_children_first() {
    let fx = testutil::hybrid(true);
    let mem = fx.root.join("memory/process_api/16b3");
    let pids = fx.root.join("pids");
    let (dead, live, busy) = (
        Run { pid: 1, start: 10 },
        Run { pid: 2, start: 20 },
        Run { pid: 3, start: 30 },
    );
    let cost = mem.join(dead.name("cost"));
    for d in [
        mem.join(dead.name("memory")),
        cost.clone(),
        // What a SIGKILL in the cost lesson's mkdir/rmdir loop leaves.
        cost.join("nsx-cost-probe"),
        pids.join(live.name("pids")),
        pids.join(busy.name("pids")),
        pids.join("nsx-x-y"),
        pids.join("keep"),
    ] {
        fx.fs.mkdir(&d).unwrap();
    }
    fs::write(pids.join(busy.name("pids")).join("cgroup.procs"), "555\n").unwrap();
    let alive = |o: &Owner| *o == Owner::Run(live);
    let s = sweep_with(&fx.layout, fx.boxed_fs(), &alive, opts()).unwrap();
    let mut removed: Vec<PathBuf> = s.removed.iter().map(|a| a.path.clone()).collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            cost.clone(),
            cost.join("nsx-cost-probe"),
            mem.join(dead.name("memory"))
        ]
    );
    let child_first = s
        .removed
        .iter()
        .position(|a| a.path == cost.join("nsx-cost-probe"));
    let parent = s.removed.iter().position(|a| a.path == cost);
    assert!(child_first < parent, "{s:?}");
    assert!(s.removed.iter().all(|a| a.op == Op::Rmdir), "{s:?}");
    let kept: Vec<&Path> = s.kept.iter().map(|k| k.path.as_path()).collect();
    assert_eq!(kept, [pids.join(live.name("pids")).as_path()]);
    assert!(s.kept[0].reason.contains("still running"), "{:?}", s.kept);
    let failed: Vec<&Path> = s.failed.iter().map(|k| k.path.as_path()).collect();
    assert_eq!(failed, [pids.join(busy.name("pids")).as_path()]);
    assert!(s.failed[0].reason.contains("EBUSY"), "{:?}", s.failed);
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
fn liveness_is_pid_and_start_time_never_the_name() {
    let proc = tempfile::tempdir().unwrap();
    // proc(5) stat lines: starttime is field 22.
    let stat = |comm: &str, state: &str, start: u64| {
        let mut f: Vec<String> = vec![state.into()];
        f.extend((4..=21).map(|n| n.to_string()));
        f.push(start.to_string());
        f.extend((23..=52).map(|n| n.to_string()));
        format!("1 ({comm}) {}", f.join(" "))
    };
    for (pid, comm, state, start) in [
        (10, "labtool", "R", 100),
        (11, "nsx", "S", 999),
        (12, "nsx", "Z", 300),
    ] {
        fs::create_dir(proc.path().join(pid.to_string())).unwrap();
        fs::write(
            proc.path().join(format!("{pid}/stat")),
            stat(comm, state, start),
        )
        .unwrap();
    }
    let run = |pid, start| Owner::Run(Run { pid, start });
    assert!(
        run(10, 100).may_be_alive(proc.path()),
        "a copy of nsx named labtool is alive"
    );
    assert!(
        !run(11, 110).may_be_alive(proc.path()),
        "a reused PID, even of a program called nsx, is not the run"
    );
    assert!(
        !run(12, 300).may_be_alive(proc.path()),
        "a zombie has ended"
    );
    assert!(!run(13, 1).may_be_alive(proc.path()));
    // Old names: any process with the PID may be the owner; none at all is a dead run.
    assert!(Owner::Pid(10).may_be_alive(proc.path()));
    assert!(!Owner::Pid(13).may_be_alive(proc.path()));
}

// ---------------------------------------------------------------- without root on v1

fn rootless() -> Options {
    Options {
        run: RUN,
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
            "cat $CG/cpu/nsx-77-5-cpu/cpu.cfs_quota_us",
            "echo 102400 > $CG/cpu/nsx-77-5-cpu/cpu.shares",
            "echo 100000 > $CG/cpu/nsx-77-5-cpu/cpu.cfs_period_us",
            "echo 20000 > $CG/cpu/nsx-77-5-cpu/cpu.cfs_quota_us",
            "cat $CG/cpu/nsx-77-5-cpu/cpu.cfs_quota_us",
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
    let leaf = "$CG/user.slice/user-1000.slice/nsx/nsx-77-5-cpu";
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
                .join("user.slice/user-1000.slice/nsx/nsx-77-5-cpu/cpu.weight")
        )
        .unwrap()
        .trim(),
        "1"
    );
    cg.remove().unwrap();
}

#[test]
fn a_read_only_cgroupfs_is_a_refusal_with_the_reason_not_a_failure() {
    let e = crate::cgroup::read_only_refusal(crate::error::sys(
        op::MKDIR,
        "/sys/fs/cgroup/nsx-1-2-cgroupns",
        Errno::EROFS,
    ));
    match &e {
        Error::Unsupported { reason, fix } => {
            assert!(
                reason.contains("read-only") && reason.contains("EROFS"),
                "{reason}"
            );
            assert!(
                reason.contains("/sys/fs/cgroup/nsx-1-2-cgroupns"),
                "{reason}"
            );
            assert!(fix.contains("docker run --privileged"), "{fix}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.exit_code(), 77);
    // Any other errno stays what it is.
    let busy = crate::cgroup::read_only_refusal(crate::error::sys(
        op::MKDIR,
        "/sys/fs/cgroup/x",
        Errno::EACCES,
    ));
    assert_eq!(busy.errno(), Some(Errno::EACCES));
}

// ------------------------------------------- v2: a cgroup delegated to the user

const DELEGATED: &str = "/user-1000.delegated";

/// A cgroup made for the user and chowned to them, its parent (the root) root's, with
/// `procs` in it; the rootless options of this very process (it moves itself).
fn delegated(procs: &[String]) -> (Fixture, PathBuf, Options) {
    let fx = testutil::v2(DELEGATED, true);
    let own = fx.root.join(DELEGATED.trim_start_matches('/'));
    fs::write(own.join("cgroup.procs"), procs.join("\n") + "\n").unwrap();
    fx.fs.make_readonly(&fx.root);
    fx.fs.make_readonly(&fx.root.join("cgroup.procs"));
    let o = Options {
        run: RUN,
        rootless: true,
    };
    (fx, own, o)
}

fn procs_of(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn v2_in_a_delegated_cgroup_nsx_moves_itself_into_a_leaf_and_puts_lessons_beside_it() {
    let me = std::process::id().to_string();
    let (fx, own, o) = delegated(std::slice::from_ref(&me));
    let mut cg = LessonCgroup::create_with(
        &fx.layout,
        "memory",
        &[Controller::Memory],
        o,
        fx.boxed_fs(),
    )
    .unwrap();
    let self_leaf = own.join(RUN.name("self"));
    assert_eq!(
        procs_of(&self_leaf),
        std::slice::from_ref(&me),
        "nsx moved itself"
    );
    assert!(
        procs_of(&own).is_empty(),
        "the delegated cgroup holds no process now"
    );
    let leaf = own.join("nsx").join(RUN.name("memory"));
    assert_eq!(cg.dir(Controller::Memory), Some(leaf.as_path()));
    cg.set_memory_max(32 << 20).unwrap();
    let lines = shell(cg.actions(), &fx.root);
    let moved = format!(
        "echo {me} > $CG{DELEGATED}/{}/cgroup.procs",
        RUN.name("self")
    );
    assert!(lines.contains(&moved), "{lines:#?}");
    assert!(
        lines.contains(&format!(
            "echo +memory > $CG{DELEGATED}/cgroup.subtree_control"
        )),
        "{lines:#?}"
    );
    // The next lesson of the same run finds nsx in its leaf already: no second move.
    let mut again =
        LessonCgroup::create_with(&fx.layout, "pids", &[Controller::Pids], o, fx.boxed_fs())
            .unwrap();
    assert!(!shell(again.actions(), &fx.root)
        .iter()
        .any(|l| l.contains(&moved[5..])));
    cg.remove().unwrap();
    again.remove().unwrap();
    assert!(!leaf.exists());
    // nsx is still in its leaf (it cannot remove the cgroup it is in): the sweep of a
    // later run removes it once this run is gone.
    assert!(self_leaf.exists());
}

#[test]
fn v2_in_a_delegated_cgroup_with_the_users_shell_in_it_says_how_to_move_the_shell() {
    let me = std::process::id().to_string();
    let (fx, own, o) = delegated(&["4242".to_string(), me.clone()]);
    let e = LessonCgroup::create_with(
        &fx.layout,
        "memory",
        &[Controller::Memory],
        o,
        fx.boxed_fs(),
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{s}");
    assert!(
        s.contains("4242") && s.contains("no internal processes"),
        "{s}"
    );
    assert!(s.contains(&format!("mkdir {}/shell", own.display())), "{s}");
    assert!(s.contains("sudo nsx lesson memory"), "{s}");
    // nsx is back where it was, and nothing it made is left.
    assert!(procs_of(&own).contains(&me));
    assert!(nsx_dirs(&fx.root).is_empty(), "{:?}", nsx_dirs(&fx.root));
}

#[test]
fn v2_a_delegated_parent_keeps_lessons_beside_nsxs_own_cgroup() {
    // The parent is the user's too (systemd's app.slice): nothing moves.
    let me = std::process::id().to_string();
    let fx = testutil::v2(DELEGATED, true);
    let own = fx.root.join(DELEGATED.trim_start_matches('/'));
    fs::write(own.join("cgroup.procs"), format!("{me}\n")).unwrap();
    let o = Options {
        run: RUN,
        rootless: true,
    };
    let cg = LessonCgroup::create_with(
        &fx.layout,
        "memory",
        &[Controller::Memory],
        o,
        fx.boxed_fs(),
    )
    .unwrap();
    assert_eq!(
        cg.dir(Controller::Memory),
        Some(fx.root.join("nsx").join(RUN.name("memory")).as_path())
    );
    assert_eq!(procs_of(&own), [me]);
}

#[test]
fn a_dead_runs_self_leaf_is_swept() {
    let me = std::process::id().to_string();
    let (fx, own, o) = delegated(std::slice::from_ref(&me));
    let dead = Run { pid: 3, start: 9 };
    fs::create_dir(own.join(dead.name("self"))).unwrap();
    fs::write(own.join(dead.name("self")).join("cgroup.procs"), "").unwrap();
    let swept = sweep::sweep_with(
        &fx.layout,
        fx.boxed_fs(),
        &|owner| !matches!(owner, Owner::Run(r) if *r == dead),
        o,
    )
    .unwrap();
    assert!(!own.join(dead.name("self")).exists(), "{swept:?}");
}

#[test]
fn v2_in_a_delegated_cgroup_nsxs_own_children_come_along() {
    // `nsx run` forks the container before it makes the cgroup: that child is nsx's,
    // not the user's shell, and moves with it.
    let me = std::process::id().to_string();
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let kid = child.id().to_string();
    let (fx, own, o) = delegated(&[me.clone(), kid.clone()]);
    let cg = LessonCgroup::create_with(&fx.layout, "run", &[Controller::Memory], o, fx.boxed_fs());
    let _ = child.kill();
    let _ = child.wait();
    cg.unwrap();
    let leaf = own.join(RUN.name("self"));
    assert_eq!(procs_of(&leaf), [me, kid]);
    assert!(procs_of(&own).is_empty());
}
