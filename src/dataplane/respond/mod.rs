//! The request handler: packet bytes → response bytes, shared by UDP and TCP.
//!
//! `handle` decodes, applies the protocol rules that come before any lookup (opcode, EDNS version, meta types,
//! class), classifies the source, runs the pure lookup, and encodes the [`Answer`] with name compression, EDNS and
//! truncation. UDP and TCP differ only in the size limit and ANY handling. Nothing here does I/O or panics.

use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use crate::dns::cookie::{self, CookieKeys};
use crate::dns::rdata::{is_meta_type, rtype};
use crate::dns::wire::{self, DecodeError, Edns, Query, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN};
use crate::dns::Ede;
use crate::dns::{Rcode, Transport};
use crate::model::lookup::{self, Answer, Owner, Rr};
use crate::model::snapshot::{Snapshot, VpcIdx, ZoneIdx};

/// Our EDNS UDP payload size, and the most we send over UDP (the DNS Flag Day 2020 value).
pub const EDNS_UDP_SIZE: u16 = 1232;
/// The UDP limit without EDNS (RFC 1035 §4.2.1).
pub const PLAIN_UDP_SIZE: usize = 512;
/// The size of our OPT record with no options.
const OPT_LEN: usize = 11;
/// At most this many name positions are remembered for compression: bounds the CPU one response can cost.
const MAX_COMPRESSION_ENTRIES: usize = 64;
const CLASS_IN: u16 = 1;
/// EDNS option code of Extended DNS Errors (RFC 8914).
const EDNS_OPTION_EDE: u16 = 15;

/// What became of a request, for logging and metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: Rcode,
    pub vpc: Option<VpcIdx>,
    /// The zone that answered the query name (its owner is billed).
    pub zone: Option<ZoneIdx>,
    pub truncated: bool,
    /// The client returned a valid server cookie.
    pub cookie_valid: bool,
    /// The source is in no VPC (answered REFUSED).
    pub unclassified: bool,
}

mod recurse;

pub use recurse::{encode_resolved, OwnedRr, RecurseJob, Resolved};

/// What became of a request that may need resolving outside the private zones.
pub enum Handled {
    /// No response at all.
    Dropped,
    /// The response is in `out`.
    Answered(Outcome),
    /// The answer comes from outside: `out` is empty; the job says what to resolve (see `resolve`).
    Recurse(Outcome, Box<RecurseJob>),
}

/// Handles one request. Returns `None` when the packet must be dropped (no response at all); otherwise the
/// response is in `out`. A query that would be resolved outside the private zones gets SERVFAIL here: servers
/// with a resolver use [`handle_query`].
pub fn handle(
    packet: &[u8],
    source: IpAddr,
    local: SocketAddr,
    transport: Transport,
    snap: &Snapshot,
    cookies: Option<&CookieKeys>,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    match handle_query(packet, source, local, transport, snap, cookies, out) {
        Handled::Dropped => None,
        Handled::Answered(outcome) => Some(outcome),
        Handled::Recurse(outcome, job) => {
            let failed = Resolved::failure(crate::dns::Ede { code: 22, text: "no resolver" });
            Some(Outcome { rcode: encode_resolved(&job, &failed, 0, out).unwrap_or(Rcode::ServFail), ..outcome })
        }
    }
}

