//! Usage buckets in the store: the persister that drains the meter, and the reads behind `GET /v1/usage`.
//!
//! A bucket is `usage/<minute>/<node>`: one document per minute per node, written only by that node (so no two
//! writers race on a key), and summed over nodes when read. The minute leads the key so a time range is one scan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::model::{self, keys};
use super::{ControlPlane, Ctx};
use crate::control::store::Op;
use crate::dataplane::metering::{Meter, UsageKey};

/// One line of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    pub owner: String,
    pub consumer: String,
    pub vpc: String,
    pub zone: String,
    pub queries: u64,
}

/// A bucket: one node's counts for one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDoc {
    pub minute: u64,
    pub node: String,
    pub lines: Vec<UsageLine>,
}

/// A bucket of the layout before usage was keyed by owner, split into one bucket per owner.
pub fn split_legacy(doc: &UsageDoc) -> Vec<Op> {
    let mut by_owner: BTreeMap<&str, Vec<UsageLine>> = BTreeMap::new();
    for line in &doc.lines {
        by_owner.entry(line.owner.as_str()).or_default().push(line.clone());
    }
    by_owner
        .into_iter()
        .map(|(owner, lines)| {
            let bucket = UsageDoc { minute: doc.minute, node: doc.node.clone(), lines };
            Op::Put { key: keys::usage(owner, doc.minute, &doc.node), value: model::encode(&bucket) }
        })
        .collect()
}

/// Adds the meter's counts to this node's buckets; on failure the counts go back to the meter.
pub fn persist(plane: &ControlPlane, meter: &Meter, node: &str) -> anyhow::Result<()> {
    let counts = meter.take();
    if counts.is_empty() {
        return Ok(());
    }
    match write_buckets(plane, &counts, node) {
        Ok(()) => Ok(()),
        Err(e) => {
            meter.restore(counts);
            Err(e)
        }
    }
}

fn write_buckets(plane: &ControlPlane, counts: &HashMap<UsageKey, u64>, node: &str) -> anyhow::Result<()> {
    let mut by_bucket: BTreeMap<(&str, u64), Vec<(&UsageKey, u64)>> = BTreeMap::new();
    for (key, n) in counts {
        by_bucket.entry((&*key.owner, key.minute)).or_default().push((key, *n));
    }
    let mut ops = Vec::new();
    for ((owner, minute), adds) in by_bucket {
        let key = keys::usage(owner, minute, node);
        let mut doc: UsageDoc = match plane.store().get(&key)? {
            Some(entry) => model::decode(&entry.value).map_err(|e| anyhow::anyhow!("{key}: {e}"))?,
            None => UsageDoc { minute, node: node.to_string(), lines: Vec::new() },
        };
        for (k, n) in adds {
            let found = doc
                .lines
                .iter_mut()
                .find(|l| l.owner == *k.owner && l.consumer == *k.consumer && l.vpc == *k.vpc && l.zone == *k.zone);
            match found {
                Some(line) => line.queries += n,
                None => doc.lines.push(UsageLine {
                    owner: k.owner.to_string(),
                    consumer: k.consumer.to_string(),
                    vpc: k.vpc.to_string(),
                    zone: k.zone.to_string(),
                    queries: n,
                }),
            }
        }
        ops.push(Op::Put { key, value: model::encode(&doc) });
    }
    plane.commit_internal(&ops)?;
    Ok(())
}

/// Drains the meter into the store every `every`, until the process ends.
pub async fn persist_loop(plane: Arc<ControlPlane>, meter: Arc<Meter>, node: String, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (plane, meter, node) = (plane.clone(), meter.clone(), node.clone());
        let result = tokio::task::spawn_blocking(move || persist(&plane, &meter, &node)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "usage not persisted yet; will retry"),
            Err(e) => tracing::error!(error = %e, "the usage persister failed"),
        }
    }
}

