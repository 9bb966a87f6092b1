//! The one place where errors become HTTP answers.
//!
//! Every error a client sees is `{"error": "<human message>", "code": "<snake_case>"}` with a
//! status from the contract ([`ErrorCode::status`]). Details of internal faults go to the log,
//! never to the client; payloads go to neither.

use http::{HeaderValue, Response, StatusCode};
use maas_registry::Error as RegistryError;
use maas_types::{ErrorBody, ErrorCode};

use super::response::{Body, json};
use crate::error::Error;
use crate::host::InvokeError;
use crate::inference::InferenceError;
use crate::trust::TrustError;

/// An error answer: status, contract code, a message for people, and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code from the contract.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`), for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// `500 internal`: logs `detail`, tells the client only that something broke.
    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error; the operator's log has the details")
    }

    /// `500 internal` for stored data that fails its integrity check (a tampered or damaged
    /// blob): refused, never served. The log has which blob.
    fn corrupt(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "stored data failed its integrity check");
        Self::new(
            ErrorCode::Internal,
            "stored data failed its integrity check and was not used; the operator's log has the details",
        )
    }

    /// The JSON answer.
    pub fn into_response(self) -> Response<Body> {
        let mut response = json(self.status, &ErrorBody::new(self.code, self.message));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use ErrorCode as C;
        match e {
            Error::Unauthenticated => Self::new(C::Unauthenticated, e.to_string()),
            Error::Forbidden | Error::ForbiddenBecause(_) | Error::Suspended(_) => {
                Self::new(C::Forbidden, e.to_string())
            }
            Error::NotFound(m) => Self::new(C::NotFound, m),
            Error::MethodNotAllowed(_) => {
                Self { status: StatusCode::METHOD_NOT_ALLOWED, ..Self::new(C::InvalidRequest, e.to_string()) }
            }
            Error::InvalidRequest(m) => Self::new(C::InvalidRequest, m),
            Error::PayloadTooLarge(_) => Self::new(C::PayloadTooLarge, e.to_string()),
            Error::RateLimited { message, retry_after, .. } => {
                Self { retry_after: Some(retry_after), ..Self::new(C::RateLimited, message) }
            }
            Error::BadResponse(_) => Self::new(C::FunctionTrapped, e.to_string()),
            Error::Registry(e) => registry(e),
            Error::Inference(e) => inference(e),
            Error::Trust(TrustError::InvalidRequest(m)) => Self::new(C::InvalidRequest, m),
            Error::Trust(TrustError::Inference(e)) => inference(e),
            Error::Trust(e @ TrustError::DeadlineExceeded) => Self::new(C::FunctionTimeout, e.to_string()),
            Error::Trust(other) => Self::internal(other),
            Error::Invoke(e @ InvokeError::Timeout(_)) => Self::new(C::FunctionTimeout, e.to_string()),
            // What the guest wrote and its backtrace go to the log only: any caller, anonymous
            // ones included, would read them otherwise.
            Error::Invoke(InvokeError::Trapped(detail)) => {
                tracing::warn!(%detail, "the function trapped");
                Self::new(C::FunctionTrapped, "the function trapped")
            }
            Error::Invoke(InvokeError::MemoryLimit { limit_mb, detail }) => {
                tracing::warn!(%detail, limit_mb, "the function hit its memory limit");
                Self::new(C::FunctionTrapped, format!("the function exceeded its memory limit of {limit_mb} MiB"))
            }
            // The host had no room for another instance: try again shortly.
            Error::Invoke(e) => Self { retry_after: Some(1), ..Self::new(C::RateLimited, e.to_string()) },
            Error::InvalidComponent(e) => Self::new(C::InvalidComponent, e.0),
            Error::Internal(detail) => Self::internal(detail),
        }
    }
}

fn registry(e: RegistryError) -> ApiError {
    use RegistryError as E;
    match e {
        E::InvalidName(_) | E::InvalidRequest(_) | E::InvalidManifest(_) => {
            ApiError::new(ErrorCode::InvalidRequest, e.to_string())
        }
        E::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        E::Conflict(_) => ApiError::new(ErrorCode::Conflict, e.to_string()),
        E::QuotaExceeded(_) => ApiError::new(ErrorCode::QuotaExceeded, e.to_string()),
        E::Corrupt(_) => ApiError::corrupt(e),
        other => ApiError::internal(other),
    }
}

fn inference(e: InferenceError) -> ApiError {
    match e {
        InferenceError::InvalidModel(m) => {
            ApiError::new(ErrorCode::InvalidModel, format!("tract cannot load this model: {m}"))
        }
        InferenceError::InvalidInput(m) => ApiError::new(ErrorCode::InvalidInput, m),
        e @ InferenceError::DeadlineExceeded => ApiError::new(ErrorCode::FunctionTimeout, e.to_string()),
        // The engine failed on inputs the model accepted: the model's failure, not the
        // platform's.
        InferenceError::Failed(m) => ApiError::new(ErrorCode::FunctionTrapped, format!("inference failed: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_has_its_contract_status() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::Unauthenticated, 401, "unauthenticated"),
            (Error::Forbidden, 403, "forbidden"),
            (Error::Suspended("acme".into()), 403, "forbidden"),
            (Error::not_found("no model"), 404, "not_found"),
            (Error::MethodNotAllowed("PATCH".into()), 405, "invalid_request"),
            (Error::invalid("bad"), 400, "invalid_request"),
            (Error::PayloadTooLarge(10), 413, "payload_too_large"),
            (Error::rate_limited(crate::error::Limit::Rate, "slow down", 3), 429, "rate_limited"),
            (Error::BadResponse("an invalid status 42".into()), 500, "function_trapped"),
            (RegistryError::QuotaExceeded("full".into()).into(), 403, "quota_exceeded"),
            (RegistryError::Conflict("taken".into()).into(), 409, "conflict"),
            (RegistryError::Corrupt("blob 7".into()).into(), 500, "internal"),
            (InferenceError::InvalidModel("garbage".into()).into(), 400, "invalid_model"),
            (InferenceError::InvalidInput("shape".into()).into(), 400, "invalid_input"),
            (TrustError::DeadlineExceeded.into(), 504, "function_timeout"),
            (InvokeError::Timeout(5).into(), 504, "function_timeout"),
            (InvokeError::Trapped("unreachable".into()).into(), 500, "function_trapped"),
            (InvokeError::Host("pool".into()).into(), 429, "rate_limited"),
            (crate::host::InvalidComponent("core module".into()).into(), 400, "invalid_component"),
            (Error::internal("a secret detail"), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let shown = error.to_string();
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code.as_str()), (status, code), "{shown}");
            if status == 429 {
                assert!(api.retry_after.is_some(), "{shown}: no Retry-After");
            }
        }
        // Internal details stay in the log.
        assert!(!ApiError::from(Error::internal("a secret detail")).message.contains("secret"));
    }
}
