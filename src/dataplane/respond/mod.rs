//! The request handler: a [`Request`] and its [`Context`] → response bytes, shared by UDP and TCP.
//!
//! `handle` decodes, applies the protocol rules that come before any lookup (opcode, EDNS version, meta types,
//! class), classifies the source, runs the pure lookup, and encodes the [`Answer`] with `dns::wire`'s encoder,
//! deciding what goes in: EDNS, truncation, RA for a VPC that has a resolver. UDP and TCP differ only in the size
//! limit and ANY handling. A name that resolves outside the private zones comes back as a [`RecurseJob`] for the
//! shell to complete. Nothing here does I/O, reads a clock or panics.
// Lengths and counts here become wire fields: a cast that could truncate one must say why it cannot.
#![deny(clippy::cast_possible_truncation)]

use std::net::{IpAddr, SocketAddr};

use crate::dns::cookie::{self, CookieKeys, CookieReply};
use crate::dns::rdata::{is_meta_type, rtype};
use crate::dns::wire::{
    self, opt_len, set_count, write_header, write_opt, DecodeError, Edns, Encoder, Query, FLAG_RA, FLAG_TC, HEADER_LEN,
};
use crate::dns::{Ede, Rcode, Transport};
use crate::model::billing::Billed;
use crate::model::identity::Identity;
use crate::model::lookup::{self, Answer, Rr};
use crate::model::snapshot::{Snapshot, VpcIdx};

mod recurse;

pub use recurse::{encode_resolved, OwnedRr, RecurseJob, Resolution, Resolved};

/// Our EDNS UDP payload size, and the most we send over UDP (the DNS Flag Day 2020 value).
pub(crate) const EDNS_UDP_SIZE: u16 = 1232;
/// The UDP limit without EDNS (RFC 1035 §4.2.1).
pub(crate) const PLAIN_UDP_SIZE: usize = 512;
const CLASS_IN: u16 = 1;

/// One request as it arrived: the packet, who sent it, the address it arrived on (the listener it is classified
/// by), and how.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub packet: &'a [u8],
    /// The client: the packet's sender, or the client a trusted front end's PROXY v2 header names.
    pub source: IpAddr,
    /// The address the packet arrived on (this server's own, never the front end's).
    pub local: SocketAddr,
    pub transport: Transport,
    /// The VPC or endpoint a trusted front end named in its header; when present it alone picks the VPC.
    pub identity: Option<Identity<'a>>,
}

/// What a request is answered against: the snapshot, the cookie secrets (none: cookies are not answered), and the
/// time in Unix seconds (for server cookies).
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub cookies: Option<&'a CookieKeys>,
    pub now: u32,
}

/// The question of a request, as offsets into its packet: no copy, and no second decode for the query log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuestionRef {
    /// Where the question's name ends in the packet (it starts right after the header).
    pub name_end: u16,
    pub qtype: u16,
}

impl QuestionRef {
    /// The question's name (uncompressed wire form, the client's case) in `packet`.
    pub fn name<'p>(&self, packet: &'p [u8]) -> Option<&'p [u8]> {
        packet.get(HEADER_LEN..usize::from(self.name_end))
    }
}

/// What became of a request: for the finish line (metering, metrics, the query log) and rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: Rcode,
    pub vpc: Option<VpcIdx>,
    /// Who pays for the answer (see `model::billing`).
    pub billed: Billed,
    pub truncated: bool,
    /// The client returned a valid server cookie.
    pub cookie_valid: bool,
    /// The source is in no VPC (answered REFUSED).
    pub unclassified: bool,
    /// The question, when the request had a well-formed one.
    pub question: Option<QuestionRef>,
}

impl Outcome {
    fn new(rcode: Rcode, cookie_valid: bool, question: Option<QuestionRef>) -> Outcome {
        Outcome {
            rcode,
            vpc: None,
            billed: Billed::Nobody,
            truncated: false,
            cookie_valid,
            unclassified: false,
            question,
        }
    }

    /// A NOERROR answer from the snapshot's first zone to a query from its first VPC (a fixture of the tests that
    /// count answers).
    #[cfg(test)]
    pub(crate) fn from_first_zone() -> Outcome {
        Outcome { vpc: Some(0), billed: Billed::Zone(0), ..Outcome::new(Rcode::NoError, false, None) }
    }
}

/// One finished exchange, as the finish line records it: the request, what became of it, and how long it took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    /// The query as received (behind a front end: without its PROXY v2 header).
    pub packet: &'a [u8],
    /// The client (behind a front end, the one its header named).
    pub source: IpAddr,
    /// The front end that relayed the query, if one did, and the endpoint or VPC its header named.
    pub front_end: Option<IpAddr>,
    pub identity: Option<Identity<'a>>,
    pub transport: Transport,
    pub outcome: Outcome,
    pub latency: std::time::Duration,
}

/// What became of a request.
pub enum Handled {
    /// No response at all.
    Dropped,
    /// The response is in `out`.
    Answered(Outcome),
    /// The answer comes from outside: `out` is empty; the job says what to resolve and how to answer.
    Recurse(Box<RecurseJob>),
}

