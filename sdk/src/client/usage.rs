//! Usage and energy of a tenant, and the audit trail (admin).

use maas_types::{AuditEntry, AuditList, UsageReport};

use super::{Client, seg};
use crate::error::Result;

/// Which audit entries to read (`GET /v1/audit`): newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries about this tenant.
    pub tenant: Option<String>,
    /// At most this many (the server's default is 100, its maximum 1000).
    pub limit: Option<u32>,
    /// Only entries older than this `seq` (to page backwards).
    pub before: Option<u64>,
}

impl Client {
    /// `GET /v1/tenants/{t}/usage`: invocations, errors, CPU and inference time, energy,
    /// storage, per function and per day.
    pub async fn usage(&self, tenant: &str) -> Result<UsageReport> {
        self.get(&format!("/v1/tenants/{}/usage", seg(tenant))).await
    }

    /// `GET /v1/audit` (admin): administrative changes, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut params = Vec::new();
        if let Some(t) = &query.tenant {
            params.push(format!("tenant={}", seg(t)));
        }
        if let Some(n) = query.limit {
            params.push(format!("limit={n}"));
        }
        if let Some(seq) = query.before {
            params.push(format!("before={seq}"));
        }
        let path = if params.is_empty() { "/v1/audit".to_string() } else { format!("/v1/audit?{}", params.join("&")) };
        Ok(self.get::<AuditList>(&path).await?.entries)
    }
}
