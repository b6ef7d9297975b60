//! The UDP loop: one OS thread per SO_REUSEPORT socket, batch in → handle each → batch out, with reused buffers;
//! and beside each thread, a task that sends the answers the resolver completes later.
//!
//! A thread, not an async task: a busy DNS socket always has packets waiting, so readiness polling is pure
//! overhead; the thread blocks in `recvmmsg` and wakes with every queued datagram at once (see `batch`). The
//! snapshot is loaded once per batch. On a wildcard socket each packet's destination comes from IP_PKTINFO /
//! IPV6_PKTINFO: it is the listener the query is classified by, and the reply is sent from it (RFC 1123 §6.1.3.5).
//! Every answer sent — in the batch or later — passes the same rate limits and the same finish line. A failed send
//! drops that one response; nothing ends the loop but the stop flag or the socket failing.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::batch::Batcher;
use super::bind::UdpListener;
use super::rrl::{Limiter, SourceLimiter, Verdict};
use crate::dataplane::metrics::Events;
use crate::dataplane::observe::{Observers, Recorder};
use crate::dataplane::proxy;
use crate::dataplane::resolve::Resolver;
use crate::dataplane::respond::{
    self, encode_resolved, Context, Exchange, Handled, Outcome, RecurseJob, Request, Resolution,
};
use crate::dns::Transport;
use crate::model::identity::OwnedIdentity;
use crate::model::publish::SnapshotCell;
use crate::model::snapshot::Snapshot;

/// How long a receive blocks before the loop looks at the stop flag (and flushes its counts).
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);
/// How often counts reach the shared meter and metrics when traffic stops.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Everything a UDP thread shares with the rest of the server.
pub(crate) struct Shared {
    pub snapshots: SnapshotCell,
    pub observers: Observers,
    pub resolver: Arc<Resolver>,
    /// Where resolutions run (the server's runtime).
    pub runtime: tokio::runtime::Handle,
    pub cookies: super::Cookies,
    pub limiter: Arc<Limiter>,
    /// The per-source query limit (see `rrl::SourceLimiter`).
    pub sources: Arc<SourceLimiter>,
    pub stop: Arc<AtomicBool>,
}

/// Starts the thread serving one UDP socket, and its sender of later answers.
pub(crate) fn spawn(listener: UdpListener, shared: Shared, index: usize) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("udp-{index}")).spawn(move || serve(listener, shared))
}

/// A resolution finished off the batch: everything its answer needs.
struct Later {
    job: Box<RecurseJob>,
    resolution: Resolution,
    /// The snapshot the request was classified under (the job's indexes refer to it).
    snapshot: Arc<Snapshot>,
    /// Where the answer goes: the client, or the front end that relayed its query.
    peer: SocketAddr,
    local: SocketAddr,
    /// The client (behind a front end, the one its header named).
    client: std::net::IpAddr,
    /// The front end that relayed the query, if one did, and the identity it named (kept for the query log:
    /// the datagram's buffer is reused by then).
    front_end: Option<std::net::IpAddr>,
    identity: Option<OwnedIdentity>,
    arrived: Instant,
}

/// Serves one UDP socket until `stop` is set or the socket fails.
fn serve(listener: UdpListener, shared: Shared) {
    let local = listener.local;
    let wildcard = listener.wildcard;
    let socket = Arc::new(listener.socket);
    if let Err(e) = socket.set_nonblocking(false).and_then(|()| socket.set_read_timeout(Some(RECEIVE_TIMEOUT))) {
        tracing::error!(%local, error = %e, "cannot set up UDP socket");
        return;
    }
    let shared = Arc::new(shared);
    let (later_tx, later_rx) = mpsc::unbounded_channel();
    let sender = shared.runtime.spawn(send_later(socket.clone(), wildcard, later_rx, shared.clone()));
    let fd = socket.as_raw_fd();
    let mut batch = Batcher::new();
    let mut recorder = Recorder::new(&shared.observers);
    let mut last_flush = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match batch.receive(fd, local, wildcard) {
            Ok(_) => answer_batch(&mut batch, &shared, wildcard, &mut recorder, &later_tx),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) || e.raw_os_error() == Some(libc::ENOTSOCK) => {
                tracing::error!(%local, error = %e, "UDP socket failed");
                break;
            }
            // Anything else (an ICMP error reported on the socket, ENOMEM) concerns one packet, not the socket.
            Err(e) => tracing::debug!(%local, error = %e, "UDP receive failed"),
        }
        let dropped = batch.send(fd);
        if dropped > 0 {
            tracing::debug!(%local, dropped, "UDP replies dropped by the kernel");
            if let Some(events) = shared.observers.events() {
                events.udp_send_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            recorder.flush();
            last_flush = Instant::now();
        }
    }
    // Resolutions still running finish into a closed channel; the sender ends when the last sender is gone.
    drop(later_tx);
    drop(sender);
}

