//! rootfs: a root filesystem of its own. chroot changes what "/" means for one process;
//! a root process can walk out of it. pivot_root in a mount namespace, with the old root
//! detached, leaves nothing to walk to. overlayfs then lets many containers share one
//! read-only image while each writes into its own upper directory.
//!
//! chroot(2): "This call does not change the current working directory", and ".." from
//! a directory outside the root is not stopped at the root: the classic escape. Here it
//! runs in a probe with its own mount namespace; the escaped probe only reads the host's
//! "/" (a listing and a stat) and exits. pivot_root(2) swaps the mount namespace's root
//! mount itself; after umount2(MNT_DETACH) of the old one there is no path above "/".
//!
//! pivot_root(2) fails with EINVAL where the current root is the rootfs, the initial
//! ramfs (a machine booted from an initramfs without switch_root, as the v2 test VM is):
//! the lesson shows which this machine is, and runc's fallback for it (`--no-pivot`:
//! MS_MOVE the image onto "/" and chroot), which leaves the old root attached beneath.
//!
//! proc(5): the host reads a probe's root through /proc/<pid>/root. Its link text is a
//! path in the probe's mount tree (after pivot_root, "/"); the link itself still leads to
//! the probe's root. Both sides read it through `observe` (the ROOT part).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Def, Env, Judged, Measure, NoOptions};
use super::kit::{self, StepExt};
use super::{Lesson, Rootless, Run};
use crate::error::{sys, Context, Error, Result};
use crate::observe::{root::read_root, Parts, Root, View};
use crate::report::{Fact, Row, Step, Val};
use crate::rootfs::busybox;
use crate::rootfs::tree::{self, Digest, OwnedTree};
use crate::sandbox::{Inside, Spec};

pub const LESSON: Lesson = super::engine::lesson::<Rootfs>();

pub struct Rootfs;

/// The image nsx built, as the host sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Its directory.
    path: String,
    /// The run's work directory (the image's parent), `nsx-<pid>-rootfs`.
    work: String,
    /// busybox's version line, and how many applets were linked.
    busybox: String,
    applets: usize,
    /// `ls`, and stat of the directory.
    listing: Vec<String>,
    dev: u64,
    ino: u64,
    /// Enough ".." to climb from the image to the host's "/", and one more.
    climb: usize,
}

/// A directory read directly (no /proc where the probe stands): "/" after re-entering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    listing: Vec<String>,
    dev: u64,
    ino: u64,
}

/// What a probe reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    /// Its view when it reported: its root (`/proc/self/root`), its mount table.
    view: View,
    /// Its root before the escape, read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<Root>,
    /// Its root after the ".." escape, when it went on to do more (the no-pivot step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dotdot: Option<Root>,
    /// pivot_root(".", ".") on the first try: "0" or the errno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pivot: Option<String>,
    /// umount2("/", MNT_DETACH) before re-entering: "0" or the errno (EINVAL for a
    /// locked mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    umount: Option<String>,
    /// "/" after that and setns(2) into its own mount namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reentered: Option<Dir>,
}

impl Seen {
    fn new(view: View) -> Seen {
        Seen {
            view,
            before: None,
            dotdot: None,
            pivot: None,
            umount: None,
            reentered: None,
        }
    }
}

/// What the host finds in the overlay's directories after the probe wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Upper {
    /// Every non-directory in upper: `root/hello.txt (1 line)`, `linuxrc (whiteout)`.
    entries: Vec<String>,
    /// upper/root/hello.txt, and whether the image has such a file.
    hello: Option<String>,
    image_has_hello: bool,
    /// /etc/passwd in upper (the copy-up) and in the image.
    passwd_upper: Option<String>,
    passwd_image: String,
    /// upper/linuxrc as lstat shows it: "char 0:0" for a whiteout.
    linuxrc_upper: Option<String>,
    image_has_linuxrc: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Obs {
    image: Image,
    chroot: Run<Seen>,
    // Each of the rest is `None` while nsx pauses at a step before it, with --step.
    escape: Option<Run<Seen>>,
    pivot: Option<Run<Seen>>,
    /// A second pivot_root probe that detaches "/" and re-enters its mount namespace.
    pivot_reenter: Option<Run<Seen>>,
    no_pivot: Option<Run<Seen>>,
    overlay: Option<Run<Seen, Upper>>,
    lower_before: Option<Digest>,
    lower_after: Option<Digest>,
    /// The image's own /tmp after the escapes, as the host lists it: each escape made
    /// its directory in a scratch tmpfs mounted over it in the probe's namespace.
    image_tmp: Option<Vec<String>>,
}

const ESCAPE_DIR: &str = "/tmp/nsx-escape";
const HELLO: &str = "written inside the container\n";
const APP_LINE: &str = "app:x:1000:1000:app:/home/app:/bin/sh\n";

