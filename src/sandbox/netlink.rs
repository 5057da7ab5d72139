//! rtnetlink(7) requests, synchronously: what `ip link` and `ip addr` send to the kernel.
//!
//! The messages are built with `netlink-packet-route` and sent over a plain
//! `netlink-sys` socket. These are the crates the async `rtnetlink` crate is made of,
//! without its tokio runtime: nsx sends one request at a time and waits for the kernel's
//! acknowledgement, and it must stay single-threaded to clone probes.
//!
//! A netlink socket belongs to the network namespace it was created in (netlink(7)), so a
//! probe that opens one inside its namespace configures its own interfaces, and nsx opens
//! one in the host's to configure the host end of a veth pair.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use crate::error::{sys, Error, Result};
use crate::sandbox::signals;

/// A NETLINK_ROUTE socket in the caller's network namespace.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    pub fn open() -> Result<Self> {
        // netlink(7): a NETLINK_ROUTE socket talks to the kernel's routing subsystem of
        // the network namespace it is created in.
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| io_err("socket", "NETLINK_ROUTE", e))?;
        socket
            .bind_auto()
            .map_err(|e| io_err("bind", "NETLINK_ROUTE", e))?;
        // Port 0 is the kernel.
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("connect", "NETLINK_ROUTE", e))?;
        Ok(Rtnl {
            socket,
            sequence: 0,
        })
    }

    /// `ip link add HOST type veth peer name PEER`: RTM_NEWLINK of kind "veth" whose
    /// VETH_INFO_PEER carries the other end (veth(4)). NLM_F_EXCL: fail with EEXIST
    /// rather than touch an interface that already has the name.
    pub fn create_veth(&mut self, host: &str, peer: &str) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "RTM_NEWLINK veth",
            host,
        )
    }

    /// `ip link set NAME alias TEXT`: RTM_NEWLINK with IFLA_IFALIAS, the free-form
    /// description of an interface (at most 255 bytes; rtnetlink(7), and
    /// /sys/class/net/NAME/ifalias). The kernel ignores it when the link is created, so
    /// it is a request of its own.
    pub fn set_alias(&mut self, name: &str, alias: &str) -> Result<()> {
        let mut msg = link_by_name(name)?;
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            0,
            "RTM_NEWLINK alias",
            name,
        )
    }

    /// `ip link show NAME`: RTM_GETLINK by index, and the IFLA_IFALIAS of the answer
    /// (`None` when the link has no alias).
    pub fn alias(&mut self, name: &str) -> Result<Option<String>> {
        let msg = link_by_name(name)?;
        let reply = self.exchange(RouteNetlinkMessage::GetLink(msg), 0, "RTM_GETLINK", name)?;
        let Some(RouteNetlinkMessage::NewLink(link)) = reply else {
            return Err(Error::Other(format!(
                "RTM_GETLINK {name}: the kernel answered without the link"
            )));
        };
        Ok(link.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::IfAlias(alias) => Some(alias),
            _ => None,
        }))
    }

    /// `ip link set NAME netns PID`: RTM_NEWLINK with IFLA_NET_NS_PID moves the interface
    /// into the network namespace of that process (rtnetlink(7)).
    pub fn move_to_netns_of(&mut self, name: &str, pid: i32) -> Result<()> {
        let mut msg = link_by_name(name)?;
        msg.attributes.push(LinkAttribute::NetNsPid(pid as u32));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            0,
            "RTM_NEWLINK netns",
            name,
        )
    }

    /// `ip link set NAME up`: IFF_UP in the flags, with IFF_UP in the change mask so no
    /// other flag is touched (rtnetlink(7), netdevice(7)).
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let mut msg = link_by_name(name)?;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::NewLink(msg), 0, "RTM_NEWLINK up", name)
    }

    /// `ip addr add ADDR/PREFIX dev NAME`: RTM_NEWADDR. For IPv4, IFA_LOCAL is the
    /// interface's address; the kernel then adds the connected route for the prefix.
    pub fn add_ipv4(&mut self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = index_of(name)?;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            "RTM_NEWADDR",
            &format!("{addr}/{prefix} dev {name}"),
        )
    }

    /// `ip link del NAME`: RTM_DELLINK. For a veth, deleting one end deletes both.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let msg = link_by_name(name)?;
        self.request(RouteNetlinkMessage::DelLink(msg), 0, "RTM_DELLINK", name)
    }

    /// Sends one request with NLM_F_ACK and waits for the kernel's answer: an
    /// NLMSG_ERROR whose code is 0 (the acknowledgement) or -errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        target: &str,
    ) -> Result<()> {
        self.exchange(message, NLM_F_ACK | flags, op, target)
            .map(|_| ())
    }

    /// Sends one request and reads the kernel's answers to it until an NLMSG_ERROR (an
    /// acknowledgement when its code is 0, else -errno) or, for a request without
    /// NLM_F_ACK, the first message it answered with, which is returned.
    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        target: &str,
    ) -> Result<Option<RouteNetlinkMessage>> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        loop {
            match self.socket.send(&buf, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => signals::check()?,
                Err(e) => return Err(io_err(op, target, e)),
            }
        }
        loop {
            let bytes = match self.socket.recv_from_full() {
                Ok((bytes, _)) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    signals::check()?;
                    continue;
                }
                Err(e) => return Err(io_err(op, target, e)),
            };
            let mut offset = 0;
            while offset < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                    .map_err(|e| Error::Other(format!("{op} {target}: bad netlink reply: {e}")))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.sequence {
                    match reply.payload {
                        NetlinkPayload::Error(err) => {
                            return match err.code {
                                None => Ok(None),
                                Some(code) => Err(sys(op, target, Errno::from_raw(-code.get()))),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

/// An RTM_*LINK message that names its interface by index.
fn link_by_name(name: &str) -> Result<LinkMessage> {
    let mut msg = LinkMessage::default();
    msg.header.index = index_of(name)?;
    Ok(msg)
}

/// if_nametoindex(3) in the caller's network namespace.
pub fn index_of(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(|e| sys("if_nametoindex", name, e))
}

/// True when the caller's network namespace has an interface called `name`.
pub fn exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

fn io_err(op: &str, target: &str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(raw) => sys(op, target, Errno::from_raw(raw)),
        None => Error::Other(format!("{op} {target}: {e}")),
    }
}
