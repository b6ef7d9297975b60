//! Cross-account links: the verification procedure, listing, removal and blocking.
//!
//! Account A asks to link root account B (named by email or username, never by uid, never a sub-user, same site, B
//! owning at least one VPC). B's owner receives a 6-digit code (inbox, and e-mail where configured), valid 10 minutes,
//! single use, dead after 5 wrong tries; after 10 wrong tries for one pair in a day the pair is locked (B blocks A)
//! until B unblocks, and B is told. The code is random. The request keeps only HMAC-SHA256(secret, salt ‖ request ‖
//! code) with a random salt per request, and the inbox keeps the code sealed (ChaCha20-Poly1305) under a key derived
//! from the same secret, which is not in the store: a store dump or a backup gives nothing, and the secret alone
//! derives no code. Requests are rate-limited per (A, B) and per A, computed from the stored requests so limits
//! survive restarts; every refusal to link a name looks the same, so requests cannot enumerate accounts.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::super::auth::{fill_random, hex_encode, random_hex};
use super::super::docs::{BlockDoc, InboxDoc, LinkDoc, LinkRequestDoc};
use super::super::error::ControlError;
use super::super::fold::ControlState;
use super::super::keys;
use super::super::{Ctx, Plan};
use crate::model::state::{Account, Uid};

/// Wrong codes after which a request is dead.
pub(crate) const MAX_TRIES: u32 = 5;
/// Wrong codes for one (requester, target) pair in a day after which the pair is locked until the target unblocks.
pub(crate) const DAILY_FAILED_LIMIT: u32 = 10;
/// Requests one account may make for one target per window.
pub(crate) const PER_PAIR_LIMIT: usize = 3;
/// Requests one account may make per window, all targets together.
pub(crate) const PER_ACCOUNT_LIMIT: usize = 10;
/// The rate-limit window.
pub(crate) const WINDOW_SECS: u64 = 3600;
const DAY_SECS: u64 = 86_400;

/// The one answer for every name that cannot be linked: absent, a sub-user, on another site, without a VPC, or
/// blocking the requester all look alike, so link requests reveal nothing about other accounts.
fn not_linkable(text: &str) -> ControlError {
    ControlError::NotFound {
        code: "not_linkable",
        message: format!(
            "no account you can link has the email or username {text:?} (a link needs a root account of your site \
             that owns a VPC and accepts your requests)"
        ),
    }
}

/// The account a link request names, or the one refusal that does not tell why.
fn resolve_target<'c>(control: &'c ControlState, from: &Uid, text: &str) -> Result<&'c Account, ControlError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ControlError::invalid("uid_not_allowed", "name the account by email or username, not by uid"));
    }
    let me = control.state.accounts.get(from).ok_or_else(|| ControlError::not_found("your account is gone"))?;
    let account = control.account_by_name(text).ok_or_else(|| not_linkable(text))?;
    if account.uid == *from {
        return Err(ControlError::invalid("self_link", "an account cannot link itself"));
    }
    let linkable = account.site == me.site
        && control.state.vpcs.values().any(|v| v.account == account.uid)
        && !control.blocks.contains(&(account.uid.clone(), from.clone()));
    if !linkable {
        return Err(not_linkable(text));
    }
    Ok(account)
}

fn mac_with(secret: &[u8]) -> Result<Hmac<Sha256>, ControlError> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| ControlError::internal("bad HMAC key"))
}

/// What the request keeps of its code: HMAC(secret, salt ‖ request ‖ code).
fn code_mac(secret: &[u8], salt: &str, request: &str, code: &str) -> Result<Hmac<Sha256>, ControlError> {
    let mut mac = mac_with(secret)?;
    for part in [b"link-code:".as_slice(), salt.as_bytes(), b":", request.as_bytes(), b":", code.as_bytes()] {
        mac.update(part);
    }
    Ok(mac)
}

