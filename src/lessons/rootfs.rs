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

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, Lesson, Rootless};
use crate::error::{Context, Error, Result};
use crate::observe::Parts;
use crate::observe::View;
use crate::report::{Fact, Row, Step};
use crate::rootfs::busybox;
use crate::rootfs::tree::{self, OwnedTree};
use crate::sandbox::{self, Inside, Spec};

pub const LESSON: Lesson = Lesson {
    id: "rootfs",
    title: "A root filesystem of its own: chroot, pivot_root, overlayfs",
    mechanism: "chroot(2); pivot_root(2) + umount2(MNT_DETACH); an overlay mount",
    man: "chroot(2), pivot_root(2), mount_namespaces(7), Documentation/filesystems/overlayfs.rst",
    rootless: Rootless::Yes,
    narrative: include_str!("../../lessons/rootfs.md"),
    sees: Parts::MOUNTS.with(Parts::LINKS),
    facts: &[],
    imp: super::Imp::Old(run),
};

/// What one side sees of a process's root directory, read through a procfs directory
/// (`/proc/self` inside, `/proc/<pid>` on the host): the same function on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootView {
    /// readlink(<proc>/root): the root directory as a path in the reader's tree.
    pub link: String,
    /// `ls <proc>/root/`.
    pub listing: Vec<String>,
    /// The mountinfo line for "/": its root field (which directory of the file system is
    /// mounted there) and type.
    pub mount_root: String,
    pub fstype: String,
    /// stat(<proc>/root/): device and inode of the root directory itself.
    pub dev: u64,
    pub ino: u64,
    /// Mounts in <proc>/mountinfo (only those reachable from this root are listed).
    pub mounts: usize,
}

pub fn root_view(proc_dir: &Path) -> Result<RootView> {
    let root = proc_dir.join("root");
    let link = std::fs::read_link(&root)
        .ctx("readlink", root.display())?
        .display()
        .to_string();
    let dir = root.join("");
    let meta = std::fs::metadata(&dir).ctx("stat", dir.display())?;
    let info = proc_dir.join("mountinfo");
    let infos = <procfs::process::MountInfos as procfs::FromRead>::from_read(
        std::fs::File::open(&info).ctx("open", info.display())?,
    )
    .map_err(|e| Error::Other(format!("parse {}: {e}", info.display())))?;
    let top = infos
        .0
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new("/"));
    Ok(RootView {
        link,
        listing: tree::list(&dir)?,
        mount_root: top.map(|m| m.root.clone()).unwrap_or_default(),
        fstype: top.map(|m| m.fs_type.clone()).unwrap_or_default(),
        dev: meta.dev(),
        ino: meta.ino(),
        mounts: infos.0.len(),
    })
}

fn listing_label(names: &[String]) -> String {
    if names.len() > 12 {
        format!("{} entries", names.len())
    } else {
        names.join(" ")
    }
}

