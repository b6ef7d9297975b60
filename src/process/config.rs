//! The TOML configuration: raw serde types and their translation into the normalized [`State`].
//!
//! Only this module knows that TOML exists. It checks the file's shape (unknown keys are errors, so typos never pass
//! silently), reads zone files, resolves link names to uids, and leaves every cross-item rule to `validate`, which
//! checks the state model and not the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::Deserialize;

use crate::dns::name::Name;
use crate::dns::rdata::{self, RData, Record};
use crate::dns::zonefile;
use crate::model::state::{
    Account, Link, Policy, ServerSettings, Site, State, Uid, User, Vpc, VpcId, Zone, ZoneId, ZoneRecords,
};

/// The listen address when `[server]` gives none.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";
/// MNAME of generated SOAs and target of generated NS records when `[server].nameserver` is not set.
pub const DEFAULT_NAMESERVER: &str = "ns.vpcdns.internal.";
/// TTL of an inline record that gives none.
pub const DEFAULT_RECORD_TTL: u32 = 300;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    accounts: Vec<RawAccount>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    vpcs: Vec<RawVpc>,
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(default)]
    zones: Vec<RawZone>,
    store: Option<RawStore>,
    admin: Option<RawAdmin>,
    limits: Option<RawLimits>,
    rrl: Option<RawRrl>,
    notify: Option<RawNotify>,
    metrics: Option<RawMetrics>,
    query_log: Option<RawQueryLog>,
    resolver: Option<RawResolver>,
    #[serde(default)]
    forward_rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResolver {
    #[serde(default)]
    upstreams: Vec<String>,
    timeout_ms: Option<u64>,
    attempts: Option<usize>,
    deadline_ms: Option<u64>,
    cache_entries: Option<usize>,
    max_pending: Option<usize>,
    max_pending_per_account: Option<usize>,
    #[serde(default)]
    allow_targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    account: String,
    domain: String,
    targets: Vec<String>,
    #[serde(default)]
    scope: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueryLog {
    path: PathBuf,
    vpcs: Option<Vec<String>>,
    max_bytes: Option<u64>,
    keep: Option<u32>,
    queue: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRrl {
    responses_per_second: Option<u32>,
    slip: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_rrset: Option<usize>,
    max_zones_per_account: Option<usize>,
    max_records_per_account: Option<usize>,
    max_record_bytes_per_account: Option<usize>,
    max_rules_per_account: Option<usize>,
    queries_per_source: Option<u32>,
    tcp_connections: Option<usize>,
    tcp_connections_per_network: Option<usize>,
    tcp_idle_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// "sqlite" (the default: the embedded store at `path`) or "etcd".
    kind: Option<String>,
    path: Option<PathBuf>,
    node: Option<String>,
    endpoints: Option<Vec<String>>,
    prefix: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    socket: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    link_code_ttl_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    writes_per_second: Option<u32>,
    write_burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    smtp: Option<RawSmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    #[serde(default = "default_smtp_port")]
    port: u16,
    from: String,
}

fn default_smtp_port() -> u16 {
    25
}

/// Where the control plane keeps its state and listens (store mode, `[store]` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// Where the state is kept.
    pub store: StoreSettings,
    /// The tenant API (HTTP/JSON).
    pub admin_listen: SocketAddr,
    /// The operator's Unix socket (owner-only permissions).
    pub socket: PathBuf,
    /// The secret verification codes are HMACed under; created on first start, never in the store.
    pub secret_file: PathBuf,
    pub smtp: Option<crate::control::notify::SmtpSettings>,
    /// This node's name in usage buckets (default: the host name).
    pub node: String,
    /// PEM certificate chain and private key: with both, the admin API speaks HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long a link verification code stays valid.
    pub link_code_ttl_secs: u64,
    /// Bounds on the tenant API's connections and writes.
    pub limits: AdminLimits,
}

/// `[admin]` bounds: what one client of the tenant API may hold open and how fast an account may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections open at once, all clients together; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// The request line and headers must arrive within this (also the idle time between requests).
    pub header_timeout: std::time::Duration,
    /// A request body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// A connection on which nothing moves for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Changes (refused ones included) one account may make per second, on average…
    pub writes_per_second: u32,
    /// …and at once.
    pub write_burst: u32,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 256,
            max_connections_per_address: 32,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            writes_per_second: 20,
            write_burst: 200,
        }
    }
}