/// As [`handle`], handing a query that needs resolving outside the private zones back as a [`RecurseJob`].
pub fn handle_query(
    packet: &[u8],
    source: IpAddr,
    local: SocketAddr,
    transport: Transport,
    snap: &Snapshot,
    cookies: Option<&CookieKeys>,
    out: &mut Vec<u8>,
) -> Handled {
    out.clear();
    let query = match wire::decode(packet) {
        Ok(q) => q,
        Err(DecodeError::Drop) => return Handled::Dropped,
        Err(DecodeError::FormErr { id, flags, question_end }) => {
            let question = question_end.and_then(|end| packet.get(HEADER_LEN..end));
            write_header(out, id, flags, Rcode::FormErr, u16::from(question.is_some()), false);
            out.extend_from_slice(question.unwrap_or_default());
            return Handled::Answered(outcome(Rcode::FormErr, None, None, false));
        }
        Err(DecodeError::CookieOnly { id, flags, edns }) => {
            // RFC 7873 §5.4: a query with no question but a client cookie gets a server cookie and NOERROR.
            let cookie = reply_cookie(cookies, &edns, source);
            write_header(out, id, flags, Rcode::NoError, 0, false);
            write_opt(out, Rcode::NoError, edns, None, cookie.as_ref());
            set_count(out, 10, 1);
            return Handled::Answered(outcome(Rcode::NoError, None, None, cookie.is_some_and(|c| c.valid)));
        }
    };
    let cookie = query.edns.and_then(|edns| reply_cookie(cookies, &edns, source));
    let cookie_valid = cookie.is_some_and(|c| c.valid);
    if let Some(rcode) = precheck(&query, transport) {
        write_error(&query, rcode, cookie.as_ref(), out);
        return Handled::Answered(outcome(rcode, None, None, cookie_valid));
    }
    let Some(class) = snap.classifier.classify(local, source) else {
        write_error_with(&query, Rcode::Refused, Some(EDE_PROHIBITED), cookie.as_ref(), out);
        return Handled::Answered(Outcome { unclassified: true, ..outcome(Rcode::Refused, None, None, cookie_valid) });
    };
    let answer = lookup::lookup(snap, class.vpc, query.qname, query.qtype, transport);
    if let Some(recurse) = answer.recurse {
        let route = snap.routes.get(recurse.route as usize).cloned();
        let account = snap.vpcs.get(class.vpc as usize).map(|v| v.account.clone());
        if let (Some(route), Some(account)) = (route, account) {
            let mut target = [0u8; crate::dns::name::MAX_NAME_LEN];
            let target = crate::dns::name::lower_into(recurse.target.unwrap_or(query.qname), &mut target).to_vec();
            let job = RecurseJob {
                packet: packet.to_vec(),
                source,
                transport,
                limit: size_limit(&query, transport),
                cookie,
                vpc: class.vpc,
                account,
                route,
                reason: recurse.reason,
                target,
                qtype: query.qtype,
                prefix: OwnedRr::from_answer(&answer.answer),
                zone: answer.zone,
            };
            let pending = Outcome {
                rcode: Rcode::NoError,
                vpc: Some(class.vpc),
                zone: answer.zone,
                truncated: false,
                cookie_valid,
                unclassified: false,
            };
            return Handled::Recurse(pending, Box::new(job));
        }
    }
    let truncated = encode(&query, &answer, size_limit(&query, transport), cookie.as_ref(), out);
    Handled::Answered(Outcome {
        rcode: answer.rcode,
        vpc: Some(class.vpc),
        zone: answer.zone,
        truncated,
        cookie_valid,
        unclassified: false,
    })
}

fn outcome(rcode: Rcode, vpc: Option<VpcIdx>, zone: Option<ZoneIdx>, cookie_valid: bool) -> Outcome {
    Outcome { rcode, vpc, zone, truncated: false, cookie_valid, unclassified: false }
}

/// The COOKIE option of a reply: the client's cookie and a fresh server cookie, and whether the client's own server
/// cookie was valid (a valid cookie proves the source address; rate limiting exempts it).
#[derive(Debug, Clone, Copy)]
pub struct CookieReply {
    pub client: [u8; 8],
    pub server: [u8; cookie::SERVER_COOKIE_LEN],
    pub valid: bool,
}

fn reply_cookie(keys: Option<&CookieKeys>, edns: &Edns, source: IpAddr) -> Option<CookieReply> {
    let (keys, sent) = (keys?, edns.cookie?);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    Some(CookieReply {
        client: sent.client,
        server: cookie::server_cookie(keys, &sent.client, source, now),
        valid: cookie::is_valid(keys, &sent, source, now),
    })
}

/// The rules that answer before any lookup: opcode, EDNS version, meta query types, class.
fn precheck(query: &Query, transport: Transport) -> Option<Rcode> {
    match query.opcode {
        0 => {}
        4 | 5 => return Some(Rcode::Refused), // NOTIFY, UPDATE: we are no secondary and take no updates
        _ => return Some(Rcode::NotImp),
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        return Some(Rcode::BadVers); // RFC 6891 §6.1.3
    }
    match query.qtype {
        // AXFR is TCP-only (RFC 5936 §4.2); IXFR may come over UDP (RFC 1995 §2). Private zones are never
        // transferred.
        rtype::AXFR if transport == Transport::Udp => return Some(Rcode::FormErr),
        rtype::AXFR | rtype::IXFR => return Some(Rcode::Refused),
        rtype::MAILA | rtype::MAILB => return Some(Rcode::NotImp),
        rtype::ANY => {}
        t if is_meta_type(t) => return Some(Rcode::FormErr), // OPT, TSIG, TKEY, …: never a question
        _ => {}
    }
    if query.qclass != CLASS_IN {
        return Some(Rcode::Refused);
    }
    None
}

