//! Batched datagram I/O: one `recvmmsg` reads up to [`BATCH`] queries and one `sendmmsg` writes their replies.
//!
//! The system call, not the lookup, is most of what a UDP answer costs (a do-nothing echo server spends ~3.5 µs
//! per packet on loopback, the whole lookup ~0.1 µs), so moving many packets per call is what brings the cost
//! per query under one-packet-per-call servers. This is the one place with `unsafe`: the `mmsghdr` arrays handed
//! to the kernel point into buffers this module owns. Every header is rebuilt before each call (the kernel writes
//! back name and control lengths), so no stale length from an earlier packet can cut a later one.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

use nix::sys::socket::{SockaddrLike, SockaddrStorage};

/// Packets moved per system call at most.
pub(crate) const BATCH: usize = 32;
/// The largest datagram read; UDP payloads cannot be longer.
const MAX_DATAGRAM: usize = 65535;
/// Room for one IP_PKTINFO or IPV6_PKTINFO control message, in `u64`s so that it is aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram {
    pub len: usize,
    pub peer: SocketAddr,
    /// The address it was sent to: from PKTINFO on a wildcard socket, else the socket's own address.
    pub local: SocketAddr,
    /// The interface it arrived on (PKTINFO), echoed on the reply so that IPv6 link-local replies leave right.
    pub ifindex: u32,
}

/// A reply waiting to be sent.
struct Outgoing {
    /// Its index in `replies`.
    slot: usize,
    to: SocketAddr,
    /// On a wildcard socket, the address (and interface) to send from: where the query arrived.
    from: Option<(IpAddr, u32)>,
}

/// Buffers for one socket's batches: datagrams in, replies out.
pub(crate) struct Batcher {
    /// `BATCH` receive buffers of `MAX_DATAGRAM` bytes each (pages are touched only as far as packets reach).
    buffers: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    pub received: Vec<Datagram>,
    /// Replies waiting for `send`.
    outgoing: Vec<Outgoing>,
    /// One reusable reply buffer per batch slot.
    pub replies: Vec<Vec<u8>>,
    send_names: Vec<SockaddrStorage>,
}

impl Batcher {
    pub(crate) fn new() -> Batcher {
        // SAFETY: these are plain C structs for which all-zero bytes are a valid (empty) value.
        let (name, iovec, header) = unsafe { (zeroed(), zeroed(), zeroed()) };
        Batcher {
            buffers: vec![0; BATCH * MAX_DATAGRAM],
            names: vec![name; BATCH],
            controls: vec![[0; CONTROL_WORDS]; BATCH],
            iovecs: vec![iovec; BATCH],
            headers: vec![header; BATCH],
            received: Vec::with_capacity(BATCH),
            outgoing: Vec::with_capacity(BATCH),
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            send_names: Vec::with_capacity(BATCH),
        }
    }

    /// The packet and the reply buffer of slot `i` at once.
    pub(crate) fn slot(&mut self, i: usize) -> (&[u8], &mut Vec<u8>) {
        let len = self.received.get(i).map_or(0, |d| d.len);
        (&self.buffers[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len], &mut self.replies[i])
    }

