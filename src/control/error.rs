//! API errors: an HTTP status, a stable machine-readable code, and a message for people.

use serde::Serialize;

/// An error every control-plane operation may return; the API renders it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
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
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), problems: Vec::new(), retry_after: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "unauthorized", "a valid access key is required (Authorization: Bearer vpcdns_…)")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", what)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }
    pub fn precondition_failed(message: impl Into<String>) -> ApiError {
        ApiError::new(412, "revision_mismatch", message)
    }
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "expired", message)
    }
    pub fn invalid_state(problems: Vec<String>) -> ApiError {
        ApiError {
            status: 422,
            code: "invalid_state",
            message: "the change would produce an invalid state".into(),
            problems,
            retry_after: None,
        }
    }
    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError::new(429, "rate_limited", message)
    }
    /// 429 with the time after which a retry may pass.
    pub fn slow_down(message: impl Into<String>, wait: std::time::Duration) -> ApiError {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError { retry_after: Some(secs), ..ApiError::new(429, "rate_limited", message) }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", message)
    }
}