/// Answers every datagram of a batch into its reply slot and queues the replies to send.
fn answer_batch(
    batch: &mut Batcher,
    shared: &Shared,
    wildcard: bool,
    recorder: &mut Recorder,
    later: &mpsc::UnboundedSender<Later>,
) {
    // Latency is counted from the batch's arrival: a datagram's wait behind the others in its batch is part of it.
    let arrived = Instant::now();
    let snapshot = shared.snapshots.load();
    let keys = shared.cookies.load();
    let cx = Context { snapshot: &snapshot, cookies: Some(&keys), now: super::unix_seconds() };
    let round = Round { shared, snapshot: &snapshot, cx, arrived, later };
    for i in 0..batch.received.len() {
        let datagram = batch.received[i];
        let (raw, out) = batch.slot(i);
        if round.answer(datagram.peer, datagram.local, raw, out, recorder) {
            batch.queue_reply(i, wildcard);
        }
    }
}

/// What every datagram of one batch is answered with.
struct Round<'a> {
    shared: &'a Shared,
    snapshot: &'a Arc<Snapshot>,
    cx: Context<'a>,
    arrived: Instant,
    later: &'a mpsc::UnboundedSender<Later>,
}

impl Round<'_> {
    /// Answers one datagram from `peer` to `local` into `out`; whether a reply is to be sent now.
    fn answer(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        raw: &[u8],
        out: &mut Vec<u8>,
        recorder: &mut Recorder,
    ) -> bool {
        let (shared, snapshot) = (self.shared, self.snapshot);
        // A trusted front end's PROXY v2 header says who the client is; the reply still goes to the front end.
        let relayed = match proxy::relay(snapshot.classifier(), local, peer.ip(), raw) {
            Ok(relayed) => relayed,
            Err(dropped) => {
                count(shared, |e| &e.proxy_dropped[dropped.index()]);
                return false;
            }
        };
        let packet = relayed.query;
        let request =
            Request { packet, source: relayed.client, local, transport: Transport::Udp, identity: relayed.identity };
        let handled = respond::handle(&request, &self.cx, out);
        // The per-source limit comes first: a source past it costs no resolution and gets no full answer.
        if let Some(verdict) = handled.pending().and_then(|outcome| self.limited(outcome, request.source, packet, out))
        {
            return verdict;
        }
        let outcome = match handled {
            Handled::Answered(outcome) => outcome,
            Handled::Dropped => {
                // Not a query we answer (a response, a packet too short for a header): dropped, as RFC 1035 allows.
                count(shared, |e| &e.requests_dropped);
                return false;
            }
            Handled::Recurse(job) => match shared.resolver.cached(&job, snapshot) {
                Some(resolution) => encode_resolved(&job, &resolution, out),
                None => {
                    let (front_end, identity) = (relayed.front_end, relayed.identity.map(|i| i.to_owned()));
                    let to = Addressed { peer, local, client: request.source, front_end, identity };
                    resolve_later(shared, job, Arc::clone(snapshot), to, self.arrived, self.later);
                    return false;
                }
            },
        };
        let latency = if recorder.timed() { self.arrived.elapsed() } else { Duration::ZERO };
        let exchange = Exchange {
            packet,
            source: request.source,
            front_end: relayed.front_end,
            identity: relayed.identity,
            transport: Transport::Udp,
            outcome,
            latency,
        };
        deliver(shared, recorder, snapshot, &exchange, out)
    }

    /// The per-source query limit at the VPC's rate: `None` when the source is within it; else whether to send
    /// what is in `out` (a truncated reply, on a slip).
    fn limited(&self, outcome: &Outcome, source: std::net::IpAddr, packet: &[u8], out: &mut Vec<u8>) -> Option<bool> {
        let snapshot = self.snapshot;
        let entry = outcome.vpc.and_then(|v| snapshot.vpcs().get(v as usize));
        let rate = entry.map_or(snapshot.query_limit(), |v| v.query_limit);
        match self.shared.sources.check(source, rate, self.arrived) {
            Verdict::Send => None,
            Verdict::Slip => {
                count(self.shared, |e| &e.source_slipped);
                super::rrl::truncated_reply(packet, out);
                Some(true)
            }
            Verdict::Drop => {
                count(self.shared, |e| &e.source_dropped);
                Some(false)
            }
        }
    }
}

