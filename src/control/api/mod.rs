//! The admin API: HTTP/JSON over axum, a thin shell around `control` operations.
//!
//! Two listeners share the handlers: TCP (`[admin] listen`) where every request carries a tenant access key, and a
//! Unix socket with owner-only permissions where the caller is the operator. Handlers parse input, pick the actor,
//! call one operation and render its answer or its [`ApiError`]; they decide nothing themselves.

mod error;
pub(crate) mod limits;
pub(crate) mod listen;
pub(crate) mod openapi;
mod paging;
mod refusals;
mod routes;
mod zone_ids;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use crate::control::notify::Mailer;
use crate::control::{auth, Actor, Caller, ControlError, ControlPlane, Ctx, Plan};
pub use error::ApiError;

pub use routes::{operator_router, tenant_router};

/// Failed authentications one address may make per window before it gets 429.
const AUTH_FAILURES_PER_WINDOW: u32 = 10;
const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// How long one e-mail delivery may take before it is abandoned.
const MAIL_DEADLINE: Duration = Duration::from_secs(30);

/// Failed authentications: (address, key id) → (window start, count).
type FailureCounts = HashMap<(IpAddr, String), (Instant, u32)>;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub plane: Arc<ControlPlane>,
    pub mailer: Option<Arc<Mailer>>,
    /// Failed authentications per (address, key id): guessing one key is throttled without locking out the other
    /// tenants behind the same address (every loopback client is 127.0.0.1).
    failures: Arc<Mutex<FailureCounts>>,
    /// What the API calls in the layers above it.
    pub hooks: ApiHooks,
    /// Changes per account (refused ones included): one tenant's burst of writes cannot crowd out the others.
    writes: Arc<limits::RateLimiter<crate::model::state::Uid>>,
    /// Link requests per requesting account, whatever their outcome: probing for accounts is slow.
    link_attempts: Arc<limits::RateLimiter<crate::model::state::Uid>>,
}

/// What the API needs from the process that runs it, handed in at construction: the control plane sits below the
/// data plane and the configuration parser, so it never calls them by name.
#[derive(Clone)]
pub struct ApiHooks {
    /// Parses a state file (the configuration file's schema, without `[store]`) for `apply`.
    pub parse_state_file: fn(&str) -> Result<crate::model::state::State, String>,
    /// Explains a question against the served state and snapshot for the account asking (whose part of the
    /// resolver's cache it may see).
    pub explain: Arc<dyn Fn(&ExplainInput<'_>) -> String + Send + Sync>,
}

/// One `explain` call's inputs.
pub struct ExplainInput<'a> {
    pub state: &'a crate::model::state::State,
    pub snapshot: &'a crate::model::snapshot::Snapshot,
    pub question: &'a crate::model::explain::Question,
    pub account: &'a crate::model::state::Uid,
}

/// Link requests one account may attempt per hour (answered or refused); the stored requests have their own,
/// lower limits (see `control::ops::links`).
pub(crate) const LINK_ATTEMPTS_PER_HOUR: u32 = 30;

impl ApiState {
    pub fn new(
        plane: Arc<ControlPlane>,
        mailer: Option<Arc<Mailer>>,
        admin: &crate::settings::AdminLimits,
        hooks: ApiHooks,
    ) -> ApiState {
        ApiState {
            plane,
            mailer,
            failures: Arc::new(Mutex::new(HashMap::new())),
            hooks,
            writes: Arc::new(limits::RateLimiter::new(f64::from(admin.writes_per_second), admin.write_burst)),
            link_attempts: Arc::new(limits::RateLimiter::new(
                f64::from(LINK_ATTEMPTS_PER_HOUR) / 3600.0,
                LINK_ATTEMPTS_PER_HOUR,
            )),
        }
    }

    /// A token of the account's write budget, or 429 with the time to wait.
    pub(crate) fn admit_write(&self, actor: &Actor) -> Result<(), ControlError> {
        let Actor::Tenant(t) = actor else { return Ok(()) };
        self.writes.take(&t.account, Instant::now()).map_err(|wait| {
            ControlError::slow_down("too many changes from your account: slow down (see Retry-After)", wait)
        })
    }

