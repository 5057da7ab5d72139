//! What the memory, cpu and pids lessons share: opening the lesson cgroup, showing what
//! was done to it as shell commands, the v1 ↔ v2 names of the files used, and a side
//! channel for probes that may be killed before they can report.
//!
//! The seed article's point is that a cgroup is a directory, a limit is a value written
//! into a file, and joining is writing a PID into a file. So every step's actions are the
//! cgroup operations exactly as performed (`mkdir`, `echo 33554432 > …`, `echo 4242 >
//! …/cgroup.procs`, `cat …`, `rmdir`), interleaved with the clone of the probe.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::Ctx;
use crate::cgroup::{self, Action, Controller, LessonCgroup, Mode, Op, Version};
use crate::error::{Context, Result};
use crate::observe::View;
use crate::sandbox::signals;

/// Removes cgroups left by killed runs (their `Drop` never ran), then creates this
/// lesson's cgroup for `controller`. Leftovers removed are noted in the report.
pub fn open(ctx: &mut Ctx, controller: Controller) -> Result<LessonCgroup> {
    sweep(ctx);
    LessonCgroup::create(ctx.lesson.id, &[controller])
}

/// Sweeps leftovers of killed runs and notes what was removed. A leftover that cannot be
/// removed (a process still in it) is left for the next run, with a warning and a note
/// that say where it is and why.
pub fn sweep(ctx: &mut Ctx) {
    match cgroup::sweep() {
        Ok(s) => note_sweep(ctx, &s),
        Err(e) => left_behind(
            ctx,
            format!("nsx could not look for cgroups left by killed runs: {e}"),
        ),
    }
}

/// Notes what a cgroup sweep removed, and warns about what it could not.
pub fn note_sweep(ctx: &mut Ctx, s: &cgroup::Sweep) {
    for a in &s.removed {
        ctx.note(format!(
            "removed a cgroup left by an nsx run that was killed: {a}"
        ));
    }
    for k in &s.failed {
        left_behind(
            ctx,
            format!(
                "a cgroup left by an nsx run that was killed could not be removed: {}: {}",
                k.path.display(),
                k.reason
            ),
        );
    }
}

/// Something a killed run left that this run could not remove: a warning on standard
/// error, and a note in the report.
pub fn left_behind(ctx: &mut Ctx, text: String) {
    crate::warn!("nsx: warning: {text}");
    ctx.note(text);
}

/// A measured amount, rarely round: `32.0 MiB`, or `512 KiB` below one MiB. (Limits,
/// which are round, print with [`crate::limits::format_memory`]: `32M`.)
pub fn format_mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// The cgroup operations, as the shell commands a student would type.
pub fn shell(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

/// A step's actions in the order they happened: cgroup operations (also kept structured,
/// for the Rosetta rows and the JSON) interleaved with the probe's clone and its own steps.
#[derive(Debug, Default)]
pub struct Log {
    pub lines: Vec<String>,
    pub cgroup: Vec<Action>,
}

impl Log {
    /// Appends what `cg` did since the last call.
    pub fn cgroup(&mut self, cg: &mut LessonCgroup) {
        let actions = cg.take_actions();
        self.lines.extend(shell(&actions));
        self.cgroup.extend(actions);
    }

    /// Appends other actions (the clone, the probe's own steps).
    pub fn extend(&mut self, lines: impl IntoIterator<Item = String>) {
        self.lines.extend(lines);
    }
}

/// The path of `view`'s probe in the hierarchy that holds `controller`, as its
/// /proc/…/cgroup shows it (`hierarchy-ID:controller-list:path`, cgroups(7)): on v1
/// the line naming the controller, on v2 the `0::` line.
pub fn cgroup_path(view: &View, controller: Controller, version: Version) -> String {
    let line = view.probe.cgroup.iter().find(|l| {
        let mut parts = l.splitn(3, ':');
        let (id, ctl) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match version {
            Version::V1 => ctl.split(',').any(|c| c == controller.name()),
            Version::V2 => id == "0" && ctl.is_empty(),
        }
    });
    match line.and_then(|l| l.splitn(3, ':').nth(2)) {
        Some(path) => path.to_string(),
        None => "(not listed)".to_string(),
    }
}

/// The label of the cgroup row: which file and which hierarchy it came from.
pub fn cgroup_label(controller: Controller, version: Version) -> String {
    match version {
        Version::V1 => format!("cgroup in the {controller} hierarchy (/proc/…/cgroup)"),
        Version::V2 => "cgroup (/proc/…/cgroup, 0:: line)".to_string(),
    }
}

/// One sentence: which setup this machine has, and so which files nsx used.
pub fn mode_note(cg: &LessonCgroup, controller: Controller) -> String {
    let dir = cg
        .dir(controller)
        .and_then(Path::parent)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match cg.mode() {
        Mode::V1 => format!(
            "this machine runs cgroup v1: each controller has its own hierarchy, and the {controller} one is mounted with nsx's own cgroup at {dir}, so nsx made its directory there and used the v1 files"
        ),
        Mode::Hybrid => format!(
            "this machine runs cgroup hybrid: the controllers are v1 hierarchies (the cgroup2 mount at /sys/fs/cgroup/unified only tracks processes), so nsx made its directory under its own {controller} cgroup at {dir} and used the v1 files"
        ),
        Mode::V2 => format!(
            "this machine runs cgroup v2: one unified hierarchy, so nsx made one directory in its own subtree {dir} (a cgroup that holds no process, as the \"no internal processes\" rule wants) and used the v2 files"
        ),
    }
}

/// The v1 ↔ v2 rows for what this lesson did: the core operations, and each of the
/// controller's rows whose file appears in `actions` (a file nsx wrote or read).
pub fn rosetta(
    controller: Controller,
    version: Version,
    actions: &[Action],
) -> Vec<&'static cgroup::Rosetta> {
    let files: Vec<String> = actions
        .iter()
        .filter(|a| matches!(a.op, Op::Write | Op::Read))
        .filter_map(|a| a.path.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect();
    cgroup::rosetta_for(controller)
        .into_iter()
        .filter(|r| {
            if r.controller.is_none() {
                return true;
            }
            let names = match version {
                Version::V1 => r.v1,
                Version::V2 => r.v2,
            };
            files.iter().any(|f| {
                names
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '+' || c == '"')
                    .any(|w| w == f)
            })
        })
        .collect()
}

