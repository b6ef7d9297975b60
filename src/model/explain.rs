//! `explain`, the model's part: why a source gets the answer it gets, told from the same pure functions the server
//! runs — it classifies, lists the VPC's view, names the answering zone and the zones it shadows, and follows the
//! chain and the route. `dataplane::explain` adds the exact response. It opens no socket and changes nothing.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::dns::name::{self, Name};
use crate::dns::rdata::{type_name, RData};
use crate::dns::Transport;
use crate::model::identity::OwnedIdentity;
use crate::model::lookup::{self, Owner};
use crate::model::snapshot::Snapshot;
use crate::model::state::{State, Zone};

/// One question to explain.
pub struct Question {
    pub listener: SocketAddr,
    pub source: IpAddr,
    pub name: Name,
    pub qtype: u16,
    pub transport: Transport,
    /// The VPC or endpoint a front end names (the query as relayed with PROXY v2), if any.
    pub identity: Option<OwnedIdentity>,
}

impl Question {
    /// A question from its text form, as the CLI and the API take it: a name (relative names are made absolute),
    /// a type mnemonic, and the transport. The error says what is wrong, with a stable code.
    pub fn parse(
        listener: SocketAddr,
        source: IpAddr,
        name: &str,
        qtype: &str,
        tcp: bool,
    ) -> Result<Question, (&'static str, String)> {
        let name =
            Name::from_text(name, Some(&Name::root())).map_err(|e| ("bad_name", format!("bad name {name:?}: {e}")))?;
        let qtype =
            crate::dns::rdata::type_from_mnemonic(qtype).ok_or(("bad_type", format!("unknown type {qtype:?}")))?;
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        Ok(Question { listener, source, name, qtype, transport, identity: None })
    }

    /// The same question relayed by a front end that names an endpoint (`vpce-…`, `alibaba:…`, `psc:…`,
    /// `azure:…`) or a VPC id; at most one of the two.
    pub fn through(mut self, endpoint: Option<&str>, vpc_id: Option<&str>) -> Result<Question, (&'static str, String)> {
        self.identity = match (endpoint, vpc_id) {
            (None, None) => None,
            (Some(e), None) => Some(OwnedIdentity::endpoint(e).map_err(|m| ("bad_endpoint", m))?),
            (None, Some(v)) => Some(OwnedIdentity::vpc_id(v).map_err(|m| ("bad_vpc_id", m))?),
            (Some(_), Some(_)) => return Err(("bad_identity", "give an endpoint or a VPC id, not both".into())),
        };
        Ok(self)
    }

    /// Classification as the server does it: by the front end's identity when there is one, else by prefix.
    pub(crate) fn classify(&self, snap: &Snapshot) -> Option<crate::model::classify::Classification> {
        let classifier = snap.classifier();
        match &self.identity {
            Some(identity) => classifier.classify_identity(self.listener, identity.borrow(), self.source),
            None => classifier.classify(self.listener, self.source),
        }
    }
}

/// What the live resolver's cache holds for (route, lower-case name, type): seconds left.
pub(crate) type CacheProbe<'a> = &'a dyn Fn(&crate::model::snapshot::Route, &[u8], u16) -> Option<u64>;

/// The report, as text; with `cache` it says also what the running server's resolver cache holds for a routed name.
pub(crate) fn report(state: &State, snap: &Snapshot, q: &Question, cache: Option<CacheProbe>) -> String {
    let mut out = String::new();
    let transport = match q.transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    };
    let _ = writeln!(
        out,
        "query:   {} {} from {} on listener {} over {transport}",
        q.name,
        type_name(q.qtype),
        q.source,
        q.listener
    );
    if let Some(identity) = &q.identity {
        let _ = writeln!(out, "via:     a front end naming {}", identity.borrow());
    }
    match q.classify(snap) {
        None if q.identity.is_some() => {
            let _ = writeln!(
                out,
                "vpc:     none: the identity names no VPC, or one that does not hold {} or accept listener {} → \
                 REFUSED (an identity never falls back to prefixes)",
                q.source, q.listener
            );
        }
        None => {
            let _ =
                writeln!(out, "vpc:     none: {} lies in no VPC prefix accepted on {} → REFUSED", q.source, q.listener);
        }
        Some(class) => explain_vpc(state, snap, q, class, cache, &mut out),
    }
    out
}

