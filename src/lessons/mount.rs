//! mount: a mount namespace gives the probe its own mount table.
//!
//! mount_namespaces(7): CLONE_NEWNS copies the caller's mount table; later mounts change
//! only the namespace they are made in, *unless* propagation carries them to peers. A
//! copied mount keeps its propagation type, so under a shared "/" (systemd's default) a
//! mount inside would appear on the host. nsx makes "/" private first, always. The
//! control run shows the leak for real, contained in a throwaway namespace that plays
//! the host: a mount made shared there propagates into a child namespace's view and back.

use std::path::Path;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ns_label, probes_n, Ctx, Lesson, Rootless, Run};
use crate::error::{Context, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::sandbox::{Inside, Spec, TempDir};

pub const LESSON: Lesson = Lesson {
    id: "mount",
    title: "Mount namespace: a mount table of its own",
    mechanism: "CLONE_NEWNS + mount --make-rprivate / + a tmpfs",
    man: "mount_namespaces(7), mount(2), mount(8) (--make-private)",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/mount.md"),
    sees: Parts::ns("mnt").with(Parts::MOUNTS),
    run,
};

const FILE: &str = "written-inside";

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    view: View,
    /// What the probe lists in the demo directory.
    files: Vec<String>,
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

fn present(view: &View, dir: &str) -> String {
    match view.mounts.nsx.iter().find(|m| m.mount_point == dir) {
        Some(m) => format!("{} {} ({})", m.fstype, m.source, m.propagation),
        None => "absent".to_string(),
    }
}

fn rows(run: &Run<Seen, Vec<String>>, dir: &str) -> Vec<Row> {
    let (host, inside) = (&run.host, &run.inside.view);
    vec![
        Row::new(
            "mnt namespace",
            ns_label("mnt", host.own_ns("mnt")),
            ns_label("mnt", inside.own_ns("mnt")),
        ),
        Row::new(
            "propagation of /",
            &host.mounts.root_propagation,
            &inside.mounts.root_propagation,
        ),
        Row::new(
            "mounts in /proc/self/mountinfo",
            host.mounts.count,
            inside.mounts.count,
        ),
        Row::new(
            format!("mount on {dir}"),
            present(host, dir),
            present(inside, dir),
        ),
        Row::new(
            format!("files in {dir}"),
            files_label(&run.host_extra),
            files_label(&run.inside.files),
        ),
    ]
}

fn step(id: &str, title: &str, run: Run<Seen, Vec<String>>, dir: &str, notes: Vec<String>) -> Step {
    Step {
        id: id.into(),
        title: title.into(),
        rows: rows(&run, dir),
        actions: run.actions,
        notes,
        extra: json!({ "files_inside": run.inside.files, "files_host": run.host_extra }),
        host: run.host,
        container: run.inside.view,
    }
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let demo = TempDir::new("mount")?;
    let dir = demo.path().to_path_buf();
    let dir_s = dir.display().to_string();
    let base = ctx.baseline.mounts.clone();
    let host_mnt = ctx.baseline.own_ns("mnt");

    let look = |i: &mut Inside| {
        Ok(Seen {
            view: i.observe()?,
            files: list(&dir)?,
        })
    };
    let shared_dir = dir.join("shared-child");
    let private_dir = dir.join("private-child");
    // The after probe: a tmpfs in a mount namespace of its own.
    let after = |i: &mut Inside| {
        i.mount_tmpfs("nsx-demo", &dir)?;
        std::fs::write(dir.join(FILE), "hello from inside the mount namespace\n")
            .ctx("write", dir.join(FILE).display())?;
        i.action(format!("echo hello > {}/{FILE}", dir.display()));
        Ok(Seen {
            view: i.observe()?,
            files: list(&dir)?,
        })
    };
    // The control: why "/" must be private first, shown in a throwaway namespace.
    let control = |i: &mut Inside| {
        i.mount_tmpfs("nsx-stage", &dir)?;
        i.make_shared(&dir)?;
        for d in [&shared_dir, &private_dir] {
            std::fs::create_dir(d).ctx("mkdir", d.display())?;
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
        Ok(Seen {
            view: i.observe()?,
            files: list(&dir)?,
        })
    };
    // Each probe mounts only in a mount namespace of its own: the three run side by side.
    let [before, after, control] = probes_n(
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
    let before_fact = Fact::new(
        "before-same-table",
        format!(
            "before, the probe shares the host's mount namespace ({}) and sees {} mounts, as the host does",
            ns_label("mnt", before.inside.view.own_ns("mnt")),
            before.inside.view.mounts.count
        ),
        before.inside.view.own_ns("mnt") == host_mnt && before.inside.view.mounts.count == base.count,
        json!({ "inside": before.inside.view.mounts.count, "host": base.count }),
    );
    ctx.step(step(
        "before",
        "before: the probe forked with no new namespace",
        before,
        &dir_s,
        vec![],
    ))?;

    let (host, inside) = (&after.host, &after.inside.view);
    let mut facts = vec![
        before_fact,
        Fact::new(
            "mount-visible-inside",
            format!("inside, {dir_s} is a {}", present(inside, &dir_s)),
            inside.has_mount(&dir_s) && after.inside.files == [FILE],
            json!({ "mounts": inside.mounts.nsx, "files": after.inside.files }),
        ),
        Fact::new(
            "mount-absent-on-host",
            format!(
                "at the same moment the host's mountinfo has no such mount and {dir_s} lists {}",
                files_label(&after.host_extra)
            ),
            !host.has_mount(&dir_s) && after.host_extra.is_empty(),
            json!({ "host_nsx_mounts": host.mounts.nsx, "host_files": after.host_extra }),
        ),
        Fact::new(
            "host-mountinfo-unchanged",
            format!(
                "the host's mount table still has {} mounts, as before the lesson",
                host.mounts.count
            ),
            host.mounts == base,
            json!({ "before": base.count, "during": host.mounts.count }),
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
        Fact::new(
            "mnt-ns-differs",
            format!(
                "the probe's mnt namespace ({}) differs from the host's ({})",
                ns_label("mnt", inside.own_ns("mnt")),
                ns_label("mnt", host_mnt)
            ),
            inside.own_ns("mnt") != host_mnt && host.probe.ns("mnt") == inside.own_ns("mnt"),
            json!({ "inside": inside.own_ns("mnt"), "host": host_mnt }),
        ),
    ];
    ctx.step(step(
        "after",
        "after: clone(CLONE_NEWNS), / made private, a tmpfs mounted",
        after,
        &dir_s,
        vec![],
    ))?;

    let stage = &control.inside.view;
    let (shared_s, private_s) = (
        shared_dir.display().to_string(),
        private_dir.display().to_string(),
    );
    let leaked = stage.has_mount(&shared_s);
    let kept = !stage.has_mount(&private_s);
    let note = format!(
        "the probe played the host: it mounted {dir_s} shared, then started two child mount namespaces. The one that left / as inherited mounted nsx-leaked, and it {} in the probe's own table; the one that made / private first mounted nsx-kept, and it {}. On this machine the real host's / is {}.",
        if leaked { "appeared" } else { "did not appear" },
        if kept { "stayed inside" } else { "leaked too" },
        ctx.baseline.mounts.root_propagation
    );
    facts.push(Fact::new(
        "shared-propagation-leaks",
        format!("a mount made in a child namespace under a shared mount appeared in the parent namespace ({shared_s})"),
        leaked,
        json!({ "parent_sees": stage.mounts.nsx }),
    ));
    facts.push(Fact::new(
        "private-propagation-contains",
        format!("a mount made after mount --make-rprivate / did not ({private_s})"),
        kept,
        json!({ "parent_sees": stage.mounts.nsx }),
    ));
    facts.push(Fact::new(
        "control-host-untouched",
        "the real host saw none of the control run's mounts",
        control.host.mounts == base,
        json!({ "host_nsx_mounts": control.host.mounts.nsx }),
    ));
    ctx.step(step(
        "control",
        "control: why / must be private first (a throwaway namespace plays the host)",
        control,
        &dir_s,
        vec![note],
    ))?;
    drop(demo);
    Ok(facts)
}
