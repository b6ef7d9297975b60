//! The TCP loop: accept with a connection cap, then per connection read length-prefixed queries and answer each
//! (RFC 1035 §4.2.2, several queries per connection per RFC 7766), with idle, read and write deadlines so that a
//! slow or silent client only ever costs its own connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::dataplane::metrics::{Events, Metrics};
use crate::dataplane::observe::{Observers, Recorder};
use crate::dataplane::proxy::{self, Dropped};
use crate::dataplane::resolve::Resolver;
use crate::dataplane::respond::{self, encode_resolved, Context, Exchange, Handled, Outcome, Request};
use crate::dns::Transport;
use crate::model::classify::Sender;
use crate::model::identity::Identity;
use crate::model::publish::SnapshotCell;
use crate::model::snapshot::Snapshot;

/// Bounds on TCP clients.
#[derive(Clone)]
pub(crate) struct TcpLimits {
    /// Connections open at once, over all TCP listeners; more are closed on accept.
    pub connections: Arc<Semaphore>,
    /// The semaphore's size.
    pub max_connections: usize,
    /// How long a connection may wait for its next query (RFC 7766 §6.2.3 suggests seconds).
    pub idle: Duration,
    /// How long one message may take to arrive once its length has.
    pub read: Duration,
    /// How long a response may take to be written.
    pub write: Duration,
    /// Connections open at once from one /24 (IPv4) or /56 (IPv6): one network cannot take every slot.
    pub per_prefix: usize,
    per_prefix_open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits::new(&crate::settings::TcpSettings::default())
    }
}

impl TcpLimits {
    /// The TCP bounds `[limits]` configures; read and write deadlines are fixed at 5 s.
    pub(crate) fn new(settings: &crate::settings::TcpSettings) -> TcpLimits {
        TcpLimits {
            connections: Arc::new(Semaphore::new(settings.connections)),
            max_connections: settings.connections,
            idle: settings.idle,
            read: Duration::from_secs(5),
            write: Duration::from_secs(5),
            per_prefix: settings.connections_per_network,
            per_prefix_open: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// The /24 or /56 a client address belongs to.
fn client_prefix(ip: IpAddr) -> IpAddr {
    match crate::model::classify::normalize_ip(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xFFFF_FF00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 72) - 1))),
    }
}

/// A connection's slot in its prefix's count, released on drop.
struct PrefixSlot {
    prefix: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PrefixSlot {
    fn take(limits: &TcpLimits, ip: IpAddr) -> Option<PrefixSlot> {
        let prefix = client_prefix(ip);
        let mut open = limits.per_prefix_open.lock().ok()?;
        let count = open.entry(prefix).or_default();
        if *count >= limits.per_prefix {
            return None;
        }
        *count += 1;
        Some(PrefixSlot { prefix, open: limits.per_prefix_open.clone() })
    }
}

impl Drop for PrefixSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(count) = open.get_mut(&self.prefix) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&self.prefix);
                }
            }
        }
    }
}

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct TcpShared {
    pub snapshots: SnapshotCell,
    pub limits: TcpLimits,
    pub observers: Observers,
    pub resolver: Arc<Resolver>,
    pub cookies: super::Cookies,
}

/// Accepts connections until the listener fails or `shutdown` turns true.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    shared: TcpShared,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let refused = |why: &str, peer: SocketAddr| {
        tracing::debug!(%peer, "TCP connection refused: {why}");
        if let Some(events) = shared.observers.events() {
            Events::count(&events.tcp_refused);
        }
    };
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register TCP listener");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return, // stop accepting; open connections drain
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((front_end, slot, permit)) = admit(&shared, &stream, peer, refused) else {
            continue; // dropping the stream closes it
        };
        let open = shared.observers.metrics.clone().map(OpenConnection::new);
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, front_end, &shared, shutdown).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop((permit, slot, open));
        });
    }
}

