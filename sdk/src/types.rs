//! Request and response bodies of the `/v1` API that the registry's types do not cover.
//!
//! Where the server serializes a registry type as it is ([`Quota`], [`KeyInfo`], [`Manifest`],
//! [`TensorSpec`], [`AuditEntry`](maas_registry::AuditEntry)), this crate uses that type; the
//! structs here are the views the server builds around them (a tenant with its usage, a model
//! version without its internal blob reference, a function with its live status).

use std::collections::BTreeMap;

use maas_registry::{KeyInfo, Manifest, Quota, QuotaPatch, TensorSpec};
use serde::{Deserialize, Serialize};

/// A tenant as `GET /v1/tenants/{t}` shows it: name, quota, suspension and current use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// The name, `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub name: String,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// Its limits.
    pub quota: Quota,
    /// Whether its keys are refused.
    #[serde(default)]
    pub suspended: bool,
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

/// `PATCH /v1/tenants/{t}`: the fields to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantUpdate {
    /// Quota fields to replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaPatch>,
    /// Suspend (`true`) or reinstate (`false`) the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

/// A key just created: its details and the secret, which the server shows this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// Id, tenant, role, label and creation time.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The bearer secret (`maas_<id>_<secret>`). Store it now: it cannot be shown again.
    pub key: String,
}

/// One version of a model: its file's digest and size and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model name.
    pub name: String,
    /// 1, 2, ... in upload order.
    pub version: u32,
    /// Lowercase hex sha256 of the ONNX file.
    pub sha256: String,
    /// File size, bytes.
    pub size_bytes: u64,
    /// The model's inputs (OIP datatypes; `-1` for a dimension that varies).
    pub inputs: Vec<TensorSpec>,
    /// The model's outputs.
    pub outputs: Vec<TensorSpec>,
    /// When it was uploaded, RFC 3339 UTC.
    pub created_at: String,
}

/// A model name with all its versions, as `GET /v1/tenants/{t}/models` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The model name.
    pub name: String,
    /// The highest existing version.
    pub latest_version: u32,
    /// Every existing version, oldest first.
    pub versions: Vec<ModelInfo>,
}

/// An uploaded WebAssembly component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// `sha256:<hex>`: what a manifest's `component` names.
    pub digest: String,
    /// Size of the `.wasm` file, bytes.
    pub size_bytes: u64,
    /// When it was uploaded, RFC 3339 UTC.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A manifest deploying `component` (`builtin:tensor` or `sha256:<hex>`) with every other field
/// at the server's default: no models, no config, default limits and scale, not public. Set
/// the fields you need on the result:
///
/// ```
/// let mut manifest = maas_sdk::manifest("builtin:tensor");
/// manifest.models.insert("model".into(), "mlp@1".into());
/// manifest.scale.idle_timeout_s = 300;
/// ```
pub fn manifest(component: &str) -> Manifest {
    // Through serde, so that fields the server's manifest gains take their defaults here too.
    serde_json::from_value(serde_json::json!({ "component": component }))
        .expect("a manifest with only a component decodes")
}

/// A deployed function: its manifest, revision, URL and live status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// The function name.
    pub name: String,
    /// What was deployed: component, models, config, limits, scale, public.
    #[serde(flatten)]
    pub manifest: Manifest,
    /// 1 on the first deploy, +1 on each redeploy.
    pub revision: u64,
    /// When it was first deployed, RFC 3339 UTC.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was last deployed, RFC 3339 UTC.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Where it is invoked, as the server saw this client reach it.
    pub url: String,
    /// Whether it is warm, and its counters.
    pub status: FunctionStatus,
}

/// A function's live state, from the server's memory (counters restart with the server).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionStatus {
    /// `cold` (scaled to zero) or `warm`.
    pub state: String,
    /// Instances running right now.
    pub instances: u64,
    /// When the last invocation started, RFC 3339 UTC.
    pub last_invoked_at: Option<String>,
    /// Invocations since the server started.
    pub invocations: u64,
    /// Cold starts since the server started.
    pub cold_starts: u64,
    /// Invocations that ended in a platform error.
    pub errors: u64,
}