impl Def for Rootfs {
    const ID: &'static str = "rootfs";
    const TITLE: &'static str = "A root filesystem of its own: chroot, pivot_root, overlayfs";
    const MECHANISM: &'static str =
        "chroot(2); pivot_root(2) + umount2(MNT_DETACH); MS_MOVE + chroot; an overlay mount";
    const MAN: &'static str = "chroot(2), pivot_root(2), proc(5) (/proc/pid/root), mount_namespaces(7), setns(2), Documentation/filesystems/overlayfs.rst";
    const ROOTLESS: Rootless = Rootless::Yes;
    const NARRATIVE: &'static str = include_str!("../../lessons/rootfs.md");
    const SEES: Parts = Parts::MOUNTS.with(Parts::ROOT);
    const FACTS: &'static [&'static str] = &[
        "chroot-changes-root",
        "chroot-is-a-directory",
        "chroot-escape-reaches-host",
        "escape-contained",
        "pivot-root-escape-fails",
        "old-root-detached",
        "host-readlink-root-is-slash",
        "pivot-root-on-this-machine",
        "no-pivot-dotdot-stays",
        "no-pivot-old-root-attached",
        "overlay-write-lands-in-upper",
        "overlay-copy-up",
        "overlay-whiteout",
        "overlay-lower-unchanged",
        "host-mounts-unchanged",
    ];
    const WORDS: &'static [&'static str] = &[
        "chroot",
        "pivot_root",
        "pivot",
        "overlay",
        "overlayfs",
        "image",
        "filesystem",
    ];
    type Options = NoOptions;
    type Obs = Obs;

    fn measure(m: &mut Measure, _: &NoOptions) -> Result<Obs> {
        let bb = busybox::find()?;
        tree::sweep_trees("rootfs");
        let work = OwnedTree::new("rootfs")?;
        let img = work.path().join("image");
        std::fs::create_dir(&img).ctx("mkdir", img.display())?;
        let built = busybox::build_from(&bb, &img)?;
        let meta = std::fs::metadata(&img).ctx("stat", img.display())?;
        let image = Image {
            path: img.display().to_string(),
            work: work.path().display().to_string(),
            busybox: built.version,
            applets: built.applets,
            listing: tree::list(&img)?,
            dev: meta.dev(),
            ino: meta.ino(),
            climb: img.components().count(),
        };
        let climb = image.climb;
        let pid_mnt = Spec::new(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID);
        // One probe per step, in the order the steps are shown, each alive until the
        // presenter has looked at it (with --step): each changes only its own mount
        // namespace.
        let mut probe = m.start(&pid_mnt, |_| Ok(()), |i| chroot_probe(i, &img))?;
        let mut obs = Obs {
            image,
            chroot: probe.report(|_| Ok(()))?,
            escape: None,
            pivot: None,
            pivot_reenter: None,
            no_pivot: None,
            overlay: None,
            lower_before: None,
            lower_after: None,
            image_tmp: None,
        };
        if m.pauses() {
            m.pause(&obs, &look_at_root(probe.pid(), false))?;
        }
        probe.finish()?;

        let mut probe = m.start(&pid_mnt, |_| Ok(()), |i| escape_probe(i, &img, climb))?;
        obs.escape = Some(probe.report(|_| Ok(()))?);
        if m.pauses() {
            m.pause(&obs, &look_at_root(probe.pid(), false))?;
        }
        probe.finish()?;

        // The pivot_root probes one at a time: on an initramfs root, nsx's way round
        // EINVAL (crate::run::pivot) uses a directory in the shared /tmp. The one that
        // re-enters its namespace first, so that the one the step shows is alive at its
        // pause.
        obs.pivot_reenter =
            Some(m.probe(&pid_mnt, |i| pivot_probe(i, &img, climb, true), |_| Ok(()))?);
        let mut probe = m.start(&pid_mnt, |_| Ok(()), |i| pivot_probe(i, &img, climb, false))?;
        obs.pivot = Some(probe.report(|_| Ok(()))?);
        if m.pauses() {
            m.pause(&obs, &look_at_root(probe.pid(), true))?;
        }
        probe.finish()?;

        let mut probe = m.start(&pid_mnt, |_| Ok(()), |i| no_pivot_probe(i, &img, climb))?;
        obs.no_pivot = Some(probe.report(|_| Ok(()))?);
        if m.pauses() {
            m.pause(&obs, &look_at_root(probe.pid(), true))?;
        }
        probe.finish()?;
        obs.image_tmp = Some(tree::list(&img.join("tmp"))?);

        // overlayfs: its own probe, between two digests of the image.
        let (upper, workdir, merged) = (
            work.path().join("upper"),
            work.path().join("work"),
            work.path().join("merged"),
        );
        for d in [&upper, &workdir, &merged] {
            std::fs::create_dir(d).ctx("mkdir", d.display())?;
        }
        obs.lower_before = Some(tree::digest(&img)?);
        let rootless = m.rootless();
        let mut probe = m.start(
            &pid_mnt,
            |_| Ok(()),
            |i| overlay_probe(i, &img, &upper, &workdir, &merged, rootless),
        )?;
        obs.overlay = Some(probe.report(|_| upper_seen(&upper, &img))?);
        obs.lower_after = Some(tree::digest(&img)?);
        // The overlay is mounted in the probe's namespace while it lives; upper is on
        // the host's file system until nsx removes WORK.
        if m.pauses() {
            let pid = probe.pid();
            let upper = kit::shell_word(&upper.display().to_string());
            m.pause(
                &obs,
                &[
                    format!("grep nsx-overlay /proc/{pid}/mountinfo"),
                    format!("ls -lR {upper}"),
                    format!("cat /proc/{pid}/root/root/hello.txt"),
                ],
            )?;
        }
        probe.finish()?;
        m.note(format!(
            "the image: {} ({} applets linked to /bin/busybox) built in IMAGE",
            obs.image.busybox, obs.image.applets
        ));
        drop(work);
        Ok(obs)
    }

    fn judge(o: &Obs, _: &NoOptions, env: &Env) -> Judged {
        let base = &env.baseline;
        let img = &o.image;
        let host_own = base.root.clone().unwrap_or_default();
        let is_image = |r: &Root| (r.dev, r.ino) == (img.dev, img.ino) && r.listing == img.listing;
        let is_host = |dev: u64, ino: u64, listing: &[String]| {
            (dev, ino) == (host_own.dev, host_own.ino) && listing == host_own.listing.as_slice()
        };
        let probe_root = |r: &Run<Seen>| r.inside.view.probe.root.clone().unwrap_or_default();
        let host_reads = |r: &Run<Seen>| r.host.probe.root.clone().unwrap_or_default();
        let sh = |p: &str| shorten(p, img);
        // Every step says where IMAGE and WORK are; a run paused midway (with --step)
        // shows the steps it has made.
        let with_dirs = |steps: Vec<Step>| -> Vec<Step> {
            steps
                .into_iter()
                .map(|s| {
                    s.note(format!(
                        "IMAGE is {}, WORK is {}, made for this run",
                        img.path, img.work
                    ))
                })
                .collect()
        };
        let so_far = |steps: Vec<Step>| Judged {
            steps: with_dirs(steps),
            ..Judged::default()
        };

        // chroot
        let (c_in, c_host) = (probe_root(&o.chroot), host_reads(&o.chroot));
        let mut steps = vec![root_step(
            "chroot",
            "chroot: / becomes the image directory",
            &o.chroot,
            img,
            base,
            Vec::new(),
            Vec::new(),
        )
        .takeaway(format!(
            "the host reads the probe's root as {}: a directory of its own tree, not a mount",
            sh(&c_host.link)
        ))];

        // the escape
        let Some(escape) = &o.escape else {
            return so_far(steps);
        };
        let e_out = probe_root(escape);
        let e_host = host_reads(escape);
        steps.push(
            root_step(
                "chroot-escape",
                "a root process leaves a chroot (contained in a throwaway mount namespace)",
                escape,
                img,
                base,
                vec![Row::own(
                    "ls before the escape",
                    "root/",
                    Val::Names(host_own.listing.clone()),
                    names(escape.inside.before.as_ref()),
                )],
                Vec::new(),
            )
            .takeaway("chroot is a view, not a wall: with CAP_SYS_CHROOT the probe walked back to the host's /"),
        );

        // pivot_root
        let (Some(pivot), Some(pivot_reenter)) = (&o.pivot, &o.pivot_reenter) else {
            return so_far(steps);
        };
        let p_in = probe_root(pivot);
        let p_host = host_reads(pivot);
        let p_mounts = pivot.inside.view.mounts.count;
        let attempt = pivot.inside.pivot.clone().unwrap_or_default();
        let host_is_initramfs = host_own
            .mount
            .as_ref()
            .is_some_and(|m| m.fstype == "rootfs");
        let landing = pivot_reenter.inside.reentered.clone().unwrap_or_default();
        let landed_on_host = is_host(landing.dev, landing.ino, &landing.listing);
        steps.push(
            root_step(
                "pivot-root",
                "pivot_root: the image becomes the mount namespace's root, the old one is detached",
                pivot,
                img,
                base,
                vec![Row::probe(
                    "pivot_root(\".\", \".\")",
                    "a system call",
                    Val::None("only the probe can call it".into()),
                    Val::text(attempt.clone()),
                )],
                vec![Row::own(
                    "ls after umount+setns",
                    "readdir /",
                    Val::Names(host_own.listing.clone()),
                    Val::Names(landing.listing.clone()),
                )],
            )
            .note(format!(
                "the host's {}/root says \"{}\", the path of the probe's root in the probe's own mount tree, where it is now the top; listing through the link still finds the image. A second probe pivoted the same way, then tried to detach / (umount2(\"/\", MNT_DETACH) = {}) and re-entered its own mount namespace with setns(2), which puts it on whatever is stacked at the namespace's bottom mount: {}",
                pivot.host.source,
                p_host.link,
                pivot_reenter.inside.umount.as_deref().unwrap_or("not tried"),
                if landed_on_host {
                    "this machine's / itself, the initramfs, which no pivot_root can take away"
                } else if pivot_reenter.inside.umount.as_deref() == Some("0") {
                    "the initial ramfs beneath the host's /, not the host's tree"
                } else {
                    "the image, still: in a mount namespace owned by a user namespace, the new root took the old root's lock (mount_namespaces(7)) and cannot be unmounted"
                }
            ))
            .takeaway("the host's readlink says \"/\" but its ls finds the image: the probe's root is the top of its own mount tree"),
        );

        // no-pivot
        let Some(no_pivot) = &o.no_pivot else {
            return so_far(steps);
        };
        let np = &no_pivot.inside;
        let np_dotdot = np.dotdot.clone().unwrap_or_default();
        let np_out = probe_root(no_pivot);
        let np_host = host_reads(no_pivot);
        steps.push(
            root_step(
                "no-pivot",
                "runc --no-pivot: mount --move the image onto /, chroot (contained)",
                no_pivot,
                img,
                base,
                vec![
                    Row::own(
                        "ls after move+chroot",
                        "root/",
                        Val::Names(host_own.listing.clone()),
                        names(np.before.as_ref()),
                    ),
                    Row::own(
                        "ls after the .. escape",
                        "root/",
                        Val::Names(host_own.listing.clone()),
                        Val::Names(np_dotdot.listing.clone()),
                    ),
                ],
                Vec::new(),
            )
            .note("runc uses this where pivot_root cannot work (a root that is the initramfs: runc --no-pivot). The .. escape fails as after pivot_root, because the image is a mount stacked on the old root. But nothing was detached: a process with CAP_SYS_ADMIN (and CAP_SYS_CHROOT, for setns(2)) that unmounts / and re-enters its mount namespace stands on the host's tree again, as the probe did here, and a full /proc of the host stays in the namespace (why runc masks /proc and /sys mounts first)")
            .takeaway(if landed_on_host {
                "MS_MOVE + chroot hides the old root; on this initramfs root, pivot_root cannot remove it either"
            } else {
                "MS_MOVE + chroot hides the old root; pivot_root + MNT_DETACH removes it"
            }),
        );

        // overlay
        let Some(overlay) = &o.overlay else {
            return so_far(steps);
        };
        let up = &overlay.host_extra;
        let ov_in = overlay.inside.view.probe.root.clone().unwrap_or_default();
        steps.push(
            root_step(
                "overlay",
                "overlayfs: the image stays read-only, the container's writes land in upper",
                overlay,
                img,
                base,
                Vec::new(),
                Vec::new(),
            )
            .note(format!(
                "the host lists the upper directory WORK/upper: {}",
                up.entries.join(", ")
            ))
            .takeaway("the image is shared read-only; each container's changes are files in its own upper directory"),
        );
        let (Some(lower_before), Some(lower_after), Some(image_tmp)) =
            (&o.lower_before, &o.lower_after, &o.image_tmp)
        else {
            return so_far(steps);
        };

        let during = [
            ("chroot", &o.chroot.host),
            ("chroot-escape", &escape.host),
            ("pivot-root", &pivot.host),
            ("pivot-root (re-enter)", &pivot_reenter.host),
            ("no-pivot", &no_pivot.host),
            ("overlay", &overlay.host),
        ];
        let changed: Vec<&str> = during
            .iter()
            .filter(|(_, h)| h.mounts != base.mounts)
            .map(|(id, _)| *id)
            .collect();

        let facts = vec![
            Fact::new(
                "chroot-changes-root",
                format!(
                    "after chroot the probe's / lists the image ({}), and its root, read by the host through {}/root, is {} with the same listing",
                    Val::Names(c_in.listing.clone()),
                    o.chroot.host.source,
                    sh(&c_host.link),
                ),
                c_in.link == "/"
                    && c_in.listing == img.listing
                    && c_host.link == img.path
                    && c_host.listing == img.listing,
                json!({ "inside_link": c_in.link, "host_link": sh(&c_host.link), "listing": c_in.listing }),
            ),
            Fact::new(
                "chroot-is-a-directory",
                format!(
                    "inside the chroot, mountinfo has {} for / (it lists {} mount under the new root), and / has the device and inode the host sees for the image directory: a directory, not a mount",
                    if c_in.mount.is_none() { "no line" } else { "a line" },
                    o.chroot.inside.view.mounts.count
                ),
                c_in.mount.is_none() && (c_in.dev, c_in.ino) == (img.dev, img.ino),
                json!({ "mount": c_in.mount, "same_device_as_image": c_in.dev == img.dev, "same_inode_as_image": c_in.ino == img.ino }),
            ),
            Fact::new(
                "chroot-escape-reaches-host",
                format!(
                    "after the escape the probe's / is the host's own again: device {} and {} entries, as the host's (nsx's /proc/self/root); the host reads its root link as {}",
                    devino(e_out.dev, e_out.ino), e_out.listing.len(), e_host.link
                ),
                is_host(e_out.dev, e_out.ino, &e_out.listing) && e_host.link == "/",
                json!({ "inside": [e_out.dev, e_out.ino], "host": [host_own.dev, host_own.ino], "host_link": e_host.link }),
            ),
            Fact::new(
                "escape-contained",
                format!(
                    "every escape happened in the probe's own mount namespace: the host's mount table is unchanged, and the image's own /tmp, which the host lists, is {}",
                    if image_tmp.is_empty() { "empty".to_string() } else { image_tmp.join(" ") }
                ),
                [escape, pivot, no_pivot]
                    .iter()
                    .all(|r| r.host.mounts == base.mounts)
                    && image_tmp.is_empty(),
                json!({ "image_tmp": image_tmp, "host_mounts": escape.host.mounts.count }),
            ),
            Fact::new(
                "pivot-root-escape-fails",
                format!(
                    "after pivot_root and detaching the old root, the same escape ends at the image's own root (inode {}, {}), not the host's",
                    p_in.ino,
                    Val::Names(p_in.listing.clone())
                ),
                is_image(&p_in) && !is_host(p_in.dev, p_in.ino, &p_in.listing),
                json!({ "inside": [p_in.dev, p_in.ino], "image": [img.dev, img.ino] }),
            ),
            Fact::new(
                "old-root-detached",
                format!(
                    "inside, mountinfo lists {p_mounts} mounts (the image, /proc, /tmp) where the host's own has {}: no mount of the host is left to reach",
                    base.mounts.count
                ),
                p_mounts == 3 && base.mounts.count > 3,
                json!({ "inside": p_mounts, "host": base.mounts.count }),
            ),
            Fact::new(
                "host-readlink-root-is-slash",
                format!(
                    "after pivot_root the host's readlink of {}/root says {:?}, yet listing through it finds the image ({}), not the host's own / ({} entries): the link's text is a path in the probe's mount tree, whose top is now the probe's root; the link itself still leads there",
                    pivot.host.source,
                    p_host.link,
                    Val::Names(p_host.listing.clone()),
                    host_own.listing.len()
                ),
                p_host.link == "/" && p_host.listing == img.listing && host_own.listing != img.listing,
                json!({ "host_link": p_host.link, "host_lists": p_host.listing }),
            ),
            machine_fact(
                &attempt,
                pivot_reenter.inside.umount.as_deref().unwrap_or("not tried"),
                host_is_initramfs,
                &host_own,
                &landing,
                landed_on_host,
            ),
            Fact::new(
                "no-pivot-dotdot-stays",
                format!(
                    "with runc's --no-pivot way (mount --move of the image onto /, then chroot), the .. escape ends at the image too (inode {}, {})",
                    np_dotdot.ino,
                    Val::Names(np_dotdot.listing.clone())
                ),
                is_image(&np_dotdot),
                json!({ "after_dotdot": [np_dotdot.dev, np_dotdot.ino], "image": [img.dev, img.ino] }),
            ),
            Fact::new(
                "no-pivot-old-root-attached",
                format!(
                    "but the old root is still attached beneath the image: after umount2(\"/\", MNT_DETACH) and setns(2) into its own mount namespace the probe's / is the host's own (device {}, {} entries), and the host reads the same through {}/root",
                    devino(np_out.dev, np_out.ino),
                    np_out.listing.len(),
                    no_pivot.host.source
                ),
                is_host(np_out.dev, np_out.ino, &np_out.listing)
                    && np_host.listing == host_own.listing,
                json!({ "reentered": [np_out.dev, np_out.ino], "host": [host_own.dev, host_own.ino] }),
            ),
            Fact::new(
                "overlay-write-lands-in-upper",
                format!(
                    "the file written inside is in the upper directory, which the host lists: {}",
                    up.entries.join(", ")
                ),
                up.hello.as_deref() == Some(HELLO) && !up.image_has_hello,
                json!({ "upper": up.entries }),
            ),
            Fact::new(
                "overlay-copy-up",
                "changing /etc/passwd copied it up: the upper copy has the new line, the image's copy does not",
                up.passwd_upper.as_deref().is_some_and(|p| p.contains(APP_LINE))
                    && !up.passwd_image.contains(APP_LINE),
                json!({
                    "upper_lines": up.passwd_upper.as_deref().map(|p| p.lines().count()),
                    "lower_lines": up.passwd_image.lines().count(),
                }),
            ),
            Fact::new(
                "overlay-whiteout",
                format!(
                    "deleting /linuxrc left a whiteout in the upper directory (lstat: {}) and the file in the image; inside, / no longer lists it",
                    up.linuxrc_upper.as_deref().unwrap_or("nothing")
                ),
                up.linuxrc_upper.as_deref() == Some("char 0:0")
                    && up.image_has_linuxrc
                    && !ov_in.listing.is_empty()
                    && !ov_in.listing.iter().any(|n| n == "linuxrc"),
                json!({ "whiteout": up.linuxrc_upper, "inside": ov_in.listing }),
            ),
            Fact::new(
                "overlay-lower-unchanged",
                format!(
                    "the image (lower) is unchanged: {} entries, {} bytes, checksum {} before and {} after",
                    lower_after.entries, lower_after.bytes, lower_before.hash, lower_after.hash
                ),
                lower_before == lower_after,
                json!({ "before": lower_before.hash, "after": lower_after.hash }),
            ),
            Fact::new(
                "host-mounts-unchanged",
                format!(
                    "the host's own mount table stayed as it was through every probe ({} mounts){}",
                    base.mounts.count,
                    if changed.is_empty() { String::new() } else { format!(": it changed during {}", changed.join(", ")) }
                ),
                changed.is_empty(),
                json!({ "host_mounts": base.mounts.count, "changed_during": changed }),
            ),
        ];
        Judged {
            steps: with_dirs(steps),
            facts,
            notes: Vec::new(),
            takeaway: Some(format!(
                "chroot moved the probe's / and it walked out; after pivot_root the same walk ended at the image ({} entries), while the host's / has {}",
                p_in.listing.len(),
                host_own.listing.len()
            )),
        }
    }

    #[cfg(test)]
    fn falsifiers() -> Vec<super::engine::Falsifier<Obs>> {
        use super::engine::Falsifier as F;
        fn made<T>(step: &mut Option<T>) -> &mut T {
            step.as_mut().expect("a recording has every step")
        }
        fn root_of(r: &mut Run<Seen>) -> &mut Root {
            r.inside.view.probe.root.as_mut().expect("a recorded root")
        }
        fn host_root_of(r: &mut Run<Seen>) -> &mut Root {
            r.host.probe.root.as_mut().expect("a recorded root")
        }
        vec![
            F {
                fact: "chroot-changes-root",
                what: "the host reads another root for the probe",
                change: |o, _| host_root_of(&mut o.chroot).link = "/".into(),
            },
            F {
                fact: "chroot-is-a-directory",
                what: "a mount sits at the chroot's /",
                change: |o, _| {
                    root_of(&mut o.chroot).mount = Some(crate::observe::RootMount {
                        root: "/".into(),
                        fstype: "tmpfs".into(),
                    })
                },
            },
            F {
                fact: "chroot-escape-reaches-host",
                what: "the escaped probe's / is another inode",
                change: |o, _| root_of(made(&mut o.escape)).ino += 1,
            },
            F {
                fact: "escape-contained",
                what: "the escape's directory is in the image's own /tmp",
                change: |o, _| made(&mut o.image_tmp).push("nsx-escape".into()),
            },
            F {
                fact: "escape-contained",
                what: "the host's table gained a mount during the escape",
                change: |o, _| made(&mut o.escape).host.mounts.count += 1,
            },
            F {
                fact: "pivot-root-escape-fails",
                what: "after pivot_root the escape reached the host's root",
                change: |o, env| {
                    let host = env.baseline.root.clone().expect("a recorded root");
                    let r = root_of(made(&mut o.pivot));
                    (r.dev, r.ino, r.listing) = (host.dev, host.ino, host.listing);
                },
            },
            F {
                fact: "old-root-detached",
                what: "the host's mounts are still listed inside",
                change: |o, _| made(&mut o.pivot).inside.view.mounts.count = 20,
            },
            F {
                fact: "host-readlink-root-is-slash",
                what: "the host's ls through /proc/<pid>/root finds its own /",
                change: |o, env| {
                    let host = env.baseline.root.clone().expect("a recorded root");
                    host_root_of(made(&mut o.pivot)).listing = host.listing;
                },
            },
            F {
                fact: "host-readlink-root-is-slash",
                what: "the host's readlink gives the image's path",
                change: |o, _| host_root_of(made(&mut o.pivot)).link = o.image.path.clone(),
            },
            F {
                fact: "pivot-root-on-this-machine",
                what: "the first pivot_root had the other result",
                change: |o, _| {
                    let p = made(&mut o.pivot)
                        .inside
                        .pivot
                        .get_or_insert_with(String::new);
                    *p = if p == "0" {
                        "EINVAL".into()
                    } else {
                        "0".into()
                    };
                },
            },
            F {
                fact: "pivot-root-on-this-machine",
                what: "re-entering the namespace landed elsewhere",
                change: |o, env| {
                    let host = env.baseline.root.clone().expect("a recorded root");
                    let d = made(&mut o.pivot_reenter)
                        .inside
                        .reentered
                        .get_or_insert_with(Dir::default);
                    if d.listing == host.listing && (d.dev, d.ino) == (host.dev, host.ino) {
                        d.ino += 1;
                    } else {
                        (d.dev, d.ino, d.listing) = (host.dev, host.ino, host.listing);
                    }
                },
            },
            F {
                fact: "no-pivot-dotdot-stays",
                what: "the .. escape after mount --move reached another directory",
                change: |o, _| {
                    if let Some(r) = made(&mut o.no_pivot).inside.dotdot.as_mut() {
                        r.ino += 1;
                    }
                },
            },
            F {
                fact: "no-pivot-old-root-attached",
                what: "re-entering the namespace did not reach the host's /",
                change: |o, _| {
                    root_of(made(&mut o.no_pivot))
                        .listing
                        .pop()
                        .map(|_| ())
                        .unwrap_or(())
                },
            },
            F {
                fact: "overlay-write-lands-in-upper",
                what: "upper has no hello.txt",
                change: |o, _| made(&mut o.overlay).host_extra.hello = None,
            },
            F {
                fact: "overlay-copy-up",
                what: "the image's passwd has the new line",
                change: |o, _| {
                    made(&mut o.overlay)
                        .host_extra
                        .passwd_image
                        .push_str(APP_LINE)
                },
            },
            F {
                fact: "overlay-whiteout",
                what: "upper's linuxrc is a plain file",
                change: |o, _| made(&mut o.overlay).host_extra.linuxrc_upper = Some("file".into()),
            },
            F {
                fact: "overlay-lower-unchanged",
                what: "the image's checksum changed",
                change: |o, _| made(&mut o.lower_after).hash = "0".repeat(16),
            },
            F {
                fact: "host-mounts-unchanged",
                what: "the host's table gained a mount during the overlay step",
                change: |o, _| made(&mut o.overlay).host.mounts.count += 1,
            },
        ]
    }
}

