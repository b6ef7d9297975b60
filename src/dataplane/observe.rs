//! The finish line: every answer — over UDP or TCP, private, from the resolver's cache or resolved later — ends in
//! one [`Recorder::finish`], which meters it (`metering`), counts it (`metrics`) and logs it (`querylog`). The shell
//! calls it once per answer sent; nothing else records answers.

use std::sync::Arc;

use crate::dataplane::metering::{LocalMeter, Meter};
use crate::dataplane::metrics::{Events, LocalMetrics, Metrics};
use crate::dataplane::querylog::QueryLog;
use crate::dataplane::respond::Exchange;
use crate::model::snapshot::Snapshot;

/// Where answers are recorded, each optional: the usage meter (managed mode), the counters, the query log.
#[derive(Clone, Default)]
pub(crate) struct Observers {
    pub meter: Option<Arc<Meter>>,
    pub metrics: Option<Arc<Metrics>>,
    pub query_log: Option<Arc<QueryLog>>,
}

impl Observers {
    /// The counters of rare events, when metrics are on.
    pub(crate) fn events(&self) -> Option<&Events> {
        self.metrics.as_deref().map(|m| &m.events)
    }
}

/// One UDP thread's, sender task's or TCP connection's recorder: its own meter and counters (no lock on the query
/// path), handed to the shared ones about once a second and when it is dropped.
pub(crate) struct Recorder {
    meter: Option<LocalMeter>,
    metrics: Option<LocalMetrics>,
    query_log: Option<Arc<QueryLog>>,
}

impl Recorder {
    pub(crate) fn new(observers: &Observers) -> Recorder {
        Recorder {
            meter: observers.meter.clone().map(LocalMeter::new),
            metrics: observers.metrics.clone().map(LocalMetrics::new),
            query_log: observers.query_log.clone(),
        }
    }

    /// Whether anything recorded needs the answer's latency (measuring it costs a clock read per answer).
    pub(crate) fn timed(&self) -> bool {
        self.metrics.is_some() || self.query_log.is_some()
    }

    /// Records one answer sent, answered under `snapshot` (the one the request was classified under).
    pub(crate) fn finish(&mut self, snapshot: &Arc<Snapshot>, exchange: &Exchange) {
        if let Some(meter) = &mut self.meter {
            meter.record(snapshot, &exchange.outcome);
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.record(snapshot, &exchange.outcome, exchange.transport, exchange.latency);
            if let Some(front_end) = exchange.front_end {
                metrics.relayed(snapshot, front_end);
            }
        }
        if let Some(log) = &self.query_log {
            log.record(snapshot, exchange);
        }
    }

    /// Hands what was counted to the shared meter and counters (and lets go of the snapshot they were taken under).
    pub(crate) fn flush(&mut self) {
        if let Some(meter) = &mut self.meter {
            meter.flush();
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.flush();
        }
    }
}
