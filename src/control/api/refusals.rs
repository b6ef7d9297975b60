//! Two layers around the tenant routes: request bodies are read whole within a deadline before any handler runs,
//! and a refused change (403, 404, 409, 422) is written to the audit of the caller's account and of the account
//! whose resource the path names, so an owner sees who tried what on its zones, rules and links.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::ApiState;
use crate::control::{audit, auth, ControlState};
use crate::model::state::Uid;

/// The largest request body the tenant API reads (a zone file import is the largest).
pub(super) const BODY_LIMIT: usize = 8 << 20;

/// Reads the request body whole, within `deadline` and [`BODY_LIMIT`]: a client that trickles a body is cut off
/// (408), and no handler ever waits on the network.
pub(super) async fn read_body(deadline: Duration, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
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
        let event = audit::Event {
            actor: &actor,
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
