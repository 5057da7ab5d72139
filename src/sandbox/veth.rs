//! A veth pair between the host and a probe, owned by a guard, on a /30 nobody else uses.
//!
//! Host safety, in order:
//! - Addresses come from a /30 in link-local space (169.254.0.0/16, RFC 3927), which is
//!   never routed off a link, so it cannot shadow a network the user reaches; the /30
//!   holding 169.254.169.254 (the cloud metadata service) is refused.
//! - Only the host end gets an address, so the only change to the host's routing table is
//!   the connected /30 route the kernel adds for it, and it goes with the interface. No
//!   NAT, no forwarding, no other route.
//! - The /30 is claimed with an abstract unix socket named after it (unix(7)): the name
//!   lives in the host's network namespace, is never a file, and is released by the kernel
//!   when nsx exits, even by SIGKILL. Concurrent runs therefore never share a /30; with
//!   the default, a busy /30 makes nsx take the next one.
//! - [`Veth`] deletes the pair when dropped: on success, on an error and on
//!   SIGINT/SIGTERM. Once the peer is in the probe's namespace, the pair also dies with
//!   that namespace, so with the probe (PR_SET_PDEATHSIG), whenever nsx dies.
//! - The host end is named `nsx<pid>h` (at most 15 bytes, IFNAMSIZ, too short for a
//!   start time) and carries the run that made it in its alias (IFLA_IFALIAS),
//!   `nsx-<pid>-<start>-veth` ([`crate::owner`]). A later run deletes a host end only
//!   when its alias names a run that is gone; an interface without such an alias (one
//!   made by nsx before it set aliases, or by anyone else) is never deleted.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::observe::net::{interfaces, ipv4_routes};
use crate::owner::{parse_name, Run};
use crate::sandbox::netlink::{self, Rtnl};

/// A /30 inside 169.254.0.0/16 that does not contain 169.254.169.254. In JSON (a
/// lesson's options, a recording) it is its text, `169.254.73.0/30`, checked again when
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet30 {
    network: Ipv4Addr,
}

impl Subnet30 {
    /// 169.254.73.0/30: nothing special about 73, except that it is not 169 (metadata)
    /// and not 0 or 255 (RFC 3927 keeps the first and last /24 aside).
    pub const DEFAULT: Subnet30 = Subnet30 {
        network: Ipv4Addr::new(169, 254, 73, 0),
    };

    pub const ACCEPTED: &'static str = "a /30 network inside 169.254.0.0/16 (link-local) written as A.B.C.D/30 with D a multiple of 4, not the one holding 169.254.169.254 (cloud metadata), e.g. 169.254.73.0/30";

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The host end's address: the first usable one.
    pub fn host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The container end's address: the second usable one.
    pub fn container(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & !3 == u32::from(self.network)
    }

    /// True when this /30 and `addr/prefix` share an address.
    pub fn overlaps(&self, addr: Ipv4Addr, prefix: u8) -> bool {
        let mask = |p: u8| {
            if p == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p.min(32)))
            }
        };
        let p = prefix.min(30);
        u32::from(self.network) & mask(p) == u32::from(addr) & mask(p)
    }

    /// The next /30 in the same /24, if any.
    fn next_in_24(&self) -> Option<Subnet30> {
        let [a, b, c, d] = self.network.octets();
        (d < 252).then(|| Subnet30 {
            network: Ipv4Addr::new(a, b, c, d + 4),
        })
    }
}

impl fmt::Display for Subnet30 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/30", self.network)
    }
}

impl FromStr for Subnet30 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{why}: expected {}", Subnet30::ACCEPTED);
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /30 prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        if prefix != "30" {
            return Err(bad(&format!("the prefix is /{prefix}, not /30")));
        }
        let [a, b, _, d] = addr.octets();
        if (a, b) != (169, 254) {
            return Err(bad(&format!("{addr} is outside 169.254.0.0/16")));
        }
        if d % 4 != 0 {
            return Err(bad(&format!("{addr} is not the first address of a /30")));
        }
        let subnet = Subnet30 { network: addr };
        if subnet.contains(Ipv4Addr::new(169, 254, 169, 254)) {
            return Err(bad(&format!(
                "{subnet} holds 169.254.169.254, the cloud metadata address"
            )));
        }
        Ok(subnet)
    }
}

