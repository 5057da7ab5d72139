//! Running nsx, gating privileged tests, and making output stable for snapshots.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn nsx() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsx"));
    // The user lesson acts for the user who ran sudo (SUDO_UID), whose /etc/subuid ranges
    // differ from machine to machine; without it, nsx as root acts for nobody.
    cmd.env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    nsx().args(args).output().expect("run nsx")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Held by every test that runs the cpu lesson or times something (the cost lesson).
///
/// The cpu lesson's probe spins one CPU for half a second at the highest weight, as it
/// should: that is what makes its comparison hold on a busy machine. Several at once
/// (or one beside a timing lesson) would starve the rest of this 2-core machine and
/// turn other tests' timings into noise; one at a time, they leave a core free.
static CPU_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn cpu_heavy() -> std::sync::MutexGuard<'static, ()> {
    CPU_HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test may run; prints why it skips otherwise. Under
/// NSX_REQUIRE_PRIVILEGED=1 (set by .ci/run) a skip is a failure.
pub fn privileged(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!("{test}: skipped, it needs root (run the tests with sudo to include it)");
    if std::env::var("NSX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and NSX_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("{why}");
    false
}

/// Runs `nsx args` as root in a mount namespace of its own (unshare(1): this test
/// process never unshares) where every cgroup file system is remounted read-only, as
/// in a container: the host's mounts are untouched.
pub fn on_read_only_cgroupfs(args: &[&str]) -> Output {
    const SCRIPT: &str = r#"set -e
mount --make-rprivate /
for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do mount -o remount,bind,ro "$m"; done
exec "$@""#;
    Command::new("unshare")
        .args(["-m", "sh", "-c", SCRIPT, "sh", env!("CARGO_BIN_EXE_nsx")])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .output()
        .expect("unshare -m nsx")
}

/// Every lesson this build has, in curriculum order (`nsx lessons --format json`).
pub fn lesson_ids() -> Vec<String> {
    let out = run(&["lessons", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "nsx lessons: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON list");
    v.as_array()
        .expect("a JSON list")
        .iter()
        .map(|l| l["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Runs `nsx lesson <id> --format json` and returns the report, asserting exit 0.
pub fn lesson_json(id: &str, extra: &[&str]) -> Value {
    let mut args = vec!["lesson", id, "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nsx lesson {id}: stderr:\n{}\nstdout:\n{}",
        stderr(&out),
        stdout(&out)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON report")
}

/// Asserts the report is ok and has every named fact, holding.
pub fn assert_facts(report: &Value, names: &[&str]) {
    let facts = report["facts"].as_array().expect("facts array");
    for name in names {
        let fact = facts
            .iter()
            .find(|f| f["id"] == *name)
            .unwrap_or_else(|| panic!("missing fact {name}: {report:#}"));
        assert_eq!(fact["holds"], true, "fact {name} does not hold: {fact:#}");
    }
    assert_eq!(report["ok"], true, "report not ok: {report:#}");
    assert!(facts.iter().all(|f| f["holds"] == true));
}

/// `nsx4242h` / `nsx4242c`: the veth ends of an nsx run (pid 4242).
pub fn is_nsx_veth(name: &str) -> bool {
    regex::Regex::new(r"^nsx\d+[hc]$").unwrap().is_match(name)
}

/// A private copy of the binary, world-executable, for runs as another user or under a
/// name of its own.
pub fn copy_binary(name: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("nsx-test-bin")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join(name);
    copy_executable(std::path::Path::new(env!("CARGO_BIN_EXE_nsx")), &path);
    (dir, path)
}

/// Copies the program `from` to `to`, mode 0755, so that it can be executed at once.
///
/// A `cp` child writes the copy: this process never holds a descriptor open for writing
/// on it. Such a descriptor (even O_CLOEXEC) is inherited by every child another test
/// thread forks while it is open, and execve(2) of the file fails with ETXTBSY until
/// each of those children has exec'd or exited, which a starved child on a loaded
/// machine may take longer to do than any retry waits.
pub fn copy_executable(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    // (status(), not output(): a pipe's write end would also be inherited by children
    // forked meanwhile, and reading to its end would wait for them.)
    let status = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cp (coreutils)");
    assert!(
        status.success(),
        "cp {} {}: {status} (its message is above)",
        from.display(),
        to.display()
    );
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Spawns `cmd`, retrying while the kernel says ETXTBSY (a program this process wrote
/// is still open for writing in a child forked meanwhile; [`copy_executable`] leaves no
/// such descriptor, so its copies never need this).
pub fn spawn(cmd: &mut std::process::Command) -> std::process::Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.expect("spawn"),
        }
    }
    panic!("spawn: ETXTBSY for a whole second")
}

/// Spawns the command `make` builds and waits for it, and again while it ends with exit
/// 126 "Text file busy": a wrapper such as setpriv execs the program itself, so spawn()'s
/// retry does not cover it. (Only a program written through a descriptor of this process
/// can be busy; [`copy_binary`]'s copies are not.)
pub fn output_retrying_busy(mut make: impl FnMut() -> std::process::Command) -> Output {
    let mut out = spawn(&mut make()).wait_with_output().expect("wait");
    for _ in 0..100 {
        if !(out.status.code() == Some(126) && stderr(&out).contains("Text file busy")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        out = spawn(&mut make()).wait_with_output().expect("wait");
    }
    out
}

/// An unprivileged uid (and gid) for the tests; setpriv switches to it without an account.
pub const TEST_UID: &str = "4242";

/// Runs `exe args` as uid and gid [`TEST_UID`] with no supplementary groups (setpriv,
/// util-linux), from "/" and with NO_COLOR set, and waits for it.
pub fn run_as_user(exe: &Path, args: &[&str]) -> Output {
    output_retrying_busy(|| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            TEST_UID,
            "--regid",
            TEST_UID,
            "--clear-groups",
            "--",
        ])
        .arg(exe)
        .args(args)
        .current_dir("/")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    })
}

// ------------------------------------------------------------------ what runs leave behind

/// The PID in a name nsx gives what it creates, `nsx-<pid>-<what>` (temp directories,
/// cgroup directories).
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix("nsx-")?.split('-').next()?.parse().ok()
}

/// PIDs of live processes running `exe`.
pub fn processes_of(exe: &Path) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read_link(e.path().join("exe")).ok()? == exe).then_some(pid)
        })
        .collect()
}

