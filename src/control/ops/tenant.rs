//! Tenant operations on the caller's own account: sub-users and keys, VPC listings, zones, scopes and records.
//!
//! Record and zone input goes through the same parsers and the same `validate` as the configuration file. Every
//! record change also rewrites its zone's document, so the zone's revision (and SOA serial) moves with its content
//! and an `If-Match` on the zone guards against concurrent editors.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::{mint_key, random_hex};
use super::super::error::ControlError;
use super::super::model::{
    encode, keys, policy_name, record_id_in, Control, InboxDoc, RecordDoc, ScopeDoc, UserDoc, ZoneDoc,
};
use super::super::{Ctx, Plan};
use super::{collect_generations, if_match, new_generation, own_zone, zone_json};
use crate::dns::name::Name;
use crate::dns::rdata::Record;
use crate::dns::zonefile;
use crate::model::state::{Uid, VpcId};
use crate::model::validate::BindingKind;

// ---- users and keys --------------------------------------------------------------------------------------------

pub fn list_users(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let users: Vec<Value> = control
        .state
        .users
        .values()
        .filter(|u| &u.account == me)
        .map(|u| {
            json!({ "name": u.name, "policies": u.policies.iter().map(|p| policy_name(*p)).collect::<Vec<_>>(),
                    "revision": control.key_revision(&keys::user(&me.0, &u.name)) })
        })
        .collect();
    Ok(json!({ "users": users }))
}

pub fn put_user(control: &Control, ctx: &Ctx, name: &str, policies: Vec<String>) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_root()?.clone();
    for p in &policies {
        if super::super::model::parse_policy(p).is_none() {
            return Err(ControlError::invalid(
                "bad_policy",
                format!("unknown policy {p:?} (DNSFullAccess, DNSReadOnlyAccess)"),
            ));
        }
    }
    let mut plan = Plan::default();
    let key = keys::user(&me.0, name);
    if_match(&mut plan, key.clone(), expected);
    let verb = if control.key_revision(&key) == 0 { "created" } else { "updated" };
    plan.put(key, &UserDoc { account: me.0.clone(), name: name.to_string(), policies });
    plan.response = json!({ "user": format!("{name}@{}", account_name(control, &me)), "result": verb });
    plan.audit = Some(("user.put".into(), name.to_string()));
    Ok(plan)
}

pub fn remove_user(control: &Control, ctx: &Ctx, name: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_root()?.clone();
    if !control.state.users.contains_key(&(me.clone(), name.to_string())) {
        return Err(ControlError::not_found(format!("no user {name:?}")));
    }
    let mut plan = Plan::default();
    if_match(&mut plan, keys::user(&me.0, name), expected);
    plan.delete(keys::user(&me.0, name));
    for key in control.keys.values().filter(|k| k.account == me.0 && k.user.as_deref() == Some(name)) {
        plan.delete(keys::access_key(&key.id));
    }
    plan.response = json!({ "user": name, "result": "removed" });
    plan.audit = Some(("user.remove".into(), name.to_string()));
    Ok(plan)
}

fn account_name(control: &Control, uid: &Uid) -> String {
    control.state.accounts.get(uid).map_or_else(|| uid.0.clone(), |a| a.name.clone())
}

pub fn list_keys(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?;
    let keys: Vec<Value> = control
        .keys
        .values()
        .filter(|k| k.account == me.0)
        .map(|k| {
            json!({ "id": k.id, "user": k.user, "created": k.created, "expires": k.expires,
                    "revision": control.key_revision(&keys::access_key(&k.id)) })
        })
        .collect();
    Ok(json!({ "keys": keys }))
}

/// A new key for the root account or one of its sub-users; the token is shown only in this answer.
pub fn create_key(
    control: &Control,
    ctx: &Ctx,
    user: Option<&str>,
    expires: Option<u64>,
) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?.clone();
    if let Some(user) = user {
        if !control.state.users.contains_key(&(me.clone(), user.to_string())) {
            return Err(ControlError::not_found(format!("no user {user:?}")));
        }
    }
    let key = mint_key(&me, user, ctx.now, expires)?;
    let mut plan = Plan::default();
    plan.put(keys::access_key(&key.doc.id), &key.doc);
    plan.response = json!({ "id": key.doc.id, "user": user, "token": key.token, "expires": expires });
    plan.audit = Some(("key.create".into(), key.doc.id.clone()));
    Ok(plan)
}

