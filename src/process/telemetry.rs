//! The Prometheus exporter and the readiness endpoint: `GET /metrics` and `GET /ready` on `[metrics] listen`.
//!
//! Built by `daemon` from what it is handed: the data plane's counters, the snapshot being served, and — when they
//! exist — the query log, the resolver and the store feed. A scrape reads each through a plain-struct accessor and
//! encodes them with `prometheus-client`, so the text format is the exporter crate's, not ours. The query path
//! never waits for a scrape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::control::follow::FeedHealth;
use crate::dataplane::metrics::{Events, Metrics, Totals, LATENCY_BOUNDS};
use crate::dataplane::proxy::Dropped;
use crate::dataplane::querylog::QueryLog;
use crate::dataplane::resolve::{Resolver, ResolverStats, RouteStats};
use crate::dns::Transport;
use crate::model::publish::SnapshotCell;

/// What the exporter reads.
pub(crate) struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub snapshots: SnapshotCell,
    pub query_log: Option<Arc<QueryLog>>,
    pub resolver: Option<Arc<Resolver>>,
    /// Set on a node that follows a shared store.
    pub feed: Option<Arc<FeedHealth>>,
    ready: AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        snapshots: SnapshotCell,
        query_log: Option<Arc<QueryLog>>,
        resolver: Option<Arc<Resolver>>,
        feed: Option<Arc<FeedHealth>>,
    ) -> Telemetry {
        Telemetry { metrics, snapshots, query_log, resolver, feed, ready: AtomicBool::new(false) }
    }

    /// Serving (true) or not yet / no longer (false): what `/ready` says.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// What `/ready` answers: serving and, on a node following a shared store, not staler than allowed; the body
    /// says the state and how the node follows the store.
    fn readiness(&self) -> (bool, String) {
        let stale = self.feed.as_ref().and_then(|feed| feed.fresh().err());
        let ready = self.is_ready() && stale.is_none();
        let head = if ready { "ready" } else { "not ready" };
        match (&self.feed, stale) {
            (Some(_), Some(why)) => (ready, format!("{head}\n{why}\n")),
            (Some(feed), None) => (ready, format!("{head}\n{}\n", feed.detail())),
            (None, _) => (ready, format!("{head}\n")),
        }
    }

    /// The Prometheus text exposition of everything.
    pub(crate) fn render(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// What one scrape encodes.
#[derive(Debug)]
struct Scrape(Arc<Telemetry>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let telemetry = &self.0;
        let totals = telemetry.metrics.totals();
        encode_queries(&mut encoder, &totals)?;
        encode_snapshot(&mut encoder, &telemetry.snapshots)?;
        encode_events(&mut encoder, &telemetry.metrics.events)?;
        if let Some(log) = &telemetry.query_log {
            let help = "Query log entries dropped because the writer was behind";
            counter(&mut encoder, "vpcdns_query_log_dropped", help, log.dropped())?;
        }
        if let Some(resolver) = &telemetry.resolver {
            encode_resolver(&mut encoder, &resolver.stats())?;
        }
        if let Some(feed) = &telemetry.feed {
            encode_feed(&mut encoder, feed)?;
        }
        Ok(())
    }
}

