//! What the memory, cpu and pids lessons share: opening the lesson cgroup (after sweeping
//! what killed runs left), what a recording keeps of it, and the pieces their judges
//! build steps from: the probe's cgroup as /proc/…/cgroup shows it, the cgroup operations
//! as shell commands, a sentence on the machine's setup, and the v1 ↔ v2 names of the
//! files used.
//!
//! The seed article's point is that a cgroup is a directory, a limit is a value written
//! into a file, and joining is writing a PID into a file. So every step's actions are the
//! cgroup operations exactly as performed (`mkdir`, `echo 33554432 > …`, `echo 4242 >
//! …/cgroup.procs`, `cat …`, `rmdir`), interleaved with the clone of the probe.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::engine::Measure;
use crate::cgroup::{self, Action, Controller, LessonCgroup, Mode, Op, Version};
use crate::error::Result;
use crate::observe::View;
use crate::report::{Step, Val};

/// What a recording keeps of the lesson cgroup: where it was made and on what setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub mode: Mode,
    pub version: Version,
    /// `nsx-<pid>-<start>-<lesson>`.
    pub name: String,
    /// The directory it was made in: nsx's own cgroup in the controller's hierarchy (v1),
    /// or nsx's subtree (v2).
    pub parent: String,
    /// Hybrid only: what the cgroup2 mount's cgroup.controllers listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified_controllers: Option<Vec<String>>,
}

/// Removes cgroups left by killed runs (their `Drop` never ran), then creates this
/// lesson's cgroup for `controller` and, on a hybrid machine, reads what the cgroup2
/// mount holds. The actions so far stay in the cgroup's record (take them with the
/// lesson's own setup).
pub fn open(
    m: &mut Measure,
    lesson: &str,
    controller: Controller,
) -> Result<(LessonCgroup, Cgroup)> {
    sweep(m);
    let mut cg = LessonCgroup::create(lesson, &[controller])?;
    let unified_controllers = cg.unified_controllers()?;
    let parent = cg
        .dir(controller)
        .and_then(Path::parent)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let info = Cgroup {
        mode: cg.mode(),
        version: cg.version(),
        name: cg.name().to_string(),
        parent,
        unified_controllers,
    };
    Ok((cg, info))
}

/// Sweeps leftovers of killed runs and notes what was removed. A leftover that cannot be
/// removed (a process still in it) is left for the next run, with a warning and a note
/// that say where it is and why.
pub fn sweep(n: &mut Measure) {
    match cgroup::sweep() {
        Ok(s) => note_sweep(n, &s),
        Err(e) => left_behind(
            n,
            format!("nsx could not look for cgroups left by killed runs: {e}"),
        ),
    }
}

