//! The tract inference engine behind the `inference` host call.
//!
//! A model goes through three stages, each done once and shared:
//!
//! 1. **load** ([`LoadedModel::load`]): parse the ONNX bytes, record the signature in the Open
//!    Inference Protocol vocabulary, and keep a decluttered [`TypedModel`] whose symbolic
//!    dimensions (a batch size `N`, say) are still open;
//! 2. **plan**: one general plan, optimized with the symbols still open and resolved by tract
//!    per run, so that every batch size shares one plan and one copy of the packed weights
//!    (`plans`). Only a model tract cannot optimize that way gets a plan per concrete input
//!    shape: the symbols bound to the request's dimensions, or, when the declared shapes
//!    cannot be bound, the inputs pinned to the request's shapes and the model typed again.
//!    Those are kept in a small LRU per model, under a process-wide [`PlanBudget`];
//! 3. **run** ([`LoadedModel::run`]): validate the inputs against the signature *before* any
//!    work (a tract run cannot be interrupted), copy them into tract tensors, run, copy out.
//!    [`LoadedModel::run_batched`] does the same for calls that may share a batch with
//!    concurrent ones (see `batch`). A stacked batch is padded to a power of two rows (or
//!    `max_batch_size`), so batches of varying size need a handful of plans, not one per size.
//!
//! Loaded models are `Arc`-shared by every warm function that names them through the
//! [`ModelCache`]; when the last warm function lets go, the model and its plans are freed.
//!
//! What a model may make tract hold is bounded before tract holds it (`bounds`): the graph
//! and every tensor it declares at load, against the tenant's `max_memory_mb`; each plan's
//! largest step at run time, against the memory limit of the function running it. A panic
//! inside tract is caught and becomes the error of the stage it happened in.

mod analysis;
mod batch;
mod bounds;
mod cache;
mod datatype;
mod json;
mod ml;
mod plans;
mod rows;
#[cfg(test)]
pub(crate) mod testing;
mod typing;

pub use analysis::{Analyzer, analyze, analyze_stdin};
pub use batch::BatchPolicy;
pub use cache::{ModelCache, ModelKey};
pub use datatype::TractDatatype;
pub use json::{HostInput, Numbers, tensor_from_input};
pub use maas_types::{Datatype, Signature, TensorSpec};
pub use plans::{PlanAccount, PlanBudget};

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::metrics::ModelSeries;
use lru::LruCache;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::InferenceModelExt;

/// Working sets a model remembers, by input shapes (a few bytes each).
const WORKING_SETS: usize = 256;

/// Inputs a model remembers it could not plan.
const UNPLANNABLE: usize = 64;

/// Bytes of zeros an input may have for the check at load ([`LoadedModel::check_runs`]).
const ZERO_INPUT_BYTES: usize = 16 << 20;

/// The longest run expected to take that [`LoadedModel::is_cheap`] calls cheap: what may run
/// on an async worker in place, like any other short piece of request handling.
pub const CHEAP_RUN: Duration = Duration::from_micros(200);

/// Ids of loaded models, for the plan budget; never reused.
static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

/// Why inference did not produce outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The bytes are not a model tract can load; the message is tract's reason.
    #[error("{0}")]
    InvalidModel(String),
    /// The inputs do not fit the model's signature.
    #[error("{0}")]
    InvalidInput(String),
    /// The run passed its caller's deadline and was stopped between two nodes.
    #[error("the inference ran past the caller's deadline")]
    DeadlineExceeded,
    /// The model ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// What one caller of a run allows it.
#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    /// The caller's memory limit: a plan whose largest step needs more is refused.
    pub memory_bytes: u64,
    /// When the caller must be done: a run past it stops before its next node.
    pub deadline: Option<Instant>,
}

impl RunLimits {
    /// No limit of the caller's own (the model's cap still holds).
    pub const NONE: RunLimits = RunLimits { memory_bytes: u64::MAX, deadline: None };
}

/// One dense tensor crossing the inference boundary: little-endian, row-major bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub datatype: Datatype,
    /// Concrete dimensions.
    pub shape: Vec<usize>,
    /// `product(shape) * datatype.size()` bytes.
    pub data: Vec<u8>,
}

use plans::{Plan, PlanKey, ShapePlans, Shapes};
use typing::Strategy;

/// Bytes of a run's largest step (a node's inputs and outputs), and that node.
type WorkingSet = (u64, String);

/// What tract's panic said, for the error that stands in for it.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Runs tract work, turning a panic inside it into `error(message)`.
fn guarded<T>(
    work: impl FnOnce() -> Result<T, InferenceError>,
    error: impl FnOnce(String) -> InferenceError,
) -> Result<T, InferenceError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| Err(error(panic_message(payload))))
}

