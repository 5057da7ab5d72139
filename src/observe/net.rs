//! What a side sees of networking, from procfs and from its own network namespace.
//!
//! proc(5): `/proc/<pid>/net/*` shows the network namespace *of <pid>*, whoever reads it,
//! so the host can list a container's interfaces through `/proc/<pid>/net/dev` without
//! entering it. What procfs does not show, the state (UP/DOWN) and the address of an
//! interface, comes from ioctls (netdevice(7)), and an ioctl on a socket answers for the
//! network namespace the socket was created in: the caller's. So [`links`] reads the
//! caller's own namespace only, and the host column of a lesson can give the container's
//! interface names but not their state. That asymmetry is part of the lesson.

use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{op, Context, Result};

/// One interface of the observer's own network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    /// IFF_UP from SIOCGIFFLAGS; `None` when it could not be asked (a captured fixture).
    pub up: Option<bool>,
    /// The primary IPv4 address with its prefix, from SIOCGIFADDR and SIOCGIFNETMASK.
    pub ipv4: Option<String>,
}

impl Link {
    /// "UP", "DOWN" or "?".
    pub fn state(&self) -> &'static str {
        match self.up {
            Some(true) => "UP",
            Some(false) => "DOWN",
            None => "?",
        }
    }
}

/// `ip_forward`, relative to a procfs root: whether the namespace routes packets between
/// its interfaces (1) or only delivers packets addressed to it (0).
pub const IP_FORWARD: &str = "sys/net/ipv4/ip_forward";

/// `fb_tunnels_only_for_init_net`, relative to a procfs root: whether the tunnel modules
/// (ipip, ip_gre, sit, ip6_tunnel, ...) give every new network namespace its fallback
/// devices (0, the default), only the initial one (1), or none (2). The file exists in
/// the initial network namespace only.
pub const FB_TUNNELS: &str = "sys/net/core/fb_tunnels_only_for_init_net";

/// Networking sysctls of the reader's network namespace (files under /proc/sys/net
/// answer for the namespace of whoever opens them; network_namespaces(7)). `None`: the
/// file is not there for this reader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSysctls {
    /// net.ipv4.ip_forward.
    pub ip_forward: Option<bool>,
    /// net.core.fb_tunnels_only_for_init_net.
    pub fb_tunnels_only_for_init_net: Option<u8>,
}

/// A route of the main IPv4 table, as /proc/net/route lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dev: String,
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} dev {}", self.destination, self.prefix, self.dev)?;
        if !self.gateway.is_unspecified() {
            write!(f, " via {}", self.gateway)?;
        }
        Ok(())
    }
}

/// Interface names in a `net/dev` file, in the kernel's order. A missing file (a
/// captured fixture without one) lists nothing.
pub fn interfaces(net_dev: &Path) -> Result<Vec<String>> {
    match fs::read_to_string(net_dev) {
        Ok(text) => Ok(parse_net_dev(&text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).ctx(op::READ, net_dev.display()),
    }
}

/// `/proc/net/dev`: two header lines, then `  name: counters...`.
pub fn parse_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| !n.is_empty())
        .collect()
}

/// The observer's own interfaces: names from `<proc>/self/net/dev`, state and address
/// from ioctls. The ioctls are asked only when `proc` is a live procfs (statfs(2) says
/// PROC_SUPER_MAGIC), because only then is the list the caller's own namespace.
pub fn links(proc: &Path) -> Result<Vec<Link>> {
    let names = interfaces(&proc.join("self/net/dev"))?;
    let live = nix::sys::statfs::statfs(proc)
        .map(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        .unwrap_or(false);
    let socket = if live { inet_socket() } else { None };
    Ok(names
        .into_iter()
        .map(|name| {
            let (up, ipv4) = match &socket {
                Some(fd) => (
                    flags(fd, &name).map(|f| f & libc::IFF_UP != 0),
                    ipv4(fd, &name),
                ),
                None => (None, None),
            };
            Link { name, up, ipv4 }
        })
        .collect())
}

/// The flags word of interface `name` in the caller's network namespace (SIOCGIFFLAGS),
/// or `None` when there is no such interface.
pub fn link_flags(name: &str) -> Option<i32> {
    flags(&inet_socket()?, name)
}

/// netdevice(7): the interface ioctls work on any socket; a datagram socket is the usual
/// handle. It belongs to the caller's network namespace.
fn inet_socket() -> Option<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; a negative result is an error.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: fd is a new descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> Option<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Some(req)
}

