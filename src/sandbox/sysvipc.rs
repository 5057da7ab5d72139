//! System V IPC objects the ipc lesson creates, and the guard that removes them.
//!
//! sysvipc(7): a shared-memory segment or a message queue lives in the IPC namespace it
//! was created in until someone removes it (IPC_RMID) or the namespace dies. Objects the
//! probe makes inside a new IPC namespace die with it. Objects made in the host's
//! namespace (the lesson's control run) would outlive nsx, so the parent owns a
//! [`HostIpcGuard`] for them *before* the probe runs: it removes them after the host has
//! looked, and its `Drop` removes them on every other way out (an error, a signal).
//!
//! Keys are `0x6e` ('n' for nsx) and a set bit in the top nine bits, then 23 random
//! bits ([`random_key`]), and every object is created with IPC_CREAT | IPC_EXCL and mode
//! 0600: a key nobody can guess in advance, so another user cannot make a run fail by
//! creating its objects first, and nsx never adopts an object it did not create.
//!
//! A run killed before its guard ran (SIGKILL) leaves the control run's objects in the
//! host's namespace. [`sweep`] removes them on a later run, judging each object from
//! what the kernel records with it (shmctl/msgctl IPC_STAT): an nsx key, created by our
//! uid with mode 0600, whose creating process (the segment's shm_cpid, the queue's
//! msg_lspid) is gone. "Gone" uses the object's creation time (its ctime) against the
//! start time of whatever process has that PID now: one that started after the object
//! was made only reused the PID. A run keeps its probe unreaped (a zombie still counts)
//! until it has removed the probe's objects, so a live run's objects always have a
//! creator that is present.

use std::path::Path;

use nix::errno::Errno;

use crate::error::{op, sys, Error, Result};
use crate::observe::sysvipc::read_sysvipc;
use crate::owner::Run;

/// The top nine bits of every key nsx makes: 0x6e ('n'), then a set bit.
pub const KEY_PREFIX: u32 = 0x6e80_0000;
const KEY_MASK: u32 = 0xff80_0000;

/// Keys of nsx before they were random: `0x6e` and the PID of the nsx process in the low
/// 22 bits (pid_max is at most 2^22).
const OLD_KEY_PREFIX: u32 = 0x6e00_0000;
const OLD_KEY_MASK: u32 = 0xffc0_0000;

/// A fresh key: [`KEY_PREFIX`] and 23 random bits from getrandom(2).
pub fn random_key() -> i32 {
    let mut b = [0u8; 4];
    // getrandom(2): a few bytes from the kernel's CSPRNG; it does not block once the pool
    // is initialised, which it is long before anyone runs nsx.
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    let bits = if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        // No getrandom (very old kernels): the clock still differs from run to run, and
        // IPC_EXCL makes a taken key fail instead of being shared.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id().rotate_left(9))
            .unwrap_or(0x5eed)
    };
    (KEY_PREFIX | (bits & !KEY_MASK)) as i32
}

/// True for keys [`random_key`] makes.
pub fn is_nsx_key(key: i32) -> bool {
    key as u32 & KEY_MASK == KEY_PREFIX
}

/// The nsx PID an old-style key (`0x6e000000 | pid`) carries.
fn old_key_owner(key: i32) -> Option<u32> {
    (key as u32 & OLD_KEY_MASK == OLD_KEY_PREFIX).then_some(key as u32 & !OLD_KEY_MASK)
}

/// How many keys [`free_key`] tries before it gives up.
const KEY_TRIES: usize = 16;

/// A random key that no segment and no queue uses in the caller's IPC namespace now.
pub fn free_key() -> Result<i32> {
    let mut last = None;
    for _ in 0..KEY_TRIES {
        let key = random_key();
        match ensure_key_free(key) {
            Ok(()) => return Ok(key),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Other("no free System V IPC key".into())))
}

/// `0x6e8a1b2c`, as ipcs(1) prints keys.
pub fn key_label(key: i32) -> String {
    format!("{:#010x}", key as u32)
}

/// Size of the segment the probe creates.
pub const SHM_BYTES: usize = 4096;

/// The message the probe leaves in its queue.
pub const MESSAGE: &[u8] = b"hello from nsx";

#[repr(C)]
struct Msg {
    mtype: libc::c_long,
    mtext: [u8; MESSAGE.len()],
}

/// shmget(2) with IPC_CREAT | IPC_EXCL: a new segment, or EEXIST if the key is taken.
pub fn create_shm(key: i32) -> Result<i32> {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key, SHM_BYTES, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 {
        return Err(sys(op::SHMGET, key_label(key), Errno::last()));
    }
    Ok(id)
}

