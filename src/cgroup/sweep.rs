//! Removing lesson cgroups left behind by runs that were killed before their `Drop` ran.
//!
//! A leftover is recognised by its name, `nsx-<pid>-<start>-<lesson>` ([`crate::owner`]),
//! in the places nsx creates lesson cgroups (its own cgroup in each v1 hierarchy;
//! `<base>/nsx` on v2), and by that run no longer being alive: no process with that PID
//! and that start time, whatever its executable is called. A leftover of a dead run is
//! removed with rmdir, children first (the cost lesson times mkdir/rmdir of a child of
//! its cgroup, which a SIGKILL can leave behind), which the kernel only allows for
//! cgroups without processes: nothing is ever deleted recursively by force, and a cgroup
//! still in use stays, with the reason.
//!
//! Names from before nsx recorded the start time (`nsx-<pid>-<lesson>`) are removed only
//! once no process at all has that PID ([`Owner::may_be_alive`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::fs::{Action, CgroupFs, RealFs, Recorder};
use super::layout::{Layout, Mode};
use super::standard::{self, USED_V1};
use super::{parse_cgroup_name, v2, Options, Owner};
use crate::error::Result;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// The rmdirs that succeeded.
    pub removed: Vec<Action>,
    /// Cgroups of runs that are still alive: left alone, as they should be.
    pub kept: Vec<Kept>,
    /// Leftovers of dead runs that could not be removed, and why: worth a warning.
    pub failed: Vec<Kept>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub path: PathBuf,
    pub reason: String,
}

/// Sweeps this machine, judging liveness from /proc.
///
/// On v1 and hybrid, the places are first only looked at, where the hierarchies are
/// mounted on a standard machine ([`might_hold_leftovers`]); the mounts are looked up
/// (and the sweep done in them) only when one of those holds an nsx cgroup or cannot be
/// listed. So a run with nothing to sweep does not look up hierarchies its lesson does
/// not use.
pub fn sweep() -> Result<Sweep> {
    let base = Layout::current_for(&[])?;
    if base.mode != Mode::V2 && !might_hold_leftovers(&base) {
        return Ok(Sweep::default());
    }
    let layout = Layout::current_for(&USED_V1)?;
    sweep_with(
        &layout,
        Box::new(RealFs),
        &|owner| owner.may_be_alive(Path::new("/proc")),
        Options::current(),
    )
}

/// Sweeps one directory that holds nsx cgroups (the cgroupns lesson's place: nsx's own
/// cgroup in the hierarchy it shows), judging liveness from /proc.
pub fn sweep_place(place: &Path) -> Result<Sweep> {
    let mut rec = Recorder::new(Box::new(RealFs));
    let (mut kept, mut failed) = (Vec::new(), Vec::new());
    sweep_dir(
        &mut rec,
        place,
        &|owner| owner.may_be_alive(Path::new("/proc")),
        &mut kept,
        &mut failed,
    )?;
    Ok(Sweep {
        removed: rec.take_actions(),
        kept,
        failed,
    })
}

/// Whether a sweep could find anything: some nsx-named directory in our own cgroup at
/// the standard place of a v1 hierarchy nsx uses, or such a place that cannot be
/// listed. Only reads directories; nothing is removed on its word. A machine whose
/// hierarchies are elsewhere has no such places, which sends it to the full sweep.
pub fn might_hold_leftovers(base: &Layout) -> bool {
    for c in USED_V1 {
        let Some(line) = standard::v1_line(&base.membership, c) else {
            continue;
        };
        let rel = line.path.strip_prefix("/").unwrap_or(&line.path);
        let place = standard::standard_place(&base.root, line).join(rel);
        let Ok(entries) = std::fs::read_dir(&place) else {
            return true;
        };
        for entry in entries {
            let Ok(entry) = entry else { return true };
            if entry
                .file_name()
                .to_str()
                .and_then(parse_cgroup_name)
                .is_some()
            {
                return true;
            }
        }
    }
    false
}

