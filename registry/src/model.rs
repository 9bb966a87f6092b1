//! Model versions.
//!
//! Each upload of a model name adds a version: 1, 2, 3, ... A per-name counter (`model_seq`) assigns the
//! number in the same transaction that writes the version's record, and survives deletes, so a version
//! number is never reused for different bytes, even after the whole model is deleted and uploaded again.

use maas_types::names::validate_model_name;
use maas_types::{ModelAnalysis, ModelInfo, Signature, TensorSpec};
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::blob::BlobRef;
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

const MAX_TENSORS: usize = 1024;
const MAX_RANK: usize = 64;
const MAX_TENSOR_NAME: usize = 1024;
/// Most characters a note on how a model is served keeps.
const MAX_NOTE_CHARS: usize = 1024;

/// Checks that a stored signature stays within bounds.
fn validate_spec(spec: &TensorSpec, side: &str) -> Result<()> {
    let bad = |why: String| Err(Error::InvalidRequest(format!("{side} {:?}: {why}", spec.name)));
    if spec.name.is_empty() || spec.name.len() > MAX_TENSOR_NAME {
        return bad(format!("the name must be 1 to {MAX_TENSOR_NAME} bytes"));
    }
    if spec.shape.len() > MAX_RANK {
        return bad(format!("rank above {MAX_RANK}"));
    }
    if !spec.any_rank() && spec.shape.iter().any(|d| *d < -1) {
        return bad("dimensions must be -1 (varies) or at least 0, or the shape [-2] (any rank)".into());
    }
    Ok(())
}

/// One committed version of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model name.
    pub name: String,
    /// 1, 2, ... in upload order.
    pub version: u32,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// The model's inputs.
    pub inputs: Vec<TensorSpec>,
    /// The model's outputs.
    pub outputs: Vec<TensorSpec>,
    /// The input specs declared at upload, which plans start from.
    #[serde(default)]
    pub declared_inputs: Vec<TensorSpec>,
    /// Whether each new input shape needs a plan of its own.
    #[serde(default)]
    pub per_request_shapes: bool,
    /// How maas serves the model, where the signature alone does not say.
    #[serde(default)]
    pub notes: Vec<String>,
    /// When it was committed, RFC 3339 UTC.
    pub created_at: String,
    /// Where the file is (internal: not part of the API's view, [`ModelVersion::info`]).
    pub blob: BlobRef,
}

impl ModelVersion {
    /// The version as the API shows it (without the blob reference).
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            version: self.version,
            sha256: self.sha256.clone(),
            size_bytes: self.size_bytes,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            declared_inputs: self.declared_inputs.clone(),
            per_request_shapes: self.per_request_shapes,
            notes: self.notes.clone(),
            created_at: self.created_at.clone(),
        }
    }

    /// `name@version`, as headers and logs name a version.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// What one upload may still take: see [`Registry::upload_room`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadRoom {
    /// The tenant's `max_model_bytes`.
    pub max_file: u64,
    /// What is left of its `max_storage_bytes`.
    pub storage_left: u64,
}

impl UploadRoom {
    /// The most bytes the upload may have.
    pub fn limit(&self) -> u64 {
        self.max_file.min(self.storage_left)
    }

    /// [`Error::QuotaExceeded`] naming both limits, for an upload that reached `received` bytes.
    pub fn exceeded(&self, received: u64) -> Error {
        Error::QuotaExceeded(format!(
            "the upload is at least {received} bytes: more than the tenant's max_model_bytes ({}) or its remaining \
             storage ({} bytes left of max_storage_bytes)",
            self.max_file, self.storage_left
        ))
    }
}

/// A model name with all its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model name.
    pub name: String,
    /// The highest existing version.
    pub latest_version: u32,
    /// Every existing version, oldest first.
    pub versions: Vec<ModelVersion>,
}

pub(crate) fn version_key(tenant: &str, name: &str, version: u32) -> Vec<u8> {
    key(&[tenant.as_bytes(), name.as_bytes(), &version.to_be_bytes()])
}

