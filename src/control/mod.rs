//! The control plane: tenants and the operator change state through operations; every acknowledged change is
//! committed to the store first, then folded into memory and compiled into a new snapshot.
//!
//! The write path: `execute` → an operation builds a [`Plan`] (compares, ops, response) from the current
//! [`ControlState`] → the ops are tried on a copy and the resulting state validated (the same `validate` as the config
//! file) → one store transaction (compares make stale writers fail with 412) → memory updated → snapshot swapped.
//! Writers are serialized by a mutex; readers never wait for a commit.

pub(crate) mod audit;
pub mod auth;
pub mod docs;
pub(crate) mod error;
pub(crate) mod fold;
pub(crate) mod follow;
pub mod keys;
pub mod ops;
pub(crate) mod precedence;
pub(crate) mod retention;
pub(crate) mod stage;
pub(crate) mod usage;
mod write;

pub mod api;
pub(crate) mod notify;
pub mod store;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::control::store::{Change, Compare, Op, Store, TxnOutcome};
use crate::model::compile::Compiler;
use crate::model::publish::SnapshotCell;
use crate::model::snapshot::Snapshot;
use crate::settings::Served;
pub use auth::Actor;
pub use error::ControlError;
pub(crate) use fold::ControlState;

/// What an operation wants done.
#[derive(Debug, Default)]
pub struct Plan {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
    /// The answer to the caller (the commit revision is added to it).
    pub response: Value,
    /// What the audit log says: action and target.
    pub audit: Option<(String, String)>,
    /// Messages to deliver by e-mail once the change is committed: (account uid, subject, body).
    pub mail: Vec<(String, String, String)>,
    /// Writes of fresh keys no one reads yet (a zone's next record generation). A store with transaction limits
    /// takes them in several transactions before `ops`; see [`stage`].
    pub staged: Vec<Op>,
    /// Deletes of what `ops` made unreachable (the previous generation), done after `ops` commit.
    pub collect: Vec<Op>,
}

impl Plan {
    /// Sets the answer to the caller: the operation's own response type, as JSON (the commit revision is added).
    pub fn respond<T: serde::Serialize>(&mut self, answer: &T) {
        // Our response types are structs of strings, numbers and lists: they always serialize.
        self.response = serde_json::to_value(answer).unwrap_or_default();
    }

    pub fn put<T: serde::Serialize>(&mut self, key: String, doc: &T) {
        self.ops.push(Op::Put { key, value: docs::encode(doc) });
    }
    pub fn delete(&mut self, key: String) {
        self.ops.push(Op::Delete { key });
    }
    /// The write only applies if `key` is still at `revision` (0 = absent).
    pub fn expect(&mut self, key: String, revision: u64) {
        self.compares.push(Compare { key, mod_revision: revision });
    }
}

/// Who asks for a change, and on what condition.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// Where the request came from, for the audit.
    pub remote: String,
    /// The revision the request's `If-Match` expects of the document it changes (none: any).
    pub if_match: Option<u64>,
    /// The request's `Idempotency-Key`, with what the request is (method and path).
    pub idempotency: Option<Idempotency>,
}

/// A change sent with an `Idempotency-Key`: its first outcome is stored with it, and a retry with the same key gets
/// that outcome again instead of making the change twice.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    /// Method and path: the same key for another request is refused.
    pub request: String,
}

impl Idempotency {
    /// How long an outcome is kept for retries.
    pub(crate) const KEEP_SECS: u64 = 24 * 3600;

    /// A key as a client sends it: 1 to 64 characters of letters, digits, `.`, `_`, `:` and `-`.
    pub fn new(key: &str, request: String) -> Result<Idempotency, ControlError> {
        let valid = (1..=64).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid {
            return Err(ControlError::invalid(
                "bad_idempotency_key",
                "Idempotency-Key takes 1 to 64 letters, digits, '.', '_', ':' or '-'",
            ));
        }
        Ok(Idempotency { key: key.to_string(), request })
    }
}