/// `pivot-root-on-this-machine`: what pivot_root does where this machine's / is.
fn machine_fact(
    attempt: &str,
    umount: &str,
    initramfs: bool,
    host: &Root,
    landing: &Dir,
    landed_on_host: bool,
) -> Fact {
    let fstype = host
        .mount
        .as_ref()
        .map_or("not read".to_string(), |m| m.fstype.clone());
    let (claim, holds) = if initramfs {
        (
            format!(
                "this machine's / is {fstype}, the initial ramfs: pivot_root(\".\", \".\") gave {attempt} (pivot_root(2): the rootfs cannot be pivoted), so nsx first gave / a parent (mount --rbind / onto a directory, mount --move it onto /, chroot) and pivoted from there; the initramfs stays the namespace's bottom mount, and umount / (= {umount}) + setns lands on the host's / again ({} entries)",
                landing.listing.len()
            ),
            attempt == "EINVAL" && landed_on_host,
        )
    } else {
        (
            format!(
                "this machine's / is {fstype}, not the initial ramfs: pivot_root(\".\", \".\") gave {attempt}, and with the old root detached, umount / (= {umount}) + setns lands on {}, not the host's / ({} entries)",
                if umount == "0" {
                    format!("the namespace's bottom mount ({})", Val::Names(landing.listing.clone()))
                } else {
                    format!("the image again ({}): the new root took the old root's lock", Val::Names(landing.listing.clone()))
                },
                host.listing.len()
            ),
            attempt == "0" && !landed_on_host && !landing.listing.is_empty(),
        )
    };
    Fact::new(
        "pivot-root-on-this-machine",
        claim,
        holds,
        json!({ "root_fstype": fstype, "pivot_root": attempt, "umount": umount, "reentered": landing.listing, "landed_on_host": landed_on_host }),
    )
}

