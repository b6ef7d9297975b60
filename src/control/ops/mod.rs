//! Operations: each reads the current [`ControlState`] and returns a [`Plan`] (or, for reads, a JSON value).
//!
//! Operations decide who may do what and what the documents become; they never write: `ControlPlane::execute`
//! validates and commits their plans. A tenant only ever sees its own account's resources: another account's zone is
//! "not found", never "forbidden", so that names of other tenants' resources do not leak.

pub(crate) mod declare;
pub(crate) mod explain;
pub(crate) mod inbox;
pub(crate) mod inventory;
pub(crate) mod links;
pub(crate) mod requests;
pub(crate) mod rules;
pub mod tenant;

use std::collections::BTreeMap;

use serde::Serialize;

use super::docs::{RuleDoc, ScopeDoc, ZoneDoc};
use super::error::ControlError;
use super::fold::ControlState;
use super::keys;
use super::Plan;
use crate::model::state::{Uid, VpcId, Zone, ZoneId};
use crate::model::validate::BindingKind;

/// A zone of the caller's own account, or 404.
pub(crate) fn own_zone<'c>(
    control: &'c ControlState,
    account: &Uid,
    id: &str,
) -> Result<(&'c Zone, &'c ZoneDoc), ControlError> {
    let id = ZoneId(id.to_string());
    match (control.state.zones.get(&id), control.zone_docs.get(&id)) {
        (Some(zone), Some(doc)) if &zone.account == account => Ok((zone, doc)),
        _ => Err(ControlError::not_found(format!("no zone {:?} in your account", zone_id_as_named(&id.0)))),
    }
}

/// A zone id as a refusal names it: in lower case with its trailing dot, however it was written. The API rewrites
/// a loosely written id to the zone it names (`api::zone_ids`), any account's: echoing ids as received would tell
/// another account's zones (named canonically) from absent ones (named as written).
pub(crate) fn zone_id_as_named(id: &str) -> String {
    let lower = id.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        lower + "."
    }
}

/// A fresh record generation name (see `ZoneDoc::generation`): time-ordered, never reused.
pub(crate) fn new_generation() -> Result<String, super::ControlError> {
    Ok(format!("g{:x}{}", super::unix_now(), super::auth::random_hex(3)?))
}

/// Deletes of every record of zone `id` that generation `keep` does not hold: the zone's current generation (one
/// prefix delete, or one delete per record for ids without a generation) and anything staged and left behind.
pub(crate) fn collect_generations(control: &ControlState, id: &str, keep: &str) -> Vec<crate::control::store::Op> {
    use crate::control::store::Op;
    let zone_id = crate::model::state::ZoneId(id.to_string());
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
        let mut generations: Vec<&str> = staged.keys().map(|rid| super::docs::generation_of(rid)).collect();
        generations.sort_unstable();
        generations.dedup();
        for generation in generations.into_iter().filter(|g| *g != keep) {
            if generation.is_empty() {
                let rids = staged.keys().filter(|rid| super::docs::generation_of(rid).is_empty());
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

/// An account as answers name it: its uid and, when known, its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AccountRef {
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl AccountRef {
    pub(crate) fn of(control: &ControlState, uid: &Uid) -> AccountRef {
        AccountRef { uid: uid.0.clone(), name: control.state.accounts.get(uid).map(|a| a.name.clone()) }
    }
}

/// A zone as answers show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ZoneView {
    pub id: String,
    pub name: String,
    pub account: String,
    pub scope: Vec<String>,
    pub records: usize,
    pub zone_revision: u64,
    pub scope_revision: u64,
}

impl ZoneView {
    pub(crate) fn of(control: &ControlState, zone: &Zone) -> ZoneView {
        ZoneView {
            id: zone.id.0.clone(),
            name: zone.name.to_string(),
            account: zone.account.0.clone(),
            scope: zone.scope.iter().map(|v| v.as_str().to_string()).collect(),
            records: zone.records.len(),
            zone_revision: control.key_revision(&keys::zone(&zone.id.0)),
            scope_revision: control.key_revision(&keys::scope(&zone.id.0)),
        }
    }
}

/// VPCs taken out of one zone's or rule's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Detached {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub vpcs: Vec<String>,
}

/// Takes VPCs out of zone and rule scopes: for every zone and rule (of `owner`, or of every account), the VPCs that
/// `gone` selects leave its scope, and the changed scope documents are written. Returns what left where, as the
/// answer's `removed_from_scopes` says it: `{"zone": id, "vpcs": […]}` and `{"rule": id, "vpcs": […]}`.
pub(crate) fn remove_from_scopes(
    control: &ControlState,
    plan: &mut Plan,
    owner: Option<&Uid>,
    gone: impl Fn(&VpcId) -> bool,
) -> Vec<Detached> {
    let mine = |account: &Uid| owner.is_none_or(|o| o == account);
    let mut detach: BTreeMap<(BindingKind, String), Vec<VpcId>> = BTreeMap::new();
    for zone in control.state.zones.values().filter(|z| mine(&z.account)) {
        let leaving: Vec<VpcId> = zone.scope.iter().filter(|v| gone(v)).cloned().collect();
        if !leaving.is_empty() {
            detach.insert((BindingKind::Zone, zone.id.0.clone()), leaving);
        }
    }
    for rule in control.state.rules.values().filter(|r| mine(&r.account)) {
        let leaving: Vec<VpcId> = rule.scope.iter().filter(|v| gone(v)).cloned().collect();
        if !leaving.is_empty() {
            detach.insert((BindingKind::Rule, rule.id.clone()), leaving);
        }
    }
    detach.into_iter().filter_map(|((kind, id), vpcs)| detach_vpcs(control, plan, kind, &id, &vpcs)).collect()
}

/// Writes the scope of one zone or rule without `vpcs`; the answer's entry, or `None` when none of them was in it.
pub(crate) fn detach_vpcs(
    control: &ControlState,
    plan: &mut Plan,
    kind: BindingKind,
    id: &str,
    vpcs: &[VpcId],
) -> Option<Detached> {
    let (scope, key) = match kind {
        BindingKind::Zone => (&control.state.zones.get(id)?.scope, keys::scope(id)),
        BindingKind::Rule => (&control.state.rules.get(id)?.scope, keys::rule(id)),
    };
    let (gone, kept): (Vec<&VpcId>, Vec<&VpcId>) = scope.iter().partition(|v| vpcs.contains(v));
    if gone.is_empty() {
        return None;
    }
    let kept: Vec<String> = kept.iter().map(|v| v.as_str().to_string()).collect();
    match kind {
        BindingKind::Zone => plan.put(key, &ScopeDoc { vpcs: kept }),
        BindingKind::Rule => {
            let rule = control.state.rules.get(id)?;
            plan.put(key, &RuleDoc { vpcs: kept, ..RuleDoc::from_rule(rule) });
        }
    }
    let vpcs = gone.iter().map(|v| v.as_str().to_string()).collect();
    Some(match kind {
        BindingKind::Zone => Detached { zone: Some(id.to_string()), rule: None, vpcs },
        BindingKind::Rule => Detached { zone: None, rule: Some(id.to_string()), vpcs },
    })
}
