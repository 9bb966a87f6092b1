//! Open Inference Protocol (KServe v2) infer requests and responses, in JSON and with Triton's
//! binary tensor data extension, so that stock clients (`tritonclient[http]`, KServe's) work
//! unchanged; and model metadata.
//!
//! # Serving an infer request, step by step
//!
//! 1. [`request_body`] undoes the request's `Content-Encoding` (`gzip`, `deflate`), refusing a
//!    body that decompresses past a limit (`413`).
//! 2. [`InferRequest::from_body`] splits the body at `Inference-Header-Content-Length` (when the
//!    request has that header) into the JSON header and the binary part, parses the JSON and hands
//!    each input that has a `binary_data_size` parameter its slice of the binary part. Each
//!    input's JSON `data` stays borrowed text for now.
//! 3. [`InferRequest::validate`] checks the inputs against the model's [`Signature`](crate::Signature) (names,
//!    datatypes, shapes, `-1` matching any size) and the requested outputs against its outputs,
//!    before anything is decoded, with messages that name the input and both sides.
//! 4. [`InferRequest::tensors`] decodes every input into a [`Tensor`](crate::Tensor): JSON `data`
//!    (flat or nested arrays, flattened row-major) straight into the tensor's little-endian bytes,
//!    binary data by one copy, checking element and byte counts against the shape.
//! 5. [`InferRequest::response_plan`] keeps what the answer needs from the request (its `id`, the
//!    outputs asked for, which of them in binary), so the request and its body can be freed
//!    before inference; [`ResponsePlan::respond`] turns the model's outputs into an
//!    [`InferResponse`], and `Response::from(&response)` into HTTP: JSON, or the JSON header
//!    followed by the binary outputs with `Inference-Header-Content-Length`.
//!
//! Every error is an [`OipError`]: `Response::from(error)` answers it as
//! `{"error": "<message>", "code": "<code>"}`, `400 invalid_input` for malformed requests and
//! `413 payload_too_large` for a body that decompresses past the limit.
//!
//! ```
//! use maas_guest::oip::{self, InferRequest};
//! use maas_guest::{Datatype, Request, Response, Signature, TensorInfo};
//!
//! // What tritonclient sends for one FP32 input of shape [2, 2] set with binary_data=True.
//! let json = br#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}]}"#;
//! let mut body = json.to_vec();
//! for value in [1.0f32, 2.0, 3.5, 4.0] {
//!     body.extend_from_slice(&value.to_le_bytes());
//! }
//! let req = Request {
//!     method: "POST".into(),
//!     path: "/v2/models/m/infer".into(),
//!     query: String::new(),
//!     headers: vec![("inference-header-content-length".into(), json.len().to_string())],
//!     body,
//! };
//!
//! let body = oip::request_body(&req, oip::DEFAULT_MAX_DECOMPRESSED_BYTES)?;
//! let request = InferRequest::from_body(&body, req.header(oip::INFERENCE_HEADER_CONTENT_LENGTH))?;
//! // let signature = maas_guest::describe("model")?;
//! let signature = Signature {
//!     inputs: vec![TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 2] }],
//!     outputs: vec![TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 2] }],
//! };
//! request.validate(&signature)?;
//! let inputs = request.tensors()?;
//! assert_eq!(inputs[0].to_f32(), Some(vec![1.0, 2.0, 3.5, 4.0]));
//! let plan = request.response_plan();
//!
//! // let outputs = maas_guest::infer("model", &inputs)?;
//! let outputs = inputs;
//! let response = plan.respond("m".into(), None, outputs);
//! // No binary output asked for: plain JSON.
//! assert_eq!(
//!     String::from_utf8(response.to_json()).unwrap(),
//!     r#"{"id":"7","model_name":"m","outputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1.0,2.0,3.5,4.0]}]}"#,
//! );
//! let http = Response::from(&response);
//! assert_eq!(http.header("content-type"), Some("application/json"));
//! # Ok::<(), maas_guest::oip::OipError>(())
//! ```
//!
//! Supported datatypes: `BOOL` (JSON `true`/`false`; one byte 0 or 1 in binary), `UINT8`…`UINT64`,
//! `INT8`…`INT64` (JSON integers, or numbers with no fractional part, in range), `FP16`, `FP32`,
//! `FP64` (any JSON number, rounded to nearest). `BYTES` (and `BF16`) tensors are not, nor are the
//! shared-memory and classification extensions: requests that use them get a `400` that says so.

mod body;
mod numbers;
mod request;
mod response;

pub use body::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, INFERENCE_HEADER_CONTENT_LENGTH, decode_content_encoding, request_body,
};
pub use request::{InferRequest, InputTensor, RequestedOutput, ResponsePlan};
pub use response::{InferResponse, ModelMetadata, TensorJson, TensorMetadata};

use crate::Response;
use std::fmt;

/// Why an OIP request could not be served as sent. Its message names what is at fault (the input,
/// the parameter, the header) and is meant for the caller: answer it with `Response::from(error)`,
/// which uses [`OipError::status`] and [`OipError::code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OipError {
    status: u16,
    code: &'static str,
    message: String,
}

impl OipError {
    /// A malformed request: `400 invalid_input` with `message`.
    pub fn new(message: impl Into<String>) -> OipError {
        OipError { status: 400, code: "invalid_input", message: message.into() }
    }

    /// A request body larger than the function accepts (after decompression):
    /// `413 payload_too_large` with `message`.
    pub fn too_large(message: impl Into<String>) -> OipError {
        OipError { status: 413, code: "payload_too_large", message: message.into() }
    }

    /// The explanation, for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status to answer with: `400`, or `413` for [`OipError::too_large`].
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The platform error code to answer with: `invalid_input`, or `payload_too_large`.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for OipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OipError {}

/// `{"error": "<message>", "code": "<code>"}` with the error's status.
impl From<OipError> for Response {
    fn from(err: OipError) -> Response {
        Response::error(err.status, err.code, err.message)
    }
}

#[cfg(test)]
mod tests;
