//! Usage buckets in the store: adding what the data plane metered, and the reads behind `GET /v1/usage`.
//!
//! A bucket is `usage/<minute>/<node>`: one document per minute per node, written only by that node (so no two
//! writers race on a key), and summed over nodes when read. The minute leads the key so a time range is one scan.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::docs;
use super::error::ControlError;
use super::keys;
use super::{ControlPlane, Ctx};
use crate::control::keys::Span;
use crate::control::store::{Compare, Op};
use crate::model::billing::{UsageKey, UsageKind};

/// One line of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UsageLine {
    pub owner: String,
    pub consumer: String,
    pub vpc: String,
    /// The zone or rule id, or "upstreams" (see `kind`).
    pub zone: String,
    /// What answered: a zone (the default, and every line written before rules and the resolver were billed), a
    /// forwarding rule, or the upstreams.
    #[serde(default)]
    pub kind: UsageKind,
    pub queries: u64,
}

/// A bucket: one node's counts for one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UsageDoc {
    pub minute: u64,
    pub node: String,
    pub lines: Vec<UsageLine>,
}

/// A bucket of the layout before usage was keyed by owner, split into one bucket per owner.
pub(crate) fn split_legacy(doc: &UsageDoc) -> Vec<Op> {
    let mut by_owner: BTreeMap<&str, Vec<UsageLine>> = BTreeMap::new();
    for line in &doc.lines {
        by_owner.entry(line.owner.as_str()).or_default().push(line.clone());
    }
    by_owner
        .into_iter()
        .map(|(owner, lines)| {
            let bucket = UsageDoc { minute: doc.minute, node: doc.node.clone(), lines };
            Op::Put { key: keys::usage(owner, doc.minute, &doc.node), value: docs::encode(&bucket) }
        })
        .collect()
}

/// Adds counts to this node's buckets (one document per billed account and minute), in one commit. Each bucket is
/// written with a compare on the revision it was read at, so that nothing else writing it meanwhile (a roll-up
/// moving it to its hour, or a second node wrongly under this node's name) loses counts: on a conflict the buckets
/// are read again and the counts added again (at most a few times; then the caller keeps the counts for later).
pub(crate) fn persist(plane: &ControlPlane, counts: &HashMap<UsageKey, u64>, node: &str) -> anyhow::Result<()> {
    let mut by_bucket: BTreeMap<(&str, u64), Vec<(&UsageKey, u64)>> = BTreeMap::new();
    for (key, n) in counts {
        by_bucket.entry((&*key.owner, key.minute)).or_default().push((key, *n));
    }
    for _ in 0..PERSIST_TRIES {
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for ((owner, minute), adds) in &by_bucket {
            let key = keys::usage(owner, *minute, node);
            let entry = plane.store().get(&key)?;
            let mut doc: UsageDoc = match &entry {
                Some(entry) => docs::decode(&entry.value).map_err(|e| anyhow::anyhow!("{key}: {e}"))?,
                None => UsageDoc { minute: *minute, node: node.to_string(), lines: Vec::new() },
            };
            for (k, n) in adds {
                add_line(&mut doc.lines, line_of(k, *n));
            }
            compares.push(Compare { key: key.clone(), mod_revision: entry.map_or(0, |e| e.mod_revision) });
            ops.push(Op::Put { key, value: docs::encode(&doc) });
        }
        if plane.commit_guarded(&compares, &ops)?.is_some() {
            return Ok(());
        }
    }
    anyhow::bail!(
        "usage buckets kept changing under this node ({PERSIST_TRIES} tries): is another node named {node:?}?"
    )
}

const PERSIST_TRIES: usize = 4;

fn line_of(k: &UsageKey, queries: u64) -> UsageLine {
    UsageLine {
        owner: k.owner.to_string(),
        consumer: k.consumer.to_string(),
        vpc: k.vpc.to_string(),
        zone: k.item.to_string(),
        kind: k.kind,
        queries,
    }
}

/// Adds a line's queries to the line of the same owner, consumer, VPC, item and kind, or appends it.
pub(crate) fn add_line(lines: &mut Vec<UsageLine>, add: UsageLine) {
    let same = |l: &&mut UsageLine| {
        l.owner == add.owner
            && l.consumer == add.consumer
            && l.vpc == add.vpc
            && l.zone == add.zone
            && l.kind == add.kind
    };
    match lines.iter_mut().find(same) {
        Some(line) => line.queries += add.queries,
        None => lines.push(add),
    }
}

/// Usage between two Unix times, summed over nodes: what answered for whom, per minute, and — apart — the
/// resolver usage of the caller's own VPCs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageReport {
    pub from: u64,
    pub to: u64,
    /// Answers of private zones and forwarding rules.
    pub total: u64,
    pub items: Vec<UsageItem>,
    /// `total` per minute (the minute's start, Unix seconds).
    pub minutes: Vec<MinuteUsage>,
    /// Answers from the upstreams, billed to the asking VPC's own account.
    pub resolver: ResolverUsage,
}

/// Answers of one zone or rule to one consuming VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageItem {
    /// The billed account: the zone's or the rule's owner.
    pub owner: String,
    pub kind: UsageKind,
    /// The zone id (kind "zone") or the rule id (kind "rule").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub consumer: String,
    pub vpc: String,
    pub queries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct MinuteUsage {
    pub minute: u64,
    pub queries: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct ResolverUsage {
    pub total: u64,
    pub items: Vec<ResolverItem>,
}

/// Answers from the upstreams to one VPC (its account is billed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct ResolverItem {
    pub account: String,
    pub vpc: String,
    pub queries: u64,
}

