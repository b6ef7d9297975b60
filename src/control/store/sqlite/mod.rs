//! The SQLite backend of [`Store`]: one database file in WAL mode, written with `synchronous=FULL` so that an
//! acknowledged transaction survives kill -9 and power loss.
//!
//! It must not lose or half-apply a transaction, must not touch a store whose schema is newer than it knows,
//! and must not panic on anything the caller or the disk can produce. It must not interpret values.
//!
//! One `rusqlite::Connection` sits behind a `std::sync::Mutex`: the store's operations are short, so serialising
//! them within a process costs little, and writers in other processes on the same file are serialised by
//! SQLite's own lock (`BEGIN IMMEDIATE`), under which every compare is checked.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Params, TransactionBehavior};

use super::{prefix_end, Change, Compare, Entry, Op, Store, StoreError, TxnOutcome};

mod backup;
mod schema;
#[cfg(test)]
mod tests;

use backup::*;
pub(crate) use schema::SCHEMA_VERSION;
use schema::{configure, migrate, schema_version, start_checkpointer, MIGRATIONS, WAL_SIZE_LIMIT};

/// How long a writer waits for another process's write lock before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, and how far apart, a backup retries a source that another connection holds locked.
const BACKUP_ATTEMPTS: u32 = 100;
const BACKUP_PAUSE: Duration = Duration::from_millis(50);

/// `meta` keys. `revision` is the current revision; `compacted` is the compaction point: history at or below
/// it is gone, so `changes_since` accepts `after >= compacted`.
const META_SCHEMA: &str = "schema_version";
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

const ENTRY_BY_KEY: &str = "SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?1";
const ENTRIES_BETWEEN: &str =
    "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3";
const CHANGES_AFTER: &str =
    "SELECT revision, key, value FROM changes WHERE revision > ?1 ORDER BY revision, seq LIMIT ?2";
const CHANGES_AT: &str = "SELECT revision, key, value FROM changes WHERE revision = ?1 ORDER BY seq";

/// The SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Callers take turns on the connection in the order they came: without it, a thread writing a bulk change in
    /// many transactions re-took the connection before a waiting small write ever got it (for 170 ms).
    turn: parking_lot::FairMutex<()>,
    /// The database file; None for an in-memory store.
    path: Option<PathBuf>,
    /// Stops the checkpointer thread (file-backed stores) when the store is dropped.
    checkpointer: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(stop) = &self.checkpointer {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it is missing (its directory must exist), and brings its
    /// schema up to [`SCHEMA_VERSION`]. A store with a newer schema is refused with `SchemaTooNew`, unmodified.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let label = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).op("open the store").map_err(|e| locate(e, &label))?;
        Self::init(conn, Some(path.to_path_buf())).map_err(|e| locate(e, &label))
    }

    /// An empty store that lives in memory only, for tests.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().op("open an in-memory store").map_err(|e| locate(e, ":memory:"))?;
        Self::init(conn, None).map_err(|e| locate(e, ":memory:"))
    }

    /// Replaces the store at `target` with the copy at `backup`. The backup is checked first (it must be an
    /// intact vpcdns store with a schema this binary knows); the copy is then written to a temporary file beside
    /// `target`, synced, and renamed over it, so a crash leaves either the old store or the restored one.
    ///
    /// No process may have `target` open while this runs (stop the server first): SQLite cannot tell an open
    /// connection that its file was swapped underneath it.
    pub fn restore(backup: &Path, target: &Path) -> Result<(), StoreError> {
        if same_file(backup, target) {
            return Err(StoreError::Invalid(format!("cannot restore {} onto itself", backup.display())));
        }
        let label = backup.display().to_string();
        let src = open_read_only(backup).map_err(|e| locate(e, &label))?;
        check_restorable(&src).map_err(|e| locate(e, &label))?;
        write_copy(&src, target).map_err(|e| locate(e, &label))
    }

    /// Configures a freshly opened connection and migrates its schema.
    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).op("set the busy timeout")?;
        // Checked before anything writes, so that a newer binary's store is never touched (switching the journal
        // mode below already rewrites the file header).
        let found = schema_version(&conn)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
        }
        configure(&conn, path.as_deref())?;
        if found < SCHEMA_VERSION {
            migrate(&mut conn, MIGRATIONS)?; // takes the write lock, so only when there is something to do
        }
        let checkpointer = match &path {
            Some(path) => {
                conn.pragma_update(None, "wal_autocheckpoint", 0).op("hand checkpoints to the checkpointer")?;
                conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).op("limit the WAL's size")?;
                Some(start_checkpointer(path)?)
            }
            None => None,
        };
        Ok(SqliteStore { conn: Mutex::new(conn), turn: parking_lot::FairMutex::new(()), path, checkpointer })
    }

    /// Runs `f` with the connection locked; sqlite errors that do not name a file get this store's path.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A poisoned lock means a thread panicked mid-operation. SQLite rolled back its open transaction, but this
        // process is in an unknown state, so the store refuses instead of guessing.
        let _turn = self.turn.lock();
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn).map_err(|e| locate(e, &self.label()))
    }

    fn label(&self) -> String {
        self.path.as_ref().map_or_else(|| ":memory:".to_string(), |p| p.display().to_string())
    }
}

