//! Infer responses (JSON, or JSON plus binary tensor data) and model metadata.

use super::INFERENCE_HEADER_CONTENT_LENGTH;
use crate::tensor::{Element, F16};
use crate::{Datatype, Response, Signature, Tensor, TensorInfo};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// An OIP infer response:
/// `{"id"?, "model_name", "model_version"?, "outputs": [{"name", "shape", "datatype", "data"}]}`,
/// `data` flat, written straight from each tensor's bytes.
///
/// An output marked in [`InferResponse::binary_outputs`] goes in binary instead (the binary tensor
/// data extension): its JSON entry has `"parameters": {"binary_data_size": <bytes>}` and no
/// `data`, and its bytes follow the JSON, in the order of `outputs`. Build it from a request with
/// [`ResponsePlan::respond`](super::ResponsePlan::respond).
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    /// The request's id, if it had one.
    pub id: Option<String>,
    /// The model's name as the caller should see it.
    pub model_name: String,
    /// The model's version, if known.
    pub model_version: Option<String>,
    /// The output tensors.
    pub outputs: Vec<Tensor>,
    /// Whether each output (same index) goes in binary; outputs past the end of this list go in
    /// JSON, so an empty list means a plain JSON response.
    pub binary_outputs: Vec<bool>,
}

impl InferResponse {
    /// Whether output `index` goes in binary.
    pub fn is_binary(&self, index: usize) -> bool {
        self.binary_outputs.get(index).copied().unwrap_or(false)
    }

    /// The JSON part of the response: all of it when no output is binary, otherwise the header
    /// that [`InferResponse::to_body`] puts before the binary data.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.json_capacity());
        self.write_json(&mut out);
        out
    }

    /// The whole response body and, when some output is binary, the length of its JSON part
    /// (the value of the `Inference-Header-Content-Length` response header).
    pub fn to_body(&self) -> (Vec<u8>, Option<usize>) {
        let binary: usize = self.binary_tensors().map(|tensor| tensor.data.len()).sum();
        let mut out = Vec::with_capacity(self.json_capacity().saturating_add(binary));
        self.write_json(&mut out);
        if !self.binary_outputs.contains(&true) {
            return (out, None);
        }
        let header_length = out.len();
        for tensor in self.binary_tensors() {
            out.extend_from_slice(&tensor.data);
        }
        (out, Some(header_length))
    }

    /// The outputs that go in binary, in order.
    fn binary_tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.outputs.iter().enumerate().filter(|&(index, _)| self.is_binary(index)).map(|(_, tensor)| tensor)
    }

    /// A guess at the JSON's length that rarely needs to grow: about three characters per byte
    /// of data in JSON.
    fn json_capacity(&self) -> usize {
        let json: usize = self
            .outputs
            .iter()
            .enumerate()
            .filter(|&(index, _)| !self.is_binary(index))
            .map(|(_, tensor)| tensor.data.len())
            .sum();
        256usize.saturating_add(64 * self.outputs.len()).saturating_add(json.saturating_mul(3))
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        // Strings, numbers and tensors built from them always serialize.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.clear();
        }
    }
}

impl Serialize for InferResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 2 + usize::from(self.id.is_some()) + usize::from(self.model_version.is_some());
        let mut out = serializer.serialize_struct("InferResponse", fields)?;
        if let Some(id) = &self.id {
            out.serialize_field("id", id)?;
        }
        out.serialize_field("model_name", &self.model_name)?;
        if let Some(version) = &self.model_version {
            out.serialize_field("model_version", version)?;
        }
        out.serialize_field("outputs", &Outputs(self))?;
        out.end()
    }
}

/// `200` with the response: `application/json`, or when some output is binary
/// `application/octet-stream` with `inference-header-content-length`.
impl From<&InferResponse> for Response {
    fn from(response: &InferResponse) -> Response {
        match response.to_body() {
            (body, None) => Response::new(200, "application/json", body),
            (body, Some(header_length)) => Response::new(200, "application/octet-stream", body)
                .with_header(INFERENCE_HEADER_CONTENT_LENGTH, header_length.to_string()),
        }
    }
}

/// The `outputs` array of a response.
struct Outputs<'a>(&'a InferResponse);

impl Serialize for Outputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        serializer.collect_seq(response.outputs.iter().enumerate().map(|(index, tensor)| {
            if response.is_binary(index) { OutputJson::Binary(tensor) } else { OutputJson::Json(TensorJson(tensor)) }
        }))
    }
}