/// The largest response the client accepts: 512 without EDNS; with EDNS its size, at least 512 and at most ours.
pub fn size_limit(query: &Query, transport: Transport) -> usize {
    match (transport, query.edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => PLAIN_UDP_SIZE,
        (Transport::Udp, Some(e)) => (e.udp_size as usize).clamp(PLAIN_UDP_SIZE, EDNS_UDP_SIZE as usize),
    }
}

fn write_header(out: &mut Vec<u8>, id: u16, request_flags: u16, rcode: Rcode, qdcount: u16, aa: bool) {
    let mut flags = FLAG_QR | (request_flags & (0x7800 | FLAG_RD | FLAG_CD)) | (rcode as u16 & 0xF);
    if aa {
        flags |= FLAG_AA;
    }
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
}

/// An error response: header, the question echoed, and OPT when the client sent EDNS.
fn write_error(query: &Query, rcode: Rcode, cookie: Option<&CookieReply>, out: &mut Vec<u8>) {
    write_error_with(query, rcode, None, cookie, out);
}

/// As `write_error`, with an Extended DNS Error when the client speaks EDNS.
fn write_error_with(query: &Query, rcode: Rcode, ede: Option<Ede>, cookie: Option<&CookieReply>, out: &mut Vec<u8>) {
    write_header(out, query.id, query.flags, rcode, 1, false);
    out.extend_from_slice(query.question);
    if let Some(edns) = query.edns {
        write_opt(out, rcode, edns, ede, cookie);
        set_count(out, 10, 1);
    }
}

/// EDE 18, Prohibited (RFC 8914 §4.19): the source is in no VPC, so it may ask nothing here (as BIND answers a
/// client no view matches).
const EDE_PROHIBITED: Ede = Ede { code: 18, text: "" };

/// Our OPT record: our UDP size, the extended rcode bits, DO echoed, a COOKIE when the client sent one, and an
/// Extended DNS Error if any. No other option is ever echoed.
fn write_opt(out: &mut Vec<u8>, rcode: Rcode, edns: Edns, ede: Option<Ede>, cookie: Option<&CookieReply>) {
    let ext_rcode = (rcode as u16 >> 4) as u32;
    let ttl = (ext_rcode << 24) | if edns.dnssec_ok { 0x8000 } else { 0 };
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let rdlen = opt_len(ede, cookie) - OPT_LEN;
    out.extend_from_slice(&(rdlen as u16).to_be_bytes());
    if let Some(c) = cookie {
        out.extend_from_slice(&cookie::OPTION_COOKIE.to_be_bytes());
        out.extend_from_slice(&((8 + c.server.len()) as u16).to_be_bytes());
        out.extend_from_slice(&c.client);
        out.extend_from_slice(&c.server);
    }
    if let Some(ede) = ede {
        let len = 2 + ede.text.len() as u16;
        out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ede.code.to_be_bytes());
        out.extend_from_slice(ede.text.as_bytes());
    }
}

/// The size of our OPT record carrying `ede` and `cookie`.
fn opt_len(ede: Option<Ede>, cookie: Option<&CookieReply>) -> usize {
    OPT_LEN + ede.map_or(0, |e| 6 + e.text.len()) + cookie.map_or(0, |c| 4 + 8 + c.server.len())
}