/// Notes what a cgroup sweep removed, and warns about what it could not.
pub fn note_sweep(n: &mut Measure, s: &cgroup::Sweep) {
    for a in &s.removed {
        n.note(format!(
            "removed a cgroup left by an nsx run that was killed: {a}"
        ));
    }
    for k in &s.failed {
        left_behind(
            n,
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
pub fn left_behind(n: &mut Measure, text: String) {
    crate::warn!("nsx: warning: {text}");
    n.note(text);
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

/// Where the removal of the lesson cgroup is shown: a note after the last step, since
/// with --step that step is on screen (and the cgroup alive) before nsx removes it.
/// `None` before the removal (a run shown while it pauses).
pub fn teardown_note(teardown: &[Action]) -> Option<String> {
    if teardown.is_empty() {
        return None;
    }
    Some(format!(
        "after the last step nsx removed what it made: {}",
        shell(teardown).join("; ")
    ))
}

/// For a presenter's second terminal: `cat DIR/FILE` for each of `files` that `dir`
/// holds (a file this kernel lacks, such as memory.peak before Linux 5.19, is left out).
pub fn look(dir: Option<&Path>, files: &[&str]) -> Vec<String> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    files
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| format!("cat {}", super::kit::shell_word(&p.display().to_string())))
        .collect()
}

/// The path of `view`'s probe in the hierarchy that holds `controller`, as its
/// /proc/…/cgroup shows it (`hierarchy-ID:controller-list:path`, cgroups(7)): on v1 the
/// line naming the controller, on v2 the `0::` line. `None` when no line says.
pub fn cgroup_path(view: &View, controller: Controller, version: Version) -> Option<String> {
    let lines = crate::observe::cgroup::parse_cgroup(&view.probe.cgroup.join("\n")).ok()?;
    lines
        .into_iter()
        .find(|l| match version {
            Version::V1 => l.controllers.iter().any(|c| c == controller.name()),
            Version::V2 => l.is_v2(),
        })
        .map(|l| l.path)
}

/// [`cgroup_path`] as a row value.
pub fn path_val(view: &View, controller: Controller, version: Version) -> Val {
    match cgroup_path(view, controller, version) {
        Some(p) => Val::Path(p),
        None => Val::None("not listed".into()),
    }
}

/// The label of the cgroup row: which hierarchy's line it is.
pub fn cgroup_label(controller: Controller, version: Version) -> String {
    match version {
        Version::V1 => format!("{controller} cgroup"),
        Version::V2 => "v2 cgroup".to_string(),
    }
}

/// One sentence: which setup this machine has, and so which files nsx used. On a hybrid
/// machine it says what the cgroup2 mount holds, as this run read it.
pub fn mode_note(cg: &Cgroup, controller: Controller) -> String {
    let dir = &cg.parent;
    match cg.mode {
        Mode::V1 => format!(
            "this machine runs cgroup v1: each controller has its own hierarchy, and the {controller} one is mounted with nsx's own cgroup at {dir}, so nsx made its directory there and used the v1 files"
        ),
        Mode::Hybrid => {
            let holds = match cg.unified_controllers.as_deref() {
                Some([]) => "no controller (its cgroup.controllers is empty: it only tracks processes)".to_string(),
                Some(list) => format!(
                    "{} (its cgroup.controllers), not {controller}",
                    list.join(" ")
                ),
                None => "controllers nsx did not read".to_string(),
            };
            format!(
                "this machine runs cgroup hybrid: the cgroup2 mount at /sys/fs/cgroup/unified holds {holds}; the {controller} controller is a v1 hierarchy, so nsx made its directory under its own {controller} cgroup at {dir} and used the v1 files"
            )
        }
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
                    .split(|c: char| {
                        c.is_whitespace() || matches!(c, ',' | '+' | '"' | '(' | ')' | ':' | ';')
                    })
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

/// The cgroup part of a step's `extra`: which cgroup, on which setup, what was done to
/// it, and the Rosetta rows.
pub fn extra(cg: &Cgroup, actions: &[Action], rows: &[&cgroup::Rosetta]) -> Value {
    json!({
        "cgroup": {
            "mode": cg.mode,
            "version": cg.version,
            "name": cg.name,
            "actions": actions,
            "rosetta": rows,
        }
    })
}

/// A view for a side whose probe died before it could look at itself.
pub fn unseen(why: &str) -> View {
    View {
        source: format!("(nothing: {why})"),
        ..View::default()
    }
}

/// A step of a limit lesson: its actions in order, its rows, and both views.
pub fn step(
    id: &str,
    title: String,
    actions: Vec<String>,
    host: &View,
    container: &View,
    rows: Vec<crate::report::Row>,
) -> Step {
    Step {
        id: id.into(),
        title,
        actions,
        rows,
        notes: Vec::new(),
        takeaway: None,
        columns: None,
        extra: json!({}),
        host: host.clone(),
        container: container.clone(),
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
        // under_oom is a state: its row says v2 has none, and no v2 counter stands in.
        let under = rows.iter().find(|r| r.v1.contains("under_oom")).unwrap();
        assert!(!under.v2.contains("memory.events"), "{under}");
        // Not written: no swap limit row; not read: no peak row.
        assert!(!whats.contains(&"swap limit"), "{whats:?}");
        assert!(!whats.contains(&"peak memory"), "{whats:?}");

        let v2 = [
            write("/cg/nsx/x/memory.max"),
            read("/cg/nsx/x/memory.events"),
            read("/cg/nsx/x/memory.peak"),
        ];
        let rows = rosetta(Controller::Memory, Version::V2, &v2);
        let whats: Vec<&str> = rows.iter().map(|r| r.what).collect();
        assert!(whats.contains(&"memory limit") && whats.contains(&"peak memory"));
        assert!(whats.contains(&"OOM kills"), "{whats:?}");
        // The count of OOM events is v2's memory.events oom, and v1 has no such file.
        let count = rows.iter().find(|r| r.v2 == "memory.events oom").unwrap();
        assert!(!count.v1.contains("under_oom"), "{count}");
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
            cgroup_path(&v, Controller::Memory, Version::V1).as_deref(),
            Some("/process_api/16b3/nsx-7-memory")
        );
        assert_eq!(
            cgroup_path(&v, Controller::Cpu, Version::V1).as_deref(),
            Some("/a")
        );
        assert_eq!(
            cgroup_path(&v, Controller::Pids, Version::V2).as_deref(),
            Some("/")
        );
        v.probe.cgroup.clear();
        assert_eq!(cgroup_path(&v, Controller::Pids, Version::V1), None);
        assert!(path_val(&v, Controller::Pids, Version::V1).is_none());
    }

    #[test]
    fn the_hybrid_note_says_what_the_cgroup2_mount_holds() {
        let mut cg = Cgroup {
            mode: Mode::Hybrid,
            version: Version::V1,
            name: "nsx-1-2-memory".into(),
            parent: "/sys/fs/cgroup/memory/a".into(),
            unified_controllers: Some(vec!["hugetlb".into()]),
        };
        let note = mode_note(&cg, Controller::Memory);
        assert!(
            note.contains("holds hugetlb (its cgroup.controllers)"),
            "{note}"
        );
        assert!(!note.contains("only tracks processes"), "{note}");
        cg.unified_controllers = Some(vec![]);
        let note = mode_note(&cg, Controller::Memory);
        assert!(note.contains("no controller"), "{note}");
    }
}