fn explain_vpc(
    state: &State,
    snap: &Snapshot,
    q: &Question,
    class: crate::model::classify::Classification,
    cache: Option<CacheProbe>,
    out: &mut String,
) {
    let Some(vpc) = snap.vpcs().get(class.vpc as usize) else { return };
    let listener = match (class.listener, class.by_identity) {
        (Some(l), false) => format!("the table of listener {l}"),
        (None, false) => "the table of VPCs open to every listener".to_string(),
        (Some(l), true) => format!("listener {l}, which the VPC accepts"),
        (None, true) => "a VPC open to every listener".to_string(),
    };
    let how = if class.by_identity { "named by the front end's identity, source in" } else { "source in" };
    let by = if class.by_identity { "" } else { " by longest prefix," };
    let _ = writeln!(
        out,
        "vpc:     {} (account {}), {how} {}{by} from {listener}",
        vpc.id,
        account_label(state, &vpc.account),
        class.cidr
    );
    let visible: Vec<&Zone> = state.zones.values().filter(|z| z.scope.contains(&vpc.id)).collect();
    write_visible(state, &vpc.account, &visible, out);
    let mut holding: Vec<&&Zone> = visible.iter().filter(|z| q.name.is_at_or_below(&z.name)).collect();
    holding.sort_by_key(|z| std::cmp::Reverse(z.name.label_count()));
    match holding.split_first() {
        None => {
            let routed = snap.upstream().is_some()
                || snap.views().get(class.vpc as usize).is_some_and(|v| !v.rules().is_empty());
            let then = if routed { "see route" } else { "→ REFUSED (no upstreams, no forwarding rule)" };
            let _ = writeln!(out, "zone:    none of them holds {} {then}", q.name);
        }
        Some((winner, shadowed)) => {
            let _ = writeln!(
                out,
                "zone:    {} [{}] answers (most specific); its owner {} is billed",
                winner.name,
                winner.id,
                account_label(state, &winner.account.0)
            );
            for z in shadowed {
                let _ = writeln!(out, "shadows: {} [{}] (less specific, never consulted for this name)", z.name, z.id);
            }
        }
    }
    explain_chain(state, snap, class.vpc, q, cache, out);
}

/// The zones a VPC of `account` sees, and through which account each.
fn write_visible(state: &State, account: &str, visible: &[&Zone], out: &mut String) {
    let _ = writeln!(out, "sees:    {} zone(s)", visible.len());
    for zone in visible {
        let via = if *zone.account.0 == *account {
            "own account".to_string()
        } else {
            format!("owner {} linked account {}", account_label(state, &zone.account.0), account_label(state, account))
        };
        let _ = writeln!(out, "         {} [{}] — {via}", zone.name, zone.id);
    }
}

fn explain_chain(state: &State, snap: &Snapshot, vpc: u32, q: &Question, cache: Option<CacheProbe>, out: &mut String) {
    let answer = lookup::lookup(snap, vpc, q.name.wire(), q.qtype, q.transport);
    if let Some(recurse) = answer.recurse {
        explain_route(state, snap, q, &recurse, cache, out);
        if answer.answer.is_empty() {
            return;
        }
        let _ = writeln!(out, "private part of the answer (the chain leaves the private zones):");
    } else {
        let _ = writeln!(out, "result:  {}", answer.rcode.name());
    }
    for rr in answer.answer.iter().chain(&answer.authority).chain(&answer.additional) {
        let owner = match rr.owner {
            Owner::QName => q.name.to_string(),
            Owner::Name(wire) => name::wire_to_string(wire),
        };
        let zone = &snap.zones()[rr.zone as usize];
        let first = rr.rrset.first().map(|d| rdata_text(rr.rrset.rtype, d)).unwrap_or_default();
        let _ = writeln!(
            out,
            "  from {} (owner {}): {owner} {} {first}{}",
            zone.name,
            account_label(state, &zone.owner.0),
            type_name(rr.rrset.rtype),
            if rr.rrset.len() > 1 { " …" } else { "" }
        );
    }
    if let Some(end) = unfollowed_cname_target(snap, vpc, &answer, q.qtype) {
        let _ = writeln!(out, "  the chain ends at {end}: no zone this VPC sees holds it (the client asks again)");
    }
}

