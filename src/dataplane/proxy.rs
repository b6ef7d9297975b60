//! The PROXY protocol v2 header (haproxy's `proxy-protocol.txt`, §2.2) that load balancers, private endpoints and
//! DNS front ends such as dnsdist put before a client's query: who the client is (its address, and in vendor TLVs
//! the VPC or endpoint it came through).
//!
//! Over UDP one header precedes every datagram; over TCP one header opens the connection. Parsing is strict and
//! allocation-free: exactly one header, at most [`MAX_HEADER`] bytes, every length checked against what is there,
//! the TLVs exactly filling the header, and the CRC32C checked when the header carries one. The header is honoured
//! only from a trusted front end (`[server] proxy_from`); that decision is the caller's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::classify::{Classifier, Sender};
use crate::model::identity::{Identity, IdentityKind};

/// The 12 bytes every v2 header starts with.
pub(crate) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part: signature, version and command, family and transport, length.
const FIXED: usize = 16;

/// The largest header taken (the fixed part included); a longer one is refused.
pub const MAX_HEADER: usize = 512;

const TLV_CRC32C: u8 = 0x03;
const TLV_ALIBABA: u8 = 0xE1;
const TLV_AWS: u8 = 0xEA;
const TLV_PSC: u8 = 0xE0;
const TLV_AZURE: u8 = 0xEE;

/// CRC-32C (Castagnoli), the checksum of TLV 0x03.
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What the front end says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The front end's own traffic (a health check): answered as from the front end itself.
    Local,
    /// Relayed for a client.
    Proxy,
}

/// A parsed header, borrowing its TLVs from the packet.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub command: Command,
    /// The client, for `Proxy` with an IPv4 or IPv6 address block (`None` for `Local` or the UNSPEC family).
    pub source: Option<SocketAddr>,
    /// The header's whole length: the query starts here.
    pub len: usize,
    tlvs: &'a [u8],
}

/// Why a header was refused: each a cause counted in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Shorter than the fixed part, or than its own length says.
    Truncated,
    /// Not the v2 signature (a v1 text header, or no header at all).
    Signature,
    /// A version other than 2, or a command other than LOCAL and PROXY.
    Version,
    /// An address family or transport this server does not take (UNIX sockets, unknown values).
    Family,
    /// Longer than [`MAX_HEADER`], or an address block longer than the header.
    TooLong,
    /// TLVs that do not exactly fill the header, or a TLV repeated where one is allowed.
    Tlv,
    /// The CRC32C TLV does not match the header.
    Checksum,
}

impl ProxyError {
    /// Every cause, in the order the metrics list them.
    pub const ALL: [ProxyError; 7] = [
        ProxyError::Truncated,
        ProxyError::Signature,
        ProxyError::Version,
        ProxyError::Family,
        ProxyError::TooLong,
        ProxyError::Tlv,
        ProxyError::Checksum,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            ProxyError::Truncated => "truncated",
            ProxyError::Signature => "signature",
            ProxyError::Version => "version",
            ProxyError::Family => "family",
            ProxyError::TooLong => "too_long",
            ProxyError::Tlv => "tlv",
            ProxyError::Checksum => "checksum",
        }
    }
}

