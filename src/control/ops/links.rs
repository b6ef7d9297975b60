//! Cross-account links: the verification procedure, listing, removal and blocking.
//!
//! Account A asks to link root account B (named by email or username, never by uid, never a sub-user, same site, B
//! owning at least one VPC). B's owner receives a 6-digit code (inbox, and e-mail where configured), valid 10 minutes,
//! single use, dead after 5 wrong tries. The store keeps only HMAC-SHA256(secret, request id ‖ code) under a secret
//! that is not in the store, compared in constant time. Requests are rate-limited per (A, B) and per A, computed
//! from the stored requests so limits survive restarts.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::super::auth::{hex_encode, random_hex};
use super::super::error::ApiError;
use super::super::model::{keys, BlockDoc, Control, InboxDoc, LinkDoc, LinkRequestDoc, ScopeDoc};
use super::super::{Ctx, Plan};
use crate::state::{Account, Uid};

/// How long a code is valid by default (`[admin] link_code_ttl_secs`).
pub const CODE_TTL_SECS: u64 = 600;
/// Wrong codes after which a request is dead.
pub const MAX_TRIES: u32 = 5;
/// Requests one account may make for one target per window.
pub const PER_PAIR_LIMIT: usize = 3;
/// Requests one account may make per window, all targets together.
pub const PER_ACCOUNT_LIMIT: usize = 10;
/// The rate-limit window.
pub const WINDOW_SECS: u64 = 3600;

/// Why a link target is refused, each with the message the API gives.
fn resolve_target<'c>(control: &'c Control, from: &Uid, text: &str) -> Result<&'c Account, ApiError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request("uid_not_allowed", "name the account by email or username, not by uid"));
    }
    if let Some(account) = control.account_by_name(text) {
        let me = control.state.accounts.get(from).ok_or_else(|| ApiError::not_found("your account is gone"))?;
        if account.uid == *from {
            return Err(ApiError::bad_request("self_link", "an account cannot link itself"));
        }
        if account.site != me.site {
            return Err(ApiError::bad_request(
                "cross_site",
                format!(
                    "{} is on the {} site and you are on the {} site: links never cross sites",
                    text, account.site, me.site
                ),
            ));
        }
        if !control.state.vpcs.values().any(|v| v.account == account.uid) {
            return Err(ApiError::bad_request("no_vpc", format!("{text} has no VPC to associate")));
        }
        return Ok(account);
    }
    if let Some((user, owner)) = text.split_once('@') {
        let owner = control.state.accounts.values().find(|a| a.name == owner);
        if owner.is_some_and(|o| control.state.users.contains_key(&(o.uid.clone(), user.to_string()))) {
            return Err(ApiError::bad_request("sub_user", "only root accounts can be linked, not sub-users"));
        }
    }
    Err(ApiError::not_found(format!("no root account has the email or username {text:?}")))
}

fn code_hmac(secret: &[u8], request: &str, code: &str) -> Result<Vec<u8>, ApiError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| ApiError::internal("bad HMAC key"))?;
    mac.update(request.as_bytes());
    mac.update(b":");
    mac.update(code.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The code of a request: six digits derived from the server secret and the (random) request id. The code itself
/// is therefore never stored — not in the request, not in the inbox, not in backups: the inbox shows a placeholder
/// that is rendered for B's root at read time, and the request keeps only an HMAC for verification.
fn derive_code(secret: &[u8], request: &str) -> Result<String, ApiError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| ApiError::internal("bad HMAC key"))?;
    mac.update(b"link-code:");
    mac.update(request.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 2^64 is so much larger than 10^6 that the modulo bias is below 10^-13.
    Ok(format!("{:06}", u64::from_be_bytes(first) % 1_000_000))
}

/// Where an inbox message shows its request's code.
const CODE_PLACEHOLDER: &str = "{code}";