/// [`processes_of`] `exe`, polled until none is left or `within` has passed: the
/// processes still running then.
pub fn wait_for_no_process_of(exe: &Path, within: Duration) -> BTreeSet<u32> {
    let deadline = Instant::now() + within;
    loop {
        let running = processes_of(exe);
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes whose parent is `pid` (what an nsx run could have left behind), as their
/// /proc directories.
pub fn children_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .to_string();
            (ppid == pid.to_string()).then(|| e.path().display().to_string())
        })
        .collect()
}

/// nsx-<pid>-* directories in the temp dir whose <pid> is one of `pids`.
pub fn temp_dirs_of(pids: &BTreeSet<u32>) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            owner_pid(&name)
                .is_some_and(|p| pids.contains(&p))
                .then_some(name)
        })
        .collect()
}

/// cgroup directories named nsx-<pid>-* for one of `pids`, at any depth of every
/// hierarchy under /sys/fs/cgroup.
pub fn cgroups_of(pids: &BTreeSet<u32>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            // Not followed: symlinks (cpu -> cpu,cpuacct) lead to hierarchies listed
            // anyway.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some_and(|p| pids.contains(&p)) {
                found.push(e.path());
            }
            stack.push(e.path());
        }
    }
    found
}

/// System V objects in this test's IPC namespace (the host's) that an nsx run left
/// behind: a key of nsx's (`0x6e` and a set bit, then random bits: no run can be told
/// from its key) whose creating process is gone (the segment's cpid; the queue's last
/// sender, or while it is empty the creator of the segment with the same key). A live
/// run keeps its probe unreaped until it has removed the probe's objects, so an object
/// of a live run always has its creator in /proc.
pub fn ipc_orphans() -> Vec<String> {
    ipc_orphans_in(
        &std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default(),
        &std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default(),
        &|key| key as u32 & 0xff80_0000 == 0x6e80_0000,
    )
}

