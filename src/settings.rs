//! Every setting of the process and every default, in one home.
//!
//! [`Settings`] is what the configuration file says about this process: where it listens, how it limits clients,
//! how it resolves, what it exports, and (in managed mode) where its control plane keeps state and listens. The
//! part the served model depends on — the name server, listen addresses VPC listeners must match, quotas,
//! upstreams and the targets rules may use — is [`Served`], which `process::config` copies into the state so that
//! `validate` and `compile` see it. Nothing here reads files or knows TOML; `process::config` turns the file into
//! these types and checks their ranges.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::dns::name::Name;

/// How much history an etcd store keeps (`[store] history_s`): as kube-apiserver compacts every 5 minutes.
pub const DEFAULT_ETCD_HISTORY: Duration = Duration::from_secs(300);

/// The DNS listen address when `[server]` gives none.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5300));
/// MNAME of generated SOAs and target of generated NS records when `[server].nameserver` is not set.
pub(crate) const DEFAULT_NAMESERVER: &str = "ns.vpcdns.internal.";
/// TTL of an inline record (or one written through the API) that gives none.
pub(crate) const DEFAULT_RECORD_TTL: u32 = 300;
/// Where the admin API listens when `[admin] listen` is not set.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5380));
/// Where `/metrics` and `/ready` are served when `[metrics]` is present without `listen`.
pub(crate) const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9153";
/// How long a link verification code stays valid when `[admin] link_code_ttl_secs` is not set.
pub(crate) const DEFAULT_LINK_CODE_TTL_SECS: u64 = 600;
/// The SMTP relay's port when `[notify.smtp]` gives none.
pub(crate) const DEFAULT_SMTP_PORT: u16 = 25;
/// The etcd key prefix when `[store] prefix` is not set.
pub(crate) const DEFAULT_ETCD_PREFIX: &str = "/vpcdns/";
/// The deadline of one etcd request against one member when `[store] timeout_ms` is not set.
pub(crate) const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// The query log is rotated past this size…
pub(crate) const DEFAULT_QUERY_LOG_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// …keeping this many rotated files…
pub(crate) const DEFAULT_QUERY_LOG_KEEP: u32 = 5;
/// …with at most this many entries waiting for the writer.
pub(crate) const DEFAULT_QUERY_LOG_QUEUE: usize = 10_000;

/// The process's settings, from the configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// What the served model depends on; a copy lives in the state.
    pub served: Served,
    /// `[limits]` TCP bounds.
    pub tcp: TcpSettings,
    /// `[rrl]`.
    pub rrl: RrlSettings,
    /// `[resolver]` tuning (its upstreams and allowed targets are in [`Served`]).
    pub resolver: ResolverSettings,
    /// Where Prometheus metrics and `/ready` are served (`[metrics]`; off without it).
    pub metrics: Option<SocketAddr>,
    /// The query log (`[query_log]`; off without it).
    pub query_log: Option<QueryLogSettings>,
    /// Managed mode (`[store]`, with `[admin]` and `[notify]`); `None` serves the state in the file.
    pub control: Option<ControlSettings>,
}

impl Settings {
    /// What changed from `old` that this process applies only when it starts again (a reload applies the rest):
    /// one line per group, for the reload's warning.
    pub(crate) fn needs_restart(&self, old: &Settings) -> Vec<&'static str> {
        let groups = [
            (self.served.listen != old.served.listen, "[server].listen"),
            (self.tcp != old.tcp, "[limits] tcp_connections, tcp_connections_per_network, tcp_idle_ms"),
            (self.rrl != old.rrl, "[rrl]"),
            (self.resolver != old.resolver, "[resolver] timeouts, attempts, deadline, cache and pending bounds"),
            (self.metrics != old.metrics, "[metrics]"),
            (self.query_log != old.query_log, "[query_log]"),
            (self.control != old.control, "[store], [admin] or [notify]"),
        ];
        groups.into_iter().filter(|(changed, _)| *changed).map(|(_, group)| group).collect()
    }
}

