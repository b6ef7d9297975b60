//! The operator endpoints' handlers, served only on the owner-only Unix socket.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ApiText, OperatorCaller};
use super::{expiry, ApiResult};
use crate::control::docs::{AccountDoc, VpcDoc};
use crate::control::ops::inventory;
use crate::control::ControlError;

pub(super) async fn op_account_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(doc): ApiJson<AccountDoc>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_account(c, ctx, doc.clone())).await
}

pub(super) async fn op_account_delete(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::remove_account(c, ctx, &uid)).await
}

pub(super) async fn op_vpc_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(doc): ApiJson<VpcDoc>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_vpc(c, ctx, doc.clone())).await
}

pub(super) async fn op_vpc_delete(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::remove_vpc(c, ctx, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct RootKeyBody {
    account: String,
    expires_in_days: Option<u64>,
}

pub(super) async fn op_key_create(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(body): ApiJson<RootKeyBody>,
) -> ApiResult {
    let expires = expiry(body.expires_in_days)?;
    api.write(caller, move |c, ctx| inventory::create_root_key(c, ctx, &body.account, expires)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct LinkPutBody {
    account: String,
    linked: String,
}

pub(super) async fn op_link_put(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiJson(body): ApiJson<LinkPutBody>,
) -> ApiResult {
    api.write(caller, move |c, ctx| inventory::put_link(c, ctx, &body.account, &body.linked)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct ApplyQuery {
    #[serde(default)]
    prune: bool,
}

/// Applies a state file (issue-2 schema, records inline) through the same validation as every change.
pub(super) async fn op_apply(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
    ApiQuery(q): ApiQuery<ApplyQuery>,
    ApiText(body): ApiText,
) -> ApiResult {
    let desired = (api.hooks.parse_state_file)(&body).map_err(|e| ControlError::invalid("bad_state_file", e))?;
    api.write(caller, move |c, ctx| crate::control::ops::declare::apply(c, ctx, &desired, q.prune)).await
}

pub(super) async fn op_export(
    State(api): State<ApiState>,
    OperatorCaller(caller): OperatorCaller,
) -> Result<impl IntoResponse, ApiError> {
    let text = api.plane.read(&caller.actor, |c, _| crate::control::ops::declare::export(&c.state))?;
    Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/toml")], text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub(crate) struct BackupBody {
    #[schema(value_type = String)]
    path: std::path::PathBuf,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BackedUp {
    backup: String,
    revision: u64,
}

/// A consistent copy of the whole store, taken online.
pub(super) async fn op_backup(
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
