//! Infer requests: parsing, binary tensor data, validation against the model, decoding.

use super::{InferResponse, OipError};
use crate::tensor::{Element, F16};
use crate::{Datatype, Signature, Tensor, TensorInfo};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// An OIP infer request as it arrives:
/// `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?, "data"?}],
/// "outputs"?: [{"name", "parameters"?}]}`.
///
/// Build it with [`InferRequest::from_body`] (or [`InferRequest::from_json`] for a body without
/// binary data): deserializing it directly leaves the binary data of the inputs unattached.
#[derive(Debug, Deserialize)]
pub struct InferRequest<'a> {
    /// The caller's request id, echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters. `binary_data_output` (a bool: every output in binary unless the output
    /// says otherwise) is checked and used; the others are passed through untouched.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors, still undecoded.
    #[serde(borrow)]
    pub inputs: Vec<InputTensor<'a>>,
    /// The outputs the caller wants; all of them when absent or empty.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input of an [`InferRequest`], with its data not decoded yet: either `data` (JSON text) or
/// `binary_data` (its slice of the body's binary part).
#[derive(Debug, Deserialize)]
pub struct InputTensor<'a> {
    /// The model input this tensor feeds.
    pub name: String,
    /// Dimensions; checked to be non-negative by [`InputTensor::to_tensor`].
    pub shape: Vec<i64>,
    /// The OIP datatype name, checked by [`InputTensor::to_tensor`].
    pub datatype: String,
    /// The elements as JSON: an array, flat or nested. Absent when the caller sent the tensor as
    /// binary data.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    /// Input parameters. `binary_data_size` (bytes of binary data) is checked and used; the
    /// others are passed through untouched.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The tensor's bytes (little-endian, row-major, `BOOL` one byte each) from the binary part of
    /// the body, when the input has a `binary_data_size` parameter; set by
    /// [`InferRequest::from_body`].
    #[serde(skip)]
    pub binary_data: Option<&'a [u8]>,
}

/// One entry of an infer request's `outputs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestedOutput {
    /// The model output wanted.
    pub name: String,
    /// Output parameters. `binary_data` (a bool: this output in binary, or not, whatever the
    /// request's `binary_data_output` says) is checked and used; the others are passed through.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// Parameter names of the binary tensor data extension.
const BINARY_DATA_SIZE: &str = "binary_data_size";
const BINARY_DATA: &str = "binary_data";
const BINARY_DATA_OUTPUT: &str = "binary_data_output";

/// The value of parameter `name`, `null` counting as absent.
fn parameter<'p>(parameters: &'p Option<Map<String, Value>>, name: &str) -> Option<&'p Value> {
    parameters.as_ref()?.get(name).filter(|value| !value.is_null())
}

/// The bool parameter `name`, if set; `what` names its owner in the error.
fn bool_parameter(parameters: &Option<Map<String, Value>>, name: &str, what: &str) -> Result<Option<bool>, OipError> {
    match parameter(parameters, name) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(OipError::new(format!("{what}: parameter {name} must be true or false, not {other}"))),
    }
}

/// Refuses the parameters of extensions this module does not implement, which a client would
/// otherwise believe honoured.
fn refuse_unsupported(parameters: &Option<Map<String, Value>>, what: &str) -> Result<(), OipError> {
    if parameter(parameters, "shared_memory_region").is_some() {
        return Err(OipError::new(format!(
            "{what}: shared memory (shared_memory_region) is not supported; send the data in the request body"
        )));
    }
    if parameter(parameters, "classification").is_some_and(|count| count.as_u64() != Some(0)) {
        return Err(OipError::new(format!("{what}: the classification extension is not supported")));
    }
    Ok(())
}

/// `"a", "b", "c"`: names quoted, for error messages.
fn quoted<'n>(names: impl IntoIterator<Item = &'n str>) -> String {
    names.into_iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
}

