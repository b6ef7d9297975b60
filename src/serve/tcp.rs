//! The TCP loop: accept with a connection cap, then per connection read length-prefixed queries and answer each
//! (RFC 1035 §4.2.2, several queries per connection per RFC 7766), with idle, read and write deadlines so that a
//! slow or silent client only ever costs its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::Published;
use crate::lookup::Transport;
use crate::metering::{LocalMeter, Meter};
use crate::respond;

/// Bounds on TCP clients.
#[derive(Clone)]
pub struct TcpLimits {
    /// Connections open at once, over all TCP listeners; more are closed on accept.
    pub connections: Arc<Semaphore>,
    /// How long a connection may wait for its next query (RFC 7766 §6.2.3 suggests seconds).
    pub idle: Duration,
    /// How long one message may take to arrive once its length has.
    pub read: Duration,
    /// How long a response may take to be written.
    pub write: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            connections: Arc::new(Semaphore::new(1024)),
            idle: Duration::from_secs(10),
            read: Duration::from_secs(5),
            write: Duration::from_secs(5),
        }
    }
}

/// Accepts connections until the listener fails.
pub async fn serve(
    listener: std::net::TcpListener,
    published: Published,
    limits: TcpLimits,
    meter: Option<Arc<Meter>>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register TCP listener");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limits.connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "TCP connection refused: connection cap reached");
            continue; // dropping the stream closes it
        };
        let published = published.clone();
        let limits = limits.clone();
        let local = meter.clone().map(LocalMeter::new);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, published, &limits, local).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    published: Published,
    limits: &TcpLimits,
    mut local: Option<LocalMeter>,
) -> std::io::Result<()> {
    let local_addr = stream.local_addr()?;
    stream.set_nodelay(true)?;
    let mut message = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(4096);
    let mut frame = Vec::with_capacity(4098);
    loop {
        let len = match timeout(limits.idle, stream.read_u16()).await {
            Ok(Ok(len)) => len as usize,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle: close quietly
        };
        message.resize(len, 0);
        match timeout(limits.read, stream.read_exact(&mut message)).await {
            Ok(result) => result?,
            Err(_) => return Ok(()),
        };
        let snapshot = published.load();
        let handled = respond::handle(&message, peer.ip(), local_addr, Transport::Tcp, &snapshot, &mut out);
        let Some(outcome) = handled else { continue };
        if let Some(meter) = &mut local {
            meter.record(&snapshot, &outcome);
        }
        drop(snapshot);
        frame.clear();
        frame.extend_from_slice(&(out.len() as u16).to_be_bytes());
        frame.extend_from_slice(&out);
        match timeout(limits.write, stream.write_all(&frame)).await {
            Ok(result) => result?,
            Err(_) => return Ok(()),
        }
    }
}