/// SIOCGIFFLAGS (netdevice(7)): the interface's flags word (IFF_UP, IFF_LOOPBACK, ...).
fn flags(fd: &OwnedFd, name: &str) -> Option<i32> {
    let mut req = ifreq(name)?;
    // SAFETY: req is a valid ifreq naming the interface; the kernel fills ifru_flags.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    // SAFETY: after a successful SIOCGIFFLAGS the union holds the flags.
    (ret == 0).then(|| i32::from(unsafe { req.ifr_ifru.ifru_flags }))
}

/// SIOCGIFADDR and SIOCGIFNETMASK (netdevice(7)): the primary IPv4 address, as a/prefix.
/// EADDRNOTAVAIL (no address) gives `None`.
fn ipv4(fd: &OwnedFd, name: &str) -> Option<String> {
    let read = |request| {
        let mut req = ifreq(name)?;
        // SAFETY: req names the interface; the kernel fills a sockaddr_in into the union.
        let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut req) };
        if ret != 0 {
            return None;
        }
        // SAFETY: for AF_INET the union holds a sockaddr_in.
        let sin: libc::sockaddr_in = unsafe { std::mem::transmute_copy(&req.ifr_ifru.ifru_addr) };
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    };
    let addr = read(libc::SIOCGIFADDR)?;
    let mask = read(libc::SIOCGIFNETMASK)?;
    Some(format!("{addr}/{}", u32::from(mask).count_ones()))
}

/// Listening TCP sockets in a `net/tcp` file (state 0A is TCP_LISTEN).
pub fn tcp_listeners(net_tcp: &Path) -> Result<Vec<(Ipv4Addr, u16)>> {
    let text = fs::read_to_string(net_tcp).ctx(op::READ, net_tcp.display())?;
    Ok(parse_tcp_listeners(&text))
}

pub fn parse_tcp_listeners(text: &str) -> Vec<(Ipv4Addr, u16)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some((hex_ipv4(addr)?, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// The main IPv4 routing table of the reader's namespace (`/proc/net/route`, or
/// `/proc/<pid>/net/route` for another process's).
pub fn ipv4_routes(net_route: &Path) -> Result<Vec<Route>> {
    let text = fs::read_to_string(net_route).ctx(op::READ, net_route.display())?;
    Ok(parse_routes(&text))
}

/// proc(5) /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`,
/// addresses in hexadecimal, in the kernel's (little-endian on x86) byte order.
pub fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(Route {
                dev: f[0].to_string(),
                destination: hex_ipv4(f[1])?,
                gateway: hex_ipv4(f[2])?,
                prefix: u32::from(hex_ipv4(f[7])?).count_ones() as u8,
            })
        })
        .collect()
}

/// procfs prints an IPv4 address as the hex of its in-memory (network order) u32, read as
/// a native integer: `0100007F` is 127.0.0.1 on a little-endian machine.
fn hex_ipv4(hex: &str) -> Option<Ipv4Addr> {
    let raw = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(raw.to_ne_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lists_names_in_order() {
        let text = "Inter-|   Receive\n face |bytes\n    lo:       0       0 0\n  eth0: 1 2 3\nnsx42h: 0 0\n";
        assert_eq!(parse_net_dev(text), ["lo", "eth0", "nsx42h"]);
    }

    #[test]
    fn routes_are_decoded() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    nsx7h\t0049FEA9\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0\n";
        let routes = parse_routes(text);
        if cfg!(target_endian = "little") {
            assert_eq!(routes[0].to_string(), "0.0.0.0/0 dev eth0 via 192.168.2.1");
            assert_eq!(routes[1].to_string(), "169.254.73.0/30 dev nsx7h");
        }
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn tcp_listeners_are_decoded() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n   1: 0100007F:1F90 0100007F:A000 01 00000000:00000000\n";
        if cfg!(target_endian = "little") {
            assert_eq!(parse_tcp_listeners(text), [(Ipv4Addr::LOCALHOST, 8080)]);
        }
    }
}