/// The orphans in the tables `shm` and `msg` (as /proc/sysvipc shows them) whose key
/// `nsx` accepts.
pub fn ipc_orphans_in(shm: &str, msg: &str, nsx: &dyn Fn(i64) -> bool) -> Vec<String> {
    let rows = |text: &str| -> Vec<std::collections::HashMap<String, String>> {
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split_whitespace().map(String::from))
                    .collect()
            })
            .collect()
    };
    let num = |r: &std::collections::HashMap<String, String>, k: &str| -> i64 {
        r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let present = |pid: i64| pid > 0 && Path::new(&format!("/proc/{pid}")).exists();
    let segments = rows(shm);
    let mut found = Vec::new();
    for r in &segments {
        if nsx(num(r, "key")) && !present(num(r, "cpid")) {
            found.push(format!("shm: {r:?}"));
        }
    }
    for r in rows(msg) {
        let key = num(&r, "key");
        if !nsx(key) {
            continue;
        }
        let creator = match num(&r, "lspid") {
            0 => segments
                .iter()
                .find(|s| num(s, "key") == key)
                .map_or(0, |s| num(s, "cpid")),
            pid => pid,
        };
        if !present(creator) {
            found.push(format!("msg: {r:?}"));
        }
    }
    found
}

/// Host ends `nsx<pid>h` of the veth pairs of `pids` still in this test's network
/// namespace (the host's).
pub fn veths_of(pids: &BTreeSet<u32>) -> Vec<String> {
    pids.iter()
        .map(|pid| format!("nsx{pid}h"))
        .filter(|name| Path::new("/sys/class/net").join(name).exists())
        .collect()
}

/// Everything named after the runs `pids` that nsx creates: temp directories, cgroup
/// directories, veth ends; and System V IPC objects any nsx run left ([`ipc_orphans`]:
/// their keys do not name a run).
pub fn leftovers_of(pids: &BTreeSet<u32>) -> Vec<String> {
    let mut left = temp_dirs_of(pids);
    left.extend(cgroups_of(pids).iter().map(|d| d.display().to_string()));
    left.extend(veths_of(pids));
    left.extend(ipc_orphans());
    left
}

/// Sends `sig` to `pid`, a child this test spawned and has not reaped (so the PID is
/// still its, even if it has exited).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory preconditions.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A pseudo-terminal for nsx's standard input, so that --step pauses: the master end
/// (keep it open) and the slave end to hand to the child.
pub fn pty() -> (std::fs::File, Stdio) {
    let (master, slave) = pty_fds();
    (master, Stdio::from(slave))
}

/// A pseudo-terminal: its master end and its slave end, both close-on-exec.
pub fn pty_fds() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; the name, termios and winsize are optional.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited by the processes other tests spawn meanwhile (the child's stdin is a
    // dup2 of the slave, which clears the flag there).
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors are new and owned here.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

// ------------------------------------------------------------------ --step on a terminal

/// What nsx prints when it waits at a --step pause, with the keys it takes.
pub const PAUSE_PROMPT: &str = "[Enter: go on";

/// Runs `exe lesson <id> --step` with the slave of a new pty as its standard input (and,
/// with `all_on_terminal`, as its output and error too, as over SSH), optionally as its
/// controlling terminal; returns once it waits at the first pause, with the master end.
pub fn paused_on_a_terminal(
    exe: &Path,
    id: &str,
    controlling: bool,
    all_on_terminal: bool,
) -> (std::process::Child, std::fs::File) {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty fills two descriptors; the name, termios and winsize are optional.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: two new descriptors owned here; close-on-exec so that processes other
    // tests spawn meanwhile do not hold them.
    let (mut master, slave) = unsafe {
        libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
        (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s))
    };
    let mut cmd = Command::new(exe);
    cmd.args(["lesson", id, "--step"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::from(slave.try_clone().unwrap()));
    if all_on_terminal {
        cmd.stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if controlling {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = spawn(&mut cmd);
    drop(slave);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let start = std::time::Instant::now();
    let prompt = |seen: &[u8]| String::from_utf8_lossy(seen).contains(PAUSE_PROMPT);
    while !prompt(&seen) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id}: no pause: {}",
            String::from_utf8_lossy(&seen)
        );
        let n = if all_on_terminal {
            let mut fds = [libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } <= 0 {
                continue;
            }
            master.read(&mut buf).unwrap()
        } else {
            child.stdout.as_mut().unwrap().read(&mut buf).unwrap()
        };
        assert!(n > 0, "{id}: nsx ended before pausing");
        seen.extend_from_slice(&buf[..n]);
    }
    (child, master)
}

