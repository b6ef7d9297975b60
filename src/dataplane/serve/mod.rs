//! The I/O shell around `respond::handle`: binding listeners, the UDP and TCP loops, and the only code that sends.
//!
//! Each loop loads the current snapshot from the shared `SnapshotCell` (no lock), hands the request to the pure
//! handler, completes names that resolve outside the private zones through the resolver, sends every answer
//! itself, and records each one answer at the finish line (`observe::Recorder::finish`). Nothing here knows DNS
//! beyond framing.

pub(crate) mod batch;
pub(crate) mod bind;
pub(crate) mod rrl;
pub(crate) mod tcp;
pub(crate) mod udp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::dataplane::observe::Observers;
use crate::dataplane::resolve::Resolver;
use crate::dns::cookie::CookieKeys;
use crate::model::publish::SnapshotCell;

pub(crate) use bind::{bind_all, Bound};

/// The DNS cookie secrets, rotated while serving.
pub(crate) type Cookies = Arc<ArcSwap<CookieKeys>>;

/// How often the cookie secret rotates (the previous one keeps validating for one more period).
const COOKIE_ROTATION: std::time::Duration = std::time::Duration::from_secs(3600);

/// How long a shutdown waits for TCP connections to finish the queries they are answering.
pub(crate) const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the loops serve with: the snapshot, where answers are recorded, the resolver, the TCP bounds and RRL.
pub(crate) struct Service {
    pub snapshots: SnapshotCell,
    pub observers: Observers,
    pub resolver: Arc<Resolver>,
    pub tcp: tcp::TcpLimits,
    pub rrl: crate::settings::RrlSettings,
}

/// Serves every bound socket until `shutdown` turns true, then drains: UDP stops (each datagram is answered
/// in its batch, so none is half-done), TCP stops accepting, and open connections answer what they have read
/// and close; returns when they have, or after `DRAIN_DEADLINE`.
pub(crate) async fn run(bound: Bound, service: Service, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let limiter = Arc::new(rrl::Limiter::new(service.rrl));
    let sources = Arc::new(rrl::SourceLimiter::new(service.rrl.slip));
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
            snapshots: service.snapshots.clone(),
            observers: service.observers.clone(),
            resolver: service.resolver.clone(),
            runtime: tokio::runtime::Handle::current(),
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
    let limits = service.tcp.clone();
    let tcp_shared = tcp::TcpShared {
        snapshots: service.snapshots,
        limits: service.tcp,
        observers: service.observers,
        resolver: service.resolver,
        cookies: cookies.clone(),
    };
    let mut tcp_tasks = tokio::task::JoinSet::new();
    for listener in bound.tcp {
        tcp_tasks.spawn(tcp::serve(listener, tcp_shared.clone(), shutdown.clone()));
    }
    let _ = shutdown.wait_for(|stop| *stop).await;
    // UDP threads finish the batch in hand and see the flag within one receive timeout.
    stop.store(true, Ordering::Relaxed);
    rotation.abort();
    let joined = tokio::task::spawn_blocking(move || udp_threads.into_iter().for_each(|t| drop(t.join())));
    while tcp_tasks.join_next().await.is_some() {}
    // Every open connection holds a permit: having them all back means every connection has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(DRAIN_DEADLINE, limits.connections.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained: every TCP connection closed"),
        Err(_) => tracing::warn!("drain deadline passed with TCP connections still open"),
    }
    let _ = joined.await;
}

/// Now, in Unix seconds: the time server cookies are stamped with.
fn unix_seconds() -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
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