/// Queries by transport, rcode and VPC; billed answers by owner and by zone; the latency histogram.
fn encode_queries(encoder: &mut DescriptorEncoder, totals: &Totals) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "vpcdns_queries",
        "Queries answered, by transport, rcode and VPC (empty: the source is in no VPC)",
        None,
        MetricType::Counter,
    )?;
    for ((transport, rcode, vpc), n) in &totals.queries {
        let labels =
            [("transport", transport_name(*transport)), ("rcode", rcode.name()), ("vpc", vpc.as_deref().unwrap_or(""))];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    let mut by_owner: HashMap<&str, u64> = HashMap::new();
    for ((_, owner, _), n) in &totals.answers {
        *by_owner.entry(owner).or_default() += n;
    }
    let mut family = encoder.encode_descriptor(
        "vpcdns_owner_answers",
        "Answers (NOERROR, NODATA, NXDOMAIN) by the billed account: a zone's or rule's owner, or for the upstreams \
         the asking VPC's own account",
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
    for ((item, owner, kind), n) in &totals.answers {
        if *kind == crate::model::billing::UsageKind::Zone {
            ConstCounter::new(*n).encode(family.encode_family(&[("zone", &**item), ("owner", &**owner)])?)?;
        }
    }
    let help = "Queries relayed by front ends (PROXY v2), by the [server] proxy_from prefix they came from";
    let mut family = encoder.encode_descriptor("vpcdns_relayed_queries", help, None, MetricType::Counter)?;
    for (front_end, n) in &totals.relayed {
        ConstCounter::new(*n).encode(family.encode_family(&[("front_end", front_end.as_str())])?)?;
    }
    let help = "Queries from sources in no VPC (answered REFUSED)";
    counter(encoder, "vpcdns_unclassified_queries", help, totals.unclassified)?;
    // Per bucket, not cumulative: the encoder accumulates; it writes the bound f64::MAX as +Inf.
    let latencies = &totals.latencies;
    let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS.iter().copied().chain([f64::MAX]).zip(latencies.buckets).collect();
    let mut family = encoder.encode_descriptor(
        "vpcdns_query_duration_seconds",
        "Time from receiving a query to its answer being ready, in the server",
        None,
        MetricType::Histogram,
    )?;
    family.encode_histogram::<Vec<(String, String)>>(latencies.sum_seconds, latencies.count(), &buckets, None)
}

/// What is loaded: the snapshot's generation, the time its change took, and its inventory.
fn encode_snapshot(encoder: &mut DescriptorEncoder, snapshots: &SnapshotCell) -> Result<(), std::fmt::Error> {
    let snapshot = snapshots.load();
    let records: usize = snapshot.zones().iter().map(|z| z.record_count()).sum();
    let generation = i64::try_from(snapshot.generation()).unwrap_or(i64::MAX);
    gauge(encoder, "vpcdns_snapshot_generation", "Generation of the snapshot being served", generation)?;
    counter(encoder, "vpcdns_snapshot_swaps", "Snapshots published since start", snapshot.generation())?;
    let last_swap = ConstGauge::new(snapshot.change_seconds());
    let help = "How long the change behind the snapshot took, from its start to the swap";
    last_swap.encode(encoder.encode_descriptor(
        "vpcdns_snapshot_last_swap_seconds",
        help,
        None,
        last_swap.metric_type(),
    )?)?;
    gauge(encoder, "vpcdns_records", "Records loaded", count(records))?;
    gauge(encoder, "vpcdns_zones", "Zones loaded", count(snapshot.zones().len()))?;
    gauge(encoder, "vpcdns_vpcs", "VPCs loaded", count(snapshot.vpcs().len()))
}

/// The rare events the query loops count as they happen.
fn encode_events(encoder: &mut DescriptorEncoder, events: &Events) -> Result<(), std::fmt::Error> {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let open = i64::try_from(load(&events.tcp_open)).unwrap_or(i64::MAX);
    gauge(encoder, "vpcdns_tcp_connections_open", "Open TCP connections", open)?;
    let help = "TCP connections refused by the connection caps";
    counter(encoder, "vpcdns_tcp_connections_refused", help, load(&events.tcp_refused))?;
    let help = "UDP responses rate limiting truncated (slip) or dropped (drop)";
    by_action(encoder, "vpcdns_rate_limited_responses", help, load(&events.rrl_slipped), load(&events.rrl_dropped))?;
    let help = "UDP queries past their source address's query limit, answered truncated (slip) or not (drop)";
    let (slipped, dropped) = (load(&events.source_slipped), load(&events.source_dropped));
    by_action(encoder, "vpcdns_source_limited_queries", help, slipped, dropped)?;
    let help = "UDP replies the kernel did not take";
    counter(encoder, "vpcdns_udp_replies_dropped", help, load(&events.udp_send_dropped))?;
    let help = "Requests dropped without an answer (responses, packets too short for a DNS header)";
    counter(encoder, "vpcdns_requests_dropped", help, load(&events.requests_dropped))?;
    let help = "Datagrams and TCP connections dropped before their query was read: a trusted front end's PROXY v2 \
                header missing or malformed (by cause), or a client on a listener for front ends only";
    let mut family = encoder.encode_descriptor("vpcdns_proxy_dropped", help, None, MetricType::Counter)?;
    for dropped in Dropped::ALL {
        let n = load(&events.proxy_dropped[dropped.index()]);
        ConstCounter::new(n).encode(family.encode_family(&[("cause", dropped.label())])?)?;
    }
    Ok(())
}

fn by_action(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    slipped: u64,
    dropped: u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(slipped).encode(family.encode_family(&[("action", "slip")])?)?;
    ConstCounter::new(dropped).encode(family.encode_family(&[("action", "drop")])?)
}

/// A counter family with one series per route, labelled by the route.
fn per_route<N: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    routes: &[RouteStats],
    value: impl Fn(&RouteStats) -> N,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for route in routes {
        ConstCounter::new(value(route)).encode(family.encode_family(&[("route", &*route.label)])?)?;
    }
    Ok(())
}

