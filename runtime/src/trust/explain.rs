//! Attributions: how much each element (or patch) of one input moved one output score.
//!
//! [`explain`] explains the score `output[target]` (the output flattened per row) of a batch-1
//! request over one of its inputs, the others kept as given, against a *baseline* (what
//! "absent" means for a feature: zeros, the input's mean, or explicit values):
//!
//! - **occlusion** replaces one feature at a time by the baseline; a feature's attribution is
//!   `score(input) − score(occluded)`, spread evenly over its elements. A feature is an element,
//!   or with `patch: p` on an image-shaped input (`[1,C,H,W]` / `[1,H,W,C]`) a `p×p` square
//!   across all channels. For a linear model and a zero baseline it is exactly `wᵢ·xᵢ`.
//! - **kernel_shap** (Lundberg & Lee 2017) evaluates coalitions of features (present: the input's
//!   values; absent: the baseline's), weighs them with the Shapley kernel and fits a linear
//!   model by weighted least squares under the efficiency constraint, so attributions always sum
//!   to `prediction − baseline_prediction`. Coalitions are chosen as the SHAP reference
//!   implementation does: whole subset sizes are enumerated (paired with their complements)
//!   while the budget allows, the rest is sampled from the kernel with a seeded RNG and
//!   duplicates merged. With `samples ≥ 2^M − 2` every coalition is enumerated and the result is
//!   the exact Shapley value.
//!
//! The perturbed inputs run as batches of rows when every model input has a varying first
//! dimension and the request has batch 1 (equal-size chunks of at most
//! [`Limits::max_batch_rows`] rows, the last padded so one plan serves the whole request);
//! otherwise one run per perturbed input. [`Explanation::rows_evaluated`] and
//! [`Explanation::model_runs`] report the work, for metering.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize, Serializer};

use super::heatmap::{HeatmapOptions, render_png};
use super::{ImageLayout, Limits, TrustError, checked_elements, element_f64, push_element, tensor_f32};
use crate::inference::{Datatype, InferenceError, LoadedModel, RawTensor};

/// How attributions are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One feature at a time replaced by the baseline: `features + 2` model rows.
    #[default]
    Occlusion,
    /// Kernel SHAP: `samples + 2` model rows at most, attributions that sum exactly to
    /// `prediction − baseline_prediction`.
    KernelShap,
}

/// What an absent feature is replaced by.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Baseline {
    /// Every element 0.
    #[default]
    Zeros,
    /// Every element the mean of the explained input's own elements.
    Mean,
    /// One value per element of the explained input, row-major.
    Values(Vec<f32>),
}

impl TryFrom<serde_json::Value> for Baseline {
    type Error = String;

    /// `"zeros"`, `"mean"` or an array of numbers, as the contract's `baseline`.
    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        let wrong = || r#"baseline must be "zeros", "mean" or an array of numbers"#.to_string();
        match value {
            serde_json::Value::String(s) if s == "zeros" => Ok(Baseline::Zeros),
            serde_json::Value::String(s) if s == "mean" => Ok(Baseline::Mean),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()).ok_or_else(wrong))
                .collect::<Result<_, _>>()
                .map(Baseline::Values),
            _ => Err(wrong()),
        }
    }
}

impl<'de> Deserialize<'de> for Baseline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Baseline::try_from(serde_json::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The parameters of one explanation: the contract's request without `inputs`, plus `input`,
/// `patch` and `layout`. Deserializable, so a handler can `#[serde(flatten)]` it next to its
/// `inputs`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExplainParams {
    /// Name of the input to explain; default: the model's first input.
    #[serde(default)]
    pub input: Option<String>,
    /// Name of the output whose score is explained; default: the model's first output.
    #[serde(default)]
    pub output: Option<String>,
    /// Index of the explained score in the output flattened per row; default: the argmax of
    /// the prediction.
    #[serde(default)]
    pub target: Option<usize>,
    /// Occlusion or Kernel SHAP (required in a request).
    pub method: Method,
    /// What absent features are replaced by; default zeros.
    #[serde(default)]
    pub baseline: Baseline,
    /// Kernel SHAP coalitions to evaluate (besides the empty and the full one); default
    /// `2·M + 2048` for `M` features, at most [`Limits::max_samples`]. Occlusion ignores it.
    #[serde(default)]
    pub samples: Option<usize>,
    /// Seed of Kernel SHAP's coalition sampling; default 0, so equal requests give equal answers.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Patch size for image-shaped inputs: features become `patch×patch` squares across all
    /// channels (partial squares at the right and bottom edges). Default: element-wise.
    #[serde(default)]
    pub patch: Option<usize>,
    /// Channel layout of the image-shaped input, when the guess of [`ImageLayout::detect`] is
    /// wrong. Only used with `patch` (and by the heatmap).
    #[serde(default)]
    pub layout: Option<ImageLayout>,
}

