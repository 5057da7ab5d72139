//! mount: a mount namespace gives the probe its own mount table.
//!
//! mount_namespaces(7): CLONE_NEWNS copies the caller's mount table; later mounts change
//! only the namespace they are made in, *unless* propagation carries them to peers. A
//! copied mount keeps its propagation type, so under a shared "/" (systemd's default) a
//! mount inside would appear on the host. nsx makes "/" private first, always. The
//! control run shows the leak for real, contained in a throwaway namespace that plays
//! the host: a mount made shared there propagates into a child namespace's view and back.
//!
//! proc(5): /proc/<pid>/mountinfo is the mount table of that process's namespace, so the
//! host can read a container's mounts without entering it; its own table is another file.

use std::path::Path;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{op, Context, Result};
use crate::observe::{Mounts, Ns, Parts, View};
use crate::report::{Fact, Row, Step, Val};
use crate::sandbox::{Inside, Spec, TempDir};

pub const LESSON: Lesson = super::engine::lesson::<Mount>();

pub struct Mount;

const FILE: &str = "written-inside";

/// What a probe reports: its view, and what it lists in the demo directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    view: View,
    files: Vec<String>,
    /// The control only: the probe's mount table after it unmounted the leaked mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_umount: Option<Mounts>,
}

/// A probe run; the host lists the demo directory while the probe lives.
type Probe = Run<Seen, Vec<String>>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    /// The demo directory nsx made (and mounts on, inside).
    dir: String,
    /// Its child directories of the control run.
    shared_dir: String,
    private_dir: String,
    before: Probe,
    after: Probe,
    control: Probe,
}