/// Usage billed to the caller's account (the operator sees every owner) between two Unix times, summed over nodes:
/// totals by zone, consuming account and VPC, plus the per-minute series.
pub fn query(plane: &ControlPlane, ctx: &Ctx, from: u64, to: u64) -> Result<Value, ApiError> {
    let owner = match ctx.actor {
        super::Actor::Operator => None,
        super::Actor::Tenant(t) => Some(t.require_read()?.0.clone()),
    };
    if to < from {
        return Err(ApiError::bad_request("bad_range", "`to` is before `from`"));
    }
    let (first, last) = (from / 60, to / 60);
    // A tenant reads its own buckets (one range); the operator reads every owner's and keeps the minutes asked for.
    let entries = match &owner {
        Some(owner) => {
            let start = keys::usage(owner, first, "");
            let end = keys::usage(owner, last.saturating_add(1), "");
            plane.store().range(&start, &end).map_err(super::store_error)?
        }
        None => plane.store().list(keys::USAGE).map_err(super::store_error)?.0,
    };
    let mut totals: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    let mut per_minute: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in entries {
        let Ok(doc) = model::decode::<UsageDoc>(&entry.value) else { continue };
        if !(first..=last).contains(&doc.minute) {
            continue;
        }
        for line in doc.lines.iter().filter(|l| owner.as_deref().is_none_or(|o| o == l.owner)) {
            let key = (line.owner.clone(), line.zone.clone(), line.consumer.clone(), line.vpc.clone());
            *totals.entry(key).or_default() += line.queries;
            *per_minute.entry(doc.minute).or_default() += line.queries;
        }
    }
    let items: Vec<Value> = totals
        .iter()
        .map(|((owner, zone, consumer, vpc), n)| json!({ "owner": owner, "zone": zone, "consumer": consumer, "vpc": vpc, "queries": n }))
        .collect();
    let minutes: Vec<Value> = per_minute.iter().map(|(m, n)| json!({ "minute": m * 60, "queries": n })).collect();
    let total: u64 = totals.values().sum();
    Ok(json!({ "from": from, "to": to, "total": total, "items": items, "minutes": minutes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::store::sqlite::SqliteStore;
    use crate::control::{auth, Actor};
    use crate::model::state::{Policy, Uid};
    use crate::settings::Served;

    #[test]
    fn usage_sums_over_nodes_and_filters_by_owner_and_time() {
        let server = Served::default();
        let plane = ControlPlane::open(Arc::new(SqliteStore::open_in_memory().expect("store")), server, vec![1; 32])
            .expect("plane");
        let line = |owner: &str, queries| UsageLine {
            owner: owner.into(),
            consumer: "2".into(),
            vpc: "v".into(),
            zone: "z".into(),
            queries,
        };
        for (node, minute, lines) in [
            ("a", 100, vec![line("1", 3)]),
            ("b", 100, vec![line("1", 4), line("9", 50)]),
            ("a", 200, vec![line("1", 5)]),
        ] {
            let doc = UsageDoc { minute, node: node.into(), lines };
            plane.commit_internal(&split_legacy(&doc)).expect("commit");
        }
        let tenant =
            Actor::Tenant(auth::Tenant { account: Uid("1".into()), user: None, policies: vec![Policy::DnsFullAccess] });
        let ask = |from: u64, to: u64| plane.read(&tenant, |_, ctx| query(&plane, ctx, from, to)).expect("usage");
        assert_eq!(ask(100 * 60, 100 * 60 + 59)["total"], 7, "two nodes' buckets of one minute add up");
        assert_eq!(ask(0, 300 * 60)["total"], 12, "another owner's 50 are not ours");
        assert_eq!(ask(150 * 60, 300 * 60)["total"], 5);
        let everything = plane.read(&Actor::Operator, |_, ctx| query(&plane, ctx, 0, 300 * 60)).expect("usage");
        assert_eq!(everything["total"], 62, "the operator sees every owner");
    }
}
