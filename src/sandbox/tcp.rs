//! A TCP round trip that proves itself: the client sends a random token, the server
//! answers with its bitwise complement, the client checks it. A fixed string could come
//! from anywhere; this reply can only come from a server that read this token.
//!
//! Everything blocks with a timeout, and an interrupted call (SIGINT, SIGTERM) ends the
//! lesson through `signals::check`, so no leg can hang a run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sandbox::signals;

/// How long any one step of a round trip may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// One side of one connection, as that side saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// Where this side was: "169.254.73.1:41234".
    pub local: String,
    /// The other side's address as this side saw it.
    pub peer: String,
    /// What this side wrote (a token, or the reply).
    pub sent: String,
    /// What this side read.
    pub received: String,
    /// What went wrong, if the round trip did not complete.
    pub error: Option<String>,
}

/// A random token: 32 bits from getrandom(2), written 0x%08x.
pub fn token() -> String {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    let value = if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        // No getrandom: the time still differs from run to run.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id())
            .unwrap_or(0x5eed)
    };
    format!("0x{value:08x}")
}

/// The answer to `token`: its bitwise complement. `None` for something that is no token.
pub fn reply(token: &str) -> Option<String> {
    let value = u32::from_str_radix(token.strip_prefix("0x")?, 16).ok()?;
    Some(format!("0x{:08x}", !value))
}

/// True when the client's leg got the right answer and the server read the client's token.
pub fn round_trip_ok(client: &Leg, server: &Leg) -> bool {
    client.error.is_none()
        && server.error.is_none()
        && server.received == client.sent
        && reply(&client.sent).as_deref() == Some(client.received.as_str())
        && server.sent == client.received
}

/// Connects to `to`, sends a fresh token, reads the reply. Errors other than an
/// interruption are recorded in the leg: a failed round trip is an observation.
pub fn call(to: SocketAddr) -> Result<Leg> {
    let mut leg = Leg {
        peer: to.to_string(),
        sent: token(),
        ..Leg::default()
    };
    let outcome = (|| -> Result<()> {
        let mut stream =
            TcpStream::connect_timeout(&to, TIMEOUT).map_err(|e| other("connect", &to, e))?;
        signals::check()?;
        leg.local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        write_line(&mut stream, &leg.sent, &to)?;
        leg.received = read_line(&mut stream, &to)?;
        Ok(())
    })();
    record(&mut leg, outcome)?;
    Ok(leg)
}

/// Accepts one connection on `listener`, reads a token, answers with its reply.
pub fn serve_one(listener: &TcpListener) -> Result<Leg> {
    let mut leg = Leg {
        local: listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        ..Leg::default()
    };
    let outcome = (|| -> Result<()> {
        wait_readable(listener, "accept")?;
        let (mut stream, peer) = listener
            .accept()
            .map_err(|e| other("accept", &leg.local, e))?;
        leg.peer = peer.to_string();
        stream.set_nonblocking(false).ok();
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        leg.received = read_line(&mut stream, &peer)?;
        leg.sent = reply(&leg.received).unwrap_or_else(|| "not a token".into());
        write_line(&mut stream, &leg.sent, &peer)
    })();
    record(&mut leg, outcome)?;
    Ok(leg)
}

/// Waits until process `pid`'s network namespace lists a TCP listener on `addr`, read
/// from /proc/<pid>/net/tcp (proc(5)): the sign that a probe is ready for a connection.
/// Returns every listener that file showed.
pub fn wait_for_listener(pid: i32, addr: SocketAddr) -> Result<Vec<(std::net::Ipv4Addr, u16)>> {
    let path = format!("/proc/{pid}/net/tcp");
    let want = match addr {
        SocketAddr::V4(a) => (*a.ip(), a.port()),
        SocketAddr::V6(_) => return Err(Error::Internal("IPv4 listeners only".into())),
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        signals::check()?;
        let listeners = crate::observe::net::tcp_listeners(std::path::Path::new(&path))?;
        if listeners.contains(&want) {
            return Ok(listeners);
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "nothing listened on {addr} within {}s ({path} lists {listeners:?})",
                TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A listener whose accept never blocks forever: [`serve_one`] polls it.
pub fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).map_err(|e| io_sys("bind", &addr, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io_sys("fcntl O_NONBLOCK", &addr, e))?;
    Ok(listener)
}

fn record(leg: &mut Leg, outcome: Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e @ Error::Interrupted(_)) => Err(e),
        Err(e) => {
            leg.error = Some(e.to_string());
            Ok(())
        }
    }
}

/// poll(2) for POLLIN with [`TIMEOUT`]; EINTR ends the lesson if a signal is pending.
fn wait_readable(fd: &impl AsFd, what: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Other(format!(
                "{what}: nothing within {}s",
                TIMEOUT.as_secs()
            )));
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => signals::check()?,
            Err(e) => return Err(crate::error::sys("poll", what, e)),
        }
    }
}

fn write_line(stream: &mut TcpStream, text: &str, to: &dyn std::fmt::Display) -> Result<()> {
    let line = format!("{text}\n");
    let mut done = 0;
    while done < line.len() {
        match stream.write(&line.as_bytes()[done..]) {
            Ok(0) => return Err(Error::Other(format!("write to {to}: connection closed"))),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
            Err(e) => return Err(other("write", to, e)),
        }
    }
    Ok(())
}

/// Reads one short line (a token is 10 bytes); the read timeout bounds the wait.
fn read_line(stream: &mut TcpStream, from: &dyn std::fmt::Display) -> Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 64];
    while !buf.contains(&b'\n') && buf.len() < 64 {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
            Err(e) => return Err(other("read", from, e)),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    match text.split_once('\n') {
        Some((line, _)) => Ok(line.to_string()),
        None => Err(Error::Other(format!(
            "read from {from}: no complete line ({text:?})"
        ))),
    }
}

fn other(op: &str, target: &dyn std::fmt::Display, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::Interrupted {
        if let Err(i) = signals::check() {
            return i;
        }
    }
    io_sys(op, target, e)
}

fn io_sys(op: &str, target: &dyn std::fmt::Display, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(raw) => crate::error::sys(op, target, Errno::from_raw(raw)),
        None => Error::Other(format!("{op} {target}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_is_the_complement() {
        assert_eq!(reply("0x00000000").as_deref(), Some("0xffffffff"));
        assert_eq!(reply("0x3fa9c2d1").as_deref(), Some("0xc0563d2e"));
        assert_eq!(reply("hello"), None);
        let t = token();
        assert!(t.starts_with("0x") && t.len() == 10, "{t}");
        assert_eq!(reply(&reply(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn a_round_trip_needs_both_sides_to_agree() {
        let client = Leg {
            sent: "0x00000001".into(),
            received: "0xfffffffe".into(),
            ..Leg::default()
        };
        let server = Leg {
            received: "0x00000001".into(),
            sent: "0xfffffffe".into(),
            ..Leg::default()
        };
        assert!(round_trip_ok(&client, &server));
        let wrong = Leg {
            received: "0x00000002".into(),
            ..server.clone()
        };
        assert!(!round_trip_ok(&client, &wrong));
    }
}
