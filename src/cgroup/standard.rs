//! Finding the cgroup mounts nsx places lesson cgroups in without /proc/self/mountinfo.
//!
//! Reading /proc/self/mountinfo makes the kernel print every mount of the namespace,
//! which costs as much as the rest of the memory lesson's cgroup work together. nsx only
//! needs the hierarchies it creates cgroups in: on v1 and hybrid those holding memory,
//! cpu, cpuacct and pids (the ones [`super::sweep()`] looks in too), on v2 the unified
//! one. Distributions mount each where systemd does: the v2 hierarchy at /sys/fs/cgroup,
//! a v1 hierarchy at /sys/fs/cgroup/<its controllers joined by commas>, the same list
//! /proc/self/cgroup shows for it (`cpu,cpuacct`).
//!
//! For each such *standard place* nsx asks the kernel about the mount there, and only
//! about it: statx(2), without following a symlink, says whether the place is the root
//! of a mount (STATX_ATTR_MOUNT_ROOT) and gives that mount's unique ID; statmount(2)
//! (Linux 6.8; options since 6.11) gives the mount's file-system magic, the part of the
//! hierarchy it shows (its root, relative to our cgroup namespace, as mountinfo prints
//! it) and, for v1, its super options, which name its controllers. That is what the
//! mount's line in mountinfo says, so the result is the [`CgroupMount`] the mountinfo
//! parse gives for that line, and placement follows from it the same way.
//!
//! Whenever the answer is not exactly the standard layout, [`standard_mounts`] returns
//! a [`Fallback`] and the caller reads mountinfo instead: no statmount(2) (older kernels,
//! a seccomp filter), nothing mounted at the standard place (a symlink, a plain
//! directory, another file system), a mount of another hierarchy there, a hierarchy with
//! a named hierarchy co-mounted, or our own cgroup outside the part of the hierarchy
//! that mount shows (a container without a cgroup namespace, or a cgroup namespace
//! entered after the mount). The fast path never guesses: it either saw the mount at the
//! standard place hold our cgroup, or it stands aside.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};

use super::layout::{v1_controllers, CgroupMount, Membership, Mode};

/// The v1 controllers nsx creates lesson cgroups for (and sweeps leftovers in).
pub const USED_V1: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// Why the fast path stood aside (the mountinfo parse decides instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The kernel cannot answer: no statmount(2), no unique mount IDs in statx(2), or not
    /// every field asked for (mount options need Linux 6.11).
    Unsupported(String),
    /// The kernel answered, and the answer is not the standard layout.
    NotStandard(String),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Unsupported(why) => write!(f, "the kernel cannot say: {why}"),
            Fallback::NotStandard(why) => write!(f, "not the standard layout: {why}"),
        }
    }
}

/// What the kernel says about the mount whose root is exactly at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountAt {
    /// The file system's magic number (statfs(2)'s f_type).
    pub magic: u64,
    /// Where it is mounted; when this is not the place asked about, the place is no
    /// mount of its own but lies in this one.
    pub mount_point: PathBuf,
    /// The part of the file system it shows, as mountinfo's "root" field.
    pub root: PathBuf,
    /// The super options (`memory`, `cpu,cpuacct`, `name=systemd`...), when asked for.
    pub options: Option<String>,
}

/// The standard place of the v1 hierarchy `line` of /proc/self/cgroup names:
/// `root/<its controllers joined by commas>`.
pub fn standard_place(root: &Path, line: &Membership) -> PathBuf {
    root.join(line.controllers.join(","))
}

/// The /proc/self/cgroup line of the v1 hierarchy holding `controller`.
pub fn v1_line<'a>(membership: &'a [Membership], controller: &str) -> Option<&'a Membership> {
    membership
        .iter()
        .find(|m| m.hierarchy_id != 0 && m.controllers.iter().any(|x| x == controller))
}

