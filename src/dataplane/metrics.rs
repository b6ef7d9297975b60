//! The query path's counters: what the server answered, for whom, and how fast.
//!
//! The query path never touches a shared counter for its common events: each UDP thread and TCP connection counts
//! into its own [`LocalMetrics`] (plain integers, keyed by the snapshot's VPC, zone and route indexes) and hands the
//! counts, translated to ids, to the shared [`Metrics`] about once a second. Rare events (a refused connection, a
//! rate-limited response) are atomics. `process::telemetry` reads [`Metrics::totals`] and exports them; nothing
//! here knows Prometheus or HTTP.
//!
//! Cardinality is bounded by the inventory, never by traffic: series are keyed by VPC ids, zone and rule ids,
//! owner accounts, transports and rcodes; no source address, no query name, and no owner × consumer × VPC product
//! (the usage API has that).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dataplane::respond::Outcome;
use crate::dns::{Rcode, Transport};
use crate::model::billing::{billed_party, Billed, UsageKind};
use crate::model::publish::SnapshotCell;
use crate::model::snapshot::{Snapshot, VpcIdx};

/// Upper bounds (seconds) of the query-duration buckets: from well under the typical 10 µs to the 100 ms at which
/// something is badly wrong.
pub(crate) const LATENCY_BOUNDS: [f64; 11] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];

/// How often a thread or connection hands its counts over.
const LOCAL_FLUSH: Duration = Duration::from_secs(1);

/// Counts of query durations, per bucket (the last is +Inf), with their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Latencies {
    pub buckets: [u64; LATENCY_BOUNDS.len() + 1],
    pub sum_seconds: f64,
}

impl Latencies {
    fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = LATENCY_BOUNDS.iter().position(|&b| seconds <= b).unwrap_or(LATENCY_BOUNDS.len());
        if let Some(n) = self.buckets.get_mut(bucket) {
            *n += 1;
        }
        self.sum_seconds += seconds;
    }

    fn add(&mut self, other: &Latencies) {
        for (total, n) in self.buckets.iter_mut().zip(other.buckets) {
            *total += n;
        }
        self.sum_seconds += other.sum_seconds;
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// One series of queries: transport, rcode, and the VPC (`None`: the source is in no VPC, or the query was refused
/// before it was classified).
pub(crate) type QueryLabels = (Transport, Rcode, Option<Arc<str>>);

/// One series of billed answers: what answered (zone or rule id, "upstreams"), the billed account, and the kind.
pub(crate) type AnswerLabels = (Arc<str>, Arc<str>, UsageKind);

/// Everything counted so far, by id: what the exporter reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub queries: HashMap<QueryLabels, u64>,
    /// Billed answers (NOERROR, NODATA, NXDOMAIN).
    pub answers: HashMap<AnswerLabels, u64>,
    pub unclassified: u64,
    pub latencies: Latencies,
    /// Queries relayed by front ends, by the `[server] proxy_from` prefix they came from.
    pub relayed: HashMap<String, u64>,
    /// The snapshot generation series were last pruned for.
    pruned: u64,
}

impl Totals {
    /// Drops the series of VPCs, zones and rules the snapshot no longer has: the series follow the inventory, so a
    /// server that sees VPCs come and go for months does not keep every one it ever saw.
    fn prune(&mut self, snapshot: &Snapshot) {
        if self.pruned == snapshot.generation() {
            return;
        }
        self.pruned = snapshot.generation();
        let vpcs: std::collections::HashSet<&str> = snapshot.vpcs().iter().map(|v| v.id.as_str()).collect();
        self.queries.retain(|(_, _, vpc), _| vpc.as_deref().is_none_or(|v| vpcs.contains(v)));
        let zones: std::collections::HashSet<&str> = snapshot.zones().iter().map(|z| &**z.meter_id()).collect();
        let rules: std::collections::HashSet<&str> =
            snapshot.routes().iter().filter_map(|r| r.rule.as_deref()).collect();
        self.answers.retain(|(item, _, kind), _| match kind {
            UsageKind::Zone => zones.contains(&**item),
            UsageKind::Rule => rules.contains(&**item),
            UsageKind::Resolver => true,
        });
        let front_ends: std::collections::HashSet<String> =
            snapshot.classifier().front_ends().iter().map(ToString::to_string).collect();
        self.relayed.retain(|net, _| front_ends.contains(net));
    }
}

