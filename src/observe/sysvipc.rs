//! /proc/sysvipc/{shm,msg}: the System V IPC objects of the *reader's* IPC namespace.
//!
//! proc(5), sysvipc(7): these tables are not per process. Opening them lists the objects
//! of the IPC namespace the opener is in, so the host cannot look into a probe's IPC
//! namespace through /proc/<pid>: the same path gives each side its own table.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{op, Context, Error, Result};

/// The two tables the ipc lesson compares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvIpc {
    pub shm: Vec<ShmSegment>,
    pub msg: Vec<MsgQueue>,
}

impl SysvIpc {
    pub fn is_empty(&self) -> bool {
        self.shm.is_empty() && self.msg.is_empty()
    }

    pub fn shm_with_key(&self, key: i32) -> Option<&ShmSegment> {
        self.shm.iter().find(|s| s.key == key)
    }

    pub fn msg_with_key(&self, key: i32) -> Option<&MsgQueue> {
        self.msg.iter().find(|m| m.key == key)
    }
}

/// One line of /proc/sysvipc/shm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShmSegment {
    pub key: i32,
    /// shmid
    pub id: i32,
    /// Permission bits, in octal as the file shows them.
    pub perms: String,
    pub size: u64,
    /// PID of the creator, as the reader's PID namespace numbers it.
    pub cpid: i32,
    pub nattch: u64,
    /// Owner, as the reader's user namespace numbers it.
    pub uid: u32,
}

/// One line of /proc/sysvipc/msg.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgQueue {
    pub key: i32,
    /// msqid
    pub id: i32,
    pub perms: String,
    /// Bytes of messages waiting.
    pub cbytes: u64,
    /// Messages waiting.
    pub qnum: u64,
    /// PID of the last msgsnd(2).
    pub lspid: i32,
    pub uid: u32,
}

/// Reads `<proc>/sysvipc/shm` and `msg`. A kernel without System V IPC has neither:
/// empty tables.
pub fn read_sysvipc(proc: &Path) -> Result<SysvIpc> {
    let shm = read_table(&proc.join("sysvipc/shm"))?
        .iter()
        .map(|r| {
            Ok(ShmSegment {
                key: r.num("key")?,
                id: r.num("shmid")?,
                perms: r.text("perms")?,
                size: r.num("size")?,
                cpid: r.num("cpid")?,
                nattch: r.num("nattch")?,
                uid: r.num("uid")?,
            })
        })
        .collect::<Result<_>>()?;
    let msg = read_table(&proc.join("sysvipc/msg"))?
        .iter()
        .map(|r| {
            Ok(MsgQueue {
                key: r.num("key")?,
                id: r.num("msqid")?,
                perms: r.text("perms")?,
                cbytes: r.num("cbytes")?,
                qnum: r.num("qnum")?,
                lspid: r.num("lspid")?,
                uid: r.num("uid")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SysvIpc { shm, msg })
}

/// One data line, with the header's column names: new kernels add columns (rss, swap)
/// at the end, so columns are found by name, not by position.
struct Record<'a> {
    path: &'a Path,
    fields: HashMap<String, String>,
}

impl Record<'_> {
    fn text(&self, column: &str) -> Result<String> {
        self.fields.get(column).cloned().ok_or_else(|| {
            Error::Other(format!(
                "parse {}: no column {column:?}",
                self.path.display()
            ))
        })
    }

    fn num<N: std::str::FromStr>(&self, column: &str) -> Result<N> {
        let text = self.text(column)?;
        text.parse().map_err(|_| {
            Error::Other(format!(
                "parse {}: {column} is {text:?}, not a number",
                self.path.display()
            ))
        })
    }
}

fn read_table(path: &Path) -> Result<Vec<Record<'_>>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(parse_table(path, &text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).ctx(op::READ, path.display()),
    }
}

/// Splits a table whose first line names the columns into records.
fn parse_table<'a>(path: &'a Path, text: &str) -> Vec<Record<'a>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .map(|h| h.split_whitespace().collect())
        .unwrap_or_default();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| Record {
            path,
            fields: header
                .iter()
                .zip(line.split_whitespace())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .collect()
}
