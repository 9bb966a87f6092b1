//! Who is calling: the operator (admin key), a tenant's owner or invoker key, or nobody.
//!
//! Keys arrive as `Authorization: Bearer <key>`. The admin key is compared by hash in
//! constant time; tenant keys are looked up and compared by the registry (keyed hash,
//! constant time). [`Error::Unauthenticated`] means "no valid key", [`Error::Forbidden`]
//! "valid key, not allowed here", and the refusal is the same whether or not the other tenant
//! or resource exists.
//!
//! A tenant key's [`Principal`] carries the tenant record it was checked against (quota,
//! suspension), so the rest of the request reads it from there instead of the registry again.

use maas_registry::Registry;
use maas_types::{KeyInfo, Role, Tenant};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator.
    Admin,
    /// A tenant key, with its tenant's record as it was when the request arrived.
    Key {
        /// The key.
        key: KeyInfo,
        /// Its tenant (never suspended: those keys are refused).
        tenant: Box<Tenant>,
    },
    /// No `Authorization` header (only public functions and health checks accept this).
    Anonymous,
}

impl Principal {
    /// Admin only.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Anonymous => Err(Error::Unauthenticated),
            Principal::Key { .. } => Err(Error::Forbidden),
        }
    }

    /// Admin, or an owner key of `tenant`.
    pub fn require_owner(&self, tenant: &str) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Key { key, .. } if key.tenant == tenant && key.role == Role::Owner => Ok(()),
            Principal::Key { .. } => Err(Error::Forbidden),
            Principal::Anonymous => Err(Error::Unauthenticated),
        }
    }

    /// Admin, or an owner or invoker key of `tenant`.
    pub fn require_member(&self, tenant: &str) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Key { key, .. } if key.tenant == tenant => Ok(()),
            Principal::Key { .. } => Err(Error::Forbidden),
            Principal::Anonymous => Err(Error::Unauthenticated),
        }
    }

    /// Any valid key.
    pub fn require_key(&self) -> Result<()> {
        match self {
            Principal::Anonymous => Err(Error::Unauthenticated),
            _ => Ok(()),
        }
    }

    /// The key's tenant record, for a tenant key; the admin has none.
    pub fn tenant(&self) -> Option<&Tenant> {
        match self {
            Principal::Key { tenant, .. } => Some(tenant),
            _ => None,
        }
    }

    /// The key's tenant record when the key belongs to `name`.
    pub fn tenant_named(&self, name: &str) -> Option<&Tenant> {
        self.tenant().filter(|t| t.name == name)
    }

    /// The id of the key used, for tenant keys.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Principal::Key { key, .. } => Some(&key.id),
            _ => None,
        }
    }

    /// For logs and the audit trail: `admin`, `owner:acme`, `invoker:acme` or `anonymous`
    /// (never the key).
    pub fn describe(&self) -> String {
        match self {
            Principal::Admin => "admin".into(),
            Principal::Key { key, .. } => format!("{}:{}", key.role.as_str(), key.tenant),
            Principal::Anonymous => "anonymous".into(),
        }
    }
}

/// Resolves a bearer credential to a [`Principal`].
pub struct Authenticator {
    admin_key_hash: [u8; 32],
}

impl Authenticator {
    /// An authenticator for the admin key whose SHA-256 is `admin_key_hash`.
    pub fn new(admin_key_hash: [u8; 32]) -> Self {
        Self { admin_key_hash }
    }

    /// The caller, from the raw `Authorization` header value (`None` without one). A present but
    /// unknown, malformed or revoked key is [`Error::Unauthenticated`]; a key of a suspended
    /// tenant is [`Error::Suspended`].
    pub fn authenticate(&self, registry: &Registry, authorization: Option<&[u8]>) -> Result<Principal> {
        let Some(value) = authorization else {
            return Ok(Principal::Anonymous);
        };
        let key = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Error::Unauthenticated)?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if bool::from(hash.ct_eq(&self.admin_key_hash)) {
            return Ok(Principal::Admin);
        }
        let info = registry.authenticate(key)?.ok_or(Error::Unauthenticated)?;
        match registry.tenant(&info.tenant)? {
            None => Err(Error::Unauthenticated),
            Some(t) if t.suspended => Err(Error::Suspended(t.name)),
            Some(t) => Ok(Principal::Key { key: info, tenant: Box::new(t) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), [3; 32]).unwrap();
        (dir, registry)
    }

    #[test]
    fn keys_resolve_to_their_principal() {
        let (_dir, registry) = registry();
        let auth = Authenticator::new(Sha256::digest(b"the-admin-key").into());
        registry.create_tenant("acme", None).unwrap();
        let (_, owner) = registry.create_key("acme", Role::Owner, None).unwrap();
        let (_, invoker) = registry.create_key("acme", Role::Invoker, None).unwrap();

        let bearer = |key: &str| format!("Bearer {key}").into_bytes();
        assert!(matches!(auth.authenticate(&registry, None), Ok(Principal::Anonymous)));
        assert!(matches!(auth.authenticate(&registry, Some(&bearer("the-admin-key"))), Ok(Principal::Admin)));
        let p = auth.authenticate(&registry, Some(&bearer(&owner))).unwrap();
        assert_eq!((p.describe(), p.tenant().map(|t| t.name.as_str())), ("owner:acme".into(), Some("acme")));
        assert!(p.require_owner("acme").is_ok() && p.require_owner("other").is_err());
        let p = auth.authenticate(&registry, Some(&bearer(&invoker))).unwrap();
        assert!(matches!(p.require_owner("acme"), Err(Error::Forbidden)));
        assert!(p.require_member("acme").is_ok());
        assert!(matches!(Principal::Anonymous.require_member("acme"), Err(Error::Unauthenticated)));

        for bad in [b"Bearer nope".to_vec(), b"Basic abc".to_vec(), vec![0xff, 0xfe]] {
            assert!(matches!(auth.authenticate(&registry, Some(&bad)), Err(Error::Unauthenticated)));
        }
        registry.update_tenant("acme", None, Some(true)).unwrap();
        assert!(matches!(auth.authenticate(&registry, Some(&bearer(&owner))), Err(Error::Suspended(t)) if t == "acme"));
        registry.delete_tenant("acme").unwrap();
        assert!(matches!(auth.authenticate(&registry, Some(&bearer(&owner))), Err(Error::Unauthenticated)));
    }
}
