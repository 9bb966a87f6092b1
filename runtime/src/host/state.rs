//! Per-request store state and the host side of the function world's imports.
//!
//! Capabilities are enforced here, where the guest calls the host: `infer` and `describe`
//! resolve an alias only through the function's own manifest, which names models of the
//! function's own tenant.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{InferError, WitSignature, maas};
use super::wit::Tensor;
use crate::inference::{BatchPolicy, InferenceError, LoadedModel, RawTensor, RunLimits};
use crate::pool::Handoff;

/// How much of a guest's stderr is kept to explain a trap (a panic message, say).
const STDERR_CAPTURE_BYTES: usize = 4096;

/// A model a function may use, under the alias its manifest gives it.
#[derive(Clone, Debug)]
pub struct BoundModel {
    /// `name@version`, for the `x-maas-model` header and logs.
    pub label: String,
    /// Content digest of the model file (`sha256:<hex>`).
    pub digest: String,
    /// The loaded model, shared with every other function using it.
    pub model: Arc<LoadedModel>,
}

/// What a function instance may reach: its models by alias and its config.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// Alias → model, exactly as the manifest names them.
    pub models: HashMap<String, BoundModel>,
    /// The manifest's `config`.
    pub config: BTreeMap<String, String>,
    /// The manifest's `batching`: `infer` calls may share a batch with concurrent ones.
    pub batching: Option<BatchPolicy>,
}

/// Figures one invocation reports back to the platform (metering, headers).
#[derive(Clone, Debug, Default)]
pub struct InvocationReport {
    /// Wall time spent inside tract.
    pub inference: Duration,
    /// CPU time spent inside tract (thread CPU clock).
    pub inference_cpu: Duration,
    /// Aliases the function ran inference on, in first-use order.
    pub models_used: Vec<String>,
    /// Rows of the largest batch one of its `infer` calls ran in (0 without inference).
    pub batch_rows: usize,
    /// Whether one of its `infer` calls ran in a batch with other calls.
    pub batch_shared: bool,
    /// CPU time of the `infer` calls sent to the pool while the guest waited (not on the
    /// thread that polled the guest, so not in its CPU time).
    pub offloaded_cpu: Duration,
}

/// The `T` of every `Store`: fresh per request, so nothing leaks between requests.
pub struct HostState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// When the request must be done: no clock subscription of the guest outlasts it.
    pub(super) deadline: Instant,
    /// The zero of the guest's monotonic clock.
    pub(super) clock_origin: Instant,
    pub(crate) limiter: MemoryLimiter,
    caps: Arc<Capabilities>,
    pub(crate) report: InvocationReport,
    pub(crate) stderr: CapturedStderr,
    handoff: Handoff,
}