impl Registry {
    /// Makes an uploaded blob version N+1 of model `name`, in one transaction.
    ///
    /// `blob` must be the tenant's pending blob, exactly as [`BlobWriter::finish`](crate::BlobWriter::finish)
    /// returned it ([`Error::InvalidRequest`] otherwise). Checks the tenant's `max_model_bytes`,
    /// `max_models` (model names) and `max_storage_bytes` (all model and component blobs):
    /// [`Error::QuotaExceeded`]. On any error the blob is discarded, so the caller has nothing to clean up.
    pub fn commit_model_version(
        &self,
        tenant: &str,
        name: &str,
        blob: BlobRef,
        analysis: ModelAnalysis,
    ) -> Result<ModelVersion> {
        let ModelAnalysis { signature: Signature { inputs, outputs }, declared_inputs, per_request_shapes, notes } =
            analysis;
        self.commit_pending(tenant, &blob, || {
            validate_model_name(name)?;
            let t = self.require_tenant(tenant)?;
            if inputs.len() > MAX_TENSORS || outputs.len() > MAX_TENSORS || declared_inputs.len() > MAX_TENSORS {
                return Err(Error::InvalidRequest(format!(
                    "a model may have at most {MAX_TENSORS} inputs and outputs"
                )));
            }
            for s in &inputs {
                validate_spec(s, "input")?;
            }
            for s in &outputs {
                validate_spec(s, "output")?;
            }
            for s in &declared_inputs {
                validate_spec(s, "declared input")?;
            }
            let is_new = self.check_model_quota(&t, name, blob.size)?;
            let trees = self.trees();
            let seq_key = key(&[tenant.as_bytes(), name.as_bytes()]);
            let last = match trees.tree(T::ModelSeq).get(&seq_key)? {
                Some(v) => u32::from_be_bytes(
                    v.as_ref().try_into().map_err(|_| Error::Corrupt(format!("model_seq entry of {tenant}/{name}")))?,
                ),
                None => 0,
            };
            let version = last.checked_add(1).ok_or_else(|| Error::InvalidRequest("no more version numbers".into()))?;
            let record = ModelVersion {
                name: name.to_owned(),
                version,
                sha256: blob.sha256.clone(),
                size_bytes: blob.size,
                inputs: inputs.clone(),
                outputs: outputs.clone(),
                declared_inputs: declared_inputs.clone(),
                per_request_shapes,
                notes: notes.iter().take(MAX_TENSORS).map(|n| n.chars().take(MAX_NOTE_CHARS).collect()).collect(),
                created_at: crate::time::now(),
                blob: blob.clone(),
            };
            let mut batch = Batch::default();
            batch.insert_json(T::Models, version_key(tenant, name, version), &record);
            batch.insert(T::ModelSeq, seq_key, version.to_be_bytes());
            batch.insert(T::BlobRefs, blob.id.to_be_bytes(), format!("model {tenant}/{name}@{version}"));
            trees.apply(&batch)?;
            self.adjust_totals(tenant, |totals| {
                totals.storage_bytes += blob.size;
                totals.models += u64::from(is_new);
            });
            Ok((record, true))
        })
    }

    /// Whether storing `size` more bytes as a version of model `name` fits the tenant's
    /// `max_model_bytes`, `max_models` and `max_storage_bytes` ([`Error::QuotaExceeded`] if not).
    ///
    /// The runtime calls it before an upload starts, with the declared size (0 when unknown), so a
    /// doomed upload is refused before any byte is stored; the commit checks again.
    pub fn check_model_upload(&self, tenant: &str, name: &str, size: u64) -> Result<()> {
        validate_model_name(name)?;
        let _w = self.inner.write_lock();
        let t = self.require_tenant(tenant)?;
        self.check_model_quota(&t, name, size).map(|_| ())
    }

    /// Checks the quotas a new version of `name` of `size` bytes must fit; returns whether it is
    /// the first version of a new model. Call with the write lock held.
    fn check_model_quota(&self, t: &maas_types::Tenant, name: &str, size: u64) -> Result<bool> {
        let (tenant, q) = (&t.name, &t.quota);
        if size > q.max_model_bytes {
            return Err(Error::QuotaExceeded(format!(
                "the model is {size} bytes, above the tenant's max_model_bytes ({})",
                q.max_model_bytes
            )));
        }
        let is_new = self
            .trees()
            .tree(T::Models)
            .scan_prefix(prefix(&[tenant.as_bytes(), name.as_bytes()]))
            .next()
            .transpose()?
            .is_none();
        if is_new {
            let count = self.totals_locked(tenant)?.models;
            if count >= q.max_models {
                return Err(Error::QuotaExceeded(format!("the tenant has {count} models, its max_models")));
            }
        }
        self.check_storage(t, size)?;
        Ok(is_new)
    }

