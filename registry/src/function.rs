//! Deployed functions: their manifest ([`Manifest`], validated against the tenant's quota), and a check
//! that what it references exists.

use maas_types::names::validate_function_name;
use maas_types::{ComponentRef, Manifest};
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

/// A deployed function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// The owning tenant.
    pub tenant: String,
    /// The function name (the model name rule).
    pub name: String,
    /// What was deployed.
    pub manifest: Manifest,
    /// 1 on first deploy, +1 on every redeploy.
    pub revision: u64,
    /// First deploy, RFC 3339 UTC.
    pub created_at: String,
    /// Latest deploy, RFC 3339 UTC.
    pub updated_at: String,
}

impl Registry {
    /// Deploys (or redeploys) a function.
    ///
    /// Validates the manifest against the tenant's quota and checks that its component and every model
    /// (and pinned version) exist in the tenant ([`Error::InvalidManifest`] naming what is missing).
    /// [`Error::QuotaExceeded`] for a new function past `max_functions`. Returns the record and whether the
    /// function was created (`false`: redeployed, revision + 1).
    pub fn put_function(&self, tenant: &str, name: &str, manifest: Manifest) -> Result<(FunctionRecord, bool)> {
        validate_function_name(name)?;
        let _w = self.inner.write_lock();
        let t = self.require_tenant(tenant)?;
        manifest.validate(&t.quota)?;
        for (alias, r) in &manifest.models {
            let Some(found) = self.model_version(tenant, &r.name, r.version)? else {
                let what = match r.version {
                    Some(v) => format!("model {:?} version {v}", r.name),
                    None => format!("model {:?}", r.name),
                };
                return Err(Error::InvalidManifest(format!("models.{alias}: {what} not found in tenant {tenant:?}")));
            };
            if let Some(gate) = &manifest.require_audit {
                self.check_audit_gate(tenant, &found, gate)?;
            }
        }
        if let ComponentRef::Digest(d) = &manifest.component
            && self.component(tenant, d)?.is_none()
        {
            return Err(Error::InvalidManifest(format!(
                "component: {d} not found in tenant {tenant:?}; upload it first"
            )));
        }
        let k = key(&[tenant.as_bytes(), name.as_bytes()]);
        let existing = self.trees().get_json::<FunctionRecord>(T::Functions, &k)?;
        if existing.is_none() {
            let count = self.trees().scan_keys(T::Functions, &prefix(&[tenant.as_bytes()]))?.len() as u64;
            if count >= t.quota.max_functions {
                return Err(Error::QuotaExceeded(format!("the tenant has {count} functions, its max_functions")));
            }
        }
        let now = crate::time::now();
        let record = FunctionRecord {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            manifest,
            revision: existing.as_ref().map_or(1, |e| e.revision + 1),
            created_at: existing.as_ref().map_or_else(|| now.clone(), |e| e.created_at.clone()),
            updated_at: now,
        };
        let mut batch = Batch::default();
        batch.insert_json(T::Functions, k, &record);
        self.trees().apply(&batch)?;
        Ok((record, existing.is_none()))
    }

    /// The tenant's function `name`. [`Error::NotFound`] only for a missing tenant.
    pub fn function(&self, tenant: &str, name: &str) -> Result<Option<FunctionRecord>> {
        self.require_tenant(tenant)?;
        if validate_function_name(name).is_err() {
            return Ok(None);
        }
        self.trees().get_json(T::Functions, &key(&[tenant.as_bytes(), name.as_bytes()]))
    }

    /// The tenant's functions, by name.
    pub fn functions(&self, tenant: &str) -> Result<Vec<FunctionRecord>> {
        self.require_tenant(tenant)?;
        self.trees().scan_json(T::Functions, &prefix(&[tenant.as_bytes()]))
    }

    /// Every function of every tenant, by tenant then name.
    pub fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.trees().scan_json(T::Functions, b"")
    }

    /// Deletes a function. [`Error::NotFound`] if absent.
    pub fn delete_function(&self, tenant: &str, name: &str) -> Result<()> {
        let _w = self.inner.write_lock();
        if self.function(tenant, name)?.is_none() {
            return Err(Error::NotFound(format!("function {name:?} not found")));
        }
        let mut batch = Batch::default();
        batch.remove(T::Functions, key(&[tenant.as_bytes(), name.as_bytes()]));
        self.trees().apply(&batch)
    }
}
