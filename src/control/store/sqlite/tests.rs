//! The embedded store on its own: transactions, compares, history, compaction, schema and backups.

use super::schema::schema_version;
use super::*;
use crate::control::store::conformance::{cmp, del, del_prefix, put};
use std::fs::{self, File};
use std::sync::Arc;

fn committed(revision: u64) -> TxnOutcome {
    TxnOutcome::Committed { revision }
}

fn mem() -> SqliteStore {
    SqliteStore::open_in_memory().unwrap()
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

fn value(store: &SqliteStore, key: &str) -> Option<String> {
    store.get(key).unwrap().map(|e| String::from_utf8(e.value).unwrap())
}

fn change(revision: u64, key: &str, value: Option<&str>) -> Change {
    Change { revision, key: key.into(), value: value.map(|v| v.as_bytes().to_vec()) }
}

#[test]
fn the_store_contract_holds() {
    crate::control::store::conformance::run_all(&mut || std::sync::Arc::new(mem()));
}

#[test]
fn revision_counts_effective_transactions() {
    let s = mem();
    assert_eq!(s.revision().unwrap(), 0);
    assert_eq!(s.txn(&[], &[put("a", "1"), put("b", "2")]).unwrap(), committed(1));
    assert_eq!(s.txn(&[], &[put("a", "1")]).unwrap(), committed(2), "a put of the same value still counts");
    assert_eq!(s.txn(&[], &[del("missing")]).unwrap(), committed(2), "a no-op delete does not bump");
    assert_eq!(s.txn(&[], &[del_prefix("zzz/")]).unwrap(), committed(2));
    assert_eq!(s.txn(&[], &[]).unwrap(), committed(2));
    assert_eq!(s.txn(&[], &[del("missing"), del("b")]).unwrap(), committed(3));
    assert_eq!(s.revision().unwrap(), 3);
    assert_eq!(s.changes_since(0, 100).unwrap().len(), 4);
}

#[test]
fn entries_carry_create_and_mod_revisions() {
    let s = mem();
    s.txn(&[], &[put("k", "1")]).unwrap();
    s.txn(&[], &[put("k", "2")]).unwrap();
    let e = s.get("k").unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision, e.value.as_slice()), (1, 2, &b"2"[..]));
    s.txn(&[], &[del("k")]).unwrap();
    assert_eq!(s.get("k").unwrap(), None);
    s.txn(&[], &[put("k", "3")]).unwrap();
    let e = s.get("k").unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision), (4, 4), "a re-created key starts a new life");
}

#[test]
fn ops_on_one_key_apply_in_order() {
    let s = mem();
    s.txn(&[], &[put("k", "1"), put("k", "2"), del("k"), put("k", "3")]).unwrap();
    assert_eq!(value(&s, "k").as_deref(), Some("3"));
    let feed = s.changes_since(0, 10).unwrap();
    let expected =
        [change(1, "k", Some("1")), change(1, "k", Some("2")), change(1, "k", None), change(1, "k", Some("3"))];
    assert_eq!(feed, expected);
}

#[test]
fn compares_check_mod_revision_and_absence() {
    let s = mem();
    assert_eq!(s.txn(&[cmp("k", 0)], &[put("k", "1")]).unwrap(), committed(1), "0 = must not exist");
    let conflict = s.txn(&[cmp("k", 0)], &[put("k", "x")]).unwrap();
    assert_eq!(conflict, TxnOutcome::Conflict { key: "k".into(), expected: 0, actual: 1 });
    assert_eq!(s.txn(&[cmp("k", 1)], &[put("k", "2")]).unwrap(), committed(2));
    let stale = s.txn(&[cmp("k", 1)], &[put("k", "x")]).unwrap();
    assert_eq!(stale, TxnOutcome::Conflict { key: "k".into(), expected: 1, actual: 2 });
    let absent = s.txn(&[cmp("other", 5)], &[]).unwrap();
    assert_eq!(absent, TxnOutcome::Conflict { key: "other".into(), expected: 5, actual: 0 });
}

#[test]
fn conflict_names_the_first_failing_compare_and_changes_nothing() {
    let s = mem();
    s.txn(&[], &[put("a", "1"), put("b", "1")]).unwrap();
    let before = s.list("").unwrap();
    let outcome = s.txn(&[cmp("a", 1), cmp("b", 7), cmp("c", 9)], &[put("a", "2"), del("b"), put("c", "3")]);
    assert_eq!(outcome.unwrap(), TxnOutcome::Conflict { key: "b".into(), expected: 7, actual: 1 });
    assert_eq!(s.list("").unwrap(), before);
    assert_eq!(s.revision().unwrap(), 1);
    assert_eq!(s.changes_since(1, 10).unwrap(), vec![]);
}

