//! Who is calling: the operator (admin key), a tenant's owner or invoker key, or nobody.
//!
//! Keys arrive as `Authorization: Bearer <key>`. The admin key is compared by hash in
//! constant time; tenant keys are looked up and compared by the registry (keyed hash,
//! constant time). 401 means "no valid key", 403 "valid key, not allowed here", and the
//! 403 is the same whether or not the other tenant or resource exists.

use http::HeaderMap;
use maas_registry::{KeyInfo, Quota, Registry, Role};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator.
    Admin,
    /// A tenant key, with its tenant's quota as it was when the request arrived.
    Key(KeyInfo, Box<Quota>),
    /// No `Authorization` header (only public functions and health checks accept this).
    Anonymous,
}

impl Principal {
    /// Admin only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Anonymous => Err(ApiError::unauthenticated()),
            Principal::Key(..) => Err(ApiError::forbidden()),
        }
    }

    /// Admin, or an owner key of `tenant`.
    pub fn require_owner(&self, tenant: &str) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Key(k, _) if k.tenant == tenant && k.role == Role::Owner => Ok(()),
            Principal::Key(..) => Err(ApiError::forbidden()),
            Principal::Anonymous => Err(ApiError::unauthenticated()),
        }
    }

    /// Admin, or an owner or invoker key of `tenant`.
    pub fn require_member(&self, tenant: &str) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Key(k, _) if k.tenant == tenant => Ok(()),
            Principal::Key(..) => Err(ApiError::forbidden()),
            Principal::Anonymous => Err(ApiError::unauthenticated()),
        }
    }

    /// The id of the key used, for tenant keys.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Principal::Key(k, _) => Some(&k.id),
            _ => None,
        }
    }

    /// For logs: `admin`, `owner:acme`, `invoker:acme` or `anonymous` (never the key).
    pub fn describe(&self) -> String {
        match self {
            Principal::Admin => "admin".into(),
            Principal::Key(k, _) => format!("{}:{}", k.role.as_str(), k.tenant),
            Principal::Anonymous => "anonymous".into(),
        }
    }
}

/// Resolves the `Authorization` header to a [`Principal`].
pub struct Authenticator {
    admin_key_hash: [u8; 32],
}

impl Authenticator {
    /// An authenticator for the admin key whose SHA-256 is `admin_key_hash`.
    pub fn new(admin_key_hash: [u8; 32]) -> Self {
        Self { admin_key_hash }
    }

    /// The caller. A present but unknown, malformed or revoked key is 401; a key of a
    /// suspended tenant is 403.
    pub fn authenticate(&self, registry: &Registry, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(Principal::Anonymous);
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if bool::from(hash.ct_eq(&self.admin_key_hash)) {
            return Ok(Principal::Admin);
        }
        let info = registry.authenticate(key)?.ok_or_else(ApiError::unauthenticated)?;
        match registry.tenant(&info.tenant)? {
            None => Err(ApiError::unauthenticated()),
            Some(t) if t.suspended => Err(ApiError::suspended(&t.name)),
            Some(t) => Ok(Principal::Key(info, Box::new(t.quota))),
        }
    }
}