/// Step 1: A asks to link B. B's owner gets the code.
pub fn request(control: &Control, ctx: &Ctx, target: &str) -> Result<Plan, ApiError> {
    let from = ctx.actor.tenant()?.require_write()?.clone();
    let to = resolve_target(control, &from, target)?;
    if control.blocks.contains(&(to.uid.clone(), from.clone())) {
        return Err(ApiError::forbidden(format!("{target} does not accept link requests from your account")));
    }
    if control.state.links.iter().any(|l| l.account == from && l.linked == to.uid) {
        return Err(ApiError::conflict("already_linked", format!("{target} is already linked")));
    }
    let recent: Vec<&LinkRequestDoc> =
        control.link_requests.values().filter(|r| r.account == from.0 && r.created + WINDOW_SECS > ctx.now).collect();
    if recent.iter().filter(|r| r.target == to.uid.0).count() >= PER_PAIR_LIMIT {
        return Err(ApiError::too_many(format!("at most {PER_PAIR_LIMIT} link requests to one account per hour")));
    }
    if recent.len() >= PER_ACCOUNT_LIMIT {
        return Err(ApiError::too_many(format!("at most {PER_ACCOUNT_LIMIT} link requests per hour")));
    }
    let mut plan = Plan::default();
    // A new request supersedes any pending one for the same pair.
    for old in
        control.link_requests.values().filter(|r| r.account == from.0 && r.target == to.uid.0 && r.status == "pending")
    {
        plan.put(keys::link_request(&old.id), &LinkRequestDoc { status: "dead".into(), ..old.clone() });
    }
    let id = random_hex(8)?;
    let code = derive_code(ctx.secret, &id)?;
    let doc = LinkRequestDoc {
        id: id.clone(),
        account: from.0.clone(),
        target: to.uid.0.clone(),
        code_hmac: hex_encode(&code_hmac(ctx.secret, &id, &code)?),
        created: ctx.now,
        expires: ctx.now + ctx.code_ttl,
        failed_tries: 0,
        status: "pending".into(),
    };
    plan.put(keys::link_request(&id), &doc);
    let requester = control.state.accounts.get(&from).map_or(from.0.clone(), |a| format!("{} (uid {})", a.name, a.uid));
    let subject = "vpcdns: verification code for a link request".to_string();
    let minutes = ctx.code_ttl.div_ceil(60);
    let template = format!(
        "Account {requester} asks to link your account {}, so that it can add your VPCs to the scope of its private \
         zones.\n\nVerification code: {CODE_PLACEHOLDER}\nRequest: {id}\nThe code is valid for {minutes} minute(s). \
         If you did not expect this, ignore it, or block the requester.\n",
        to.name
    );
    let body = template.replace(CODE_PLACEHOLDER, &code);
    let message_id = random_hex(8)?;
    let message = InboxDoc {
        id: message_id.clone(),
        account: to.uid.0.clone(),
        time: ctx.now,
        from: requester,
        subject: subject.clone(),
        body: template,
        request: Some(id.clone()),
    };
    plan.put(keys::inbox(&to.uid.0, &message_id), &message);
    plan.mail.push((to.uid.0.clone(), subject, body));
    plan.response = json!({ "request": id, "target": to.uid.0, "expires": doc.expires });
    plan.audit = Some(("link.request".into(), to.uid.0.clone()));
    Ok(plan)
}

/// Step 2: A submits the code. A wrong code counts a try; the fifth kills the request.
pub fn verify(control: &Control, ctx: &Ctx, request_id: &str, code: &str) -> Result<Plan, ApiError> {
    let from = ctx.actor.tenant()?.require_write()?.clone();
    let request = control
        .link_requests
        .get(request_id)
        .filter(|r| r.account == from.0)
        .ok_or_else(|| ApiError::not_found(format!("no link request {request_id:?} of your account")))?;
    if request.status != "pending" {
        return Err(ApiError::gone(format!("request {request_id} is {}: request a new code", request.status)));
    }
    if request.expires <= ctx.now {
        return Err(ApiError::gone("the code has expired: request a new one"));
    }
    let mut plan = Plan::default();
    let key = keys::link_request(request_id);
    // Two concurrent tries must not both count from the same state: the request's revision guards the write.
    plan.expect(key.clone(), control.key_revision(&key));
    let expected = decode_hex(&request.code_hmac);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(ctx.secret).map_err(|_| ApiError::internal("bad HMAC key"))?;
    mac.update(request_id.as_bytes());
    mac.update(b":");
    mac.update(code.trim().as_bytes());
    if mac.verify_slice(&expected).is_err() {
        let tries = request.failed_tries + 1;
        let status = if tries >= MAX_TRIES { "dead" } else { "pending" };
        plan.put(key, &LinkRequestDoc { failed_tries: tries, status: status.into(), ..request.clone() });
        plan.response = json!({ "verified": false, "tries_left": MAX_TRIES.saturating_sub(tries) });
        plan.audit = Some(("link.verify_failed".into(), request.target.clone()));
        return Ok(plan);
    }
    let target = Uid(request.target.clone());
    crate::validate::check_new_link(&control.state, &from, &target).map_err(|p| ApiError::invalid_state(vec![p]))?;
    plan.put(key, &LinkRequestDoc { status: "verified".into(), ..request.clone() });
    let link = LinkDoc {
        account: from.0.clone(),
        linked: request.target.clone(),
        added_at: ctx.now,
        via: "verification".into(),
    };
    plan.put(keys::link(&from.0, &request.target), &link);
    plan.response = json!({ "verified": true, "linked": request.target, "added_at": ctx.now });
    plan.audit = Some(("link.verify".into(), request.target.clone()));
    Ok(plan)
}

