//! Link requests as both sides see them, declining one, and the accounts an account blocks.

use serde::Serialize;

use super::super::docs::LinkRequestDoc;
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use super::links::MAX_TRIES;
use super::AccountRef;
use crate::model::state::Uid;

/// The caller's link requests: those it sent, and those sent to it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Requests {
    pub outgoing: Vec<Outgoing>,
    pub incoming: Vec<Incoming>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Outgoing {
    pub id: String,
    pub target: AccountRef,
    /// pending, verified, declined, expired or dead.
    pub state: String,
    pub expires: u64,
    pub tries_left: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Incoming {
    pub id: String,
    pub requester: AccountRef,
    pub state: String,
    pub expires: u64,
}

/// A request's state as people read it: a pending request past its expiry is expired.
fn state_of(r: &LinkRequestDoc, now: u64) -> String {
    if r.status == "pending" && r.expires <= now {
        "expired".into()
    } else {
        r.status.clone()
    }
}

pub(crate) fn list(control: &ControlState, ctx: &Ctx) -> Result<Requests, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let account = |uid: &str| AccountRef::of(control, &Uid(uid.to_string()));
    let mut requests = Requests { outgoing: Vec::new(), incoming: Vec::new() };
    let mut all: Vec<&LinkRequestDoc> = control.link_requests.values().collect();
    all.sort_by_key(|r| (r.created, r.id.clone()));
    for r in all {
        if r.account == me.0 {
            requests.outgoing.push(Outgoing {
                id: r.id.clone(),
                target: account(&r.target),
                state: state_of(r, ctx.now),
                expires: r.expires,
                tries_left: MAX_TRIES.saturating_sub(r.failed_tries),
            });
        } else if r.target == me.0 {
            requests.incoming.push(Incoming {
                id: r.id.clone(),
                requester: account(&r.account),
                state: state_of(r, ctx.now),
                expires: r.expires,
            });
        }
    }
    Ok(requests)
}

/// The target declines one pending request: its code stops working at once (the requester may ask again).
pub(crate) fn decline(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let request = control
        .link_requests
        .get(id)
        .filter(|r| r.target == me.0)
        .ok_or_else(|| ControlError::not_found(format!("no link request {id:?} to your account")))?;
    let state = state_of(request, ctx.now);
    if state != "pending" {
        return Err(ControlError::expired(format!("request {id} is {state}: there is nothing to decline")));
    }
    let mut plan = Plan::default();
    let key = keys::link_request(id);
    plan.expect(key.clone(), control.key_revision(&key));
    plan.put(key, &LinkRequestDoc { status: "declined".into(), ..request.clone() });
    plan.respond(&Declined { request: id, state: "declined" });
    plan.audit = Some(("link.decline".into(), request.account.clone()));
    Ok(plan)
}

#[derive(Serialize)]
struct Declined<'a> {
    request: &'a str,
    state: &'a str,
}

/// The accounts whose link requests the caller refuses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Blocks {
    pub blocks: Vec<AccountRef>,
}

pub(crate) fn blocks(control: &ControlState, ctx: &Ctx) -> Result<Blocks, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let blocks = control.blocks.iter().filter(|(a, _)| a == me).map(|(_, b)| AccountRef::of(control, b)).collect();
    Ok(Blocks { blocks })
}