/// A parsed model, ready to plan and run, shared (`Arc`) by every function that uses it.
pub struct LoadedModel {
    signature: Signature,
    /// Whether tract typed the model only per request shape (see `typing`).
    per_request_shapes: bool,
    /// How the model is served where the signature does not say (`typing::notes`).
    notes: Vec<String>,
    /// The most one tensor may hold (the tenant's `max_memory_mb`), and the default memory
    /// limit of a run.
    max_bytes: u64,
    /// The model as parsed, with the declared facts, for pinning input shapes (or freezing
    /// parameter inputs) when symbols cannot be bound.
    inference: InferenceModel,
    /// Typed and decluttered with symbolic dimensions still open, when tract could type it so.
    typed: Option<TypedModel>,
    /// The plan for every input shape, when tract could optimize the model with its symbols
    /// open.
    general: Option<Plan>,
    /// Plans per input shapes, for a model without a general plan.
    plans: Arc<ShapePlans>,
    /// What per-shape plans may hold, this model's, its tenant's and every model's.
    budget: Arc<PlanBudget>,
    /// The bytes of the model's weights, which each per-shape plan holds a copy of.
    weight_bytes: u64,
    id: u64,
    /// Read on every run by every caller at once: a read lock, and `peek` (no LRU update).
    working_sets: RwLock<LruCache<Shapes, WorkingSet>>,
    batches: batch::Batches,
    /// The [`Strategy`] that built the last per-shape plan (0: none yet), tried first next.
    strategy: AtomicU8,
    /// Inputs no strategy could plan, and why: refused again without typing the model again.
    unplannable: Mutex<LruCache<PlanKey, String>>,
    /// Where its inference times, batch sizes, plan builds and evictions are recorded.
    series: ModelSeries,
    /// What a run costs, nanoseconds per KiB of input (`f64` bits; infinite until measured).
    run_cost: AtomicU64,
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        self.budget.forget_model(self.id);
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("signature", &self.signature).finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Parses and types an ONNX model whose tensors may hold at most `max_bytes` each. Fails
    /// with [`InferenceError::InvalidModel`] and the reason (tract's, or the tensor past the
    /// cap) when it cannot be served; this is also the validation done at upload.
    pub fn load(bytes: &[u8], max_bytes: u64) -> Result<Self, InferenceError> {
        Self::load_within(bytes, &[], max_bytes, PlanAccount::unbounded())
    }

    /// [`load`](Self::load) with the owner's `declared` input specs over the file's facts,
    /// its per-shape plans counted and bounded in `account`.
    pub fn load_within(
        bytes: &[u8],
        declared: &[TensorSpec],
        max_bytes: u64,
        account: PlanAccount,
    ) -> Result<Self, InferenceError> {
        guarded(
            || Self::load_unguarded(bytes, declared, max_bytes, account),
            |panic| InferenceError::InvalidModel(format!("tract failed on this model: {panic}")),
        )
    }

