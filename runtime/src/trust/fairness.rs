//! Group fairness of a model's decisions, in the Fairlearn/AIF360 vocabulary.
//!
//! An audit takes one decision per row (favorable or not), the row's group (the value of a
//! protected attribute) and optionally its true label (1 = deserved the favorable outcome), and
//! reports per group the count, the selection rate and, with labels, the true and false
//! positive rates; overall, for the *worst* unprivileged group against the *reference* group:
//!
//! | figure | definition (g: unprivileged group, r: reference) | parity |
//! |---|---|---|
//! | `statistical_parity_difference` | `SR_g − SR_r` | 0 |
//! | `disparate_impact_ratio` | `SR_g / SR_r` | 1 |
//! | `equal_opportunity_difference` | `TPR_g − TPR_r` | 0 |
//! | `average_odds_difference` | `½[(FPR_g − FPR_r) + (TPR_g − TPR_r)]` | 0 |
//! | `passes_four_fifths_rule` | every group's SR ≥ ⅘ of the highest SR (EEOC) | true |
//!
//! **Reference group.** Unless the caller names one, the reference is the group with the
//! highest selection rate (ties: the larger group, then the first name in byte order). That is
//! the comparison the four-fifths rule makes and AIF360's "privileged group" stands for; with
//! it every difference is ≤ 0 and every ratio ≤ 1 for the selection rate, so the reported
//! `disparate_impact_ratio` is the classic adverse-impact ratio (lowest rate / highest rate).
//!
//! **Worst group.** Each figure is reported for the unprivileged group farthest from parity:
//! the largest `|difference|` (a negative one on ties), the ratio farthest from 1 in
//! proportion (`|ln ratio|`, a ratio below 1 on ties). Groups for which a figure is undefined
//! are skipped for that figure.
//!
//! **Undefined values.** A group without positive labels has `tpr: null`, without negative
//! labels `fpr: null`; a figure with no defined value for any unprivileged group is `null`.
//! When the reference's selection rate is 0, the ratio of a group that is also never selected
//! is 1 (both never selected: parity), of a group that is selected `null` (unbounded). With a
//! single group there is nothing to compare: differences 0, ratio 1. Without labels the label
//! figures are left out of the JSON.
//!
//! `passes_four_fifths_rule` is computed from the counts in exact integer arithmetic, on all
//! groups, whatever the reference; with the default reference it equals
//! `disparate_impact_ratio ≥ 0.8`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use maas_types::{FairnessReport, Favorable, FavorableRule, GroupMetrics};

use super::{Limits, TrustError, checked_elements, element_f64};
use crate::inference::{LoadedModel, RawTensor};

/// Counts of one group.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    count: u64,
    selected: u64,
    tp: u64,
    fn_: u64,
    fp: u64,
    tn: u64,
}

impl Counts {
    fn selection_rate(&self) -> f64 {
        self.selected as f64 / self.count as f64
    }

    fn tpr(&self) -> Option<f64> {
        let positives = self.tp + self.fn_;
        (positives > 0).then(|| self.tp as f64 / positives as f64)
    }

    fn fpr(&self) -> Option<f64> {
        let negatives = self.fp + self.tn;
        (negatives > 0).then(|| self.fp as f64 / negatives as f64)
    }

    /// Compares selection rates exactly: `selected_a / count_a` vs `selected_b / count_b`.
    fn cmp_rate(&self, other: &Counts) -> Ordering {
        (u128::from(self.selected) * u128::from(other.count))
            .cmp(&(u128::from(other.selected) * u128::from(self.count)))
    }
}