/// A DNS server's address: `ip` (port 53) or `ip:port` (`[v6]:port`).
pub fn parse_server_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// Which store holds the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded store: one file, one node.
    Sqlite(PathBuf),
    /// An etcd cluster shared by several nodes.
    Etcd(EtcdSettings),
}

/// How to reach etcd; the same fields whether or not this binary was built with the `etcd` feature, so that a
/// configuration is checked the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// CA, and the client certificate and key (all PEM).
    pub tls: Option<(PathBuf, Option<(PathBuf, PathBuf)>)>,
    /// User name and the password read from `password_file`.
    pub user: Option<(String, String)>,
    pub timeout: std::time::Duration,
}

impl std::fmt::Display for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Sqlite(path) => write!(f, "{}", path.display()),
            StoreSettings::Etcd(etcd) => write!(f, "etcd {} under {:?}", etcd.endpoints.join(","), etcd.prefix),
        }
    }
}

/// Where the admin API listens when `[admin] listen` is not set.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:5380";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Vec<String>>,
    nameserver: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    uid: String,
    name: String,
    email: String,
    site: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    account: String,
    name: String,
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVpc {
    id: String,
    account: String,
    #[serde(default)]
    region: String,
    cidrs: Vec<String>,
    #[serde(default)]
    listeners: Vec<String>,
    /// Full UDP answers per second per source address (default `[limits] queries_per_source`; 0: unlimited).
    query_limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    account: String,
    linked: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: Option<String>,
    name: String,
    account: String,
    #[serde(default)]
    scope: Vec<String>,
    file: Option<PathBuf>,
    records: Option<Vec<RawRecord>>,
    /// "nxdomain" (the default) or "recurse".
    fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    ttl: Option<u32>,
    data: String,
}

/// A configuration that could not be turned into a state. Each message names the offending item; the
/// `Display` form starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    #[error(transparent)]
    ZoneFile(#[from] zonefile::ZoneFileError),
}

/// A loaded configuration: the state, plus the files whose change should trigger a reload.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: State,
    pub watched: Vec<PathBuf>,
    /// Set in store mode: the state then comes from the store, and the file gives only server settings.
    pub control: Option<ControlSettings>,
}

/// Reads the configuration at `path` into a state. `previous` (the state being served) lets unchanged zones keep
/// their revision, so their SOA serial stays put and their compiled tables are reused.
pub fn load(path: &Path, previous: Option<&State>) -> Result<Loaded, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    // As with zone files: an empty file is most likely being rewritten in place, never a configuration to serve.
    if text.trim().is_empty() {
        return Err(ConfigError::Toml { path: path.to_path_buf(), message: "the configuration file is empty".into() });
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    from_str(&text, path, &base, previous)
}

/// Parses configuration text; zone files are resolved against `base` (the config file's directory).
pub fn from_str(text: &str, path: &Path, base: &Path, previous: Option<&State>) -> Result<Loaded, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError::Toml { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
    let mut builder = Builder {
        problems: Vec::new(),
        base,
        previous,
        revision: next_revision(previous),
        watched: vec![path.to_path_buf()],
    };
    let control = builder.control_settings(&raw);
    if control.is_none() && (raw.admin.is_some() || raw.notify.is_some()) {
        builder.problems.push("[admin] and [notify] need [store] (managed mode): add [store] path = \"…\"".into());
    }
    let declares_state = !(raw.accounts.is_empty()
        && raw.users.is_empty()
        && raw.vpcs.is_empty()
        && raw.links.is_empty()
        && raw.zones.is_empty());
    if control.is_some() && declares_state {
        builder.problems.push(
            "with [store] the accounts, VPCs, links and zones live in the store: remove them from this file and load \
             them with `vpcdns operator apply`"
                .into(),
        );
    }
    let state = builder.build(raw)?;
    // Every link in a file is created by loading it.
    for link in &state.links {
        if let Err(problem) = crate::model::validate::check_new_link(&state, &link.account, &link.linked) {
            builder.problems.push(problem);
        }
    }
    if builder.problems.is_empty() {
        Ok(Loaded { state, watched: builder.watched, control })
    } else {
        Err(ConfigError::Invalid { path: path.to_path_buf(), problems: builder.problems })
    }
}

