//! Routes: one small handler per endpoint, each mapping HTTP to one control operation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ApiText, ExplainInput, OperatorCaller, TenantCaller};
use crate::control::docs::{AccountDoc, VpcDoc};
use crate::control::ops::tenant::{NewZone, RecordInput, ScopeChange};
use crate::control::ops::{explain, inventory, links, rules, tenant};
use crate::control::ControlError;
use crate::model::validate::BindingKind;

type ApiResult = Result<Json<Value>, ApiError>;

/// Tenant endpoints, served on `[admin] listen`; every request needs an access key. Bodies are read whole within
/// `body_timeout` before a handler runs, and refused changes are audited (see `refusals`).
pub fn tenant_router(state: ApiState, body_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/users", get(users_list))
        .route("/v1/users/{name}", put(user_put).delete(user_delete))
        .route("/v1/keys", get(keys_list).post(key_create))
        .route("/v1/keys/{id}", axum::routing::delete(key_delete))
        .route("/v1/keys/{id}/rotate", post(key_rotate))
        .route("/v1/vpcs", get(vpcs_list))
        .route("/v1/foreign-zones", get(foreign_zones))
        .route("/v1/foreign-zones/{id}/detach", post(foreign_zone_detach))
        .route("/v1/foreign-rules", get(foreign_rules))
        .route("/v1/foreign-rules/{id}/detach", post(foreign_rule_detach))
        .route("/v1/links", get(links_list).post(link_request))
        .route("/v1/links/requests/{id}/verify", post(link_verify))
        .route("/v1/links/{account}", axum::routing::delete(link_remove))
        .route("/v1/blocks/{account}", put(block_put).delete(block_delete))
        .route("/v1/inbox", get(inbox))
        .route("/v1/zones", get(zones_list).post(zone_create))
        .route("/v1/zones/{id}", get(zone_get).delete(zone_delete))
        .route("/v1/zones/{id}/scope", put(scope_set))
        .route("/v1/zones/{id}/fallback", put(fallback_set))
        .route("/v1/rules", get(rules_list).post(rule_create))
        .route("/v1/rules/{id}", axum::routing::delete(rule_delete))
        .route("/v1/zones/{id}/scope/{how}", post(scope_edit))
        .route("/v1/zones/{id}/records", post(record_add))
        .route("/v1/zones/{id}/records/{rid}", put(record_change).delete(record_remove))
        .route("/v1/zones/{id}/file", get(zone_export).put(zone_import))
        .route("/v1/usage", get(usage))
        .route("/v1/audit", get(audit))
        .route("/v1/explain", get(explain))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), super::refusals::audit_refused))
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
        .route("/v1/operator/accounts", get(op_accounts).post(op_account_put))
        .route("/v1/operator/accounts/{uid}", axum::routing::delete(op_account_delete))
        .route("/v1/operator/vpcs", get(op_vpcs).post(op_vpc_put))
        .route("/v1/operator/vpcs/{id}", axum::routing::delete(op_vpc_delete))
        .route("/v1/operator/keys", post(op_key_create))
        .route("/v1/operator/links", post(op_link_put))
        .route("/v1/operator/usage", get(op_usage))
        .route("/v1/operator/apply", post(op_apply))
        .route("/v1/operator/export", get(op_export))
        .route("/v1/operator/backup", post(op_backup))
        .route("/v1/operator/audit", get(op_audit))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(OPERATOR_BODY_LIMIT))
        .with_state(state)
}

// ---- helpers ---------------------------------------------------------------------------------------------------

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

// ---- tenant handlers -------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct WhoAmI {
    principal: String,
    account: crate::control::ops::AccountRef,
}

async fn whoami(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> Result<Json<WhoAmI>, ApiError> {
    let control = api.plane.current();
    let tenant = caller.actor.tenant()?;
    let account = crate::control::ops::AccountRef::of(&control, &tenant.account);
    Ok(Json(WhoAmI { principal: caller.actor.to_string(), account }))
}

async fn users_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::list_users)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    #[serde(default)]
    policies: Vec<String>,
}

async fn user_put(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::put_user(c, ctx, &name, body.policies.clone())).await
}

async fn user_delete(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::remove_user(c, ctx, &name)).await
}

async fn keys_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::list_keys)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    user: Option<String>,
    expires_in_days: Option<u64>,
}

