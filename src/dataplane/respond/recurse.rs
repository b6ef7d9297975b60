//! Answers completed outside the private zones: the job a query becomes when its name is routed to upstreams or a
//! forwarding rule, the records that come back, and their encoding next to the private part of the answer.
// Lengths and counts here become wire fields: a cast that could truncate one must say why it cannot.
#![deny(clippy::cast_possible_truncation)]

use std::net::IpAddr;
use std::sync::Arc;

use super::{size_limit, truncate_to_question, Outcome, Request, EDNS_UDP_SIZE};
use crate::dns::cookie::CookieReply;
use crate::dns::name::{lower_into, MAX_NAME_LEN};
use crate::dns::wire::{self, opt_len, set_count, write_header, write_opt, Encoder, Owner, Query, FLAG_RA};
use crate::dns::{Ede, Rcode, Transport};
use crate::model::billing::Billed;
use crate::model::lookup::{self, Answer, Rr};
use crate::model::snapshot::{Route, RouteIdx, Snapshot, VpcIdx};

/// A query to complete through a route: everything the answer needs once the outside part is known, held apart
/// from any snapshot (a resolution may outlive the snapshot it started under).
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
    pub account: Arc<str>,
    pub route: Route,
    pub reason: lookup::RecurseReason,
    /// The lower-case wire name to resolve (the query name, or a private CNAME's target).
    pub target: Vec<u8>,
    pub qtype: u16,
    /// The answer so far: a private CNAME chain.
    pub prefix: Vec<OwnedRr>,
    /// The outcome so far (VPC, question, billing); the rcode and truncation come with the answer.
    pub outcome: Outcome,
}

impl RecurseJob {
    /// The job for a lookup that handed the name to `recurse`'s route; `None` if the snapshot has no such route or
    /// VPC (never: the lookup took both from it).
    pub(super) fn new(
        request: &Request,
        query: &Query,
        snap: &Snapshot,
        answer: &Answer,
        recurse: lookup::Recurse,
        cookie: Option<CookieReply>,
        outcome: Outcome,
    ) -> Option<RecurseJob> {
        let route = snap.routes().get(recurse.route as usize)?.clone();
        let vpc = outcome.vpc?;
        let account = snap.vpcs().get(vpc as usize)?.account.clone();
        let mut target = [0u8; MAX_NAME_LEN];
        let target = lower_into(recurse.target.unwrap_or(query.qname), &mut target).to_vec();
        let billed = billed_for(outcome.billed, &route, recurse.route);
        Some(RecurseJob {
            packet: request.packet.to_vec(),
            source: request.source,
            transport: request.transport,
            limit: size_limit(query, request.transport),
            cookie,
            vpc,
            account,
            route,
            reason: recurse.reason,
            target,
            qtype: query.qtype,
            prefix: OwnedRr::from_answer(&answer.answer),
            outcome: Outcome { billed, ..outcome },
        })
    }
}

/// A chain that starts in a private zone (a CNAME out of it, or its `fallback = "recurse"`) is the zone's; otherwise
/// the rule's owner pays for a rule's answers, and the VPC's account for the upstreams'.
fn billed_for(private: Billed, route: &Route, index: RouteIdx) -> Billed {
    match private {
        Billed::Zone(zone) => Billed::Zone(zone),
        _ if route.rule.is_some() => Billed::Rule(index),
        _ => Billed::Resolver,
    }
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
    pub(crate) fn from_answer(rrs: &[Rr]) -> Vec<OwnedRr> {
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

/// What the resolver hands back: an answer (shared with its cache) and how many seconds it has aged there.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub resolved: Arc<Resolved>,
    pub aged: u32,
}

impl Resolution {
    /// An answer just obtained.
    pub fn fresh(resolved: Resolved) -> Resolution {
        Resolution { resolved: Arc::new(resolved), aged: 0 }
    }
}

/// Encodes the answer to a [`RecurseJob`]: the private prefix, then what was resolved, TTLs lowered by the time
/// it aged in the cache. RA is set (vpcdns recursed), AA is not. Returns the finished outcome; a stored request
/// that no longer decodes (never: it decoded once) gets no response (`out` empty) and SERVFAIL.
pub fn encode_resolved(job: &RecurseJob, resolution: &Resolution, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let resolved = &*resolution.resolved;
    let Ok(query) = wire::decode(&job.packet) else {
        return Outcome { rcode: Rcode::ServFail, ..job.outcome };
    };
    write_header(out, query.id, query.flags, resolved.rcode, 1, false);
    super::set_flag(out, FLAG_RA);
    out.extend_from_slice(query.question);
    let mut enc = Encoder::new(out, query.qname);
    let reserve = if query.edns.is_some() { opt_len(resolved.ede, job.cookie.as_ref()) } else { 0 };
    let an = owned(&mut enc, &job.prefix, 0).saturating_add(owned(&mut enc, &resolved.answers, resolution.aged));
    let ns = owned(&mut enc, &resolved.authority, resolution.aged);
    let truncated = enc.written() + reserve > job.limit;
    let (an, ns) = if truncated {
        truncate_to_question(enc.out(), query.question.len());
        (0, 0)
    } else {
        (an, ns)
    };
    let out = enc.out();
    set_count(out, 6, an);
    set_count(out, 8, ns);
    let mut ar = 0;
    if let Some(edns) = query.edns {
        write_opt(out, EDNS_UDP_SIZE, resolved.rcode, edns, resolved.ede, job.cookie.as_ref());
        ar += 1;
    }
    set_count(out, 10, ar);
    Outcome { rcode: resolved.rcode, truncated, ..job.outcome }
}

/// Owned records (an empty owner is the query name), TTLs lowered by `aged` seconds; returns how many.
fn owned(enc: &mut Encoder, rrs: &[OwnedRr], aged: u32) -> u16 {
    let mut count = 0u16;
    for rr in rrs {
        let owner = if rr.owner.is_empty() { Owner::QName } else { Owner::Name(&rr.owner) };
        enc.record(owner, rr.rtype, rr.ttl.saturating_sub(aged), &rr.rdata);
        count = count.saturating_add(1);
    }
    count
}