/// For a presenter's second terminal: where the host reads the probe's root to be
/// (readlink(1) of /proc/PID/root, proc(5)), what listing through that link finds, and
/// with `mounts` the probe's mount table.
fn look_at_root(pid: i32, mounts: bool) -> Vec<String> {
    let mut look = vec![
        format!("readlink /proc/{pid}/root"),
        format!("ls /proc/{pid}/root/"),
    ];
    if mounts {
        look.push(format!("cat /proc/{pid}/mountinfo"));
    }
    look
}

fn names(r: Option<&Root>) -> Val {
    match r {
        Some(r) => Val::Names(r.listing.clone()),
        None => Val::None("not read".into()),
    }
}

/// `path` with the image's directory shown as IMAGE and the run's work directory as
/// WORK (the step notes say what they are).
fn shorten(path: &str, img: &Image) -> String {
    path.replace(&img.path, "IMAGE").replace(&img.work, "WORK")
}

fn link_val(r: Option<&Root>, img: &Image) -> Val {
    match r {
        Some(r) => Val::Path(shorten(&r.link, img)),
        None => Val::None("not read".into()),
    }
}

fn mount_val(r: Option<&Root>, img: &Image) -> Val {
    match r.map(|r| &r.mount) {
        Some(Some(m)) => Val::text(format!("{} ({})", shorten(&m.root, img), m.fstype)),
        Some(None) => Val::text("no line: not a mount"),
        None => Val::None("not read".into()),
    }
}

