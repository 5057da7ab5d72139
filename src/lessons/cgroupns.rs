//! cgroupns: a cgroup namespace makes the probe's cgroup look like the root.
//!
//! cgroup_namespaces(7): a new cgroup namespace takes the cgroups its creator is in as
//! its roots. /proc/<pid>/cgroup shows paths relative to the *reader's* namespace root,
//! so the probe reads "/" where the host reads the full path, for the same process at the
//! same moment. A cgroupfs mounted inside is rooted there too: its root directory is the
//! very directory the host sees under /sys/fs/cgroup (same inode, same members).
//!
//! Without a cgroup namespace, a process in a container's cgroup reads its full path:
//! that is what Docker containers show on cgroup v1 and hybrid hosts, where Docker's
//! default is the host's cgroup namespace (a private one only on cgroup v2). The lesson
//! shows both, and says which one Docker uses on the cgroup setup this run read.
//!
//! The lesson needs a cgroup that is not the root of its hierarchy, or both sides would
//! read "/". As root nsx does what runtimes do: it makes a child cgroup below its own
//! (never above it: nsx stays within its own limits), moves the probe in before it runs,
//! and only then lets the probe unshare the cgroup namespace (Spec::unshare), so the
//! namespace is rooted at the child. The child is owned by a guard that removes it on
//! every way out. Unprivileged, nsx cannot create cgroups; it uses the nesting that
//! already exists (on the development machines the memory hierarchy puts every process
//! in /process_api/<hash>), and says so; with no nesting at all it exits 77.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions, Prep};
use super::kit::cgroup as cs;
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::cgroup::Layout;
use crate::error::{op, Context, Error, Result};
use crate::observe::cgroup::{format_of, parse_cgroup, CgroupLine};
use crate::observe::{Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TempDir};

pub const LESSON: Lesson = super::engine::lesson::<Cgroupns>();

pub struct Cgroupns;

/// The hierarchy the lesson shows: the one where nsx's own cgroup is nested deepest
/// (where a cgroup namespace changes the most), among those mounted here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Demo {
    /// Its line of nsx's /proc/self/cgroup.
    line: CgroupLine,
    /// nsx's own cgroup directory in it.
    own_dir: String,
}

/// What a probe saw: its view, and (the after step) the root of the hierarchy it mounted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    getpid: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mounted: Option<Dir>,
}

/// A look at a cgroup directory: its inode, and whether its cgroup.procs lists the probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dir {
    ino: u64,
    lists_probe: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    demo: Demo,
    /// The cgroup the probes of the shared and after steps were in: the child nsx made
    /// (as root), or nsx's own (rootless).
    dir: String,
    /// Its path in the demo hierarchy, as the host's /proc/<pid>/cgroup must show it.
    path: String,
    /// Whether nsx made `dir` (and removed it after the last probe).
    child: bool,
    /// Where the after probe mounted the hierarchy, in its own mount namespace.
    mount: String,
    /// A plain fork in nsx's own cgroup.
    before: Run<Seen>,
    /// In its own cgroup, without a cgroup namespace (what Docker does on v1 and hybrid).
    shared: Run<Seen>,
    /// In its own cgroup, with a cgroup namespace of its own; the host looks at `dir`.
    after: Run<Seen, Dir>,
}

