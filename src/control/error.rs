//! What can go wrong with a control-plane operation, in the domain's terms: each kind with a stable,
//! machine-readable code and a message for people. `api` maps the kinds to HTTP statuses; nothing here knows HTTP.

use crate::control::store::StoreError;

/// An error every control-plane operation may return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The input is malformed or asks for something impossible.
    #[error("{code}: {message}")]
    Invalid { code: &'static str, message: String },
    /// No valid access key.
    #[error("unauthorized: a valid access key is required (Authorization: Bearer vpcdns_…)")]
    Unauthenticated,
    /// The caller may not do this (a policy it lacks, a resource it may only read).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Absent, or not the caller's to see (another tenant's resource is "not found", never "forbidden").
    #[error("{code}: {message}")]
    NotFound { code: &'static str, message: String },
    /// The change contradicts the state (a name taken, a link that exists).
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// The caller's If-Match names a revision the document is no longer at.
    #[error("revision_mismatch: {0}")]
    Stale(String),
    /// What the caller refers to has expired (a link request, a code).
    #[error("expired: {0}")]
    Expired(String),
    /// The change is too large for the store to take at once.
    #[error("too_large: {0}")]
    TooLarge(String),
    /// The state the change would produce is invalid: every problem, named.
    #[error("invalid_state: the change would produce an invalid state: {}", .0.join("; "))]
    InvalidState(Vec<String>),
    /// Too many attempts; `retry_after` seconds until one may pass, when known.
    #[error("rate_limited: {message}")]
    RateLimited { message: String, retry_after: Option<u64> },
    /// The store cannot be reached (nothing was written), or did not say whether the change was written.
    #[error("{code}: {message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl ControlError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ControlError {
        ControlError::Invalid { code, message: message.into() }
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> ControlError {
        ControlError::Forbidden(message.into())
    }
    pub fn not_found(what: impl Into<String>) -> ControlError {
        ControlError::NotFound { code: "not_found", message: what.into() }
    }
    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> ControlError {
        ControlError::Conflict { code, message: message.into() }
    }
    pub fn stale(message: impl Into<String>) -> ControlError {
        ControlError::Stale(message.into())
    }
    pub fn expired(message: impl Into<String>) -> ControlError {
        ControlError::Expired(message.into())
    }
    pub fn rate_limited(message: impl Into<String>) -> ControlError {
        ControlError::RateLimited { message: message.into(), retry_after: None }
    }
    /// Rate limited, with the time after which a retry may pass.
    pub(crate) fn slow_down(message: impl Into<String>, wait: std::time::Duration) -> ControlError {
        let secs = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1);
        ControlError::RateLimited { message: message.into(), retry_after: Some(secs) }
    }
    pub fn internal(message: impl Into<String>) -> ControlError {
        ControlError::Internal(message.into())
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Invalid { code, .. }
            | ControlError::NotFound { code, .. }
            | ControlError::Conflict { code, .. }
            | ControlError::Unavailable { code, .. } => code,
            ControlError::Unauthenticated => "unauthorized",
            ControlError::Forbidden(_) => "forbidden",
            ControlError::Stale(_) => "revision_mismatch",
            ControlError::Expired(_) => "expired",
            ControlError::TooLarge(_) => "too_large",
            ControlError::InvalidState(_) => "invalid_state",
            ControlError::RateLimited { .. } => "rate_limited",
            ControlError::Internal(_) => "internal",
        }
    }

    /// The message for people.
    pub fn message(&self) -> String {
        match self {
            ControlError::Invalid { message, .. }
            | ControlError::NotFound { message, .. }
            | ControlError::Conflict { message, .. }
            | ControlError::Unavailable { message, .. }
            | ControlError::RateLimited { message, .. } => message.clone(),
            ControlError::Unauthenticated => "a valid access key is required (Authorization: Bearer vpcdns_…)".into(),
            ControlError::Forbidden(message)
            | ControlError::Stale(message)
            | ControlError::Expired(message)
            | ControlError::TooLarge(message)
            | ControlError::Internal(message) => message.clone(),
            ControlError::InvalidState(_) => "the change would produce an invalid state".into(),
        }
    }
}

/// A store failure, in the control plane's terms: unreachable (nothing was written), outcome unknown, too large
/// for one transaction, or anything else (internal).
impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> ControlError {
        match e {
            StoreError::Unavailable { .. } => {
                ControlError::Unavailable { code: "store_unavailable", message: e.to_string() }
            }
            StoreError::Unknown { .. } => ControlError::Unavailable { code: "outcome_unknown", message: e.to_string() },
            StoreError::TooLarge { .. } => ControlError::TooLarge(e.to_string()),
            e => ControlError::Internal(format!("store: {e}")),
        }
    }
}