#[test]
fn empty_keys_are_refused() {
    let s = mem();
    assert!(matches!(s.txn(&[], &[put("", "1")]), Err(StoreError::Invalid(_))));
    assert!(matches!(s.txn(&[cmp("", 0)], &[]), Err(StoreError::Invalid(_))));
    assert!(matches!(s.txn(&[], &[del_prefix("")]), Err(StoreError::Invalid(_))));
}

#[test]
fn list_matches_prefixes_exactly_and_in_order() {
    let s = mem();
    let all = ["a", "a/", "a/b", "a/b/c", "a/c", "a0", "ab", "b"];
    s.txn(&[], &all.iter().rev().map(|k| put(k, k)).collect::<Vec<_>>()).unwrap();
    assert_eq!(keys(&s.list("a/").unwrap().0), ["a/", "a/b", "a/b/c", "a/c"]);
    assert_eq!(keys(&s.list("a/b").unwrap().0), ["a/b", "a/b/c"]);
    assert_eq!(keys(&s.list("ab").unwrap().0), ["ab"]);
    assert_eq!(keys(&s.list("a").unwrap().0), ["a", "a/", "a/b", "a/b/c", "a/c", "a0", "ab"]);
    assert_eq!(keys(&s.list("").unwrap().0), all);
    assert_eq!(s.list("c").unwrap(), (vec![], 1));
}

#[test]
fn prefixes_treat_like_wildcards_literally() {
    let s = mem();
    s.txn(&[], &[put("x%/1", ""), put("x_/1", ""), put("xa/1", ""), put("x\u{10FFFF}", "")]).unwrap();
    assert_eq!(keys(&s.list("x%").unwrap().0), ["x%/1"]);
    assert_eq!(keys(&s.list("x_").unwrap().0), ["x_/1"]);
    assert_eq!(keys(&s.list("x\u{10FFFF}").unwrap().0), ["x\u{10FFFF}"]);
    s.txn(&[], &[del_prefix("x_")]).unwrap();
    assert_eq!(keys(&s.list("x").unwrap().0), ["x%/1", "xa/1", "x\u{10FFFF}"]);
}

#[test]
fn list_reports_its_snapshot_revision() {
    let s = mem();
    s.txn(&[], &[put("a/1", "1")]).unwrap();
    s.txn(&[], &[put("b/1", "1")]).unwrap();
    let (entries, revision) = s.list("a/").unwrap();
    assert_eq!((entries.len(), revision), (1, 2));
}

#[test]
fn delete_prefix_records_one_change_per_key_in_key_order() {
    let s = mem();
    s.txn(&[], &[put("t/2", "x"), put("t/1", "x"), put("t0", "x"), put("t", "x")]).unwrap();
    assert_eq!(s.txn(&[], &[del_prefix("t/")]).unwrap(), committed(2));
    assert_eq!(s.changes_since(1, 10).unwrap(), [change(2, "t/1", None), change(2, "t/2", None)]);
    assert_eq!(keys(&s.list("").unwrap().0), ["t", "t0"]);
}

#[test]
fn changes_since_is_ordered_and_limited() {
    let s = mem();
    s.txn(&[], &[put("a", "1"), put("b", "1")]).unwrap();
    s.txn(&[], &[put("a", "2")]).unwrap();
    s.txn(&[], &[del("b")]).unwrap();
    let all = s.changes_since(0, 100).unwrap();
    let expected =
        [change(1, "a", Some("1")), change(1, "b", Some("1")), change(2, "a", Some("2")), change(3, "b", None)];
    assert_eq!(all, expected);
    assert_eq!(s.changes_since(1, 100).unwrap(), &expected[2..]);
    assert_eq!(s.changes_since(0, 3).unwrap(), &expected[..3]);
    assert_eq!(s.changes_since(3, 100).unwrap(), vec![]);
    assert_eq!(s.changes_since(99, 100).unwrap(), vec![]);
    assert_eq!(s.changes_since(0, 0).unwrap(), vec![]);
}

