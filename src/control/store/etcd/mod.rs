//! The [`Store`] on an etcd v3 cluster, for several vpcdns nodes sharing one state.
//!
//! Keys are the embedded store's keys under a configurable prefix (`/vpcdns/` by default); values are the same
//! JSON documents; revisions are etcd's (cluster-wide, so a revision may be skipped when something else writes to
//! the same cluster). A transaction is one etcd `Txn` whose compares are on `mod_revision`.
//!
//! The trait is synchronous while the client is async: calls run on a runtime this store owns (its own thread),
//! and the caller's thread waits on a channel. So a call may come from a blocking thread, from start-up code inside
//! the server's runtime, or from a test, and the server's runtime never runs etcd I/O.
//!
//! The client does not retry and does not fail over (etcd-client leaves both to the application), so this module
//! does: one client per endpoint, an order that starts at the endpoint that last worked, a deadline per attempt.
//! Reads are retried on the next endpoint after any transport failure. A transaction is retried only when the
//! error proves it was never proposed (no connection, no leader); after an ambiguous failure (a timeout, a leader
//! change mid-request) the caller is told the outcome is unknown, never that it failed or succeeded.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{
    Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};

use super::{Change, Compare, Entry, Feed, FeedEvent, Op, Store, StoreError, TxnOutcome};
use crate::settings::EtcdSettings;

mod client;
mod node;
mod txn;
mod watch;

use client::{tls_options, Member, OwnRuntime, Retry};
use txn::{coalesce, revision_of, to_etcd_revision};

