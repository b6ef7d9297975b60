//! The configuration file's shape, as serde reads it: unknown keys are errors, so a typo never passes silently.
//! Nothing here judges values; `settings` and `state` beside it do.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) accounts: Vec<RawAccount>,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) vpcs: Vec<RawVpc>,
    #[serde(default)]
    pub(super) links: Vec<RawLink>,
    #[serde(default)]
    pub(super) zones: Vec<RawZone>,
    pub(super) store: Option<RawStore>,
    pub(super) admin: Option<RawAdmin>,
    pub(super) limits: Option<RawLimits>,
    pub(super) rrl: Option<RawRrl>,
    pub(super) notify: Option<RawNotify>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) query_log: Option<RawQueryLog>,
    pub(super) resolver: Option<RawResolver>,
    #[serde(default)]
    pub(super) forward_rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResolver {
    #[serde(default)]
    pub(super) upstreams: Vec<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) attempts: Option<usize>,
    pub(super) deadline_ms: Option<u64>,
    pub(super) cache_entries: Option<usize>,
    pub(super) max_pending: Option<usize>,
    pub(super) max_pending_per_account: Option<usize>,
    #[serde(default)]
    pub(super) allow_targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) id: String,
    pub(super) account: String,
    pub(super) domain: String,
    pub(super) targets: Vec<String>,
    #[serde(default)]
    pub(super) scope: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueryLog {
    pub(super) path: PathBuf,
    pub(super) vpcs: Option<Vec<String>>,
    pub(super) max_bytes: Option<u64>,
    pub(super) keep: Option<u32>,
    pub(super) queue: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRrl {
    pub(super) responses_per_second: Option<u32>,
    pub(super) slip: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_rrset: Option<usize>,
    pub(super) max_zones_per_account: Option<usize>,
    pub(super) max_records_per_account: Option<usize>,
    pub(super) max_record_bytes_per_account: Option<usize>,
    pub(super) max_rules_per_account: Option<usize>,
    pub(super) queries_per_source: Option<u32>,
    pub(super) tcp_connections: Option<usize>,
    pub(super) tcp_connections_per_network: Option<usize>,
    pub(super) tcp_idle_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// "sqlite" (the default: the embedded store at `path`) or "etcd".
    pub(super) kind: Option<String>,
    pub(super) path: Option<PathBuf>,
    pub(super) node: Option<String>,
    pub(super) endpoints: Option<Vec<String>>,
    pub(super) prefix: Option<String>,
    pub(super) tls_ca: Option<PathBuf>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) user: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) max_staleness_s: Option<u64>,
    pub(super) history_s: Option<u64>,
    pub(super) audit_retention_s: Option<u64>,
    pub(super) usage_minutes_s: Option<u64>,
    pub(super) usage_hours_s: Option<u64>,
    pub(super) usage_days_s: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<String>,
    pub(super) socket: Option<PathBuf>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) link_code_ttl_secs: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_address: Option<usize>,
    pub(super) header_timeout_ms: Option<u64>,
    pub(super) body_timeout_ms: Option<u64>,
    pub(super) idle_timeout_ms: Option<u64>,
    pub(super) writes_per_second: Option<u32>,
    pub(super) write_burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) smtp: Option<RawSmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) host: String,
    #[serde(default = "default_smtp_port")]
    pub(super) port: u16,
    pub(super) from: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Vec<String>>,
    pub(super) nameserver: Option<String>,
    #[serde(default)]
    pub(super) proxy_from: Vec<String>,
    #[serde(default)]
    pub(super) proxy_listen: Vec<String>,
    pub(super) proxy_vpc_tlv: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) uid: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) site: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) account: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVpc {
    pub(super) id: String,
    pub(super) account: String,
    #[serde(default)]
    pub(super) region: String,
    pub(super) cidrs: Vec<String>,
    #[serde(default)]
    pub(super) listeners: Vec<String>,
    /// Full UDP answers per second per source address (default `[limits] queries_per_source`; 0: unlimited).
    pub(super) query_limit: Option<u32>,
    #[serde(default)]
    pub(super) endpoints: Vec<String>,
    pub(super) cloud_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) account: String,
    pub(super) linked: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) id: Option<String>,
    pub(super) name: String,
    pub(super) account: String,
    #[serde(default)]
    pub(super) scope: Vec<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) records: Option<Vec<RawRecord>>,
    /// "nxdomain" (the default) or "recurse".
    pub(super) fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    /// The record's id (an export carries the store's, so that applying it keeps them).
    pub(super) id: Option<String>,
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) rtype: String,
    pub(super) ttl: Option<u32>,
    pub(super) data: String,
}

fn default_smtp_port() -> u16 {
    crate::settings::DEFAULT_SMTP_PORT
}
