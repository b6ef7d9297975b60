//! Retention: audit entries and usage buckets are history kept beside the served state (never read at start-up),
//! bounded by the `[store]` retention settings. A sweep — every node runs one now and then — deletes audit entries
//! past their time, rolls usage minutes into hours and hours into days, and deletes days past theirs. Every move
//! is one transaction under compares on what it read, so nodes sweeping at once (or a node adding counts to a
//! bucket being rolled) never count a query twice or lose one: the loser of a race leaves the work to the next
//! sweep.

use std::collections::BTreeMap;

use super::docs;
use super::keys::{self, Span};
use super::usage::{add_line, UsageDoc};
use super::ControlPlane;
use crate::control::store::{prefix_end, Compare, Entry, Op, Store};
use crate::settings::Retention;

/// Entries read and moved per transaction: within etcd's default of 128 operations per transaction.
const BATCH: usize = 120;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    pub audit_deleted: usize,
    pub buckets_rolled: usize,
    pub buckets_deleted: usize,
}

/// Applies `retention` at Unix time `now` (seconds).
pub(crate) fn sweep(plane: &ControlPlane, retention: &Retention, now: u64) -> anyhow::Result<Swept> {
    let store = plane.store().as_ref();
    let mut swept = Swept::default();
    let audit_cutoff_ms = now.saturating_sub(retention.audit.as_secs()).saturating_mul(1000);
    for account in groups(store, keys::AUDIT)? {
        let start = format!("{}{account}/", keys::AUDIT);
        let end = format!("{start}{audit_cutoff_ms:016}");
        swept.audit_deleted += delete_range(plane, &start, &end)?;
    }
    for span in Span::ALL {
        let keep = match span {
            Span::Minute => retention.usage_minutes,
            Span::Hour => retention.usage_hours,
            Span::Day => retention.usage_days,
        };
        // The minute before which a bucket's time is `keep` over.
        let cutoff = now.saturating_sub(keep.as_secs()) / 60;
        for owner in groups(store, span.prefix())? {
            let start = format!("{}{owner}/", span.prefix());
            match span.next() {
                // Only whole buckets of the next span: every minute (hour) of that hour (day) is over.
                Some(next) => {
                    let end = format!("{start}{:012}", cutoff / next.minutes() * next.minutes());
                    swept.buckets_rolled += roll(plane, &start, &end, next)?;
                }
                None => {
                    let end = format!("{start}{:012}", (cutoff + 1).saturating_sub(span.minutes()));
                    swept.buckets_deleted += delete_range(plane, &start, &end)?;
                }
            }
        }
    }
    Ok(swept)
}

/// The first key component after `prefix` (an account, escaped as in keys), one short read each: what is under the
/// prefix is never read whole.
fn groups(store: &dyn Store, prefix: &str) -> anyhow::Result<Vec<String>> {
    let Some(end) = prefix_end(prefix) else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    let mut cursor = prefix.to_string();
    while let Some(first) = store.range(&cursor, &end, 1)?.pop() {
        let rest = &first.key[prefix.len()..];
        match rest.split_once('/') {
            Some((group, _)) => {
                found.push(group.to_string());
                cursor = prefix_end(&format!("{prefix}{group}/")).unwrap_or_else(|| end.clone());
            }
            // A key of an older layout (moved at start-up): step over it.
            None => cursor = format!("{}\u{0}", first.key),
        }
    }
    Ok(found)
}

/// Deletes every key in [start, end), a batch at a time, each batch guarded by the revisions read. Stops at the
/// first conflict (the next sweep goes on). Returns how many were deleted.
fn delete_range(plane: &ControlPlane, start: &str, end: &str) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let batch = plane.store().range(start, end, BATCH)?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        let compares: Vec<Compare> = batch.iter().map(guard).collect();
        let ops: Vec<Op> = batch.iter().map(|e| Op::Delete { key: e.key.clone() }).collect();
        if plane.commit_guarded(&compares, &ops)?.is_none() {
            return Ok(deleted);
        }
        deleted += batch.len();
    }
}

