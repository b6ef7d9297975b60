//! The declarative round trip: `operator export` writes the store's state in the issue-2 TOML schema, and
//! `operator apply` brings such a file into the store through the same validation.
//!
//! Apply is idempotent: documents are compared with what is stored and only differences are written; records get
//! ids derived from their content, so applying the same file twice writes nothing. Links in the file are the
//! operator's word. With `prune`, accounts, users, VPCs, links and zones absent from the file are removed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::super::docs::{
    encode, record_id_in, AccountDoc, LinkDoc, RecordDoc, RuleDoc, ScopeDoc, UserDoc, VpcDoc, ZoneDoc,
};
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use super::{collect_generations, new_generation};
use crate::control::store::Op;
use crate::dns::rdata::Record;
use crate::model::state::{State, ZoneId};

#[derive(Serialize)]
struct ExportFile {
    accounts: Vec<AccountDoc>,
    users: Vec<UserDoc>,
    vpcs: Vec<VpcDoc>,
    links: Vec<ExportLink>,
    zones: Vec<ExportZone>,
    forward_rules: Vec<ExportRule>,
}

#[derive(Serialize)]
struct ExportRule {
    id: String,
    account: String,
    domain: String,
    targets: Vec<String>,
    scope: Vec<String>,
}

#[derive(Serialize)]
struct ExportLink {
    account: String,
    linked: String,
}

#[derive(Serialize)]
struct ExportZone {
    id: String,
    name: String,
    account: String,
    scope: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'static str>,
    records: Vec<ExportRecord>,
}

#[derive(Serialize)]
struct ExportRecord {
    /// The stored id (without its generation), so that applying the export keeps every id; none for a record
    /// whose id was made up when its file was read (it gets one derived from its content).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    ttl: u32,
    data: String,
}

/// The state as a TOML document in the issue-2 schema (zones carry their records inline).
pub(crate) fn export(state: &State) -> Result<String, ControlError> {
    let file = ExportFile {
        accounts: state.accounts.values().map(AccountDoc::from).collect(),
        users: state.users.values().map(UserDoc::from).collect(),
        vpcs: state.vpcs.values().map(VpcDoc::from).collect(),
        links: state
            .links
            .iter()
            .filter_map(|l| {
                let email = state.accounts.get(&l.linked)?.email.clone();
                Some(ExportLink { account: l.account.0.clone(), linked: email })
            })
            .collect(),
        zones: state
            .zones
            .values()
            .map(|z| ExportZone {
                id: z.id.0.clone(),
                name: z.name.to_string(),
                account: z.account.0.clone(),
                scope: z.scope.iter().map(|v| v.0.to_string()).collect(),
                fallback: (z.fallback == crate::model::state::Fallback::Recurse).then_some("recurse"),
                records: z
                    .records
                    .iter()
                    .map(|(rid, r)| {
                        let doc = RecordDoc::from_record(r);
                        ExportRecord {
                            id: Some(rid.split_once('~').map_or(rid.as_str(), |(_, base)| base))
                                .filter(|base| crate::model::records::is_declared_id(base))
                                .map(str::to_string),
                            name: r.owner.relative_to(&z.name),
                            rtype: doc.rtype,
                            ttl: doc.ttl,
                            data: doc.data,
                        }
                    })
                    .collect(),
            })
            .collect(),
        forward_rules: state
            .rules
            .values()
            .map(|r| {
                let doc = RuleDoc::from_rule(r);
                ExportRule {
                    id: doc.id,
                    account: doc.account,
                    domain: doc.domain,
                    targets: doc.targets,
                    scope: doc.vpcs,
                }
            })
            .collect(),
    };
    toml::to_string(&file).map_err(|e| ControlError::internal(format!("cannot write TOML: {e}")))
}