/// Fairness figures of `decisions` (one per row, `true` = favorable) across `groups` (one per
/// row), with optional `labels` (one per row, `true` = positive) and `reference_group`.
///
/// Fails with [`TrustError::InvalidRequest`] on mismatched lengths, no rows, or a reference
/// group that does not occur. See the module documentation for the definitions.
///
/// ```
/// use maas_runtime::trust::fairness::audit;
/// let groups: Vec<String> = ["a", "a", "b", "b"].iter().map(|s| s.to_string()).collect();
/// let report = audit(&[true, true, true, false], &groups, None, None).unwrap();
/// assert_eq!(report.reference_group, "a");
/// assert_eq!(report.disparate_impact_ratio, Some(0.5));
/// assert!(!report.passes_four_fifths_rule);
/// ```
pub fn audit(
    decisions: &[bool],
    groups: &[String],
    labels: Option<&[bool]>,
    reference_group: Option<&str>,
) -> Result<FairnessReport, TrustError> {
    if decisions.is_empty() {
        return Err(TrustError::invalid("an audit needs at least one row"));
    }
    if groups.len() != decisions.len() {
        return Err(TrustError::invalid(format!(
            "groups has {} values for {} rows of decisions",
            groups.len(),
            decisions.len()
        )));
    }
    if let Some(labels) = labels
        && labels.len() != decisions.len()
    {
        return Err(TrustError::invalid(format!(
            "labels has {} values for {} rows of decisions",
            labels.len(),
            decisions.len()
        )));
    }
    let mut counts: BTreeMap<&str, Counts> = BTreeMap::new();
    for (row, (&decision, group)) in decisions.iter().zip(groups).enumerate() {
        let c = counts.entry(group.as_str()).or_default();
        c.count += 1;
        c.selected += u64::from(decision);
        if let Some(labels) = labels {
            match (labels[row], decision) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
    }
    let reference = match reference_group {
        Some(name) => {
            if !counts.contains_key(name) {
                let known: Vec<&str> = counts.keys().take(20).copied().collect();
                return Err(TrustError::invalid(format!(
                    "reference_group {name:?} does not occur in groups (values: {known:?}{})",
                    if counts.len() > 20 { ", ..." } else { "" }
                )));
            }
            name
        }
        // Highest selection rate; ties: larger count, then the first name.
        None => {
            let mut best: Option<(&str, &Counts)> = None;
            for (&name, c) in &counts {
                let better = match best {
                    None => true,
                    Some((_, b)) => c.cmp_rate(b).then(c.count.cmp(&b.count)) == Ordering::Greater,
                };
                if better {
                    best = Some((name, c));
                }
            }
            best.map(|(name, _)| name).unwrap_or_default()
        }
    };
    let r = counts[reference];
    let others: Vec<&Counts> = counts.iter().filter(|&(&name, _)| name != reference).map(|(_, c)| c).collect();

    let spd = worst_difference(others.iter().map(|c| Some(c.selection_rate() - r.selection_rate()))).unwrap_or(0.0);
    let ratio = |c: &Counts| -> Option<f64> {
        match (r.selected, c.selected) {
            (0, 0) => Some(1.0),
            (0, _) => None,
            _ => Some(c.selection_rate() / r.selection_rate()),
        }
    };
    let di = if others.is_empty() { Some(1.0) } else { worst_ratio(others.iter().map(|c| ratio(c))) };
    let (eod, aod) = if labels.is_some() {
        let eod = others.iter().map(|c| Some(c.tpr()? - r.tpr()?));
        let aod = others.iter().map(|c| Some(((c.fpr()? - r.fpr()?) + (c.tpr()? - r.tpr()?)) / 2.0));
        let trivial = |reference_defined: bool| (others.is_empty() && reference_defined).then_some(0.0);
        (
            Some(worst_difference(eod).or(trivial(r.tpr().is_some()))),
            Some(worst_difference(aod).or(trivial(r.tpr().is_some() && r.fpr().is_some()))),
        )
    } else {
        (None, None)
    };
    // Four-fifths: min rate ≥ 0.8 · max rate, i.e. 5 · sel_min · n_max ≥ 4 · sel_max · n_min.
    let lowest = counts.values().min_by(|a, b| a.cmp_rate(b)).copied().unwrap_or_default();
    let highest = counts.values().max_by(|a, b| a.cmp_rate(b)).copied().unwrap_or_default();
    let passes = 5 * u128::from(lowest.selected) * u128::from(highest.count)
        >= 4 * u128::from(highest.selected) * u128::from(lowest.count);

    Ok(FairnessReport {
        groups: counts
            .iter()
            .map(|(&name, c)| {
                let metrics = GroupMetrics {
                    count: c.count,
                    selection_rate: c.selection_rate(),
                    tpr: labels.map(|_| c.tpr()),
                    fpr: labels.map(|_| c.fpr()),
                };
                (name.to_string(), metrics)
            })
            .collect(),
        statistical_parity_difference: spd,
        disparate_impact_ratio: di,
        equal_opportunity_difference: eod,
        average_odds_difference: aod,
        passes_four_fifths_rule: passes,
        reference_group: reference.to_string(),
        audited_at: None,
        model: None,
        rows: None,
    })
}

/// Magnitudes closer than this are ties (rates are ratios of counts: `1 − 2/3` and `2/3 − 1/3`
/// differ by rounding only).
const TIE: f64 = 1e-12;

/// The defined value with the largest magnitude (a negative one on ties); `None` if none is
/// defined.
fn worst_difference(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().filter(|v| !v.is_nan()).fold(None, |worst, v| match worst {
        Some(w) if w.abs() > v.abs() + TIE || ((w.abs() - v.abs()).abs() <= TIE && w <= v) => Some(w),
        _ => Some(v),
    })
}

/// The ratio farthest from 1 in proportion (`|ln r|`, unbounded ratios farthest of all, a
/// ratio below 1 on ties); `None` when that is an unbounded ratio.
fn worst_ratio(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let distance = |r: Option<f64>| r.map_or(f64::INFINITY, |r| if r > 0.0 { r.ln().abs() } else { f64::INFINITY });
    let mut worst: Option<Option<f64>> = None;
    for v in values {
        worst = match worst {
            None => Some(v),
            Some(w) => {
                let (dw, dv) = (distance(w), distance(v));
                let tie = dw == dv || (dw - dv).abs() <= TIE;
                let keep =
                    (dw > dv && !tie) || (tie && (w.is_none() || w.unwrap_or(0.0) <= v.unwrap_or(f64::INFINITY)));
                Some(if keep { w } else { v })
            }
        };
    }
    worst.flatten()
}

/// Favorable decisions of a model's rows, and the work it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Decisions {
    /// One decision per input row, `true` = favorable.
    pub favorable: Vec<bool>,
    /// Rows the model evaluated: what to meter.
    pub rows_evaluated: u64,
    /// Number of model runs.
    pub model_runs: u64,
}