    fn load_unguarded(
        bytes: &[u8],
        declared: &[TensorSpec],
        max_bytes: u64,
        account: PlanAccount,
    ) -> Result<Self, InferenceError> {
        let invalid = |e: TractError| InferenceError::InvalidModel(format!("{e:#}"));
        let mut onnx = tract_onnx::onnx();
        ml::register(&mut onnx);
        let proto = onnx.proto_model_for_read(&mut &*bytes).map_err(invalid)?;
        bounds::check_graph(&proto, max_bytes)?;
        typing::check_operators(&proto, &onnx)?;
        let mut inference = onnx.model_for_proto_model(&proto).map_err(invalid)?;
        let notes = typing::notes(&proto);
        let file_outputs = proto.graph.map(|g| g.output).unwrap_or_default();
        typing::declare(&mut inference, declared)?;
        // A model tract cannot type without a request's shapes is still served, a plan per
        // request shape (`typing`).
        let (typed, signature) = match inference.clone().into_typed().and_then(|m| m.into_decluttered()) {
            Ok(typed) => {
                bounds::check_facts(&typed, max_bytes)?;
                let signature = signature_of(&typed)?;
                (Some(typed), signature)
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "not typed without concrete input shapes");
                (None, typing::signature_of_inference(&inference, &file_outputs)?)
            }
        };
        // The general plan, built now so that the first request does not pay for it. Its
        // constants were bounded by `check_facts`, and folding them is all it evaluates.
        let general = typed.as_ref().map(|typed| typed.clone().into_optimized().and_then(|m| m.into_runnable()));
        let fixed = signature.inputs.iter().all(|i| i.shape.iter().all(|&d| d >= 0));
        let general = match general {
            Some(Ok(plan)) => {
                account.series.plan_built();
                Some(Plan::general(plan))
            }
            // A model with one input shape has one plan: one that cannot be built is refused.
            Some(Err(e)) if fixed => return Err(invalid(e)),
            Some(Err(e)) => {
                tracing::debug!(error = %format!("{e:#}"), "no general plan; one plan per input shape");
                None
            }
            None => None,
        };
        let cap = NonZeroUsize::new(WORKING_SETS).expect("non-zero");
        let (plans, id) = (ShapePlans::new(), NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed));
        let owner: std::sync::Weak<dyn plans::Evict> = Arc::downgrade(&plans) as _;
        account.budget.register(id, &account, owner);
        let weight_bytes = plans::weight_bytes(&inference);
        let model = Self {
            per_request_shapes: general.is_none(),
            notes,
            signature,
            max_bytes,
            inference,
            typed,
            general,
            plans,
            budget: account.budget,
            weight_bytes,
            id,
            working_sets: RwLock::new(LruCache::new(cap)),
            batches: batch::Batches::default(),
            strategy: AtomicU8::new(0),
            unplannable: Mutex::new(LruCache::new(NonZeroUsize::new(UNPLANNABLE).expect("non-zero"))),
            series: account.series,
            run_cost: AtomicU64::new(f64::INFINITY.to_bits()),
        };
        if model.typed.is_some()
            && let Some(zeros) = model.zero_inputs()
        {
            model.plan_within(&zeros, max_bytes).map_err(|e| InferenceError::InvalidModel(e.to_string()))?;
        }
        Ok(model)
    }

    /// The model's inputs and outputs.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Whether each new input shape needs a plan of its own: tract could not type the model,
    /// or not optimize it, with its dimensions open.
    pub fn per_request_shapes(&self) -> bool {
        self.per_request_shapes
    }

    /// What the upload records with the version: the signature and how it is planned.
    pub fn analysis(&self, declared: &[TensorSpec]) -> maas_types::ModelAnalysis {
        maas_types::ModelAnalysis {
            signature: self.signature.clone(),
            declared_inputs: declared.to_vec(),
            per_request_shapes: self.per_request_shapes,
            notes: self.notes.clone(),
        }
    }

    /// Runs the model once on zeros when every input dimension is known: the check of an
    /// upload whose owner declared its input specs. Fails with the reason it cannot run.
    pub fn check_runs(&self) -> Result<(), InferenceError> {
        let Some(zeros) = self.zero_inputs() else { return Ok(()) };
        self.run(zeros).map(drop).map_err(|e| {
            InferenceError::InvalidModel(format!("the model does not run on zeros of its declared input shapes: {e}"))
        })
    }

    /// Builds the plan for inputs of `shapes` (input name → shape), as a request of zeros
    /// would: a function's warm-up during its cold start. Nothing is run.
    pub fn warm(&self, shapes: &std::collections::BTreeMap<String, Vec<u64>>) -> Result<(), InferenceError> {
        let bad = InferenceError::InvalidInput;
        if let Some(unknown) = shapes.keys().find(|n| !self.signature.inputs.iter().any(|i| i.name == **n)) {
            return Err(bad(format!("the model has no input {unknown:?}")));
        }
        let zeros = self
            .signature
            .inputs
            .iter()
            .map(|spec| {
                let shape = shapes.get(&spec.name).ok_or_else(|| bad(format!("no shape for input {:?}", spec.name)))?;
                let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                let bytes = shape.iter().try_fold(spec.datatype.size(), |n, &d| n.checked_mul(d));
                let bytes = bytes.filter(|&b| b <= ZERO_INPUT_BYTES).ok_or_else(|| {
                    bad(format!("input {:?}: a warm-up shape of more than {ZERO_INPUT_BYTES} bytes", spec.name))
                })?;
                Ok(RawTensor { name: spec.name.clone(), datatype: spec.datatype, shape, data: vec![0; bytes] })
            })
            .collect::<Result<Vec<_>, InferenceError>>()?;
        let ordered = self.order_and_check(zeros)?;
        self.plan_within(&ordered, self.max_bytes).map(drop)
    }

    /// Number of optimized plans held: the general one, or those per input shapes.
    pub fn plan_count(&self) -> usize {
        usize::from(self.general.is_some()) + self.plans.len()
    }

    /// Bytes of the per-shape plans held now (an estimate; see [`PlanBudget`]).
    pub fn plan_bytes(&self) -> u64 {
        self.budget.model_used(self.id)
    }

    /// Bytes of the model's weights.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Where the model's inference times, batch sizes, plan builds and evictions are recorded.
    pub fn series(&self) -> &ModelSeries {
        &self.series
    }

    /// Whether a run on `input_bytes` of input is expected to take less than [`CHEAP_RUN`],
    /// from the runs measured so far ([`LoadedModel::observe_run`]). Never for a model
    /// planned per input shape (a new shape builds a plan first), nor before a run is measured.
    pub fn is_cheap(&self, input_bytes: usize) -> bool {
        let per_kib = f64::from_bits(self.run_cost.load(Ordering::Relaxed));
        !self.per_request_shapes && per_kib * kib(input_bytes) < CHEAP_RUN.as_nanos() as f64
    }

    /// Records that a run on `input_bytes` took `took` (CPU time). The estimate rises at once to a
    /// slower run and comes down by an eighth of the distance per faster one: a model that
    /// was slow once is trusted again only after a few fast runs.
    pub fn observe_run(&self, input_bytes: usize, took: Duration) {
        let sample = took.as_nanos() as f64 / kib(input_bytes);
        let _ = self.run_cost.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let cost = f64::from_bits(bits);
            let next = if sample >= cost || cost.is_infinite() { sample } else { cost + (sample - cost) / 8.0 };
            Some(next.to_bits())
        });
    }

    /// Runs the model within the tenant's memory cap it was loaded with. Inputs are matched
    /// by name; every model input must be given once. Returns every output in graph order.
    pub fn run(&self, inputs: Vec<RawTensor>) -> Result<Vec<RawTensor>, InferenceError> {
        self.run_within(inputs, RunLimits::NONE)
    }

    /// Like [`run`](LoadedModel::run), within a caller's `limits`: a plan whose largest step
    /// needs more than its memory is refused with [`InferenceError::InvalidInput`], a run past
    /// its deadline stops with [`InferenceError::DeadlineExceeded`].
    pub fn run_within(&self, inputs: Vec<RawTensor>, limits: RunLimits) -> Result<Vec<RawTensor>, InferenceError> {
        let ordered = self.order_and_check(inputs)?;
        self.run_planned(ordered, limits.memory_bytes, limits.deadline)
    }

    /// Plans and runs checked inputs.
    fn run_planned(
        &self,
        ordered: Vec<RawTensor>,
        limit: u64,
        deadline: Option<Instant>,
    ) -> Result<Vec<RawTensor>, InferenceError> {
        let plan = self.plan_within(&ordered, limit)?;
        self.run_plan(&plan, ordered, deadline)
    }

    /// Like [`run`](LoadedModel::run), but the call may run in one batch with concurrent
    /// calls under the same `policy` (see `batch`). Returns the outputs and the rows of the
    /// batch the call ran in (its own rows when it ran alone).
    ///
    /// A call batches when every input's first dimension is the model's varying batch
    /// dimension, all inputs have the same number of rows, and that is at most
    /// `max_batch_size`; any other call runs alone.
    pub fn run_batched(
        &self,
        inputs: Vec<RawTensor>,
        policy: BatchPolicy,
        limits: RunLimits,
    ) -> (Result<Vec<RawTensor>, InferenceError>, usize) {
        let (limit, deadline) = (limits.memory_bytes, limits.deadline);
        let ordered = match self.order_and_check(inputs) {
            Ok(ordered) => ordered,
            Err(e) => return (Err(e), 0),
        };
        let rows = ordered.first().and_then(|t| t.shape.first().copied()).unwrap_or(0);
        let batchable = rows >= 1
            && rows <= policy.max_batch_size
            && ordered.iter().all(|t| t.shape.first() == Some(&rows))
            && self.signature.inputs.iter().chain(&self.signature.outputs).all(|s| s.shape.first() == Some(&-1));
        if !batchable {
            return (self.run_planned(ordered, limit, deadline), rows);
        }
        self.batches.run(ordered, rows, policy, &|mut inputs, merged| {
            // A call that ran alone (the usual case at low load) runs as `run` would. A merged
            // batch runs for all its callers, under the model's cap rather than one caller's
            // limits: each caller's own deadline still stops its function once it returns.
            let rows = inputs[0].shape[0];
            self.series.batch(rows);
            let padded = if merged { rows.next_power_of_two().min(policy.max_batch_size) } else { rows };
            let (limit, deadline) = if merged { (self.max_bytes, None) } else { (limit, deadline) };
            inputs.iter_mut().for_each(|input| input.pad_rows(padded));
            let outputs = self.run_planned(inputs, limit, deadline)?;
            Ok(outputs
                .into_iter()
                .map(|o| if padded != rows && o.shape.first() == Some(&padded) { o.rows(0..rows) } else { o })
                .collect())
        })
    }

    /// Runs checked, ordered inputs on `plan`, node by node, stopping between two nodes once
    /// `deadline` has passed (a node itself cannot be interrupted).
    fn run_plan(
        &self,
        plan: &Plan,
        ordered: Vec<RawTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<RawTensor>, InferenceError> {
        let mut values = TVec::with_capacity(ordered.len());
        for (ix, input) in ordered.into_iter().enumerate() {
            if plan.frozen.contains(&ix) {
                continue;
            }
            let tensor = typing::tensor_of(&input)
                .map_err(|e| InferenceError::InvalidInput(format!("input {}: {e}", input.name)))?;
            values.push(tensor.into_tvalue());
        }
        let run = || {
            let mut state = plan.runnable.spawn().map_err(|e| InferenceError::Failed(format!("{e:#}")))?;
            let outputs = state.run_plan_with_eval(values, |context, op_state, node, inputs| {
                // Long runs are on pool threads: let a waiting request in.
                crate::cpu::offer_core();
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(anyhow::Error::new(InferenceError::DeadlineExceeded));
                }
                tract_onnx::tract_core::plan::eval(context, op_state, node, inputs)
            });
            outputs.map_err(|e| match e.downcast_ref::<InferenceError>() {
                Some(InferenceError::DeadlineExceeded) => InferenceError::DeadlineExceeded,
                _ => InferenceError::Failed(format!("{e:#}")),
            })
        };
        let outputs = guarded(run, |panic| InferenceError::Failed(format!("the inference engine failed: {panic}")))?;
        outputs
            .into_iter()
            .zip(&self.signature.outputs)
            .map(|(value, spec)| {
                // A shape computed as symbolic dimensions is served as the INT64 it is.
                let value = if value.datum_type() == DatumType::TDim {
                    value
                        .cast_to::<i64>()
                        .map_err(|e| InferenceError::Failed(format!("{e:#}")))?
                        .into_owned()
                        .into_tvalue()
                } else {
                    value
                };
                let datatype = Datatype::from_tract(value.datum_type()).ok_or_else(|| {
                    InferenceError::Failed(format!(
                        "output {} has unsupported type {:?}",
                        spec.name,
                        value.datum_type()
                    ))
                })?;
                let data = value
                    .try_as_plain_ram()
                    .map_err(|e| InferenceError::Failed(format!("output {}: {e}", spec.name)))?
                    .as_bytes()
                    .to_vec();
                Ok(RawTensor { name: spec.name.clone(), datatype, shape: value.shape().to_vec(), data })
            })
            .collect()
    }

    /// Inputs of zeros, when no input has a varying dimension.
    fn zero_inputs(&self) -> Option<Vec<RawTensor>> {
        // Not a check worth a large allocation: larger inputs are checked per request.
        let mut left = ZERO_INPUT_BYTES.min(usize::try_from(self.max_bytes).unwrap_or(usize::MAX));
        self.signature
            .inputs
            .iter()
            .map(|i| {
                let shape = i.shape.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<_>>>()?;
                let bytes = shape.iter().try_fold(i.datatype.size(), |n, &d| n.checked_mul(d))?;
                left = left.checked_sub(bytes)?;
                Some(RawTensor { name: i.name.clone(), datatype: i.datatype, shape, data: vec![0; bytes] })
            })
            .collect()
    }

    /// Puts the inputs in graph order and checks name, datatype, rank, fixed dimensions and
    /// byte counts, so that nothing malformed ever reaches tract.
    fn order_and_check(&self, inputs: Vec<RawTensor>) -> Result<Vec<RawTensor>, InferenceError> {
        let bad = InferenceError::InvalidInput;
        let mut slots: Vec<Option<RawTensor>> = vec![None; self.signature.inputs.len()];
        for input in inputs {
            let Some(ix) = self.signature.inputs.iter().position(|s| s.name == input.name) else {
                let names: Vec<&str> = self.signature.inputs.iter().map(|s| s.name.as_str()).collect();
                return Err(bad(format!("unknown input {:?}; the model's inputs are {names:?}", input.name)));
            };
            let spec = &self.signature.inputs[ix];
            if slots[ix].is_some() {
                return Err(bad(format!("input {:?} given twice", input.name)));
            }
            if input.datatype != spec.datatype {
                return Err(bad(format!(
                    "input {:?} has datatype {}, the model expects {}",
                    input.name, input.datatype, spec.datatype
                )));
            }
            if !spec.accepts(&input.shape) {
                return Err(bad(format!(
                    "input {:?} has shape {:?}, the model expects {:?} (-1: any size)",
                    input.name, input.shape, spec.shape
                )));
            }
            let elements = input.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            let expected = elements.and_then(|n| n.checked_mul(input.datatype.size()));
            if expected != Some(input.data.len()) {
                return Err(bad(format!(
                    "input {:?}: shape {:?} of {} needs {} bytes, got {}",
                    input.name,
                    input.shape,
                    input.datatype,
                    expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                    input.data.len()
                )));
            }
            if input.datatype == Datatype::Bool && input.data.iter().any(|&b| b > 1) {
                return Err(bad(format!("input {:?}: BOOL elements must be 0 or 1", input.name)));
            }
            slots[ix] = Some(input);
        }
        slots
            .into_iter()
            .zip(&self.signature.inputs)
            .map(|(slot, spec)| slot.ok_or_else(|| bad(format!("missing input {:?}", spec.name))))
            .collect()
    }

    /// The plan to run these checked inputs with: the general one, or one for their shapes
    /// (and the values of the inputs it freezes) from the cache or built now. Refused when a
    /// run needs more than `limit` bytes at one step (or more than the model's own cap), before
    /// anything is built.
    fn plan_within(&self, inputs: &[RawTensor], limit: u64) -> Result<Plan, InferenceError> {
        let limit = limit.min(self.max_bytes);
        let shapes: Shapes = inputs.iter().map(|t| t.shape.clone()).collect();
        let checked = |(needed, node): &WorkingSet| {
            if *needed > limit { Err(bounds::too_large(&shapes, *needed, node, limit)) } else { Ok(()) }
        };
        // The usual case, without a copy of anything: shapes seen before, within the limit,
        // and a general plan.
        if let Some(general) = &self.general {
            let known = self.working_sets.read().expect("working sets lock");
            if let Some((needed, _)) = known.peek(&shapes)
                && *needed <= limit
            {
                return Ok(general.clone());
            }
        }
        let known = self.working_sets.read().expect("working sets lock").peek(&shapes).cloned();
        let measured = match (known, &self.typed) {
            (Some(working_set), _) => Some(working_set),
            // The working set is measured before anything is built for these shapes: binding
            // them or optimizing can make tract allocate or divide by a zero dimension.
            (None, Some(typed)) => match self.symbol_values(&shapes) {
                Ok(values) => {
                    let working_set = guarded(
                        || bounds::working_set(typed, &values).map_err(into_inference_error),
                        |panic| InferenceError::InvalidInput(format!("input shapes {shapes:?}: {panic}")),
                    )?;
                    self.working_sets.write().expect("working sets lock").put(shapes.clone(), working_set.clone());
                    Some(working_set)
                }
                // Shapes the declared ones cannot bind: measured once the model is pinned.
                Err(_) => None,
            },
            (None, None) => None,
        };
        if let Some(working_set) = &measured {
            checked(working_set)?;
            if let Some(general) = &self.general {
                return Ok(general.clone());
            }
        }
        let mut keys: Vec<PlanKey> = Vec::new();
        for strategy in Strategy::ALL {
            let key = plan_key(inputs, &strategy.freezes(inputs));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in &keys {
            if let Some(plan) = self.plans.get(key) {
                // Built under another caller's limit, perhaps: this caller's holds too.
                if let Some(working_set) = &plan.working_set {
                    checked(working_set)?;
                }
                self.budget.touch(self.id, key);
                return Ok(plan);
            }
        }
        // Inputs no strategy could plan: refused again without typing the model again.
        let everything = keys.last().expect("one key at least");
        if let Some(why) = self.unplannable.lock().expect("unplannable lock").get(everything) {
            return Err(InferenceError::InvalidInput(why.clone()));
        }
        // Typing folds constants: sizes the request gives (its shapes, and the values it
        // freezes) are bounded before tract sees them.
        bounds::check_request(inputs, self.max_bytes)?;
        // Built outside any lock: optimizing can take a while and other shapes must not wait.
        let plan = self.build_plan(inputs, &shapes, limit, everything)?;
        if let Some(working_set) = &plan.working_set {
            checked(working_set)?;
        }
        let Some((_, key)) = &plan.built else { return Ok(plan) };
        self.series.plan_built();
        if let Some(pushed_out) = self.plans.put(PlanKey::clone(key), plan.clone()) {
            self.series.plan_evicted();
            self.budget.forget(self.id, &pushed_out);
        }
        self.budget.admit(self.id, key, plans::plan_bytes(&plan.runnable, self.weight_bytes));
        Ok(plan)
    }

    fn build_plan(
        &self,
        inputs: &[RawTensor],
        shapes: &Shapes,
        limit: u64,
        everything: &PlanKey,
    ) -> Result<Plan, InferenceError> {
        guarded(
            || self.build_plan_unguarded(inputs, shapes, limit, everything),
            |panic| InferenceError::InvalidInput(format!("the model cannot run with input shapes {shapes:?}: {panic}")),
        )
    }

    /// A plan for exactly these inputs, by the first [`Strategy`] that works, starting with
    /// the one that worked last. When none does, the inputs (`everything` they could freeze)
    /// are remembered as unplannable.
    fn build_plan_unguarded(
        &self,
        inputs: &[RawTensor],
        shapes: &Shapes,
        limit: u64,
        everything: &PlanKey,
    ) -> Result<Plan, InferenceError> {
        let measured = |model: &TypedModel, values: &HashMap<Symbol, TDim>| -> TractResult<WorkingSet> {
            let working_set = bounds::working_set(model, values)?;
            if working_set.0 > limit {
                let (needed, node) = &working_set;
                anyhow::bail!(bounds::too_large(shapes, *needed, node, limit));
            }
            Ok(working_set)
        };
        let build = |model: TypedModel, strategy: Strategy, frozen: &[usize]| -> TractResult<Plan> {
            let working_set = measured(&model, &HashMap::default())?;
            let runnable = model.into_optimized()?.into_runnable()?;
            let key = Arc::new(plan_key(inputs, frozen));
            Ok(Plan {
                runnable,
                frozen: Arc::from(frozen),
                built: Some((strategy, key)),
                working_set: Some(Arc::new(working_set)),
            })
        };
        let mut failures = Vec::new();
        let mut tried: Vec<Vec<usize>> = Vec::new();
        for strategy in Strategy::order(Strategy::from_u8(self.strategy.load(Ordering::Relaxed))) {
            let frozen = strategy.freezes(inputs);
            let built = match strategy {
                Strategy::Bound => {
                    let Some(typed) = &self.typed else { continue };
                    self.symbol_values(shapes).and_then(|values| {
                        measured(typed, &values)?;
                        build(typed.set_symbols(&values)?, strategy, &[])
                    })
                }
                Strategy::Pinned => {
                    typing::pin(&self.inference, inputs).and_then(|m| build(m.into_typed()?, strategy, &[]))
                }
                // Nothing to freeze, or the same inputs as a strategy already tried.
                Strategy::Frozen | Strategy::FrozenAll if frozen.is_empty() || tried.contains(&frozen) => continue,
                Strategy::Frozen | Strategy::FrozenAll => {
                    let values: Vec<(&str, Vec<i64>)> = frozen
                        .iter()
                        .filter_map(|&ix| Some((inputs[ix].name.as_str(), typing::integer_values(&inputs[ix])?)))
                        .collect();
                    bounds::check_frozen(&values, self.max_bytes)
                        .map_err(anyhow::Error::new)
                        .and_then(|()| typing::freeze(&self.inference, inputs, &frozen))
                        .and_then(|m| build(m.into_typed()?, strategy, &frozen))
                }
            };
            if matches!(strategy, Strategy::Frozen | Strategy::FrozenAll) {
                tried.push(frozen);
            }
            match built {
                Ok(plan) => {
                    self.strategy.store(strategy as u8, Ordering::Relaxed);
                    return Ok(plan);
                }
                // Too large is too large, whichever way it is typed.
                Err(e) if e.downcast_ref::<InferenceError>().is_some() => return Err(into_inference_error(e)),
                Err(e) => failures.push(format!("{strategy:?}: {e:#}")),
            }
        }
        let why = format!("the model cannot run with input shapes {shapes:?}: {}", failures.join("; "));
        self.unplannable.lock().expect("unplannable lock").put(everything.clone(), why.clone());
        Err(InferenceError::InvalidInput(why))
    }

    /// The values `shapes` give the symbols of the model typed at load.
    fn symbol_values(&self, shapes: &[Vec<usize>]) -> TractResult<HashMap<Symbol, TDim>> {
        let Some(typed) = &self.typed else { anyhow::bail!("the model has no typed form") };
        let mut values = HashMap::default();
        for (ix, shape) in shapes.iter().enumerate() {
            let fact = typed.input_fact(ix)?;
            if fact.rank() != shape.len() {
                anyhow::bail!("input {ix} has rank {}, not {}", fact.rank(), shape.len());
            }
            for (dim, &size) in fact.shape.iter().zip(shape) {
                match dim {
                    TDim::Sym(symbol) => {
                        if let Some(previous) = values.insert(symbol.clone(), TDim::Val(size as i64))
                            && previous != TDim::Val(size as i64)
                        {
                            anyhow::bail!("symbol {symbol} is bound to both {previous} and {size}");
                        }
                    }
                    TDim::Val(v) if *v == size as i64 => {}
                    other => anyhow::bail!("dimension {other} cannot be bound to {size}"),
                }
            }
        }
        Ok(values)
    }
}

