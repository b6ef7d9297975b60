//! The [`Store`] contract as executable checks, run against every backend: the embedded store in its unit tests,
//! etcd in `tests/etcd.rs`. Each check takes an empty store (an etcd backend: a fresh prefix) and panics with the
//! name of the broken rule. Revisions are relative to the store's revision at the start (etcd's are cluster-wide).
//! Only the feed's exact shape for several writes of one key in one transaction is left out: etcd refuses such a
//! transaction, so its backend keeps the last write of each key, with the same final state.
// A test suite, run by tests only: its expect() calls are its assertions.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use super::{Change, Compare, Entry, Op, Store, StoreError, TxnOutcome};

/// One rule of the contract, checked on an empty store.
type Check = fn(&dyn Store);

/// Every check, in order, each on a fresh store from `fresh`.
pub fn run_all(fresh: &mut dyn FnMut() -> Arc<dyn Store>) {
    let checks: [(&str, Check); 15] = [
        ("revision_counts_effective_transactions", revision_counts_effective_transactions),
        ("entries_carry_create_and_mod_revisions", entries_carry_create_and_mod_revisions),
        ("ops_on_one_key_apply_in_order", ops_on_one_key_apply_in_order),
        ("compares_check_mod_revision_and_absence", compares_check_mod_revision_and_absence),
        ("conflict_names_the_first_failing_compare", conflict_names_the_first_failing_compare),
        ("empty_keys_are_refused", empty_keys_are_refused),
        ("list_matches_prefixes_exactly_and_in_order", list_matches_prefixes_exactly_and_in_order),
        ("prefixes_are_literal", prefixes_are_literal),
        ("list_reports_its_snapshot_revision", list_reports_its_snapshot_revision),
        ("range_is_half_open_and_ordered", range_is_half_open_and_ordered),
        ("list_prefixes_reads_several_prefixes_at_once", list_prefixes_reads_several_prefixes_at_once),
        ("delete_prefix_records_one_change_per_key", delete_prefix_records_one_change_per_key),
        ("changes_since_is_ordered_and_limited", changes_since_is_ordered_and_limited),
        ("changes_since_never_splits_a_revision", changes_since_never_splits_a_revision),
        ("compaction_drops_history_but_keeps_values", compaction_drops_history_but_keeps_values),
    ];
    for (name, check) in checks {
        let store = fresh();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(store.as_ref())));
        if let Err(e) = outcome {
            let why = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("store contract broken: {name}: {}", why.unwrap_or_default());
        }
    }
    concurrent_compare_and_swap_counts_exactly(fresh().as_ref());
}

/// Shorthands for the operations the checks (and the backends' own tests) write.
pub(crate) fn put(key: &str, value: &str) -> Op {
    Op::Put { key: key.into(), value: value.as_bytes().to_vec() }
}
pub(crate) fn del(key: &str) -> Op {
    Op::Delete { key: key.into() }
}
pub(crate) fn del_prefix(prefix: &str) -> Op {
    Op::DeletePrefix { prefix: prefix.into() }
}
pub(crate) fn cmp(key: &str, mod_revision: u64) -> Compare {
    Compare { key: key.into(), mod_revision }
}
fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}
fn value(s: &dyn Store, key: &str) -> Option<String> {
    s.get(key).expect("get").map(|e| String::from_utf8(e.value).expect("utf-8"))
}
fn change(revision: u64, key: &str, value: Option<&str>) -> Change {
    Change { revision, key: key.into(), value: value.map(|v| v.as_bytes().to_vec()) }
}
fn txn(s: &dyn Store, compares: &[Compare], ops: &[Op]) -> TxnOutcome {
    s.txn(compares, ops).expect("txn")
}
fn committed(revision: u64) -> TxnOutcome {
    TxnOutcome::Committed { revision }
}

fn revision_counts_effective_transactions(s: &dyn Store) {
    let r = s.revision().expect("revision");
    assert_eq!(txn(s, &[], &[put("a", "1"), put("b", "2")]), committed(r + 1));
    assert_eq!(txn(s, &[], &[put("a", "1")]), committed(r + 2), "a put of the same value still counts");
    assert_eq!(txn(s, &[], &[del("missing")]), committed(r + 2), "a no-op delete does not bump");
    assert_eq!(txn(s, &[], &[del_prefix("zzz/")]), committed(r + 2));
    assert_eq!(txn(s, &[], &[]), committed(r + 2));
    assert_eq!(txn(s, &[], &[del("missing"), del("b")]), committed(r + 3));
    assert_eq!(s.revision().expect("revision"), r + 3);
    assert_eq!(s.changes_since(r, 100).expect("feed").len(), 4);
}

fn entries_carry_create_and_mod_revisions(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("k", "1")]);
    txn(s, &[], &[put("k", "2")]);
    let e = s.get("k").expect("get").expect("k");
    assert_eq!((e.create_revision, e.mod_revision, e.value.as_slice()), (r + 1, r + 2, &b"2"[..]));
    txn(s, &[], &[del("k")]);
    assert_eq!(s.get("k").expect("get"), None);
    txn(s, &[], &[put("k", "3")]);
    let e = s.get("k").expect("get").expect("k");
    assert_eq!((e.create_revision, e.mod_revision), (r + 4, r + 4), "a re-created key starts a new life");
}

