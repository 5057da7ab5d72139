//! Removing lesson cgroups left behind by runs that were killed before their `Drop` ran.
//!
//! A leftover is recognised by its name, `nsx-<pid>-<lesson>`, in the places nsx creates
//! lesson cgroups (its own cgroup in each v1 hierarchy; `<base>/nsx` on v2), and by its
//! `<pid>` no longer being an nsx process. It is removed with a single rmdir, which the
//! kernel only allows for a cgroup without processes or children: nothing is ever
//! deleted recursively, and a cgroup still in use stays, with the reason.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fs::{Action, CgroupFs, RealFs, Recorder};
use super::layout::{Layout, Mode};
use super::standard::{self, USED_V1};
use super::{parse_cgroup_name, v2, Options};
use crate::error::Result;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// The rmdirs that succeeded.
    pub removed: Vec<Action>,
    /// Leftover-looking cgroups that were not removed, and why.
    pub kept: Vec<Kept>,
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
        &|pid| is_nsx_alive(Path::new("/proc"), pid),
        Options::current(),
    )
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

/// Sweeps the places `layout` gives, through `fs`; `alive(pid)` says whether the nsx
/// process that created a cgroup is still running.
pub fn sweep_with(
    layout: &Layout,
    fs: Box<dyn CgroupFs>,
    alive: &dyn Fn(u32) -> bool,
    opts: Options,
) -> Result<Sweep> {
    let mut rec = Recorder::new(fs);
    let mut kept = Vec::new();
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
            let plan = v2::V2::plan(layout, "sweep", "nsx-0-sweep", &[], opts.rootless)?;
            places.push(plan.subtree().to_path_buf());
            v2_subtree = Some(plan.subtree().to_path_buf());
        }
    }
    for place in &places {
        if !rec.exists(place) {
            continue;
        }
        for dir in rec.subdirs(place)? {
            let Some(pid) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_cgroup_name)
            else {
                continue;
            };
            if alive(pid) {
                kept.push(Kept {
                    path: dir,
                    reason: format!("nsx process {pid} is still running"),
                });
                continue;
            }
            if let Err(e) = rec.rmdir(&dir) {
                kept.push(Kept {
                    path: dir,
                    reason: format!(
                        "{e} (a process still in it, or a child cgroup: see its cgroup.procs)"
                    ),
                });
            }
        }
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
    })
}

/// Whether `pid` is a running nsx: `/proc/<pid>` exists and its comm is `nsx` (or a cargo
/// test binary of nsx, `nsx-<hash>`, so tests running in parallel are not swept).
pub fn is_nsx_alive(proc_root: &Path, pid: u32) -> bool {
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")) {
        Ok(comm) => {
            let comm = comm.trim_end();
            comm == "nsx" || comm.starts_with("nsx-")
        }
        Err(_) => false,
    }
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
