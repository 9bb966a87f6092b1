//! The one place where errors become HTTP responses.
//!
//! Every error a client sees is `{"error": "<human message>", "code": "<snake_case>"}` with a
//! status from the contract. Details of internal faults go to the log, never to the client;
//! payloads go to neither.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use maas_registry::Error as RegistryError;

use crate::host::{InvalidComponent, InvokeError};
use crate::inference::InferenceError;
use crate::trust::TrustError;

/// An error answer: status, machine-readable code and a message for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code from the contract (`invalid_request`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`), for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// `400 invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "a valid key is required: Authorization: Bearer <key>")
    }

    /// `403 forbidden`, the same answer whether or not the resource exists.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "this key may not do that")
    }

    /// `403 forbidden` for every key of a suspended tenant.
    pub fn suspended(tenant: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", format!("tenant {tenant} is suspended"))
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `413 payload_too_large`.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    /// `429 rate_limited` with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message) }
    }

    /// `500 internal`: logs `detail`, tells the client only that something broke.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the operator's log has the details")
    }

    /// `500 internal` for stored data that fails its integrity check (a tampered or damaged
    /// blob): refused, never served. The log has which blob.
    pub fn corrupt(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "stored data failed its integrity check");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored data failed its integrity check and was not used; the operator's log has the details",
        )
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.message, "code": self.code });
        let mut response = crate::api::json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        match e {
            E::InvalidName(_) | E::InvalidRequest(_) | E::InvalidManifest(_) => Self::invalid_request(e.to_string()),
            E::NotFound(_) => Self::not_found(e.to_string()),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            E::QuotaExceeded(_) => Self::new(StatusCode::FORBIDDEN, "quota_exceeded", e.to_string()),
            E::Corrupt(_) => Self::corrupt(e),
            other => Self::internal(other),
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        match e {
            InferenceError::InvalidModel(m) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_model", format!("tract cannot load this model: {m}"))
            }
            InferenceError::InvalidInput(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_input", m),
            InferenceError::Failed(m) => Self::internal(format!("inference failed: {m}")),
        }
    }
}

impl From<TrustError> for ApiError {
    fn from(e: TrustError) -> Self {
        match e {
            TrustError::InvalidRequest(m) => Self::invalid_request(m),
            TrustError::Inference(e) => e.into(),
            TrustError::DeadlineExceeded => Self::new(StatusCode::GATEWAY_TIMEOUT, "function_timeout", e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<InvalidComponent> for ApiError {
    fn from(e: InvalidComponent) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_component", e.0)
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::Timeout(_) => Self::new(StatusCode::GATEWAY_TIMEOUT, "function_timeout", e.to_string()),
            InvokeError::Trapped(_) | InvokeError::MemoryLimit { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "function_trapped", e.to_string())
            }
            InvokeError::Host(_) => Self::rate_limited(e.to_string(), 1),
        }
    }
}

/// Lets handlers return the response for a successful body too.
pub type ApiResult<T = Response<Full<Bytes>>> = Result<T, ApiError>;
