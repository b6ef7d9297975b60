//! Tenant operations on the caller's own account: sub-users and keys, VPC listings, and other accounts' zones and
//! rules that answer in its VPCs (which it may see and detach). Zones, scopes and records are in `zones`.

use serde::Serialize;

use super::super::auth::{mint_key, random_hex};
use super::super::docs::{policy_name, InboxDoc, UserDoc};
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use super::{if_match, AccountRef, Detached};
use crate::model::state::{Uid, VpcId};
use crate::model::validate::BindingKind;

// ---- users and keys --------------------------------------------------------------------------------------------

/// The account's sub-users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Users {
    pub users: Vec<UserView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    pub policies: Vec<&'static str>,
    pub revision: u64,
}

/// What became of a user or a key (`id` names a key).
#[derive(Debug, Serialize)]
struct Changed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    result: &'static str,
}

pub(crate) fn list_users(control: &ControlState, ctx: &Ctx) -> Result<Users, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let users = control
        .state
        .users
        .values()
        .filter(|u| &u.account == me)
        .map(|u| UserView {
            name: u.name.clone(),
            policies: u.policies.iter().map(|p| policy_name(*p)).collect(),
            revision: control.key_revision(&keys::user(&me.0, &u.name)),
        })
        .collect();
    Ok(Users { users })
}

pub(crate) fn put_user(
    control: &ControlState,
    ctx: &Ctx,
    name: &str,
    policies: Vec<String>,
) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_root()?.clone();
    for p in &policies {
        if super::super::docs::parse_policy(p).is_none() {
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
    let principal = format!("{name}@{}", account_name(control, &me));
    plan.respond(&Changed { user: Some(&principal), id: None, result: verb });
    plan.audit = Some(("user.put".into(), name.to_string()));
    Ok(plan)
}

pub(crate) fn remove_user(control: &ControlState, ctx: &Ctx, name: &str) -> Result<Plan, ControlError> {
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
    plan.respond(&Changed { user: Some(name), id: None, result: "removed" });
    plan.audit = Some(("user.remove".into(), name.to_string()));
    Ok(plan)
}

fn account_name(control: &ControlState, uid: &Uid) -> String {
    control.state.accounts.get(uid).map_or_else(|| uid.0.clone(), |a| a.name.clone())
}

/// The account's access keys (never their secrets).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Keys {
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub user: Option<String>,
    pub created: u64,
    pub expires: Option<u64>,
    pub revision: u64,
}

/// A key as issued: the token is shown in this answer only.
#[derive(Debug, Serialize)]
struct Issued<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<&'a str>,
    user: Option<&'a str>,
    token: &'a str,
    expires: Option<u64>,
}

pub(crate) fn list_keys(control: &ControlState, ctx: &Ctx) -> Result<Keys, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?;
    let keys = control
        .keys
        .values()
        .filter(|k| k.account == me.0)
        .map(|k| KeyView {
            id: k.id.clone(),
            user: k.user.clone(),
            created: k.created,
            expires: k.expires,
            revision: control.key_revision(&keys::access_key(&k.id)),
        })
        .collect();
    Ok(Keys { keys })
}

/// A new key for the root account or one of its sub-users; the token is shown only in this answer.
pub(crate) fn create_key(
    control: &ControlState,
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
    plan.respond(&Issued { id: &key.doc.id, replaces: None, user, token: &key.token, expires });
    let owner = crate::control::auth::principal_of(&control.state, &me, user);
    let policy = match user.and_then(|u| control.state.users.get(&(me.clone(), u.to_string()))) {
        Some(u) => u.policies.iter().map(|p| crate::control::docs::policy_name(*p)).collect::<Vec<_>>().join(", "),
        None => "full access".into(),
    };
    plan.audit = Some(("key.create".into(), format!("{} for {owner} ({policy})", key.doc.id)));
    Ok(plan)
}

/// Deletes a key; with `rotate`, issues its replacement for the same principal in the same transaction.
pub(crate) fn remove_key(control: &ControlState, ctx: &Ctx, id: &str, rotate: bool) -> Result<Plan, ControlError> {
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
    plan.respond(&Changed { user: None, id: Some(id), result: "removed" });
    if rotate {
        // The replacement lives as long as the old key was meant to.
        let expires = old.expires.map(|e| ctx.now.saturating_add(e.saturating_sub(old.created)));
        let key = mint_key(&me, old.user.as_deref(), ctx.now, expires)?;
        plan.put(keys::access_key(&key.doc.id), &key.doc);
        let user = old.user.as_deref();
        let expires = key.doc.expires;
        plan.respond(&Issued { id: &key.doc.id, replaces: Some(id), user, token: &key.token, expires });
    }
    plan.audit = Some((if rotate { "key.rotate" } else { "key.remove" }.into(), id.to_string()));
    Ok(plan)
}

// ---- VPCs --------------------------------------------------------------------------------------------------------

/// The caller's own VPCs, and every VPC it may put into a scope (its own and those of accounts it has linked).
/// The caller's VPCs, and those it may put into a scope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantVpcs {
    pub vpcs: Vec<super::inventory::VpcView>,
    pub selectable: Vec<SelectableVpc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SelectableVpc {
    pub id: String,
    pub account: String,
    pub region: String,
}