/// Attributions of one input: FP32, the input's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribution {
    /// The explained input's name.
    pub name: String,
    /// The explained input's shape.
    pub shape: Vec<usize>,
    /// Always FP32.
    #[serde(serialize_with = "datatype_name")]
    pub datatype: Datatype,
    /// One attribution per element, row-major.
    pub data: Vec<f32>,
    /// The image layout used for patches, if any (for the heatmap; not serialized).
    #[serde(skip)]
    pub layout: Option<ImageLayout>,
}

fn datatype_name<S: Serializer>(datatype: &Datatype, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(datatype.as_str())
}

/// The result of [`explain`]; serializes to the contract's JSON answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The method used.
    pub method: Method,
    /// The explained output's name.
    pub output: String,
    /// Index of the explained score in the output flattened per row.
    pub target: usize,
    /// The target score on the input as given.
    pub prediction: f32,
    /// The target score with the whole explained input at the baseline.
    pub baseline_prediction: f32,
    /// One tensor per explained input (today always one), with the input's shape.
    pub attributions: Vec<Attribution>,
    /// Number of features (elements or patches) explained.
    #[serde(skip)]
    pub features: usize,
    /// Rows the model evaluated, padding included: what to meter.
    #[serde(skip)]
    pub rows_evaluated: u64,
    /// Number of model runs (batches or single rows).
    #[serde(skip)]
    pub model_runs: u64,
}

impl Explanation {
    /// The PNG heatmap of the (first) attribution over its input, for `Accept: image/png`.
    /// `inputs` are the request's inputs; fails with [`TrustError::InvalidRequest`] when the
    /// explained input is not image-shaped.
    pub fn heatmap(&self, inputs: &[RawTensor], options: &HeatmapOptions) -> Result<Vec<u8>, TrustError> {
        let attribution = self
            .attributions
            .first()
            .ok_or_else(|| TrustError::Internal("an explanation without attributions".into()))?;
        let image = inputs.iter().find(|t| t.name == attribution.name);
        let mut options = options.clone();
        options.layout = options.layout.or(attribution.layout);
        render_png(attribution, image, &options)
    }
}

