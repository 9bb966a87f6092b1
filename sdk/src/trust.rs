//! Bodies of the trust routes: explanations (`POST …/explain`), fairness audits
//! (`POST …/audit`) and model cards (`PUT`/`GET …/models/{m}/card`). The card itself is the
//! registry's [`ModelCard`](maas_registry::ModelCard).

use std::collections::BTreeMap;

use maas_registry::ModelCard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::oip::InferInput;
use crate::types::ModelInfo;

/// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/explain`: which input row to explain, how.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExplainRequest {
    /// The model's inputs, batch 1.
    pub inputs: Vec<InferInput>,
    /// `occlusion` (one feature at a time) or `kernel_shap`.
    pub method: String,
    /// The input to explain (default: the model's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The output whose score is explained (default: the model's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The index of the explained score in the output row (default: the predicted class).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    /// What absent features become: `"zeros"` (default), `"mean"`, or one value per element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Value>,
    /// Kernel SHAP coalitions to evaluate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Kernel SHAP's sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// For image inputs: features are `patch × patch` squares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<usize>,
}

impl ExplainRequest {
    /// An explanation of `inputs` by `method` (`occlusion` or `kernel_shap`), everything else
    /// at the server's defaults.
    pub fn new(method: &str, inputs: Vec<InferInput>) -> Self {
        ExplainRequest {
            inputs,
            method: method.to_string(),
            input: None,
            output: None,
            target: None,
            baseline: None,
            samples: None,
            seed: None,
            patch: None,
        }
    }
}

/// An explanation: the explained score with and without the input, and one attribution per
/// input element, in the input's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The method used.
    pub method: String,
    /// The explained output.
    pub output: String,
    /// The index of the explained score.
    pub target: usize,
    /// The score on the input as given.
    pub prediction: f64,
    /// The score with the whole input at the baseline.
    pub baseline_prediction: f64,
    /// `FP32` tensors, one per explained input.
    pub attributions: Vec<Attribution>,
}

/// The attributions of one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// The input's name.
    pub name: String,
    /// The input's shape.
    pub shape: Vec<u64>,
    /// `FP32`.
    pub datatype: String,
    /// One attribution per element, row-major.
    pub data: Vec<f32>,
}

/// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/audit`: a batch of rows, the protected
/// attribute of each, optionally their true labels, and what a favorable decision is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FairnessRequest {
    /// The model's inputs, batch N.
    pub inputs: Vec<InferInput>,
    /// One protected-attribute value per row.
    pub groups: Vec<String>,
    /// One true label per row (`true`: deserved the favorable outcome), for the rates that
    /// need them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<bool>>,
    /// How a row's output becomes a decision.
    pub favorable: Favorable,
    /// The group the others are compared with (default: the highest selection rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_group: Option<String>,
}

/// When a row's decision is favorable: its predicted class is `class`, or its score is at
/// least `threshold`; read from `output` (default: the model's first).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Favorable {
    /// The output decisions are read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Favorable when the row's argmax is this class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<usize>,
    /// Favorable when the row's score is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl Favorable {
    /// Favorable when the predicted class is `class`.
    pub fn class(class: usize) -> Self {
        Favorable { output: None, class: Some(class), threshold: None }
    }

    /// Favorable when the score reaches `threshold`.
    pub fn threshold(threshold: f64) -> Self {
        Favorable { output: None, class: None, threshold: Some(threshold) }
    }
}

/// A fairness audit's figures (as in Fairlearn and AIF360: differences and ratios are
/// unprivileged − reference and unprivileged / reference, for the worst group). The server
/// keeps the latest one with the model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    /// Figures per group value.
    pub groups: BTreeMap<String, GroupMetrics>,
    /// Selection-rate difference of the worst group.
    pub statistical_parity_difference: f64,
    /// Selection-rate ratio of the worst group (`None` when unbounded).
    #[serde(default)]
    pub disparate_impact_ratio: Option<f64>,
    /// True-positive-rate difference of the worst group (with labels).
    #[serde(default)]
    pub equal_opportunity_difference: Option<f64>,
    /// Mean of the FPR and TPR differences of the worst group (with labels).
    #[serde(default)]
    pub average_odds_difference: Option<f64>,
    /// Whether every group's selection rate is at least ⅘ of the highest one.
    pub passes_four_fifths_rule: bool,
    /// The group the others were compared with.
    #[serde(default)]
    pub reference_group: Option<String>,
    /// When, RFC 3339 UTC.
    #[serde(default)]
    pub audited_at: Option<String>,
    /// `name@version` audited.
    #[serde(default)]
    pub model: Option<String>,
    /// Rows audited.
    #[serde(default)]
    pub rows: Option<u64>,
}

/// One group of a [`FairnessReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Rows in the group.
    pub count: u64,
    /// Share of its rows with a favorable decision.
    pub selection_rate: f64,
    /// True positive rate (with labels; `None` when undefined).
    #[serde(default)]
    pub tpr: Option<f64>,
    /// False positive rate (with labels; `None` when undefined).
    #[serde(default)]
    pub fpr: Option<f64>,
}

/// A model card as `GET …/card` shows it: what the owner wrote, and the facts the platform
/// knows (every version's digest, signature and latest fairness audit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCardDocument {
    /// The model name.
    pub name: String,
    /// The tenant.
    #[serde(default)]
    pub tenant: String,
    /// The highest version.
    pub latest_version: u32,
    /// What the owner wrote.
    pub card: ModelCard,
    /// Every version, oldest first, with its latest audit.
    pub versions: Vec<CardVersion>,
}

/// One version in a [`ModelCardDocument`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardVersion {
    /// Its metadata and signature.
    #[serde(flatten)]
    pub info: ModelInfo,
    /// Its latest fairness audit.
    #[serde(default)]
    pub audit: Option<FairnessReport>,
}

/// The text renderings of a model card (`GET …/card?format=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardFormat {
    /// `?format=md`.
    Markdown,
    /// `?format=html`: a page.
    Html,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_leave_defaults_out() {
        let request = ExplainRequest::new("occlusion", vec![InferInput::fp32("x", [1, 2], &[1.0, 2.0])]);
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value["method"], "occlusion");
        assert!(value.get("baseline").is_none() && value.get("target").is_none(), "{value}");
        let favorable = serde_json::to_value(Favorable::threshold(0.5)).unwrap();
        assert_eq!(favorable, json!({"threshold": 0.5}));
    }

    #[test]
    fn report_with_nulls_decodes() {
        let value = json!({
            "groups": {"a": {"count": 2, "selection_rate": 0.5, "tpr": null}, "b": {"count": 1, "selection_rate": 0.0}},
            "statistical_parity_difference": -0.5, "disparate_impact_ratio": null,
            "equal_opportunity_difference": null, "passes_four_fifths_rule": false, "reference_group": "a",
            "audited_at": "t", "model": "m@1", "rows": 3,
        });
        let report: FairnessReport = serde_json::from_value(value).unwrap();
        assert_eq!((report.disparate_impact_ratio, report.groups["a"].tpr, report.rows), (None, None, Some(3)));
    }
}