/// Deletes a key; with `rotate`, issues its replacement for the same principal in the same transaction.
pub fn remove_key(control: &Control, ctx: &Ctx, id: &str, rotate: bool) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_root()?.clone();
    let old = control
        .keys
        .get(id)
        .filter(|k| k.account == me.0)
        .ok_or_else(|| ControlError::not_found(format!("no key {id:?}")))?;
    let mut plan = Plan::default();
    if_match(&mut plan, keys::access_key(id), expected);
    plan.delete(keys::access_key(id));
    plan.response = json!({ "id": id, "result": "removed" });
    if rotate {
        // The replacement lives as long as the old key was meant to.
        let expires = old.expires.map(|e| ctx.now.saturating_add(e.saturating_sub(old.created)));
        let key = mint_key(&me, old.user.as_deref(), ctx.now, expires)?;
        plan.put(keys::access_key(&key.doc.id), &key.doc);
        plan.response = json!({ "id": key.doc.id, "replaces": id, "user": old.user, "token": key.token, "expires": key.doc.expires });
    }
    plan.audit = Some((if rotate { "key.rotate" } else { "key.remove" }.into(), id.to_string()));
    Ok(plan)
}

// ---- VPCs --------------------------------------------------------------------------------------------------------

/// The caller's own VPCs, and every VPC it may put into a scope (its own and those of accounts it has linked).
pub fn list_vpcs(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let own: Vec<Value> =
        control.state.vpcs.values().filter(|v| &v.account == me).map(super::inventory::vpc_json).collect();
    let selectable: Vec<Value> = control
        .state
        .vpcs
        .values()
        .filter(|v| control.state.may_use_vpcs_of(me, &v.account))
        .map(|v| json!({ "id": v.id.as_str(), "account": v.account.0, "region": v.region }))
        .collect();
    Ok(json!({ "vpcs": own, "selectable": selectable }))
}

/// Every zone of another account that answers in the caller's VPCs (so B sees what A put there).
pub fn foreign_zones(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let zones: Vec<Value> = control
        .state
        .zones
        .values()
        .filter(|z| &z.account != me)
        .filter_map(|z| {
            let vpcs = my_vpcs_in(control, me, &z.scope);
            (!vpcs.is_empty()).then(|| {
                json!({ "zone": z.name.to_string(), "id": z.id.0, "owner": super::AccountRef::of(control, &z.account), "in_vpcs": vpcs })
            })
        })
        .collect();
    Ok(json!({ "zones": zones }))
}

/// Every forwarding rule of another account that applies in the caller's VPCs: where their queries for the domain
/// go instead of the upstreams.
pub fn foreign_rules(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let rules: Vec<Value> = control
        .state
        .rules
        .values()
        .filter(|r| &r.account != me)
        .filter_map(|r| {
            let vpcs = my_vpcs_in(control, me, &r.scope);
            (!vpcs.is_empty()).then(|| {
                json!({ "rule": r.id, "domain": r.domain.to_string(), "targets": r.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "owner": super::AccountRef::of(control, &r.account), "in_vpcs": vpcs })
            })
        })
        .collect();
    Ok(json!({ "rules": rules }))
}

/// The caller's own VPCs among `scope`.
fn my_vpcs_in<'c>(control: &Control, me: &Uid, scope: &'c [VpcId]) -> Vec<&'c str> {
    scope
        .iter()
        .filter(|v| control.state.vpcs.get(*v).is_some_and(|vpc| &vpc.account == me))
        .map(|v| v.as_str())
        .collect()
}

