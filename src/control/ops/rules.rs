//! Forwarding rules and zone fallback, for tenants: a rule sends a domain's queries from the VPCs in its scope
//! (own, or linked accounts') to target servers — on-premises DNS, say.

use serde::{Deserialize, Serialize};

use super::super::docs::RuleDoc;
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use super::{if_match, own_zone};
use crate::dns::name::Name;
use crate::model::state::{Fallback, MAX_RULE_TARGETS};

/// A rule as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct NewRule {
    /// Unique among the account's rules; the rule's id is `<uid>-<name>`.
    pub name: String,
    pub domain: String,
    pub targets: Vec<String>,
    #[serde(default)]
    pub scope: Vec<String>,
}

/// The caller's rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Rules {
    pub rules: Vec<RuleView>,
}

/// A rule as answers show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RuleView {
    pub id: String,
    pub domain: String,
    pub targets: Vec<String>,
    pub scope: Vec<String>,
    pub revision: u64,
}

impl RuleView {
    fn of(doc: RuleDoc, revision: u64) -> RuleView {
        RuleView { id: doc.id, domain: doc.domain, targets: doc.targets, scope: doc.vpcs, revision }
    }
}

#[derive(Debug, Serialize)]
struct RuleRemoved<'a> {
    rule: &'a str,
    result: &'static str,
}

#[derive(Debug, Serialize)]
struct FallbackSet<'a> {
    zone: &'a str,
    fallback: &'static str,
}

pub(crate) fn list_rules(control: &ControlState, ctx: &Ctx) -> Result<Rules, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let rules = control
        .state
        .rules
        .values()
        .filter(|r| r.account == *me)
        .map(|r| RuleView::of(RuleDoc::from_rule(r), control.key_revision(&keys::rule(&r.id))))
        .collect();
    Ok(Rules { rules })
}

pub(crate) fn create_rule(control: &ControlState, ctx: &Ctx, input: &NewRule) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let valid_name = (1..=48).contains(&input.name.len())
        && input.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid_name {
        return Err(ControlError::invalid("bad_name", "a rule name is 1 to 48 letters, digits, '.', '_' or '-'"));
    }
    let id = format!("{}-{}", me.0, input.name);
    let key = keys::rule(&id);
    if control.key_revision(&key) != 0 {
        return Err(ControlError::conflict("rule_exists", format!("you already have a rule {}", input.name)));
    }
    let domain = Name::from_text(&input.domain, Some(&Name::root()))
        .map_err(|e| ControlError::invalid("bad_domain", format!("domain {:?}: {e}", input.domain)))?;
    if input.targets.is_empty() || input.targets.len() > MAX_RULE_TARGETS {
        return Err(ControlError::invalid("bad_targets", format!("give 1 to {MAX_RULE_TARGETS} target addresses")));
    }
    let mut targets = Vec::new();
    for t in &input.targets {
        let addr = crate::model::state::parse_server_address(t)
            .ok_or_else(|| ControlError::invalid("bad_targets", format!("{t:?} is not an address (ip or ip:port)")))?;
        crate::model::validate::check_target(addr, &control.state.served.allow_targets)
            .map_err(|why| ControlError::invalid("bad_targets", why))?;
        targets.push(addr.to_string());
    }
    super::tenant::check_selectable(control, &me, &input.scope)?;
    let doc = RuleDoc {
        id: id.clone(),
        account: me.0.clone(),
        domain: domain.to_string(),
        targets,
        vpcs: input.scope.clone(),
    };
    let mut plan = Plan::default();
    plan.expect(key.clone(), 0);
    plan.put(key, &doc);
    plan.respond(&RuleView::of(doc, 0));
    plan.audit = Some(("rule.create".into(), id));
    Ok(plan)
}

pub(crate) fn delete_rule(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    // Another account's rule is as absent as one that does not exist.
    if control.state.rules.get(id).is_none_or(|r| r.account != me) {
        return Err(ControlError::not_found(format!("no rule {id:?}")));
    }
    let mut plan = Plan::default();
    if_match(&mut plan, keys::rule(id), expected);
    plan.delete(keys::rule(id));
    plan.respond(&RuleRemoved { rule: id, result: "removed" });
    plan.audit = Some(("rule.remove".into(), id.to_string()));
    Ok(plan)
}

/// What the zone answers for names it does not hold: NXDOMAIN, or resolution through the VPC's rules and upstreams.
pub(crate) fn set_fallback(control: &ControlState, ctx: &Ctx, id: &str, fallback: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let (_, doc) = own_zone(control, &me, id)?;
    let parsed = Fallback::parse(fallback).ok_or_else(|| {
        ControlError::invalid("bad_fallback", format!("fallback {fallback:?}: use nxdomain or recurse"))
    })?;
    let mut changed = doc.clone();
    changed.fallback = if parsed == Fallback::Recurse { "recurse".into() } else { String::new() };
    let mut plan = Plan::default();
    let key = keys::zone(id);
    if_match(&mut plan, key.clone(), expected);
    plan.put(key, &changed);
    plan.respond(&FallbackSet { zone: id, fallback: parsed.name() });
    plan.audit = Some(("zone.fallback".into(), format!("{id} {}", parsed.name())));
    Ok(plan)
}