impl Store for SqliteStore {
    fn revision(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| meta_get(conn, META_REVISION))
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.with_conn(|conn| Ok(query_entries(conn, ENTRY_BY_KEY, [key])?.pop()))
    }

    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        self.with_conn(|conn| {
            // One read transaction: the entries and the revision come from the same snapshot even while other
            // processes write.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).op("begin a read")?;
            let revision = meta_get(&tx, META_REVISION)?;
            let (filter, bounds) = prefix_filter(prefix);
            let sql = format!("SELECT key, value, create_revision, mod_revision FROM kv WHERE {filter} ORDER BY key");
            let entries = query_entries(&tx, &sql, params_from_iter(&bounds))?;
            tx.commit().op("end a read")?;
            Ok((entries, revision))
        })
    }

    fn list_prefixes(&self, prefixes: &[&str]) -> Result<(Vec<Entry>, u64), StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).op("begin a read")?;
            let revision = meta_get(&tx, META_REVISION)?;
            let mut entries = Vec::new();
            for prefix in prefixes {
                let (filter, bounds) = prefix_filter(prefix);
                let sql =
                    format!("SELECT key, value, create_revision, mod_revision FROM kv WHERE {filter} ORDER BY key");
                entries.extend(query_entries(&tx, &sql, params_from_iter(&bounds))?);
            }
            tx.commit().op("end a read")?;
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            entries.dedup_by(|a, b| a.key == b.key);
            Ok((entries, revision))
        })
    }

    fn range(&self, start: &str, end: &str, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|conn| query_entries(conn, ENTRIES_BETWEEN, params![start, end, limit]))
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        check_request(compares, ops)?;
        let asked = std::time::Instant::now();
        let _slow = SlowTxn { asked, ops: ops.len() };
        self.with_conn(|conn| {
            // IMMEDIATE takes the write lock up front, so the compares below are checked under it and no other
            // writer, in this process or another, can slip in between check and write.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).op("begin a transaction")?;
            if let Some(conflict) = first_conflict(&tx, compares)? {
                return Ok(conflict); // dropping `tx` rolls back
            }
            let current = meta_get(&tx, META_REVISION)?;
            let next = current.checked_add(1).ok_or_else(|| StoreError::Corrupt("revision overflow".into()))?;
            let mut log = ChangeLog { revision: next, seq: 0 };
            for op in ops {
                apply(&tx, op, &mut log)?;
            }
            if log.seq == 0 {
                return Ok(TxnOutcome::Committed { revision: current }); // nothing changed: roll back, no bump
            }
            meta_set(&tx, META_REVISION, next)?;
            tx.commit().op("commit a transaction")?;
            Ok(TxnOutcome::Committed { revision: next })
        })
    }

    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).op("begin a read")?;
            let oldest = meta_get(&tx, META_COMPACTED)?;
            if after < oldest {
                return Err(StoreError::Compacted { requested: after, oldest });
            }
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let changes = query_changes(&tx, CHANGES_AFTER, params![saturating_i64(after), fetch])?;
            let changes = whole_revisions(&tx, changes, limit)?;
            tx.commit().op("end a read")?;
            Ok(changes)
        })
    }

    fn compact(&self, revision: u64) -> Result<(), StoreError> {
        // The compaction point moves first, so a reader never gets a history with holes: below the point it is
        // told the history is gone. The rows then go a batch at a time, each its own transaction, so writers get
        // the store between batches.
        let moved = self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).op("begin a compaction")?;
            let current = meta_get(&tx, META_REVISION)?;
            if revision > current {
                return Err(StoreError::FutureRevision { requested: revision, current });
            }
            if revision <= meta_get(&tx, META_COMPACTED)? {
                return Ok(false);
            }
            meta_set(&tx, META_COMPACTED, revision)?;
            tx.commit().op("commit a compaction")?;
            Ok(true)
        })?;
        if !moved {
            return Ok(());
        }
        const BATCH: &str =
            "DELETE FROM changes WHERE rowid IN (SELECT rowid FROM changes WHERE revision <= ?1 LIMIT 2000)";
        while self.with_conn(|conn| conn.execute(BATCH, [saturating_i64(revision)]).op("compact"))? > 0 {}
        // The pages the history held go back to the file system (auto_vacuum is incremental; see `configure`).
        self.with_conn(|conn| conn.execute_batch("PRAGMA incremental_vacuum").op("return free pages"))
    }

    fn backup(&self, path: &Path) -> Result<(), StoreError> {
        match &self.path {
            Some(own) if same_file(own, path) => {
                Err(StoreError::Invalid(format!("cannot back up {} onto itself", own.display())))
            }
            // A separate read-only connection reads one WAL snapshot without holding this store's mutex, so
            // writers (here and in other processes) keep going while the copy is made.
            Some(own) => {
                let label = self.label();
                let src = open_read_only(own).map_err(|e| locate(e, &label))?;
                src.busy_timeout(BUSY_TIMEOUT).op("set the busy timeout").map_err(|e| locate(e, &label))?;
                write_copy(&src, path).map_err(|e| locate(e, &label))
            }
            None => self.with_conn(|conn| write_copy(conn, path)),
        }
    }
}

