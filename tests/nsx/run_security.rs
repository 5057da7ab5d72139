//! `nsx run`'s security flags and defaults, as root: --cap-drop ALL refuses
//! sethostname (and `nsx why` names CAP_SYS_ADMIN), bad flags and profiles are refused
//! before anything starts, runc is the referee for the default capabilities and masked
//! paths, and the host is the same before and after every flag, also when interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::inspect::Container;

/// Docker's default capabilities (moby `oci/caps/defaults.go`), as names.
const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's masked paths (moby `daemon/pkg/oci/defaults.go`), written out here so that
/// the test does not take nsx's own list as its oracle.
const DOCKER_MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Docker's read-only paths.
const DOCKER_READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

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

/// A field of /proc/<pid>/status, e.g. `CapEff`.
fn status_field(pid: &str, field: &str) -> String {
    let status = std::fs::read_to_string(format!("{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {pid}/status"))
        .trim()
        .to_string()
}

fn status_mask(pid: &str, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field), 16).unwrap()
}

/// An `nsx run` whose command sleeps: killed and reaped when dropped.
struct Running {
    nsx: Child,
    /// The command's /proc directory, read from the host.
    proc: String,
}

impl Running {
    /// Starts `nsx run ARGS -- sleep 60` and waits until the command is `sleep`.
    fn start(args: &[&str]) -> Running {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend(["--", "sleep", "60"]);
        let nsx_child = spawn(
            nsx()
                .args(&all)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let mut r = Running {
            nsx: nsx_child,
            proc: String::new(),
        };
        let start = Instant::now();
        loop {
            if let Some(p) = children_of(r.nsx.id()).into_iter().find(|p| {
                std::fs::read_to_string(format!("{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
            }) {
                r.proc = p;
                return r;
            }
            if let Some(s) = r.nsx.try_wait().unwrap() {
                let mut err = String::new();
                let _ = r.nsx.stderr.take().unwrap().read_to_string(&mut err);
                panic!("nsx {all:?} ended ({s}) before its command slept: {err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nsx {all:?}: no sleep within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> &str {
        self.proc.trim_start_matches("/proc/")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.nsx.kill();
        let _ = self.nsx.wait();
    }
}

fn wait_with_deadline(child: &mut Child, budget: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > budget {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: nsx did not exit within {budget:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// What the host's own world looks like: the capability sets of this test process and
/// of init, its mount count, the names in /dev, and its hostname.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    caps: Vec<(String, String)>,
    mounts: usize,
    dev: BTreeSet<String>,
    hostname: String,
}

impl HostState {
    fn read() -> HostState {
        let mut caps = Vec::new();
        for pid in ["/proc/self", "/proc/1"] {
            for f in [
                "CapInh",
                "CapPrm",
                "CapEff",
                "CapBnd",
                "CapAmb",
                "NoNewPrivs",
            ] {
                caps.push((format!("{pid} {f}"), status_field(pid, f)));
            }
        }
        HostState {
            caps,
            mounts: std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .count(),
            dev: std::fs::read_dir("/dev")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            hostname: hostname(),
        }
    }
}

/// How a path shows in a process's mountinfo (read by the host): the top mount on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// /dev/null bound over it, or a read-only tmpfs.
    Masked,
    /// A mount of its own, read-only.
    ReadOnly,
    /// No mount of its own, or a writable one.
    Open,
}

fn shown(mountinfo: &str, path: &str) -> Shown {
    // proc(5) mountinfo: 4th field the root of the mount, 5th the mount point, 6th the
    // per-mount options; after " - " the file system type.
    let top = mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(path));
    let Some(line) = top else {
        return Shown::Open;
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let fstype = line
        .split_once(" - ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .unwrap_or("");
    let ro = f[5].split(',').any(|o| o == "ro");
    if f[3].ends_with("/null") || (fstype == "tmpfs" && ro) {
        Shown::Masked
    } else if ro {
        Shown::ReadOnly
    } else {
        Shown::Open
    }
}

/// Docker's masked and read-only paths (and /sys) as process `proc` shows them.
fn masks_of(proc: &str) -> BTreeMap<&'static str, Shown> {
    let mi = std::fs::read_to_string(format!("{proc}/mountinfo")).unwrap();
    DOCKER_MASKED
        .iter()
        .chain(DOCKER_READONLY.iter())
        .chain(std::iter::once(&"/sys"))
        .map(|p| (*p, shown(&mi, p)))
        .collect()
}

// ----------------------------------------------------------------- tests

#[test]
fn cap_drop_all_makes_hostname_fail_with_eperm_and_the_host_keeps_its_name() {
    if !privileged("nsx run --cap-drop ALL hostname") {
        return;
    }
    let busybox = crate::inspect::which("busybox").expect("busybox (Debian: busybox-static)");
    let before = hostname();
    // Without --uts the UTS namespace is the host's: only the missing CAP_SYS_ADMIN stands
    // between the command and the host's name. With seccomp=unconfined, it is the only
    // layer left.
    for extra in [
        &[][..],
        &["--uts"][..],
        &["--security-opt", "seccomp=unconfined"][..],
    ] {
        let mut args = vec!["run", "--cap-drop", "ALL"];
        args.extend_from_slice(extra);
        let mut literal = args.clone();
        literal.extend(["--", "/bin/sh", "-c", "hostname nsx-test-x"]);
        let out = run(&literal);
        assert_ne!(out.status.code(), Some(0), "{literal:?}: {}", stderr(&out));
        // busybox names the errno.
        args.extend(["--", busybox.to_str().unwrap(), "hostname", "nsx-test-x"]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(hostname(), before, "{args:?} changed the host's hostname");
    }
    // The control: with the capability (and a UTS namespace, which nsx then requires) the
    // same command succeeds, inside.
    let out = run(&[
        "run",
        "--uts",
        "--mount",
        "--cap-add",
        "sys_admin",
        "--",
        busybox.to_str().unwrap(),
        "hostname",
        "nsx-test-x",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(hostname(), before);
}

#[test]
fn why_names_cap_sys_admin_for_sethostname_in_a_cap_drop_all_container() {
    if !privileged("nsx run --cap-drop ALL + nsx why") {
        return;
    }
    let c = Running::start(&["--cap-drop", "ALL"]);
    assert_eq!(status_mask(&c.proc, "CapEff"), 0);
    assert_eq!(status_mask(&c.proc, "CapBnd"), 0);
    let out = run(&["why", c.pid(), "sethostname", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let caps = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "capabilities")
        .unwrap_or_else(|| panic!("no capabilities layer: {v:#}"));
    assert_eq!(caps["judgement"], "refuses", "{v:#}");
    assert!(
        caps["why"].as_str().unwrap().contains("CAP_SYS_ADMIN"),
        "{v:#}"
    );
}

#[test]
fn bad_security_flags_are_refused_before_anything_starts() {
    if !privileged("nsx run bad security flags") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        format!("seccomp={}", p.display())
    };
    let malformed = profile("malformed.json", "{\"defaultAction\": ");
    let unknown_call = profile(
        "unknown.json",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nsx_no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let kills_setup = profile(
        "kills.json",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["capset"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    let blocks_exec = profile(
        "noexec.json",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["execve"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let witness = dir.path().join("ran");
    let touch = format!("touch {}", witness.display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--cap-add", "NET_ADMINN"], "unknown capability"),
        (vec!["--cap-drop", "cap_nothing"], "unknown capability"),
        (
            vec!["--security-opt", "nonsense"],
            "unknown security option",
        ),
        (vec!["--security-opt", "apparmor=x"], "does not take"),
        (
            vec!["--security-opt", "no-new-privileges=maybe"],
            "true or false",
        ),
        (vec!["--security-opt", &malformed], "malformed.json"),
        (vec!["--security-opt", &unknown_call], "nsx_no_such_call"),
        (vec!["--security-opt", &kills_setup], "capset"),
        (vec!["--security-opt", &blocks_exec], "execve"),
        (vec!["--cap-add", "SYS_ADMIN"], "--uts"),
        (vec!["--uts", "--cap-add", "SYS_ADMIN"], "--mount"),
        (vec!["--uts", "--mount", "--privileged"], "--pid"),
        (vec!["--uts", "--mount", "--pid", "--privileged"], "--net"),
        (
            vec!["--pid", "--cap-add", "sys_boot", "--cap-add", "SYS_ADMIN"],
            "--uts",
        ),
        (
            vec![
                "--all",
                "--privileged",
                "--security-opt",
                "seccomp=/nonexistent.json",
            ],
            "--privileged",
        ),
    ];
    let before = HostState::read();
    for (flags, why) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(&flags);
        args.extend(["--", "sh", "-c", &touch]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        assert!(!witness.exists(), "{args:?}: the command ran");
    }
    assert_eq!(HostState::read(), before);
}

#[test]
fn the_defaults_and_each_flag_show_in_the_commands_status_and_mounts() {
    if !privileged("nsx run security defaults") {
        return;
    }
    let (_d, root) = busybox_rootfs();
    let bounding = status_mask("/proc/self", "CapBnd");
    let rootfs = [
        "--pid",
        "--mount",
        "--uts",
        "--net",
        "--rootfs",
        root.to_str().unwrap(),
    ];
    // The defaults: Docker's 14, the default profile's filters, no no_new_privs, masks.
    let c = Running::start(&rootfs);
    assert_eq!(status_mask(&c.proc, "CapEff"), 0xa804_25fb & bounding);
    assert_eq!(status_field(&c.proc, "Seccomp"), "2");
    assert_ne!(status_field(&c.proc, "Seccomp_filters"), "0");
    assert_eq!(status_field(&c.proc, "NoNewPrivs"), "0");
    let masks = masks_of(&c.proc);
    for p in DOCKER_READONLY.iter().chain(std::iter::once(&"/sys")) {
        if Path::new(p).exists() {
            assert_eq!(masks[p], Shown::ReadOnly, "{p}: {masks:?}");
        }
    }
    for p in DOCKER_MASKED {
        if Path::new(p).exists() {
            assert_eq!(masks[p], Shown::Masked, "{p}: {masks:?}");
        }
    }
    drop(c);
    // no-new-privileges and seccomp=unconfined.
    let mut args = rootfs.to_vec();
    args.extend(["--security-opt", "no-new-privileges"]);
    let c = Running::start(&args);
    assert_eq!(status_field(&c.proc, "NoNewPrivs"), "1");
    assert_eq!(status_field(&c.proc, "Seccomp"), "2");
    drop(c);
    let mut args = rootfs.to_vec();
    args.extend(["--security-opt", "seccomp=unconfined"]);
    let c = Running::start(&args);
    assert_eq!(status_field(&c.proc, "Seccomp"), "0");
    assert_eq!(status_mask(&c.proc, "CapEff"), 0xa804_25fb & bounding);
    drop(c);
    // --privileged: every capability nsx has, no filter, no masks, a writable /sys.
    let mut args = rootfs.to_vec();
    args.push("--privileged");
    let c = Running::start(&args);
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_mask(&c.proc, f), bounding, "{f}");
    }
    assert_eq!(status_field(&c.proc, "Seccomp"), "0");
    let masks = masks_of(&c.proc);
    assert!(
        masks.values().all(|s| *s == Shown::Open),
        "--privileged masks nothing: {masks:?}"
    );
    // ... and the host's devices stay out: the same small /dev.
    let dev: BTreeSet<String> = std::fs::read_dir(format!("{}/root/dev", c.proc))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        dev.contains("null")
            && !dev.iter().any(|d| d.starts_with("sd")
                || d == "mem"
                || d.starts_with("vd")
                || d.starts_with("nvme")),
        "{dev:?}"
    );
    drop(c);
    // --cap-add and --cap-drop on top of the default set.
    let mut args = rootfs.to_vec();
    args.extend(["--cap-drop", "chown", "--cap-add", "CAP_SYS_PTRACE"]);
    let c = Running::start(&args);
    assert_eq!(
        status_mask(&c.proc, "CapEff"),
        ((0xa804_25fb & !1) | 1 << 19) & bounding
    );
}

#[test]
fn runc_is_the_referee_for_the_default_capabilities_and_masked_paths() {
    if !privileged("nsx run against runc") {
        return;
    }
    // runc, from a config.json listing Docker's capabilities, masked and read-only paths
    // and no no_new_privs (Docker's defaults).
    let masked: Vec<&str> = DOCKER_MASKED.to_vec();
    let runc = Container::start_with("-referee", |config| {
        let caps = serde_json::json!(DOCKER_CAPS);
        config["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps,
        });
        config["process"]["noNewPrivileges"] = Value::Bool(false);
        config["linux"]["maskedPaths"] = serde_json::json!(masked);
        config["linux"]["readonlyPaths"] = serde_json::json!(DOCKER_READONLY);
    });
    let runc_proc = format!("/proc/{}", runc.pid);
    let (_d, root) = busybox_rootfs();
    let nsx_c = Running::start(&[
        "--pid",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--rootfs",
        root.to_str().unwrap(),
    ]);
    for f in [
        "CapEff",
        "CapBnd",
        "CapPrm",
        "CapInh",
        "CapAmb",
        "NoNewPrivs",
    ] {
        assert_eq!(
            status_field(&nsx_c.proc, f),
            status_field(&runc_proc, f),
            "{f}: nsx {} and runc {}",
            nsx_c.proc,
            runc_proc
        );
    }
    let (ours, theirs) = (masks_of(&nsx_c.proc), masks_of(&runc_proc));
    assert_eq!(ours, theirs, "masked and read-only paths: nsx, then runc");
    // Not vacuous: runc did mask and freeze something on this kernel.
    assert!(theirs.values().any(|s| *s == Shown::Masked), "{theirs:?}");
    assert!(theirs.values().any(|s| *s == Shown::ReadOnly), "{theirs:?}");
    // nsx inspect decodes the same for both.
    for (proc, want) in [(&nsx_c.proc, &ours), (&runc_proc, &theirs)] {
        let pid = proc.trim_start_matches("/proc/");
        let out = run(&["inspect", pid, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let shown: BTreeMap<String, String> = v["masked_paths"]
            .as_array()
            .unwrap_or_else(|| panic!("no masked_paths: {v:#}"))
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap().to_string(),
                    p["shown"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (path, s) in want.iter() {
            let name = match s {
                Shown::Masked => "masked",
                Shown::ReadOnly => "read_only",
                Shown::Open => "open",
            };
            assert_eq!(shown[*path], name, "nsx inspect {pid}: {path}");
        }
        assert_eq!(v["no_new_privs"], false);
    }
}

#[test]
fn the_host_is_the_same_after_runs_with_each_flag_also_when_interrupted() {
    if !privileged("nsx run security host safety") {
        return;
    }
    let (d, root) = busybox_rootfs();
    let r = root.to_str().unwrap();
    let profile = d.path().join("no-hostname.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let seccomp_file = format!("seccomp={}", profile.display());
    let contained = ["--pid", "--mount", "--uts", "--net", "--ipc"];
    let with = |extra: &[&str]| -> Vec<String> {
        contained
            .iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let flag_sets: Vec<Vec<String>> = vec![
        vec![],
        vec!["--cap-drop".into(), "ALL".into()],
        vec!["--security-opt".into(), "no-new-privileges".into()],
        vec!["--security-opt".into(), "seccomp=unconfined".into()],
        with(&[]),
        with(&["--cap-add", "SYS_ADMIN"]),
        with(&["--privileged"]),
        with(&["--privileged", "--rootfs", r]),
        with(&["--rootfs", r]),
        with(&["--cap-add", "SYS_ADMIN", "--security-opt", &seccomp_file]),
    ];
    // What a root in a container would try: the hostname, a mount, and with a rootfs a
    // device node in its /dev. (Without a rootfs the command works in the host's file
    // system, as root: nsx does not claim to keep it from the host's files.)
    let attempt = |flags: &[String]| {
        let mut a =
            "hostname nsx-test-evil 2>/dev/null; mount -t tmpfs nsx-test-evil /mnt 2>/dev/null; "
                .to_string();
        if flags.iter().any(|f| f == "--rootfs") {
            a.push_str("mknod /dev/nsx-test-evil c 1 3 2>/dev/null; ");
        }
        a.push_str("echo ready");
        a
    };
    let before = HostState::read();
    for flags in &flag_sets {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(flags.iter().map(String::as_str));
        let script = attempt(flags);
        args.extend(["--", "sh", "-c", &script]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(HostState::read(), before, "after {args:?}");
    }
    // Interrupted while the container lives: SIGINT and SIGTERM to nsx (again until it
    // ends: a PID 1 without a handler drops the first).
    for (i, flags) in flag_sets.iter().enumerate() {
        let sig = if i % 2 == 0 {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        let mut args: Vec<&str> = vec!["run"];
        args.extend(flags.iter().map(String::as_str));
        let script = format!("{}; exec sleep 60", attempt(flags));
        args.extend(["--", "sh", "-c", &script]);
        let mut child = spawn(
            nsx()
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut out = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 64];
        while !seen.contains("ready") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "{args:?}: no ready");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let kids = children_of(child.id());
        assert_eq!(kids.len(), 1, "{args:?}: {kids:?}");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            signal(child.id(), sig);
            assert!(start.elapsed() < Duration::from_secs(10), "{args:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = wait_with_deadline(&mut child, Duration::from_secs(10), "interrupted");
        assert!(
            !Path::new(&kids[0]).exists(),
            "{args:?}: the container outlived nsx"
        );
        assert_eq!(HostState::read(), before, "after {args:?} and signal {sig}");
    }
}

#[test]
fn rootless_the_container_root_gets_the_same_defaults_in_its_user_namespace() {
    if !privileged("nsx run security defaults as uid 4242") {
        return;
    }
    let (_d, exe) = copy_binary("nsx");
    let probe = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; grep -c . /proc/self/mountinfo";
    let fields = |args: &[&str]| -> BTreeMap<String, String> {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend(["--", "sh", "-c", probe]);
        let out = run_as_user(&exe, &all);
        assert_eq!(out.status.code(), Some(0), "{all:?}: {}", stderr(&out));
        let text = stdout(&out);
        let mut m: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        m.insert("mounts".into(), text.lines().last().unwrap().to_string());
        m
    };
    // In the user namespace nsx makes for uid 4242: Docker's 14 and the default profile,
    // and the masks with a fresh /proc.
    let with = fields(&["--pid", "--mount"]);
    assert_eq!(with["CapEff"], "00000000a80425fb", "{with:?}");
    assert_eq!(with["CapBnd"], "00000000a80425fb", "{with:?}");
    assert_eq!(with["Seccomp"], "2", "{with:?}");
    assert_eq!(with["NoNewPrivs"], "0", "{with:?}");
    let without = fields(&["--pid", "--mount", "--privileged"]);
    assert_eq!(without["Seccomp"], "0", "{without:?}");
    let (a, b): (usize, usize) = (
        with["mounts"].parse().unwrap(),
        without["mounts"].parse().unwrap(),
    );
    assert!(
        a > b,
        "the masks are mounts: {a} with, {b} with --privileged"
    );
    // Without namespaces the command is uid 4242 itself: no capabilities to change.
    let out = run_as_user(&exe, &["run", "--cap-drop", "ALL", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let nnp = fields(&["--security-opt", "no-new-privileges"]);
    assert_eq!(nnp["NoNewPrivs"], "1", "{nnp:?}");
}
