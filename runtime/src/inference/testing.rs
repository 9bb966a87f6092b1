//! Test helpers: the models of `maas-fixtures` loaded as [`LoadedModel`]s, and tensors.

pub use maas_fixtures::Dim;

use super::{Datatype, LoadedModel, RawTensor};

fn load(bytes: Vec<u8>) -> LoadedModel {
    LoadedModel::load(&bytes, u64::MAX).expect("a fixture model loads")
}

/// `y = x·w + b`: input `x` FP32 `[batch, n]`, output `y` FP32 `[batch, 1]`.
pub fn linear(weights: &[f32], bias: f32, batch: Dim) -> LoadedModel {
    load(maas_fixtures::linear_with_batch(weights, bias, batch))
}

/// `y = float(x)·w + b` with an INT64 input `x` `[N, n]`.
pub fn int_linear(weights: &[f32], bias: f32) -> LoadedModel {
    load(maas_fixtures::int_linear(weights, bias))
}

/// Two inputs: `y = a·wa + c·wc`, `a` and `c` FP32 `[N, n]`.
pub fn two_inputs(wa: &[f32], wc: &[f32]) -> LoadedModel {
    load(maas_fixtures::two_inputs(wa, wc))
}

/// The seed MLP with a batch dimension: `input` FP32 `[N, 100]` → `output` FP32 `[N, 10]`.
pub fn mlp_batch(seed: u64) -> LoadedModel {
    load(maas_fixtures::mlp_batch(seed))
}

/// Dense layers `sizes[0] → … → sizes[last]`: `input` FP32 `[N, sizes[0]]` → `output`.
pub fn mlp(seed: u64, sizes: &[usize]) -> LoadedModel {
    load(maas_fixtures::dense(seed, sizes))
}

/// A two-class linear image classifier, `[N, c, h, w]` (or NHWC) → `logits` `[N, 2]`.
pub fn image_linear(c: usize, h: usize, w: usize, nhwc: bool, weights: &[f32]) -> LoadedModel {
    load(maas_fixtures::image_logits(c, h, w, nhwc, weights))
}

/// An FP32 tensor.
pub fn f32_tensor(name: &str, shape: &[usize], data: &[f32]) -> RawTensor {
    RawTensor {
        name: name.into(),
        datatype: Datatype::Fp32,
        shape: shape.to_vec(),
        data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Reproducible values uniform in `[-1, 1)`.
pub fn seeded(seed: u64, n: usize) -> Vec<f32> {
    maas_fixtures::seeded_input(seed, &[n])
}
