//! Models and components as the API shows them: tensor specs and signatures, model versions,
//! uploaded components.

use serde::{Deserialize, Serialize};

pub use crate::datatype::Datatype;

/// Name, element type and shape of one model input or output; `-1` marks a dimension that
/// varies, and a shape of one [`ANY_RANK`] (`[-2]`) a tensor whose rank is not known either
/// (an input the file gives no shape, say).
///
/// With the `component` feature it is also the WIT `tensor-info` record of the function world.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "component", derive(wasmtime::component::ComponentType))]
#[cfg_attr(feature = "component", derive(wasmtime::component::Lift, wasmtime::component::Lower))]
#[cfg_attr(feature = "component", component(record))]
pub struct TensorSpec {
    /// The tensor's name in the model.
    pub name: String,
    /// The element type.
    pub datatype: Datatype,
    /// Dimensions; `-1` for one that varies.
    pub shape: Vec<i64>,
}

/// The one dimension of the shape of a tensor of unknown rank: `[-2]` accepts any shape.
///
/// A sentinel, not a field, because the shape crosses the WIT boundary of the function world
/// as a `list<s64>`, and deployed components must keep linking.
pub const ANY_RANK: i64 = -2;

impl TensorSpec {
    /// Whether the rank of this tensor is unknown (its shape is `[ANY_RANK]`).
    pub fn any_rank(&self) -> bool {
        self.shape == [ANY_RANK]
    }

    /// Whether a tensor of `shape` fits this spec: any shape when the rank is unknown, else
    /// the same rank and equal in every dimension that is not `-1`.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        self.any_rank()
            || (shape.len() == self.shape.len()
                && shape.iter().zip(&self.shape).all(|(&got, &want)| want < 0 || i64::try_from(got) == Ok(want)))
    }
}

/// A declared input spec as the upload takes it (`input=` on the HTTP API, `--input` on the
/// CLI): `name:DATATYPE:d1,d2,…` with `-1` for a free dimension (`x:FP32:1,3,-1,-1`),
/// `name:DATATYPE:` for a scalar, or `name:DATATYPE` for a tensor of any rank.
impl std::str::FromStr for TensorSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected name:DATATYPE:d1,d2,… (-1 for a free dimension), e.g. x:FP32:1,3,-1,-1";
        // Read from the right: tensor names may hold colons (`input_1:0`), datatypes and
        // dimensions do not.
        let (head, last) = s.rsplit_once(':').ok_or_else(|| format!("input spec {s:?}: {usage}"))?;
        let (name, datatype, dims) = match Datatype::parse(last) {
            Some(datatype) => (head, datatype, None),
            None => {
                let (name, datatype) = head.rsplit_once(':').ok_or_else(|| format!("input spec {s:?}: {usage}"))?;
                let datatype = Datatype::parse(datatype)
                    .ok_or_else(|| format!("input spec {s:?}: unknown datatype {datatype:?}; {usage}"))?;
                (name, datatype, Some(last))
            }
        };
        if name.is_empty() {
            return Err(format!("input spec {s:?}: the name is empty; {usage}"));
        }
        let shape = match dims {
            None => vec![ANY_RANK],
            Some("") => Vec::new(),
            Some(dims) => dims
                .split(',')
                .map(|d| d.trim().parse::<i64>().ok().filter(|&d| d >= -1))
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| format!("input spec {s:?}: dimensions are integers, -1 or at least 0; {usage}"))?,
        };
        Ok(TensorSpec { name: name.to_string(), datatype, shape })
    }
}

impl std::fmt::Display for TensorSpec {
    /// The form [`FromStr`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.datatype)?;
        if !self.any_rank() {
            let dims: Vec<String> = self.shape.iter().map(i64::to_string).collect();
            write!(f, ":{}", dims.join(","))?;
        }
        Ok(())
    }
}