/// msgget(2) with IPC_CREAT | IPC_EXCL, then msgsnd(2) of one message, so the queue shows
/// `qnum 1` in /proc/sysvipc/msg.
pub fn create_msg(key: i32) -> Result<i32> {
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 {
        return Err(sys(op::MSGGET, key_label(key), Errno::last()));
    }
    let mut msg = Msg {
        mtype: 1,
        mtext: [0; MESSAGE.len()],
    };
    msg.mtext.copy_from_slice(MESSAGE);
    // SAFETY: msgp points to a long mtype followed by msgsz bytes of text (msgsnd(2)).
    let rc = unsafe {
        libc::msgsnd(
            id,
            std::ptr::addr_of!(msg).cast(),
            MESSAGE.len(),
            libc::IPC_NOWAIT,
        )
    };
    if rc < 0 {
        return Err(sys("msgsnd", format!("msqid {id}"), Errno::last()));
    }
    Ok(id)
}

/// The id of the segment with `key` in the caller's IPC namespace, if any.
fn find_shm(key: i32) -> Option<i32> {
    // SAFETY: size 0 and no IPC_CREAT only look the key up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    (id >= 0).then_some(id)
}

fn find_msg(key: i32) -> Option<i32> {
    // SAFETY: no IPC_CREAT only looks the key up.
    let id = unsafe { libc::msgget(key, 0) };
    (id >= 0).then_some(id)
}

fn shm_stat(id: i32) -> Option<libc::shmid_ds> {
    // SAFETY: an all-zero shmid_ds is valid; IPC_STAT fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds.
    (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds)
}

fn msg_stat(id: i32) -> Option<libc::msqid_ds> {
    // SAFETY: as above, for msqid_ds.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable msqid_ds.
    (unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds)
}

/// Fails unless no segment and no queue uses `key` in the caller's IPC namespace.
pub fn ensure_key_free(key: i32) -> Result<()> {
    if let Some(id) = find_shm(key) {
        return Err(sys(
            op::SHMGET,
            format!("{} (held by shmid {id})", key_label(key)),
            Errno::EEXIST,
        ));
    }
    if let Some(id) = find_msg(key) {
        return Err(sys(
            op::MSGGET,
            format!("{} (held by msqid {id})", key_label(key)),
            Errno::EEXIST,
        ));
    }
    Ok(())
}

/// Owns the host-namespace objects with `key` that the probe `creator` makes.
///
/// It is armed before the probe runs, with a key nobody held at that moment
/// ([`ensure_key_free`]). It removes only objects that are provably the probe's: a segment
/// whose creator PID (shm_cpid) is the probe, and a queue the probe's uid created whose
/// last sender is the probe (or that is still empty, if the probe died between msgget and
/// msgsnd).
pub struct HostIpcGuard {
    key: i32,
    creator: Option<i32>,
    removed: bool,
}

impl HostIpcGuard {
    pub fn new(key: i32) -> Result<Self> {
        ensure_key_free(key)?;
        Ok(HostIpcGuard {
            key,
            creator: None,
            removed: false,
        })
    }

    /// The key it guards.
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The probe's PID, once it is cloned.
    pub fn set_creator(&mut self, pid: i32) {
        self.creator = Some(pid);
    }

    /// Removes the probe's objects (shmctl/msgctl IPC_RMID) and returns what was done,
    /// as a student would type it.
    pub fn remove(&mut self) -> Result<Vec<String>> {
        let Some(creator) = self.creator else {
            self.removed = true;
            return Ok(vec![]);
        };
        let mut done = Vec::new();
        let label = key_label(self.key);
        if let Some(id) = find_shm(self.key) {
            if shm_stat(id).is_some_and(|ds| ds.shm_cpid == creator) {
                // shmctl(2) IPC_RMID: the segment goes once no process is attached.
                // SAFETY: IPC_RMID ignores the buffer.
                if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
                    return Err(sys("shmctl IPC_RMID", format!("shmid {id}"), Errno::last()));
                }
                done.push(format!("shmctl(shmid {id}, IPC_RMID)   (ipcrm -M {label})"));
            }
        }
        if let Some(id) = find_msg(self.key) {
            let euid = nix::unistd::geteuid().as_raw();
            let ours = msg_stat(id).is_some_and(|ds| {
                ds.msg_perm.cuid == euid && (ds.msg_lspid == creator || ds.msg_qnum == 0)
            });
            if ours {
                // msgctl(2) IPC_RMID: the queue and its messages go at once.
                // SAFETY: IPC_RMID ignores the buffer.
                if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
                    return Err(sys("msgctl IPC_RMID", format!("msqid {id}"), Errno::last()));
                }
                done.push(format!("msgctl(msqid {id}, IPC_RMID)   (ipcrm -Q {label})"));
            }
        }
        self.removed = true;
        Ok(done)
    }
}

