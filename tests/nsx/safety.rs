//! Safe as root on a shared machine (issue 11): what a second, unprivileged user (uid
//! 4242) can make `sudo nsx` do to files.
//!
//! The races run for at least two seconds each while that user swaps a directory nsx
//! works on for a symlink to a victim directory with renameat2(RENAME_EXCHANGE), in a
//! tight loop: the swapper is this very test binary, run again as uid 4242 through
//! setpriv (see [`swapper`]). The victim is a root-owned directory that nsx must never
//! touch.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// How long each race runs at least.
const RACE: Duration = Duration::from_secs(2);

const UID: u32 = 4242;

// ------------------------------------------------------------------ the other user

/// Not a test: the other user's swapper, which the race tests start in a child process
/// as uid 4242. It exchanges each pair of paths in `NSX_TEST_SWAP` (lines "A\tB") with
/// renameat2(RENAME_EXCHANGE) as fast as it can until the file `NSX_TEST_SWAP_STOP`
/// exists, then prints how many exchanges succeeded.
#[test]
#[ignore = "not a test: the swapper the race tests run as uid 4242"]
fn swapper() {
    let Some(spec) = std::env::var_os("NSX_TEST_SWAP") else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    assert_ne!(
        unsafe { libc::geteuid() },
        0,
        "the swapper must not run as root"
    );
    let stop = PathBuf::from(std::env::var_os("NSX_TEST_SWAP_STOP").unwrap());
    let pairs: Vec<(CString, CString)> = spec
        .as_bytes()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut it = l.split(|b| *b == b'\t');
            (
                CString::new(it.next().unwrap()).unwrap(),
                CString::new(it.next().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut swaps = 0u64;
    let mut rounds = 0u64;
    loop {
        for (a, b) in &pairs {
            // SAFETY: two NUL-terminated paths relative to the working directory.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if r == 0 {
                swaps += 1;
            }
        }
        rounds += 1;
        if rounds % 64 == 0 && stop.exists() {
            break;
        }
    }
    println!("swaps: {swaps}");
}

/// This test binary as uid 4242 can execute it: in place when every directory above it
/// lets others through, else a copy in a directory removed with the returned guard.
fn swapper_exe() -> (Option<tempfile::TempDir>, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let others_can =
        |p: &Path, bits: u32| std::fs::metadata(p).is_ok_and(|m| m.mode() & bits == bits);
    if others_can(&exe, 0o005) && exe.ancestors().skip(1).all(|d| others_can(d, 0o001)) {
        return (None, exe);
    }
    let dir = tempfile::Builder::new()
        .prefix("nsx-test-swapper")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("swapper");
    copy_executable(&exe, &copy);
    (Some(dir), copy)
}

/// The other user, exchanging each pair of paths until stopped.
struct Swapper {
    child: Child,
    stop: PathBuf,
    /// The copy of the binary, if one was needed; removed after the child ends.
    _copy: Option<tempfile::TempDir>,
}

impl Swapper {
    fn start(stop_dir: &Path, pairs: &[(&Path, &Path)]) -> Swapper {
        let spec: Vec<u8> = pairs
            .iter()
            .flat_map(|(a, b)| {
                [
                    a.as_os_str().as_bytes(),
                    b"\t",
                    b.as_os_str().as_bytes(),
                    b"\n",
                ]
                .concat()
            })
            .collect();
        let stop = stop_dir.join("stop-swapping");
        let (copy, exe) = swapper_exe();
        let child = spawn(
            Command::new("setpriv")
                .args([
                    "--reuid",
                    TEST_UID,
                    "--regid",
                    TEST_UID,
                    "--clear-groups",
                    "--",
                ])
                .arg(&exe)
                .args([
                    "--exact",
                    "safety::swapper",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("NSX_TEST_SWAP", std::ffi::OsStr::from_bytes(&spec))
                .env("NSX_TEST_SWAP_STOP", &stop)
                .current_dir("/")
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        Swapper {
            child,
            stop,
            _copy: copy,
        }
    }

    /// Stops the swapper; the number of exchanges it made.
    fn stop(mut self) -> u64 {
        std::fs::write(&self.stop, "").unwrap();
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("the swapper did not stop");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        // libtest prints "test safety::swapper ... " on the same line first.
        out.lines()
            .find_map(|l| l.split_once("swaps: ").map(|(_, n)| n))
            .unwrap_or_else(|| panic!("no count from the swapper: {out}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        // A test that panicked before stop(): end our own child, by its PID.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------ scenery

/// A directory in /tmp that uid 4242 can reach (root's, 0755).
fn arena() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("nsx-test-safety")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `path` handed to uid 4242 (the link itself, for a symlink).
fn give_to_user(path: &Path) {
    std::os::unix::fs::lchown(path, Some(UID), Some(UID)).unwrap();
}

/// A directory of uid 4242's, mode 0755.
fn user_dir(path: &Path) {
    std::fs::create_dir(path).unwrap();
    give_to_user(path);
}

/// A root-owned victim directory: `files` files, and a subdirectory `locked` mode 0555.
fn victim(at: &Path, files: usize) -> PathBuf {
    let v = at.join("victim");
    std::fs::create_dir(&v).unwrap();
    for i in 0..files {
        std::fs::write(v.join(format!("f{i:04}")), format!("victim {i}\n")).unwrap();
    }
    std::fs::create_dir(v.join("locked")).unwrap();
    std::fs::write(v.join("locked/inside"), "victim\n").unwrap();
    std::fs::set_permissions(v.join("locked"), std::fs::Permissions::from_mode(0o555)).unwrap();
    v
}

/// Every entry below `dir` with its mode, size and a hash of its content: what must not
/// change.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if m.is_file() {
                std::fs::read(e.path()).unwrap().hash(&mut h);
            }
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().strip_prefix(dir).unwrap().to_path_buf(),
                (m.mode(), m.size(), h.finish()),
            );
        }
    }
    out.insert(
        PathBuf::from("."),
        (std::fs::metadata(dir).unwrap().mode(), 0, 0),
    );
    out
}

/// Fails naming what changed between two [`snapshot`]s of the victim.
fn assert_untouched(before: &BTreeMap<PathBuf, (u32, u64, u64)>, victim: &Path, what: &str) {
    let after = snapshot(victim);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| match (before.get(k), after.get(k)) {
            (Some(_), None) => format!("{} removed", k.display()),
            (None, Some(_)) => format!("{} created", k.display()),
            (Some(a), Some(b)) => format!("{} mode {:o} -> {:o}", k.display(), a.0, b.0),
            (None, None) => unreachable!(),
        })
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: {} changes in the victim, e.g. {:?}",
        changed.len(),
        &changed[..changed.len().min(8)]
    );
}

/// Removes whatever is at `path` now (a symlink itself, or a tree), as root.
fn clear(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            // Open up what nsx closed (busybox's proc and sys are 0555; root ignores that).
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Back to `dir` absent and `decoy` a symlink of the other user's to `victim`, while the
/// swapper keeps exchanging the two: it can only while both exist.
fn reset_pair(dir: &Path, decoy: &Path, victim: &Path) {
    for _ in 0..10_000 {
        clear(dir);
        clear(decoy);
        if std::fs::symlink_metadata(dir).is_err() && std::fs::symlink_metadata(decoy).is_err() {
            std::os::unix::fs::symlink(victim, decoy).unwrap();
            give_to_user(decoy);
            return;
        }
    }
    panic!("could not clear {} and {}", dir.display(), decoy.display());
}

/// Runs `attempt` again and again for at least [`RACE`] and at least `min` times.
fn for_a_while(min: usize, mut attempt: impl FnMut(usize)) -> usize {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RACE || n < min {
        attempt(n);
        n += 1;
    }
    n
}

fn nsx_as_root(args: &[&str]) -> std::process::Output {
    output_retrying_busy(|| {
        let mut cmd = nsx();
        cmd.args(args)
            .env_remove("SUDO_UID")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    })
}

// ------------------------------------------------------------------ 1: the leftover sweep

/// A sweep used to remove `$TMPDIR/nsx-<pid>-rootfs` of any dead PID by path, following a
/// subdirectory the owner swapped for a symlink: root unlinked (or chmodded) the
/// victim's files. Now it touches only trees owned by nsx's own user, on the temp dir's
/// mount, walking through descriptors.
#[test]
fn the_rootfs_sweep_never_follows_a_swapped_symlink() {
    if !privileged("sweep race") {
        return;
    }
    let a = arena();
    let tmp = a.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A temp dir like /tmp: root's, world-writable and sticky.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let v = victim(a.path(), 1000);
    let before = snapshot(&v);
    // Leftovers of "dead runs" (no PID above pid_max, 32768 at most here, runs): the
    // other user's, in the old and the new naming, and root's whose scratch tmp/ is
    // sticky and world-writable, as a rootfs image's is. Many of them, so that every
    // sweep meets the race many times.
    let mut theirs = vec![tmp.join("nsx-1-rootfs")];
    for i in 0..24 {
        theirs.push(tmp.join(format!("nsx-{}-rootfs", 40_000 + i)));
        theirs.push(tmp.join(format!("nsx-{}-1-rootfs-aaaaaa{:02}", 40_000 + i, i)));
    }
    let roots: Vec<PathBuf> = (0..8)
        .map(|i| tmp.join(format!("nsx-{}-1-rootfs-bbbbbb{i:02}", 50_000 + i)))
        .collect();
    // Where each swapping pair lives: in the other user's trees, and in the sticky tmp/
    // of root's.
    let bases: Vec<PathBuf> = theirs
        .iter()
        .cloned()
        .chain(roots.iter().map(|r| r.join("image/tmp")))
        .collect();
    let layout = || {
        for t in &theirs {
            if !t.exists() {
                user_dir(t);
            }
        }
        for r in &roots {
            if !r.exists() {
                std::fs::create_dir_all(r.join("image/tmp")).unwrap();
                std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
                std::fs::set_permissions(r.join("image"), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
                std::fs::set_permissions(
                    r.join("image/tmp"),
                    std::fs::Permissions::from_mode(0o1777),
                )
                .unwrap();
            }
        }
        for base in &bases {
            let (d, link) = (base.join("d"), base.join("link"));
            if std::fs::symlink_metadata(&d).is_err() {
                user_dir(&d);
                for i in 0..4 {
                    let f = d.join(format!("g{i}"));
                    std::fs::write(&f, "x").unwrap();
                    give_to_user(&f);
                }
                // Closed, so that a sweep opens it up (chmod) before emptying it.
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o500)).unwrap();
            }
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(&v, &link).unwrap();
                give_to_user(&link);
            }
        }
    };
    layout();
    let pairs: Vec<(PathBuf, PathBuf)> = bases
        .iter()
        .map(|b| (b.join("d"), b.join("link")))
        .collect();
    let pair_refs: Vec<(&Path, &Path)> = pairs
        .iter()
        .map(|(x, y)| (x.as_path(), y.as_path()))
        .collect();
    let swapper = Swapper::start(a.path(), &pair_refs);
    let runs = for_a_while(2, |_| {
        layout();
        let out = output_retrying_busy(|| {
            let mut cmd = nsx();
            cmd.args(["lesson", "rootfs", "--format", "json"])
                .env("TMPDIR", &tmp)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd
        });
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    });
    let swaps = swapper.stop();
    assert!(swaps > 0, "the swapper never swapped");
    assert_untouched(&before, &v, "the sweep");
    // The other user's trees are not nsx's to remove.
    let gone: Vec<_> = theirs.iter().filter(|t| !t.exists()).collect();
    assert!(
        gone.is_empty(),
        "the sweep removed the other user's {gone:?}"
    );
    // Root's leftovers of dead runs are still nsx's to remove: once no one interferes,
    // one more run sweeps them all, and says nothing about them.
    let out = output_retrying_busy(|| {
        let mut cmd = nsx();
        cmd.args(["lesson", "rootfs", "--format", "json"])
            .env("TMPDIR", &tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left: Vec<_> = roots.iter().filter(|r| r.exists()).collect();
    assert!(left.is_empty(), "not swept: {left:?}; {}", stderr(&out));
    assert!(
        !stderr(&out).contains("could not remove"),
        "{}",
        stderr(&out)
    );
    eprintln!("sweep race: {runs} runs, {swaps} swaps");
}

// ------------------------------------------------------------------ 2: rootfs busybox

/// `rootfs busybox DIR` used to create DIR and then write by path: the owner of DIR's
/// parent swapped DIR for a symlink and root wrote the rootfs (etc/passwd included)
/// wherever it pointed. Now nsx builds in a directory it made, through its descriptor.
#[test]
fn busybox_writes_only_into_the_directory_it_made() {
    if !privileged("busybox race") {
        return;
    }
    let a = arena();
    let v = victim(a.path(), 3);
    let before = snapshot(&v);
    let parent = a.path().join("theirs");
    user_dir(&parent);
    let (dir, decoy) = (parent.join("bb"), parent.join("decoy"));
    let reset = || reset_pair(&dir, &decoy, &v);
    reset();
    let swapper = Swapper::start(a.path(), &[(&dir, &decoy)]);
    let mut built = 0;
    let runs = for_a_while(5, |_| {
        let out = nsx_as_root(&["rootfs", "busybox", dir.to_str().unwrap()]);
        built += usize::from(out.status.success());
        reset();
    });
    let swaps = swapper.stop();
    assert!(swaps > 0, "the swapper never swapped");
    assert_untouched(&before, &v, "the build wrote into the victim");
    assert!(built > 0, "no build succeeded in {runs} runs");
    eprintln!("busybox race: {runs} runs ({built} built), {swaps} swaps");
}

/// An existing DIR is accepted only when it is empty, not a symlink, and owned by the
/// user nsx runs as or the one who ran sudo.
#[test]
fn busybox_and_import_refuse_a_dir_someone_else_owns() {
    if !privileged("busybox/import into another user's directory") {
        return;
    }
    let a = arena();
    let theirs = a.path().join("theirs");
    user_dir(&theirs);
    let tar = a.path().join("t.tar");
    small_archive(&tar);
    for args in [
        vec!["rootfs", "busybox", theirs.to_str().unwrap()],
        vec![
            "rootfs",
            "import",
            tar.to_str().unwrap(),
            theirs.to_str().unwrap(),
        ],
    ] {
        let out = nsx_as_root(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("uid 4242"), "{}", stderr(&out));
        assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
    }
    // The sudo user's own directory is fine.
    let out = output_retrying_busy(|| {
        let mut cmd = nsx();
        cmd.args(["rootfs", "busybox", theirs.to_str().unwrap()])
            .env("SUDO_UID", TEST_UID)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(theirs.join("bin/busybox").is_file());
    // A symlink to an empty directory is refused.
    let empty = a.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let link = a.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    let out = nsx_as_root(&["rootfs", "busybox", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

// ------------------------------------------------------------------ 3, 4, 15: import

fn small_archive(path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    let data = b"root:x:0:0::/root:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "etc/passwd", &data[..]).unwrap();
    b.finish().unwrap();
}

/// `rootfs import` used to check DIR, then open it by path without O_NOFOLLOW: a swap in
/// between unpacked the archive into the victim. Now nsx unpacks into a directory it
/// made, through its descriptor, and renames it into place.
#[test]
fn import_never_unpacks_through_a_swapped_dir() {
    if !privileged("import race") {
        return;
    }
    let a = arena();
    let v = victim(a.path(), 3);
    let before = snapshot(&v);
    let tar = a.path().join("t.tar");
    small_archive(&tar);
    let parent = a.path().join("theirs");
    user_dir(&parent);
    let (dir, decoy) = (parent.join("root"), parent.join("decoy"));
    let reset = || reset_pair(&dir, &decoy, &v);
    reset();
    let swapper = Swapper::start(a.path(), &[(&dir, &decoy)]);
    let mut done = 0;
    let runs = for_a_while(50, |_| {
        let out = nsx_as_root(&[
            "rootfs",
            "import",
            tar.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        done += usize::from(out.status.success());
        reset();
    });
    let swaps = swapper.stop();
    assert!(swaps > 0, "the swapper never swapped");
    assert_untouched(&before, &v, "the import wrote into the victim");
    assert!(done > 0, "no import succeeded in {runs} runs");
    eprintln!("import race: {runs} runs ({done} imported), {swaps} swaps");
}

/// A block device readable by all, and a setuid-root program: an import as root used to
/// recreate both, so any user could read the disk through the node, or run the program
/// as root. They are now skipped and cleared unless asked for, and the summary says so.
#[test]
fn import_skips_devices_and_clears_setid_unless_asked() {
    if !privileged("import of device nodes and setuid files") {
        return;
    }
    let a = arena();
    let tar = a.path().join("t.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Block);
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_device_major(7).unwrap();
        h.set_device_minor(0).unwrap();
        b.append_data(&mut h, "dev/loop0", &[][..]).unwrap();
        let data = b"#!/bin/sh\nid\n";
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "bin/rootshell", &data[..]).unwrap();
        b.finish().unwrap();
    }
    let dest = a.path().join("root");
    let out = nsx_as_root(&[
        "rootfs",
        "import",
        tar.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("skipped 1 device node") && text.contains("--keep-devices"),
        "{text}"
    );
    assert!(
        text.contains("cleared setuid/setgid on 1 file") && text.contains("--keep-setid"),
        "{text}"
    );
    assert!(std::fs::symlink_metadata(dest.join("dev/loop0")).is_err());
    let mode = std::fs::metadata(dest.join("bin/rootshell"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    // JSON says the same.
    let dest = a.path().join("json");
    let out = nsx_as_root(&[
        "rootfs",
        "import",
        tar.to_str().unwrap(),
        dest.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["devices_skipped"].as_u64(), v["setid_stripped"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    // Asked for: kept.
    let dest = a.path().join("kept");
    let out = nsx_as_root(&[
        "rootfs",
        "import",
        "--keep-devices",
        "--keep-setid",
        tar.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = std::fs::symlink_metadata(dest.join("dev/loop0")).unwrap();
    assert_eq!(m.rdev(), libc::makedev(7, 0));
    let mode = std::fs::metadata(dest.join("bin/rootshell"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}

fn archive_with(path: &Path, build: impl FnOnce(&mut tar::Builder<std::fs::File>)) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    build(&mut b);
    b.finish().unwrap();
}

fn regular(b: &mut tar::Builder<std::fs::File>, name: &str, uid: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(uid);
    h.set_gid(0);
    h.set_size(1);
    b.append_data(&mut h, name, &b"x"[..]).unwrap();
}

/// Bad archives are bad input: exit 2, names escaped, nothing left behind.
#[test]
fn bad_archives_exit_2_escaped_and_leave_nothing() {
    let a = arena();
    let check = |tar: &Path, want: &str| {
        let dest = a.path().join("dest");
        let out = run(&[
            "rootfs",
            "import",
            tar.to_str().unwrap(),
            dest.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            tar.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains(want), "{}: {err}", tar.display());
        assert!(
            !out.stderr.iter().any(|b| *b == 0x1b || *b == 0x07),
            "raw control bytes on the terminal: {err:?}"
        );
        assert!(!dest.exists(), "{} left {}", tar.display(), dest.display());
        let left: Vec<_> = std::fs::read_dir(a.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with("nsx-"))
            .collect();
        assert!(left.is_empty(), "partial trees left: {left:?}");
    };
    // A uid that does not fit in 32 bits, after a good entry: refused, not root.
    let t = a.path().join("uid.tar");
    archive_with(&t, |b| {
        regular(b, "ok", 0);
        regular(b, "wide", 1 << 32);
    });
    check(&t, "uid 4294967296");
    // zstd and lz4, by their magic bytes.
    let t = a.path().join("x.tar.zst");
    std::fs::write(&t, [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).unwrap();
    check(&t, "zstd -dc");
    let t = a.path().join("x.tar.lz4");
    std::fs::write(&t, [0x04, 0x22, 0x4d, 0x18, 0, 0, 0, 0]).unwrap();
    check(&t, "lz4 -dc");
    // A corrupt header.
    let t = a.path().join("corrupt.tar");
    archive_with(&t, |b| regular(b, "a", 0));
    let mut bytes = std::fs::read(&t).unwrap();
    bytes[148] ^= 1;
    std::fs::write(&t, &bytes).unwrap();
    check(&t, "checksum");
    // A name with terminal escapes (a title change and a screen clear) that climbs out.
    let t = a.path().join("escape.tar");
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(1);
        let name = b"good/../../\x1b]0;pwned\x07\x1b[2J";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        archive_with(&t, |b| {
            regular(b, "first", 0);
            b.append(&h, &b"x"[..]).unwrap();
        });
    }
    check(&t, "\\e]0;pwned");
}

/// `import -` on a terminal used to wait silently for an archive that never comes.
#[test]
fn import_from_a_terminal_is_refused() {
    let a = arena();
    let (_master, slave) = pty();
    let mut child = spawn(
        nsx()
            .args(["rootfs", "import", "-"])
            .arg(a.path().join("dest"))
            .stdin(slave)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nsx rootfs import - waited on a terminal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("terminal"), "{}", stderr(&out));
    assert!(!a.path().join("dest").exists());
}

// ------------------------------------------------------------------ 9: man --out-dir

/// `nsx man --out-dir` used to write each page by path: a symlink planted at a page's
/// name made root overwrite its target; another user's directory is now refused.
#[test]
fn man_pages_replace_a_planted_symlink() {
    if !privileged("man --out-dir with a planted link") {
        return;
    }
    let a = arena();
    let v = victim(a.path(), 0);
    std::fs::write(v.join("target"), "victim\n").unwrap();
    let before = snapshot(&v);
    // A shared, sticky directory (like /tmp) where the other user planted a link.
    let shared = a.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.join("nsx-run.1");
    std::os::unix::fs::symlink(v.join("target"), &planted).unwrap();
    give_to_user(&planted);
    let out = nsx_as_root(&["man", "--out-dir", shared.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_file());
    assert_untouched(&before, &v, "man --out-dir");
    // Another user's directory is refused.
    let theirs = a.path().join("theirs");
    user_dir(&theirs);
    let out = nsx_as_root(&["man", "--out-dir", theirs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
}

/// The race: DIR, made by nsx in a directory of the other user's, swapped for a symlink
/// to the victim while nsx writes the pages.
#[test]
fn man_pages_never_write_through_a_swapped_dir() {
    if !privileged("man --out-dir race") {
        return;
    }
    let a = arena();
    let v = victim(a.path(), 0);
    std::fs::write(v.join("nsx.1"), "victim\n").unwrap();
    let before = snapshot(&v);
    let parent = a.path().join("theirs");
    user_dir(&parent);
    let (dir, decoy) = (parent.join("man1"), parent.join("decoy"));
    let reset = || reset_pair(&dir, &decoy, &v);
    reset();
    let swapper = Swapper::start(a.path(), &[(&dir, &decoy)]);
    let mut written = 0;
    let runs = for_a_while(20, |_| {
        let out = nsx_as_root(&["man", "--out-dir", dir.to_str().unwrap()]);
        written += usize::from(out.status.success());
        reset();
    });
    let swaps = swapper.stop();
    assert!(swaps > 0, "the swapper never swapped");
    assert_untouched(&before, &v, "man pages were written into the victim");
    assert!(written > 0, "no run succeeded in {runs}");
    eprintln!("man race: {runs} runs ({written} written), {swaps} swaps");
}

// ------------------------------------------------------------------ 13, 18: temp dirs

/// A relative, empty, `..` or symlinked TMPDIR used to break the lessons that mount (an
/// empty one even made a directory in the current one); now it is resolved or refused
/// with the reason, and /tmp used.
#[test]
fn a_strange_tmpdir_does_not_break_the_lessons() {
    if !privileged("TMPDIR") {
        return;
    }
    let a = arena();
    let cwd = a.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let real = a.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = a.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dotdot = format!("{}/cwd/..", a.path().display());
    for (lesson, tmpdir, refused) in [
        ("mount", "", true),
        ("mount", "relative", true),
        ("mount", dotdot.as_str(), false),
        ("mount", link.to_str().unwrap(), false),
        ("rootfs", link.to_str().unwrap(), false),
    ] {
        let out = output_retrying_busy(|| {
            let mut cmd = nsx();
            cmd.args(["lesson", lesson, "--format", "json"])
                .env("TMPDIR", tmpdir)
                .current_dir(&cwd)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd
        });
        assert_eq!(
            out.status.code(),
            Some(0),
            "{lesson} with TMPDIR={tmpdir:?}: {}",
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], true, "{lesson} with TMPDIR={tmpdir:?}");
        assert_eq!(
            stderr(&out).contains("using /tmp instead"),
            refused,
            "{tmpdir:?}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "{tmpdir:?}");
        // Resolved: the paths the lesson shows are in the real directory.
        let text = v.to_string();
        if !refused {
            let resolved = if tmpdir == dotdot {
                a.path()
            } else {
                real.as_path()
            };
            assert!(
                text.contains(&format!("{}/nsx-", resolved.display())),
                "{tmpdir:?}: {text}"
            );
            assert!(
                !text.contains("/cwd/..") && !text.contains("/link/"),
                "{tmpdir:?}"
            );
        }
    }
}

/// Temp dirs had predictable names (`nsx-<pid>-mount`): any user could create the next
/// run's first and make it fail. Here nsx is PID 1 of a new PID namespace, so the old
/// name is known in advance; the other user takes it.
#[test]
fn a_name_taken_in_advance_does_not_stop_a_run() {
    if !privileged("predictable temp names") {
        return;
    }
    let a = arena();
    let tmp = a.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for name in ["nsx-1-mount", "nsx-2-mount"] {
        let taken = tmp.join(name);
        user_dir(&taken);
        std::fs::write(taken.join("mine"), "x").unwrap();
    }
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_nsx"))
        .args(["lesson", "mount", "--format", "json"])
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The other user's directories are still theirs, untouched.
    for name in ["nsx-1-mount", "nsx-2-mount"] {
        assert!(tmp.join(name).join("mine").exists());
    }
}
