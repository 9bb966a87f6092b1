//! Trust: explanations, fairness audits and attribution heatmaps, as pure computations over a
//! [`LoadedModel`](crate::inference::LoadedModel) and tensors.
//!
//! Nothing here speaks HTTP or touches the registry: the handlers of
//! `POST .../explain` and `POST .../audit` parse the request (the wire types of `maas-types`:
//! `ExplainParams`, `FairnessRequest`), load the model, call these functions on the bounded pool
//! (every call here runs the model, possibly thousands of rows, and blocks), meter what they
//! report, and the API turns [`TrustError`] into the contract's JSON error.
//!
//! - [`explain`](mod@explain): attributions of one input for one output score, by occlusion or Kernel
//!   SHAP ([`explain::explain`]), split into features, evaluation and SHAP;
//! - [`fairness`]: group fairness figures of a batch of decisions in the Fairlearn/AIF360
//!   vocabulary ([`fairness::audit`]), and the favorable decision of each row from a model's
//!   outputs ([`fairness::favorable_decisions`]);
//! - [`heatmap`]: a PNG of an image-shaped input's attributions ([`heatmap::render_png`]).
//!
//! Everything is computed in FP32 (scores and solver sums in FP64): inputs of other numeric
//! datatypes are read as `f32` for their mean and their picture, and the baseline values put
//! into a perturbed input are converted to the input's datatype (rounded and saturated for
//! integers, `!= 0` for booleans); the elements that are not perturbed keep their exact bytes.
//!
//! Cost is bounded by [`Limits`]: a request past a cap fails *before* any model run with
//! [`TrustError::InvalidRequest`] naming the cap.

pub mod explain;
pub mod fairness;
pub mod heatmap;

use std::time::Instant;

use maas_types::ImageLayout;
use tract_onnx::prelude::f16;

use crate::inference::{Datatype, InferenceError, RawTensor, Signature};

pub use explain::{Explained, explain};
pub use fairness::{Decisions, audit, favorable_decisions};
pub use heatmap::{HeatmapMode, HeatmapOptions, render_png};

/// The index of output `name` in `signature` (the first output when `None`), or a 400 that
/// lists the outputs.
pub(crate) fn output_index(signature: &Signature, name: Option<&str>) -> Result<usize, TrustError> {
    match name {
        Some(name) => signature.outputs.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = signature.outputs.iter().map(|s| s.name.as_str()).collect();
            TrustError::invalid(format!("the model has no output {name:?}; its outputs are {names:?}"))
        }),
        None if signature.outputs.is_empty() => Err(TrustError::invalid("the model has no outputs")),
        None => Ok(0),
    }
}

/// Why an explanation, an audit or a heatmap could not be made.
///
/// Suggested HTTP mapping (in `error.rs`): `InvalidRequest` → `400 invalid_request` with the
/// message; `Inference` → the existing `From<InferenceError> for ApiError` (`invalid_input`,
/// `invalid_model`, `internal`); `DeadlineExceeded` → `504 function_timeout`; `Internal` →
/// `500 internal` (logged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The request cannot be served as asked: a parameter out of range, a cap exceeded, an
    /// unknown input or output name, mismatched lengths. The message says which, for a person.
    #[error("{0}")]
    InvalidRequest(String),
    /// Running the model failed: the inputs do not fit its signature, or the run itself failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// The caller's deadline ([`Limits::deadline`]) passed between two model runs.
    #[error("the explanation did not finish before its deadline; ask for fewer samples or larger patches")]
    DeadlineExceeded,
    /// A fault of ours (the PNG encoder failed); not the caller's doing.
    #[error("{0}")]
    Internal(String),
}

impl TrustError {
    /// Shorthand for [`TrustError::InvalidRequest`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }
}