#[test]
fn changes_since_never_splits_a_revision() {
    let s = mem();
    s.txn(&[], &[put("a", "1")]).unwrap();
    s.txn(&[], &[put("b", "1"), put("c", "1"), put("d", "1")]).unwrap();
    assert_eq!(s.changes_since(0, 2).unwrap(), [change(1, "a", Some("1"))], "revision 2 would be cut");
    let big = s.changes_since(1, 2).unwrap();
    assert_eq!(big.len(), 3, "a revision larger than the limit comes whole");
    assert!(big.iter().all(|c| c.revision == 2));
}

#[test]
fn compaction_drops_history_but_keeps_values() {
    let s = mem();
    for i in 0..5 {
        s.txn(&[], &[put("k", &i.to_string())]).unwrap();
    }
    s.compact(3).unwrap();
    assert_eq!(s.changes_since(3, 10).unwrap().len(), 2);
    assert!(matches!(s.changes_since(2, 10), Err(StoreError::Compacted { requested: 2, oldest: 3 })));
    assert!(matches!(s.changes_since(0, 10), Err(StoreError::Compacted { requested: 0, oldest: 3 })));
    s.compact(1).unwrap(); // behind the compaction point: nothing to do
    assert!(matches!(s.changes_since(2, 10), Err(StoreError::Compacted { oldest: 3, .. })));
    assert!(matches!(s.compact(6), Err(StoreError::FutureRevision { requested: 6, current: 5 })));
    assert_eq!(value(&s, "k").as_deref(), Some("4"));
    s.compact(5).unwrap();
    assert_eq!(s.changes_since(5, 10).unwrap(), vec![]);
}

#[test]
fn a_reopened_file_store_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.txn(&[], &[put("zones/1/corp.internal.", "{}"), put("accounts/1", "{}")]).unwrap();
        s.txn(&[], &[del("accounts/1")]).unwrap();
        s.compact(1).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.revision().unwrap(), 2);
    assert_eq!(keys(&s.list("").unwrap().0), ["zones/1/corp.internal."]);
    assert_eq!(s.changes_since(1, 10).unwrap(), [change(2, "accounts/1", None)]);
    assert!(matches!(s.changes_since(0, 10), Err(StoreError::Compacted { .. })));
}

#[test]
fn open_configures_wal_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let conn = s.conn.lock().unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
}

#[test]
fn open_needs_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("missing/state.db")).unwrap_err();
    assert!(matches!(&err, StoreError::Sqlite { path, .. } if path.contains("missing")), "{err}");
}

#[test]
fn an_empty_file_is_migrated_to_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    File::create(&path).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&s.conn.lock().unwrap()).unwrap(), SCHEMA_VERSION);
    assert_eq!(s.revision().unwrap(), 0);
}

#[test]
fn migrations_apply_only_the_missing_steps() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
    conn.execute("INSERT INTO kv VALUES ('k', x'00', 1, 1)", []).unwrap();
    let steps = [MIGRATIONS[0], "CREATE TABLE extra (x INTEGER) STRICT"];
    migrate(&mut conn, &steps).unwrap();
    migrate(&mut conn, &steps).unwrap(); // idempotent: step 2 is not applied twice
    assert_eq!(schema_version(&conn).unwrap(), 2);
    let kept: i64 = conn.query_row("SELECT count(*) FROM kv", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 1);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'schema_version'", [SCHEMA_VERSION + 1]).unwrap();
    }
    let before = fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    let too_new = StoreError::SchemaTooNew { found: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION };
    assert_eq!(err.to_string(), too_new.to_string());
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path).unwrap().execute_batch("CREATE TABLE users (id INTEGER)").unwrap();
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(_))));
}

#[test]
fn backup_and_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("state.db");
    let copy = dir.path().join("backup.db");
    let s = SqliteStore::open(&live).unwrap();
    s.txn(&[], &[put("a", "1"), put("b", "1")]).unwrap();
    s.backup(&copy).unwrap();
    s.txn(&[], &[put("a", "2"), del("b")]).unwrap();
    drop(s);

    SqliteStore::restore(&copy, &live).unwrap();
    let s = SqliteStore::open(&live).unwrap();
    assert_eq!(s.revision().unwrap(), 1);
    assert_eq!(value(&s, "a").as_deref(), Some("1"));
    assert_eq!(value(&s, "b").as_deref(), Some("1"));
    assert_eq!(s.changes_since(0, 10).unwrap().len(), 2);
    assert_eq!(s.txn(&[cmp("a", 1)], &[put("a", "3")]).unwrap(), committed(2));
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{leftovers:?}");
}