/// A failed verification is committed (the try counts) but answered as an error.
pub fn verify_outcome(response: &Value) -> Result<(), ApiError> {
    if response.get("verified") == Some(&Value::Bool(false)) {
        let left = response.get("tries_left").and_then(Value::as_u64).unwrap_or(0);
        if left == 0 {
            return Err(ApiError::gone("wrong code: the request is dead after 5 wrong tries; request a new code"));
        }
        return Err(ApiError::bad_request("wrong_code", format!("wrong code: {left} tries left")));
    }
    Ok(())
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// A's links (outgoing: accounts whose VPCs A may use) and the links to A (incoming).
pub fn list(control: &Control, ctx: &Ctx) -> Result<Value, ApiError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let name = |uid: &Uid| control.state.accounts.get(uid).map(|a| a.name.clone()).unwrap_or_default();
    let outgoing: Vec<Value> = control
        .link_docs
        .iter()
        .filter(|((a, _), _)| a == me)
        .map(|((a, b), d)| {
            json!({ "uid": b.0, "name": name(b), "added_at": d.added_at, "via": d.via,
                    "revision": control.key_revision(&keys::link(&a.0, &b.0)) })
        })
        .collect();
    let incoming: Vec<Value> = control
        .link_docs
        .iter()
        .filter(|((_, b), _)| b == me)
        .map(|((a, b), d)| {
            json!({ "uid": a.0, "name": name(a), "added_at": d.added_at, "via": d.via,
                    "revision": control.key_revision(&keys::link(&a.0, &b.0)) })
        })
        .collect();
    Ok(json!({ "linked": outgoing, "linked_by": incoming }))
}

/// A or B removes the link A → B; B's VPCs leave every scope of A's zones at once, and the answer says which.
pub fn remove(control: &Control, ctx: &Ctx, other: &str, expected: Option<u64>) -> Result<Plan, ApiError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let other = super::inventory::resolve_account(control, other)?;
    let (owner, linked) = if control.link_docs.contains_key(&(me.clone(), other.clone())) {
        (me, other)
    } else if control.link_docs.contains_key(&(other.clone(), me.clone())) {
        (other, me)
    } else {
        return Err(ApiError::not_found("no link between your account and that account"));
    };
    let mut plan = Plan::default();
    if let Some(revision) = expected {
        plan.expect(keys::link(&owner.0, &linked.0), revision);
    }
    plan.delete(keys::link(&owner.0, &linked.0));
    let mut removed = Vec::new();
    for zone in control.state.zones.values().filter(|z| z.account == owner) {
        let (gone, kept): (Vec<_>, Vec<_>) =
            zone.scope.iter().partition(|v| control.state.vpcs.get(*v).is_some_and(|vpc| vpc.account == linked));
        if !gone.is_empty() {
            plan.put(keys::scope(&zone.id.0), &ScopeDoc { vpcs: kept.iter().map(|v| v.0.to_string()).collect() });
            removed
                .push(json!({ "zone": zone.id.0, "vpcs": gone.iter().map(|v| v.0.to_string()).collect::<Vec<_>>() }));
        }
    }
    plan.response = json!({ "account": owner.0, "linked": linked.0, "removed_from_scopes": removed });
    plan.audit = Some(("link.remove".into(), format!("{} -> {}", owner.0, linked.0)));
    Ok(plan)
}

/// B blocks A: A's pending requests die, and A cannot request again until unblocked.
pub fn block(
    control: &Control,
    ctx: &Ctx,
    requester: &str,
    blocked: bool,
    expected: Option<u64>,
) -> Result<Plan, ApiError> {
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let other = super::inventory::resolve_account(control, requester)?;
    let mut plan = Plan::default();
    let key = keys::block(&me.0, &other.0);
    if let Some(revision) = expected {
        plan.expect(key.clone(), revision);
    }
    if blocked {
        plan.put(key, &BlockDoc { account: me.0.clone(), blocked: other.0.clone(), at: ctx.now });
        for r in
            control.link_requests.values().filter(|r| r.account == other.0 && r.target == me.0 && r.status == "pending")
        {
            plan.put(keys::link_request(&r.id), &LinkRequestDoc { status: "dead".into(), ..r.clone() });
        }
    } else {
        plan.delete(key);
    }
    plan.response = json!({ "account": other.0, "blocked": blocked });
    plan.audit = Some((if blocked { "link.block" } else { "link.unblock" }.into(), other.0));
    Ok(plan)
}

/// The root account's inbox (codes are sent here; each is rendered from the secret at read time).
pub fn inbox(control: &Control, ctx: &Ctx) -> Result<Value, ApiError> {
    let me = ctx.actor.tenant()?.require_root()?;
    let mut messages = Vec::new();
    for ((account, _), m) in control.inbox.iter() {
        if account != me {
            continue;
        }
        let body = match &m.request {
            Some(request) => m.body.replace(CODE_PLACEHOLDER, &derive_code(ctx.secret, request)?),
            None => m.body.clone(),
        };
        messages.push(json!({ "id": m.id, "time": m.time, "from": m.from, "subject": m.subject, "body": body }));
    }
    Ok(json!({ "messages": messages }))
}
