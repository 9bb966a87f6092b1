//! Errors: the body every refusal carries, the contract's error codes with their statuses, and
//! this crate's own [`Error`] for values that break a rule.

use serde::{Deserialize, Serialize};

/// A value breaks one of the contract's rules. Every variant becomes `400 invalid_request`; the
/// message names the rule or field, for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant, model, function or alias name breaks its naming rule ([`crate::names`]).
    #[error("{0}")]
    InvalidName(String),
    /// A function manifest is malformed or out of bounds.
    #[error("{0}")]
    InvalidManifest(String),
    /// Any other value out of its bounds (a quota field, say).
    #[error("{0}")]
    InvalidValue(String),
}

/// The machine-readable `code` of an error answer, with the status the contract gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `400`: a malformed or out-of-bounds request.
    InvalidRequest,
    /// `400`: a model file tract cannot load.
    InvalidModel,
    /// `400`: a file that is not a component of the function world.
    InvalidComponent,
    /// `400`: tensors that do not fit the model's signature.
    InvalidInput,
    /// `401`: no valid key.
    Unauthenticated,
    /// `403`: a valid key that may not do this (or a suspended tenant).
    Forbidden,
    /// `403`: past one of the tenant's quotas.
    QuotaExceeded,
    /// `404`: no such route or resource.
    NotFound,
    /// `409`: the state does not allow it (a name taken, a model in use, an audit gate).
    Conflict,
    /// `413`: a body past `max_request_bytes`.
    PayloadTooLarge,
    /// `429`: over a rate, a concurrency limit or the energy budget; see `Retry-After`.
    RateLimited,
    /// `500`: the function trapped (or hit its memory limit).
    FunctionTrapped,
    /// `500`: the platform failed; the operator's log has the details.
    Internal,
    /// `504`: the function ran past its timeout.
    FunctionTimeout,
}

impl ErrorCode {
    /// The HTTP status the contract gives this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidModel
            | ErrorCode::InvalidComponent
            | ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden | ErrorCode::QuotaExceeded => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::FunctionTrapped | ErrorCode::Internal => 500,
            ErrorCode::FunctionTimeout => 504,
        }
    }

    /// The code as it appears on the wire (`not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidModel => "invalid_model",
            ErrorCode::InvalidComponent => "invalid_component",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::FunctionTrapped => "function_trapped",
            ErrorCode::Internal => "internal",
            ErrorCode::FunctionTimeout => "function_timeout",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer: `{"error": "<message for a person>", "code": "<snake_case>"}`.
///
/// `code` is a string rather than an [`ErrorCode`] so that a client reads codes a newer server
/// adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// One of the contract's codes ([`ErrorCode::as_str`]).
    pub code: String,
}

impl ErrorBody {
    /// The body of an error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { error: message.into(), code: code.as_str().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_the_contract_spells_them() {
        for code in [ErrorCode::InvalidRequest, ErrorCode::QuotaExceeded, ErrorCode::FunctionTimeout] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let body = serde_json::to_value(ErrorBody::new(ErrorCode::NotFound, "no model \"m\"")).unwrap();
        assert_eq!(body, serde_json::json!({"error": "no model \"m\"", "code": "not_found"}));
        assert_eq!(ErrorCode::RateLimited.status(), 429);
    }
}