/// Explains `output[target]` of `model` on the batch-1 `inputs` over one input.
///
/// CPU-bound and blocking (up to [`Limits`]' caps of model rows): call it on the blocking pool
/// with a [`Limits::deadline`]. Fails with [`TrustError::InvalidRequest`] for bad parameters or
/// a request past a cap (before any model run), with [`TrustError::Inference`] when the inputs
/// do not fit the model, with [`TrustError::DeadlineExceeded`] past the deadline.
///
/// ```no_run
/// # fn demo(model: &maas_runtime::inference::LoadedModel, inputs: Vec<maas_runtime::inference::RawTensor>)
/// # -> Result<(), maas_runtime::trust::TrustError> {
/// use maas_runtime::trust::{ExplainParams, Limits, Method, explain};
/// let params = ExplainParams { method: Method::KernelShap, seed: Some(7), ..ExplainParams::default() };
/// let explanation = explain(model, &inputs, &params, &Limits::default())?;
/// let body = serde_json::to_vec(&explanation).expect("serializable");
/// # Ok(()) }
/// ```
pub fn explain(
    model: &LoadedModel,
    inputs: &[RawTensor],
    params: &ExplainParams,
    limits: &Limits,
) -> Result<Explanation, TrustError> {
    let signature = model.signature();
    // The explained input.
    let explained = match &params.input {
        Some(name) => inputs.iter().position(|t| &t.name == name).ok_or_else(|| {
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            TrustError::invalid(format!("input {name:?} is not among the request's inputs {names:?}"))
        })?,
        None => {
            let first = signature.inputs.first().map(|s| s.name.as_str());
            inputs.iter().position(|t| Some(t.name.as_str()) == first).unwrap_or(0)
        }
    };
    let input = inputs.get(explained).ok_or_else(|| TrustError::invalid("the request has no inputs"))?;
    let elements = checked_elements(input)?;
    let spec = signature.inputs.iter().find(|s| s.name == input.name);
    if spec.is_some_and(|s| s.shape.first() == Some(&-1)) && input.shape.first() != Some(&1) {
        return Err(TrustError::invalid(format!(
            "an explanation is of one row (batch 1); input {:?} has shape {:?}",
            input.name, input.shape
        )));
    }
    if elements == 0 {
        return Err(TrustError::invalid(format!("input {:?} has no elements to explain", input.name)));
    }
    // The explained output.
    let output_ix = super::output_index(signature, params.output.as_deref())?;
    let output_name = signature.outputs[output_ix].name.clone();

    // Features and baseline.
    let features = features_of(input, params)?;
    let m = features.count();
    let baseline = baseline_bytes(input, elements, &params.baseline)?;

    // Caps, before any model run.
    let rows = match params.method {
        Method::Occlusion => {
            if m > limits.max_occlusion_features {
                return Err(TrustError::invalid(format!(
                    "occlusion of {m} features exceeds the limit of {}; use a larger patch",
                    limits.max_occlusion_features
                )));
            }
            m + 1
        }
        Method::KernelShap => {
            if m > limits.max_shap_features {
                return Err(TrustError::invalid(format!(
                    "kernel_shap over {m} features exceeds the limit of {}; use occlusion or a larger patch",
                    limits.max_shap_features
                )));
            }
            shap_samples(m, params.samples, limits)? + 1
        }
    };
    let row_elements: u64 = inputs.iter().map(|t| t.shape.iter().map(|&d| d as u64).product::<u64>()).sum();
    let total = row_elements.saturating_mul(rows as u64 + 1);
    if total > limits.max_total_elements {
        return Err(TrustError::invalid(format!(
            "this explanation would run {} rows of {row_elements} input elements ({total} in all), over the limit \
             of {}; use fewer samples or a larger patch",
            rows + 1,
            limits.max_total_elements
        )));
    }

    // The prediction on the input as given: validates the inputs, fixes the target.
    limits.check_deadline()?;
    let outputs = model.run(inputs.to_vec())?;
    let out = outputs.get(output_ix).ok_or_else(|| failed("the model returned fewer outputs than it declares"))?;
    let per_row = element_count_of(out)?;
    let target = match params.target {
        Some(t) if t < per_row => t,
        Some(t) => {
            return Err(TrustError::invalid(format!(
                "target {t} is out of range: output {output_name:?} has {per_row} elements per row"
            )));
        }
        None => argmax(out, per_row).ok_or_else(|| failed("the explained output is empty"))?,
    };
    let prediction = element_f64(out.datatype, &out.data, target);
    let batched = per_row > 0
        && out.shape.first() == Some(&1)
        && inputs.iter().all(|t| t.shape.first() == Some(&1))
        && signature.inputs.iter().all(|s| s.shape.first() == Some(&-1));
    let mut evaluator = Evaluator {
        model,
        inputs,
        explained,
        output_ix,
        target,
        per_row,
        batched,
        limits,
        rows_evaluated: 1,
        model_runs: 1,
    };
    let perturber = Perturber { baseline, size: input.datatype.size(), features: &features };

    let (baseline_prediction, attributions) = match params.method {
        Method::Occlusion => {
            let scores = evaluator.scores(m + 1, &|row, bytes| {
                if row == 0 {
                    (0..m).for_each(|f| perturber.mask(bytes, f));
                } else {
                    perturber.mask(bytes, row - 1);
                }
            })?;
            let mut data = vec![0f32; elements];
            for f in 0..m {
                let share = (prediction - scores[f + 1]) / features.size(f) as f64;
                features.for_each_element(f, |e| data[e] = share as f32);
            }
            (scores[0], data)
        }
        Method::KernelShap => {
            let samples = shap_samples(m, params.samples, limits)?;
            let mut rng = StdRng::seed_from_u64(params.seed.unwrap_or(0));
            let coalitions = if m > 1 { Coalitions::sample(m, samples, &mut rng) } else { Coalitions::default() };
            let scores = evaluator.scores(coalitions.len() + 1, &|row, bytes| {
                for f in 0..m {
                    if row == 0 || !coalitions.present(row - 1, f) {
                        perturber.mask(bytes, f);
                    }
                }
            })?;
            let phi = solve_shap(m, &coalitions, &scores[1..], scores[0], prediction)?;
            let mut data = vec![0f32; elements];
            for (f, value) in phi.iter().enumerate() {
                let share = value / features.size(f) as f64;
                features.for_each_element(f, |e| data[e] = share as f32);
            }
            (scores[0], data)
        }
    };
    Ok(Explanation {
        method: params.method,
        output: output_name,
        target,
        prediction: prediction as f32,
        baseline_prediction: baseline_prediction as f32,
        attributions: vec![Attribution {
            name: input.name.clone(),
            shape: input.shape.clone(),
            datatype: Datatype::Fp32,
            data: attributions,
            layout: features.layout().or(params.layout),
        }],
        features: m,
        rows_evaluated: evaluator.rows_evaluated,
        model_runs: evaluator.model_runs,
    })
}

