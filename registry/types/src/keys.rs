//! API keys: roles, what a key shows, and the key requests.

use serde::{Deserialize, Serialize};

/// What a key may do within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages the tenant's models, components, functions and keys; may invoke. Serialised `"owner"`.
    Owner,
    /// May only invoke the tenant's functions and OIP inference. Serialised `"invoker"`.
    Invoker,
}

impl Role {
    /// The serialised name: `owner` or `invoker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Invoker => "invoker",
        }
    }
}

/// An API key as shown after creation: everything but the secret and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// 16 lowercase hex characters, also embedded in the secret.
    pub id: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// A free-form note set at creation.
    pub label: Option<String>,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
}

/// `POST /v1/tenants/{t}/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `owner` or `invoker`.
    pub role: Role,
    /// A free-form note (at most 256 bytes, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A key just created: its details and the secret, which the server shows this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// Id, tenant, role, label and creation time.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The bearer secret (`maas_<id>_<secret>`). Store it now: it cannot be shown again.
    pub key: String,
}

/// `GET /v1/tenants/{t}/keys`: `{"keys": [...]}`, without secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// The tenant's keys, by id.
    pub keys: Vec<KeyInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_decodes() {
        let value = serde_json::json!({"id": "0123456789abcdef", "tenant": "acme", "role": "invoker", "label": null,
                           "created_at": "t", "key": "maas_x"});
        let k: CreatedKey = serde_json::from_value(value).unwrap();
        assert_eq!((k.info.role, k.key.as_str()), (Role::Invoker, "maas_x"));
    }
}