/// Where a later answer goes, and for whom.
struct Addressed {
    peer: SocketAddr,
    local: SocketAddr,
    client: std::net::IpAddr,
    front_end: Option<std::net::IpAddr>,
    identity: Option<OwnedIdentity>,
}

/// Resolves a job off the batch; its answer goes to the socket's sender of later answers.
fn resolve_later(
    shared: &Shared,
    job: Box<RecurseJob>,
    snapshot: Arc<Snapshot>,
    to: Addressed,
    arrived: Instant,
    later: &mpsc::UnboundedSender<Later>,
) {
    let resolver = shared.resolver.clone();
    let later = later.clone();
    shared.runtime.spawn(async move {
        let resolution = resolver.complete(&job, &snapshot).await;
        // A closed channel means the server is stopping: the answer is dropped, as a datagram may be.
        let Addressed { peer, local, client, front_end, identity } = to;
        let _ = later.send(Later { job, resolution, snapshot, peer, local, client, front_end, identity, arrived });
    });
}

/// Sends the answers of resolutions that finished off the batch, through the same limits and finish line.
async fn send_later(
    socket: Arc<UdpSocket>,
    wildcard: bool,
    mut later: mpsc::UnboundedReceiver<Later>,
    shared: Arc<Shared>,
) {
    let mut recorder = Recorder::new(&shared.observers);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut out = Vec::with_capacity(512);
    loop {
        let done = tokio::select! {
            done = later.recv() => done,
            _ = flush.tick() => {
                recorder.flush();
                continue;
            }
        };
        let Some(done) = done else { break };
        let outcome = encode_resolved(&done.job, &done.resolution, &mut out);
        let latency = done.arrived.elapsed();
        let exchange = Exchange {
            packet: &done.job.packet,
            source: done.client,
            front_end: done.front_end,
            identity: done.identity.as_ref().map(OwnedIdentity::borrow),
            transport: Transport::Udp,
            outcome,
            latency,
        };
        if !deliver(&shared, &mut recorder, &done.snapshot, &exchange, &mut out) {
            continue;
        }
        // One datagram, sent at once: a UDP send does not block for long, and a lost one is the client's to retry.
        let sent = if wildcard {
            super::batch::send_from(&socket, &out, done.peer, done.local)
        } else {
            socket.send_to(&out, done.peer).map(|_| ())
        };
        if let Err(e) = sent {
            tracing::debug!(peer = %done.peer, error = %e, "a resolved answer could not be sent");
        }
    }
    recorder.flush();
}

/// Records an answer and applies response rate limiting to it (which may truncate `out`). Returns whether to send
/// it.
fn deliver(
    shared: &Shared,
    recorder: &mut Recorder,
    snapshot: &Arc<Snapshot>,
    exchange: &Exchange,
    out: &mut Vec<u8>,
) -> bool {
    recorder.finish(snapshot, exchange);
    if !shared.limiter.enabled() {
        return true;
    }
    match shared.limiter.check(exchange.source, exchange.outcome.cookie_valid, Instant::now()) {
        Verdict::Send => true,
        Verdict::Slip => {
            count(shared, |e| &e.rrl_slipped);
            super::rrl::truncate_in_place(out);
            true
        }
        Verdict::Drop => {
            count(shared, |e| &e.rrl_dropped);
            false
        }
    }
}

/// Counts a rare event, when metrics are on.
fn count(shared: &Shared, pick: impl Fn(&Events) -> &std::sync::atomic::AtomicU64) {
    if let Some(events) = shared.observers.events() {
        Events::count(pick(events));
    }
}
