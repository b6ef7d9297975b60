//! The `serve` command's life: pick the mode, bind, print readiness, run until a signal.
//!
//! File mode (no `[store]`): the configuration is the state, reloaded on SIGHUP and file changes. Store mode: the
//! state lives in the embedded store and changes through the admin API; the configuration gives only server,
//! store, admin and notify settings.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::control::api::{self, ApiState};
use crate::control::follow::{follow, FeedHealth};
use crate::control::notify::Mailer;
use crate::control::retention::{self, Swept};
use crate::control::{auth, unix_now, usage, ControlPlane};
use crate::dataplane::metering::Meter;
use crate::dataplane::observe::Observers;
use crate::dataplane::resolve::Resolver;
use crate::dataplane::serve;
use crate::model::publish::SnapshotCell;
use crate::process::reload::{self, Reloader};
use crate::process::telemetry::{self, Telemetry};
use crate::settings::{ControlSettings, Retention, Settings};

/// Serves until SIGTERM/SIGINT.
pub fn serve(config: PathBuf, watch_interval: Duration, udp_sockets: Option<usize>) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Loaded once: the reloader keeps this state as the one it serves (holding a second copy for the life of
        // the process would double the memory of every record).
        let loaded = reload::load_valid(&config, None)?;
        let udp_sockets = udp_sockets.unwrap_or(workers);
        let settings = loaded.settings.clone();
        // Names outside the private zones: upstreams and forwarding rules (a later reload or API change may add
        // them, so the resolver is always there; without routes it is never asked).
        let resolver = Arc::new(Resolver::new(settings.resolver));
        match settings.control.clone() {
            Some(control) => {
                drop(loaded);
                serve_store(control, settings, resolver, udp_sockets).await
            }
            None => {
                let reloader = Reloader::from_loaded(&config, loaded);
                let published = reloader.published();
                let hangup = reload::catch_hangup()?;
                let watcher = tokio::spawn(reload::watch(reloader, hangup, watch_interval));
                let ports = Ports::bind(&settings, udp_sockets).await?;
                run_dns(&settings, ports, published, resolver, None, Observe::default(), async move {
                    watcher.await.context("the reload task failed")?
                })
                .await
            }
        }
    })
}

async fn serve_store(
    control: ControlSettings,
    settings: Settings,
    resolver: Arc<Resolver>,
    udp_sockets: usize,
) -> anyhow::Result<()> {
    // Every port first, so that a port in use (another server on it) fails before anything is created on disk.
    let ports = Ports::bind(&settings, udp_sockets).await?;
    let tenant = api::listen::bind_tenant(control.admin_listen, control.tls.as_ref())?;
    api::listen::check_socket_directory(&control.socket)?;
    let (plane, _lock) = open_plane(&control, &settings)?;
    acknowledge_hangups()?;
    tracing::info!(store = %control.store, revision = plane.current().revision, "store opened");
    let mailer = match &control.smtp {
        Some(smtp) => Some(Arc::new(Mailer::new(smtp)?)),
        None => None,
    };
    let admin = tenant.with_operator_socket(&control.socket)?;
    let admin_line = format!("vpcdns admin: {} operator socket {}", admin.url(), control.socket.display());
    let state = ApiState::new(plane.clone(), mailer, &control.admin_limits, api_hooks(Some(resolver.clone())));
    let socket = api::listen::RemoveOnDrop(control.socket.clone());
    let api_task = tokio::spawn(api::listen::serve(admin, state, control.admin_limits));
    let feed = follow_shared_store(&plane, &control);
    let meter = Arc::new(Meter::default());
    let background = Background(vec![
        tokio::spawn(persist_usage_loop(plane.clone(), meter.clone(), control.node.clone())),
        tokio::spawn(compact_loop(plane.clone())),
        tokio::spawn(retention_loop(plane.clone(), control.retention)),
    ]);
    let observe = Observe { meter: Some(meter.clone()), feed };
    let result = run_dns(&settings, ports, plane.published(), resolver, Some(admin_line), observe, async move {
        api_task.await.context("the admin API task failed")?
    })
    .await;
    drop(background);
    // What was counted since the last persist is written before exit; then the node's name is free again.
    let node = control.node.clone();
    let flushed = tokio::task::spawn_blocking(move || {
        let persisted = persist_usage(&plane, &meter, &node);
        plane.store().release_node();
        persisted
    })
    .await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = format!("{e:#}"), "the last usage counts were not persisted");
    }
    drop(socket);
    result
}