/// Which route resolves the name, and why.
fn explain_route(
    state: &State,
    snap: &Snapshot,
    q: &Question,
    recurse: &lookup::Recurse,
    cache: Option<CacheProbe>,
    out: &mut String,
) {
    let name = recurse.target.map_or_else(|| q.name.to_string(), name::wire_to_string);
    let Some(route) = snap.routes().get(recurse.route as usize) else { return };
    let targets: Vec<String> = route.targets.iter().map(ToString::to_string).collect();
    let why = match recurse.reason {
        lookup::RecurseReason::Rule => {
            let rule = route.rule.as_deref().and_then(|id| state.rules.get(id));
            match rule {
                Some(r) => format!(
                    "forwarding rule {} for {} (owner {}) is the most specific match (a rule beats a zone of the same name)",
                    r.id,
                    r.domain,
                    account_label(state, &r.account.0)
                ),
                None => "a forwarding rule".to_string(),
            }
        }
        lookup::RecurseReason::Upstream => "no zone or forwarding rule this VPC sees holds it".to_string(),
        lookup::RecurseReason::Fallback => {
            "the zone does not hold it and falls back to recursion (fallback = \"recurse\")".to_string()
        }
    };
    let _ = writeln!(out, "route:   {name} → {} [{}]: {why}", route.label(), targets.join(", "));
    let mut lower = [0u8; name::MAX_NAME_LEN];
    let lower = name::lower_into(recurse.target.unwrap_or(q.name.wire()), &mut lower);
    match cache.map(|probe| probe(route, lower, q.qtype)) {
        Some(Some(left)) => {
            let _ = writeln!(out, "cache:   holds this route's answer for {left} s more: served without asking");
        }
        Some(None) => {
            let _ = writeln!(out, "cache:   nothing held for this route: the next query asks its servers");
        }
        None => {
            let _ = writeln!(
                out,
                "         answered by those servers, or from that route's cache while it holds the answer"
            );
        }
    }
}

/// The target of a final CNAME that was not followed because it lies in no zone the VPC sees.
fn unfollowed_cname_target(snap: &Snapshot, vpc: u32, answer: &lookup::Answer, qtype: u16) -> Option<String> {
    let last = answer.answer.last()?;
    if last.rrset.rtype != crate::dns::rdata::rtype::CNAME || qtype == crate::dns::rdata::rtype::CNAME {
        return None;
    }
    let target = last.rrset.first()?;
    let mut buf = [0u8; name::MAX_NAME_LEN];
    let lower = name::lower_into(target, &mut buf);
    let view = snap.views().get(vpc as usize)?;
    match view.find_zone(lower) {
        Some(_) => None,
        None => Some(name::wire_to_string(target)),
    }
}

fn rdata_text(rtype: u16, wire: &[u8]) -> String {
    RData::from_wire(rtype, wire).map(|d| d.to_string()).unwrap_or_else(|_| "<undecodable>".into())
}

fn account_label(state: &State, uid: &str) -> String {
    state
        .accounts
        .values()
        .find(|a| a.uid.0 == uid)
        .map_or_else(|| uid.to_string(), |a| format!("{} {}", a.name, a.uid))
}
