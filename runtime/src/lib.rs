//! # maas-runtime
//!
//! The maas server: an HTTP front (hyper), a wasmtime host running every function as a
//! sandboxed component, and a tract inference engine behind the one host call, `infer`.
//!
//! The layers, top to bottom. Only `api` and `server` speak HTTP; there are no import cycles
//! between modules:
//!
//! | layer | modules | what |
//! |---|---|---|
//! | accept | [`server`] | connections, graceful shutdown |
//! | HTTP | [`api`] | the route table, authorization, parsing, rendering, errors → status codes |
//! | domain | [`platform`], [`invocation`], [`scale`], [`auth`], [`admission`], [`queue`], [`metering`], [`config`], [`error`] | what a request does, with its limits, in the platform's own terms; its one error type |
//! | engines | [`host`], [`inference`], [`trust`] | wasmtime, tract, explanations and audits |
//! | below | [`pool`], [`cpu`], [`metrics`], [`telemetry`], `memory`, `maas-registry`, `maas-types` | the bounded pool, the CPU clock, metrics, logs and traces, the allocator policy, the store, the wire types |
//!
//! One invocation, `POST /fn/acme/classify`:
//!
//! 1. [`server`] accepts and hands the request to [`api::handle`], which finds the route in
//!    [`api::ROUTES`] and authenticates the key ([`auth`]: a [`auth::Principal`] carrying the
//!    tenant's record);
//! 2. the handler (`api/invoke.rs`) finds the function's [`scale::Slot`], checks the caller may
//!    invoke it, has the platform [`charge`](platform::Platform::charge) it (energy budget, the
//!    caller's rate), reads the body, and has the platform [`admit`](platform::Platform::admit)
//!    it: a place among the function's and the tenant's concurrency, queued when none is free
//!    ([`queue`]);
//! 3. [`invocation::Admitted::invoke`] gets the warm state from [`scale`] (a cold start if
//!    needed), runs a fresh instance on the [`pool`] through [`host`], whose `infer` host call
//!    runs [`inference`], and meters the CPU time ([`metering`]);
//! 4. the handler renders the guest's answer with the platform headers; any [`Error`] of any
//!    layer becomes the contract's JSON in one place (`api/error.rs`).
//!
//! Embedding (what `maas serve` does):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = maas_runtime::Config::new("./maas-data");
//! let server = maas_runtime::Server::bind(config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(maas_runtime::shutdown_signal()).await
//! # }
//! ```

#![deny(missing_docs)]

pub mod admission;
pub mod api;
pub mod auth;
pub mod config;
pub mod cpu;
pub mod error;
pub mod host;
pub mod inference;
pub mod invocation;
mod memory;
pub mod metering;
pub mod metrics;
pub mod platform;
pub mod pool;
pub mod queue;
pub mod scale;
pub mod server;
pub mod telemetry;
pub mod trust;

pub use config::Config;
pub use error::{Error, Result};
pub use platform::Platform;
pub use server::{Server, shutdown_signal};
pub use telemetry::Telemetry;
