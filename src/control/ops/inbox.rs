//! The root account's inbox: messages about link requests (with their codes, while the request can still be
//! verified) and about what others did to the account's VPCs. A message can be read (marked read) and deleted.

use serde::Serialize;

use super::super::docs::InboxDoc;
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use super::links::{open, CODE_PLACEHOLDER};
use crate::model::state::Uid;

/// The root account's messages, newest last.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Inbox {
    pub messages: Vec<Message>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Message {
    pub id: String,
    pub time: u64,
    pub from: String,
    pub subject: String,
    /// For a message about a link request: whether its code still works (`valid`, `no longer valid: …`)…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// …and until when, while it does (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_expires: Option<u64>,
    pub read: bool,
    pub body: String,
}

/// Every message of the caller's account. A link request's code shows only while the request is pending and
/// unexpired; otherwise the message says why it no longer works.
pub(crate) fn inbox(control: &ControlState, ctx: &Ctx) -> Result<Inbox, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?;
    let messages = control.inbox.iter().filter(|((account, _), _)| account == me).map(|(_, m)| shown(control, ctx, m));
    Ok(Inbox { messages: messages.collect() })
}

/// One message, as its owner sees it.
fn shown(control: &ControlState, ctx: &Ctx, m: &InboxDoc) -> Message {
    let (body, code, code_expires) = match &m.request {
        Some(request) => {
            let state = control.link_requests.get(request);
            let live = state.filter(|r| r.status == "pending" && r.expires > ctx.now);
            match (live, open(ctx.secret, request, &m.sealed)) {
                (Some(r), Some(code)) => {
                    (m.body.replace(CODE_PLACEHOLDER, &code), Some("valid".into()), Some(r.expires))
                }
                _ => {
                    let why =
                        state.map_or("gone", |r| if r.status == "pending" { "expired" } else { r.status.as_str() });
                    let note = format!("no longer valid: the request is {why}");
                    (m.body.replace(CODE_PLACEHOLDER, &format!("({note})")), Some(note), None)
                }
            }
        }
        None => (m.body.clone(), None, None),
    };
    let (id, time, from, subject, read) = (m.id.clone(), m.time, m.from.clone(), m.subject.clone(), m.read);
    Message { id, time, from, subject, code, code_expires, read, body }
}

/// The caller's message `id`.
fn own<'c>(control: &'c ControlState, me: &Uid, id: &str) -> Result<&'c InboxDoc, ControlError> {
    control
        .inbox
        .get(&(me.clone(), id.to_string()))
        .ok_or_else(|| ControlError::not_found(format!("no message {id:?} in your inbox")))
}

/// Shows one message and marks it read.
pub(crate) fn read(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?.clone();
    let doc = own(control, &me, id)?;
    let mut plan = Plan::default();
    if !doc.read {
        plan.put(keys::inbox(&me.0, id), &InboxDoc { read: true, ..doc.clone() });
    }
    let mut message = shown(control, ctx, doc);
    message.read = true;
    plan.respond(&message);
    Ok(plan)
}

/// Deletes one message.
pub(crate) fn remove(control: &ControlState, ctx: &Ctx, id: &str) -> Result<Plan, ControlError> {
    let me = ctx.actor.tenant()?.require_root()?.clone();
    own(control, &me, id)?;
    let mut plan = Plan::default();
    plan.delete(keys::inbox(&me.0, id));
    plan.respond(&Removed { removed: id });
    plan.audit = Some(("inbox.remove".into(), id.to_string()));
    Ok(plan)
}

#[derive(Serialize)]
struct Removed<'a> {
    removed: &'a str,
}