/// The Rosetta rows for files as one note, a small table: `memory limit
/// memory.limit_in_bytes  ↔ memory.max`. mkdir and rmdir, the same on both, stay out of
/// it; the JSON keeps every row and column.
pub fn rosetta_note(rows: &[&cgroup::Rosetta]) -> String {
    let rows: Vec<&cgroup::Rosetta> = rows
        .iter()
        .copied()
        .filter(|r| r.controller.is_some() || r.v2.contains("cgroup."))
        .collect();
    let w = |f: fn(&cgroup::Rosetta) -> &str| rows.iter().map(|r| f(r).chars().count()).max();
    let what_w = w(|r| r.what).unwrap_or(0);
    let v1_w = w(|r| r.v1).unwrap_or(0).max(2);
    let mut s = String::from("the same files under their v1 and v2 names (cgroups(7)):");
    s += &format!("\n      {:what_w$}  {:v1_w$}    v2", "", "v1");
    for r in rows {
        s += &format!("\n      {:what_w$}  {:v1_w$}  ↔ {}", r.what, r.v1, r.v2);
    }
    s
}

/// The cgroup part of a step's `extra`: setup, structured actions, the Rosetta rows.
pub fn extra(cg: &LessonCgroup, actions: &[Action], rows: &[&cgroup::Rosetta]) -> Value {
    json!({
        "mode": cg.mode(),
        "version": cg.version(),
        "name": cg.name(),
        "actions": actions,
        "rosetta": rows,
    })
}

/// A pipe the probe writes to *while* it runs, for what it must say before it might be
/// killed (its own view, its progress). The probe's normal report comes only at its end;
/// a probe killed by the OOM killer never sends one.
///
/// The parent reads it after the probe has ended, so the probe must never write more
/// than a pipe holds (64 KiB by default, pipe(7)) or it would block; [`SideWriter`]
/// refuses to.
pub struct SidePipe {
    reader: File,
}

/// The probe's end of a [`SidePipe`].
pub struct SideWriter {
    file: File,
    written: usize,
}

/// At most this much goes into a side pipe: under the 64 KiB a pipe buffers.
pub const SIDE_CAPACITY: usize = 60 * 1024;

/// A side pipe: the parent keeps the returned reader, the probe closure takes the writer
/// (the parent's copy of it closes when `spawn` drops the closure, so the reader sees EOF
/// once the probe is gone).
pub fn side_pipe() -> Result<(SidePipe, SideWriter)> {
    // pipe2(2) with O_CLOEXEC: nsx never execs, but the flag keeps it out of anything that
    // ever would.
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("pipe2", "side channel")?;
    Ok((
        SidePipe {
            reader: File::from(r),
        },
        SideWriter {
            file: File::from(w),
            written: 0,
        },
    ))
}

impl SideWriter {
    /// Writes `bytes` unless that would go past [`SIDE_CAPACITY`]; `false` if refused.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        if self.written + bytes.len() > SIDE_CAPACITY {
            return false;
        }
        if self.file.write_all(bytes).is_err() {
            return false;
        }
        self.written += bytes.len();
        true
    }

    /// One JSON value on its own line.
    pub fn send_json<T: Serialize>(&mut self, value: &T) -> bool {
        match serde_json::to_vec(value) {
            Ok(mut line) => {
                line.push(b'\n');
                self.send(&line)
            }
            Err(_) => false,
        }
    }
}