impl Def for Cgroupns {
    const ID: &'static str = "cgroupns";
    const TITLE: &'static str = "Cgroup namespace: its own cgroup is its root";
    const MECHANISM: &'static str =
        "CLONE_NEWCGROUP (+ a cgroupfs mounted in a private mount namespace)";
    const MAN: &'static str = "cgroup_namespaces(7), cgroups(7), mount(2)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/cgroupns.md");
    const SEES: Parts = Ns::Cgroup.part().with(Parts::CGROUP);
    const FACTS: &'static [&'static str] = &[
        "before-same-paths",
        "shared-ns-shows-full-path",
        "inside-sees-root",
        "host-sees-full-path",
        "paths-differ",
        "same-cgroup-underneath",
        "cgroup-ns-differs",
    ];
    const WORDS: &'static [&'static str] = &[
        "cgroups",
        "cgroup",
        "cgroup-namespace",
        "namespace",
        "namespaces",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        // The cgroup module reads /proc/self/cgroup and the cgroup mounts of
        // /proc/self/mountinfo: where each of nsx's cgroups is in the file system.
        let layout = Layout::detect_all()?;
        // The decision `nsx doctor`, `nsx lessons` and the tour made before the lesson
        // started, made again on what the lesson reads now.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .ctx(op::READ, "/proc/self/mountinfo")?;
        let read_only = crate::doctor::read_only_cgroup_mounts(&mountinfo);
        if let Some((reason, fix)) = obstacle(&layout, &read_only, m.rootless()) {
            return Err(Error::unsupported(reason, fix));
        }
        let demo = deepest_mounted(&layout)?;
        let line = &demo.line;
        let own_dir = PathBuf::from(&demo.own_dir);

        // A child cgroup when root (as runtimes do); else the nesting that already exists.
        let mut child = None;
        if !m.rootless() {
            match crate::cgroup::sweep_place(&own_dir) {
                Ok(s) => cs::note_sweep(m, &s),
                Err(e) => cs::left_behind(
                    m,
                    format!(
                        "nsx could not look for cgroups left by killed runs in {}: {e}",
                        own_dir.display()
                    ),
                ),
            }
            match ChildCgroup::create(&own_dir) {
                Ok(c) => child = Some(c),
                Err(e) if line.depth() > 0 => m.note(format!(
                    "nsx could not create a child cgroup ({e}); it shows the nesting that already exists instead"
                )),
                Err(e) => return Err(e),
            }
        } else {
            m.note(format!(
                "nsx runs unprivileged and may not create cgroups, so it uses the nesting that already exists: its {} cgroup is {}",
                line.name(),
                line.path
            ));
        }
        let (dir, path) = match &child {
            Some(c) => (
                c.dir.clone(),
                format!(
                    "{}/{}",
                    line.path.trim_end_matches('/'),
                    c.dir.file_name().unwrap_or_default().to_string_lossy()
                ),
            ),
            None => (own_dir.clone(), line.path.clone()),
        };
        let membership = if line.is_v2() {
            "cgroup.procs"
        } else {
            "tasks"
        };
        let join = |p: &mut Prep, first: bool| -> Result<()> {
            let Some(c) = &child else { return Ok(()) };
            if first {
                p.action(format!("mkdir {}", c.dir.display()));
            }
            // cgroups(7): joining a cgroup is writing a PID into its membership file:
            // `tasks` in v1, `cgroup.procs` in v2. It happens before the probe runs, so a
            // cgroup namespace the probe then creates is rooted at this cgroup.
            let file = c.dir.join(membership);
            std::fs::write(&file, p.pid().to_string()).ctx(op::WRITE, file.display())?;
            p.action(format!("echo {} > {}", p.pid(), file.display()));
            Ok(())
        };

        // Before: a plain fork reads the same paths as the host.
        let before = m.probe(&Spec::new(CloneFlags::empty()), look, |_| Ok(()))?;
        // Shared: in its own cgroup, but in the host's cgroup namespace.
        let shared = m.probe_with(
            &Spec::new(CloneFlags::empty()),
            |p| join(p, true),
            look,
            |_| Ok(()),
        )?;
        // After: moved in, then unshare(CLONE_NEWCGROUP) inside, then the hierarchy
        // mounted in a private mount namespace, and its root looked at.
        let mount_dir = TempDir::new("cgroupns")?;
        let target = mount_dir.path().to_path_buf();
        let options = line.mount_options();
        let spec = Spec {
            namespaces: CloneFlags::CLONE_NEWNS,
            unshare: CloneFlags::CLONE_NEWCGROUP,
            ..Spec::default()
        };
        let mut after = m.probe_with(
            &spec,
            |p| join(p, false),
            |inside: &mut Inside| {
                inside.mount_cgroup(&target, options.as_deref())?;
                let getpid = nix::unistd::getpid().as_raw();
                let mounted = look_dir(&target, getpid)?;
                inside.action(format!(
                    "stat {0} ; grep -x {getpid} {0}/cgroup.procs",
                    target.display()
                ));
                Ok(Seen {
                    view: inside.observe()?,
                    getpid,
                    mounted: Some(mounted),
                })
            },
            |pid| look_dir(&dir, pid),
        )?;
        if let Some(mut c) = child.take() {
            // The probes must be gone before their cgroup can be removed.
            crate::sandbox::reap_released();
            c.remove()?;
            after.actions.push(format!(
                "rmdir {}   (after the probe exited)",
                c.dir.display()
            ));
        }
        Ok(Obs {
            demo: demo.clone(),
            dir: dir.display().to_string(),
            path,
            child: dir != own_dir,
            mount: target.display().to_string(),
            before,
            shared,
            after,
        })
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let h = o.demo.line.hierarchy;
        let name = o.demo.line.name();
        let (b, s, a) = (&o.before, &o.shared, &o.after);
        let (ah, ai) = (&a.host, &a.inside.view);
        let host_demo = demo_path(ah, h);
        let inside_demo = demo_path(ai, h);
        let inside_lines = lines(ai);
        let text = |p: &Option<String>| p.clone().unwrap_or_else(|| "(no line)".into());
        let docker = Docker::on(&env.machine.cgroup);
        let mounted = a.inside.mounted.as_ref();
        let facts = vec![
            Fact::new(
                "before-same-paths",
                format!(
                    "before, the probe's /proc/self/cgroup and the host's {}/cgroup agree line for line ({} lines; {}:{} is {})",
                    b.host.source,
                    b.inside.view.probe.cgroup.len(),
                    h,
                    name,
                    text(&demo_path(&b.host, h))
                ),
                !b.inside.view.probe.cgroup.is_empty()
                    && b.inside.view.probe.cgroup == b.host.probe.cgroup
                    && kit::same(b.inside.view.own(Ns::Cgroup), base.own(Ns::Cgroup)),
                json!({ "inside": b.inside.view.probe.cgroup.len(), "host": b.host.probe.cgroup.len() }),
            ),
            Fact::new(
                "shared-ns-shows-full-path",
                format!(
                    "without CLONE_NEWCGROUP, the probe in {} reads its full path in /proc/self/cgroup ({}), as the host does ({}): {}",
                    if o.child {
                        "the cgroup nsx moved it into"
                    } else {
                        "nsx's own nested cgroup"
                    },
                    text(&demo_path(&s.inside.view, h)),
                    text(&demo_path(&s.host, h)),
                    docker.shared_means()
                ),
                demo_path(&s.inside.view, h).as_deref() == Some(o.path.as_str())
                    && demo_path(&s.host, h).as_deref() == Some(o.path.as_str())
                    && depth(&o.path) > 0
                    && kit::same(s.inside.view.own(Ns::Cgroup), base.own(Ns::Cgroup)),
                json!({ "inside": demo_path(&s.inside.view, h), "host": demo_path(&s.host, h), "expected": o.path, "cgroup_mode": env.machine.cgroup }),
            ),
            Fact::new(
                "inside-sees-root",
                format!(
                    "inside the cgroup namespace, every line of /proc/self/cgroup ends in \"/\" ({} of {}): the probe's cgroup is the root of its namespace",
                    inside_lines.iter().filter(|l| l.path == "/").count(),
                    inside_lines.len()
                ),
                !inside_lines.is_empty() && inside_lines.iter().all(|l| l.path == "/"),
                json!({ "inside": ai.probe.cgroup }),
            ),
            Fact::new(
                "host-sees-full-path",
                format!(
                    "the host's {}/cgroup shows the full path on the {name} line: {}",
                    ah.source,
                    text(&host_demo)
                ),
                host_demo.as_deref() == Some(o.path.as_str()) && depth(&o.path) > 0,
                json!({ "host": host_demo, "expected": o.path }),
            ),
            Fact::new(
                "paths-differ",
                format!(
                    "the same process at the same moment: \"{}\" from inside, \"{}\" from the host",
                    text(&inside_demo),
                    text(&host_demo)
                ),
                inside_demo.is_some() && host_demo.is_some() && inside_demo != host_demo,
                json!({ "inside": inside_demo, "host": host_demo }),
            ),
            Fact::new(
                "same-cgroup-underneath",
                format!(
                    "the root of the {name} hierarchy the probe mounted is the host's {} (inode {} inside, {} on the host), and its cgroup.procs lists the probe on both sides",
                    o.dir,
                    mounted.map_or("-".to_string(), |d| d.ino.to_string()),
                    a.host_extra.ino
                ),
                mounted.is_some_and(|d| {
                    d.ino != 0 && d.ino == a.host_extra.ino && d.lists_probe
                }) && a.host_extra.lists_probe,
                json!({ "inside": mounted, "host": a.host_extra }),
            ),
            kit::ns_differs(Ns::Cgroup, ah, ai, base),
        ];

        let layout = lines(base);
        let format = format_of(&layout).map_or("unknown".to_string(), |f| {
            format!(
                "the {} layout ({})",
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                f.describe()
            )
        });
        let dir_note = format!(
            "DIR is {}, {}",
            o.dir,
            if o.child {
                format!("a cgroup nsx made below its own {name} cgroup")
            } else {
                format!("nsx's own {name} cgroup")
            }
        );
        let (shared_title, after_title) = if o.child {
            (
                "shared: the probe moved into a cgroup of its own, without a cgroup namespace",
                "after: the probe moved into a cgroup of its own unshares CLONE_NEWCGROUP and mounts its hierarchy inside",
            )
        } else {
            (
                "shared: the probe in nsx's nested cgroup, without a cgroup namespace",
                "after: the probe in nsx's nested cgroup unshares CLONE_NEWCGROUP and mounts its hierarchy inside",
            )
        };
        let steps = vec![
            step(
                "before",
                "before: the probe forked with no new namespace",
                b,
                h,
                false,
            ),
            step("shared", shared_title, s, h, true)
                .note(dir_note.clone())
                .note(docker.note())
                .takeaway(format!(
                "without a cgroup namespace the probe sees where it sits in the host's tree: {}",
                text(&demo_path(&s.inside.view, h))
            )),
            after_step(o, after_title, &name, &dir_note).takeaway(format!(
                "one process, one cgroup: \"{}\" to the host, \"{}\" to itself",
                text(&host_demo),
                text(&inside_demo)
            )),
        ];
        Judged {
            steps,
            facts,
            notes: vec![format!(
                "this machine's /proc/self/cgroup has {format}: \"its cgroup\" is the {h}:{name} line, the most deeply nested one that is mounted"
            )],
            takeaway: Some(format!(
                "the probe's cgroup was {} to the host; without a cgroup namespace the probe read the same path, with one it read {} (on this {} machine Docker's default is {})",
                text(&host_demo),
                text(&inside_demo),
                env.machine.cgroup,
                docker.flag()
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-paths",
                what: "the host reads another path for the before probe",
                change: |o, _| {
                    let h = o.demo.line.hierarchy;
                    set_path(&mut o.before.host, h, "/elsewhere");
                },
            },
            F {
                fact: "shared-ns-shows-full-path",
                what: "the shared probe reads / (as in a cgroup namespace)",
                change: |o, _| {
                    let h = o.demo.line.hierarchy;
                    set_path(&mut o.shared.inside.view, h, "/");
                },
            },
            F {
                fact: "shared-ns-shows-full-path",
                what: "the shared probe is in a cgroup namespace of its own",
                change: |o, _| {
                    o.shared.inside.view.own_ns.insert("cgroup".into(), 1);
                },
            },
            F {
                fact: "inside-sees-root",
                what: "a line inside is not /",
                change: |o, _| {
                    let h = o.demo.line.hierarchy;
                    set_path(&mut o.after.inside.view, h, "/nsx");
                },
            },
            F {
                fact: "host-sees-full-path",
                what: "the host reads /",
                change: |o, _| {
                    let h = o.demo.line.hierarchy;
                    set_path(&mut o.after.host, h, "/");
                },
            },
            F {
                fact: "paths-differ",
                what: "the probe reads the host's path",
                change: |o, _| {
                    let h = o.demo.line.hierarchy;
                    let host = demo_path(&o.after.host, h).unwrap_or_default();
                    set_path(&mut o.after.inside.view, h, &host);
                },
            },
            F {
                fact: "same-cgroup-underneath",
                what: "the mount's root is another directory",
                change: |o, _| {
                    if let Some(d) = o.after.inside.mounted.as_mut() {
                        d.ino += 1;
                    }
                },
            },
            F {
                fact: "same-cgroup-underneath",
                what: "the host's cgroup.procs does not list the probe",
                change: |o, _| o.after.host_extra.lists_probe = false,
            },
            F {
                fact: "cgroup-ns-differs",
                what: "the probe is in the host's cgroup namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["cgroup"];
                    o.after.inside.view.own_ns.insert("cgroup".into(), host);
                },
            },
        ]
    }
}