/// Moves the buckets in [start, end) into buckets of span `into` (same owner and node), a batch at a time: each
/// target bucket is written with the sources' counts added, and the sources deleted, in one guarded transaction.
fn roll(plane: &ControlPlane, start: &str, end: &str, into: Span) -> anyhow::Result<usize> {
    let mut rolled = 0;
    loop {
        let batch = plane.store().range(start, end, BATCH)?;
        if batch.is_empty() {
            return Ok(rolled);
        }
        // Each target bucket: its key, an empty bucket of its own (used when it does not exist yet), the sources.
        let mut targets: BTreeMap<String, (UsageDoc, Vec<(Entry, UsageDoc)>)> = BTreeMap::new();
        for entry in batch {
            let Some(keys::Key::Usage { owner, minute, node, .. }) = keys::Key::parse(&entry.key) else {
                anyhow::bail!("{}: not a usage bucket", entry.key);
            };
            let first = minute / into.minutes() * into.minutes();
            let target = keys::usage_bucket(into, &owner, first, &node);
            let doc: UsageDoc = docs::decode(&entry.value).map_err(|e| anyhow::anyhow!("{}: {e}", entry.key))?;
            let empty = UsageDoc { minute: first, node: node.into_owned(), lines: Vec::new() };
            targets.entry(target).or_insert_with(|| (empty, Vec::new())).1.push((entry, doc));
        }
        for (target, (empty, sources)) in targets {
            let moved = sources.len();
            if !merge_into(plane, &target, empty, sources)? {
                return Ok(rolled);
            }
            rolled += moved;
        }
    }
}

/// One roll-up transaction: `target` (`empty` until it exists) gets the sources' lines, the sources go. False on a
/// conflict.
fn merge_into(
    plane: &ControlPlane,
    target: &str,
    empty: UsageDoc,
    sources: Vec<(Entry, UsageDoc)>,
) -> anyhow::Result<bool> {
    let existing = plane.store().get(target)?;
    let mut doc = match &existing {
        Some(entry) => docs::decode::<UsageDoc>(&entry.value).map_err(|e| anyhow::anyhow!("{target}: {e}"))?,
        None => empty,
    };
    let mut compares = vec![Compare { key: target.to_string(), mod_revision: existing.map_or(0, |e| e.mod_revision) }];
    let mut ops = Vec::new();
    for (entry, source) in sources {
        for line in source.lines {
            add_line(&mut doc.lines, line);
        }
        compares.push(guard(&entry));
        ops.push(Op::Delete { key: entry.key });
    }
    ops.push(Op::Put { key: target.to_string(), value: docs::encode(&doc) });
    Ok(plane.commit_guarded(&compares, &ops)?.is_some())
}

