//! Binding the admin API: the tenant router on TCP (HTTPS with rustls when a certificate is configured), the
//! operator router on an owner-only Unix socket.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::UnixListener;

use super::{operator_router, tenant_router, ApiState};

/// The bound admin listeners, ready to serve.
pub struct AdminListeners {
    tcp: std::net::TcpListener,
    pub tcp_addr: SocketAddr,
    tls: Option<RustlsConfig>,
    unix: UnixListener,
}

impl AdminListeners {
    /// `https://…` or `http://…`, as clients should call it.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.tcp_addr)
    }
}

/// Binds the tenant API on `listen` (with TLS when `tls` names a certificate and key) and the operator socket at
/// `socket` (mode 0600; a stale socket file from a previous run is replaced).
pub async fn bind(
    listen: SocketAddr,
    socket: &Path,
    tls: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<AdminListeners> {
    let tls = match tls {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    let tcp = std::net::TcpListener::bind(listen).with_context(|| format!("cannot bind the admin API on {listen}"))?;
    tcp.set_nonblocking(true)?;
    let tcp_addr = tcp.local_addr()?;
    if socket.exists() {
        std::fs::remove_file(socket).with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    // The socket is created with mode 0600 from the start (umask 0177 around the bind), so there is no window in
    // which another local user could connect; the explicit chmod below states the intent again.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(socket);
    nix::sys::stat::umask(previous);
    let unix = bound.with_context(|| format!("cannot bind the operator socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket.display()))?;
    Ok(AdminListeners { tcp, tcp_addr, tls, unix })
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) from PEM files.
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<RustlsConfig> {
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
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Serves both routers until the process ends.
pub async fn serve(listeners: AdminListeners, state: ApiState) -> anyhow::Result<()> {
    let tenant = tenant_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let operator = operator_router(state);
    let unix = async { axum::serve(listeners.unix, operator).await.context("operator socket failed") };
    match listeners.tls {
        Some(tls) => {
            let https = async {
                axum_server::from_tcp_rustls(listeners.tcp, tls)?.serve(tenant).await.context("admin API (TLS) failed")
            };
            tokio::try_join!(https, unix)?;
        }
        None => {
            let tcp = tokio::net::TcpListener::from_std(listeners.tcp)?;
            let http = async { axum::serve(tcp, tenant).await.context("admin API failed") };
            tokio::try_join!(http, unix)?;
        }
    }
    Ok(())
}
