//! cgroupns: a cgroup namespace makes the probe's cgroup look like the root.
//!
//! cgroup_namespaces(7): a new cgroup namespace takes the cgroup its creator is in as its
//! root. /proc/<pid>/cgroup shows paths relative to the *reader's* namespace root, so the
//! probe reads "/" where the host reads the full path, for the same process at the same
//! moment. A cgroupfs mounted inside is rooted there too: its root directory is the very
//! directory the host sees under /sys/fs/cgroup (same inode, same members).
//!
//! The lesson needs a cgroup that is not the root of its hierarchy, or both sides would
//! read "/". As root nsx does what runtimes do: it makes a child cgroup below its own
//! (never above it: nsx stays within its own limits), moves the probe in, and only then
//! lets the probe unshare the cgroup namespace (Spec::unshare), so the namespace is rooted
//! at the child. The child is owned by a guard that removes it on every way out.
//! Unprivileged, nsx cannot create cgroups; it uses the nesting that already exists (on
//! the development machines the memory hierarchy puts every process in
//! /process_api/<hash>), and says so; with no nesting at all it exits 77.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use procfs::process::MountInfos;
use procfs::FromRead;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ns_label, probe, Ctx, Lesson, Rootless, Run};
use crate::error::{Context, Error, Result};
use crate::observe::cgroup::{cgroup_dir, deepest_mounted, format_of, parse_cgroup, CgroupLine};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Privilege, Row, Step};
use crate::sandbox::{Inside, Spec, TempDir};

pub const LESSON: Lesson = Lesson {
    id: "cgroupns",
    title: "Cgroup namespace: its own cgroup is its root",
    mechanism: "CLONE_NEWCGROUP (+ a cgroupfs mounted in a private mount namespace)",
    man: "cgroup_namespaces(7), cgroups(7), mount(2)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/cgroupns.md"),
    sees: Parts::ns("cgroup").with(Parts::CGROUP),
    facts: &[],
    words: &[
        "cgroups",
        "cgroup",
        "cgroup-namespace",
        "namespace",
        "namespaces",
    ],
    imp: super::Imp::Old(run),
};

fn lines(view: &View) -> Result<Vec<CgroupLine>> {
    parse_cgroup(&view.probe.cgroup.join("\n"))
        .map_err(|e| Error::Other(format!("parse {}/cgroup: {e}", view.source)))
}

/// A child cgroup nsx made below its own; removed (rmdir) when dropped.
struct ChildCgroup {
    dir: PathBuf,
    removed: bool,
}

impl ChildCgroup {
    fn create(parent: &Path) -> Result<Self> {
        // `nsx-<pid>-<start>-cgroupns`: the run that made it, so a later run can remove it
        // once this one is gone (see [`sweep`]).
        let dir = parent.join(crate::owner::Run::current().name("cgroupns"));
        // cgroups(7): a cgroup is created with mkdir(2) in the hierarchy's filesystem.
        std::fs::create_dir(&dir).ctx("mkdir", dir.display())?;
        Ok(ChildCgroup {
            dir,
            removed: false,
        })
    }

    /// rmdir(2) removes an empty cgroup. The probe is reaped by now, but the kernel may
    /// still be detaching it: EBUSY is retried briefly.
    fn remove(&mut self) -> Result<()> {
        self.removed = true;
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(e) => return Err(e).ctx("rmdir", self.dir.display()),
            }
        }
        Err(crate::error::sys("rmdir", self.dir.display(), Errno::EBUSY))
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

/// Removes the child cgroups that killed runs of this lesson left in `place` (their
/// `Drop` never ran), and notes what it removed and what it could not.
fn sweep(ctx: &mut Ctx, place: &Path) {
    match crate::cgroup::sweep_place(place) {
        Ok(s) => super::cgroup_steps::note_sweep(ctx, &s),
        Err(e) => super::cgroup_steps::left_behind(
            ctx,
            format!(
                "nsx could not look for cgroups left by killed runs in {}: {e}",
                place.display()
            ),
        ),
    }
}