/// The settings the served model depends on: validation checks against them and compilation reads them, so they
/// apply on every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Every address is served on UDP and TCP; a VPC's listeners must be among them.
    pub listen: Vec<SocketAddr>,
    /// MNAME of generated SOAs and target of generated NS records.
    pub nameserver: Name,
    /// Quotas validation enforces on every state.
    pub limits: Limits,
    /// Where a classified source's names outside every visible zone and rule go; empty: REFUSED.
    pub upstreams: Vec<SocketAddr>,
    /// Loopback and link-local prefixes that forwarding rules may target (none by default).
    pub allow_targets: Vec<IpNet>,
    /// The front ends whose PROXY v2 headers say who the client is.
    pub proxy: ProxySettings,
}

/// Trusted front ends (`[server] proxy_from`, `proxy_listen`, `proxy_vpc_tlv`): load balancers, private endpoints
/// or a DNS front end such as dnsdist that put a PROXY v2 header before every query they relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Sources whose every datagram and connection must start with a header; from any other source a header is
    /// never honoured.
    pub from: Vec<IpNet>,
    /// Listeners that serve front ends only: a query from any other source is dropped there.
    pub listeners: Vec<SocketAddr>,
    /// A vendor TLV type whose value is a VPC id, for front ends the operator runs.
    pub vpc_tlv: Option<u8>,
}

impl ProxySettings {
    /// A vendor TLV type (0xE0-0xEF) that no cloud front end already uses.
    pub fn is_custom_tlv(t: u8) -> bool {
        (0xE0..=0xEF).contains(&t) && !matches!(t, 0xE0 | 0xE1 | 0xEA | 0xEE)
    }
}

impl Default for Served {
    fn default() -> Self {
        Served {
            listen: vec![DEFAULT_LISTEN],
            nameserver: Name::from_text(DEFAULT_NAMESERVER, None).unwrap_or_else(|_| Name::root()),
            limits: Limits::default(),
            upstreams: Vec::new(),
            allow_targets: Vec::new(),
            proxy: ProxySettings::default(),
        }
    }
}

/// Quotas and per-source bounds: a careful server's defaults, configurable under `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Records in one RRset (one owner and type): a huge RRset is an amplification and CPU hazard.
    pub max_rrset: usize,
    /// Zones one account may own.
    pub max_zones_per_account: usize,
    /// Records one account may hold over all its zones.
    pub max_records_per_account: usize,
    /// Bytes of record data (owner names and RDATA in wire form) one account may hold over all its zones.
    pub max_record_bytes_per_account: usize,
    /// Forwarding rules one account may own.
    pub max_rules_per_account: usize,
    /// Full UDP answers one source address gets per second (0: unlimited); a VPC may set its own.
    pub queries_per_source: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rrset: 100,
            max_zones_per_account: 10_000,
            max_records_per_account: 1_000_000,
            max_record_bytes_per_account: 64 << 20,
            max_rules_per_account: 1000,
            queries_per_source: 1024,
        }
    }
}

/// `[limits]` bounds on DNS over TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSettings {
    /// Connections open at once, over all listeners.
    pub connections: usize,
    /// Connections open at once from one client /24 or /56.
    pub connections_per_network: usize,
    /// How long an idle connection stays open (RFC 7766 §6.2.3 suggests seconds).
    pub idle: Duration,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings { connections: 1024, connections_per_network: 256, idle: Duration::from_secs(10) }
    }
}

/// `[rrl]`: response rate limiting for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlSettings {
    /// Responses per second per client network (/24, /56); 0 turns limiting off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated instead of dropped (0: drop them all).
    pub slip: u32,
}

impl Default for RrlSettings {
    fn default() -> Self {
        RrlSettings { responses_per_second: 0, slip: 2 }
    }
}