/// `254:0, inode 2`: a device as major:minor, and an inode.
fn devino(dev: u64, ino: u64) -> String {
    format!("{}:{}, inode {ino}", libc::major(dev), libc::minor(dev))
}

fn inode_val(r: Option<&Root>) -> Val {
    match r {
        Some(r) => Val::text(devino(r.dev, r.ino)),
        None => Val::None("not read".into()),
    }
}

fn count_val(n: usize) -> Val {
    if n == 0 {
        Val::None("not read".into())
    } else {
        Val::Count(n as u64)
    }
}

/// One step: the probe's root read by both sides (the host through /proc/<pid>/root),
/// then each side's own root and mount table.
fn root_step<H>(
    id: &str,
    title: &str,
    run: &Run<Seen, H>,
    img: &Image,
    base: &View,
    extra: Vec<Row>,
    last: Vec<Row>,
) -> Step {
    let (host, inside) = (&run.host, &run.inside.view);
    let (h, p) = (host.probe.root.as_ref(), inside.probe.root.as_ref());
    let own_host = base.root.as_ref();
    let probe_table = host.probe.mounts.as_ref().map_or(0, |m| m.count);
    let (extra_probe, extra_own): (Vec<Row>, Vec<Row>) = extra
        .into_iter()
        .partition(|r| r.side == crate::report::Side::Probe);
    let ls_probe = Row::probe(
        "ls",
        "root/",
        h.map_or(Val::None("not read".into()), |r| {
            Val::Names(r.listing.clone())
        }),
        p.map_or(Val::None("not read".into()), |r| {
            Val::Names(r.listing.clone())
        }),
    );
    let link = Row::probe("readlink", "root", link_val(h, img), link_val(p, img));
    let (link, ls_probe) = match id {
        "chroot" => (link.key(), ls_probe),
        "pivot-root" => (link, ls_probe.key()),
        _ => (link, ls_probe),
    };
    let mut rows = vec![
        link,
        ls_probe,
        Row::probe("device, inode", "root/", inode_val(h), inode_val(p)),
        Row::probe(
            "mount at /",
            "mountinfo",
            mount_val(h, img),
            mount_val(p, img),
        ),
        Row::probe(
            "mounts",
            "mountinfo",
            count_val(probe_table),
            count_val(inside.mounts.count),
        ),
    ];
    rows.extend(extra_probe);
    rows.extend(extra_own);
    let ls_own = Row::own(
        "ls",
        "root/",
        own_host.map_or(Val::None("not read".into()), |r| {
            Val::Names(r.listing.clone())
        }),
        p.map_or(Val::None("not read".into()), |r| {
            Val::Names(r.listing.clone())
        }),
    );
    rows.push(if matches!(id, "chroot-escape" | "no-pivot") {
        ls_own.key()
    } else {
        ls_own
    });
    rows.push(Row::own(
        "mount at /",
        "mountinfo",
        mount_val(own_host, img),
        mount_val(p, img),
    ));
    rows.push(Row::own(
        "mounts",
        "mountinfo",
        count_val(host.mounts.count),
        count_val(inside.mounts.count),
    ));
    rows.extend(last);
    kit::step(id, title, run, inside, rows)
}