/// Why this lesson cannot show a cgroup namespace on a machine whose cgroups are
/// `layout` (the cgroup file systems in `read_only` mounted read-only), run without root
/// when `rootless`: the one decision, which `nsx doctor`, `nsx lessons`, the tour and the
/// lesson itself all ask ([`crate::lessons::needs::Need::NestedCgroup`]).
///
/// The lesson needs a cgroup below the root of a mounted hierarchy, or both sides read
/// "/": one that nsx's process is in already, or, as root, a child cgroup it creates,
/// which a read-only cgroup file system refuses. `None` when it can.
pub fn obstacle(
    layout: &Layout,
    read_only: &[PathBuf],
    rootless: bool,
) -> Option<(String, String)> {
    let demo = match deepest_mounted(layout) {
        Ok(d) => d,
        Err(Error::Unsupported { reason, fix }) => return Some((reason, fix)),
        Err(e) => {
            return Some((
                e.to_string(),
                "check that /proc is mounted and readable (nsx reads /proc/self/cgroup)".into(),
            ))
        }
    };
    if demo.line.depth() > 0 {
        return None;
    }
    if rootless {
        return Some((
            "nsx is in the root cgroup of every hierarchy, and an unprivileged user cannot create a child cgroup here, so a cgroup namespace would look the same from both sides".into(),
            "sudo nsx lesson cgroupns (nsx then creates a child cgroup), or start it in a nested cgroup of a systemd user session: systemd-run --user --scope nsx lesson cgroupns".into(),
        ));
    }
    let own = Path::new(&demo.own_dir);
    if read_only.iter().any(|r| own.starts_with(r)) {
        return Some((
            format!(
                "nsx is in the root cgroup of every hierarchy and the cgroup file system at {} is mounted read-only (as in a container), so nsx cannot create the child cgroup a cgroup namespace would be rooted at",
                own.display()
            ),
            crate::cgroup::READ_ONLY_FIX.into(),
        ));
    }
    None
}