/// Whether a new connection may stay: not a client on a front-end-only listener, within the cap per client network
/// (for a front end, taken once its header names the client) and the total cap. Returns whether it comes from a
/// front end, the network slot and the connection permit.
fn admit(
    shared: &TcpShared,
    stream: &TcpStream,
    peer: SocketAddr,
    refused: impl Fn(&str, SocketAddr),
) -> Option<(bool, Option<PrefixSlot>, tokio::sync::OwnedSemaphorePermit)> {
    let local = stream.local_addr().ok()?;
    let front_end = match shared.snapshots.load().classifier().sender(local, peer.ip()) {
        Sender::FrontEnd => true,
        Sender::Client => false,
        Sender::Refused => {
            count_dropped(shared, Dropped::NotFrontEnd);
            return None;
        }
    };
    let slot = if front_end { None } else { PrefixSlot::take(&shared.limits, peer.ip()) };
    if !front_end && slot.is_none() {
        refused("cap per client network reached", peer);
        return None;
    }
    let Ok(permit) = shared.limits.connections.clone().try_acquire_owned() else {
        refused("connection cap reached", peer);
        return None;
    };
    Some((front_end, slot, permit))
}

/// Counts an open connection in the metrics for as long as it lives.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> OpenConnection {
        metrics.events.tcp_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.events.tcp_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Responses a connection may have waiting to be written; past this, reading stops until the client reads.
const MAX_IN_FLIGHT: usize = 32;

/// One connection: the reader reads and answers queries while a writer task sends the answers, so pipelined queries
/// are read while earlier answers are still being written (RFC 7766 §6.2.1.1), with at most `MAX_IN_FLIGHT` answers
/// queued — a client that never reads stops being read, and the write deadline then closes it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    front_end: bool,
    shared: &TcpShared,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let local = stream.local_addr()?;
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    // A front end's connection opens with one PROXY v2 header: every query on it is that client's.
    let header = if front_end { read_header(&mut reader, &shared.limits).await? } else { Vec::new() };
    let Some((relayed, _slot)) = relayed_client(shared, local, peer, front_end, &header) else { return Ok(()) };
    let (client, identity, relayed_by) = (relayed.client, relayed.identity, relayed.front_end);
    let (tx, writer_task) = spawn_writer(writer, shared.limits.write);
    let mut recorder = Recorder::new(&shared.observers);
    let mut message = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(4096);
    loop {
        if !next_message(&mut reader, &shared.limits, &mut shutdown, &mut message).await? {
            break;
        }
        let started = std::time::Instant::now();
        let Some((snapshot, outcome)) = answer(shared, &message, (client, identity), local, &mut out).await else {
            if let Some(events) = shared.observers.events() {
                Events::count(&events.requests_dropped);
            }
            continue;
        };
        let exchange = Exchange {
            packet: &message,
            source: client,
            front_end: relayed_by,
            identity,
            transport: Transport::Tcp,
            outcome,
            latency: started.elapsed(),
        };
        recorder.finish(&snapshot, &exchange);
        drop(snapshot);
        if tx.send(framed(&out)).await.is_err() {
            break; // the writer gave up
        }
    }
    drop(tx);
    let _ = writer_task.await;
    Ok(())
}

/// Who the connection's queries are from: a front end's header read (or the peer itself), and for a front end's
/// client its network slot, held for as long as the connection lives. `None`: close (counted).
fn relayed_client<'h>(
    shared: &TcpShared,
    local: SocketAddr,
    peer: SocketAddr,
    front_end: bool,
    header: &'h [u8],
) -> Option<(proxy::Relayed<'h>, Option<PrefixSlot>)> {
    let relayed = match proxy::relay(shared.snapshots.load().classifier(), local, peer.ip(), header) {
        Ok(relayed) => relayed,
        Err(dropped) => {
            count_dropped(shared, dropped);
            return None;
        }
    };
    if !front_end {
        return Some((relayed, None));
    }
    let Some(slot) = PrefixSlot::take(&shared.limits, relayed.client) else {
        if let Some(events) = shared.observers.events() {
            Events::count(&events.tcp_refused);
        }
        return None;
    };
    Some((relayed, Some(slot)))
}