/// Parses the header at the start of `bytes` (a datagram, or what a connection sent first).
pub fn parse(bytes: &[u8]) -> Result<Header<'_>, ProxyError> {
    let fixed = bytes.get(..FIXED).ok_or(if bytes.starts_with(&SIGNATURE[..bytes.len().min(12)]) {
        ProxyError::Truncated
    } else {
        ProxyError::Signature
    })?;
    if fixed[..12] != SIGNATURE {
        return Err(ProxyError::Signature);
    }
    let command = match fixed[12] {
        0x20 => Command::Local,
        0x21 => Command::Proxy,
        _ => return Err(ProxyError::Version),
    };
    let len = FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_HEADER {
        return Err(ProxyError::TooLong);
    }
    let header = bytes.get(..len).ok_or(ProxyError::Truncated)?;
    let body = &header[FIXED..];
    let (source, addresses) = match (command, fixed[13]) {
        // LOCAL: whatever address block there is carries nothing the receiver uses.
        (Command::Local, _) => (None, address_len(fixed[13]).unwrap_or(0)),
        (Command::Proxy, 0x00) => (None, 0),
        (Command::Proxy, family) => {
            let n = address_len(family).ok_or(ProxyError::Family)?;
            let block = body.get(..n).ok_or(ProxyError::TooLong)?;
            (Some(source_of(block)), n)
        }
    };
    let tlvs = body.get(addresses..).ok_or(ProxyError::TooLong)?;
    check_tlvs(header, tlvs)?;
    Ok(Header { command, source, len, tlvs })
}

/// The address block's length for a family/transport byte: TCP or UDP over IPv4 or IPv6.
fn address_len(family: u8) -> Option<usize> {
    match family {
        0x11 | 0x12 => Some(12),
        0x21 | 0x22 => Some(36),
        _ => None,
    }
}

/// The source address and port of an IPv4 (12-byte) or IPv6 (36-byte) address block.
fn source_of(block: &[u8]) -> SocketAddr {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    if block.len() == 12 {
        let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
        SocketAddr::new(IpAddr::V4(ip), port(8))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&block[..16]);
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port(32))
    }
}

/// Every TLV within bounds and the TLVs exactly filling the header; at most one CRC32C, and a correct one.
fn check_tlvs(header: &[u8], tlvs: &[u8]) -> Result<(), ProxyError> {
    let start = header.len() - tlvs.len();
    let mut at = 0;
    let mut crc = None;
    while at < tlvs.len() {
        let (kind, value) = tlv_at(tlvs, at).ok_or(ProxyError::Tlv)?;
        if kind == TLV_CRC32C {
            if crc.is_some() || value.len() != 4 {
                return Err(ProxyError::Tlv);
            }
            crc = Some(start + at + 3);
        }
        at += 3 + value.len();
    }
    match crc {
        Some(offset) if !crc_matches(header, offset) => Err(ProxyError::Checksum),
        _ => Ok(()),
    }
}

/// The TLV at `at`: its type and value, when it fits.
fn tlv_at(tlvs: &[u8], at: usize) -> Option<(u8, &[u8])> {
    let head = tlvs.get(at..at + 3)?;
    let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
    Some((head[0], tlvs.get(at + 3..at + 3 + len)?))
}

/// The CRC32C of the header with its checksum field (at `offset`) taken as zero, against the field.
fn crc_matches(header: &[u8], offset: usize) -> bool {
    let Some(field) = header.get(offset..offset + 4) else { return false };
    let sent = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    let mut digest = CASTAGNOLI.digest();
    digest.update(&header[..offset]);
    digest.update(&[0; 4]);
    digest.update(&header[offset + 4..]);
    digest.finalize() == sent
}

impl<'a> Header<'a> {
    /// The client's identity, when a TLV names one: the operator's own TLV type (a VPC id) first, then Alibaba's VPC
    /// id, then the endpoint ids of AWS, Alibaba, Google and Azure. Values that do not have their vendor's shape
    /// (a PSC id that is not 8 bytes, say) name nothing.
    pub fn identity(&self, custom: Option<u8>) -> Option<Identity<'a>> {
        let mut best: Option<(u8, Identity<'a>)> = None;
        let mut at = 0;
        while let Some((kind, value)) = tlv_at(self.tlvs, at) {
            at += 3 + value.len();
            let Some(found) = identity_of(kind, value, custom) else { continue };
            if best.is_none_or(|(rank, _)| found.0 < rank) {
                best = Some(found);
            }
        }
        best.map(|(_, identity)| identity)
    }
}

