//! The wasmtime host: one engine, one linker, a fresh instance per request.
//!
//! The stages, expensive work first and once:
//!
//! 1. [`Host::new`]: build the engine (pooling allocator, epoch interruption), link WASI with
//!    an empty context plus the function world's imports, and compile the built-in components;
//! 2. [`Host::compile`] at upload: compile a component once, refuse it if it is not a component
//!    of the function world, and return the artifact to store (`Component::serialize`);
//! 3. [`Host::load_artifact`] on wake: deserialize the stored artifact (no recompilation), then
//!    [`Host::prepare`] links it into an [`InstancePre`](wasmtime::component::InstancePre);
//! 4. [`Host::invoke`] per request: a fresh `Store` and instance from the pool, with the
//!    manifest's memory limit and an epoch deadline for its timeout.
//!
//! The engine is async: a guest runs on a fiber, so the request's own task can poll it with
//! no thread hop. At each epoch tick past [`INLINE_BUDGET`] the guest yields once and asks
//! (through its [`Handoff`]) to move to the bounded pool, where it runs on; blocking host work
//! (a model run that is not cheap, a batch) goes to the pool while the guest waits without
//! holding the async worker. See [`crate::pool::Pool::run_inline`].
//!
//! ```no_run
//! # fn demo(host: &maas_runtime::host::Host, wasm: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use maas_runtime::host::{Capabilities, Limits, Request};
//! let (_component, artifact) = host.compile(wasm)?;          // at upload
//! let component = host.load_artifact(&artifact)?;           // on wake
//! let pre = host.prepare(&component)?;                       // once per warm function
//! let caps = Arc::new(Capabilities::default());
//! let req = Request { method: "GET".into(), path: "/".into(), query: String::new(), headers: vec![], body: vec![] };
//! let limits = Limits { memory_bytes: 64 << 20, timeout_ms: 1000 };
//! let out = host.invoke_blocking(&pre, caps, limits, req)?;  // per request
//! # let _ = out; Ok(()) }
//! ```

mod bindings;
mod clock;
mod compat;
mod epoch;
mod state;
pub mod wit;

pub use bindings::HandlerPre;
pub use state::{BoundModel, Capabilities, HostState, InvocationReport};
pub use wit::{Request, Response};

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_types::{Builtin, ComponentRef};
use tracing::Instrument;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};

use crate::pool::Handoff;
use epoch::EpochTicker;

/// How much CPU time a guest may take on the request's task before it moves to the pool at the
/// next epoch tick: enough that a call of a small model never moves, little enough that a long
/// one holds an async worker for at most this plus a tick.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

static TENSOR_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/maas_fn_tensor.wasm"));

/// Sizing of the host; the defaults suit a shared server.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The largest linear memory any function may ask for (the pool's slot size), in MiB.
    pub max_memory_mb: u32,
    /// How many instances may exist at once (the pool's size).
    pub max_instances: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { max_memory_mb: 1024, max_instances: 256 }
    }
}

/// Per-invocation limits, from the function's manifest.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Linear memory the instance may grow to.
    pub memory_bytes: usize,
    /// Wall-clock budget of the call, checked at epoch ticks.
    pub timeout_ms: u64,
}

/// Why a component was refused at upload.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidComponent(pub String);

/// Why an invocation did not produce a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The guest trapped (a panic, `unreachable`, out-of-bounds access, ...).
    #[error("the function trapped: {0}")]
    Trapped(String),
    /// The guest tried to grow its memory past the manifest's limit and then trapped.
    #[error("the function exceeded its memory limit of {limit_mb} MiB and trapped: {detail}")]
    MemoryLimit {
        /// The limit, in MiB.
        limit_mb: usize,
        /// The trap that followed.
        detail: String,
    },
    /// The guest ran past its timeout.
    #[error("the function ran past its timeout of {0} ms")]
    Timeout(u64),
    /// The host could not run the guest at all (pool exhausted, link failure, ...).
    #[error("the host could not run the function: {0}")]
    Host(String),
}

/// The wasmtime engine, linker and built-in components, shared by every function.
pub struct Host {
    engine: Engine,
    linker: Linker<HostState>,
    builtin_tensor: Component,
    ticker: EpochTicker,
    fingerprint: String,
}