impl TryFrom<String> for Subnet30 {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Subnet30> for String {
    fn from(s: Subnet30) -> String {
        s.to_string()
    }
}

/// A /30 this run holds until it is dropped.
pub struct Claim {
    pub subnet: Subnet30,
    /// Why nsx did not take the /30 it tried first, when it moved on.
    pub skipped: Vec<String>,
    _lock: UnixDatagram,
}

/// Claims `wanted` exactly when given; otherwise the first free /30 from the default on.
/// Free means: no other nsx run holds it and no host address or route of a prefix longer
/// than /16 overlaps it (the common zeroconf route 169.254.0.0/16 is fine: a /30 is more
/// specific and goes away with the veth).
pub fn claim(wanted: Option<Subnet30>) -> Result<Claim> {
    let mut candidate = Some(wanted.unwrap_or(Subnet30::DEFAULT));
    let mut skipped = Vec::new();
    while let Some(subnet) = candidate {
        match try_claim(subnet)? {
            Ok(lock) => {
                return Ok(Claim {
                    subnet,
                    skipped,
                    _lock: lock,
                })
            }
            Err(why) if wanted.is_some() => {
                return Err(Error::Other(format!(
                    "--veth-net {subnet} cannot be used: {why}; choose another /30, or leave the option out and nsx picks a free one"
                )))
            }
            Err(why) => skipped.push(format!("{subnet}: {why}")),
        }
        candidate = subnet.next_in_24();
    }
    Err(Error::Other(format!(
        "no free /30 in {}/24: {}",
        Subnet30::DEFAULT.network(),
        skipped.join("; ")
    )))
}

/// Ok(lock) when the /30 is ours now, Err(reason) when it is taken.
fn try_claim(subnet: Subnet30) -> Result<std::result::Result<UnixDatagram, String>> {
    let name = format!("nsx-veth-{subnet}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Error::Other(format!("abstract socket name {name}: {e}")))?;
    // unix(7): an abstract socket address is unique per network namespace; bind fails
    // with EADDRINUSE while another process holds it.
    let lock = match UnixDatagram::bind_addr(&addr) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Ok(Err("another nsx run is using it".into()))
        }
        Err(e) => return Err(Error::Other(format!("bind @{name}: {e}"))),
    };
    for route in ipv4_routes(std::path::Path::new("/proc/net/route"))? {
        if route.prefix > 16 && subnet.overlaps(route.destination, route.prefix) {
            return Ok(Err(format!("the host routes {route}")));
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let ip = a
                .address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| s.ip());
            if let Some(ip) = ip.filter(|ip| subnet.contains(*ip)) {
                return Ok(Err(format!("{} already has {ip}", a.interface_name)));
            }
        }
    }
    Ok(Ok(lock))
}

/// `nsx4242h` -> 4242: the name of a host end (the PID alone, as 15 bytes allow).
pub fn veth_owner(name: &str) -> Option<i32> {
    name.strip_prefix("nsx")?
        .strip_suffix('h')
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// Names of this process's veth ends.
pub fn names() -> (String, String) {
    let pid = std::process::id();
    (format!("nsx{pid}h"), format!("nsx{pid}c"))
}

/// The alias this run gives its host end: `nsx-<pid>-<start>-veth`.
pub fn alias() -> String {
    Run::current().name("veth")
}

/// Whether the host end `name` with alias `alias` is a leftover of a dead run: its name
/// is an nsx host end's, its alias names an nsx run of the same PID, and that run is no
/// longer alive. No alias, or another one, is never a leftover.
pub fn is_leftover(name: &str, alias: Option<&str>, proc: &std::path::Path) -> bool {
    let Some(pid) = veth_owner(name) else {
        return false;
    };
    let Some((run, "veth")) = alias.and_then(parse_name) else {
        return false;
    };
    i64::from(run.pid) == i64::from(pid) && !run.is_alive_in(proc)
}

/// What [`sweep`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Host ends deleted (with their peers).
    pub removed: Vec<String>,
    /// Leftovers that could not be deleted, with the reason.
    pub failed: Vec<String>,
}

/// Deletes the veth pairs in the host's namespace whose host end's alias names an nsx
/// run that is gone (a run killed with a pair still in the host's namespace).
pub fn sweep(rtnl: &mut Rtnl) -> Swept {
    let mut swept = Swept::default();
    for name in interfaces(std::path::Path::new("/proc/self/net/dev")).unwrap_or_default() {
        if veth_owner(&name).is_none() {
            continue;
        }
        // The alias as the kernel has it (rtnetlink, in nsx's own network namespace);
        // unreadable counts as none, and the interface stays.
        let alias = rtnl.alias(&name).ok().flatten();
        if !is_leftover(&name, alias.as_deref(), std::path::Path::new("/proc")) {
            continue;
        }
        match rtnl.delete(&name) {
            Ok(()) => swept.removed.push(name),
            // Gone meanwhile (another run swept it).
            Err(e) if e.errno() == Some(nix::errno::Errno::ENODEV) => {}
            Err(e) => swept.failed.push(format!("{name}: {e}")),
        }
    }
    swept
}

/// A veth pair whose host end lives in the host's network namespace. Dropping it deletes
/// the pair (RTM_DELLINK on the host end takes the peer with it, wherever the peer is).
pub struct Veth {
    pub host: String,
    pub peer: String,
    removed: bool,
}