    /// The tenant's totals, counted once by a scan and then kept in step with every change.
    /// Call with the write lock held, so that no commit slips between the scan and the cache.
    pub(crate) fn totals_locked(&self, tenant: &str) -> Result<Totals> {
        if let Some(totals) = self.inner.totals().get(tenant) {
            return Ok(*totals);
        }
        let totals =
            Totals { storage_bytes: self.scan_storage(tenant)?, models: self.model_names(tenant)?.len() as u64 };
        self.inner.totals().insert(tenant.to_string(), totals);
        Ok(totals)
    }

    /// Applies a committed change to the tenant's totals, when they are counted. Call with the
    /// write lock held, after the change.
    pub(crate) fn adjust_totals(&self, tenant: &str, change: impl FnOnce(&mut Totals)) {
        if let Some(totals) = self.inner.totals().get_mut(tenant) {
            change(totals);
        }
    }

    /// Forgets the tenant's totals after a delete: the next check counts them again. Call with
    /// the write lock held.
    pub(crate) fn forget_totals(&self, tenant: &str) {
        self.inner.totals().remove(tenant);
    }

    /// [`Error::QuotaExceeded`] unless `size` more bytes fit the tenant's `max_storage_bytes`: the
    /// one storage check of model and component commits.
    pub(crate) fn check_storage(&self, t: &maas_types::Tenant, size: u64) -> Result<()> {
        let used = self.totals_locked(&t.name)?.storage_bytes;
        if used.saturating_add(size) > t.quota.max_storage_bytes {
            return Err(Error::QuotaExceeded(format!(
                "storing {size} more bytes would exceed the tenant's max_storage_bytes ({}; {used} used)",
                t.quota.max_storage_bytes
            )));
        }
        Ok(())
    }

    /// How many bytes one upload (model or component) of the tenant may still be: its
    /// `max_model_bytes`, or what is left of its `max_storage_bytes` when that is less. The
    /// runtime refuses an upload past it while it streams; the commit checks again.
    pub fn upload_room(&self, t: &maas_types::Tenant) -> Result<UploadRoom> {
        let _w = self.inner.write_lock();
        let left = t.quota.max_storage_bytes.saturating_sub(self.totals_locked(&t.name)?.storage_bytes);
        Ok(UploadRoom { max_file: t.quota.max_model_bytes, storage_left: left })
    }