impl Drop for HostIpcGuard {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

/// One System V object as the kernel records it (IPC_STAT), what [`judge`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// "shm" or "msg".
    pub kind: &'static str,
    pub id: i32,
    pub key: i32,
    pub cuid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The process that made it: the segment's shm_cpid; for a queue the last sender
    /// (msg_lspid: the probe sends right after creating it), or, while it is still
    /// empty, the creator of the segment with the same key, if any.
    pub creator: Option<u32>,
    /// Creation time (shm_ctime, msg_ctime), seconds since the epoch: nsx never changes
    /// its objects with IPC_SET, which would move it.
    pub ctime: i64,
}

impl Object {
    pub fn label(&self) -> String {
        format!(
            "{} {} ({} {})",
            if self.kind == "shm" {
                "segment"
            } else {
                "queue"
            },
            key_label(self.key),
            if self.kind == "shm" { "shmid" } else { "msqid" },
            self.id
        )
    }
}

/// What a sweep makes of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not nsx's, or not ours to remove.
    Foreign,
    /// nsx's, and the run that made it may still be running.
    Live,
    /// Left by an nsx run that is gone.
    Leftover,
}

/// Slack, in seconds, between a process's start and an object's ctime: both are read in
/// whole seconds (the start time from boot time, /proc/stat btime, which itself is
/// rounded), so a creator may seem to have started up to two seconds after its object.
const CLOCK_SLACK: i64 = 2;

/// Judges `obj` for a sweep run by `euid`. `started(pid)` is when the process that has
/// `pid` now started, in seconds since the epoch (`None`: no process has it, not even a
/// zombie).
pub fn judge(obj: &Object, euid: u32, started: &dyn Fn(u32) -> Option<i64>) -> Verdict {
    if obj.cuid != euid || obj.mode & 0o777 != 0o600 {
        return Verdict::Foreign;
    }
    // The process that must be present while the run lives: the creator of a random
    // key's object; the nsx process itself for an old key, which carries its PID.
    let owner = if is_nsx_key(obj.key) {
        obj.creator
    } else if let Some(pid) = old_key_owner(obj.key) {
        Some(pid)
    } else {
        return Verdict::Foreign;
    };
    // A process that started after the object was made is not the one that made it.
    let present = owner
        .filter(|pid| *pid > 0)
        .and_then(started)
        .is_some_and(|start| start <= obj.ctime + CLOCK_SLACK);
    if present {
        Verdict::Live
    } else {
        Verdict::Leftover
    }
}

/// The nsx-looking objects of the caller's IPC namespace, from IPC_STAT of each id in
/// /proc/sysvipc (objects we may not read are skipped: they are not ours).
pub fn objects() -> Result<Vec<Object>> {
    let table = read_sysvipc(Path::new("/proc"))?;
    let nsx = |key: i32| is_nsx_key(key) || old_key_owner(key).is_some();
    let mut found = Vec::new();
    for s in table.shm.iter().filter(|s| nsx(s.key)) {
        if let Some(ds) = shm_stat(s.id) {
            found.push(Object {
                kind: "shm",
                id: s.id,
                key: ds.shm_perm.__key,
                cuid: ds.shm_perm.cuid,
                mode: u32::from(ds.shm_perm.mode),
                creator: u32::try_from(ds.shm_cpid).ok(),
                ctime: ds.shm_ctime,
            });
        }
    }
    for m in table.msg.iter().filter(|m| nsx(m.key)) {
        if let Some(ds) = msg_stat(m.id) {
            let creator = if ds.msg_lspid > 0 {
                u32::try_from(ds.msg_lspid).ok()
            } else {
                found
                    .iter()
                    .find(|o| o.kind == "shm" && o.key == ds.msg_perm.__key)
                    .and_then(|o| o.creator)
            };
            found.push(Object {
                kind: "msg",
                id: m.id,
                key: ds.msg_perm.__key,
                cuid: ds.msg_perm.cuid,
                mode: u32::from(ds.msg_perm.mode),
                creator,
                ctime: ds.msg_ctime,
            });
        }
    }
    Ok(found)
}

/// When the process with `pid` started, in seconds since the epoch: boot time
/// (/proc/stat btime) plus its start time in clock ticks (proc(5)).
pub fn process_started(pid: u32) -> Option<i64> {
    let run = Run::of(Path::new("/proc"), pid)?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // sysconf(3): clock ticks per second (USER_HZ), the unit of starttime.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
    Some(btime + i64::try_from(run.start / hz).ok()?)
}

/// What [`sweep`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// What was removed, as `ipcrm` would say it.
    pub removed: Vec<String>,
    /// Leftovers that could not be removed, and why.
    pub failed: Vec<String>,
}

