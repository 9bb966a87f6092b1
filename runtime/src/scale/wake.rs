//! The cold start: what a function needs to serve requests, built once per wake.
//!
//! [`wake`] loads the component (the built-in one, or an uploaded one from the artifact
//! precompiled at upload, never recompiled unless the engine changed), links it into an
//! `InstancePre`, and loads the models the manifest names through the shared [`ModelCache`].
//! It blocks (deserializing, reading blobs, optimizing plans): the scaler runs it on the pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_registry::{FunctionRecord, Registry};
use maas_types::{ComponentRef, Quota};
use wasmtime::component::Component;

use crate::cpu::thread_cpu;
use crate::error::{Error, Result};
use crate::host::{BoundModel, Capabilities, HandlerPre, Host, HostState, Limits};
use crate::inference::{BatchPolicy, ModelCache, ModelKey};

/// The state of a warm function: everything a request needs except its own instance.
pub struct Warm {
    /// The revision of the manifest this state was built from.
    pub revision: u64,
    /// The component linked against the host, ready to instantiate.
    pub pre: HandlerPre<HostState>,
    /// The models and config the function may use.
    pub caps: Arc<Capabilities>,
    /// Memory and time limits per invocation.
    pub limits: Limits,
    /// `x-maas-model` value per alias: `name@version sha256:<hex>`.
    pub model_labels: HashMap<String, String>,
    /// How long the cold start that built this state took.
    pub wake_time: Duration,
    /// The part of `wake_time` spent loading the component (deserializing, linking).
    pub wake_component: Duration,
    /// Loading and optimizing the models (in parallel with the component, for an uploaded
    /// one; after it otherwise).
    pub wake_models: Duration,
    /// CPU time the cold start took (charged to the request that caused it).
    pub wake_cpu: Duration,
}

/// Builds the warm state of the function `record` describes. Runs on a blocking thread.
pub(super) fn wake(host: &Host, registry: &Registry, models: &ModelCache, record: &FunctionRecord) -> Result<Warm> {
    let (started, cpu) = (Instant::now(), thread_cpu());
    let tenant = &record.tenant;
    let manifest = &record.manifest;
    let load_pre = || {
        let _span = tracing::debug_span!("component").entered();
        let component = match host.builtin_for(&manifest.component) {
            Some(component) => component,
            None => load_component(host, registry, tenant, &manifest.component)?,
        };
        let pre = host.prepare(&component).map_err(Error::internal)?;
        Ok::<_, Error>((pre, started.elapsed()))
    };
    let load_models = || {
        let _span = tracing::debug_span!("models").entered();
        let models_started = Instant::now();
        let bound = bind_models(registry, models, record)?;
        Ok::<_, Error>((bound, models_started.elapsed()))
    };
    // An uploaded component is deserialized from its artifact (about a millisecond): its
    // models load meanwhile on a second thread, which returns its CPU time to be charged. A
    // builtin takes tens of microseconds, less than a thread costs.
    let span = tracing::Span::current();
    let ((pre, wake_component), (bound, wake_models), helper_cpu) =
        if host.builtin_for(&manifest.component).is_some() || manifest.models.is_empty() {
            (load_pre()?, load_models()?, Duration::ZERO)
        } else {
            std::thread::scope(|s| {
                let models = s.spawn(|| {
                    let cpu = thread_cpu();
                    let bound = span.in_scope(load_models);
                    (bound, thread_cpu().saturating_sub(cpu))
                });
                let pre = load_pre();
                let (bound, helper_cpu) = models.join().map_err(|_| Error::internal("loading the models panicked"))?;
                Ok::<_, Error>((pre?, bound?, helper_cpu))
            })?
        };
    let (quota, bound, model_labels) = bound;
    // Warm-up shapes: their plans now, so that the first request on one does not optimize.
    // A shape set the model cannot plan is logged and skipped; requests on it will say why.
    let warming = Instant::now();
    for (ix, warmup) in manifest.warmup.iter().enumerate() {
        let Some(bound) = bound.get(&warmup.model) else { continue };
        if let Err(e) = bound.model.warm(&warmup.inputs) {
            tracing::warn!(tenant = %tenant, function = %record.name, warmup = ix, error = %e, "warm-up shape not planned");
        }
    }
    let wake_models = wake_models + warming.elapsed();
    let batching = manifest.batching.as_ref().filter(|b| b.max_batch_size > 1).map(|b| BatchPolicy {
        max_batch_size: b.max_batch_size as usize,
        max_queue_delay: Duration::from_micros(b.max_queue_delay_us),
    });
    let caps = Arc::new(Capabilities { models: bound, config: config_for(&manifest.config, &quota), batching });
    let limits =
        Limits { memory_bytes: manifest.limits.memory_mb as usize * (1 << 20), timeout_ms: manifest.limits.timeout_ms };
    let wake_time = started.elapsed();
    tracing::info!(tenant = %tenant, function = %record.name, wake_us = wake_time.as_micros() as u64, "cold start");
    let wake_cpu = thread_cpu().saturating_sub(cpu) + helper_cpu;
    Ok(Warm {
        revision: record.revision,
        pre,
        caps,
        limits,
        model_labels,
        wake_time,
        wake_component,
        wake_models,
        wake_cpu,
    })
}

