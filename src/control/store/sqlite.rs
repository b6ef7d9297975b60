//! The SQLite backend of [`Store`]: one database file in WAL mode, written with `synchronous=FULL` so that an
//! acknowledged transaction survives kill -9 and power loss.
//!
//! It must not lose or half-apply a transaction, must not touch a store whose schema is newer than it knows,
//! and must not panic on anything the caller or the disk can produce. It must not interpret values.
//!
//! One `rusqlite::Connection` sits behind a `std::sync::Mutex`: the store's operations are short, so serialising
//! them within a process costs little, and writers in other processes on the same file are serialised by
//! SQLite's own lock (`BEGIN IMMEDIATE`), under which every compare is checked.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Params, TransactionBehavior};

use super::{prefix_end, Change, Compare, Entry, Op, Store, StoreError, TxnOutcome};

/// The schema, as an ordered list of steps; step `i` (0-based) takes the store from version `i` to `i + 1`.
/// Each step runs in its own transaction together with the bump of `schema_version`. Append only: a released
/// step is never edited, because stores in the field have already applied it.
const MIGRATIONS: &[&str] = &[
    // 1: the key-value table, the change feed, and the counters.
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) STRICT, WITHOUT ROWID;
     CREATE TABLE kv (
         key TEXT PRIMARY KEY NOT NULL,
         value BLOB NOT NULL,
         create_revision INTEGER NOT NULL,
         mod_revision INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE changes (
         revision INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         key TEXT NOT NULL,
         value BLOB,
         PRIMARY KEY (revision, seq)
     ) STRICT;
     INSERT INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);",
];

/// The schema version this binary writes and the newest it can read.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

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
    "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key";
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

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The size the WAL is cut back to once it has been checkpointed and restarts.
const WAL_SIZE_LIMIT: i64 = 16 << 20;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(stop) = &self.checkpointer {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Checkpoints the WAL from a connection of its own, every [`CHECKPOINT_EVERY`] (PASSIVE: never waits for, nor
/// blocks, a writer). With SQLite's automatic checkpoint off, no commit ever pays for copying the WAL — which, after
/// a bulk import, held up a small write for 200 ms.
fn start_checkpointer(path: &Path) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).op("open the checkpointer's connection")?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        })
        .map_err(|source| StoreError::Io { op: "start the checkpointer", path: path.to_path_buf(), source })?;
    Ok(stop)
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

    fn range(&self, start: &str, end: &str) -> Result<Vec<Entry>, StoreError> {
        self.with_conn(|conn| query_entries(conn, ENTRIES_BETWEEN, [start, end]))
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
fn configure(conn: &Connection, path: Option<&Path>) -> Result<(), StoreError> {
    if let Some(path) = path {
        // WAL lets readers (list, backup) run beside a writer and keeps each commit to one sequential append.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).op("enable WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            let source = io::Error::other(format!("SQLite kept journal_mode={mode} (WAL needs shared memory)"));
            return Err(StoreError::Io { op: "enable the WAL journal", path: path.to_path_buf(), source });
        }
    }
    if path.is_some() {
        // Pages freed by compaction are given back (`PRAGMA incremental_vacuum` after each one), so the file follows
        // the live data instead of its high-water mark. A store made before this needs one VACUUM to switch.
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).op("read auto_vacuum")?;
        if mode != 2 {
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM").op("switch to incremental auto_vacuum")?;
        }
    }
    // FULL, not NORMAL: in WAL mode NORMAL syncs only at checkpoints, so the last commits can be lost on power
    // loss; FULL syncs the WAL on every commit, so an acknowledged txn is durable.
    conn.pragma_update(None, "synchronous", "FULL").op("set synchronous=FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON").op("enable foreign keys")
}

/// The stored schema version: 0 for an empty database. A database that has tables but no `meta` table is not
/// a vpcdns store, and is refused rather than migrated into.
fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    const HAS_META: &str = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'";
    const TABLES: &str =
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'";
    let has_meta: i64 = conn.query_row(HAS_META, [], |r| r.get(0)).op("read the schema")?;
    if has_meta == 0 {
        let tables: i64 = conn.query_row(TABLES, [], |r| r.get(0)).op("read the schema")?;
        if tables > 0 {
            return Err(StoreError::Corrupt("not a vpcdns store: it has tables but no meta table".into()));
        }
        return Ok(0);
    }
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [META_SCHEMA], |r| r.get(0))
        .optional()
        .op("read the schema version")?;
    let version = version.ok_or_else(|| StoreError::Corrupt("meta has no schema_version".into()))?;
    u32::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema_version {version} is out of range")))
}

/// Applies every step of `steps` beyond the stored version, each in its own IMMEDIATE transaction. The version
/// is re-read under the write lock, so two processes opening the same old store apply each step once.
fn migrate(conn: &mut Connection, steps: &[&str]) -> Result<(), StoreError> {
    let supported = u32::try_from(steps.len()).unwrap_or(u32::MAX);
    for (version, sql) in (1..=supported).zip(steps) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).op("begin a migration")?;
        let found = schema_version(&tx)?;
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        if found >= version {
            continue; // already applied; dropping `tx` rolls back the empty transaction
        }
        tx.execute_batch(sql).op("apply a schema migration")?;
        meta_set(&tx, META_SCHEMA, u64::from(version))?;
        tx.commit().op("commit a schema migration")?;
    }
    Ok(())
}

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