    /// A version of a model (`None`: the latest). [`Error::NotFound`] only for a missing tenant.
    pub fn model_version(&self, tenant: &str, name: &str, version: Option<u32>) -> Result<Option<ModelVersion>> {
        self.require_tenant(tenant)?;
        if validate_model_name(name).is_err() {
            return Ok(None);
        }
        match version {
            Some(v) => self.trees().get_json(T::Models, &version_key(tenant, name, v)),
            None => {
                let p = prefix(&[tenant.as_bytes(), name.as_bytes()]);
                match self.trees().tree(T::Models).scan_prefix(p).next_back() {
                    Some(kv) => {
                        let (_, v) = kv?;
                        Ok(Some(
                            serde_json::from_slice(&v)
                                .map_err(|e| Error::Corrupt(format!("a model record does not decode: {e}")))?,
                        ))
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// The tenant's models by name, each with its versions oldest first.
    pub fn models(&self, tenant: &str) -> Result<Vec<ModelSummary>> {
        self.require_tenant(tenant)?;
        let all: Vec<ModelVersion> = self.trees().scan_json(T::Models, &prefix(&[tenant.as_bytes()]))?;
        let mut out: Vec<ModelSummary> = Vec::new();
        for v in all {
            match out.last_mut() {
                Some(s) if s.name == v.name => {
                    s.latest_version = v.version;
                    s.versions.push(v);
                }
                _ => out.push(ModelSummary { name: v.name.clone(), latest_version: v.version, versions: vec![v] }),
            }
        }
        Ok(out)
    }

    /// Names of the tenant's models with at least one version, in order.
    fn model_names(&self, tenant: &str) -> Result<Vec<Vec<u8>>> {
        let p = prefix(&[tenant.as_bytes()]);
        let mut names: Vec<Vec<u8>> = Vec::new();
        for k in self.trees().scan_keys(T::Models, &p)? {
            // tenant SEP name SEP version(4)
            let name = k
                .get(p.len()..k.len().saturating_sub(5))
                .ok_or_else(|| Error::Corrupt("a model key is too short".into()))?;
            if names.last().map(Vec::as_slice) != Some(name) {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    /// Deletes one version of a model, or (`None`) all of them, with their blobs.
    ///
    /// [`Error::NotFound`] if the model or version does not exist. [`Error::Conflict`], naming the function,
    /// while a function of the tenant uses it: a function referencing `m` (unpinned) blocks deleting `m` and
    /// its latest version; one referencing `m@v` blocks deleting `m` and `m@v`. Version numbers are not
    /// reused after a delete.
    pub fn delete_model(&self, tenant: &str, name: &str, version: Option<u32>) -> Result<()> {
        let doomed = {
            let _w = self.inner.write_lock();
            self.require_tenant(tenant)?;
            self.forget_totals(tenant);
            let not_found = || match version {
                Some(v) => Error::NotFound(format!("model {name:?} version {v} not found")),
                None => Error::NotFound(format!("model {name:?} not found")),
            };
            if validate_model_name(name).is_err() {
                return Err(not_found());
            }
            let versions: Vec<ModelVersion> =
                self.trees().scan_json(T::Models, &prefix(&[tenant.as_bytes(), name.as_bytes()]))?;
            let Some(latest) = versions.last().map(|v| v.version) else {
                return Err(not_found());
            };
            let count = versions.len();
            let doomed: Vec<ModelVersion> = match version {
                None => versions,
                Some(v) => {
                    let one: Vec<_> = versions.into_iter().filter(|m| m.version == v).collect();
                    if one.is_empty() {
                        return Err(not_found());
                    }
                    one
                }
            };
            for f in self.functions(tenant)? {
                for (alias, r) in &f.manifest.models {
                    if r.name != name {
                        continue;
                    }
                    let blocks = match (version, r.version) {
                        (None, _) => true,
                        (Some(v), Some(pinned)) => v == pinned,
                        (Some(v), None) => v == latest,
                    };
                    if blocks {
                        let what = match version {
                            Some(v) => format!("model {name:?} version {v}"),
                            None => format!("model {name:?}"),
                        };
                        return Err(Error::Conflict(format!(
                            "{what} is used by function {:?} (models.{alias} = \"{r}\")",
                            f.name
                        )));
                    }
                }
            }
            let mut batch = Batch::default();
            for m in &doomed {
                batch.remove(T::Models, version_key(tenant, name, m.version));
                batch.remove(T::BlobRefs, m.blob.id.to_be_bytes());
            }
            let all = version.is_none() || doomed.len() == count;
            Registry::trust_removals(&mut batch, tenant, name, &doomed, all);
            self.trees().apply(&batch)?;
            doomed
        };
        crate::blob::remove_unreferenced(&self.inner, doomed.into_iter().map(|m| m.blob));
        Ok(())
    }

    /// Bytes the tenant stores: the sizes of all its model versions and components.
    /// [`Error::NotFound`] if the tenant does not exist.
    pub fn storage_bytes(&self, tenant: &str) -> Result<u64> {
        self.require_tenant(tenant)?;
        self.scan_storage(tenant)
    }

    /// The bytes the tenant stores, counted by scanning its records.
    fn scan_storage(&self, tenant: &str) -> Result<u64> {
        let p = prefix(&[tenant.as_bytes()]);
        let models: Vec<ModelVersion> = self.trees().scan_json(T::Models, &p)?;
        let components: Vec<crate::ComponentRecord> = self.trees().scan_json(T::Components, &p)?;
        Ok(models.iter().map(|m| m.size_bytes).sum::<u64>() + components.iter().map(|c| c.size_bytes).sum::<u64>())
    }
}

/// What a tenant stores, for its quota checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Bytes of its model versions and components.
    pub(crate) storage_bytes: u64,
    /// Models with at least one version.
    pub(crate) models: u64,
}
