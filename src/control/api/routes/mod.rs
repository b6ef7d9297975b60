//! Routes: one small handler per endpoint, each mapping HTTP to one control operation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, on, post, put, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::paging::Page;
use super::{ApiError, ApiPath, ApiQuery, ApiState, OperatorCaller, TenantCaller};
use crate::control::ops;
use crate::control::{Caller, ControlState, Ctx, Plan};

mod operator;
mod tenant;

use crate::control::ControlError;
use operator::*;
use tenant::*;

/// The request and answer types the contract (`openapi`) describes.
pub(super) use operator::{BackedUp, BackupBody, LinkPutBody, RootKeyBody};
pub(super) use tenant::{
    CodeBody, DetachBody, Explained, FallbackBody, KeyBody, LinkBody, ScopeBody, UserBody, WhoAmI,
};

type ApiResult = Result<Json<Value>, ApiError>;

const DELETE: MethodFilter = MethodFilter::DELETE;
const POST: MethodFilter = MethodFilter::POST;
const PUT: MethodFilter = MethodFilter::PUT;

/// `GET` of a list that takes nothing but the caller (its users, keys, VPCs, zones, rules, links, inbox; the
/// operator's accounts and VPCs), a page at a time.
fn paged_read<C, T>(op: fn(&ControlState, &Ctx) -> Result<T, ControlError>) -> MethodRouter<ApiState>
where
    C: axum::extract::FromRequestParts<ApiState> + Into<Caller> + Send + 'static,
    T: serde::Serialize + 'static,
{
    get(move |State(api): State<ApiState>, caller: C, ApiQuery(page): ApiQuery<Page>| async move {
        api.read_page(&caller.into(), &page, op)
    })
}

fn tenant_read<T: serde::Serialize + 'static>(
    op: fn(&ControlState, &Ctx) -> Result<T, ControlError>,
) -> MethodRouter<ApiState> {
    paged_read::<TenantCaller, T>(op)
}

/// A tenant write that the path alone names (`DELETE /v1/keys/{id}`, `PUT /v1/blocks/{account}`): `op` gets the
/// path's one segment.
fn by_path<F>(method: MethodFilter, op: F) -> MethodRouter<ApiState>
where
    F: Fn(&ControlState, &Ctx, &str) -> Result<Plan, ControlError> + Clone + Send + Sync + 'static,
{
    let handler =
        move |State(api): State<ApiState>, TenantCaller(caller): TenantCaller, ApiPath(id): ApiPath<String>| {
            let op = op.clone();
            async move { api.tenant_write(caller, move |c, ctx| op(c, ctx, &id)).await }
        };
    on(method, handler)
}

/// Tenant endpoints, served on `[admin] listen`; every request needs an access key. Bodies are read whole within
/// `body_timeout` before a handler runs, and refused changes are audited (see `refusals`).
pub fn tenant_router(state: ApiState, body_timeout: std::time::Duration) -> Router {
    let plane = state.plane.clone();
    let routes = tenant_routes(state, body_timeout);
    // Before routing: a zone named as people write it (no trailing dot, any letter case) is the zone they mean.
    let canonical = tower::util::MapRequest::new(routes, move |request| super::zone_ids::canonical(request, &plane));
    Router::new().fallback_service(canonical)
}

fn tenant_routes(state: ApiState, body_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(contract))
        .route("/v1/whoami", get(whoami))
        .route("/v1/users", tenant_read(ops::tenant::list_users))
        .route("/v1/users/{name}", put(user_put).merge(by_path(DELETE, ops::tenant::remove_user)))
        .route("/v1/keys", tenant_read(ops::tenant::list_keys).post(key_create))
        .route("/v1/keys/{id}", by_path(DELETE, |c, ctx, id| ops::tenant::remove_key(c, ctx, id, false)))
        .route("/v1/keys/{id}/rotate", by_path(POST, |c, ctx, id| ops::tenant::remove_key(c, ctx, id, true)))
        .route("/v1/vpcs", tenant_read(ops::tenant::list_vpcs))
        .route("/v1/foreign-zones", tenant_read(ops::tenant::foreign_zones))
        .route("/v1/foreign-zones/{id}/detach", post(foreign_zone_detach))
        .route("/v1/foreign-rules", tenant_read(ops::tenant::foreign_rules))
        .route("/v1/foreign-rules/{id}/detach", post(foreign_rule_detach))
        .route("/v1/links", tenant_read(ops::links::list).post(link_request))
        .route("/v1/links/requests", tenant_read(ops::requests::list))
        .route("/v1/links/requests/{id}/verify", post(link_verify))
        .route("/v1/links/requests/{id}/decline", by_path(POST, ops::requests::decline))
        .route("/v1/links/{account}", by_path(DELETE, ops::links::remove))
        .route(
            "/v1/blocks/{account}",
            by_path(PUT, |c, ctx, account| ops::links::block(c, ctx, account, true))
                .merge(by_path(DELETE, |c, ctx, account| ops::links::block(c, ctx, account, false))),
        )
        .route("/v1/blocks", tenant_read(ops::requests::blocks))
        .route("/v1/inbox", tenant_read(ops::inbox::inbox))
        .route("/v1/inbox/{id}", by_path(DELETE, ops::inbox::remove))
        .route("/v1/inbox/{id}/read", by_path(POST, ops::inbox::read))
        .route("/v1/zones", tenant_read(ops::tenant::list_zones).post(zone_create))
        .route("/v1/zones/{id}", get(zone_get).merge(by_path(DELETE, ops::tenant::delete_zone)))
        .route("/v1/zones/{id}/scope", put(scope_set))
        .route("/v1/zones/{id}/fallback", put(fallback_set))
        .route("/v1/rules", tenant_read(ops::rules::list_rules).post(rule_create))
        .route("/v1/rules/{id}", by_path(DELETE, ops::rules::delete_rule))
        .route("/v1/zones/{id}/scope/{how}", post(scope_edit))
        .route("/v1/zones/{id}/records", post(record_add))
        .route("/v1/zones/{id}/records/{rid}", put(record_change).delete(record_remove))
        .route("/v1/zones/{id}/file", get(zone_export).put(zone_import))
        .route("/v1/usage", get(usage::<TenantCaller>))
        .route("/v1/audit", get(audit::<TenantCaller>))
        .route("/v1/explain", get(explain))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), super::refusals::audit_refused))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::refusals::min_revision))
        .layer(axum::extract::DefaultBodyLimit::max(super::refusals::BODY_LIMIT))
        .layer(axum::middleware::from_fn(move |request, next| super::refusals::read_body(body_timeout, request, next)))
        .with_state(state)
}

