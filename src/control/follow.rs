//! Following a shared store: the changes other nodes commit are folded into this node's state as they arrive.
//!
//! The node has listed the whole state at one revision R and serves it; the feed starts at R+1. Each batch of
//! changes is applied (revisions at or below the applied one are skipped, so this node's own commits are not
//! applied twice) and published. When the store is unreachable the node keeps serving its last snapshot, and says
//! so in the log, in metrics and in `/ready`; the feed resumes after the last applied revision on its own. When
//! the history it needs was compacted, the node lists everything again and swaps the result in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{unix_now, ControlPlane};
use crate::control::store::FeedEvent;

/// What the feed's state is, for metrics and readiness.
#[derive(Debug, Default)]
pub(crate) struct FeedHealth {
    connected: AtomicBool,
    /// Unix time of the last change between connected and not.
    since: AtomicU64,
    /// Unix milliseconds of the last word from the store: a change, a progress notice, a (re)connection.
    heard: AtomicU64,
    /// Past this long without word from the store, the node reports not ready (`[store] max_staleness_s`).
    max_staleness: Option<Duration>,
    applied: AtomicU64,
    relists: AtomicU64,
    last_error: Mutex<String>,
}

impl FeedHealth {
    /// A feed that has just been heard from; `max_staleness` bounds how long it may go without word.
    pub(crate) fn new(max_staleness: Option<Duration>) -> FeedHealth {
        let health = FeedHealth { max_staleness, ..FeedHealth::default() };
        health.heard_now();
        health
    }

    fn heard_now(&self) {
        self.heard.store(super::unix_millis(), Ordering::Relaxed);
    }

    /// How long since the store was last heard from.
    pub(crate) fn stale_for(&self) -> Duration {
        Duration::from_millis(super::unix_millis().saturating_sub(self.heard.load(Ordering::Relaxed)))
    }

    /// `Err(why)` when the node has gone longer than `max_staleness` without word from the store: a load balancer
    /// should stop sending it traffic (DNS keeps answering for clients that still reach it).
    pub(crate) fn fresh(&self) -> Result<(), String> {
        let stale = self.stale_for();
        match self.max_staleness {
            Some(max) if stale > max => Err(format!(
                "store: no word for {:.1} s (max_staleness_s = {}), serving revision {}",
                stale.as_secs_f64(),
                max.as_secs(),
                self.applied()
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }
    pub(crate) fn relists(&self) -> u64 {
        self.relists.load(Ordering::Relaxed)
    }

    /// One line for `/ready`: whether the state follows the store, and since when it does not.
    pub(crate) fn detail(&self) -> String {
        let applied = self.applied();
        if self.connected() {
            return format!("store: following, revision {applied}");
        }
        let since = self.since.load(Ordering::Relaxed);
        let error = self.last_error.lock().map(|e| e.clone()).unwrap_or_default();
        format!(
            "store: unreachable for {} s, serving revision {applied} (last error: {error})",
            unix_now().saturating_sub(since)
        )
    }

    fn set_connected(&self, on: bool) -> bool {
        let was = self.connected.swap(on, Ordering::Relaxed);
        if was != on {
            self.since.store(unix_now(), Ordering::Relaxed);
        }
        was != on
    }
}

/// Applies the store's feed to `plane` until the process ends. Returns at once for a store without a feed.
pub(crate) async fn follow(plane: Arc<ControlPlane>, health: Arc<FeedHealth>) {
    health.applied.store(plane.current().revision, Ordering::Relaxed);
    loop {
        let after = plane.current().revision;
        let Some(mut feed) = plane.store().feed(after) else { return };
        plane.set_following(true);
        while let Some(event) = feed.recv().await {
            match event {
                FeedEvent::Connected => {
                    health.heard_now();
                    if health.set_connected(true) {
                        tracing::info!(revision = plane.current().revision, "store feed connected");
                    }
                }
                FeedEvent::Changes(mut changes) => {
                    health.heard_now();
                    health.set_connected(true);
                    // Behind (a bulk change arrives as hundreds of transactions): fold everything already waiting
                    // into one apply and one compile instead of one per transaction.
                    let mut pending = None;
                    while changes.len() < MAX_BATCH {
                        match feed.try_recv() {
                            Ok(FeedEvent::Changes(more)) => changes.extend(more),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let p = plane.clone();
                    match tokio::task::spawn_blocking(move || p.apply_feed(&changes)).await {
                        Ok(revision) => health.applied.store(revision, Ordering::Relaxed),
                        Err(e) => tracing::error!(error = %e, "applying the store feed panicked"),
                    }
                    if let Some(FeedEvent::Disconnected(error)) = &pending {
                        note_disconnected(&plane, &health, error);
                    } else if let Some(FeedEvent::Compacted { oldest }) = pending {
                        note_compacted(&plane, oldest);
                        relist(&plane, &health).await;
                        break;
                    }
                }
                FeedEvent::Progress(_) => {
                    health.heard_now();
                    health.set_connected(true);
                }
                FeedEvent::Disconnected(error) => note_disconnected(&plane, &health, &error),
                FeedEvent::Compacted { oldest } => {
                    note_compacted(&plane, oldest);
                    relist(&plane, &health).await;
                    break;
                }
            }
        }
        plane.set_following(false);
        // The feed ended (compaction, or the store's client stopped): open a new one after a short pause.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Most changes folded into one apply when the feed is behind.
const MAX_BATCH: usize = 200_000;

fn note_disconnected(plane: &ControlPlane, health: &FeedHealth, error: &str) {
    if let Ok(mut last) = health.last_error.lock() {
        last.clear();
        last.push_str(error);
    }
    if health.set_connected(false) {
        tracing::warn!(
            error,
            revision = plane.current().revision,
            "store unreachable: serving the last snapshot until it is back"
        );
    }
}

fn note_compacted(plane: &ControlPlane, oldest: u64) {
    tracing::warn!(
        applied = plane.current().revision,
        oldest,
        "the store's history was compacted past this node: reading the whole state again"
    );
}

/// Lists the whole state again, retrying until it works.
async fn relist(plane: &Arc<ControlPlane>, health: &FeedHealth) {
    let mut pause = Duration::from_millis(100);
    loop {
        let p = plane.clone();
        match tokio::task::spawn_blocking(move || p.resync()).await {
            Ok(Ok(revision)) => {
                health.applied.store(revision, Ordering::Relaxed);
                health.relists.fetch_add(1, Ordering::Relaxed);
                tracing::info!(revision, "state read again from the store");
                return;
            }
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "reading the state again failed; retrying"),
            Err(e) => tracing::error!(error = %e, "reading the state again panicked; retrying"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