/// Caps on the work one explanation or audit may cause, and its deadline.
///
/// The defaults keep one request within seconds to a minute of CPU for models of the seed
/// models' size; the handler may lower them per tenant (e.g. from `max_timeout_ms`) and should
/// set [`deadline`](Self::deadline).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most Kernel SHAP coalitions (`samples`) one explanation may ask for. Default 10 000.
    pub max_samples: usize,
    /// Most features (elements, or patches for image inputs) Kernel SHAP may explain: its
    /// solver costs `samples × features²`. Default 512.
    pub max_shap_features: usize,
    /// Most features occlusion may explain (one model row each). Default 100 000.
    pub max_occlusion_features: usize,
    /// Most input elements all perturbed rows of one explanation may carry in total
    /// (rows × elements of every input): bounds copying and model work for large inputs.
    /// Default 2³⁰.
    pub max_total_elements: u64,
    /// Most rows in one batched model run. Default 256.
    pub max_batch_rows: usize,
    /// Most input elements (over all inputs) in one batched model run: bounds the memory of
    /// one batch. Default 2²² (16 MiB of FP32).
    pub max_batch_elements: usize,
    /// Most rows one audit may decide. Default 100 000.
    pub max_audit_rows: usize,
    /// When set, work stops with [`TrustError::DeadlineExceeded`] at the first check after it
    /// (checks happen between model runs: a tract run cannot be interrupted).
    pub deadline: Option<Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_samples: 10_000,
            max_shap_features: 512,
            max_occlusion_features: 100_000,
            max_total_elements: 1 << 30,
            max_batch_rows: 256,
            max_batch_elements: 1 << 22,
            max_audit_rows: 100_000,
            deadline: None,
        }
    }
}

impl Limits {
    /// Fails with [`TrustError::DeadlineExceeded`] once the deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<(), TrustError> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(TrustError::DeadlineExceeded),
            _ => Ok(()),
        }
    }
}

/// Where element `(channel, y, x)` is in an image of a layout.
pub(crate) trait LayoutIndex {
    /// Row-major index of channel `ch` of pixel `(y, x)` in an image of `c × h × w`.
    fn index(self, dims: (usize, usize, usize), ch: usize, y: usize, x: usize) -> usize;
}

impl LayoutIndex for ImageLayout {
    fn index(self, (c, h, w): (usize, usize, usize), ch: usize, y: usize, x: usize) -> usize {
        match self {
            ImageLayout::Nchw => (ch * h + y) * w + x,
            ImageLayout::Nhwc => (y * w + x) * c + ch,
        }
    }
}

/// Number of elements of a shape, `None` on overflow.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Checks that a tensor's byte count fits its shape and datatype; returns the element count.
pub(crate) fn checked_elements(tensor: &RawTensor) -> Result<usize, TrustError> {
    let elements = element_count(&tensor.shape);
    let bytes = elements.and_then(|n| n.checked_mul(tensor.datatype.size()));
    match (elements, bytes) {
        (Some(n), Some(b)) if b == tensor.data.len() => Ok(n),
        _ => Err(TrustError::invalid(format!(
            "input {:?}: shape {:?} of {} does not match its {} bytes of data",
            tensor.name,
            tensor.shape,
            tensor.datatype,
            tensor.data.len()
        ))),
    }
}

/// Element `i` of little-endian `data` of `datatype`, as `f64`. The caller checked the length.
pub(crate) fn element_f64(datatype: Datatype, data: &[u8], i: usize) -> f64 {
    let size = datatype.size();
    let b = &data[i * size..(i + 1) * size];
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(b);
    match datatype {
        Datatype::Bool => f64::from(u8::from(b[0] != 0)),
        Datatype::Uint8 => f64::from(b[0]),
        Datatype::Int8 => f64::from(b[0] as i8),
        Datatype::Uint16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
        Datatype::Int16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
        Datatype::Fp16 => f64::from(f16::from_le_bytes([b[0], b[1]]).to_f32()),
        Datatype::Uint32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Datatype::Int32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Datatype::Fp32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Datatype::Uint64 => u64::from_le_bytes(buf) as f64,
        Datatype::Int64 => i64::from_le_bytes(buf) as f64,
        Datatype::Fp64 => f64::from_le_bytes(buf),
    }
}

