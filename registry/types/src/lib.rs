//! # maas-types
//!
//! The maas HTTP contract as Rust types: every body that crosses HTTP, in one crate with no
//! storage, no HTTP stack and no runtime. The server serializes these, the registry stores the
//! ones that are records, and the SDK deserializes them, so the three cannot drift apart.
//!
//! | module | holds |
//! |---|---|
//! | [`names`] | the naming rules of tenants, models, functions and aliases |
//! | [`tenant`] | [`Tenant`], [`Quota`] and [`QuotaPatch`], the tenant view and its requests |
//! | [`keys`] | [`Role`], [`KeyInfo`], key requests and the created key |
//! | [`model`] | [`Datatype`], [`TensorSpec`], [`Signature`], model and component views |
//! | [`function`] | [`Manifest`] with parsed [`ComponentRef`] and [`ModelRef`], the function view |
//! | [`usage`] | usage counters, the usage report, the [`EnergyModel`] |
//! | [`audit`] | the audit trail's [`AuditEntry`] |
//! | [`trust`] | model cards, explanations, fairness audits |
//! | [`oip`] | the Open Inference Protocol bodies (`/v2`) |
//! | [`error`] | the error body, the contract's [`ErrorCode`]s and their statuses, and this crate's [`Error`] |
//!
//! Values are checked where the contract sets a rule ([`Quota::validate`],
//! [`Manifest::validate`], the [`names`] rules); a value that breaks one is an [`Error`] whose
//! message says which rule.
//!
//! ```
//! use maas_types::{ComponentRef, Manifest, ModelRef, Quota};
//! let mut manifest = Manifest::new(ComponentRef::TENSOR);
//! manifest.models.insert("model".into(), "mlp@2".parse::<ModelRef>()?);
//! manifest.validate(&Quota::default())?;
//! let json = serde_json::to_value(&manifest)?;
//! assert_eq!(json["component"], "builtin:tensor");
//! assert_eq!(json["models"]["model"], "mlp@2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod audit;
mod datatype;
pub mod error;
pub mod function;
pub mod keys;
pub mod model;
pub mod names;
pub mod oip;
pub mod tenant;
pub mod trust;
pub mod usage;

pub use audit::{AuditEntry, AuditList};
pub use datatype::Datatype;
pub use error::{Error, ErrorBody, ErrorCode};
pub use function::{
    Batching, Builtin, ComponentRef, Deployment, FunctionInfo, FunctionList, FunctionState, FunctionStatus, Limits,
    Manifest, ModelRef, RequireAudit, Scale, Warmup,
};
pub use keys::{CreateKey, CreatedKey, KeyInfo, KeyList, Role};
pub use model::{
    ANY_RANK, ComponentInfo, ComponentList, ModelAnalysis, ModelEntry, ModelInfo, ModelList, Signature, TensorSpec,
};
pub use oip::{InferInput, InferOutput, InferRequest, InferResponse, ModelMetadata, ServerMetadata};
pub use tenant::{CreateTenant, Quota, QuotaPatch, Tenant, TenantInfo, TenantList, TenantUpdate, TenantUsage};
pub use trust::{
    Attribution, Baseline, CardVersion, ExplainParams, ExplainRequest, Explanation, FairnessReport, FairnessRequest,
    Favorable, FavorableRule, GroupMetrics, ImageLayout, Method, ModelCard, ModelCardDocument,
};
pub use usage::{DayUsage, EnergyModel, Usage, UsageCounters, UsageReport};

/// `GET /healthz` and `GET /readyz`: `{"status": "ok" | "ready"}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// `ok` (alive) or `ready` (the registry is open).
    pub status: String,
}
