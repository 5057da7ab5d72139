//! `nsx inspect` and `nsx ps` against a real container started by runc, checked against
//! util-linux's `lsns`; and their answers to bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::*;

/// A runc container, killed and deleted on drop (also when the test fails).
pub(crate) struct Container {
    id: String,
    bundle: tempfile::TempDir,
    pub(crate) pid: i32,
}

impl Container {
    /// A busybox `sleep 30` in a bundle of its own, with memory, CPU and pids limits.
    fn start() -> Container {
        Container::start_with("", |config| {
            config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 64 << 20});
            config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 32});
            config["linux"]["resources"]["cpu"] =
                serde_json::json!({"quota": 50000, "period": 100000});
        })
    }

    /// A busybox `sleep 30` in a bundle of its own, from `runc spec`'s config.json
    /// changed by `edit`; `tag` tells apart two containers of one test process.
    pub(crate) fn start_with(tag: &str, edit: impl FnOnce(&mut Value)) -> Container {
        let bundle = tempfile::Builder::new()
            .prefix("nsx-test-runc")
            .tempdir()
            .expect("tempdir");
        let root = bundle.path().join("rootfs");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let busybox =
            which("busybox").expect("busybox (Debian: busybox-static; .ci/run installs it)");
        // Executed by the container's init as soon as runc starts it.
        copy_executable(&busybox, &bin.join("busybox"));
        // Applet links relative to the rootfs: an absolute link would name the host's file.
        for applet in ["sleep", "sh"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let id = format!("nsx-test-{}{tag}", std::process::id());
        let spec = Command::new("runc")
            .arg("spec")
            .current_dir(bundle.path())
            .output()
            .expect("runc (Debian: runc; .ci/run installs it)");
        assert!(spec.status.success(), "runc spec: {}", stderr(&spec));
        let path = bundle.path().join("config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = serde_json::json!(["sleep", "30"]);
        config["linux"]["cgroupsPath"] = Value::String(format!("/{id}"));
        edit(&mut config);
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

        let pid_file = bundle.path().join("pid");
        let mut c = Container { id, bundle, pid: 0 };
        // Detached, so runc returns once the container runs; its stdio must not be our
        // pipes, or waiting for runc's output would wait for the container.
        let status = Command::new("runc")
            .args(["run", "--detach", "--pid-file"])
            .arg(&pid_file)
            .arg(&c.id)
            .current_dir(c.bundle.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("runc run");
        assert!(status.success(), "runc run --detach {}: {status}", c.id);
        c.pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The pid file names runc's init, which execs `sleep` once started: wait for the
        // exec so the command name is the container's (the namespaces are set already).
        let comm = format!("/proc/{}/comm", c.pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(&comm).map_or(true, |s| s.trim() != "sleep") {
            assert!(
                std::time::Instant::now() < deadline,
                "the container's init did not exec sleep within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        c
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn json_of(args: &[&str]) -> Value {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nsx {args:?}: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `lsns -J -p PID`: the namespaces of PID by type.
///
/// lsns reads every process in /proc before it filters by PID, and util-linux 2.38 gives
/// up silently (exit 1, no message) when one of them exits in the middle, which other
/// tests running lessons in parallel make likely: a few attempts, then fail for real.
fn lsns(pid: i32) -> BTreeMap<String, u64> {
    let attempt = || {
        Command::new("lsns")
            .args(["-J", "-p", &pid.to_string()])
            .output()
            .expect("lsns (util-linux)")
    };
    let mut out = attempt();
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        out = attempt();
    }
    assert!(
        out.status.success(),
        "lsns -J -p {pid}: {}: {}{}",
        out.status,
        stderr(&out),
        stdout(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            // util-linux prints the inode as a number; some versions as a string.
            let inode = n["ns"]
                .as_u64()
                .or_else(|| n["ns"].as_str()?.parse().ok())
                .unwrap();
            (n["type"].as_str().unwrap().to_string(), inode)
        })
        .collect()
}

#[test]
fn inspect_agrees_with_lsns_on_a_runc_container() {
    if !privileged("inspect against runc") {
        return;
    }
    let c = Container::start();
    let report = json_of(&["inspect", &c.pid.to_string(), "--format", "json"]);
    let ours: BTreeMap<String, u64> = report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["inode"].as_u64().unwrap(),
            )
        })
        .collect();
    let theirs = lsns(c.pid);
    assert!(theirs.len() >= 7, "lsns saw {theirs:?}");
    assert_eq!(ours, theirs, "nsx inspect and lsns -p {}", c.pid);

    // runc's default spec isolates pid, net, ipc, uts and mnt, and not user or cgroup.
    let differs: Vec<&str> = report["differs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for ty in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(differs.contains(&ty), "{ty} in {differs:?}");
    }
    assert!(!differs.contains(&"user"), "{differs:?}");
    assert_eq!(report["nspid"][1], 1, "sleep is PID 1 inside: {report:#}");
    assert_eq!(report["name"], "sleep");

    // The cgroup runc made, and the limits it wrote there.
    let cgroups = report["cgroups"].as_array().unwrap();
    let path = format!("/{}", c.id);
    assert!(
        cgroups.iter().any(|g| g["path"] == path.as_str()),
        "{cgroups:#?}"
    );
    let limits: BTreeMap<String, String> = cgroups
        .iter()
        .flat_map(|g| g["limits"].as_array().unwrap().iter())
        .map(|l| {
            (
                l["file"].as_str().unwrap().to_string(),
                l["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: &[(&str, &str)] = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        &[
            ("memory.max", "67108864"),
            ("pids.max", "32"),
            ("cpu.max", "50000 100000"),
        ]
    } else {
        &[
            ("memory.limit_in_bytes", "67108864"),
            ("pids.max", "32"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpu.cfs_period_us", "100000"),
        ]
    };
    for (file, value) in expected {
        assert_eq!(
            limits.get(*file).map(String::as_str),
            Some(*value),
            "{file}: {limits:?}"
        );
    }
    let caps = report["capabilities"]["effective"]["names"].to_string();
    assert!(
        caps.contains("kill") && !caps.contains("sys_admin"),
        "runc's default capabilities: {caps}"
    );

    // The human form says the same.
    let text = stdout(&run(&["inspect", &c.pid.to_string()]));
    let summary = format!("{} of {} differ from nsx's", differs.len(), ours.len());
    assert!(text.contains(&summary), "{summary}: {text}");
    assert!(
        text.contains(&format!("≠ pid:[{}]", theirs["pid"])),
        "{text}"
    );

    // nsx ps: the container is a group of its own, holding only its process.
    let ps = json_of(&["ps", "--format", "json"]);
    let groups = ps["groups"].as_array().unwrap();
    let mine: Vec<&Value> = groups
        .iter()
        .filter(|g| {
            g["processes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["pid"] == c.pid)
        })
        .collect();
    assert_eq!(mine.len(), 1, "{ps:#}");
    let g = mine[0];
    assert_eq!(g["processes"].as_array().unwrap().len(), 1, "{g:#}");
    assert_eq!(g["ns"]["pid"], theirs["pid"]);
    assert_eq!(g["ns"]["net"], theirs["net"]);
    assert_ne!(
        groups[0]["processes"][0]["pid"], c.pid,
        "the first group is nsx's own"
    );
    assert!(groups[0]["differs"].as_array().unwrap().is_empty());
    let human = stdout(&run(&["ps"]));
    assert!(
        human.contains(&format!("PID {} sleep (PID 1 inside)", c.pid)),
        "{human}"
    );
    drop(c);
}

#[test]
fn a_pid_that_does_not_exist_is_exit_1() {
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = (1..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let out = run(&["inspect", &pid.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("no process with PID {pid}")),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_zombie_is_exit_1_saying_it_exited() {
    // The child exits at once and stays a zombie until this test waits for it.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    for _ in 0..200 {
        if std::fs::read_to_string(&status).is_ok_and(|s| s.contains("State:\tZ")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = run(&["inspect", &pid.to_string()]);
    child.wait().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("zombie"), "{}", stderr(&out));
}

#[test]
fn bad_pids_are_usage_errors() {
    for bad in ["abc", "0", "-5", "1.5", ""] {
        let out = run(&["inspect", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    assert_eq!(run(&["inspect"]).status.code(), Some(2));
}

#[test]
fn another_users_process_without_permission_is_exit_77_with_the_fix() {
    if !privileged("inspect as another user") {
        return;
    }
    // This test process belongs to root; an unprivileged nsx may not read its namespaces.
    let (_dir, exe) = copy_binary("nsx");
    let out = run_as_user(&exe, &["inspect", &std::process::id().to_string()]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("EACCES") || e.contains("EPERM"), "{e}");
    assert!(
        e.contains(&format!(
            "fix: run it as root: sudo nsx inspect {}",
            std::process::id()
        )),
        "{e}"
    );
}

#[test]
fn ps_lists_this_test_process_with_nsx() {
    let ps = json_of(&["ps", "--format", "json"]);
    let me = std::process::id() as u64;
    let first = &ps["groups"][0];
    assert!(first["differs"].as_array().unwrap().is_empty());
    assert!(
        first["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == me),
        "the test shares nsx's namespaces: {first:#}"
    );
}
