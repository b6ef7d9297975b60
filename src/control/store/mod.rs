//! The control plane's durable state: a transactional key-value store with a global revision counter and an
//! ordered change feed, modelled on etcd v3 so that an etcd backend can later sit behind the same [`Store`] trait.
//!
//! This file holds only the backend-neutral interface and its types. It must not know about any backend's
//! storage format, and it must not interpret values: keys are UTF-8 strings, values are opaque bytes (JSON
//! written by the caller).

#[cfg(any(test, feature = "etcd"))]
#[doc(hidden)]
pub mod conformance;
#[cfg(feature = "etcd")]
pub mod etcd;
pub(crate) mod lock;
pub mod sqlite;

use std::path::{Path, PathBuf};

pub use sqlite::SqliteStore;

/// What a store shared by several nodes reports to each of them: the changes others commit, as they commit them
/// (see [`Store::feed`]).
pub(crate) type Feed = tokio::sync::mpsc::Receiver<FeedEvent>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The feed reaches the store (again).
    Connected,
    /// Changes in revision order; a revision is never split between two events.
    Changes(Vec<Change>),
    /// Every change up to this revision has been delivered.
    Progress(u64),
    /// The store cannot be reached; the feed keeps trying and resumes after the last revision delivered.
    Disconnected(String),
    /// The history after the last delivered revision was compacted: the feed has ended. Read the whole state
    /// again ([`Store::list`]) and open a new feed from its revision.
    Compacted { oldest: u64 },
}

/// One key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the transaction that created the key (a delete and re-create starts it anew).
    pub create_revision: u64,
    /// The revision of the transaction that last wrote the key.
    pub mod_revision: u64,
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets the key's value. Always effective, even when the value is unchanged (as in etcd).
    Put { key: String, value: Vec<u8> },
    /// Removes the key; a no-op when the key is absent.
    Delete { key: String },
    /// Removes every key starting with `prefix` (literally: no wildcards); a no-op when none matches.
    DeletePrefix { prefix: String },
}

/// A condition a transaction checks before writing: the key's mod_revision equals `mod_revision`
/// (0 = the key must not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: u64,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held. `revision` is the new revision, or the unchanged current one when no op had an
    /// effect (see [`Store::txn`]).
    Committed { revision: u64 },
    /// The first compare that failed: the key, the mod_revision the caller expected and the one it has
    /// (0 = absent). Nothing was written.
    Conflict { key: String, expected: u64, actual: u64 },
}

