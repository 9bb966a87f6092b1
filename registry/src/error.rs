//! The registry's one error type.

/// A registry result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a registry call can fail with.
///
/// The HTTP layer maps each variant to a status once:
///
/// | variant | status |
/// |---|---|
/// | [`InvalidName`](Error::InvalidName), [`InvalidManifest`](Error::InvalidManifest), [`InvalidRequest`](Error::InvalidRequest) | 400 |
/// | [`QuotaExceeded`](Error::QuotaExceeded) | 403 |
/// | [`NotFound`](Error::NotFound) | 404 |
/// | [`Conflict`](Error::Conflict) | 409 |
/// | [`Corrupt`](Error::Corrupt), [`MasterKeyMismatch`](Error::MasterKeyMismatch), [`Storage`](Error::Storage) | 500 |
///
/// The messages of the 4xx variants are written for the client and never contain payloads or secrets;
/// the 5xx ones are for logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant, model, function or alias name breaks its naming rule. The message says which rule.
    #[error("{0}")]
    InvalidName(String),
    /// A function manifest is malformed or out of bounds. The message names the field.
    #[error("{0}")]
    InvalidManifest(String),
    /// Any other invalid argument (a quota value, a key label, a tensor spec, a blob that is not an
    /// uncommitted upload of the tenant, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The tenant or resource does not exist. The message names it.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state: the tenant exists already, or a function still uses
    /// the model being deleted (the message names the function).
    #[error("{0}")]
    Conflict(String),
    /// A tenant quota would be exceeded. The message names the quota and its value.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Stored data failed a check: a blob chunk failed AEAD authentication, is missing or has the wrong
    /// length, a blob's sha256 or size does not match its metadata, or a record does not decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The store was created with another master key: nothing in it could be decrypted or authenticated.
    #[error("the master key does not match the one this store was created with")]
    MasterKeyMismatch,
    /// The underlying sled store failed (I/O, or the directory is locked by another process).
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
}

impl From<maas_types::Error> for Error {
    fn from(e: maas_types::Error) -> Self {
        match e {
            maas_types::Error::InvalidName(m) => Error::InvalidName(m),
            maas_types::Error::InvalidManifest(m) => Error::InvalidManifest(m),
            other => Error::InvalidRequest(other.to_string()),
        }
    }
}

impl From<sled::transaction::TransactionError<()>> for Error {
    fn from(e: sled::transaction::TransactionError<()>) -> Self {
        match e {
            sled::transaction::TransactionError::Storage(e) => Error::Storage(e),
            sled::transaction::TransactionError::Abort(()) => {
                Error::Storage(sled::Error::Unsupported("transaction aborted".into()))
            }
        }
    }
}
