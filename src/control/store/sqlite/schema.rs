//! The database's shape and upkeep: the schema as ordered migrations, the connection's settings (WAL, synchronous
//! writes, busy timeout), and the checkpointer that copies the WAL into the database off the write path.

use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{meta_set, SqlContext, META_SCHEMA};
use crate::control::store::StoreError;

/// The schema, as an ordered list of steps; step `i` (0-based) takes the store from version `i` to `i + 1`.
/// Each step runs in its own transaction together with the bump of `schema_version`. Append only: a released
/// step is never edited, because stores in the field have already applied it.
pub(super) const MIGRATIONS: &[&str] = &[
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
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The size the WAL is cut back to once it has been checkpointed and restarts.
pub(super) const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Checkpoints the WAL from a connection of its own, every [`CHECKPOINT_EVERY`] (PASSIVE: never waits for, nor
/// blocks, a writer). With SQLite's automatic checkpoint off, no commit ever pays for copying the WAL — which, after
/// a bulk import, held up a small write for 200 ms.
pub(super) fn start_checkpointer(path: &Path) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, StoreError> {
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

pub(super) fn configure(conn: &Connection, path: Option<&Path>) -> Result<(), StoreError> {
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
pub(super) fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
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
pub(super) fn migrate(conn: &mut Connection, steps: &[&str]) -> Result<(), StoreError> {
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