/// Six random digits, uniform (rejection sampling over a u32).
fn random_code() -> Result<String, ControlError> {
    const LIMIT: u32 = 4_294_000_000; // the largest multiple of 10^6 below 2^32
    loop {
        let mut bytes = [0u8; 4];
        fill_random(&mut bytes)?;
        let n = u32::from_be_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// The key the inbox seals codes under: derived from the server secret, so the store alone cannot open them.
fn seal_key(secret: &[u8]) -> Result<ring::aead::LessSafeKey, ControlError> {
    let mut mac = mac_with(secret)?;
    mac.update(b"inbox-seal-key");
    let key = mac.finalize().into_bytes();
    let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key)
        .map_err(|_| ControlError::internal("bad sealing key"))?;
    Ok(ring::aead::LessSafeKey::new(unbound))
}

/// The code sealed for the inbox: hex(nonce ‖ ciphertext ‖ tag), bound to its request id.
fn seal(secret: &[u8], request: &str, code: &str) -> Result<String, ControlError> {
    let mut nonce = [0u8; 12];
    fill_random(&mut nonce)?;
    let mut sealed = code.as_bytes().to_vec();
    seal_key(secret)?
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(request.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| ControlError::internal("sealing the code failed"))?;
    Ok(hex_encode(&[nonce.as_slice(), &sealed].concat()))
}

/// The code a sealed inbox entry holds, when it opens under this secret.
pub(super) fn open(secret: &[u8], request: &str, sealed: &str) -> Option<String> {
    let bytes = decode_hex(sealed);
    let (nonce, ciphertext) = bytes.split_at_checked(12)?;
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut ciphertext = ciphertext.to_vec();
    let plain =
        seal_key(secret).ok()?.open_in_place(nonce, ring::aead::Aad::from(request.as_bytes()), &mut ciphertext).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// Where an inbox message shows its request's code.
pub(super) const CODE_PLACEHOLDER: &str = "{code}";

/// Step 1: A asks to link B. B's owner gets the code.
/// The stored requests' limits: per pair and per requesting account, over the last `WINDOW_SECS`.
fn check_request_rate(control: &ControlState, from: &Uid, to: &Uid, now: u64) -> Result<(), ControlError> {
    let recent: Vec<&LinkRequestDoc> =
        control.link_requests.values().filter(|r| r.account == from.0 && r.created + WINDOW_SECS > now).collect();
    if recent.iter().filter(|r| r.target == to.0).count() >= PER_PAIR_LIMIT {
        return Err(ControlError::rate_limited(format!(
            "at most {PER_PAIR_LIMIT} link requests to one account per hour"
        )));
    }
    if recent.len() >= PER_ACCOUNT_LIMIT {
        return Err(ControlError::rate_limited(format!("at most {PER_ACCOUNT_LIMIT} link requests per hour")));
    }
    Ok(())
}

pub(crate) fn request(control: &ControlState, ctx: &Ctx, target: &str) -> Result<Plan, ControlError> {
    let from = ctx.actor.tenant()?.require_write()?.clone();
    let to = resolve_target(control, &from, target)?;
    if control.state.links.iter().any(|l| l.account == from && l.linked == to.uid) {
        return Err(ControlError::conflict("already_linked", format!("{target} is already linked")));
    }
    check_request_rate(control, &from, &to.uid, ctx.now)?;
    let mut plan = Plan::default();
    // A new request supersedes any pending one for the same pair.
    for old in
        control.link_requests.values().filter(|r| r.account == from.0 && r.target == to.uid.0 && r.status == "pending")
    {
        plan.put(keys::link_request(&old.id), &LinkRequestDoc { status: "dead".into(), ..old.clone() });
    }
    let id = random_hex(8)?;
    let salt = random_hex(16)?;
    let code = random_code()?;
    let doc = LinkRequestDoc {
        id: id.clone(),
        account: from.0.clone(),
        target: to.uid.0.clone(),
        code_hmac: hex_encode(&code_mac(ctx.secret, &salt, &id, &code)?.finalize().into_bytes()),
        salt,
        created: ctx.now,
        expires: ctx.now + ctx.code_ttl,
        failed_tries: 0,
        status: "pending".into(),
    };
    plan.put(keys::link_request(&id), &doc);
    let requester = control.state.accounts.get(&from).map_or(from.0.clone(), |a| format!("{} (uid {})", a.name, a.uid));
    let subject = "vpcdns: verification code for a link request".to_string();
    let valid_for = duration_words(ctx.code_ttl);
    let template = format!(
        "Account {requester} asks to link your account {}, so that it can add your VPCs to the scope of its private \
         zones.\n\nVerification code: {CODE_PLACEHOLDER}\nRequest: {id}\nThe code is valid for {valid_for}. \
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
        sealed: seal(ctx.secret, &id, &code)?,
        read: false,
    };
    plan.put(keys::inbox(&to.uid.0, &message_id), &message);
    plan.mail.push((to.uid.0.clone(), subject, body));
    plan.respond(&Requested { request: &id, target: &to.uid.0, expires: doc.expires });
    plan.audit = Some(("link.request".into(), to.uid.0.clone()));
    Ok(plan)
}

/// Step 2: A submits the code. A wrong code counts a try; the fifth kills the request; the tenth of a pair in a
/// day locks the pair (the target blocks the requester) until the target unblocks. The target is told of both.
pub(crate) fn verify(control: &ControlState, ctx: &Ctx, request_id: &str, code: &str) -> Result<Plan, ControlError> {
    let from = ctx.actor.tenant()?.require_write()?.clone();
    let request = control
        .link_requests
        .get(request_id)
        .filter(|r| r.account == from.0)
        .ok_or_else(|| ControlError::not_found(format!("no link request {request_id:?} of your account")))?;
    if request.status != "pending" {
        return Err(ControlError::expired(format!("request {request_id} is {}: request a new code", request.status)));
    }
    if request.expires <= ctx.now || request.salt.is_empty() {
        return Err(ControlError::expired("the code has expired: request a new one"));
    }
    let mut plan = Plan::default();
    let key = keys::link_request(request_id);
    // Two concurrent tries must not both count from the same state: the request's revision guards the write.
    plan.expect(key.clone(), control.key_revision(&key));
    let expected = decode_hex(&request.code_hmac);
    if code_mac(ctx.secret, &request.salt, request_id, code.trim())?.verify_slice(&expected).is_err() {
        return wrong_code(control, ctx, request, plan);
    }
    let target = Uid(request.target.clone());
    crate::model::validate::check_new_link(&control.state, &from, &target)
        .map_err(|p| ControlError::InvalidState(vec![p]))?;
    plan.put(key, &LinkRequestDoc { status: "verified".into(), ..request.clone() });
    let link = LinkDoc {
        account: from.0.clone(),
        linked: request.target.clone(),
        added_at: ctx.now,
        via: "verification".into(),
    };
    plan.put(keys::link(&from.0, &request.target), &link);
    plan.respond(&Verified {
        verified: true,
        linked: Some(&request.target),
        added_at: Some(ctx.now),
        ..Verified::default()
    });
    plan.audit = Some(("link.verify".into(), request.target.clone()));
    Ok(plan)
}

/// A wrong code: counted on the request, which dies at the fifth; at the pair's tenth in a day the pair locks.
fn wrong_code(
    control: &ControlState,
    ctx: &Ctx,
    request: &LinkRequestDoc,
    mut plan: Plan,
) -> Result<Plan, ControlError> {
    let tries = request.failed_tries + 1;
    let pair = |r: &&LinkRequestDoc| r.account == request.account && r.target == request.target;
    let today: u32 = control
        .link_requests
        .values()
        .filter(pair)
        .filter(|r| r.created + DAY_SECS > ctx.now && r.id != request.id)
        .map(|r| r.failed_tries)
        .sum::<u32>()
        + tries;
    let locked = today >= DAILY_FAILED_LIMIT;
    let status = if tries >= MAX_TRIES || locked { "dead" } else { "pending" };
    plan.put(
        keys::link_request(&request.id),
        &LinkRequestDoc { failed_tries: tries, status: status.into(), ..request.clone() },
    );
    let requester =
        control.state.accounts.get(&Uid(request.account.clone())).map_or(request.account.clone(), |a| a.name.clone());
    if locked {
        for other in control.link_requests.values().filter(pair).filter(|r| r.status == "pending" && r.id != request.id)
        {
            plan.put(keys::link_request(&other.id), &LinkRequestDoc { status: "dead".into(), ..other.clone() });
        }
        let reason = format!("locked after {DAILY_FAILED_LIMIT} wrong verification codes in a day");
        let block = BlockDoc { account: request.target.clone(), blocked: request.account.clone(), at: ctx.now, reason };
        plan.put(keys::block(&request.target, &request.account), &block);
        let body = format!(
            "{today} wrong verification codes were tried today for link requests from account {requester}. Its \
             requests to your account are now blocked. If you expect a request from it, unblock it (`vpcdns admin \
             links unblock {requester}`) and have it ask again.\n"
        );
        tell_target(&mut plan, request, ctx.now, "vpcdns: link requests locked after wrong codes", body)?;
    } else if tries >= MAX_TRIES {
        let body = format!(
            "{MAX_TRIES} wrong verification codes were tried for link request {} from account {requester}; the \
             request is dead and its code no longer works.\n",
            request.id
        );
        tell_target(&mut plan, request, ctx.now, "vpcdns: a link request died after wrong codes", body)?;
    }
    let left = if locked { 0 } else { MAX_TRIES.saturating_sub(tries) };
    plan.respond(&Verified { verified: false, tries_left: Some(left), locked: Some(locked), ..Verified::default() });
    plan.audit = Some(("link.verify_failed".into(), request.target.clone()));
    Ok(plan)
}

/// A message to the target of a link request (inbox and e-mail).
fn tell_target(
    plan: &mut Plan,
    request: &LinkRequestDoc,
    now: u64,
    subject: &str,
    body: String,
) -> Result<(), ControlError> {
    let id = random_hex(8)?;
    let message = InboxDoc {
        id: id.clone(),
        account: request.target.clone(),
        time: now,
        from: "vpcdns".into(),
        subject: subject.to_string(),
        body: body.clone(),
        request: None,
        sealed: String::new(),
        read: false,
    };
    plan.put(keys::inbox(&request.target, &id), &message);
    plan.mail.push((request.target.clone(), subject.to_string(), body));
    Ok(())
}

/// A request made: its id, whom it asks, and until when its code is valid.
#[derive(Debug, Serialize)]
struct Requested<'a> {
    request: &'a str,
    target: &'a str,
    expires: u64,
}

/// A verification's outcome: the link made, or the tries left.
#[derive(Debug, Default, Serialize)]
struct Verified<'a> {
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    added_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tries_left: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked: Option<bool>,
}

