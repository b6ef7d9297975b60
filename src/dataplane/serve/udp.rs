//! The UDP loop: one OS thread per SO_REUSEPORT socket, batch in → handle each → batch out, with reused buffers.
//!
//! A thread, not an async task: a busy DNS socket always has packets waiting, so readiness polling is pure
//! overhead; the thread blocks in `recvmmsg` and wakes with every queued datagram at once (see `batch`). The
//! snapshot is loaded once per batch. On a wildcard socket each packet's destination comes from IP_PKTINFO /
//! IPV6_PKTINFO: it is the listener the query is classified by, and the reply is sent from it (RFC 1123 §6.1.3.5).
//! A failed send drops that one response; nothing ends the loop but the stop flag or the socket failing.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::Batcher;
use super::bind::UdpListener;
use super::rrl::{Limiter, SourceLimiter, Verdict};
use super::Published;
use crate::dataplane::metering::LocalMeter;
use crate::dataplane::metrics::{LocalMetrics, Metrics};
use crate::dataplane::resolve::Reply;
use crate::dataplane::respond::{self, Handled};
use crate::dns::Transport;

/// How long a receive blocks before the loop looks at the stop flag (and flushes its counts).
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);

/// Everything a UDP thread shares with the rest of the server.
pub struct Shared {
    pub published: Published,
    pub observers: super::Observers,
    pub cookies: super::Cookies,
    pub limiter: Arc<Limiter>,
    /// The per-source query limit (see `rrl::SourceLimiter`).
    pub sources: Arc<SourceLimiter>,
    pub stop: Arc<AtomicBool>,
}

/// Starts the thread serving one UDP socket.
pub fn spawn(listener: UdpListener, shared: Shared, index: usize) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("udp-{index}")).spawn(move || serve(listener, shared))
}

