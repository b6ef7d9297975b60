//! The tenant endpoints' handlers: each takes the caller (its access key, address and If-Match) and maps the
//! request to one control operation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ApiText, ExplainInput, TenantCaller};
use super::{expiry, ApiResult};
use crate::control::ops::tenant::{NewZone, RecordInput, ScopeChange};
use crate::control::ops::{explain, links, rules, tenant};
use crate::control::ControlError;
use crate::model::validate::BindingKind;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WhoAmI {
    principal: String,
    account: crate::control::ops::AccountRef,
}

pub(super) async fn whoami(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
) -> Result<Json<WhoAmI>, ApiError> {
    let control = api.plane.current();
    let tenant = caller.actor.tenant()?;
    let account = crate::control::ops::AccountRef::of(&control, &tenant.account);
    Ok(Json(WhoAmI { principal: caller.actor.principal(&control.state), account }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct UserBody {
    #[serde(default)]
    policies: Vec<String>,
}

pub(super) async fn user_put(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::put_user(c, ctx, &name, body.policies.clone())).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct KeyBody {
    user: Option<String>,
    expires_in_days: Option<u64>,
}

pub(super) async fn key_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<KeyBody>,
) -> ApiResult {
    let expires = expiry(body.expires_in_days)?;
    api.tenant_write(caller, move |c, ctx| tenant::create_key(c, ctx, body.user.as_deref(), expires)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct DetachBody {
    #[serde(default)]
    vpcs: Vec<String>,
}

pub(super) async fn foreign_zone_detach(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DetachBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::detach_foreign(c, ctx, BindingKind::Zone, &id, &body.vpcs)).await
}

pub(super) async fn foreign_rule_detach(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DetachBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::detach_foreign(c, ctx, BindingKind::Rule, &id, &body.vpcs)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct LinkBody {
    target: String,
}

pub(super) async fn link_request(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult {
    api.admit_link_request(&caller.actor)?;
    api.tenant_write(caller, move |c, ctx| links::request(c, ctx, &body.target)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct CodeBody {
    code: String,
}

pub(super) async fn link_verify(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult {
    let response = api.tenant_write(caller, move |c, ctx| links::verify(c, ctx, &id, &body.code)).await?;
    links::verify_outcome(&response.0)?;
    Ok(response)
}

pub(super) async fn zone_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<NewZone>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::create_zone(c, ctx, body.clone())).await
}

pub(super) async fn zone_get(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.read(&caller, move |c, ctx| tenant::get_zone(c, ctx, &id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct ScopeBody {
    vpcs: Vec<String>,
}

/// `PUT …/scope` replaces the scope (as the service we model does); `POST …/scope/add` and `…/scope/remove` edit it.
pub(super) async fn scope_set(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ScopeBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::change_scope(c, ctx, &id, body.vpcs.clone(), ScopeChange::Set)).await
}

pub(super) async fn scope_edit(
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
#[derive(utoipa::ToSchema)]
pub(crate) struct FallbackBody {
    fallback: String,
}

pub(super) async fn fallback_set(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FallbackBody>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| rules::set_fallback(c, ctx, &id, &body.fallback)).await
}

pub(super) async fn rule_create(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(body): ApiJson<rules::NewRule>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| rules::create_rule(c, ctx, &body)).await
}

pub(super) async fn record_add(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::add_record(c, ctx, &id, body.clone())).await
}

pub(super) async fn record_change(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath((id, rid)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::change_record(c, ctx, &id, &rid, body.clone())).await
}

pub(super) async fn record_remove(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath((id, rid)): ApiPath<(String, String)>,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::remove_record(c, ctx, &id, &rid)).await
}

pub(super) async fn zone_export(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let text = api.plane.read(&caller.actor, |c, ctx| tenant::export_zone(c, ctx, &id))?;
    Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/dns; charset=utf-8")], text))
}

pub(super) async fn zone_import(
    State(api): State<ApiState>,
    TenantCaller(caller): TenantCaller,
    ApiPath(id): ApiPath<String>,
    ApiText(body): ApiText,
) -> ApiResult {
    api.tenant_write(caller, move |c, ctx| tenant::import_zone(c, ctx, &id, &body)).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Explained {
    explain: String,
}

/// issue 2's explain against the live state, for sources in the caller's own VPCs.
pub(super) async fn explain(
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