fn failed(message: &str) -> TrustError {
    TrustError::Inference(InferenceError::Failed(message.to_string()))
}

fn element_count_of(tensor: &RawTensor) -> Result<usize, TrustError> {
    let n = super::element_count(&tensor.shape).ok_or_else(|| failed("output shape overflows"))?;
    if n.checked_mul(tensor.datatype.size()) != Some(tensor.data.len()) {
        return Err(failed("output bytes do not match its shape"));
    }
    Ok(n)
}

/// Index of the largest of the first `n` elements (NaN never wins).
fn argmax(tensor: &RawTensor, n: usize) -> Option<usize> {
    (0..n)
        .map(|i| (i, element_f64(tensor.datatype, &tensor.data, i)))
        .filter(|(_, v)| !v.is_nan())
        .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
        .or(if n > 0 { Some(0) } else { None })
}

/// The number of Kernel SHAP coalitions to evaluate for `m` features: as asked (default
/// `2·m + 2048`, at most [`Limits::max_samples`]), but never more than the `2^m − 2` coalitions
/// there are besides the empty and the full one.
fn shap_samples(m: usize, asked: Option<usize>, limits: &Limits) -> Result<usize, TrustError> {
    let samples = match asked {
        Some(0) => return Err(TrustError::invalid("samples must be at least 1")),
        Some(n) if n > limits.max_samples => {
            return Err(TrustError::invalid(format!("samples {n} exceeds the limit of {}", limits.max_samples)));
        }
        Some(n) => n,
        None => m.saturating_mul(2).saturating_add(2048).min(limits.max_samples),
    };
    let coalitions =
        u32::try_from(m).ok().and_then(|m| 1usize.checked_shl(m)).map_or(usize::MAX, |all| all.saturating_sub(2));
    Ok(samples.min(coalitions))
}

/// The baseline as bytes of the input's datatype, one element per input element.
fn baseline_bytes(input: &RawTensor, elements: usize, baseline: &Baseline) -> Result<Vec<u8>, TrustError> {
    let mut bytes = Vec::with_capacity(input.data.len());
    match baseline {
        Baseline::Zeros => (0..elements).for_each(|_| push_element(input.datatype, 0.0, &mut bytes)),
        Baseline::Mean => {
            let values = tensor_f32(input)?;
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / elements as f64;
            (0..elements).for_each(|_| push_element(input.datatype, mean as f32, &mut bytes));
        }
        Baseline::Values(values) => {
            if values.len() != elements {
                return Err(TrustError::invalid(format!(
                    "the baseline has {} values, input {:?} has {elements} elements",
                    values.len(),
                    input.name
                )));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(TrustError::invalid("baseline values must be finite numbers"));
            }
            values.iter().for_each(|&v| push_element(input.datatype, v, &mut bytes));
        }
    }
    Ok(bytes)
}

