//! Layers around the routes: request bodies are read whole within a deadline before any handler runs; a refused
//! change (403, 404, 409, 422) is written to the audit of the caller's account and of the account whose resource the
//! path names, so an owner sees who tried what on its zones, rules and links; and `?min_revision=` makes a request
//! wait until this node has applied a given revision (read your own writes through any node).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::ApiState;
use crate::control::{audit, auth, ControlError, ControlState};
use crate::model::state::Uid;

/// The largest request body the tenant API reads (a zone file import is the largest).
pub(super) const BODY_LIMIT: usize = 8 << 20;

/// Reads the request body whole, within `deadline` and [`BODY_LIMIT`]: a client that trickles a body is cut off
/// (408), and no handler ever waits on the network.
pub(super) async fn read_body(deadline: Duration, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            note_digest(&mut parts, &bytes);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Ok(Err(_)) => ApiError::http(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {BODY_LIMIT} bytes"),
        )
        .into_response(),
        Err(_) => ApiError::http(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the body did not arrive within {deadline:?}"),
        )
        .into_response(),
    }
}

/// Audits refused changes (see the module documentation). Reads pass through untouched.
pub(super) async fn audit_refused(
    State(api): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let template = matched.map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if !matches!(status, 403 | 404 | 409 | 422) {
        return response;
    }
    let control = api.plane.current();
    let Ok(actor) = auth::authenticate(&control, &token, crate::control::unix_now()) else { return response };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    let owners = owners_named(&control, &template, &path);
    let plane = api.plane.clone();
    let action = format!("{method} {template}");
    let target = percent_decode(&path);
    // Written off the request path: the answer does not wait for the audit.
    tokio::task::spawn_blocking(move || {
        let remote = remote.to_string();
        let principal = actor.principal(&plane.current().state);
        let event = audit::Event {
            actor: &actor,
            principal: &principal,
            remote: &remote,
            action: &action,
            target: &target,
            refused: Some((status, &message)),
        };
        audit::record_refusal(&plane, &event, owners);
    });
    Response::from_parts(parts, Body::from(bytes))
}

/// The owner of an item found by its id, or, for an id that names none, the uid the id starts with
/// (`<uid><separator>…`): a refused attempt on a zone or rule that does not exist is still its would-be owner's.
fn owner_by_id(found: Option<&Uid>, id: &str, separator: char) -> Option<Uid> {
    found.cloned().or_else(|| id.split_once(separator).map(|(uid, _)| Uid(uid.to_string())))
}

/// The accounts whose resources a path names: a zone id's owner (`<uid>/<name>`), a rule id's (`<uid>-<name>`),
/// the owner of a foreign zone or rule, and an account named by uid, username or email.
fn owners_named(control: &ControlState, template: &str, path: &str) -> BTreeSet<Uid> {
    let mut owners = BTreeSet::new();
    let names: Vec<&str> = template.split('/').collect();
    let values: Vec<String> = path.split('/').map(percent_decode).collect();
    for (i, (name, value)) in names.iter().zip(&values).enumerate() {
        let collection = i.checked_sub(1).and_then(|j| names.get(j)).copied().unwrap_or_default();
        let owner = match (collection, *name) {
            ("zones" | "foreign-zones", "{id}") => {
                owner_by_id(control.state.zones.get(value.as_str()).map(|z| &z.account), value, '/')
            }
            ("rules" | "foreign-rules", "{id}") => {
                owner_by_id(control.state.rules.get(value.as_str()).map(|r| &r.account), value, '-')
            }
            (_, "{account}") => {
                let uid = Uid(value.clone());
                if control.state.accounts.contains_key(&uid) {
                    Some(uid)
                } else {
                    control.account_by_name(value).map(|a| a.uid.clone())
                }
            }
            _ => None,
        };
        owners.extend(owner);
    }
    owners
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// How long a read with `?min_revision=` waits for this node to get there.
const MIN_REVISION_WAIT: Duration = Duration::from_secs(5);

/// `?min_revision=N` on any request: wait until this node's state is at revision N (the revision a write answered
/// with), so a client reads its own writes through any node; then the request goes on without the parameter. A node
/// that does not get there within `MIN_REVISION_WAIT` answers 503 `behind`.
pub(super) async fn min_revision(State(api): State<ApiState>, mut request: Request, next: Next) -> Response {
    let Some(query) = request.uri().query() else { return next.run(request).await };
    let mut wanted = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("min_revision=") {
            Some(value) => match value.parse::<u64>() {
                Ok(n) => wanted = Some(n),
                Err(_) => {
                    let error = ControlError::invalid("bad_min_revision", "min_revision takes a revision number");
                    return ApiError::from(error).into_response();
                }
            },
            None => rest.push(pair),
        }
    }
    let Some(revision) = wanted else { return next.run(request).await };
    // Waited for here, holding no thread: a client asking for a revision no node has costs only its own connection
    // (bounded by the per-address and total connection caps), never a worker others need.
    let deadline = tokio::time::Instant::now() + MIN_REVISION_WAIT;
    while api.plane.current().revision < revision {
        if tokio::time::Instant::now() >= deadline {
            return ApiError::from(api.plane.behind(revision, MIN_REVISION_WAIT)).into_response();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let path = request.uri().path().to_string();
    let uri = if rest.is_empty() { path } else { format!("{path}?{}", rest.join("&")) };
    match uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return ApiError::from(ControlError::invalid("bad_uri", "the request's URI")).into_response(),
    }
    next.run(request).await
}

/// The SHA-256 of a request body sent with an `Idempotency-Key` (hex, first 16 bytes): what, beside the method and
/// path, a retry must repeat for the key to return the first outcome.
#[derive(Clone, Debug)]
pub(crate) struct BodyDigest(pub String);

fn note_digest(parts: &mut axum::http::request::Parts, body: &[u8]) {
    if parts.headers.contains_key("idempotency-key") {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body);
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        parts.extensions.insert(BodyDigest(hex));
    }
}

/// For the operator's routes, which take bodies up to 1 GiB and no body deadline (the socket is the operator's):
/// the digest of a body sent with an `Idempotency-Key`.
pub(super) async fn digest_body(request: Request, next: Next) -> Response {
    if !request.headers().contains_key("idempotency-key") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            note_digest(&mut parts, &bytes);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) => ApiError::http(axum::http::StatusCode::BAD_REQUEST, "bad_body", e.to_string()).into_response(),
    }
}
