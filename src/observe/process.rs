//! A process's state and signal dispositions, and the processes of a PID namespace, as a
//! procfs shows them (proc(5)): the same reader for the probe's own `/proc` and the
//! host's.
//!
//! - `<dir>/stat`: the state letter, the parent, the kernel's `PF_*` flags (`PF_EXITING`
//!   once the process has begun to exit) and the start time.
//! - `<dir>/status` `SigPnd`, `ShdPnd`, `SigBlk`, `SigIgn`, `SigCgt`: signals pending (for
//!   the thread, for the whole process), blocked, ignored, and caught (a handler is
//!   installed), each a 64-bit mask with bit `n - 1` for signal `n`.
//! - The numeric directories of a procfs whose `ns/pid` link names one PID namespace.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::error::{sys, Error, Result};

/// The signal lines of `<dir>/status`, as masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signals {
    /// `SigPnd`: pending for the thread that was read.
    pub pending: u64,
    /// `ShdPnd`: pending for the process as a whole (a kill(2) to its PID lands here).
    pub shared_pending: u64,
    /// `SigBlk`: blocked (held pending until unblocked).
    pub blocked: u64,
    /// `SigIgn`: disposition SIG_IGN.
    pub ignored: u64,
    /// `SigCgt`: a handler is installed.
    pub caught: u64,
}

impl Signals {
    /// Pending in either set.
    pub fn any_pending(&self) -> u64 {
        self.pending | self.shared_pending
    }
}

/// True when signal number `signo` (1 to 64) is in `mask`: bit `signo - 1`.
pub fn mask_has(mask: u64, signo: i32) -> bool {
    (1..=64).contains(&signo) && mask & (1u64 << (signo - 1)) != 0
}

/// `mask` with signal number `signo` added.
pub fn mask_with(mask: u64, signo: i32) -> u64 {
    if (1..=64).contains(&signo) {
        mask | (1u64 << (signo - 1))
    } else {
        mask
    }
}

/// One process as `<dir>/stat` shows it (proc(5)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Field 1: the PID in the namespace of the procfs that was read.
    pub pid: i32,
    /// Field 3: R running, S sleeping, D disk sleep, T stopped, t tracing stop, Z zombie,
    /// X dead, I idle.
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 9: the kernel's PF_* flags (include/linux/sched.h).
    pub flags: u32,
    /// Field 22: when the process started, in clock ticks after boot. With the PID it
    /// names one process: a PID can be reused, a (PID, start time) pair cannot.
    pub starttime: u64,
}

impl Stat {
    /// PF_EXITING (include/linux/sched.h): set when the process begins to exit, before it
    /// becomes a zombie.
    pub const PF_EXITING: u32 = 0x0000_0004;

    pub fn exiting(&self) -> bool {
        self.flags & Stat::PF_EXITING != 0
    }

    /// Neither a zombie nor dead, nor on its way out.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x') && !self.exiting()
    }

    /// `S (sleeping)`, as status names the state.
    pub fn state_name(&self) -> String {
        let name = match self.state {
            'R' => "running",
            'S' => "sleeping",
            'D' => "disk sleep",
            'T' => "stopped",
            't' => "tracing stop",
            'Z' => "zombie",
            'X' | 'x' => "dead",
            'I' => "idle",
            'P' => "parked",
            _ => "?",
        };
        format!("{} ({name})", self.state)
    }
}

/// The fields of a stat line nsx uses. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses: the fields after it start after the *last* ')'.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find(" (")?;
    let pid = text[..open].trim().parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 is the first after the name: field n is at index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        flags: f.get(6)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

/// Reads `<dir>/stat`.
pub fn read_stat(dir: &Path) -> Result<Stat> {
    let d = super::ProcDir::open(dir)?;
    let mut buf = Vec::with_capacity(512);
    d.read("stat", &mut buf)?;
    parse_stat(&String::from_utf8_lossy(&buf))
        .ok_or_else(|| super::parse_error(&d.path("stat"), "not a stat line"))
}

/// `<dir>/stat` when the process is still there (`None` once it has been reaped).
pub fn stat_if_present(dir: &Path) -> Result<Option<Stat>> {
    match read_stat(dir) {
        Ok(s) => Ok(Some(s)),
        Err(Error::Sys(s)) if matches!(s.errno, Errno::ENOENT | Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every process the procfs at `proc` lists in the PID namespace with inode `ns` (by its
/// `ns/pid` link), lowest PID first, each as its stat shows it. Processes that exit while
/// the list is read, and those this reader may not inspect (another user's: their links
/// need ptrace access, proc(5)), are left out: none of them can be in a namespace nsx made.
pub fn ns_processes(proc: &Path, ns: u64) -> Result<Vec<Stat>> {
    let root = open_dir(proc).map_err(|e| sys("open", proc.display(), e))?;
    let mut out = Vec::new();
    for pid in super::numeric_entries(proc)? {
        let name = pid.to_string();
        let Ok(link) = nix::fcntl::readlinkat(&root, format!("{name}/ns/pid").as_str()) else {
            continue;
        };
        if super::parse_ns_link(&link.to_string_lossy()) != Some(ns) {
            continue;
        }
        if let Some(s) = stat_if_present(&proc.join(&name))? {
            out.push(s);
        }
    }
    out.sort_by_key(|s| s.pid);
    Ok(out)
}

fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let mut line = String::from("42 (a) b (c)) S 7 42 42 0 -1 4194564");
        line.push_str(" 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10");
        assert_eq!(
            parse_stat(&line),
            Some(Stat {
                pid: 42,
                state: 'S',
                ppid: 7,
                flags: 4194564,
                starttime: 123456
            })
        );
        let s = parse_stat(&line).unwrap();
        // 4194564 = 0x400004: PF_EXITING is bit 2.
        assert!(s.exiting() && !s.alive());
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn stat_states_and_names() {
        let z = Stat {
            state: 'Z',
            ..Stat::default()
        };
        assert!(!z.alive());
        assert_eq!(z.state_name(), "Z (zombie)");
        let t = Stat {
            state: 'T',
            ..Stat::default()
        };
        assert!(t.alive());
    }

    #[test]
    fn masks_count_signals_from_one() {
        // SIGTERM is 15: bit 14. SigCgt 0000000000000440 is SIGBUS (7) and SIGSEGV (11).
        assert!(mask_has(1 << 14, 15));
        assert!(!mask_has(1 << 13, 15));
        assert!(mask_has(0x440, 7) && mask_has(0x440, 11));
        assert_eq!(mask_with(0, 15), 0x4000);
        assert!(!mask_has(u64::MAX, 0) && !mask_has(u64::MAX, 65));
        assert!(mask_has(u64::MAX, 64));
    }

    #[test]
    fn this_process_is_in_its_own_pid_namespace() {
        let me = std::process::id() as i32;
        let link = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let ns = crate::observe::parse_ns_link(&link.to_string_lossy()).unwrap();
        let all = ns_processes(Path::new("/proc"), ns).unwrap();
        let mine = all.iter().find(|s| s.pid == me).expect("listed");
        assert!(mine.alive());
        assert_eq!(read_stat(Path::new("/proc/self")).unwrap().pid, me);
        assert!(all.windows(2).all(|w| w[0].pid < w[1].pid));
    }
}