    /// A token of the account's link-request budget, or 429.
    pub(crate) fn admit_link_request(&self, actor: &Actor) -> Result<(), ControlError> {
        let Actor::Tenant(t) = actor else { return Ok(()) };
        self.link_attempts.take(&t.account, Instant::now()).map_err(|wait| {
            ControlError::slow_down(
                format!("at most {LINK_ATTEMPTS_PER_HOUR} link requests per hour, refused ones included"),
                wait,
            )
        })
    }

    /// The tenant behind the bearer token; failures are counted per (address, key id) and throttled.
    pub fn tenant(&self, headers: &HeaderMap, remote: Option<SocketAddr>) -> Result<Actor, ControlError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .trim();
        let key_id = token.strip_prefix("vpcdns_").and_then(|r| r.split('_').next()).unwrap_or_default();
        let throttle = remote.map(|r| (r.ip(), key_id.chars().take(32).collect::<String>()));
        if let Some(key) = &throttle {
            if self.failures_of(key) >= AUTH_FAILURES_PER_WINDOW {
                return Err(ControlError::rate_limited("too many failed authentications: wait a minute"));
            }
        }
        let result = auth::authenticate(&self.plane.current(), token, crate::control::unix_now());
        if let (Err(_), Some(key)) = (&result, throttle) {
            self.count_failure(key);
        }
        result
    }

    fn failures_of(&self, key: &(IpAddr, String)) -> u32 {
        let Ok(map) = self.failures.lock() else { return 0 };
        map.get(key).filter(|(start, _)| start.elapsed() < AUTH_WINDOW).map_or(0, |(_, n)| *n)
    }

    fn count_failure(&self, key: (IpAddr, String)) {
        let Ok(mut map) = self.failures.lock() else { return };
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| start.elapsed() < AUTH_WINDOW);
        }
        let entry = map.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= AUTH_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Runs a write and sends the mail its plan asks for once committed.
    pub async fn write(
        &self,
        caller: Caller,
        op: impl Fn(&crate::control::ControlState, &Ctx) -> Result<Plan, ControlError> + Send + 'static,
    ) -> Result<Json<Value>, ApiError> {
        let plane = self.plane.clone();
        let (response, plan) = tokio::task::spawn_blocking(move || plane.execute(&caller, op))
            .await
            .map_err(|e| ControlError::internal(format!("the write task failed: {e}")))??;
        if let Some(mailer) = &self.mailer {
            self.deliver(mailer, plan.mail);
        }
        Ok(Json(response))
    }

    /// A tenant's write, within its account's write budget.
    pub(crate) async fn tenant_write(
        &self,
        caller: Caller,
        op: impl Fn(&crate::control::ControlState, &Ctx) -> Result<Plan, ControlError> + Send + 'static,
    ) -> Result<Json<Value>, ApiError> {
        self.admit_write(&caller.actor)?;
        self.write(caller, op).await
    }

    /// A read-only operation against the current state, its typed answer rendered as JSON.
    pub fn read<T: serde::Serialize>(
        &self,
        caller: &Caller,
        f: impl FnOnce(&crate::control::ControlState, &Ctx) -> Result<T, ControlError>,
    ) -> Result<Json<Value>, ApiError> {
        let answer = self.plane.read(&caller.actor, f)?;
        let json = serde_json::to_value(answer).map_err(|e| ControlError::internal(format!("an answer: {e}")))?;
        Ok(Json(json))
    }

    /// A list read, one page of it (see `paging`).
    pub(crate) fn read_page<T: serde::Serialize>(
        &self,
        caller: &Caller,
        page: &paging::Page,
        f: impl FnOnce(&crate::control::ControlState, &Ctx) -> Result<T, ControlError>,
    ) -> Result<Json<Value>, ApiError> {
        let Json(answer) = self.read(caller, f)?;
        Ok(Json(paging::paged(answer, page)?))
    }

    /// Mails what a committed plan asks for. The change is committed: delivery happens in the background, bounded
    /// in time, and never delays or fails the answer (the message is in the inbox as well).
    fn deliver(&self, mailer: &Arc<Mailer>, mail: Vec<(String, String, String)>) {
        let control = self.plane.current();
        for (uid, subject, body) in mail {
            let Some(account) = control.state.accounts.get(&crate::model::state::Uid(uid)) else { continue };
            let (mailer, to) = (mailer.clone(), account.email.clone());
            tokio::spawn(async move {
                if tokio::time::timeout(MAIL_DEADLINE, mailer.send(to.clone(), subject, body)).await.is_err() {
                    tracing::warn!(%to, "mail delivery timed out (the code is in the inbox too)");
                }
            });
        }
    }
}

