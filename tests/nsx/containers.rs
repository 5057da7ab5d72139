//! From mechanisms to a container: the rootfs and init lessons, `nsx rootfs`, `nsx run`.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

// ----------------------------------------------------------------- helpers

/// A busybox rootfs built by `nsx rootfs busybox`, removed when dropped.
fn busybox_rootfs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("nsx-test-rootfs")
        .tempdir()
        .unwrap();
    let root = dir.path().join("bb");
    let out = run(&["rootfs", "busybox", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (dir, root)
}

fn assert_nothing_left(pid: u32, mountinfo_before: &str) {
    let pids = BTreeSet::from([pid]);
    let cgroups = cgroups_of(&pids);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let children = children_of(pid);
    assert!(children.is_empty(), "processes left: {children:?}");
    let tmp = temp_dirs_of(&pids);
    assert!(tmp.is_empty(), "temp dirs left: {tmp:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        mountinfo_before,
        "the host's mount table changed"
    );
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    budget: Duration,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > budget {
            let _ = child.kill();
            panic!("nsx did not exit within {budget:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads lines from a child's stdout until one satisfies `want` (bounded).
fn read_until(out: &mut std::process::ChildStdout, want: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while !want(&text) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out; got {text:?}"
        );
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "EOF before the expected output; got {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

// ----------------------------------------------------------------- lessons

#[test]
fn init_lesson_is_fast() {
    if !privileged("init speed") {
        return;
    }
    // Every wait is a bounded poll of /proc: the whole lesson takes well under the 2 s
    // budget of a single wait, even on a loaded machine.
    let start = Instant::now();
    let _ = lesson_json("init", &[]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn rootfs_and_init_leave_nothing_behind() {
    if !privileged("rootfs/init leaks") {
        return;
    }
    let (_dir, exe) = copy_binary("nsx-rootfs-leaks");
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let children: Vec<_> = (0..4)
        .flat_map(|_| ["rootfs", "init"])
        .map(|id| {
            spawn(
                Command::new(&exe)
                    .args(["lesson", id, "--format", "json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
        })
        .collect();
    for child in children {
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_nothing_left(pid, &before);
    }
}

// ----------------------------------------------------------------- nsx rootfs

#[test]
fn busybox_rootfs_links_are_relative() {
    let (_d, root) = busybox_rootfs();
    let sh = std::fs::read_link(root.join("bin/sh")).unwrap();
    assert_eq!(sh, Path::new("busybox"));
    let mut links = 0;
    for dir in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                links += 1;
                assert!(
                    target.is_relative(),
                    "{} -> {}",
                    e.path().display(),
                    target.display()
                );
                // Each link resolves, inside the rootfs, to the copied busybox.
                let resolved = std::fs::canonicalize(e.path()).unwrap();
                assert_eq!(resolved, root.join("bin/busybox"), "{}", e.path().display());
            }
        }
    }
    assert!(links > 100, "only {links} applet links");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"));
    assert!(root.join("etc/group").is_file());
    for d in ["proc", "sys", "dev", "tmp"] {
        assert!(root.join(d).is_dir(), "/{d}");
    }
    // A second build into the same (now full) directory is refused.
    let out = run(&["rootfs", "busybox", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not empty"));
}

#[test]
fn import_unpacks_a_rootfs_that_runs() {
    if !privileged("rootfs import + run") {
        return;
    }
    let (d, root) = busybox_rootfs();
    let tar = d.path().join("bb.tar");
    let st = Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let dest = d.path().join("imported");
    let out = run(&[
        "rootfs",
        "import",
        tar.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("RESOLVE_IN_ROOT"));
    let out = run(&[
        "run",
        "--pid",
        "--mount",
        "--rootfs",
        dest.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo $$; ls /bin/busybox",
    ]);
    assert_eq!(stdout(&out), "1\n/bin/busybox\n", "{}", stderr(&out));
}

#[test]
fn import_refuses_compressed_and_missing_archives() {
    let d = tempfile::tempdir().unwrap();
    let gz = d.path().join("x.tar.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let out = run(&[
        "rootfs",
        "import",
        gz.to_str().unwrap(),
        d.path().join("a").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("gunzip"), "{}", stderr(&out));
    let out = run(&[
        "rootfs",
        "import",
        "/nonexistent.tar",
        d.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

fn hostile_tar(path: &Path, link_target: &str) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "etc", link_target).unwrap();
    let data = b"hostile:x:0:0::/:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "etc/passwd", &data[..]).unwrap();
    b.finish().unwrap();
}

#[test]
fn a_hostile_tarball_cannot_write_outside_the_rootfs() {
    // A canary directory outside DIR stands for the host: `etc -> <canary>`, then
    // `etc/passwd`.
    let d = tempfile::tempdir().unwrap();
    let canary = d.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let tar = d.path().join("hostile.tar");
    hostile_tar(&tar, canary.to_str().unwrap());
    let dest = d.path().join("rootfs");
    let out = run(&[
        "rootfs",
        "import",
        tar.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    // A hostile archive is bad input (exit 2, issue 11), not a failure of the host.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("etc/passwd"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&canary).unwrap().count(),
        0,
        "wrote outside DIR"
    );
}

#[test]
fn a_hostile_tarball_pointing_at_etc_cannot_touch_etc_passwd() {
    if !privileged("hostile tarball, etc -> /etc") {
        return;
    }
    // The literal attack, `etc -> /etc` then `etc/passwd`, run as root. The import runs
    // inside a private mount namespace whose /etc is a fresh tmpfs, so even a broken
    // nsx would write there and not to the host's /etc/passwd; the shell then reports
    // whether anything appeared in that /etc.
    let d = tempfile::tempdir().unwrap();
    let tar = d.path().join("hostile.tar");
    hostile_tar(&tar, "/etc");
    let dest = d.path().join("rootfs");
    let script = format!(
        "mount -t tmpfs nsx-test-guard /etc && {nsx} rootfs import {tar} {dest}; rc=$?; ls -A /etc; exit $rc",
        nsx = env!("CARGO_BIN_EXE_nsx"),
        tar = tar.display(),
        dest = dest.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("etc/passwd"), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "the import wrote into /etc: {}",
        stdout(&out)
    );
    // The failed import left nothing: no DIR, no partial tree beside it.
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "only the archive is left"
    );
}

// ----------------------------------------------------------------- nsx run

#[test]
fn run_passes_the_exit_status_through() {
    if !privileged("nsx run exit status") {
        return;
    }
    let out = run(&["run", "--pid", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // Killed by a signal: 128 + its number, as a shell reports it.
    let out = run(&["run", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137));
    let out = run(&["run", "--pid", "--mount", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn run_makes_the_command_pid_1_with_its_own_hostname() {
    if !privileged("nsx run pid 1") {
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = run(&[
        "run",
        "--pid",
        "--mount",
        "--uts",
        "--hostname",
        "box1",
        "--",
        "sh",
        "-c",
        "echo $$; hostname; ps -e | wc -l",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "box1");
    // ps header + sh + ps (+ wc): only the container's processes.
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{lines:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

#[test]
fn run_with_a_rootfs_is_the_seeds_busybox_container() {
    if !privileged("nsx run --rootfs") {
        return;
    }
    let (_d, root) = busybox_rootfs();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = run(&[
        "run",
        "--all",
        "--hostname",
        "bb",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo $$; hostname; echo --; ls /; echo --; ls /dev; echo --; ls /sys/class/net",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let parts: Vec<Vec<&str>> = text
        .split("--\n")
        .map(|p| p.lines().map(str::trim).collect())
        .collect();
    assert_eq!(parts[0], ["1", "bb"], "{text}");
    // `/` is the rootfs: the same names the host lists in the directory.
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(parts[1], names, "{text}");
    for dev in ["null", "zero", "urandom", "tty"] {
        assert!(parts[2].contains(&dev), "/dev/{dev} missing: {text}");
    }
    // Only lo in the new network namespace.
    assert_eq!(parts[3], ["lo"], "{text}");
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        before
    );
}

#[test]
fn run_refuses_bad_input_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir_all(empty.join("proc")).unwrap();
    std::fs::create_dir_all(empty.join("dev")).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--pid"], "CMD"),
        (vec!["run", "--uts", "--"], "CMD"),
        (vec!["run", "--hostname", "x", "--", "true"], "--uts"),
        (
            vec!["run", "--rootfs", "/nonexistent", "--", "sh"],
            "--mount",
        ),
        (
            vec![
                "run",
                "--pid",
                "--mount",
                "--rootfs",
                "/nonexistent-nsx",
                "--",
                "sh",
            ],
            "no such directory",
        ),
        (
            vec![
                "run",
                "--pid",
                "--mount",
                "--rootfs",
                file.to_str().unwrap(),
                "--",
                "sh",
            ],
            "not a directory",
        ),
        (
            vec![
                "run",
                "--pid",
                "--mount",
                "--rootfs",
                empty.to_str().unwrap(),
                "--",
                "sh",
            ],
            "command not found in the rootfs",
        ),
        (
            vec![
                "run",
                "--pid",
                "--mount",
                "--rootfs",
                d.path().to_str().unwrap(),
                "--",
                "/bin/sh",
            ],
            "no /proc",
        ),
        (
            vec!["run", "--", "nsx-no-such-command"],
            "command not found on this host",
        ),
        (vec!["run", "--memory", "0", "--", "true"], "like 32M"),
        (vec!["run", "--memory", "-5M", "--", "true"], "like 32M"),
        (vec!["run", "--cpus", "0", "--", "true"], "like 0.2"),
        (vec!["run", "--cpus", "lots", "--", "true"], "like 0.2"),
        (vec!["run", "--pids", "0", "--", "true"], "like 8"),
        (vec!["run", "--pids", "-1", "--", "true"], "like 8"),
    ];
    for (args, want) in cases {
        let child = spawn(
            nsx()
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert!(cgroups_of(&BTreeSet::from([pid])).is_empty(), "{args:?}");
    }
}

#[test]
fn run_applies_the_limits_and_removes_the_cgroups() {
    if !privileged("nsx run limits") {
        return;
    }
    let mut child = spawn(
        nsx()
            .args([
                "run",
                "--pid",
                "--mount",
                "-i",
                "--memory",
                "32M",
                "--cpus",
                "0.5",
                "--pids",
                "8",
                "--",
                "sh",
                "-c",
                "cat /proc/self/cgroup; echo ready; read line || :",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = child.id();
    let text = read_until(child.stdout.as_mut().unwrap(), |t| t.contains("ready\n"));
    // The host reads the limits back from the cgroup files while the command runs.
    let dirs = cgroups_of(&BTreeSet::from([pid]));
    let read = |ctl: &str, file: &str| -> String {
        let d = dirs
            .iter()
            .find(|d| d.starts_with(format!("/sys/fs/cgroup/{ctl}")))
            .unwrap_or_else(|| panic!("no {ctl} cgroup in {dirs:?}"));
        std::fs::read_to_string(d.join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), "33554432");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("pids", "pids.max"), "8");
    // The command is in them: /proc/self/cgroup names nsx-<pid>-<start>-run in each
    // hierarchy.
    for ctl in ["memory", "pids", "cpu"] {
        let line = text
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctl))
            })
            .unwrap();
        let name = line.rsplit('/').next().unwrap();
        assert!(
            name.starts_with(&format!("nsx-{pid}-")) && name.ends_with("-run"),
            "{line}"
        );
    }
    // Below nsx's own memory cgroup, never beside it.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_mem = own
        .lines()
        .find(|l| l.contains(":memory:"))
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mem_line = text.lines().find(|l| l.contains(":memory:")).unwrap();
    let (parent, name) = mem_line
        .rsplit(':')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap();
    assert_eq!(parent, own_mem.trim_end_matches('/'), "{mem_line}");
    assert!(name.starts_with(&format!("nsx-{pid}-")), "{mem_line}");
    drop(child.stdin.take());
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(cgroups_of(&BTreeSet::from([pid])).is_empty());
}

#[test]
fn run_memory_limit_ends_in_an_oom_kill() {
    if !privileged("nsx run --memory OOM") {
        return;
    }
    // The cgroup lesson's check: 64 MB touched under a 32M limit is SIGKILLed (137).
    let out = run(&[
        "run",
        "--memory",
        "32M",
        "--",
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo survived",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stdout(&out));
    assert!(!stdout(&out).contains("survived"));
    let out = run(&[
        "run",
        "--memory",
        "64M",
        "--",
        "sh",
        "-c",
        "x=$(head -c 8388608 /dev/zero | tr '\\0' x); echo survived",
    ]);
    assert_eq!(stdout(&out), "survived\n", "{}", stderr(&out));
}

#[test]
fn run_pids_limit_stops_a_fork_bomb() {
    if !privileged("nsx run --pids") {
        return;
    }
    // pids.max = 8: the shell (PID 1) and seven sleeps fit exactly (echo and read are
    // builtins, no fork); the next fork fails and the shell gives up.
    let mut child = spawn(
        nsx()
            .args(["run", "--pid", "-i", "--pids", "8", "--", "sh", "-c", "for i in 1 2 3 4 5 6 7; do sleep 5 & done; echo ready; read x || :; sleep 0; echo survived"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = child.id();
    read_until(child.stdout.as_mut().unwrap(), |t| t.contains("ready\n"));
    let dirs = cgroups_of(&BTreeSet::from([pid]));
    let current = std::fs::read_to_string(dirs[0].join("pids.current")).unwrap();
    assert_eq!(current.trim(), "8", "pids.current in {}", dirs[0].display());
    drop(child.stdin.take());
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_ne!(status.code(), Some(0));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        !out.contains("survived"),
        "a ninth process was allowed: {out}"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.to_lowercase().contains("fork"), "{err}");
    assert!(cgroups_of(&BTreeSet::from([pid])).is_empty());
}

#[test]
fn run_forwards_sigterm_to_a_command_with_a_handler() {
    if !privileged("nsx run signal forwarding") {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut child = spawn(
        nsx()
            .args([
                "run",
                "--pid",
                "--mount",
                "--memory",
                "64M",
                "--",
                "sh",
                "-c",
                "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = child.id();
    read_until(child.stdout.as_mut().unwrap(), |t| t.contains("ready\n"));
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(42));
    let mut rest = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(rest.contains("got TERM"), "{rest}");
    assert_nothing_left(pid, &before);
}

#[test]
fn sigint_to_a_pid_1_without_handler_is_dropped_then_escalates() {
    if !privileged("nsx run SIGINT") {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut child = spawn(
        nsx()
            .args([
                "run",
                "--pid",
                "--mount",
                "--pids",
                "16",
                "--",
                "sh",
                "-c",
                "echo ready; exec sleep 30",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = child.id();
    read_until(child.stdout.as_mut().unwrap(), |t| t.contains("ready\n"));
    // exec replaced sh: PID 1 is sleep, with no handler. Wait until the exec happened.
    let start = Instant::now();
    while !children_of(pid)
        .iter()
        .any(|p| std::fs::read_to_string(format!("{p}/comm")).is_ok_and(|c| c.trim() == "sleep"))
    {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "PID 1 without a handler must survive SIGINT"
    );
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(137));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("no handler") && err.contains("SIGKILL"),
        "{err}"
    );
    assert_nothing_left(pid, &before);
}

#[test]
fn run_failure_leaves_nothing() {
    if !privileged("nsx run failure") {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let child = spawn(
        nsx()
            .args([
                "run", "--pid", "--mount", "--memory", "32M", "--", "sh", "-c", "exit 3",
            ])
            .stdout(Stdio::piped()),
    );
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_nothing_left(pid, &before);
}

// ----------------------------------------------------------------- the interactive shell

struct Pty {
    master: std::fs::File,
    slave: std::os::fd::OwnedFd,
}

fn open_pty(rows: u16, cols: u16) -> Pty {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two fds; the name and termios pointers may be null.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty");
    // SAFETY: openpty returned two new descriptors.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(m),
            slave: std::os::fd::OwnedFd::from_raw_fd(s),
        }
    }
}

fn termios_of(fd: i32) -> Vec<u8> {
    // SAFETY: tcgetattr fills one struct termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd, &mut t), 0);
        std::slice::from_raw_parts(
            (&t as *const libc::termios).cast::<u8>(),
            std::mem::size_of::<libc::termios>(),
        )
        .to_vec()
    }
}

/// Reads from the pty master until `want` holds, or panics after a bound.
fn expect(master: &mut std::fs::File, seen: &mut String, want: impl Fn(&str) -> bool) {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !want(seen) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out; the screen so far: {seen:?}"
        );
        let mut fds = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } <= 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

#[test]
fn an_interactive_shell_on_a_real_pty() {
    if !privileged("nsx run -it") {
        return;
    }
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (_d, root) = busybox_rootfs();
    let mut pty = open_pty(30, 90);
    let slave_fd = pty.slave.as_raw_fd();
    let before = termios_of(slave_fd);
    let mut cmd = nsx();
    cmd.args([
        "run",
        "--all",
        "--hostname",
        "box-it",
        "--memory",
        "64M",
        "--rootfs",
        root.to_str().unwrap(),
        "-it",
        "--",
        "/bin/sh",
    ])
    .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
    .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
    .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec: nsx gets the test's
    // pty as its controlling terminal, as a login shell would.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawn(&mut cmd);
    let pid = child.id();
    let mut seen = String::new();
    expect(&mut pty.master, &mut seen, |s| s.contains("# "));
    pty.master.write_all(b"stty size\r").unwrap();
    expect(&mut pty.master, &mut seen, |s| s.contains("30 90"));
    // Resize the user's terminal: the kernel sends nsx SIGWINCH, nsx passes it on.
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one struct winsize.
    unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    std::thread::sleep(Duration::from_millis(100));
    pty.master.write_all(b"stty size\r").unwrap();
    expect(&mut pty.master, &mut seen, |s| s.contains("40 100"));
    // Ctrl-C is a byte in raw mode; the container's pty turns it into SIGINT.
    pty.master.write_all(b"sleep 20\r").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pty.master.write_all(&[3]).unwrap();
    pty.master.write_all(b"echo after-$((40+2))\r").unwrap();
    expect(&mut pty.master, &mut seen, |s| s.contains("after-42"));
    pty.master
        .write_all(b"echo $$; hostname; exit 3\r")
        .unwrap();
    expect(&mut pty.master, &mut seen, |s| s.contains("box-it\r\n"));
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{seen:?}");
    assert!(seen.contains("\r\n1\r\nbox-it\r\n"), "{seen:?}");
    // The terminal is back as nsx found it.
    assert_eq!(
        termios_of(slave_fd),
        before,
        "terminal settings not restored"
    );
    let pids = BTreeSet::from([pid]);
    assert!(cgroups_of(&pids).is_empty());
}