/// Every element of a tensor as `f32` (integers and FP64 rounded to the nearest `f32`).
///
/// Fails with [`TrustError::InvalidRequest`] when the bytes do not fit the shape.
pub fn tensor_f32(tensor: &RawTensor) -> Result<Vec<f32>, TrustError> {
    let n = checked_elements(tensor)?;
    Ok((0..n).map(|i| element_f64(tensor.datatype, &tensor.data, i) as f32).collect())
}

/// Appends `value` to `out` as one little-endian element of `datatype`: floats converted,
/// integers rounded to the nearest and saturated at the type's range (NaN → 0), booleans
/// `true` unless the value rounds to 0.
pub(crate) fn push_element(datatype: Datatype, value: f32, out: &mut Vec<u8>) {
    let r = value.round();
    match datatype {
        Datatype::Bool => out.push(u8::from(r != 0.0 && !r.is_nan())),
        Datatype::Uint8 => out.push(r as u8),
        Datatype::Int8 => out.extend_from_slice(&(r as i8).to_le_bytes()),
        Datatype::Uint16 => out.extend_from_slice(&(r as u16).to_le_bytes()),
        Datatype::Int16 => out.extend_from_slice(&(r as i16).to_le_bytes()),
        Datatype::Uint32 => out.extend_from_slice(&(r as u32).to_le_bytes()),
        Datatype::Int32 => out.extend_from_slice(&(r as i32).to_le_bytes()),
        Datatype::Uint64 => out.extend_from_slice(&(r as u64).to_le_bytes()),
        Datatype::Int64 => out.extend_from_slice(&(r as i64).to_le_bytes()),
        Datatype::Fp16 => out.extend_from_slice(&f16::from_f32(value).to_le_bytes()),
        Datatype::Fp32 => out.extend_from_slice(&value.to_le_bytes()),
        Datatype::Fp64 => out.extend_from_slice(&f64::from(value).to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(datatype: Datatype, shape: &[usize], data: Vec<u8>) -> RawTensor {
        RawTensor { name: "x".into(), datatype, shape: shape.to_vec(), data }
    }

    #[test]
    fn elements_convert_both_ways() {
        for dt in Datatype::ALL {
            let mut bytes = Vec::new();
            for v in [0.0f32, 1.0, 2.6, -3.0, 100.0] {
                push_element(dt, v, &mut bytes);
            }
            let values = tensor_f32(&raw(dt, &[5], bytes)).unwrap();
            let expected: Vec<f32> = match dt {
                Datatype::Bool => vec![0.0, 1.0, 1.0, 1.0, 1.0],
                Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64 => {
                    vec![0.0, 1.0, 3.0, 0.0, 100.0]
                }
                Datatype::Int8 | Datatype::Int16 | Datatype::Int32 | Datatype::Int64 => {
                    vec![0.0, 1.0, 3.0, -3.0, 100.0]
                }
                Datatype::Fp16 => vec![0.0, 1.0, f16::from_f32(2.6).to_f32(), -3.0, 100.0],
                Datatype::Fp32 | Datatype::Fp64 => vec![0.0, 1.0, 2.6, -3.0, 100.0],
            };
            assert_eq!(values, expected, "{dt}");
        }
        let mut bytes = Vec::new();
        push_element(Datatype::Int8, 1000.0, &mut bytes);
        push_element(Datatype::Int8, f32::NAN, &mut bytes);
        assert_eq!(bytes, vec![127, 0]);
    }

    #[test]
    fn mismatched_bytes_are_refused() {
        let err = tensor_f32(&raw(Datatype::Fp32, &[2, 2], vec![0; 12])).unwrap_err();
        assert!(matches!(err, TrustError::InvalidRequest(ref m) if m.contains("12 bytes")), "{err}");
        assert!(tensor_f32(&raw(Datatype::Fp32, &[usize::MAX, 2], vec![])).is_err());
    }

    #[test]
    fn image_layouts_index_their_elements() {
        let dims = (3, 4, 5);
        assert_eq!(ImageLayout::Nchw.index(dims, 2, 3, 4), 59);
        assert_eq!(ImageLayout::Nhwc.index(dims, 2, 3, 4), 59);
        assert_eq!(ImageLayout::Nhwc.index(dims, 0, 0, 1), 3);
    }
}