/// The mounts of the hierarchies of `wanted` (v1 controller names, a subset of
/// [`USED_V1`]; on v2 any name means the one hierarchy), each at its standard place
/// under `root`, or why not. `mount_at(path, with_options)` asks about the mount at
/// `path` (the real one is [`mount_at`]; tests answer from a fixture).
pub fn standard_mounts(
    mode: Mode,
    root: &Path,
    membership: &[Membership],
    wanted: &[&str],
    mount_at: &mut dyn FnMut(&Path, bool) -> Result<MountAt, Fallback>,
) -> Result<Vec<CgroupMount>, Fallback> {
    let not = |why: String| Err(Fallback::NotStandard(why));
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        Mode::V2 => {
            let Some(own) = membership.iter().find(|m| m.hierarchy_id == 0) else {
                return not("no \"0::\" line in /proc/self/cgroup".to_string());
            };
            let at = mount_at(root, false)?;
            at_its_place(&at, root)?;
            if at.magic != CGROUP2_SUPER_MAGIC.0 as u64 {
                return not(format!("{} is not a cgroup2 mount", root.display()));
            }
            let mount = CgroupMount {
                mount_point: root.to_path_buf(),
                root: at.root,
                v2: true,
                controllers: Vec::new(),
            };
            holds_ours(&mount, own)?;
            Ok(vec![mount])
        }
        Mode::V1 | Mode::Hybrid => {
            // One line per hierarchy: cpu and cpuacct may share one.
            let mut lines: Vec<&Membership> = Vec::new();
            for c in wanted {
                if let Some(line) = v1_line(membership, c) {
                    if !lines.contains(&line) {
                        lines.push(line);
                    }
                }
            }
            let mut mounts = Vec::new();
            for own in lines {
                if own.controllers.iter().any(|c| c.starts_with("name=")) {
                    return not(format!(
                        "a named hierarchy is co-mounted with {}",
                        own.controllers.join(",")
                    ));
                }
                let place = standard_place(root, own);
                let at = mount_at(&place, true)?;
                at_its_place(&at, &place)?;
                if at.magic != CGROUP_SUPER_MAGIC.0 as u64 {
                    return not(format!("{} is not a cgroup v1 mount", place.display()));
                }
                let Some(options) = at.options.as_deref() else {
                    return Err(Fallback::Unsupported(
                        "statmount(2) gives no mount options (Linux 6.11)".to_string(),
                    ));
                };
                let mut have = v1_controllers(options);
                let mount = CgroupMount {
                    mount_point: place,
                    root: at.root,
                    v2: false,
                    controllers: have.clone(),
                };
                let mut want = own.controllers.clone();
                have.sort();
                want.sort();
                if have != want {
                    return not(format!(
                        "{} holds the hierarchy of {}, not of {}",
                        mount.mount_point.display(),
                        have.join(","),
                        want.join(",")
                    ));
                }
                holds_ours(&mount, own)?;
                mounts.push(mount);
            }
            Ok(mounts)
        }
    }
}

/// The mount must be exactly at its standard place: not a directory (or a symlink) in
/// the mount of the parent, as statx(2) without following then names that mount.
fn at_its_place(at: &MountAt, place: &Path) -> Result<(), Fallback> {
    if at.mount_point != place {
        return Err(Fallback::NotStandard(format!(
            "{} lies in the mount at {}, not at a mount of its own",
            place.display(),
            at.mount_point.display()
        )));
    }
    Ok(())
}

/// Our own cgroup must lie in the part of the hierarchy the mount shows.
fn holds_ours(mount: &CgroupMount, own: &Membership) -> Result<(), Fallback> {
    if own.path.strip_prefix(&mount.root).is_err() {
        return Err(Fallback::NotStandard(format!(
            "our cgroup {} is outside the part {} of the hierarchy mounted at {}",
            own.path.display(),
            mount.root.display(),
            mount.mount_point.display()
        )));
    }
    Ok(())
}

// statmount(2) request and answer (include/uapi/linux/mount.h).
const STATMOUNT_SB_BASIC: u64 = 0x1;
const STATMOUNT_MNT_ROOT: u64 = 0x8;
const STATMOUNT_MNT_OPTS: u64 = 0x80;
/// `struct mnt_id_req` as first defined (MNT_ID_REQ_SIZE_VER0), which every kernel
/// with statmount(2) accepts.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}
/// Offsets into `struct statmount`; the strings start after its fixed 512 bytes, and
/// each `[str]` field is an offset from there.
const SM_SIZE: usize = 0;
const SM_MNT_OPTS: usize = 4;
const SM_MASK: usize = 8;
const SM_SB_MAGIC: usize = 24;
const SM_MNT_ROOT: usize = 104;
const SM_STR: usize = 512;