/// The VPC owner takes its VPCs (all of them, or those named) out of another account's zone or rule, without
/// removing the link. A zone or rule that answers in none of the caller's VPCs is not found.
pub fn detach_foreign(
    control: &Control,
    ctx: &Ctx,
    kind: BindingKind,
    id: &str,
    vpcs: &[String],
) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let not_found =
        || ControlError::not_found(format!("no {} {id:?} of another account answers in your VPCs", kind.noun()));
    let (owner, name, scope) = match kind {
        BindingKind::Zone => {
            let z = control.state.zones.get(id).ok_or_else(not_found)?;
            (&z.account, z.name.to_string(), &z.scope)
        }
        BindingKind::Rule => {
            let r = control.state.rules.get(id).ok_or_else(not_found)?;
            (&r.account, r.domain.to_string(), &r.scope)
        }
    };
    let mine = my_vpcs_in(control, &me, scope);
    if *owner == me || mine.is_empty() {
        return Err(not_found());
    }
    let chosen: Vec<VpcId> = if vpcs.is_empty() {
        mine.iter().map(|v| VpcId::new(v)).collect()
    } else {
        for v in vpcs {
            if !mine.contains(&v.as_str()) {
                return Err(ControlError::invalid(
                    "vpc_not_in_scope",
                    format!("vpc {v:?} is not one of your VPCs in the scope of {id}"),
                ));
            }
        }
        vpcs.iter().map(|v| VpcId::new(v)).collect()
    };
    let mut plan = Plan::default();
    let detached = super::detach_vpcs(control, &mut plan, kind, id, &chosen).ok_or_else(not_found)?;
    let me_name = control.state.accounts.get(&me).map_or(me.0.clone(), |a| a.name.clone());
    let listed: Vec<&str> = chosen.iter().map(VpcId::as_str).collect();
    let subject = format!("vpcdns: {me_name} detached {} from your {} {name}", listed.join(", "), kind.noun());
    let body = format!(
        "Account {me_name} took its VPC(s) {} out of the scope of your {} {name} ({id}). It keeps answering in the \
         rest of its scope; the link between your accounts is unchanged.\n",
        listed.join(", "),
        kind.noun()
    );
    let message_id = random_hex(8)?;
    let message = InboxDoc {
        id: message_id.clone(),
        account: owner.0.clone(),
        time: ctx.now,
        from: me_name,
        subject: subject.clone(),
        body: body.clone(),
        request: None,
        sealed: String::new(),
    };
    plan.put(keys::inbox(&owner.0, &message_id), &message);
    plan.mail.push((owner.0.clone(), subject, body));
    plan.response = json!({ "detached": detached });
    plan.audit = Some(("foreign.detach".into(), id.to_string()));
    Ok(plan)
}

// ---- zones and scopes -------------------------------------------------------------------------------------------

pub fn list_zones(control: &Control, ctx: &Ctx) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let zones: Vec<Value> =
        control.state.zones.values().filter(|z| &z.account == me).map(|z| zone_json(control, z)).collect();
    Ok(json!({ "zones": zones }))
}

/// A zone with its records (each with its id and revision).
pub fn get_zone(control: &Control, ctx: &Ctx, id: &str) -> Result<Value, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let (zone, _) = own_zone(control, me, id)?;
    let mut value = zone_json(control, zone);
    let records: Vec<Value> = zone
        .records
        .iter()
        .map(|(rid, r)| {
            let doc = RecordDoc::from_record(r);
            json!({ "id": rid.as_str(), "name": doc.name, "type": doc.rtype, "ttl": doc.ttl, "data": doc.data,
                    "revision": control.key_revision(&keys::record(&zone.id.0, rid)) })
        })
        .collect();
    value["records"] = Value::Array(records);
    Ok(value)
}

/// Zone creation input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
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

pub fn create_zone(control: &Control, ctx: &Ctx, input: NewZone) -> Result<Plan, ControlError> {
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
    plan.response = json!({ "id": id, "name": name.to_string() });
    plan.audit = Some(("zone.create".into(), id));
    Ok(plan)
}