impl SidePipe {
    /// Everything the probe wrote, once it has ended (reads to EOF).
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        loop {
            match self.reader.read_to_end(&mut buf) {
                Ok(_) => return Ok(buf),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
                Err(e) => return Err(e).ctx("read", "the probe's side channel"),
            }
        }
    }
}

/// The number in `/proc/<pid>/status` field `key` (VmRSS in kB, Threads), as the host or
/// the probe reads it.
pub fn status_number(status_file: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A view for a side whose probe died before it could look at itself.
pub fn unseen(why: &str) -> View {
    View {
        source: format!("(nothing: {why})"),
        ..View::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn read(path: &str) -> Action {
        Action::new(Op::Read, PathBuf::from(path), Some("0".into()))
    }

    fn write(path: &str) -> Action {
        Action::new(Op::Write, PathBuf::from(path), Some("1".into()))
    }

    #[test]
    fn rosetta_rows_are_the_core_and_the_files_used() {
        let acts = [
            Action::new(Op::Mkdir, PathBuf::from("/cg/memory/x"), None),
            write("/cg/memory/x/memory.limit_in_bytes"),
            write("/cg/memory/x/cgroup.procs"),
            read("/cg/memory/x/memory.failcnt"),
            read("/cg/memory/x/memory.oom_control"),
        ];
        let rows = rosetta(Controller::Memory, Version::V1, &acts);
        let whats: Vec<&str> = rows.iter().map(|r| r.what).collect();
        assert!(whats.contains(&"join"), "{whats:?}");
        assert!(whats.contains(&"memory limit"), "{whats:?}");
        assert!(whats.contains(&"times the limit was hit"), "{whats:?}");
        assert!(whats.contains(&"OOM kills"), "{whats:?}");
        // Not written: no swap limit row; not read: no peak row.
        assert!(!whats.contains(&"swap limit"), "{whats:?}");
        assert!(!whats.contains(&"peak memory"), "{whats:?}");

        let v2 = [
            write("/cg/nsx/x/memory.max"),
            read("/cg/nsx/x/memory.events"),
            read("/cg/nsx/x/memory.peak"),
        ];
        let whats: Vec<&str> = rosetta(Controller::Memory, Version::V2, &v2)
            .iter()
            .map(|r| r.what)
            .collect();
        assert!(whats.contains(&"memory limit") && whats.contains(&"peak memory"));
        assert!(whats.contains(&"OOM kills"), "{whats:?}");
        let cpu = [write("/cg/nsx/x/cpu.max"), read("/cg/nsx/x/cpu.stat")];
        let whats: Vec<&str> = rosetta(Controller::Cpu, Version::V2, &cpu)
            .iter()
            .map(|r| r.what)
            .collect();
        assert!(whats.contains(&"CPU quota") && whats.contains(&"throttling"));
        assert!(!whats.contains(&"CPU weight"), "{whats:?}");
    }

    #[test]
    fn measured_sizes_print_in_mib_or_kib() {
        assert_eq!(format_mib(33_554_432), "32.0 MiB");
        assert_eq!(format_mib(34_000_000), "32.4 MiB");
        assert_eq!(format_mib(65536), "64 KiB");
        assert_eq!(format_mib(0), "0 KiB");
    }

    #[test]
    fn cgroup_path_picks_the_controllers_line() {
        let mut v = View::default();
        v.probe.cgroup = vec![
            "8:pids:/".into(),
            "4:memory:/process_api/16b3/nsx-7-memory".into(),
            "1:cpu,cpuacct:/a".into(),
            "0::/".into(),
        ];
        assert_eq!(
            cgroup_path(&v, Controller::Memory, Version::V1),
            "/process_api/16b3/nsx-7-memory"
        );
        assert_eq!(cgroup_path(&v, Controller::Cpu, Version::V1), "/a");
        assert_eq!(cgroup_path(&v, Controller::Pids, Version::V2), "/");
        v.probe.cgroup.clear();
        assert_eq!(
            cgroup_path(&v, Controller::Pids, Version::V1),
            "(not listed)"
        );
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("status");
        std::fs::write(&f, "Name:\tnsx\nVmHWM:\t   70000 kB\nVmRSS:\t   65536 kB\n").unwrap();
        assert_eq!(status_number(&f, "VmRSS"), Some(65536));
        assert_eq!(status_number(&f, "VmHWM"), Some(70000));
        assert_eq!(status_number(&f, "VmSwap"), None);
    }

    #[test]
    fn the_side_channel_refuses_what_a_pipe_cannot_hold() {
        let (pipe, mut w) = side_pipe().unwrap();
        assert!(w.send_json(&json!({"a": 1})));
        assert!(!w.send(&vec![b'.'; SIDE_CAPACITY]));
        assert!(w.send(b"."));
        drop(w);
        assert_eq!(pipe.read_all().unwrap(), b"{\"a\":1}\n.");
    }
}