async fn key_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<KeyBody>,
) -> ApiResult {
    let expires = expiry(body.expires_in_days)?;
    api.tenant_write(caller, move |c, ctx| tenant::create_key(c, ctx, body.user.as_deref(), expires)).await
}

async fn key_delete(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::remove_key(c, ctx, &id, false)).await
}

async fn key_rotate(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::remove_key(c, ctx, &id, true)).await
}

async fn vpcs_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::list_vpcs)
}

async fn foreign_zones(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::foreign_zones)
}

async fn foreign_rules(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::foreign_rules)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DetachBody {
    #[serde(default)]
    vpcs: Vec<String>,
}

async fn foreign_zone_detach(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DetachBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::detach_foreign(c, ctx, BindingKind::Zone, &id, &body.vpcs)).await
}

async fn foreign_rule_detach(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DetachBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::detach_foreign(c, ctx, BindingKind::Rule, &id, &body.vpcs)).await
}

async fn links_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, links::list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    target: String,
}

async fn link_request(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult {
    api.admit_link_request(&caller.actor)?;
    api.tenant_write(caller, move |c, ctx| links::request(c, ctx, &body.target)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

async fn link_verify(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult {
    let response = api.tenant_write(caller, move |c, ctx| links::verify(c, ctx, &id, &body.code)).await?;
    links::verify_outcome(&response.0)?;
    Ok(response)
}

async fn link_remove(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(account): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| links::remove(c, ctx, &account)).await
}

async fn block_put(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(account): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| links::block(c, ctx, &account, true)).await
}

async fn block_delete(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(account): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| links::block(c, ctx, &account, false)).await
}

async fn inbox(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, links::inbox)
}

async fn zones_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, tenant::list_zones)
}

async fn zone_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<NewZone>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::create_zone(c, ctx, body.clone())).await
}

async fn zone_get(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.read(&caller, move |c, ctx| tenant::get_zone(c, ctx, &id))
}

async fn zone_delete(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::delete_zone(c, ctx, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeBody {
    vpcs: Vec<String>,
}

/// `PUT …/scope` replaces the scope (as the service we model does); `POST …/scope/add` and `…/scope/remove` edit it.
async fn scope_set(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ScopeBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::change_scope(c, ctx, &id, body.vpcs.clone(), ScopeChange::Set)).await
}

async fn scope_edit(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath((id, how)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ScopeBody>,
) -> ApiResult {
    let how = match how.as_str() {
        "add" => ScopeChange::Add,
        "remove" => ScopeChange::Remove,
        _ => return Err(ControlError::not_found(format!("no scope operation {how:?} (add, remove)")).into()),
    };
    api.tenant_write(caller, move |c, ctx| tenant::change_scope(c, ctx, &id, body.vpcs.clone(), how)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackBody {
    fallback: String,
}

async fn fallback_set(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FallbackBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| rules::set_fallback(c, ctx, &id, &body.fallback)).await
}

async fn rules_list(State(api): State<ApiState>, TenantCaller(caller): TenantCaller) -> ApiResult {
    api.read(&caller, rules::list_rules)
}

async fn rule_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<rules::NewRule>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| rules::create_rule(c, ctx, &body)).await
}

async fn rule_delete(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| rules::delete_rule(c, ctx, &id)).await
}

async fn record_add(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::add_record(c, ctx, &id, body.clone())).await
}

async fn record_change(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath((id, rid)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::change_record(c, ctx, &id, &rid, body.clone())).await
}

async fn record_remove(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath((id, rid)): ApiPath<(String, String)>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::remove_record(c, ctx, &id, &rid)).await
}

async fn zone_export(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let text = api.plane.read(&caller.actor, |c, ctx| tenant::export_zone(c, ctx, &id))?;
    Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/dns; charset=utf-8")], text))
}

async fn zone_import(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiText(body): ApiText,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::import_zone(c, ctx, &id, &body)).await
}

// ---- operator handlers -----------------------------------------------------------------------------------------

async fn op_accounts(State(api): State<ApiState>, OperatorCaller(caller): OperatorCaller) -> ApiResult {
    api.read(&caller, |c, ctx| inventory::list_accounts(c, ctx.actor))
}