/// A TLV's identity with its rank (lower wins), or `None`.
fn identity_of(kind: u8, value: &[u8], custom: Option<u8>) -> Option<(u8, Identity<'_>)> {
    let id = |kind, value| Identity { kind, value };
    if Some(kind) == custom {
        return (!value.is_empty()).then(|| (0, id(IdentityKind::VpcId, value)));
    }
    let (subtype, rest) = value.split_first()?;
    match (kind, *subtype) {
        (TLV_ALIBABA, 0x01) if !rest.is_empty() => Some((1, id(IdentityKind::VpcId, rest))),
        (TLV_AWS, 0x01) if !rest.is_empty() => Some((2, id(IdentityKind::AwsEndpoint, rest))),
        (TLV_ALIBABA, 0x02) if !rest.is_empty() => Some((3, id(IdentityKind::AlibabaEndpoint, rest))),
        (TLV_PSC, _) if value.len() == 8 => Some((4, id(IdentityKind::PscConnection, value))),
        (TLV_AZURE, 0x01) if rest.len() == 4 => Some((5, id(IdentityKind::AzureLink, rest))),
        _ => None,
    }
}

/// Why a packet was dropped before it was read as a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A trusted front end sent no valid header.
    Header(ProxyError),
    /// A client that is no front end, on a listener that serves front ends only.
    NotFrontEnd,
}

impl Dropped {
    /// Every cause, for the metrics.
    pub const ALL: [Dropped; 8] = [
        Dropped::Header(ProxyError::Truncated),
        Dropped::Header(ProxyError::Signature),
        Dropped::Header(ProxyError::Version),
        Dropped::Header(ProxyError::Family),
        Dropped::Header(ProxyError::TooLong),
        Dropped::Header(ProxyError::Tlv),
        Dropped::Header(ProxyError::Checksum),
        Dropped::NotFrontEnd,
    ];

    /// The cause's index in [`Dropped::ALL`].
    pub fn index(self) -> usize {
        match self {
            Dropped::Header(e) => ProxyError::ALL.iter().position(|x| *x == e).unwrap_or(0),
            Dropped::NotFrontEnd => ProxyError::ALL.len(),
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Header(e) => e.label(),
            Dropped::NotFrontEnd => "not_front_end",
        }
    }
}

/// A packet with its sender sorted out.
#[derive(Debug, Clone, Copy)]
pub struct Relayed<'a> {
    /// The DNS message.
    pub query: &'a [u8],
    /// The client: the header's source, or the sender itself (a client talking directly, a front end's LOCAL
    /// health check, or the UNSPEC family).
    pub client: IpAddr,
    /// The VPC or endpoint the front end named.
    pub identity: Option<Identity<'a>>,
    /// The front end that relayed it.
    pub front_end: Option<IpAddr>,
}

/// Sorts out who sent `packet` (a datagram, or the first bytes of a connection) from `peer` to `local`: a trusted
/// front end's header is taken off and read, a client's packet is the query itself, and a client on a listener that
/// serves front ends only is dropped. A header from anyone but a trusted front end is never read: those bytes are
/// just a malformed query.
pub fn relay<'a>(
    classifier: &Classifier,
    local: SocketAddr,
    peer: IpAddr,
    packet: &'a [u8],
) -> Result<Relayed<'a>, Dropped> {
    match classifier.sender(local, peer) {
        Sender::Client => Ok(Relayed { query: packet, client: peer, identity: None, front_end: None }),
        Sender::Refused => Err(Dropped::NotFrontEnd),
        Sender::FrontEnd => {
            let header = parse(packet).map_err(Dropped::Header)?;
            let query = packet.get(header.len..).unwrap_or_default();
            let (client, identity) = match header.command {
                Command::Local => (peer, None),
                Command::Proxy => (header.source.map_or(peer, |s| s.ip()), header.identity(classifier.vpc_tlv())),
            };
            Ok(Relayed { query, client, identity, front_end: Some(peer) })
        }
    }
}

