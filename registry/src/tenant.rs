//! Tenants and their quotas.

use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::error::{Error, Result};
use crate::names::validate_tenant_name;
use crate::store::{Batch, T, key, prefix};

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
/// Storage limits are checked here at commit time; rate, concurrency, request size, memory and timeout are
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

/// Bounds a quota value must stay within.
pub(crate) const MAX_MEMORY_MB: u32 = 4096;
pub(crate) const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl Quota {
    /// Returns this quota with the fields `patch` sets replaced, validated.
    pub fn patched(&self, patch: &QuotaPatch) -> Result<Quota> {
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

    /// Checks every value is within its bounds ([`Error::InvalidRequest`] naming the field otherwise).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, rule: &str| Err(Error::InvalidRequest(format!("quota.{field} must be {rule}")));
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

pub(crate) fn tenant_not_found(name: &str) -> Error {
    Error::NotFound(format!("tenant {name:?} not found"))
}

impl Registry {
    /// Creates a tenant with the default quota changed by `quota`.
    ///
    /// [`Error::InvalidName`] for a bad name, [`Error::InvalidRequest`] for a bad quota value,
    /// [`Error::Conflict`] if the tenant exists.
    pub fn create_tenant(&self, name: &str, quota: Option<QuotaPatch>) -> Result<Tenant> {
        validate_tenant_name(name)?;
        let quota = Quota::default().patched(&quota.unwrap_or_default())?;
        let _w = self.inner.write_lock();
        if self.trees().tree(T::Tenants).contains_key(name)? {
            return Err(Error::Conflict(format!("tenant {name:?} already exists")));
        }
        let tenant = Tenant { name: name.to_owned(), created_at: crate::time::now(), quota, suspended: false };
        let mut batch = Batch::default();
        batch.insert_json(T::Tenants, name, &tenant);
        self.trees().apply(&batch)?;
        Ok(tenant)
    }

    /// The tenant named `name`, if it exists.
    pub fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        if validate_tenant_name(name).is_err() {
            return Ok(None);
        }
        self.trees().get_json(T::Tenants, name.as_bytes())
    }

    /// The tenant named `name`, or [`Error::NotFound`].
    pub(crate) fn require_tenant(&self, name: &str) -> Result<Tenant> {
        self.tenant(name)?.ok_or_else(|| tenant_not_found(name))
    }

    /// All tenants, by name.
    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        self.trees().scan_json(T::Tenants, b"")
    }

    /// Changes a tenant's quota (the fields `quota` sets) and/or its suspension.
    ///
    /// Lowering a quota below current use is allowed: it blocks further growth, it deletes nothing.
    pub fn update_tenant(&self, name: &str, quota: Option<QuotaPatch>, suspended: Option<bool>) -> Result<Tenant> {
        let _w = self.inner.write_lock();
        let mut tenant = self.require_tenant(name)?;
        if let Some(patch) = quota {
            tenant.quota = tenant.quota.patched(&patch)?;
        }
        if let Some(s) = suspended {
            tenant.suspended = s;
        }
        let mut batch = Batch::default();
        batch.insert_json(T::Tenants, name, &tenant);
        self.trees().apply(&batch)?;
        Ok(tenant)
    }

    /// Deletes a tenant and everything it owns: models and their blobs, components and their blobs and
    /// precompiled artifacts, functions, API keys (which stop working at once) and usage.
    ///
    /// All records go in one transaction; blob chunks are removed right after it (a crash in between
    /// leaves orphans that the next [`open`](Registry::open) sweeps). [`Error::NotFound`] if absent.
    pub fn delete_tenant(&self, name: &str) -> Result<()> {
        let blobs = {
            let _w = self.inner.write_lock();
            self.require_tenant(name)?;
            let trees = self.trees();
            let p = prefix(&[name.as_bytes()]);
            let mut batch = Batch::default();
            let mut blobs = Vec::new();

            for k in trees.scan_keys(T::KeysByTenant, &p)? {
                batch.remove(T::Keys, &k[p.len()..]);
                batch.remove(T::KeysByTenant, k.to_vec());
            }
            let models: Vec<crate::ModelVersion> = trees.scan_json(T::Models, &p)?;
            blobs.extend(models.into_iter().map(|m| m.blob));
            let components: Vec<crate::ComponentRecord> = trees.scan_json(T::Components, &p)?;
            blobs.extend(components.into_iter().map(|c| c.blob));
            let artifacts: Vec<crate::component::ArtifactRecord> = trees.scan_json(T::Artifacts, &p)?;
            blobs.extend(artifacts.into_iter().map(|a| a.blob));
            for t in
                [T::Models, T::ModelSeq, T::Components, T::Artifacts, T::Functions, T::Usage, T::ModelAudits, T::Cards]
            {
                for k in trees.scan_keys(t, &p)? {
                    batch.remove(t, k.to_vec());
                }
            }
            for b in &blobs {
                batch.remove(T::BlobRefs, b.id.to_be_bytes());
            }
            batch.remove(T::Tenants, key(&[name.as_bytes()]));
            trees.apply(&batch)?;
            blobs
        };
        crate::blob::remove_unreferenced(&self.inner, blobs);
        Ok(())
    }
}
