//! `nsx run` as root on a shared machine: what the image may not do (devices, setuid,
//! capabilities, the host's / through /proc), what the command may not leave behind,
//! a relay that cannot be wedged, a PATH search like execvp's, and output that cannot
//! make nsx panic.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

fn wait_with_deadline(
    child: &mut std::process::Child,
    budget: Duration,
    what: &str,
) -> std::process::ExitStatus {
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

/// A mask from /proc/<pid>/status, e.g. `CapEff`.
fn status_mask(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {pid}/status"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// Docker's default capabilities (moby oci/caps/defaults.go): chown dac_override fowner
/// fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod
/// audit_write setfcap.
const DOCKER_DEFAULT_CAPS: u64 = 0xa804_25fb;

/// A pseudo-terminal standing in for the user's: nsx gets the slave as its standard
/// input, output and error (and, as from a login shell, as its controlling terminal);
/// the test types into the master and a thread collects the screen.
struct Terminal {
    master: Option<Arc<std::fs::File>>,
    slave: Option<OwnedFd>,
    screen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn new() -> Terminal {
        let (mut m, mut s) = (0, 0);
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two fds; the name and termios pointers may be null.
        let r =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty");
        // SAFETY: two new descriptors, owned here; close-on-exec so that processes other
        // tests spawn meanwhile do not hold them, and non-blocking so that neither the
        // typist nor the reader can get stuck.
        let (master, slave) = unsafe {
            for fd in [m, s] {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            libc::fcntl(m, libc::F_SETFL, libc::O_NONBLOCK);
            (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s))
        };
        let master = Arc::new(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (master, screen, stop) = (master.clone(), screen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while !stop.load(Ordering::SeqCst) {
                    if !poll(master.as_raw_fd(), libc::POLLIN, 50) {
                        continue;
                    }
                    match (&*master).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => screen.lock().unwrap().extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Terminal {
            master: Some(master),
            slave: Some(slave),
            screen,
            stop,
            reader: Some(reader),
        }
    }

    /// Spawns `nsx ARGS` on this terminal.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let slave = self.slave.as_ref().unwrap();
        let mut cmd = nsx();
        cmd.args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        spawn(&mut cmd)
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn expect(&self, want: &str) {
        let start = Instant::now();
        while !self.screen().contains(want) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {want:?}; the screen: {:?}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A thread that types `data` (then `end`, when given) into the terminal as fast
    /// as it takes it, until done or told to stop; it counts what it got in.
    fn typist(
        &self,
        data: Vec<u8>,
        repeat: bool,
    ) -> (Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
        let master = self.master.clone().unwrap();
        let stop = self.stop.clone();
        let typed = Arc::new(AtomicUsize::new(0));
        let count = typed.clone();
        let handle = std::thread::spawn(move || {
            let mut at = 0;
            while !stop.load(Ordering::SeqCst) {
                if at == data.len() {
                    if !repeat {
                        break;
                    }
                    at = 0;
                }
                if !poll(master.as_raw_fd(), libc::POLLOUT, 50) {
                    continue;
                }
                match (&*master).write(&data[at..]) {
                    Ok(n) => {
                        at += n;
                        count.fetch_add(n, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        });
        (typed, handle)
    }

    /// Closes the terminal's master end: a hang-up, as when an SSH connection drops.
    fn hang_up(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let master = self.master.take().unwrap();
        assert_eq!(
            Arc::strong_count(&master),
            1,
            "a typist still holds the master"
        );
        drop(master);
        self.slave.take();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn poll(fd: i32, events: libc::c_short, millis: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) > 0 }
}

// ----------------------------------------------------------------- 4: what the image may do

#[test]
fn as_root_the_command_has_dockers_default_capabilities() {
    if !privileged("nsx run capabilities") {
        return;
    }
    let (_d, root) = busybox_rootfs();
    let own_bounding = status_mask("/proc/self", "CapBnd");
    let expected = DOCKER_DEFAULT_CAPS & own_bounding;
    let with_rootfs = ["--all", "--rootfs", root.to_str().unwrap()];
    for extra in [&["--pid", "--mount"][..], &[][..], &with_rootfs[..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend(["-i", "--", "sh", "-c", "echo ready; read x || :"]);
        let mut child = spawn(
            nsx()
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut out = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while !seen.contains("ready") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "{args:?}: no ready");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // The container's PID 1 (or the command), read from the host.
        let kids = children_of(child.id());
        assert_eq!(kids.len(), 1, "{args:?}: {kids:?}");
        let pid = &kids[0];
        for (field, want) in [
            ("CapEff", expected),
            ("CapPrm", expected),
            ("CapBnd", expected),
            ("CapInh", 0),
            ("CapAmb", 0),
        ] {
            assert_eq!(
                status_mask(pid, field),
                want,
                "{args:?}: {field} of {pid}: {:#x}, expected {want:#x}",
                status_mask(pid, field)
            );
        }
        drop(child.stdin.take());
        let status = wait_with_deadline(&mut child, Duration::from_secs(10), "caps");
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn a_device_node_in_the_rootfs_cannot_be_opened_but_dev_null_can() {
    if !privileged("nsx run nodev") {
        return;
    }
    let (_d, root) = busybox_rootfs();
    // The host's /dev/null (char 1:3), made in the image as an untrusted image could
    // make /dev/sda.
    let probe = std::ffi::CString::new(root.join("probe").to_str().unwrap()).unwrap();
    // SAFETY: mknod with a valid path.
    let r = unsafe { libc::mknod(probe.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    let script = "echo x > /probe && echo opened-probe; \
                  mknod /dev/made c 1 3 && echo x > /dev/made && echo opened-made; \
                  for d in null zero full random urandom; do : < /dev/$d || echo broken-$d; done; \
                  echo x > /dev/null && head -c 4 /dev/urandom | wc -c";
    let out = run(&[
        "run",
        "--pid",
        "--mount",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    assert_eq!(stdout(&out).trim(), "4", "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("Permission denied").count(),
        2,
        "{}",
        stderr(&out)
    );
    // With a terminal: /dev/tty and /dev/console open too.
    let out = run(&[
        "run",
        "-t",
        "--pid",
        "--mount",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        ": < /dev/tty && : < /dev/console && echo tty-ok",
    ]);
    assert!(stdout(&out).contains("tty-ok"), "{}", stderr(&out));
}

/// A static x86-64 program that exits with its effective uid (mod 256): geteuid(2),
/// then exit(2) with the result. 64-byte ELF header, one PT_LOAD program header, 16
/// bytes of code at 0x400078.
#[cfg(target_arch = "x86_64")]
fn euid_program() -> Vec<u8> {
    let code: [u8; 16] = [
        0xb8, 0x6b, 0, 0, 0, // mov eax, 107 (geteuid)
        0x0f, 0x05, // syscall
        0x89, 0xc7, // mov edi, eax
        0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
        0x0f, 0x05, // syscall
    ];
    let size = (64 + 56 + code.len()) as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&0x400078u64.to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers at 64
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R + X
    for word in [0u64, 0x400000, 0x400000, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&code);
    assert_eq!(elf.len() as u64, size);
    elf
}

#[cfg(target_arch = "x86_64")]
fn install_setuid_root(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, euid_program()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o4755)).unwrap();
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_setuid_root_program_in_the_rootfs_does_not_make_a_user_root() {
    if !privileged("nsx run nosuid") {
        return;
    }
    // The control: on the host, the program does what it says (uid 4242 runs it and
    // its effective uid is 0), where the test's temp dir allows setuid at all.
    let host = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let exe = host.path().join("euid");
    install_setuid_root(&exe);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(host.path().to_str().unwrap()).unwrap();
    // SAFETY: statvfs fills one struct.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    if st.f_flag & libc::ST_NOSUID == 0 {
        let out = output_retrying_busy(|| {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid", TEST_UID, "--regid", TEST_UID, "--clear-groups"])
                .arg(&exe);
            cmd
        });
        assert_eq!(out.status.code(), Some(0), "the control: setuid works here");
    }
    // Inside: root becomes nobody (su, as root, asks no password) and runs the same
    // program from the rootfs, where setuid bits are ignored: its euid stays 65534.
    let (_d, root) = busybox_rootfs();
    install_setuid_root(&root.join("euid"));
    let out = run(&[
        "run",
        "--pid",
        "--mount",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "/bin/su",
        "-s",
        "/euid",
        "nobody",
    ]);
    assert_eq!(
        out.status.code(),
        Some(65534 % 256),
        "the setuid program ran as euid {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
}

// ----------------------------------------------------------------- 14: the host's / via /proc

#[test]
fn a_rootfs_without_a_pid_namespace_is_refused() {
    let d = tempfile::tempdir().unwrap();
    for dir in ["proc", "dev", "bin"] {
        std::fs::create_dir_all(d.path().join(dir)).unwrap();
    }
    for flags in [&["--mount"][..], &["--mount", "--uts", "--net"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend(["--rootfs", d.path().to_str().unwrap(), "--", "/bin/sh"]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--rootfs needs --pid") && stderr(&out).contains("/proc"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn the_hosts_root_is_not_reachable_through_proc() {
    if !privileged("nsx run /proc/<pid>/root") {
        return;
    }
    let (d, root) = busybox_rootfs();
    // A file outside the rootfs stands for the host's secrets.
    let canary = d.path().join("canary");
    std::fs::write(&canary, "host-secret\n").unwrap();
    let script = format!(
        "for p in /proc/[0-9]* /proc/self; do cat $p/root{} 2>/dev/null; done; ls -d /proc/[0-9]* | wc -l",
        canary.display()
    );
    for flags in [&["--mount"][..], &["--pid", "--mount"][..], &["--all"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend(["--rootfs", root.to_str().unwrap(), "--", "/bin/sh", "-c"]);
        args.push(&script);
        let out = run(&args);
        if !flags.contains(&"--pid") && !flags.contains(&"--all") {
            // Where /proc would be the host's, the run does not start at all.
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
            assert!(!stdout(&out).contains("host-secret"), "{args:?}: escaped");
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("host-secret"), "{args:?}: escaped: {text}");
        // The container's procfs lists its own processes only (sh, ls, wc).
        let listed: u32 = text.trim().parse().unwrap();
        assert!(listed <= 4, "{args:?}: {listed} processes in /proc");
    }
}

// ----------------------------------------------------------------- 12: nothing left running

/// Processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}

#[test]
fn background_processes_do_not_outlive_the_run() {
    // Seconds no other test sleeps for: the sleeps are recognisable by their argv.
    let secs = (900_000 + std::process::id() % 90_000).to_string();
    let other = format!("{secs}.5");
    // Their output goes elsewhere: a sleep holding nsx's stdout would keep this test
    // waiting for its end instead of failing.
    let script = format!(
        "sleep {secs} >/dev/null 2>&1 & (setsid sleep {other} >/dev/null 2>&1 &); echo started"
    );
    let out = run(&["run", "--", "sh", "-c", &script]);
    // nsx has exited: anything of the run still there now was left behind. The setsid
    // one may still be between fork and exec: look for a while, under either name.
    let mut left = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        for argv in [
            &["sleep", secs.as_str()][..],
            &["sleep", other.as_str()][..],
            &["setsid", "sleep", other.as_str()][..],
        ] {
            for pid in processes_running(argv) {
                // Left by this test's run: end it (then fail).
                // SAFETY: kill(2) has no memory preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                left.insert(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("started"), "{}", stdout(&out));
    assert!(left.is_empty(), "left running after nsx run: {left:?}");
}

// ----------------------------------------------------------------- 6: a relay that cannot wedge

#[test]
fn dash_it_without_a_terminal_is_refused_at_once() {
    // `yes | nsx run -it -- true`: a pipe is no terminal.
    for flags in [&[][..], &["--pid", "--mount"][..]] {
        let mut args = vec!["run", "-it"];
        args.extend_from_slice(flags);
        args.extend(["--", "true"]);
        let mut child = spawn(
            nsx()
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut input = child.stdin.take().unwrap();
        let yes = std::thread::spawn(move || while input.write_all(b"y\n").is_ok() {});
        let status = wait_with_deadline(&mut child, Duration::from_secs(10), "yes | nsx run -it");
        yes.join().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a TTY"), "{err}");
    }
}

#[test]
fn endless_input_into_a_command_that_never_reads_it_returns_promptly() {
    if !privileged("nsx run -it flood") {
        return;
    }
    // `yes` typed into a terminal, into a command that exits at once, and into one that
    // takes a second (the container's input fills up meanwhile) and exits 3.
    let cases: [(&[&str], &[&str], i32); 3] = [
        (&[], &["true"], 0),
        (&["--pid", "--mount"], &["true"], 0),
        (&["--pid", "--mount"], &["sh", "-c", "sleep 1; exit 3"], 3),
    ];
    for (flags, cmd, code) in cases {
        let term = Terminal::new();
        let mut args = vec!["run", "-it"];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(cmd);
        let (typed, typist) = term.typist(b"y\n".to_vec(), true);
        let mut child = term.spawn(&args);
        let status = wait_with_deadline(&mut child, Duration::from_secs(10), "flood");
        term.stop.store(true, Ordering::SeqCst);
        typist.join().unwrap();
        assert_eq!(status.code(), Some(code), "{args:?}: {}", term.screen());
        assert!(typed.load(Ordering::SeqCst) > 0);
    }
}

/// 1 MiB of 64-byte lines.
fn paste() -> Vec<u8> {
    let line = [&[b'y'; 63][..], b"\n"].concat();
    line.repeat(1024 * 1024 / 64)
}

#[test]
fn a_large_paste_into_cat_finishes() {
    if !privileged("nsx run -it paste") {
        return;
    }
    let term = Terminal::new();
    let mut child = term.spawn(&[
        "run",
        "-it",
        "--pid",
        "--mount",
        "--",
        "sh",
        "-c",
        "echo ready; cat >/dev/null; echo pasted-$?",
    ]);
    term.expect("ready");
    let mut data = paste();
    data.push(4); // Ctrl-D: end of input for cat
    let (typed, typist) = term.typist(data, false);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120), "paste");
    typist.join().unwrap();
    assert_eq!(typed.load(Ordering::SeqCst), 1024 * 1024 + 1);
    assert_eq!(status.code(), Some(0), "{:?}", term.screen().len());
    term.expect("pasted-0");
}

#[test]
fn a_paste_into_a_busy_pid_1_is_interrupted_cleanly_by_sigterm() {
    if !privileged("nsx run -it busy paste") {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let term = Terminal::new();
    let mut child = term.spawn(&[
        "run",
        "-it",
        "--pid",
        "--mount",
        "--pids",
        "16",
        "--",
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let pid = child.id();
    term.expect("ready");
    let (typed, typist) = term.typist(paste(), false);
    // The container does not read: every buffer on the way fills, and the typist stalls.
    let start = Instant::now();
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = typed.load(Ordering::SeqCst);
        if now == last && now > 0 {
            break;
        }
        last = now;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the paste never stalled"
        );
    }
    assert!(last < 1024 * 1024, "the whole paste went in: {last}");
    signal(pid, libc::SIGTERM);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10), "SIGTERM");
    term.stop.store(true, Ordering::SeqCst);
    typist.join().unwrap();
    assert_eq!(status.code(), Some(42));
    assert!(cgroups_of(&BTreeSet::from([pid])).is_empty());
    assert!(children_of(pid).is_empty());
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        before
    );
}

#[test]
fn a_terminal_hang_up_ends_the_container() {
    if !privileged("nsx run -it hang-up") {
        return;
    }
    let mut term = Terminal::new();
    // PID 1 has no handler for SIGHUP, so the kernel would drop it: with nobody left to
    // send a second signal, nsx kills the container.
    let mut child = term.spawn(&[
        "run",
        "-it",
        "--pid",
        "--mount",
        "--",
        "sh",
        "-c",
        "echo ready; while :; do sleep 0.1; done",
    ]);
    let pid = child.id();
    term.expect("ready");
    term.hang_up();
    let status = wait_with_deadline(&mut child, Duration::from_secs(10), "hang-up");
    assert_eq!(status.code(), Some(128 + libc::SIGKILL));
    assert!(children_of(pid).is_empty());
}

// ----------------------------------------------------------------- 11: PATH like execvp

#[test]
fn an_unsearchable_path_directory_is_skipped_like_execvp_does() {
    if !privileged("PATH search as uid 4242") {
        return;
    }
    let (_bin, exe) = copy_binary("nsx-pathtest");
    // A directory of root with mode 0700: uid 4242 may not search it (EACCES).
    let locked = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(locked.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let run_with_path = |path: String, cmd: &str| {
        output_retrying_busy(|| {
            // By its path: Command looks a bare name up in the child's PATH.
            let mut c = Command::new(setpriv());
            c.args([
                "--reuid",
                TEST_UID,
                "--regid",
                TEST_UID,
                "--clear-groups",
                "--",
            ])
            .arg(&exe)
            .args(["run", "--", cmd])
            .current_dir("/")
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            c
        })
    };
    let locked = locked.path().display().to_string();
    let out = run_with_path(format!("{locked}:/usr/bin:/bin"), "true");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Found nowhere else: the EACCES is the news, as a shell's 126.
    let out = run_with_path(locked.clone(), "true");
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(
        stderr(&out).contains("permission denied") && stderr(&out).contains(&locked),
        "{}",
        stderr(&out)
    );
    let out = run_with_path(format!("/nonexistent-nsx:{locked}:/usr/bin"), "nsx-no-such");
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    // No EACCES on the way: not found, a usage error as before.
    let out = run_with_path("/nonexistent-nsx:/usr/bin".into(), "nsx-no-such");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

fn setpriv() -> PathBuf {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("setpriv (util-linux)")
}

// ----------------------------------------------------------------- 5: output that fails

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new and owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Stdio::from(w)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[test]
fn an_unwritable_standard_error_never_panics() {
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["inspect", "99999999"], 1),
        (vec!["lesson", "nope"], 2),
        (vec!["--bogus"], 2),
        (vec!["run", "--rootfs", "/nonexistent", "--", "true"], 2),
        (vec!["run", "--", "nsx-no-such-command"], 2),
        (vec!["run", "--", "sh", "-c", "exit 3"], 3),
    ];
    for (args, code) in cases {
        for (what, err) in [
            ("2>/dev/full", dev_full()),
            ("2> closed pipe", closed_pipe()),
        ] {
            let out = spawn(nsx().args(&args).stdout(Stdio::null()).stderr(err))
                .wait_with_output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{args:?} {what}");
        }
    }
}

#[test]
fn run_help_says_what_root_gets() {
    let help = stdout(&run(&["run", "--help"]));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "as root, the command runs with Docker's default capabilities",
        "nosuid and nodev",
        "nsx kills whatever it left running",
    ] {
        assert!(flat.contains(want), "{want:?} not in: {help}");
    }
}

#[test]
fn help_that_cannot_be_written_is_an_error() {
    for args in [&["--help"][..], &["run", "--help"][..], &["--version"][..]] {
        let out = spawn(nsx().args(args).stdout(dev_full()).stderr(Stdio::piped()))
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} >/dev/full");
        assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
        // A reader that went away: ended quietly, as any output of nsx.
        let out = spawn(
            nsx()
                .args(args)
                .stdout(closed_pipe())
                .stderr(Stdio::piped()),
        )
        .wait_with_output()
        .unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?} > closed pipe");
        assert_eq!(stderr(&out), "");
        // Both unwritable: still no panic (101).
        let out = spawn(nsx().args(args).stdout(dev_full()).stderr(dev_full()))
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}
