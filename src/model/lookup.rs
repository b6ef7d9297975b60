//! The lookup: (snapshot, VPC, question) → [`Answer`], the pure heart of the server.
//!
//! RFC 1034 §4.3.2 over the zones one VPC sees: the most specific visible zone answers, authoritatively; wildcards
//! per RFC 4592; CNAME chains followed and cut as BIND 9.18 follows and cuts them (and, deliberately unlike BIND, into other zones the
//! same VPC sees). The answer holds references into the snapshot and says which zone answered (the billed one) and
//! which zones contributed records. No I/O, no locks, no heap allocation for answers of up to four RRsets.

use smallvec::SmallVec;

use crate::dns::name::{lower_into, MAX_NAME_LEN};
use crate::dns::rdata::rtype;
use crate::dns::{Ede, Rcode, Transport};
use crate::model::snapshot::{additional_target, NameMatch, RRset, RouteIdx, Snapshot, View, VpcIdx, ZoneIdx, ZoneRef};

/// How many times a query may restart at a CNAME target: BIND 9.18's `max-query-restarts` (11 since 9.18.29).
/// A chain that needs more — or loops — ends in SERVFAIL with the CNAMEs found so far, as BIND answers it.
pub(crate) const MAX_RESTARTS: usize = 11;
/// Additional-section RRsets at the most: bounds the work one MX/SRV/NS answer can cause.
pub(crate) const MAX_ADDITIONAL_RRSETS: usize = 16;

pub use crate::dns::wire::Owner;

/// One RRset in a response, and the zone it came from.
#[derive(Debug, Clone, Copy)]
pub struct Rr<'s> {
    pub owner: Owner<'s>,
    pub rrset: RRset<'s>,
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
    /// An Extended DNS Error (RFC 8914) to attach when the client speaks EDNS.
    pub ede: Option<Ede>,
    /// The rest of the answer comes from outside: resolve this name through this route (the answer section so far
    /// — a private CNAME chain — goes first).
    pub recurse: Option<Recurse<'s>>,
}

/// A name to resolve outside the private zones, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurse<'s> {
    pub route: RouteIdx,
    /// The name to resolve: None = the query name; else a CNAME target held by the snapshot.
    pub target: Option<&'s [u8]>,
    /// Why: a forwarding rule or the upstreams for a name no zone holds, or a zone's `fallback = "recurse"`.
    pub reason: RecurseReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurseReason {
    /// A forwarding rule is the most specific match.
    Rule,
    /// No visible zone or rule holds the name.
    Upstream,
    /// The zone does not hold the name and falls back to recursion.
    Fallback,
}

/// What BIND attaches to a chain cut at the restart limit.
pub(crate) const EDE_MAX_RESTARTS: Ede = Ede { code: 0, text: "max. restarts reached" };

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
            ede: None,
            recurse: None,
        }
    }

    /// An answer to complete by resolving outside: no records yet.
    fn recurse(route: RouteIdx, reason: RecurseReason) -> Answer<'s> {
        Answer { rcode: Rcode::NoError, recurse: Some(Recurse { route, target: None, reason }), ..Answer::refused() }
    }

    fn holds(&self, rrset: &RRset) -> bool {
        let all = self.answer.iter().chain(&self.additional);
        all.into_iter().any(|rr| rr.rrset.same(rrset))
    }
}

/// Answers `qname`/`qtype` (class IN) for VPC `vpc` from `snap`. `qname` is the question's uncompressed wire name
/// in the client's case.
pub fn lookup<'s>(snap: &'s Snapshot, vpc: VpcIdx, qname: &[u8], qtype: u16, transport: Transport) -> Answer<'s> {
    let Some(view) = snap.views().get(vpc as usize) else {
        return Answer::refused();
    };
    let mut buf = [0u8; MAX_NAME_LEN];
    let len = lower_into(qname, &mut buf).len();
    let (first_zone, table) = match decide(snap, view, &buf[..len]) {
        Decision::Zone(idx, zone) => (idx, zone),
        Decision::Recurse(route, reason) => return Answer::recurse(route, reason),
        Decision::Refused => return Answer::refused(),
    };
    let mut answer = Answer {
        rcode: Rcode::NoError,
        authoritative: true,
        answer: SmallVec::new(),
        authority: SmallVec::new(),
        additional: SmallVec::new(),
        zone: Some(first_zone),
        ede: None,
        recurse: None,
    };
    resolve_chain(snap, view, (first_zone, table), &mut buf, len, qtype, transport, &mut answer);
    // ANY is answered minimally, without additional data (as BIND does).
    if qtype != rtype::ANY {
        add_additional(view, &mut answer);
    }
    answer
}

