//! The lookup: (snapshot, VPC, question) → [`Answer`], the pure heart of the server.
//!
//! RFC 1034 §4.3.2 over the zones one VPC sees: the most specific visible zone answers, authoritatively; wildcards
//! per RFC 4592; CNAME chains followed as BIND 9 follows them (and, deliberately unlike BIND, into other zones the
//! same VPC sees). The answer holds references into the snapshot and says which zone answered (the billed one) and
//! which zones contributed records. No I/O, no locks, no heap allocation for answers of up to four RRsets.

use smallvec::SmallVec;

use crate::name::{lower_into, MAX_NAME_LEN};
use crate::rdata::rtype;
use crate::snapshot::{additional_target, NameMatch, RRset, Snapshot, View, VpcIdx, ZoneIdx};

/// How many CNAMEs a chain may hold: BIND 9.18 restarts a query at most 16 times (`MAX_RESTARTS`), then answers
/// with the chain so far.
pub const MAX_CNAME_CHAIN: usize = 16;
/// Additional-section RRsets at the most: bounds the work one MX/SRV/NS answer can cause.
pub const MAX_ADDITIONAL_RRSETS: usize = 16;

/// Response codes (RFC 1035 §4.1.1, RFC 6891 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
    BadVers = 16,
}

impl Rcode {
    pub fn name(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::BadVers => "BADVERS",
        }
    }
}

/// The transport a query came over: ANY is minimal over UDP only (RFC 8482 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The owner name an RRset is rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'s> {
    /// The query name exactly as the client wrote it (rendered as a pointer to the question).
    QName,
    /// An uncompressed wire name held by the snapshot (a CNAME target, an additional-section name, an apex).
    Name(&'s [u8]),
}

/// One RRset in a response, and the zone it came from.
#[derive(Debug, Clone, Copy)]
pub struct Rr<'s> {
    pub owner: Owner<'s>,
    pub rrset: &'s RRset,
    pub zone: ZoneIdx,
}

/// The result of a lookup, before encoding.
#[derive(Debug)]
pub struct Answer<'s> {
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answer: SmallVec<[Rr<'s>; 4]>,
    pub authority: SmallVec<[Rr<'s>; 1]>,
    pub additional: SmallVec<[Rr<'s>; 4]>,
    /// The zone that answered the query name: its owner is billed. `None` when no visible zone holds the name.
    pub zone: Option<ZoneIdx>,
}

impl<'s> Answer<'s> {
    /// REFUSED: no AA, no records (the name lies in no zone this VPC sees, or the source is in no VPC).
    pub fn refused() -> Answer<'s> {
        Answer {
            rcode: Rcode::Refused,
            authoritative: false,
            answer: SmallVec::new(),
            authority: SmallVec::new(),
            additional: SmallVec::new(),
            zone: None,
        }
    }

    /// Every zone that contributed a record, in order of first contribution, without repeats.
    pub fn contributors(&self) -> SmallVec<[ZoneIdx; 4]> {
        let mut zones: SmallVec<[ZoneIdx; 4]> = SmallVec::new();
        let all = self.answer.iter().chain(&self.authority).chain(&self.additional);
        for rr in all {
            if !zones.contains(&rr.zone) {
                zones.push(rr.zone);
            }
        }
        zones
    }

    fn holds(&self, rrset: &RRset) -> bool {
        let all = self.answer.iter().chain(&self.additional);
        all.into_iter().any(|rr| std::ptr::eq(rr.rrset, rrset))
    }
}

/// Answers `qname`/`qtype` (class IN) for VPC `vpc` from `snap`. `qname` is the question's uncompressed wire name
/// in the client's case.
pub fn lookup<'s>(snap: &'s Snapshot, vpc: VpcIdx, qname: &[u8], qtype: u16, transport: Transport) -> Answer<'s> {
    let Some(view) = snap.views.get(vpc as usize) else {
        return Answer::refused();
    };
    let mut buf = [0u8; MAX_NAME_LEN];
    let len = lower_into(qname, &mut buf).len();
    let Some(first_zone) = view.find_zone(&buf[..len]) else {
        return Answer::refused();
    };
    let mut answer = Answer {
        rcode: Rcode::NoError,
        authoritative: true,
        answer: SmallVec::new(),
        authority: SmallVec::new(),
        additional: SmallVec::new(),
        zone: Some(first_zone),
    };
    resolve_chain(snap, view, first_zone, &mut buf, len, qtype, transport, &mut answer);
    add_additional(snap, view, &mut answer);
    answer
}

