//! A node's name, held under an etcd lease for as long as the node runs: two nodes can never count usage under one
//! name (each writes only its own usage keys, so a shared name would lose counts). The lease is kept alive from the
//! store's runtime, on whichever member answers; a node that dies frees its name when the lease runs out.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use etcd_client::{Compare as EtcdCompare, CompareOp, PutOptions, Txn, TxnOp};

use super::client::Retry;
use super::EtcdStore;
use crate::control::store::StoreError;

/// Seconds a node's name outlives the node when it dies without releasing it.
pub(super) const NODE_LEASE_TTL: i64 = 10;

/// How often the lease is renewed.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(3);

impl EtcdStore {
    /// Claims `name` for this node. A name still held — by a running node, or by one that died less than
    /// [`NODE_LEASE_TTL`] seconds ago — is waited for that long, then refused.
    pub(super) fn claim(&self, name: &str) -> Result<(), StoreError> {
        let key = self.key(&crate::control::keys::node(name));
        let deadline = Instant::now() + Duration::from_secs(NODE_LEASE_TTL.unsigned_abs() + 2);
        loop {
            let lease = self
                .call("grant the node's lease", Retry::Always, |mut client| {
                    Box::pin(async move { client.lease_grant(NODE_LEASE_TTL, None).await })
                })?
                .id();
            let value = format!("{{\"pid\":{}}}", std::process::id()).into_bytes();
            let txn = Txn::new()
                .when([EtcdCompare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), value, Some(PutOptions::new().with_lease(lease)))]);
            let claimed = self.call("claim the node's name", Retry::IfUnsent, move |mut client| {
                let txn = txn.clone();
                Box::pin(async move { client.txn(txn).await })
            })?;
            if claimed.succeeded() {
                self.lease.store(lease, Ordering::Relaxed);
                self.runtime.handle.spawn(keep_alive(self.members_for_lease(), lease));
                return Ok(());
            }
            self.revoke(lease);
            if Instant::now() > deadline {
                return Err(StoreError::Invalid(format!(
                    "[store] node {name:?} is held by another running node: give each node a name of its own"
                )));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Gives the node's name back (at a clean shutdown), so that a restart may take it at once.
    pub(super) fn release(&self) {
        let lease = self.lease.swap(0, Ordering::Relaxed);
        if lease != 0 {
            self.revoke(lease);
        }
    }

    fn revoke(&self, lease: i64) {
        let revoked = self.call("revoke a lease", Retry::Always, move |mut client| {
            Box::pin(async move { client.lease_revoke(lease).await })
        });
        if let Err(e) = revoked {
            tracing::debug!(error = %e, "revoking a lease failed; it runs out by itself");
        }
    }

    fn members_for_lease(&self) -> Vec<(String, etcd_client::ConnectOptions)> {
        self.members.iter().map(|m| (m.url.clone(), m.options.clone())).collect()
    }
}

/// Renews `lease` every few seconds on the members in turn, until it is revoked or runs out (then the name is free
/// for another node, and this one says so loudly: its usage counts may mix with another's).
async fn keep_alive(members: Vec<(String, etcd_client::ConnectOptions)>, lease: i64) {
    let mut i = 0usize;
    loop {
        let (url, options) = &members[i % members.len()];
        i += 1;
        let Ok(Ok(mut client)) =
            tokio::time::timeout(KEEP_ALIVE_EVERY, etcd_client::Client::connect([url], Some(options.clone()))).await
        else {
            continue;
        };
        let Ok(Ok((mut keeper, mut stream))) =
            tokio::time::timeout(KEEP_ALIVE_EVERY, client.lease_keep_alive(lease)).await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        loop {
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(KEEP_ALIVE_EVERY, stream.message()).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
                Ok(Ok(Some(_))) => {
                    tracing::error!(lease, "this node's name lease ran out: another node may take its name");
                    return;
                }
                _ => break,
            }
            tokio::time::sleep(KEEP_ALIVE_EVERY).await;
        }
    }
}