/// The syscall number where the architecture has statmount(2) (457 in the common table
/// since Linux 6.8).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
))]
const SYS_STATMOUNT: Option<libc::c_long> = Some(457);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
)))]
const SYS_STATMOUNT: Option<libc::c_long> = None;

/// Asks this kernel about the mount at `path`: statx(2) for its unique mount ID, then
/// statmount(2). `options`: also the super options (v1 controllers).
pub fn mount_at(place: &Path, options: bool) -> Result<MountAt, Fallback> {
    use std::os::unix::ffi::OsStrExt;
    let unsupported = |why: String| Fallback::Unsupported(why);
    let Some(sys_statmount) = SYS_STATMOUNT else {
        return Err(unsupported("no statmount(2) on this architecture".into()));
    };
    let c_path = std::ffi::CString::new(place.as_os_str().as_bytes())
        .map_err(|_| Fallback::NotStandard(format!("{} has a NUL byte", place.display())))?;
    // statx(2): STATX_MNT_ID_UNIQUE (Linux 6.8) is the ID statmount(2) takes, and
    // STATX_ATTR_MOUNT_ROOT (Linux 5.8) says whether the path is the root of that mount;
    // AT_SYMLINK_NOFOLLOW so that a symlink at the standard place is seen as what it is
    // (a file on the parent's tmpfs), not as the mount it points to.
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: c_path is NUL-terminated and stx is a writable statx buffer.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID_UNIQUE,
            stx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Fallback::NotStandard(format!(
            "statx {}: {e}",
            place.display()
        )));
    }
    // SAFETY: statx returned 0, so it filled the buffer.
    let stx = unsafe { stx.assume_init() };
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if stx.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 || stx.stx_attributes_mask & mount_root == 0 {
        return Err(unsupported(
            "statx(2) gives no unique mount ID (Linux 6.8)".into(),
        ));
    }
    if stx.stx_attributes & mount_root == 0 {
        // A directory or a symlink in the mount of the parent: nothing is mounted here.
        return Err(Fallback::NotStandard(format!(
            "{} is not the root of a mount",
            place.display()
        )));
    }
    // The mount point is the place itself: statx(2) said it is the root of the mount
    // path lookup ends in there (the topmost one, as for every other access to it).
    let mut mask = STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT;
    if options {
        mask |= STATMOUNT_MNT_OPTS;
    }
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id: stx.stx_mnt_id,
        param: mask,
    };
    // 8-byte aligned, as struct statmount wants.
    let mut buf = [0u64; 512];
    // statmount(2): the mount's superblock magic, root (the part of the file system it
    // shows) and options, in one call, without the kernel printing the whole mount table
    // as it does for /proc/self/mountinfo.
    // SAFETY: req is a valid mnt_id_req, buf is writable for its full byte length.
    let rc = unsafe {
        libc::syscall(
            sys_statmount,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            std::mem::size_of_val(&buf),
            0 as libc::c_uint,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(unsupported(format!("statmount {}: {e}", place.display())));
    }
    // SAFETY: plain bytes of an initialised u64 array.
    let bytes = unsafe {
        std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), std::mem::size_of_val(&buf))
    };
    let (magic, root, options) = parse_statmount(bytes, mask)?;
    Ok(MountAt {
        magic,
        mount_point: place.to_path_buf(),
        root,
        options,
    })
}