pub fn delete_zone(control: &Control, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    own_zone(control, &me, id)?;
    let mut plan = Plan::default();
    if_match(&mut plan, keys::zone(id), expected);
    plan.delete(keys::zone(id));
    plan.delete(keys::scope(id));
    plan.ops.push(crate::control::store::Op::DeletePrefix { prefix: keys::records(id) });
    plan.response = json!({ "id": id, "result": "deleted" });
    plan.audit = Some(("zone.delete".into(), id.to_string()));
    Ok(plan)
}

/// Every VPC named may go into a scope of `me`: its own, or of an account it has linked. An unknown VPC and another
/// account's unlinked VPC get the same answer, which names no owner: nothing leaks.
pub fn check_selectable(control: &Control, me: &Uid, vpcs: &[String]) -> Result<(), ControlError> {
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
pub enum ScopeChange {
    /// A full replace, as the service we model does it.
    Set,
    Add,
    Remove,
}

/// Changes a zone's effective scope. VPCs of accounts the owner has not linked are refused here (and by validation).
pub fn change_scope(
    control: &Control,
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
    plan.response = json!({ "id": id, "scope": scope });
    plan.audit = Some(("zone.scope".into(), id.to_string()));
    Ok(plan)
}

// ---- records ---------------------------------------------------------------------------------------------------

fn touch_zone(plan: &mut Plan, doc: &ZoneDoc, expected: Option<u64>) {
    let key = keys::zone(&doc.id);
    if_match(plan, key.clone(), expected);
    plan.put(key, doc);
}

pub fn add_record(control: &Control, ctx: &Ctx, id: &str, input: RecordInput) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (zone, doc) = own_zone(control, &me, id)?;
    let record = input.parse(&zone.name)?;
    let rid = record_id_in(&doc.generation, &random_hex(8)?);
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, expected);
    let stored = RecordDoc::from_record(&record);
    plan.put(keys::record(id, &rid), &stored);
    plan.response = json!({ "zone": id, "id": rid, "name": stored.name, "type": stored.rtype, "ttl": stored.ttl, "data": stored.data });
    plan.audit = Some(("record.add".into(), format!("{id} {} {}", stored.name, stored.rtype)));
    Ok(plan)
}

pub fn change_record(
    control: &Control,
    ctx: &Ctx,
    id: &str,
    rid: &str,
    input: RecordInput,
) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (zone, doc) = own_zone(control, &me, id)?;
    let key = keys::record(id, rid);
    if control.key_revision(&key) == 0 {
        return Err(ControlError::not_found(format!("no record {rid:?} in zone {id}")));
    }
    let record = input.parse(&zone.name)?;
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, None);
    if_match(&mut plan, key.clone(), expected);
    let stored = RecordDoc::from_record(&record);
    plan.put(key, &stored);
    plan.response = json!({ "zone": id, "id": rid, "name": stored.name, "type": stored.rtype, "ttl": stored.ttl, "data": stored.data });
    plan.audit = Some(("record.change".into(), format!("{id} {rid}")));
    Ok(plan)
}

pub fn remove_record(control: &Control, ctx: &Ctx, id: &str, rid: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (_, doc) = own_zone(control, &me, id)?;
    let key = keys::record(id, rid);
    if control.key_revision(&key) == 0 {
        return Err(ControlError::not_found(format!("no record {rid:?} in zone {id}")));
    }
    let mut plan = Plan::default();
    touch_zone(&mut plan, doc, None);
    if_match(&mut plan, key.clone(), expected);
    plan.delete(key);
    plan.response = json!({ "zone": id, "id": rid, "result": "removed" });
    plan.audit = Some(("record.remove".into(), format!("{id} {rid}")));
    Ok(plan)
}

/// Replaces a zone's records with an RFC 1035 master file. `$INCLUDE` (any file access) is refused in tenant text.
pub fn import_zone(control: &Control, ctx: &Ctx, id: &str, text: &str) -> Result<Plan, ControlError> {
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
    plan.response = json!({ "zone": id, "records": records.len() });
    plan.audit = Some(("zone.import".into(), id.to_string()));
    Ok(plan)
}

/// The zone as an RFC 1035 master file.
pub fn export_zone(control: &Control, ctx: &Ctx, id: &str) -> Result<String, ControlError> {
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