/// What the analysis of an uploaded model records with its version, beside the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAnalysis {
    /// The inputs and outputs, with the declared specs applied.
    pub signature: Signature,
    /// The input specs the owner declared at upload, which every plan starts from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_inputs: Vec<TensorSpec>,
    /// tract types the model only once a request's concrete shapes (or parameter values) are
    /// known: each new input shape costs a plan of its own.
    #[serde(default)]
    pub per_request_shapes: bool,
    /// What a reader of the signature should know about how maas serves the model, e.g. that
    /// an output is the probability tensor a scikit-learn `ZipMap` wraps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl From<Signature> for ModelAnalysis {
    /// A model typed with its own facts, nothing declared.
    fn from(signature: Signature) -> Self {
        ModelAnalysis { signature, declared_inputs: Vec::new(), per_request_shapes: false, notes: Vec::new() }
    }
}

/// The inputs and outputs of a model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Model inputs in graph order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs in graph order.
    pub outputs: Vec<TensorSpec>,
}

/// One version of a model: its file's digest and size and its signature
/// (`PUT`/`GET /v1/tenants/{t}/models/{m}[/versions/{v}]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model name.
    pub name: String,
    /// 1, 2, ... in upload order.
    pub version: u32,
    /// Lowercase hex sha256 of the ONNX file.
    pub sha256: String,
    /// File size, bytes.
    pub size_bytes: u64,
    /// The model's inputs (`-1` for a dimension that varies).
    pub inputs: Vec<TensorSpec>,
    /// The model's outputs.
    pub outputs: Vec<TensorSpec>,
    /// The input specs declared at upload, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_inputs: Vec<TensorSpec>,
    /// Whether each new input shape needs a plan of its own (see [`ModelAnalysis`]).
    #[serde(default)]
    pub per_request_shapes: bool,
    /// How maas serves the model, where the signature alone does not say (see [`ModelAnalysis`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When it was uploaded, RFC 3339 UTC.
    pub created_at: String,
}

impl ModelInfo {
    /// `name@version`, as headers and logs name a version.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A model name with all its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The model name.
    pub name: String,
    /// The highest existing version.
    pub latest_version: u32,
    /// Every existing version, oldest first.
    pub versions: Vec<ModelInfo>,
}

/// `GET /v1/tenants/{t}/models`: `{"models": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The tenant's models, by name.
    pub models: Vec<ModelEntry>,
}

/// An uploaded WebAssembly component (`POST`/`GET /v1/tenants/{t}/components`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// `sha256:<hex>`: what a manifest's `component` names.
    pub digest: String,
    /// Size of the `.wasm` file, bytes.
    pub size_bytes: u64,
    /// When it was first uploaded, RFC 3339 UTC.
    pub created_at: String,
}

/// `GET /v1/tenants/{t}/components`: `{"components": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentList {
    /// The tenant's components, by digest.
    pub components: Vec<ComponentInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_specs_parse_and_print_back() {
        for (text, name, datatype, shape) in [
            ("x:FP32:1,3,-1,-1", "x", Datatype::Fp32, vec![1, 3, -1, -1]),
            ("input_1:0:INT64:2", "input_1:0", Datatype::Int64, vec![2]),
            ("k:INT32:", "k", Datatype::Int32, vec![]),
            ("any:FP16", "any", Datatype::Fp16, vec![ANY_RANK]),
        ] {
            let spec: TensorSpec = text.parse().unwrap();
            assert_eq!(spec, TensorSpec { name: name.into(), datatype, shape });
            assert_eq!(spec.to_string(), text);
        }
        for bad in ["x", ":FP32:1", "x:FLOAT:1", "x:FP32:1,-2", "x:FP32:a", "x:FP32:1,,2"] {
            assert!(bad.parse::<TensorSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_accepts_the_shapes_it_names() {
        let spec: TensorSpec = "x:FP32:-1,3".parse().unwrap();
        assert!(spec.accepts(&[7, 3]));
        assert!(!spec.accepts(&[7, 4]));
        assert!(!spec.accepts(&[3]));
        let any: TensorSpec = "x:FP32".parse().unwrap();
        assert!(any.accepts(&[]) && any.accepts(&[1, 2, 3, 4]));
    }
}