/// A link removed or an account (un)blocked, and the scopes that lost VPCs because of it.
#[derive(Debug, Serialize)]
struct Unlinked<'a> {
    account: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<bool>,
    removed_from_scopes: Vec<super::Detached>,
}

/// A failed verification is committed (the try counts) but answered as an error.
pub(crate) fn verify_outcome(response: &Value) -> Result<(), ControlError> {
    if response.get("verified") == Some(&Value::Bool(false)) {
        if response.get("locked") == Some(&Value::Bool(true)) {
            return Err(ControlError::expired(format!(
                "wrong code: after {DAILY_FAILED_LIMIT} wrong codes in a day the target no longer accepts your \
                 requests until its owner unblocks you"
            )));
        }
        let left = response.get("tries_left").and_then(Value::as_u64).unwrap_or(0);
        if left == 0 {
            return Err(ControlError::expired(
                "wrong code: the request is dead after 5 wrong tries; request a new code",
            ));
        }
        let tries = if left == 1 { "try" } else { "tries" };
        return Err(ControlError::invalid("wrong_code", format!("wrong code: {left} {tries} left")));
    }
    Ok(())
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// A's links (outgoing: accounts whose VPCs A may use) and the links to A (incoming).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Links {
    pub linked: Vec<LinkView>,
    pub linked_by: Vec<LinkView>,
}