/// The units attributions are computed for.
#[derive(Debug)]
enum Features {
    /// Every element on its own.
    Elements(usize),
    /// `patch×patch` squares of an image, across all channels.
    Patches { layout: ImageLayout, dims: (usize, usize, usize), patch: usize, across: usize, down: usize },
}

fn features_of(input: &RawTensor, params: &ExplainParams) -> Result<Features, TrustError> {
    let elements = input.shape.iter().product();
    let Some(patch) = params.patch else { return Ok(Features::Elements(elements)) };
    if patch == 0 {
        return Err(TrustError::invalid("patch must be at least 1"));
    }
    let not_image = || {
        TrustError::invalid(format!(
            "patch needs an image-shaped input ([1,C,H,W] or [1,H,W,C]); input {:?} has shape {:?}",
            input.name, input.shape
        ))
    };
    let layout = match params.layout {
        Some(layout) => layout,
        None => ImageLayout::detect(&input.shape).ok_or_else(not_image)?,
    };
    let dims @ (_, h, w) = layout.dims(&input.shape).ok_or_else(not_image)?;
    Ok(Features::Patches { layout, dims, patch, across: w.div_ceil(patch), down: h.div_ceil(patch) })
}

impl Features {
    fn count(&self) -> usize {
        match *self {
            Features::Elements(n) => n,
            Features::Patches { across, down, .. } => across * down,
        }
    }

    fn layout(&self) -> Option<ImageLayout> {
        match *self {
            Features::Elements(_) => None,
            Features::Patches { layout, .. } => Some(layout),
        }
    }

    /// The pixel ranges `(y0..y1, x0..x1)` of patch `f`.
    fn patch_ranges(f: usize, patch: usize, across: usize, h: usize, w: usize) -> (usize, usize, usize, usize) {
        let (py, px) = (f / across, f % across);
        let (y0, x0) = (py * patch, px * patch);
        (y0, (y0 + patch).min(h), x0, (x0 + patch).min(w))
    }

    /// Number of elements of feature `f`.
    fn size(&self, f: usize) -> usize {
        match *self {
            Features::Elements(_) => 1,
            Features::Patches { dims: (c, h, w), patch, across, .. } => {
                let (y0, y1, x0, x1) = Self::patch_ranges(f, patch, across, h, w);
                c * (y1 - y0) * (x1 - x0)
            }
        }
    }

    /// Calls `g` with the index of every element of feature `f`.
    fn for_each_element(&self, f: usize, mut g: impl FnMut(usize)) {
        match *self {
            Features::Elements(_) => g(f),
            Features::Patches { layout, dims, patch, across, .. } => {
                let (c, h, w) = dims;
                let (y0, y1, x0, x1) = Self::patch_ranges(f, patch, across, h, w);
                for ch in 0..c {
                    for y in y0..y1 {
                        for x in x0..x1 {
                            g(layout.index(dims, ch, y, x));
                        }
                    }
                }
            }
        }
    }
}

/// Writes baseline elements over features of a copy of the explained input.
struct Perturber<'a> {
    baseline: Vec<u8>,
    size: usize,
    features: &'a Features,
}

impl Perturber<'_> {
    /// Replaces feature `f` of `row` (a copy of the original bytes) by the baseline.
    fn mask(&self, row: &mut [u8], f: usize) {
        let size = self.size;
        self.features.for_each_element(f, |e| {
            let range = e * size..(e + 1) * size;
            row[range.clone()].copy_from_slice(&self.baseline[range]);
        });
    }
}

