//! The file's process settings (`[server]`, `[limits]`, `[rrl]`, `[resolver]`, `[metrics]`, `[query_log]`, `[store]`,
//! `[admin]`, `[notify]`) into [`Settings`], defaults from `crate::settings`, every bad value a problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawAdmin, RawConfig, RawLimits, RawQueryLog, RawResolver, RawServer, RawStore};
use super::Builder;
use crate::dns::name::Name;
use crate::model::state::{parse_cidr, parse_server_address};
use crate::settings::{
    self, AdminLimits, ControlSettings, EtcdSettings, EtcdTls, EtcdUser, Limits, ProxySettings, QueryLogSettings,
    ResolverSettings, Retention, RrlSettings, Served, Settings, SmtpSettings, StoreSettings, TcpSettings, TlsFiles,
};

impl Builder<'_> {
    pub(super) fn settings(&mut self, raw: &RawConfig) -> Settings {
        let limits = raw.limits.as_ref();
        let resolver = raw.resolver.as_ref();
        let served = self.served(&raw.server, limits, resolver);
        let rrl = raw.rrl.as_ref().map_or_else(RrlSettings::default, |r| {
            let d = RrlSettings::default();
            RrlSettings {
                responses_per_second: r.responses_per_second.unwrap_or(d.responses_per_second),
                slip: r.slip.unwrap_or(d.slip),
            }
        });
        let metrics = raw.metrics.as_ref().and_then(|m| {
            let text = m.listen.as_deref().unwrap_or(settings::DEFAULT_METRICS_LISTEN);
            let addr = text.parse::<SocketAddr>().ok();
            if addr.is_none() {
                self.problems.push(format!("[metrics].listen: {text:?} is not an address:port"));
            }
            addr
        });
        Settings {
            served,
            tcp: tcp(limits),
            rrl,
            resolver: resolver.map_or_else(ResolverSettings::default, |r| self.resolver_tuning(r)),
            metrics,
            query_log: raw.query_log.as_ref().map(|q| self.query_log(q)),
            control: self.control(raw),
        }
    }

    fn served(&mut self, raw: &RawServer, limits: Option<&RawLimits>, resolver: Option<&RawResolver>) -> Served {
        let d = Served::default();
        let listen = match &raw.listen {
            None => d.listen,
            Some(texts) => {
                if texts.is_empty() {
                    self.problems.push("[server].listen is empty: give at least one address".into());
                }
                texts.iter().filter_map(|text| self.address("[server].listen", text)).collect()
            }
        };
        let nameserver = match &raw.nameserver {
            None => d.nameserver,
            Some(text) => Name::from_text(text, Some(&Name::root())).unwrap_or_else(|e| {
                self.problems.push(format!("[server].nameserver: {e}"));
                Name::root()
            }),
        };
        let upstreams = resolver.map_or_else(Vec::new, |r| self.upstreams(&r.upstreams));
        let allow_targets = resolver.map_or_else(Vec::new, |r| {
            r.allow_targets
                .iter()
                .filter_map(|text| {
                    parse_cidr(text).map_err(|e| self.problems.push(format!("[resolver].allow_targets: {e}"))).ok()
                })
                .collect()
        });
        let proxy = self.proxy(raw);
        Served { listen, nameserver, limits: quotas(limits), upstreams, allow_targets, proxy }
    }

    /// `[server] proxy_from`, `proxy_listen`, `proxy_vpc_tlv`: the trusted front ends and what they send.
    fn proxy(&mut self, raw: &RawServer) -> ProxySettings {
        let from = raw
            .proxy_from
            .iter()
            .filter_map(|text| {
                parse_cidr(text).map_err(|e| self.problems.push(format!("[server].proxy_from: {e}"))).ok()
            })
            .collect();
        let listeners =
            raw.proxy_listen.iter().filter_map(|text| self.address("[server].proxy_listen", text)).collect();
        let vpc_tlv = raw.proxy_vpc_tlv.and_then(|n| match u8::try_from(n) {
            Ok(t) if ProxySettings::is_custom_tlv(t) => Some(t),
            _ => {
                self.problems.push(format!(
                    "[server].proxy_vpc_tlv: {n:#x} is not a free vendor TLV type (0xE2-0xE9, 0xEB-0xED or 0xEF; \
                     the clouds use 0xE0, 0xE1, 0xEA and 0xEE)"
                ));
                None
            }
        });
        ProxySettings { from, listeners, vpc_tlv }
    }

    /// An `address:port` of setting `key`, or a problem.
    fn address(&mut self, key: &str, text: &str) -> Option<SocketAddr> {
        let addr = text.parse::<SocketAddr>().ok();
        if addr.is_none() {
            self.problems
                .push(format!("{key}: {text:?} is not an address:port (e.g. \"127.0.0.1:5300\" or \"[::1]:5300\")"));
        }
        addr
    }

    fn upstreams(&mut self, texts: &[String]) -> Vec<SocketAddr> {
        let mut upstreams = Vec::new();
        for text in texts {
            match parse_server_address(text) {
                Some(addr) => upstreams.push(addr),
                None => self.problems.push(format!(
                    "[resolver].upstreams: {text:?} is not an address (\"192.0.2.53\", \"192.0.2.53:5353\", \
                     \"[2001:db8::53]:53\")"
                )),
            }
        }
        upstreams
    }

    fn resolver_tuning(&mut self, raw: &RawResolver) -> ResolverSettings {
        let d = ResolverSettings::default();
        let settings = ResolverSettings {
            timeout: millis(raw.timeout_ms, d.timeout),
            attempts: raw.attempts.unwrap_or(d.attempts),
            deadline: millis(raw.deadline_ms, d.deadline),
            cache_entries: raw.cache_entries.unwrap_or(d.cache_entries),
            max_pending: raw.max_pending.unwrap_or(d.max_pending),
            max_pending_per_account: raw.max_pending_per_account.unwrap_or(d.max_pending_per_account),
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

    fn query_log(&mut self, raw: &RawQueryLog) -> QueryLogSettings {
        if raw.max_bytes == Some(0) || raw.queue == Some(0) {
            self.problems.push("[query_log]: max_bytes and queue must be at least 1".into());
        }
        let d = QueryLogSettings::at(self.base.join(&raw.path));
        QueryLogSettings {
            vpcs: raw.vpcs.clone(),
            max_bytes: raw.max_bytes.unwrap_or(d.max_bytes),
            keep: raw.keep.unwrap_or(d.keep),
            queue: raw.queue.unwrap_or(d.queue),
            ..d
        }
    }

    /// Managed mode: `[store]` with `[admin]` and `[notify]`; `None` without `[store]` (then `[admin]` and
    /// `[notify]` are problems).
    fn control(&mut self, raw: &RawConfig) -> Option<ControlSettings> {
        let Some(store) = raw.store.as_ref() else {
            if raw.admin.is_some() || raw.notify.is_some() {
                self.problems.push("[admin] and [notify] need [store] (managed mode): add [store] path = \"…\"".into());
            }
            return None;
        };
        let (store_settings, path) = self.store(store)?;
        let admin = raw.admin.as_ref();
        let admin_listen = self.admin_listen(admin);
        let beside_store = |ext: &str| {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let socket = admin.and_then(|a| a.socket.as_ref()).map_or_else(|| beside_store(".sock"), |s| self.base.join(s));
        let secret_file =
            admin.and_then(|a| a.secret_file.as_ref()).map_or_else(|| beside_store(".secret"), |s| self.base.join(s));
        let smtp = raw.notify.as_ref().and_then(|n| n.smtp.as_ref()).map(|s| SmtpSettings {
            host: s.host.clone(),
            port: s.port,
            from: s.from.clone(),
        });
        let node = store.node.clone().unwrap_or_else(host_name);
        let tls = self.tls_files(
            "[admin]",
            admin.and_then(|a| a.tls_cert.as_deref()),
            admin.and_then(|a| a.tls_key.as_deref()),
        );
        let link_code_ttl_secs =
            admin.and_then(|a| a.link_code_ttl_secs).unwrap_or(settings::DEFAULT_LINK_CODE_TTL_SECS);
        if link_code_ttl_secs == 0 {
            self.problems.push("[admin].link_code_ttl_secs must be at least 1".into());
        }
        let admin_limits = self.admin_limits(admin);
        let retention = self.retention(store);
        Some(ControlSettings {
            store: store_settings,
            admin_listen,
            socket,
            secret_file,
            smtp,
            node,
            tls,
            link_code_ttl_secs,
            admin_limits,
            retention,
        })
    }

    /// `[store]`'s retention settings, each at least a second, each span no shorter than the one before it.
    fn retention(&mut self, store: &RawStore) -> Retention {
        let d = Retention::default();
        let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
        let r = Retention {
            audit: secs(store.audit_retention_s, d.audit),
            usage_minutes: secs(store.usage_minutes_s, d.usage_minutes),
            usage_hours: secs(store.usage_hours_s, d.usage_hours),
            usage_days: secs(store.usage_days_s, d.usage_days),
        };
        if [r.audit, r.usage_minutes, r.usage_hours, r.usage_days].iter().any(Duration::is_zero) {
            self.problems.push(
                "[store]: audit_retention_s, usage_minutes_s, usage_hours_s and usage_days_s must be at least 1".into(),
            );
        }
        r
    }

    fn admin_listen(&mut self, admin: Option<&RawAdmin>) -> SocketAddr {
        let default = settings::DEFAULT_ADMIN_LISTEN;
        let Some(text) = admin.and_then(|a| a.listen.as_deref()) else { return default };
        text.parse().unwrap_or_else(|_| {
            self.problems.push(format!("[admin].listen: {text:?} is not an address:port"));
            default
        })
    }

    /// Both files or neither.
    fn tls_files(&mut self, section: &str, cert: Option<&Path>, key: Option<&Path>) -> Option<TlsFiles> {
        match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: self.base.join(cert), key: self.base.join(key) }),
            (None, None) => None,
            _ => {
                self.problems.push(format!("{section}: give both tls_cert and tls_key, or neither"));
                None
            }
        }
    }

    fn admin_limits(&mut self, admin: Option<&RawAdmin>) -> AdminLimits {
        let d = AdminLimits::default();
        let Some(a) = admin else { return d };
        let limits = AdminLimits {
            max_connections: a.max_connections.unwrap_or(d.max_connections),
            max_connections_per_address: a.max_connections_per_address.unwrap_or(d.max_connections_per_address),
            header_timeout: millis(a.header_timeout_ms, d.header_timeout),
            body_timeout: millis(a.body_timeout_ms, d.body_timeout),
            idle_timeout: millis(a.idle_timeout_ms, d.idle_timeout),
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
    fn store(&mut self, store: &RawStore) -> Option<(StoreSettings, PathBuf)> {
        match store.kind.as_deref().unwrap_or("sqlite") {
            "sqlite" => {
                if store.has_etcd_fields() {
                    self.problems.push(
                        "[store]: endpoints, prefix, tls_*, user, password_file, timeout_ms and max_staleness_s are for \
                         kind = \"etcd\""
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
                Some((StoreSettings::Etcd(self.etcd(store)), self.base.join("vpcdns")))
            }
            other => {
                self.problems.push(format!("[store].kind: {other:?} is not a store (sqlite, etcd)"));
                None
            }
        }
    }

    fn etcd(&mut self, store: &RawStore) -> EtcdSettings {
        let endpoints = store.endpoints.clone().unwrap_or_default();
        if endpoints.is_empty() {
            self.problems.push("[store]: kind = \"etcd\" needs endpoints = [\"http://host:2379\", …]".into());
        }
        for e in &endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                self.problems.push(format!("[store].endpoints: {e:?} must start with http:// or https://"));
            }
        }
        let prefix = store.prefix.clone().unwrap_or_else(|| settings::DEFAULT_ETCD_PREFIX.into());
        if prefix.is_empty() {
            self.problems.push("[store].prefix must not be empty".into());
        }
        let client = self.tls_files("[store]", store.tls_cert.as_deref(), store.tls_key.as_deref());
        let tls = match (&store.tls_ca, client) {
            (Some(ca), client) => Some(EtcdTls { ca: self.base.join(ca), client }),
            (None, None) => None,
            (None, Some(_)) => {
                self.problems.push("[store]: a client certificate needs tls_ca (the members' CA)".into());
                None
            }
        };
        if tls.is_some() && endpoints.iter().any(|e| e.starts_with("http://")) {
            self.problems.push("[store]: with TLS every endpoint must be https://".into());
        }
        let user = self.etcd_user(store);
        let timeout = millis(store.timeout_ms, settings::DEFAULT_ETCD_TIMEOUT);
        if timeout.is_zero() {
            self.problems.push("[store].timeout_ms must be at least 1".into());
        }
        let max_staleness = store.max_staleness_s.map(Duration::from_secs);
        if max_staleness.is_some_and(|m| m.is_zero()) {
            self.problems.push("[store].max_staleness_s must be at least 1".into());
        }
        let history = store.history_s.map_or(settings::DEFAULT_ETCD_HISTORY, Duration::from_secs);
        if history.is_zero() {
            self.problems.push("[store].history_s must be at least 1".into());
        }
        let timeout = timeout.max(Duration::from_millis(1));
        EtcdSettings {
            endpoints,
            prefix,
            tls,
            user,
            timeout,
            max_staleness,
            history: history.max(Duration::from_secs(1)),
        }
    }

    fn etcd_user(&mut self, store: &RawStore) -> Option<EtcdUser> {
        match (&store.user, &store.password_file) {
            (Some(name), Some(file)) => {
                let file = self.base.join(file);
                match std::fs::read_to_string(&file) {
                    Ok(password) => Some(EtcdUser {
                        name: name.clone(),
                        password: password.trim_end_matches(['\r', '\n']).to_string(),
                    }),
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
        }
    }
}

impl RawStore {
    fn has_etcd_fields(&self) -> bool {
        self.endpoints.is_some()
            || self.prefix.is_some()
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.user.is_some()
            || self.password_file.is_some()
            || self.timeout_ms.is_some()
            || self.max_staleness_s.is_some()
            || self.history_s.is_some()
    }
}

fn quotas(raw: Option<&RawLimits>) -> Limits {
    let d = Limits::default();
    let Some(l) = raw else { return d };
    Limits {
        max_rrset: l.max_rrset.unwrap_or(d.max_rrset),
        max_zones_per_account: l.max_zones_per_account.unwrap_or(d.max_zones_per_account),
        max_records_per_account: l.max_records_per_account.unwrap_or(d.max_records_per_account),
        max_record_bytes_per_account: l.max_record_bytes_per_account.unwrap_or(d.max_record_bytes_per_account),
        max_rules_per_account: l.max_rules_per_account.unwrap_or(d.max_rules_per_account),
        queries_per_source: l.queries_per_source.unwrap_or(d.queries_per_source),
    }
}

/// TCP bounds, clamped to what a process can hold (at least one connection, idle 100 ms to an hour).
fn tcp(raw: Option<&RawLimits>) -> TcpSettings {
    let d = TcpSettings::default();
    let Some(l) = raw else { return d };
    TcpSettings {
        connections: l.tcp_connections.unwrap_or(d.connections).clamp(1, 1_000_000),
        connections_per_network: l.tcp_connections_per_network.unwrap_or(d.connections_per_network).max(1),
        idle: Duration::from_millis(l.tcp_idle_ms.map_or(d.idle.as_millis() as u64, |ms| ms.clamp(100, 3_600_000))),
    }
}

fn millis(value: Option<u64>, default: Duration) -> Duration {
    value.map_or(default, Duration::from_millis)
}

/// This node's name in usage buckets when `[store] node` is not set.
fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "node".into())
}