/// The mounted hierarchy where nsx's own cgroup is nested deepest; on a tie the v2 line,
/// then the first listed.
fn deepest_mounted(layout: &Layout) -> Result<Demo> {
    if layout.membership.is_empty() {
        return Err(Error::unsupported(
            "/proc/self/cgroup is empty: this kernel has no cgroup hierarchy",
            "use a kernel with cgroups (CONFIG_CGROUPS) and mount /sys/fs/cgroup",
        ));
    }
    let mut best: Option<Demo> = None;
    for m in &layout.membership {
        let Some(dir) = layout.dir_of(m) else {
            continue;
        };
        let line = CgroupLine {
            hierarchy: m.hierarchy_id,
            controllers: m.controllers.clone(),
            path: m.path.display().to_string(),
        };
        let better = match &best {
            None => true,
            Some(b) => {
                line.depth() > b.line.depth()
                    || (line.depth() == b.line.depth() && line.is_v2() && !b.line.is_v2())
            }
        };
        if better {
            best = Some(Demo {
                line,
                own_dir: dir.display().to_string(),
            });
        }
    }
    best.ok_or_else(|| {
        Error::unsupported(
            "no cgroup hierarchy that nsx's process is in is mounted, so neither side could look at its directory",
            "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
        )
    })
}

