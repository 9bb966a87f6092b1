//! Open Inference Protocol (KServe v2) JSON: infer requests in, infer responses and model
//! metadata out.
//!
//! 1. [`InferRequest::from_json`] parses the request body. Each input's `data` stays borrowed
//!    JSON text until its datatype and shape are known.
//! 2. [`InferRequest::tensors`] (or [`InputTensor::to_tensor`] for one input) decodes each `data`
//!    (flat or nested arrays, flattened row-major) straight into the tensor's little-endian
//!    bytes, checking every element against the datatype and the element count against the
//!    shape. Errors name the input and the element.
//! 3. [`InferResponse`] serializes the model's output [`Tensor`]s with flat `data`, read straight
//!    from their bytes; [`InferResponse::to_json`] gives the body.
//!
//! ```
//! use maas_guest::oip::{InferRequest, InferResponse};
//!
//! let body = br#"{"id": "7", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
//!                 "data": [[1, 2], [3.5, 4]]}]}"#;
//! let request = InferRequest::from_json(body)?;
//! let inputs = request.tensors()?;
//! assert_eq!(inputs[0].to_f32(), Some(vec![1.0, 2.0, 3.5, 4.0]));
//!
//! // let outputs = maas_guest::infer("model", &inputs)?;
//! let outputs = inputs;
//! let response = InferResponse {
//!     id: request.id.clone(),
//!     model_name: "model".into(),
//!     model_version: None,
//!     outputs,
//! };
//! assert_eq!(
//!     String::from_utf8(response.to_json()).unwrap(),
//!     r#"{"id":"7","model_name":"model","outputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1.0,2.0,3.5,4.0]}]}"#,
//! );
//! # Ok::<(), maas_guest::oip::OipError>(())
//! ```
//!
//! Supported datatypes: `BOOL` (JSON `true`/`false`), `UINT8`…`UINT64`, `INT8`…`INT64` (JSON
//! integers, or numbers with no fractional part, in range), `FP16`, `FP32`, `FP64` (any JSON
//! number, rounded to nearest). `BYTES` tensors and the binary tensor data extension are not.

use crate::tensor::{Element, F16};
use crate::{Datatype, Response, Signature, Tensor, TensorInfo};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// Why an OIP request could not be turned into tensors. Its message names the input at fault and
/// is meant for the caller: answer it with `Response::from(error)` (`400 invalid_input`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OipError {
    message: String,
}

impl OipError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> OipError {
        OipError { message: message.into() }
    }

    /// The explanation, for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for OipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OipError {}

/// `400 invalid_input` with the error's message.
impl From<OipError> for Response {
    fn from(err: OipError) -> Response {
        Response::error(400, "invalid_input", err.message)
    }
}

/// An OIP infer request as it arrives:
/// `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data", "parameters"?}],
/// "outputs"?: [{"name", "parameters"?}]}`.
#[derive(Debug, Deserialize)]
pub struct InferRequest<'a> {
    /// The caller's request id, echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters, passed through untouched.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors, still undecoded.
    #[serde(borrow)]
    pub inputs: Vec<InputTensor<'a>>,
    /// The outputs the caller wants; all of them when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input of an [`InferRequest`], with its `data` still JSON text.
#[derive(Debug, Deserialize)]
pub struct InputTensor<'a> {
    /// The model input this tensor feeds.
    pub name: String,
    /// Dimensions; checked to be non-negative by [`InputTensor::to_tensor`].
    pub shape: Vec<i64>,
    /// The OIP datatype name, checked by [`InputTensor::to_tensor`].
    pub datatype: String,
    /// The elements: a JSON array, flat or nested. Absent when the caller used the binary
    /// tensor data extension, which this module does not support.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    /// Input parameters, passed through untouched.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// One entry of an infer request's `outputs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestedOutput {
    /// The model output wanted.
    pub name: String,
    /// Output parameters, passed through untouched.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