/// The decision of each row of `output` (its first dimension is the row) under `rule`.
///
/// Fails with [`TrustError::InvalidRequest`] when the rule does not fit the output: a class
/// index beyond the row, a threshold on rows of more than two elements.
pub fn decide(output: &RawTensor, rule: &FavorableRule) -> Result<Vec<bool>, TrustError> {
    let elements = checked_elements(output)?;
    let rows = output.shape.first().copied().unwrap_or(1);
    if rows == 0 {
        return Ok(Vec::new());
    }
    let per_row = elements / rows;
    let value = |row: usize, i: usize| element_f64(output.datatype, &output.data, row * per_row + i);
    match *rule {
        FavorableRule::Class(k) => {
            if k >= per_row {
                return Err(TrustError::invalid(format!(
                    "favorable class {k} is out of range: output {:?} has {per_row} elements per row",
                    output.name
                )));
            }
            Ok((0..rows)
                .map(|row| {
                    // The first maximum wins; NaN never does.
                    let mut best: Option<(usize, f64)> = None;
                    for i in 0..per_row {
                        let v = value(row, i);
                        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
                            best = Some((i, v));
                        }
                    }
                    best.map(|(i, _)| i) == Some(k)
                })
                .collect())
        }
        FavorableRule::Threshold(x) => {
            let index = match per_row {
                1 => 0,
                2 => 1,
                n => {
                    return Err(TrustError::invalid(format!(
                        "a threshold needs one score per row or two classes, output {:?} has {n} elements per row; \
                         use \"class\"",
                        output.name
                    )));
                }
            };
            Ok((0..rows).map(|row| value(row, index) >= x).collect())
        }
    }
}