/// The counters of rare events: atomics, bumped where they happen.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// TCP connections refused by the connection caps.
    pub tcp_refused: AtomicU64,
    /// Open TCP connections.
    pub tcp_open: AtomicU64,
    /// UDP responses truncated (slipped) or dropped by response rate limiting.
    pub rrl_slipped: AtomicU64,
    pub rrl_dropped: AtomicU64,
    /// Queries past their source's query limit: answered truncated, or not at all.
    pub source_slipped: AtomicU64,
    pub source_dropped: AtomicU64,
    /// UDP replies the kernel would not take.
    pub udp_send_dropped: AtomicU64,
    /// Requests dropped without an answer (responses, packets too short for a DNS header).
    pub requests_dropped: AtomicU64,
    /// Datagrams and connections dropped before their query was read, by cause (`proxy::Dropped::ALL`).
    pub proxy_dropped: [AtomicU64; 8],
}

impl Events {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's shared counters: totals handed over by the query loops, and the rare events.
pub(crate) struct Metrics {
    totals: Mutex<Totals>,
    /// The snapshot being served, to prune series by.
    snapshots: SnapshotCell,
    pub events: Events,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("events", &self.events).finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(snapshots: SnapshotCell) -> Metrics {
        Metrics { totals: Mutex::new(Totals::default()), snapshots, events: Events::default() }
    }

    /// A copy of the totals so far.
    pub(crate) fn totals(&self) -> Totals {
        self.totals.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn merge(&self, local: &mut LocalMetrics, snapshot: &Snapshot) {
        let Ok(mut totals) = self.totals.lock() else { return };
        for (key, n) in local.queries.drain() {
            let (vpc, transport, rcode) = unpack(key);
            let vpc = vpc.and_then(|v| snapshot.vpcs().get(v as usize)).map(|v| v.id.0.clone());
            *totals.queries.entry((transport, rcode, vpc)).or_default() += n;
        }
        for ((billed, vpc), n) in local.answers.drain() {
            if let Some((owner, kind, item)) = billed_party(snapshot, vpc, billed) {
                *totals.answers.entry((item, owner, kind)).or_default() += n;
            }
        }
        for (i, n) in local.relayed.drain() {
            if let Some(net) = snapshot.classifier().front_ends().get(i) {
                *totals.relayed.entry(net.to_string()).or_default() += n;
            }
        }
        totals.unclassified += std::mem::take(&mut local.unclassified);
        totals.latencies.add(&std::mem::take(&mut local.latencies));
        let current = self.snapshots.load();
        totals.prune(&current);
    }
}

/// The counts of one UDP thread or TCP connection, by the indexes of the snapshot they were taken under.
pub(crate) struct LocalMetrics {
    metrics: Arc<Metrics>,
    /// The snapshot the indexes below refer to (a new one flushes first).
    snapshot: Option<Arc<Snapshot>>,
    /// Fast-hashed: the keys are small integers of our own making, never chosen by a client.
    queries: HashMap<u64, u64, ahash::RandomState>,
    /// Billed answers by what billed them, with the VPC (needed to name the account resolver usage bills).
    answers: HashMap<(Billed, Option<VpcIdx>), u64, ahash::RandomState>,
    unclassified: u64,
    /// Relayed queries by the index of their front end's prefix in the snapshot.
    relayed: HashMap<usize, u64, ahash::RandomState>,
    latencies: Latencies,
    last_flush: Instant,
}

impl LocalMetrics {
    pub(crate) fn new(metrics: Arc<Metrics>) -> LocalMetrics {
        LocalMetrics {
            metrics,
            snapshot: None,
            queries: HashMap::default(),
            answers: HashMap::default(),
            unclassified: 0,
            relayed: HashMap::default(),
            latencies: Latencies::default(),
            last_flush: Instant::now(),
        }
    }

    /// Counts one answered request, handled under `snapshot` in `duration`.
    pub(crate) fn record(
        &mut self,
        snapshot: &Arc<Snapshot>,
        outcome: &Outcome,
        transport: Transport,
        duration: Duration,
    ) {
        if !self.snapshot.as_ref().is_some_and(|held| Arc::ptr_eq(held, snapshot)) {
            self.flush();
            self.snapshot = Some(snapshot.clone());
        }
        *self.queries.entry(pack(outcome.vpc, transport, outcome.rcode)).or_default() += 1;
        if outcome.unclassified {
            self.unclassified += 1;
        }
        if outcome.billed != Billed::Nobody && matches!(outcome.rcode, Rcode::NoError | Rcode::NxDomain) {
            // Only resolver usage needs the VPC (its account is billed); the others collapse across VPCs.
            let vpc = if outcome.billed == Billed::Resolver { outcome.vpc } else { None };
            *self.answers.entry((outcome.billed, vpc)).or_default() += 1;
        }
        self.latencies.observe(duration);
        if self.last_flush.elapsed() >= LOCAL_FLUSH {
            self.flush();
        }
    }