/// The load time in seconds, but always above the previous revision so serials grow on every change.
fn next_revision(previous: Option<&State>) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
    match previous {
        Some(prev) => now.max(prev.revision + 1),
        None => now,
    }
}

struct Builder<'a> {
    problems: Vec<String>,
    base: &'a Path,
    previous: Option<&'a State>,
    revision: u64,
    watched: Vec<PathBuf>,
}

impl Builder<'_> {
    fn control_settings(&mut self, raw: &RawConfig) -> Option<ControlSettings> {
        let store = raw.store.as_ref()?;
        let (settings, path) = self.store_settings(store)?;
        let admin = raw.admin.as_ref();
        let listen_text = admin.and_then(|a| a.listen.clone()).unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
        let admin_listen = match listen_text.parse() {
            Ok(a) => a,
            Err(_) => {
                self.problems.push(format!("[admin].listen: {listen_text:?} is not an address:port"));
                DEFAULT_ADMIN_LISTEN.parse().ok()?
            }
        };
        let with_ext = |ext: &str| {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let socket =
            admin.and_then(|a| a.socket.as_ref()).map(|s| self.base.join(s)).unwrap_or_else(|| with_ext(".sock"));
        let secret_file = admin
            .and_then(|a| a.secret_file.as_ref())
            .map(|s| self.base.join(s))
            .unwrap_or_else(|| with_ext(".secret"));
        let smtp = raw.notify.as_ref().and_then(|n| n.smtp.as_ref()).map(|s| crate::control::notify::SmtpSettings {
            host: s.host.clone(),
            port: s.port,
            from: s.from.clone(),
        });
        let node = store.node.clone().unwrap_or_else(|| {
            nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "node".into())
        });
        let tls = match (admin.and_then(|a| a.tls_cert.as_ref()), admin.and_then(|a| a.tls_key.as_ref())) {
            (Some(cert), Some(key)) => Some((self.base.join(cert), self.base.join(key))),
            (None, None) => None,
            _ => {
                self.problems.push("[admin]: give both tls_cert and tls_key, or neither".into());
                None
            }
        };
        let link_code_ttl_secs =
            admin.and_then(|a| a.link_code_ttl_secs).unwrap_or(crate::control::ops::links::CODE_TTL_SECS);
        if link_code_ttl_secs == 0 {
            self.problems.push("[admin].link_code_ttl_secs must be at least 1".into());
        }
        let limits = self.admin_limits(admin);
        Some(ControlSettings {
            limits,
            store: settings,
            admin_listen,
            socket,
            secret_file,
            smtp,
            node,
            tls,
            link_code_ttl_secs,
        })
    }

    fn admin_limits(&mut self, admin: Option<&RawAdmin>) -> AdminLimits {
        let d = AdminLimits::default();
        let Some(a) = admin else { return d };
        let ms = |v: Option<u64>, d: std::time::Duration| v.map_or(d, std::time::Duration::from_millis);
        let limits = AdminLimits {
            max_connections: a.max_connections.unwrap_or(d.max_connections),
            max_connections_per_address: a.max_connections_per_address.unwrap_or(d.max_connections_per_address),
            header_timeout: ms(a.header_timeout_ms, d.header_timeout),
            body_timeout: ms(a.body_timeout_ms, d.body_timeout),
            idle_timeout: ms(a.idle_timeout_ms, d.idle_timeout),
            writes_per_second: a.writes_per_second.unwrap_or(d.writes_per_second),
            write_burst: a.write_burst.unwrap_or(d.write_burst),
        };
        if limits.max_connections == 0 || limits.max_connections_per_address == 0 {
            self.problems.push("[admin]: max_connections and max_connections_per_address must be at least 1".into());
        }
        if [limits.header_timeout, limits.body_timeout, limits.idle_timeout].iter().any(|t| t.is_zero()) {
            self.problems
                .push("[admin]: header_timeout_ms, body_timeout_ms and idle_timeout_ms must be at least 1".into());
        }
        if limits.writes_per_second == 0 || limits.write_burst == 0 {
            self.problems.push("[admin]: writes_per_second and write_burst must be at least 1".into());
        }
        limits
    }

    /// The store, and the path the operator socket and the secret are named after by default (the embedded store's
    /// file; for etcd, `vpcdns` beside the configuration).
    fn store_settings(&mut self, store: &RawStore) -> Option<(StoreSettings, PathBuf)> {
        let etcd_fields = store.endpoints.is_some()
            || store.prefix.is_some()
            || store.tls_ca.is_some()
            || store.tls_cert.is_some()
            || store.tls_key.is_some()
            || store.user.is_some()
            || store.password_file.is_some()
            || store.timeout_ms.is_some();
        match store.kind.as_deref().unwrap_or("sqlite") {
            "sqlite" => {
                if etcd_fields {
                    self.problems.push(
                        "[store]: endpoints, prefix, tls_*, user, password_file and timeout_ms are for kind = \"etcd\""
                            .into(),
                    );
                }
                let Some(path) = &store.path else {
                    self.problems.push("[store]: give path = \"…\" (the embedded store's file)".into());
                    return None;
                };
                let path = self.base.join(path);
                Some((StoreSettings::Sqlite(path.clone()), path))
            }
            "etcd" => {
                if store.path.is_some() {
                    self.problems.push("[store]: path is for the embedded store; etcd takes endpoints".into());
                }
                let endpoints = store.endpoints.clone().unwrap_or_default();
                if endpoints.is_empty() {
                    self.problems.push("[store]: kind = \"etcd\" needs endpoints = [\"http://host:2379\", …]".into());
                }
                for e in &endpoints {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        self.problems.push(format!("[store].endpoints: {e:?} must start with http:// or https://"));
                    }
                }
                let prefix = store.prefix.clone().unwrap_or_else(|| "/vpcdns/".into());
                if prefix.is_empty() {
                    self.problems.push("[store].prefix must not be empty".into());
                }
                let certs = match (&store.tls_cert, &store.tls_key) {
                    (Some(c), Some(k)) => Some((self.base.join(c), self.base.join(k))),
                    (None, None) => None,
                    _ => {
                        self.problems.push("[store]: give both tls_cert and tls_key, or neither".into());
                        None
                    }
                };
                let tls = match (&store.tls_ca, certs) {
                    (Some(ca), certs) => Some((self.base.join(ca), certs)),
                    (None, None) => None,
                    (None, Some(_)) => {
                        self.problems.push("[store]: a client certificate needs tls_ca (the members' CA)".into());
                        None
                    }
                };
                if tls.is_some() && endpoints.iter().any(|e| e.starts_with("http://")) {
                    self.problems.push("[store]: with TLS every endpoint must be https://".into());
                }
                let user = match (&store.user, &store.password_file) {
                    (Some(user), Some(file)) => {
                        let file = self.base.join(file);
                        match std::fs::read_to_string(&file) {
                            Ok(password) => Some((user.clone(), password.trim_end_matches(['\r', '\n']).to_string())),
                            Err(e) => {
                                self.problems.push(format!("[store].password_file {}: {e}", file.display()));
                                None
                            }
                        }
                    }
                    (None, None) => None,
                    _ => {
                        self.problems.push("[store]: give both user and password_file, or neither".into());
                        None
                    }
                };
                let timeout_ms = store.timeout_ms.unwrap_or(2000);
                if timeout_ms == 0 {
                    self.problems.push("[store].timeout_ms must be at least 1".into());
                }
                let settings = EtcdSettings {
                    endpoints,
                    prefix,
                    tls,
                    user,
                    timeout: std::time::Duration::from_millis(timeout_ms.max(1)),
                };
                Some((StoreSettings::Etcd(settings), self.base.join("vpcdns")))
            }
            other => {
                self.problems.push(format!("[store].kind: {other:?} is not a store (sqlite, etcd)"));
                None
            }
        }
    }

    fn build(&mut self, raw: RawConfig) -> Result<State, ConfigError> {
        let mut server = self.server(raw.server);
        if let Some(m) = raw.metrics {
            let text = m.listen.unwrap_or_else(|| crate::dataplane::metrics::DEFAULT_LISTEN.to_string());
            match text.parse::<SocketAddr>() {
                Ok(addr) => server.metrics = Some(addr),
                Err(_) => self.problems.push(format!("[metrics].listen: {text:?} is not an address:port")),
            }
        }
        if let Some(q) = raw.query_log {
            use crate::dataplane::querylog as ql;
            if q.max_bytes == Some(0) || q.queue == Some(0) {
                self.problems.push("[query_log]: max_bytes and queue must be at least 1".into());
            }
            server.query_log = Some(ql::QueryLogSettings {
                path: self.base.join(&q.path),
                vpcs: q.vpcs,
                max_bytes: q.max_bytes.unwrap_or(ql::DEFAULT_MAX_BYTES),
                keep: q.keep.unwrap_or(ql::DEFAULT_KEEP),
                queue: q.queue.unwrap_or(ql::DEFAULT_QUEUE),
            });
        }
        if let Some(r) = raw.rrl {
            let d = server.rrl;
            server.rrl = crate::model::state::RrlSettings {
                responses_per_second: r.responses_per_second.unwrap_or(d.responses_per_second),
                slip: r.slip.unwrap_or(d.slip),
            };
        }
        if let Some(l) = raw.limits {
            let d = server.limits;
            server.limits = crate::model::state::Limits {
                max_rrset: l.max_rrset.unwrap_or(d.max_rrset),
                max_zones_per_account: l.max_zones_per_account.unwrap_or(d.max_zones_per_account),
                max_records_per_account: l.max_records_per_account.unwrap_or(d.max_records_per_account),
                max_record_bytes_per_account: l.max_record_bytes_per_account.unwrap_or(d.max_record_bytes_per_account),
                max_rules_per_account: l.max_rules_per_account.unwrap_or(d.max_rules_per_account),
                queries_per_source: l.queries_per_source.unwrap_or(d.queries_per_source),
                tcp_connections: l.tcp_connections.unwrap_or(d.tcp_connections).clamp(1, 1_000_000),
                tcp_connections_per_network: l
                    .tcp_connections_per_network
                    .unwrap_or(d.tcp_connections_per_network)
                    .max(1),
                tcp_idle_ms: l.tcp_idle_ms.unwrap_or(d.tcp_idle_ms).clamp(100, 3_600_000),
            };
        }
        if let Some(r) = raw.resolver {
            server.resolver = self.resolver(r);
        }
        let accounts = self.accounts(raw.accounts);
        let users = self.users(raw.users);
        let vpcs = self.vpcs(raw.vpcs);
        let links = self.links(raw.links, &accounts, &users);
        let rules = self.rules(raw.forward_rules, &vpcs);
        let mut zones = BTreeMap::new();
        for raw_zone in raw.zones {
            if let Some(zone) = self.zone(raw_zone, &vpcs)? {
                if zones.contains_key(&zone.id) {
                    self.problems.push(format!(
                        "zone id {:?} is used twice (give one of the zones an explicit `id`)",
                        zone.id.0
                    ));
                    continue;
                }
                zones.insert(zone.id.clone(), zone);
            }
        }
        Ok(State { revision: self.revision, server, accounts, users, vpcs, links, zones, rules: rules.into() })
    }

    fn resolver(&mut self, raw: RawResolver) -> crate::model::state::ResolverSettings {
        let d = crate::model::state::ResolverSettings::default();
        let upstreams = raw
            .upstreams
            .iter()
            .filter_map(|text| match parse_server_address(text) {
                Some(addr) => Some(addr),
                None => {
                    self.problems.push(format!(
                        "[resolver].upstreams: {text:?} is not an address (\"192.0.2.53\", \"192.0.2.53:5353\", \"[2001:db8::53]:53\")"
                    ));
                    None
                }
            })
            .collect();
        let ms = |v: Option<u64>, d: std::time::Duration| v.map_or(d, std::time::Duration::from_millis);
        let settings = crate::model::state::ResolverSettings {
            upstreams,
            timeout: ms(raw.timeout_ms, d.timeout),
            attempts: raw.attempts.unwrap_or(d.attempts),
            deadline: ms(raw.deadline_ms, d.deadline),
            cache_entries: raw.cache_entries.unwrap_or(d.cache_entries),
            max_pending: raw.max_pending.unwrap_or(d.max_pending),
            max_pending_per_account: raw.max_pending_per_account.unwrap_or(d.max_pending_per_account),
            allow_targets: raw
                .allow_targets
                .iter()
                .filter_map(|text| match parse_cidr(text) {
                    Ok(net) => Some(net),
                    Err(e) => {
                        self.problems.push(format!("[resolver].allow_targets: {e}"));
                        None
                    }
                })
                .collect(),
        };
        if settings.timeout.is_zero() || settings.deadline.is_zero() {
            self.problems.push("[resolver]: timeout_ms and deadline_ms must be at least 1".into());
        }
        if settings.attempts == 0 || settings.attempts > 10 {
            self.problems.push("[resolver].attempts must be between 1 and 10".into());
        }
        if settings.max_pending == 0 || settings.max_pending_per_account == 0 {
            self.problems.push("[resolver].max_pending and max_pending_per_account must be at least 1".into());
        }
        settings
    }

    /// `vpcs` lends its ids to the scopes, as for zones.
    fn rules(
        &mut self,
        raw: Vec<RawRule>,
        vpcs: &BTreeMap<VpcId, Vpc>,
    ) -> BTreeMap<String, crate::model::state::ForwardRule> {
        let mut rules = BTreeMap::new();
        for r in raw {
            let domain = match Name::from_text(&r.domain, Some(&Name::root())) {
                Ok(name) => name,
                Err(e) => {
                    self.problems.push(format!("forward rule {:?}: bad domain {:?}: {e}", r.id, r.domain));
                    continue;
                }
            };
            let mut targets = Vec::new();
            for text in &r.targets {
                match parse_server_address(text) {
                    Some(addr) => targets.push(addr),
                    None => self.problems.push(format!("forward rule {:?}: target {text:?} is not an address", r.id)),
                }
            }
            let scope = r
                .scope
                .iter()
                .map(|v| vpcs.get_key_value(v.as_str()).map_or_else(|| VpcId::new(v), |(id, _)| id.clone()))
                .collect();
            let rule =
                crate::model::state::ForwardRule { id: r.id.clone(), account: Uid(r.account), domain, targets, scope };
            if rules.insert(r.id.clone(), rule).is_some() {
                self.problems.push(format!("forward rule id {:?} is used twice", r.id));
            }
        }
        rules
    }

    fn server(&mut self, raw: RawServer) -> ServerSettings {
        let listen_text = raw.listen.unwrap_or_else(|| vec![DEFAULT_LISTEN.to_string()]);
        let mut listen = Vec::new();
        for text in &listen_text {
            match text.parse::<SocketAddr>() {
                Ok(addr) => listen.push(addr),
                Err(_) => self.problems.push(format!(
                    "[server].listen: {text:?} is not an address:port (e.g. \"127.0.0.1:5300\" or \"[::1]:5300\")"
                )),
            }
        }
        if listen_text.is_empty() {
            self.problems.push("[server].listen is empty: give at least one address".into());
        }
        let ns_text = raw.nameserver.unwrap_or_else(|| DEFAULT_NAMESERVER.to_string());
        let nameserver = match Name::from_text(&ns_text, Some(&Name::root())) {
            Ok(name) => name,
            Err(e) => {
                self.problems.push(format!("[server].nameserver: {e}"));
                Name::root()
            }
        };
        ServerSettings {
            listen,
            nameserver,
            limits: crate::model::state::Limits::default(),
            rrl: Default::default(),
            metrics: None,
            query_log: None,
            resolver: crate::model::state::ResolverSettings::default(),
        }
    }

    fn accounts(&mut self, raw: Vec<RawAccount>) -> BTreeMap<Uid, Account> {
        let mut accounts = BTreeMap::new();
        for a in raw {
            let site = match a.site.as_str() {
                "cn" => Site::Cn,
                "intl" => Site::Intl,
                other => {
                    self.problems.push(format!("account {}: site {other:?} is neither \"cn\" nor \"intl\"", a.uid));
                    continue;
                }
            };
            let account = Account { uid: Uid(a.uid.clone()), name: a.name, email: a.email, site };
            if accounts.insert(account.uid.clone(), account).is_some() {
                self.problems.push(format!("account uid {} is defined twice", a.uid));
            }
        }
        accounts
    }

    fn users(&mut self, raw: Vec<RawUser>) -> BTreeMap<(Uid, String), User> {
        let mut users = BTreeMap::new();
        for u in raw {
            let mut policies = Vec::new();
            for p in &u.policies {
                match p.as_str() {
                    "DNSFullAccess" => policies.push(Policy::DnsFullAccess),
                    "DNSReadOnlyAccess" => policies.push(Policy::DnsReadOnlyAccess),
                    other => self.problems.push(format!(
                        "user {}@{}: unknown policy {other:?} (known: DNSFullAccess, DNSReadOnlyAccess)",
                        u.name, u.account
                    )),
                }
            }
            let key = (Uid(u.account.clone()), u.name.clone());
            let user = User { account: Uid(u.account), name: u.name, policies };
            if users.insert(key, user).is_some() {
                self.problems.push("a user is defined twice in one account".into());
            }
        }
        users
    }

    fn vpcs(&mut self, raw: Vec<RawVpc>) -> BTreeMap<VpcId, Vpc> {
        let mut vpcs = BTreeMap::new();
        for v in raw {
            let mut cidrs = Vec::new();
            for text in &v.cidrs {
                match parse_cidr(text) {
                    Ok(net) => cidrs.push(net),
                    Err(message) => self.problems.push(format!("vpc {}: {message}", v.id)),
                }
            }
            let mut listeners = Vec::new();
            for text in &v.listeners {
                match text.parse::<SocketAddr>() {
                    Ok(addr) => listeners.push(addr),
                    Err(_) => self.problems.push(format!("vpc {}: listener {text:?} is not an address:port", v.id)),
                }
            }
            let vpc = Vpc {
                id: VpcId::new(&v.id),
                account: Uid(v.account),
                region: v.region,
                cidrs,
                listeners,
                query_limit: v.query_limit,
            };
            if vpcs.insert(vpc.id.clone(), vpc).is_some() {
                self.problems.push(format!("vpc id {} is defined twice", v.id));
            }
        }
        vpcs
    }

    /// Resolves each link's `linked` name (email or username) to a uid. A uid, a sub-user or an unknown name is
    /// refused here, because the state model holds only resolved root accounts.
    fn links(
        &mut self,
        raw: Vec<RawLink>,
        accounts: &BTreeMap<Uid, Account>,
        users: &BTreeMap<(Uid, String), User>,
    ) -> BTreeSet<Link> {
        let mut links = BTreeSet::new();
        for l in raw {
            match resolve_root_account(&l.linked, accounts, users) {
                Ok(linked) => {
                    let link = Link { account: Uid(l.account.clone()), linked };
                    if !links.insert(link) {
                        self.problems.push(format!("link from {} to {:?} is listed twice", l.account, l.linked));
                    }
                }
                Err(message) => self.problems.push(format!("link from {} to {:?}: {message}", l.account, l.linked)),
            }
        }
        links
    }

    /// `vpcs` lends its ids to the scope, so that each id is stored once.
    fn zone(&mut self, raw: RawZone, vpcs: &BTreeMap<VpcId, Vpc>) -> Result<Option<Zone>, ConfigError> {
        let origin = match Name::from_text(&raw.name, Some(&Name::root())) {
            Ok(name) => name,
            Err(e) => {
                self.problems.push(format!("zone {:?}: bad name: {e}", raw.name));
                return Ok(None);
            }
        };
        let id = ZoneId(raw.id.clone().unwrap_or_else(|| format!("{}/{}", raw.account, origin.lower())));
        let (records, source) = match (&raw.file, raw.records) {
            (Some(_), Some(_)) => {
                self.problems.push(format!("zone {origin}: give either `file` or `records`, not both"));
                return Ok(None);
            }
            (Some(file), None) => {
                let path = self.base.join(file);
                let loaded = zonefile::read_zone_file(&path, &origin, self.base)?;
                self.watched.push(path.clone());
                self.watched.extend(loaded.included);
                (loaded.records, path.display().to_string())
            }
            (None, inline) => {
                let records = self.inline_records(&origin, inline.unwrap_or_default());
                (records, format!("[[zones]] {origin}"))
            }
        };
        let account = Uid(raw.account);
        let scope = raw
            .scope
            .iter()
            .map(|v| vpcs.get_key_value(v.as_str()).map_or_else(|| VpcId::new(v), |(id, _)| id.clone()))
            .collect();
        let records = crate::model::state::records_from(records);
        let revision = self.zone_revision(&id, &origin, &account, &records);
        let fallback = match raw.fallback.as_deref().map(crate::model::state::Fallback::parse) {
            None => crate::model::state::Fallback::NxDomain,
            Some(Some(f)) => f,
            Some(None) => {
                self.problems.push(format!("zone {origin}: fallback must be \"nxdomain\" or \"recurse\""));
                crate::model::state::Fallback::NxDomain
            }
        };
        Ok(Some(Zone { id, name: origin, account, scope, records, revision, origin: source, fallback }))
    }

    fn inline_records(&mut self, origin: &Name, raw: Vec<RawRecord>) -> Vec<Record> {
        let mut records = Vec::with_capacity(raw.len());
        for r in raw {
            let Some(rtype) = rdata::type_from_mnemonic(&r.rtype) else {
                self.problems.push(format!("zone {origin}: record {:?}: unknown type {:?}", r.name, r.rtype));
                continue;
            };
            let owner = match Name::from_text(&r.name, Some(origin)) {
                Ok(owner) => owner,
                Err(e) => {
                    self.problems.push(format!("zone {origin}: record {:?}: {e}", r.name));
                    continue;
                }
            };
            match RData::from_text(rtype, &r.data, origin) {
                Ok(rdata) => records.push(Record { owner, ttl: r.ttl.unwrap_or(DEFAULT_RECORD_TTL), rdata }),
                Err(e) => self.problems.push(format!("zone {origin}: record {} {} {:?}: {e}", r.name, r.rtype, r.data)),
            }
        }
        records
    }

    /// Keeps the previous revision when the zone's content is unchanged.
    fn zone_revision(&self, id: &ZoneId, name: &Name, account: &Uid, records: &ZoneRecords) -> u64 {
        self.previous
            .and_then(|prev| prev.zones.get(id))
            .filter(|z| &z.name == name && &z.account == account && &z.records == records)
            .map_or(self.revision, |z| z.revision)
    }
}