/// The task that writes a connection's answers in order, each within `deadline`; it stops at the first that does
/// not go out (a client that does not read, or a broken connection) and closes the write side when the sender goes.
fn spawn_writer(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    deadline: Duration,
) -> (tokio::sync::mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT);
    let task = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            match timeout(deadline, writer.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = writer.shutdown().await;
    });
    (tx, task)
}

/// A message with its two-byte length prefix (RFC 1035 §4.2.2).
fn framed(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&u16::try_from(message.len()).unwrap_or(u16::MAX).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// Reads the next length-prefixed message into `message`; `false` when the connection should close: the client
/// closed it, it stayed idle too long, a message trickled in too slowly, or the server is shutting down (between
/// queries: a query already being read is still answered).
async fn next_message(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    limits: &TcpLimits,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    message: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let next = tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => return Ok(false),
        next = timeout(limits.idle, reader.read_u16()) => next,
    };
    let len = match next {
        Ok(Ok(len)) => usize::from(len),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(false), // idle: close quietly
    };
    message.resize(len, 0);
    match timeout(limits.read, reader.read_exact(message)).await {
        Ok(result) => result.map(|_| true),
        Err(_) => Ok(false), // a message that trickles in too slowly
    }
}

/// Reads the PROXY v2 header a front end's connection opens with (the fixed part, then the length it gives), within
/// the read deadline. What it returns is checked by `proxy::relay`; a header cut short comes back short.
async fn read_header(reader: &mut tokio::net::tcp::OwnedReadHalf, limits: &TcpLimits) -> std::io::Result<Vec<u8>> {
    let mut header = vec![0u8; 16];
    match timeout(limits.read, reader.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(Vec::new()),
    }
    if header[..12] != proxy::SIGNATURE {
        return Ok(header); // refused by the parser: no length to trust
    }
    let rest = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if 16 + rest > proxy::MAX_HEADER {
        return Ok(header); // refused as too long without reading it
    }
    header.resize(16 + rest, 0);
    match timeout(limits.read, reader.read_exact(&mut header[16..])).await {
        Ok(Ok(_)) => Ok(header),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(header[..16].to_vec()),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(header[..16].to_vec()),
    }
}

/// Counts a connection dropped before its first query was read.
fn count_dropped(shared: &TcpShared, dropped: Dropped) {
    if let Some(events) = shared.observers.events() {
        Events::count(&events.proxy_dropped[dropped.index()]);
    }
}

/// Answers one message into `out`, resolving outside the private zones when it must (the snapshot the request
/// was classified under is kept across the wait: the answer is recorded under it). `None`: no response.
async fn answer(
    shared: &TcpShared,
    message: &[u8],
    (client, identity): (IpAddr, Option<Identity<'_>>),
    local: SocketAddr,
    out: &mut Vec<u8>,
) -> Option<(Arc<Snapshot>, Outcome)> {
    let snapshot = shared.snapshots.load_full();
    let handled = {
        let keys = shared.cookies.load();
        let cx = Context { snapshot: &snapshot, cookies: Some(&keys), now: super::unix_seconds() };
        let request = Request { packet: message, source: client, local, transport: Transport::Tcp, identity };
        respond::handle(&request, &cx, out)
    };
    let outcome = match handled {
        Handled::Dropped => return None,
        Handled::Answered(outcome) => outcome,
        Handled::Recurse(job) => {
            let resolution = match shared.resolver.cached(&job, &snapshot) {
                Some(resolution) => resolution,
                None => shared.resolver.complete(&job, &snapshot).await,
            };
            encode_resolved(&job, &resolution, out)
        }
    };
    Some((snapshot, outcome))
}
