//! Features: the units attributions are computed for (elements, or patches of an image), the
//! baseline an absent feature takes, and writing it over a copy of the input.

use maas_types::{Baseline, ExplainParams, ImageLayout};

use super::super::{LayoutIndex, TrustError, push_element, tensor_f32};
use crate::inference::RawTensor;

/// The baseline as bytes of the input's datatype, one element per input element.
pub(super) fn baseline_bytes(input: &RawTensor, elements: usize, baseline: &Baseline) -> Result<Vec<u8>, TrustError> {
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
pub(super) enum Features {
    /// Every element on its own.
    Elements(usize),
    /// `patch×patch` squares of an image, across all channels.
    Patches { layout: ImageLayout, dims: (usize, usize, usize), patch: usize, across: usize, down: usize },
}

pub(super) fn features_of(input: &RawTensor, params: &ExplainParams) -> Result<Features, TrustError> {
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
    pub(super) fn count(&self) -> usize {
        match *self {
            Features::Elements(n) => n,
            Features::Patches { across, down, .. } => across * down,
        }
    }

    pub(super) fn layout(&self) -> Option<ImageLayout> {
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
    pub(super) fn size(&self, f: usize) -> usize {
        match *self {
            Features::Elements(_) => 1,
            Features::Patches { dims: (c, h, w), patch, across, .. } => {
                let (y0, y1, x0, x1) = Self::patch_ranges(f, patch, across, h, w);
                c * (y1 - y0) * (x1 - x0)
            }
        }
    }

    /// Calls `g` with the index of every element of feature `f`.
    pub(super) fn for_each_element(&self, f: usize, mut g: impl FnMut(usize)) {
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
pub(super) struct Perturber<'a> {
    pub(super) baseline: Vec<u8>,
    pub(super) size: usize,
    pub(super) features: &'a Features,
}

impl Perturber<'_> {
    /// Replaces feature `f` of `row` (a copy of the original bytes) by the baseline.
    pub(super) fn mask(&self, row: &mut [u8], f: usize) {
        let size = self.size;
        self.features.for_each_element(f, |e| {
            let range = e * size..(e + 1) * size;
            row[range.clone()].copy_from_slice(&self.baseline[range]);
        });
    }
}
