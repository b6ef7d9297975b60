//! Tenant operations on zones: creating and deleting them, their scopes, their records, and master-file import and
//! export. Record input goes through the same parsers and `validate` as the configuration file; every record change
//! rewrites its zone's document too, so the zone's revision (and SOA serial) moves with its content.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::super::super::auth::random_hex;
use super::super::super::docs::{encode, record_id_in, RecordDoc, ScopeDoc, ZoneDoc};
use super::super::super::error::ControlError;
use super::super::super::fold::ControlState;
use super::super::super::keys;
use super::super::super::{Ctx, Plan};
use super::super::{collect_generations, if_match, new_generation, own_zone, ZoneView};
use crate::dns::name::Name;
use crate::dns::rdata::Record;
use crate::dns::zonefile;
use crate::model::state::{Uid, Zone};

// ---- zones and scopes -------------------------------------------------------------------------------------------

/// The caller's zones.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Zones {
    pub zones: Vec<ZoneView>,
}

/// A zone with its records (each with its id and revision).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ZoneDetail {
    pub id: String,
    pub name: String,
    pub account: String,
    pub scope: Vec<String>,
    pub records: Vec<RecordView>,
    pub zone_revision: u64,
    pub scope_revision: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecordView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
    pub revision: u64,
}

pub(crate) fn list_zones(control: &ControlState, ctx: &Ctx) -> Result<Zones, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let zones = control.state.zones.values().filter(|z| &z.account == me).map(|z| ZoneView::of(control, z)).collect();
    Ok(Zones { zones })
}

pub(crate) fn get_zone(control: &ControlState, ctx: &Ctx, id: &str) -> Result<ZoneDetail, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let (zone, _) = own_zone(control, me, id)?;
    let view = ZoneView::of(control, zone);
    let records = zone
        .records
        .iter()
        .map(|(rid, r)| {
            let doc = RecordDoc::from_record(r);
            let revision = control.key_revision(&keys::record(&zone.id.0, rid));
            RecordView {
                id: rid.as_str().to_string(),
                name: doc.name,
                rtype: doc.rtype,
                ttl: doc.ttl,
                data: doc.data,
                revision,
            }
        })
        .collect();
    Ok(ZoneDetail {
        id: view.id,
        name: view.name,
        account: view.account,
        scope: view.scope,
        records,
        zone_revision: view.zone_revision,
        scope_revision: view.scope_revision,
    })
}

/// What became of a zone or record (a record's answer names its zone).
#[derive(Debug, Serialize)]
struct ZoneChanged<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
}

/// A record as stored, in the answer to the change that stored it.
#[derive(Debug, Serialize)]
struct RecordStored<'a> {
    zone: &'a str,
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    rtype: &'a str,
    ttl: u32,
    data: &'a str,
}

impl<'a> RecordStored<'a> {
    fn of(zone: &'a str, id: &'a str, doc: &'a RecordDoc) -> RecordStored<'a> {
        RecordStored { zone, id, name: &doc.name, rtype: &doc.rtype, ttl: doc.ttl, data: &doc.data }
    }
}

#[derive(Debug, Serialize)]
struct Imported<'a> {
    zone: &'a str,
    records: usize,
}

/// Zone creation input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct NewZone {
    pub name: String,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub records: Vec<RecordInput>,
    /// "nxdomain" (the default) or "recurse".
    #[serde(default)]
    pub fallback: Option<String>,
}

/// A record as the API takes it: the name may be relative to the zone, TTL defaults to 300.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct RecordInput {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: Option<u32>,
    pub data: String,
}

impl RecordInput {
    fn parse(&self, origin: &Name) -> Result<Record, ControlError> {
        let doc = RecordDoc {
            name: self.name.clone(),
            rtype: self.rtype.to_ascii_uppercase(),
            ttl: self.ttl.unwrap_or(crate::settings::DEFAULT_RECORD_TTL),
            data: self.data.clone(),
        };
        let record = doc.to_record(origin).map_err(|e| ControlError::invalid("bad_record", e))?;
        const SERVED: [&str; 9] = ["A", "AAAA", "CNAME", "MX", "TXT", "PTR", "SRV", "CAA", "NS"];
        if !SERVED.contains(&doc.rtype.as_str()) {
            return Err(ControlError::invalid(
                "bad_record",
                format!("records of type {} cannot be managed here", doc.rtype),
            ));
        }
        Ok(record)
    }
}