/// The other account of a link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LinkView {
    pub uid: String,
    pub name: String,
    pub added_at: u64,
    pub via: String,
    pub revision: u64,
}

pub(crate) fn list(control: &ControlState, ctx: &Ctx) -> Result<Links, ControlError> {
    let me = ctx.actor.tenant()?.require_read()?;
    let view = |(a, b): &(Uid, Uid), d: &LinkDoc, other: &Uid| LinkView {
        uid: other.0.clone(),
        name: control.state.accounts.get(other).map(|a| a.name.clone()).unwrap_or_default(),
        added_at: d.added_at,
        via: d.via.clone(),
        revision: control.key_revision(&keys::link(&a.0, &b.0)),
    };
    let linked = control.link_docs.iter().filter(|((a, _), _)| a == me).map(|(k, d)| view(k, d, &k.1)).collect();
    let linked_by = control.link_docs.iter().filter(|((_, b), _)| b == me).map(|(k, d)| view(k, d, &k.0)).collect();
    Ok(Links { linked, linked_by })
}

/// A or B removes the link A → B; B's VPCs leave every scope of A's zones at once, and the answer says which.
pub(crate) fn remove(control: &ControlState, ctx: &Ctx, other: &str) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let other = super::inventory::resolve_account(control, other)?;
    let (owner, linked) = if control.link_docs.contains_key(&(me.clone(), other.clone())) {
        (me, other)
    } else if control.link_docs.contains_key(&(other.clone(), me.clone())) {
        (other, me)
    } else {
        return Err(ControlError::not_found("no link between your account and that account"));
    };
    let mut plan = Plan::default();
    if let Some(revision) = expected {
        plan.expect(keys::link(&owner.0, &linked.0), revision);
    }
    plan.delete(keys::link(&owner.0, &linked.0));
    let removed = unlink_scopes(control, &mut plan, &owner, &linked);
    plan.respond(&Unlinked { account: &owner.0, linked: Some(&linked.0), blocked: None, removed_from_scopes: removed });
    plan.audit = Some(("link.remove".into(), format!("{} -> {}", owner.0, linked.0)));
    Ok(plan)
}

