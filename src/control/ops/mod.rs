//! Operations: each reads the current [`Control`] and returns a [`Plan`] (or, for reads, a JSON value).
//!
//! Operations decide who may do what and what the documents become; they never write: `ControlPlane::execute`
//! validates and commits their plans. A tenant only ever sees its own account's resources: another account's zone is
//! "not found", never "forbidden", so that names of other tenants' resources do not leak.

pub mod declare;
pub mod inventory;
pub mod links;
pub mod rules;
pub mod tenant;

use serde_json::{json, Value};

use super::error::ApiError;
use super::model::{keys, Control, ZoneDoc};
use crate::state::{Uid, Zone, ZoneId};

/// A zone of the caller's own account, or 404.
pub fn own_zone<'c>(control: &'c Control, account: &Uid, id: &str) -> Result<(&'c Zone, &'c ZoneDoc), ApiError> {
    let id = ZoneId(id.to_string());
    match (control.state.zones.get(&id), control.zone_docs.get(&id)) {
        (Some(zone), Some(doc)) if &zone.account == account => Ok((zone, doc)),
        _ => Err(ApiError::not_found(format!("no zone {:?} in your account", id.0))),
    }
}

/// The compare for an `If-Match` the caller sent, if any.
/// A fresh record generation name (see `ZoneDoc::generation`): time-ordered, never reused.
pub fn new_generation() -> Result<String, super::ApiError> {
    Ok(format!("g{:x}{}", super::unix_now(), super::auth::random_hex(3)?))
}

/// Deletes of every record of zone `id` that generation `keep` does not hold: the zone's current generation (one
/// prefix delete, or one delete per record for ids without a generation) and anything staged and left behind.
pub fn collect_generations(control: &Control, id: &str, keep: &str) -> Vec<crate::store::Op> {
    use crate::store::Op;
    let zone_id = crate::state::ZoneId(id.to_string());
    let mut ops = Vec::new();
    let current = control.zone_docs.get(&zone_id).map(|d| d.generation.clone()).unwrap_or_default();
    if current != keep {
        if current.is_empty() {
            if let Some(zone) = control.state.zones.get(&zone_id) {
                ops.extend(zone.records.iter().map(|(rid, _)| Op::Delete { key: keys::record(id, rid) }));
            }
        } else {
            ops.push(Op::DeletePrefix { prefix: format!("{}{}~", keys::records(id), keys::esc(&current)) });
        }
    }
    if let Some(staged) = control.staged.get(&zone_id) {
        let mut generations: Vec<&str> = staged.keys().map(|rid| super::model::generation_of(rid)).collect();
        generations.sort_unstable();
        generations.dedup();
        for generation in generations.into_iter().filter(|g| *g != keep) {
            if generation.is_empty() {
                let rids = staged.keys().filter(|rid| super::model::generation_of(rid).is_empty());
                ops.extend(rids.map(|rid| Op::Delete { key: keys::record(id, rid) }));
            } else {
                ops.push(Op::DeletePrefix { prefix: format!("{}{}~", keys::records(id), keys::esc(generation)) });
            }
        }
    }
    ops
}

pub fn if_match(plan: &mut super::Plan, key: String, expected: Option<u64>) {
    if let Some(revision) = expected {
        plan.expect(key, revision);
    }
}

/// The account's display form in answers.
pub fn account_json(control: &Control, uid: &Uid) -> Value {
    match control.state.accounts.get(uid) {
        Some(a) => json!({ "uid": a.uid.0, "name": a.name }),
        None => json!({ "uid": uid.0 }),
    }
}

/// A zone as answers show it.
pub fn zone_json(control: &Control, zone: &Zone) -> Value {
    json!({
        "id": zone.id.0,
        "name": zone.name.to_string(),
        "account": zone.account.0,
        "scope": zone.scope.iter().map(crate::state::VpcId::as_str).collect::<Vec<_>>(),
        "records": zone.records.len(),
        "zone_revision": control.key_revision(&keys::zone(&zone.id.0)),
        "scope_revision": control.key_revision(&keys::scope(&zone.id.0)),
    })
}
