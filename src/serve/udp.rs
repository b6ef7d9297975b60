//! The UDP loop: one task per SO_REUSEPORT socket, receive → handle → send, with reused buffers.
//!
//! On a wildcard socket each packet's destination comes from IP_PKTINFO / IPV6_PKTINFO: it is the listener the
//! query is classified by, and the reply is sent from it (RFC 1123 §6.1.3.5: the reply's source must be the
//! address the query was sent to). A failed send drops that one response; nothing here ends the loop but the
//! socket itself failing.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage};
use tokio::io::unix::AsyncFd;

use std::sync::Arc;
use std::time::Duration;

use super::bind::UdpListener;
use super::rrl::{Limiter, Verdict};
use super::Published;
use crate::lookup::Transport;
use crate::metering::{LocalMeter, Meter};
use crate::respond;

/// The largest datagram we read; anything longer is truncated by the kernel and fails to decode.
const MAX_DATAGRAM: usize = 65535;

/// Where a datagram came from and where it was sent.
struct Received {
    len: usize,
    peer: SocketAddr,
    /// The address the datagram was sent to: the listener it is classified by.
    local: SocketAddr,
    /// Interface index from PKTINFO, echoed on the reply (needed for IPv6 link-local).
    ifindex: u32,
}

/// Serves one UDP socket until it fails.
pub async fn serve(
    listener: UdpListener,
    published: Published,
    meter: Option<Arc<Meter>>,
    cookies: super::Cookies,
    limiter: Arc<Limiter>,
) {
    let local = listener.local;
    let wildcard = listener.wildcard;
    // SAFETY: the AsyncFd takes ownership of the std socket, which owns its descriptor and keeps it open (and the
    // same) until the AsyncFd is dropped.
    let socket = match unsafe { AsyncFd::register(listener.socket) } {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%local, error = %e, "cannot register UDP socket");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
    let mut out = Vec::with_capacity(4096);
    let mut counter = meter.map(LocalMeter::new);
    loop {
        // Wake at least once a second so counts reach the shared meter even when traffic stops.
        let ready = match tokio::time::timeout(Duration::from_secs(1), socket.readable()).await {
            Ok(ready) => ready,
            Err(_) => {
                if let Some(counter) = &mut counter {
                    counter.flush();
                }
                continue;
            }
        };
        let mut guard = match ready {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(%local, error = %e, "UDP socket failed");
                return;
            }
        };
        let received = guard.try_io(|s| receive(s.as_raw_fd(), &mut buf, &mut cmsg, wildcard, local));
        let received = match received {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(%local, error = %e, "UDP receive failed");
                continue;
            }
            Err(_would_block) => continue,
        };
        let snapshot = published.load();
        let keys = cookies.load();
        let handled = respond::handle(
            &buf[..received.len],
            received.peer.ip(),
            received.local,
            Transport::Udp,
            &snapshot,
            Some(&keys),
            &mut out,
        );
        if let (Some(outcome), Some(counter)) = (&handled, &mut counter) {
            counter.record(&snapshot, outcome);
        }
        if let Some(outcome) = &handled {
            if limiter.enabled() {
                match limiter.check(received.peer.ip(), outcome.cookie_valid, std::time::Instant::now()) {
                    Verdict::Send => {}
                    Verdict::Slip => super::rrl::truncate_in_place(&mut out),
                    Verdict::Drop => continue,
                }
            }
        }
        if handled.is_some() {
            let from = wildcard.then_some((received.local.ip(), received.ifindex));
            if let Err(e) = send(socket.get_ref().as_raw_fd(), &out, received.peer, from) {
                tracing::debug!(peer = %received.peer, error = %e, "UDP send failed; response dropped");
            }
        }
    }
}

fn receive(fd: RawFd, buf: &mut [u8], cmsg: &mut Vec<u8>, wildcard: bool, local: SocketAddr) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let control = if wildcard { Some(cmsg.as_mut_slice()) } else { None };
    let msg = socket::recvmsg::<SockaddrStorage>(fd, &mut iov, control, MsgFlags::empty())?;
    let peer = msg.address.as_ref().and_then(to_socket_addr).ok_or_else(|| io::Error::other("no peer address"))?;
    let mut received = Received { len: msg.bytes, peer, local, ifindex: 0 };
    if wildcard {
        for c in msg.cmsgs()? {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    let ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                    received.local = SocketAddr::new(IpAddr::V4(ip), local.port());
                    received.ifindex = info.ipi_ifindex as u32;
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    received.local = SocketAddr::new(IpAddr::V6(ip), local.port());
                    received.ifindex = info.ipi6_ifindex;
                }
                _ => {}
            }
        }
    }
    Ok(received)
}

fn to_socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Sends a reply; on a wildcard socket from the address the query arrived on.
fn send(fd: RawFd, data: &[u8], peer: SocketAddr, from: Option<(IpAddr, u32)>) -> io::Result<()> {
    let iov = [IoSlice::new(data)];
    let dest = SockaddrStorage::from(peer);
    let sent = match from {
        Some((IpAddr::V4(ip), ifindex)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex as i32,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from(ip).to_be() },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            socket::sendmsg(fd, &iov, &[ControlMessage::Ipv4PacketInfo(&info)], MsgFlags::empty(), Some(&dest))
        }
        Some((IpAddr::V6(ip), ifindex)) => {
            let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: ip.octets() }, ipi6_ifindex: ifindex };
            socket::sendmsg(fd, &iov, &[ControlMessage::Ipv6PacketInfo(&info)], MsgFlags::empty(), Some(&dest))
        }
        None => socket::sendmsg::<SockaddrStorage>(fd, &iov, &[], MsgFlags::empty(), Some(&dest)),
    };
    sent.map(|_| ()).map_err(io::Error::from)
}