impl<'a> InferRequest<'a> {
    /// Parses an infer request body. Each input's `data` is only checked to be JSON here;
    /// [`InferRequest::tensors`] decodes it.
    pub fn from_json(body: &'a [u8]) -> Result<InferRequest<'a>, OipError> {
        serde_json::from_slice(body).map_err(|err| OipError::new(format!("invalid OIP infer request: {err}")))
    }

    /// Decodes every input into a [`Tensor`], in the request's order.
    pub fn tensors(&self) -> Result<Vec<Tensor>, OipError> {
        self.inputs.iter().map(InputTensor::to_tensor).collect()
    }

    /// The names in `outputs`, if the caller asked for specific outputs. `None` when `outputs`
    /// is absent or empty: both mean every output.
    pub fn requested_outputs(&self) -> Option<impl Iterator<Item = &str>> {
        self.outputs
            .as_ref()
            .filter(|outputs| !outputs.is_empty())
            .map(|outputs| outputs.iter().map(|output| output.name.as_str()))
    }
}

impl InputTensor<'_> {
    /// Decodes this input: checks the datatype and the shape, then writes every element of
    /// `data` (flattened row-major) little-endian into the tensor's bytes.
    pub fn to_tensor(&self) -> Result<Tensor, OipError> {
        let fail = |problem: String| OipError::new(format!("input \"{}\": {problem}", self.name));
        let datatype = parse_datatype(&self.datatype).map_err(fail)?;
        let shape = self
            .shape
            .iter()
            .map(|&dim| u64::try_from(dim))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|_| fail(format!("shape {:?} has a negative dimension", self.shape)))?;
        let expected = shape
            .iter()
            .try_fold(1u64, |count, &dim| count.checked_mul(dim))
            .ok_or_else(|| fail(format!("shape {shape:?} has too many elements")))?;
        let Some(data) = self.data else {
            return Err(fail("has no \"data\" (binary tensor data is not supported here)".into()));
        };
        let text = data.get();
        if !text.trim_start().starts_with('[') {
            return Err(fail("\"data\" must be an array".into()));
        }
        // Every element takes at least two characters of JSON (a digit and a comma or bracket),
        // so the text bounds the allocation even when the shape claims more.
        let capacity = expected.min(text.len() as u64 / 2 + 1) as usize * datatype.size();
        let mut decoder = Decoder { datatype, expected, count: 0, out: Vec::with_capacity(capacity), problem: None };
        let mut json = serde_json::Deserializer::from_str(text);
        if let Err(err) = (&mut decoder).deserialize(&mut json) {
            return Err(fail(decoder.problem.unwrap_or_else(|| err.to_string())));
        }
        if decoder.count != expected {
            return Err(fail(format!("shape {shape:?} holds {expected} elements but \"data\" has {}", decoder.count)));
        }
        Ok(Tensor { name: self.name.clone(), datatype, shape, data: decoder.out })
    }
}

/// The datatype named `name`, or why not.
fn parse_datatype(name: &str) -> Result<Datatype, String> {
    if name == "BYTES" {
        return Err("BYTES tensors are not supported".into());
    }
    Datatype::from_name(name).ok_or_else(|| {
        let names = Datatype::ALL.map(Datatype::name).join(", ");
        format!("unknown datatype {name:?} (expected one of {names})")
    })
}

/// Walks `data`'s nested arrays and appends each element, encoded, to `out`.
struct Decoder {
    datatype: Datatype,
    /// Elements the shape holds: elements beyond are counted, not stored.
    expected: u64,
    /// Elements seen so far.
    count: u64,
    out: Vec<u8>,
    /// The caller-facing reason decoding stopped, when it was an element's fault.
    problem: Option<String>,
}

/// One JSON scalar, as serde_json hands it over.
#[derive(Clone, Copy)]
enum Scalar {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::U64(v) => write!(f, "{v}"),
            Scalar::I64(v) => write!(f, "{v}"),
            Scalar::F64(v) => write!(f, "{v}"),
        }
    }
}

impl Decoder {
    fn element<E: de::Error>(&mut self, value: Scalar) -> Result<(), E> {
        let index = self.count;
        self.count += 1;
        if index >= self.expected {
            return Ok(());
        }
        encode(self.datatype, value, &mut self.out)
            .map_err(|problem| self.stop(format!("element {index} is {value}, {problem}")))
    }

    fn not_a_scalar<E: de::Error>(&mut self, what: &str) -> E {
        let expected = if self.datatype == Datatype::Bool { "true or false" } else { "a number" };
        self.stop(format!("element {} is {what}, expected {expected}", self.count))
    }