/// `[resolver]` tuning: how names outside private zones are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolverSettings {
    /// The deadline of one attempt against one server.
    pub timeout: Duration,
    /// Attempts per server within the deadline.
    pub attempts: usize,
    /// The whole resolution's deadline: past it the client gets SERVFAIL with an Extended DNS Error.
    pub deadline: Duration,
    /// Cached answers at the most (positive and negative); the least recently used go first.
    pub cache_entries: usize,
    /// Resolutions in progress at the most; more get SERVFAIL at once.
    pub max_pending: usize,
    /// Resolutions in progress for the VPCs of one account at the most, so that one tenant flooding a dead target
    /// fails alone.
    pub max_pending_per_account: usize,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings {
            timeout: Duration::from_millis(800),
            attempts: 2,
            deadline: Duration::from_millis(2500),
            cache_entries: 10_000,
            max_pending: 1024,
            max_pending_per_account: 256,
        }
    }
}

/// `[query_log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLogSettings {
    pub path: PathBuf,
    /// Only queries from these VPCs are logged; `None` logs every query (those from no VPC included).
    pub vpcs: Option<Vec<String>>,
    /// The file is rotated once it passes this size.
    pub max_bytes: u64,
    /// Rotated files kept beside the current one.
    pub keep: u32,
    /// Entries waiting for the writer at most; past this, entries are dropped and counted.
    pub queue: usize,
}

impl QueryLogSettings {
    /// The log at `path` with the default rotation and queue.
    pub fn at(path: PathBuf) -> QueryLogSettings {
        QueryLogSettings {
            path,
            vpcs: None,
            max_bytes: DEFAULT_QUERY_LOG_MAX_BYTES,
            keep: DEFAULT_QUERY_LOG_KEEP,
            queue: DEFAULT_QUERY_LOG_QUEUE,
        }
    }
}

/// Where the control plane keeps its state and listens (managed mode, `[store]` set).
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
    /// The relay link verification codes are mailed through; without it they wait in the console's inbox.
    pub smtp: Option<SmtpSettings>,
    /// This node's name in usage buckets (default: the host name).
    pub node: String,
    /// With a certificate and key the admin API speaks HTTPS only.
    pub tls: Option<TlsFiles>,
    /// How long a link verification code stays valid.
    pub link_code_ttl_secs: u64,
    /// Bounds on the tenant API's connections and writes.
    pub admin_limits: AdminLimits,
    /// How long audit entries and usage buckets are kept.
    pub retention: Retention,
}

/// How long the history beside the served state is kept (`[store] audit_retention_s`, `usage_minutes_s`,
/// `usage_hours_s`, `usage_days_s`): audit entries are deleted after `audit`; usage is kept per minute for
/// `usage_minutes`, then rolled into hours kept for `usage_hours`, then into days kept for `usage_days`, then
/// deleted. Each is counted from the end of the entry's or bucket's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub audit: Duration,
    pub usage_minutes: Duration,
    pub usage_hours: Duration,
    pub usage_days: Duration,
}