/// What the probe saw: its view, and the root of the hierarchy it mounted.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    view: View,
    getpid: i32,
    /// Inode of the mounted hierarchy's root directory, and whether its cgroup.procs
    /// lists the probe.
    mounted: Option<(u64, bool)>,
}

/// The host's look at the cgroup directory: inode, and whether it lists the probe.
#[derive(Debug, Clone, Serialize)]
struct HostDir {
    dir: String,
    ino: u64,
    lists_probe: bool,
}

fn lists(dir: &Path, pid: i32) -> Result<bool> {
    let path = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&path).ctx("read", path.display())?;
    Ok(text.lines().any(|l| l.trim() == pid.to_string()))
}

fn look_dir(dir: &Path, pid: i32) -> Result<HostDir> {
    Ok(HostDir {
        dir: dir.display().to_string(),
        ino: std::fs::metadata(dir).ctx("stat", dir.display())?.ino(),
        lists_probe: lists(dir, pid)?,
    })
}

fn look(inside: &mut Inside) -> Result<Seen> {
    Ok(Seen {
        view: inside.observe()?,
        getpid: nix::unistd::getpid().as_raw(),
        mounted: None,
    })
}

fn rows(
    host: &View,
    inside: &Seen,
    host_dir: Option<&HostDir>,
    mount: &Path,
    name: &str,
) -> Result<Vec<Row>> {
    let mut rows = vec![Row::new(
        "cgroup namespace",
        ns_label("cgroup", host.own_ns("cgroup")),
        ns_label("cgroup", inside.view.own_ns("cgroup")),
    )];
    let inside_lines = lines(&inside.view)?;
    for h in lines(host)? {
        let i = inside_lines.iter().find(|l| l.hierarchy == h.hierarchy);
        rows.push(Row::new(
            format!("/proc/…/cgroup  {}:{}", h.hierarchy, h.name()),
            &h.path,
            i.map_or("(no line)".to_string(), |l| l.path.clone()),
        ));
    }
    if let (Some(d), Some((ino, listed))) = (host_dir, inside.mounted) {
        rows.push(Row::new(
            format!("the {name} cgroup's directory"),
            &d.dir,
            format!("{} (root of the mount)", mount.display()),
        ));
        rows.push(Row::new(
            "its inode number",
            format!("inode {}", d.ino),
            format!("inode {ino}"),
        ));
        rows.push(Row::new(
            "its cgroup.procs lists the probe",
            if d.lists_probe { "yes" } else { "no" },
            if listed { "yes" } else { "no" },
        ));
    }
    Ok(rows)
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let host_lines = lines(&ctx.baseline)?;
    let format = format_of(&host_lines).ok_or_else(|| {
        Error::unsupported(
            "/proc/self/cgroup is empty: this kernel has no cgroup hierarchy",
            "use a kernel with cgroups (CONFIG_CGROUPS) and mount /sys/fs/cgroup",
        )
    })?;
    let mountinfo = "/proc/self/mountinfo";
    let mounts = MountInfos::from_read(std::fs::File::open(mountinfo).ctx("open", mountinfo)?)
        .map_err(|e| Error::Other(format!("parse {mountinfo}: {e}")))?;
    let demo = deepest_mounted(&host_lines, &mounts)
        .cloned()
        .ok_or_else(|| {
            Error::unsupported(
                "no cgroup hierarchy that nsx's process is in is mounted, so neither side could look at its directory",
                "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
            )
        })?;
    let own_dir = cgroup_dir(&mounts, &demo).expect("deepest_mounted returns mounted lines");
    let name = demo.name();

    // A child cgroup when root (as runtimes do); else the nesting that already exists.
    let mut notes = vec![format!(
        "this machine's /proc/self/cgroup has the {} layout ({}): nsx picked the {name} line, the most deeply nested one",
        serde_json::to_value(format).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        format.describe()
    )];
    let mut child_cgroup = None;
    if ctx.privilege == Privilege::Root {
        sweep(ctx, &own_dir);
        match ChildCgroup::create(&own_dir) {
            Ok(c) => child_cgroup = Some(c),
            Err(e) if demo.depth() > 0 => notes.push(format!(
                "nsx could not create a child cgroup ({e}); it shows the nesting that already exists instead"
            )),
            Err(e) => return Err(e),
        }
    } else if demo.depth() == 0 {
        return Err(Error::unsupported(
            "nsx is in the root cgroup of every hierarchy, and an unprivileged user cannot create a child cgroup here, so a cgroup namespace would look the same from both sides",
            "run the lesson as root (nsx then creates a child cgroup), or start it in a nested cgroup: systemd-run --user --scope nsx lesson cgroupns",
        ));
    } else {
        notes.push(format!(
            "nsx runs unprivileged and may not create cgroups, so it uses the nesting that already exists: its {name} cgroup is {}",
            demo.path
        ));
    }
    let (cg_dir, expected_path) = match &child_cgroup {
        Some(c) => (
            c.dir.clone(),
            format!(
                "{}/{}",
                demo.path.trim_end_matches('/'),
                c.dir.file_name().unwrap_or_default().to_string_lossy()
            ),
        ),
        None => (own_dir.clone(), demo.path.clone()),
    };

    // Before: a plain fork reads the same paths as the host.
    let before = probe(&Spec::new(CloneFlags::empty()), look, |_| Ok(()))?;
    let before_fact = Fact::new(
        "before-same-paths",
        format!(
            "before, the probe's /proc/self/cgroup and the host's /proc/{}/cgroup agree line for line ({} lines; {}:{} is {})",
            before.pid,
            before.inside.view.probe.cgroup.len(),
            demo.hierarchy,
            name,
            demo.path
        ),
        before.inside.view.probe.cgroup == before.host.probe.cgroup
            && before.inside.view.own_ns("cgroup") == ctx.baseline.own_ns("cgroup"),
        json!({ "lines": before.inside.view.probe.cgroup.len() }),
    );
    let mount_dir = TempDir::new("cgroupns")?;
    let b_rows = rows(&before.host, &before.inside, None, mount_dir.path(), &name)?;
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "before".into(),
        title: "before: the probe forked with no new namespace".into(),
        rows: b_rows,
        actions: before.actions,
        notes: vec![],
        extra: json!({ "getpid": before.inside.getpid }),
        host: before.host,
        container: before.inside.view,
    })?;

    // After: (child cgroup,) then unshare(CLONE_NEWCGROUP) inside, then mount the
    // hierarchy in a private mount namespace and look at its root.
    let spec = Spec {
        namespaces: CloneFlags::CLONE_NEWNS,
        unshare: CloneFlags::CLONE_NEWCGROUP,
        ..Spec::default()
    };
    let target = mount_dir.path().to_path_buf();
    let options = demo.mount_options();
    let mut child = crate::sandbox::spawn(&spec, |inside: &mut Inside| {
        inside.mount_cgroup(&target, options.as_deref())?;
        let pid = nix::unistd::getpid().as_raw();
        let ino = std::fs::metadata(&target)
            .ctx("stat", target.display())?
            .ino();
        let listed = lists(&target, pid)?;
        inside.action(format!(
            "stat {} ; grep -x {pid} {}/cgroup.procs",
            target.display(),
            target.display()
        ));
        Ok(Seen {
            view: inside.observe()?,
            getpid: pid,
            mounted: Some((ino, listed)),
        })
    })?;
    if let Some(c) = &child_cgroup {
        // cgroups(7): joining a cgroup is writing a PID into its membership file: `tasks`
        // in v1, `cgroup.procs` in v2. It happens before `go`, so the namespace the probe
        // then creates is rooted at this child.
        let file = c.dir.join(if demo.is_v2() {
            "cgroup.procs"
        } else {
            "tasks"
        });
        std::fs::write(&file, child.pid().to_string()).ctx("write", file.display())?;
        child.actions.push(format!("mkdir {}", c.dir.display()));
        child
            .actions
            .push(format!("echo {} > {}", child.pid(), file.display()));
    }
    let seen: Seen = child.run()?;
    let host = child.observe_from_host()?;
    let host_dir = look_dir(&cg_dir, child.pid())?;
    let pid = child.pid();
    let mut actions = std::mem::take(&mut child.actions);
    child.finish()?;
    if let Some(mut c) = child_cgroup.take() {
        c.remove()?;
        actions.push(format!(
            "rmdir {}   (after the probe exited)",
            c.dir.display()
        ));
    }
    let inside_lines = lines(&seen.view)?;
    let host_after = lines(&host)?;
    let host_demo = host_after.iter().find(|l| l.hierarchy == demo.hierarchy);
    let inside_demo = inside_lines.iter().find(|l| l.hierarchy == demo.hierarchy);
    let (ino, listed) = seen.mounted.unwrap_or((0, false));
    let facts = vec![
        before_fact,
        Fact::new(
            "inside-sees-root",
            format!(
                "inside, every line of /proc/self/cgroup ends in \"/\" ({} of {}): the probe's cgroup is the root of its namespace",
                inside_lines.iter().filter(|l| l.path == "/").count(),
                inside_lines.len()
            ),
            !inside_lines.is_empty() && inside_lines.iter().all(|l| l.path == "/"),
            json!({ "inside": seen.view.probe.cgroup }),
        ),
        Fact::new(
            "host-sees-full-path",
            format!(
                "the host's /proc/{pid}/cgroup shows the full path on the {name} line: {}",
                host_demo.map_or("(no line)".to_string(), |l| l.path.clone())
            ),
            host_demo.is_some_and(|l| l.path == expected_path && l.depth() > 0),
            json!({ "host": host_demo.map(|l| &l.path), "expected": expected_path }),
        ),
        Fact::new(
            "paths-differ",
            format!(
                "the same process at the same moment: \"{}\" from inside, \"{}\" from the host",
                inside_demo.map_or("(no line)".to_string(), |l| l.path.clone()),
                host_demo.map_or("(no line)".to_string(), |l| l.path.clone())
            ),
            inside_demo.map(|l| &l.path) != host_demo.map(|l| &l.path),
            json!({ "inside": inside_demo.map(|l| &l.path), "host": host_demo.map(|l| &l.path) }),
        ),
        Fact::new(
            "same-cgroup-underneath",
            format!(
                "the root of the {name} hierarchy the probe mounted is the host's {} (inode {ino} on both sides), and its cgroup.procs lists the probe on both sides",
                host_dir.dir
            ),
            ino != 0 && ino == host_dir.ino && listed && host_dir.lists_probe,
            json!({ "inside_ino": ino, "host_ino": host_dir.ino, "inside_lists": listed, "host_lists": host_dir.lists_probe }),
        ),
        Fact::new(
            "cgroup-ns-differs",
            format!(
                "the probe's cgroup namespace ({}) differs from the host's ({})",
                ns_label("cgroup", seen.view.own_ns("cgroup")),
                ns_label("cgroup", ctx.baseline.own_ns("cgroup"))
            ),
            seen.view.own_ns("cgroup") != ctx.baseline.own_ns("cgroup")
                && host.probe.ns("cgroup") == seen.view.own_ns("cgroup"),
            json!({ "inside": seen.view.own_ns("cgroup"), "host": ctx.baseline.own_ns("cgroup") }),
        ),
    ];
    let a_rows = rows(&host, &seen, Some(&host_dir), mount_dir.path(), &name)?;
    let run = Run {
        inside: seen,
        host,
        host_extra: host_dir,
        actions,
        pid,
    };
    ctx.step(Step {
        takeaway: None,
        columns: None,
        id: "after".into(),
        title: "after: the probe unshares CLONE_NEWCGROUP and mounts its hierarchy inside".into(),
        rows: a_rows,
        actions: run.actions,
        notes,
        extra: json!({ "getpid": run.inside.getpid, "format": format, "hierarchy": name, "host_dir": run.host_extra }),
        host: run.host,
        container: run.inside.view,
    })?;
    drop(mount_dir);
    Ok(facts)
}