/// One change in the feed: the revision that made it, the key, and the new value (None = deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Why a store operation failed. Each variant names what was being done and to which file, so the message
/// alone is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: cannot {op}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot {op}: {source}")]
    Sqlite { op: &'static str, path: String, source: rusqlite::Error },
    /// The stored data breaks an invariant this code relies on (bad type, negative revision, missing row).
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by a newer vpcdns; it was left untouched.
    #[error("store schema version {found} is newer than this binary supports ({supported}); upgrade vpcdns")]
    SchemaTooNew { found: u32, supported: u32 },
    /// The change feed no longer holds revisions after `requested`; `oldest` is the smallest `after` that
    /// [`Store::changes_since`] still accepts. Resynchronise with [`Store::list`] and continue from its revision.
    #[error("change history after revision {requested} was compacted; the oldest resumable revision is {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    /// A revision beyond the store's current one was passed where only past revisions make sense.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision { requested: u64, current: u64 },
    /// The caller passed something the store refuses (for example an empty key).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A thread panicked while holding the store's lock; the store refuses further use from this process.
    #[error("store lock poisoned by a panicked thread")]
    Poisoned,
    /// The remote store refused the request (permission, bad argument): retrying will not help.
    #[error("etcd: cannot {op}: {detail}")]
    Etcd { op: &'static str, detail: String },
    /// No member of the remote store could be reached: nothing was done.
    #[error("etcd is unreachable: cannot {op}: {detail}")]
    Unavailable { op: &'static str, detail: String },
    /// The request may or may not have been applied (the connection broke after it was sent): read the state
    /// again before retrying.
    #[error("etcd did not confirm the outcome: cannot be sure it did {op}; read the state again ({detail})")]
    Unknown { op: &'static str, detail: String },
    /// The transaction exceeds what the remote store accepts in one request.
    #[error("transaction too large: {ops} operations and {bytes} bytes (at most {max_ops} and {max_bytes})")]
    TooLarge { ops: usize, bytes: usize, max_ops: usize, max_bytes: usize },
}

/// The durable, transactional key-value store of the control plane.
pub trait Store: Send + Sync + 'static {
    /// The current revision (0 for an empty store). Every committed transaction with at least one effective op
    /// increments it by exactly 1.
    fn revision(&self) -> Result<u64, StoreError>;

    /// The key's current value, or None when it is absent.
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Every entry whose key starts with `prefix`, sorted by key, read in one consistent snapshot, with the
    /// revision of that snapshot.
    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError>;

    /// Every entry under any of `prefixes`, sorted by key, read in one consistent snapshot, with its revision:
    /// what start-up reads (the served state's prefixes, not the audit and usage history beside them).
    fn list_prefixes(&self, prefixes: &[&str]) -> Result<(Vec<Entry>, u64), StoreError>;

    /// Like list, but only keys in [start, end), and at most `limit` of them (the first by key) — for
    /// time-ordered keys such as audit entries and usage buckets. Empty when `start >= end`.
    fn range(&self, start: &str, end: &str, limit: usize) -> Result<Vec<Entry>, StoreError>;

    /// Atomically: if every compare holds, apply every op (in order) under one new revision and return
    /// Committed; else change nothing and return Conflict naming the first failing compare. The transaction is
    /// durable when this returns Ok(Committed) — it survives kill -9 and power loss.
    ///
    /// A Put is always effective; a Delete or DeletePrefix that removes nothing is not. When no op is effective
    /// (including an empty `ops`), nothing is written, the revision is not bumped, and Committed carries the
    /// current revision — the same as etcd. Several ops may touch the same key; they apply in order (etcd itself
    /// refuses that, so its backend keeps each key's last write: the final state is the same, the feed shows one
    /// change). `conformance` holds every backend to this contract.
    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError>;

    /// Changes with revision > `after`, in revision order (several per revision possible, in op order), at most
    /// `limit`. Err(Compacted) if `after` is older than the retained history.
    ///
    /// A revision is never split, so the caller can always resume with `after` = the last returned revision: the
    /// batch stops before a revision that would not fit, and when the first revision alone has more than `limit`
    /// changes it is returned whole (the one case that exceeds `limit`). A `limit` of 0 returns nothing.
    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// Drops change-feed history at or below `revision` (the current values stay). Compacting to a revision at
    /// or below an earlier compaction does nothing; a revision above the current one is FutureRevision.
    fn compact(&self, revision: u64) -> Result<(), StoreError>;

    /// Writes a consistent copy of the whole store to `path` (online, while writers run). The copy is written
    /// to a temporary file beside `path`, synced, and renamed into place, so `path` never holds half a copy.
    fn backup(&self, path: &Path) -> Result<(), StoreError>;

    /// For a store that other nodes write to: every change after `after`, as it is committed, until the receiver
    /// is dropped. None for a store only this process writes (its own commits are all there is).
    fn feed(&self, _after: u64) -> Option<Feed> {
        None
    }

    /// Holds this node's name (`[store] node`) for as long as it runs, refusing a name another running node holds
    /// (a store only this process writes has nothing to claim: its lock already says so).
    fn claim_node(&self, _name: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives the node's name back at a clean shutdown.
    fn release_node(&self) {}

    /// Whether other nodes write to this store too (then [`Store::feed`] gives their changes).
    fn is_shared(&self) -> bool {
        false
    }

    /// The most operations and bytes one transaction may carry (None: no limit). Larger changes are staged
    /// (see `control::stage`).
    fn txn_limits(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Opens the store the configuration names.
pub fn open(settings: &crate::settings::StoreSettings) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match settings {
        crate::settings::StoreSettings::Sqlite(path) => Ok(std::sync::Arc::new(SqliteStore::open(path)?)),
        #[cfg(feature = "etcd")]
        crate::settings::StoreSettings::Etcd(etcd) => Ok(std::sync::Arc::new(etcd::EtcdStore::open(etcd)?)),
        #[cfg(not(feature = "etcd"))]
        crate::settings::StoreSettings::Etcd(_) => Err(StoreError::Invalid(
            "[store] kind = \"etcd\": this vpcdns was built without etcd support (cargo build --features etcd)".into(),
        )),
    }
}

/// The smallest string greater than every string that starts with `prefix`, or None when there is no such
/// bound (empty prefix, or one made only of `char::MAX`). UTF-8 byte order equals code point order, so
/// bumping the last bumpable character gives a valid UTF-8 exclusive upper bound for a byte-ordered range
/// scan — which, unlike LIKE, treats `%` and `_` literally.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The next Unicode scalar value after `c`, skipping the surrogate gap; None after `char::MAX`.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        _ => char::from_u32(u32::from(c) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_error_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<StoreError>();
    }

    #[test]
    fn prefix_end_bumps_the_last_character() {
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end("zones/1").as_deref(), Some("zones/2"));
        assert_eq!(prefix_end("a%").as_deref(), Some("a&"));
    }

    #[test]
    fn prefix_end_handles_the_unicode_edges() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{7F}").as_deref(), Some("\u{80}"));
    }

    #[test]
    fn prefix_end_bounds_every_extension_bytewise() {
        for prefix in ["a", "a/", "\u{7F}", "\u{D7FF}", "é", "a\u{10FFFF}"] {
            let Some(end) = prefix_end(prefix) else { continue };
            for tail in ["", "\u{0}", "z", "\u{10FFFF}\u{10FFFF}"] {
                let key = format!("{prefix}{tail}");
                assert!(key.as_bytes() < end.as_bytes(), "{key:?} !< {end:?}");
            }
        }
    }
}