fn ops_on_one_key_apply_in_order(s: &dyn Store) {
    let r = s.revision().expect("revision");
    assert_eq!(txn(s, &[], &[put("k", "1"), put("k", "2"), del("k"), put("k", "3")]), committed(r + 1));
    assert_eq!(value(s, "k").as_deref(), Some("3"));
    // A put then a delete of one key leaves it absent (whether that counts as a change is the backend's: etcd sees
    // only the delete).
    txn(s, &[], &[put("j", "1"), del("j")]);
    assert_eq!(value(s, "j"), None);
    let last = s.changes_since(r, 10).expect("feed");
    assert_eq!(last.iter().rev().find(|c| c.key == "k"), Some(&change(r + 1, "k", Some("3"))));
}

fn compares_check_mod_revision_and_absence(s: &dyn Store) {
    let r = s.revision().expect("revision");
    assert_eq!(txn(s, &[cmp("k", 0)], &[put("k", "1")]), committed(r + 1), "0 = must not exist");
    let conflict = txn(s, &[cmp("k", 0)], &[put("k", "x")]);
    assert_eq!(conflict, TxnOutcome::Conflict { key: "k".into(), expected: 0, actual: r + 1 });
    assert_eq!(txn(s, &[cmp("k", r + 1)], &[put("k", "2")]), committed(r + 2));
    let stale = txn(s, &[cmp("k", r + 1)], &[put("k", "x")]);
    assert_eq!(stale, TxnOutcome::Conflict { key: "k".into(), expected: r + 1, actual: r + 2 });
    let absent = txn(s, &[cmp("other", 5)], &[]);
    assert_eq!(absent, TxnOutcome::Conflict { key: "other".into(), expected: 5, actual: 0 });
}

fn conflict_names_the_first_failing_compare(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("a", "1"), put("b", "1")]);
    let before = s.list("").expect("list").0;
    let outcome = txn(s, &[cmp("a", r + 1), cmp("b", 7), cmp("c", 9)], &[put("a", "2"), del("b"), put("c", "3")]);
    assert_eq!(outcome, TxnOutcome::Conflict { key: "b".into(), expected: 7, actual: r + 1 });
    assert_eq!(s.list("").expect("list").0, before);
    assert_eq!(s.revision().expect("revision"), r + 1);
    assert_eq!(s.changes_since(r + 1, 10).expect("feed"), vec![]);
}

fn empty_keys_are_refused(s: &dyn Store) {
    assert!(matches!(s.txn(&[], &[put("", "1")]), Err(StoreError::Invalid(_))));
    assert!(matches!(s.txn(&[cmp("", 0)], &[]), Err(StoreError::Invalid(_))));
    assert!(matches!(s.txn(&[], &[del_prefix("")]), Err(StoreError::Invalid(_))));
}

fn list_matches_prefixes_exactly_and_in_order(s: &dyn Store) {
    let all = ["a", "a/", "a/b", "a/b/c", "a/c", "a0", "ab", "b"];
    txn(s, &[], &all.iter().rev().map(|k| put(k, k)).collect::<Vec<_>>());
    assert_eq!(keys(&s.list("a/").expect("list").0), ["a/", "a/b", "a/b/c", "a/c"]);
    assert_eq!(keys(&s.list("a/b").expect("list").0), ["a/b", "a/b/c"]);
    assert_eq!(keys(&s.list("ab").expect("list").0), ["ab"]);
    assert_eq!(keys(&s.list("a").expect("list").0), ["a", "a/", "a/b", "a/b/c", "a/c", "a0", "ab"]);
    assert_eq!(keys(&s.list("").expect("list").0), all);
    assert!(s.list("c").expect("list").0.is_empty());
}

fn prefixes_are_literal(s: &dyn Store) {
    txn(s, &[], &[put("x%/1", ""), put("x_/1", ""), put("xa/1", ""), put("x\u{10FFFF}", "")]);
    assert_eq!(keys(&s.list("x%").expect("list").0), ["x%/1"]);
    assert_eq!(keys(&s.list("x_").expect("list").0), ["x_/1"]);
    assert_eq!(keys(&s.list("x\u{10FFFF}").expect("list").0), ["x\u{10FFFF}"]);
    txn(s, &[], &[del_prefix("x_")]);
    assert_eq!(keys(&s.list("x").expect("list").0), ["x%/1", "xa/1", "x\u{10FFFF}"]);
}

fn list_reports_its_snapshot_revision(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("a/1", "1")]);
    txn(s, &[], &[put("b/1", "1")]);
    let (entries, revision) = s.list("a/").expect("list");
    assert_eq!((entries.len(), revision), (1, r + 2));
}

