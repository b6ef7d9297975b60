//! Operator operations: the inventory (accounts, their sites, VPCs and their prefixes) and root access keys.
//!
//! Only the operator may run these: a VPC's prefixes decide whose queries it receives, so tenants never create or
//! change VPCs. Removing a VPC takes it out of every scope first, and the answer says which zones lost it.

use serde::Serialize;

use super::super::auth::{mint_key, Actor};
use super::super::docs::{AccountDoc, LinkDoc, VpcDoc};
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use crate::model::state::{Uid, VpcId};

/// The operator's list of accounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accounts {
    pub accounts: Vec<AccountDoc>,
}

pub(crate) fn list_accounts(control: &ControlState, actor: &Actor) -> Result<Accounts, ControlError> {
    actor.require_operator()?;
    let accounts = control
        .state
        .accounts
        .values()
        .map(|a| AccountDoc {
            uid: a.uid.0.clone(),
            name: a.name.clone(),
            email: a.email.clone(),
            site: a.site.to_string(),
        })
        .collect();
    Ok(Accounts { accounts })
}

/// What became of an account.
#[derive(Debug, Serialize)]
struct AccountChanged<'a> {
    account: &'a str,
    result: &'static str,
}

/// Creates or replaces an account.
pub(crate) fn put_account(control: &ControlState, ctx: &Ctx, doc: AccountDoc) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let mut plan = Plan::default();
    let key = keys::account(&doc.uid);
    let verb = if control.key_revision(&key) == 0 { "created" } else { "updated" };
    plan.respond(&AccountChanged { account: &doc.uid, result: verb });
    plan.audit = Some(("account.put".into(), doc.uid.clone()));
    plan.put(key, &doc);
    Ok(plan)
}

/// Removes an account that owns nothing any more (zones and VPCs must go first; links and keys go with it).
pub(crate) fn remove_account(control: &ControlState, ctx: &Ctx, uid: &str) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let uid = Uid(uid.to_string());
    if !control.state.accounts.contains_key(&uid) {
        return Err(ControlError::not_found(format!("no account {uid}")));
    }
    let zones: Vec<_> = control.state.zones.values().filter(|z| z.account == uid).map(|z| z.id.0.clone()).collect();
    let vpcs: Vec<_> = control.state.vpcs.values().filter(|v| v.account == uid).map(|v| v.id.0.clone()).collect();
    let rules: Vec<_> = control.state.rules.values().filter(|r| r.account == uid).map(|r| r.id.clone()).collect();
    if !zones.is_empty() || !vpcs.is_empty() || !rules.is_empty() {
        return Err(ControlError::conflict(
            "account_in_use",
            format!(
                "account {uid} still owns zones {zones:?}, vpcs {vpcs:?} and forwarding rules {rules:?}: remove them \
                 first"
            ),
        ));
    }
    let mut plan = Plan::default();
    plan.delete(keys::account(&uid.0));
    for (a, b) in control.link_docs.keys().filter(|(a, b)| *a == uid || *b == uid) {
        plan.delete(keys::link(&a.0, &b.0));
    }
    for key in control.keys.values().filter(|k| k.account == uid.0) {
        plan.delete(keys::access_key(&key.id));
    }
    for (account, name) in control.state.users.keys().filter(|(a, _)| *a == uid) {
        plan.delete(keys::user(&account.0, name));
    }
    plan.respond(&AccountChanged { account: &uid.0, result: "removed" });
    plan.audit = Some(("account.remove".into(), uid.0));
    Ok(plan)
}

/// The operator's list of VPCs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Vpcs {
    pub vpcs: Vec<VpcView>,
}

/// A VPC as the operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VpcView {
    pub id: String,
    pub account: String,
    pub region: String,
    pub cidrs: Vec<String>,
    pub listeners: Vec<String>,
    /// What front ends name the VPC by (PROXY v2): its endpoint ids and cloud id. Shown to its owner and the
    /// operator only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
}

impl VpcView {
    pub(crate) fn of(v: &crate::model::state::Vpc) -> VpcView {
        VpcView {
            id: v.id.as_str().to_string(),
            account: v.account.0.clone(),
            region: v.region.clone(),
            cidrs: v.cidrs.iter().map(ToString::to_string).collect(),
            listeners: v.listeners.iter().map(ToString::to_string).collect(),
            endpoints: v.endpoints.clone(),
            cloud_id: v.cloud_id.clone(),
        }
    }
}

