//! The Rust client of a maas server, and the client side of the `maas` command line.
//!
//! [`Client`] has one async method per route of the HTTP contract: tenants, keys, models and
//! their versions, components, functions, invocation, usage, the audit trail, explanations,
//! fairness audits and model cards ([`trust`]), and the Open Inference Protocol under `/v2`. Requests and answers are typed with the same serde types
//! the server uses ([`Quota`], [`QuotaPatch`], [`Role`], [`KeyInfo`], [`Manifest`], [`Limits`],
//! [`Scale`], [`TensorSpec`], [`AuditEntry`], [`ModelCard`], re-exported from `maas-registry`), so the
//! two cannot drift apart. Every refusal is an [`Error::Api`] holding the server's `code` and
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
//! use maas_sdk::{Client, InferInput, InferRequest, Role, Upload};
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
//! let mut manifest = maas_sdk::manifest("builtin:tensor");
//! manifest.models.insert("model".into(), "mlp".into());
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
//! # The command line
//!
//! With the default `cli` feature, [`cli`] holds the client subcommands of the `maas` binary
//! (which lives in `maas-runtime` beside `maas serve`): `maas tenants create acme`,
//! `maas models upload acme mlp mlp.onnx`, `maas functions deploy acme mlp builtin:tensor
//! --model model=mlp`, `maas invoke acme mlp --json '{…}'`, and so on.

#![deny(missing_docs)]

mod client;
mod error;
pub mod oip;
pub mod trust;
mod types;
mod upload;

#[cfg(feature = "cli")]
pub mod cli;

pub use client::{Client, Invocation, Invoke};
pub use error::{ApiError, Error, Result, TransportError};
pub use oip::{InferInput, InferOutput, InferRequest, InferResponse};
pub use trust::{
    CardFormat, ExplainRequest, Explanation, FairnessReport, FairnessRequest, Favorable, ModelCardDocument,
};
pub use types::{
    AuditQuery, ComponentInfo, CreatedKey, DayUsage, Deployment, FunctionInfo, FunctionStatus, ModelEntry, ModelInfo,
    TenantInfo, TenantUpdate, TenantUsage, UsageCounters, UsageReport, manifest,
};
pub use upload::{ProgressFn, Upload};

/// The server's own types, shared so that requests and answers match what it (de)serializes.
pub use maas_registry::{AuditEntry, KeyInfo, Limits, Manifest, ModelCard, Quota, QuotaPatch, Role, Scale, TensorSpec};
