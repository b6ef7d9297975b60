//! The documents the control plane stores, one JSON value per key (see `keys`), and their conversions to and
//! from the served model's types. No I/O, no decisions.

use serde::{Deserialize, Serialize};

use crate::dns::name::Name;
use crate::dns::rdata::{self, RData, Record};
use crate::model::state::{Account, Policy, Uid, User, Vpc, VpcId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountDoc {
    pub uid: String,
    pub name: String,
    pub email: String,
    pub site: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserDoc {
    pub account: String,
    pub name: String,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VpcDoc {
    pub id: String,
    pub account: String,
    #[serde(default)]
    pub region: String,
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub listeners: Vec<String>,
    /// Full UDP answers per second per source address; absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_limit: Option<u32>,
    /// Endpoint ids a trusted front end names the VPC by (PROXY v2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// The VPC's id in the cloud, when a front end sends it and it differs from `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
}

impl From<&Account> for AccountDoc {
    fn from(a: &Account) -> AccountDoc {
        AccountDoc { uid: a.uid.0.clone(), name: a.name.clone(), email: a.email.clone(), site: a.site.to_string() }
    }
}

impl From<&User> for UserDoc {
    fn from(u: &User) -> UserDoc {
        let policies = u.policies.iter().map(|p| policy_name(*p).to_string()).collect();
        UserDoc { account: u.account.0.clone(), name: u.name.clone(), policies }
    }
}

impl From<&Vpc> for VpcDoc {
    fn from(v: &Vpc) -> VpcDoc {
        VpcDoc {
            id: v.id.0.to_string(),
            account: v.account.0.clone(),
            region: v.region.clone(),
            cidrs: v.cidrs.iter().map(ToString::to_string).collect(),
            listeners: v.listeners.iter().map(ToString::to_string).collect(),
            query_limit: v.query_limit,
            endpoints: v.endpoints.clone(),
            cloud_id: v.cloud_id.clone(),
        }
    }
}

/// A verified link. `via` says how it came to be: `verification` (the tenant procedure) or `operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDoc {
    pub account: String,
    pub linked: String,
    pub added_at: u64,
    pub via: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneDoc {
    pub id: String,
    pub name: String,
    pub account: String,
    /// The record generation served: records whose id starts with `<generation>~` (empty: ids without a `~`).
    /// A bulk change writes the next generation first and then switches this field in one small transaction.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generation: String,
    /// "recurse" when names the zone does not hold are resolved through the VPC's rules and upstreams; empty
    /// (or "nxdomain"): NXDOMAIN.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fallback: String,
}

/// A forwarding rule (`rule/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDoc {
    pub id: String,
    pub account: String,
    pub domain: String,
    pub targets: Vec<String>,
    pub vpcs: Vec<String>,
}

impl RuleDoc {
    pub(crate) fn from_rule(rule: &crate::model::state::ForwardRule) -> RuleDoc {
        RuleDoc {
            id: rule.id.clone(),
            account: rule.account.0.clone(),
            domain: rule.domain.to_string(),
            targets: rule.targets.iter().map(ToString::to_string).collect(),
            vpcs: rule.scope.iter().map(|v| v.as_str().to_string()).collect(),
        }
    }

    pub(crate) fn to_rule(&self) -> Result<crate::model::state::ForwardRule, String> {
        let domain = Name::from_text(&self.domain, Some(&Name::root())).map_err(|e| e.to_string())?;
        let targets = self
            .targets
            .iter()
            .map(|t| crate::model::state::parse_server_address(t).ok_or_else(|| format!("bad target {t:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::model::state::ForwardRule {
            id: self.id.clone(),
            account: Uid(self.account.clone()),
            domain,
            targets,
            scope: self.vpcs.iter().map(|v| VpcId::new(v)).collect(),
        })
    }
}

/// The generation a record id belongs to (see [`ZoneDoc::generation`]).
pub(crate) fn generation_of(rid: &str) -> &str {
    rid.split_once('~').map_or("", |(generation, _)| generation)
}

/// A record id in `generation`.
pub(crate) fn record_id_in(generation: &str, base: &str) -> String {
    if generation.is_empty() {
        base.to_string()
    } else {
        format!("{generation}~{base}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDoc {
    pub vpcs: Vec<String>,
}

/// A record in presentation form: absolute owner, type mnemonic, TTL, RDATA text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
}

impl RecordDoc {
    pub(crate) fn from_record(r: &Record) -> RecordDoc {
        RecordDoc {
            name: r.owner.to_string(),
            rtype: rdata::type_name(r.rdata.rtype()).into_owned(),
            ttl: r.ttl,
            data: r.rdata.to_string(),
        }
    }

    /// Parses the record; `origin` completes relative names (API input may be relative to the zone).
    pub(crate) fn to_record(&self, origin: &Name) -> Result<Record, String> {
        let rtype = rdata::type_from_mnemonic(&self.rtype).ok_or_else(|| format!("unknown type {:?}", self.rtype))?;
        let owner = Name::from_text(&self.name, Some(origin)).map_err(|e| format!("name {:?}: {e}", self.name))?;
        let rdata =
            RData::from_text(rtype, &self.data, origin).map_err(|e| format!("{} {:?}: {e}", self.rtype, self.data))?;
        Ok(Record { owner, ttl: self.ttl, rdata })
    }
}

/// An access key: only the SHA-256 of its secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDoc {
    pub id: String,
    pub account: String,
    /// The sub-user the key belongs to; `None` for the root account.
    pub user: Option<String>,
    pub secret_sha256: String,
    pub created: u64,
    pub expires: Option<u64>,
}

/// A pending (or finished) link request. The code is kept only as an HMAC under a secret outside the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequestDoc {
    pub id: String,
    pub account: String,
    pub target: String,
    /// HMAC(secret, salt ‖ id ‖ code): the code itself is never stored in the clear.
    pub code_hmac: String,
    /// Random per request (requests made before it existed have none and can no longer be verified).
    #[serde(default)]
    pub salt: String,
    pub created: u64,
    pub expires: u64,
    pub failed_tries: u32,
    /// `pending`, `verified`, `dead` (too many tries, expired, blocked or superseded).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockDoc {
    pub account: String,
    pub blocked: String,
    pub at: u64,
    /// Why, when vpcdns blocked on the account's behalf (wrong codes); empty when the account blocked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxDoc {
    pub id: String,
    pub account: String,
    pub time: u64,
    pub from: String,
    pub subject: String,
    /// The text; a link request's code appears as a placeholder, rendered only when B's root reads it.
    pub body: String,
    /// The link request whose code the body shows.
    #[serde(default)]
    pub request: Option<String>,
    /// That code, sealed under a key derived from the server secret (see `ops::links`): hex of nonce and ciphertext.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed: String,
    /// Whether its owner has read it (`inbox read`).
    #[serde(default)]
    pub read: bool,
}

/// One audit entry, as stored under each account the event concerns (see `control::audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditDoc {
    pub time_ms: u64,
    /// The account whose audit this copy is in.
    pub account: String,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub remote: String,
    /// The event's id, the same in every account's copy.
    #[serde(default)]
    pub event: String,
    /// The account of the principal (empty for the operator).
    #[serde(default)]
    pub actor_account: String,
    /// For a refused attempt: the status it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For a refused attempt: why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

pub fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, String> {
    serde_json::from_slice(value).map_err(|e| format!("bad document: {e}"))
}

pub fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_default()
}

pub(crate) fn parse_policy(text: &str) -> Option<Policy> {
    match text {
        "DNSFullAccess" => Some(Policy::DnsFullAccess),
        "DNSReadOnlyAccess" => Some(Policy::DnsReadOnlyAccess),
        _ => None,
    }
}

pub(crate) fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::DnsFullAccess => "DNSFullAccess",
        Policy::DnsReadOnlyAccess => "DNSReadOnlyAccess",
    }
}

/// The first outcome of a change sent with an `Idempotency-Key`: a retry with the same key gets it again instead of
/// making the change twice. Written in the change's own transaction; dropped after a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyDoc {
    /// The request the key was first used for (method and path): the same key for another request is refused.
    pub request: String,
    /// The answer, without its revision (the document's own revision is the commit's).
    pub response: serde_json::Value,
    /// Unix time of the change.
    pub created: u64,
}
