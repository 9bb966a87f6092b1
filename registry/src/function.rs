//! Functions and their manifests.
//!
//! A [`Manifest`] is what a tenant writes (`PUT /v1/tenants/{t}/functions/{f}`); it is parsed strictly
//! (unknown fields are refused), every field but `component` has a default, and
//! [`Manifest::validate`] checks syntax and bounds against the tenant's [`Quota`].
//! [`Registry::put_function`] also checks that what it references exists.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::error::{Error, Result};
use crate::names::{validate_alias, validate_function_name, validate_model_name};
use crate::store::{Batch, T, key, prefix};
use crate::tenant::Quota;

/// The `builtin:<name>` components the platform provides.
pub const KNOWN_BUILTINS: &[&str] = &["tensor"];

const MAX_MODELS: usize = 64;
const MAX_CONFIG_ENTRIES: usize = 256;
const MAX_CONFIG_KEY: usize = 256;
const MAX_CONFIG_VALUE: usize = 64 * 1024;
const MAX_CONCURRENCY: u32 = 1024;
const MAX_IDLE_TIMEOUT_S: u64 = 7 * 24 * 3600;
const MAX_BATCH_SIZE: u32 = 256;
const MAX_QUEUE_DELAY_US: u64 = 100_000;

/// A function's deployment manifest.
///
/// ```json
/// {"component": "builtin:tensor" | "sha256:<hex>",
///  "models": {"<alias>": "<model name>[@<version>]"},
///  "config": {"<key>": "<value>"},
///  "limits": {"memory_mb": 64, "timeout_ms": 2000, "max_concurrency": 8},
///  "scale":  {"idle_timeout_s": 60},
///  "public": false,
///  "require_audit": {"min_disparate_impact": 0.8},
///  "batching": {"max_batch_size": 16, "max_queue_delay_us": 0}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `builtin:<name>` (one of [`KNOWN_BUILTINS`]) or `sha256:<64 lowercase hex>` of an uploaded component.
    pub component: String,
    /// Alias the guest uses → `name` (latest version at load time) or `name@version` (pinned).
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Values the guest reads through the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Per-instance resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Scale-to-zero settings.
    #[serde(default)]
    pub scale: Scale,
    /// Whether invoking needs no key.
    #[serde(default)]
    pub public: bool,
    /// A fairness gate: deploying is refused unless every model version the manifest names has a
    /// latest audit that meets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_audit: Option<RequireAudit>,
    /// Dynamic batching of the function's inference calls; absent means every call runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
}

/// Dynamic batching: concurrent inference calls of a function on the same model, with the same
/// shapes past the first (batch) dimension, run as one batch of at most `max_batch_size` rows.
///
/// Opt-in, as in Triton: batching is only correct for models whose rows are independent
/// (nothing in the graph mixes rows), which only the model's owner can vouch for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    /// Most rows in one batch: 1 to 256 (1 turns batching off).
    pub max_batch_size: u32,
    /// How long the first call of a batch waits for others, in µs: 0 to 100000. With 0, calls
    /// that arrive while a batch runs form the next batch, so a lone call never waits.
    #[serde(default)]
    pub max_queue_delay_us: u64,
}

/// What a model version's latest fairness audit must show for a function to deploy on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireAudit {
    /// Lowest acceptable `disparate_impact_ratio` (0.8 is the four-fifths rule).
    pub min_disparate_impact: f64,
}

/// Per-instance limits of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap per instance, MiB: 1 to the tenant's `max_memory_mb`. Default 64.
    pub memory_mb: u32,
    /// Wall-clock deadline per invocation, ms: 1 to the tenant's `max_timeout_ms`. Default 2000.
    pub timeout_ms: u64,
    /// Concurrent invocations of this function, 1 to 1024 (the tenant's `max_concurrency` caps the tenant's
    /// total at run time). Default 8.
    pub max_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: 64, timeout_ms: 2000, max_concurrency: 8 }
    }
}

/// Scale-to-zero settings of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scale {
    /// Seconds without invocations after which the warm instance is dropped: 1 to 604800. Default 60.
    pub idle_timeout_s: u64,
}

impl Default for Scale {
    fn default() -> Self {
        Scale { idle_timeout_s: 60 }
    }
}

/// A parsed `component` field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// `builtin:<name>`: one of [`KNOWN_BUILTINS`]; holds the name.
    Builtin(String),
    /// `sha256:<64 lowercase hex>`: an uploaded component; holds the whole string.
    Digest(String),
}

