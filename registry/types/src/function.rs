//! Functions: the deployment manifest (with its component and model references parsed), and
//! the function as the API shows it.
//!
//! A [`Manifest`] is what a tenant writes (`PUT /v1/tenants/{t}/functions/{f}`); it is parsed
//! strictly (unknown fields are refused, references must parse), every field but `component`
//! has a default, and [`Manifest::validate`] checks bounds against the tenant's [`Quota`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::names::{validate_alias, validate_model_name};
use crate::tenant::Quota;

const MAX_MODELS: usize = 64;
const MAX_CONFIG_ENTRIES: usize = 256;
const MAX_CONFIG_KEY: usize = 256;
const MAX_CONFIG_VALUE: usize = 64 * 1024;
const MAX_CONCURRENCY: u32 = 1024;
const MAX_IDLE_TIMEOUT_S: u64 = 7 * 24 * 3600;
const MAX_QUEUE_DEPTH: u32 = 4096;
const MAX_QUEUE_TIMEOUT_MS: u64 = 600_000;
const MAX_BATCH_SIZE: u32 = 256;
const MAX_QUEUE_DELAY_US: u64 = 100_000;
const MAX_WARMUP: usize = 16;
const MAX_WARMUP_INPUTS: usize = 64;
const MAX_WARMUP_RANK: usize = 16;

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
///  "batching": {"max_batch_size": 16, "max_queue_delay_us": 0},
///  "warmup": [{"model": "<alias>", "inputs": {"<input>": [1, 3, 640, 640]}}]}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `builtin:<name>` (a [`Builtin`]) or `sha256:<64 lowercase hex>` of an uploaded component.
    pub component: ComponentRef,
    /// Alias the guest uses → `name` (latest version at load time) or `name@version` (pinned).
    #[serde(default)]
    pub models: BTreeMap<String, ModelRef>,
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
    /// Input shapes whose plans the cold start builds, so that the first request on one of
    /// them does not pay for tract's optimization (models served per request shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup: Vec<Warmup>,
}

/// One warm-up shape set: a shape for every input of the model behind `model`. The cold start
/// builds their plan as for a request of zeros (a small integer input, frozen as a constant
/// in the plan, is then zeros too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// The model's alias in `models`.
    pub model: String,
    /// Input name → shape.
    pub inputs: BTreeMap<String, Vec<u64>>,
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
    /// Invocations that may wait, first in first out, for one of the function's (or its tenant's)
    /// concurrency slots: 0 to 4096. Past it, `429`. Default 64.
    pub queue_depth: u32,
    /// Longest wait in that queue, ms: 0 to 600 000. Past it, `429`. Default 10 000.
    pub queue_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: 64, timeout_ms: 2000, max_concurrency: 8, queue_depth: 64, queue_timeout_ms: 10_000 }
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

/// A component the platform provides, named `builtin:<name>` in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `builtin:tensor`: Open Inference Protocol JSON (or binary) in and out, for the manifest's
    /// model alias `model`.
    Tensor,
}

impl Builtin {
    /// Every builtin.
    pub const ALL: [Builtin; 1] = [Builtin::Tensor];

    /// The name after `builtin:`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Tensor => "tensor",
        }
    }
}

/// A manifest's `component`: a builtin or the digest of an uploaded component. On the wire it
/// is `builtin:<name>` or `sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ComponentRef {
    /// `builtin:<name>`.
    Builtin(Builtin),
    /// `sha256:<64 lowercase hex>`: an uploaded component; holds the whole string.
    Digest(String),
}

impl ComponentRef {
    /// `builtin:tensor`.
    pub const TENSOR: ComponentRef = ComponentRef::Builtin(Builtin::Tensor);

    /// Parses `builtin:<known name>` or `sha256:<64 lowercase hex>` ([`Error::InvalidManifest`]
    /// otherwise).
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(name) = s.strip_prefix("builtin:") {
            if let Some(builtin) = Builtin::ALL.into_iter().find(|b| b.name() == name) {
                return Ok(ComponentRef::Builtin(builtin));
            }
            let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
            return Err(Error::InvalidManifest(format!(
                "component: unknown builtin {name:?} (known: {})",
                known.join(", ")
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
            ComponentRef::Builtin(b) => write!(f, "builtin:{}", b.name()),
            ComponentRef::Digest(d) => f.write_str(d),
        }
    }
}

impl FromStr for ComponentRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ComponentRef::parse(s)
    }
}

impl TryFrom<String> for ComponentRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        ComponentRef::parse(&s)
    }
}

impl From<ComponentRef> for String {
    fn from(r: ComponentRef) -> String {
        r.to_string()
    }
}

/// A manifest's model reference: `name` (the latest version when the function wakes) or
/// `name@version` (pinned).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelRef {
    /// The model name.
    pub name: String,
    /// The pinned version; `None` follows the latest.
    pub version: Option<u32>,
}

impl ModelRef {
    /// Parses `name` or `name@version` (version a decimal ≥ 1 without leading zeros);
    /// [`Error::InvalidManifest`] otherwise.
    pub fn parse(s: &str) -> Result<Self, Error> {
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
    fn from_str(s: &str) -> Result<Self, Error> {
        ModelRef::parse(s)
    }
}

impl TryFrom<String> for ModelRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        ModelRef::parse(&s)
    }
}

impl From<ModelRef> for String {
    fn from(r: ModelRef) -> String {
        r.to_string()
    }
}

