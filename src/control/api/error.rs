//! The API's errors: a control-plane error (or an HTTP-level refusal: a bad body, an unknown route) as an HTTP
//! status and the JSON body every error shares — `{"error": {"code", "message", "problems"?}}` — with
//! `Retry-After` when a retry may pass later.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::control::ControlError;

/// An error as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Every validation problem, when the state the change would produce is invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// For 429: seconds until a retry may succeed (the `Retry-After` header).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal at the HTTP level (the body, the path, the method), with its status.
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), problems: Vec::new(), retry_after: None }
    }
}

/// The status each kind of control-plane error is answered with.
fn status_of(e: &ControlError) -> StatusCode {
    match e {
        ControlError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ControlError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ControlError::Forbidden(_) => StatusCode::FORBIDDEN,
        ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
        ControlError::Conflict { .. } => StatusCode::CONFLICT,
        ControlError::Expired(_) => StatusCode::GONE,
        ControlError::Stale(_) => StatusCode::PRECONDITION_FAILED,
        ControlError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ControlError::InvalidState(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ControlError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let retry_after = match &e {
            ControlError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        let problems = match &e {
            ControlError::InvalidState(problems) => problems.clone(),
            _ => Vec::new(),
        };
        ApiError { status: status_of(&e), code: e.code(), message: e.message(), problems, retry_after }
    }
}

/// The body every error shares.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: &self })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status_and_code() {
        let cases = [
            (ControlError::invalid("bad_name", "x"), 400, "bad_name"),
            (ControlError::Unauthenticated, 401, "unauthorized"),
            (ControlError::forbidden("x"), 403, "forbidden"),
            (ControlError::not_found("x"), 404, "not_found"),
            (ControlError::conflict("exists", "x"), 409, "exists"),
            (ControlError::expired("x"), 410, "expired"),
            (ControlError::stale("x"), 412, "revision_mismatch"),
            (ControlError::TooLarge("x".into()), 413, "too_large"),
            (ControlError::InvalidState(vec!["p".into()]), 422, "invalid_state"),
            (ControlError::slow_down("x", std::time::Duration::from_millis(1500)), 429, "rate_limited"),
            (ControlError::Unavailable { code: "store_unavailable", message: "x".into() }, 503, "store_unavailable"),
            (ControlError::internal("x"), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
        let limited = ApiError::from(ControlError::slow_down("x", std::time::Duration::from_millis(1500)));
        assert_eq!(limited.retry_after, Some(2));
        let invalid = ApiError::from(ControlError::InvalidState(vec!["a problem".into()]));
        let body = serde_json::to_value(ErrorBody { error: &invalid }).expect("json");
        assert_eq!(body["error"]["problems"][0], "a problem");
        assert_eq!(body["error"]["code"], "invalid_state");
    }
}