/// Journal mode and durability settings for a file-backed store (`path` Some) or an in-memory one.
/// Refuses requests the etcd backend would refuse too, and a DeletePrefix that would wipe the whole store.
fn check_request(compares: &[Compare], ops: &[Op]) -> Result<(), StoreError> {
    let empty_key = compares.iter().any(|c| c.key.is_empty())
        || ops.iter().any(|op| match op {
            Op::Put { key, .. } | Op::Delete { key } => key.is_empty(),
            Op::DeletePrefix { prefix } => prefix.is_empty(),
        });
    if empty_key {
        return Err(StoreError::Invalid("empty key or prefix in a transaction".into()));
    }
    Ok(())
}

/// The first compare that does not hold, as a Conflict.
fn first_conflict(conn: &Connection, compares: &[Compare]) -> Result<Option<TxnOutcome>, StoreError> {
    for compare in compares {
        let actual = mod_revision(conn, &compare.key)?.unwrap_or(0);
        if actual != compare.mod_revision {
            let conflict = TxnOutcome::Conflict { key: compare.key.clone(), expected: compare.mod_revision, actual };
            return Ok(Some(conflict));
        }
    }
    Ok(None)
}

fn mod_revision(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT mod_revision FROM kv WHERE key = ?1").op("prepare a compare")?;
    let raw: Option<i64> = stmt.query_row([key], |r| r.get(0)).optional().op("read a mod_revision")?;
    raw.map(|r| to_revision(r, "mod_revision")).transpose()
}

/// Where the current transaction's changes go: its revision, and the next sequence number within it.
struct ChangeLog {
    revision: u64,
    seq: u64,
}

impl ChangeLog {
    fn record(&mut self, conn: &Connection, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        let mut stmt = conn
            .prepare_cached("INSERT INTO changes (revision, seq, key, value) VALUES (?1, ?2, ?3, ?4)")
            .op("prepare a change")?;
        stmt.execute(params![saturating_i64(self.revision), saturating_i64(self.seq), key, value])
            .op("record a change")?;
        self.seq += 1;
        Ok(())
    }
}

/// Applies one op and records a change for every key it actually changed.
fn apply(conn: &Connection, op: &Op, log: &mut ChangeLog) -> Result<(), StoreError> {
    match op {
        Op::Put { key, value } => {
            put(conn, key, value, log.revision)?;
            log.record(conn, key, Some(value))
        }
        Op::Delete { key } if delete(conn, key)? => log.record(conn, key, None),
        Op::Delete { .. } => Ok(()),
        Op::DeletePrefix { prefix } => {
            for key in delete_prefix(conn, prefix)? {
                log.record(conn, &key, None)?;
            }
            Ok(())
        }
    }
}

/// Inserts or overwrites a key; an overwrite keeps the key's create_revision.
fn put(conn: &Connection, key: &str, value: &[u8], revision: u64) -> Result<(), StoreError> {
    const UPSERT: &str = "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision";
    let mut stmt = conn.prepare_cached(UPSERT).op("prepare a put")?;
    stmt.execute(params![key, value, saturating_i64(revision)]).op("put a key")?;
    Ok(())
}

/// Deletes one key; true when it existed.
fn delete(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("DELETE FROM kv WHERE key = ?1").op("prepare a delete")?;
    Ok(stmt.execute([key]).op("delete a key")? > 0)
}