impl Handled {
    /// The outcome so far of a request that gets an answer (now, or once resolved).
    pub fn pending(&self) -> Option<&Outcome> {
        match self {
            Handled::Answered(outcome) => Some(outcome),
            Handled::Recurse(job) => Some(&job.outcome),
            Handled::Dropped => None,
        }
    }

    /// Settles a request for a caller with no resolver (explain, tests, benchmarks): a name that resolves outside
    /// the private zones gets SERVFAIL with EDE 22 now. `None`: no response.
    pub fn without_resolver(self, out: &mut Vec<u8>) -> Option<Outcome> {
        match self {
            Handled::Dropped => None,
            Handled::Answered(outcome) => Some(outcome),
            Handled::Recurse(job) => {
                let failed = Resolution::fresh(Resolved::failure(Ede { code: 22, text: "no resolver" }));
                Some(encode_resolved(&job, &failed, out))
            }
        }
    }
}

/// Handles one request; the response, if any, is in `out`.
pub fn handle(request: &Request, cx: &Context, out: &mut Vec<u8>) -> Handled {
    out.clear();
    let query = match wire::decode(request.packet) {
        Ok(q) => q,
        Err(e) => return undecodable(request, cx, e, out),
    };
    let question = question_ref(&query);
    let cookie = query.edns.and_then(|edns| reply_cookie(cx, &edns, request.source));
    let cookie_valid = cookie.is_some_and(|c| c.valid);
    if let Some(rcode) = precheck(&query, request.transport) {
        write_error(&query, rcode, None, cookie.as_ref(), out);
        return Handled::Answered(Outcome::new(rcode, cookie_valid, Some(question)));
    }
    let snap = cx.snapshot;
    let classifier = snap.classifier();
    let class = match request.identity {
        Some(identity) => classifier.classify_identity(request.local, identity, request.source),
        None => classifier.classify(request.local, request.source),
    };
    let Some(class) = class else {
        write_error(&query, Rcode::Refused, Some(EDE_PROHIBITED), cookie.as_ref(), out);
        let outcome = Outcome::new(Rcode::Refused, cookie_valid, Some(question));
        return Handled::Answered(Outcome { unclassified: true, ..outcome });
    };
    let recursion = snap.vpcs().get(class.vpc as usize).is_some_and(|v| v.recursion);
    let answer = lookup::lookup(snap, class.vpc, query.qname, query.qtype, request.transport);
    let outcome = Outcome {
        vpc: Some(class.vpc),
        billed: answer.zone.map_or(Billed::Nobody, Billed::Zone),
        ..Outcome::new(answer.rcode, cookie_valid, Some(question))
    };
    if let Some(recurse) = answer.recurse {
        if let Some(job) = RecurseJob::new(request, &query, snap, &answer, recurse, cookie, outcome) {
            return Handled::Recurse(Box::new(job));
        }
    }
    let limit = size_limit(&query, request.transport);
    let truncated = encode(&query, &answer, limit, recursion, cookie.as_ref(), out);
    Handled::Answered(Outcome { truncated, ..outcome })
}

/// A packet that is not a well-formed query: dropped, FORMERR, or a cookie-only query (RFC 7873 §5.4: a query with
/// no question but a client cookie gets a server cookie and NOERROR).
fn undecodable(request: &Request, cx: &Context, error: DecodeError, out: &mut Vec<u8>) -> Handled {
    match error {
        DecodeError::Drop => Handled::Dropped,
        DecodeError::FormErr { id, flags, question_end } => {
            let question = question_end.and_then(|end| request.packet.get(HEADER_LEN..end));
            write_header(out, id, flags, Rcode::FormErr, u16::from(question.is_some()), false);
            out.extend_from_slice(question.unwrap_or_default());
            Handled::Answered(Outcome::new(Rcode::FormErr, false, None))
        }
        DecodeError::CookieOnly { id, flags, edns } => {
            let cookie = reply_cookie(cx, &edns, request.source);
            write_header(out, id, flags, Rcode::NoError, 0, false);
            write_opt(out, EDNS_UDP_SIZE, Rcode::NoError, edns, None, cookie.as_ref());
            set_count(out, 10, 1);
            Handled::Answered(Outcome::new(Rcode::NoError, cookie.is_some_and(|c| c.valid), None))
        }
    }
}

fn question_ref(query: &Query) -> QuestionRef {
    let name_end = u16::try_from(HEADER_LEN + query.qname.len()).unwrap_or(u16::MAX);
    QuestionRef { name_end, qtype: query.qtype }
}