/// A record's id in a declared zone: derived from its content, so the same file gives the same ids.
fn record_id(record: &Record) -> String {
    let doc = RecordDoc::from_record(record);
    let text = format!("{}\t{}\t{}\t{}", doc.name.to_ascii_lowercase(), doc.rtype, doc.ttl, doc.data);
    let digest = Sha256::digest(text.as_bytes());
    format!("d{}", super::super::auth::hex_encode(&digest[..8]))
}

/// The stored id of a declared record in `generation`: the id its file gave it (an export carries them), else one
/// derived from its content.
fn declared_id(generation: &str, rid: &str, record: &Record) -> String {
    if crate::model::records::is_declared_id(rid) {
        record_id_in(generation, rid)
    } else {
        record_id_in(generation, &record_id(record))
    }
}

/// Writes `doc` at `key` unless the stored document is already equal.
fn put_if_changed<T: Serialize>(
    control: &ControlState,
    stored: Option<Vec<u8>>,
    plan: &mut Plan,
    key: String,
    doc: &T,
) {
    let value = encode(doc);
    if stored.as_deref() != Some(value.as_slice()) || control.key_revision(&key) == 0 {
        plan.ops.push(Op::Put { key, value });
    }
}

/// Brings the desired state into the store (see the module docs).
pub(crate) fn apply(control: &ControlState, ctx: &Ctx, desired: &State, prune: bool) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let mut plan = Plan::default();
    let current = &control.state;
    for a in desired.accounts.values() {
        let stored = current.accounts.get(&a.uid).map(|c| encode(&AccountDoc::from(c)));
        put_if_changed(control, stored, &mut plan, keys::account(&a.uid.0), &AccountDoc::from(a));
    }
    for u in desired.users.values() {
        let stored = current.users.get(&(u.account.clone(), u.name.clone())).map(|c| encode(&UserDoc::from(c)));
        put_if_changed(control, stored, &mut plan, keys::user(&u.account.0, &u.name), &UserDoc::from(u));
    }
    for v in desired.vpcs.values() {
        let stored = current.vpcs.get(&v.id).map(|c| encode(&VpcDoc::from(c)));
        put_if_changed(control, stored, &mut plan, keys::vpc(&v.id.0), &VpcDoc::from(v));
    }
    for l in &desired.links {
        if !current.links.contains(l) {
            crate::model::validate::check_new_link(desired, &l.account, &l.linked)
                .map_err(|p| ControlError::InvalidState(vec![p]))?;
            let doc = LinkDoc {
                account: l.account.0.clone(),
                linked: l.linked.0.clone(),
                added_at: ctx.now,
                via: "operator".into(),
            };
            plan.put(keys::link(&l.account.0, &l.linked.0), &doc);
        }
    }
    for zone in desired.zones.values() {
        apply_zone(control, zone, &mut plan)?;
    }
    for rule in desired.rules.values() {
        let stored = current.rules.get(&rule.id).map(|r| encode(&RuleDoc::from_rule(r)));
        put_if_changed(control, stored, &mut plan, keys::rule(&rule.id), &RuleDoc::from_rule(rule));
    }
    if prune {
        prune_absent(control, desired, &mut plan);
    }
    let writes = plan.ops.len() + plan.staged.len();
    plan.respond(&Applied { result: if writes == 0 { "unchanged" } else { "applied" }, writes });
    if writes > 0 {
        plan.audit = Some(("state.apply".into(), format!("{writes} writes")));
    }
    Ok(plan)
}

/// What an apply did.
#[derive(Debug, serde::Serialize)]
struct Applied {
    result: &'static str,
    writes: usize,
}

/// Above this many record writes in one zone, the zone's records are written as a new generation (see
/// `control::stage`): one switch instead of many writes, within any store's transaction limits.
const RESTAGE_ABOVE: usize = 64;