    /// Blocks until at least one datagram arrives (or the socket's receive timeout passes), then takes every one
    /// already queued, up to `BATCH`. With `pktinfo`, each datagram's destination comes from its control message.
    pub(crate) fn receive(&mut self, fd: RawFd, local: SocketAddr, pktinfo: bool) -> io::Result<usize> {
        self.received.clear();
        self.outgoing.clear();
        for i in 0..BATCH {
            self.iovecs[i] =
                libc::iovec { iov_base: self.buffers[i * MAX_DATAGRAM..].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            // SAFETY: an all-zero msghdr is valid; the pointers set below stay valid for the call (they point into
            // `self`'s heap buffers, which do not move while `self` is borrowed).
            let mut hdr: libc::msghdr = unsafe { zeroed() };
            hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            if pktinfo {
                hdr.msg_control = self.controls[i].as_mut_ptr().cast();
                hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            }
            self.headers[i] = libc::mmsghdr { msg_hdr: hdr, msg_len: 0 };
        }
        // SAFETY: `headers` holds BATCH initialised headers whose buffers are owned by `self` (see above).
        let count = unsafe {
            libc::recvmmsg(fd, self.headers.as_mut_ptr(), BATCH as _, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..count as usize {
            let header = &self.headers[i];
            let peer = self.peer(i, header.msg_hdr.msg_namelen);
            let mut datagram = Datagram { len: header.msg_len as usize, peer, local, ifindex: 0 };
            if pktinfo {
                if let Some((ip, ifindex)) = destination(&header.msg_hdr) {
                    datagram.local = SocketAddr::new(ip, local.port());
                    datagram.ifindex = ifindex;
                }
            }
            self.received.push(datagram);
        }
        Ok(self.received.len())
    }

    fn peer(&self, i: usize, len: libc::socklen_t) -> SocketAddr {
        let raw = (&self.names[i] as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
        // SAFETY: the kernel wrote a socket address of `len` bytes into `names[i]`, which is large enough for any.
        let storage = unsafe { SockaddrStorage::from_raw(raw, Some(len)) };
        let addr = storage.as_ref().and_then(|s| {
            s.as_sockaddr_in().map(|v4| SocketAddr::from(*v4)).or_else(|| s.as_sockaddr_in6().map(|v6| (*v6).into()))
        });
        addr.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// Queues the reply in slot `i` for `send`, to the datagram's source and, on a wildcard socket, from its
    /// destination.
    pub(crate) fn queue_reply(&mut self, i: usize, wildcard: bool) {
        if let Some(d) = self.received.get(i) {
            let from = wildcard.then_some((d.local.ip(), d.ifindex));
            self.outgoing.push(Outgoing { slot: i, to: d.peer, from });
        }
    }

    /// Sends every queued reply, in as few calls as the kernel allows. A reply the kernel refuses is dropped (and
    /// counted in the result); the others still go.
    pub(crate) fn send(&mut self, fd: RawFd) -> usize {
        let count = self.outgoing.len();
        self.send_names.clear();
        self.send_names.extend(self.outgoing.iter().map(|o| SockaddrStorage::from(o.to)));
        for (n, Outgoing { slot, from, .. }) in self.outgoing.iter().enumerate() {
            let reply = &self.replies[*slot];
            self.iovecs[n] = libc::iovec { iov_base: reply.as_ptr() as *mut libc::c_void, iov_len: reply.len() };
            // SAFETY: as in `receive`; the kernel only reads through these pointers.
            let mut hdr: libc::msghdr = unsafe { zeroed() };
            hdr.msg_name = self.send_names[n].as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = self.send_names[n].len();
            hdr.msg_iov = &mut self.iovecs[n];
            hdr.msg_iovlen = 1;
            if let Some((ip, ifindex)) = from {
                let control = &mut self.controls[n];
                hdr.msg_control = control.as_mut_ptr().cast();
                hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
                hdr.msg_controllen = write_source(&mut hdr, *ip, *ifindex) as _;
            }
            self.headers[n] = libc::mmsghdr { msg_hdr: hdr, msg_len: 0 };
        }
        let mut dropped = 0;
        let mut start = 0;
        while start < count {
            // SAFETY: headers[start..count] were initialised above and point into buffers owned by `self`.
            let sent = unsafe { libc::sendmmsg(fd, self.headers[start..].as_mut_ptr(), (count - start) as _, 0) };
            if sent <= 0 {
                // The first remaining reply failed (the kernel reports an error only for the first message of a
                // call): drop it and go on with the rest.
                tracing::debug!(error = %io::Error::last_os_error(), "UDP send failed; response dropped");
                dropped += 1;
                start += 1;
            } else {
                start += sent as usize;
            }
        }
        self.outgoing.clear();
        dropped
    }
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher::new()
    }
}

/// The destination address and interface from a received IP_PKTINFO / IPV6_PKTINFO control message.
fn destination(hdr: &libc::msghdr) -> Option<(IpAddr, u32)> {
    // SAFETY: `hdr` is a header the kernel just filled: its control pointer and length describe valid control
    // messages within our buffer, which the CMSG macros walk without reading past `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>());
                let ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                return Some((IpAddr::V4(ip), info.ipi_ifindex as u32));
            }
            if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>());
                return Some((IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)), info.ipi6_ifindex));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// Writes a PKTINFO control message asking the kernel to send from `ip` on `ifindex`; returns its length.
fn write_source(hdr: &mut libc::msghdr, ip: IpAddr, ifindex: u32) -> usize {
    // SAFETY: `hdr.msg_control` points at CONTROL_WORDS aligned u64s, room for one cmsghdr plus either pktinfo
    // (CMSG_SPACE of in6_pktinfo is 40 bytes of the 64); CMSG_FIRSTHDR is non-null because the buffer is large
    // enough for a header.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        if cmsg.is_null() {
            return 0;
        }
        match ip {
            IpAddr::V4(v4) => {
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                let info = libc::in_pktinfo {
                    ipi_ifindex: ifindex as i32,
                    ipi_spec_dst: libc::in_addr { s_addr: u32::from(v4).to_be() },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
                libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize
            }
            IpAddr::V6(v6) => {
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                let info =
                    libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: v6.octets() }, ipi6_ifindex: ifindex };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
                libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize
            }
        }
    }
}

/// Sends one datagram to `peer` from `local` (set with IP_PKTINFO / IPV6_PKTINFO, for a socket bound to a wildcard
/// address): how an answer resolved off the batch path leaves from the address the query came to.
pub(crate) fn send_from(
    socket: &std::net::UdpSocket,
    payload: &[u8],
    peer: SocketAddr,
    local: SocketAddr,
) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let iov = [io::IoSlice::new(payload)];
    let to = SockaddrStorage::from(peer);
    let sent = match local.ip() {
        IpAddr::V4(v4) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            sendmsg(socket.as_raw_fd(), &iov, &[ControlMessage::Ipv4PacketInfo(&info)], MsgFlags::empty(), Some(&to))
        }
        IpAddr::V6(v6) => {
            let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: v6.octets() }, ipi6_ifindex: 0 };
            sendmsg(socket.as_raw_fd(), &iov, &[ControlMessage::Ipv6PacketInfo(&info)], MsgFlags::empty(), Some(&to))
        }
    };
    sent.map(|_| ()).map_err(io::Error::from)
}