fn reply_cookie(cx: &Context, edns: &Edns, source: IpAddr) -> Option<CookieReply> {
    Some(cookie::reply(cx.cookies?, edns.cookie.as_ref()?, source, cx.now))
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
pub(crate) fn size_limit(query: &Query, transport: Transport) -> usize {
    match (transport, query.edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => PLAIN_UDP_SIZE,
        (Transport::Udp, Some(e)) => (e.udp_size as usize).clamp(PLAIN_UDP_SIZE, EDNS_UDP_SIZE as usize),
    }
}

/// An error response: header, the question echoed, and OPT (with the Extended DNS Error, if any) when the client
/// sent EDNS.
fn write_error(query: &Query, rcode: Rcode, ede: Option<Ede>, cookie: Option<&CookieReply>, out: &mut Vec<u8>) {
    write_header(out, query.id, query.flags, rcode, 1, false);
    out.extend_from_slice(query.question);
    if let Some(edns) = query.edns {
        write_opt(out, EDNS_UDP_SIZE, rcode, edns, ede, cookie);
        set_count(out, 10, 1);
    }
}

/// EDE 18, Prohibited (RFC 8914 §4.19): the source is in no VPC, so it may ask nothing here (as BIND answers a
/// client no view matches).
const EDE_PROHIBITED: Ede = Ede { code: 18, text: "" };

/// Sets a header flag of the message being written.
fn set_flag(out: &mut [u8], flag: u16) {
    if let Some(&[high, low]) = out.get(2..4) {
        set_count(out, 2, u16::from_be_bytes([high, low]) | flag);
    }
}

/// Empties a message down to its header and question and sets TC: the client retries over TCP.
fn truncate_to_question(out: &mut Vec<u8>, question_len: usize) {
    out.truncate(HEADER_LEN + question_len);
    set_flag(out, FLAG_TC);
}

/// Encodes an answer within `limit` bytes. If the answer and authority sections do not fit, the response is the
/// header and question with TC set (the client retries over TCP); additional RRsets that do not fit are left out
/// without TC (RFC 2181 §9). RA is set for a VPC offered recursion. Returns whether TC was set.
fn encode(
    query: &Query,
    answer: &Answer,
    limit: usize,
    recursion: bool,
    cookie: Option<&CookieReply>,
    out: &mut Vec<u8>,
) -> bool {
    write_header(out, query.id, query.flags, answer.rcode, 1, answer.authoritative);
    if recursion {
        set_flag(out, FLAG_RA);
    }
    out.extend_from_slice(query.question);
    let mut enc = Encoder::new(out, query.qname);
    let reserve = if query.edns.is_some() { opt_len(answer.ede, cookie) } else { 0 };
    let an = rrsets(&mut enc, &answer.answer);
    let ns = rrsets(&mut enc, &answer.authority);
    let truncated = enc.written() + reserve > limit;
    let (an, ns, ar) = if truncated {
        truncate_to_question(enc.out(), query.question.len());
        (0, 0, 0)
    } else {
        (an, ns, additional(&mut enc, &answer.additional, limit - reserve))
    };
    let out = enc.out();
    set_count(out, 6, an);
    set_count(out, 8, ns);
    let mut ar = ar;
    if let Some(edns) = query.edns {
        write_opt(out, EDNS_UDP_SIZE, answer.rcode, edns, answer.ede, cookie);
        ar += 1;
    }
    set_count(out, 10, ar);
    truncated
}

/// Writes every record of the RRsets; returns how many.
fn rrsets(enc: &mut Encoder, rrs: &[Rr]) -> u16 {
    let mut count = 0u16;
    for rr in rrs {
        for rdata in rr.rrset.rdata() {
            enc.record(rr.owner, rr.rrset.rtype, rr.rrset.ttl, rdata);
            count = count.saturating_add(1);
        }
    }
    count
}

/// Adds whole RRsets while they fit within `limit`; the first that does not fit ends the section.
fn additional(enc: &mut Encoder, rrs: &[Rr], limit: usize) -> u16 {
    let mut count = 0u16;
    for rr in rrs {
        let mark = enc.mark();
        let added = rrsets(enc, std::slice::from_ref(rr));
        if enc.written() > limit {
            enc.rollback(mark);
            break;
        }
        count = count.saturating_add(added);
    }
    count
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
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
        let request = Request { packet: bytes, source, local, transport, identity: None };
        let cx = Context { snapshot: snap, cookies: None, now: 0 };
        let outcome = handle(&request, &cx, &mut out).without_resolver(&mut out);
        outcome.map(|o| (out, o))
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
#[allow(clippy::cast_possible_truncation)]
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
        let cx = Context { snapshot: &snap, cookies: Some(&keys), now: 1_700_000_000 };
        let ask = |packet: &[u8], source: IpAddr, out: &mut Vec<u8>| {
            let request = Request { packet, source, local, transport: Transport::Udp, identity: None };
            handle(&request, &cx, out).without_resolver(out).expect("answer")
        };
        let first = ask(&query(&[7; 8]), source, &mut out);
        assert!(!first.cookie_valid);
        let echoed = out[out.len() - 24..].to_vec();
        let second = ask(&query(&echoed), source, &mut out);
        assert!(second.cookie_valid, "our own server cookie validates");
        let other: IpAddr = "127.0.10.8".parse().expect("addr");
        let third = ask(&query(&echoed), other, &mut out);
        assert!(!third.cookie_valid, "from another address it does not");
    }
}
