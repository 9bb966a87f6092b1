//! Tenants: the record, its quota, the view the API shows and the admin requests.

use serde::{Deserialize, Serialize};

use crate::error::Error;

const MIB: u64 = 1024 * 1024;

/// A tenant: the unit of isolation, quotas and encryption keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// The name, `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub name: String,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// Its limits.
    pub quota: Quota,
    /// A suspended tenant's keys are refused (the runtime's check) and its functions are not served.
    #[serde(default)]
    pub suspended: bool,
}

/// A tenant's limits. Every field has a default fit for a shared server (see [`Quota::default`]).
///
/// Storage limits are checked by the registry at commit time; rate, concurrency, request size, memory and timeout are
/// enforced by the runtime (memory and timeout also bound function manifests, see
/// [`Manifest::validate`](crate::Manifest::validate)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    /// Largest single model upload, bytes. Default 512 MiB.
    pub max_model_bytes: u64,
    /// Total of the tenant's model and component blob sizes, bytes. Default 2 GiB.
    pub max_storage_bytes: u64,
    /// Number of model names (all versions of a name count once). Default 100.
    pub max_models: u64,
    /// Number of functions. Default 100.
    pub max_functions: u64,
    /// Concurrent invocations across the tenant's functions, at least 1. Default 16.
    pub max_concurrency: u32,
    /// Sustained requests per second, finite and > 0. Default 100.
    pub rate_per_second: f64,
    /// Largest `limits.memory_mb` a manifest may ask for, 1..=4096. Default 512.
    pub max_memory_mb: u32,
    /// Largest `limits.timeout_ms` a manifest may ask for, 1..=3 600 000. Default 30 000.
    pub max_timeout_ms: u64,
    /// Largest request body, bytes, at least 1. Default 16 MiB.
    pub max_request_bytes: u64,
    /// Energy the tenant may spend per UTC day, joules (metered CPU time × watts per core);
    /// `None` (the default): no budget.
    pub max_energy_joules_per_day: Option<f64>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_model_bytes: 512 * MIB,
            max_storage_bytes: 2048 * MIB,
            max_models: 100,
            max_functions: 100,
            max_concurrency: 16,
            rate_per_second: 100.0,
            max_memory_mb: 512,
            max_timeout_ms: 30_000,
            max_request_bytes: 16 * MIB,
            max_energy_joules_per_day: None,
        }
    }
}

/// Largest `max_memory_mb` a quota may hold.
pub const MAX_MEMORY_MB: u32 = 4096;
/// Largest `max_timeout_ms` a quota may hold.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl Quota {
    /// `max_memory_mb` in bytes: the most a function's memory, and one tensor of a model, may be.
    pub fn max_memory_bytes(&self) -> u64 {
        u64::from(self.max_memory_mb) << 20
    }

    /// Returns this quota with the fields `patch` sets replaced, validated.
    pub fn patched(&self, patch: &QuotaPatch) -> Result<Quota, Error> {
        let mut q = self.clone();
        let QuotaPatch {
            max_model_bytes,
            max_storage_bytes,
            max_models,
            max_functions,
            max_concurrency,
            rate_per_second,
            max_memory_mb,
            max_timeout_ms,
            max_request_bytes,
            max_energy_joules_per_day,
        } = patch;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = $f { q.$f = *v; } )* };
        }
        set!(
            max_model_bytes,
            max_storage_bytes,
            max_models,
            max_functions,
            max_concurrency,
            rate_per_second,
            max_memory_mb,
            max_timeout_ms,
            max_request_bytes
        );
        if let Some(budget) = max_energy_joules_per_day {
            q.max_energy_joules_per_day = *budget;
        }
        q.validate()?;
        Ok(q)
    }

    /// Checks every value is within its bounds ([`Error::InvalidValue`] naming the field otherwise).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &str, rule: &str| Err(Error::InvalidValue(format!("quota.{field} must be {rule}")));
        if self.max_concurrency == 0 {
            return bad("max_concurrency", "at least 1");
        }
        if !(self.rate_per_second.is_finite() && self.rate_per_second > 0.0) {
            return bad("rate_per_second", "a finite number greater than 0");
        }
        if !(1..=MAX_MEMORY_MB).contains(&self.max_memory_mb) {
            return bad("max_memory_mb", "between 1 and 4096");
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.max_timeout_ms) {
            return bad("max_timeout_ms", "between 1 and 3600000");
        }
        if self.max_request_bytes == 0 {
            return bad("max_request_bytes", "at least 1");
        }
        if self.max_energy_joules_per_day.is_some_and(|j| !(j.is_finite() && j > 0.0)) {
            return bad("max_energy_joules_per_day", "a finite number greater than 0, or null for no budget");
        }
        Ok(())
    }
}

/// Changes to a [`Quota`]: each field set replaces the current value. Unknown fields are refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaPatch {
    /// See [`Quota::max_model_bytes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_bytes: Option<u64>,
    /// See [`Quota::max_storage_bytes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_storage_bytes: Option<u64>,
    /// See [`Quota::max_models`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_models: Option<u64>,
    /// See [`Quota::max_functions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_functions: Option<u64>,
    /// See [`Quota::max_concurrency`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// See [`Quota::rate_per_second`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// See [`Quota::max_memory_mb`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    /// See [`Quota::max_timeout_ms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timeout_ms: Option<u64>,
    /// See [`Quota::max_request_bytes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// See [`Quota::max_energy_joules_per_day`]: absent leaves it, `null` removes the budget.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub max_energy_joules_per_day: Option<Option<f64>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `POST /v1/tenants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The name, `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub name: String,
    /// Quota fields to change from the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPatch>,
}

/// `PATCH /v1/tenants/{t}`: the fields to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// Quota fields to replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPatch>,
    /// Suspend (`true`: its keys get `403`) or reinstate (`false`) the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

/// A tenant as `GET /v1/tenants/{t}` shows it: the record and its current use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// Name, creation time, quota and suspension.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// What it uses now.
    #[serde(default)]
    pub usage: TenantUsage,
}

/// A tenant's current use of its quota.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantUsage {
    /// Bytes of model and component blobs stored.
    pub storage_bytes: u64,
    /// Model names (all versions of a name count once).
    pub models: u64,
    /// Deployed functions.
    pub functions: u64,
}

/// `GET /v1/tenants`: `{"tenants": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantList {
    /// Every tenant, by name.
    pub tenants: Vec<TenantInfo>,
}