impl HostState {
    /// A state granting the guest nothing but `caps`, a memory limit of `memory_bytes`, and
    /// clocks whose waits end by `timeout` from now; blocking work goes through `handoff`.
    pub fn new(caps: Arc<Capabilities>, memory_bytes: usize, timeout: Duration, handoff: Handoff) -> Self {
        let stderr = CapturedStderr::default();
        let origin = Instant::now();
        // No preopens, no environment, no network, no arguments; stdout goes nowhere.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).monotonic_clock(super::clock::Clock { origin }).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            deadline: origin + timeout,
            clock_origin: origin,
            limiter: MemoryLimiter { limit: memory_bytes, exceeded: false },
            caps,
            report: InvocationReport::default(),
            stderr,
            handoff,
        }
    }

    /// What an `infer` call of this request may use: its memory limit, until its deadline.
    fn run_limits(&self) -> RunLimits {
        RunLimits { memory_bytes: self.limiter.limit as u64, deadline: Some(self.deadline) }
    }

    fn model(&self, alias: &str) -> Result<&BoundModel, InferError> {
        self.caps.models.get(alias).ok_or_else(|| {
            let mut known: Vec<&str> = self.caps.models.keys().map(String::as_str).collect();
            known.sort_unstable();
            InferError::ModelNotFound(format!("this function's manifest names no model {alias:?} (it names {known:?})"))
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Refuses memory growth past the manifest's `memory_mb`, remembering that it did so the
/// resulting trap can name the limit.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl super::wit::v0_2::Host for HostState {}

impl maas::function::config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.caps.config.get(&key).cloned()
    }
}

impl maas::function::inference::Host for HostState {
    /// Runs the model in place when that cannot hold an async worker for long: the call is on
    /// a pool thread already, or the model's runs of this size are known to be short (see
    /// [`LoadedModel::is_cheap`]). Otherwise (a slow or new model, or a batch, which waits for
    /// its peers) the run goes to the pool and the guest waits for it without a thread.
    async fn infer(&mut self, alias: String, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
        let bound = self.model(&alias)?.clone();
        let inputs: Vec<RawTensor> = inputs.into_iter().map(from_wit).collect();
        // The model and the shapes, never the data.
        let span = tracing::debug_span!(
            "infer",
            model = %bound.label,
            shapes = tracing::field::Empty,
            batch_size = tracing::field::Empty,
        );
        if !span.is_disabled() {
            let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
            span.record("shapes", tracing::field::debug(&shapes));
        }
        let (model, batching, limits) = (bound.model.clone(), self.caps.batching, self.run_limits());
        let bytes: usize = inputs.iter().map(|t| t.data.len()).sum();
        let own_rows = inputs.first().and_then(|t| t.shape.first().copied()).unwrap_or(0);
        let run = move || {
            let (started, cpu) = (Instant::now(), crate::cpu::thread_cpu());
            let (result, rows) = match batching {
                Some(policy) => model.run_batched(inputs, policy, limits),
                None => (model.run_within(inputs, limits), 0),
            };
            (result, rows, started.elapsed(), crate::cpu::thread_cpu().saturating_sub(cpu))
        };
        let in_place = !self.handoff.is_inline() || (batching.is_none() && bound.model.is_cheap(bytes));
        let (result, rows, took, cpu) = if in_place {
            span.in_scope(run)
        } else {
            let ran = self.handoff.offload(run).instrument(span.clone()).await;
            let ran = ran.map_err(|e| InferError::Failed(e.to_string()))?;
            self.report.offloaded_cpu += ran.3;
            ran
        };
        if batching.is_none() {
            // CPU time, not wall time: a run the OS preempted is no more expensive.
            bound.model.observe_run(bytes, cpu);
        }
        if rows > 0 {
            span.record("batch_size", rows);
            self.report.batch_rows = self.report.batch_rows.max(rows);
            self.report.batch_shared |= rows > own_rows;
        }
        bound.model.series().inferred(took);
        self.report.inference += took;
        self.report.inference_cpu += cpu;
        if !self.report.models_used.contains(&alias) {
            self.report.models_used.push(alias);
        }
        match result {
            Ok(outputs) => Ok(outputs.into_iter().map(to_wit).collect()),
            Err(InferenceError::InvalidInput(m)) => Err(InferError::InvalidInput(m)),
            Err(e) => Err(InferError::Failed(e.to_string())),
        }
    }

    fn describe(&mut self, alias: String) -> Result<WitSignature, InferError> {
        let sig = self.model(&alias)?.model.signature();
        Ok(WitSignature { inputs: sig.inputs.clone(), outputs: sig.outputs.clone() })
    }
}

/// A guest's tensor for tract: the same bytes, the shape in `usize`.
fn from_wit(t: Tensor) -> RawTensor {
    RawTensor {
        name: t.name,
        datatype: t.datatype,
        // A dimension past usize::MAX cannot match any byte count; the size check refuses it.
        shape: t.shape.into_iter().map(|d| usize::try_from(d).unwrap_or(usize::MAX)).collect(),
        data: t.data,
    }
}

/// tract's output for the guest.
fn to_wit(t: RawTensor) -> Tensor {
    Tensor { name: t.name, datatype: t.datatype, shape: t.shape.into_iter().map(|d| d as u64).collect(), data: t.data }
}

/// The guest's stderr, kept up to [`STDERR_CAPTURE_BYTES`] to explain a trap (a panic
/// message); anything past that is dropped silently rather than failing the guest's write.
#[derive(Clone, Default)]
pub(crate) struct CapturedStderr(Arc<Mutex<Vec<u8>>>);

impl CapturedStderr {
    /// What the guest wrote, lossily decoded, trimmed.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("stderr lock")).trim().to_string()
    }
}

impl IsTerminal for CapturedStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedStderr {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().expect("stderr lock");
        let room = STDERR_CAPTURE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