/// Runs perturbed copies of the explained input through the model and reads the target score.
struct Evaluator<'a> {
    model: &'a LoadedModel,
    inputs: &'a [RawTensor],
    explained: usize,
    output_ix: usize,
    target: usize,
    /// Elements of the explained output per row.
    per_row: usize,
    /// Whether rows can be stacked along the first dimension.
    batched: bool,
    limits: &'a Limits,
    rows_evaluated: u64,
    model_runs: u64,
}

/// Fills one perturbed row, given its index and a copy of the original input bytes.
type Fill<'f> = dyn Fn(usize, &mut [u8]) + 'f;

impl Evaluator<'_> {
    /// The target score of rows `0..n`, row `i` being the input after `fill(i, ...)`.
    fn scores(&mut self, n: usize, fill: &Fill<'_>) -> Result<Vec<f64>, TrustError> {
        let mut scores = Vec::with_capacity(n);
        if self.batched {
            let row_elements: usize = self.inputs.iter().map(|t| t.shape.iter().product::<usize>()).sum();
            let cap =
                (self.limits.max_batch_elements / row_elements.max(1)).clamp(1, self.limits.max_batch_rows.max(1));
            let chunks = n.div_ceil(cap);
            let chunk = n.div_ceil(chunks.max(1)).max(1);
            let mut first = true;
            while scores.len() < n {
                self.limits.check_deadline()?;
                let start = scores.len();
                let end = (start + chunk).min(n);
                match self.run_batch(start, end, chunk, fill) {
                    Ok(Some(batch)) => scores.extend(batch),
                    // The model does not stack rows (or cannot run with this batch size):
                    // go row by row.
                    Ok(None) | Err(TrustError::Inference(InferenceError::InvalidInput(_))) if first => {
                        self.batched = false;
                        break;
                    }
                    Ok(None) => return Err(failed("the model's output lost its batch dimension")),
                    Err(e) => return Err(e),
                }
                first = false;
            }
        }
        while scores.len() < n {
            self.limits.check_deadline()?;
            let i = scores.len();
            let mut inputs = self.inputs.to_vec();
            fill(i, &mut inputs[self.explained].data);
            scores.push(self.run_one(inputs, 1)?[0]);
        }
        Ok(scores)
    }

    /// Rows `start..end` stacked into one batch of `size` rows (the last row repeated as
    /// padding). `None` when the output does not have one row per input row.
    fn run_batch(
        &mut self,
        start: usize,
        end: usize,
        size: usize,
        fill: &Fill<'_>,
    ) -> Result<Option<Vec<f64>>, TrustError> {
        let inputs = self
            .inputs
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut data = Vec::with_capacity(t.data.len() * size);
                for r in 0..size {
                    let offset = data.len();
                    data.extend_from_slice(&t.data);
                    if k == self.explained {
                        fill((start + r).min(end - 1), &mut data[offset..]);
                    }
                }
                let mut shape = t.shape.clone();
                shape[0] = size;
                RawTensor { name: t.name.clone(), datatype: t.datatype, shape, data }
            })
            .collect();
        let outputs = self.model.run(inputs)?;
        self.model_runs += 1;
        self.rows_evaluated += size as u64;
        let Some(out) = outputs.get(self.output_ix) else { return Ok(None) };
        if out.shape.first() != Some(&size) || element_count_of(out)? != size * self.per_row {
            return Ok(None);
        }
        Ok(Some(
            (0..end - start).map(|r| element_f64(out.datatype, &out.data, r * self.per_row + self.target)).collect(),
        ))
    }

    /// Runs one input set of `rows` rows and reads the target score of each row.
    fn run_one(&mut self, inputs: Vec<RawTensor>, rows: usize) -> Result<Vec<f64>, TrustError> {
        let outputs = self.model.run(inputs)?;
        self.model_runs += 1;
        self.rows_evaluated += rows as u64;
        let out = outputs.get(self.output_ix).ok_or_else(|| failed("the model returned fewer outputs"))?;
        if element_count_of(out)? != rows * self.per_row {
            return Err(failed("the model's output changed size between runs"));
        }
        Ok((0..rows).map(|r| element_f64(out.datatype, &out.data, r * self.per_row + self.target)).collect())
    }
}

/// Kernel SHAP coalitions (bitsets of present features) and their kernel weights.
#[derive(Debug, Default)]
struct Coalitions {
    words: usize,
    masks: Vec<u64>,
    weights: Vec<f64>,
}