/// The type an output of `datum_type` is served as: a dimension (`Shape`, `Size`) is INT64.
fn served_type(datum_type: DatumType) -> DatumType {
    if datum_type == DatumType::TDim { DatumType::I64 } else { datum_type }
}

/// The cache key of a plan for `inputs` that freezes the inputs at `frozen`.
fn plan_key(inputs: &[RawTensor], frozen: &[usize]) -> PlanKey {
    PlanKey {
        shapes: inputs.iter().map(|t| t.shape.clone()).collect(),
        frozen: frozen.iter().map(|&ix| (ix, inputs[ix].data.clone())).collect(),
    }
}

/// The [`InferenceError`] a tract error carries, when it carries one.
fn into_inference_error(e: TractError) -> InferenceError {
    match e.downcast::<InferenceError>() {
        Ok(e) => e,
        Err(e) => InferenceError::Failed(format!("{e:#}")),
    }
}

/// Reads names, datatypes and shapes off a typed model, in the OIP vocabulary.
fn signature_of(model: &TypedModel) -> Result<Signature, InferenceError> {
    let spec = |outlet: OutletId, what: &str| -> Result<TensorSpec, InferenceError> {
        let fact = model.outlet_fact(outlet).map_err(|e| InferenceError::InvalidModel(e.to_string()))?;
        // An input is named by its source node; an output by its outlet label (the ONNX
        // output name), which may differ from the node's name, e.g. when the graph passes an
        // input straight through.
        let node_name = || model.node(outlet.node).name.clone();
        let name = match what {
            "input" => node_name(),
            _ => model.outlet_label(outlet).map(str::to_string).unwrap_or_else(node_name),
        };
        let datatype = Datatype::from_tract(served_type(fact.datum_type)).ok_or_else(|| {
            InferenceError::InvalidModel(format!(
                "{what} {name:?} has type {:?}, which maas cannot serve",
                fact.datum_type
            ))
        })?;
        let shape = fact.shape.iter().map(|d| d.as_i64().unwrap_or(-1)).collect();
        Ok(TensorSpec { name, datatype, shape })
    };
    let inputs = model.input_outlets().map_err(|e| InferenceError::InvalidModel(e.to_string()))?;
    let outputs = model.output_outlets().map_err(|e| InferenceError::InvalidModel(e.to_string()))?;
    Ok(Signature {
        inputs: inputs.iter().map(|&o| spec(o, "input")).collect::<Result<_, _>>()?,
        outputs: outputs.iter().map(|&o| spec(o, "output")).collect::<Result<_, _>>()?,
    })
}