impl ComponentRef {
    /// Parses `builtin:<known name>` or `sha256:<64 lowercase hex>` ([`Error::InvalidManifest`] otherwise).
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(name) = s.strip_prefix("builtin:") {
            if KNOWN_BUILTINS.contains(&name) {
                return Ok(ComponentRef::Builtin(name.to_owned()));
            }
            return Err(Error::InvalidManifest(format!(
                "component: unknown builtin {name:?} (known: {})",
                KNOWN_BUILTINS.join(", ")
            )));
        }
        if let Some(hex) = s.strip_prefix("sha256:")
            && hex.len() == 64
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(ComponentRef::Digest(s.to_owned()));
        }
        Err(Error::InvalidManifest(
            "component must be \"builtin:<name>\" or \"sha256:<64 lowercase hex digits>\"".into(),
        ))
    }
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Builtin(name) => write!(f, "builtin:{name}"),
            ComponentRef::Digest(d) => f.write_str(d),
        }
    }
}

impl FromStr for ComponentRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ComponentRef::parse(s)
    }
}

/// A parsed model reference: `name` or `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// The model name.
    pub name: String,
    /// The pinned version; `None` follows the latest.
    pub version: Option<u32>,
}

impl ModelRef {
    /// Parses `name` or `name@version` (version a decimal ≥ 1 without leading zeros);
    /// [`Error::InvalidManifest`] otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, version) = match s.split_once('@') {
            Some((name, v)) => {
                let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0');
                let Some(v) = ok.then(|| v.parse::<u32>().ok()).flatten() else {
                    return Err(Error::InvalidManifest(format!(
                        "model reference {s:?}: the version must be a number from 1"
                    )));
                };
                (name, Some(v))
            }
            None => (s, None),
        };
        validate_model_name(name).map_err(|e| Error::InvalidManifest(format!("model reference {s:?}: {e}")))?;
        Ok(ModelRef { name: name.to_owned(), version })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for ModelRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelRef::parse(s)
    }
}

impl Manifest {
    /// Checks syntax and bounds, with `quota` bounding memory and timeout.
    /// [`Error::InvalidManifest`] naming the field.
    pub fn validate(&self, quota: &Quota) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidManifest(msg));
        ComponentRef::parse(&self.component)?;
        if self.models.len() > MAX_MODELS {
            return bad(format!("models: at most {MAX_MODELS} aliases"));
        }
        for (alias, reference) in &self.models {
            validate_alias(alias).map_err(|e| Error::InvalidManifest(format!("models: {e}")))?;
            ModelRef::parse(reference).map_err(|e| Error::InvalidManifest(format!("models.{alias}: {e}")))?;
        }
        if self.config.len() > MAX_CONFIG_ENTRIES {
            return bad(format!("config: at most {MAX_CONFIG_ENTRIES} entries"));
        }
        for (k, v) in &self.config {
            if k.is_empty() || k.len() > MAX_CONFIG_KEY || k.chars().any(char::is_control) {
                return bad(format!("config: keys must be 1 to {MAX_CONFIG_KEY} bytes without control characters"));
            }
            if v.len() > MAX_CONFIG_VALUE {
                return bad(format!("config.{k}: at most {MAX_CONFIG_VALUE} bytes"));
            }
        }
        let l = &self.limits;
        if !(1..=quota.max_memory_mb).contains(&l.memory_mb) {
            return bad(format!(
                "limits.memory_mb must be between 1 and {} (the tenant's max_memory_mb)",
                quota.max_memory_mb
            ));
        }
        if !(1..=quota.max_timeout_ms).contains(&l.timeout_ms) {
            return bad(format!(
                "limits.timeout_ms must be between 1 and {} (the tenant's max_timeout_ms)",
                quota.max_timeout_ms
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&l.max_concurrency) {
            return bad(format!("limits.max_concurrency must be between 1 and {MAX_CONCURRENCY}"));
        }
        if !(1..=MAX_IDLE_TIMEOUT_S).contains(&self.scale.idle_timeout_s) {
            return bad(format!("scale.idle_timeout_s must be between 1 and {MAX_IDLE_TIMEOUT_S}"));
        }
        if let Some(b) = &self.batching {
            if !(1..=MAX_BATCH_SIZE).contains(&b.max_batch_size) {
                return bad(format!("batching.max_batch_size must be between 1 and {MAX_BATCH_SIZE}"));
            }
            if b.max_queue_delay_us > MAX_QUEUE_DELAY_US {
                return bad(format!("batching.max_queue_delay_us must be between 0 and {MAX_QUEUE_DELAY_US}"));
            }
        }
        if let Some(gate) = &self.require_audit
            && !(gate.min_disparate_impact.is_finite() && gate.min_disparate_impact >= 0.0)
        {
            return bad("require_audit.min_disparate_impact must be a finite number ≥ 0".into());
        }
        Ok(())
    }

    /// The parsed model references, by alias (call after [`validate`](Manifest::validate)).
    pub fn model_refs(&self) -> Result<BTreeMap<String, ModelRef>> {
        self.models.iter().map(|(alias, r)| Ok((alias.clone(), ModelRef::parse(r)?))).collect()
    }
}

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
        for (alias, r) in manifest.model_refs()? {
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
        if let ComponentRef::Digest(d) = ComponentRef::parse(&manifest.component)?
            && self.component(tenant, &d)?.is_none()
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