impl Coalitions {
    fn len(&self) -> usize {
        self.weights.len()
    }

    fn present(&self, k: usize, f: usize) -> bool {
        self.masks[k * self.words + f / 64] >> (f % 64) & 1 == 1
    }

    fn push(&mut self, mask: &[u64], weight: f64) {
        self.masks.extend_from_slice(mask);
        self.weights.push(weight);
    }

    /// Coalitions for `m ≥ 2` features within a budget of `samples`, as the SHAP reference
    /// implementation chooses them (`KernelExplainer.explain`): subset sizes `s` and `m − s`
    /// enumerated whole, smallest first, while the budget covers them at their kernel weight;
    /// the rest sampled from the kernel restricted to the other sizes, each sample with its
    /// complement, duplicates merged into their weight.
    fn sample(m: usize, samples: usize, rng: &mut StdRng) -> Coalitions {
        let words = m.div_ceil(64);
        let mut out = Coalitions { words, ..Coalitions::default() };
        let sizes = m / 2; // ceil((m − 1) / 2)
        let paired = (m - 1) / 2;
        let mut weight_vector: Vec<f64> = (1..=sizes)
            .map(|s| {
                let w = (m - 1) as f64 / (s * (m - s)) as f64;
                if s <= paired { 2.0 * w } else { w }
            })
            .collect();
        let sum: f64 = weight_vector.iter().sum();
        weight_vector.iter_mut().for_each(|w| *w /= sum);

        let mut left = samples as f64;
        let mut remaining = weight_vector.clone();
        let mut full = 0;
        let mut mask = vec![0u64; words];
        for s in 1..=sizes {
            let subsets = binomial(m, s) * if s <= paired { 2.0 } else { 1.0 };
            if left * remaining[s - 1] / subsets < 1.0 - 1e-8 {
                break;
            }
            full += 1;
            left -= subsets;
            if remaining[s - 1] < 1.0 {
                let scale = 1.0 - remaining[s - 1];
                remaining.iter_mut().for_each(|w| *w /= scale);
            }
            let mut weight = weight_vector[s - 1] / binomial(m, s);
            if s <= paired {
                weight /= 2.0;
            }
            let mut combination: Vec<usize> = (0..s).collect();
            loop {
                mask.fill(0);
                combination.iter().for_each(|&f| mask[f / 64] |= 1 << (f % 64));
                out.push(&mask, weight);
                if s <= paired {
                    complement(&mut mask, m);
                    out.push(&mask, weight);
                }
                if !next_combination(&mut combination, m) {
                    break;
                }
            }
        }
        let fixed = out.len();
        let mut left = samples.saturating_sub(fixed);
        if full < sizes && left > 0 {
            let mut remaining: Vec<f64> = weight_vector
                .iter()
                .enumerate()
                .skip(full)
                .map(|(i, &w)| if i < paired { w / 2.0 } else { w })
                .collect();
            let sum: f64 = remaining.iter().sum();
            remaining.iter_mut().for_each(|w| *w /= sum);
            // Each drawn mask → its index and its complement's, when one was added.
            let mut seen: HashMap<Vec<u64>, (usize, Option<usize>)> = HashMap::new();
            let mut draws = 4 * left;
            while left > 0 && draws > 0 {
                draws -= 1;
                let size = full + 1 + pick(&remaining, rng);
                mask.fill(0);
                rand::seq::index::sample(rng, m, size).iter().for_each(|f| mask[f / 64] |= 1 << (f % 64));
                let with_complement = size <= paired;
                match seen.get(&mask) {
                    Some(&(k, other)) => {
                        out.weights[k] += 1.0;
                        if let Some(other) = other {
                            out.weights[other] += 1.0;
                        }
                    }
                    None => {
                        let k = out.len();
                        out.push(&mask, 1.0);
                        left -= 1;
                        let mut other = None;
                        if with_complement && left > 0 {
                            let drawn = mask.clone();
                            complement(&mut mask, m);
                            other = Some(out.len());
                            out.push(&mask, 1.0);
                            left -= 1;
                            mask = drawn;
                        }
                        seen.insert(mask.clone(), (k, other));
                    }
                }
            }
            let weight_left: f64 = weight_vector[full..].iter().sum();
            let drawn: f64 = out.weights[fixed..].iter().sum();
            if drawn > 0.0 {
                out.weights[fixed..].iter_mut().for_each(|w| *w *= weight_left / drawn);
            }
        }
        out
    }
}