impl Def for Mount {
    const ID: &'static str = "mount";
    const TITLE: &'static str = "Mount namespace: a mount table of its own";
    const MECHANISM: &'static str = "CLONE_NEWNS + mount --make-rprivate / + a tmpfs";
    const MAN: &'static str = "mount_namespaces(7), mount(2), mount(8) (--make-private)";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/mount.md");
    const SEES: Parts = Ns::Mnt.part().with(Parts::MOUNTS);
    const FACTS: &'static [&'static str] = &[
        "before-same-table",
        "mount-visible-inside",
        "host-reads-probe-mounts",
        "mount-absent-on-host",
        "host-mountinfo-unchanged",
        "root-private-inside",
        "mnt-ns-differs",
        "shared-propagation-leaks",
        "private-propagation-contains",
        "umount-undoes-the-leak",
        "control-host-untouched",
    ];
    const WORDS: &'static [&'static str] = &[
        "mnt",
        "mounts",
        "mountns",
        "propagation",
        "namespace",
        "namespaces",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let demo = TempDir::new("mount")?;
        let dir = demo.path().to_path_buf();
        let shared_dir = dir.join("shared-child");
        let private_dir = dir.join("private-child");
        let look = |i: &mut Inside| {
            Ok(Seen {
                view: i.observe()?,
                files: list(&dir)?,
                after_umount: None,
            })
        };
        // The after probe: a tmpfs in a mount namespace of its own.
        let after = |i: &mut Inside| {
            i.mount_tmpfs("nsx-demo", &dir)?;
            std::fs::write(dir.join(FILE), "hello from inside the mount namespace\n")
                .ctx(op::WRITE, dir.join(FILE).display())?;
            i.action(format!("echo hello > {}/{FILE}", dir.display()));
            look(i)
        };
        // The control: why "/" must be private first, shown in a throwaway namespace.
        let control = |i: &mut Inside| {
            i.mount_tmpfs("nsx-stage", &dir)?;
            i.make_shared(&dir)?;
            for d in [&shared_dir, &private_dir] {
                std::fs::create_dir(d).ctx(op::MKDIR, d.display())?;
            }
            let (s, p) = (shared_dir.clone(), private_dir.clone());
            i.in_new_mount_ns(false, || Inside::mount_tmpfs_quiet("nsx-leaked", &s))?;
            i.action(format!(
                "  in that child: mount -t tmpfs nsx-leaked {}",
                s.display()
            ));
            i.in_new_mount_ns(true, || Inside::mount_tmpfs_quiet("nsx-kept", &p))?;
            i.action(format!(
                "  in that child: mount -t tmpfs nsx-kept {}",
                p.display()
            ));
            let mut seen = look(i)?;
            // A leaked mount is an ordinary mount of the namespace it leaked into: one
            // umount there undoes it.
            i.umount(&s)?;
            seen.after_umount = i.observe()?.probe.mounts;
            Ok(seen)
        };
        // Each probe mounts only in a mount namespace of its own: the three run side by side.
        let [before, after, control] = m.probes_n(
            [
                Spec::new(CloneFlags::empty()),
                Spec::new(CloneFlags::CLONE_NEWNS),
                Spec::new(CloneFlags::CLONE_NEWNS),
            ],
            |k, i| match k {
                0 => look(i),
                1 => after(i),
                _ => control(i),
            },
            |_, _| list(&dir),
        )?;
        let show = |p: &Path| p.display().to_string();
        let obs = Obs {
            dir: show(&dir),
            shared_dir: show(&shared_dir),
            private_dir: show(&private_dir),
            before,
            after,
            control,
        };
        // The steps are shown while DIR still exists: the host lists it empty.
        m.pause(&obs, &[format!("ls -A {}", obs.dir)])?;
        drop(demo);
        Ok(obs)
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let dir = o.dir.as_str();
        let (host, inside) = (&o.after.host, &o.after.inside.view);
        let b = &o.before.inside.view;
        let probe_table = host.probe.mounts.clone().unwrap_or_default();
        let stage = &o.control.inside.view;
        let leaked = stage.has_mount(&o.shared_dir);
        let kept = !stage.has_mount(&o.private_dir);
        let facts = vec![
            Fact::new(
                "before-same-table",
                format!(
                    "before, the probe shares the host's mount namespace ({}) and sees {} mounts, as the host does",
                    kit::ns_text(Ns::Mnt, b.own(Ns::Mnt)),
                    b.mounts.count
                ),
                kit::same(b.own(Ns::Mnt), base.own(Ns::Mnt)) && b.mounts.count == base.mounts.count,
                json!({ "inside": b.mounts.count, "host": base.mounts.count }),
            ),
            Fact::new(
                "mount-visible-inside",
                format!("inside, {dir} is a {}", present(&inside.mounts, dir)),
                inside.has_mount(dir) && o.after.inside.files == [FILE],
                json!({ "mounts": inside.mounts.nsx, "files": o.after.inside.files }),
            ),
            Fact::new(
                "host-reads-probe-mounts",
                format!(
                    "the host, reading the probe's table in {}/mountinfo, finds the same mount: {}",
                    host.source,
                    present(&probe_table, dir)
                ),
                probe_table.nsx.iter().any(|m| m.mount_point == dir)
                    && probe_table.count == inside.mounts.count,
                json!({ "host_reads": probe_table.count, "inside": inside.mounts.count }),
            ),
            Fact::new(
                "mount-absent-on-host",
                format!(
                    "at the same moment the host's own table has no such mount and {dir} lists {}",
                    files_label(&o.after.host_extra)
                ),
                !host.has_mount(dir) && o.after.host_extra.is_empty(),
                json!({ "host_nsx_mounts": host.mounts.nsx, "host_files": o.after.host_extra }),
            ),
            Fact::new(
                "host-mountinfo-unchanged",
                format!(
                    "the host's own mount table still has {} mounts, as before the lesson",
                    host.mounts.count
                ),
                host.mounts == base.mounts,
                json!({ "before": base.mounts.count, "during": host.mounts.count }),
            ),
            Fact::new(
                "root-private-inside",
                format!(
                    "inside, / is {} (nsx made it private before mounting)",
                    inside.mounts.root_propagation
                ),
                inside.mounts.root_propagation == "private",
                json!({ "inside": inside.mounts.root_propagation, "host": host.mounts.root_propagation }),
            ),
            kit::ns_differs(Ns::Mnt, host, inside, base),
            Fact::new(
                "shared-propagation-leaks",
                format!(
                    "a mount made in a child namespace under a shared mount appeared in the parent namespace ({})",
                    o.shared_dir
                ),
                leaked,
                json!({ "parent_sees": stage.mounts.nsx }),
            ),
            Fact::new(
                "private-propagation-contains",
                format!(
                    "a mount made after mount --make-rprivate / did not ({})",
                    o.private_dir
                ),
                kept,
                json!({ "parent_sees": stage.mounts.nsx }),
            ),
            Fact::new(
                "umount-undoes-the-leak",
                format!(
                    "after umount {} in the namespace it leaked into, the mount is gone from its table: a leaked mount lasts until someone unmounts it, not until reboot",
                    o.shared_dir
                ),
                leaked
                    && o.control.inside.after_umount.as_ref().is_some_and(|m| {
                        !m.nsx.iter().any(|x| x.mount_point == o.shared_dir)
                    }),
                json!({ "after_umount": o.control.inside.after_umount.as_ref().map(|m| &m.nsx) }),
            ),
            Fact::new(
                "control-host-untouched",
                "the real host saw none of the control run's mounts",
                o.control.host.mounts == base.mounts,
                json!({ "host_nsx_mounts": o.control.host.mounts.nsx }),
            ),
        ];
        let note = format!(
            "the probe played the host: it mounted {dir} shared, then started two child mount namespaces. The one that left / as inherited mounted nsx-leaked, and it {} in the probe's own table; the one that made / private first mounted nsx-kept, and it {}. On this machine the real host's / is {}.",
            if leaked { "appeared" } else { "did not appear" },
            if kept { "stayed inside" } else { "leaked too" },
            base.mounts.root_propagation
        );
        let steps = vec![
            step("before", "before: the probe forked with no new namespace", &o.before, dir),
            step(
                "after",
                "after: clone(CLONE_NEWNS), / made private, a tmpfs mounted",
                &o.after,
                dir,
            )
            .takeaway(format!(
                "the tmpfs is in the probe's table ({}/mountinfo, read by the host too) and not in the host's own",
                host.source
            )),
            step(
                "control",
                "control: why / must be private first (a throwaway namespace plays the host)",
                &o.control,
                dir,
            )
            .note(note),
        ];
        Judged {
            steps,
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "a mount made in the probe's namespace ({} mounts there) never reached the host's table ({} mounts), because / was private first",
                inside.mounts.count, host.mounts.count
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        vec![
            F {
                fact: "before-same-table",
                what: "the before probe counts one mount more",
                change: |o, _| o.before.inside.view.mounts.count += 1,
            },
            F {
                fact: "mount-visible-inside",
                what: "the probe lists no file in the tmpfs",
                change: |o, _| o.after.inside.files.clear(),
            },
            F {
                fact: "host-reads-probe-mounts",
                what: "the probe's table read by the host lacks the tmpfs",
                change: |o, _| {
                    if let Some(m) = o.after.host.probe.mounts.as_mut() {
                        m.nsx.clear();
                    }
                },
            },
            F {
                fact: "mount-absent-on-host",
                what: "the host lists the file written inside",
                change: |o, _| o.after.host_extra.push(FILE.into()),
            },
            F {
                fact: "host-mountinfo-unchanged",
                what: "the host's table gained a mount",
                change: |o, _| o.after.host.mounts.count += 1,
            },
            F {
                fact: "root-private-inside",
                what: "/ is shared inside",
                change: |o, _| o.after.inside.view.mounts.root_propagation = "shared:1".into(),
            },
            F {
                fact: "mnt-ns-differs",
                what: "the probe is in the host's mount namespace",
                change: |o, env| {
                    let host = env.baseline.own_ns["mnt"];
                    o.after.inside.view.own_ns.insert("mnt".into(), host);
                },
            },
            F {
                fact: "shared-propagation-leaks",
                what: "nsx-leaked did not appear in the parent",
                change: |o, _| {
                    let d = o.shared_dir.clone();
                    o.control
                        .inside
                        .view
                        .mounts
                        .nsx
                        .retain(|m| m.mount_point != d);
                },
            },
            F {
                fact: "private-propagation-contains",
                what: "nsx-kept appeared in the parent",
                change: |o, _| {
                    let mut m = o.control.inside.view.mounts.nsx[0].clone();
                    m.mount_point = o.private_dir.clone();
                    o.control.inside.view.mounts.nsx.push(m);
                },
            },
            F {
                fact: "umount-undoes-the-leak",
                what: "the leaked mount is still there after umount",
                change: |o, _| {
                    let leaked = o.control.inside.view.mounts.nsx.clone();
                    if let Some(m) = o.control.inside.after_umount.as_mut() {
                        m.nsx = leaked;
                    }
                },
            },
            F {
                fact: "control-host-untouched",
                what: "the host's table changed during the control",
                change: |o, _| o.control.host.mounts.count += 1,
            },
        ]
    }
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ctx("readdir", dir.display())?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

fn files_label(files: &[String]) -> String {
    if files.is_empty() {
        "(empty)".to_string()
    } else {
        files.join(" ")
    }
}

/// The mount on `dir` in a table, as `tmpfs nsx-demo (private)`, or "absent".
fn present(table: &Mounts, dir: &str) -> String {
    match table.nsx.iter().find(|m| m.mount_point == dir) {
        Some(m) => format!("{} {} ({})", m.fstype, m.source, m.propagation),
        None => "absent".to_string(),
    }
}

/// One step: the probe's mount namespace and table read by both sides, then each side's
/// own table.
fn step(id: &str, title: &str, run: &Probe, dir: &str) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let probe_table = host.probe.mounts.clone().unwrap_or_default();
    let one_ns = kit::same(host.own(Ns::Mnt), inside.own(Ns::Mnt));
    let [ns_probe, ns_own] = kit::ns_rows(Ns::Mnt, host, inside);
    let count = |m: &Mounts| Val::Count(m.count as u64);
    let on_dir = "mount on DIR";
    let rows = vec![
        ns_probe,
        Row::probe(
            "mounts",
            "mountinfo",
            count(&probe_table),
            count(&inside.mounts),
        ),
        Row::probe(
            on_dir,
            "mountinfo",
            present(&probe_table, dir),
            present(&inside.mounts, dir),
        ),
        ns_own,
        Row::own(
            "propagation of /",
            "mountinfo",
            host.mounts.root_propagation.as_str(),
            inside.mounts.root_propagation.as_str(),
        ),
        Row::own(
            "mounts",
            "mountinfo",
            count(&host.mounts),
            count(&inside.mounts),
        )
        .drift_if(one_ns, "one mount table read at two moments"),
        {
            let r = Row::own(
                on_dir,
                "mountinfo",
                present(&host.mounts, dir),
                present(&inside.mounts, dir),
            );
            if id == "after" {
                r.key()
            } else {
                r
            }
        },
        Row::own(
            "files in DIR",
            "readdir",
            files_label(&run.host_extra),
            files_label(&run.inside.files),
        ),
    ];
    kit::step(id, title, run, inside, rows)
        .note(format!("DIR is {dir}, a directory nsx made for this run"))
        .extra(json!({ "files_inside": run.inside.files, "files_host": run.host_extra }))
}
