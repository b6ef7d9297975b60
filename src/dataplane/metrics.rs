//! Prometheus metrics: what the server answered, for whom, how fast, and the state it serves.
//!
//! The query path never touches a shared counter: each UDP thread and TCP connection counts into its own
//! [`LocalMetrics`] (plain integers, keyed by the snapshot's VPC and zone indexes) and hands the counts, translated
//! to ids, to the shared [`Metrics`] about once a second. A scrape reads those totals and the published snapshot
//! and encodes them with `prometheus-client`, so the text format is the exporter crate's, not ours.
//!
//! Cardinality is bounded by the inventory, never by traffic: labels are VPC ids, zone ids, owner accounts,
//! transports and rcodes; no source address, no query name, and no owner × consumer × VPC product (the usage API
//! has that).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dataplane::respond::Outcome;
use crate::dataplane::serve::Published;
use crate::dns::{Rcode, Transport};
use crate::model::snapshot::Snapshot;

/// Upper bounds (seconds) of the query-duration buckets: from well under the typical 10 µs to the 100 ms at which
/// something is badly wrong.
const LATENCY_BOUNDS: [f64; 11] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];

/// How often a thread or connection hands its counts over.
const LOCAL_FLUSH: Duration = Duration::from_secs(1);

/// Counts of query durations, per bucket (the last is +Inf), with their sum.
#[derive(Debug, Clone, Default)]
struct Latencies {
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    sum_seconds: f64,
}

