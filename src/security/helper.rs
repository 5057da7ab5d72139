//! `nsx-euid`: the smallest program that can say who it runs as, for the lessons that
//! make a setuid-root copy of something.
//!
//! A setuid-root program runs with euid 0 whoever starts it: whatever it does, it does
//! as root. So the program nsx makes setuid is one that can do nothing else: 58 bytes of
//! x86-64 code, no loader, no libc, no arguments or environment read. It calls
//! geteuid(2), writes the 4 bytes of the answer to its standard output, reads one byte
//! from its standard input (which blocks until nsx closes that pipe: meanwhile the host
//! reads its /proc/<pid>/status), and exits with status 0. Started by anyone, by any
//! path, with any descriptors, it can write 4 bytes to a descriptor its caller opened,
//! and that is all.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Context, Result};

/// The name the lessons give it (and so its comm in /proc/<pid>/status).
pub const NAME: &str = "nsx-euid";

/// The program's code, assembled from (Intel syntax):
///
/// ```text
/// mov eax, 107        ; geteuid
/// syscall
/// mov [rsp-8], eax    ; below the initial stack pointer: nothing lives there
/// mov eax, 1          ; write(1, rsp-8, 4)
/// mov edi, 1
/// lea rsi, [rsp-8]
/// mov edx, 4
/// syscall
/// xor eax, eax        ; read(0, rsp-8, 1): waits until stdin is closed
/// xor edi, edi
/// lea rsi, [rsp-8]
/// mov edx, 1
/// syscall
/// mov eax, 60         ; exit(0)
/// xor edi, edi
/// syscall
/// ```
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 58] = [
    0xb8, 0x6b, 0x00, 0x00, 0x00, // mov eax, 107
    0x0f, 0x05, // syscall
    0x89, 0x44, 0x24, 0xf8, // mov [rsp-8], eax
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
    0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
    0xba, 0x04, 0x00, 0x00, 0x00, // mov edx, 4
    0x0f, 0x05, // syscall
    0x31, 0xc0, // xor eax, eax
    0x31, 0xff, // xor edi, edi
    0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
    0x0f, 0x05, // syscall
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
];

/// The whole executable: a 64-byte ELF header, one PT_LOAD program header (56 bytes)
/// mapping the file read + execute at 0x400000, and the code right after, at 0x400078
/// (elf(5)). `None` on an architecture nsx has no encoding for.
pub fn program() -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    {
        let size = (64 + 56 + CODE.len()) as u64;
        let mut elf = Vec::with_capacity(size as usize);
        // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, System V ABI, padding.
        elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
        elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: EM_X86_64
        elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
        elf.extend_from_slice(&0x40_0078u64.to_le_bytes()); // e_entry
        elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
        elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
                                                    // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        for half in [64u16, 56, 1, 0, 0, 0] {
            elf.extend_from_slice(&half.to_le_bytes());
        }
        elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
        elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
                                                    // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        for word in [0u64, 0x40_0000, 0x40_0000, size, size, 0x1000] {
            elf.extend_from_slice(&word.to_le_bytes());
        }
        elf.extend_from_slice(&CODE);
        Some(elf)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Writes the program to `dir/name` with `mode` (0o4755: setuid; 0o755: plain), owned by
/// the caller. The file must not exist (O_EXCL, O_NOFOLLOW): `dir` is a directory nsx
/// made. The mode is set with fchmod(2) on the open file, so the umask does not clear
/// the setuid bit.
pub fn install(dir: &Path, name: &str, mode: u32) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    let bytes = program().ok_or_else(|| {
        crate::error::Error::Other(format!(
            "nsx has no {NAME} program for this architecture ({})",
            std::env::consts::ARCH
        ))
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| crate::error::io("create", &path, e))?;
    f.write_all(&bytes)
        .map_err(|e| crate::error::io("write", &path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| crate::error::io("fchmod", &path, e))?;
    drop(f);
    // The file is closed: an execve(2) of a file open for writing fails with ETXTBSY.
    nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK)
        .ctx("access (X_OK)", path.display())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_program_is_a_well_formed_elf() {
        let p = program().unwrap();
        assert_eq!(p.len(), 64 + 56 + 58);
        assert_eq!(&p[..4], b"\x7fELF");
        // e_entry points at the code, right after the headers.
        assert_eq!(u64::from_le_bytes(p[24..32].try_into().unwrap()), 0x40_0078);
        // p_filesz covers the file.
        assert_eq!(
            u64::from_le_bytes(p[64 + 32..64 + 40].try_into().unwrap()),
            p.len() as u64
        );
        assert_eq!(&p[120..125], &[0xb8, 0x6b, 0, 0, 0], "geteuid first");
    }

    /// The program run as this user: it writes this process's euid and waits for its
    /// standard input to close.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_program_reports_its_euid_and_waits_for_stdin() {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path(), NAME, 0o755).unwrap();
        // ETXTBSY when another thread of the test harness forked while the file was open:
        // retry, as the busy window is only a fork's length.
        let mut child = loop {
            match Command::new(&path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
            {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let mut out = child.stdout.take().unwrap();
        let mut euid = [0u8; 4];
        out.read_exact(&mut euid).unwrap();
        assert_eq!(u32::from_le_bytes(euid), nix::unistd::geteuid().as_raw());
        // Still running: it waits for its standard input.
        assert!(child.try_wait().unwrap().is_none());
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert!(
            install(dir.path(), NAME, 0o755).is_err(),
            "never overwrites"
        );
    }
}