/// Sweeps the places `layout` gives, through `fs`; `alive(owner)` says whether the nsx
/// run that created a cgroup may still be running.
pub fn sweep_with(
    layout: &Layout,
    fs: Box<dyn CgroupFs>,
    alive: &dyn Fn(&Owner) -> bool,
    opts: Options,
) -> Result<Sweep> {
    let mut rec = Recorder::new(fs);
    let (mut kept, mut failed) = (Vec::new(), Vec::new());
    let mut places: Vec<PathBuf> = Vec::new();
    let mut v2_subtree = None;
    match layout.mode {
        Mode::V1 | Mode::Hybrid => {
            for sub in ["memory", "cpu", "cpuacct", "pids"] {
                if let Some(dir) = layout.v1_own_dir(sub)? {
                    if !places.contains(&dir) {
                        places.push(dir);
                    }
                }
            }
        }
        Mode::V2 => {
            let plan = v2::V2::plan(layout, "sweep", "nsx-0-sweep", &[], opts.rootless)?
                .delegate_into_own(&rec, opts.run);
            places.push(plan.subtree().to_path_buf());
            // The leaves dead runs moved themselves into, beside the subtree: empty
            // once their run is gone, so rmdir takes them.
            if let Some(parent) = plan.self_leaf().and_then(Path::parent) {
                places.push(parent.to_path_buf());
            }
            v2_subtree = Some(plan.subtree().to_path_buf());
        }
    }
    for place in &places {
        sweep_dir(&mut rec, place, alive, &mut kept, &mut failed)?;
    }
    if let Some(subtree) = v2_subtree {
        // The dedicated v2 subtree goes too when nothing is left in it; another run may
        // be using it, in which case rmdir fails and it stays.
        if rec.exists(&subtree) && rec.subdirs(&subtree)?.is_empty() {
            let _ = rec.rmdir(&subtree);
        }
    }
    Ok(Sweep {
        removed: rec.take_actions(),
        kept,
        failed,
    })
}

/// The nsx-named children of `place`: those of live runs go to `kept`, the others are
/// removed (children first, rmdir only), or go to `failed` with the kernel's reason.
fn sweep_dir(
    rec: &mut Recorder,
    place: &Path,
    alive: &dyn Fn(&Owner) -> bool,
    kept: &mut Vec<Kept>,
    failed: &mut Vec<Kept>,
) -> Result<()> {
    if !rec.exists(place) {
        return Ok(());
    }
    for dir in rec.subdirs(place)? {
        let Some(owner) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_cgroup_name)
        else {
            continue;
        };
        if alive(&owner) {
            kept.push(Kept {
                path: dir,
                reason: format!("{owner} is still running"),
            });
            continue;
        }
        // rmdir(2) of each child cgroup, then of the leftover itself; EBUSY (a process
        // still in one) is retried a few times, for a process that is still exiting.
        if let Err(e) = rec.remove_tree(&dir, Instant::now()) {
            failed.push(Kept {
                path: dir,
                reason: format!(
                    "{e} (a process is still in it or in a child cgroup: see their cgroup.procs)"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_only_looked_for_at_the_standard_places() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let cg = "4:memory:/a/b\n3:cpu,cpuacct:/\n8:pids:/\n1:name=systemd:/x\n0::/\n";
        let base = Layout::from_parts(Mode::Hybrid, root, "", cg).unwrap();
        // Nothing at the standard places: not a standard machine, so the full sweep
        // (which looks the mounts up) decides.
        assert!(might_hold_leftovers(&base));
        for d in ["memory/a/b", "cpu,cpuacct", "pids"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        assert!(!might_hold_leftovers(&base));
        // Other cgroups, and names that are not nsx's, are no reason.
        std::fs::create_dir(root.join("memory/a/b/other")).unwrap();
        std::fs::create_dir(root.join("pids/nsx-x-y")).unwrap();
        std::fs::create_dir(root.join("memory/nsx-42-memory")).unwrap();
        assert!(
            !might_hold_leftovers(&base),
            "only our own cgroup's children count"
        );
        // A lesson cgroup in our own cgroup of any hierarchy is, and stays where it is.
        let leftover = root.join("cpu,cpuacct/nsx-42-cpu");
        std::fs::create_dir(&leftover).unwrap();
        assert!(might_hold_leftovers(&base));
        assert!(leftover.exists());
        // On v2 the sweep always looks the one hierarchy up: the lesson needs it anyway.
        let v2 = Layout::from_parts(Mode::V2, root, "", "0::/\n").unwrap();
        assert!(!might_hold_leftovers(&v2));
    }
}