impl Latencies {
    fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = LATENCY_BOUNDS.iter().position(|&b| seconds <= b).unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket] += 1;
        self.sum_seconds += seconds;
    }

    fn add(&mut self, other: &Latencies) {
        for (total, n) in self.buckets.iter_mut().zip(other.buckets) {
            *total += n;
        }
        self.sum_seconds += other.sum_seconds;
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// One series of `vpcdns_queries_total`: transport, rcode, and the VPC (`None`: the source is in no VPC, or the
/// query was refused before it was classified).
type QueryLabels = (Transport, Rcode, Option<Arc<str>>);

/// Everything counted so far, by id.
#[derive(Debug, Default)]
struct Totals {
    queries: HashMap<QueryLabels, u64>,
    /// Answers (NOERROR, NODATA, NXDOMAIN from a zone) by (zone id, owner account).
    answers: HashMap<(Arc<str>, Arc<str>), u64>,
    unclassified: u64,
    latencies: Latencies,
    /// The snapshot generation series were last pruned for.
    pruned: u64,
}

impl Totals {
    /// Drops the series of VPCs and zones the snapshot no longer has: the series follow the inventory, so a
    /// server that sees VPCs come and go for months does not keep every one it ever saw.
    fn prune(&mut self, snapshot: &Snapshot) {
        if self.pruned == snapshot.generation {
            return;
        }
        self.pruned = snapshot.generation;
        let vpcs: std::collections::HashSet<&str> = snapshot.vpcs.iter().map(|v| v.id.as_str()).collect();
        self.queries.retain(|(_, _, vpc), _| vpc.as_deref().is_none_or(|v| vpcs.contains(v)));
        let zones: std::collections::HashSet<&str> = snapshot.zones.iter().map(|z| &*z.meter_id).collect();
        self.answers.retain(|(zone, _), _| zones.contains(&**zone));
    }
}

/// The server's shared metrics: totals handed over by the query loops, counters of rare events, and the
/// published snapshot (read at scrape time for what is loaded).
pub struct Metrics {
    totals: Mutex<Totals>,
    published: Published,
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
    ready: AtomicBool,
    query_log: Option<Arc<crate::dataplane::querylog::QueryLog>>,
    /// Set on a node that follows a shared store.
    feed: Option<Arc<crate::control::follow::FeedHealth>>,
    /// The resolver, for its counters (set once at start).
    resolver: std::sync::OnceLock<Arc<crate::dataplane::resolve::Resolver>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(published: Published, query_log: Option<Arc<crate::dataplane::querylog::QueryLog>>) -> Metrics {
        Metrics {
            totals: Mutex::new(Totals::default()),
            published,
            tcp_refused: AtomicU64::new(0),
            tcp_open: AtomicU64::new(0),
            rrl_slipped: AtomicU64::new(0),
            rrl_dropped: AtomicU64::new(0),
            source_slipped: AtomicU64::new(0),
            source_dropped: AtomicU64::new(0),
            udp_send_dropped: AtomicU64::new(0),
            requests_dropped: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            query_log,
            feed: None,
            resolver: std::sync::OnceLock::new(),
        }
    }

    /// Reports the resolver's counters too.
    pub fn set_resolver(&self, resolver: Arc<crate::dataplane::resolve::Resolver>) {
        let _ = self.resolver.set(resolver);
    }

    /// Reports how this node follows a shared store (metrics and `/ready`).
    pub fn with_feed(mut self, feed: Option<Arc<crate::control::follow::FeedHealth>>) -> Metrics {
        self.feed = feed;
        self
    }

    /// The body of `/ready`: the state, and on a node following a shared store, how it follows.
    fn ready_text(&self) -> String {
        let head = if self.is_ready() { "ready" } else { "not ready" };
        match &self.feed {
            Some(feed) => format!("{head}\n{}\n", feed.detail()),
            None => format!("{head}\n"),
        }
    }

    /// Serving (true) or not yet / no longer (false): what `/ready` says.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }

    fn merge(&self, local: &mut LocalMetrics, snapshot: &Snapshot) {
        let Ok(mut totals) = self.totals.lock() else { return };
        for (key, n) in local.queries.drain() {
            let (vpc, transport, rcode) = unpack(key);
            let vpc = vpc.and_then(|v| snapshot.vpcs.get(v as usize)).map(|v| v.id.0.clone());
            *totals.queries.entry((transport, rcode, vpc)).or_default() += n;
        }
        for (zone, n) in local.answers.drain() {
            if let Some(table) = snapshot.zones.get(zone as usize) {
                *totals.answers.entry((table.meter_id.clone(), table.meter_owner.clone())).or_default() += n;
            }
        }
        totals.unclassified += std::mem::take(&mut local.unclassified);
        totals.latencies.add(&std::mem::take(&mut local.latencies));
        let current = self.published.load();
        totals.prune(&current);
    }
}

/// The counts of one UDP thread or TCP connection, by the indexes of the snapshot they were taken under.
pub struct LocalMetrics {
    metrics: Arc<Metrics>,
    /// The snapshot the indexes below refer to (a new one flushes first).
    snapshot: Option<Arc<Snapshot>>,
    /// Fast-hashed: the keys are small integers of our own making, never chosen by a client.
    queries: HashMap<u64, u64, ahash::RandomState>,
    answers: HashMap<u32, u64, ahash::RandomState>,
    unclassified: u64,
    latencies: Latencies,
    last_flush: Instant,
}

impl LocalMetrics {
    pub fn new(metrics: Arc<Metrics>) -> LocalMetrics {
        LocalMetrics {
            metrics,
            snapshot: None,
            queries: HashMap::default(),
            answers: HashMap::default(),
            unclassified: 0,
            latencies: Latencies::default(),
            last_flush: Instant::now(),
        }
    }

    /// Counts one answered request, handled under `snapshot` in `duration`.
    pub fn record(&mut self, snapshot: &Arc<Snapshot>, outcome: &Outcome, transport: Transport, duration: Duration) {
        if !self.snapshot.as_ref().is_some_and(|held| Arc::ptr_eq(held, snapshot)) {
            self.flush();
            self.snapshot = Some(snapshot.clone());
        }
        *self.queries.entry(pack(outcome.vpc, transport, outcome.rcode)).or_default() += 1;
        if outcome.unclassified {
            self.unclassified += 1;
        }
        if let (Some(zone), Rcode::NoError | Rcode::NxDomain) = (outcome.zone, outcome.rcode) {
            *self.answers.entry(zone).or_default() += 1;
        }
        self.latencies.observe(duration);
        if self.last_flush.elapsed() >= LOCAL_FLUSH {
            self.flush();
        }
    }

    /// The shared metrics these counts go to.
    pub fn shared(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Hands the counts to the shared totals, and lets go of their snapshot: an idle thread must not keep a
    /// replaced snapshot (a whole generation of tables) alive.
    pub fn flush(&mut self) {
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
    (vpc, transport, RCODES[(key & 0x7f) as usize % RCODES.len()])
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// What one scrape encodes.
#[derive(Debug)]
struct Scrape(Arc<Metrics>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.0;
        let (queries, answers, unclassified, latencies) = match metrics.totals.lock() {
            Ok(t) => (t.queries.clone(), t.answers.clone(), t.unclassified, t.latencies.clone()),
            Err(_) => return Ok(()),
        };

        let mut family = encoder.encode_descriptor(
            "vpcdns_queries",
            "Queries answered, by transport, rcode and VPC (empty: the source is in no VPC)",
            None,
            MetricType::Counter,
        )?;
        for ((transport, rcode, vpc), n) in &queries {
            let labels = [
                ("transport", transport_name(*transport)),
                ("rcode", rcode.name()),
                ("vpc", vpc.as_deref().unwrap_or("")),
            ];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }

        let mut by_owner: HashMap<&str, u64> = HashMap::new();
        for ((_, owner), n) in &answers {
            *by_owner.entry(owner).or_default() += n;
        }
        let mut family = encoder.encode_descriptor(
            "vpcdns_owner_answers",
            "Answers (NOERROR, NODATA, NXDOMAIN) by the account that owns the zone: the billed party",
            None,
            MetricType::Counter,
        )?;
        for (owner, n) in &by_owner {
            ConstCounter::new(*n).encode(family.encode_family(&[("owner", *owner)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "vpcdns_zone_answers",
            "Answers (NOERROR, NODATA, NXDOMAIN) by zone, with the zone's owner",
            None,
            MetricType::Counter,
        )?;
        for ((zone, owner), n) in &answers {
            ConstCounter::new(*n).encode(family.encode_family(&[("zone", &**zone), ("owner", &**owner)])?)?;
        }

        counter(
            &mut encoder,
            "vpcdns_unclassified_queries",
            "Queries from sources in no VPC (answered REFUSED)",
            unclassified,
        )?;

        // Per bucket, not cumulative: the encoder accumulates; it writes the bound f64::MAX as +Inf.
        let buckets: Vec<(f64, u64)> =
            LATENCY_BOUNDS.iter().copied().chain([f64::MAX]).zip(latencies.buckets).collect();
        let mut family = encoder.encode_descriptor(
            "vpcdns_query_duration_seconds",
            "Time from receiving a query to its answer being ready, in the server",
            None,
            MetricType::Histogram,
        )?;
        family.encode_histogram::<Vec<(String, String)>>(latencies.sum_seconds, latencies.count(), &buckets, None)?;

        let snapshot = metrics.published.load();
        let records: usize = snapshot.zones.iter().map(|z| z.record_count).sum();
        gauge(
            &mut encoder,
            "vpcdns_snapshot_generation",
            "Generation of the snapshot being served",
            snapshot.generation as i64,
        )?;
        counter(&mut encoder, "vpcdns_snapshot_swaps", "Snapshots published since start", snapshot.generation)?;
        let last_swap = ConstGauge::new(snapshot.change_seconds);
        let help = "How long the change behind the snapshot took, from its start to the swap";
        last_swap.encode(encoder.encode_descriptor(
            "vpcdns_snapshot_last_swap_seconds",
            help,
            None,
            last_swap.metric_type(),
        )?)?;
        gauge(&mut encoder, "vpcdns_records", "Records loaded", records as i64)?;
        gauge(&mut encoder, "vpcdns_zones", "Zones loaded", snapshot.zones.len() as i64)?;
        gauge(&mut encoder, "vpcdns_vpcs", "VPCs loaded", snapshot.vpcs.len() as i64)?;

        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        gauge(&mut encoder, "vpcdns_tcp_connections_open", "Open TCP connections", load(&metrics.tcp_open) as i64)?;
        counter(
            &mut encoder,
            "vpcdns_tcp_connections_refused",
            "TCP connections refused by the connection caps",
            load(&metrics.tcp_refused),
        )?;
        let mut family = encoder.encode_descriptor(
            "vpcdns_rate_limited_responses",
            "UDP responses rate limiting truncated (slip) or dropped (drop)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&metrics.rrl_slipped)).encode(family.encode_family(&[("action", "slip")])?)?;
        ConstCounter::new(load(&metrics.rrl_dropped)).encode(family.encode_family(&[("action", "drop")])?)?;
        let mut family = encoder.encode_descriptor(
            "vpcdns_source_limited_queries",
            "UDP queries past their source address's query limit, answered truncated (slip) or not (drop)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&metrics.source_slipped)).encode(family.encode_family(&[("action", "slip")])?)?;
        ConstCounter::new(load(&metrics.source_dropped)).encode(family.encode_family(&[("action", "drop")])?)?;
        counter(
            &mut encoder,
            "vpcdns_udp_replies_dropped",
            "UDP replies the kernel did not take",
            load(&metrics.udp_send_dropped),
        )?;
        let help = "Requests dropped without an answer (responses, packets too short for a DNS header)";
        counter(&mut encoder, "vpcdns_requests_dropped", help, load(&metrics.requests_dropped))?;
        if let Some(log) = &metrics.query_log {
            let help = "Query log entries dropped because the writer was behind";
            counter(&mut encoder, "vpcdns_query_log_dropped", help, log.dropped())?;
        }
        if let Some(resolver) = metrics.resolver.get() {
            encode_resolver(&mut encoder, resolver)?;
        }
        if let Some(feed) = &metrics.feed {
            let help =
                "1 while the node follows the shared store, 0 while it cannot reach it (it serves its last state)";
            gauge(&mut encoder, "vpcdns_store_connected", help, i64::from(feed.connected()))?;
            let help = "The store revision this node's state is at";
            gauge(&mut encoder, "vpcdns_store_applied_revision", help, feed.applied() as i64)?;
            let help = "Times the node read the whole state again because the history it needed was compacted";
            counter(&mut encoder, "vpcdns_store_relists", help, feed.relists())?;
        }
        Ok(())
    }
}

/// Upstream queries, failures and latency per route (rule id or "upstreams"), and the cache's hits and misses.
fn encode_resolver(
    encoder: &mut DescriptorEncoder,
    resolver: &crate::dataplane::resolve::Resolver,
) -> Result<(), std::fmt::Error> {
    let clients = resolver.clients();
    let per_route = |encoder: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     value: &dyn Fn(&crate::dataplane::resolve::RouteClient) -> u64|
     -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for client in &clients {
            ConstCounter::new(value(client)).encode(family.encode_family(&[("route", &*client.label)])?)?;
        }
        Ok(())
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    per_route(encoder, "vpcdns_upstream_queries", "Queries sent to a route's servers (rule id, or upstreams)", &|c| {
        load(&c.queries)
    })?;
    per_route(
        encoder,
        "vpcdns_upstream_failures",
        "Queries a route's servers did not answer usably (timeouts, errors)",
        &|c| load(&c.failures),
    )?;
    let mut family = encoder.encode_descriptor(
        "vpcdns_upstream_latency_seconds",
        "Time spent waiting for a route's servers, summed (divide by vpcdns_upstream_queries_total)",
        None,
        MetricType::Counter,
    )?;
    for client in &clients {
        let seconds = load(&client.latency_micros) as f64 / 1e6;
        ConstCounter::new(seconds).encode(family.encode_family(&[("route", &*client.label)])?)?;
    }
    let counters = &resolver.counters;
    counter(
        encoder,
        "vpcdns_resolver_cache_hits",
        "Answers served from the resolver cache",
        load(&counters.cache_hits),
    )?;
    counter(
        encoder,
        "vpcdns_resolver_cache_misses",
        "Resolutions the cache could not answer",
        load(&counters.cache_misses),
    )?;
    counter(
        encoder,
        "vpcdns_resolver_busy",
        "Resolutions refused (SERVFAIL) because max_pending were in progress",
        load(&counters.busy),
    )?;
    gauge(encoder, "vpcdns_resolver_cache_entries", "Answers in the resolver cache", resolver.cache_len() as i64)
}

/// Where `[metrics]` listens unless `listen` says otherwise: loopback, CoreDNS's metrics port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9153";

/// Binds the metrics listener (an error names the address, so a taken port is reported at start-up).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `GET /metrics` (the Prometheus text format) and `GET /ready` (200 while serving, 503 before and while
/// shutting down) until the task is dropped.
pub async fn serve_http(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let scrape = |axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>| async move {
        match metrics.render() {
            Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], String::new()),
        }
    };
    let ready = |axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>| async move {
        let status = if metrics.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (status, metrics.ready_text())
    };
    let app = axum::Router::new().route("/metrics", get(scrape)).route("/ready", get(ready)).with_state(metrics);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
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
        let zone = "[[zones]]\nname = \"t.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
        let with_v1 = Arc::new(crate::testing::snapshot(zone));
        let published: Published = Arc::new(arc_swap::ArcSwap::new(with_v1.clone()));
        let metrics = Arc::new(Metrics::new(published.clone(), None));
        let mut local = LocalMetrics::new(metrics.clone());
        let outcome = Outcome {
            rcode: Rcode::NoError,
            vpc: Some(0),
            zone: Some(0),
            truncated: false,
            cookie_valid: false,
            unclassified: false,
        };
        local.record(&with_v1, &outcome, Transport::Udp, Duration::from_micros(20));
        local.flush();
        assert!(local.snapshot.is_none(), "a flush lets go of the snapshot");
        let text = metrics.render().expect("render");
        assert!(text.contains(r#"vpcdns_queries_total{transport="udp",rcode="NOERROR",vpc="v1"} 1"#), "{text}");
        assert!(text.contains(r#"vpcdns_zone_answers_total{zone="1/t.internal.",owner="1"} 1"#), "{text}");
        // The next generation has neither the VPC nor the zone.
        let mut state = crate::testing::state("", None);
        state.vpcs.clear();
        let mut compiler = crate::model::compile::Compiler::default();
        compiler.compile(&state);
        let empty = Arc::new(compiler.compile(&state));
        published.store(empty.clone());
        local.record(
            &empty,
            &Outcome { vpc: None, zone: None, unclassified: true, ..outcome },
            Transport::Tcp,
            Duration::ZERO,
        );
        local.flush();
        let text = metrics.render().expect("render");
        assert!(!text.contains(r#"vpc="v1""#) && !text.contains("t.internal."), "{text}");
        assert!(text.contains(r#"vpcdns_queries_total{transport="tcp",rcode="NOERROR",vpc=""} 1"#), "{text}");
        assert!(text.contains("vpcdns_unclassified_queries_total 1"), "{text}");
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