async fn op_account_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(doc): ApiJson<AccountDoc>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_account(c, ctx, doc.clone())).await
}

async fn op_account_delete(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::remove_account(c, ctx, &uid)).await
}

async fn op_vpcs(State(api): State<ApiState>, OperatorCaller(caller): OperatorCaller) -> ApiResult {
    api.read(&caller, |c, ctx| inventory::list_vpcs(c, ctx.actor))
}

async fn op_vpc_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(doc): ApiJson<VpcDoc>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_vpc(c, ctx, doc.clone())).await
}

async fn op_vpc_delete(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::remove_vpc(c, ctx, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootKeyBody {
    account: String,
    expires_in_days: Option<u64>,
}

async fn op_key_create(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(body): ApiJson<RootKeyBody>,
) -> ApiResult {
    let expires = expiry(body.expires_in_days)?;
    api.write(caller, move |c, ctx| inventory::create_root_key(c, ctx, &body.account, expires)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkPutBody {
    account: String,
    linked: String,
}

async fn op_link_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(body): ApiJson<LinkPutBody>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_link(c, ctx, &body.account, &body.linked)).await
}

// ---- usage, audit, explain -------------------------------------------------------------------------------------

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

async fn usage(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> UsageResult {
    let (from, to) = q.bounds();
    Ok(Json(api.plane.read(&caller.actor, |_, ctx| crate::control::usage::query(&api.plane, ctx, from, to))?))
}

async fn audit(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult {
    let (from, to) = q.bounds();
    api.read(&caller, |_, ctx| crate::control::audit::read(&api.plane, ctx, from, to, q.limit()))
}

async fn op_usage(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> UsageResult {
    let (from, to) = q.bounds();
    Ok(Json(api.plane.read(&caller.actor, |_, ctx| crate::control::usage::query(&api.plane, ctx, from, to))?))
}

async fn op_audit(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult {
    let (from, to) = q.bounds();
    api.read(&caller, |_, ctx| crate::control::audit::read(&api.plane, ctx, from, to, q.limit()))
}

#[derive(Serialize)]
struct Explained {
    explain: String,
}

/// issue 2's explain against the live state, for sources in the caller's own VPCs.
async fn explain(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiQuery(q): ApiQuery<explain::ExplainRequest>,
) -> Result<Json<Explained>, ApiError> {
    let account = caller.actor.tenant()?.require_read()?.clone();
    let control = api.plane.current();
    let snapshot = api.plane.snapshot();
    let question = explain::tenant_question(&control, &snapshot, &account, &q)?;
    let input = ExplainInput { state: &control.state, snapshot: &snapshot, question: &question, account: &account };
    Ok(Json(Explained { explain: (api.hooks.explain)(&input) }))
}

// ---- declarative state and backups -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    #[serde(default)]
    prune: bool,
}

/// Applies a state file (issue-2 schema, records inline) through the same validation as every change.
async fn op_apply(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiQuery(q): ApiQuery<ApplyQuery>,
    ApiText(body): ApiText,
) -> ApiResult {
    let desired = (api.hooks.parse_state_file)(&body).map_err(|e| ControlError::invalid("bad_state_file", e))?;
    api.write(caller, move |c, ctx| crate::control::ops::declare::apply(c, ctx, &desired, q.prune)).await
}

async fn op_export(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
) -> Result<impl IntoResponse, ApiError> {
    let text = api.plane.read(&caller.actor, |c, _| crate::control::ops::declare::export(&c.state))?;
    Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/toml")], text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    path: std::path::PathBuf,
}

#[derive(Serialize)]
struct BackedUp {
    backup: String,
    revision: u64,
}

/// A consistent copy of the whole store, taken online.
async fn op_backup(
    State(api): State<ApiState>,
    OperatorCaller(_): OperatorCaller,
    ApiJson(body): ApiJson<BackupBody>,
) -> Result<Json<BackedUp>, ApiError> {
    let plane = api.plane.clone();
    let path = body.path.clone();
    tokio::task::spawn_blocking(move || plane.store().backup(&path))
        .await
        .map_err(|e| ControlError::internal(format!("the backup task failed: {e}")))?
        .map_err(|e| ControlError::internal(format!("backup failed: {e}")))?;
    Ok(Json(BackedUp { backup: body.path.display().to_string(), revision: api.plane.current().revision }))
}
