//! Binding and serving the admin API: the tenant router on TCP (HTTPS with rustls when a certificate is
//! configured), the operator router on an owner-only Unix socket.
//!
//! The tenant listener faces every client that can reach it, so it bounds what one client can hold: connections
//! in all and per address (more are closed at once), the time to send the request head (which is also the idle
//! time between requests on a kept-alive connection), the time to send a body, and the time a connection may sit
//! with nothing moving. A TLS handshake has the head's time.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::TlsAcceptor;

use super::limits::ConnectionCounts;
use super::{operator_router, tenant_router, ApiState};
use crate::settings::AdminLimits;

/// The bound admin listeners, ready to serve.
pub(crate) struct AdminListeners {
    tcp: std::net::TcpListener,
    pub tcp_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    unix: UnixListener,
    socket: PathBuf,
}

impl AdminListeners {
    /// `https://…` or `http://…`, as clients should call it.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.tcp_addr)
    }
}

/// The tenant API's listener, bound: the operator socket is added once the store is open (a socket file is the
/// only thing the listeners put on disk, and nothing goes on disk before every port is bound).
pub(crate) struct TenantListener {
    tcp: std::net::TcpListener,
    tcp_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// Binds the tenant API on `listen`, with TLS when `tls` names a certificate and key.
pub(crate) fn bind_tenant(
    listen: SocketAddr,
    tls: Option<&crate::settings::TlsFiles>,
) -> anyhow::Result<TenantListener> {
    let tls = match tls {
        Some(files) => Some(tls_acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let tcp = std::net::TcpListener::bind(listen).with_context(|| format!("cannot bind the admin API on {listen}"))?;
    tcp.set_nonblocking(true)?;
    let tcp_addr = tcp.local_addr()?;
    Ok(TenantListener { tcp, tcp_addr, tls })
}

impl TenantListener {
    /// Adds the operator socket at `socket` (mode 0600). A stale socket from a previous run is replaced; anything
    /// else at that path is left alone and refused, and so is a directory that others may write to (they could
    /// swap the socket for their own).
    pub(crate) fn with_operator_socket(self, socket: &Path) -> anyhow::Result<AdminListeners> {
        check_socket_directory(socket)?;
        match std::fs::symlink_metadata(socket) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(socket)
                .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?,
            Ok(_) => anyhow::bail!(
                "{} exists and is not a socket: move it away, or set [admin] socket to another path",
                socket.display()
            ),
            Err(_) => {}
        }
        // The socket is created with mode 0600 from the start (umask 0177 around the bind), so there is no window in
        // which another local user could connect; the explicit chmod below states the intent again.
        let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(socket);
        nix::sys::stat::umask(previous);
        let unix = bound.with_context(|| format!("cannot bind the operator socket {}", socket.display()))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket.display()))?;
        let TenantListener { tcp, tcp_addr, tls } = self;
        Ok(AdminListeners { tcp, tcp_addr, tls, unix, socket: socket.to_path_buf() })
    }
}

/// The operator socket's directory must not be writable by group or others.
pub(crate) fn check_socket_directory(socket: &Path) -> anyhow::Result<()> {
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().context("the current directory")?,
    };
    let mode = std::fs::metadata(&dir).with_context(|| format!("cannot read {}", dir.display()))?.permissions().mode();
    anyhow::ensure!(
        mode & 0o022 == 0,
        "the operator socket's directory {} is writable by others (mode {:o}): anyone who may write there could \
         replace the socket; use a directory only the server's user may write to ([admin] socket)",
        dir.display(),
        mode & 0o777
    );
    Ok(())
}

/// A TLS acceptor (ring provider, TLS 1.2 and 1.3) from PEM files.
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM in {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the private key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not make a TLS configuration")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves both routers until the process ends; the operator socket is removed when this returns or is dropped.
pub(crate) async fn serve(listeners: AdminListeners, state: ApiState, limits: AdminLimits) -> anyhow::Result<()> {
    let _socket = RemoveOnDrop(listeners.socket.clone());
    let operator = operator_router(state.clone());
    let tenant = tenant_router(state, limits.body_timeout);
    let tcp = tokio::net::TcpListener::from_std(listeners.tcp)?;
    let unix = async { axum::serve(listeners.unix, operator).await.context("operator socket failed") };
    let http = accept_loop(tcp, tenant, listeners.tls, limits);
    tokio::try_join!(http, unix)?;
    Ok(())
}

/// Removes the operator socket when the server stops (a socket file left behind would only mislead).
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.0).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Accepts tenant connections within the bounds and serves each in a task of its own.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: AdminLimits,
) -> anyhow::Result<()> {
    let counts = ConnectionCounts::new(limits.max_connections, limits.max_connections_per_address);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a moment instead of spinning.
                tracing::warn!(error = %e, "admin API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = counts.admit(peer.ip()) else {
            tracing::debug!(%peer, "admin API connection refused: too many open");
            continue;
        };
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, router, tls, limits).await;
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: AdminLimits,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    match tls {
        Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => {
                let io = Watched { inner: tls_stream, activity: activity.clone(), started };
                drive(io, peer, router, limits, activity, started).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin API TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "admin API TLS handshake timed out"),
        },
        None => {
            let io = Watched { inner: stream, activity: activity.clone(), started };
            drive(io, peer, router, limits, activity, started).await;
        }
    }
}

/// Runs HTTP/1.1 on one connection until it ends or sits idle past the bound.
async fn drive<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: Watched<T>,
    peer: SocketAddr,
    router: axum::Router,
    limits: AdminLimits,
    activity: Arc<AtomicU64>,
    started: Instant,
) {
    let service = tower::ServiceExt::map_request(router, move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let tick = (limits.idle_timeout / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "admin API connection ended");
                }
                return;
            }
            () = tokio::time::sleep(tick) => {
                let idle = started.elapsed().saturating_sub(Duration::from_millis(activity.load(Ordering::Relaxed)));
                if idle >= limits.idle_timeout {
                    tracing::debug!(%peer, "admin API connection idle: closed");
                    return;
                }
            }
        }
    }
}

/// A connection's I/O that notes when bytes last moved (milliseconds since the connection started).
struct Watched<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl<T> Watched<T> {
    fn moved(&self) {
        self.activity.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
