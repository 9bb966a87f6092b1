//! Trust: model cards, explanations and fairness audits, as they cross HTTP.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::datatype::Datatype;
use crate::model::ModelInfo;
use crate::oip::InferInput;

/// Longest text of one card field, bytes.
pub const MAX_CARD_FIELD: usize = 64 << 10;

/// A model card as its owner writes it (`PUT .../models/{m}/card`); every field is optional text.
/// The runtime adds generated facts (versions, digests, signatures, latest audits) when showing it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCard {
    /// What the model does.
    pub description: Option<String>,
    /// What it is meant to be used for.
    pub intended_use: Option<String>,
    /// What it must not be used for.
    pub out_of_scope_use: Option<String>,
    /// Known limitations.
    pub limitations: Option<String>,
    /// What it was trained on.
    pub training_data: Option<String>,
    /// How it was evaluated, with figures.
    pub evaluation: Option<String>,
    /// Risks, affected groups, mitigations.
    pub ethical_considerations: Option<String>,
    /// Licence of the model.
    pub license: Option<String>,
    /// Who to ask.
    pub contact: Option<String>,
}

impl ModelCard {
    /// The fields as `(name, value)` in display order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 9] {
        [
            ("description", self.description.as_deref()),
            ("intended_use", self.intended_use.as_deref()),
            ("out_of_scope_use", self.out_of_scope_use.as_deref()),
            ("limitations", self.limitations.as_deref()),
            ("training_data", self.training_data.as_deref()),
            ("evaluation", self.evaluation.as_deref()),
            ("ethical_considerations", self.ethical_considerations.as_deref()),
            ("license", self.license.as_deref()),
            ("contact", self.contact.as_deref()),
        ]
    }
}

/// A model card as `GET …/card` shows it: what the owner wrote, and the facts the platform
/// knows (every version's digest, signature and latest fairness audit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCardDocument {
    /// The model name.
    pub name: String,
    /// The tenant.
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
    /// Its latest fairness audit (`null` without one).
    pub audit: Option<FairnessReport>,
}

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

/// Most elements a list in a trust request (baseline values, groups, labels) may have: the
/// server reads them one by one and stops there, rather than hold a body's worth first.
pub const MAX_LIST: usize = 1 << 23;

impl<'de> Deserialize<'de> for Baseline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Baseline;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"baseline: "zeros", "mean" or an array of numbers"#)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Baseline, E> {
                match s {
                    "zeros" => Ok(Baseline::Zeros),
                    "mean" => Ok(Baseline::Mean),
                    _ => Err(E::custom(r#"baseline must be "zeros", "mean" or an array of numbers"#)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Baseline, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<f64>()? {
                    if values.len() >= MAX_LIST {
                        return Err(serde::de::Error::custom(format!("baseline: more than {MAX_LIST} values")));
                    }
                    let v = v as f32;
                    if !v.is_finite() {
                        return Err(serde::de::Error::custom("baseline values must be finite numbers"));
                    }
                    values.push(v);
                }
                Ok(Baseline::Values(values))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Serialize for Baseline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Baseline::Zeros => s.serialize_str("zeros"),
            Baseline::Mean => s.serialize_str("mean"),
            Baseline::Values(values) => values.serialize(s),
        }
    }
}

/// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/explain`: which input row to explain, how.
///
/// `I` is how an input tensor is held: [`InferInput`] (JSON data) for clients; the server
/// reads the data straight into numbers instead. It is read field by field (not through a
/// flattened struct, which would hold every other key of the body first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ExplainWire<I>")]
pub struct ExplainRequest<I = InferInput> {
    /// The model's inputs, batch 1.
    pub inputs: Vec<I>,
    /// How to explain them.
    #[serde(flatten)]
    pub params: ExplainParams,
}

impl ExplainRequest<InferInput> {
    /// An explanation of `inputs` by `method`, everything else at the server's defaults.
    pub fn new(method: Method, inputs: Vec<InferInput>) -> Self {
        ExplainRequest { inputs, params: ExplainParams { method, ..ExplainParams::default() } }
    }
}

/// [`ExplainRequest`] as it is read: every field in one struct; unknown keys are skipped
/// without being held.
#[derive(Deserialize)]
struct ExplainWire<I> {
    inputs: Vec<I>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    target: Option<usize>,
    method: Method,
    #[serde(default)]
    baseline: Baseline,
    #[serde(default)]
    samples: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    patch: Option<usize>,
    #[serde(default)]
    layout: Option<ImageLayout>,
}

impl<I> From<ExplainWire<I>> for ExplainRequest<I> {
    fn from(w: ExplainWire<I>) -> Self {
        let params = ExplainParams {
            input: w.input,
            output: w.output,
            target: w.target,
            method: w.method,
            baseline: w.baseline,
            samples: w.samples,
            seed: w.seed,
            patch: w.patch,
            layout: w.layout,
        };
        ExplainRequest { inputs: w.inputs, params }
    }
}