fn mount_label(v: &RootView) -> String {
    if v.mount_root.is_empty() {
        "no entry: / is not a mount point".to_string()
    } else {
        format!("{} ({})", v.mount_root, v.fstype)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    view: View,
    /// The root as the probe saw it after its last move.
    root: RootView,
    /// Before the escape attempt (steps 2 and 3).
    #[serde(default)]
    before: Option<RootView>,
}

/// The host's own root, read the same way.
fn host_root() -> Result<RootView> {
    root_view(Path::new("/proc/self"))
}

fn chroot_here(dir: &str) -> Result<()> {
    // chroot(2): changes the root of this process only; the working directory stays.
    nix::unistd::chroot(dir).ctx("chroot", dir)
}

/// The classic escape: a chroot into a subdirectory leaves the working directory
/// outside the new root, and ".." from there is never clamped.
fn escape(i: &mut Inside, climb: usize) -> Result<()> {
    let x = "/tmp/nsx-escape";
    std::fs::create_dir(x).ctx("mkdir", x)?;
    chroot_here(x)?;
    for _ in 0..climb {
        nix::unistd::chdir("..").ctx("chdir", "..")?;
    }
    chroot_here(".")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    i.action(format!(
        "escape: mkdir {x}; chroot {x}; chdir .. ×{climb}; chroot .   (the working directory stayed outside the new root)"
    ));
    Ok(())
}

fn run(ctx: &mut Ctx) -> Result<Vec<Fact>> {
    let bb = busybox::find()?;
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .ctx("read", "/proc/filesystems")?
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    if !overlay {
        return Err(Error::unsupported(
            "the overlay file system is not available (no \"overlay\" line in /proc/filesystems): the kernel module is not loaded",
            "sudo modprobe overlay",
        ));
    }
    tree::sweep_trees("rootfs");
    let work = OwnedTree::new("rootfs")?;
    let image = work.path().join("image");
    std::fs::create_dir(&image).ctx("mkdir", image.display())?;
    let built = busybox::build_from(&bb, &image)?;
    let image_s = image.display().to_string();
    let host = host_root()?;
    let base_mounts = ctx.baseline.mounts.clone();
    let image_listing = tree::list(&image)?;
    let image_meta = std::fs::metadata(&image).ctx("stat", image.display())?;
    let (image_dev, image_ino) = (image_meta.dev(), image_meta.ino());
    ctx.note(format!(
        "the image: {} ({} applets linked to /bin/busybox) built in {image_s}",
        built.version, built.applets
    ));
    let mut facts = Vec::new();
    let pid_mnt = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    // Enough ".." to climb from the image directory to the host's "/", and one more.
    let climb = image.components().count();

    // Step 1: chroot.
    let img = image.clone();
    let run1 = probe(Spec::new(pid_mnt), move |i: &mut Inside| {
        mount_proc(i, &img.join("proc"))?;
        chroot_here(&img.display().to_string())?;
        nix::unistd::chdir("/").ctx("chdir", "/")?;
        i.action(format!("chroot {}; cd /", img.display()));
        Ok(Seen {
            view: i.observe()?,
            root: root_view(Path::new("/proc/self"))?,
            before: None,
        })
    })?;
    let (inside, from_host) = (&run1.seen.root, &run1.host_root);
    facts.push(Fact::new(
        "chroot-changes-root",
        format!(
            "after chroot the probe's / lists the image ({}), and its root, read by the host through /proc/{}/root, is {}",
            listing_label(&inside.listing),
            run1.pid,
            from_host.link
        ),
        inside.link == "/" && inside.listing == image_listing && from_host.link == image_s,
        json!({ "inside_link": inside.link, "host_link": from_host.link, "listing": inside.listing }),
    ));
    facts.push(Fact::new(
        "chroot-is-a-directory",
        format!(
            "inside the chroot, mountinfo has no entry for / (only the mounts under the new root are listed: {}), and / has the device and inode the host sees for the image directory: a directory, not a mount",
            inside.mounts
        ),
        inside.mount_root.is_empty() && inside.dev == image_dev && inside.ino == image_ino,
        json!({ "mount_root": inside.mount_root, "same_device_as_image": inside.dev == image_dev, "same_inode_as_image": inside.ino == image_ino }),
    ));
    ctx.step(step(
        "chroot",
        "chroot: / becomes the image directory",
        &host,
        run1,
        vec![],
    ))?;

    // Step 2: the escape from a chroot, as root.
    let img = image.clone();
    let run2 = probe(Spec::new(pid_mnt), move |i: &mut Inside| {
        scratch_tmp(i, &img.join("tmp"))?;
        chroot_here(&img.display().to_string())?;
        nix::unistd::chdir("/").ctx("chdir", "/")?;
        i.action(format!("chroot {}; cd /", img.display()));
        let before = root_view_without_proc()?;
        escape(i, climb)?;
        // Out: the host's / again, with the host's /proc (in this probe's own mount ns).
        Ok(Seen {
            view: i.observe()?,
            root: root_view(Path::new("/proc/self"))?,
            before: Some(before),
        })
    })?;
    let out = &run2.seen.root;
    let escaped = out.dev == host.dev && out.ino == host.ino && out.listing == host.listing;
    facts.push(Fact::new(
        "chroot-escape-reaches-host",
        format!(
            "after the escape the probe's / is the host's again: same device and inode ({}:{}), the same {} entries, and the host reads its root as {}",
            out.dev, out.ino, out.listing.len(), run2.host_root.link
        ),
        escaped && run2.host_root.link == "/",
        json!({ "inside": [out.dev, out.ino], "host": [host.dev, host.ino], "host_link": run2.host_root.link }),
    ));
    facts.push(Fact::new(
        "escape-contained",
        "the escape happened in the probe's own mount namespace: the host's mount table is unchanged and nothing was written outside the image's scratch /tmp",
        run2.host.mounts == base_mounts && !image.join("tmp/nsx-escape").exists(),
        json!({ "host_mounts": run2.host.mounts.count }),
    ));
    ctx.step(step(
        "chroot-escape",
        "a root process leaves a chroot (contained in a throwaway mount namespace)",
        &host,
        run2,
        vec![],
    ))?;

    // Step 3: pivot_root, then the same escape.
    let img = image.clone();
    let run3 = probe(Spec::new(pid_mnt), move |i: &mut Inside| {
        let s = img.display().to_string();
        i.mount(
            &s,
            &img,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            format!("mount --rbind {s} {s}   (pivot_root needs a mount point)"),
        )?;
        mount_proc(i, &img.join("proc"))?;
        scratch_tmp(i, &img.join("tmp"))?;
        crate::run::pivot(&img)?;
        i.action(format!(
            "cd {s}; pivot_root(\".\", \".\"); umount2(\".\", MNT_DETACH); cd /"
        ));
        let before = root_view(Path::new("/proc/self"))?;
        escape(i, climb)?;
        Ok(Seen {
            view: i.observe()?,
            root: root_view(Path::new("/proc/self"))?,
            before: Some(before),
        })
    })?;
    let after = &run3.seen.root;
    let before = run3.seen.before.clone().unwrap_or(after.clone());
    facts.push(Fact::new(
        "pivot-root-escape-fails",
        format!(
            "after pivot_root and detaching the old root, the same escape ends at the image's own root (inode {}, {}), not the host's",
            after.ino,
            listing_label(&after.listing)
        ),
        after.ino == image_ino
            && after.dev == image_dev
            && after.listing == image_listing
            && (after.dev, after.ino) != (host.dev, host.ino),
        json!({ "inside": [after.dev, after.ino], "image": [image_dev, image_ino] }),
    ));
    facts.push(Fact::new(
        "old-root-detached",
        format!(
            "inside, mountinfo lists {} mounts (the image, /proc, /tmp) where the host has {}: no mount of the host is left to reach",
            before.mounts, host.mounts
        ),
        before.mounts == 3 && host.mounts > 3,
        json!({ "inside": before.mounts, "host": host.mounts }),
    ));
    ctx.step(step(
        "pivot-root",
        "pivot_root: the image becomes the mount namespace's root, the old one is detached",
        &host,
        run3,
        vec![],
    ))?;

    // Step 4: overlayfs.
    let (upper, workdir, merged) = (
        work.path().join("upper"),
        work.path().join("work"),
        work.path().join("merged"),
    );
    for d in [&upper, &workdir, &merged] {
        std::fs::create_dir(d).ctx("mkdir", d.display())?;
    }
    let lower_before = tree::digest(&image)?;
    let rootless = ctx.rootless();
    let (img, up, wk, mg) = (
        image.clone(),
        upper.clone(),
        workdir.clone(),
        merged.clone(),
    );
    let run4 = probe(Spec::new(pid_mnt), move |i: &mut Inside| {
        // overlayfs: lowerdir read-only, writes go to upperdir, workdir is scratch space on
        // the same file system. In a user namespace, overlay keeps its metadata in user.*
        // xattrs (userxattr), since trusted.* needs real root.
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            img.display(),
            up.display(),
            wk.display(),
            if rootless { ",userxattr" } else { "" }
        );
        i.mount(
            "nsx-overlay",
            &mg,
            Some("overlay"),
            MsFlags::empty(),
            Some(&opts),
            format!("mount -t overlay nsx-overlay -o {opts} {}", mg.display()),
        )?;
        mount_proc(i, &mg.join("proc"))?;
        crate::run::pivot(&mg)?;
        i.action(format!(
            "cd {}; pivot_root(\".\", \".\"); umount2(\".\", MNT_DETACH); cd /",
            mg.display()
        ));
        std::fs::write("/root/hello.txt", "written inside the container\n")
            .ctx("write", "/root/hello.txt")?;
        let mut passwd = std::fs::read_to_string("/etc/passwd").ctx("read", "/etc/passwd")?;
        passwd.push_str("app:x:1000:1000:app:/home/app:/bin/sh\n");
        std::fs::write("/etc/passwd", passwd).ctx("write", "/etc/passwd")?;
        std::fs::remove_file("/linuxrc").ctx("unlink", "/linuxrc")?;
        i.action("echo 'written inside the container' > /root/hello.txt");
        i.action("echo 'app:x:…' >> /etc/passwd   (changes a file of the image)");
        i.action("rm /linuxrc   (deletes a file of the image)");
        Ok(Seen {
            view: i.observe()?,
            root: root_view(Path::new("/proc/self"))?,
            before: None,
        })
    })?;
    let lower_after = tree::digest(&image)?;
    let upper_files = upper_entries(&upper)?;
    let upper_passwd = std::fs::read_to_string(upper.join("etc/passwd")).unwrap_or_default();
    let lower_passwd = std::fs::read_to_string(image.join("etc/passwd")).unwrap_or_default();
    let whiteout = std::fs::symlink_metadata(upper.join("linuxrc"))
        .map(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_char_device() && m.rdev() == 0
        })
        .unwrap_or(false);
    let inside = &run4.seen.root;
    facts.push(Fact::new(
        "overlay-write-lands-in-upper",
        format!(
            "the file written inside is in the upper directory, which the host lists: {}",
            upper_files.join(", ")
        ),
        std::fs::read_to_string(upper.join("root/hello.txt"))
            .ok()
            .as_deref()
            == Some("written inside the container\n")
            && !image.join("root/hello.txt").exists(),
        json!({ "upper": upper_files }),
    ));
    facts.push(Fact::new(
        "overlay-copy-up",
        "changing /etc/passwd copied it up: the upper copy has the new line, the image's copy does not",
        upper_passwd.contains("app:x:1000") && !lower_passwd.contains("app:x:1000"),
        json!({ "upper_lines": upper_passwd.lines().count(), "lower_lines": lower_passwd.lines().count() }),
    ));
    facts.push(Fact::new(
        "overlay-whiteout",
        "deleting /linuxrc left a whiteout in the upper directory (a character device 0:0) and the file in the image; inside, / no longer lists it",
        whiteout && image.join("linuxrc").symlink_metadata().is_ok() && !inside.listing.iter().any(|n| n == "linuxrc"),
        json!({ "whiteout": whiteout }),
    ));
    facts.push(Fact::new(
        "overlay-lower-unchanged",
        format!(
            "the image (lower) is unchanged: {} entries, {} bytes, checksum {} before and {} after",
            lower_after.entries, lower_after.bytes, lower_before.hash, lower_after.hash
        ),
        lower_before == lower_after,
        json!({ "before": lower_before.hash, "after": lower_after.hash }),
    ));
    facts.push(Fact::new(
        "host-mounts-unchanged",
        "the host's mount table stayed as it was through every step",
        run4.host.mounts == base_mounts,
        json!({ "host_mounts": run4.host.mounts.count }),
    ));
    let notes = vec![format!(
        "the host lists the upper directory {}: {}",
        upper.display(),
        upper_files.join(", ")
    )];
    ctx.step(step(
        "overlay",
        "overlayfs: the image stays read-only, the container's writes land in upper",
        &host,
        run4,
        notes,
    ))?;
    drop(work);
    Ok(facts)
}

