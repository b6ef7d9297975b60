//! Per-owner metering: every billable answer counts for the party `model::billing` names, by consuming account,
//! VPC and what answered, in per-minute buckets.
//!
//! The query path counts into a [`LocalMeter`] owned by its UDP thread or TCP task (no lock, no allocation once a
//! key exists) and merges into the shared [`Meter`] about once a second. The process drains the meter into the
//! control plane's `usage/<owner>/<minute>/<node>` documents, so buckets survive restarts and sum over nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dataplane::respond::Outcome;
use crate::model::billing::{usage_key, UsageKey};
use crate::model::snapshot::Snapshot;

/// Counts merged from every task, waiting to be persisted.
#[derive(Default)]
pub(crate) struct Meter {
    pending: Mutex<HashMap<UsageKey, u64>>,
}

impl Meter {
    pub(crate) fn merge(&self, counts: &mut HashMap<UsageKey, u64>) {
        if counts.is_empty() {
            return;
        }
        let Ok(mut pending) = self.pending.lock() else { return };
        for (key, n) in counts.drain() {
            *pending.entry(key).or_default() += n;
        }
    }

    /// Everything counted so far; the meter starts again from zero.
    pub(crate) fn take(&self) -> HashMap<UsageKey, u64> {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }

    /// Puts counts back after a failed persist, so nothing is lost.
    pub(crate) fn restore(&self, mut counts: HashMap<UsageKey, u64>) {
        self.merge(&mut counts);
    }
}

/// How often a task hands its counts to the shared meter.
const LOCAL_FLUSH: Duration = Duration::from_secs(1);

/// A task's own counts.
pub(crate) struct LocalMeter {
    meter: Arc<Meter>,
    counts: HashMap<UsageKey, u64>,
    last_flush: Instant,
}

impl LocalMeter {
    pub(crate) fn new(meter: Arc<Meter>) -> LocalMeter {
        LocalMeter { meter, counts: HashMap::new(), last_flush: Instant::now() }
    }

    /// Counts one handled request if it is billable; `snapshot` is the one it was answered under.
    pub(crate) fn record(&mut self, snapshot: &Snapshot, outcome: &Outcome) {
        let Some(key) = usage_key(snapshot, outcome.vpc, outcome.billed, outcome.rcode, current_minute()) else {
            return;
        };
        *self.counts.entry(key).or_default() += 1;
        if self.last_flush.elapsed() >= LOCAL_FLUSH {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        self.meter.merge(&mut self.counts);
        self.last_flush = Instant::now();
    }
}

impl Drop for LocalMeter {
    fn drop(&mut self) {
        self.flush();
    }
}

pub(crate) fn current_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}
