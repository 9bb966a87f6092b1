//! The audit trail: who changed what, and when.

use serde::{Deserialize, Serialize};

/// One administrative action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the trail; increases with time (assigned by the registry).
    #[serde(default)]
    pub seq: u64,
    /// When, RFC 3339 UTC (assigned by the registry).
    #[serde(default)]
    pub at: String,
    /// Who: `admin`, `owner:<tenant>`.
    pub actor: String,
    /// The id of the key used, for tenant keys.
    pub key_id: Option<String>,
    /// What: `tenant.create`, `key.revoke`, `model.upload`, ...
    pub action: String,
    /// The tenant acted on, if any.
    pub tenant: Option<String>,
    /// The resource acted on: a tenant, key id, `model@version`, component digest or function.
    pub target: String,
    /// Facts about the change (version, revision, role, changed quota fields); never secrets.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// `GET /v1/audit`: `{"entries": [...]}`, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditList {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}