/// `root/hello.txt (file)`, `linuxrc (whiteout)`: what the host sees in the upper dir.
fn upper_entries(upper: &Path) -> Result<Vec<String>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        for name in tree::list(&dir)? {
            let r = rel.join(&name);
            let m = std::fs::symlink_metadata(upper.join(&r)).ctx("lstat", r.display())?;
            if m.is_dir() {
                stack.push(r);
            } else if m.file_type().is_char_device() && m.rdev() == 0 {
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

/// Inside a chroot without /proc: the same fields, from the directory itself.
fn root_view_without_proc() -> Result<RootView> {
    let meta = std::fs::metadata("/").ctx("stat", "/")?;
    Ok(RootView {
        link: "/".into(),
        listing: tree::list(Path::new("/"))?,
        mount_root: String::new(),
        fstype: String::new(),
        dev: meta.dev(),
        ino: meta.ino(),
        mounts: 0,
    })
}

fn mount_proc(i: &mut Inside, target: &Path) -> Result<()> {
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

struct ProbeRun {
    seen: Seen,
    host: View,
    /// The probe's root, read by the host through /proc/<pid>.
    host_root: RootView,
    actions: Vec<String>,
    pid: i32,
}

fn probe<F>(spec: Spec, f: F) -> Result<ProbeRun>
where
    F: FnOnce(&mut Inside) -> Result<Seen>,
{
    let mut child = sandbox::spawn(&spec, f)?;
    let seen: Seen = child.run()?;
    let host = child.observe_from_host()?;
    let pid = child.pid();
    let host_root = root_view(&PathBuf::from(format!("/proc/{pid}")))?;
    let actions = std::mem::take(&mut child.actions);
    child.finish()?;
    Ok(ProbeRun {
        seen,
        host,
        host_root,
        actions,
        pid,
    })
}

fn step(id: &str, title: &str, host: &RootView, run: ProbeRun, notes: Vec<String>) -> Step {
    let inside = &run.seen.root;
    let mut rows = Vec::new();
    if let Some(b) = &run.seen.before {
        rows.push(Row::new(
            "ls / before the escape",
            listing_label(&host.listing),
            listing_label(&b.listing),
        ));
    }
    rows.extend([
        Row::new(
            "root directory (readlink …/root)",
            &run.host_root.link,
            &inside.link,
        ),
        Row::new(
            "ls …/root/ (the probe's root)",
            listing_label(&run.host_root.listing),
            listing_label(&inside.listing),
        ),
        Row::new(
            "ls / (each side's own)",
            listing_label(&host.listing),
            listing_label(&inside.listing),
        ),
        Row::new(
            "/ in mountinfo (root field, type)",
            mount_label(host),
            mount_label(inside),
        ),
        Row::new("mounts in mountinfo", host.mounts, inside.mounts),
    ]);
    Step {
        takeaway: None,
        columns: None,
        id: id.into(),
        title: title.into(),
        actions: run.actions,
        rows,
        notes,
        extra: json!({ "root_inside": run.seen.root, "root_from_host": run.host_root, "before_escape": run.seen.before }),
        host: run.host,
        container: run.seen.view,
    }
}