/// Deletes every key starting with `prefix` and returns them in key order, so the change feed lists them
/// deterministically.
fn delete_prefix(conn: &Connection, prefix: &str) -> Result<Vec<String>, StoreError> {
    let (filter, bounds) = prefix_filter(prefix);
    let keys =
        query_strings(conn, &format!("SELECT key FROM kv WHERE {filter} ORDER BY key"), params_from_iter(&bounds))?;
    conn.execute(&format!("DELETE FROM kv WHERE {filter}"), params_from_iter(&bounds)).op("delete a prefix")?;
    Ok(keys)
}

/// The WHERE clause and its parameters selecting every key that starts with `prefix`: a byte range rather than
/// LIKE, so `%` and `_` in keys are literal, and the primary-key index serves it.
fn prefix_filter(prefix: &str) -> (&'static str, Vec<String>) {
    match prefix_end(prefix) {
        Some(end) => ("key >= ?1 AND key < ?2", vec![prefix.to_string(), end]),
        None => ("key >= ?1", vec![prefix.to_string()]),
    }
}

fn query_strings(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).op("prepare a key scan")?;
    let rows = stmt.query_map(params, |r| r.get(0)).op("scan keys")?;
    rows.map(|row| row.op("scan keys")).collect()
}

fn query_entries(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<Entry>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).op("prepare a read")?;
    let rows = stmt
        .query_map(params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get(3)?)))
        .op("read entries")?;
    rows.map(|row| {
        let (key, value, create, modified) = row.op("read entries")?;
        let create_revision = to_revision(create, "create_revision")?;
        Ok(Entry { key, value, create_revision, mod_revision: to_revision(modified, "mod_revision")? })
    })
    .collect()
}

fn query_changes(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<Change>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).op("prepare a feed read")?;
    let rows = stmt
        .query_map(params, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<Vec<u8>>>(2)?)))
        .op("read changes")?;
    rows.map(|row| {
        let (revision, key, value) = row.op("read changes")?;
        Ok(Change { revision: to_revision(revision, "change revision")?, key, value })
    })
    .collect()
}

/// Trims `changes` (fetched with one row beyond `limit`) to at most `limit` changes without splitting a revision:
/// a caller resumes with `after` = the last revision it saw, so a split revision would lose its tail. When the
/// first revision alone exceeds `limit`, all of it is returned (the only case that exceeds `limit`).
fn whole_revisions(conn: &Connection, mut changes: Vec<Change>, limit: usize) -> Result<Vec<Change>, StoreError> {
    let Some(cut) = changes.get(limit).map(|c| c.revision) else {
        return Ok(changes); // the feed ended within the limit
    };
    changes.truncate(limit);
    if changes.last().is_none_or(|c| c.revision != cut) {
        return Ok(changes); // the limit falls between two revisions (or is 0)
    }
    changes.retain(|c| c.revision != cut);
    if changes.is_empty() {
        return query_changes(conn, CHANGES_AT, [saturating_i64(cut)]);
    }
    Ok(changes)
}

fn meta_get(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?1").op("prepare a meta read")?;
    let raw: Option<i64> = stmt.query_row([key], |r| r.get(0)).optional().op("read meta")?;
    let raw = raw.ok_or_else(|| StoreError::Corrupt(format!("meta has no {key}")))?;
    to_revision(raw, key)
}

fn meta_set(conn: &Connection, key: &str, value: u64) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .op("prepare a meta write")?;
    stmt.execute(params![key, saturating_i64(value)]).op("write meta")?;
    Ok(())
}

/// A stored revision (SQLite integers are i64) as u64; negative means the file was damaged or edited.
fn to_revision(raw: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt(format!("negative {what} {raw}")))
}

/// A revision as a SQLite integer. Revisions come from a counter that starts at 0 and grows by one, so only a
/// caller's query bound can exceed i64::MAX, and for a bound "at most i64::MAX" is the same answer.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Names the file in an sqlite error that does not name one yet.
fn locate(error: StoreError, label: &str) -> StoreError {
    match error {
        StoreError::Sqlite { op, path, source } if path.is_empty() => {
            StoreError::Sqlite { op, path: label.to_string(), source }
        }
        other => other,
    }
}

/// Attaches the operation to a rusqlite error; the path is filled in by [`locate`] at the public boundary.
trait SqlContext<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { op, path: String::new(), source })
    }
}

/// Logs a transaction that took long, and how long it waited for the connection.
struct SlowTxn {
    asked: std::time::Instant,
    ops: usize,
}

impl Drop for SlowTxn {
    fn drop(&mut self) {
        if self.asked.elapsed() > Duration::from_millis(20) {
            tracing::debug!(ops = self.ops, ms = self.asked.elapsed().as_secs_f64() * 1e3, "slow store transaction");
        }
    }
}