/// Builds a header (tests, benchmarks and the fuzz target's seeds): `source` relayed to `destination`, with
/// `tlvs` (type, value) and, when `crc`, a CRC32C TLV.
pub fn build(
    command: Command,
    datagram: bool,
    addresses: Option<(SocketAddr, SocketAddr)>,
    tlvs: &[(u8, &[u8])],
    crc: bool,
) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(if command == Command::Local { 0x20 } else { 0x21 });
    let transport = if datagram { 2 } else { 1 };
    let (family, block) = match addresses {
        Some((SocketAddr::V4(s), SocketAddr::V4(d))) => {
            let mut b = [s.ip().octets(), d.ip().octets()].concat();
            b.extend_from_slice(&s.port().to_be_bytes());
            b.extend_from_slice(&d.port().to_be_bytes());
            (0x10 | transport, b)
        }
        Some((s, d)) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                IpAddr::V6(v6) => v6.octets(),
            };
            let mut b = [v6(s), v6(d)].concat();
            b.extend_from_slice(&s.port().to_be_bytes());
            b.extend_from_slice(&d.port().to_be_bytes());
            (0x20 | transport, b)
        }
        None => (0x00, Vec::new()),
    };
    out.push(family);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&block);
    for (kind, value) in tlvs {
        out.push(*kind);
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
    let crc_at = crc.then(|| {
        out.extend_from_slice(&[TLV_CRC32C, 0, 4, 0, 0, 0, 0]);
        out.len() - 4
    });
    let len = u16::try_from(out.len() - FIXED).unwrap_or(u16::MAX);
    out[14..16].copy_from_slice(&len.to_be_bytes());
    if let Some(at) = crc_at {
        let sum = CASTAGNOLI.checksum(&out);
        out[at..at + 4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> (SocketAddr, SocketAddr) {
        (SocketAddr::from(([172, 16, 0, 9], 40000)), SocketAddr::from(([10, 0, 0, 1], 53)))
    }

    #[test]
    fn a_proxied_datagram_names_its_client_and_where_the_query_starts() {
        let mut packet = build(Command::Proxy, true, Some(client()), &[(TLV_AWS, b"\x01vpce-0abc")], true);
        let len = packet.len();
        packet.extend_from_slice(b"query");
        let header = parse(&packet).expect("valid");
        assert_eq!((header.command, header.source, header.len), (Command::Proxy, Some(client().0), len));
        let identity = header.identity(None).expect("identity");
        assert_eq!((identity.kind, identity.value), (IdentityKind::AwsEndpoint, &b"vpce-0abc"[..]));
        assert_eq!(&packet[header.len..], b"query");
    }

    #[test]
    fn ipv6_and_local_and_unspec() {
        let v6 = (
            SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 9], 5000)),
            SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 1], 53)),
        );
        let header_bytes = build(Command::Proxy, false, Some(v6), &[], false);
        let header = parse(&header_bytes).expect("valid");
        assert_eq!(header.source, Some(v6.0));
        let local_bytes = build(Command::Local, true, None, &[], false);
        let local = parse(&local_bytes).expect("valid");
        assert_eq!((local.command, local.source), (Command::Local, None));
        let unspec_bytes = build(Command::Proxy, true, None, &[], false);
        let unspec = parse(&unspec_bytes).expect("valid");
        assert_eq!(unspec.source, None, "UNSPEC: the connection's own addresses are used");
    }

    #[test]
    fn identities_rank_the_operators_tlv_first_then_the_vpc_then_endpoints() {
        let tlvs: [(u8, &[u8]); 4] = [
            (TLV_PSC, &7u64.to_be_bytes()),
            (TLV_AWS, b"\x01vpce-1"),
            (TLV_ALIBABA, b"\x01vpc-ali"),
            (0xE4, b"vpc-own"),
        ];
        let header_bytes = build(Command::Proxy, true, Some(client()), &tlvs, false);
        let header = parse(&header_bytes).expect("valid");
        assert_eq!(header.identity(Some(0xE4)).map(|i| i.value), Some(&b"vpc-own"[..]));
        assert_eq!(header.identity(None).map(|i| (i.kind, i.value)), Some((IdentityKind::VpcId, &b"vpc-ali"[..])));
        let azure_bytes = build(Command::Proxy, true, Some(client()), &[(TLV_AZURE, b"\x01\x2e\x16\0\0")], false);
        let azure = parse(&azure_bytes);
        assert_eq!(azure.expect("valid").identity(None).map(|i| i.to_string()), Some("azure:5678".into()));
        let bad_psc_bytes = build(Command::Proxy, true, Some(client()), &[(TLV_PSC, b"\x01\x02")], false);
        let bad_psc = parse(&bad_psc_bytes);
        assert_eq!(bad_psc.expect("valid").identity(None), None, "a PSC id is 8 bytes");
    }

    #[test]
    fn every_malformed_header_has_its_cause() {
        let good = build(Command::Proxy, true, Some(client()), &[(TLV_AWS, b"\x01vpce-1")], true);
        assert!(parse(&good).is_ok());
        assert_eq!(parse(&good[..10]).err(), Some(ProxyError::Truncated));
        assert_eq!(parse(&good[..good.len() - 1]).err(), Some(ProxyError::Truncated), "length past the datagram");
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n").err(), Some(ProxyError::Signature), "v1 text");
        assert_eq!(parse(&[0u8; 40]).err(), Some(ProxyError::Signature));
        let mut v = good.clone();
        v[12] = 0x11;
        assert_eq!(parse(&v).err(), Some(ProxyError::Version));
        v = good.clone();
        v[12] = 0x22;
        assert_eq!(parse(&v).err(), Some(ProxyError::Version), "unknown command");
        v = good.clone();
        v[13] = 0x31;
        assert_eq!(parse(&v).err(), Some(ProxyError::Family), "UNIX sockets");
        v = good.clone();
        v[13] = 0x13;
        assert_eq!(parse(&v).err(), Some(ProxyError::Family), "unknown transport");
        v = good.clone();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert_eq!(parse(&v).err(), Some(ProxyError::Checksum));
        // A TLV whose length runs past the header.
        let mut overflow = build(Command::Proxy, true, Some(client()), &[(TLV_AWS, b"\x01vpce-1")], false);
        let tlv_len_at = FIXED + 12 + 1;
        overflow[tlv_len_at + 1] += 1;
        assert_eq!(parse(&overflow).err(), Some(ProxyError::Tlv));
        // Too long.
        let big = vec![0u8; MAX_HEADER];
        let long = build(Command::Proxy, true, Some(client()), &[(0xE5, &big)], false);
        assert_eq!(parse(&long).err(), Some(ProxyError::TooLong));
        // An address block longer than the header.
        let mut short = build(Command::Proxy, true, None, &[], false);
        short[13] = 0x21;
        short.extend_from_slice(&[0; 8]);
        short[15] = 8;
        assert_eq!(parse(&short).err(), Some(ProxyError::TooLong));
        // Two checksums.
        let two = build(Command::Proxy, true, Some(client()), &[(TLV_CRC32C, &[0; 4])], true);
        assert_eq!(parse(&two).err(), Some(ProxyError::Tlv));
    }

    #[test]
    fn no_bytes_panic_the_parser() {
        let good = build(Command::Proxy, true, Some(client()), &[(TLV_AWS, b"\x01vpce-1")], true);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
            for bit in 0..8 {
                let mut v = good.clone();
                v[cut] ^= 1 << bit;
                if let Ok(h) = parse(&v) {
                    let _ = h.identity(Some(0xEA));
                }
            }
        }
    }
}