    fn stop<E: de::Error>(&mut self, problem: String) -> E {
        self.problem = Some(problem);
        E::custom("invalid element")
    }
}

impl<'de> DeserializeSeed<'de> for &mut Decoder {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Decoder {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} elements, in arrays", self.datatype)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.element(Scalar::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.element(Scalar::U64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.element(Scalar::I64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.element(Scalar::F64(v))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_scalar("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_scalar("null"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_a_scalar("an object"))
    }
}

/// Appends `value` as one little-endian `datatype` element, or says why it is not one.
fn encode(datatype: Datatype, value: Scalar, out: &mut Vec<u8>) -> Result<(), String> {
    match datatype {
        Datatype::Bool => match value {
            Scalar::Bool(v) => v.write_le(out),
            _ => return Err("expected true or false".into()),
        },
        Datatype::Uint8 => integer::<u8>(value)?.write_le(out),
        Datatype::Uint16 => integer::<u16>(value)?.write_le(out),
        Datatype::Uint32 => integer::<u32>(value)?.write_le(out),
        Datatype::Uint64 => integer::<u64>(value)?.write_le(out),
        Datatype::Int8 => integer::<i8>(value)?.write_le(out),
        Datatype::Int16 => integer::<i16>(value)?.write_le(out),
        Datatype::Int32 => integer::<i32>(value)?.write_le(out),
        Datatype::Int64 => integer::<i64>(value)?.write_le(out),
        Datatype::Fp16 => F16::from_f32(float(value)? as f32).write_le(out),
        Datatype::Fp32 => (float(value)? as f32).write_le(out),
        Datatype::Fp64 => float(value)?.write_le(out),
    }
    Ok(())
}

/// `value` as the integer element type `T`: integers in range, and numbers with no fractional
/// part in range.
fn integer<T: Element + TryFrom<u64> + TryFrom<i64>>(value: Scalar) -> Result<T, String> {
    let out_of_range = || format!("out of range for {}", T::DATATYPE);
    match value {
        Scalar::U64(v) => T::try_from(v).map_err(|_| out_of_range()),
        Scalar::I64(v) => T::try_from(v).map_err(|_| out_of_range()),
        Scalar::F64(v) if v.fract() != 0.0 || !v.is_finite() => {
            Err(format!("not an integer ({} needs integers)", T::DATATYPE))
        }
        // 2^64 and -2^63 are exact in f64; the casts below are exact for integral values in range.
        Scalar::F64(v) if (0.0..18_446_744_073_709_551_616.0).contains(&v) => {
            T::try_from(v as u64).map_err(|_| out_of_range())
        }
        Scalar::F64(v) if (-9_223_372_036_854_775_808.0..0.0).contains(&v) => {
            T::try_from(v as i64).map_err(|_| out_of_range())
        }
        Scalar::F64(_) => Err(out_of_range()),
        Scalar::Bool(_) => Err("expected a number".into()),
    }
}

/// `value` as a float element (rounded to nearest later, for `FP32` and `FP16`).
fn float(value: Scalar) -> Result<f64, String> {
    match value {
        Scalar::U64(v) => Ok(v as f64),
        Scalar::I64(v) => Ok(v as f64),
        Scalar::F64(v) => Ok(v),
        Scalar::Bool(_) => Err("expected a number".into()),
    }
}

/// An OIP infer response:
/// `{"id"?, "model_name", "model_version"?, "outputs": [{"name", "shape", "datatype", "data"}]}`,
/// `data` flat, written straight from each tensor's bytes.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model's name as the caller should see it.
    pub model_name: String,
    /// The model's version, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The output tensors.
    #[serde(serialize_with = "serialize_tensors")]
    pub outputs: Vec<Tensor>,
}

impl InferResponse {
    /// The response as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // About three characters of JSON per byte of tensor data, to grow the buffer rarely.
        let data: usize = self.outputs.iter().map(|tensor| tensor.data.len()).sum();
        let mut out = Vec::with_capacity(256 + data.saturating_mul(3));
        // Strings, numbers and tensors built from them always serialize.
        if serde_json::to_writer(&mut out, self).is_err() {
            out.clear();
        }
        out
    }
}

