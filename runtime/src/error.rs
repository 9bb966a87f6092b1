//! The runtime's one error type: every way a request can fail, in domain terms.
//!
//! Nothing here speaks HTTP. The layers below the API (authentication, admission, metering,
//! scale, the host, inference, trust, the registry) fail with an [`Error`]; the API maps each
//! variant to a status and a contract code in exactly one place (`api/error.rs`).

use crate::host::{InvalidComponent, InvokeError};
use crate::inference::InferenceError;
use crate::trust::TrustError;

/// A runtime result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No valid key: none, malformed, unknown or revoked.
    #[error("a valid key is required: Authorization: Bearer <key>")]
    Unauthenticated,
    /// A valid key that may not do this. The message is the same whether or not the other
    /// tenant or resource exists.
    #[error("this key may not do that")]
    Forbidden,
    /// A valid key that may not do this, for a reason worth telling (the admin key on a route
    /// that serves the key's own tenant).
    #[error("{0}")]
    ForbiddenBecause(String),
    /// Every key of a suspended tenant is refused.
    #[error("tenant {0} is suspended")]
    Suspended(String),
    /// No such route, tenant, model, version or function.
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method (named) does not.
    #[error("{0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// A malformed or out-of-bounds request.
    #[error("{0}")]
    InvalidRequest(String),
    /// A body larger than the limit, in bytes.
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// Over a rate, a concurrency limit, a quota or the daily energy budget.
    #[error("{message}")]
    RateLimited {
        /// Which kind of limit.
        limit: Limit,
        /// What limit, for a person.
        message: String,
        /// Seconds to wait before trying again.
        retry_after: u64,
    },
    /// The function gave an answer HTTP cannot carry (a bad status or header).
    #[error("the function returned {0}")]
    BadResponse(String),
    /// The store refused or failed.
    #[error(transparent)]
    Registry(#[from] maas_registry::Error),
    /// A model failed to load, refused its inputs, or failed to run.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// An explanation or audit could not be made.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A function trapped, ran out of memory or time, or could not be run.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// An upload that is not a component of the function world.
    #[error(transparent)]
    InvalidComponent(#[from] InvalidComponent),
    /// A fault of the platform's own; the detail is for the operator's log, not the client.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// [`Error::Internal`] with `detail`.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// [`Error::InvalidRequest`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }

    /// [`Error::NotFound`] with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// [`Error::RateLimited`].
    pub fn rate_limited(limit: Limit, message: impl Into<String>, retry_after: u64) -> Self {
        Error::RateLimited { limit, message: message.into(), retry_after }
    }
}

/// The kind of limit behind an [`Error::RateLimited`], for the metrics of refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Requests per second.
    Rate,
    /// Work at once, and the queue in front of it.
    Concurrency,
    /// The daily energy budget.
    Budget,
    /// Another quota: bodies in memory, uploads in progress.
    Quota,
}