/// Opens the store (locked while this server runs, for the embedded one) and the control plane on it.
fn open_plane(
    control: &ControlSettings,
    settings: &Settings,
) -> anyhow::Result<(Arc<ControlPlane>, Option<crate::control::store::lock::StoreLock>)> {
    // The store, its WAL, backups and the secret are the tenants' data: owner-only, whatever the caller's umask.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // The embedded store is this server's alone while it runs: operator commands go through its socket.
    let lock = match &control.store {
        crate::settings::StoreSettings::Sqlite(path) => Some(crate::control::store::lock::lock(path)?),
        _ => None,
    };
    let store = crate::control::store::open(&control.store)?;
    // Each node counts usage under its own name: a name another running node holds is refused.
    store.claim_node(&control.node).with_context(|| format!("cannot run as node {:?}", control.node))?;
    let secret = read_or_create_secret(&control.secret_file)?;
    let plane = ControlPlane::open(store, settings.served.clone(), secret)?;
    let plane = plane.with_code_ttl(control.link_code_ttl_secs).with_history(control.store.history());
    Ok((Arc::new(plane), lock))
}

/// The control plane's background tasks (usage persistence, compaction, retention): stopped when dropped.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// The API's calls into the configuration parser and the data plane. With the running server's resolver (once it
/// exists) `explain` says what its cache holds — the caller's own part of it only (the source is in its own VPC):
/// what other tenants resolved is not its business.
pub fn api_hooks(resolver: Option<Arc<Resolver>>) -> api::ApiHooks {
    api::ApiHooks {
        parse_state_file: crate::process::config::parse_state_file,
        explain: Arc::new(move |input: &api::ExplainInput<'_>| {
            let live = resolver.as_deref();
            let probe = |route: &crate::model::snapshot::Route, name: &[u8], qtype: u16| {
                live.and_then(|r| r.cache_remaining(route, &input.account.0, name, qtype))
            };
            let cache: Option<crate::model::explain::CacheProbe> = if live.is_some() { Some(&probe) } else { None };
            crate::dataplane::explain::explain(input.state, input.snapshot, input.question, cache)
        }),
    }
}

/// Compacts the store's change history now and then (see `ControlPlane::compact_history`).
/// In managed mode there is no file state to reload: SIGHUP is acknowledged in the log, never fatal.
fn acknowledge_hangups() -> anyhow::Result<()> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: managed mode has nothing to reload (changes come through the admin API)");
        }
    });
    Ok(())
}

/// On a shared store — the state was listed at one revision — follows what other nodes commit from the next one;
/// the feed's health is for metrics and `/ready`.
fn follow_shared_store(plane: &Arc<ControlPlane>, control: &ControlSettings) -> Option<Arc<FeedHealth>> {
    if !plane.store().is_shared() {
        return None;
    }
    let max_staleness = match &control.store {
        crate::settings::StoreSettings::Etcd(etcd) => etcd.max_staleness,
        crate::settings::StoreSettings::Sqlite(_) => None,
    };
    let health = Arc::new(FeedHealth::new(max_staleness));
    tokio::spawn(follow(plane.clone(), health.clone()));
    Some(health)
}

