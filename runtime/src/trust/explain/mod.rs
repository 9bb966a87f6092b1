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
//! otherwise one run per perturbed input. [`Explained::rows_evaluated`] and
//! [`Explained::model_runs`] report the work, for metering.
//!
//! The request's parameters and the answer are the wire types of `maas-types`
//! ([`ExplainParams`], [`Explanation`]); here are the computation, in parts: [`features`]
//! (what a feature is, the baseline, perturbing), [`evaluate`] (running perturbed rows, batched
//! when the model stacks rows) and [`shap`] (Kernel SHAP's coalitions and weighted least
//! squares).

mod evaluate;
mod features;
mod shap;

use maas_types::{Attribution, Datatype, ExplainParams, Explanation, ImageLayout, Method};
use rand::SeedableRng;
use rand::rngs::StdRng;

use self::evaluate::Evaluator;
use self::features::{Perturber, baseline_bytes, features_of};
use self::shap::{Coalitions, shap_samples, solve_shap};
use super::heatmap::{HeatmapOptions, render_png};
use super::{Limits, TrustError, checked_elements, element_count, element_f64, output_index};
use crate::inference::{InferenceError, LoadedModel, RawTensor};

/// An explanation and what it took: the contract's answer, plus the image layout used for
/// patches (for the heatmap) and the work done (for metering).
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The answer.
    pub explanation: Explanation,
    /// The image layout patches were cut in, if any.
    pub layout: Option<ImageLayout>,
    /// Number of features (elements or patches) explained.
    pub features: usize,
    /// Rows the model evaluated, padding included: what to meter.
    pub rows_evaluated: u64,
    /// Number of model runs (batches or single rows).
    pub model_runs: u64,
}

impl Explained {
    /// The PNG heatmap of the (first) attribution over its input, for `Accept: image/png`.
    /// `inputs` are the request's inputs; fails with [`TrustError::InvalidRequest`] when the
    /// explained input is not image-shaped.
    pub fn heatmap(&self, inputs: &[RawTensor], options: &HeatmapOptions) -> Result<Vec<u8>, TrustError> {
        let attribution = self
            .explanation
            .attributions
            .first()
            .ok_or_else(|| TrustError::Internal("an explanation without attributions".into()))?;
        let image = inputs.iter().find(|t| t.name == attribution.name);
        let mut options = options.clone();
        options.layout = options.layout.or(self.layout);
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
/// use maas_runtime::trust::{Limits, explain};
/// use maas_types::{ExplainParams, Method};
/// let params = ExplainParams { method: Method::KernelShap, seed: Some(7), ..ExplainParams::default() };
/// let explained = explain(model, &inputs, &params, &Limits::default())?;
/// let body = serde_json::to_vec(&explained.explanation).expect("serializable");
/// # Ok(()) }
/// ```
pub fn explain(
    model: &LoadedModel,
    inputs: &[RawTensor],
    params: &ExplainParams,
    limits: &Limits,
) -> Result<Explained, TrustError> {
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
    let output_ix = output_index(signature, params.output.as_deref())?;
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
    Ok(Explained {
        explanation: Explanation {
            method: params.method,
            output: output_name,
            target,
            prediction: prediction as f32,
            baseline_prediction: baseline_prediction as f32,
            attributions: vec![Attribution {
                name: input.name.clone(),
                shape: input.shape.iter().map(|&d| d as u64).collect(),
                datatype: Datatype::Fp32,
                data: attributions,
            }],
        },
        layout: features.layout().or(params.layout),
        features: m,
        rows_evaluated: evaluator.rows_evaluated,
        model_runs: evaluator.model_runs,
    })
}

pub(super) fn failed(message: &str) -> TrustError {
    TrustError::Inference(InferenceError::Failed(message.to_string()))
}

pub(super) fn element_count_of(tensor: &RawTensor) -> Result<usize, TrustError> {
    let n = element_count(&tensor.shape).ok_or_else(|| failed("output shape overflows"))?;
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

#[cfg(test)]
mod tests;
