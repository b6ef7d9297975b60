//! Per-owner metering: every answered query (NOERROR, NODATA, NXDOMAIN) counts for the owner of the zone that
//! answered the query name, by consuming account, VPC and zone, in per-minute buckets.
//!
//! The query path counts into a [`LocalMeter`] owned by its UDP thread or TCP task (no lock, no allocation once a
//! key exists) and merges into the shared [`Meter`] about once a second. The store mode's persister drains the meter
//! into `usage/<minute>/<node>` documents, so buckets survive restarts and sum over nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dataplane::respond::Outcome;
use crate::dns::Rcode;
use crate::model::snapshot::Snapshot;

/// One bucket's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// The zone owner: the billed account.
    pub owner: Arc<str>,
    /// The account that owns the VPC the query came from.
    pub consumer: Arc<str>,
    pub vpc: Arc<str>,
    pub zone: Arc<str>,
}

/// Counts merged from every task, waiting to be persisted.
#[derive(Default)]
pub struct Meter {
    pending: Mutex<HashMap<UsageKey, u64>>,
}

impl Meter {
    pub fn merge(&self, counts: &mut HashMap<UsageKey, u64>) {
        if counts.is_empty() {
            return;
        }
        let Ok(mut pending) = self.pending.lock() else { return };
        for (key, n) in counts.drain() {
            *pending.entry(key).or_default() += n;
        }
    }

    /// Everything counted so far; the meter starts again from zero.
    pub fn take(&self) -> HashMap<UsageKey, u64> {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }

    /// Puts counts back after a failed persist, so nothing is lost.
    pub fn restore(&self, mut counts: HashMap<UsageKey, u64>) {
        self.merge(&mut counts);
    }
}

/// How often a task hands its counts to the shared meter.
const LOCAL_FLUSH: Duration = Duration::from_secs(1);

/// A task's own counts.
pub struct LocalMeter {
    meter: Arc<Meter>,
    counts: HashMap<UsageKey, u64>,
    last_flush: Instant,
}

impl LocalMeter {
    pub fn new(meter: Arc<Meter>) -> LocalMeter {
        LocalMeter { meter, counts: HashMap::new(), last_flush: Instant::now() }
    }

    /// Counts one handled request if it is billable.
    pub fn record(&mut self, snapshot: &Snapshot, outcome: &Outcome) {
        if !matches!(outcome.rcode, Rcode::NoError | Rcode::NxDomain) {
            return;
        }
        let (Some(vpc), Some(zone)) = (outcome.vpc, outcome.zone) else { return };
        let (Some(vpc), Some(zone)) = (snapshot.vpcs.get(vpc as usize), snapshot.zones.get(zone as usize)) else {
            return;
        };
        let key = UsageKey {
            minute: current_minute(),
            owner: zone.meter_owner.clone(),
            consumer: vpc.account.clone(),
            vpc: vpc.id.0.clone(),
            zone: zone.meter_id.clone(),
        };
        *self.counts.entry(key).or_default() += 1;
        if self.last_flush.elapsed() >= LOCAL_FLUSH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        self.meter.merge(&mut self.counts);
        self.last_flush = Instant::now();
    }
}

impl Drop for LocalMeter {
    fn drop(&mut self) {
        self.flush();
    }
}

pub fn current_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}