/// The answer to a deploy: the function, and whether this created it (`201`) or redeployed
/// it (`200`, revision + 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Whether the function is new.
    pub created: bool,
    /// The function as deployed.
    pub function: FunctionInfo,
}

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

/// Counters of a tenant's usage (`GET /v1/tenants/{t}/usage`), for the whole tenant, one
/// function or one day. Fields the server does not send are 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageCounters {
    /// Invocations.
    pub invocations: u64,
    /// Invocations that ended in an error.
    pub errors: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Wall-clock time, seconds.
    pub wall_seconds: f64,
    /// CPU time, seconds.
    pub cpu_seconds: f64,
    /// Time in model inference, seconds.
    pub inference_seconds: f64,
    /// Estimated energy, joules.
    pub energy_joules: f64,
    /// Estimated emissions, grams of CO₂ equivalent.
    pub co2e_grams: f64,
}

/// A tenant's usage report: totals, storage, and the same counters per function and per day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The tenant.
    #[serde(default)]
    pub tenant: String,
    /// Totals over the tenant.
    #[serde(flatten)]
    pub totals: UsageCounters,
    /// Bytes of model and component blobs stored.
    #[serde(default)]
    pub storage_bytes: u64,
    /// Per function.
    #[serde(default)]
    pub functions: BTreeMap<String, UsageCounters>,
    /// Open Inference Protocol calls and other inference made outside the tenant's functions.
    #[serde(default)]
    pub direct_inference: UsageCounters,
    /// Per UTC day.
    #[serde(default)]
    pub days: Vec<DayUsage>,
    /// How the server turns CPU time into energy and emissions (its own fields).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub energy_model: serde_json::Value,
}

/// One day of a [`UsageReport`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// That day's counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The function view is the manifest plus server fields; the manifest's strict parsing
    /// must not refuse them.
    #[test]
    fn function_view_decodes() {
        let value = json!({
            "component": "builtin:tensor", "models": {"model": "mlp"}, "config": {}, "public": false,
            "limits": {"memory_mb": 64, "timeout_ms": 2000, "max_concurrency": 8},
            "scale": {"idle_timeout_s": 60},
            "name": "f", "revision": 2, "created_at": "t0", "updated_at": "t1", "url": "http://h/fn/a/f",
            "status": {"state": "warm", "instances": 0, "last_invoked_at": null, "invocations": 3,
                       "cold_starts": 1, "errors": 0},
        });
        let f: FunctionInfo = serde_json::from_value(value).unwrap();
        assert_eq!(f.manifest.component, "builtin:tensor");
        assert_eq!(f.manifest.models["model"], "mlp");
        assert_eq!((f.revision, f.status.state.as_str(), f.status.invocations), (2, "warm", 3));
    }

    #[test]
    fn created_key_decodes() {
        let value = json!({"id": "0123456789abcdef", "tenant": "acme", "role": "invoker", "label": null,
                           "created_at": "t", "key": "maas_x"});
        let k: CreatedKey = serde_json::from_value(value).unwrap();
        assert_eq!((k.info.role, k.key.as_str()), (maas_registry::Role::Invoker, "maas_x"));
    }

    #[test]
    fn usage_report_decodes_partial() {
        let value = json!({"tenant": "acme", "invocations": 2, "energy_joules": 0.5,
                           "functions": {"f": {"invocations": 2}}, "direct_inference": {"invocations": 1},
                           "days": [{"date": "2025-01-01", "errors": 1}], "energy_model": {"watts": 10}});
        let u: UsageReport = serde_json::from_value(value).unwrap();
        assert_eq!((u.tenant.as_str(), u.totals.invocations, u.direct_inference.invocations), ("acme", 2, 1));
        assert_eq!(u.energy_model["watts"], 10);
        assert_eq!(u.functions["f"].invocations, 2);
        assert_eq!((u.days[0].date.as_str(), u.days[0].counters.errors), ("2025-01-01", 1));
    }
}