async fn compact_loop(plane: Arc<ControlPlane>) {
    let mut ticks = tokio::time::interval(COMPACT_EVERY.min(plane.compaction_interval()));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let plane = plane.clone();
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = plane.expire_idempotency(crate::control::unix_now()) {
                tracing::warn!(error = format!("{e:#}"), "dropping expired idempotency keys failed; will retry");
            }
            plane.compact_history()
        });
        if let Ok(Err(e)) = done.await {
            tracing::warn!(error = format!("{e:#}"), "compacting the store's history failed; will retry");
        }
    }
}

const COMPACT_EVERY: Duration = Duration::from_secs(30);

/// Applies the retention settings to audit entries and usage buckets now and then: at least every 10 minutes,
/// and twice within the shortest retention.
async fn retention_loop(plane: Arc<ControlPlane>, retention: Retention) {
    let shortest = [retention.audit, retention.usage_minutes, retention.usage_hours, retention.usage_days]
        .into_iter()
        .min()
        .unwrap_or(SWEEP_AT_LEAST_EVERY);
    let mut ticks = tokio::time::interval((shortest / 2).clamp(Duration::from_secs(1), SWEEP_AT_LEAST_EVERY));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let plane = plane.clone();
        let swept = tokio::task::spawn_blocking(move || retention::sweep(&plane, &retention, unix_now())).await;
        match swept {
            Ok(Ok(swept)) if swept != Swept::default() => tracing::info!(?swept, "history past its retention swept"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "sweeping the history failed; will retry"),
            Err(e) => tracing::error!(error = %e, "the history sweeper failed"),
        }
    }
}

const SWEEP_AT_LEAST_EVERY: Duration = Duration::from_secs(600);

/// How often counted usage is written to the store.
const USAGE_PERSIST_EVERY: Duration = Duration::from_secs(5);

/// What store mode adds to the DNS service's observers.
#[derive(Default)]
struct Observe {
    meter: Option<Arc<Meter>>,
    feed: Option<Arc<FeedHealth>>,
}

/// Drains the meter into the store every few seconds, until the process ends.
async fn persist_usage_loop(plane: Arc<ControlPlane>, meter: Arc<Meter>, node: String) {
    let mut ticks = tokio::time::interval(USAGE_PERSIST_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (plane, meter, node) = (plane.clone(), meter.clone(), node.clone());
        match tokio::task::spawn_blocking(move || persist_usage(&plane, &meter, &node)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "usage not persisted yet; will retry"),
            Err(e) => tracing::error!(error = %e, "the usage persister failed"),
        }
    }
}

/// Adds the meter's counts to this node's usage buckets; on failure the counts go back to the meter, so nothing is
/// lost.
fn persist_usage(plane: &ControlPlane, meter: &Meter, node: &str) -> anyhow::Result<()> {
    let counts = meter.take();
    if counts.is_empty() {
        return Ok(());
    }
    let persisted = usage::persist(plane, &counts, node);
    if persisted.is_err() {
        meter.restore(counts);
    }
    persisted
}

/// The DNS sockets and the metrics listener, bound before anything else is done.
struct Ports {
    dns: serve::Bound,
    metrics: Option<tokio::net::TcpListener>,
}

impl Ports {
    async fn bind(settings: &Settings, udp_sockets: usize) -> anyhow::Result<Ports> {
        let dns = serve::bind_all(&settings.served.listen, udp_sockets)?;
        let metrics = match settings.metrics {
            Some(addr) => Some(telemetry::bind(addr).await?),
            None => None,
        };
        Ok(Ports { dns, metrics })
    }
}