/// Parses a CIDR and normalizes it: host bits cleared, `::ffff:a.b.c.d/n` turned into IPv4.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet =
        text.parse().map_err(|_| format!("{text:?} is not a CIDR prefix (e.g. \"10.0.0.0/16\" or \"fd00::/64\")"))?;
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            let len = v6.prefix_len().saturating_sub(96);
            if v6.prefix_len() < 96 {
                return Err(format!("{text:?}: an IPv4-mapped prefix must be at least /96"));
            }
            return ipnet::Ipv4Net::new(v4, len).map(|n| IpNet::V4(n.trunc())).map_err(|e| format!("{text:?}: {e}"));
        }
    }
    Ok(net.trunc())
}

/// Resolves a link target named by email or username to a root account's uid. Uids and sub-user principals
/// (`user@account`) are refused with a message that says how to name the account instead.
pub fn resolve_root_account(
    text: &str,
    accounts: &BTreeMap<Uid, Account>,
    users: &BTreeMap<(Uid, String), User>,
) -> Result<Uid, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a link names the account by email or username, not by uid".into());
    }
    if let Some(a) = accounts.values().find(|a| a.email.eq_ignore_ascii_case(text) || a.name == text) {
        return Ok(a.uid.clone());
    }
    if let Some((user, account)) = text.split_once('@') {
        let owner = accounts.values().find(|a| a.name == account || a.uid.0 == account);
        if let Some(owner) = owner {
            if users.contains_key(&(owner.uid.clone(), user.to_string())) {
                return Err(format!("{text:?} is a sub-user of {}; only root accounts can be linked", owner.name));
            }
        }
    }
    Err("no root account has this email or username".into())
}