// ------------------------------------------------------------------------ the probes

fn chroot_here(dir: &Path) -> Result<()> {
    // chroot(2): changes the root of this process only; the working directory stays.
    nix::unistd::chroot(dir).ctx("chroot", dir.display())
}

fn mount_proc(i: &mut Inside, target: &Path) -> Result<()> {
    // proc(5): a procfs for the probe's PID namespace, inside the image.
    i.mount(
        "proc",
        target,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
        format!("mount -t proc proc {}", target.display()),
    )
}

/// A tmpfs over the image's /tmp, in the probe's namespace: the escape's mkdir lands
/// there, never in the image.
fn scratch_tmp(i: &mut Inside, target: &Path) -> Result<()> {
    i.mount(
        "nsx-scratch",
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=64k,mode=1777"),
        format!("mount -t tmpfs nsx-scratch {}", target.display()),
    )
}

/// pivot_root(2) needs the new root to be a mount point: bind the image onto itself.
fn bind_image(i: &mut Inside, img: &Path) -> Result<()> {
    let s = img.display().to_string();
    i.mount(
        &s,
        img,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        format!("mount --rbind {s} {s}   (pivot_root and MS_MOVE need a mount point)"),
    )
}

fn own_root() -> Result<Root> {
    read_root(Path::new("/proc/self"))
}