/// What removing the link `owner` → `linked` does to scopes: every VPC of `linked` leaves every zone and rule scope
/// of `owner` (in the same commit).
fn unlink_scopes(control: &ControlState, plan: &mut Plan, owner: &Uid, linked: &Uid) -> Vec<super::Detached> {
    let of_linked =
        |v: &crate::model::state::VpcId| control.state.vpcs.get(v).is_some_and(|vpc| vpc.account == *linked);
    super::remove_from_scopes(control, plan, Some(owner), of_linked)
}

/// B blocks A: A's pending requests die, A cannot request again until unblocked, and a link A → B ends (B's VPCs
/// leave A's scopes): blocking withdraws the consent a link stands for.
pub(crate) fn block(control: &ControlState, ctx: &Ctx, requester: &str, blocked: bool) -> Result<Plan, ControlError> {
    let expected = ctx.if_match;
    let me = ctx.actor.tenant()?.require_write()?.clone();
    let other = super::inventory::resolve_account(control, requester)?;
    let mut plan = Plan::default();
    let key = keys::block(&me.0, &other.0);
    if let Some(revision) = expected {
        plan.expect(key.clone(), revision);
    }
    let mut removed = Vec::new();
    if blocked {
        plan.put(
            key,
            &BlockDoc { account: me.0.clone(), blocked: other.0.clone(), at: ctx.now, reason: String::new() },
        );
        for r in
            control.link_requests.values().filter(|r| r.account == other.0 && r.target == me.0 && r.status == "pending")
        {
            plan.put(keys::link_request(&r.id), &LinkRequestDoc { status: "dead".into(), ..r.clone() });
        }
        if control.link_docs.contains_key(&(other.clone(), me.clone())) {
            plan.delete(keys::link(&other.0, &me.0));
            removed = unlink_scopes(control, &mut plan, &other, &me);
        }
    } else {
        plan.delete(key);
    }
    plan.respond(&Unlinked { account: &other.0, linked: None, blocked: Some(blocked), removed_from_scopes: removed });
    plan.audit = Some((if blocked { "link.block" } else { "link.unblock" }.into(), other.0));
    Ok(plan)
}

/// A duration for people: `45 seconds`, `1 minute`, `10 minutes` (rounded up to whole minutes past one).
pub(crate) fn duration_words(seconds: u64) -> String {
    let (n, unit) = if seconds < 60 { (seconds, "second") } else { (seconds.div_ceil(60), "minute") };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_tries_read_as_words() {
        assert_eq!(duration_words(45), "45 seconds");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(60), "1 minute");
        assert_eq!(duration_words(600), "10 minutes");
        assert_eq!(duration_words(61), "2 minutes");
        let one_left = serde_json::json!({"verified": false, "tries_left": 1});
        assert!(verify_outcome(&one_left).unwrap_err().to_string().ends_with("wrong code: 1 try left"));
    }
}
