//! System V IPC objects the ipc lesson creates, and the guard that removes them.
//!
//! sysvipc(7): a shared-memory segment or a message queue lives in the IPC namespace it
//! was created in until someone removes it (IPC_RMID) or the namespace dies. Objects the
//! probe makes inside a new IPC namespace die with it. Objects made in the host's
//! namespace (the lesson's control run) would outlive nsx, so the parent owns a
//! [`HostIpcGuard`] for them *before* the probe runs: it removes them after the host has
//! looked, and its `Drop` removes them on every other way out (an error, a signal).
//!
//! The key is `0x6e` ('n' for nsx) followed by nsx's PID in the low 24 bits (pid_max is
//! at most 2^22): it cannot collide with another nsx run alive at the same time, and
//! `ipcs` shows which run made an object.

use nix::errno::Errno;

use crate::error::{sys, Result};

/// The key of the objects made by the nsx process `pid`.
pub fn nsx_key(pid: u32) -> i32 {
    (0x6e00_0000 | (pid & 0x00ff_ffff)) as i32
}

/// `0x6e001092`, as ipcs(1) prints keys.
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
        return Err(sys("shmget", key_label(key), Errno::last()));
    }
    Ok(id)
}

/// msgget(2) with IPC_CREAT | IPC_EXCL, then msgsnd(2) of one message, so the queue shows
/// `qnum 1` in /proc/sysvipc/msg.
pub fn create_msg(key: i32) -> Result<i32> {
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 {
        return Err(sys("msgget", key_label(key), Errno::last()));
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
            "shmget",
            format!("{} (held by shmid {id})", key_label(key)),
            Errno::EEXIST,
        ));
    }
    if let Some(id) = find_msg(key) {
        return Err(sys(
            "msgget",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_pid() {
        assert_eq!(nsx_key(4242), 0x6e00_1092);
        assert_eq!(key_label(nsx_key(4242)), "0x6e001092");
        // pid_max is at most 2^22: every PID fits.
        assert_eq!(nsx_key(4_194_303) as u32, 0x6e3f_ffff);
        assert!(nsx_key(4_194_303) > 0);
    }
}
