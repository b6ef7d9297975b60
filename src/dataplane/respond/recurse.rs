//! Answers completed outside the private zones: the job a query becomes when its name is routed to upstreams or a
//! forwarding rule, the records that come back, and their encoding next to the private part of the answer.

use std::net::IpAddr;

use super::{opt_len, set_count, write_header, write_opt, CookieReply, Encoder, Owner, Rr, FLAG_TC, HEADER_LEN};
use crate::dns::wire;
use crate::dns::{Ede, Rcode, Transport};
use crate::model::lookup;
use crate::model::snapshot::{VpcIdx, ZoneIdx};

/// A query to complete through a route: everything the answer needs once the outside part is known.
#[derive(Debug, Clone)]
pub struct RecurseJob {
    /// The request as received (decoded again to write the answer).
    pub packet: Vec<u8>,
    pub source: IpAddr,
    pub transport: Transport,
    pub limit: usize,
    pub cookie: Option<CookieReply>,
    pub vpc: VpcIdx,
    /// The account owning that VPC: resolutions are counted and cached per account.
    pub account: std::sync::Arc<str>,
    pub route: crate::model::snapshot::Route,
    pub reason: lookup::RecurseReason,
    /// The lower-case wire name to resolve (the query name, or a private CNAME's target).
    pub target: Vec<u8>,
    pub qtype: u16,
    /// The answer so far: a private CNAME chain.
    pub prefix: Vec<OwnedRr>,
    /// The zone that answered the query name when a private chain comes first (billed).
    pub zone: Option<ZoneIdx>,
}

/// A record held apart from any snapshot: owner (empty = the query name), type, TTL and uncompressed RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRr {
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
}

impl OwnedRr {
    /// The records of an answer section, owned.
    pub fn from_answer(rrs: &[Rr]) -> Vec<OwnedRr> {
        let mut out = Vec::new();
        for rr in rrs {
            let owner: Box<[u8]> = match rr.owner {
                Owner::QName => Box::new([]),
                Owner::Name(name) => name.into(),
            };
            for rdata in rr.rrset.rdata() {
                out.push(OwnedRr {
                    owner: owner.clone(),
                    rtype: rr.rrset.rtype,
                    ttl: rr.rrset.ttl,
                    rdata: rdata.into(),
                });
            }
        }
        out
    }
}

/// The outside part of an answer: what a route answered (or why it could not), ready to encode.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub rcode: Rcode,
    pub answers: Vec<OwnedRr>,
    pub authority: Vec<OwnedRr>,
    pub ede: Option<Ede>,
}

impl Resolved {
    /// SERVFAIL with an Extended DNS Error.
    pub fn failure(ede: Ede) -> Resolved {
        Resolved { rcode: Rcode::ServFail, answers: Vec::new(), authority: Vec::new(), ede: Some(ede) }
    }
}

/// Encodes the answer to a [`RecurseJob`]: the private prefix, then what was resolved, TTLs lowered by `aged`
/// seconds. RA is set (vpcdns recursed), AA is not. Returns the rcode sent, or None if the stored request no longer
/// decodes (never: it decoded once).
pub fn encode_resolved(job: &RecurseJob, resolved: &Resolved, aged: u32, out: &mut Vec<u8>) -> Option<Rcode> {
    out.clear();
    let query = wire::decode(&job.packet).ok()?;
    write_header(out, query.id, query.flags, resolved.rcode, 1, false);
    let flags = u16::from_be_bytes([out[2], out[3]]) | wire::FLAG_RA;
    set_count(out, 2, flags);
    out.extend_from_slice(query.question);
    let mut enc = Encoder::new(out, query.qname);
    let reserve = if query.edns.is_some() { opt_len(resolved.ede, job.cookie.as_ref()) } else { 0 };
    let an = enc.owned(&job.prefix, 0) + enc.owned(&resolved.answers, aged);
    let ns = enc.owned(&resolved.authority, aged);
    let truncated = enc.out.len() + reserve > job.limit;
    let (an, ns) = if truncated {
        enc.out.truncate(HEADER_LEN + query.question.len());
        let flags = u16::from_be_bytes([enc.out[2], enc.out[3]]) | FLAG_TC;
        set_count(enc.out, 2, flags);
        (0, 0)
    } else {
        (an, ns)
    };
    set_count(enc.out, 6, an);
    set_count(enc.out, 8, ns);
    let mut ar = 0;
    if let Some(edns) = query.edns {
        write_opt(enc.out, resolved.rcode, edns, resolved.ede, job.cookie.as_ref());
        ar += 1;
    }
    set_count(enc.out, 10, ar);
    Some(resolved.rcode)
}