/// Who answers a (lower-case) name for a VPC: the most specific of its visible zones and forwarding rules, a rule
/// winning at an equal name (as Route 53 Resolver orders them); else the upstreams when configured; else nobody.
enum Decision<'s> {
    Zone(ZoneIdx, ZoneRef<'s>),
    Recurse(RouteIdx, RecurseReason),
    Refused,
}

fn decide<'s>(snap: &Snapshot, view: &'s View, lower: &[u8]) -> Decision<'s> {
    let zone = view.find_zone(lower);
    let rule = view.find_rule(lower);
    match (zone, rule) {
        (Some((_, z)), Some((labels, route))) if usize::from(labels) >= z.table.apex.label_count() => {
            Decision::Recurse(route, RecurseReason::Rule)
        }
        (Some((idx, z)), _) => Decision::Zone(idx, z),
        (None, Some((_, route))) => Decision::Recurse(route, RecurseReason::Rule),
        (None, None) => match snap.upstream() {
            Some(route) => Decision::Recurse(route, RecurseReason::Upstream),
            None => Decision::Refused,
        },
    }
}

/// Where a name a zone does not hold goes when the zone falls back to recursion: the VPC's most specific rule,
/// else the upstreams.
fn fallback_route(snap: &Snapshot, view: &View, lower: &[u8]) -> Option<RouteIdx> {
    view.find_rule(lower).map(|(_, route)| route).or(snap.upstream())
}

/// Follows the name through its zone and any CNAMEs, filling the answer and authority sections.
#[allow(clippy::too_many_arguments)]
fn resolve_chain<'s>(
    snap: &Snapshot,
    view: &'s View,
    (mut zone_idx, mut zone): (ZoneIdx, ZoneRef<'s>),
    buf: &mut [u8; MAX_NAME_LEN],
    mut len: usize,
    qtype: u16,
    transport: Transport,
    answer: &mut Answer<'s>,
) {
    let mut owner = Owner::QName;
    let mut restarts = 0;
    loop {
        let node = match zone.match_name(&buf[..len]) {
            NameMatch::Exact(node) | NameMatch::Wildcard(node) => node,
            NameMatch::NxDomain => {
                if zone.table.fallback_recurse {
                    if let Some(route) = fallback_route(snap, view, &buf[..len]) {
                        let target = match owner {
                            Owner::QName => None,
                            Owner::Name(name) => Some(name),
                        };
                        answer.recurse = Some(Recurse { route, target, reason: RecurseReason::Fallback });
                        return;
                    }
                }
                answer.rcode = Rcode::NxDomain;
                push_negative(answer, zone_idx, zone, qtype);
                return;
            }
        };
        if qtype == rtype::ANY {
            let take = if transport == Transport::Udp { 1 } else { usize::MAX };
            for rrset in node.rrsets().take(take) {
                answer.answer.push(Rr { owner, rrset, zone: zone_idx });
            }
            if node.is_empty_non_terminal() {
                push_negative(answer, zone_idx, zone, qtype);
            }
            return;
        }
        if let Some(cname) = node.rrset(rtype::CNAME).filter(|_| qtype != rtype::CNAME) {
            // A loop restarts until the limit without adding anything new: cut it there at once.
            let looped = answer.holds(&cname);
            if !looped {
                answer.answer.push(Rr { owner, rrset: cname, zone: zone_idx });
            }
            if looped || restarts == MAX_RESTARTS {
                answer.rcode = Rcode::ServFail;
                answer.ede = Some(EDE_MAX_RESTARTS);
                return;
            }
            restarts += 1;
            let Some(target) = cname.first() else { return };
            len = lower_into(target, buf).len();
            match decide(snap, view, &buf[..len]) {
                Decision::Zone(idx, next) => (zone_idx, zone) = (idx, next),
                // Outside the private zones: the rest of the chain is resolved there.
                Decision::Recurse(route, reason) => {
                    answer.recurse = Some(Recurse { route, target: Some(target), reason });
                    return;
                }
                // A target nobody answers for this VPC ends the chain at the CNAME (the stub resolver asks again).
                Decision::Refused => return,
            }
            owner = Owner::Name(target);
            continue;
        }
        match node.rrset(qtype) {
            Some(rrset) => answer.answer.push(Rr { owner, rrset, zone: zone_idx }),
            None => push_negative(answer, zone_idx, zone, qtype),
        }
        return;
    }
}