fn set_count(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Encodes an answer within `limit` bytes. If the answer and authority sections do not fit, the response is the
/// header and question with TC set (the client retries over TCP); additional RRsets that do not fit are left out
/// without TC (RFC 2181 §9). Returns whether TC was set.
fn encode(query: &Query, answer: &Answer, limit: usize, cookie: Option<&CookieReply>, out: &mut Vec<u8>) -> bool {
    write_header(out, query.id, query.flags, answer.rcode, 1, answer.authoritative);
    out.extend_from_slice(query.question);
    let mut enc = Encoder::new(out, query.qname);
    let reserve = if query.edns.is_some() { opt_len(answer.ede, cookie) } else { 0 };
    let an = enc.rrsets(&answer.answer);
    let ns = enc.rrsets(&answer.authority);
    let truncated = enc.out.len() + reserve > limit;
    let (an, ns, ar) = if truncated {
        enc.out.truncate(HEADER_LEN + query.question.len());
        let flags = u16::from_be_bytes([enc.out[2], enc.out[3]]) | FLAG_TC;
        set_count(enc.out, 2, flags);
        (0, 0, 0)
    } else {
        (an, ns, enc.additional(&answer.additional, limit - reserve))
    };
    set_count(enc.out, 6, an);
    set_count(enc.out, 8, ns);
    let mut ar = ar;
    if let Some(edns) = query.edns {
        write_opt(enc.out, answer.rcode, edns, answer.ede, cookie);
        ar += 1;
    }
    set_count(enc.out, 10, ar);
    truncated
}

/// Writes records with name compression (RFC 1035 §4.1.4), compressing only the names RFC 3597 §4 allows.
struct Encoder<'o> {
    out: &'o mut Vec<u8>,
    /// Offsets of names (or name suffixes) already in the message, case as written.
    names: SmallVec<[u16; 16]>,
}

impl<'o> Encoder<'o> {
    fn new(out: &'o mut Vec<u8>, qname: &[u8]) -> Encoder<'o> {
        let mut names = SmallVec::new();
        let mut pos = 0;
        while pos < qname.len() && qname[pos] != 0 {
            names.push((HEADER_LEN + pos) as u16);
            pos += 1 + qname[pos] as usize;
        }
        Encoder { out, names }
    }

    fn rrsets(&mut self, rrs: &[Rr]) -> u16 {
        let mut count = 0u16;
        for rr in rrs {
            for rdata in rr.rrset.rdata() {
                self.record(rr.owner, rr.rrset.rtype, rr.rrset.ttl, rdata);
                count = count.saturating_add(1);
            }
        }
        count
    }

    /// Owned records (an empty owner is the query name), TTLs lowered by `aged` seconds.
    fn owned(&mut self, rrs: &[OwnedRr], aged: u32) -> u16 {
        let mut count = 0u16;
        for rr in rrs {
            let owner = if rr.owner.is_empty() { Owner::QName } else { Owner::Name(&rr.owner) };
            self.record(owner, rr.rtype, rr.ttl.saturating_sub(aged), &rr.rdata);
            count = count.saturating_add(1);
        }
        count
    }

    /// Adds whole RRsets while they fit; the first that does not fit ends the section.
    fn additional(&mut self, rrs: &[Rr], limit: usize) -> u16 {
        let mut count = 0u16;
        for rr in rrs {
            let mark = self.out.len();
            let names_mark = self.names.len();
            let added = self.rrsets(std::slice::from_ref(rr));
            if self.out.len() > limit {
                self.out.truncate(mark);
                self.names.truncate(names_mark);
                break;
            }
            count += added;
        }
        count
    }

    fn record(&mut self, owner: Owner, rtype: u16, ttl: u32, rdata: &[u8]) {
        match owner {
            Owner::QName => self.out.extend_from_slice(&(0xC000u16 | HEADER_LEN as u16).to_be_bytes()),
            Owner::Name(name) => self.name(name),
        }
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.rdata(rtype, rdata);
        let len = (self.out.len() - len_at - 2) as u16;
        set_count(self.out, len_at, len);
    }

    fn rdata(&mut self, rtype: u16, rdata: &[u8]) {
        let split = |at: usize| rdata.split_at_checked(at).filter(|(_, rest)| !rest.is_empty());
        match rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => self.name(rdata),
            rtype::MX => match split(2) {
                Some((pref, name)) => {
                    self.out.extend_from_slice(pref);
                    self.name(name);
                }
                None => self.out.extend_from_slice(rdata),
            },
            rtype::SOA => match crate::dns::name::wire_len(rdata) {
                Some(m) => match crate::dns::name::wire_len(&rdata[m..]) {
                    Some(r) => {
                        self.name(&rdata[..m]);
                        self.name(&rdata[m..m + r]);
                        self.out.extend_from_slice(&rdata[m + r..]);
                    }
                    None => self.out.extend_from_slice(rdata),
                },
                None => self.out.extend_from_slice(rdata),
            },
            _ => self.out.extend_from_slice(rdata),
        }
    }

