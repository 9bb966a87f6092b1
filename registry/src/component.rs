//! WebAssembly components (content-addressed per tenant) and their precompiled artifacts.
//!
//! Artifacts are what `wasmtime::Component::serialize` produced, keyed by tenant, component reference
//! (`sha256:<hex>` or `builtin:<name>`) and engine fingerprint. They are stored as encrypted, authenticated
//! blobs like everything else: since `Component::deserialize` trusts its input, the tag and sha256 checks
//! are what make sure the runtime only ever deserializes bytes it produced itself.

use maas_types::{ComponentInfo, ComponentRef};
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::blob::{BlobRef, BlobWriter};
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

/// A component uploaded by a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// `sha256:<lowercase hex>` of the component bytes.
    pub digest: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// When it was first uploaded, RFC 3339 UTC.
    pub created_at: String,
    /// Where the bytes are (internal).
    pub blob: BlobRef,
}

impl ComponentRecord {
    /// The component as the API shows it (without the blob reference).
    pub fn info(&self) -> ComponentInfo {
        ComponentInfo { digest: self.digest.clone(), size_bytes: self.size_bytes, created_at: self.created_at.clone() }
    }
}

/// A stored precompiled artifact.
#[derive(Serialize, Deserialize)]
pub(crate) struct ArtifactRecord {
    pub(crate) component: String,
    pub(crate) engine: String,
    pub(crate) created_at: String,
    pub(crate) blob: BlobRef,
}

const MAX_ENGINE_LEN: usize = 512;

fn is_digest(s: &str) -> bool {
    matches!(ComponentRef::parse(s), Ok(ComponentRef::Digest(_)))
}

impl Registry {
    /// Registers an uploaded blob as a component, addressed by `sha256:<hex>` of its bytes.
    ///
    /// `blob` must be the tenant's pending blob ([`Error::InvalidRequest`] otherwise). If the tenant already
    /// has a component with these bytes, the new blob is discarded and the existing record returned.
    /// [`Error::QuotaExceeded`] past `max_storage_bytes`. On any error the blob is discarded.
    pub fn put_component(&self, tenant: &str, blob: BlobRef) -> Result<ComponentRecord> {
        self.commit_pending(tenant, &blob, || {
            let t = self.require_tenant(tenant)?;
            let digest = format!("sha256:{}", blob.sha256);
            let k = key(&[tenant.as_bytes(), digest.as_bytes()]);
            if let Some(existing) = self.trees().get_json::<ComponentRecord>(T::Components, &k)? {
                return Ok((existing, false));
            }
            self.check_storage(&t, blob.size)?;
            let record = ComponentRecord {
                digest: digest.clone(),
                size_bytes: blob.size,
                created_at: crate::time::now(),
                blob: blob.clone(),
            };
            let mut batch = Batch::default();
            batch.insert_json(T::Components, k, &record);
            batch.insert(T::BlobRefs, blob.id.to_be_bytes(), format!("component {tenant}/{digest}"));
            self.trees().apply(&batch)?;
            self.adjust_totals(tenant, |totals| totals.storage_bytes += blob.size);
            Ok((record, true))
        })
    }

    /// The tenant's component with this digest (`sha256:<hex>`).
    /// [`Error::NotFound`] only for a missing tenant.
    pub fn component(&self, tenant: &str, digest: &str) -> Result<Option<ComponentRecord>> {
        self.require_tenant(tenant)?;
        if !is_digest(digest) {
            return Ok(None);
        }
        self.trees().get_json(T::Components, &key(&[tenant.as_bytes(), digest.as_bytes()]))
    }

    /// The tenant's components, by digest.
    pub fn components(&self, tenant: &str) -> Result<Vec<ComponentRecord>> {
        self.require_tenant(tenant)?;
        self.trees().scan_json(T::Components, &prefix(&[tenant.as_bytes()]))
    }