/// Serves DNS on the bound sockets, prints the readiness line(s), and runs until a signal or until `background`
/// fails.
async fn run_dns(
    settings: &Settings,
    ports: Ports,
    snapshots: SnapshotCell,
    resolver: Arc<Resolver>,
    extra_line: Option<String>,
    observe: Observe,
    background: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let query_log = match &settings.query_log {
        Some(log_settings) => {
            let log =
                crate::dataplane::querylog::QueryLog::start(log_settings).context("cannot start the query log")?;
            tracing::info!(path = %log_settings.path.display(), vpcs = ?log_settings.vpcs, "query log on");
            Some(log)
        }
        None => None,
    };
    let metrics = settings.metrics.map(|_| Arc::new(crate::dataplane::metrics::Metrics::new(snapshots.clone())));
    let bound = ports.dns;
    let telemetry = match (ports.metrics, &metrics) {
        (Some(listener), Some(metrics)) => {
            let addr = listener.local_addr().context("the metrics listener's address")?;
            let telemetry = Arc::new(Telemetry::new(
                metrics.clone(),
                snapshots.clone(),
                query_log.clone(),
                Some(resolver.clone()),
                observe.feed,
            ));
            tracing::info!("metrics on http://{addr}/metrics, readiness on http://{addr}/ready");
            tokio::spawn(telemetry::serve_http(listener, telemetry.clone()));
            Some(telemetry)
        }
        _ => None,
    };
    for addr in &bound.addresses {
        tracing::info!(%addr, "listening on UDP and TCP");
    }
    let addresses: Vec<String> = bound.addresses.iter().map(ToString::to_string).collect();
    if !settings.served.upstreams.is_empty() {
        tracing::info!(upstreams = ?settings.served.upstreams, "resolving names outside the private zones");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let service = serve::Service {
        snapshots,
        observers: Observers { meter: observe.meter, metrics, query_log },
        resolver,
        tcp: serve::tcp::TcpLimits::new(&settings.tcp),
        rrl: settings.rrl,
    };
    let mut dns = tokio::spawn(serve::run(bound, service, stopped));
    // Signals are caught before anyone is told the server is ready: a supervisor may stop it right away.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    if let Some(telemetry) = &telemetry {
        telemetry.set_ready(true);
    }
    // The readiness lines supervisors and tests wait for.
    println!("vpcdns ready: listening on {}", addresses.join(" "));
    if let Some(line) = extra_line {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    notify_systemd("READY=1");
    let result = tokio::select! {
        _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); Ok(()) }
        _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); Ok(()) }
        r = background => r,
    };
    // Drain: stop taking queries, let open TCP connections answer what they have read, then exit.
    if let Some(telemetry) = &telemetry {
        telemetry.set_ready(false);
    }
    notify_systemd("STOPPING=1");
    let _ = stop.send(true);
    if tokio::time::timeout(serve::DRAIN_DEADLINE + std::time::Duration::from_secs(1), &mut dns).await.is_err() {
        dns.abort();
    }
    result
}

/// Tells the service manager about the server's state (sd_notify: `READY=1`, `STOPPING=1`) when it asked to be
/// told, by setting NOTIFY_SOCKET (systemd's `Type=notify`). The socket may be a path or, with a leading `@`, an
/// abstract name. Failing to notify is logged, never fatal: the server serves either way.
pub(crate) fn notify_systemd(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| -> std::io::Result<()> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = target.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)?;
            }
            None => {
                socket.send_to(state.as_bytes(), &target)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "could not notify the service manager (NOTIFY_SOCKET)");
    }
}

/// The HMAC secret for verification codes: 32 random bytes in a file of its own (mode 0600), never in the store,
/// so a copy of the store alone cannot be used to test guesses offline. A secret others may read, or one of all
/// zeros (a placeholder, not a secret), is refused.
pub(crate) fn read_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .permissions()
                .mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{} may be read by group or others (mode {:o}): `chmod 600` it (and consider it leaked)",
                path.display(),
                mode & 0o777
            );
            anyhow::ensure!(bytes.iter().any(|b| *b != 0), "{} holds only zeros: that is no secret", path.display());
            return Ok(bytes);
        }
        Ok(_) => anyhow::bail!("{} is too short to be a secret (32 bytes or more)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut secret = vec![0u8; 32];
    auth::fill_random(&mut secret).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&secret)?;
    file.sync_all()?;
    Ok(secret)
}
