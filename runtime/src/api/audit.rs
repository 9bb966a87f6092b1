//! `GET /v1/audit[?tenant=<t>][&limit=<n>][&before=<seq>]`: the audit trail, newest first.

use std::sync::Arc;

use http::Response;
use maas_types::AuditList;

use super::Call;
use super::response::{Body, ok};
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Entries returned when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most entries one request returns.
const MAX_LIMIT: usize = 1000;

pub(super) async fn list(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let (mut tenant, mut limit, mut before) = (None, DEFAULT_LIMIT, None);
    for pair in call.request.uri().query().unwrap_or_default().split('&').filter(|s| !s.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || value.parse::<u64>().map_err(|_| Error::invalid(format!("{name} must be a whole number")));
        match name {
            "tenant" => tenant = Some(value),
            "limit" => limit = (number()? as usize).clamp(1, MAX_LIMIT),
            "before" => before = Some(number()?),
            other => return Err(Error::invalid(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(ok(&AuditList { entries: platform.registry.audit(tenant, before, limit)? }))
}