/// Reads the fields asked for (`mask`) out of a statmount(2) answer: the file system's
/// magic, the mount's root, and its options when asked for and the kernel gave them.
pub fn parse_statmount(buf: &[u8], mask: u64) -> Result<(u64, PathBuf, Option<String>), Fallback> {
    let bad = |why: &str| Fallback::Unsupported(format!("statmount(2) answer: {why}"));
    let u32_at = |off: usize| -> Option<u32> {
        buf.get(off..off + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |off: usize| -> Option<u64> {
        buf.get(off..off + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
    };
    let size = u32_at(SM_SIZE).ok_or_else(|| bad("too short"))? as usize;
    if size < SM_STR || size > buf.len() {
        return Err(bad("size out of range"));
    }
    let got = u64_at(SM_MASK).ok_or_else(|| bad("too short"))?;
    // The options are missing when the kernel predates them or the mount has none (a
    // tmpfs): the caller tells which once it knows the file system.
    let needed = mask & !STATMOUNT_MNT_OPTS;
    if got & needed != needed {
        return Err(Fallback::Unsupported(format!(
            "statmount(2) filled fields {got:#x} of {needed:#x}"
        )));
    }
    let strings = &buf[SM_STR..size];
    let string = |field: usize| -> Result<PathBuf, Fallback> {
        use std::os::unix::ffi::OsStrExt;
        let off = u32_at(field).ok_or_else(|| bad("too short"))? as usize;
        let rest = strings
            .get(off..)
            .ok_or_else(|| bad("string offset out of range"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("string without NUL"))?;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&rest[..end])))
    };
    let options = if mask & got & STATMOUNT_MNT_OPTS != 0 {
        Some(string(SM_MNT_OPTS)?.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok((
        u64_at(SM_SB_MAGIC).ok_or_else(|| bad("too short"))?,
        string(SM_MNT_ROOT)?,
        options,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use nix::sys::statfs::TMPFS_MAGIC;

    use super::*;
    use crate::cgroup::layout::tests::{
        HYBRID_CGROUP, HYBRID_MOUNTINFO, V1_CGROUP, V1_MOUNTINFO, V2_CGROUP, V2_MOUNTINFO,
    };
    use crate::cgroup::layout::{parse_proc_cgroup, used_mounts, Layout, DEFAULT_ROOT};

    /// What statx(2) + statmount(2) would answer for `path` on a machine whose mount
    /// table is `mountinfo`: the topmost mount whose mount point is `path` or, when none
    /// is, the one the path lies in (as for a plain directory or a symlink at `path`).
    pub(crate) fn lookup_in(
        mountinfo: &str,
    ) -> impl FnMut(&Path, bool) -> Result<MountAt, Fallback> + '_ {
        move |path, options| {
            let mut best: Option<MountAt> = None;
            for line in mountinfo.lines().filter(|l| !l.trim().is_empty()) {
                let (pre, post) = line.split_once(" - ").unwrap();
                let pre: Vec<&str> = pre.split(' ').collect();
                let post: Vec<&str> = post.split(' ').collect();
                let point = PathBuf::from(pre[4]);
                if !path.starts_with(&point) {
                    continue;
                }
                let longer = best
                    .as_ref()
                    .is_none_or(|b| point.as_os_str().len() >= b.mount_point.as_os_str().len());
                if !longer {
                    continue;
                }
                let magic = match post[0] {
                    "cgroup" => CGROUP_SUPER_MAGIC.0 as u64,
                    "cgroup2" => CGROUP2_SUPER_MAGIC.0 as u64,
                    "tmpfs" => TMPFS_MAGIC.0 as u64,
                    _ => 0,
                };
                best = Some(MountAt {
                    magic,
                    mount_point: point,
                    root: PathBuf::from(pre[3]),
                    // The kernel fills no options for a mount that has none.
                    options: (options && post[0] != "tmpfs").then(|| post[2].to_string()),
                });
            }
            best.ok_or_else(|| Fallback::NotStandard(format!("statx {}: ENOENT", path.display())))
        }
    }

    fn sorted(m: &[CgroupMount]) -> Vec<CgroupMount> {
        let mut m = m.to_vec();
        m.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
        m
    }

    fn root() -> &'static Path {
        Path::new(DEFAULT_ROOT)
    }

    fn fast(mode: Mode, mountinfo: &str, cgroup: &str) -> Result<Vec<CgroupMount>, Fallback> {
        let membership = parse_proc_cgroup(cgroup).unwrap();
        standard_mounts(
            mode,
            root(),
            &membership,
            &USED_V1,
            &mut lookup_in(mountinfo),
        )
    }

    fn full(mountinfo: &str, cgroup: &str) -> Layout {
        Layout::from_mount_table(root(), mountinfo, cgroup).unwrap()
    }

    fn not_standard(r: Result<Vec<CgroupMount>, Fallback>, says: &str) {
        match r {
            Err(Fallback::NotStandard(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("expected a fallback saying {says:?}, got {other:?}"),
        }
    }

    #[test]
    fn standard_layouts_give_what_mountinfo_gives() {
        for (mode, mi, cg) in [
            (Mode::Hybrid, HYBRID_MOUNTINFO, HYBRID_CGROUP),
            (Mode::V1, V1_MOUNTINFO, V1_CGROUP),
            (Mode::V2, V2_MOUNTINFO, V2_CGROUP),
        ] {
            let layout = full(mi, cg);
            assert_eq!(layout.mode, mode);
            let fast = fast(mode, mi, cg).unwrap();
            assert_eq!(
                sorted(&fast),
                sorted(&used_mounts(mode, layout.mounts.clone())),
                "{mode}"
            );
            let fast = Layout {
                mounts: fast,
                ..layout.clone()
            };
            for c in USED_V1 {
                assert_eq!(fast.v1_own_dir(c).ok(), layout.v1_own_dir(c).ok(), "{c}");
            }
            if mode == Mode::V2 {
                assert_eq!(fast.v2_own_dir().unwrap(), layout.v2_own_dir().unwrap());
            }
        }
        // cpu and cpuacct co-mounted: one mount, at the comma-joined place.
        let v1 = fast(Mode::V1, V1_MOUNTINFO, V1_CGROUP).unwrap();
        assert_eq!(v1.len(), 3, "memory, cpu+cpuacct, pids: {v1:?}");
        assert_eq!(v1[1].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
    }

    #[test]
    fn hierarchies_mounted_elsewhere_fall_back() {
        let mi = "\
20 1 0:20 / /cgroup rw - tmpfs tmpfs rw
21 20 0:21 / /cgroup/memory rw - cgroup cgroup rw,memory
22 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
";
        let cg = "4:memory:/a\n";
        not_standard(
            fast(Mode::V1, mi, cg),
            "/sys/fs/cgroup/memory lies in the mount at /sys/fs/cgroup",
        );
        // The mountinfo parse finds it where it is.
        assert_eq!(
            full(mi, cg).v1_own_dir("memory").unwrap().unwrap(),
            Path::new("/cgroup/memory/a")
        );
    }

    #[test]
    fn a_mount_showing_a_sub_cgroup_is_used_only_when_it_holds_ours() {
        // A container without a cgroup namespace: the host's /docker/abc is its
        // /sys/fs/cgroup/memory.
        let mi = "\
30 1 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw
31 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let inside = "4:memory:/docker/abc/x\n";
        let m = fast(Mode::V1, mi, inside).unwrap();
        assert_eq!(
            sorted(&m),
            sorted(&used_mounts(Mode::V1, full(mi, inside).mounts))
        );
        let layout = Layout {
            mounts: m,
            ..full(mi, inside)
        };
        assert_eq!(
            layout.v1_own_dir("memory").unwrap().unwrap(),
            Path::new("/sys/fs/cgroup/memory/x")
        );
        // Our cgroup outside what is mounted: never the mount's root instead.
        not_standard(
            fast(Mode::V1, mi, "4:memory:/elsewhere\n"),
            "outside the part /docker/abc",
        );
        // The same on v2, e.g. a cgroup namespace entered after /sys/fs/cgroup was
        // mounted: the kernel shows the mount's root relative to ours.
        let v2 = "40 1 0:40 /.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        not_standard(fast(Mode::V2, v2, "0::/\n"), "outside the part /..");
    }

    #[test]
    fn unusual_hierarchies_fall_back() {
        let tmpfs = "30 1 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n";
        // A named hierarchy co-mounted with a controller.
        let named = format!(
            "{tmpfs}31 30 0:31 / /sys/fs/cgroup/memory,name=x rw - cgroup cgroup rw,memory,name=x\n"
        );
        not_standard(
            fast(Mode::V1, &named, "4:memory,name=x:/\n"),
            "named hierarchy",
        );
        // Controllers co-mounted under a name of the admin's choosing.
        let odd =
            format!("{tmpfs}31 30 0:31 / /sys/fs/cgroup/mp rw - cgroup cgroup rw,memory,pids\n");
        not_standard(
            fast(Mode::V1, &odd, "4:memory,pids:/\n"),
            "/sys/fs/cgroup/memory,pids lies in the mount at /sys/fs/cgroup",
        );
        // Another hierarchy at the memory's standard place.
        let swapped =
            format!("{tmpfs}31 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,pids\n");
        not_standard(
            fast(Mode::V1, &swapped, "4:memory:/\n"),
            "holds the hierarchy of pids, not of memory",
        );
        // Something else mounted there.
        let other = format!("{tmpfs}31 30 0:31 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw\n");
        not_standard(
            fast(Mode::V1, &other, "4:memory:/\n"),
            "not a cgroup v1 mount",
        );
        // /sys/fs/cgroup/memory a symlink to where the hierarchy is mounted: statx(2)
        // does not follow it, and sees a file of the tmpfs.
        let link = format!("{tmpfs}31 1 0:31 / /run/memory rw - cgroup cgroup rw,memory\n");
        not_standard(
            fast(Mode::V1, &link, "4:memory:/\n"),
            "/sys/fs/cgroup/memory lies in the mount at /sys/fs/cgroup",
        );
        // A v1 hierarchy mounted on /sys/fs/cgroup itself: memory/ is one of its cgroups.
        let direct = "30 1 0:30 / /sys/fs/cgroup rw - cgroup cgroup rw,memory\n";
        not_standard(
            fast(Mode::V1, direct, "4:memory:/\n"),
            "lies in the mount at /sys/fs/cgroup",
        );
        // v2 without our line, or without cgroup2 at the root.
        not_standard(
            fast(Mode::V2, V2_MOUNTINFO, "4:memory:/\n"),
            "no \"0::\" line",
        );
        not_standard(fast(Mode::V2, tmpfs, V2_CGROUP), "not a cgroup2 mount");
    }

    #[test]
    fn a_kernel_that_cannot_say_falls_back() {
        let membership = parse_proc_cgroup(HYBRID_CGROUP).unwrap();
        let mut old_kernel = |_: &Path, _: bool| Err(Fallback::Unsupported("ENOSYS".to_string()));
        let r = standard_mounts(Mode::Hybrid, root(), &membership, &USED_V1, &mut old_kernel);
        assert_eq!(r, Err(Fallback::Unsupported("ENOSYS".to_string())));
        // A kernel with statmount(2) but without mount options (6.8 to 6.10) cannot name
        // a v1 hierarchy's controllers.
        let mut no_options = |p: &Path, _: bool| {
            Ok(MountAt {
                magic: CGROUP_SUPER_MAGIC.0 as u64,
                mount_point: p.to_path_buf(),
                root: PathBuf::from("/"),
                options: None,
            })
        };
        let r = standard_mounts(Mode::Hybrid, root(), &membership, &USED_V1, &mut no_options);
        assert!(
            matches!(r, Err(Fallback::Unsupported(ref why)) if why.contains("6.11")),
            "{r:?}"
        );
        // No hierarchy nsx uses: nothing to look at, nothing to find (the backends then
        // say the controller is missing, as with mountinfo).
        let none = parse_proc_cgroup("9:name=systemd:/\n0::/\n").unwrap();
        assert_eq!(
            standard_mounts(Mode::Hybrid, root(), &none, &USED_V1, &mut old_kernel),
            Ok(vec![])
        );
    }

    /// A statmount(2) answer as the kernel lays it out.
    fn answer(mask: u64, magic: u64, strings: &[(usize, &str)]) -> Vec<u8> {
        let mut buf = vec![0u8; SM_STR];
        let mut text = Vec::new();
        for &(field, s) in strings {
            buf[field..field + 4].copy_from_slice(&(text.len() as u32).to_ne_bytes());
            text.extend_from_slice(s.as_bytes());
            text.push(0);
        }
        buf.extend_from_slice(&text);
        let size = buf.len() as u32;
        buf[SM_SIZE..SM_SIZE + 4].copy_from_slice(&size.to_ne_bytes());
        buf[SM_MASK..SM_MASK + 8].copy_from_slice(&mask.to_ne_bytes());
        buf[SM_SB_MAGIC..SM_SB_MAGIC + 8].copy_from_slice(&magic.to_ne_bytes());
        buf.resize(4096, 0);
        buf
    }

    #[test]
    fn statmount_answers_are_read_by_offset() {
        let all = STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT | STATMOUNT_MNT_OPTS;
        let buf = answer(
            all | 0x20,
            0x27e0eb,
            &[(SM_MNT_ROOT, "/docker/abc"), (SM_MNT_OPTS, "cpu,cpuacct")],
        );
        assert_eq!(
            parse_statmount(&buf, all).unwrap(),
            (
                0x27e0eb,
                PathBuf::from("/docker/abc"),
                Some("cpu,cpuacct".to_string())
            )
        );
        // A kernel without mount options (6.8 to 6.10), or a mount without any: no
        // options, and standard_mounts decides what that means.
        let old = answer(all & !STATMOUNT_MNT_OPTS, 0x27e0eb, &[(SM_MNT_ROOT, "/")]);
        assert_eq!(parse_statmount(&old, all).unwrap().2, None);
        // Without the root, nothing can be said.
        let no_root = answer(STATMOUNT_SB_BASIC, 0x27e0eb, &[]);
        assert!(matches!(
            parse_statmount(&no_root, all),
            Err(Fallback::Unsupported(_))
        ));
        // Garbage is refused, never read past the answer.
        let mut bad = buf.clone();
        bad[SM_MNT_ROOT..SM_MNT_ROOT + 4].copy_from_slice(&4000u32.to_ne_bytes());
        assert!(parse_statmount(&bad, all).is_err());
        // A size that cuts a string before its NUL.
        let mut unterminated = buf.clone();
        unterminated[SM_SIZE..SM_SIZE + 4].copy_from_slice(&((SM_STR + 5) as u32).to_ne_bytes());
        assert!(parse_statmount(&unterminated, all).is_err());
        let mut bad = buf.clone();
        bad[SM_SIZE..SM_SIZE + 4].copy_from_slice(&9000u32.to_ne_bytes());
        assert!(parse_statmount(&bad, all).is_err());
        assert!(parse_statmount(&buf[..100], all).is_err());
    }

    /// On this machine: the kernel's statmount(2) answers at the standard places are the
    /// lines of /proc/self/mountinfo there, and `Layout::detect` is the mountinfo layout.
    #[test]
    fn statmount_and_mountinfo_agree_on_this_machine() {
        let Ok(mode) = Mode::detect_at(root()) else {
            eprintln!("skipping: no cgroup file system at {DEFAULT_ROOT}");
            return;
        };
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let membership = parse_proc_cgroup(&cg).unwrap();
        let from_mountinfo =
            standard_mounts(mode, root(), &membership, &USED_V1, &mut lookup_in(&mi));
        let from_kernel = standard_mounts(mode, root(), &membership, &USED_V1, &mut mount_at);
        let from_kernel = match from_kernel {
            Err(Fallback::Unsupported(why)) => {
                eprintln!("skipping: this kernel cannot say ({why})");
                return;
            }
            other => other,
        };
        assert_eq!(
            from_kernel, from_mountinfo,
            "the same mounts, in the same order"
        );
        let (fast, fallback) = Layout::detect_traced().unwrap();
        let mut full = Layout::from_parts(mode, root(), &mi, &cg).unwrap();
        full.mounts = used_mounts(mode, full.mounts);
        full.swap = fast.swap;
        if from_mountinfo.is_ok() {
            assert_eq!(fallback, None);
            // The same Layout; the fast path lists the mounts in the order it looked.
            full.mounts = sorted(&full.mounts);
            let fast = Layout {
                mounts: sorted(&fast.mounts),
                ..fast.clone()
            };
            assert_eq!(fast, full);
        } else {
            assert!(fallback.is_some());
        }
        for c in USED_V1 {
            assert_eq!(fast.v1_own_dir(c).ok(), full.v1_own_dir(c).ok(), "{c}");
        }
        assert_eq!(fast.v2_own_dir().ok(), full.v2_own_dir().ok());
        if mode == Mode::Hybrid {
            // The cgroup2 mount of a hybrid machine is a real v2 hierarchy: the v2 path
            // of the kernel's answers, taking `unified` as the root.
            let unified = root().join("unified");
            let v2_kernel =
                standard_mounts(Mode::V2, &unified, &membership, &USED_V1, &mut mount_at);
            let v2_mountinfo = standard_mounts(
                Mode::V2,
                &unified,
                &membership,
                &USED_V1,
                &mut lookup_in(&mi),
            );
            assert_eq!(v2_kernel, v2_mountinfo);
            assert!(v2_kernel.is_ok(), "{v2_kernel:?}");
        }
    }

    #[test]
    fn swap_agrees_with_proc_swaps() {
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        let listed = swaps.lines().skip(1).any(|l| !l.trim().is_empty());
        if let Ok(layout) = Layout::detect() {
            assert_eq!(layout.swap, listed, "{swaps}");
        }
    }
}