fn guard(entry: &Entry) -> Compare {
    Compare { key: entry.key.clone(), mod_revision: entry.mod_revision }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::control::store::sqlite::SqliteStore;
    use crate::control::usage::UsageLine;
    use crate::control::Actor;
    use crate::model::billing::UsageKind;

    const DAY: u64 = 86_400;

    fn plane() -> ControlPlane {
        let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
        ControlPlane::open(store, crate::settings::Served::default(), vec![3; 32]).expect("plane")
    }

    fn put(plane: &ControlPlane, key: String, value: Vec<u8>) {
        plane.commit_internal(&[Op::Put { key, value }]).expect("commit");
    }

    fn bucket(plane: &ControlPlane, owner: &str, minute: u64, node: &str, queries: u64) {
        let line = UsageLine {
            owner: owner.into(),
            consumer: "2".into(),
            vpc: "v".into(),
            zone: "z".into(),
            kind: UsageKind::Zone,
            queries,
        };
        let doc = UsageDoc { minute, node: node.into(), lines: vec![line] };
        put(plane, keys::usage(owner, minute, node), docs::encode(&doc));
    }

    fn keys_under(plane: &ControlPlane, prefix: &str) -> Vec<String> {
        plane.store().list(prefix).expect("list").0.into_iter().map(|e| e.key).collect()
    }

    fn total(plane: &ControlPlane, to: u64) -> u64 {
        plane.read(&Actor::Operator, |_, ctx| crate::control::usage::query(plane, ctx, 0, to)).expect("usage").total
    }

    fn retention(audit: u64, minutes: u64, hours: u64, days: u64) -> Retention {
        let s = Duration::from_secs;
        Retention { audit: s(audit), usage_minutes: s(minutes), usage_hours: s(hours), usage_days: s(days) }
    }

    #[test]
    fn audit_entries_past_their_time_go_and_the_rest_stay() {
        let plane = plane();
        let now = 100 * DAY;
        for (account, day) in [("1", 1), ("1", 95), ("2", 2), ("2", 99), ("-", 3)] {
            put(&plane, keys::audit(account, day * DAY * 1000, "e"), b"{}".to_vec());
        }
        put(&plane, "audit/00001-legacy".into(), b"{}".to_vec());
        let swept = sweep(&plane, &retention(10 * DAY, DAY, DAY, DAY), now).expect("sweep");
        assert_eq!(swept.audit_deleted, 3);
        let left = keys_under(&plane, keys::AUDIT);
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.iter().any(|k| k.contains("legacy")), "a key of no known layout is stepped over, not read as one");
    }

    #[test]
    fn usage_rolls_into_hours_then_days_and_keeps_its_total() {
        let plane = plane();
        // Minutes of day 10 (two hours, two nodes, two owners) and of today.
        let day10 = 10 * 1440;
        for (minute, node, owner, n) in
            [(day10, "a", "1", 3), (day10 + 59, "a", "1", 4), (day10 + 60, "b", "1", 5), (day10 + 1, "a", "9", 7)]
        {
            bucket(&plane, owner, minute, node, n);
        }
        let today = 30 * 1440;
        bucket(&plane, "1", today, "a", 11);
        let everything = 31 * DAY;
        assert_eq!(total(&plane, everything), 30);

        // Minutes are kept 2 days, hours 5: on day 13, day 10's minutes become hours, today's stay.
        let swept = sweep(&plane, &retention(DAY, 2 * DAY, 5 * DAY, 100 * DAY), 13 * DAY).expect("sweep");
        assert_eq!(swept.buckets_rolled, 4);
        assert_eq!(keys_under(&plane, keys::USAGE).len(), 1, "only today's minute is left");
        assert_eq!(keys_under(&plane, keys::USAGE_HOURS).len(), 3, "one bucket per owner, hour and node");
        assert_eq!(total(&plane, everything), 30, "rolling up neither loses nor adds a query");

        // Past 5 days the hours become days; a second sweep finds nothing more to do.
        sweep(&plane, &retention(DAY, 2 * DAY, 5 * DAY, 100 * DAY), 31 * DAY).expect("sweep");
        assert_eq!(keys_under(&plane, keys::USAGE_HOURS).len(), 0);
        assert_eq!(keys_under(&plane, keys::USAGE_DAYS).len(), 3, "one day bucket per owner and node");
        assert_eq!(total(&plane, everything), 30);
        let again = sweep(&plane, &retention(DAY, 2 * DAY, 5 * DAY, 100 * DAY), 31 * DAY).expect("sweep");
        assert_eq!(again, Swept::default());

        // Past the days' retention the days are deleted.
        let swept = sweep(&plane, &retention(DAY, 2 * DAY, 5 * DAY, 10 * DAY), 31 * DAY).expect("sweep");
        assert_eq!(swept.buckets_deleted, 3);
        assert_eq!(total(&plane, everything), 11, "today's minute is all that is left");
    }

    #[test]
    fn counts_added_to_a_rolled_minute_are_not_lost() {
        let plane = plane();
        bucket(&plane, "1", 60, "a", 2);
        sweep(&plane, &retention(DAY, 60, DAY, DAY), 3 * 3600).expect("sweep");
        // A node that was cut off writes the same minute late: it lands in a fresh bucket, rolled up next time.
        bucket(&plane, "1", 61, "a", 5);
        sweep(&plane, &retention(DAY, 60, DAY, DAY), 3 * 3600).expect("sweep");
        assert_eq!(keys_under(&plane, keys::USAGE_HOURS).len(), 1);
        assert_eq!(total(&plane, DAY), 7);
    }
}