impl Caller {
    /// The operator, on its socket.
    pub fn operator() -> Caller {
        Caller { actor: Actor::Operator, remote: "unix-socket".into(), if_match: None, idempotency: None }
    }
}

/// Per-request context an operation may use.
pub struct Ctx<'a> {
    pub actor: &'a Actor,
    /// The revision the caller's `If-Match` expects (writes only).
    pub if_match: Option<u64>,
    pub now: u64,
    /// The server secret that verification codes are HMACed under (never stored).
    pub secret: &'a [u8],
    /// How long a link verification code stays valid, in seconds.
    pub code_ttl: u64,
}

/// Everything the control plane owns at run time.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    control: RwLock<Arc<ControlState>>,
    writer: Mutex<Compiler>,
    published: SnapshotCell,
    secret: Vec<u8>,
    code_ttl: u64,
    /// The revision in memory, for writers that wait for the feed to bring their commit.
    applied: (Mutex<u64>, std::sync::Condvar),
    /// Set while a feed of other nodes' commits is applied (shared stores).
    following: std::sync::atomic::AtomicBool,
    /// A shared store's next compaction point: the revision this node had at that time. Compacting there, one
    /// `history` later, leaves every node that long to catch up from the history.
    compaction_mark: Mutex<(std::time::Instant, u64)>,
    /// How much history a shared store keeps (`[store] history_s`).
    history: std::time::Duration,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ControlPlane {
    /// Loads the whole store into memory and compiles the first snapshot.
    pub fn open(store: Arc<dyn Store>, server: Served, secret: Vec<u8>) -> anyhow::Result<ControlPlane> {
        let started = std::time::Instant::now();
        upgrade_layout(store.as_ref())?;
        let control = load_control(store.as_ref(), server)?;
        let folded = started.elapsed();
        let mut compiler = Compiler::default();
        let published = SnapshotCell::first(&mut compiler, &control.state, started);
        tracing::info!(
            revision = control.revision,
            load_ms = folded.as_secs_f64() * 1e3,
            compile_ms = (started.elapsed() - folded).as_secs_f64() * 1e3,
            "state loaded from the store"
        );
        let revision = control.revision;
        Ok(ControlPlane {
            store,
            control: RwLock::new(Arc::new(control)),
            writer: Mutex::new(compiler),
            published,
            secret,
            code_ttl: crate::settings::DEFAULT_LINK_CODE_TTL_SECS,
            applied: (Mutex::new(revision), std::sync::Condvar::new()),
            following: std::sync::atomic::AtomicBool::new(false),
            compaction_mark: Mutex::new((std::time::Instant::now(), revision)),
            history: crate::settings::DEFAULT_ETCD_HISTORY,
        })
    }

    /// Sets how long link verification codes stay valid (`[admin] link_code_ttl_secs`).
    pub(crate) fn with_code_ttl(mut self, secs: u64) -> ControlPlane {
        self.code_ttl = secs.max(1);
        self
    }

    /// Sets how much history a shared store keeps.
    pub(crate) fn with_history(mut self, history: std::time::Duration) -> ControlPlane {
        self.history = history;
        self
    }

    /// How often the history is looked at: often enough that it is compacted within half its length late.
    pub(crate) fn compaction_interval(&self) -> std::time::Duration {
        (self.history / 2).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(30))
    }

    pub fn published(&self) -> SnapshotCell {
        self.published.clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current in-memory state (cheap: an `Arc`).
    pub fn current(&self) -> Arc<ControlState> {
        match self.control.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load_full()
    }

    /// Runs a read-only operation against the current state.
    pub fn read<R>(
        &self,
        actor: &Actor,
        f: impl FnOnce(&ControlState, &Ctx) -> Result<R, ControlError>,
    ) -> Result<R, ControlError> {
        let control = self.current();
        let ctx = Ctx { actor, if_match: None, now: unix_now(), secret: &self.secret, code_ttl: self.code_ttl };
        f(&control, &ctx)
    }

    /// Drops the change history this node no longer needs, so the store's size follows its live data. Only for a
    /// store of this node alone (a shared store's history is the other nodes' feed; etcd compacts itself). A lone
    /// node only ever reads history above the revision in memory, and that revision moves only under the writer
    /// lock, after such a read: so history up to the revision in memory now is never read again.
    pub(crate) fn compact_history(&self) -> anyhow::Result<()> {
        if self.store.is_shared() {
            return self.compact_shared(self.history);
        }
        let revision = self.current().revision;
        if revision > 0 {
            self.store.compact(revision)?;
        }
        Ok(())
    }

    /// A shared store keeps `history` of changes: once the mark is that old, the store is compacted at the mark's
    /// revision and the mark moves to now. Every node may do it; compacting at or below an earlier point does nothing.
    fn compact_shared(&self, history: std::time::Duration) -> anyhow::Result<()> {
        let mut mark = self.compaction_mark.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if mark.0.elapsed() < history {
            return Ok(());
        }
        let (_, revision) = *mark;
        *mark = (std::time::Instant::now(), self.current().revision);
        drop(mark);
        if revision > 0 {
            self.store.compact(revision)?;
            tracing::info!(revision, "compacted the shared store's history");
        }
        Ok(())
    }

    /// Reads what other nodes committed since the state in memory (when the feed is slow or down).
    fn catch_up(&self) -> Result<(), ControlError> {
        let revision = self.current().revision;
        let changes = self.store.changes_since(revision, usize::MAX).map_err(store_error)?;
        self.apply_feed(&changes);
        Ok(())
    }

    /// Commits documents that are not part of the served model (usage buckets) without validation.
    pub(crate) fn commit_internal(&self, ops: &[Op]) -> anyhow::Result<u64> {
        match self.commit_guarded(&[], ops)? {
            Some(revision) => Ok(revision),
            None => anyhow::bail!("unexpected conflict"),
        }
    }

    /// Like [`ControlPlane::commit_internal`], under compares: None when one failed (nothing was written).
    pub(crate) fn commit_guarded(&self, compares: &[Compare], ops: &[Op]) -> anyhow::Result<Option<u64>> {
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.store.txn(compares, ops)? {
            TxnOutcome::Committed { revision } => Ok(Some(revision)),
            TxnOutcome::Conflict { .. } => Ok(None),
        }
    }

    /// Drops the outcomes of idempotent changes older than [`Idempotency::KEEP_SECS`], in the store and in memory.
    /// Every node may do it: a delete repeated by another node changes nothing.
    pub(crate) fn expire_idempotency(&self, now: u64) -> anyhow::Result<usize> {
        let expired: Vec<String> = self
            .current()
            .idempotency
            .iter()
            .filter(|(_, doc)| doc.created.saturating_add(Idempotency::KEEP_SECS) < now)
            .map(|(key, _)| key.clone())
            .collect();
        for chunk in expired.chunks(100) {
            let ops: Vec<Op> = chunk.iter().map(|key| Op::Delete { key: key.clone() }).collect();
            let revision = self.commit_internal(&ops)?;
            let changes: Vec<Change> =
                chunk.iter().map(|key| Change { revision, key: key.clone(), value: None }).collect();
            self.apply_feed(&changes);
        }
        Ok(expired.len())
    }

    /// Folds changes other nodes committed (from the store's feed) into memory and publishes them. Revisions at or
    /// below the one already applied are skipped: this node's own commits arrive here too. Returns the revision
    /// now applied.
    pub(crate) fn apply_feed(&self, changes: &[Change]) -> u64 {
        let started = std::time::Instant::now();
        let mut compiler = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current();
        let fresh: Vec<Change> = changes.iter().filter(|c| c.revision > current.revision).cloned().collect();
        if fresh.is_empty() {
            return current.revision;
        }
        let mut next = (*current).clone();
        for problem in next.apply(&fresh) {
            tracing::error!(problem, "a stored document was skipped");
        }
        let changed = next.take_dirty();
        let revision = next.revision;
        self.publish(&mut compiler, next, Some(&changed), started);
        revision
    }

    /// Compiles and swaps in a new snapshot and the state it was compiled from, and wakes writers waiting for the
    /// revision. Callers hold the writer lock (the compiler).
    fn publish(
        &self,
        compiler: &mut Compiler,
        control: ControlState,
        changed: Option<&crate::model::state::Changes>,
        started: std::time::Instant,
    ) {
        let revision = control.revision;
        self.published.publish(compiler, &control.state, changed, started);
        match self.control.write() {
            Ok(mut c) => *c = Arc::new(control),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(control),
        }
        let (applied, woken) = &self.applied;
        let mut applied = applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *applied = revision;
        woken.notify_all();
    }

    /// Waits (at most `timeout`) until the state in memory has reached `revision`.
    /// Why a request that asked for `revision` (a client reading its own write through any node) is not answered:
    /// this node did not get there within `timeout`.
    pub(crate) fn behind(&self, revision: u64, timeout: std::time::Duration) -> ControlError {
        ControlError::Unavailable {
            code: "behind",
            message: format!(
                "this node is at revision {}, not yet at min_revision {revision} after {timeout:?}: retry, or ask \
                 another node",
                self.current().revision
            ),
        }
    }

    fn wait_applied(&self, revision: u64, timeout: std::time::Duration) -> bool {
        let (applied, woken) = &self.applied;
        let guard = applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = woken
            .wait_timeout_while(guard, timeout, |applied| *applied < revision)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard >= revision
    }

    /// Says whether a feed from the store is being applied (set by `follow`).
    pub(crate) fn set_following(&self, on: bool) {
        self.following.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the whole state again and swaps it in (after the feed's history was compacted away). Returns the
    /// revision read.
    pub(crate) fn resync(&self) -> anyhow::Result<u64> {
        let started = std::time::Instant::now();
        let mut compiler = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let server = self.current().state.served.clone();
        let control = load_control(self.store.as_ref(), server)?;
        *compiler = Compiler::default();
        let revision = control.revision;
        self.publish(&mut compiler, control, None, started);
        Ok(revision)
    }
}

/// A store failure as the control plane reports it (see `ControlError`'s `From<StoreError>`).
pub(crate) fn store_error(e: crate::control::store::StoreError) -> ControlError {
    ControlError::from(e)
}

/// The key layout's version, in the store: 2 keys audit entries and usage buckets by account.
const LAYOUT_KEY: &str = "meta/layout";
const LAYOUT: &str = "2";

/// Moves documents of an earlier key layout to the current one, once per store.
fn upgrade_layout(store: &dyn Store) -> anyhow::Result<()> {
    if store.get(LAYOUT_KEY)?.is_some_and(|e| e.value == LAYOUT.as_bytes()) {
        return Ok(());
    }
    let moved = audit::migrate_legacy(store)?;
    if moved > 0 {
        tracing::info!(moved, "audit entries and usage buckets moved to the per-account layout");
    }
    store.txn(&[], &[Op::Put { key: LAYOUT_KEY.into(), value: LAYOUT.as_bytes().to_vec() }])?;
    Ok(())
}

/// Reads every document into a fresh [`ControlState`].
pub(crate) fn load_control(store: &dyn Store, server: Served) -> anyhow::Result<ControlState> {
    let started = std::time::Instant::now();
    let (entries, revision) = store.list_prefixes(&keys::FOLDED)?;
    tracing::debug!(keys = entries.len(), list_ms = started.elapsed().as_secs_f64() * 1e3, "store listed");
    let mut control = ControlState::new(server);
    let changes: Vec<Change> =
        entries.into_iter().map(|e| Change { revision: e.mod_revision, key: e.key, value: Some(e.value) }).collect();
    for problem in control.apply(&changes) {
        tracing::error!(problem, "a stored document was skipped");
    }
    // Everything is new: the first compile builds every table whole.
    control.take_dirty();
    control.share_ids();
    control.revision = revision;
    control.state.revision = revision;
    Ok(control)
}