    /// Writes an uncompressed wire name, replacing its longest suffix already in the message by a pointer.
    fn name(&mut self, name: &[u8]) {
        let mut pos = 0;
        while pos < name.len() && name[pos] != 0 {
            let suffix = &name[pos..];
            if let Some(&at) = self.names.iter().find(|&&at| self.matches(at as usize, suffix)) {
                self.out.extend_from_slice(&(0xC000 | at).to_be_bytes());
                return;
            }
            let here = self.out.len();
            if here < 0x3FFF && self.names.len() < MAX_COMPRESSION_ENTRIES {
                self.names.push(here as u16);
            }
            let len = name[pos] as usize;
            self.out.extend_from_slice(&name[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.out.push(0);
    }

    /// True when the (possibly compressed) name at `at` in the message equals `suffix` byte for byte: compression is
    /// case-sensitive, as in BIND, so every name keeps the case its zone (or the client) gave it.
    fn matches(&self, mut at: usize, suffix: &[u8]) -> bool {
        let msg = &self.out[..];
        let mut pos = 0;
        for _ in 0..=MAX_COMPRESSION_ENTRIES * 2 {
            let Some(&len) = msg.get(at) else { return false };
            if len & 0xC0 == 0xC0 {
                let Some(&low) = msg.get(at + 1) else { return false };
                at = (((len & 0x3F) as usize) << 8) | low as usize;
                continue;
            }
            let len = len as usize;
            let (Some(mine), Some(theirs)) = (suffix.get(pos..pos + 1 + len), msg.get(at..at + 1 + len)) else {
                return false;
            };
            if mine != theirs {
                return false;
            }
            if len == 0 {
                return true;
            }
            pos += 1 + len;
            at += 1 + len;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONES: &str = r#"
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
records = [
  { name = "www", type = "A", data = "10.0.0.1" },
  { name = "big", type = "TXT", data = "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"" },
]
"#;

    fn snapshot() -> Snapshot {
        crate::testing::snapshot(ZONES)
    }

    /// A query: header flags word, qname, qtype, qclass, and optional raw additional records.
    fn packet(flags: u16, qdcount: u16, qname: &[u8], qtype: u16, qclass: u16, additional: &[&[u8]]) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd];
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&qdcount.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0]);
        q.extend_from_slice(&(additional.len() as u16).to_be_bytes());
        q.extend_from_slice(qname);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        for rr in additional {
            q.extend_from_slice(rr);
        }
        q
    }

    const WWW: &[u8] = b"\x03www\x04corp\x08internal\x00";
    const OPT: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

    fn run(snap: &Snapshot, bytes: &[u8], transport: Transport) -> Option<(Vec<u8>, Outcome)> {
        let mut out = Vec::new();
        let local = "127.0.0.1:53".parse().expect("addr");
        let source = "127.0.10.9".parse().expect("addr");
        handle(bytes, source, local, transport, snap, None, &mut out).map(|o| (out, o))
    }

    fn rcode_of(resp: &[u8]) -> u8 {
        resp[3] & 0x0F
    }

    #[test]
    fn protocol_rules_before_lookup() {
        let snap = snapshot();
        let udp = Transport::Udp;
        // (flags, qdcount, qtype, qclass, expected header rcode)
        let cases: [(u16, u16, u16, u16, Option<u8>); 10] = [
            (0x0000, 1, rtype::A, 1, Some(0)),
            (0x8000, 1, rtype::A, 1, None),       // a response: dropped
            (0x0000, 0, rtype::A, 1, Some(1)),    // no question: FORMERR
            (0x0000, 2, rtype::A, 1, Some(1)),    // two questions claimed: FORMERR
            (0x2000, 1, rtype::A, 1, Some(5)),    // NOTIFY: REFUSED
            (0x2800, 1, rtype::A, 1, Some(5)),    // UPDATE: REFUSED
            (0x1000, 1, rtype::A, 1, Some(4)),    // STATUS: NOTIMP
            (0x0000, 1, rtype::AXFR, 1, Some(1)), // AXFR over UDP: FORMERR
            (0x0000, 1, rtype::OPT, 1, Some(1)),  // OPT as a question: FORMERR
            (0x0000, 1, rtype::A, 3, Some(5)),    // class CH: REFUSED
        ];
        for (flags, qd, qtype, qclass, expected) in cases {
            let result = run(&snap, &packet(flags, qd, WWW, qtype, qclass, &[]), udp);
            assert_eq!(result.map(|(r, _)| rcode_of(&r)), expected, "flags {flags:#x} qd {qd} type {qtype}");
        }
        let (resp, _) = run(&snap, &packet(0, 1, WWW, rtype::AXFR, 1, &[]), Transport::Tcp).expect("answered");
        assert_eq!(rcode_of(&resp), 5, "AXFR over TCP: REFUSED");
        assert_eq!(run(&snap, &[0u8; 11], udp).map(|r| r.1), None, "shorter than a header: dropped");
    }

    #[test]
    fn edns_version_and_sizes() {
        let snap = snapshot();
        let v1: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 1, 0, 0, 0, 0];
        let (resp, outcome) = run(&snap, &packet(0, 1, WWW, rtype::A, 1, &[v1]), Transport::Udp).expect("answered");
        assert_eq!(outcome.rcode, Rcode::BadVers);
        assert_eq!(rcode_of(&resp), 0);
        assert_eq!(resp[resp.len() - 6], 1, "extended rcode 1 (BADVERS = 16) in the OPT TTL");
        // The 600-byte TXT does not fit 512 bytes (no EDNS, or EDNS asking for less than 512) but fits 1232.
        let big = b"\x03big\x04corp\x08internal\x00";
        let (resp, o) = run(&snap, &packet(0, 1, big, rtype::TXT, 1, &[]), Transport::Udp).expect("answered");
        assert!(o.truncated && resp[2] & 0x02 != 0 && resp.len() <= 512);
        let small: &[u8] = &[0, 0, 41, 0, 100, 0, 0, 0, 0, 0, 0];
        let (_, o) = run(&snap, &packet(0, 1, big, rtype::TXT, 1, &[small]), Transport::Udp).expect("answered");
        assert!(o.truncated, "a buffer under 512 is treated as 512");
        let (resp, o) = run(&snap, &packet(0, 1, big, rtype::TXT, 1, &[OPT]), Transport::Udp).expect("answered");
        assert!(!o.truncated && resp.len() > 512 && resp.len() <= 1232);
    }

    #[test]
    fn answers_echo_the_question_and_compress_owners() {
        let snap = snapshot();
        let mixed = b"\x03WwW\x04CORP\x08internal\x00";
        let (resp, o) = run(&snap, &packet(0x0100, 1, mixed, rtype::A, 1, &[OPT]), Transport::Udp).expect("answered");
        assert_eq!(o.rcode, Rcode::NoError);
        assert_eq!(&resp[12..12 + mixed.len()], mixed);
        assert_eq!(resp[2] & 0x01, 0x01, "RD is copied");
        assert_eq!(resp[2] & 0x04, 0x04, "AA is set");
        let answer = 12 + mixed.len() + 4;
        assert_eq!(&resp[answer..answer + 2], &[0xC0, 0x0C], "the owner points at the question");
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn a_returned_server_cookie_is_recognised() {
        let snap = crate::testing::snapshot("");
        let keys = CookieKeys::random().expect("keys");
        let local = "127.0.0.1:53".parse().expect("addr");
        let source: IpAddr = "127.0.10.9".parse().expect("addr");
        let query = |cookie: &[u8]| {
            let mut q = vec![
                0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, b'w', b'w', b'w', 0, 0, 1, 0, 1, 0, 0, 41, 4, 208, 0, 0, 0, 0,
            ];
            q.extend_from_slice(&((cookie.len() + 4) as u16).to_be_bytes());
            q.extend_from_slice(&[0, 10]);
            q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
            q.extend_from_slice(cookie);
            q
        };
        let mut out = Vec::new();
        let first =
            handle(&query(&[7; 8]), source, local, Transport::Udp, &snap, Some(&keys), &mut out).expect("answer");
        assert!(!first.cookie_valid);
        let echoed = out[out.len() - 24..].to_vec();
        let second =
            handle(&query(&echoed), source, local, Transport::Udp, &snap, Some(&keys), &mut out).expect("answer");
        assert!(second.cookie_valid, "our own server cookie validates");
        let other: IpAddr = "127.0.10.8".parse().expect("addr");
        let third =
            handle(&query(&echoed), other, local, Transport::Udp, &snap, Some(&keys), &mut out).expect("answer");
        assert!(!third.cookie_valid, "from another address it does not");
    }
}