impl Host {
    /// Builds the engine and linker and compiles the built-in components.
    pub fn new(config: &HostConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 8)
            .total_memories(config.max_instances * 2)
            .total_tables(config.max_instances * 4)
            .total_stacks(config.max_instances)
            .max_memory_size(config.max_memory_mb as usize * (1 << 20))
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            // Keep the bottom 256 KiB of each memory resident between instances, zeroed with
            // memset instead of unmapped: a request to `builtin:tensor` (64 KiB stack, then
            // data, then heap) touches nothing above it, so it takes no page faults, no
            // madvise and no TLB shoot-downs. 64 KiB here made its in-process invocation
            // 1.6× slower (docs/performance.md); 2 MiB was slower too (memset).
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10);
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(anyhow::Error::from)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        clock::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        bindings::Handler::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        // Components built against the previous world import it by its version.
        bindings::v0_1::Handler::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let fingerprint = format!("wasmtime-{:016x}", hasher.finish());

        let builtin_tensor = Component::new(&engine, TENSOR_WASM).map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self { engine, linker, builtin_tensor, ticker, fingerprint })
    }

    /// Identifies the engine's code format; stored artifacts are keyed by it so an upgraded
    /// server never deserializes code compiled for another configuration.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The built-in component `builtin`.
    pub fn builtin(&self, builtin: Builtin) -> Component {
        match builtin {
            Builtin::Tensor => self.builtin_tensor.clone(),
        }
    }

    /// The component `reference` names when it is a builtin; `None` for an uploaded one.
    pub fn builtin_for(&self, reference: &ComponentRef) -> Option<Component> {
        match reference {
            ComponentRef::Builtin(builtin) => Some(self.builtin(*builtin)),
            ComponentRef::Digest(_) => None,
        }
    }

    /// Compiles a component and checks it against the function world: it must export
    /// `handle` and import nothing the platform does not provide. Returns the component and
    /// its serialized artifact. CPU-heavy: call it on a blocking thread.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Component, Vec<u8>), InvalidComponent> {
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| InvalidComponent(format!("not a valid component: {e:#}")))?;
        self.prepare(&component)
            .map_err(|e| InvalidComponent(format!("not a function of maas:function/handler: {e}")))?;
        let artifact = component
            .serialize()
            .map_err(|e| InvalidComponent(format!("could not serialize the compiled component: {e}")))?;
        Ok((component, artifact))
    }

    /// Loads an artifact produced by [`Host::compile`] on an engine with the same fingerprint.
    pub fn load_artifact(&self, artifact: &[u8]) -> anyhow::Result<Component> {
        // SAFETY: artifacts are only ever produced by `compile` on this server and stored in
        // the registry, keyed by this engine's fingerprint; wasmtime also checks the header.
        unsafe { Component::deserialize(&self.engine, artifact) }.map_err(anyhow::Error::from)
    }

    /// Links a component into a pre-instantiated handler, done once per warm function.
    pub fn prepare(&self, component: &Component) -> Result<HandlerPre<HostState>, String> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        HandlerPre::new(pre).map_err(|e| format!("{e:#}"))
    }

    /// Runs one request in a fresh instance ([`Host::instance`] then [`Instance::handle`]).
    /// The guest yields at epoch ticks, moves when `handoff` says so, and sends blocking host
    /// work through it: poll it with [`crate::pool::Pool::run_inline`], or drive it on a
    /// blocking thread with a [`Handoff::blocking`].
    pub async fn invoke(
        &self,
        pre: &HandlerPre<HostState>,
        caps: Arc<Capabilities>,
        limits: Limits,
        req: Request,
        handoff: Handoff,
    ) -> Result<(Response, InvocationReport), InvokeError> {
        async {
            let instance = self.instance(pre, caps, limits, handoff).await?;
            instance.handle(&req).instrument(tracing::debug_span!("guest")).await
        }
        .instrument(tracing::debug_span!("instance"))
        .await
    }

    /// [`Host::invoke`] driven to the end on the calling thread, for callers on a thread of
    /// their own (tests, benches, examples); never call it on an async worker.
    pub fn invoke_blocking(
        &self,
        pre: &HandlerPre<HostState>,
        caps: Arc<Capabilities>,
        limits: Limits,
        req: Request,
    ) -> Result<(Response, InvocationReport), InvokeError> {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime =
                tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime");
        }
        RUNTIME.with(|runtime| runtime.block_on(self.invoke(pre, caps, limits, req, Handoff::blocking())))
    }

    /// A fresh instance of `pre`: a new `Store` granting `caps`, under `limits`, with its
    /// memories and tables taken from the pool. Its epoch callback ends the call at its
    /// deadline, and asks `handoff` to move it once it has run past [`INLINE_BUDGET`].
    pub async fn instance(
        &self,
        pre: &HandlerPre<HostState>,
        caps: Arc<Capabilities>,
        limits: Limits,
        handoff: Handoff,
    ) -> Result<Instance<'_>, InvokeError> {
        let timeout = Duration::from_millis(limits.timeout_ms);
        // The budget counts the CPU time of the thread that polls the guest, not wall time: a
        // guest preempted by the OS has not held its worker, and on a pool it would wait for
        // a slot. (CPU time of other tasks that ran on the thread while the guest waited
        // counts too; that only moves a call that waited on the pool anyway.)
        let cpu_started = crate::cpu::thread_cpu();
        let mut store = Store::new(&self.engine, HostState::new(caps, limits.memory_bytes, timeout, handoff.clone()));
        store.limiter(|s| &mut s.limiter);
        let deadline = store.data().deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            Ok(if now >= deadline {
                UpdateDeadline::Interrupt
            } else if handoff.is_inline()
                && crate::cpu::thread_cpu().saturating_sub(cpu_started) >= INLINE_BUDGET
                && handoff.ask()
            {
                // One yield: the poller sees the request and moves the call to the pool.
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        let running = self.ticker.running();
        match pre.instantiate_async(&mut store).await {
            Ok(handler) => Ok(Instance { store, handler, limits, _running: running }),
            Err(e) => Err(classify(e, store.data(), limits)),
        }
    }
}