/// Usage billed to the caller's account (the operator sees every owner) between two Unix times, summed over nodes.
pub(crate) fn query(plane: &ControlPlane, ctx: &Ctx, from: u64, to: u64) -> Result<UsageReport, ControlError> {
    let owner = match ctx.actor {
        super::Actor::Operator => None,
        super::Actor::Tenant(t) => Some(t.require_read()?.0.clone()),
    };
    if to < from {
        return Err(ControlError::invalid("bad_range", "`to` is before `from`"));
    }
    let (first, last) = (from / 60, to / 60);
    // Every span of buckets (minutes, then hours and days once rolled up) counts where its first minute is in range.
    let mut entries = Vec::new();
    for span in Span::ALL {
        entries.extend(match &owner {
            // A tenant reads its own buckets (one range per span).
            Some(owner) => {
                let start = keys::usage_bucket(span, owner, first, "");
                let end = keys::usage_bucket(span, owner, last.saturating_add(1), "");
                plane.store().range(&start, &end, usize::MAX).map_err(super::store_error)?
            }
            // The operator reads every owner's and keeps the minutes asked for.
            None => plane.store().list(span.prefix()).map_err(super::store_error)?.0,
        });
    }
    let mut totals: BTreeMap<(String, UsageKind, String, String, String), u64> = BTreeMap::new();
    let mut per_minute: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in entries {
        let Ok(doc) = docs::decode::<UsageDoc>(&entry.value) else { continue };
        if !(first..=last).contains(&doc.minute) {
            continue;
        }
        for line in doc.lines.iter().filter(|l| owner.as_deref().is_none_or(|o| o == l.owner)) {
            let key = (line.owner.clone(), line.kind, line.zone.clone(), line.consumer.clone(), line.vpc.clone());
            *totals.entry(key).or_default() += line.queries;
            if line.kind != UsageKind::Resolver {
                *per_minute.entry(doc.minute).or_default() += line.queries;
            }
        }
    }
    let mut report = UsageReport {
        from,
        to,
        total: 0,
        items: Vec::new(),
        minutes: per_minute.into_iter().map(|(m, queries)| MinuteUsage { minute: m * 60, queries }).collect(),
        resolver: ResolverUsage::default(),
    };
    for ((owner, kind, item, consumer, vpc), queries) in totals {
        if kind == UsageKind::Resolver {
            report.resolver.total += queries;
            report.resolver.items.push(ResolverItem { account: owner, vpc, queries });
            continue;
        }
        report.total += queries;
        let (zone, rule) = if kind == UsageKind::Rule { (None, Some(item)) } else { (Some(item), None) };
        report.items.push(UsageItem { owner, kind, zone, rule, consumer, vpc, queries });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::store::sqlite::SqliteStore;
    use crate::control::{auth, Actor};
    use crate::model::state::{Policy, Uid};
    use crate::settings::Served;
    use std::sync::Arc;

    #[test]
    fn usage_sums_over_nodes_and_filters_by_owner_and_time() {
        let server = Served::default();
        let plane = ControlPlane::open(Arc::new(SqliteStore::open_in_memory().expect("store")), server, vec![1; 32])
            .expect("plane");
        let line = |owner: &str, kind, queries| UsageLine {
            owner: owner.into(),
            consumer: "2".into(),
            vpc: "v".into(),
            zone: "z".into(),
            kind,
            queries,
        };
        let zone = UsageKind::Zone;
        for (node, minute, lines) in [
            ("a", 100, vec![line("1", zone, 3)]),
            ("b", 100, vec![line("1", zone, 4), line("9", zone, 50), line("1", UsageKind::Resolver, 8)]),
            ("a", 200, vec![line("1", UsageKind::Rule, 5)]),
        ] {
            let doc = UsageDoc { minute, node: node.into(), lines };
            plane.commit_internal(&split_legacy(&doc)).expect("commit");
        }
        let tenant =
            Actor::Tenant(auth::Tenant { account: Uid("1".into()), user: None, policies: vec![Policy::DnsFullAccess] });
        let ask = |from: u64, to: u64| plane.read(&tenant, |_, ctx| query(&plane, ctx, from, to)).expect("usage");
        assert_eq!(ask(100 * 60, 100 * 60 + 59).total, 7, "two nodes' buckets of one minute add up");
        assert_eq!(ask(0, 300 * 60).total, 12, "another owner's 50 are not ours");
        assert_eq!(ask(0, 300 * 60).resolver.total, 8, "resolver usage is apart");
        let later = ask(150 * 60, 300 * 60);
        assert_eq!((later.total, later.items[0].rule.as_deref(), later.items[0].zone.as_deref()), (5, Some("z"), None));
        let everything = plane.read(&Actor::Operator, |_, ctx| query(&plane, ctx, 0, 300 * 60)).expect("usage");
        assert_eq!(everything.total, 62, "the operator sees every owner");
        let json = serde_json::to_value(&everything).expect("json");
        assert_eq!(json["items"][0]["kind"], "zone");
        assert!(json["items"][0].get("rule").is_none());
    }
}