/// Upstream queries, failures and latency per route (rule id or "upstreams"), and the cache's hits and misses.
fn encode_resolver(encoder: &mut DescriptorEncoder, stats: &ResolverStats) -> Result<(), std::fmt::Error> {
    let routes = &stats.routes;
    let help = "Queries sent to a route's servers (rule id, or upstreams)";
    per_route(encoder, "vpcdns_upstream_queries", help, routes, |r| r.queries)?;
    let help = "Queries a route's servers did not answer usably (timeouts, errors)";
    per_route(encoder, "vpcdns_upstream_failures", help, routes, |r| r.failures)?;
    let help = "Time spent waiting for a route's servers, summed (divide by vpcdns_upstream_queries_total)";
    per_route(encoder, "vpcdns_upstream_latency_seconds", help, routes, |r| r.latency_seconds)?;
    counter(encoder, "vpcdns_resolver_cache_hits", "Answers served from the resolver cache", stats.cache_hits)?;
    let help = "Resolutions the cache could not answer";
    counter(encoder, "vpcdns_resolver_cache_misses", help, stats.cache_misses)?;
    let help = "Resolutions refused (SERVFAIL) because max_pending were in progress";
    counter(encoder, "vpcdns_resolver_busy", help, stats.busy)?;
    gauge(encoder, "vpcdns_resolver_cache_entries", "Answers in the resolver cache", count(stats.cache_entries))
}

/// How this node follows a shared store.
fn encode_feed(encoder: &mut DescriptorEncoder, feed: &FeedHealth) -> Result<(), std::fmt::Error> {
    let help = "1 while the node follows the shared store, 0 while it cannot reach it (it serves its last state)";
    gauge(encoder, "vpcdns_store_connected", help, i64::from(feed.connected()))?;
    let help = "The store revision this node's state is at";
    gauge(encoder, "vpcdns_store_applied_revision", help, i64::try_from(feed.applied()).unwrap_or(i64::MAX))?;
    let help = "Seconds since the store was last heard from (a change, a progress notice); past [store] \
                max_staleness_s /ready says not ready";
    let mut family = encoder.encode_descriptor("vpcdns_store_staleness_seconds", help, None, MetricType::Gauge)?;
    ConstGauge::new(feed.stale_for().as_secs_f64()).encode(family.encode_family::<[(&str, &str); 0]>(&[])?)?;
    let help = "Times the node read the whole state again because the history it needed was compacted";
    counter(encoder, "vpcdns_store_relists", help, feed.relists())
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// Binds the metrics listener (an error names the address, so a taken port is reported at start-up).
pub(crate) async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `GET /metrics` (the Prometheus text format) and `GET /ready` (200 while serving, 503 before and while
/// shutting down) until the task is dropped.
pub(crate) async fn serve_http(listener: tokio::net::TcpListener, telemetry: Arc<Telemetry>) {
    use axum::extract::State;
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let scrape = |State(telemetry): State<Arc<Telemetry>>| async move {
        match telemetry.render() {
            Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], String::new()),
        }
    };
    let ready = |State(telemetry): State<Arc<Telemetry>>| async move {
        let (ready, text) = telemetry.readiness();
        (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, text)
    };
    let app = axum::Router::new().route("/metrics", get(scrape)).route("/ready", get(ready)).with_state(telemetry);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_shows_what_was_counted_and_what_is_loaded() {
        let (snapshots, metrics, _) = crate::testing::one_answer_counted();
        let telemetry = Arc::new(Telemetry::new(metrics.clone(), snapshots, None, None, None));
        Events::count(&metrics.events.tcp_refused);
        let text = telemetry.render().expect("render");
        for line in [
            r#"vpcdns_queries_total{transport="udp",rcode="NOERROR",vpc="v1"} 1"#,
            r#"vpcdns_zone_answers_total{zone="1/t.internal.",owner="1"} 1"#,
            r#"vpcdns_owner_answers_total{owner="1"} 1"#,
            "vpcdns_tcp_connections_refused_total 1",
            "vpcdns_zones 1",
            "vpcdns_query_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!telemetry.is_ready());
        telemetry.set_ready(true);
        assert_eq!(telemetry.readiness(), (true, "ready\n".to_string()));
    }
}