/// NXDOMAIN/NODATA carry the zone's SOA with the negative TTL (RFC 2308 §3) — TTL 0 in an NXDOMAIN for an SOA
/// question, so that no resolver caches the SOA from it (BIND's `zero-no-soa-ttl`, which BIND 9.18 applies to
/// NXDOMAIN only; the differential test holds us to it).
fn push_negative<'s>(answer: &mut Answer<'s>, zone_idx: ZoneIdx, zone: ZoneRef<'s>, qtype: u16) {
    let zero = qtype == rtype::SOA && answer.rcode == Rcode::NxDomain;
    let rrset = zone.negative_soa(zero);
    answer.authority.push(Rr { owner: Owner::Name(zone.table.name.wire()), rrset, zone: zone_idx });
}

/// A/AAAA of MX, SRV and NS targets, from zones the same VPC sees (RFC 1035 §3.3.9, RFC 2782), never from others.
fn add_additional<'s>(view: &'s View, answer: &mut Answer<'s>) {
    let mut buf = [0u8; MAX_NAME_LEN];
    for i in 0..answer.answer.len() {
        let rrset = answer.answer[i].rrset;
        for rdata in rrset.rdata() {
            let Some(target) = additional_target(rrset.rtype, rdata) else { continue };
            let len = lower_into(target, &mut buf).len();
            let Some((zone_idx, zone)) = view.find_zone(&buf[..len]) else { continue };
            // Wildcards synthesize additional data too, as BIND's additional processing does.
            let node = match zone.match_name(&buf[..len]) {
                NameMatch::Exact(node) | NameMatch::Wildcard(node) => node,
                NameMatch::NxDomain => continue,
            };
            for t in [rtype::A, rtype::AAAA] {
                let Some(set) = node.rrset(t) else { continue };
                if answer.additional.len() >= MAX_ADDITIONAL_RRSETS {
                    return;
                }
                if !answer.holds(&set) {
                    answer.additional.push(Rr { owner: Owner::Name(target), rrset: set, zone: zone_idx });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::Name;
    use crate::testing;

    /// One VPC (index 0) seeing `t.internal.` with the given inline records.
    fn snapshot(records: &str) -> Snapshot {
        testing::snapshot(&format!(
            "[[zones]]\nname = \"t.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\nrecords = [{records}]\n"
        ))
    }

    fn ask<'s>(snap: &'s Snapshot, name: &str, qtype: u16) -> Answer<'s> {
        let name = Name::from_text(name, None).expect("name");
        lookup(snap, 0, name.wire(), qtype, Transport::Udp)
    }

    fn chain(len: usize) -> String {
        let mut records: Vec<String> =
            (1..=len).map(|i| format!("{{ name = \"c{i}\", type = \"CNAME\", data = \"c{}\" }}", i + 1)).collect();
        records.push(format!("{{ name = \"c{}\", type = \"A\", data = \"10.0.0.1\" }}", len + 1));
        records.join(",\n")
    }

    /// (CNAMEs in the chain, expected rcode, expected CNAMEs in the answer, final A present)
    #[test]
    fn cname_chains_end_at_bind_918_restart_limit() {
        for (len, rcode, cnames, final_a) in [
            (1, Rcode::NoError, 1, true),
            (11, Rcode::NoError, 11, true),
            (12, Rcode::ServFail, 12, false),
            (30, Rcode::ServFail, 12, false),
        ] {
            let snap = snapshot(&chain(len));
            let answer = ask(&snap, "c1.t.internal.", rtype::A);
            assert_eq!(answer.rcode, rcode, "chain of {len}");
            let count = |t: u16| answer.answer.iter().filter(|rr| rr.rrset.rtype == t).count();
            assert_eq!(count(rtype::CNAME), cnames, "chain of {len}");
            assert_eq!(count(rtype::A) == 1, final_a, "chain of {len}");
            assert_eq!(answer.ede.is_some(), rcode == Rcode::ServFail);
        }
    }

    #[test]
    fn cname_loops_are_cut_with_servfail() {
        let snap = snapshot(
            r#"{ name = "l1", type = "CNAME", data = "l2" }, { name = "l2", type = "CNAME", data = "l1" },
               { name = "me", type = "CNAME", data = "me" }"#,
        );
        let answer = ask(&snap, "l1.t.internal.", rtype::A);
        assert_eq!((answer.rcode, answer.answer.len()), (Rcode::ServFail, 2));
        let answer = ask(&snap, "me.t.internal.", rtype::A);
        assert_eq!((answer.rcode, answer.answer.len()), (Rcode::ServFail, 1));
        // Asking for the CNAME itself never follows it.
        let answer = ask(&snap, "me.t.internal.", rtype::CNAME);
        assert_eq!((answer.rcode, answer.answer.len()), (Rcode::NoError, 1));
    }

    #[test]
    fn negative_soa_ttl_is_zero_in_nxdomain_for_soa_questions() {
        let snap = snapshot(r#"{ name = "www", type = "A", data = "10.0.0.1" }"#);
        let nx = ask(&snap, "nope.t.internal.", rtype::SOA);
        assert_eq!((nx.rcode, nx.authority[0].rrset.ttl), (Rcode::NxDomain, 0));
        let nx = ask(&snap, "nope.t.internal.", rtype::A);
        assert_eq!(nx.authority[0].rrset.ttl, 60);
        let nodata = ask(&snap, "www.t.internal.", rtype::SOA);
        assert_eq!((nodata.rcode, nodata.answer.len(), nodata.authority[0].rrset.ttl), (Rcode::NoError, 0, 60));
    }

    #[test]
    fn additional_data_comes_from_wildcards_too_but_not_for_any() {
        let snap = snapshot(
            r#"{ name = "@", type = "MX", data = "10 mx.w" }, { name = "*.w", type = "A", data = "10.0.0.9" },
               { name = "srv", type = "SRV", data = "0 0 25 host.w" }"#,
        );
        let mx = ask(&snap, "t.internal.", rtype::MX);
        assert_eq!(mx.additional.len(), 1);
        assert_eq!(mx.additional[0].owner, Owner::Name(b"\x02mx\x01w\x01t\x08internal\x00"));
        let srv = ask(&snap, "srv.t.internal.", rtype::SRV);
        assert_eq!(srv.additional.len(), 1);
        let any = ask(&snap, "t.internal.", rtype::ANY);
        assert_eq!((any.answer.len(), any.additional.len()), (1, 0));
    }

    /// Zones, rules and upstreams: the most specific name decides, a rule wins at an equal name, the upstreams
    /// take what neither holds, and a zone's fallback sends its absent names out.
    #[test]
    fn the_most_specific_of_zones_and_rules_decides() {
        let resolver = "[resolver]\nupstreams = [\"127.0.0.1:5399\"]\nallow_targets = [\"127.0.0.0/8\"]\n";
        let zones = r#"
[[zones]]
name = "corp.example."
account = "1"
scope = ["v1"]
records = [{ name = "www", type = "A", data = "10.0.0.1" }]
[[zones]]
name = "in.example.net."
account = "1"
scope = ["v1"]
fallback = "recurse"
records = [{ name = "www", type = "A", data = "10.0.0.2" }]
"#;
        let same = testing::rule("1", "same", "corp.example.", "v1");
        let above = testing::rule("1", "above", "example.net.", "v1");
        let snap = testing::snapshot(&format!("{resolver}{same}{above}{zones}"));
        let route = |name: &str| {
            let answer = ask(&snap, name, rtype::A);
            answer.recurse.map(|r| (snap.routes()[r.route as usize].label().to_string(), r.reason))
        };
        assert_eq!(route("www.corp.example."), Some(("same".into(), RecurseReason::Rule)), "a rule beats a zone");
        assert_eq!(route("www.in.example.net."), None, "a deeper zone beats a rule above it");
        assert_eq!(route("nope.in.example.net."), Some(("above".into(), RecurseReason::Fallback)));
        assert_eq!(route("x.example.net."), Some(("above".into(), RecurseReason::Rule)));
        assert_eq!(route("www.example.org."), Some(("upstreams".into(), RecurseReason::Upstream)));
    }
}