/// The parameters of one explanation: the contract's request without `inputs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExplainParams {
    /// Name of the input to explain; default: the model's first input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Name of the output whose score is explained; default: the model's first output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Index of the explained score in the output flattened per row; default: the argmax of
    /// the prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    /// Occlusion or Kernel SHAP (required in a request).
    pub method: Method,
    /// What absent features are replaced by; default zeros.
    #[serde(default)]
    pub baseline: Baseline,
    /// Kernel SHAP coalitions to evaluate (besides the empty and the full one); default
    /// `2·M + 2048` for `M` features, at most the server's cap. Occlusion ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Seed of Kernel SHAP's coalition sampling; default 0, so equal requests give equal answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Patch size for image-shaped inputs: features become `patch×patch` squares across all
    /// channels (partial squares at the right and bottom edges). Default: element-wise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<usize>,
    /// Channel layout of the image-shaped input, when the guess of [`ImageLayout::detect`] is
    /// wrong. Only used with `patch` (and by the heatmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<ImageLayout>,
}

/// Where the channels are in an image-shaped tensor of rank 4 with batch 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageLayout {
    /// `[1, C, H, W]`, ONNX's convention.
    Nchw,
    /// `[1, H, W, C]`, TensorFlow's convention.
    Nhwc,
}

impl ImageLayout {
    /// The layout of an image-shaped tensor, or `None` when the shape is not `[1, a, b, c]`
    /// with non-zero dimensions.
    ///
    /// `[1, C, H, W]` and `[1, H, W, C]` cannot be told apart in general; the guess is NHWC
    /// when the last dimension looks like a channel count (1, 3 or 4) and the second does
    /// not, NCHW (ONNX's convention) otherwise. Callers that know better pass a layout.
    pub fn detect(shape: &[usize]) -> Option<ImageLayout> {
        let &[1, a, b, c] = shape else { return None };
        if a == 0 || b == 0 || c == 0 {
            return None;
        }
        let channels = |d: usize| matches!(d, 1 | 3 | 4);
        Some(if channels(c) && !channels(a) { ImageLayout::Nhwc } else { ImageLayout::Nchw })
    }

    /// `(channels, height, width)` of `shape` read in this layout; `None` when the shape is
    /// not `[1, _, _, _]`.
    pub fn dims(self, shape: &[usize]) -> Option<(usize, usize, usize)> {
        let &[1, a, b, c] = shape else { return None };
        Some(match self {
            ImageLayout::Nchw => (a, b, c),
            ImageLayout::Nhwc => (c, a, b),
        })
    }
}

/// Attributions of one input: FP32, the input's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// The explained input's name.
    pub name: String,
    /// The explained input's shape.
    pub shape: Vec<u64>,
    /// Always FP32.
    pub datatype: Datatype,
    /// One attribution per element, row-major.
    pub data: Vec<f32>,
}

/// An explanation: the explained score with and without the input, and one attribution per
/// input element, in the input's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// When a row's decision is favorable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FavorableRule {
    /// The row's argmax (over the output's elements of that row) is this class.
    Class(usize),
    /// The row's score is at least this: the single element of the row, or element 1 of a
    /// two-class row.
    Threshold(f64),
}

/// The contract's `favorable`: `{"output"?, "class": k}` or `{"output"?, "threshold": x}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FavorableRepr", into = "FavorableRepr")]
pub struct Favorable {
    /// Name of the output decisions are read from; default: the model's first output.
    pub output: Option<String>,
    /// The rule applied to each row of that output.
    pub rule: FavorableRule,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FavorableRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    class: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
}

impl From<Favorable> for FavorableRepr {
    fn from(f: Favorable) -> Self {
        let (class, threshold) = match f.rule {
            FavorableRule::Class(k) => (Some(k), None),
            FavorableRule::Threshold(x) => (None, Some(x)),
        };
        FavorableRepr { output: f.output, class, threshold }
    }
}

impl Favorable {
    /// Favorable when the predicted class is `class`, read from the model's first output.
    pub fn class(class: usize) -> Self {
        Favorable { output: None, rule: FavorableRule::Class(class) }
    }

    /// Favorable when the score reaches `threshold`, read from the model's first output.
    pub fn threshold(threshold: f64) -> Self {
        Favorable { output: None, rule: FavorableRule::Threshold(threshold) }
    }
}

impl TryFrom<FavorableRepr> for Favorable {
    type Error = String;

    fn try_from(repr: FavorableRepr) -> Result<Self, String> {
        let rule = match (repr.class, repr.threshold) {
            (Some(k), None) => FavorableRule::Class(k),
            (None, Some(x)) if x.is_finite() => FavorableRule::Threshold(x),
            (None, Some(_)) => return Err("favorable.threshold must be a finite number".into()),
            _ => return Err("favorable needs exactly one of \"class\" and \"threshold\"".into()),
        };
        Ok(Favorable { output: repr.output, rule })
    }
}

/// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/audit`: a batch of rows, the protected
/// attribute of each, optionally their true labels, and what a favorable decision is.
///
/// Group values may be strings, numbers or booleans (numbers and booleans become their JSON
/// text); labels 0/1 or booleans.
///
/// `I` is how an input tensor is held, as for [`ExplainRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairnessRequest<I = InferInput> {
    /// The model's inputs, batch N.
    pub inputs: Vec<I>,
    /// One protected-attribute value per row.
    #[serde(deserialize_with = "group_values")]
    pub groups: Vec<String>,
    /// One true label per row (`true`: deserved the favorable outcome), if known.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "label_values")]
    pub labels: Option<Vec<bool>>,
    /// How a row's output becomes a decision.
    pub favorable: Favorable,
    /// The group others are compared with; default: the highest selection rate.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "reference_value")]
    pub reference_group: Option<String>,
}

fn group_text(value: serde_json::Value) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("group values must be strings, numbers or booleans, not {other}")),
    }
}

/// One group value as it is read: a string, or a number or boolean as its JSON text.
struct GroupText(String);

impl<'de> Deserialize<'de> for GroupText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = GroupText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("group values: strings, numbers or booleans")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<GroupText, E> {
                Ok(GroupText(s.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<GroupText, E> {
                Ok(GroupText(b.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GroupText, E> {
                Ok(GroupText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GroupText, E> {
                Ok(GroupText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<GroupText, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| GroupText(n.to_string()))
                    .ok_or_else(|| E::custom("group values must be finite"))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Reads a list element by element, at most [`MAX_LIST`] of them, each through `T`.
fn capped_list<'de, D: Deserializer<'de>, T: Deserialize<'de>, U>(
    d: D,
    what: &'static str,
    map: fn(T) -> Result<U, String>,
) -> Result<Vec<U>, D::Error> {
    struct Visit<T, U>(&'static str, fn(T) -> Result<U, String>);
    impl<'de, T: Deserialize<'de>, U> serde::de::Visitor<'de> for Visit<T, U> {
        type Value = Vec<U>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: an array", self.0)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<U>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                if out.len() >= MAX_LIST {
                    return Err(serde::de::Error::custom(format!("{}: more than {MAX_LIST} values", self.0)));
                }
                out.push((self.1)(item).map_err(serde::de::Error::custom)?);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Visit(what, map))
}

fn group_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    capped_list(d, "groups", |g: GroupText| Ok(g.0))
}

fn reference_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => group_text(value).map(Some).map_err(serde::de::Error::custom),
    }
}

/// One label as it is read: a boolean, or 0 or 1.
struct Label(bool);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Label;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("labels must be 0 or 1")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Label, E> {
                Ok(Label(b))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Label, E> {
                match v {
                    0.0 => Ok(Label(false)),
                    1.0 => Ok(Label(true)),
                    other => Err(E::custom(format!("labels must be 0 or 1, not {other}"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Label, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Label, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(Visit)
    }
}

fn label_values<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<bool>>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<Vec<bool>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("labels: an array of 0/1 or booleans, or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            capped_list(d, "labels", |l: Label| Ok(l.0)).map(Some)
        }
    }
    d.deserialize_option(Visit)
}

/// Deserializes a present field (even `null`) as `Some`, so that `Option<Option<f64>>` tells
/// "left out" (`None`) from "undefined" (`Some(None)`, JSON `null`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// Figures of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Rows in the group.
    pub count: u64,
    /// Share of the group's rows with a favorable decision.
    pub selection_rate: f64,
    /// True positive rate; `None` without labels (left out of the JSON), `Some(None)` when the
    /// group has no positive label (`null`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub tpr: Option<Option<f64>>,
    /// False positive rate; `None` without labels, `Some(None)` when the group has no negative
    /// label.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub fpr: Option<Option<f64>>,
}

/// A fairness audit's figures (as in Fairlearn and AIF360: differences and ratios are
/// unprivileged − reference and unprivileged / reference, for the worst group); the answer of
/// `POST …/audit`, kept by the server as the model version's latest audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    /// Figures per group value, in byte order of the values.
    pub groups: BTreeMap<String, GroupMetrics>,
    /// `SR_g − SR_ref` for the worst group.
    pub statistical_parity_difference: f64,
    /// `SR_g / SR_ref` for the worst group; `None` (`null`) when unbounded (reference never
    /// selected, another group selected).
    pub disparate_impact_ratio: Option<f64>,
    /// `TPR_g − TPR_ref` for the worst group; `None` without labels, `Some(None)` when no
    /// group has a defined value.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub equal_opportunity_difference: Option<Option<f64>>,
    /// `½[(FPR_g − FPR_ref) + (TPR_g − TPR_ref)]` for the worst group; as above.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub average_odds_difference: Option<Option<f64>>,
    /// Whether every group's selection rate is at least ⅘ of the highest one.
    pub passes_four_fifths_rule: bool,
    /// The group the others were compared with.
    pub reference_group: String,
    /// When the audit ran, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audited_at: Option<String>,
    /// The audited model version, `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Rows audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip() {
        let request = ExplainRequest::new(Method::KernelShap, vec![InferInput::fp32("x", [1, 2], &[1.0, 2.0])]);
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!((value["method"].as_str(), value["baseline"].as_str()), (Some("kernel_shap"), Some("zeros")));
        assert!(value.get("target").is_none(), "{value}");
        assert_eq!(serde_json::from_value::<ExplainRequest>(value).unwrap(), request);
        let favorable = serde_json::to_value(Favorable::threshold(0.5)).unwrap();
        assert_eq!(favorable, json!({"threshold": 0.5}));
        assert!(serde_json::from_value::<Favorable>(json!({"class": 1, "threshold": 0.5})).is_err());
        let audit: FairnessRequest = serde_json::from_value(json!({
            "inputs": [], "groups": ["a", 1, true], "labels": [0, 1, true], "favorable": {"class": 1},
        }))
        .unwrap();
        assert_eq!(
            (audit.groups, audit.labels),
            (vec!["a".into(), "1".into(), "true".into()], Some(vec![false, true, true]))
        );
        assert_eq!(serde_json::from_value::<Baseline>(json!([1, 2.5])).unwrap(), Baseline::Values(vec![1.0, 2.5]));
    }

    #[test]
    fn report_with_nulls_decodes() {
        let value = json!({
            "groups": {"a": {"count": 2, "selection_rate": 0.5, "tpr": null}, "b": {"count": 1, "selection_rate": 0.0}},
            "statistical_parity_difference": -0.5, "disparate_impact_ratio": null,
            "equal_opportunity_difference": null, "passes_four_fifths_rule": false, "reference_group": "a",
            "audited_at": "t", "model": "m@1", "rows": 3,
        });
        let report: FairnessReport = serde_json::from_value(value.clone()).unwrap();
        assert_eq!((report.disparate_impact_ratio, report.groups["a"].tpr, report.rows), (None, Some(None), Some(3)));
        assert_eq!(report.groups["b"].tpr, None);
        assert_eq!(serde_json::to_value(&report).unwrap(), value);
    }

    #[test]
    fn image_layouts_are_detected() {
        assert_eq!(ImageLayout::detect(&[1, 3, 32, 32]), Some(ImageLayout::Nchw));
        assert_eq!(ImageLayout::detect(&[1, 32, 32, 3]), Some(ImageLayout::Nhwc));
        assert_eq!(ImageLayout::detect(&[1, 1, 28, 28]), Some(ImageLayout::Nchw));
        assert_eq!(ImageLayout::detect(&[1, 28, 28, 1]), Some(ImageLayout::Nhwc));
        assert_eq!(ImageLayout::detect(&[1, 8, 5, 5]), Some(ImageLayout::Nchw));
        assert_eq!(ImageLayout::detect(&[2, 3, 32, 32]), None);
        assert_eq!(ImageLayout::detect(&[1, 100]), None);
        assert_eq!(ImageLayout::Nhwc.dims(&[1, 4, 5, 3]), Some((3, 4, 5)));
    }

    /// Lists are read one element at a time and stop at [`MAX_LIST`]; keys the request does
    /// not know are skipped, not held.
    #[test]
    fn trust_requests_read_lists_element_by_element() {
        let explain: ExplainRequest = serde_json::from_value(serde_json::json!({
            "inputs": [], "method": "occlusion", "baseline": [0, 1.5], "junk": [[1, 2], {"a": 3}]
        }))
        .unwrap();
        assert_eq!(explain.params.baseline, Baseline::Values(vec![0.0, 1.5]));
        let mut groups = String::from(r#"{"inputs": [], "favorable": {"class": 1}, "groups": ["#);
        groups.push_str(&"1,".repeat(MAX_LIST));
        groups.push_str("1]}");
        let err = serde_json::from_str::<FairnessRequest>(&groups).unwrap_err().to_string();
        assert!(err.contains("groups: more than"), "{err}");
        let ok: FairnessRequest = serde_json::from_value(serde_json::json!({
            "inputs": [], "favorable": {"class": 1}, "groups": ["a", 2, 2.5, true], "labels": [0, 1, true, false]
        }))
        .unwrap();
        assert_eq!(ok.groups, ["a", "2", "2.5", "true"]);
        assert_eq!(ok.labels, Some(vec![false, true, true, false]));
    }
}
