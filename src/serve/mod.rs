//! The I/O shell around `respond::handle`: binding listeners, and the UDP and TCP loops.
//!
//! Each loop loads the current snapshot once per request from the shared [`Published`] handle (no lock), hands
//! the bytes to the pure handler and sends what it returns. Nothing here knows DNS beyond framing.

pub mod bind;
pub mod tcp;
pub mod udp;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::metering::Meter;
use crate::snapshot::Snapshot;

/// The snapshot being served. Writers `store` a new one; readers `load` it per request.
pub type Published = Arc<ArcSwap<Snapshot>>;

pub use bind::{bind_all, Bound};

/// Serves every bound socket until the process ends. With a meter, billable answers are counted.
pub async fn run(bound: Bound, published: Published, limits: tcp::TcpLimits, meter: Option<Arc<Meter>>) {
    let mut tasks = tokio::task::JoinSet::new();
    for udp in bound.udp {
        tasks.spawn(udp::serve(udp, published.clone(), meter.clone()));
    }
    for listener in bound.tcp {
        tasks.spawn(tcp::serve(listener, published.clone(), limits.clone(), meter.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "a listener task ended unexpectedly");
        }
    }
}
