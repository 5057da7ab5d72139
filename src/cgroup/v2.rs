//! cgroup v2: one unified hierarchy, where a controller acts on a cgroup only when its
//! parent lists it in `cgroup.subtree_control`.
//!
//! Placement (Documentation/admin-guide/cgroup-v2.rst):
//!
//! ```text
//! <base>/                      the parent of nsx's own cgroup (or the root, if nsx is there)
//!   ├── <own cgroup>/          e.g. session-2.scope: holds nsx itself
//!   └── nsx/                   dedicated subtree: never holds a process
//!       └── nsx-<pid>-<start>-<lesson>/   the lesson cgroup: a leaf, holds the probe
//! ```
//!
//! - *No internal processes*: a non-root cgroup can enable domain controllers (memory,
//!   pids, and cpu for non-RT tasks) in its cgroup.subtree_control only while it holds
//!   no processes. nsx's own cgroup holds nsx, so the lesson cgroup cannot be its child
//!   with controllers unless nsx moved itself, which would change the cgroup of the
//!   user's session. Its parent holds no processes in every systemd layout (slices never
//!   do), and the root is exempt from the rule.
//! - *Top-down constraint*: a controller can be enabled in a cgroup only if its parent
//!   enabled it, so nsx enables the needed controllers in every cgroup.subtree_control
//!   from the highest one that lacks them down to `nsx/`, and nowhere else.
//! - *Limits are hierarchical*: the probe stays below `<base>`, so every limit on the
//!   slice nsx runs in (e.g. user-1000.slice's MemoryMax, TasksMax) still applies to it;
//!   only limits set on nsx's own leaf cgroup are not inherited, which the rule above
//!   makes unavoidable without moving nsx.
//! - *Delegation*: without root, nsx can only write where it was delegated: the
//!   directory and its cgroup.procs/cgroup.subtree_control must be writable, and moving
//!   the probe from nsx's cgroup to the lesson cgroup needs write access to the
//!   cgroup.procs of their common ancestor, `<base>` ("Delegation Containment"). In a
//!   systemd user scope started with `Delegate=yes`, `<base>` is the user manager's
//!   app.slice, which the user owns.
//! - nsx enables controllers but never disables them again: a controller in an
//!   ancestor's subtree_control imposes no limit by itself (the defaults are "max"), and
//!   another program (systemd) may have started to rely on it in the meantime.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;

use super::fs::Recorder;
use super::layout::Layout;
use super::limits::parse_cpu_max;
use super::stats::{
    parse_cpu_stat_v2, parse_memory_events, parse_u64, CpuStats, MemoryStats, PidsStats,
};
use super::v1::{not_requested, pids_stats_at};
use super::{mkdir_fresh, parsed, parsed_optional, Backend, Controller, Version};
use crate::error::{Error, Result};

/// The dedicated directory nsx keeps its lesson cgroups in, under `<base>`.
pub const SUBTREE: &str = "nsx";

/// How often to redo the subtree setup when a concurrent nsx removed `nsx/` under us.
const ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct V2 {
    lesson: String,
    controllers: Vec<Controller>,
    /// The cgroup2 mount point (the hierarchy's root as we see it).
    mount: PathBuf,
    /// nsx's own cgroup.
    own: PathBuf,
    /// Where the dedicated subtree hangs: the parent of `own`, or the root.
    base: PathBuf,
    /// `<base>/nsx`.
    subtree: PathBuf,
    /// `<base>/nsx/nsx-<pid>-<start>-<lesson>`.
    leaf: PathBuf,
    rootless: bool,
    /// Set when nsx's own cgroup is delegated to it and its parent is not
    /// ([`V2::delegate_into_own`]): the leaf of its own cgroup nsx moves itself into,
    /// `<own>/nsx-<pid>-<start>-self`; `<base>` is then `<own>`.
    self_leaf: Option<PathBuf>,
}

/// The name of the leaf a run moves itself into inside a delegated cgroup.
pub const SELF_LEAF: &str = "self";