pub(crate) fn list_vpcs(control: &ControlState, actor: &Actor) -> Result<Vpcs, ControlError> {
    actor.require_operator()?;
    Ok(Vpcs { vpcs: control.state.vpcs.values().map(VpcView::of).collect() })
}

/// What became of a VPC, and the scopes it left.
#[derive(Debug, Serialize)]
struct VpcChanged<'a> {
    vpc: &'a str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_from_scopes: Option<Vec<super::Detached>>,
}

/// Creates or replaces a VPC (prefixes are validated with every other rule before commit).
pub(crate) fn put_vpc(control: &ControlState, ctx: &Ctx, doc: VpcDoc) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let mut plan = Plan::default();
    let key = keys::vpc(&doc.id);
    let verb = if control.key_revision(&key) == 0 { "created" } else { "updated" };
    plan.respond(&VpcChanged { vpc: &doc.id, result: verb, removed_from_scopes: None });
    plan.audit = Some(("vpc.put".into(), doc.id.clone()));
    plan.put(key, &doc);
    Ok(plan)
}

/// Removes a VPC from the inventory and from every scope that lists it; the answer names those zones.
pub(crate) fn remove_vpc(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let vpc = VpcId::new(id);
    if !control.state.vpcs.contains_key(&vpc) {
        return Err(ControlError::not_found(format!("no vpc {id}")));
    }
    let mut plan = Plan::default();
    let unscoped = super::remove_from_scopes(control, &mut plan, None, |v| *v == vpc);
    plan.delete(keys::vpc(id));
    plan.respond(&VpcChanged { vpc: id, result: "removed", removed_from_scopes: Some(unscoped) });
    plan.audit = Some(("vpc.remove".into(), id.to_string()));
    Ok(plan)
}

/// Issues an access key for a root account (how a tenant gets its first key).
pub(crate) fn create_root_key(
    control: &ControlState,
    ctx: &Ctx,
    account: &str,
    expires: Option<u64>,
) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let uid = resolve_account(control, account)?;
    let key = mint_key(&uid, None, ctx.now, expires)?;
    let mut plan = Plan::default();
    plan.put(keys::access_key(&key.doc.id), &key.doc);
    plan.respond(&RootKey { id: &key.doc.id, account: &uid.0, token: &key.token, expires });
    let owner = crate::control::auth::principal_of(&control.state, &uid, None);
    plan.audit = Some(("key.create".into(), format!("{} for {owner} (full access)", key.doc.id)));
    Ok(plan)
}

/// A root key, as issued: the token is shown this once.
#[derive(Debug, Serialize)]
struct RootKey<'a> {
    id: &'a str,
    account: &'a str,
    token: &'a str,
    expires: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Linked<'a> {
    account: &'a str,
    linked: &'a str,
    result: &'static str,
}

/// An operator-declared link (the operator's word; tenants link only through verification).
pub(crate) fn put_link(control: &ControlState, ctx: &Ctx, account: &str, linked: &str) -> Result<Plan, ControlError> {
    ctx.actor.require_operator()?;
    let a = resolve_account(control, account)?;
    let b = resolve_account(control, linked)?;
    crate::model::validate::check_new_link(&control.state, &a, &b).map_err(|p| ControlError::InvalidState(vec![p]))?;
    let mut plan = Plan::default();
    let doc = LinkDoc { account: a.0.clone(), linked: b.0.clone(), added_at: ctx.now, via: "operator".into() };
    plan.put(keys::link(&a.0, &b.0), &doc);
    plan.respond(&Linked { account: &a.0, linked: &b.0, result: "linked" });
    plan.audit = Some(("link.put".into(), format!("{} -> {}", a.0, b.0)));
    Ok(plan)
}

/// An account by uid, username or email (the operator may name accounts any way).
pub(crate) fn resolve_account(control: &ControlState, text: &str) -> Result<Uid, ControlError> {
    let uid = Uid(text.to_string());
    if control.state.accounts.contains_key(&uid) {
        return Ok(uid);
    }
    control
        .account_by_name(text)
        .map(|a| a.uid.clone())
        .ok_or_else(|| ControlError::not_found(format!("no account {text:?}")))
}