/// Lets every model run of the process split its large matrix products over a pool of
/// `threads` threads (one: no pool, the default). tract keeps small products on the calling
/// thread, so a cheap run stays as it is. Called once at start ([`crate::Config`]'s
/// `inference_threads`).
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    set_default_executor(if threads > 1 {
        Executor::multithread_with_name(threads, "maas-tract")
    } else {
        Executor::SingleThread
    });
}

/// `bytes` in KiB, at least one: a model with tiny inputs still costs a run.
fn kib(bytes: usize) -> f64 {
    (bytes as f64 / 1024.0).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model is called cheap only once a run was measured short; one slow run makes it
    /// expensive at once, and a few short ones make it cheap again. The input's size counts.
    #[test]
    fn cheap_runs_are_learned_from_measured_ones() {
        let model = LoadedModel::load(&maas_fixtures::mlp_batch(1), u64::MAX).unwrap();
        let row = 400;
        assert!(!model.is_cheap(row), "not before a run is measured");
        model.observe_run(row, Duration::from_micros(10));
        assert!(model.is_cheap(row));
        assert!(!model.is_cheap(row * 1000), "a thousand rows cost a thousand times more");
        model.observe_run(row, Duration::from_millis(30));
        assert!(!model.is_cheap(row), "one slow run is enough");
        let mut fast_runs = 0;
        while !model.is_cheap(row) {
            model.observe_run(row, Duration::from_micros(10));
            fast_runs += 1;
            assert!(fast_runs < 100);
        }
        assert!(fast_runs > 3, "trusted again after {fast_runs} fast runs");
    }

    /// With a thread pool (`MAAS_INFERENCE_THREADS`), a run large enough to be split gives
    /// the same outputs, bit for bit.
    #[test]
    fn runs_split_over_threads_give_the_same_outputs() {
        use tract_linalg::multithread::{Executor, multithread_tract_scope};
        let model = LoadedModel::load(&maas_fixtures::mlp_sized(4, 1024), u64::MAX).unwrap();
        let rows = 64;
        let data = maas_fixtures::seeded_input(9, &[rows, 100]);
        let input = || {
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            vec![RawTensor { name: "input".into(), datatype: Datatype::Fp32, shape: vec![rows, 100], data: bytes }]
        };
        let alone = model.run(input()).unwrap();
        let split = multithread_tract_scope(Executor::multithread(2), || model.run(input())).unwrap();
        assert_eq!(alone[0].data, split[0].data);
        assert_eq!(alone[0].shape, vec![rows, 10]);
    }
}