    /// Counts a query a front end relayed, by the `proxy_from` prefix it came from; after `record` of the same
    /// answer (which took the snapshot the index refers to).
    pub(crate) fn relayed(&mut self, snapshot: &Snapshot, front_end: std::net::IpAddr) {
        if let Some(i) = snapshot.classifier().front_end_of(front_end) {
            *self.relayed.entry(i).or_default() += 1;
        }
    }

    /// Hands the counts to the shared totals, and lets go of their snapshot: an idle thread must not keep a
    /// replaced snapshot (a whole generation of tables) alive.
    pub(crate) fn flush(&mut self) {
        self.last_flush = Instant::now();
        if let Some(snapshot) = self.snapshot.take() {
            self.metrics.clone().merge(self, &snapshot);
        }
    }
}

impl Drop for LocalMetrics {
    fn drop(&mut self) {
        self.flush();
    }
}

const RCODES: [Rcode; 7] =
    [Rcode::NoError, Rcode::FormErr, Rcode::ServFail, Rcode::NxDomain, Rcode::NotImp, Rcode::Refused, Rcode::BadVers];

/// (VPC index or none, transport, rcode) in one integer: the local counters' key.
fn pack(vpc: Option<u32>, transport: Transport, rcode: Rcode) -> u64 {
    let vpc = vpc.map_or(0, |v| u64::from(v) + 1);
    let rcode = RCODES.iter().position(|&r| r == rcode).unwrap_or(0) as u64;
    (vpc << 8) | (u64::from(transport == Transport::Tcp) << 7) | rcode
}

fn unpack(key: u64) -> (Option<u32>, Transport, Rcode) {
    let vpc = (key >> 8).checked_sub(1).and_then(|v| u32::try_from(v).ok());
    let transport = if key & 0x80 != 0 { Transport::Tcp } else { Transport::Udp };
    let rcode = RCODES.get((key & 0x7f) as usize).copied().unwrap_or(Rcode::NoError);
    (vpc, transport, rcode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for vpc in [None, Some(0), Some(7), Some(u32::MAX - 1)] {
            for transport in [Transport::Udp, Transport::Tcp] {
                for rcode in RCODES {
                    assert_eq!(unpack(pack(vpc, transport, rcode)), (vpc, transport, rcode));
                }
            }
        }
    }

    /// Counts taken under a snapshot are read with that snapshot's ids, and a VPC or zone that is gone takes its
    /// series with it.
    #[test]
    fn series_follow_the_inventory() {
        let (published, metrics, mut local) = crate::testing::one_answer_counted();
        let outcome = Outcome::from_first_zone();
        assert!(local.snapshot.is_none(), "a flush lets go of the snapshot");
        let totals = metrics.totals();
        let v1: Option<Arc<str>> = Some(Arc::from("v1"));
        assert_eq!(totals.queries.get(&(Transport::Udp, Rcode::NoError, v1.clone())), Some(&1));
        let zone = (Arc::from("1/t.internal."), Arc::from("1"), UsageKind::Zone);
        assert_eq!(totals.answers.get(&zone), Some(&1));
        // The next generation has neither the VPC nor the zone.
        let mut state = crate::testing::state("", None);
        state.vpcs.clear();
        let mut compiler = crate::model::compile::Compiler::default();
        compiler.compile(&state);
        let empty = Arc::new(compiler.compile(&state));
        published.replace(empty.clone());
        local.record(
            &empty,
            &Outcome { vpc: None, billed: Billed::Nobody, unclassified: true, ..outcome },
            Transport::Tcp,
            Duration::ZERO,
        );
        local.flush();
        let totals = metrics.totals();
        assert!(!totals.queries.keys().any(|(_, _, vpc)| vpc.is_some()), "{totals:?}");
        assert!(totals.answers.is_empty(), "{totals:?}");
        assert_eq!(totals.queries.get(&(Transport::Tcp, Rcode::NoError, None)), Some(&1));
        assert_eq!(totals.unclassified, 1);
    }

    #[test]
    fn latencies_fall_into_their_buckets() {
        let mut l = Latencies::default();
        l.observe(Duration::from_micros(10));
        l.observe(Duration::from_micros(30));
        l.observe(Duration::from_secs(1));
        assert_eq!((l.buckets[0], l.buckets[1], l.buckets[LATENCY_BOUNDS.len()], l.count()), (1, 1, 1, 3));
    }
}