fn zone_name(text: &str) -> Result<Name, ControlError> {
    Name::from_text(text, Some(&Name::root()))
        .map_err(|e| ControlError::invalid("bad_name", format!("zone name {text:?}: {e}")))
}

pub(crate) fn create_zone(control: &ControlState, ctx: &Ctx, input: NewZone) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let name = zone_name(&input.name)?;
    let id = format!("{}/{}", me.0, name.lower());
    let key = keys::zone(&id);
    if control.key_revision(&key) != 0 {
        return Err(ControlError::conflict("zone_exists", format!("you already have a zone {name}")));
    }
    let fallback = match input.fallback.as_deref().map(|f| (f, crate::model::state::Fallback::parse(f))) {
        None | Some((_, Some(crate::model::state::Fallback::NxDomain))) => String::new(),
        Some((_, Some(crate::model::state::Fallback::Recurse))) => "recurse".into(),
        Some((other, None)) => {
            return Err(ControlError::invalid("bad_fallback", format!("fallback {other:?}: use nxdomain or recurse")))
        }
    };
    check_selectable(control, &me, &input.scope)?;
    let mut plan = Plan::default();
    plan.expect(key.clone(), 0);
    let doc =
        ZoneDoc { id: id.clone(), name: name.to_string(), account: me.0.clone(), generation: String::new(), fallback };
    plan.put(key, &doc);
    if !input.scope.is_empty() {
        plan.put(keys::scope(&id), &ScopeDoc { vpcs: input.scope });
    }
    for r in &input.records {
        let record = r.parse(&name)?;
        plan.put(keys::record(&id, &random_hex(8)?), &RecordDoc::from_record(&record));
    }
    plan.respond(&ZoneChanged { zone: None, id: &id, name: Some(name.to_string()), scope: None, result: None });
    plan.audit = Some(("zone.create".into(), id));
    Ok(plan)
}

pub(crate) fn delete_zone(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    own_zone(control, &me, id)?;
    let mut plan = Plan::default();
    if_match(&mut plan, keys::zone(id), expected);
    plan.delete(keys::zone(id));
    plan.delete(keys::scope(id));
    plan.ops.push(crate::control::store::Op::DeletePrefix { prefix: keys::records(id) });
    plan.respond(&ZoneChanged { zone: None, id, name: None, scope: None, result: Some("deleted") });
    plan.audit = Some(("zone.delete".into(), id.to_string()));
    Ok(plan)
}

/// Every VPC named may go into a scope of `me`: its own, or of an account it has linked. An unknown VPC and another
/// account's unlinked VPC get the same answer, which names no owner: nothing leaks.
pub(crate) fn check_selectable(control: &ControlState, me: &Uid, vpcs: &[String]) -> Result<(), ControlError> {
    for v in vpcs {
        match control.state.vpcs.get(v.as_str()) {
            Some(vpc) if control.state.may_use_vpcs_of(me, &vpc.account) => {}
            _ => {
                return Err(ControlError::invalid(
                    "vpc_not_selectable",
                    format!("vpc {v:?} is neither yours nor of an account you have linked"),
                ))
            }
        }
    }
    Ok(())
}

/// How a scope request changes the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeChange {
    /// A full replace, as the service we model does it.
    Set,
    Add,
    Remove,
}

/// Changes a zone's effective scope. VPCs of accounts the owner has not linked are refused here (and by validation).
pub(crate) fn change_scope(
    control: &ControlState,
    ctx: &Ctx,
    id: &str,
    vpcs: Vec<String>,
    how: ScopeChange,
) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (zone, _) = own_zone(control, &me, id)?;
    check_selectable(control, &me, &vpcs)?;
    let mut scope: Vec<String> = match how {
        ScopeChange::Set => Vec::new(),
        _ => zone.scope.iter().map(|v| v.0.to_string()).collect(),
    };
    match how {
        ScopeChange::Set | ScopeChange::Add => {
            for v in vpcs {
                if !scope.contains(&v) {
                    scope.push(v);
                }
            }
        }
        ScopeChange::Remove => scope.retain(|v| !vpcs.contains(v)),
    }
    let mut plan = Plan::default();
    let key = keys::scope(id);
    if_match(&mut plan, key.clone(), expected);
    plan.put(key, &ScopeDoc { vpcs: scope.clone() });
    plan.respond(&ZoneChanged { zone: None, id, name: None, scope: Some(scope), result: None });
    plan.audit = Some(("zone.scope".into(), id.to_string()));
    Ok(plan)
}

// ---- records ---------------------------------------------------------------------------------------------------