/// The classic escape: a chroot into a subdirectory leaves the working directory
/// outside the new root, and ".." from there is never clamped.
fn escape(i: &mut Inside, climb: usize) -> Result<()> {
    std::fs::create_dir(ESCAPE_DIR).ctx("mkdir", ESCAPE_DIR)?;
    chroot_here(Path::new(ESCAPE_DIR))?;
    for _ in 0..climb {
        nix::unistd::chdir("..").ctx("chdir", "..")?;
    }
    chroot_here(Path::new("."))?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action(format!(
        "escape: mkdir {ESCAPE_DIR}; chroot {ESCAPE_DIR}; chdir .. ×{climb}; chroot .   (the working directory stayed outside the new root)"
    ));
    Ok(())
}

fn chroot_probe(i: &mut Inside, img: &Path) -> Result<Seen> {
    mount_proc(i, &img.join("proc"))?;
    chroot_here(img)?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action(format!("chroot {}; cd /", img.display()));
    Ok(Seen::new(i.observe()?))
}

fn escape_probe(i: &mut Inside, img: &Path, climb: usize) -> Result<Seen> {
    mount_proc(i, &img.join("proc"))?;
    scratch_tmp(i, &img.join("tmp"))?;
    chroot_here(img)?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action(format!("chroot {}; cd /", img.display()));
    let before = own_root()?;
    escape(i, climb)?;
    // Out: the host's / again, with the host's /proc (in this probe's own mount ns).
    let mut seen = Seen::new(i.observe()?);
    seen.before = Some(before);
    Ok(seen)
}

/// pivot_root(".", ".") into `img`, then detach the old root stacked on it. Where the
/// current root is the initial ramfs, pivot_root(2) fails with EINVAL: then nsx's way
/// round it (what `nsx run` does, [`crate::run::pivot`]). Returns the first try's result.
fn pivot_into(i: &mut Inside, img: &Path) -> Result<String> {
    let s = img.display().to_string();
    let on_initramfs = own_root()?.mount.is_some_and(|m| m.fstype == "rootfs");
    nix::unistd::chdir(img).ctx("chdir", &s)?;
    // pivot_root(2): new_root and put_old may be the same directory; the old root is then
    // stacked on top of the new one at "/", and detaching "." removes it.
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            umount2(".", MntFlags::MNT_DETACH).ctx("umount2 (MNT_DETACH)", "the old root")?;
            nix::unistd::chdir("/").ctx("chdir", "/")?;
            i.action(format!(
                "cd {s}; pivot_root(\".\", \".\") = 0; umount2(\".\", MNT_DETACH); cd /"
            ));
            Ok("0".into())
        }
        Err(Errno::EINVAL) if on_initramfs => {
            i.action(format!(
                "cd {s}; pivot_root(\".\", \".\") = EINVAL   (/ is the initial ramfs, rootfs: the root of the mount tree, with no parent to move it under)"
            ));
            crate::run::pivot(img)?;
            i.action(format!(
                "as switch_root does: mount --rbind / DIR; mount --move DIR /; chroot .; then cd {s}; pivot_root(\".\", \".\") = 0; umount2(\".\", MNT_DETACH); cd /"
            ));
            Ok("EINVAL".into())
        }
        Err(e) => Err(sys("pivot_root", &s, e)),
    }
}

/// umount2("/", MNT_DETACH), then setns(2) into its own mount namespace (through `ns`,
/// opened before): setns puts the caller at the namespace's root mount, and whatever is
/// still stacked there. Only in the probe's own private mount namespace. Returns the
/// umount's result: "0", or EINVAL for a locked mount (mount_namespaces(7): in a mount
/// namespace owned by a user namespace nsx made, the new root of a pivot_root takes over
/// the old root's lock and cannot be unmounted).
fn reenter(i: &mut Inside, ns: std::fs::File) -> Result<String> {
    if !i.mounts_are_private() {
        return Err(Error::Other(
            "internal: refusing to unmount outside a private mount namespace".into(),
        ));
    }
    // umount2(2) with MNT_DETACH: the mount at "/" (the image) leaves the namespace; this
    // process keeps its root inside it until setns moves it.
    let umount = match umount2("/", MntFlags::MNT_DETACH) {
        Ok(()) => "0".to_string(),
        Err(Errno::EINVAL) => "EINVAL".to_string(),
        Err(e) => return Err(sys("umount2 (MNT_DETACH)", "/", e)),
    };
    // setns(2): needs CAP_SYS_ADMIN and CAP_SYS_CHROOT (the probe's, in its namespaces).
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNS).ctx("setns", "/proc/self/ns/mnt")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action(format!(
        "umount2(\"/\", MNT_DETACH) = {umount}; setns(its own /proc/self/ns/mnt, CLONE_NEWNS); cd /"
    ));
    Ok(umount)
}

fn open_own_mnt_ns() -> Result<std::fs::File> {
    std::fs::File::open("/proc/self/ns/mnt").ctx("open", "/proc/self/ns/mnt")
}