impl<'a> InferRequest<'a> {
    /// Parses an infer request body that is all JSON (no binary tensor data): the same as
    /// [`InferRequest::from_body`] without `Inference-Header-Content-Length`.
    pub fn from_json(body: &'a [u8]) -> Result<InferRequest<'a>, OipError> {
        InferRequest::from_body(body, None)
    }

    /// Parses an infer request body (already decompressed, see
    /// [`request_body`](super::request_body)) whose request had the
    /// `Inference-Header-Content-Length` header value `header_length`, if any.
    ///
    /// With the header, the first `header_length` bytes are the JSON request and the rest is
    /// binary tensor data: the inputs with a `binary_data_size` parameter get that many bytes
    /// each, one after another, in the order they are listed. Without it the body is all JSON.
    /// Each input's JSON `data` is only checked to be JSON here; [`InferRequest::tensors`]
    /// decodes it.
    ///
    /// # Errors
    ///
    /// `400 invalid_input` when the header is not a number or exceeds the body, the JSON is
    /// malformed, a parameter of the extension has the wrong type, an input has both `data` and
    /// `binary_data_size`, the binary part is shorter or longer than the sizes declared, or the
    /// request uses shared memory or classification.
    pub fn from_body(body: &'a [u8], header_length: Option<&str>) -> Result<InferRequest<'a>, OipError> {
        let (json, binary) = match header_length {
            None => (body, &body[body.len()..]),
            Some(value) => {
                let length = value.trim().parse::<usize>().map_err(|_| {
                    OipError::new(format!(
                        "Inference-Header-Content-Length {value:?} is not a number of bytes: it gives the length \
                         of the JSON part of the body"
                    ))
                })?;
                if length > body.len() {
                    return Err(OipError::new(format!(
                        "Inference-Header-Content-Length is {length} but the body has only {} bytes",
                        body.len()
                    )));
                }
                body.split_at(length)
            }
        };
        let mut request: InferRequest<'a> =
            serde_json::from_slice(json).map_err(|err| malformed(&err, header_length.is_some()))?;
        request.check_parameters()?;
        request.attach_binary_data(binary, header_length.is_some())?;
        Ok(request)
    }

    /// Checks the types of the extension's parameters and refuses unsupported extensions.
    fn check_parameters(&self) -> Result<(), OipError> {
        bool_parameter(&self.parameters, BINARY_DATA_OUTPUT, "the request")?;
        refuse_unsupported(&self.parameters, "the request")?;
        for input in &self.inputs {
            refuse_unsupported(&input.parameters, &format!("input {:?}", input.name))?;
        }
        for output in self.outputs.iter().flatten() {
            let what = format!("requested output {:?}", output.name);
            bool_parameter(&output.parameters, BINARY_DATA, &what)?;
            refuse_unsupported(&output.parameters, &what)?;
        }
        Ok(())
    }

    /// Hands each input with `binary_data_size` its slice of `binary`, checking that the sizes
    /// add up to exactly `binary`'s length.
    fn attach_binary_data(&mut self, binary: &'a [u8], has_header: bool) -> Result<(), OipError> {
        let mut offset = 0usize;
        for input in &mut self.inputs {
            let Some(size) = input.binary_data_size()? else {
                continue;
            };
            if input.data.is_some() {
                return Err(OipError::new(format!(
                    "input {:?} has both \"data\" and a binary_data_size parameter: send one or the other",
                    input.name
                )));
            }
            let end = offset.checked_add(size).filter(|&end| end <= binary.len()).ok_or_else(|| {
                if has_header {
                    OipError::new(format!(
                        "the binary tensor data is truncated: input {:?} (binary_data_size {size}) needs bytes \
                         {offset}..{} after the JSON header, but only {} bytes follow it",
                        input.name,
                        offset as u128 + size as u128,
                        binary.len()
                    ))
                } else {
                    OipError::new(format!(
                        "input {:?} has binary_data_size {size} but the request has no binary tensor data: send it \
                         after the JSON and give the JSON's length in the Inference-Header-Content-Length header",
                        input.name
                    ))
                }
            })?;
            input.binary_data = Some(&binary[offset..end]);
            offset = end;
        }
        if offset != binary.len() {
            return Err(OipError::new(format!(
                "{} bytes of binary tensor data follow the JSON header, but the inputs' binary_data_size \
                 parameters add up to {offset}",
                binary.len()
            )));
        }
        Ok(())
    }

    /// Checks the request against the model's `signature` before anything is decoded: every
    /// model input given exactly once, with the model's datatype and a shape the model accepts
    /// (same rank; a model dimension of `-1` matches any size), and every requested output one
    /// of the model's, asked for once.
    ///
    /// Element and byte counts are checked by [`InferRequest::tensors`], which reads the data.
    pub fn validate(&self, signature: &Signature) -> Result<(), OipError> {
        let input_names = || quoted(signature.inputs.iter().map(|info| info.name.as_str()));
        let mut given = vec![false; signature.inputs.len()];
        for input in &self.inputs {
            let Some(index) = signature.inputs.iter().position(|info| info.name == input.name) else {
                return Err(OipError::new(format!(
                    "unknown input {:?}: the model's inputs are {}",
                    input.name,
                    input_names()
                )));
            };
            if std::mem::replace(&mut given[index], true) {
                return Err(OipError::new(format!("input {:?} is given more than once", input.name)));
            }
            input.check_against(&signature.inputs[index])?;
        }
        let missing: Vec<&str> = signature
            .inputs
            .iter()
            .zip(&given)
            .filter(|(_, given)| !**given)
            .map(|(info, _)| info.name.as_str())
            .collect();
        if !missing.is_empty() {
            let noun = if missing.len() == 1 { "input" } else { "inputs" };
            let names = quoted(missing);
            return Err(OipError::new(format!("missing {noun} {names}: the model's inputs are {}", input_names())));
        }
        let outputs = self.outputs.iter().flatten();
        for (index, output) in outputs.clone().enumerate() {
            if !signature.outputs.iter().any(|info| info.name == output.name) {
                return Err(OipError::new(format!(
                    "requested output {:?} is not an output of the model: its outputs are {}",
                    output.name,
                    quoted(signature.outputs.iter().map(|info| info.name.as_str()))
                )));
            }
            if outputs.clone().take(index).any(|earlier| earlier.name == output.name) {
                return Err(OipError::new(format!("output {:?} is requested more than once", output.name)));
            }
        }
        Ok(())
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

    /// What the response to this request should hold (see [`ResponsePlan`]). It owns its data:
    /// the request and its body can be freed before inference.
    pub fn response_plan(&self) -> ResponsePlan {
        // `check_parameters` refused non-bool values; were it skipped, they count as absent.
        let binary_by_default =
            bool_parameter(&self.parameters, BINARY_DATA_OUTPUT, "").ok().flatten().unwrap_or(false);
        let outputs = self.outputs.as_ref().filter(|outputs| !outputs.is_empty()).map(|outputs| {
            outputs
                .iter()
                .map(|output| {
                    let binary = bool_parameter(&output.parameters, BINARY_DATA, "").ok().flatten();
                    (output.name.clone(), binary.unwrap_or(binary_by_default))
                })
                .collect()
        });
        ResponsePlan { id: self.id.clone(), outputs, binary_by_default }
    }
}

/// The caller-facing error for a body that is not an infer request.
fn malformed(err: &serde_json::Error, has_header: bool) -> OipError {
    let hint = if !has_header && err.is_syntax() && err.to_string().starts_with("trailing characters") {
        " (a body with binary tensor data after the JSON needs an Inference-Header-Content-Length header)"
    } else if has_header {
        " (in the JSON header, the first Inference-Header-Content-Length bytes of the body)"
    } else {
        ""
    };
    OipError::new(format!("invalid OIP infer request JSON: {err}{hint}"))
}

/// What an infer response should hold, taken from the request by [`InferRequest::response_plan`]:
/// the id to echo, the outputs wanted and which of them go in binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePlan {
    /// The request's id, echoed in the response.
    pub id: Option<String>,
    /// The outputs asked for, each with whether it goes in binary (its `binary_data` parameter,
    /// else the request's `binary_data_output`); `None` means every output of the model.
    pub outputs: Option<Vec<(String, bool)>>,
    /// The request's `binary_data_output`: whether outputs go in binary when `outputs` is `None`.
    /// `tritonclient` sets it when it names no outputs.
    pub binary_by_default: bool,
}

impl ResponsePlan {
    /// Whether the output called `name` goes in the response, and if so whether in binary.
    pub fn wants(&self, name: &str) -> Option<bool> {
        match &self.outputs {
            None => Some(self.binary_by_default),
            Some(outputs) => outputs.iter().find(|(wanted, _)| wanted == name).map(|&(_, binary)| binary),
        }
    }

    /// The response holding the outputs wanted out of `outputs` (every output of the model, in
    /// its order), in that order, for the model called `model_name` at `model_version`.
    pub fn respond(&self, model_name: String, model_version: Option<String>, outputs: Vec<Tensor>) -> InferResponse {
        let mut binary_outputs = Vec::with_capacity(outputs.len());
        let outputs: Vec<Tensor> = outputs
            .into_iter()
            .filter(|output| match self.wants(&output.name) {
                Some(binary) => {
                    binary_outputs.push(binary);
                    true
                }
                None => false,
            })
            .collect();
        InferResponse { id: self.id.clone(), model_name, model_version, outputs, binary_outputs }
    }
}

impl InputTensor<'_> {
    /// The `binary_data_size` parameter, if set.
    fn binary_data_size(&self) -> Result<Option<usize>, OipError> {
        let Some(value) = parameter(&self.parameters, BINARY_DATA_SIZE) else {
            return Ok(None);
        };
        let size = value.as_u64().ok_or_else(|| {
            OipError::new(format!(
                "input {:?}: parameter binary_data_size must be a non-negative integer (bytes), not {value}",
                self.name
            ))
        })?;
        // Beyond the address space it cannot fit the body anyway.
        Ok(Some(usize::try_from(size).unwrap_or(usize::MAX)))
    }

    /// The datatype, or why the name is not one.
    fn parsed_datatype(&self) -> Result<Datatype, OipError> {
        parse_datatype(&self.datatype).map_err(|problem| OipError::new(format!("input {:?}: {problem}", self.name)))
    }

    /// The shape as dimensions, or why not.
    fn dims(&self) -> Result<Vec<u64>, OipError> {
        self.shape.iter().map(|&dim| u64::try_from(dim)).collect::<Result<Vec<u64>, _>>().map_err(|_| {
            OipError::new(format!("input {:?}: shape {:?} has a negative dimension", self.name, self.shape))
        })
    }

    /// Checks datatype and shape against the model input `info`.
    fn check_against(&self, info: &TensorInfo) -> Result<(), OipError> {
        let datatype = self.parsed_datatype()?;
        if datatype != info.datatype {
            return Err(OipError::new(format!(
                "input {:?} is {} in the model; the request says {datatype}",
                self.name, info.datatype
            )));
        }
        let shape = self.dims()?;
        if info.any_rank() {
            return Ok(());
        }
        if shape.len() != info.shape.len() {
            return Err(OipError::new(format!(
                "input {:?} has shape {shape:?} (rank {}); the model expects {:?} (rank {}, -1 matching any size)",
                self.name,
                shape.len(),
                info.shape,
                info.shape.len()
            )));
        }
        let mismatch = shape.iter().zip(&info.shape).position(|(&dim, &declared)| {
            // A negative dimension (-1) matches any size, as the host sees it.
            u64::try_from(declared).is_ok_and(|declared| declared != dim)
        });
        if let Some(index) = mismatch {
            return Err(OipError::new(format!(
                "input {:?} has shape {shape:?}; the model expects {:?}: dimension {index} is {}, the model's is {} \
                 (-1 matches any size)",
                self.name, info.shape, shape[index], info.shape[index]
            )));
        }
        Ok(())
    }

    /// Decodes this input: checks the datatype and the shape, then copies the binary data, or
    /// writes every element of `data` (flattened row-major) little-endian into the tensor's bytes,
    /// checking their count against the shape.
    pub fn to_tensor(&self) -> Result<Tensor, OipError> {
        let fail = |problem: String| OipError::new(format!("input {:?}: {problem}", self.name));
        let datatype = self.parsed_datatype()?;
        let shape = self.dims()?;
        let expected = shape
            .iter()
            .try_fold(1u64, |count, &dim| count.checked_mul(dim))
            .ok_or_else(|| fail(format!("shape {shape:?} has too many elements")))?;
        if let Some(bytes) = self.binary_data {
            return binary_tensor(&self.name, datatype, shape, expected, bytes).map_err(fail);
        }
        let Some(data) = self.data else {
            return Err(fail(match self.binary_data_size() {
                Ok(Some(_)) => "has a binary_data_size parameter but no binary data: parse the body with \
                                InferRequest::from_body"
                    .into(),
                _ => "has neither \"data\" nor a binary_data_size parameter".into(),
            }));
        };
        let text = data.get();
        if !text.trim_start().starts_with('[') {
            return Err(fail("\"data\" must be an array".into()));
        }
        let data = match super::numbers::decode(text, datatype, expected) {
            Some(data) => data,
            None => decode_with_serde(text, datatype, expected).map_err(|problem| match problem {
                DataProblem::Miscount(count) => {
                    fail(format!("shape {shape:?} holds {expected} elements but \"data\" has {count}"))
                }
                DataProblem::Invalid(problem) => fail(problem),
            })?,
        };
        Ok(Tensor { name: self.name.clone(), datatype, shape, data })
    }
}

/// Bytes to reserve for decoding `data`'s text into `expected` elements of `datatype`. Every
/// element takes at least two characters of JSON (a digit and a comma or bracket), so the text
/// bounds the allocation even when the shape claims more.
pub(super) fn data_capacity(text: &str, datatype: Datatype, expected: u64) -> usize {
    let elements = expected.min(text.len() as u64 / 2 + 1);
    usize::try_from(elements).unwrap_or(usize::MAX).saturating_mul(datatype.size())
}

/// Why `data` did not decode.
#[derive(Debug, PartialEq)]
pub(super) enum DataProblem {
    /// It holds this many elements, not the shape's count.
    Miscount(u64),
    /// An element or the JSON itself is wrong; the caller-facing reason.
    Invalid(String),
}

/// Decodes `data`'s text (a JSON array, maybe nested) into `expected` little-endian `datatype`
/// elements through serde_json: the slow path, and the one that explains every error.
pub(super) fn decode_with_serde(text: &str, datatype: Datatype, expected: u64) -> Result<Vec<u8>, DataProblem> {
    let out = Vec::with_capacity(data_capacity(text, datatype, expected));
    let mut decoder = Decoder { datatype, expected, count: 0, out, problem: None };
    let mut json = serde_json::Deserializer::from_str(text);
    if let Err(err) = (&mut decoder).deserialize(&mut json) {
        return Err(DataProblem::Invalid(decoder.problem.unwrap_or_else(|| err.to_string())));
    }
    if decoder.count != expected {
        return Err(DataProblem::Miscount(decoder.count));
    }
    Ok(decoder.out)
}

/// A tensor from its binary data `bytes`, checked to be exactly `elements` of `datatype`.
fn binary_tensor(
    name: &str,
    datatype: Datatype,
    shape: Vec<u64>,
    elements: u64,
    bytes: &[u8],
) -> Result<Tensor, String> {
    let needed = elements.checked_mul(datatype.size() as u64);
    if needed != Some(bytes.len() as u64) {
        let needed = needed.map_or_else(|| "more than 2^64".to_string(), |needed| needed.to_string());
        return Err(format!(
            "binary_data_size is {} bytes but shape {shape:?} of {datatype} needs {needed} ({elements} elements of {} \
             bytes)",
            bytes.len(),
            datatype.size()
        ));
    }
    if datatype == Datatype::Bool
        && let Some(index) = bytes.iter().position(|&byte| byte > 1)
    {
        return Err(format!("BOOL element {index} is byte {}, expected 0 or 1", bytes[index]));
    }
    Ok(Tensor { name: name.to_owned(), datatype, shape, data: bytes.to_vec() })
}

/// The datatype named `name`, or why not.
fn parse_datatype(name: &str) -> Result<Datatype, String> {
    let numeric = || Datatype::ALL.map(Datatype::name).join(", ");
    if name == "BYTES" {
        return Err(format!("BYTES tensors are not supported: the models here take numeric tensors ({})", numeric()));
    }
    Datatype::from_name(name).ok_or_else(|| format!("unknown datatype {name:?} (expected one of {})", numeric()))
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