/// etcd's default `--max-txn-ops`: a transaction with more operations is refused by the server.
pub(crate) const MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` is 1.5 MiB; this leaves room for the request's framing.
pub(crate) const MAX_TXN_BYTES: usize = 1_400_000;
/// Keys per page when listing: every page is read at the revision of the first.
const PAGE: i64 = 1000;
/// The largest page accepted: a thousand keys of etcd's largest values (1.5 MiB each) could not fit anyway.
const PAGE_MAX_BYTES: usize = 256 << 20;
/// How long a replayed history must be quiet before `changes_since` takes it as complete (see there).
const REPLAY_QUIET: Duration = Duration::from_millis(400);

pub struct EtcdStore {
    runtime: OwnRuntime,
    members: Vec<Member>,
    /// The member tried first: the last one that answered.
    preferred: AtomicUsize,
    prefix: String,
    timeout: Duration,
    /// The lease this node's name is held under (0: none).
    lease: std::sync::atomic::AtomicI64,
}

impl EtcdStore {
    /// Prepares clients for every endpoint and checks that one member answers.
    pub fn open(settings: &EtcdSettings) -> Result<EtcdStore, StoreError> {
        if settings.endpoints.is_empty() {
            return Err(StoreError::Invalid("[store] endpoints: give at least one etcd endpoint".into()));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1).min(settings.timeout))
            .with_timeout(settings.timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            // A member cut off from the leader must not serve watches or reads that fall behind.
            .with_require_leader(true);
        if let Some(user) = &settings.user {
            options = options.with_user(user.name.clone(), user.password.clone());
        }
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let members = settings
            .endpoints
            .iter()
            .map(|url| Member { url: url.clone(), options: options.clone(), client: Mutex::new(None) })
            .collect();
        let store = EtcdStore {
            runtime: OwnRuntime::start()?,
            members,
            preferred: AtomicUsize::new(0),
            prefix: settings.prefix.clone(),
            timeout: settings.timeout,
            lease: std::sync::atomic::AtomicI64::new(0),
        };
        match store.revision() {
            Ok(_) => Ok(store),
            // Members that require client certificates close a TLS connection that brings none, or send an alert
            // that does not say so plainly: say what is the likely cause.
            Err(StoreError::Unavailable { op, detail })
                if settings.tls.as_ref().is_some_and(|t| t.client.is_none())
                    && (detail.contains("connection closed")
                        || detail.to_ascii_lowercase().contains("certificate")) =>
            {
                let detail = format!(
                    "{detail} — the members closed the TLS connection; if they require client certificates \
                     (--client-cert-auth), set [store] tls_cert and tls_key"
                );
                Err(StoreError::Unavailable { op, detail })
            }
            Err(e) => Err(e),
        }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// Our key for an etcd key under the prefix.
    fn strip<'a>(&self, key: &'a [u8]) -> Result<&'a str, StoreError> {
        let text = std::str::from_utf8(key).map_err(|_| StoreError::Corrupt("an etcd key is not UTF-8".into()))?;
        text.strip_prefix(self.prefix.as_str())
            .ok_or_else(|| StoreError::Corrupt(format!("etcd key {text:?} is outside the prefix {:?}", self.prefix)))
    }

    fn entry(&self, kv: &etcd_client::KeyValue) -> Result<Entry, StoreError> {
        Ok(Entry {
            key: self.strip(kv.key())?.to_string(),
            value: kv.value().to_vec(),
            create_revision: revision_of(kv.create_revision())?,
            mod_revision: revision_of(kv.mod_revision())?,
        })
    }

    /// Every entry in each [start, end) of `ranges` (at most `limit` in all), at one revision, in pages; with the
    /// revision read.
    fn scan(&self, ranges: &[(Vec<u8>, Vec<u8>)], limit: usize) -> Result<(Vec<Entry>, u64), StoreError> {
        // A compaction between two pages makes the older revision unreadable: start over (bounded).
        let mut last_error = None;
        for _ in 0..3 {
            let mut at = None;
            let mut entries = Vec::new();
            let scanned = ranges.iter().try_for_each(|(start, end)| {
                let left = limit.saturating_sub(entries.len());
                self.scan_once(start.clone(), end.clone(), &mut at, left, &mut entries)
            });
            match scanned {
                Err(StoreError::Compacted { requested, oldest }) => {
                    last_error = Some(StoreError::Compacted { requested, oldest })
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok((entries, revision_of(at.unwrap_or(0))?)),
            }
        }
        Err(last_error.unwrap_or(StoreError::Corrupt("listing never completed".into())))
    }

    /// Adds at most `limit` entries of [start, end) to `entries`, at revision `at` (set by the first page read).
    fn scan_once(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        at: &mut Option<i64>,
        limit: usize,
        entries: &mut Vec<Entry>,
    ) -> Result<(), StoreError> {
        let mut from = start;
        let mut left = limit;
        while left > 0 {
            let (page_from, page_end, page_at) = (from.clone(), end.clone(), *at);
            let page = i64::try_from(left).unwrap_or(PAGE).min(PAGE);
            let response = self.call("list keys", Retry::Always, move |client| {
                let mut options = GetOptions::new().with_range(page_end.clone()).with_limit(page);
                if let Some(revision) = page_at {
                    options = options.with_revision(revision);
                }
                let key = page_from.clone();
                // A page of large documents may pass gRPC's default 4 MiB.
                let mut kv = client.kv_client().max_decoding_message_size(PAGE_MAX_BYTES);
                Box::pin(async move { kv.get(key, Some(options)).await })
            })?;
            at.get_or_insert(response.header().map(|h| h.revision()).unwrap_or(0));
            for kv in response.kvs() {
                entries.push(self.entry(kv)?);
            }
            left = left.saturating_sub(response.kvs().len());
            let Some(last) = response.kvs().last().filter(|_| response.more()) else { return Ok(()) };
            // The next key after `last`: the same bytes with a zero byte appended.
            from = last.key().to_vec();
            from.push(0);
        }
        Ok(())
    }

    /// The highest mod_revision of a key under the prefix (0 when there is none).
    fn newest_mod_revision(&self) -> Result<u64, StoreError> {
        let (key, end) = (self.key(""), self.prefix_end(""));
        let response = self.call("read the newest revision", Retry::Always, move |mut client| {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_sort(etcd_client::SortTarget::Mod, etcd_client::SortOrder::Descend)
                .with_limit(1)
                .with_keys_only();
            let key = key.clone();
            Box::pin(async move { client.get(key, Some(options)).await })
        })?;
        response.kvs().first().map_or(Ok(0), |kv| revision_of(kv.mod_revision()))
    }

    /// The etcd range end that covers every key starting with our `prefix`.
    fn prefix_end(&self, prefix: &str) -> Vec<u8> {
        let mut end = self.key(prefix);
        // Bump the last byte that can be bumped (etcd's own prefix rule); an all-0xff key has no end.
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return end;
            }
        }
        vec![0]
    }

    /// Follows every change under the prefix after revision `after`, resuming on broken streams (and on another
    /// member) by itself. Ends when the receiver is dropped, or after a [`FeedEvent::Compacted`].
    pub fn watch(&self, after: u64) -> Feed {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let members: Vec<(String, ConnectOptions)> =
            self.members.iter().map(|m| (m.url.clone(), m.options.clone())).collect();
        let first = self.preferred.load(Ordering::Relaxed);
        let prefix = self.prefix.clone();
        let timeout = self.timeout;
        self.runtime.handle.spawn(watch::follow(members, first, prefix, after, timeout, tx));
        rx
    }
}

impl Store for EtcdStore {
    fn revision(&self) -> Result<u64, StoreError> {
        let key = self.key("");
        let end = self.prefix_end("");
        let response = self.call("read the revision", Retry::Always, move |mut client| {
            let (key, options) = (key.clone(), GetOptions::new().with_range(end.clone()).with_count_only());
            Box::pin(async move { client.get(key, Some(options)).await })
        })?;
        revision_of(response.header().map(|h| h.revision()).unwrap_or(0))
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = self.key(key);
        let response = self.call("read a key", Retry::Always, move |mut client| {
            let key = key.clone();
            Box::pin(async move { client.get(key, None).await })
        })?;
        response.kvs().first().map(|kv| self.entry(kv)).transpose()
    }

    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        self.scan(&[(self.key(prefix), self.prefix_end(prefix))], usize::MAX)
    }

    fn list_prefixes(&self, prefixes: &[&str]) -> Result<(Vec<Entry>, u64), StoreError> {
        let ranges: Vec<_> = prefixes.iter().map(|p| (self.key(p), self.prefix_end(p))).collect();
        let (mut entries, revision) = self.scan(&ranges, usize::MAX)?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries.dedup_by(|a, b| a.key == b.key);
        Ok((entries, revision))
    }

    fn range(&self, start: &str, end: &str, limit: usize) -> Result<Vec<Entry>, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self.scan(&[(self.key(start), self.key(end))], limit)?.0)
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        if compares.iter().any(|c| c.key.is_empty()) {
            return Err(StoreError::Invalid("a compare names an empty key".into()));
        }
        let ops = &coalesce(ops)?;
        let bytes: usize = ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len() + self.prefix.len() + 16,
                Op::Delete { key } | Op::DeletePrefix { prefix: key } => key.len() + self.prefix.len() + 16,
            })
            .sum();
        if ops.len() > MAX_TXN_OPS || compares.len() > MAX_TXN_OPS || bytes > MAX_TXN_BYTES {
            return Err(StoreError::TooLarge { ops: ops.len(), bytes, max_ops: MAX_TXN_OPS, max_bytes: MAX_TXN_BYTES });
        }
        let mut when = Vec::with_capacity(compares.len());
        let mut reads = Vec::with_capacity(compares.len());
        for c in compares {
            when.push(EtcdCompare::mod_revision(self.key(&c.key), CompareOp::Equal, to_etcd_revision(c.mod_revision)?));
            reads.push(TxnOp::get(self.key(&c.key), None));
        }
        let mut then = Vec::with_capacity(ops.len());
        for op in ops {
            then.push(match op {
                Op::Put { key, value } => TxnOp::put(self.key(key), value.clone(), None),
                Op::Delete { key } => TxnOp::delete(self.key(key), None),
                Op::DeletePrefix { prefix } => {
                    TxnOp::delete(self.key(prefix), Some(DeleteOptions::new().with_range(self.prefix_end(prefix))))
                }
            });
        }
        let response = self.call("commit a transaction", Retry::IfUnsent, move |mut client| {
            let txn = Txn::new().when(when.clone()).and_then(then.clone()).or_else(reads.clone());
            Box::pin(async move { client.txn(txn).await })
        })?;
        if response.succeeded() {
            return Ok(TxnOutcome::Committed { revision: revision_of(response.header().map_or(0, |h| h.revision()))? });
        }
        // The failure branch read every compared key: name the first whose revision differs.
        for (compare, read) in compares.iter().zip(response.op_responses()) {
            let actual = match read {
                TxnOpResponse::Get(get) => get.kvs().first().map_or(Ok(0), |kv| revision_of(kv.mod_revision()))?,
                _ => return Err(StoreError::Corrupt("etcd answered a read with something else".into())),
            };
            if actual != compare.mod_revision {
                return Ok(TxnOutcome::Conflict { key: compare.key.clone(), expected: compare.mod_revision, actual });
            }
        }
        // Every key now matches: it changed and changed back between the check and the read. Report the first.
        let first = compares.first().map(|c| (c.key.clone(), c.mod_revision)).unwrap_or_default();
        Ok(TxnOutcome::Conflict { key: first.0, expected: first.1, actual: first.1 })
    }

    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let current = self.revision()?;
        if after >= current || limit == 0 {
            return Ok(Vec::new());
        }
        // A read at `after` fails exactly when the history after it was compacted (etcd keeps the compaction
        // revision itself readable), which is when the feed can no longer start there.
        if after > 0 {
            let (key, end, at) = (self.key(""), self.prefix_end(""), to_etcd_revision(after)?);
            let read = self.call("read the change history", Retry::Always, move |mut client| {
                let options = GetOptions::new().with_range(end.clone()).with_revision(at).with_count_only();
                let key = key.clone();
                Box::pin(async move { client.get(key, Some(options)).await })
            });
            match read {
                Err(StoreError::Compacted { .. }) => {
                    return Err(StoreError::Compacted { requested: after, oldest: current });
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        // A watch from after+1 replays the history. etcd 3.4 offers no reliable end marker (a progress notice may
        // come before the replayed events), so the replay ends at the revision read above when it touched this
        // prefix; else once the newest live key's revision is passed and the stream has been quiet for a moment
        // (etcd replays history in bursts about every 100 ms; what only a later delete could add is then in).
        let newest = self.newest_mod_revision()?;
        let mut feed = self.watch(after);
        let deadline = self.timeout * 3;
        let collected = self.runtime.run(async move {
            let mut changes: Vec<Change> = Vec::new();
            let outcome = tokio::time::timeout(deadline, async {
                let mut seen = after;
                loop {
                    let event = if seen >= newest {
                        match tokio::time::timeout(REPLAY_QUIET, feed.recv()).await {
                            Ok(event) => event,
                            Err(_) => return Ok(()),
                        }
                    } else {
                        feed.recv().await
                    };
                    match event {
                        Some(FeedEvent::Changes(batch)) => {
                            seen = batch.last().map_or(seen, |c| c.revision);
                            changes.extend(batch);
                            if seen >= current {
                                return Ok(());
                            }
                        }
                        Some(FeedEvent::Compacted { oldest }) => {
                            return Err(StoreError::Compacted { requested: after, oldest })
                        }
                        Some(_) => {}
                        None => return Ok(()),
                    }
                }
            })
            .await;
            match outcome {
                Ok(Ok(())) => Ok(changes),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(StoreError::Unavailable {
                    op: "read the change history",
                    detail: format!("no complete history within {deadline:?}"),
                }),
            }
        });
        let mut changes = collected.unwrap_or_else(|| {
            Err(StoreError::Unavailable { op: "read the change history", detail: "client runtime stopped".into() })
        })?;
        changes.retain(|c| c.revision <= current);
        // Whole revisions only, up to `limit` (the first one whole even when larger).
        if changes.len() > limit {
            let mut end = limit;
            let cut = changes[limit].revision;
            while end > 0 && changes[end - 1].revision == cut {
                end -= 1;
            }
            if end == 0 {
                end = changes.iter().take_while(|c| c.revision == cut).count();
            }
            changes.truncate(end);
        }
        Ok(changes)
    }

    fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let current = self.revision()?;
        if revision > current {
            return Err(StoreError::FutureRevision { requested: revision, current });
        }
        let at = to_etcd_revision(revision)?;
        let result = self.call("compact", Retry::Always, move |mut client| {
            Box::pin(
                async move { client.compact(at, Some(etcd_client::CompactionOptions::new().with_physical())).await },
            )
        });
        match result {
            // Compacting at or below an earlier compaction does nothing.
            Ok(_) | Err(StoreError::Compacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn backup(&self, path: &Path) -> Result<(), StoreError> {
        // etcd's own snapshot (restorable with `etcdctl snapshot restore`), streamed to a temporary file.
        let tmp = path.with_extension("partial");
        let file =
            std::fs::File::create(&tmp).map_err(|source| StoreError::Io { op: "create", path: tmp.clone(), source })?;
        let file = std::sync::Arc::new(Mutex::new(file));
        let sink = file.clone();
        let written = self.call("stream a snapshot", Retry::Always, move |mut client| {
            let sink = sink.clone();
            Box::pin(async move {
                let mut stream = client.snapshot().await?;
                let mut chunks = Vec::new();
                while let Some(chunk) = stream.message().await? {
                    chunks.push(chunk.blob().to_vec());
                }
                let mut file = sink.lock().map_err(|_| etcd_client::Error::InvalidArgs("poisoned".into()))?;
                use std::io::{Seek, Write};
                file.set_len(0)?;
                file.seek(std::io::SeekFrom::Start(0))?;
                for chunk in chunks {
                    file.write_all(&chunk)?;
                }
                Ok(())
            })
        });
        let done = written.and_then(|()| {
            let file = file.lock().map_err(|_| StoreError::Poisoned)?;
            file.sync_all().map_err(|source| StoreError::Io { op: "sync", path: tmp.clone(), source })?;
            std::fs::rename(&tmp, path).map_err(|source| StoreError::Io { op: "rename", path: tmp.clone(), source })
        });
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    fn feed(&self, after: u64) -> Option<Feed> {
        Some(self.watch(after))
    }

    fn claim_node(&self, name: &str) -> Result<(), StoreError> {
        self.claim(name)
    }

    fn release_node(&self) {
        self.release();
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn txn_limits(&self) -> Option<(usize, usize)> {
        Some((MAX_TXN_OPS, MAX_TXN_BYTES))
    }
}