impl Veth {
    /// Creates the pair and writes this run into the host end's alias. The guard exists
    /// before the request is sent: if nsx is interrupted while waiting for the kernel's
    /// answer, the pair is still removed. The kernel ignores an alias given with the
    /// creation, so it is a second request: a SIGKILL between the two answers leaves a
    /// pair without an owner, which no run deletes (its name still shows the PID).
    pub fn create(rtnl: &mut Rtnl) -> Result<Veth> {
        let (host, peer) = names();
        let veth = Veth {
            host,
            peer,
            removed: false,
        };
        rtnl.create_veth(&veth.host, &veth.peer)?;
        rtnl.set_alias(&veth.host, &alias())?;
        Ok(veth)
    }

    /// Deletes the pair now and reports it; the guard then has nothing left to do.
    pub fn remove(&mut self, rtnl: &mut Rtnl) -> Result<()> {
        if netlink::exists(&self.host) {
            rtnl.delete(&self.host)?;
        }
        self.removed = true;
        Ok(())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Ok(mut rtnl) = Rtnl::open() {
            // The peer is still in the host namespace if the probe never took it.
            for name in [&self.host, &self.peer] {
                if netlink::exists(name) {
                    let _ = rtnl.delete(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_link_local_and_not_metadata() {
        let d = Subnet30::DEFAULT;
        assert_eq!(d.to_string(), "169.254.73.0/30");
        assert_eq!(d.host(), Ipv4Addr::new(169, 254, 73, 1));
        assert_eq!(d.container(), Ipv4Addr::new(169, 254, 73, 2));
        assert_eq!("169.254.73.0/30".parse::<Subnet30>(), Ok(d));
    }

    #[test]
    fn bad_subnets_name_the_accepted_form() {
        for bad in [
            "169.254.73.0",
            "169.254.73.0/24",
            "169.254.73.1/30",
            "10.0.0.0/30",
            "169.254.169.252/30",
            "x/30",
        ] {
            let e = bad.parse::<Subnet30>().unwrap_err();
            assert!(e.contains("inside 169.254.0.0/16"), "{bad}: {e}");
        }
        assert!("169.254.169.252/30"
            .parse::<Subnet30>()
            .unwrap_err()
            .contains("metadata"));
    }

    #[test]
    fn overlap_is_by_prefix() {
        let d = Subnet30::DEFAULT;
        assert!(d.overlaps(Ipv4Addr::new(169, 254, 0, 0), 16));
        assert!(d.overlaps(Ipv4Addr::new(169, 254, 73, 0), 24));
        assert!(!d.overlaps(Ipv4Addr::new(169, 254, 74, 0), 24));
        assert!(d.overlaps(Ipv4Addr::new(169, 254, 73, 2), 32));
        assert!(!d.overlaps(Ipv4Addr::new(169, 254, 73, 4), 32));
    }

    #[test]
    fn stepping_stays_in_the_24() {
        let last: Subnet30 = "169.254.73.252/30".parse().unwrap();
        assert_eq!(last.next_in_24(), None);
        assert_eq!(
            Subnet30::DEFAULT.next_in_24().unwrap().to_string(),
            "169.254.73.4/30"
        );
    }

    #[test]
    fn leftovers_are_recognised_by_the_run_in_their_alias() {
        let proc = std::path::Path::new("/proc");
        let me = Run::current();
        // Two ticks after this process started: another process that got this PID
        // (one tick is the rounding a time namespace's offset may add, see owner).
        let gone = Run {
            start: me.start + 2,
            ..me
        };
        let name = format!("nsx{}h", me.pid);
        assert!(is_leftover(&name, Some(&gone.name("veth")), proc));
        // This run, whatever the binary is called, is alive.
        assert!(!is_leftover(&name, Some(&me.name("veth")), proc));
        // No alias, another alias, an alias of another PID, another kind of name: kept.
        assert!(!is_leftover(&name, None, proc));
        assert!(!is_leftover(&name, Some("uplink"), proc));
        assert!(!is_leftover(&name, Some(&gone.name("memory")), proc));
        let other = Run {
            pid: me.pid + 1,
            start: 1,
        };
        assert!(!is_leftover(&name, Some(&other.name("veth")), proc));
        assert!(!is_leftover("eth0", Some(&gone.name("veth")), proc));
        assert_eq!(alias(), me.name("veth"));
    }

    #[test]
    fn leftovers_are_recognised_by_name() {
        assert_eq!(veth_owner("nsx4242h"), Some(4242));
        assert_eq!(veth_owner("nsx4242c"), None);
        assert_eq!(veth_owner("nsxh"), None);
        assert_eq!(veth_owner("eth0"), None);
        let (h, c) = names();
        assert!(h.len() < libc::IFNAMSIZ && c.len() < libc::IFNAMSIZ);
    }
}
