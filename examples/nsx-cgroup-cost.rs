//! What the memory lesson's cgroup handling costs, against bare system calls on the
//! same files: scripts/bench.sh runs it (as root).
//!
//! One iteration of nsx's side is what the lesson does: `LessonCgroup::create`,
//! `set_memory_max`, `add_process`, and `remove`. Finding the machine's cgroup layout
//! (statfs of /sys/fs/cgroup, /proc/self/cgroup, sysinfo; then statx+statmount of the
//! memory hierarchy's standard place, or else /proc/self/mountinfo) happens once per
//! process: the sweep of leftovers detects the base, `LessonCgroup::create` adds the
//! memory hierarchy. Each iteration therefore does both afresh and creates the cgroup in
//! that layout (`LessonCgroup::create_with`): the figure that counts is that whole,
//! against the bare system calls. Detection and the rest are also shown apart.
//! The bare side then replays exactly the operations nsx recorded (every mkdir, write,
//! read and rmdir, in order, on the same paths) with plain std::fs calls: the same files
//! and the same number of writes by construction. The two alternate, so drift in the
//! machine's load hits both.
//!
//! The process that joins is a `sleep` this program starts; between joining and
//! removing, it is moved back to our own cgroup (untimed on both sides), as the lesson's
//! probe would have left by exiting.
//!
//! Usage: nsx-cgroup-cost [RUNS]   (default 300). Prints medians in µs and the ratio.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nsx::cgroup::{Action, Controller, Layout, LessonCgroup, Mode, Op, Options, RealFs};

fn main() -> ExitCode {
    let runs: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 300,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: nsx-cgroup-cost [RUNS]  (RUNS: a whole number from 1)");
            return ExitCode::from(2);
        }
    };
    match run(runs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsx-cgroup-cost: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Our own memory cgroup's cgroup.procs: where the joined process goes back to.
fn own_procs() -> nsx::Result<PathBuf> {
    let layout = Layout::detect()?;
    let own = match layout.mode {
        Mode::V2 => layout.v2_own_dir()?.0,
        Mode::V1 | Mode::Hybrid => layout.v1_own_dir("memory")?.ok_or_else(|| {
            nsx::Error::unsupported("no memory hierarchy", "mount the memory controller")
        })?,
    };
    Ok(own.join("cgroup.procs"))
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Performs `a` with a plain system call, as a shell script would.
fn replay(a: &Action) -> nsx::Result<()> {
    let p = &a.path;
    let done = match a.op {
        Op::Mkdir => std::fs::create_dir(p),
        Op::Rmdir => std::fs::remove_dir(p),
        Op::Write => write(p, a.value.as_deref().unwrap_or("")),
        Op::Read => std::fs::read_to_string(p).map(drop),
    };
    done.map_err(|e| nsx::Error::Other(format!("bare {a}: {e}")))
}

/// Replays `actions`; on a failure removes the directories it made (newest first).
fn replay_all(actions: &[Action], made: &mut Vec<PathBuf>) -> nsx::Result<()> {
    for a in actions {
        if let Err(e) = replay(a) {
            for d in made.drain(..).rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
        match a.op {
            Op::Mkdir => made.push(a.path.clone()),
            Op::Rmdir => made.retain(|d| d != &a.path),
            _ => {}
        }
    }
    Ok(())
}

fn is_join(a: &Action) -> bool {
    a.op == Op::Write && a.path.file_name().is_some_and(|f| f == "cgroup.procs")
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn run(runs: usize) -> nsx::Result<()> {
    // Which way detection goes on this machine (the same every time in one place).
    let mut fallback = None;
    // Detection alone, back to back, against the same layout read from
    // /proc/self/mountinfo as every detection did before the standard places were asked
    // (detect_all keeps every mount; the parse is the same). Alternating, 100 each.
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for _ in 0..runs.min(100) {
        let t = Instant::now();
        Layout::detect_for(&[])?.extend_to(&["memory"])?;
        fast.push(t.elapsed());
        let t = Instant::now();
        Layout::detect_all()?;
        slow.push(t.elapsed());
    }
    let (fast, slow) = (median(&mut fast), median(&mut slow));
    let back = own_procs()?;
    let mut helper = Command::new("sleep")
        .arg("120")
        .spawn()
        .map_err(|e| nsx::Error::Other(format!("spawn sleep: {e}")))?;
    let pid = helper.id() as i32;
    let leave = || {
        write(&back, &pid.to_string())
            .map_err(|e| nsx::Error::Other(format!("move {pid} back to {}: {e}", back.display())))
    };
    let mut ours = Vec::with_capacity(runs);
    let mut detect = Vec::with_capacity(runs);
    let mut single = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    let mut shown = Vec::new();
    let result = (|| -> nsx::Result<()> {
        for i in 0..runs {
            // nsx, as one lesson process: detect the layout (what the sweep's
            // Layout::current_for(&[]) does first), look up the memory hierarchy (what
            // LessonCgroup::create's Layout::current_for(["memory"]) adds), create, limit,
            // join ... remove.
            let t0 = Instant::now();
            let mut layout = Layout::detect_for(&[])?;
            if let Some(why) = layout.extend_to(&["memory"])? {
                fallback = Some(why);
            }
            let detected = t0.elapsed();
            let mut cg = LessonCgroup::create_with(
                &layout,
                "bench",
                &[Controller::Memory],
                Options::current(),
                Box::new(RealFs),
            )?;
            cg.set_memory_max(32 << 20)?;
            cg.add_process(pid)?;
            let joined = t0.elapsed();
            leave()?;
            let t1 = Instant::now();
            cg.remove()?;
            let whole = joined + t1.elapsed();
            single.push(whole);
            detect.push(detected);
            ours.push(whole - detected);
            let actions = cg.actions().to_vec();
            drop(cg);
            if i == 0 {
                shown = actions.iter().map(|a| a.to_string()).collect();
            }
            // Bare: the same operations on the same files.
            let split = actions
                .iter()
                .position(is_join)
                .map_or(actions.len(), |j| j + 1);
            let mut made = Vec::new();
            let t0 = Instant::now();
            replay_all(&actions[..split], &mut made)?;
            let joined = t0.elapsed();
            if let Err(e) = leave() {
                made.drain(..)
                    .rev()
                    .for_each(|d| drop(std::fs::remove_dir(d)));
                return Err(e);
            }
            let t1 = Instant::now();
            replay_all(&actions[split..], &mut made)?;
            bare.push(joined + t1.elapsed());
        }
        Ok(())
    })();
    // Our own child, by its PID.
    let _ = helper.kill();
    let _ = helper.wait();
    result?;
    let (o, b) = (median(&mut ours), median(&mut bare));
    let (d, one) = (median(&mut detect), median(&mut single));
    println!("operations per run (the same on both sides):");
    for s in &shown {
        println!("  {s}");
    }
    let how = match &fallback {
        None => "statmount(2) of the standard places".to_string(),
        Some(why) => format!("/proc/self/mountinfo, because {why}"),
    };
    println!(
        "medians of {runs}, load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    println!("  layout detection: {d:.0} µs ({how})");
    println!("  back to back: {fast:.0} µs, from /proc/self/mountinfo {slow:.0} µs");
    println!(
        "  create+limit+join+remove: nsx {o:.0} µs   bare {b:.0} µs   ratio {:.2}",
        o / b
    );
    println!(
        "one lesson process, detection + create+limit+join+remove: nsx {one:.0} µs   bare {b:.0} µs   ratio {:.2}   (goal <= 1.5)",
        one / b
    );
    Ok(())
}