impl Default for Retention {
    /// Audit entries for 400 days and daily usage for 400 days (13 months, as the clouds' billing history), hourly
    /// usage for 35 days, per-minute usage for 2 days.
    fn default() -> Retention {
        const DAY: u64 = 86_400;
        Retention {
            audit: Duration::from_secs(400 * DAY),
            usage_minutes: Duration::from_secs(2 * DAY),
            usage_hours: Duration::from_secs(35 * DAY),
            usage_days: Duration::from_secs(400 * DAY),
        }
    }
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[admin]` bounds: what one client of the tenant API may hold open and how fast an account may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections open at once, all clients together; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// The request line and headers must arrive within this (also the idle time between requests).
    pub header_timeout: Duration,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    /// A connection on which nothing moves for this long is closed.
    pub idle_timeout: Duration,
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
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            writes_per_second: 20,
            write_burst: 200,
        }
    }
}

/// `[notify.smtp]`: the relay verification codes are mailed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub from: String,
}

/// Which store holds the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded store: one file, one node.
    Sqlite(PathBuf),
    /// An etcd cluster shared by several nodes.
    Etcd(EtcdSettings),
}

impl StoreSettings {
    /// How much change history a shared store keeps (the embedded store's own is compacted as it goes).
    pub fn history(&self) -> Duration {
        match self {
            StoreSettings::Etcd(etcd) => etcd.history,
            StoreSettings::Sqlite(_) => DEFAULT_ETCD_HISTORY,
        }
    }
}

impl std::fmt::Display for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Sqlite(path) => write!(f, "{}", path.display()),
            StoreSettings::Etcd(etcd) => write!(f, "etcd {} under {:?}", etcd.endpoints.join(","), etcd.prefix),
        }
    }
}

/// How to reach etcd; the same fields whether or not this binary was built with the `etcd` feature, so that a
/// configuration is checked the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix.
    pub prefix: String,
    /// CA certificate to verify the members by, and a client certificate (PEM); needs https endpoints.
    pub tls: Option<EtcdTls>,
    /// etcd authentication: user name and password.
    pub user: Option<EtcdUser>,
    /// Deadline of one attempt against one member.
    pub timeout: Duration,
    /// Past this long without word from the store (no change, no progress notice), `/ready` says not ready.
    pub max_staleness: Option<Duration>,
    /// How much change history the store keeps (older history is compacted away); a node behind by less catches up
    /// from it, one behind by more reads the whole state again.
    pub history: Duration,
}

impl EtcdSettings {
    /// Plain HTTP to `endpoints`, no authentication, the default prefix and timeout.
    pub fn plain(endpoints: Vec<String>) -> EtcdSettings {
        EtcdSettings {
            endpoints,
            prefix: DEFAULT_ETCD_PREFIX.into(),
            tls: None,
            user: None,
            timeout: DEFAULT_ETCD_TIMEOUT,
            max_staleness: None,
            history: DEFAULT_ETCD_HISTORY,
        }
    }
}

/// TLS towards etcd: the members' CA and, for mutual TLS, this client's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub client: Option<TlsFiles>,
}

/// etcd's user name and password (read from `password_file`).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdUser {
    pub name: String,
    pub password: String,
}

/// The password never reaches a log line.
impl std::fmt::Debug for EtcdUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdUser").field("name", &self.name).field("password", &"…").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let served = Served::default();
        assert_eq!(served.listen, vec![DEFAULT_LISTEN]);
        assert_eq!(served.nameserver.to_string(), DEFAULT_NAMESERVER);
        assert_eq!(DEFAULT_METRICS_LISTEN.parse::<SocketAddr>().map(|a| a.port()).ok(), Some(9153));
        assert_eq!(DEFAULT_ADMIN_LISTEN.port(), 5380);
    }

    #[test]
    fn needs_restart_names_what_a_reload_cannot_apply() {
        let old = Settings::default();
        let mut new = old.clone();
        assert!(new.needs_restart(&old).is_empty());
        // Quotas, upstreams and the name server are served state: a reload applies them.
        new.served.limits.max_rrset = 5;
        new.served.upstreams = vec!["192.0.2.53:53".parse().expect("address")];
        new.served.nameserver = Name::from_text("ns.example.", None).expect("name");
        assert!(new.needs_restart(&old).is_empty());
        new.served.listen.push("127.0.0.2:53".parse().expect("address"));
        new.rrl.responses_per_second = 10;
        new.resolver.attempts = 3;
        new.metrics = Some(DEFAULT_METRICS_LISTEN.parse().expect("address"));
        assert_eq!(
            new.needs_restart(&old),
            vec![
                "[server].listen",
                "[rrl]",
                "[resolver] timeouts, attempts, deadline, cache and pending bounds",
                "[metrics]"
            ]
        );
    }

    #[test]
    fn the_etcd_password_stays_out_of_debug_output() {
        let user = EtcdUser { name: "root".into(), password: "hunter2".into() };
        assert!(!format!("{user:?}").contains("hunter2"));
    }
}
