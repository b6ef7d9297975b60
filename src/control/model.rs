//! The control plane's data: documents as stored (one JSON value per key), the key layout, and [`Control`] — the
//! in-memory view of the store that every API read is served from.
//!
//! The store holds documents; `Control::apply` folds changes (from startup's full listing, from our own commits,
//! later from another node's watch) into memory, keeping the served [`State`] in step. This module does no I/O and
//! makes no decisions about who may do what.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::control::store::Change;
use crate::dns::name::Name;
use crate::dns::rdata::{self, RData, Record};
use crate::model::state::{
    share_scope_ids, Account, Changes, DirtyZone, Link, Policy, RecordId, Served, Site, State, Uid, User, Vpc, VpcId,
    Zone, ZoneId, ZoneRecords,
};

/// The key layout. Id components are escaped so that a `/` inside an id can never forge another key.
pub mod keys {
    use std::borrow::Cow;

    pub const ACCOUNT: &str = "account/";
    pub const USER: &str = "user/";
    pub const VPC: &str = "vpc/";
    pub const LINK: &str = "link/";
    pub const ZONE: &str = "zone/";
    pub const SCOPE: &str = "scope/";
    pub const RECORD: &str = "record/";
    pub const KEY: &str = "key/";
    pub const LINK_REQUEST: &str = "linkreq/";
    pub const BLOCK: &str = "block/";
    pub const INBOX: &str = "inbox/";
    pub const AUDIT: &str = "audit/";
    pub const USAGE: &str = "usage/";
    pub const RULE: &str = "rule/";

    /// `%` and `/` escaped, so that ids join into keys unambiguously.
    pub fn esc(part: &str) -> String {
        part.replace('%', "%25").replace('/', "%2F")
    }