/// The largest request the operator socket takes: `apply` carries the whole state (an export of a large store is
/// tens of megabytes), and only the operator can connect.
const OPERATOR_BODY_LIMIT: usize = 1 << 30;

/// Operator endpoints, served only on the owner-only Unix socket.
pub fn operator_router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/v1/operator/accounts",
            paged_read::<OperatorCaller, _>(|c, ctx| ops::inventory::list_accounts(c, ctx.actor)).post(op_account_put),
        )
        .route("/v1/operator/accounts/{uid}", axum::routing::delete(op_account_delete))
        .route(
            "/v1/operator/vpcs",
            paged_read::<OperatorCaller, _>(|c, ctx| ops::inventory::list_vpcs(c, ctx.actor)).post(op_vpc_put),
        )
        .route("/v1/operator/vpcs/{id}", axum::routing::delete(op_vpc_delete))
        .route("/v1/operator/keys", post(op_key_create))
        .route("/v1/operator/links", post(op_link_put))
        .route("/v1/operator/usage", get(usage::<OperatorCaller>))
        .route("/v1/operator/apply", post(op_apply))
        .route("/v1/operator/export", get(op_export))
        .route("/v1/operator/backup", post(op_backup))
        .route("/v1/operator/audit", get(audit::<OperatorCaller>))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(OPERATOR_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::refusals::min_revision))
        .layer(axum::middleware::from_fn(super::refusals::digest_body))
        .with_state(state)
}

// ---- helpers ---------------------------------------------------------------------------------------------------

/// The API's OpenAPI 3.1 document, made once (it is compiled in).
static CONTRACT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| serde_json::to_string(&super::openapi::document()).unwrap_or_default());

/// `GET /v1/openapi.json`: the contract, to anyone (it holds nothing of any tenant's).
async fn contract() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], CONTRACT.as_str())
}

/// A path no route serves: the API's JSON error, like every other answer.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ControlError::not_found(format!("no endpoint {}", uri.path())).into()
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{method} is not allowed on {}", uri.path());
    ApiError::http(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
}

/// The longest key lifetime one may ask for: 100 years.
const MAX_KEY_DAYS: u64 = 36_500;

/// Days from now, as a unix time; absurd lifetimes are refused rather than overflowed.
fn expiry(days: Option<u64>) -> Result<Option<u64>, ControlError> {
    match days {
        None => Ok(None),
        Some(0) => {
            Err(ControlError::invalid("bad_expiry", "expires_in_days is at least 1 (a key of 0 days is born expired)"))
        }
        Some(d) if d <= MAX_KEY_DAYS => Ok(Some(crate::control::unix_now().saturating_add(d * 86_400))),
        Some(_) => Err(ControlError::invalid("bad_expiry", format!("expires_in_days is at most {MAX_KEY_DAYS}"))),
    }
}

/// A time range in Unix seconds; the default is the last hour.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<u64>,
    to: Option<u64>,
    limit: Option<usize>,
}

impl RangeQuery {
    fn bounds(&self) -> (u64, u64) {
        let now = crate::control::unix_now();
        (self.from.unwrap_or(now.saturating_sub(3600)), self.to.unwrap_or(now))
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(1000).min(10_000)
    }
}

type UsageResult = Result<Json<crate::control::usage::UsageReport>, ApiError>;

/// The caller's usage in a range (a tenant: its own; the operator: everyone's).
async fn usage<C: Into<Caller>>(
    State(api): State<ApiState>,
    caller: C,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> UsageResult {
    let (from, to) = q.bounds();
    let caller: Caller = caller.into();
    Ok(Json(api.plane.read(&caller.actor, |_, ctx| crate::control::usage::query(&api.plane, ctx, from, to))?))
}

/// The caller's audit entries in a range (a tenant: its own account's; the operator: every account's).
async fn audit<C: Into<Caller>>(
    State(api): State<ApiState>,
    caller: C,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult {
    let (from, to) = q.bounds();
    api.read(&caller.into(), |_, ctx| crate::control::audit::read(&api.plane, ctx, from, to, q.limit()))
}
