//! Changing this process's capability sets (capabilities(7)): the calls a runtime makes
//! before it execs the container's command, and that the caps lesson makes in its probes.
//!
//! Five sets, each a bit mask of capability numbers ([`crate::caps::NAMES`]):
//! - **bounding**: the ceiling of what execve(2) grants from the file it runs: a
//!   setuid-root program or file capabilities give nothing outside it (only a capability
//!   already inheritable can pass it, which is why runtimes empty the inheritable set);
//!   it can only shrink (prctl(2) PR_CAPBSET_DROP).
//! - **permitted**: what the process may make effective; it can only shrink.
//! - **effective**: what the kernel checks.
//! - **inheritable** and **ambient**: what survives execve(2). Ambient capabilities
//!   (Linux 4.3) are kept across the execve of an ordinary program by a non-root
//!   process; inheritable ones only for a program whose file has them too.

use nix::errno::Errno;

use crate::error::{sys, Result};

/// capget(2)/capset(2) header, _LINUX_CAPABILITY_VERSION_3 (64-bit sets, two words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// The effective, permitted and inheritable sets of this process (capget(2)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// This process's sets (capget(2)).
pub fn get() -> Result<Sets> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a v3 header and the two data words v3 fills.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(sys("capget", "this process", Errno::last()));
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok(Sets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// Sets this process's effective, permitted and inheritable sets (capset(2)). The kernel
/// refuses (EPERM) a permitted set larger than the current one, an effective set outside
/// the new permitted one, and new inheritable capabilities outside the permitted and
/// bounding sets without CAP_SETPCAP.
pub fn set(sets: Sets) -> Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let word = |m: u64, i: u32| (m >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(sets.effective, i),
        permitted: word(sets.permitted, i),
        inheritable: word(sets.inheritable, i),
    });
    // SAFETY: a v3 header and two data words, read by the kernel.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(sys(
            "capset",
            format!(
                "effective {:#x}, permitted {:#x}, inheritable {:#x}",
                sets.effective, sets.permitted, sets.inheritable
            ),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Drops every capability outside `keep` from the bounding set. prctl(2)
/// PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, so call this before a capset
/// that drops CAP_SETPCAP.
pub fn drop_bounding(keep: u64) -> Result<()> {
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // prctl(2) PR_CAPBSET_DROP: EINVAL once `cap` is past the last capability this
        // kernel knows (/proc/sys/kernel/cap_last_cap): the numbers are contiguous.
        // SAFETY: PR_CAPBSET_DROP takes a capability number.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            match Errno::last() {
                Errno::EINVAL => break,
                e => return Err(sys("prctl PR_CAPBSET_DROP", crate::caps::name(cap), e)),
            }
        }
    }
    Ok(())
}

/// Empties the ambient set (prctl(2) PR_CAP_AMBIENT_CLEAR_ALL, Linux 4.3; before that
/// there is no ambient set, and the EINVAL it gives is success).
pub fn clear_ambient() -> Result<()> {
    // SAFETY: PR_CAP_AMBIENT with PR_CAP_AMBIENT_CLEAR_ALL takes no pointer.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 && Errno::last() != Errno::EINVAL {
        return Err(sys("prctl PR_CAP_AMBIENT_CLEAR_ALL", "", Errno::last()));
    }
    Ok(())
}

/// Adds `cap` to the ambient set (prctl(2) PR_CAP_AMBIENT_RAISE): it must be in both the
/// permitted and the inheritable set already, or the kernel says EPERM.
pub fn raise_ambient(cap: u32) -> Result<()> {
    // SAFETY: PR_CAP_AMBIENT_RAISE takes a capability number.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(sys(
            "prctl PR_CAP_AMBIENT_RAISE",
            crate::caps::name(cap),
            Errno::last(),
        ));
    }
    Ok(())
}

/// prctl(2) PR_SET_NO_NEW_PRIVS: from now on, execve(2) grants nothing the process does
/// not already have (setuid and setgid bits and file capabilities are ignored). It can
/// never be unset, and children inherit it.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes 1 and zeros.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(sys("prctl PR_SET_NO_NEW_PRIVS", 1, Errno::last()));
    }
    Ok(())
}

/// prctl(2) PR_SET_KEEPCAPS: a change of every uid from 0 to non-zero keeps the permitted
/// set (the effective set is still cleared, and so is the ambient set: capabilities(7)).
pub fn set_keep_caps() -> Result<()> {
    // SAFETY: PR_SET_KEEPCAPS takes 0 or 1.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(sys("prctl PR_SET_KEEPCAPS", 1, Errno::last()));
    }
    Ok(())
}

/// Leaves this process with `keep` (as far as it holds them) in its bounding, permitted
/// and effective sets, nothing inheritable and no ambient capabilities; the next execve
/// keeps exactly that (capabilities(7): for a root process the new permitted set is the
/// bounding set, and the inheritable and ambient sets add nothing). Returns what it kept.
///
/// The inheritable set is left empty as Docker does since 20.10.14 (CVE-2022-24769): a
/// non-empty one lets any user inside gain a capability from a program that carries it in
/// its inheritable file capabilities.
///
/// Order: the bounding set first, because prctl(PR_CAPBSET_DROP) needs CAP_SETPCAP in the
/// effective set, which capset(2) may drop after it.
pub fn limit_to(keep: u64) -> Result<u64> {
    let keep = keep & get()?.permitted;
    drop_bounding(keep)?;
    clear_ambient()?;
    set(Sets {
        effective: keep,
        permitted: keep,
        inheritable: 0,
    })?;
    Ok(keep)
}