/// `200` with the response as JSON.
impl From<&InferResponse> for Response {
    fn from(response: &InferResponse) -> Response {
        Response::new(200, "application/json", response.to_json())
    }
}

fn serialize_tensors<S: Serializer>(tensors: &[Tensor], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(tensors.iter().map(TensorJson))
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

/// OIP model metadata: `{"name", "versions"?, "inputs": [{"name", "datatype", "shape"}],
/// "outputs": [...]}`, `-1` marking a dimension that varies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The model's name as the caller should see it.
    pub name: String,
    /// The model's versions, left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
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
    /// The metadata of a model called `name` with `versions` and `signature`.
    pub fn new(name: impl Into<String>, versions: Vec<String>, signature: &Signature) -> Self {
        ModelMetadata {
            name: name.into(),
            versions,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(inputs: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({ "inputs": inputs })).unwrap()
    }

    fn decode_one(input: Value) -> Result<Tensor, OipError> {
        let body = request(json!([input]));
        let request = InferRequest::from_json(&body)?;
        let mut tensors = request.tensors()?;
        Ok(tensors.remove(0))
    }

    fn error(input: Value) -> String {
        decode_one(input).unwrap_err().message().to_owned()
    }

    #[test]
    fn flat_and_nested_fp32() {
        let flat = decode_one(json!({"name": "x", "shape": [2, 3], "datatype": "FP32",
                                     "data": [1, 2, 3, 4, 5, 6.5]}))
        .unwrap();
        let nested = decode_one(json!({"name": "x", "shape": [2, 3], "datatype": "FP32",
                                       "data": [[1, 2, 3], [4, 5, 6.5]]}))
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.name, "x");
        assert_eq!(flat.datatype, Datatype::Fp32);
        assert_eq!(flat.shape, vec![2, 3]);
        assert_eq!(&flat.data[..4], &1.0f32.to_le_bytes());
        assert_eq!(flat.to_f32(), Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
        let deep = decode_one(json!({"name": "x", "shape": [1, 2, 1], "datatype": "FP32",
                                     "data": [[[1], [2]]]}))
        .unwrap();
        assert_eq!(deep.to_f32(), Some(vec![1.0, 2.0]));
    }

    #[test]
    fn every_datatype() {
        let cases = [
            ("BOOL", json!([true, false]), vec![1, 0]),
            ("UINT8", json!([0, 255]), vec![0, 255]),
            ("UINT16", json!([1, 65535]), vec![1, 0, 255, 255]),
            ("INT8", json!([-128, 127.0]), vec![0x80, 0x7f]),
            ("INT16", json!([-2, 3]), vec![0xfe, 0xff, 3, 0]),
            ("FP16", json!([1, -2.0]), vec![0x00, 0x3c, 0x00, 0xc0]),
        ];
        for (datatype, data, bytes) in cases {
            let tensor = decode_one(json!({"name": "t", "shape": [2], "datatype": datatype,
                                           "data": data}))
            .unwrap();
            assert_eq!(tensor.datatype.name(), datatype);
            assert_eq!(tensor.data, bytes, "{datatype}");
        }
        let wide = decode_one(json!({"name": "t", "shape": [2], "datatype": "UINT64",
                                     "data": [u64::MAX, 0]}))
        .unwrap();
        assert_eq!(wide.to_vec::<u64>(), Some(vec![u64::MAX, 0]));
        let signed = decode_one(json!({"name": "t", "shape": [3], "datatype": "INT64",
                                       "data": [i64::MIN, i64::MAX, -1]}))
        .unwrap();
        assert_eq!(signed.to_vec::<i64>(), Some(vec![i64::MIN, i64::MAX, -1]));
        let int32 = decode_one(json!({"name": "t", "shape": [2], "datatype": "INT32",
                                      "data": [-2147483648i64, 2147483647]}))
        .unwrap();
        assert_eq!(int32.to_vec::<i32>(), Some(vec![i32::MIN, i32::MAX]));
        let uint32 = decode_one(json!({"name": "t", "shape": [1], "datatype": "UINT32",
                                       "data": [4294967295u64]}))
        .unwrap();
        assert_eq!(uint32.to_vec::<u32>(), Some(vec![u32::MAX]));
        let fp64 = decode_one(json!({"name": "t", "shape": [2], "datatype": "FP64",
                                     "data": [0.1, -3]}))
        .unwrap();
        assert_eq!(fp64.to_vec::<f64>(), Some(vec![0.1, -3.0]));
    }

    #[test]
    fn scalar_shape() {
        let scalar = decode_one(json!({"name": "s", "shape": [], "datatype": "INT32", "data": [5]})).unwrap();
        assert_eq!(scalar.shape, Vec::<u64>::new());
        assert_eq!(scalar.to_vec::<i32>(), Some(vec![5]));
        let empty = decode_one(json!({"name": "e", "shape": [0, 3], "datatype": "FP32", "data": []})).unwrap();
        assert!(empty.data.is_empty());
    }

    #[test]
    fn element_count_must_match_shape() {
        assert_eq!(
            error(json!({"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]})),
            "input \"x\": shape [2, 3] holds 6 elements but \"data\" has 3"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [2], "datatype": "FP32", "data": [[1, 2], [3]]})),
            "input \"x\": shape [2] holds 2 elements but \"data\" has 3"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [1000000000, 1000000000], "datatype": "FP64",
                         "data": [1]})),
            "input \"x\": shape [1000000000, 1000000000] holds 1000000000000000000 elements \
             but \"data\" has 1"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [i64::MAX, 4], "datatype": "FP32", "data": [1]})),
            format!("input \"x\": shape [{}, 4] has too many elements", i64::MAX)
        );
    }

    #[test]
    fn bad_shapes_and_datatypes() {
        assert_eq!(
            error(json!({"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]})),
            "input \"x\": shape [-1, 3] has a negative dimension"
        );
        assert_eq!(
            error(json!({"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]})),
            "input \"text\": BYTES tensors are not supported"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [1], "datatype": "fp32", "data": [1]})),
            "input \"x\": unknown datatype \"fp32\" (expected one of BOOL, UINT8, UINT16, UINT32, \
             UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64)"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [1], "datatype": "FP32"})),
            "input \"x\": has no \"data\" (binary tensor data is not supported here)"
        );
        assert_eq!(
            error(json!({"name": "x", "shape": [1], "datatype": "FP32", "data": 1})),
            "input \"x\": \"data\" must be an array"
        );
    }

    #[test]
    fn bad_elements() {
        let cases = [
            ("UINT8", json!([1, 256]), "element 1 is 256, out of range for UINT8"),
            ("UINT32", json!([-1, 0]), "element 0 is -1, out of range for UINT32"),
            ("INT8", json!([1, 1.5]), "element 1 is 1.5, not an integer (INT8 needs integers)"),
            ("INT64", json!([1e19, 0]), "element 0 is 10000000000000000000, out of range for INT64"),
            ("BOOL", json!([true, 1]), "element 1 is 1, expected true or false"),
            ("FP32", json!([true, 1]), "element 0 is true, expected a number"),
            ("FP32", json!([1, "2"]), "element 1 is a string, expected a number"),
            ("FP32", json!([null, 2]), "element 0 is null, expected a number"),
            ("BOOL", json!([[true], [{}]]), "element 1 is an object, expected true or false"),
        ];
        for (datatype, data, message) in cases {
            assert_eq!(
                error(json!({"name": "in", "shape": [2], "datatype": datatype, "data": data})),
                format!("input \"in\": {message}"),
                "{datatype}"
            );
        }
    }

    #[test]
    fn request_fields() {
        let body = br#"{"id": "r1", "parameters": {"p": 1},
            "inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1],
                        "parameters": {"q": true}}],
            "outputs": [{"name": "y"}, {"name": "z", "parameters": {}}]}"#;
        let request = InferRequest::from_json(body).unwrap();
        assert_eq!(request.id.as_deref(), Some("r1"));
        assert_eq!(request.parameters.as_ref().unwrap()["p"], json!(1));
        assert_eq!(request.inputs[0].parameters.as_ref().unwrap()["q"], json!(true));
        assert_eq!(request.requested_outputs().unwrap().collect::<Vec<_>>(), ["y", "z"]);
        let plain = InferRequest::from_json(br#"{"inputs": []}"#).unwrap();
        assert!(plain.id.is_none() && plain.requested_outputs().is_none());
        let all = InferRequest::from_json(br#"{"inputs": [], "outputs": []}"#).unwrap();
        assert!(all.requested_outputs().is_none());
    }

    #[test]
    fn malformed_requests() {
        let missing = InferRequest::from_json(br#"{"id": "1"}"#).unwrap_err();
        assert!(missing.message().starts_with("invalid OIP infer request: missing field `inputs`"));
        let syntax = InferRequest::from_json(b"{\"inputs\": [").unwrap_err();
        assert!(syntax.message().starts_with("invalid OIP infer request: "), "{syntax}");
        let shape =
            InferRequest::from_json(br#"{"inputs": [{"name": "x", "shape": "2", "datatype": "FP32", "data": []}]}"#)
                .unwrap_err();
        assert!(shape.message().contains("invalid type: string"), "{shape}");
        let response = Response::from(missing);
        assert_eq!(response.status, 400);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["code"], "invalid_input");
    }

    #[test]
    fn response_json() {
        let response = InferResponse {
            id: None,
            model_name: "m".into(),
            model_version: Some("2".into()),
            outputs: vec![
                Tensor::from_f32("p", [1, 3], &[0.1, 0.7, 0.2]),
                Tensor::from_slice("b", [2], &[true, false]),
                Tensor::from_slice("h", [2], &[F16::from_f32(0.5), F16::from_f32(-1.0)]),
                Tensor::from_slice("i", [2], &[i64::MIN, 3]),
                Tensor::from_slice("u", [1], &[u64::MAX]),
            ],
        };
        let json: Value = serde_json::from_slice(&response.to_json()).unwrap();
        assert_eq!(
            json,
            json!({"model_name": "m", "model_version": "2", "outputs": [
                {"name": "p", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2]},
                {"name": "b", "shape": [2], "datatype": "BOOL", "data": [true, false]},
                {"name": "h", "shape": [2], "datatype": "FP16", "data": [0.5, -1.0]},
                {"name": "i", "shape": [2], "datatype": "INT64", "data": [i64::MIN, 3]},
                {"name": "u", "shape": [1], "datatype": "UINT64", "data": [u64::MAX]},
            ]})
        );
        // f32 values print in their shortest form, not widened to f64.
        let text = String::from_utf8(response.to_json()).unwrap();
        assert!(text.contains("[0.1,0.7,0.2]"), "{text}");
        let http = Response::from(&response);
        assert_eq!((http.status, http.header("content-type")), (200, Some("application/json")));
    }

    #[test]
    fn decode_then_encode_round_trips() {
        for datatype in Datatype::ALL {
            let data = match datatype {
                Datatype::Bool => json!([[true, false], [false, true]]),
                Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64 => {
                    json!([[0, 1], [2, 3]])
                }
                Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64 => {
                    json!([[0.5, -1.0], [2.25, 3.0]])
                }
                _ => json!([[0, -1], [2, -3]]),
            };
            let input = json!({"name": "x", "shape": [2, 2], "datatype": datatype.name(),
                               "data": data.clone()});
            let tensor = decode_one(input).unwrap();
            assert_eq!(tensor.data.len(), 4 * datatype.size());
            let response = InferResponse {
                id: Some("id".into()),
                model_name: "m".into(),
                model_version: None,
                outputs: vec![tensor],
            };
            let json: Value = serde_json::from_slice(&response.to_json()).unwrap();
            let flat: Vec<Value> =
                data.as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().clone()).collect();
            assert_eq!(json["outputs"][0]["data"], Value::Array(flat), "{datatype}");
            assert_eq!(json["id"], "id");
            assert!(json.get("model_version").is_none());
        }
    }

    #[test]
    fn metadata_json() {
        let signature = Signature {
            inputs: vec![TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 4] }],
            outputs: vec![TensorInfo { name: "y".into(), datatype: Datatype::Int64, shape: vec![-1] }],
        };
        let metadata = ModelMetadata::new("iris", vec![], &signature);
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({"name": "iris",
                   "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                   "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]})
        );
        let versioned = ModelMetadata::new("iris", vec!["3".into()], &signature);
        assert_eq!(serde_json::to_value(&versioned).unwrap()["versions"], json!(["3"]));
    }
}