/// A child cgroup nsx made below its own; removed (rmdir) when dropped.
struct ChildCgroup {
    dir: PathBuf,
    removed: bool,
}

impl ChildCgroup {
    fn create(parent: &Path) -> Result<Self> {
        // `nsx-<pid>-<start>-cgroupns`: the run that made it, so a later run can remove it
        // once this one is gone (see [`crate::cgroup::sweep_place`]).
        let dir = parent.join(crate::owner::Run::current().name("cgroupns"));
        // cgroups(7): a cgroup is created with mkdir(2) in the hierarchy's filesystem.
        std::fs::create_dir(&dir)
            .ctx(op::MKDIR, dir.display())
            .map_err(crate::cgroup::read_only_refusal)?;
        Ok(ChildCgroup {
            dir,
            removed: false,
        })
    }

    /// rmdir(2) removes an empty cgroup. The probes are reaped by now, but the kernel may
    /// still be detaching them: EBUSY is retried briefly.
    fn remove(&mut self) -> Result<()> {
        self.removed = true;
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(e) => return Err(e).ctx(op::RMDIR, self.dir.display()),
            }
        }
        Err(crate::error::sys(
            op::RMDIR,
            self.dir.display(),
            Errno::EBUSY,
        ))
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

fn look(inside: &mut Inside) -> Result<Seen> {
    Ok(Seen {
        view: inside.observe()?,
        getpid: nix::unistd::getpid().as_raw(),
        mounted: None,
    })
}