/// Follows the name through its zone and any CNAMEs, filling the answer and authority sections.
#[allow(clippy::too_many_arguments)]
fn resolve_chain<'s>(
    snap: &'s Snapshot,
    view: &View,
    mut zone_idx: ZoneIdx,
    buf: &mut [u8; MAX_NAME_LEN],
    mut len: usize,
    qtype: u16,
    transport: Transport,
    answer: &mut Answer<'s>,
) {
    let mut owner = Owner::QName;
    for _ in 0..=MAX_CNAME_CHAIN {
        let zone = &snap.zones[zone_idx as usize];
        let node = match zone.match_name(&buf[..len]) {
            NameMatch::Exact(node) | NameMatch::Wildcard(node) => node,
            NameMatch::NxDomain => {
                answer.rcode = Rcode::NxDomain;
                push_negative(answer, zone_idx, zone);
                return;
            }
        };
        if qtype == rtype::ANY {
            let take = if transport == Transport::Udp { 1 } else { usize::MAX };
            for rrset in node.rrsets.iter().take(take) {
                answer.answer.push(Rr { owner, rrset, zone: zone_idx });
            }
            if node.rrsets.is_empty() {
                push_negative(answer, zone_idx, zone);
            }
            return;
        }
        if let Some(cname) = node.rrset(rtype::CNAME).filter(|_| qtype != rtype::CNAME) {
            if answer.holds(cname) {
                return; // a loop: BIND stops adding what the message already holds
            }
            answer.answer.push(Rr { owner, rrset: cname, zone: zone_idx });
            let Some(target) = cname.rdata.first() else { return };
            len = lower_into(target, buf).len();
            // A target in no zone this VPC sees ends the chain at the CNAME (the stub resolver asks again).
            let Some(next) = view.find_zone(&buf[..len]) else { return };
            zone_idx = next;
            owner = Owner::Name(target);
            continue;
        }
        match node.rrset(qtype) {
            Some(rrset) => answer.answer.push(Rr { owner, rrset, zone: zone_idx }),
            None => push_negative(answer, zone_idx, zone),
        }
        return;
    }
}

/// NXDOMAIN/NODATA carry the zone's SOA with the negative TTL (RFC 2308 §3).
fn push_negative<'s>(answer: &mut Answer<'s>, zone_idx: ZoneIdx, zone: &'s crate::snapshot::ZoneTable) {
    answer.authority.push(Rr { owner: Owner::Name(zone.name.wire()), rrset: &zone.negative_soa, zone: zone_idx });
}

/// A/AAAA of MX, SRV and NS targets, from zones the same VPC sees (RFC 1035 §3.3.9, RFC 2782), never from others.
fn add_additional<'s>(snap: &'s Snapshot, view: &View, answer: &mut Answer<'s>) {
    let mut buf = [0u8; MAX_NAME_LEN];
    for i in 0..answer.answer.len() {
        let rrset = answer.answer[i].rrset;
        for rdata in rrset.rdata.iter() {
            let Some(target) = additional_target(rrset.rtype, rdata) else { continue };
            let len = lower_into(target, &mut buf).len();
            let Some(zone_idx) = view.find_zone(&buf[..len]) else { continue };
            let zone = &snap.zones[zone_idx as usize];
            let Some(node) = zone.node(&buf[..len]) else { continue };
            for t in [rtype::A, rtype::AAAA] {
                let Some(set) = node.rrset(t) else { continue };
                if answer.additional.len() >= MAX_ADDITIONAL_RRSETS {
                    return;
                }
                if !answer.holds(set) {
                    answer.additional.push(Rr { owner: Owner::Name(target), rrset: set, zone: zone_idx });
                }
            }
        }
    }
}