/// The tenant behind a request on the tenant listener: authenticated by its access key (failures throttled per
/// address and key id), with its address and the revision its `If-Match` expects.
pub(crate) struct TenantCaller(pub Caller);

impl axum::extract::FromRequestParts<ApiState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, api: &ApiState) -> Result<Self, ApiError> {
        let remote = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
        let Some(remote) = remote else {
            return Err(ControlError::internal("a tenant request without a peer address").into());
        };
        let actor = api.tenant(&parts.headers, Some(remote))?;
        let if_match = if_match(&parts.headers)?;
        let idempotency = idempotency(parts)?;
        Ok(TenantCaller(Caller { actor, remote: remote.to_string(), if_match, idempotency }))
    }
}

/// The operator, on its owner-only socket (the socket's permissions are the authentication), with the revision
/// its `If-Match` expects.
pub(crate) struct OperatorCaller(pub Caller);

impl From<TenantCaller> for Caller {
    fn from(caller: TenantCaller) -> Caller {
        caller.0
    }
}

impl From<OperatorCaller> for Caller {
    fn from(caller: OperatorCaller) -> Caller {
        caller.0
    }
}

impl axum::extract::FromRequestParts<ApiState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &ApiState) -> Result<Self, ApiError> {
        let (if_match, idempotency) = (if_match(&parts.headers)?, idempotency(parts)?);
        Ok(OperatorCaller(Caller { if_match, idempotency, ..Caller::operator() }))
    }
}

/// `Json<T>` whose rejections (bad JSON, wrong content type, unknown fields) are answered in the API's error format.
#[derive(axum::extract::FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// A text body (a zone file, a state file) whose rejections (not UTF-8, too large) are answered in the API's error
/// format, like every other error.
pub(crate) struct ApiText(pub String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ApiText {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiText(String::from_request(req, state).await?))
    }
}

/// `Path<T>` whose rejections (a segment that does not decode to UTF-8, say) are answered in the API's error
/// format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// `Query<T>` whose rejections are answered in the API's error format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// Axum's rejections in the API's error format, the code naming the part of the request at fault.
macro_rules! rejections_with_code {
    ($($rejection:ty => $code:literal),* $(,)?) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> ApiError {
                ApiError::http(rejection.status(), $code, rejection.body_text())
            }
        }
    )*};
}

rejections_with_code!(
    axum::extract::rejection::JsonRejection => "bad_body",
    axum::extract::rejection::StringRejection => "bad_body",
    axum::extract::rejection::PathRejection => "bad_path",
    axum::extract::rejection::QueryRejection => "bad_query",
);

/// The revision an `If-Match` header expects (`"12"`, `12` or `W/"12"`).
/// The request's `Idempotency-Key`, on a change (reads are repeatable anyway).
fn idempotency(parts: &axum::http::request::Parts) -> Result<Option<crate::control::Idempotency>, ControlError> {
    if parts.method == axum::http::Method::GET {
        return Ok(None);
    }
    let Some(value) = parts.headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().unwrap_or_default();
    let body = parts.extensions.get::<refusals::BodyDigest>().map_or("", |d| d.0.as_str());
    let request = format!("{} {} {body}", parts.method, parts.uri.path());
    crate::control::Idempotency::new(key, request).map(Some)
}

pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ControlError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim().trim_start_matches("W/").trim_matches('"');
    text.parse().map(Some).map_err(|_| ControlError::invalid("bad_if_match", "If-Match takes a revision number"))
}