/// stat(2) of a cgroup directory, and whether its cgroup.procs (cgroups(7): the PIDs of
/// its member processes, in the reader's pid namespace) lists `pid`.
fn look_dir(dir: &Path, pid: i32) -> Result<Dir> {
    let procs = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&procs).ctx(op::READ, procs.display())?;
    Ok(Dir {
        ino: std::fs::metadata(dir).ctx("stat", dir.display())?.ino(),
        lists_probe: text.lines().any(|l| l.trim() == pid.to_string()),
    })
}

/// The lines of a view's /proc/…/cgroup (none when unreadable).
fn lines(view: &View) -> Vec<CgroupLine> {
    parse_cgroup(&view.probe.cgroup.join("\n")).unwrap_or_default()
}

/// The path on hierarchy `h` in a view's /proc/…/cgroup.
fn demo_path(view: &View, h: u32) -> Option<String> {
    lines(view)
        .into_iter()
        .find(|l| l.hierarchy == h)
        .map(|l| l.path)
}

/// How many directories below the root `path` is ("/" is 0).
fn depth(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

#[cfg(test)]
fn set_path(view: &mut View, h: u32, path: &str) {
    let mut lines = lines(view);
    for l in lines.iter_mut().filter(|l| l.hierarchy == h) {
        l.path = path.to_string();
    }
    view.probe.cgroup = lines.iter().map(CgroupLine::text).collect();
}

/// What Docker does about cgroup namespaces on the cgroup setup this run was made on
/// (moby's daemon config: `--default-cgroupns-mode` is "private" when /sys/fs/cgroup is
/// cgroup v2, "host" otherwise).
enum Docker {
    Host(String),
    Private,
    Unknown(String),
}

impl Docker {
    fn on(mode: &str) -> Docker {
        match mode {
            "v2" => Docker::Private,
            "v1" | "hybrid" => Docker::Host(mode.to_string()),
            other => Docker::Unknown(other.to_string()),
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            Docker::Host(_) => "--cgroupns=host",
            Docker::Private => "--cgroupns=private",
            Docker::Unknown(_) => "unknown",
        }
    }

    /// What the shared step stands for, on this machine.
    fn shared_means(&self) -> String {
        match self {
            Docker::Host(mode) => format!(
                "what a Docker container shows on this cgroup {mode} machine, where Docker's default is the host's cgroup namespace (--cgroupns=host)"
            ),
            Docker::Private => "what a Docker container shows only with --cgroupns=host: on this cgroup v2 machine Docker's default is a private cgroup namespace".to_string(),
            Docker::Unknown(mode) => format!("cgroup setup {mode}: no Docker default is known for it"),
        }
    }

    fn note(&self) -> String {
        match self {
            Docker::Host(mode) => format!(
                "this run read a cgroup {mode} setup (statfs of /sys/fs/cgroup): Docker's default there is the host's cgroup namespace (dockerd --default-cgroupns-mode host), so a container reads its full path, as in the shared step; a private cgroup namespace, as in the after step, takes docker run --cgroupns=private"
            ),
            Docker::Private => "this run read a cgroup v2 setup (statfs of /sys/fs/cgroup): Docker's default there is a private cgroup namespace (dockerd --default-cgroupns-mode private), so a container reads 0::/, as in the after step; docker run --cgroupns=host gives what the shared step shows".to_string(),
            Docker::Unknown(mode) => format!("this run read the cgroup setup \"{mode}\", for which Docker has no default"),
        }
    }
}

/// The rows of a probe's /proc/…/cgroup, one per hierarchy, read both ways (the line of
/// hierarchy `h` marked when `key`), then its cgroup namespace.
fn step(id: &str, title: &str, run: &Run<Seen, impl Clone>, h: u32, key: bool) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let (host_lines, inside_lines) = (lines(host), lines(inside));
    let path = |ls: &[CgroupLine]| match ls.iter().find(|l| l.hierarchy == h) {
        Some(l) => Val::Path(l.path.clone()),
        None => Val::None("no such line".into()),
    };
    let its = Row::probe(
        "its cgroup",
        "cgroup",
        path(&host_lines),
        path(&inside_lines),
    );
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Cgroup, host, inside);
    let rows = vec![
        if key { its.key() } else { its },
        Row::probe(
            "its other lines",
            "cgroup",
            others(&host_lines, h),
            others(&inside_lines, h),
        ),
        ns_probe,
        ns_own,
    ];
    kit::step(id, title, run, inside, rows).extra(json!({ "getpid": run.inside.getpid }))
}

