//! Tenants and their quotas.

use maas_types::names::validate_tenant_name;
use maas_types::{Quota, QuotaPatch, Tenant};

use crate::Registry;
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

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
            self.forget_totals(name);
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