/// `nsx lesson ARGS --step` on a pseudo-terminal that is its standard input, output and
/// error, as in a presenter's terminal, driven one pause at a time.
pub struct Presented {
    pub child: Child,
    master: std::fs::File,
    /// Everything printed so far, carriage returns removed.
    pub text: String,
    /// Where the text not yet handed out by [`Presented::next_pause`] begins.
    from: usize,
}

impl Presented {
    pub fn start(exe: &Path, args: &[&str]) -> Presented {
        let (master, slave) = pty_fds();
        let mut cmd = Command::new(exe);
        cmd.arg("lesson")
            .args(args)
            .arg("--step")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        let child = spawn(&mut cmd);
        // Only nsx holds the slave now: its end reads EIO once nsx has gone.
        drop(slave);
        Presented {
            child,
            master,
            text: String::new(),
            from: 0,
        }
    }

    /// Reads what nsx prints for up to `ms`; false once nsx has gone (EOF or EIO on
    /// the master, pty(7)).
    fn read_some(&mut self, ms: i32) -> bool {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut fds = [libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) } <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.text
                    .push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', ""));
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
            Err(e) => panic!("read the terminal: {e}"),
        }
    }

    /// Waits for the next pause: what nsx printed since the last one, up to and with its
    /// prompt; `None` when nsx ended first.
    pub fn next_pause(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.text[self.from..].find(PAUSE_PROMPT) {
                let end = self.from + at + PAUSE_PROMPT.len();
                let chunk = self.text[self.from..end].to_string();
                self.from = end;
                return Some(chunk);
            }
            assert!(
                Instant::now() < deadline,
                "no pause within {within:?}: {}",
                &self.text[self.from..]
            );
            if !self.read_some(100) {
                return None;
            }
        }
    }

    /// Presses `key` once nsx reads the terminal one key at a time (it has turned
    /// ICANON off, termios(3); the master reports the slave's settings).
    pub fn press(&mut self, key: u8) {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: tcgetattr fills a termios for a descriptor we own.
            let raw = unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                libc::tcgetattr(self.master.as_raw_fd(), &mut t) == 0
                    && t.c_lflag & libc::ICANON == 0
            };
            if raw {
                break;
            }
            assert!(Instant::now() < deadline, "nsx never waited for a key");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.master.write_all(&[key]).unwrap();
    }

    /// Reads to the end and waits for nsx: its exit status, and what it printed after
    /// the last pause.
    pub fn finish(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + within;
        while self.read_some(100) {
            assert!(
                Instant::now() < deadline,
                "nsx did not end within {within:?}: {}",
                &self.text[self.from..]
            );
        }
        let status = self.child.wait().unwrap();
        (status, self.text[self.from..].to_string())
    }
}

/// The commands a pause offers for a second terminal: the `    $ ` lines after "it is
/// still there".
pub fn look_commands(pause: &str) -> Vec<String> {
    pause
        .lines()
        .skip_while(|l| !l.contains("it is still there: look at it from a second terminal"))
        .skip(1)
        .map_while(|l| l.strip_prefix("    $ "))
        .map(str::to_string)
        .collect()
}