/// `n choose k` as a float (exact below 2⁵³, close enough above for budget comparisons).
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Flips the first `m` bits of `mask`.
fn complement(mask: &mut [u64], m: usize) {
    for (i, word) in mask.iter_mut().enumerate() {
        let bits = (m - i * 64).min(64);
        let valid = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        *word = !*word & valid;
    }
}

/// Advances `c` (strictly increasing indices below `n`) to the next combination in
/// lexicographic order; `false` after the last one.
fn next_combination(c: &mut [usize], n: usize) -> bool {
    let k = c.len();
    let Some(i) = (0..k).rev().find(|&i| c[i] < n - k + i) else { return false };
    c[i] += 1;
    for j in i + 1..k {
        c[j] = c[j - 1] + 1;
    }
    true
}

/// An index drawn with probability proportional to `weights` (which sum to 1).
fn pick(weights: &[f64], rng: &mut StdRng) -> usize {
    let mut u: f64 = rng.random();
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Kernel SHAP's constrained weighted least squares.
///
/// Fits `f(z) − f(∅) ≈ Σ φⱼ zⱼ` over the coalitions with their weights, subject to
/// `Σ φⱼ = f(full) − f(∅)`, by eliminating the last feature (as the SHAP reference does):
/// `φ_last = total − Σ_{j<last} φⱼ`, so the regressors become `zⱼ − z_last` and the target
/// `f(z) − f(∅) − z_last · total`. The normal equations are solved by Cholesky with a tiny
/// ridge (relative `1e-9` of the mean diagonal), enough to make the system positive definite
/// when there are fewer coalitions than features while leaving well-posed fits unchanged.
fn solve_shap(
    m: usize,
    coalitions: &Coalitions,
    scores: &[f64],
    empty: f64,
    full: f64,
) -> Result<Vec<f64>, TrustError> {
    let total = full - empty;
    if m == 1 {
        return Ok(vec![total]);
    }
    let n = m - 1;
    let mut a = vec![0f64; n * n];
    let mut b = vec![0f64; n];
    let mut set = Vec::with_capacity(n);
    for (k, (&weight, &score)) in coalitions.weights.iter().zip(scores).enumerate() {
        let last = coalitions.present(k, n);
        // Regressors: zⱼ − z_last ∈ {0, ±1}; nonzero on `set` with `sign`.
        set.clear();
        set.extend((0..n).filter(|&j| coalitions.present(k, j) != last));
        let sign = if last { -1.0 } else { 1.0 };
        let y = score - empty - if last { total } else { 0.0 };
        for &i in &set {
            b[i] += weight * sign * y;
            let row = &mut a[i * n..(i + 1) * n];
            for &j in &set {
                row[j] += weight;
            }
        }
    }
    let mean_diagonal = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
    let mut ridge = 1e-9 * mean_diagonal.max(f64::MIN_POSITIVE);
    for _ in 0..6 {
        if let Some(mut phi) = cholesky_solve(&a, &b, n, ridge) {
            let rest: f64 = phi.iter().sum();
            phi.push(total - rest);
            if phi.iter().all(|v| v.is_finite()) {
                return Ok(phi);
            }
        }
        ridge *= 1000.0;
    }
    Err(failed("the Kernel SHAP fit did not converge (scores not finite?)"))
}

/// Solves `(A + ridge·I) x = b` for a symmetric `n × n` `A` by Cholesky; `None` when the
/// matrix is not numerically positive definite.
fn cholesky_solve(a: &[f64], b: &[f64], n: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j] + if i == j { ridge } else { 0.0 };
            sum -= (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if sum.is_nan() || sum <= 0.0 {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut y = vec![0f64; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests;
