//! `nsx why`: processes made for the purpose, each refused by one layer, and the verdict
//! names that layer. Each process is a `sleep` this test starts and kills (by its PID).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::common::*;

/// A sleeping process, killed and reaped when dropped.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sleeper {
    fn start(mut cmd: Command) -> Sleeper {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the process");
        // Until it has exec'd sleep, /proc shows the launcher: wait for the name.
        let pid = child.id();
        for _ in 0..200 {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Sleeper(child)
    }

    fn why(&self, args: &[&str]) -> serde_json::Value {
        let pid = self.0.id().to_string();
        let out = nsx()
            .args(["why", &pid])
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn suspects(v: &serde_json::Value) -> Vec<String> {
    v["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn why_a_dropped_capability_is_capabilities() {
    if !privileged("why: dropped capability") {
        return;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--bounding-set",
        "-sys_admin",
        "--inh-caps",
        "-sys_admin",
        "sleep",
        "60",
    ]);
    let p = Sleeper::start(cmd);
    let v = p.why(&["mount"]);
    assert_eq!(suspects(&v), ["capabilities"], "{v:#}");
    let text = v.to_string();
    assert!(text.contains("CAP_SYS_ADMIN"), "{text}");
}

#[test]
fn why_a_seccomp_filter_is_seccomp() {
    if !privileged("why: seccomp filter") {
        return;
    }
    // A filter that refuses mount, built by nsx's library; installed between fork and exec.
    let profile = nsx::security::seccomp::Profile::parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}"#,
        "test",
    )
    .unwrap();
    let ctx = nsx::security::seccomp::Context::native(nsx::caps::ALL).unwrap();
    let filters = profile.resolve(&ctx).compile().unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    // SAFETY: the closure runs in the forked child before exec and only makes prctl(2)
    // and seccomp(2) calls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            filters
                .install(true)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))
        });
    }
    let p = Sleeper::start(cmd);
    let v = p.why(&["mount"]);
    assert_eq!(suspects(&v), ["seccomp"], "{v:#}");
    assert_eq!(v["process"]["seccomp"], 2);
    assert_eq!(v["process"]["seccomp_filters"], 1);
}

#[test]
fn why_a_file_mode_is_the_file() {
    if !privileged("why: file mode") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=4242",
        "--regid=4242",
        "--clear-groups",
        "sleep",
        "60",
    ]);
    let p = Sleeper::start(cmd);
    let v = p.why(&["open", secret.to_str().unwrap()]);
    assert_eq!(suspects(&v), ["file"], "{v:#}");
    assert_eq!(v["file"]["mode"].as_u64().unwrap() & 0o777, 0o600);
    // Root, holding CAP_DAC_OVERRIDE, reads it: nothing refuses.
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let root = Sleeper::start(cmd);
    assert!(suspects(&root.why(&["open", secret.to_str().unwrap()])).is_empty());
}

#[test]
fn why_a_user_namespace_without_the_owner_is_capabilities() {
    if !privileged("why: user namespace") {
        return;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sleep", "60"]);
    let p = Sleeper::start(cmd);
    let v = p.why(&["hostname"]);
    assert_eq!(suspects(&v), ["capabilities"], "{v:#}");
    let caps = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "capabilities")
        .unwrap();
    assert!(
        caps["why"].as_str().unwrap().contains("uts namespace"),
        "{caps:#}"
    );
    // With a UTS namespace of its own, made in its user namespace, nothing refuses.
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--uts", "sleep", "60"]);
    let own = Sleeper::start(cmd);
    assert!(suspects(&own.why(&["hostname"])).is_empty());
}

#[test]
fn why_refuses_unknown_operations_with_exit_2() {
    let out = nsx().args(["why", "1", "frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown operation") && err.contains("mount"),
        "{err}"
    );
    // The alias users may guess.
    let out = nsx().args(["explain-eperm", "--help"]).output().unwrap();
    assert!(out.status.success());
}