    /// Deletes a component, its blob and its precompiled artifacts.
    ///
    /// [`Error::NotFound`] if absent; [`Error::Conflict`] naming the function while one uses it.
    pub fn delete_component(&self, tenant: &str, digest: &str) -> Result<()> {
        let doomed = {
            let _w = self.inner.write_lock();
            self.forget_totals(tenant);
            let Some(record) = self.component(tenant, digest)? else {
                return Err(Error::NotFound(format!("component {digest:?} not found")));
            };
            if let Some(f) = self.functions(tenant)?.into_iter().find(|f| f.manifest.component.to_string() == digest) {
                return Err(Error::Conflict(format!("component {digest} is used by function {:?}", f.name)));
            }
            let mut batch = Batch::default();
            let mut doomed = vec![record.blob.clone()];
            batch.remove(T::Components, key(&[tenant.as_bytes(), digest.as_bytes()]));
            batch.remove(T::BlobRefs, record.blob.id.to_be_bytes());
            let p = prefix(&[tenant.as_bytes(), digest.as_bytes()]);
            for k in self.trees().scan_keys(T::Artifacts, &p)? {
                if let Some(a) = self.trees().get_json::<ArtifactRecord>(T::Artifacts, &k)? {
                    batch.remove(T::BlobRefs, a.blob.id.to_be_bytes());
                    doomed.push(a.blob);
                }
                batch.remove(T::Artifacts, k.to_vec());
            }
            self.trees().apply(&batch)?;
            doomed
        };
        crate::blob::remove_unreferenced(&self.inner, doomed);
        Ok(())
    }

    /// Stores (or replaces) the precompiled artifact of component `component` (`sha256:<hex>` of one of
    /// the tenant's components, or `builtin:<name>`) for the engine whose fingerprint is `engine` (for
    /// instance `Engine::precompile_compatibility_hash`, formatted).
    ///
    /// [`Error::NotFound`] if the tenant or the `sha256:` component does not exist;
    /// [`Error::InvalidRequest`] for a malformed reference or an empty, over-long (512 bytes) or
    /// control-character engine string.
    pub fn put_artifact(&self, tenant: &str, component: &str, engine: &str, bytes: &[u8]) -> Result<()> {
        self.require_tenant(tenant)?;
        let reference = ComponentRef::parse(component)
            .map_err(|_| Error::InvalidRequest(format!("invalid component reference {component:?}")))?;
        if engine.is_empty() || engine.len() > MAX_ENGINE_LEN || engine.chars().any(char::is_control) {
            return Err(Error::InvalidRequest(format!(
                "the engine fingerprint must be 1 to {MAX_ENGINE_LEN} bytes without control characters"
            )));
        }
        let mut writer = BlobWriter::new(&self.inner, tenant)?;
        writer.write(bytes)?;
        let blob = writer.finish_unregistered()?;
        let committed = (|| {
            let _w = self.inner.write_lock();
            self.require_tenant(tenant)?;
            if let ComponentRef::Digest(_) = reference
                && !self.trees().tree(T::Components).contains_key(key(&[tenant.as_bytes(), component.as_bytes()]))?
            {
                return Err(Error::NotFound(format!("component {component:?} not found")));
            }
            let k = key(&[tenant.as_bytes(), component.as_bytes(), engine.as_bytes()]);
            let old = self.trees().get_json::<ArtifactRecord>(T::Artifacts, &k)?;
            let record = ArtifactRecord {
                component: component.to_owned(),
                engine: engine.to_owned(),
                created_at: crate::time::now(),
                blob: blob.clone(),
            };
            let mut batch = Batch::default();
            if let Some(old) = &old {
                batch.remove(T::BlobRefs, old.blob.id.to_be_bytes());
            }
            batch.insert_json(T::Artifacts, k, &record);
            batch.insert(T::BlobRefs, blob.id.to_be_bytes(), format!("artifact {tenant}/{component}"));
            self.trees().apply(&batch)?;
            Ok(old)
        })();
        match committed {
            Ok(old) => {
                crate::blob::remove_unreferenced(&self.inner, old.map(|o| o.blob));
                Ok(())
            }
            Err(e) => {
                crate::blob::remove_chunks(&self.inner, &blob)?;
                Err(e)
            }
        }
    }

    /// The precompiled artifact stored by [`put_artifact`](Registry::put_artifact), if any.
    ///
    /// [`Error::Corrupt`] if it fails authentication: recompile and put it again.
    pub fn artifact(&self, tenant: &str, component: &str, engine: &str) -> Result<Option<Vec<u8>>> {
        self.require_tenant(tenant)?;
        let k = key(&[tenant.as_bytes(), component.as_bytes(), engine.as_bytes()]);
        match self.trees().get_json::<ArtifactRecord>(T::Artifacts, &k)? {
            Some(a) => self.read_blob(tenant, &a.blob).map(Some),
            None => Ok(None),
        }
    }
}