impl Manifest {
    /// A manifest deploying `component` with every other field at its default: no models, no
    /// config, default limits and scale, not public. Set the fields you need on the result.
    pub fn new(component: ComponentRef) -> Self {
        Manifest {
            component,
            models: BTreeMap::new(),
            config: BTreeMap::new(),
            limits: Limits::default(),
            scale: Scale::default(),
            public: false,
            require_audit: None,
            batching: None,
            warmup: Vec::new(),
        }
    }

    /// Checks bounds, with `quota` bounding memory and timeout (the references were checked
    /// when parsed). [`Error::InvalidManifest`] naming the field.
    pub fn validate(&self, quota: &Quota) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::InvalidManifest(msg));
        if self.models.len() > MAX_MODELS {
            return bad(format!("models: at most {MAX_MODELS} aliases"));
        }
        for alias in self.models.keys() {
            validate_alias(alias).map_err(|e| Error::InvalidManifest(format!("models: {e}")))?;
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
        if l.queue_depth > MAX_QUEUE_DEPTH {
            return bad(format!("limits.queue_depth must be at most {MAX_QUEUE_DEPTH}"));
        }
        if l.queue_timeout_ms > MAX_QUEUE_TIMEOUT_MS {
            return bad(format!("limits.queue_timeout_ms must be at most {MAX_QUEUE_TIMEOUT_MS}"));
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
        if self.warmup.len() > MAX_WARMUP {
            return bad(format!("warmup: at most {MAX_WARMUP} shape sets"));
        }
        for (ix, w) in self.warmup.iter().enumerate() {
            if !self.models.contains_key(&w.model) {
                return bad(format!("warmup[{ix}].model: {:?} is not an alias in models", w.model));
            }
            if w.inputs.is_empty() || w.inputs.len() > MAX_WARMUP_INPUTS {
                return bad(format!("warmup[{ix}].inputs: 1 to {MAX_WARMUP_INPUTS} inputs"));
            }
            if w.inputs.values().any(|shape| shape.len() > MAX_WARMUP_RANK) {
                return bad(format!("warmup[{ix}].inputs: at most {MAX_WARMUP_RANK} dimensions"));
            }
        }
        if let Some(gate) = &self.require_audit
            && !(gate.min_disparate_impact.is_finite() && gate.min_disparate_impact >= 0.0)
        {
            return bad("require_audit.min_disparate_impact must be a finite number ≥ 0".into());
        }
        Ok(())
    }
}

/// Whether a function is warm (its component linked and models loaded) or scaled to zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionState {
    /// Scaled to zero: nothing in memory but its record and counters.
    #[default]
    Cold,
    /// Ready to run a request without a cold start.
    Warm,
}

impl fmt::Display for FunctionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FunctionState::Cold => "cold",
            FunctionState::Warm => "warm",
        })
    }
}

/// A function's live state, from the server's memory (counters restart with the server).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionStatus {
    /// `cold` (scaled to zero) or `warm`.
    pub state: FunctionState,
    /// Instances running right now.
    pub instances: u32,
    /// When the last invocation started, RFC 3339 UTC.
    pub last_invoked_at: Option<String>,
    /// Invocations since the server started.
    pub invocations: u64,
    /// Cold starts since the server started.
    pub cold_starts: u64,
    /// Invocations that ended in a platform error.
    pub errors: u64,
}

/// A deployed function as `GET /v1/tenants/{t}/functions/{f}` shows it: its manifest,
/// revision, URL and live status.
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
    pub created_at: String,
    /// When it was last deployed, RFC 3339 UTC.
    pub updated_at: String,
    /// Where it is invoked, as the server saw this client reach it.
    pub url: String,
    /// Whether it is warm, and its counters.
    pub status: FunctionStatus,
}

/// `GET /v1/tenants/{t}/functions`: `{"functions": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionList {
    /// The tenant's functions, by name.
    pub functions: Vec<FunctionInfo>,
}

/// The answer to a deploy: the function, and whether this created it (`201`) or redeployed
/// it (`200`, revision + 1). Not a body on the wire: the SDK builds it from the status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Whether the function is new.
    pub created: bool,
    /// The function as deployed.
    pub function: FunctionInfo,
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
        assert_eq!(f.manifest.component, ComponentRef::TENSOR);
        assert_eq!(f.manifest.models["model"], ModelRef { name: "mlp".into(), version: None });
        assert_eq!((f.revision, f.status.state, f.status.invocations), (2, FunctionState::Warm, 3));
    }

    #[test]
    fn references_parse_and_print_back() {
        for text in ["builtin:tensor", &format!("sha256:{}", "ab".repeat(32))] {
            assert_eq!(text.parse::<ComponentRef>().unwrap().to_string(), text);
        }
        for bad in ["builtin:nope", "sha256:AB", "tensor", ""] {
            assert!(bad.parse::<ComponentRef>().is_err(), "{bad}");
        }
        assert_eq!("mlp@3".parse::<ModelRef>().unwrap(), ModelRef { name: "mlp".into(), version: Some(3) });
        for bad in ["mlp@0", "mlp@", "mlp@01", "Mlp", "@1"] {
            assert!(bad.parse::<ModelRef>().is_err(), "{bad}");
        }
        let err = serde_json::from_value::<Manifest>(json!({"component": "builtin:nope"})).unwrap_err();
        assert!(err.to_string().contains("unknown builtin \"nope\""), "{err}");
        let manifest: Manifest =
            serde_json::from_value(json!({"component": "builtin:tensor", "models": {"m": "x@2"}})).unwrap();
        assert_eq!(serde_json::to_value(&manifest).unwrap()["models"]["m"], "x@2");
    }
}