fn range_is_half_open_and_ordered(s: &dyn Store) {
    let audit = ["audit/001", "audit/002", "audit/003", "audit/010"];
    txn(s, &[], &audit.iter().map(|k| put(k, k)).collect::<Vec<_>>());
    let range = |start, end, limit| -> Vec<String> {
        s.range(start, end, limit).expect("range").into_iter().map(|e| e.key).collect()
    };
    assert_eq!(range("audit/002", "audit/010", 10), ["audit/002", "audit/003"]);
    assert_eq!(range("audit/", "audit0", 10), audit);
    assert_eq!(range("audit/", "audit0", 2), ["audit/001", "audit/002"], "the first by key, at most limit");
    assert!(range("audit/", "audit0", 0).is_empty());
    assert!(range("audit/003", "audit/003", 10).is_empty());
    assert!(range("z", "a", 10).is_empty());
}

fn list_prefixes_reads_several_prefixes_at_once(s: &dyn Store) {
    txn(s, &[], &[put("a/1", "1"), put("b/1", "1"), put("c/1", "1"), put("ab", "1")]);
    let (entries, revision) = s.list_prefixes(&["c/", "a/"]).expect("list");
    assert_eq!(keys(&entries), ["a/1", "c/1"], "only the prefixes asked for, sorted by key");
    assert_eq!(revision, s.revision().expect("revision"));
    assert!(s.list_prefixes(&[]).expect("list").0.is_empty());
}

fn delete_prefix_records_one_change_per_key(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("t/2", "x"), put("t/1", "x"), put("t0", "x"), put("t", "x")]);
    assert_eq!(txn(s, &[], &[del_prefix("t/")]), committed(r + 2));
    assert_eq!(s.changes_since(r + 1, 10).expect("feed"), [change(r + 2, "t/1", None), change(r + 2, "t/2", None)]);
    assert_eq!(keys(&s.list("").expect("list").0), ["t", "t0"]);
}

fn changes_since_is_ordered_and_limited(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("a", "1"), put("b", "1")]);
    txn(s, &[], &[put("a", "2")]);
    txn(s, &[], &[del("b")]);
    let all = s.changes_since(r, 100).expect("feed");
    let expected = [
        change(r + 1, "a", Some("1")),
        change(r + 1, "b", Some("1")),
        change(r + 2, "a", Some("2")),
        change(r + 3, "b", None),
    ];
    assert_eq!(all, expected);
    assert_eq!(s.changes_since(r + 1, 100).expect("feed"), &expected[2..]);
    assert_eq!(s.changes_since(r, 3).expect("feed"), &expected[..3]);
    assert_eq!(s.changes_since(r + 3, 100).expect("feed"), vec![]);
    assert_eq!(s.changes_since(r, 0).expect("feed"), vec![]);
    assert_eq!(s.changes_since(r + 99, 100).expect("feed"), vec![], "nothing after the future");
}

fn changes_since_never_splits_a_revision(s: &dyn Store) {
    let r = s.revision().expect("revision");
    txn(s, &[], &[put("a", "1")]);
    txn(s, &[], &[put("b", "1"), put("c", "1"), put("d", "1")]);
    assert_eq!(s.changes_since(r, 2).expect("feed"), [change(r + 1, "a", Some("1"))], "revision 2 would be cut");
    let big = s.changes_since(r + 1, 2).expect("feed");
    assert_eq!(big.len(), 3, "a revision larger than the limit comes whole");
    assert!(big.iter().all(|c| c.revision == r + 2));
}

fn compaction_drops_history_but_keeps_values(s: &dyn Store) {
    let r = s.revision().expect("revision");
    for i in 0..5 {
        txn(s, &[], &[put("k", &i.to_string())]);
    }
    s.compact(r + 3).expect("compact");
    assert_eq!(s.changes_since(r + 3, 10).expect("feed").len(), 2);
    assert!(matches!(s.changes_since(r + 2, 10), Err(StoreError::Compacted { requested, .. }) if requested == r + 2));
    s.compact(r + 1).expect("behind the compaction point: nothing to do");
    assert!(matches!(s.changes_since(r + 2, 10), Err(StoreError::Compacted { .. })));
    assert!(matches!(s.compact(r + 6), Err(StoreError::FutureRevision { .. })));
    assert_eq!(value(s, "k").as_deref(), Some("4"));
    s.compact(r + 5).expect("compact");
    assert_eq!(s.changes_since(r + 5, 10).expect("feed"), vec![]);
}

/// Threads increment one counter by compare-and-swap: the total is exact.
fn concurrent_compare_and_swap_counts_exactly(s: &dyn Store) {
    const THREADS: usize = 4;
    const EACH: u64 = 25;
    txn(s, &[], &[put("counter", "0")]);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..EACH {
                    increment(s);
                }
            });
        }
    });
    assert_eq!(value(s, "counter"), Some((THREADS as u64 * EACH).to_string()));
}

fn increment(s: &dyn Store) {
    for _ in 0..10_000 {
        let e = s.get("counter").expect("get").expect("counter");
        let n: u64 = std::str::from_utf8(&e.value).expect("utf-8").parse().expect("number");
        if let TxnOutcome::Committed { .. } =
            txn(s, &[cmp("counter", e.mod_revision)], &[put("counter", &(n + 1).to_string())])
        {
            return;
        }
    }
    panic!("compare-and-swap never succeeded");
}
