//! The audit trail: handlers record each successful administrative change with
//! [`App::audit`]; the admin reads them with `GET /v1/audit`.

use std::sync::Arc;

use http::{Request, StatusCode};
use maas_registry::AuditEntry;
use serde_json::json;

use super::{App, json_response};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Entries returned when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most entries one request returns.
const MAX_LIMIT: usize = 1000;

impl App {
    /// Records that `principal` did `action` on `target` of `tenant`. `detail` holds facts
    /// about the change (never secrets). The change has already happened, so a failure to
    /// record it is logged as an error rather than returned.
    pub(crate) fn audit(
        &self,
        principal: &Principal,
        action: &str,
        tenant: Option<&str>,
        target: &str,
        detail: serde_json::Value,
    ) {
        let entry = AuditEntry {
            seq: 0,
            at: String::new(),
            actor: principal.describe(),
            key_id: principal.key_id().map(str::to_string),
            action: action.to_string(),
            tenant: tenant.map(str::to_string),
            target: target.to_string(),
            detail,
        };
        if let Err(e) = self.registry.append_audit(entry) {
            tracing::error!(error = %e, action, "could not record an audit entry");
        }
    }
}

/// `GET /v1/audit[?tenant=<t>][&limit=<n>][&before=<seq>]`: newest first.
pub(super) fn list<B>(app: &Arc<App>, p: &Principal, req: &Request<B>) -> ApiResult {
    p.require_admin()?;
    let (mut tenant, mut limit, mut before) = (None, DEFAULT_LIMIT, None);
    for pair in req.uri().query().unwrap_or_default().split('&').filter(|s| !s.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number =
            || value.parse::<u64>().map_err(|_| ApiError::invalid_request(format!("{name} must be a whole number")));
        match name {
            "tenant" => tenant = Some(value),
            "limit" => limit = (number()? as usize).clamp(1, MAX_LIMIT),
            "before" => before = Some(number()?),
            other => return Err(ApiError::invalid_request(format!("unknown query parameter {other:?}"))),
        }
    }
    let entries = app.registry.audit(tenant, before, limit)?;
    Ok(json_response(StatusCode::OK, &json!({ "entries": entries })))
}
