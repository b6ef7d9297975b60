//! Binding the admin API: the tenant router on TCP, the operator router on an owner-only Unix socket.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use tokio::net::{TcpListener, UnixListener};

use super::{operator_router, tenant_router, ApiState};

/// The bound admin listeners, ready to serve.
pub struct AdminListeners {
    pub tcp: TcpListener,
    pub tcp_addr: SocketAddr,
    pub unix: UnixListener,
}

/// Binds the tenant API on `listen` and the operator socket at `socket` (mode 0600; a stale socket file from a
/// previous run is replaced).
pub async fn bind(listen: SocketAddr, socket: &Path) -> anyhow::Result<AdminListeners> {
    let tcp = TcpListener::bind(listen).await.with_context(|| format!("cannot bind the admin API on {listen}"))?;
    let tcp_addr = tcp.local_addr()?;
    if socket.exists() {
        std::fs::remove_file(socket).with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    // Create the socket under a restrictive umask-free path: bind, then tighten before anyone can use it.
    let unix =
        UnixListener::bind(socket).with_context(|| format!("cannot bind the operator socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket.display()))?;
    Ok(AdminListeners { tcp, tcp_addr, unix })
}

/// Serves both routers until the process ends.
pub async fn serve(listeners: AdminListeners, state: ApiState) -> anyhow::Result<()> {
    let tenant = tenant_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let operator = operator_router(state);
    let tcp = axum::serve(listeners.tcp, tenant);
    let unix = axum::serve(listeners.unix, operator);
    tokio::try_join!(async { tcp.await.context("admin API failed") }, async {
        unix.await.context("operator socket failed")
    })?;
    Ok(())
}
