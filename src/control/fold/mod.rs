//! [`ControlState`]: the control plane's in-memory view of the store, which every API read is served from.
//!
//! The store holds documents; `ControlState::apply` folds changes (from startup's full listing, from our own
//! commits, from another node's watch) into memory, keeping the served [`State`] in step. This module does no I/O
//! and makes no decisions about who may do what.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

mod zones;

pub(crate) use zones::PendingRecords;

use crate::control::docs::{
    decode, parse_policy, AccountDoc, IdempotencyDoc, InboxDoc, KeyDoc, LinkDoc, LinkRequestDoc, RuleDoc, ScopeDoc,
    UserDoc, VpcDoc, ZoneDoc,
};
use crate::control::keys::{self, Key};
use crate::control::store::Change;
use crate::dns::rdata::Record;
use crate::model::state::{
    share_scope_ids, Account, Changes, Link, RecordId, Served, Site, State, Uid, User, Vpc, VpcId, ZoneId,
};

/// Everything the control plane knows, in memory, as of `revision`.
#[derive(Debug, Clone)]
pub struct ControlState {
    pub revision: u64,
    /// The served model, kept in step with the documents.
    pub state: State,
    /// mod_revision of every key held here but records' (for If-Match and for answers). Persistent, like the
    /// zones' records, so that copying a `ControlState` for a trial change is cheap however large the state. A record's
    /// revision is kept with the record (see [`ControlState::key_revision`]): a million of them would cost a million
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
    /// First outcomes of changes sent with an `Idempotency-Key`, by store key. Persistent: a trial copy is cheap
    /// however many there are.
    pub idempotency: imbl::HashMap<String, std::sync::Arc<IdempotencyDoc>>,
    /// What changed since the last `take_dirty`: which owners of which zones, and whether anything else did (for
    /// incremental validation and compilation).
    dirty: Changes,
}

impl ControlState {
    pub fn new(served: Served) -> ControlState {
        ControlState {
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
            idempotency: imbl::HashMap::new(),
            dirty: Changes::default(),
        }
    }

    /// [`State::share_ids`], for the scopes held here too: after a bulk load, where scopes may come before their
    /// VPCs.
    pub(crate) fn share_ids(&mut self) {
        self.state.share_ids();
        for scope in self.scopes.values_mut() {
            share_scope_ids(&self.state.vpcs, scope);
        }
    }

    /// What changed since the last call (and forget it).
    pub(crate) fn take_dirty(&mut self) -> Changes {
        std::mem::take(&mut self.dirty)
    }

    /// Whether anything but zone content changed since the last `take_dirty`.
    pub(crate) fn structure_changed(&self) -> bool {
        self.dirty.structure
    }

    /// The mod_revision of `key`, 0 when absent (the value a create's compare expects).
    pub(crate) fn key_revision(&self, key: &str) -> u64 {
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
    pub(crate) fn keys_under(&self, prefix: &str) -> Vec<String> {
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
            let held = keys::is_folded(&change.key);
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
        let value = change.value.as_deref();
        // Audit entries and usage buckets (of any layout, the legacy ones included) are read from the store on
        // demand; `meta/` and `node/` are the store's own bookkeeping.
        if !keys::is_folded(&change.key) {
            return Ok(());
        }
        let key = Key::parse(&change.key).ok_or("unknown key")?;
        if key.is_structure() {
            self.dirty.structure = true;
        }
        match key {
            Key::Account { uid } => self.apply_account(&uid, value),
            Key::User { account, name } => self.apply_user(&account, &name, value),
            Key::Vpc { id } => self.apply_vpc(&id, value),
            Key::Link { account, linked } => self.apply_link(&account, &linked, value),
            Key::Zone { id } => self.apply_zone(&id, value, change.revision),
            Key::Scope { zone } => self.apply_scope(&zone, value),
            Key::Record { zone, id } => self.apply_record(&zone, &id, value, change.revision),
            Key::Rule { id } => self.apply_rule(&id, value),
            Key::Access { id } => apply_doc(&mut self.keys, id.into_owned(), value),
            Key::LinkRequest { id } => apply_doc(&mut self.link_requests, id.into_owned(), value),
            Key::Block { account, blocked } => {
                let pair = (Uid(account.into_owned()), Uid(blocked.into_owned()));
                match value {
                    Some(_) => self.blocks.insert(pair),
                    None => self.blocks.remove(&pair),
                };
                Ok(())
            }
            Key::Inbox { account, id } => {
                apply_doc(&mut self.inbox, (Uid(account.into_owned()), id.into_owned()), value)
            }
            Key::Idempotency { .. } => {
                match value {
                    Some(v) => {
                        self.idempotency.insert(change.key.clone(), std::sync::Arc::new(decode::<IdempotencyDoc>(v)?));
                    }
                    None => {
                        self.idempotency.remove(&change.key);
                    }
                }
                Ok(())
            }
            Key::Audit { .. } | Key::Usage { .. } | Key::Node { .. } | Key::Meta => Ok(()),
        }
    }

    fn apply_rule(&mut self, id: &str, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            Some(v) => {
                let mut rule = decode::<RuleDoc>(v)?.to_rule()?;
                share_scope_ids(&self.state.vpcs, &mut rule.scope);
                self.state.rules.insert(id.to_string(), rule);
            }
            None => {
                self.state.rules.remove(id);
            }
        }
        Ok(())
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
            endpoints: doc.endpoints,
            cloud_id: doc.cloud_id,
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

    /// The account a principal-facing name (email or username) resolves to, root accounts only.
    pub(crate) fn account_by_name(&self, text: &str) -> Option<&Account> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::docs::{encode, generation_of, record_id_in, RecordDoc};
    use crate::dns::name::Name;
    use crate::dns::rdata::RData;
    use serde::Serialize;

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

    fn served(control: &ControlState) -> Vec<String> {
        let zone = control.state.zones.get("1/t.").expect("zone");
        let mut names: Vec<String> = zone.records.values().map(|r| r.owner.to_string()).collect();
        names.sort();
        names
    }

    /// A zone serves one record generation; the next one waits aside until the zone document switches to it, and
    /// the old one is gone from memory at the switch (its deletes later are no-ops).
    #[test]
    fn a_generation_switch_replaces_the_records_at_once() {
        let mut c = ControlState::new(crate::testing::state("", None).served);
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
        let mut c = ControlState::new(crate::testing::state("", None).served);
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
