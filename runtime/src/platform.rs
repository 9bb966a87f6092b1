//! The platform: everything a request can reach, and every change to what the server holds.
//!
//! [`Platform`] is the domain layer under the HTTP API. It owns the registry, the wasm host,
//! the scaler (warm functions and the models they hold), admission, metering and the bounded
//! pool. Each administrative change goes through one of its methods, which
//!
//! 1. writes the registry (on the pool when it moves blob bytes),
//! 2. brings the in-memory state in step with it (a redeployed function's warm state, a deleted
//!    tenant's admission gate and pending usage), and
//! 3. records the change in the audit trail with who made it.
//!
//! so no handler keeps a cache in sync by convention. Invocations go through
//! `Platform::admit`, defined with the rest of the invocation path in `invocation.rs`.

use std::sync::Arc;

use maas_registry::{BlobWriter, ComponentRecord, FunctionRecord, ModelVersion, Registry, UploadRoom};
use maas_types::{AuditEntry, CreateKey, CreatedKey, FairnessReport, Manifest, ModelCard, QuotaPatch, Tenant};
use serde_json::json;

use crate::admission::{Admission, UploadPermit};
use crate::auth::{Authenticator, Principal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::host::{Host, InvalidComponent};
use crate::inference::{Analyzer, ModelCache, TensorSpec, analyze};
use crate::metering::Meter;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::scale::Scaler;

/// Everything a request can reach. One per server, shared by `Arc`.
pub struct Platform {
    /// The server's configuration.
    pub config: Config,
    /// The store.
    pub registry: Registry,
    /// The wasmtime host.
    pub host: Arc<Host>,
    /// Deployed functions, their warm state and the models they hold.
    pub scaler: Arc<Scaler>,
    /// Per-tenant rate and concurrency.
    pub admission: Admission,
    /// CPU, energy and CO2e per tenant, function and day.
    pub meter: Arc<Meter>,
    /// The bounded pool for wasm, inference and blob I/O.
    pub pool: Pool,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Resolves bearer keys.
    pub auth: Authenticator,
}

impl Platform {
    /// The platform over an open registry and a built host.
    pub fn new(config: Config, registry: Registry, host: Host, auth: Authenticator) -> Arc<Self> {
        let pool = Pool::new(config.max_blocking);
        let host = Arc::new(host);
        let metrics = Arc::new(Metrics::default());
        let models = Arc::new(ModelCache::new(config.plan_memory_bytes, metrics.clone()));
        let scaler = Scaler::new(host.clone(), registry.clone(), models, pool.clone(), metrics.clone());
        let meter = Meter::new(config.energy);
        Arc::new(Self { config, registry, host, scaler, admission: Admission::default(), meter, pool, metrics, auth })
    }

    /// Models currently loaded by warm functions.
    pub fn models(&self) -> &ModelCache {
        self.scaler.models()
    }

    /// How uploaded models are analysed out of process, if they are.
    fn analyzer(&self) -> Option<Analyzer> {
        let program = self.config.analyzer_program.clone()?;
        Some(Analyzer { program, timeout: self.config.analysis_timeout })
    }

    /// The tenant `name`, or [`Error::NotFound`]: for callers that may act on it (the admin, who
    /// learns it does not exist, or its own keys, whose principal carries the record).
    pub fn tenant(&self, principal: &Principal, name: &str) -> Result<Tenant> {
        if let Some(tenant) = principal.tenant_named(name) {
            return Ok(tenant.clone());
        }
        self.registry.tenant(name)?.ok_or_else(|| Error::not_found(format!("no tenant {name:?}")))
    }

    // ---- Tenants and keys ---------------------------------------------------------------

    /// Creates a tenant with the default quota changed by `quota`.
    pub fn create_tenant(&self, actor: &Principal, name: &str, quota: Option<QuotaPatch>) -> Result<Tenant> {
        let tenant = self.registry.create_tenant(name, quota)?;
        tracing::info!(tenant = %tenant.name, "tenant created");
        self.record(actor, "tenant.create", Some(&tenant.name), &tenant.name, json!({ "quota": tenant.quota }));
        Ok(tenant)
    }

    /// Changes a tenant's quota and/or suspension. The next request of its keys sees it: they
    /// are checked against the record on every request.
    pub fn update_tenant(
        &self,
        actor: &Principal,
        name: &str,
        quota: Option<QuotaPatch>,
        suspended: Option<bool>,
    ) -> Result<Tenant> {
        let detail = json!({ "quota": quota, "suspended": suspended });
        let tenant = self.registry.update_tenant(name, quota, suspended)?;
        // Warm functions hold limits derived from the quota: the next request builds them anew.
        self.scaler.tenant_changed(name);
        tracing::info!(tenant = %tenant.name, suspended = tenant.suspended, "tenant updated");
        self.record(actor, "tenant.update", Some(name), name, detail);
        Ok(tenant)
    }

    /// Deletes a tenant and everything it owns, and forgets its warm functions, its admission
    /// gate and its pending usage.
    pub async fn delete_tenant(self: &Arc<Self>, actor: &Principal, name: &str) -> Result<()> {
        let (platform, actor, name) = (self.clone(), actor.clone(), name.to_string());
        // It removes chunk files: on the pool, the follow-ups with it, so that they happen
        // even if the request goes away meanwhile.
        self.pool
            .run(move || -> Result<()> {
                platform.registry.delete_tenant(&name)?;
                platform.scaler.tenant_removed(&name);
                platform.admission.forget(&name);
                platform.meter.forget(&name);
                tracing::info!(tenant = %name, "tenant deleted");
                platform.record(&actor, "tenant.delete", Some(&name), &name, json!({}));
                Ok(())
            })
            .await?
    }

    /// Creates a key of `tenant`; the secret is in the answer, this once.
    pub fn create_key(&self, actor: &Principal, tenant: &str, request: CreateKey) -> Result<CreatedKey> {
        let (info, key) = self.registry.create_key(tenant, request.role, request.label)?;
        tracing::info!(tenant, key_id = %info.id, role = info.role.as_str(), "key created");
        self.record(actor, "key.create", Some(tenant), &info.id, json!({ "role": info.role, "label": info.label }));
        Ok(CreatedKey { info, key })
    }

    /// Revokes a key of `tenant`; it is refused from the next request on.
    pub fn revoke_key(&self, actor: &Principal, tenant: &str, id: &str) -> Result<()> {
        self.registry.revoke_key(tenant, id)?;
        tracing::info!(tenant, key_id = id, "key revoked");
        self.record(actor, "key.revoke", Some(tenant), id, json!({}));
        Ok(())
    }

    // ---- Models -------------------------------------------------------------------------

    /// Starts an upload of the next version of model `name`; refused before a byte is stored
    /// when the declared size (or, without one, the model count) already breaks a quota, or
    /// when the tenant has [`UPLOADS_PER_TENANT`](crate::admission::UPLOADS_PER_TENANT)
    /// uploads in progress. `inputs` are the owner's declared input specs, if any.
    pub fn begin_model_upload(
        self: &Arc<Self>,
        actor: &Principal,
        tenant: &Tenant,
        name: &str,
        declared: Option<u64>,
        inputs: Vec<TensorSpec>,
    ) -> Result<Upload> {
        self.registry.check_model_upload(&tenant.name, name, declared.unwrap_or(0))?;
        let max_tensor_bytes = tenant.quota.max_memory_bytes();
        let target = Target::Model { name: name.to_string(), max_tensor_bytes, inputs };
        self.begin_upload(actor, tenant, declared, target)
    }

    /// Starts an upload of a component: refused like a model upload, and past
    /// [`MAX_COMPONENT_BYTES`].
    pub fn begin_component_upload(
        self: &Arc<Self>,
        actor: &Principal,
        tenant: &Tenant,
        declared: Option<u64>,
    ) -> Result<Upload> {
        if declared.is_some_and(|n| n > MAX_COMPONENT_BYTES) {
            return Err(component_too_large());
        }
        self.begin_upload(actor, tenant, declared, Target::Component)
    }

    fn begin_upload(
        self: &Arc<Self>,
        actor: &Principal,
        tenant: &Tenant,
        declared: Option<u64>,
        target: Target,
    ) -> Result<Upload> {
        let room = self.registry.upload_room(tenant)?;
        if let Some(n) = declared.filter(|n| *n > room.limit()) {
            return Err(room.exceeded(n).into());
        }
        let permit = self.admission.begin_upload(&tenant.name)?;
        let writer = self.registry.blob_writer(&tenant.name)?;
        Ok(Upload {
            platform: self.clone(),
            actor: actor.clone(),
            tenant: tenant.name.clone(),
            target,
            room,
            permit: Some(permit),
            received: 0,
            pending: Vec::new(),
            writer: Some(writer),
        })
    }

    /// Deletes a model version, or (`None`) the whole model.
    pub async fn delete_model(
        self: &Arc<Self>,
        actor: &Principal,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<()> {
        let (platform, actor) = (self.clone(), actor.clone());
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.pool
            .run_for(&tenant.clone(), move || -> Result<()> {
                platform.registry.delete_model(&tenant, &name, version)?;
                platform.scaler.model_removed(&tenant, &name, version);
                tracing::info!(tenant, model = name, version, "model deleted");
                let target = version.map_or_else(|| name.clone(), |v| format!("{name}@{v}"));
                platform.record(&actor, "model.delete", Some(&tenant), &target, json!({}));
                Ok(())
            })
            .await?
    }

    /// Stores the owner's card of model `name`.
    pub fn put_card(&self, actor: &Principal, tenant: &str, name: &str, card: &ModelCard) -> Result<()> {
        self.registry.put_card(tenant, name, card)?;
        self.record(actor, "model.card", Some(tenant), name, json!({}));
        Ok(())
    }

    /// Keeps `report` as the latest fairness audit of `version`.
    pub fn keep_fairness_report(
        &self,
        actor: &Principal,
        tenant: &str,
        version: &ModelVersion,
        report: &FairnessReport,
    ) -> Result<()> {
        self.registry.put_model_audit(tenant, &version.name, version.version, report)?;
        self.record(actor, "model.audit", Some(tenant), &version.label(), json!({ "rows": report.rows }));
        Ok(())
    }

    // ---- Components and functions -------------------------------------------------------

    /// Deploys (or redeploys) a function; its warm state, if any, is dropped so the next request
    /// runs the new manifest. Returns the record and whether the function is new.
    pub fn deploy(
        &self,
        actor: &Principal,
        tenant: &str,
        name: &str,
        manifest: Manifest,
    ) -> Result<(FunctionRecord, bool)> {
        let (record, created) = self.registry.put_function(tenant, name, manifest)?;
        self.scaler.deployed(record.clone());
        tracing::info!(tenant, function = name, revision = record.revision, "function deployed");
        let m = &record.manifest;
        let detail = json!({ "revision": record.revision, "component": m.component, "models": m.models });
        self.record(actor, "function.deploy", Some(tenant), name, detail);
        Ok((record, created))
    }

    /// Deletes a function and forgets its warm state.
    pub fn delete_function(&self, actor: &Principal, tenant: &str, name: &str) -> Result<()> {
        self.registry.delete_function(tenant, name)?;
        self.scaler.removed(tenant, name);
        tracing::info!(tenant, function = name, "function deleted");
        self.record(actor, "function.delete", Some(tenant), name, json!({}));
        Ok(())
    }

    // ---- The audit trail ----------------------------------------------------------------

    /// Records that `actor` did `action` on `target` of `tenant`. `detail` holds facts about the
    /// change (never secrets). The change has already happened, so a failure to record it is
    /// logged as an error rather than returned.
    fn record(&self, actor: &Principal, action: &str, tenant: Option<&str>, target: &str, detail: serde_json::Value) {
        let entry = AuditEntry {
            seq: 0,
            at: String::new(),
            actor: actor.describe(),
            key_id: actor.key_id().map(str::to_string),
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

/// The largest component accepted: compiling takes time and memory in proportion to its size
/// and cannot be interrupted (components are usually a few MiB; a Python interpreter compiled
/// in is about 40).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

fn component_too_large() -> Error {
    Error::PayloadTooLarge(MAX_COMPONENT_BYTES)
}

/// What an upload becomes.
enum Target {
    /// The next version of model `name`, whose tensors may hold `max_tensor_bytes` each, with
    /// the owner's declared input specs.
    Model { name: String, max_tensor_bytes: u64, inputs: Vec<TensorSpec> },
    /// A component.
    Component,
}

/// An upload in progress (a model's next version, or a component): the body streams in
/// through [`Upload::write`], in chunks written on the pool, so memory stays at about one
/// chunk whatever the file's size and no thread waits on the network. It holds one of the
/// tenant's upload places and reserves storage as it grows. [`Upload::finish_model`] or
/// [`Upload::finish_component`] validates the file and commits it; dropping an unfinished
/// upload removes what it stored.
pub struct Upload {
    platform: Arc<Platform>,
    actor: Principal,
    tenant: String,
    target: Target,
    room: UploadRoom,
    /// Moved into the commit's pool job, so that the place and the reservation last as long
    /// as the work, even if the request goes away.
    permit: Option<UploadPermit>,
    received: u64,
    /// Bytes not yet handed to the writer.
    pending: Vec<u8>,
    writer: Option<BlobWriter>,
}

impl Upload {
    /// Adds `data` to the upload: refused as soon as the upload passes the tenant's quota, or
    /// the room the tenant's other uploads in progress leave it.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.received += data.len() as u64;
        if self.received > self.room.limit() {
            return Err(self.room.exceeded(self.received).into());
        }
        if matches!(self.target, Target::Component) && self.received > MAX_COMPONENT_BYTES {
            return Err(component_too_large());
        }
        let permit = self.permit.as_mut().ok_or_else(|| Error::internal("the upload is finished"))?;
        permit.reserve(self.received, self.room.storage_left).map_err(|others| {
            Error::from(maas_registry::Error::QuotaExceeded(format!(
                "the upload is at least {} bytes, and the tenant's other uploads in progress hold {others}: together \
                 more than its remaining storage ({} bytes left of max_storage_bytes)",
                self.received, self.room.storage_left
            )))
        })?;
        self.pending.extend_from_slice(data);
        if self.pending.len() >= maas_registry::CHUNK_SIZE {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands the pending bytes to the writer, on the pool.
    async fn flush(&mut self) -> Result<()> {
        let mut writer = self.writer.take().ok_or_else(|| Error::internal("the upload's writer is gone"))?;
        let bytes = std::mem::take(&mut self.pending);
        let (writer, written) = self
            .platform
            .pool
            .run_for(&self.tenant, move || {
                let written = writer.write(&bytes);
                (writer, written)
            })
            .await?;
        self.writer = Some(writer);
        Ok(written?)
    }

    /// The writer with every byte handed to it.
    async fn writer(&mut self) -> Result<BlobWriter> {
        if !self.pending.is_empty() {
            self.flush().await?;
        }
        self.writer.take().ok_or_else(|| Error::internal("the upload's writer is gone"))
    }

    /// Validates the model with tract and commits it as the model's next version, or leaves
    /// nothing. Functions that follow the model's latest version go cold, so that their next
    /// request picks the new version up.
    pub async fn finish_model(mut self) -> Result<ModelVersion> {
        let Target::Model { name, max_tensor_bytes, inputs } = &self.target else {
            return Err(Error::internal("a component upload finished as a model"));
        };
        let (name, max_tensor_bytes, inputs) = (name.clone(), *max_tensor_bytes, inputs.clone());
        let writer = self.writer().await?;
        let platform = self.platform.clone();
        let (actor, tenant, permit) = (self.actor.clone(), self.tenant.clone(), self.permit.take());
        // The commit and its follow-ups in one job: they happen even if the request goes away.
        self.platform
            .pool
            .run_for(&self.tenant, move || -> Result<ModelVersion> {
                let _permit = permit;
                let analyzer = platform.analyzer();
                let version = commit_model(
                    &platform.registry,
                    &tenant,
                    &name,
                    writer,
                    &inputs,
                    max_tensor_bytes,
                    analyzer.as_ref(),
                )?;
                platform.scaler.model_changed(&tenant, &name);
                let (v, size_bytes) = (version.version, version.size_bytes);
                tracing::info!(tenant, model = name, version = v, size_bytes, "model uploaded");
                let detail = json!({ "sha256": version.sha256, "size_bytes": version.size_bytes });
                platform.record(&actor, "model.upload", Some(&tenant), &version.label(), detail);
                Ok(version)
            })
            .await?
    }

    /// Compiles the component, refusing it unless it is a component of the function world,
    /// and stores it with its precompiled artifact, or leaves nothing.
    ///
    /// A compile cannot be interrupted. Past the budget (`analysis_timeout`) the upload is
    /// refused and the tenant struck (so it compiles one at a time, see [`Pool::strike`]); the
    /// compile runs out on the tenant's own lane, holding its upload place, and its result is
    /// thrown away.
    pub async fn finish_component(mut self) -> Result<ComponentRecord> {
        if !matches!(self.target, Target::Component) {
            return Err(Error::internal("a model upload finished as a component"));
        }
        let writer = self.writer().await?;
        let platform = self.platform.clone();
        let (actor, tenant, permit) = (self.actor.clone(), self.tenant.clone(), self.permit.take());
        let phase = Arc::new(std::sync::Mutex::new(Compile::Running));
        let job_phase = phase.clone();
        let job = self.platform.pool.run_for(&self.tenant, move || -> Result<ComponentRecord> {
            let _permit = permit;
            let registry = &platform.registry;
            let blob = writer.finish()?;
            let commit = || -> Result<ComponentRecord> {
                // Compile first: an invalid component is refused before it is committed.
                let wasm = registry.read_blob(&tenant, &blob)?;
                let (_component, artifact) = platform.host.compile(&wasm)?;
                drop(wasm);
                {
                    let mut phase = job_phase.lock().expect("compile phase lock");
                    if *phase == Compile::Abandoned {
                        return Err(Error::invalid("the upload was refused while it compiled"));
                    }
                    *phase = Compile::Committing;
                }
                let record = registry.put_component(&tenant, blob.clone())?;
                registry.put_artifact(&tenant, &record.digest, platform.host.fingerprint(), &artifact)?;
                Ok(record)
            };
            let record = commit().inspect_err(|_| discard(registry, &blob))?;
            let (digest, size_bytes) = (&record.digest, record.size_bytes);
            tracing::info!(tenant, digest, size_bytes, "component uploaded");
            platform.record(&actor, "component.upload", Some(&tenant), digest, json!({ "size_bytes": size_bytes }));
            Ok(record)
        });
        let mut job = std::pin::pin!(job);
        let budget = self.platform.config.analysis_timeout;
        match tokio::time::timeout(budget, &mut job).await {
            Ok(result) => result?,
            Err(_) => {
                let committing = {
                    let mut phase = phase.lock().expect("compile phase lock");
                    let committing = *phase == Compile::Committing;
                    if !committing {
                        *phase = Compile::Abandoned;
                    }
                    committing
                };
                if committing {
                    // Compiled just in time: its commit is under way.
                    return job.await?;
                }
                self.platform.pool.strike(&self.tenant);
                Err(InvalidComponent(format!("compiling the component took longer than its budget of {budget:?}"))
                    .into())
            }
        }
    }
}

/// Where a component's compile is, for its upload's time budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compile {
    Running,
    Committing,
    Abandoned,
}

impl Drop for Upload {
    fn drop(&mut self) {
        // An unfinished writer removes its chunk files when dropped: not on an async thread.
        if let Some(writer) = self.writer.take() {
            self.platform.pool.spawn(move || drop(writer));
        }
    }
}

/// Discards a finished blob that will not be committed; a failure is left to the next start.
fn discard(registry: &Registry, blob: &maas_registry::BlobRef) {
    if let Err(e) = registry.discard_blob(blob) {
        tracing::warn!(error = %e, "could not discard a refused upload; the next start sweeps it");
    }
}

/// Finishes the blob, analyses it with tract (the validation; out of process under a budget
/// when there is an `analyzer`) and commits the version; a refused file is discarded. Runs on
/// the pool.
fn commit_model(
    registry: &Registry,
    tenant: &str,
    name: &str,
    writer: BlobWriter,
    declared: &[TensorSpec],
    max_tensor_bytes: u64,
    analyzer: Option<&Analyzer>,
) -> Result<ModelVersion> {
    let blob = writer.finish()?;
    let commit = || -> Result<ModelVersion> {
        if blob.size == 0 {
            return Err(crate::inference::InferenceError::InvalidModel("the model file is empty".into()).into());
        }
        let bytes = registry.read_blob(tenant, &blob)?;
        let analysis = analyze(&bytes, declared, max_tensor_bytes, analyzer)?;
        Ok(registry.commit_model_version(tenant, name, blob.clone(), analysis)?)
    };
    commit().inspect_err(|_| discard(registry, &blob))
}
