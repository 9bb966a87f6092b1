//! The Rust client of a maas server.
//!
//! [`Client`] has one async method per route of the HTTP contract: tenants, keys, models and
//! their versions, components, functions, invocation, usage, the audit trail, explanations,
//! fairness audits and model cards, and the Open Inference Protocol under `/v2`. Requests and
//! answers are typed with the serde types the server itself serializes (`maas-types`, re-exported
//! as [`types`], the common ones at the top level), so the two cannot drift apart; this crate
//! pulls in no storage, wasm or inference code. Every refusal is an [`Error::Api`] holding the server's `code` and
//! `message`.
//!
//! # A model behind a function, step by step
//!
//! 1. As the operator (the admin key), create a tenant and an owner key for it.
//! 2. As the owner, upload the ONNX file: [`Upload::file`] streams it (memory stays flat
//!    whatever its size), reports progress if asked, and the returned sha256 is checked
//!    against the one computed while sending.
//! 3. Deploy a function: `builtin:tensor` serves a model with Open Inference Protocol JSON
//!    and no code of yours; a component of your own is uploaded with
//!    [`Client::upload_component`] and deployed by its digest.
//! 4. Invoke it; the answer comes back as the function gave it, with the platform's headers.
//!
//! ```no_run
//! use maas_sdk::{Client, ComponentRef, InferInput, InferRequest, Manifest, Role, Upload};
//!
//! # async fn run() -> Result<(), maas_sdk::Error> {
//! let admin = Client::new("http://127.0.0.1:8080")?.with_key("<admin key>");
//! admin.create_tenant("acme", None).await?;
//! let owner_key = admin.create_key("acme", Role::Owner, Some("ci")).await?.key;
//!
//! let owner = admin.clone().with_key(owner_key);
//! let model = owner.upload_model("acme", "mlp", Upload::file("mlp.onnx").await?).await?;
//! println!("mlp version {} takes {:?}", model.version, model.inputs);
//!
//! let mut manifest = Manifest::new(ComponentRef::TENSOR);
//! manifest.models.insert("model".into(), "mlp".parse().expect("a model name"));
//! owner.deploy("acme", "mlp", &manifest).await?;
//!
//! let request = InferRequest::new(vec![InferInput::fp32("input", [1, 100], &[0.5; 100])]);
//! let answer = owner.invoke_json("acme", "mlp", &request).await?;
//! println!("cold start: {:?}", answer.cold_start());
//! let outputs = answer.infer_response()?;
//! println!("{:?}", outputs.outputs[0].to_f32());
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! ```no_run
//! # async fn run(client: maas_sdk::Client) {
//! match client.model("acme", "nope", None).await {
//!     Err(e) if e.code() == Some("not_found") => eprintln!("no such model: {e}"),
//!     Err(e) => eprintln!("error: {e}"),
//!     Ok(model) => println!("{}", model.sha256),
//! }
//! # }
//! ```
//!
//! The `maas` command line (`maas-cli`) is built on this client.

#![deny(missing_docs)]

mod client;
mod error;
mod upload;

pub use client::{AuditQuery, CardFormat, Client, Invocation, Invoke};
pub use error::{ApiError, Error, Result, TransportError};
pub use upload::{ProgressFn, Upload};

/// The wire types of the API, shared with the server: what it serializes is what this client
/// reads.
pub use maas_types as types;
pub use maas_types::oip::{InferInput, InferOutput, InferRequest, InferResponse};
pub use maas_types::{
    AuditEntry, ComponentInfo, ComponentRef, CreatedKey, DayUsage, Deployment, ExplainRequest, Explanation,
    FairnessReport, FairnessRequest, Favorable, FunctionInfo, FunctionState, FunctionStatus, KeyInfo, Limits, Manifest,
    Method, ModelCard, ModelCardDocument, ModelEntry, ModelInfo, ModelRef, Quota, QuotaPatch, Role, Scale, TenantInfo,
    TenantUpdate, TenantUsage, TensorSpec, UsageCounters, UsageReport,
};