/// The lines of /proc/…/cgroup other than hierarchy `h`'s, in a few words: "9, all /",
/// or each one that is not "/" (the other hierarchies nsx is nested in).
fn others(lines: &[CgroupLine], h: u32) -> Val {
    let rest: Vec<&CgroupLine> = lines.iter().filter(|l| l.hierarchy != h).collect();
    let nested: Vec<String> = rest
        .iter()
        .filter(|l| l.path != "/")
        .map(|l| l.text())
        .collect();
    Val::Text(match (rest.len(), nested.is_empty()) {
        (0, _) => "none".to_string(),
        (n, true) => format!("{n}, all /"),
        (n, false) => format!("{n}: {} at /, and {}", n - nested.len(), nested.join(", ")),
    })
}

/// The after step: the cgroup lines, then the cgroup directory seen through the host's
/// /sys/fs/cgroup and through the probe's own mount.
fn after_step(o: &Obs, title: &str, name: &str, dir_note: &str) -> Step {
    let a = &o.after;
    let h = o.demo.line.hierarchy;
    let mut s = step("after", title, a, h, true);
    let mounted = a.inside.mounted.as_ref();
    let listed = |d: Option<&Dir>, pid: i32| match d {
        Some(d) if d.lists_probe => Val::Pid(pid),
        Some(_) => Val::None("not listed".into()),
        None => Val::None("not mounted".into()),
    };
    s.rows.push(Row::probe(
        "cgroup directory: inode",
        "stat DIR, MNT",
        Val::Num(a.host_extra.ino as i64),
        mounted.map_or(Val::None("not mounted".into()), |d| Val::Num(d.ino as i64)),
    ));
    s.rows.push(Row::probe(
        "its members",
        "DIR, MNT/cgroup.procs",
        listed(Some(&a.host_extra), a.pid),
        listed(mounted, a.inside.getpid),
    ));
    s.note(dir_note)
        .note(format!(
            "MNT is {}, where the probe mounted the {name} hierarchy in its own mount namespace: inside a cgroup namespace, the root of a cgroupfs mount is the namespace's root cgroup",
            o.mount
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(lines: &[&str]) -> View {
        let mut v = View::default();
        v.probe.cgroup = lines.iter().map(|l| l.to_string()).collect();
        v
    }

    #[test]
    fn the_demo_line_is_found_by_hierarchy() {
        let v = view(&["9:name=systemd:/", "4:memory:/process_api/x", "0::/"]);
        assert_eq!(demo_path(&v, 4).as_deref(), Some("/process_api/x"));
        assert_eq!(demo_path(&v, 0).as_deref(), Some("/"));
        assert_eq!(demo_path(&v, 7), None);
        let mut v = v;
        set_path(&mut v, 4, "/");
        assert_eq!(v.probe.cgroup[1], "4:memory:/");
        assert_eq!(depth("/a/b"), 2);
        assert_eq!(depth("/"), 0);
    }

    #[test]
    fn docker_uses_the_hosts_cgroup_namespace_unless_cgroup_v2() {
        assert_eq!(Docker::on("hybrid").flag(), "--cgroupns=host");
        assert_eq!(Docker::on("v1").flag(), "--cgroupns=host");
        assert_eq!(Docker::on("v2").flag(), "--cgroupns=private");
        assert!(Docker::on("hybrid").note().contains("full path"));
        assert!(Docker::on("v2").note().contains("0::/"));
    }
}