fn touch_zone(plan: &mut Plan, doc: &ZoneDoc, expected: Option<u64>) {
    let key = keys::zone(&doc.id);
    if_match(plan, key.clone(), expected);
    plan.put(key, doc);
}

pub fn add_record(control: &ControlState, ctx: &Ctx, id: &str, input: RecordInput) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (zone, doc) = own_zone(control, &me, id)?;
    let record = input.parse(&zone.name)?;
    let rid = record_id_in(&doc.generation, &random_hex(8)?);
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, expected);
    let stored = RecordDoc::from_record(&record);
    plan.put(keys::record(id, &rid), &stored);
    plan.respond(&RecordStored::of(id, &rid, &stored));
    plan.audit = Some(("record.add".into(), format!("{id} {} {}", stored.name, stored.rtype)));
    Ok(plan)
}

/// Record `rid` of zone `id`, which the caller may write: the zone, its document and the record's key, or 404.
fn own_record<'c>(
    control: &'c ControlState,
    ctx: &Ctx,
    id: &str,
    rid: &str,
) -> Result<(&'c Zone, &'c ZoneDoc, String), ControlError> {
    let me = ctx.actor.tenant()?.require_write()?;
    let (zone, doc) = own_zone(control, me, id)?;
    let key = keys::record(id, rid);
    if control.key_revision(&key) == 0 {
        return Err(ControlError::not_found(format!("no record {rid:?} in zone {id}")));
    }
    Ok((zone, doc, key))
}

pub(crate) fn change_record(
    control: &ControlState,
    ctx: &Ctx,
    id: &str,
    rid: &str,
    input: RecordInput,
) -> Result<Plan, ControlError> {
    let (zone, doc, key) = own_record(control, ctx, id, rid)?;
    let record = input.parse(&zone.name)?;
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, None);
    if_match(&mut plan, key.clone(), ctx.if_match);
    let stored = RecordDoc::from_record(&record);
    plan.put(key, &stored);
    plan.respond(&RecordStored::of(id, rid, &stored));
    plan.audit = Some(("record.change".into(), format!("{id} {rid}")));
    Ok(plan)
}

pub(crate) fn remove_record(control: &ControlState, ctx: &Ctx, id: &str, rid: &str) -> Result<Plan, ControlError> {
    let (_, doc, key) = own_record(control, ctx, id, rid)?;
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, None);
    if_match(&mut plan, key.clone(), ctx.if_match);
    plan.delete(key);
    plan.respond(&ZoneChanged { zone: Some(id), id: rid, name: None, scope: None, result: Some("removed") });
    plan.audit = Some(("record.remove".into(), format!("{id} {rid}")));
    Ok(plan)
}

/// Replaces a zone's records with an RFC 1035 master file. `$INCLUDE` (any file access) is refused in tenant text.
pub fn import_zone(control: &ControlState, ctx: &Ctx, id: &str, text: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (zone, doc) = own_zone(control, &me, id)?;
    // The parser itself refuses $INCLUDE wherever it finds the directive (inside parentheses too).
    let records = zonefile::parse_untrusted_zone(text, Path::new("import"), &zone.name)
        .map_err(|e| ControlError::invalid("bad_zone_file", e.to_string()))?;
    // The records go in as a new generation, which the zone document then switches to (see `control::stage`):
    // atomic however many records, and within etcd's limits per transaction.
    let generation = new_generation()?;
    let mut plan = Plan::default();
    let mut switched = doc.clone();
    switched.generation.clone_from(&generation);
    touch_zone(&mut plan, &switched, expected);
    for record in &records {
        let key = keys::record(id, &record_id_in(&generation, &random_hex(8)?));
        plan.staged.push(crate::control::store::Op::Put { key, value: encode(&RecordDoc::from_record(record)) });
    }
    plan.collect = collect_generations(control, id, &generation);
    plan.respond(&Imported { zone: id, records: records.len() });
    plan.audit = Some(("zone.import".into(), id.to_string()));
    Ok(plan)
}

/// The zone as an RFC 1035 master file.
pub(crate) fn export_zone(control: &ControlState, ctx: &Ctx, id: &str) -> Result<String, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let (zone, _) = own_zone(control, me, id)?;
    let mut text = format!("$ORIGIN {}\n", zone.name);
    for record in zone.records.values() {
        let doc = RecordDoc::from_record(record);
        text.push_str(&format!(
            "{}\t{}\tIN\t{}\t{}\n",
            record.owner.relative_to(&zone.name),
            doc.ttl,
            doc.rtype,
            doc.data
        ));
    }
    Ok(text)
}