/// Runs `model` on the batch-`N` `inputs` and decides every row by `favorable`.
///
/// One run when the model takes the batch as it is; a model whose inputs all have a fixed
/// first dimension of 1 runs row by row. Fails with [`TrustError::InvalidRequest`] past
/// [`Limits::max_audit_rows`], for inputs of different row counts, an unknown output or a
/// rule that does not fit it; with [`TrustError::Inference`] when the inputs do not fit.
pub fn favorable_decisions(
    model: &LoadedModel,
    inputs: Vec<RawTensor>,
    favorable: &Favorable,
    limits: &Limits,
) -> Result<Decisions, TrustError> {
    let signature = model.signature();
    let output_ix = super::output_index(signature, favorable.output.as_deref())?;
    let mut rows = None;
    for t in &inputs {
        checked_elements(t)?;
        let n = *t.shape.first().ok_or_else(|| {
            TrustError::invalid(format!("input {:?} is a scalar; audit inputs are batches of rows", t.name))
        })?;
        if rows.is_some_and(|r| r != n) {
            return Err(TrustError::invalid("audit inputs must all have the same number of rows (first dimension)"));
        }
        rows = Some(n);
    }
    let rows = rows.ok_or_else(|| TrustError::invalid("the request has no inputs"))?;
    if rows == 0 {
        return Err(TrustError::invalid("an audit needs at least one row"));
    }
    if rows > limits.max_audit_rows {
        return Err(TrustError::invalid(format!(
            "an audit of {rows} rows exceeds the limit of {}",
            limits.max_audit_rows
        )));
    }
    let row_by_row = rows > 1 && signature.inputs.iter().all(|s| s.shape.first() == Some(&1));
    let pick = |mut outputs: Vec<RawTensor>| -> Result<RawTensor, TrustError> {
        if output_ix < outputs.len() {
            Ok(outputs.swap_remove(output_ix))
        } else {
            Err(TrustError::Inference(crate::inference::InferenceError::Failed("missing output".into())))
        }
    };
    let wrong_rows = |got: usize, want: usize| {
        TrustError::invalid(format!(
            "the output has {got} rows for {want} input rows: the model does not decide row by row"
        ))
    };
    if !row_by_row {
        limits.check_deadline()?;
        let output = pick(model.run(inputs)?)?;
        let favorable_rows = decide(&output, &favorable.rule)?;
        if favorable_rows.len() != rows {
            return Err(wrong_rows(favorable_rows.len(), rows));
        }
        return Ok(Decisions { favorable: favorable_rows, rows_evaluated: rows as u64, model_runs: 1 });
    }
    let mut decisions = Vec::with_capacity(rows);
    for row in 0..rows {
        limits.check_deadline()?;
        let single = inputs
            .iter()
            .map(|t| {
                let size = t.data.len() / rows;
                let mut shape = t.shape.clone();
                shape[0] = 1;
                RawTensor {
                    name: t.name.clone(),
                    datatype: t.datatype,
                    shape,
                    data: t.data[row * size..(row + 1) * size].to_vec(),
                }
            })
            .collect();
        let output = pick(model.run(single)?)?;
        let decided = decide(&output, &favorable.rule)?;
        if decided.len() != 1 {
            return Err(wrong_rows(decided.len(), 1));
        }
        decisions.extend(decided);
    }
    Ok(Decisions { favorable: decisions, rows_evaluated: rows as u64, model_runs: rows as u64 })
}

#[cfg(test)]
mod tests;