/// One instance of a function, good for one request; dropping it returns its memory to the pool.
pub struct Instance<'h> {
    store: Store<HostState>,
    handler: bindings::Handler,
    limits: Limits,
    _running: epoch::RunningGuard<'h>,
}

impl Instance<'_> {
    /// Calls the guest's `handle` with `req`.
    pub async fn handle(mut self, req: &Request) -> Result<(Response, InvocationReport), InvokeError> {
        match self.handler.call_handle(&mut self.store, req).await {
            Ok(response) => Ok((response, std::mem::take(&mut self.store.data_mut().report))),
            Err(e) => Err(classify(e, self.store.data(), self.limits)),
        }
    }
}

/// Sorts a failed call into timeout, memory limit, trap or host fault.
fn classify(e: wasmtime::Error, state: &HostState, limits: Limits) -> InvokeError {
    let trap = e.downcast_ref::<Trap>().copied();
    let stderr = state.stderr.text();
    let detail = if stderr.is_empty() { format!("{e}") } else { format!("{e}; the guest wrote: {stderr}") };
    match trap {
        Some(Trap::Interrupt) => InvokeError::Timeout(limits.timeout_ms),
        _ if state.limiter.exceeded => InvokeError::MemoryLimit { limit_mb: limits.memory_bytes >> 20, detail },
        Some(_) => InvokeError::Trapped(detail),
        None if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() => {
            InvokeError::Host(format!("too many instances at once: {e}"))
        }
        // Errors without a trap code come from the guest too (e.g. a WASI call the empty
        // context refuses in a way that traps); report them as traps with the reason.
        None => InvokeError::Trapped(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::inference::LoadedModel;

    fn host() -> Host {
        Host::new(&HostConfig { max_memory_mb: 128, max_instances: 4 }).unwrap()
    }

    fn get() -> Request {
        Request { method: "GET".into(), path: "/".into(), query: String::new(), headers: vec![], body: vec![] }
    }

    #[test]
    fn compile_refuses_what_is_not_a_function() {
        let host = host();
        for bad in [&b"not wasm"[..], b"\0asm\x01\0\0\0"] {
            let InvalidComponent(why) = host.compile(bad).unwrap_err();
            assert!(why.contains("not a valid component"), "{why}");
        }
    }

    #[test]
    fn answers_http_cannot_carry_are_caught() {
        let answer = |status: u16, name: &str, value: &str| Response {
            status,
            headers: vec![(name.into(), value.into())],
            body: vec![],
        };
        assert!(answer(200, "x-ok", "fine").check().is_ok());
        assert!(answer(42, "x-ok", "fine").check().unwrap_err().contains("status 42"));
        assert!(answer(200, "bad name", "v").check().unwrap_err().contains("header name"));
        assert!(answer(200, "x-ok", "line\nbreak").check().unwrap_err().contains("value"));
    }

    /// `describe` crosses the component boundary as maas's own types (`bindgen!` maps the
    /// WIT `datatype` and `tensor-info` onto `Datatype` and `TensorSpec`): the guest reads the
    /// model's signature as tract gave it.
    #[test]
    fn the_builtin_reads_the_signature_through_the_host() {
        let host = host();
        let pre = host.prepare(&host.builtin(Builtin::Tensor)).unwrap();
        let model = Arc::new(LoadedModel::load(&maas_fixtures::int64_model(), u64::MAX).unwrap());
        let bound = BoundModel { label: "m@1".into(), digest: "sha256:x".into(), model };
        let caps = Arc::new(Capabilities { models: HashMap::from([("model".into(), bound)]), ..Default::default() });
        let limits = Limits { memory_bytes: 64 << 20, timeout_ms: 5000 };
        let (response, _) = host.invoke_blocking(&pre, caps, limits, get()).unwrap();
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        let metadata: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            metadata["inputs"],
            serde_json::json!([{ "name": "tokens", "datatype": "INT64", "shape": [-1, 4] }])
        );
        assert_eq!(metadata["outputs"][1]["datatype"], "FP32");

        // Without the model, the guest gets the host's model-not-found and says so.
        let pre = host.prepare(&host.builtin(Builtin::Tensor)).unwrap();
        let (response, _) = host.invoke_blocking(&pre, Arc::new(Capabilities::default()), limits, get()).unwrap();
        assert_eq!(response.status, 404);
    }
}
