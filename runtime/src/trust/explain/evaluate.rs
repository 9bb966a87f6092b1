//! Evaluation: perturbed copies of the explained input through the model, the target score of
//! each. Rows are stacked into batches when the model keeps rows apart (the same row stacking
//! dynamic batching uses, [`RawTensor::stacked`]), else run one by one.

use super::super::{Limits, TrustError, element_f64};
use super::{element_count_of, failed};
use crate::inference::{InferenceError, LoadedModel, RawTensor};

/// Runs perturbed copies of the explained input through the model and reads the target score.
pub(super) struct Evaluator<'a> {
    pub(super) model: &'a LoadedModel,
    pub(super) inputs: &'a [RawTensor],
    pub(super) explained: usize,
    pub(super) output_ix: usize,
    pub(super) target: usize,
    /// Elements of the explained output per row.
    pub(super) per_row: usize,
    /// Whether rows can be stacked along the first dimension.
    pub(super) batched: bool,
    pub(super) limits: &'a Limits,
    pub(super) rows_evaluated: u64,
    pub(super) model_runs: u64,
}

/// Fills one perturbed row, given its index and a copy of the original input bytes.
pub(super) type Fill<'f> = dyn Fn(usize, &mut [u8]) + 'f;

impl Evaluator<'_> {
    /// The target score of rows `0..n`, row `i` being the input after `fill(i, ...)`.
    pub(super) fn scores(&mut self, n: usize, fill: &Fill<'_>) -> Result<Vec<f64>, TrustError> {
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
                let mut stacked = t.stacked(size, std::iter::repeat_n(&t.data[..], size));
                if k == self.explained {
                    let row = t.data.len();
                    for (r, bytes) in stacked.data.chunks_mut(row.max(1)).enumerate() {
                        fill((start + r).min(end - 1), bytes);
                    }
                }
                stacked
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