/// The puts and deletes that make the stored records of `zone` (in `generation`) the file's.
fn record_changes(control: &ControlState, zone: &crate::model::state::Zone, generation: &str) -> Vec<Op> {
    let id = &zone.id.0;
    let wanted: BTreeMap<String, &Record> =
        zone.records.iter().map(|(rid, r)| (declared_id(generation, rid, r), r)).collect();
    let stored: BTreeMap<&str, &Record> = control
        .state
        .zones
        .get(&zone.id)
        .map(|z| z.records.iter().map(|(rid, r)| (rid.as_str(), r)).collect())
        .unwrap_or_default();
    let mut ops = Vec::new();
    for (rid, record) in &wanted {
        if !stored.get(rid.as_str()).is_some_and(|r| *r == *record) {
            ops.push(Op::Put { key: keys::record(id, rid), value: encode(&RecordDoc::from_record(record)) });
        }
    }
    for rid in stored.keys().filter(|rid| !wanted.contains_key(**rid)) {
        ops.push(Op::Delete { key: keys::record(id, rid) });
    }
    ops
}

fn apply_zone(control: &ControlState, zone: &crate::model::state::Zone, plan: &mut Plan) -> Result<(), ControlError> {
    let id = &zone.id.0;
    let generation = control.zone_docs.get(&zone.id).map(|d| d.generation.clone()).unwrap_or_default();
    let mut doc = ZoneDoc {
        id: id.clone(),
        name: zone.name.to_string(),
        account: zone.account.0.clone(),
        generation: generation.clone(),
        fallback: if zone.fallback == crate::model::state::Fallback::Recurse {
            "recurse".into()
        } else {
            String::new()
        },
    };
    let scope = ScopeDoc { vpcs: zone.scope.iter().map(|v| v.0.to_string()).collect() };
    let mut record_ops = record_changes(control, zone, &generation);
    if record_ops.len() > RESTAGE_ABOVE {
        let next = new_generation()?;
        record_ops.clear();
        for (rid, record) in zone.records.iter() {
            let key = keys::record(id, &declared_id(&next, rid, record));
            plan.staged.push(Op::Put { key, value: encode(&RecordDoc::from_record(record)) });
        }
        plan.collect.extend(collect_generations(control, id, &next));
        doc.generation = next;
        plan.put(keys::zone(id), &doc);
    }
    let stored_doc = control.zone_docs.get(&zone.id).map(encode);
    if !record_ops.is_empty() {
        // The zone document moves with its content (its revision is the SOA serial).
        plan.put(keys::zone(id), &doc);
    } else if doc.generation != generation {
        // Switched above.
    } else {
        put_if_changed(control, stored_doc, plan, keys::zone(id), &doc);
    }
    let stored_scope = control
        .state
        .zones
        .get(&zone.id)
        .map(|z| encode(&ScopeDoc { vpcs: z.scope.iter().map(|v| v.0.to_string()).collect() }));
    put_if_changed(control, stored_scope, plan, keys::scope(id), &scope);
    plan.ops.extend(record_ops);
    Ok(())
}

fn prune_absent(control: &ControlState, desired: &State, plan: &mut Plan) {
    let current = &control.state;
    let wanted_zones: BTreeSet<&ZoneId> = desired.zones.keys().collect();
    for id in current.zones.keys().filter(|id| !wanted_zones.contains(id)) {
        plan.delete(keys::zone(&id.0));
        plan.delete(keys::scope(&id.0));
        plan.ops.push(Op::DeletePrefix { prefix: keys::records(&id.0) });
    }
    for id in current.rules.keys().filter(|id| !desired.rules.contains_key(*id)) {
        plan.delete(keys::rule(id));
    }
    for l in current.links.iter().filter(|l| !desired.links.contains(l)) {
        plan.delete(keys::link(&l.account.0, &l.linked.0));
    }
    for id in current.vpcs.keys().filter(|id| !desired.vpcs.contains_key(*id)) {
        plan.delete(keys::vpc(&id.0));
    }
    for (a, n) in current.users.keys().filter(|k| !desired.users.contains_key(*k)) {
        plan.delete(keys::user(&a.0, n));
    }
    for uid in current.accounts.keys().filter(|u| !desired.accounts.contains_key(*u)) {
        plan.delete(keys::account(&uid.0));
    }
}
