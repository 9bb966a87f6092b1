//! The crate's one error type.

use std::fmt;

/// Anything that can go wrong in a call: the server said no ([`Error::Api`]), it could not be
/// reached or the connection broke, a local file could not be read, an answer did not decode,
/// or an upload arrived with another digest than the one sent.
///
/// The server's refusals keep its `code` and `message` ([`ApiError`]), so a caller can branch on
/// the code (`not_found`, `quota_exceeded`, ...) and show the message as the server wrote it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),

    /// The server could not be reached, or the connection failed before an answer arrived.
    #[error("{context}: {source}")]
    Transport {
        /// What the client was doing (`POST http://…/v1/tenants`).
        context: String,
        /// The underlying failure, with its causes in the message.
        #[source]
        source: TransportError,
    },

    /// A local read failed: an upload's file or reader.
    #[error("{context}: {source}")]
    Io {
        /// What the client was reading.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A successful answer's body is not the JSON this client expects (a server of another
    /// version, or a proxy answering in its place).
    #[error("{context}: the answer does not decode: {source}")]
    Decode {
        /// The request whose answer failed to decode.
        context: String,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },

    /// The server stored an upload whose sha256 differs from the one computed while sending it:
    /// the bytes were changed on the way (or the file changed while it was read).
    #[error("upload integrity check failed: sent sha256 {sent}, the server stored {stored}")]
    DigestMismatch {
        /// Lowercase hex sha256 of the bytes sent.
        sent: String,
        /// Lowercase hex sha256 the server reports.
        stored: String,
    },

    /// An argument cannot make a valid request (a URL without a host, a header name with a
    /// space, ...). Nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The server's error code (`not_found`, `quota_exceeded`, ...) when the server refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// The HTTP status when the server refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            _ => None,
        }
    }

    /// The server's refusal, if that is what this is.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn transport(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Transport { context: context.into(), source: TransportError(source.into()) }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// A refusal from the server: `{"error": "<message>", "code": "<code>"}` with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ApiError {
    /// The HTTP status (`401`, `403`, `404`, ...).
    pub status: u16,
    /// The machine-readable code from the contract: `invalid_request`, `invalid_model`,
    /// `unauthenticated`, `forbidden`, `quota_exceeded`, `not_found`, `conflict`, ... When the
    /// body was not the platform's error JSON (a proxy answered, say) it is
    /// [`ApiError::UNEXPECTED`].
    pub code: String,
    /// What went wrong, for a person, as the server wrote it.
    pub message: String,
    /// Seconds the server asks to wait before retrying (`Retry-After`, on `429`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The code of an error answer whose body is not `{"error", "code"}`.
    pub const UNEXPECTED: &'static str = "unexpected_response";

    /// Reads an error answer: the platform's JSON when it is that, else the start of the body.
    pub fn from_response(status: u16, retry_after: Option<u64>, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            error: String,
            #[serde(default)]
            code: Option<String>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(Body { error, code }) => {
                ApiError { status, code: code.unwrap_or_else(|| Self::UNEXPECTED.into()), message: error, retry_after }
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
                let message = if text.is_empty() { format!("HTTP {status} with an empty body") } else { text };
                ApiError { status, code: Self::UNEXPECTED.into(), message, retry_after }
            }
        }
    }
}

/// Why a request did not get an answer: a connection failure with its chain of causes.
#[derive(Debug)]
pub struct TransportError(Box<dyn std::error::Error + Send + Sync>);

impl TransportError {
    /// The underlying error (hyper's, or an I/O error).
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for TransportError {
    /// The error and each of its causes, `: `-separated (hyper's top-level messages alone, such
    /// as "client error (Connect)", do not say what happened).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_from_platform_json() {
        let e = ApiError::from_response(404, None, br#"{"error":"no model \"x\"","code":"not_found"}"#);
        assert_eq!(e.code, "not_found");
        assert_eq!(e.message, "no model \"x\"");
        assert_eq!(e.to_string(), "no model \"x\" (not_found, HTTP 404)");
    }

    #[test]
    fn api_error_from_other_body() {
        let e = ApiError::from_response(502, None, b"<html>Bad Gateway</html>");
        assert_eq!(e.code, ApiError::UNEXPECTED);
        assert_eq!(e.message, "<html>Bad Gateway</html>");
        let e = ApiError::from_response(500, None, b"");
        assert_eq!(e.message, "HTTP 500 with an empty body");
    }
}