/// Serves one UDP socket until `stop` is set or the socket fails.
fn serve(listener: UdpListener, shared: Shared) {
    let local = listener.local;
    let wildcard = listener.wildcard;
    // Shared with the resolver, which sends the answers it completes off the batch path.
    let socket = Arc::new(listener.socket);
    if let Err(e) = socket.set_nonblocking(false).and_then(|()| socket.set_read_timeout(Some(RECEIVE_TIMEOUT))) {
        tracing::error!(%local, error = %e, "cannot set up UDP socket");
        return;
    }
    let fd = socket.as_raw_fd();
    let mut batch = Batcher::new();
    let mut counter = shared.observers.meter.clone().map(LocalMeter::new);
    let mut stats = shared.observers.metrics.clone().map(LocalMetrics::new);
    let mut last_flush = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match batch.receive(fd, local, wildcard) {
            Ok(_) => answer_batch(&mut batch, &shared, &socket, wildcard, counter.as_mut(), stats.as_mut()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) || e.raw_os_error() == Some(libc::ENOTSOCK) => {
                tracing::error!(%local, error = %e, "UDP socket failed");
                return;
            }
            // Anything else (an ICMP error reported on the socket, ENOMEM) concerns one packet, not the socket.
            Err(e) => tracing::debug!(%local, error = %e, "UDP receive failed"),
        }
        let dropped = batch.send(fd);
        if dropped > 0 {
            tracing::debug!(%local, dropped, "UDP replies dropped by the kernel");
            if let Some(metrics) = &shared.observers.metrics {
                metrics.udp_send_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        // Counts reach the shared meter and metrics about once a second even when traffic stops.
        if last_flush.elapsed() >= Duration::from_secs(1) {
            counter.as_mut().map(LocalMeter::flush);
            stats.as_mut().map(LocalMetrics::flush);
            last_flush = Instant::now();
        }
    }
}

/// Answers every datagram of a batch into its reply slot and queues the replies to send.
fn answer_batch(
    batch: &mut Batcher,
    shared: &Shared,
    socket: &Arc<std::net::UdpSocket>,
    wildcard: bool,
    mut counter: Option<&mut LocalMeter>,
    mut stats: Option<&mut LocalMetrics>,
) {
    // Latency is counted from the batch's arrival: a datagram's wait behind the others in its batch is part of it.
    let arrived = Instant::now();
    let snapshot = shared.published.load();
    let keys = shared.cookies.load();
    for i in 0..batch.received.len() {
        let datagram = batch.received[i];
        let (packet, out) = batch.slot(i);
        let handled = respond::handle_query(
            packet,
            datagram.peer.ip(),
            datagram.local,
            Transport::Udp,
            &snapshot,
            Some(&keys),
            out,
        );
        // The per-source limit comes first: a source past it costs no resolution and gets no full answer.
        if let Handled::Answered(outcome) | Handled::Recurse(outcome, _) = &handled {
            let entry = outcome.vpc.and_then(|v| snapshot.vpcs.get(v as usize));
            let rate = entry.map_or(snapshot.query_limit, |v| v.query_limit);
            match shared.sources.check(datagram.peer.ip(), rate, arrived) {
                Verdict::Send => {}
                Verdict::Slip => {
                    count_limited(shared, true);
                    super::rrl::truncated_reply(packet, out);
                    batch.queue_reply(i, wildcard);
                    continue;
                }
                Verdict::Drop => {
                    count_limited(shared, false);
                    continue;
                }
            }
        }
        let outcome = match handled {
            Handled::Answered(outcome) => outcome,
            Handled::Dropped => {
                // Not a query we answer (a response, a packet too short for a header): dropped, as RFC 1035 allows.
                if let Some(metrics) = &shared.observers.metrics {
                    Metrics::count(&metrics.requests_dropped);
                }
                continue;
            }
            Handled::Recurse(outcome, job) => {
                let Some(resolver) = &shared.observers.resolver else {
                    let failed = respond::Resolved::failure(crate::dns::Ede { code: 22, text: "no resolver" });
                    let rcode = respond::encode_resolved(&job, &failed, 0, out).unwrap_or(crate::dns::Rcode::ServFail);
                    batch.queue_reply(i, wildcard);
                    let _ = rcode;
                    continue;
                };
                match resolver.answer_cached(&job, out) {
                    Some(rcode) => respond::Outcome { rcode, ..outcome },
                    None => {
                        // Resolved off the batch: the answer leaves from the resolver's task, and is counted there.
                        let reply =
                            Reply::Udp { socket: socket.clone(), peer: datagram.peer, local: datagram.local, wildcard };
                        resolver.submit(*job, reply);
                        continue;
                    }
                }
            }
        };
        if let Some(counter) = counter.as_deref_mut() {
            counter.record(&snapshot, &outcome);
        }
        let query_log = &shared.observers.query_log;
        if stats.is_some() || query_log.is_some() {
            let latency = arrived.elapsed();
            if let Some(stats) = stats.as_deref_mut() {
                stats.record(&snapshot, &outcome, Transport::Udp, latency);
            }
            if let Some(log) = query_log {
                log.record(&snapshot, packet, datagram.peer.ip(), &outcome, latency);
            }
        }
        if shared.limiter.enabled() {
            let verdict = shared.limiter.check(datagram.peer.ip(), outcome.cookie_valid, Instant::now());
            let counted = |pick: fn(&Metrics) -> &std::sync::atomic::AtomicU64| {
                if let Some(metrics) = &shared.observers.metrics {
                    pick(metrics).fetch_add(1, Ordering::Relaxed);
                }
            };
            match verdict {
                Verdict::Send => {}
                Verdict::Slip => {
                    counted(|m| &m.rrl_slipped);
                    super::rrl::truncate_in_place(out)
                }
                Verdict::Drop => {
                    counted(|m| &m.rrl_dropped);
                    continue;
                }
            }
        }
        batch.queue_reply(i, wildcard);
    }
}

/// Counts a query past its source's limit.
fn count_limited(shared: &Shared, slipped: bool) {
    if let Some(metrics) = &shared.observers.metrics {
        let counter = if slipped { &metrics.source_slipped } else { &metrics.source_dropped };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