/// Removes (IPC_RMID) the objects of the caller's IPC namespace left by nsx runs that
/// are gone ([`judge`]).
pub fn sweep() -> Swept {
    let mut swept = Swept::default();
    let euid = nix::unistd::geteuid().as_raw();
    let found = match objects() {
        Ok(found) => found,
        Err(e) => {
            swept.failed.push(format!("/proc/sysvipc: {e}"));
            return swept;
        }
    };
    for obj in found {
        if judge(&obj, euid, &process_started) != Verdict::Leftover {
            continue;
        }
        // shmctl(2)/msgctl(2) IPC_RMID: a segment goes once no process is attached, a
        // queue at once. EINVAL/EIDRM: removed meanwhile (another run swept it).
        // SAFETY: IPC_RMID ignores the buffer.
        let rc = unsafe {
            if obj.kind == "shm" {
                libc::shmctl(obj.id, libc::IPC_RMID, std::ptr::null_mut())
            } else {
                libc::msgctl(obj.id, libc::IPC_RMID, std::ptr::null_mut())
            }
        };
        match (rc, Errno::last()) {
            (0, _) => swept.removed.push(format!(
                "{}   (ipcrm -{} {})",
                obj.label(),
                if obj.kind == "shm" { 'M' } else { 'Q' },
                key_label(obj.key)
            )),
            (_, Errno::EINVAL | Errno::EIDRM) => {}
            (_, errno) => swept.failed.push(format!(
                "{}: {}",
                obj.label(),
                sys("IPC_RMID", obj.label(), errno)
            )),
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_behind_the_nsx_prefix() {
        let keys: Vec<i32> = (0..64).map(|_| random_key()).collect();
        assert!(keys.iter().all(|k| is_nsx_key(*k) && *k > 0), "{keys:x?}");
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert!(distinct.len() > 60, "not random: {keys:x?}");
        assert!(key_label(keys[0]).starts_with("0x6e"));
        // The keys nsx used to make (the PID in the low bits) are not new keys.
        assert!(!is_nsx_key(0x6e00_1092));
        assert_eq!(old_key_owner(0x6e00_1092), Some(4242));
        assert_eq!(old_key_owner(0x6e3f_ffff), Some(0x3f_ffff));
        assert_eq!(old_key_owner(0x6e80_0001), None);
        assert_eq!(old_key_owner(0x1234_5678), None);
    }

    fn object(key: u32, creator: Option<u32>) -> Object {
        Object {
            kind: "shm",
            id: 7,
            key: key as i32,
            cuid: 0,
            mode: 0o600,
            creator,
            ctime: 1_000,
        }
    }

    #[test]
    fn a_leftover_is_an_nsx_object_whose_creator_is_gone() {
        // PID 10 started before the objects were made, PID 11 long after (a reused PID).
        let started = |pid: u32| match pid {
            10 => Some(990),
            11 => Some(1_500),
            4242 => Some(900),
            _ => None,
        };
        let judge0 = |o: &Object| judge(o, 0, &started);
        assert_eq!(judge0(&object(0x6e8a_1b2c, Some(10))), Verdict::Live);
        assert_eq!(judge0(&object(0x6e8a_1b2c, Some(11))), Verdict::Leftover);
        assert_eq!(judge0(&object(0x6e8a_1b2c, Some(12))), Verdict::Leftover);
        assert_eq!(judge0(&object(0x6e8a_1b2c, None)), Verdict::Leftover);
        // Within the clock's slack a creator counts as present.
        let late = |pid: u32| (pid == 10).then_some(1_002);
        assert_eq!(
            judge(&object(0x6e8a_1b2c, Some(10)), 0, &late),
            Verdict::Live
        );
        // Old keys carry the nsx PID: alive while that process, started before, runs.
        assert_eq!(judge0(&object(0x6e00_1092, Some(12))), Verdict::Live);
        assert_eq!(judge0(&object(0x6e00_000b, Some(10))), Verdict::Leftover);
        // Not nsx's: another key, another creator uid, another mode.
        assert_eq!(judge0(&object(0x1234_5678, None)), Verdict::Foreign);
        let mut theirs = object(0x6e8a_1b2c, None);
        theirs.cuid = 1000;
        assert_eq!(judge0(&theirs), Verdict::Foreign);
        let mut open = object(0x6e8a_1b2c, None);
        open.mode = 0o666;
        assert_eq!(judge0(&open), Verdict::Foreign);
    }

    #[test]
    fn this_process_started_before_now() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let started = process_started(std::process::id()).unwrap();
        assert!(
            started <= now + CLOCK_SLACK && started > now - 86_400 * 365,
            "{started}"
        );
    }
}