/// The config a function sees: its manifest's, with `max_decompressed_bytes` (how far the
/// guest library lets a compressed body grow) at most the tenant's `max_request_bytes`, so a
/// compressed body is held to the same limit as a plain one on every route.
fn config_for(config: &BTreeMap<String, String>, quota: &Quota) -> BTreeMap<String, String> {
    let mut config = config.clone();
    let limit = quota.max_request_bytes;
    let asked = config.get(DECOMPRESSED).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(u64::MAX);
    config.insert(DECOMPRESSED.to_string(), asked.min(limit).to_string());
    config
}

/// The config key of the guest library's decompression limit.
const DECOMPRESSED: &str = "max_decompressed_bytes";

/// What [`bind_models`] gives: the tenant's quota, the models by alias, and their
/// `x-maas-model` labels by alias.
type Bound = (Quota, HashMap<String, BoundModel>, HashMap<String, String>);

/// The models `record`'s manifest names, loaded (or shared from `models`).
fn bind_models(registry: &Registry, models: &ModelCache, record: &FunctionRecord) -> Result<Bound> {
    let tenant = &record.tenant;
    let quota = registry.tenant(tenant)?.ok_or_else(|| Error::internal(format!("tenant {tenant} is gone")))?.quota;
    let mut bound = HashMap::new();
    let mut model_labels = HashMap::new();
    for (alias, reference) in &record.manifest.models {
        let version = registry.model_version(tenant, &reference.name, reference.version)?.ok_or_else(|| {
            Error::internal(format!("function {tenant}/{} names model {reference}, which is gone", record.name))
        })?;
        let key = ModelKey {
            tenant: tenant.clone(),
            name: version.name.clone(),
            version: version.version,
            blob: version.blob.id,
        };
        let model = models.get_or_load(&key, &version.declared_inputs, quota.max_memory_bytes(), || {
            registry.read_blob(tenant, &version.blob).map_err(Error::from)
        })?;
        let (label, digest) = (version.label(), format!("sha256:{}", version.sha256));
        model_labels.insert(alias.clone(), format!("{label} {digest}"));
        bound.insert(alias.clone(), BoundModel { label, digest, model });
    }
    Ok((quota, bound, model_labels))
}

/// A tenant's component from its stored artifact; compiled again (and the artifact stored)
/// only when no artifact matches this engine, e.g. after an upgrade.
fn load_component(host: &Host, registry: &Registry, tenant: &str, reference: &ComponentRef) -> Result<Component> {
    let digest = reference.to_string();
    if let Some(artifact) = registry.artifact(tenant, &digest, host.fingerprint())? {
        match host.load_artifact(&artifact) {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(error = %e, digest, "stored artifact unusable; recompiling"),
        }
    }
    let record =
        registry.component(tenant, &digest)?.ok_or_else(|| Error::internal(format!("component {digest} is gone")))?;
    let wasm = registry.read_blob(tenant, &record.blob)?;
    let (component, artifact) = host.compile(&wasm)?;
    registry.put_artifact(tenant, &digest, host.fingerprint(), &artifact)?;
    Ok(component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_is_held_to_the_request_limit() {
        let quota = Quota { max_request_bytes: 1000, ..Quota::default() };
        let with = |v: &str| BTreeMap::from([(DECOMPRESSED.to_string(), v.to_string())]);
        assert_eq!(config_for(&BTreeMap::new(), &quota)[DECOMPRESSED], "1000");
        assert_eq!(config_for(&with("10"), &quota)[DECOMPRESSED], "10");
        assert_eq!(config_for(&with("99999"), &quota)[DECOMPRESSED], "1000");
        assert_eq!(config_for(&with("junk"), &quota)[DECOMPRESSED], "1000");
    }
}
