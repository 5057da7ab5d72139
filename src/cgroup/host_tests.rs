//! Real cgroups on this machine: root only. Without root they print why they skip; with
//! NSX_REQUIRE_PRIVILEGED=1 (CI) they fail instead.
//!
//! The test process is multi-threaded, so it never forks itself: the processes put into
//! lesson cgroups are spawned with std::process::Command (`sleep`, `sh`), killed by their
//! PID, and waited for. Every cgroup is created under this process's own cgroups and
//! removed, which each test checks.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::errno::Errno;

use super::*;

fn privileged(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        match Layout::detect() {
            Ok(_) => None,
            Err(e) => Some(format!("no usable cgroup layout: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if std::env::var("NSX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            panic!("{test} needs root and cgroups, and NSX_REQUIRE_PRIVILEGED=1: {why}")
        }
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

fn gone(dirs: &[PathBuf]) -> bool {
    dirs.iter().all(|d| !d.exists())
}

#[test]
fn host_lesson_cgroup_limits_a_child_and_is_removed() {
    if !privileged("host_lesson_cgroup_limits_a_child_and_is_removed") {
        return;
    }
    let mut cg = LessonCgroup::create(
        "host-limits",
        &[Controller::Memory, Controller::Cpu, Controller::Pids],
    )
    .unwrap();
    let dirs: Vec<PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    cg.set_memory_max(64 << 20).unwrap();
    cg.set_cpu_quota(20_000, 100_000).unwrap();
    cg.set_pids_max(16).unwrap();

    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id() as i32;
    cg.add_process(pid).unwrap();
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let name = cg.name().to_string();
    match cg.version() {
        Version::V1 => {
            for line in membership.lines() {
                let ctl = line.split(':').nth(1).unwrap_or("");
                if ["memory", "cpu", "pids"]
                    .iter()
                    .any(|c| ctl.split(',').any(|x| x == *c))
                {
                    assert!(line.ends_with(&format!("/{name}")), "{line}\n{membership}");
                }
            }
        }
        Version::V2 => assert!(
            membership.contains(&format!("/nsx/{name}\n")),
            "{membership}"
        ),
    }

    let p = cg.pids_stats().unwrap();
    assert_eq!(p.max, Some(16));
    assert!(p.current >= 1, "{p:?}");
    let m = cg.memory_stats().unwrap();
    assert_eq!(m.oom_kill, 0, "{m:?}");
    let c = cg.cpu_stats().unwrap();
    assert!(c.usage_usec.is_some(), "{c:?}");
    if cg.version() == Version::V1 {
        let mem = cg.dir(Controller::Memory).unwrap();
        let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), (64u64 << 20).to_string());
        let quota =
            std::fs::read_to_string(cg.dir(Controller::Cpu).unwrap().join("cpu.cfs_quota_us"))
                .unwrap();
        assert_eq!(quota.trim(), "20000");
    }

    // Our own child, by its PID.
    child.kill().unwrap();
    child.wait().unwrap();
    cg.remove().unwrap();
    assert!(gone(&dirs), "{dirs:?}");
    let rmdirs = cg.actions().iter().filter(|a| a.op == Op::Rmdir).count();
    assert!(rmdirs >= dirs.len(), "{:?}", cg.actions());
}

#[test]
fn host_oom_kill_is_counted() {
    if !privileged("host_oom_kill_is_counted") {
        return;
    }
    let mut cg = LessonCgroup::create("host-oom", &[Controller::Memory]).unwrap();
    let dirs: Vec<PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    cg.set_memory_max(32 << 20).unwrap();
    // The shell waits for a line, so it allocates only once it is in the cgroup. `tail`
    // keeps the current (newline-free) line in memory: 100 MiB of it.
    let mut child = Command::new("sh")
        .args(["-c", "read _; head -c 100M /dev/zero | tail"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cg.add_process(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the pipeline must not survive a 32 MiB limit: {status:?}"
    );
    let m = cg.memory_stats().unwrap();
    assert!(m.oom_kill >= 1, "{m:?}");
    assert!(m.limit_hits >= 1, "{m:?}");
    if let Some(peak) = m.peak_bytes {
        assert!(
            (30 << 20..=33 << 20).contains(&peak),
            "peak {peak} should sit at the 32 MiB limit"
        );
    }
    let shown: Vec<String> = cg.actions().iter().map(|a| a.to_string()).collect();
    eprintln!("host_oom_kill_is_counted: {status:?}\n{}", shown.join("\n"));
    cg.remove().unwrap();
    assert!(gone(&dirs), "{dirs:?}");
}

#[test]
fn host_v1_limit_below_unreclaimable_usage_is_ebusy_and_explained() {
    if !privileged("host_v1_limit_below_unreclaimable_usage_is_ebusy_and_explained") {
        return;
    }
    let mut cg = LessonCgroup::create("host-ebusy", &[Controller::Memory]).unwrap();
    if cg.version() != Version::V1 {
        // v2's memory.max never refuses: it reclaims, then OOM-kills.
        eprintln!("skipping the EBUSY check: it is a cgroup v1 behaviour");
        return;
    }
    let dirs: Vec<PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    let swap = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swap.lines().count() > 1 {
        eprintln!("skipping the EBUSY check: with swap the kernel can reclaim anonymous memory");
        return;
    }
    // 40 MB of anonymous memory (a shell variable), then a line to say it is there.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _; x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo ready; read _",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add_process(child.id() as i32).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let e = cg.set_memory_max(8 << 20).unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(e.errno(), Some(Errno::EBUSY), "{e}");
    assert!(e.to_string().contains("memory.limit_in_bytes"), "{e}");
    assert!(e.to_string().contains("cannot reclaim"), "{e}");
    cg.remove().unwrap();
    assert!(gone(&dirs), "{dirs:?}");
}

#[test]
fn host_sweep_removes_a_dead_runs_leftover_only() {
    if !privileged("host_sweep_removes_a_dead_runs_leftover_only") {
        return;
    }
    // A PID that certainly belonged to a process that is gone: our own finished child.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let live = LessonCgroup::create("host-sweep-live", &[Controller::Pids]).unwrap();
    let live_dir = live.dirs()[0].to_path_buf();
    // The leftover sits where nsx would have put it: beside the live lesson cgroup.
    let leftover = live_dir.parent().unwrap().join(cgroup_name(
        crate::owner::Run {
            pid: dead_pid,
            start: 1,
        },
        "host-sweep",
    ));
    std::fs::create_dir(&leftover).unwrap();
    let s = sweep().unwrap();
    let leftover_exists = leftover.exists();
    if leftover_exists {
        let _ = std::fs::remove_dir(&leftover);
    }
    // Removed by this sweep, or by a concurrent test binary's sweep a moment earlier.
    assert!(!leftover_exists, "{s:?}");
    assert!(live_dir.exists(), "a live run's cgroup must stay");
    assert!(s.kept.iter().any(|k| k.path == live_dir), "{s:?}");
    drop(live);
    assert!(!live_dir.exists());
}

#[test]
fn host_v2_placement_and_removal_on_the_unified_hierarchy() {
    if !privileged("host_v2_placement_and_removal_on_the_unified_hierarchy") {
        return;
    }
    // On a hybrid machine the cgroup2 mount carries no resource controller we use, but
    // it is a real v2 hierarchy: placement, joining and removal can be checked there.
    // (On a v2 machine the other tests already run the v2 backend.)
    // Every mount: on a hybrid machine `detect` keeps only the v1 hierarchies it uses.
    let mut layout = Layout::detect_all().unwrap();
    if layout.mode != Mode::Hybrid {
        eprintln!("skipping: not a hybrid machine");
        return;
    }
    layout.mode = Mode::V2;
    let (own, mount) = layout.v2_own_dir().unwrap();
    if own != mount {
        // Then nsx/ would go beside our cgroup, in a cgroup we did not create.
        eprintln!(
            "skipping: our unified cgroup {} is not the root",
            own.display()
        );
        return;
    }
    let mut cg = LessonCgroup::create_with(
        &layout,
        "host-v2",
        &[],
        Options::current(),
        Box::new(RealFs),
    )
    .unwrap();
    let leaf = cg.dirs()[0].to_path_buf();
    assert_eq!(leaf, mount.join("nsx").join(cg.name()));
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id();
    cg.add_process(pid as i32).unwrap();
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        membership
            .lines()
            .any(|l| l == format!("0::/nsx/{}", cg.name())),
        "{membership}"
    );
    // A cgroup with a live process cannot go: the kernel's EBUSY, retried, then reported.
    let e = cg.remove().unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EBUSY), "{e}");
    assert!(leaf.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    cg.remove().unwrap();
    assert!(!leaf.exists());
    // nsx/ itself is gone too, unless another run (a concurrent test binary) has, or is
    // about to have, a lesson cgroup in it; that run removes it.
    let subtree = mount.join("nsx");
    let settled = (0..20).any(|_| {
        let ok = !subtree.exists()
            || std::fs::read_dir(&subtree).map_or(true, |d| d.flatten().any(|e| e.path().is_dir()));
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ok
    });
    assert!(settled, "an empty nsx/ was left behind");
}
