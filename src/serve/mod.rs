//! The I/O shell around `respond::handle`: binding listeners, and the UDP and TCP loops.
//!
//! Each loop loads the current snapshot once per request from the shared [`Published`] handle (no lock), hands
//! the bytes to the pure handler and sends what it returns. Nothing here knows DNS beyond framing.

pub mod bind;
pub mod rrl;
pub mod tcp;
pub mod udp;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cookie::CookieKeys;
use crate::metering::Meter;
use crate::snapshot::Snapshot;

/// The snapshot being served. Writers `store` a new one; readers `load` it per request.
pub type Published = Arc<ArcSwap<Snapshot>>;

pub use bind::{bind_all, Bound};

/// The DNS cookie secrets, rotated while serving.
pub type Cookies = Arc<ArcSwap<CookieKeys>>;

/// How often the cookie secret rotates (the previous one keeps validating for one more period).
const COOKIE_ROTATION: std::time::Duration = std::time::Duration::from_secs(3600);

/// Serves every bound socket until the process ends. With a meter, billable answers are counted.
pub async fn run(
    bound: Bound,
    published: Published,
    limits: tcp::TcpLimits,
    meter: Option<Arc<Meter>>,
    rrl: crate::state::RrlSettings,
) {
    let limiter = Arc::new(rrl::Limiter::new(rrl));
    let keys = match CookieKeys::random() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "no random source for DNS cookie secrets");
            return;
        }
    };
    let cookies: Cookies = Arc::new(ArcSwap::from_pointee(keys));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(rotate_cookies(cookies.clone()));
    for udp in bound.udp {
        tasks.spawn(udp::serve(udp, published.clone(), meter.clone(), cookies.clone(), limiter.clone()));
    }
    for listener in bound.tcp {
        tasks.spawn(tcp::serve(listener, published.clone(), limits.clone(), meter.clone(), cookies.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "a listener task ended unexpectedly");
        }
    }
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
