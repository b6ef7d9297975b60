//! Binding: every `[server].listen` address on UDP (several SO_REUSEPORT sockets, one per worker) and TCP.
//!
//! Port 0 picks one port that is free on both UDP and TCP, so tests can run servers side by side. A wildcard
//! address asks the kernel for each packet's destination (IP_PKTINFO / IPV6_RECVPKTINFO), so that the UDP loop
//! can classify by the address the query arrived on and reply from it.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use anyhow::{bail, Context};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

/// A bound UDP socket and what the loop needs to know about it.
pub(crate) struct UdpListener {
    pub socket: std::net::UdpSocket,
    /// The bound address (with the real port when port 0 was asked for).
    pub local: SocketAddr,
    /// Bound to 0.0.0.0 or ::: the destination of each packet comes from IP_PKTINFO.
    pub wildcard: bool,
}

/// Everything bound, ready to serve.
pub(crate) struct Bound {
    pub udp: Vec<UdpListener>,
    pub tcp: Vec<std::net::TcpListener>,
    /// The addresses actually served, in `[server].listen` order.
    pub addresses: Vec<SocketAddr>,
}

/// How many times port 0 is retried when the UDP port picked is taken on TCP.
const PORT_PICK_TRIES: usize = 32;

/// Binds every address on UDP (`udp_sockets` sockets each) and TCP.
pub(crate) fn bind_all(listen: &[SocketAddr], udp_sockets: usize) -> anyhow::Result<Bound> {
    let mut bound = Bound { udp: Vec::new(), tcp: Vec::new(), addresses: Vec::new() };
    for addr in listen {
        let (udp, tcp, actual) = bind_one(*addr, udp_sockets.max(1))?;
        bound.udp.extend(udp);
        bound.tcp.push(tcp);
        bound.addresses.push(actual);
    }
    Ok(bound)
}

fn bind_one(
    addr: SocketAddr,
    udp_sockets: usize,
) -> anyhow::Result<(Vec<UdpListener>, std::net::TcpListener, SocketAddr)> {
    let tries = if addr.port() == 0 { PORT_PICK_TRIES } else { 1 };
    let mut last_error = None;
    for _ in 0..tries {
        let first = udp_socket(addr).with_context(|| format!("cannot bind UDP {addr}"))?;
        let actual = first.local;
        match tcp_listener(actual) {
            Ok(tcp) => {
                let mut udp = vec![first];
                for _ in 1..udp_sockets {
                    udp.push(udp_socket(actual).with_context(|| format!("cannot bind UDP {actual}"))?);
                }
                return Ok((udp, tcp, actual));
            }
            Err(e) => last_error = Some(e.context(format!("cannot bind TCP {actual}"))),
        }
    }
    match last_error {
        Some(e) => Err(e),
        None => bail!("cannot bind {addr}"),
    }
}

fn new_socket(addr: SocketAddr, kind: SockType) -> anyhow::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, kind, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    if addr.is_ipv6() {
        // [::] and 0.0.0.0 are separate listeners; IPv4 arrives on the IPv4 one.
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
}

fn udp_socket(addr: SocketAddr) -> anyhow::Result<UdpListener> {
    let fd = new_socket(addr, SockType::Datagram)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    let wildcard = addr.ip().is_unspecified();
    if wildcard {
        if addr.is_ipv4() {
            socket::setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        } else {
            socket::setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
        }
    }
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr))?;
    let socket = std::net::UdpSocket::from(fd);
    let local = socket.local_addr()?;
    Ok(UdpListener { socket, local, wildcard })
}

fn tcp_listener(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let fd = new_socket(addr, SockType::Stream)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, socket::Backlog::new(1024).unwrap_or(socket::Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}