pub(crate) fn list_vpcs(control: &ControlState, ctx: &Ctx) -> Result<TenantVpcs, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let vpcs = control.state.vpcs.values().filter(|v| &v.account == me).map(super::inventory::VpcView::of).collect();
    let selectable = control
        .state
        .vpcs
        .values()
        .filter(|v| control.state.may_use_vpcs_of(me, &v.account))
        .map(|v| SelectableVpc {
            id: v.id.as_str().to_string(),
            account: v.account.0.clone(),
            region: v.region.clone(),
        })
        .collect();
    Ok(TenantVpcs { vpcs, selectable })
}

/// Every zone of another account that answers in the caller's VPCs (so B sees what A put there).
/// Other accounts' zones and rules that answer in the caller's VPCs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ForeignZones {
    pub zones: Vec<ForeignZone>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ForeignZone {
    pub zone: String,
    pub id: String,
    pub owner: AccountRef,
    pub in_vpcs: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ForeignRules {
    pub rules: Vec<ForeignRule>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ForeignRule {
    pub rule: String,
    pub domain: String,
    pub targets: Vec<String>,
    pub owner: AccountRef,
    pub in_vpcs: Vec<String>,
}

pub(crate) fn foreign_zones(control: &ControlState, ctx: &Ctx) -> Result<ForeignZones, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let zones = control.state.zones.values().filter_map(|z| {
        let in_vpcs = foreign_in_my_vpcs(control, me, &z.account, &z.scope)?;
        let owner = AccountRef::of(control, &z.account);
        Some(ForeignZone { zone: z.name.to_string(), id: z.id.0.clone(), owner, in_vpcs })
    });
    Ok(ForeignZones { zones: zones.collect() })
}

/// Every forwarding rule of another account that applies in the caller's VPCs: where their queries for the domain
/// go instead of the upstreams.
pub(crate) fn foreign_rules(control: &ControlState, ctx: &Ctx) -> Result<ForeignRules, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let rules = control.state.rules.values().filter_map(|r| {
        let in_vpcs = foreign_in_my_vpcs(control, me, &r.account, &r.scope)?;
        let targets = r.targets.iter().map(ToString::to_string).collect();
        let owner = AccountRef::of(control, &r.account);
        Some(ForeignRule { rule: r.id.clone(), domain: r.domain.to_string(), targets, owner, in_vpcs })
    });
    Ok(ForeignRules { rules: rules.collect() })
}

/// The caller's own VPCs among `scope`.
/// The caller's VPCs in the scope of another account's item; `None` for its own items and those in none of its
/// VPCs.
fn foreign_in_my_vpcs(control: &ControlState, me: &Uid, owner: &Uid, scope: &[VpcId]) -> Option<Vec<String>> {
    let in_vpcs = my_vpcs_in(control, me, scope);
    (owner != me && !in_vpcs.is_empty()).then_some(in_vpcs)
}

fn my_vpcs_in(control: &ControlState, me: &Uid, scope: &[VpcId]) -> Vec<String> {
    scope
        .iter()
        .filter(|v| control.state.vpcs.get(*v).is_some_and(|vpc| &vpc.account == me))
        .map(|v| v.as_str().to_string())
        .collect()
}

#[derive(Debug, Serialize)]
struct DetachedAnswer {
    detached: Detached,
}

/// The VPC owner takes its VPCs (all of them, or those named) out of another account's zone or rule, without
/// removing the link. A zone or rule that answers in none of the caller's VPCs is not found.
/// The VPCs to detach: those named (each must be one of the caller's in the scope), or all of the caller's.
fn chosen_vpcs(mine: &[String], named: &[String], id: &str) -> Result<Vec<VpcId>, ControlError> {
    if let Some(v) = named.iter().find(|v| !mine.contains(v)) {
        return Err(ControlError::invalid(
            "vpc_not_in_scope",
            format!("vpc {v:?} is not one of your VPCs in the scope of {id}"),
        ));
    }
    let chosen = if named.is_empty() { mine } else { named };
    Ok(chosen.iter().map(|v| VpcId::new(v)).collect())
}

pub(crate) fn detach_foreign(
    control: &ControlState,
    ctx: &Ctx,
    kind: BindingKind,
    id: &str,
    vpcs: &[String],
) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let named = match kind {
        BindingKind::Zone => super::zone_id_as_named(id),
        BindingKind::Rule => id.to_string(),
    };
    let not_found =
        || ControlError::not_found(format!("no {} {named:?} of another account answers in your VPCs", kind.noun()));
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
    let chosen = chosen_vpcs(&mine, vpcs, id)?;
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
        read: false,
    };
    plan.put(keys::inbox(&owner.0, &message_id), &message);
    plan.mail.push((owner.0.clone(), subject, body));
    plan.respond(&DetachedAnswer { detached });
    plan.audit = Some(("foreign.detach".into(), id.to_string()));
    Ok(plan)
}

mod zones;

pub use zones::*;
