//! The VPC owner's own names win: the tenancy rule applied to every change before it is validated.
//!
//! A linked account may add names to another account's VPC, never take the names that account binds there itself
//! (see [`crate::model::validate::shadowed`]). So a change that would leave a foreign zone or rule at or below such a name
//! is settled here, in the same commit:
//! - made by the VPC's owner (it binds the name now): the foreign item leaves that VPC's scope, its owner is told
//!   (inbox, e-mail, audit), and the answer lists what was detached — the owner is never blocked;
//! - made by anyone else (the linked account, the operator): refused with the reason;
//! - already there before the change (two nodes raced): detached, whoever writes next.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::docs::InboxDoc;
use super::fold::ControlState;
use super::keys;
use super::ops::detach_vpcs;
use super::{Actor, ControlError, Plan};
use crate::model::state::VpcId;
use crate::model::validate::{shadowed, BindingKind, Shadowed};

/// Settles every shadowing `next` holds, adding the detaching writes to `plan` (and applying them to `next`).
pub(crate) fn resolve(
    current: &ControlState,
    next: &mut ControlState,
    actor: &Actor,
    plan: &mut Plan,
    now: u64,
    revision: u64,
) -> Result<(), ControlError> {
    // Only a change of structure (scopes, rules, zones, links, VPCs) can bring one; record changes never do.
    let found = if next.structure_changed() { shadowed(&next.state) } else { Vec::new() };
    if found.is_empty() {
        return Ok(());
    }
    let before: HashSet<(VpcId, BindingKind, String)> =
        shadowed(&current.state).into_iter().map(|s| (s.vpc, s.kind, s.id)).collect();
    let mut refused = Vec::new();
    let mut detach: BTreeMap<(BindingKind, String), Vec<Shadowed>> = BTreeMap::new();
    for s in found {
        let known = before.contains(&(s.vpc.clone(), s.kind, s.id.clone()));
        let by_vpc_owner = matches!(actor, Actor::Tenant(t) if t.account == s.vpc_owner);
        if known || by_vpc_owner {
            detach.entry((s.kind, s.id.clone())).or_default().push(s);
        } else {
            refused.push(s);
        }
    }
    if !refused.is_empty() {
        return Err(ControlError::InvalidState(refused.iter().map(refusal).collect()));
    }
    let mut extra = Plan::default();
    let mut report = Vec::new();
    for ((kind, id), items) in detach {
        let vpcs: Vec<VpcId> = items.iter().map(|s| s.vpc.clone()).collect();
        let Some(detached) = detach_vpcs(next, &mut extra, kind, &id, &vpcs) else { continue };
        let Some(first) = items.first() else { continue };
        report.push(DetachedForeign { detached, owner: first.owner.0.clone(), name: first.name.to_string() });
        tell_owner(next, &mut extra, &items, now)?;
    }
    let changes = super::write::changes_of(&extra.ops, next, revision);
    let problems = next.apply(&changes);
    if !problems.is_empty() {
        return Err(ControlError::internal(format!("detaching shadowed bindings: {}", problems.join("; "))));
    }
    plan.ops.append(&mut extra.ops);
    plan.mail.append(&mut extra.mail);
    if let Value::Object(map) = &mut plan.response {
        map.insert("detached_foreign".into(), serde_json::to_value(report).unwrap_or_default());
    }
    Ok(())
}

/// A foreign zone or rule that left some of the caller's VPCs, in the answer's `detached_foreign`.
#[derive(Debug, Serialize)]
struct DetachedForeign {
    #[serde(flatten)]
    detached: super::ops::Detached,
    owner: String,
    name: String,
}

/// Why a change that would take a VPC owner's names is refused (naming nothing of the owner's but the name).
fn refusal(s: &Shadowed) -> String {
    format!(
        "{} {} ({}) would be at or below {}, which vpc {}'s own account binds there: a linked account may add names \
         to a VPC, never take over the owner's",
        s.kind.noun(),
        s.name,
        s.id,
        s.own_name,
        s.vpc
    )
}

/// An inbox message (and e-mail) to the owner of a detached zone or rule.
fn tell_owner(control: &ControlState, plan: &mut Plan, items: &[Shadowed], now: u64) -> Result<(), ControlError> {
    let Some(first) = items.first() else { return Ok(()) };
    let vpc_owner = control.state.accounts.get(&first.vpc_owner).map_or(first.vpc_owner.0.clone(), |a| a.name.clone());
    let vpcs: Vec<&str> = items.iter().map(|s| s.vpc.as_str()).collect();
    let subject = format!("vpcdns: your {} {} no longer answers in {}", first.kind.noun(), first.name, vpcs.join(", "));
    let body = format!(
        "Account {vpc_owner} now binds {} itself in {}. A VPC owner's own names always win in its VPCs, so your {} \
         {} ({}) left the scope of {} there. It keeps answering in the rest of its scope.\n",
        first.own_name,
        vpcs.join(", "),
        first.kind.noun(),
        first.name,
        first.id,
        if vpcs.len() == 1 { "that VPC" } else { "those VPCs" },
    );
    let id = super::auth::random_hex(8)?;
    let message = InboxDoc {
        id: id.clone(),
        account: first.owner.0.clone(),
        time: now,
        from: "vpcdns".into(),
        subject: subject.clone(),
        body: body.clone(),
        request: None,
        sealed: String::new(),
        read: false,
    };
    plan.put(keys::inbox(&first.owner.0, &id), &message);
    plan.mail.push((first.owner.0.clone(), subject, body));
    Ok(())
}
