//! Who pays for an answer. One rule, whatever the transport and whether the answer was private, cached or resolved
//! later: an answer from a private zone (or whose chain starts in one) is billed to the zone's owner; an answer
//! through a forwarding rule to the rule's owner; an answer from the upstreams to the asking VPC's own account, as
//! resolver usage, kept apart from private-zone usage. Only answers count (NOERROR, NODATA, NXDOMAIN).

use std::sync::Arc;

use crate::dns::Rcode;
use crate::model::snapshot::{RouteIdx, Snapshot, VpcIdx, ZoneIdx};

/// What an answer is billed as, by the indexes of the snapshot it was answered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Billed {
    /// Not billable: no VPC, no zone, or refused before the lookup.
    #[default]
    Nobody,
    /// The zone that answered the query name (or where its chain started).
    Zone(ZoneIdx),
    /// The forwarding rule whose route answered.
    Rule(RouteIdx),
    /// The upstreams answered.
    Resolver,
}

/// What kind of usage a bucket line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub(crate) enum UsageKind {
    /// Answers of a private zone: `item` is the zone id.
    #[default]
    Zone,
    /// Answers through a forwarding rule: `item` is the rule id.
    Rule,
    /// Answers from the upstreams, billed to the VPC's own account: `item` is "upstreams".
    Resolver,
}

/// One usage bucket's identity: a minute, the billed account, the consuming account and VPC, and what answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UsageKey {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// The billed account.
    pub owner: Arc<str>,
    /// The account that owns the VPC the query came from.
    pub consumer: Arc<str>,
    pub vpc: Arc<str>,
    pub kind: UsageKind,
    /// The zone or rule id, or "upstreams".
    pub item: Arc<str>,
}

/// The item resolver usage is counted under.
pub(crate) const UPSTREAMS: &str = "upstreams";

/// The party `billed` names under `snapshot` — the billed account, the kind, and what answered — for an answer to
/// a query from `vpc` (needed for resolver usage only: its VPC's account pays).
pub(crate) fn billed_party(
    snapshot: &Snapshot,
    vpc: Option<VpcIdx>,
    billed: Billed,
) -> Option<(Arc<str>, UsageKind, Arc<str>)> {
    match billed {
        Billed::Nobody => None,
        Billed::Zone(zone) => {
            let zone = snapshot.zones().get(zone as usize)?;
            Some((zone.meter_owner.clone(), UsageKind::Zone, zone.meter_id.clone()))
        }
        Billed::Rule(route) => {
            let route = snapshot.routes().get(route as usize)?;
            Some((route.owner.clone()?, UsageKind::Rule, route.rule.clone()?))
        }
        Billed::Resolver => {
            let vpc = snapshot.vpcs().get(vpc? as usize)?;
            Some((vpc.account.clone(), UsageKind::Resolver, Arc::from(UPSTREAMS)))
        }
    }
}

/// The usage key of an answer with `rcode` to a query from `vpc`, billed as `billed` under `snapshot`; `None` when
/// it is not billable.
pub(crate) fn usage_key(
    snapshot: &Snapshot,
    vpc: Option<VpcIdx>,
    billed: Billed,
    rcode: Rcode,
    minute: u64,
) -> Option<UsageKey> {
    if !matches!(rcode, Rcode::NoError | Rcode::NxDomain) {
        return None;
    }
    let (owner, kind, item) = billed_party(snapshot, vpc, billed)?;
    let vpc = snapshot.vpcs().get(vpc? as usize)?;
    Some(UsageKey { minute, owner, consumer: vpc.account.clone(), vpc: vpc.id.0.clone(), kind, item })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// acme's zone in its VPC and beta's (linked), and acme's rule in beta's VPC.
    fn state() -> String {
        let zone = "[[zones]]\nname = \"corp.internal.\"\naccount = \"1\"\nscope = [\"v1\", \"vb\"]\n";
        let rule = crate::testing::rule("1", "onprem", "onprem.example.", "vb");
        format!(
            "{}{zone}{rule}",
            crate::testing::linked_beta().replace("[resolver]", "[resolver]\nupstreams = [\"192.0.2.53\"]")
        )
    }

    #[test]
    fn zones_rules_and_upstreams_bill_their_own_party() {
        let state = crate::testing::state(&state(), None);
        let snap = crate::model::compile::Compiler::default().compile(&state);
        let vb = snap.vpcs().iter().position(|v| v.id.as_str() == "vb").map(|i| i as VpcIdx);
        let key = |billed| usage_key(&snap, vb, billed, Rcode::NoError, 7);
        let zone = key(Billed::Zone(0)).expect("billable");
        assert_eq!((&*zone.owner, &*zone.consumer, zone.kind), ("1", "2", UsageKind::Zone));
        let rule = snap.routes().iter().position(|r| r.rule.is_some()).map(|i| i as RouteIdx).expect("rule route");
        let rule = key(Billed::Rule(rule)).expect("billable");
        assert_eq!((&*rule.owner, &*rule.item, rule.kind), ("1", "onprem", UsageKind::Rule));
        let resolver = key(Billed::Resolver).expect("billable");
        assert_eq!((&*resolver.owner, &*resolver.item, resolver.kind), ("2", UPSTREAMS, UsageKind::Resolver));
        assert_eq!(key(Billed::Nobody), None);
        assert_eq!(usage_key(&snap, vb, Billed::Resolver, Rcode::ServFail, 7), None, "failures are not billed");
        assert_eq!(usage_key(&snap, None, Billed::Zone(0), Rcode::NoError, 7), None);
    }
}
