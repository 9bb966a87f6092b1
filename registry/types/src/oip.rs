//! Open Inference Protocol (KServe v2) JSON bodies: `/v2` metadata and `infer`, which
//! `builtin:tensor` functions also speak, and the input tensors of explanations and audits.
//!
//! Tensor datatypes are strings here, as the protocol has them: a client may name a datatype
//! maas cannot carry (`BYTES`) and get the server's answer about it.

use crate::model::TensorSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET /v2`: the server's name, version and protocol extensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// `maas`.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// Supported extensions (`binary_tensor_data`, ...).
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{m}[/versions/{v}]`: a model's versions and signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The model name.
    pub name: String,
    /// Its versions (all of them, or the one the path named), as strings per the protocol.
    #[serde(default)]
    pub versions: Vec<String>,
    /// `onnx`.
    #[serde(default)]
    pub platform: String,
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
    /// maas: the input specs declared at upload, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_inputs: Vec<TensorSpec>,
    /// maas: whether each new input shape needs a plan of its own.
    #[serde(default)]
    pub per_request_shapes: bool,
    /// maas: how the model is served, where the signature alone does not say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelReady {
    /// The model name.
    pub name: String,
    /// The version that is ready.
    pub version: String,
    /// Always `true` in a `200`.
    pub ready: bool,
}

/// `GET /v2/health/live`: `{"live": true}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// Whether the server is alive.
    pub live: bool,
}

/// `GET /v2/health/ready`: `{"ready": true}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Whether the server is ready.
    pub ready: bool,
}

/// An infer request: `{"id"?, "parameters"?, "inputs": [...], "outputs"?: [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<InferInput>,
    /// The outputs wanted (all of them when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestedOutput>>,
}

impl InferRequest {
    /// A request with these inputs and nothing else.
    pub fn new(inputs: Vec<InferInput>) -> Self {
        InferRequest { inputs, ..Default::default() }
    }
}

/// One input tensor, data as a flat JSON array in row-major order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferInput {
    /// The model's input name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// An OIP datatype: `FP32`, `INT64`, `BOOL`, ...
    pub datatype: String,
    /// The elements.
    pub data: Value,
    /// Tensor parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

impl InferInput {
    /// An input of any datatype with `data` already as JSON.
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<u64>>, datatype: impl Into<String>, data: Value) -> Self {
        InferInput { name: name.into(), shape: shape.into(), datatype: datatype.into(), data, parameters: None }
    }

    /// An `FP32` input.
    pub fn fp32(name: impl Into<String>, shape: impl Into<Vec<u64>>, data: &[f32]) -> Self {
        Self::new(name, shape, "FP32", data.iter().map(|&x| Value::from(x)).collect())
    }

    /// An `INT64` input.
    pub fn int64(name: impl Into<String>, shape: impl Into<Vec<u64>>, data: &[i64]) -> Self {
        Self::new(name, shape, "INT64", data.iter().map(|&x| Value::from(x)).collect())
    }
}

/// An output the request asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestedOutput {
    /// The model's output name.
    pub name: String,
    /// Output parameters (`binary_data`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

/// An infer response: `{"model_name", "model_version"?, "id"?, "outputs": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferResponse {
    /// The model (or, from a `builtin:tensor` function, the alias) that answered.
    pub model_name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The request's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The output tensors.
    pub outputs: Vec<InferOutput>,
}

impl InferResponse {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&InferOutput> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// One output tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferOutput {
    /// The model's output name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// An OIP datatype.
    pub datatype: String,
    /// The elements, flat or nested row-major (absent for binary outputs).
    #[serde(default)]
    pub data: Value,
    /// Tensor parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

impl InferOutput {
    /// The elements as `f64` (nested arrays flattened; booleans 0 or 1), or `None` if any
    /// element is not a number.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        let mut out = Vec::new();
        flatten(&self.data, &mut out).then_some(out)
    }

    /// The elements as `f32` (see [`InferOutput::to_f64`]).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(self.to_f64()?.into_iter().map(|x| x as f32).collect())
    }
}

fn flatten(value: &Value, out: &mut Vec<f64>) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|item| flatten(item, out)),
        Value::Number(n) => n.as_f64().map(|x| out.push(x)).is_some(),
        Value::Bool(b) => {
            out.push(f64::from(u8::from(*b)));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_shape() {
        let request = InferRequest::new(vec![InferInput::fp32("input", [1, 2], &[0.5, 1.0])]);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.0]}]})
        );
    }

    #[test]
    fn output_data_flattens() {
        let output: InferOutput = serde_json::from_value(
            json!({"name": "y", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}),
        )
        .unwrap();
        assert_eq!(output.to_f32(), Some(vec![1.0, 2.0, 3.0, 4.5]));
        let text: InferOutput =
            serde_json::from_value(json!({"name": "y", "shape": [1], "datatype": "BYTES", "data": ["a"]})).unwrap();
        assert_eq!(text.to_f64(), None);
    }
}