/// One entry of a response's `outputs`.
enum OutputJson<'a> {
    Json(TensorJson<'a>),
    /// `{"name", "shape", "datatype", "parameters": {"binary_data_size"}}`.
    Binary(&'a Tensor),
}

impl Serialize for OutputJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tensor = match self {
            OutputJson::Json(json) => return json.serialize(serializer),
            OutputJson::Binary(tensor) => tensor,
        };
        let mut out = serializer.serialize_struct("Tensor", 4)?;
        out.serialize_field("name", &tensor.name)?;
        out.serialize_field("shape", &tensor.shape)?;
        out.serialize_field("datatype", tensor.datatype.name())?;
        out.serialize_field("parameters", &BinaryDataSize(tensor.data.len()))?;
        out.end()
    }
}

/// `{"binary_data_size": n}`.
struct BinaryDataSize(usize);

impl Serialize for BinaryDataSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("binary_data_size", &self.0)?;
        map.end()
    }
}

/// Serializes a [`Tensor`] as an OIP tensor: `{"name", "shape", "datatype", "data"}` with flat
/// `data` (`BOOL` as `true`/`false`, `FP16` as numbers). Trailing bytes that do not make a whole
/// element are left out.
#[derive(Debug, Clone, Copy)]
pub struct TensorJson<'a>(pub &'a Tensor);

impl Serialize for TensorJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tensor = self.0;
        let mut out = serializer.serialize_struct("Tensor", 4)?;
        out.serialize_field("name", &tensor.name)?;
        out.serialize_field("shape", &tensor.shape)?;
        out.serialize_field("datatype", tensor.datatype.name())?;
        out.serialize_field("data", &TensorData(tensor))?;
        out.end()
    }
}

/// A tensor's elements as a flat JSON array.
struct TensorData<'a>(&'a Tensor);

impl Serialize for TensorData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn elements<T: Element>(data: &[u8]) -> impl ExactSizeIterator<Item = T> + '_ {
            data.chunks_exact(T::SIZE).map(T::read_le)
        }
        let data = &self.0.data;
        match self.0.datatype {
            Datatype::Bool => serializer.collect_seq(elements::<bool>(data)),
            Datatype::Uint8 => serializer.collect_seq(elements::<u8>(data)),
            Datatype::Uint16 => serializer.collect_seq(elements::<u16>(data)),
            Datatype::Uint32 => serializer.collect_seq(elements::<u32>(data)),
            Datatype::Uint64 => serializer.collect_seq(elements::<u64>(data)),
            Datatype::Int8 => serializer.collect_seq(elements::<i8>(data)),
            Datatype::Int16 => serializer.collect_seq(elements::<i16>(data)),
            Datatype::Int32 => serializer.collect_seq(elements::<i32>(data)),
            Datatype::Int64 => serializer.collect_seq(elements::<i64>(data)),
            Datatype::Fp16 => serializer.collect_seq(elements::<F16>(data).map(F16::to_f32)),
            Datatype::Fp32 => serializer.collect_seq(elements::<f32>(data)),
            Datatype::Fp64 => serializer.collect_seq(elements::<f64>(data)),
        }
    }
}

/// OIP model metadata: `{"name", "versions"?, "platform"?, "inputs": [{"name", "datatype",
/// "shape"}], "outputs": [...]}`, `-1` marking a dimension that varies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The model's name as the caller should see it.
    pub name: String,
    /// The model's versions, left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// The framework the model is for (`onnx`), left out of the JSON when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The model's inputs.
    pub inputs: Vec<TensorMetadata>,
    /// The model's outputs.
    pub outputs: Vec<TensorMetadata>,
}

/// Name, OIP datatype and shape of one model input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMetadata {
    /// The input or output name.
    pub name: String,
    /// The OIP datatype name (`FP32`, …).
    pub datatype: String,
    /// Dimensions; `-1` for one that varies.
    pub shape: Vec<i64>,
}

impl ModelMetadata {
    /// The metadata of a model called `name` with `versions` and `signature`, platform unknown
    /// (set [`ModelMetadata::platform`] afterwards if you know it).
    pub fn new(name: impl Into<String>, versions: Vec<String>, signature: &Signature) -> Self {
        ModelMetadata {
            name: name.into(),
            versions,
            platform: None,
            inputs: signature.inputs.iter().map(TensorMetadata::from).collect(),
            outputs: signature.outputs.iter().map(TensorMetadata::from).collect(),
        }
    }
}

impl From<&TensorInfo> for TensorMetadata {
    fn from(info: &TensorInfo) -> Self {
        TensorMetadata { name: info.name.clone(), datatype: info.datatype.name().into(), shape: info.shape.clone() }
    }
}
