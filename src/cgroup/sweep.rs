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
pub fn sweep() -> Result<Sweep> {
    let layout = Layout::current()?;
    sweep_with(
        layout,
        Box::new(RealFs),
        &|pid| is_nsx_alive(Path::new("/proc"), pid),
        Options::current(),
    )
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