    pub fn unesc(part: &str) -> Cow<'_, str> {
        // Almost no id holds a '%': no copy then (start-up reads a million record keys).
        if part.contains('%') {
            Cow::Owned(part.replace("%2F", "/").replace("%25", "%"))
        } else {
            Cow::Borrowed(part)
        }
    }

    pub fn account(uid: &str) -> String {
        format!("{ACCOUNT}{}", esc(uid))
    }
    pub fn user(uid: &str, name: &str) -> String {
        format!("{USER}{}/{}", esc(uid), esc(name))
    }
    pub fn vpc(id: &str) -> String {
        format!("{VPC}{}", esc(id))
    }
    pub fn link(account: &str, linked: &str) -> String {
        format!("{LINK}{}/{}", esc(account), esc(linked))
    }
    pub fn zone(id: &str) -> String {
        format!("{ZONE}{}", esc(id))
    }
    pub fn scope(id: &str) -> String {
        format!("{SCOPE}{}", esc(id))
    }
    pub fn records(zone: &str) -> String {
        format!("{RECORD}{}/", esc(zone))
    }
    pub fn record(zone: &str, rid: &str) -> String {
        format!("{RECORD}{}/{}", esc(zone), esc(rid))
    }
    /// The (zone id, record id) of a record key.
    pub fn parse_record(key: &str) -> Option<(String, crate::model::state::RecordId)> {
        let (zone, rid) = key.strip_prefix(RECORD)?.split_once('/')?;
        (!rid.contains('/')).then(|| (unesc(zone).into_owned(), unesc(rid).as_ref().into()))
    }
    pub fn access_key(id: &str) -> String {
        format!("{KEY}{}", esc(id))
    }
    pub fn link_request(id: &str) -> String {
        format!("{LINK_REQUEST}{}", esc(id))
    }
    pub fn block(account: &str, blocked: &str) -> String {
        format!("{BLOCK}{}/{}", esc(account), esc(blocked))
    }
    pub fn inbox(account: &str, id: &str) -> String {
        format!("{INBOX}{}/{}", esc(account), esc(id))
    }
    pub fn rule(id: &str) -> String {
        format!("{RULE}{}", esc(id))
    }
    /// An audit entry of `account` (see `control::audit`): the account leads, so a tenant's read is one range.
    pub fn audit(account: &str, millis: u64, event: &str) -> String {
        format!("{AUDIT}{}/{millis:016}-{}", esc(account), esc(event))
    }
    /// A usage bucket: the owner billed, the minute, the node that counted (each node writes only its own).
    pub fn usage(owner: &str, minute: u64, node: &str) -> String {
        format!("{USAGE}{}/{minute:012}/{}", esc(owner), esc(node))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDoc {
    pub uid: String,
    pub name: String,
    pub email: String,
    pub site: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDoc {
    pub account: String,
    pub name: String,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub fn from_rule(rule: &crate::model::state::ForwardRule) -> RuleDoc {
        RuleDoc {
            id: rule.id.clone(),
            account: rule.account.0.clone(),
            domain: rule.domain.to_string(),
            targets: rule.targets.iter().map(ToString::to_string).collect(),
            vpcs: rule.scope.iter().map(|v| v.as_str().to_string()).collect(),
        }
    }

    pub fn to_rule(&self) -> Result<crate::model::state::ForwardRule, String> {
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
pub fn generation_of(rid: &str) -> &str {
    rid.split_once('~').map_or("", |(generation, _)| generation)
}

/// A record id in `generation`.
pub fn record_id_in(generation: &str, base: &str) -> String {
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
    pub fn from_record(r: &Record) -> RecordDoc {
        RecordDoc {
            name: r.owner.to_string(),
            rtype: rdata::type_name(r.rdata.rtype()).into_owned(),
            ttl: r.ttl,
            data: r.rdata.to_string(),
        }
    }

    /// Parses the record; `origin` completes relative names (API input may be relative to the zone).
    pub fn to_record(&self, origin: &Name) -> Result<Record, String> {
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
pub struct BlockDoc {
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
}

/// One audit entry, as stored under each account the event concerns (see `control::audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDoc {
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

/// Record writes (`None` = removed) for a zone not seen yet, in the order they came: the last write of an id
/// counts. A list, not a map, because at start-up it holds every record of the store, arriving in id order.
#[derive(Debug, Clone, Default)]
pub struct PendingRecords(Vec<(RecordId, Option<Record>, u64)>);

impl PendingRecords {
    /// The last write of `id`, if it holds a record: that record's revision.
    fn revision(&self, id: &str) -> Option<u64> {
        let (_, record, revision) = self.0.iter().rev().find(|(rid, _, _)| rid == id)?;
        record.as_ref().map(|_| *revision)
    }

    /// The ids whose last write holds a record.
    fn ids(&self) -> Vec<&str> {
        let mut last: HashMap<&str, bool> = HashMap::new();
        for (rid, record, _) in &self.0 {
            last.insert(rid.as_str(), record.is_some());
        }
        last.into_iter().filter_map(|(id, live)| live.then_some(id)).collect()
    }

    /// The zone's records: the last write of each id that holds one.
    fn into_records(self) -> ZoneRecords {
        let mut writes = self.0;
        // Stable: the writes of one id stay in the order they came (and ids that came in order cost one pass).
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut live: Vec<(RecordId, Record, u64)> = Vec::with_capacity(writes.len());
        let mut writes = writes.into_iter().peekable();
        while let Some((id, record, revision)) = writes.next() {
            let superseded = writes.peek().is_some_and(|next| next.0 == id);
            if let (false, Some(record)) = (superseded, record) {
                live.push((id, record, revision));
            }
        }
        ZoneRecords::from_revisions(live)
    }
}

/// Everything the control plane knows, in memory, as of `revision`.
#[derive(Debug, Clone)]
pub struct Control {
    pub revision: u64,
    /// The served model, kept in step with the documents.
    pub state: State,
    /// mod_revision of every key held here but records' (for If-Match and for answers). Persistent, like the
    /// zones' records, so that copying a `Control` for a trial change is cheap however large the state. A record's
    /// revision is kept with the record (see [`Control::key_revision`]): a million of them would cost a million
    /// inserts here at start-up.
    key_revisions: imbl::HashMap<String, u64>,
    pub zone_docs: BTreeMap<ZoneId, ZoneDoc>,
    pub scopes: HashMap<ZoneId, Vec<VpcId>>,
    /// Records whose zone document has not been seen yet (keys are listed in order: `record/` before `zone/`), with
    /// their revisions: at start-up, every record of the store, sorted into its zone once the zone arrives.
    pending_records: HashMap<ZoneId, PendingRecords>,
    /// Records of a known zone in a generation it does not serve: a bulk change being written (served once the
    /// zone document switches to it), or an old generation not yet deleted. Never served, never validated.
    pub staged: HashMap<ZoneId, HashMap<RecordId, (Record, u64)>>,
    pub link_docs: BTreeMap<(Uid, Uid), LinkDoc>,
    pub keys: BTreeMap<String, KeyDoc>,
    pub link_requests: BTreeMap<String, LinkRequestDoc>,
    pub blocks: BTreeSet<(Uid, Uid)>,
    pub inbox: BTreeMap<(Uid, String), InboxDoc>,
    /// What changed since the last `take_dirty`: which owners of which zones, and whether anything else did (for
    /// incremental validation and compilation).
    dirty: Changes,
}

impl Control {
    pub fn new(served: Served) -> Control {
        Control {
            revision: 0,
            state: State {
                revision: 0,
                served,
                accounts: BTreeMap::new(),
                users: BTreeMap::new(),
                vpcs: BTreeMap::new(),
                links: BTreeSet::new(),
                zones: BTreeMap::new(),
                rules: imbl::OrdMap::new(),
            },
            key_revisions: imbl::HashMap::new(),
            zone_docs: BTreeMap::new(),
            scopes: HashMap::new(),
            pending_records: HashMap::new(),
            staged: HashMap::new(),
            link_docs: BTreeMap::new(),
            keys: BTreeMap::new(),
            link_requests: BTreeMap::new(),
            blocks: BTreeSet::new(),
            inbox: BTreeMap::new(),
            dirty: Changes::default(),
        }
    }

    /// [`State::share_ids`], for the scopes held here too: after a bulk load, where scopes may come before their
    /// VPCs.
    pub fn share_ids(&mut self) {
        self.state.share_ids();
        for scope in self.scopes.values_mut() {
            share_scope_ids(&self.state.vpcs, scope);
        }
    }

    /// What changed since the last call (and forget it).
    pub fn take_dirty(&mut self) -> Changes {
        std::mem::take(&mut self.dirty)
    }

    /// Whether anything but zone content changed since the last `take_dirty`.
    pub fn structure_changed(&self) -> bool {
        self.dirty.structure
    }

    /// The mod_revision of `key`, 0 when absent (the value a create's compare expects).
    pub fn key_revision(&self, key: &str) -> u64 {
        if let Some((zone, rid)) = keys::parse_record(key) {
            let zone = ZoneId(zone);
            return match self.state.zones.get(&zone) {
                Some(z) => z.records.get(&rid).map_or(0, |(_, revision)| revision),
                None => self.pending_records.get(&zone).and_then(|p| p.revision(&rid)).unwrap_or(0),
            };
        }
        self.key_revisions.get(key).copied().unwrap_or(0)
    }

    /// Every key held, records' included, that starts with `prefix`.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        if let Some(zone) = prefix.strip_prefix(keys::RECORD).and_then(|z| z.strip_suffix('/')) {
            // A zone's records (ids are escaped, so the zone part never holds a '/').
            if !zone.contains('/') {
                let id = ZoneId(keys::unesc(zone).into_owned());
                let ids: Vec<&str> = match self.state.zones.get(&id) {
                    Some(z) => z.records.iter().map(|(rid, _)| rid.as_str()).collect(),
                    None => self.pending_records.get(&id).map(PendingRecords::ids).unwrap_or_default(),
                };
                return ids.into_iter().map(|rid| keys::record(&id.0, rid)).collect();
            }
        }
        self.key_revisions.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    /// Folds changes into memory; documents that do not parse are reported and skipped (never a panic), so one bad
    /// value cannot take the service down.
    pub fn apply(&mut self, changes: &[Change]) -> Vec<String> {
        let mut problems = Vec::new();
        for change in changes {
            self.revision = self.revision.max(change.revision);
            // Audit entries and usage buckets are append-only and read from the store on demand: not held here.
            // Records keep their revisions themselves.
            let held = [keys::AUDIT, keys::USAGE, "meta/"].iter().all(|p| !change.key.starts_with(p));
            if !change.key.starts_with(keys::RECORD) {
                match &change.value {
                    Some(_) if held => {
                        self.key_revisions.insert(change.key.clone(), change.revision);
                    }
                    _ => {
                        self.key_revisions.remove(&change.key);
                    }
                }
            }
            if let Err(e) = self.apply_one(change) {
                problems.push(format!("{}: {e}", change.key));
            }
        }
        self.state.revision = self.revision;
        for (id, records) in &self.pending_records {
            if !records.ids().is_empty() {
                problems.push(format!("records of unknown zone {id}"));
            }
        }
        problems
    }

    fn apply_one(&mut self, change: &Change) -> Result<(), String> {
        let key = change.key.as_str();
        let value = change.value.as_deref();
        let parts: SmallVec<[Cow<str>; 3]> = key.split('/').skip(1).map(keys::unesc).collect();
        let kind = key.split('/').next().unwrap_or_default();
        if matches!(kind, "account" | "user" | "vpc" | "link" | "scope" | "rule") {
            self.dirty.structure = true;
        }
        match (kind, parts.as_slice()) {
            ("account", [uid]) => self.apply_account(uid, value),
            ("user", [uid, name]) => self.apply_user(uid, name, value),
            ("vpc", [id]) => self.apply_vpc(id, value),
            ("link", [a, b]) => self.apply_link(a, b, value),
            ("zone", [id]) => self.apply_zone(id, value, change.revision),
            ("scope", [id]) => self.apply_scope(id, value),
            ("record", [zone, rid]) => self.apply_record(zone, rid, value, change.revision),
            ("rule", [id]) => {
                match value {
                    Some(v) => {
                        let mut rule = decode::<RuleDoc>(v)?.to_rule()?;
                        crate::model::state::share_scope_ids(&self.state.vpcs, &mut rule.scope);
                        self.state.rules.insert(id.to_string(), rule);
                    }
                    None => {
                        self.state.rules.remove(id.as_ref());
                    }
                }
                Ok(())
            }
            ("key", [id]) => apply_doc(&mut self.keys, id.to_string(), value),
            ("linkreq", [id]) => apply_doc(&mut self.link_requests, id.to_string(), value),
            ("block", [a, b]) => {
                let pair = (Uid(a.to_string()), Uid(b.to_string()));
                match value {
                    Some(_) => self.blocks.insert(pair),
                    None => self.blocks.remove(&pair),
                };
                Ok(())
            }
            ("inbox", [a, id]) => apply_doc(&mut self.inbox, (Uid(a.to_string()), id.to_string()), value),
            ("audit", _) | ("usage", _) => Ok(()), // read from the store on demand
            ("meta", _) => Ok(()),                 // the store's own bookkeeping (its key layout)
            _ => Err("unknown key".into()),
        }
    }

    fn apply_account(&mut self, uid: &str, value: Option<&[u8]>) -> Result<(), String> {
        let uid = Uid(uid.to_string());
        let Some(value) = value else {
            self.state.accounts.remove(&uid);
            return Ok(());
        };
        let doc: AccountDoc = decode(value)?;
        let site = match doc.site.as_str() {
            "cn" => Site::Cn,
            "intl" => Site::Intl,
            other => return Err(format!("bad site {other:?}")),
        };
        self.state.accounts.insert(uid.clone(), Account { uid, name: doc.name, email: doc.email, site });
        Ok(())
    }

    fn apply_user(&mut self, uid: &str, name: &str, value: Option<&[u8]>) -> Result<(), String> {
        let key = (Uid(uid.to_string()), name.to_string());
        let Some(value) = value else {
            self.state.users.remove(&key);
            return Ok(());
        };
        let doc: UserDoc = decode(value)?;
        let policies = doc.policies.iter().filter_map(|p| parse_policy(p)).collect();
        self.state.users.insert(key, User { account: Uid(doc.account), name: doc.name, policies });
        Ok(())
    }

    fn apply_vpc(&mut self, id: &str, value: Option<&[u8]>) -> Result<(), String> {
        let id = VpcId::new(id);
        let Some(value) = value else {
            self.state.vpcs.remove(&id);
            return Ok(());
        };
        let doc: VpcDoc = decode(value)?;
        let cidrs = doc.cidrs.iter().map(|c| crate::model::state::parse_cidr(c)).collect::<Result<Vec<_>, _>>()?;
        let listeners = doc
            .listeners
            .iter()
            .map(|l| l.parse().map_err(|_| format!("bad listener {l:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let vpc = Vpc {
            id: id.clone(),
            account: Uid(doc.account),
            region: doc.region,
            cidrs,
            listeners,
            query_limit: doc.query_limit,
        };
        self.state.vpcs.insert(id, vpc);
        Ok(())
    }

    fn apply_link(&mut self, a: &str, b: &str, value: Option<&[u8]>) -> Result<(), String> {
        let link = Link { account: Uid(a.to_string()), linked: Uid(b.to_string()) };
        let pair = (link.account.clone(), link.linked.clone());
        match value {
            Some(v) => {
                let doc: LinkDoc = decode(v)?;
                self.state.links.insert(link);
                self.link_docs.insert(pair, doc);
            }
            None => {
                self.state.links.remove(&link);
                self.link_docs.remove(&pair);
            }
        }
        Ok(())
    }

    fn apply_zone(&mut self, id: &str, value: Option<&[u8]>, revision: u64) -> Result<(), String> {
        let id = ZoneId(id.to_string());
        let Some(value) = value else {
            self.zone_docs.remove(&id);
            self.scopes.remove(&id);
            self.state.zones.remove(&id);
            self.pending_records.remove(&id);
            self.staged.remove(&id);
            self.dirty.zones.insert(id, DirtyZone { full: true, owners: BTreeSet::new() });
            self.dirty.structure = true;
            return Ok(());
        };
        let doc: ZoneDoc = decode(value)?;
        let name = Name::from_text(&doc.name, Some(&Name::root())).map_err(|e| e.to_string())?;
        let account = Uid(doc.account.clone());
        let same_generation = self.zone_docs.get(&id).is_none_or(|old| old.generation == doc.generation);
        let fallback = crate::model::state::Fallback::parse(&doc.fallback).unwrap_or_default();
        match self.state.zones.get_mut(&id) {
            // The document is rewritten with every content change: its revision is the zone's (the SOA serial).
            Some(zone) if zone.name == name && zone.account == account && same_generation => {
                zone.revision = revision;
                zone.fallback = fallback;
                self.dirty.zones.entry(id.clone()).or_default();
            }
            Some(zone) if zone.name == name && zone.account == account => {
                // A switch of generation: the staged records of the new one become the zone's; the old ones are
                // unreachable from now on (their deletion follows).
                let staged = self.staged.entry(id.clone()).or_default();
                let mut live = Vec::new();
                staged.retain(|rid, (record, rev)| {
                    let mine = generation_of(rid) == doc.generation;
                    if mine {
                        live.push((rid.clone(), record.clone(), *rev));
                    }
                    !mine
                });
                if staged.is_empty() {
                    self.staged.remove(&id);
                }
                live.sort_by(|a, b| a.0.cmp(&b.0));
                let records = crate::model::records::ZoneRecords::from_revisions(live);
                records.index_ids();
                zone.records = records;
                zone.revision = revision;
                zone.fallback = fallback;
                self.dirty.zones.insert(id.clone(), DirtyZone { full: true, owners: BTreeSet::new() });
            }
            _ => {
                // Keys are listed in order, so scope and records may have arrived before the zone itself.
                let scope = self.scopes.get(&id).cloned().unwrap_or_default();
                let mut pending = self.pending_records.remove(&id).unwrap_or_default();
                // Writes of other generations wait aside (see `staged`).
                if pending.0.iter().any(|(rid, _, _)| generation_of(rid) != doc.generation) {
                    let (mine, others): (Vec<_>, Vec<_>) =
                        pending.0.into_iter().partition(|(rid, _, _)| generation_of(rid) == doc.generation);
                    pending = PendingRecords(mine);
                    let staged = self.staged.entry(id.clone()).or_default();
                    for (rid, record, rev) in others {
                        match record {
                            Some(record) => staged.insert(rid, (record, rev)),
                            None => staged.remove(&rid),
                        };
                    }
                }
                let records = pending.into_records();
                // Changes name records by id: index the ids now rather than on the first change.
                records.index_ids();
                let origin = format!("store zone {}", doc.id);
                let zone = Zone { id: id.clone(), name, account, scope, records, revision, origin, fallback };
                self.state.zones.insert(id.clone(), zone);
                self.dirty.zones.insert(id.clone(), DirtyZone { full: true, owners: BTreeSet::new() });
                self.dirty.structure = true;
            }
        }
        self.zone_docs.insert(id, doc);
        Ok(())
    }

    fn apply_scope(&mut self, id: &str, value: Option<&[u8]>) -> Result<(), String> {
        let id = ZoneId(id.to_string());
        let mut vpcs: Vec<VpcId> = match value {
            Some(v) => decode::<ScopeDoc>(v)?.vpcs.iter().map(|v| VpcId::new(v)).collect(),
            None => Vec::new(),
        };
        share_scope_ids(&self.state.vpcs, &mut vpcs);
        if let Some(zone) = self.state.zones.get_mut(&id) {
            zone.scope = vpcs.clone();
        }
        if vpcs.is_empty() {
            self.scopes.remove(&id);
        } else {
            self.scopes.insert(id, vpcs);
        }
        Ok(())
    }

    fn apply_record(&mut self, zone_id: &str, rid: &str, value: Option<&[u8]>, revision: u64) -> Result<(), String> {
        let new = match value {
            Some(value) => {
                let doc: RecordDoc = decode(value)?;
                // Stored owners and data are absolute, so no origin is needed to read them back.
                Some(doc.to_record(&Name::root())?)
            }
            None => None,
        };
        let other_generation = self
            .zone_docs
            .get(zone_id)
            .is_some_and(|doc| self.state.zones.contains_key(zone_id) && generation_of(rid) != doc.generation);
        if other_generation {
            let staged = self.staged.entry(ZoneId(zone_id.to_string())).or_default();
            match new {
                Some(record) => {
                    staged.insert(rid.into(), (record, revision));
                }
                None => {
                    staged.remove(rid);
                }
            }
            return Ok(());
        }
        let Some(zone) = self.state.zones.get_mut(zone_id) else {
            // Records before their zone (or of a zone deleted in the same change): kept aside until it arrives.
            // (Looked up before inserting: `entry` would copy the zone id for every record.)
            match self.pending_records.get_mut(zone_id) {
                Some(pending) => pending.0.push((rid.into(), new, revision)),
                None if new.is_some() => {
                    let pending = PendingRecords(vec![(rid.into(), new, revision)]);
                    self.pending_records.insert(ZoneId(zone_id.to_string()), pending);
                }
                None => {}
            }
            return Ok(());
        };
        let old = zone.records.remove(rid);
        if let Some(record) = &new {
            zone.records.insert(rid.into(), record.clone(), revision);
        }
        let dirty = self.dirty.zones.entry(ZoneId(zone_id.to_string())).or_default();
        if !dirty.full {
            for record in old.iter().chain(new.iter()) {
                dirty.owners.insert(record.owner.lower());
            }
        }
        Ok(())
    }

    /// The account a principal-facing name (email or username) resolves to, root accounts only.
    pub fn account_by_name(&self, text: &str) -> Option<&Account> {
        self.state.accounts.values().find(|a| a.name == text || a.email.eq_ignore_ascii_case(text))
    }
}

fn apply_doc<K: Ord, T: for<'de> Deserialize<'de>>(
    map: &mut BTreeMap<K, T>,
    key: K,
    value: Option<&[u8]>,
) -> Result<(), String> {
    match value {
        Some(v) => {
            map.insert(key, decode(v)?);
        }
        None => {
            map.remove(&key);
        }
    }
    Ok(())
}

pub fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, String> {
    serde_json::from_slice(value).map_err(|e| format!("bad document: {e}"))
}

pub fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_default()
}

pub fn parse_policy(text: &str) -> Option<Policy> {
    match text {
        "DNSFullAccess" => Some(Policy::DnsFullAccess),
        "DNSReadOnlyAccess" => Some(Policy::DnsReadOnlyAccess),
        _ => None,
    }
}

pub fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::DnsFullAccess => "DNSFullAccess",
        Policy::DnsReadOnlyAccess => "DNSReadOnlyAccess",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(owner: &str, last: u8) -> Record {
        let owner = Name::from_text(owner, None).expect("name");
        Record { owner, ttl: 60, rdata: RData::A(std::net::Ipv4Addr::new(10, 0, 0, last)) }
    }

    /// Writes held for a zone not seen yet: the last write of each id counts, removals included.
    #[test]
    fn pending_records_keep_the_last_write_of_each_id() {
        let mut pending = PendingRecords::default();
        for (id, record, revision) in [
            ("r2", Some(a("b.t.", 2)), 1),
            ("r1", Some(a("a.t.", 1)), 2),
            ("r3", Some(a("c.t.", 3)), 3),
            ("r1", None, 4),
            ("r3", Some(a("d.t.", 4)), 5),
            ("r4", None, 6),
        ] {
            pending.0.push((RecordId::from(id), record, revision));
        }
        assert_eq!((pending.revision("r1"), pending.revision("r3"), pending.revision("r4")), (None, Some(5), None));
        let mut ids = pending.ids();
        ids.sort_unstable();
        assert_eq!(ids, ["r2", "r3"]);
        let records = pending.into_records();
        let got: Vec<(String, Record)> = records.iter().map(|(id, r)| (id.to_string(), r.clone())).collect();
        assert_eq!(got, [("r2".to_string(), a("b.t.", 2)), ("r3".to_string(), a("d.t.", 4))]);
        assert_eq!(records.get("r3").map(|(_, revision)| revision), Some(5));
    }

    fn put<T: Serialize>(revision: u64, key: String, doc: &T) -> Change {
        Change { revision, key, value: Some(encode(doc)) }
    }

    fn zone_doc(generation: &str) -> ZoneDoc {
        ZoneDoc {
            id: "1/t.".into(),
            name: "t.".into(),
            account: "1".into(),
            generation: generation.into(),
            fallback: String::new(),
        }
    }

    fn served(control: &Control) -> Vec<String> {
        let zone = control.state.zones.get("1/t.").expect("zone");
        let mut names: Vec<String> = zone.records.values().map(|r| r.owner.to_string()).collect();
        names.sort();
        names
    }

    /// A zone serves one record generation; the next one waits aside until the zone document switches to it, and
    /// the old one is gone from memory at the switch (its deletes later are no-ops).
    #[test]
    fn a_generation_switch_replaces_the_records_at_once() {
        let mut c = Control::new(crate::testing::state("", None).served);
        let rec = |name: &str, n: u8| RecordDoc::from_record(&a(name, n));
        let mut changes =
            vec![put(1, keys::zone("1/t."), &zone_doc("")), put(1, keys::record("1/t.", "old1"), &rec("old.t.", 1))];
        // Staged: a new generation, not yet served.
        changes.push(put(2, keys::record("1/t.", "g1~a"), &rec("new-a.t.", 2)));
        changes.push(put(3, keys::record("1/t.", "g1~b"), &rec("new-b.t.", 3)));
        assert!(c.apply(&changes).is_empty());
        assert_eq!(served(&c), ["old.t."]);
        assert_eq!(c.staged.get("1/t.").map(HashMap::len), Some(2));
        // The switch.
        assert!(c.apply(&[put(4, keys::zone("1/t."), &zone_doc("g1"))]).is_empty());
        assert_eq!(served(&c), ["new-a.t.", "new-b.t."]);
        assert!(!c.staged.contains_key("1/t."));
        assert_eq!(c.state.zones.get("1/t.").map(|z| z.revision), Some(4));
        // Deleting the old generation changes nothing served; a new record goes into the served generation.
        let delete = Change { revision: 5, key: keys::record("1/t.", "old1"), value: None };
        let added = put(6, keys::record("1/t.", &record_id_in("g1", "c")), &rec("new-c.t.", 4));
        assert!(c.apply(&[delete, added]).is_empty());
        assert_eq!(served(&c), ["new-a.t.", "new-b.t.", "new-c.t."]);
    }

    /// At start-up records come before their zone: each goes to the served generation or aside.
    #[test]
    fn listed_records_are_sorted_by_generation_when_the_zone_arrives() {
        let mut c = Control::new(crate::testing::state("", None).served);
        let rec = |name: &str, n: u8| RecordDoc::from_record(&a(name, n));
        let changes = [
            put(1, keys::record("1/t.", "g1~a"), &rec("live.t.", 1)),
            put(2, keys::record("1/t.", "g2~a"), &rec("staged.t.", 2)),
            put(3, keys::record("1/t.", "legacy"), &rec("old.t.", 3)),
            put(4, keys::zone("1/t."), &zone_doc("g1")),
        ];
        assert!(c.apply(&changes).is_empty());
        assert_eq!(served(&c), ["live.t."]);
        assert_eq!(c.staged.get("1/t.").map(HashMap::len), Some(2));
        assert_eq!(generation_of("g2~a"), "g2");
        assert_eq!(generation_of("legacy"), "");
    }
}
