//! # maas-runtime
//!
//! The maas server: an HTTP front (hyper), a wasmtime host running every function as a
//! sandboxed component, and a tract inference engine behind the one host call, `infer`.
//!
//! The invocation path, top to bottom:
//!
//! 1. [`server`] accepts; [`api::handle`] matches the [`routes::Route`], authenticates
//!    the caller ([`auth`]) and admits the request under its tenant's rate and concurrency
//!    ([`admission`]);
//! 2. [`scale`] finds the function's warm state or wakes it (component from its stored
//!    artifact, an `InstancePre`, the models' plans);
//! 3. [`host`] instantiates a fresh store per request on the blocking pool, with the
//!    manifest's memory limit and timeout;
//! 4. the guest's `infer` calls run in [`inference`] on `Arc`-shared plans;
//!    [`metering`] charges the CPU time, energy and CO2e to the tenant;
//! 5. errors of every layer become the contract's JSON in [`error`].
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
pub mod error;
pub mod host;
pub mod inference;
mod memory;
pub mod metering;
pub mod routes;
pub mod scale;
pub mod server;
pub mod trust;

pub use config::Config;
pub use server::{Server, shutdown_signal};