impl V2 {
    pub fn plan(
        layout: &Layout,
        lesson: &str,
        name: &str,
        controllers: &[Controller],
        rootless: bool,
    ) -> Result<V2> {
        let (mut own, mount) = layout.v2_own_dir()?;
        // An earlier lesson of this run moved nsx into a leaf of its delegated cgroup:
        // that cgroup is still its own.
        if own != mount && is_self_leaf(&own) {
            own.pop();
        }
        let base = if own == mount {
            own.clone()
        } else {
            own.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| mount.clone())
        };
        let subtree = base.join(SUBTREE);
        let leaf = subtree.join(name);
        Ok(V2 {
            lesson: lesson.to_string(),
            controllers: controllers.to_vec(),
            mount,
            own,
            base,
            subtree,
            leaf,
            rootless,
            self_leaf: None,
        })
    }

    /// Without root, where the parent of nsx's own cgroup is not the user's but nsx's own
    /// cgroup is (a cgroup delegated to the user: the directory, its cgroup.procs and
    /// cgroup.subtree_control writable, as `systemd-run --user --scope -p Delegate=yes`
    /// or a container manager make it): nsx will move itself into a leaf of its own
    /// cgroup and keep the lesson cgroups beside that leaf, under `<own>/nsx/`, as
    /// rootless runtimes do. cgroup v2's "no internal processes" rule leaves no other
    /// way: its own cgroup can pass controllers on to children only while no process is
    /// in it. Everything stays below the delegated cgroup, so every limit on it applies.
    pub fn delegate_into_own(mut self, rec: &Recorder, run: crate::owner::Run) -> V2 {
        if !self.rootless || self.own == self.mount {
            return self;
        }
        let parent_delegated =
            rec.writable(&self.base) && rec.writable(&self.base.join("cgroup.procs"));
        let own_delegated = rec.writable(&self.own)
            && rec.writable(&self.own.join("cgroup.procs"))
            && rec.writable(&self.own.join("cgroup.subtree_control"));
        if parent_delegated || !own_delegated {
            return self;
        }
        let name = self
            .leaf
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        self.self_leaf = Some(self.own.join(run.name(SELF_LEAF)));
        self.base = self.own.clone();
        self.subtree = self.base.join(SUBTREE);
        self.leaf = self.subtree.join(name);
        self
    }

    /// The leaf nsx moves itself into, when it does ([`V2::delegate_into_own`]).
    pub fn self_leaf(&self) -> Option<&Path> {
        self.self_leaf.as_deref()
    }

    /// Moves nsx (the whole process: cgroup.procs moves every thread) into `me`, a leaf
    /// of its delegated cgroup, unless an earlier lesson of this run did. Moving between
    /// two cgroups needs write access to the cgroup.procs of their common ancestor, here
    /// nsx's own cgroup ("Delegation Containment", cgroup-v2.rst). Then that cgroup must
    /// hold no process: otherwise nsx moves back, removes the leaf and says which
    /// processes are in the way.
    fn move_self_into(&self, rec: &mut Recorder, me: &Path) -> Result<()> {
        let pid = std::process::id().to_string();
        let listed = |rec: &mut Recorder, dir: &Path| -> Result<Vec<String>> {
            Ok(words(&rec.read(&dir.join("cgroup.procs"))?))
        };
        if rec.exists(me) && listed(rec, me)?.contains(&pid) {
            return Ok(());
        }
        rec.mkdir_if_missing(me)?;
        rec.write(&me.join("cgroup.procs"), &pid)?;
        let mut others = Vec::new();
        for p in listed(rec, &self.own)?.into_iter().filter(|p| *p != pid) {
            // nsx's own children (`nsx run` forks the container before it makes the
            // cgroup) come along: they are nsx's to place, and go on into the lesson
            // cgroup from the leaf.
            if parent_of(&p).as_deref() == Some(pid.as_str()) {
                rec.write(&me.join("cgroup.procs"), &p)?;
            } else {
                others.push(p);
            }
        }
        if others.is_empty() {
            return Ok(());
        }
        // Back where it was, and the leaf gone: nothing of this attempt stays.
        rec.write(&self.own.join("cgroup.procs"), &pid)?;
        let _ = rec.rmdir(me);
        let cmd = super::command_for(&self.lesson);
        Err(Error::unsupported(
            format!(
                "nsx runs in {}, a cgroup delegated to this user, which also holds the processes {}: cgroup v2 lets a cgroup pass controllers on to child cgroups only while it holds no process itself (\"no internal processes\"), and nsx moves only itself",
                self.own.display(),
                others.join(" ")
            ),
            format!(
                "move them (your shell) into a leaf first: mkdir {own}/shell && echo $$ > {own}/shell/cgroup.procs (from that shell), then {cmd}; or sudo {cmd}",
                own = self.own.display()
            ),
        ))
    }

    /// `<base>/nsx`, where [`super::sweep()`] looks for leftovers.
    pub fn subtree(&self) -> &Path {
        &self.subtree
    }

    fn names(&self) -> Vec<&'static str> {
        self.controllers.iter().map(|c| c.name()).collect()
    }

    fn need(&self, c: Controller) -> Result<&Path> {
        if self.controllers.contains(&c) {
            Ok(&self.leaf)
        } else {
            Err(not_requested(c))
        }
    }

    /// The cgroups from the mount point down to `<base>`, root first.
    fn chain(&self) -> Vec<PathBuf> {
        let mut chain = vec![self.mount.clone()];
        if let Ok(rel) = self.base.strip_prefix(&self.mount) {
            let mut p = self.mount.clone();
            for c in rel.components() {
                p.push(c);
                chain.push(p.clone());
            }
        }
        chain
    }

    /// Fails early, with the way out, when this user cannot create cgroups at `<base>`.
    fn check_delegated(&self, rec: &Recorder) -> Result<()> {
        let can_create =
            rec.writable(&self.base) || (rec.exists(&self.subtree) && rec.writable(&self.subtree));
        // Moving the probe out of nsx's cgroup needs write access to the cgroup.procs of
        // the common ancestor of source and destination: <base> (Delegation Containment).
        let can_move = rec.writable(&self.base.join("cgroup.procs"));
        if can_create && can_move {
            return Ok(());
        }
        Err(self.not_delegated(&self.base, "is not writable by this user", false))
    }

    /// `only_root`: what stops the user is a cgroup above any scope they could start
    /// (an ancestor root owns does not pass a controller on), so only root can help.
    fn not_delegated(&self, dir: &Path, what: &str, only_root: bool) -> Error {
        let cmd = super::command_for(&self.lesson);
        if self.rootless {
            Error::unsupported(
                format!(
                    "without root, nsx needs a delegated cgroup v2 subtree; {} {what} (nsx runs in {}, and keeps lesson cgroups next to it)",
                    dir.display(),
                    self.own.display()
                ),
                if only_root {
                    crate::doctor::root_delegation_fix(&cmd, "cpu memory pids")
                } else {
                    format!(
                        "start nsx in a delegated systemd scope: systemd-run --user --scope -p Delegate=yes {cmd} (or run it as root: sudo {cmd})"
                    )
                },
            )
        } else {
            Error::unsupported(
                format!(
                    "{} {what} although nsx runs as root: the cgroup file system is read-only here (e.g. inside a container) or this root is in a user namespace",
                    dir.display()
                ),
                "run nsx on the host, or in a container that has a writable cgroup (a privileged container, or one with a delegated cgroup)",
            )
        }
    }

    /// Makes `needed` available to `<base>`'s children: enable them in each
    /// cgroup.subtree_control from the highest cgroup that lacks them down to `<base>`.
    fn enable_down_to_base(&self, rec: &mut Recorder, needed: &[&str]) -> Result<()> {
        let chain = self.chain();
        // Walk up from <base> only as far as needed, reading as few files as possible.
        let mut enabled_at: Vec<Vec<String>> = Vec::new(); // subtree_control of chain[start..]
        let mut start = chain.len();
        for i in (0..chain.len()).rev() {
            let sc = words(&rec.read(&chain[i].join("cgroup.subtree_control"))?);
            if needed.iter().all(|n| sc.iter().any(|s| s == n)) {
                break;
            }
            start = i;
            enabled_at.insert(0, sc);
            let avail = words(&rec.read(&chain[i].join("cgroup.controllers"))?);
            if needed.iter().all(|n| avail.iter().any(|a| a == n)) {
                break;
            }
            if i == 0 {
                let missing: Vec<&str> = needed
                    .iter()
                    .copied()
                    .filter(|n| !avail.iter().any(|a| a == n))
                    .collect();
                return Err(Error::unsupported(
                    format!(
                        "the {} controller{} not available on this cgroup v2 hierarchy ({}/cgroup.controllers lists: {}); it is bound to a cgroup v1 hierarchy or disabled",
                        missing.join(", "),
                        if missing.len() == 1 { " is" } else { "s are" },
                        chain[0].display(),
                        if avail.is_empty() { "nothing".to_string() } else { avail.join(" ") }
                    ),
                    "boot with the controller on v2 (systemd.unified_cgroup_hierarchy=1, or cgroup_no_v1=all), and without cgroup_disable= for it",
                ));
            }
        }
        for (sc, dir) in enabled_at.iter().zip(&chain[start..]) {
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|n| !sc.iter().any(|s| s == n))
                .collect();
            let file = dir.join("cgroup.subtree_control");
            if !rec.writable(&file) {
                return Err(self.not_delegated(
                    dir,
                    &format!("does not pass the {} controller on and its cgroup.subtree_control is not writable", missing.join(", ")),
                    true,
                ));
            }
            rec.write(&file, &plus(&missing))?;
        }
        Ok(())
    }

    /// mkdir `nsx/`, enable the controllers in its subtree_control, mkdir the leaf.
    fn make_subtree_and_leaf(&self, rec: &mut Recorder, needed: &[&str]) -> Result<()> {
        rec.mkdir_if_missing(&self.subtree)?;
        let file = self.subtree.join("cgroup.subtree_control");
        let sc = words(&rec.read(&file)?);
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|n| !sc.iter().any(|s| s == n))
            .collect();
        if !missing.is_empty() {
            rec.write(&file, &plus(&missing))?;
        }
        mkdir_fresh(rec, &self.leaf)
    }
}