#[test]
fn backup_of_an_in_memory_store_opens_as_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mem.db");
    let s = mem();
    s.txn(&[], &[put("k", "v")]).unwrap();
    s.backup(&copy).unwrap();
    s.backup(&copy).unwrap(); // overwriting an earlier backup is fine
    assert_eq!(value(&SqliteStore::open(&copy).unwrap(), "k").as_deref(), Some("v"));
}

#[test]
fn backup_refuses_to_overwrite_the_live_store() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("state.db");
    let s = SqliteStore::open(&live).unwrap();
    assert!(matches!(s.backup(&live), Err(StoreError::Invalid(_))));
    assert!(matches!(SqliteStore::restore(&live, &live), Err(StoreError::Invalid(_))));
}

#[test]
fn restore_checks_the_backup_first() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("state.db");
    SqliteStore::open(&live).unwrap().txn(&[], &[put("k", "live")]).unwrap();

    let garbage = dir.path().join("garbage.db");
    fs::write(&garbage, b"this is not a database at all, not even close to one....").unwrap();
    assert!(SqliteStore::restore(&garbage, &live).is_err());
    let empty = dir.path().join("empty.db");
    Connection::open(&empty).unwrap().execute_batch("VACUUM").unwrap();
    assert!(matches!(SqliteStore::restore(&empty, &live), Err(StoreError::Corrupt(_))));
    let newer = dir.path().join("newer.db");
    SqliteStore::open_in_memory().unwrap().backup(&newer).unwrap();
    Connection::open(&newer).unwrap().execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'", []).unwrap();
    assert!(matches!(SqliteStore::restore(&newer, &live), Err(StoreError::SchemaTooNew { found: 99, .. })));
    assert!(SqliteStore::restore(&dir.path().join("absent.db"), &live).is_err());

    assert_eq!(value(&SqliteStore::open(&live).unwrap(), "k").as_deref(), Some("live"));
}

#[test]
fn backup_runs_while_writers_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    let writer = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            for i in 0..200 {
                s.txn(&[], &[put(&format!("k/{i:03}"), "v"), put("last", &i.to_string())]).unwrap();
            }
        })
    };
    for n in 0..5 {
        let copy = dir.path().join(format!("copy{n}.db"));
        s.backup(&copy).unwrap();
        // The copy is one snapshot: its revision matches exactly the keys written by then.
        let c = SqliteStore::open(&copy).unwrap();
        let (entries, revision) = c.list("k/").unwrap();
        assert_eq!(entries.len() as u64, revision);
    }
    writer.join().unwrap();
}

/// Four threads each perform `PER_THREAD` compare-and-swap increments of one counter; retries are bounded.
fn cas_increments(stores: &[Arc<SqliteStore>]) {
    const THREADS: usize = 4;
    const PER_THREAD: u64 = 25;
    stores[0].txn(&[], &[put("counter", "0")]).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = Arc::clone(&stores[t % stores.len()]);
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    increment(&s);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = THREADS as u64 * PER_THREAD;
    assert_eq!(value(&stores[0], "counter"), Some(total.to_string()));
    assert_eq!(stores[0].revision().unwrap(), total + 1);
}

fn increment(s: &SqliteStore) {
    for _ in 0..10_000 {
        let e = s.get("counter").unwrap().unwrap();
        let n: u64 = std::str::from_utf8(&e.value).unwrap().parse().unwrap();
        let op = put("counter", &(n + 1).to_string());
        if let TxnOutcome::Committed { .. } = s.txn(&[cmp("counter", e.mod_revision)], &[op]).unwrap() {
            return;
        }
    }
    panic!("compare-and-swap never succeeded");
}

#[test]
fn concurrent_compare_and_swap_counts_exactly() {
    cas_increments(&[Arc::new(mem())]);
}

#[test]
fn concurrent_compare_and_swap_across_connections_counts_exactly() {
    // Two stores on one file behave like two processes: only SQLite's file lock serialises them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    cas_increments(&[a, b]);
}

#[test]
fn list_uses_the_key_index() {
    let s = mem();
    let conn = s.conn.lock().unwrap();
    let (filter, _) = prefix_filter("a/");
    let sql = format!("EXPLAIN QUERY PLAN SELECT key FROM kv WHERE {filter} ORDER BY key");
    let plan: String = conn.query_row(&sql, ["a/", "a0"], |r| r.get(3)).unwrap();
    assert!(plan.starts_with("SEARCH kv USING"), "a range search, not a full scan: {plan}");
}

#[test]
fn store_is_send_and_sync() {
    fn assert_store<T: Store>() {}
    assert_store::<SqliteStore>();
}