/// "/" read directly: where the probe stands there may be no /proc.
fn read_slash() -> Result<Dir> {
    let meta = std::fs::metadata("/").ctx("stat", "/")?;
    Ok(Dir {
        listing: tree::list(Path::new("/"))?,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

fn pivot_probe(i: &mut Inside, img: &Path, climb: usize, reentering: bool) -> Result<Seen> {
    bind_image(i, img)?;
    mount_proc(i, &img.join("proc"))?;
    scratch_tmp(i, &img.join("tmp"))?;
    let ns = open_own_mnt_ns()?;
    let attempt = pivot_into(i, img)?;
    if reentering {
        let mut seen = Seen::new(i.observe()?);
        seen.umount = Some(reenter(i, ns)?);
        seen.pivot = Some(attempt);
        seen.reentered = Some(read_slash()?);
        return Ok(seen);
    }
    let before = own_root()?;
    escape(i, climb)?;
    let mut seen = Seen::new(i.observe()?);
    seen.before = Some(before);
    seen.pivot = Some(attempt);
    Ok(seen)
}

/// runc's msMoveRoot, for roots pivot_root cannot leave: mount --move the new root onto
/// "/", chroot into it. Then the same escape, and the detach-and-re-enter.
fn no_pivot_probe(i: &mut Inside, img: &Path, climb: usize) -> Result<Seen> {
    bind_image(i, img)?;
    mount_proc(i, &img.join("proc"))?;
    scratch_tmp(i, &img.join("tmp"))?;
    let ns = open_own_mnt_ns()?;
    let s = img.display().to_string();
    nix::unistd::chdir(img).ctx("chdir", &s)?;
    // mount(2) MS_MOVE: the image's mount (with /proc and /tmp under it) moves onto "/",
    // stacked on the old root, which stays attached beneath it.
    i.mount(
        ".",
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
        format!("cd {s}; mount --move . /"),
    )?;
    chroot_here(Path::new("."))?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action("chroot .; cd /");
    let before = own_root()?;
    escape(i, climb)?;
    let dotdot = own_root()?;
    let umount = reenter(i, ns)?;
    let mut seen = Seen::new(i.observe()?);
    seen.before = Some(before);
    seen.dotdot = Some(dotdot);
    seen.umount = Some(umount);
    Ok(seen)
}

fn overlay_probe(
    i: &mut Inside,
    img: &Path,
    upper: &Path,
    work: &Path,
    merged: &Path,
    rootless: bool,
) -> Result<Seen> {
    // overlayfs: lowerdir read-only, writes go to upperdir, workdir is scratch space on
    // the same file system. In a user namespace, overlay keeps its metadata in user.*
    // xattrs (userxattr), since trusted.* needs real root.
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        img.display(),
        upper.display(),
        work.display(),
        if rootless { ",userxattr" } else { "" }
    );
    i.mount(
        "nsx-overlay",
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
        format!(
            "mount -t overlay nsx-overlay -o {opts} {}",
            merged.display()
        ),
    )?;
    mount_proc(i, &merged.join("proc"))?;
    pivot_into(i, merged)?;
    std::fs::write("/root/hello.txt", HELLO).ctx("write", "/root/hello.txt")?;
    let mut passwd = std::fs::read_to_string("/etc/passwd").ctx("read", "/etc/passwd")?;
    passwd.push_str(APP_LINE);
    std::fs::write("/etc/passwd", passwd).ctx("write", "/etc/passwd")?;
    std::fs::remove_file("/linuxrc").ctx("unlink", "/linuxrc")?;
    i.action("echo 'written inside the container' > /root/hello.txt");
    i.action("echo 'app:x:…' >> /etc/passwd   (changes a file of the image)");
    i.action("rm /linuxrc   (deletes a file of the image)");
    Ok(Seen::new(i.observe()?))
}

/// What the host finds in upper and in the image once the probe wrote.
fn upper_seen(upper: &Path, img: &Path) -> Result<Upper> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let linuxrc_upper = std::fs::symlink_metadata(upper.join("linuxrc"))
        .ok()
        .map(|m| kind(&m));
    Ok(Upper {
        entries: upper_entries(upper)?,
        hello: read(upper.join("root/hello.txt")),
        image_has_hello: img.join("root/hello.txt").symlink_metadata().is_ok(),
        passwd_upper: read(upper.join("etc/passwd")),
        passwd_image: read(img.join("etc/passwd")).unwrap_or_default(),
        linuxrc_upper,
        image_has_linuxrc: img.join("linuxrc").symlink_metadata().is_ok(),
    })
}

/// "char 0:0" (an overlayfs whiteout), "file", "dir", "symlink", "other".
fn kind(m: &std::fs::Metadata) -> String {
    let t = m.file_type();
    if t.is_char_device() {
        let rdev = m.rdev();
        format!("char {}:{}", libc::major(rdev), libc::minor(rdev))
    } else if t.is_file() {
        "file".into()
    } else if t.is_dir() {
        "dir".into()
    } else if t.is_symlink() {
        "symlink".into()
    } else {
        "other".into()
    }
}

/// `root/hello.txt (1 line)`, `linuxrc (whiteout)`: what the host sees in the upper dir.
fn upper_entries(upper: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        for name in tree::list(&dir)? {
            let r = rel.join(&name);
            let m = std::fs::symlink_metadata(upper.join(&r)).ctx("lstat", r.display())?;
            if m.is_dir() {
                stack.push(r);
            } else if kind(&m) == "char 0:0" {
                out.push(format!("{} (whiteout)", r.display()));
            } else {
                let lines = std::fs::read_to_string(upper.join(&r))
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                let unit = if lines == 1 { "line" } else { "lines" };
                out.push(format!("{} ({lines} {unit})", r.display()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lessons::fixture_tests::paused_runs_show_the_whole_runs_steps;

    #[test]
    fn a_run_paused_at_each_step_shows_the_steps_the_whole_run_shows() {
        paused_runs_show_the_whole_runs_steps::<Rootfs>(|o| {
            let mut cuts = Vec::new();
            let mut cut = o.clone();
            cut.lower_before = None;
            cut.lower_after = None;
            cut.image_tmp = None;
            cut.overlay = None;
            cuts.push((cut.clone(), 4));
            cut.no_pivot = None;
            cuts.push((cut.clone(), 3));
            (cut.pivot, cut.pivot_reenter) = (None, None);
            cuts.push((cut.clone(), 2));
            cut.escape = None;
            cuts.push((cut, 1));
            cuts.reverse();
            cuts.push((o.clone(), 5));
            cuts
        });
    }
}