/// The parent PID of process `pid`, field 4 of /proc/<pid>/stat (proc(5)), read after
/// the command name in parentheses, which may hold spaces; `None` when it is gone.
fn parent_of(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1).map(str::to_string)
}

/// Whether `dir` is a leaf a run moved itself into (`nsx-<pid>-<start>-self`).
pub fn is_self_leaf(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(crate::owner::parse_name)
        .is_some_and(|(_, what)| what == SELF_LEAF)
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// `+memory +pids`: one write, applied all or nothing (cgroup-v2.rst).
fn plus(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("+{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Backend for V2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn dirs(&self) -> Vec<&Path> {
        vec![&self.leaf]
    }

    fn dir(&self, c: Controller) -> Option<&Path> {
        self.controllers.contains(&c).then_some(self.leaf.as_path())
    }

    fn create(&mut self, rec: &mut Recorder) -> Result<()> {
        if let Some(me) = self.self_leaf.clone() {
            self.move_self_into(rec, &me)?;
        }
        self.check_delegated(rec)?;
        let needed = self.names();
        if !needed.is_empty() {
            self.enable_down_to_base(rec, &needed)?;
        }
        // Another nsx finishing at the same moment may rmdir an empty nsx/ between our
        // mkdir and our next step (ENOENT): set it up again, a bounded number of times.
        let mut attempt = 1;
        loop {
            match self.make_subtree_and_leaf(rec, &needed) {
                Err(e) if e.errno() == Some(Errno::ENOENT) && attempt < ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn set_memory_max(&self, rec: &mut Recorder, bytes: u64) -> Result<()> {
        let dir = self.need(Controller::Memory)?;
        rec.write(&dir.join("memory.max"), &bytes.to_string())?;
        // memory.max does not count swap; memory.swap.max (present with swap accounting)
        // does. 0 keeps the probe from being swapped out instead of meeting the limit.
        let swap = dir.join("memory.swap.max");
        if rec.exists(&swap) {
            rec.write(&swap, "0")?;
        }
        Ok(())
    }

    fn set_cpu_quota(&self, rec: &mut Recorder, quota_us: u64, period_us: u64) -> Result<()> {
        let dir = self.need(Controller::Cpu)?;
        // cpu.max is "$MAX $PERIOD": quota and period in one write.
        rec.write(&dir.join("cpu.max"), &format!("{quota_us} {period_us}"))
    }

    fn set_cpu_weight(&self, rec: &mut Recorder, weight: u64) -> Result<()> {
        // cpu.weight: the group's share against its siblings, 1..10000 (default 100).
        let (lo, _, hi) = Version::V2.cpu_weight_range();
        self.set_cpu_weight_native(rec, weight.clamp(lo, hi))
    }

    fn set_cpu_weight_native(&self, rec: &mut Recorder, value: u64) -> Result<()> {
        let dir = self.need(Controller::Cpu)?;
        // cgroup-v2.rst: a weight outside [1, 10000] is refused (cpu_weight_write_u64
        // returns -ERANGE).
        rec.write(&dir.join("cpu.weight"), &value.to_string())
    }

    fn cpu_weight_native(&self, rec: &mut Recorder) -> Result<u64> {
        let dir = self.need(Controller::Cpu)?;
        parsed(rec, &dir.join("cpu.weight"), |t| parse_u64(t, "cpu.weight"))
    }

    fn cpu_quota(&self, rec: &mut Recorder) -> Result<Option<u64>> {
        let dir = self.need(Controller::Cpu)?;
        parsed(rec, &dir.join("cpu.max"), parse_cpu_max).map(|(max, _)| max)
    }

    fn set_pids_max(&self, rec: &mut Recorder, max: u64) -> Result<()> {
        let dir = self.need(Controller::Pids)?;
        rec.write(&dir.join("pids.max"), &max.to_string())
    }

    fn add_process(&self, rec: &mut Recorder, pid: i32) -> Result<()> {
        // v2 moves whole processes: writing any thread's PID moves all its threads.
        rec.write(&self.leaf.join("cgroup.procs"), &pid.to_string())
    }

    fn memory_stats(&self, rec: &mut Recorder) -> Result<MemoryStats> {
        let dir = self.need(Controller::Memory)?;
        let usage = parsed(rec, &dir.join("memory.current"), |t| {
            parse_u64(t, "memory.current")
        })?;
        // memory.peak appeared in Linux 5.19.
        let peak = parsed_optional(rec, &dir.join("memory.peak"), |t| {
            parse_u64(t, "memory.peak")
        })?;
        let ev = parsed(rec, &dir.join("memory.events"), parse_memory_events)?;
        Ok(MemoryStats {
            usage_bytes: usage,
            peak_bytes: peak,
            limit_hits: ev.max,
            oom: Some(ev.oom),
            under_oom: None,
            oom_kill: ev.oom_kill,
        })
    }

    fn cpu_stats(&self, rec: &mut Recorder) -> Result<CpuStats> {
        let dir = self.need(Controller::Cpu)?;
        let s = parsed(rec, &dir.join("cpu.stat"), parse_cpu_stat_v2)?;
        Ok(CpuStats {
            nr_periods: s.nr_periods,
            nr_throttled: s.nr_throttled,
            throttled_usec: s.throttled_usec,
            usage_usec: s.usage_usec,
        })
    }

    fn pids_stats(&self, rec: &mut Recorder) -> Result<PidsStats> {
        let dir = self.need(Controller::Pids)?;
        pids_stats_at(rec, dir)
    }

    fn remove(&self, rec: &mut Recorder, deadline: Instant) -> Result<()> {
        rec.remove_tree(&self.leaf, deadline)?;
        // nsx/ goes too once it is empty. EBUSY means another nsx run still has a lesson
        // cgroup in it; that run removes nsx/ when it finishes. EACCES/EPERM: it is not
        // ours (e.g. a failed create that never got to make it).
        match rec.rmdir(&self.subtree) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.errno(),
                    Some(Errno::EBUSY | Errno::ENOTEMPTY | Errno::EACCES | Errno::EPERM)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