/// Opens an existing database for reading only; never creates a file.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).op("open for reading")
}

/// Checks that a backup is an intact vpcdns store whose schema this binary can open.
fn check_restorable(conn: &Connection) -> Result<(), StoreError> {
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).op("check the backup")?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!("backup failed its integrity check: {check}")));
    }
    match schema_version(conn)? {
        0 => Err(StoreError::Corrupt("backup is not a vpcdns store (no schema)".into())),
        found if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION }),
        _ => Ok(()),
    }
}

/// Writes a consistent copy of `src` to `dest` atomically: into a temporary file in the same directory, synced,
/// then renamed over `dest`, then the directory synced so the rename itself survives power loss.
fn write_copy(src: &Connection, dest: &Path) -> Result<(), StoreError> {
    let temp = temp_path(dest)?;
    remove_if_present(&temp)?;
    let result = copy_database(src, &temp).and_then(|()| sync_path(&temp)).and_then(|()| replace(&temp, dest));
    if result.is_err() {
        // Best effort: the error worth reporting is the one that stopped the copy.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A fresh name beside `dest`, unique per process and call so that concurrent backups do not collide.
fn temp_path(dest: &Path) -> Result<PathBuf, StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name =
        dest.file_name().ok_or_else(|| StoreError::Invalid(format!("{} does not name a file", dest.display())))?;
    let unique = format!(".tmp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(unique);
    Ok(dest.with_file_name(temp))
}

/// Copies every page of `src` into a new database at `path` in one backup step, which reads a single snapshot.
fn copy_database(src: &Connection, path: &Path) -> Result<(), StoreError> {
    let label = path.display().to_string();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut dst = Connection::open_with_flags(path, flags).op("create the copy").map_err(|e| locate(e, &label))?;
    step_to_done(src, &mut dst).map_err(|e| locate(e, &label))?;
    // Rollback-journal mode makes the copy one self-contained file: nothing needs to travel beside it.
    let mode: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).op("finish the copy")?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Corrupt(format!("{label}: copy kept journal_mode={mode}")));
    }
    dst.close().map_err(|(_, e)| e).op("close the copy").map_err(|e| locate(e, &label))
}

/// Runs the backup to completion, retrying while another connection holds the source locked.
fn step_to_done(src: &Connection, dst: &mut Connection) -> Result<(), StoreError> {
    let backup = Backup::new(src, dst).op("start the copy")?;
    for _ in 0..BACKUP_ATTEMPTS {
        match backup.step(-1).op("copy pages")? {
            StepResult::Done => return Ok(()),
            StepResult::More => continue,
            _ => std::thread::sleep(BACKUP_PAUSE), // Busy or Locked: wait for the other connection
        }
    }
    let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    Err(StoreError::Sqlite { op: "copy pages (source stayed locked)", path: String::new(), source: busy })
}

/// Moves the synced copy at `temp` over `dest`. Leftover journal files of whatever was at `dest` go first:
/// SQLite would replay a stale WAL or hot journal into the new file and corrupt it.
fn replace(temp: &Path, dest: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut sidecar = dest.as_os_str().to_owned();
        sidecar.push(suffix);
        remove_if_present(Path::new(&sidecar))?;
    }
    fs::rename(temp, dest).map_err(|source| StoreError::Io {
        op: "rename the copy into place",
        path: dest.into(),
        source,
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_path(dir)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StoreError::Io { op: "remove a stale file", path: path.into(), source: e })
        }
        _ => Ok(()),
    }
}

/// fsync of a file or directory (a directory's fsync makes the renames inside it durable).
fn sync_path(path: &Path) -> Result<(), StoreError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|source| StoreError::Io {
        op: "sync",
        path: path.into(),
        source,
    })
}

/// True when both paths exist and resolve to the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn put(key: &str, value: &str) -> Op {
        Op::Put { key: key.into(), value: value.as_bytes().to_vec() }
    }

    fn del(key: &str) -> Op {
        Op::Delete { key: key.into() }
    }

    fn del_prefix(prefix: &str) -> Op {
        Op::DeletePrefix { prefix: prefix.into() }
    }

    fn cmp(key: &str, mod_revision: u64) -> Compare {
        Compare { key: key.into(), mod_revision }
    }

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
    fn range_is_half_open_and_ordered() {
        let s = mem();
        let audit = ["audit/001", "audit/002", "audit/003", "audit/010"];
        s.txn(&[], &audit.iter().map(|k| put(k, k)).collect::<Vec<_>>()).unwrap();
        assert_eq!(keys(&s.range("audit/002", "audit/010").unwrap()), ["audit/002", "audit/003"]);
        assert_eq!(keys(&s.range("audit/", "audit0").unwrap()), audit);
        assert_eq!(s.range("audit/003", "audit/003").unwrap(), vec![]);
        assert_eq!(s.range("z", "a").unwrap(), vec![]);
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
        Connection::open(&newer)
            .unwrap()
            .execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'", [])
            .unwrap();
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
}