/// Spawns `exe lesson ARGS` with its standard output and error piped.
pub fn spawn_lesson(exe: &Path, args: &[&str]) -> Child {
    spawn(
        Command::new(exe)
            .arg("lesson")
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// The facts of a JSON report that do not hold (or the output itself, when it is not a
/// report), for a failure message.
pub fn failed_facts(stdout: &[u8]) -> String {
    match serde_json::from_slice::<Value>(stdout) {
        Ok(r) => r["facts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["holds"] != true)
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => String::from_utf8_lossy(stdout).into_owned(),
    }
}

/// Runs `exe lesson <id> --format json` `times` times in a row for each of `ids`,
/// asserting that each run succeeds; returns the runs' PIDs.
pub fn lesson_runs_in_turn(exe: &Path, ids: &[&str], times: usize) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for id in ids {
        for _ in 0..times {
            let child = spawn_lesson(exe, &[id, "--format", "json"]);
            pids.insert(child.id());
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "nsx lesson {id} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
        }
    }
    pids
}

/// Starts `n` runs of `exe lesson ARGS --format json` at once and waits for them all,
/// asserting that each succeeds; returns each run's PID and report.
pub fn lesson_runs_at_once(exe: &Path, args: &[&str], n: usize) -> Vec<(u32, Value)> {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let children: Vec<Child> = (0..n).map(|_| spawn_lesson(exe, &args)).collect();
    children
        .into_iter()
        .map(|child| {
            let pid = child.id();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "concurrent nsx lesson {args:?} failed: {}\n{}",
                stderr(&out),
                failed_facts(&out.stdout)
            );
            let report = serde_json::from_slice(&out.stdout).expect("a JSON report");
            (pid, report)
        })
        .collect()
}

/// A lesson as `nsx lessons --format json` describes it.
pub struct LessonInfo {
    pub facts: Vec<String>,
}

pub fn lesson_info(id: &str) -> LessonInfo {
    let out = run(&["lessons", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON list");
    let l = v
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no lesson {id}"));
    LessonInfo {
        facts: l["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect(),
    }
}

/// The shape of a JSON value: every key, and the kind of every value. Values are kept
/// only under the keys that are the same on every machine (ids, titles, labels, files,
/// sides, comparisons, value kinds, verdicts); arrays keep one of each distinct shape.
/// This is the structural redaction: nothing machine-specific can be pinned. A row whose
/// two values drifted apart (read at two moments: a process came, a second ticked) has
/// the shape of one whose values were the same: which of the two a run gets is chance.
pub fn shape(v: &Value) -> Value {
    fn walk(v: &Value, key: &str) -> Value {
        if key == "cmp" && v["is"] == "drift" {
            return serde_json::json!({ "is": "same" });
        }
        const KEPT: &[&str] = &[
            "id",
            "lesson",
            "title",
            "label",
            "file",
            "side",
            "is",
            "kind",
            "privilege",
            "how",
            "mechanism",
        ];
        match v {
            // Two reads of one value that moved between them (`drift`) are, in shape, two
            // reads that agreed: whether another process came or went in between is
            // timing, not structure.
            Value::Object(m) if m.get("is").is_some_and(|is| is == "drift") => {
                serde_json::json!({ "is": "same" })
            }
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, c)| (k.clone(), walk(c, k))).collect())
            }
            Value::Array(a) => {
                let mut seen: Vec<Value> = Vec::new();
                for x in a {
                    let s = walk(x, key);
                    if !seen.contains(&s) {
                        seen.push(s);
                    }
                }
                Value::Array(seen)
            }
            Value::String(_) if KEPT.contains(&key) => v.clone(),
            Value::Bool(_) => v.clone(),
            Value::String(_) => Value::String("<text>".into()),
            Value::Number(_) => Value::String("<number>".into()),
            Value::Null => Value::Null,
        }
    }
    walk(v, "")
}

/// A lesson's human output from its first step on: the header above it says how the
/// run was made (live, or replayed from which file), which a replay must differ in.
pub fn without_run_line(text: &str) -> String {
    match text.find("\nstep 1 · ") {
        Some(i) => text[i..].to_string(),
        None => text.to_string(),
    }
}

/// A JSON report read into the typed `Report` (ripgrep's tests/json.rs: typed, not
/// indexed).
pub fn typed_report(report: &Value) -> nsx::report::Report {
    serde_json::from_value(report.clone()).expect("a Report")
}

/// The step named `id` of a report.
pub fn step_of<'a>(report: &'a nsx::report::Report, id: &str) -> &'a nsx::report::Step {
    report
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {}", report.lesson))
}

/// The row labelled `label` on `side` of a step.
pub fn row_of<'a>(
    step: &'a nsx::report::Step,
    label: &str,
    side: nsx::report::Side,
) -> &'a nsx::report::Row {
    step.rows
        .iter()
        .find(|r| r.label == label && r.side == side)
        .unwrap_or_else(|| panic!("no {side:?} row {label:?} in step {}", step.id))
}
