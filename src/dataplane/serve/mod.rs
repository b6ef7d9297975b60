//! The I/O shell around `respond::handle`: binding listeners, and the UDP and TCP loops.
//!
//! Each loop loads the current snapshot once per request from the shared [`Published`] handle (no lock), hands
//! the bytes to the pure handler and sends what it returns. Nothing here knows DNS beyond framing.

pub mod batch;
pub mod bind;
pub mod rrl;
pub mod tcp;
pub mod udp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::dataplane::metering::Meter;
use crate::dataplane::metrics::Metrics;
use crate::dns::cookie::CookieKeys;
use crate::model::snapshot::Snapshot;

/// What the query loops report to, each optional: the usage meter (store mode), metrics, the query log; and the
/// resolver that completes answers from outside the private zones.
#[derive(Clone, Default)]
pub struct Observers {
    pub meter: Option<Arc<Meter>>,
    pub metrics: Option<Arc<Metrics>>,
    pub query_log: Option<Arc<crate::dataplane::querylog::QueryLog>>,
    pub resolver: Option<Arc<crate::dataplane::resolve::Resolver>>,
}

/// The snapshot being served. Writers `store` a new one; readers `load` it per request.
pub type Published = Arc<ArcSwap<Snapshot>>;

pub use bind::{bind_all, Bound};

/// The DNS cookie secrets, rotated while serving.
pub type Cookies = Arc<ArcSwap<CookieKeys>>;

/// How often the cookie secret rotates (the previous one keeps validating for one more period).
const COOKIE_ROTATION: std::time::Duration = std::time::Duration::from_secs(3600);

/// How long a shutdown waits for TCP connections to finish the queries they are answering.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves every bound socket until `shutdown` turns true, then drains: UDP stops (each datagram is answered
/// in its batch, so none is half-done), TCP stops accepting, and open connections answer what they have read
/// and close; returns when they have, or after `DRAIN_DEADLINE`. With a meter, billable answers are counted.
pub async fn run(
    bound: Bound,
    published: Published,
    limits: tcp::TcpLimits,
    observers: Observers,
    rrl: crate::settings::RrlSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let limiter = Arc::new(rrl::Limiter::new(rrl));
    let sources = Arc::new(rrl::SourceLimiter::new(rrl.slip));
    let keys = match CookieKeys::random() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "no random source for DNS cookie secrets");
            return;
        }
    };
    let cookies: Cookies = Arc::new(ArcSwap::from_pointee(keys));
    let rotation = tokio::spawn(rotate_cookies(cookies.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (index, udp) in bound.udp.into_iter().enumerate() {
        let shared = udp::Shared {
            published: published.clone(),
            observers: observers.clone(),
            cookies: cookies.clone(),
            limiter: limiter.clone(),
            sources: sources.clone(),
            stop: stop.clone(),
        };
        match udp::spawn(udp, shared, index) {
            Ok(thread) => udp_threads.push(thread),
            Err(e) => tracing::error!(error = %e, "cannot start a UDP thread"),
        }
    }
    let mut tcp_tasks = tokio::task::JoinSet::new();
    for listener in bound.tcp {
        let args = (published.clone(), limits.clone(), observers.clone(), cookies.clone(), shutdown.clone());
        tcp_tasks.spawn(tcp::serve(listener, args.0, args.1, args.2, args.3, args.4));
    }
    let _ = shutdown.wait_for(|stop| *stop).await;
    // UDP threads finish the batch in hand and see the flag within one receive timeout.
    stop.store(true, Ordering::Relaxed);
    rotation.abort();
    let joined = tokio::task::spawn_blocking(move || udp_threads.into_iter().for_each(|t| drop(t.join())));
    while tcp_tasks.join_next().await.is_some() {}
    // Every open connection holds a permit: having them all back means every connection has closed.
    let all = limits.max_connections as u32;
    match tokio::time::timeout(DRAIN_DEADLINE, limits.connections.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained: every TCP connection closed"),
        Err(_) => tracing::warn!("drain deadline passed with TCP connections still open"),
    }
    let _ = joined.await;
}

async fn rotate_cookies(cookies: Cookies) {
    let mut ticks = tokio::time::interval(COOKIE_ROTATION);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match cookies.load().rotated() {
            Ok(next) => cookies.store(Arc::new(next)),
            Err(e) => tracing::error!(error = %e, "cookie secret not rotated"),
        }
    }
}
