//! Reaching the cluster: a runtime of the store's own, one client per member, and `call`, which tries the members
//! in turn (from the one that last answered) with a deadline per attempt, retrying a transaction only when the
//! error proves it was never proposed.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::EtcdStore;
use crate::control::store::StoreError;
use crate::settings::EtcdTls;

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, etcd_client::Error>> + Send>>;

/// May the request be sent again to another member after this error?
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Reads and idempotent writes: after any transport failure.
    Always,
    /// Transactions: only when the request surely was not proposed.
    IfUnsent,
}

/// One endpoint and its client, connected on first use (a member that is down at start-up must not stop it).
pub(super) struct Member {
    pub(super) url: String,
    pub(super) options: ConnectOptions,
    pub(super) client: Mutex<Option<Client>>,
}

/// A runtime on a thread of its own. Dropping it from inside another runtime is fine: only the thread shuts it
/// down (tokio refuses to drop a runtime from async code).
pub(super) struct OwnRuntime {
    pub(super) handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl OwnRuntime {
    pub(super) fn start() -> Result<OwnRuntime, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Etcd { op: "start the client runtime", detail: e.to_string() })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("etcd-runtime".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| StoreError::Etcd { op: "start the client thread", detail: e.to_string() })?;
        Ok(OwnRuntime { handle, _stop: stop })
    }

    /// Runs `fut` on this runtime and waits for it from any thread.
    pub(super) fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }
}

impl EtcdStore {
    /// The client of member `i`, connecting it when needed.
    pub(super) async fn client(url: String, options: ConnectOptions) -> Result<Client, etcd_client::Error> {
        Client::connect([url], Some(options)).await
    }

    /// Runs `call` against the members in turn, from the preferred one, until one answers or retrying is not
    /// safe. Two passes at most, with a short pause between them. A member that does not answer in time, or fails
    /// ambiguously, stops being the preferred one at once: the next request goes to another member, so one hung
    /// member (a frozen VM, a stalled disk, dropped packets) costs at most the requests in flight on it.
    pub(super) fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        retry: Retry,
        call: impl Fn(Client) -> BoxFuture<T>,
    ) -> Result<T, StoreError> {
        let n = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for attempt in 0..2 * n {
            if attempt == n {
                std::thread::sleep(Duration::from_millis(200));
            }
            let i = (first + attempt) % n;
            match self.attempt(i, &call)? {
                Attempt::Answered(value) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Attempt::Unsent(error) => errors.push(error),
                Attempt::Failed(error, kind) => {
                    if kind == Failure::Refused {
                        return Err(refused(op, &error));
                    }
                    errors.push(format!("{}: {error}", self.members[i].url));
                    self.avoid(i);
                    if retry == Retry::IfUnsent && kind != Failure::Unsent {
                        return Err(StoreError::Unknown { op, detail: errors.join("; ") });
                    }
                }
                Attempt::TimedOut => {
                    errors.push(format!("{}: no answer within {:?}", self.members[i].url, self.timeout));
                    self.avoid(i);
                    if retry == Retry::IfUnsent {
                        return Err(StoreError::Unknown { op, detail: errors.join("; ") });
                    }
                }
            }
        }
        Err(StoreError::Unavailable { op, detail: errors.join("; ") })
    }

    /// One try of `call` on member `i`, connecting it first when needed.
    fn attempt<T: Send + 'static>(
        &self,
        i: usize,
        call: &impl Fn(Client) -> BoxFuture<T>,
    ) -> Result<Attempt<T>, StoreError> {
        let member = &self.members[i];
        let timeout = self.timeout;
        let cached = member.client.lock().map_err(|_| StoreError::Poisoned)?.clone();
        let client = match cached {
            Some(client) => client,
            None => {
                let (url, options) = (member.url.clone(), member.options.clone());
                let connected =
                    self.runtime.run(async move { tokio::time::timeout(timeout, Self::client(url, options)).await });
                match connected {
                    Some(Ok(Ok(client))) => {
                        *member.client.lock().map_err(|_| StoreError::Poisoned)? = Some(client.clone());
                        client
                    }
                    // A refusal (bad credentials) is the same on every member.
                    Some(Ok(Err(e))) if classify(&e) == Failure::Refused => {
                        return Ok(Attempt::Failed(e, Failure::Refused))
                    }
                    // Nothing was sent: every request may move on.
                    Some(Ok(Err(e))) => return Ok(Attempt::Unsent(format!("{}: {e}", member.url))),
                    Some(Err(_)) | None => {
                        self.avoid(i);
                        return Ok(Attempt::Unsent(format!("{}: no connection within {timeout:?}", member.url)));
                    }
                }
            }
        };
        let fut = call(client);
        Ok(match self.runtime.run(async move { tokio::time::timeout(timeout, fut).await }) {
            Some(Ok(Ok(value))) => Attempt::Answered(value),
            Some(Ok(Err(e))) => {
                let kind = classify(&e);
                Attempt::Failed(e, kind)
            }
            Some(Err(_)) | None => Attempt::TimedOut,
        })
    }

    /// Stops preferring member `i` (when it still is the preferred one): the next request starts at the next member.
    fn avoid(&self, i: usize) {
        let n = self.members.len();
        let _ = self.preferred.compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// What one try on one member came to.
enum Attempt<T> {
    Answered(T),
    /// Not sent (no connection): any request may go on to the next member.
    Unsent(String),
    /// An error from the member, and whether a retry elsewhere is safe.
    Failed(etcd_client::Error, Failure),
    /// No answer within the per-attempt deadline: the request may have been applied.
    TimedOut,
}

/// What kind of failure an error is, for retrying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The request never reached a leader: safe to send again.
    Unsent,
    /// It may or may not have been applied.
    Ambiguous,
    /// The cluster answered and refused it (bad request, permission, too large): retrying cannot help.
    Refused,
}

pub(super) fn classify(e: &etcd_client::Error) -> Failure {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => Failure::Unsent,
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                Code::Unavailable
                    if message.contains("no leader")
                        || message.contains("connect")
                        || message.contains("not capable")
                        || message.contains("transport error") =>
                {
                    Failure::Unsent
                }
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
                    Failure::Ambiguous
                }
                _ => Failure::Refused,
            }
        }
        _ => Failure::Ambiguous,
    }
}

pub(super) fn refused(op: &'static str, e: &etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = e {
        if status.message().contains("compacted") {
            // Filled in by the caller that knows the revisions.
            return StoreError::Compacted { requested: 0, oldest: 0 };
        }
    }
    StoreError::Etcd { op, detail: e.to_string() }
}

pub(super) fn tls_options(tls: &EtcdTls) -> Result<TlsOptions, StoreError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| StoreError::Io { op: "read", path: path.to_path_buf(), source })
    };
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    if let Some(client) = &tls.client {
        options = options.identity(Identity::from_pem(read(&client.cert)?, read(&client.key)?));
    }
    Ok(options)
}
