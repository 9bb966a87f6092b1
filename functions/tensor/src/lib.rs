//! `builtin:tensor`: the Open Inference Protocol (KServe v2) over the model a manifest aliases
//! `model`, as Triton speaks it over HTTP, so that stock clients (`tritonclient[http]`, KServe's)
//! work unchanged.
//!
//! A model owner deploys it without writing WebAssembly:
//! `{"component": "builtin:tensor", "models": {"model": "iris"}, "config": {"model_name": "iris"}}`;
//! the platform also routes `/v2/models/{m}[/versions/{v}][/infer]` to it.
//!
//! - `POST` (any path): an OIP infer request,
//!   `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?, "data"?}],
//!   "outputs"?: [{"name", "parameters"?}]}` →
//!   `200 {"id"?, "model_name", "model_version"?, "outputs": [{"name", "shape", "datatype", "data"}]}`
//!   with the outputs asked for (all when `outputs` is absent or empty), in the model's order.
//!   The binary tensor data extension works both ways: inputs with
//!   `"parameters": {"binary_data_size": n}` take their bytes from after the JSON (whose length
//!   the `Inference-Header-Content-Length` header gives), and outputs asked for with
//!   `"binary_data": true` (or all, with the request parameter `"binary_data_output": true`) come
//!   back after the JSON, with `Inference-Header-Content-Length` and
//!   `Content-Type: application/octet-stream`. A `Content-Encoding: gzip` or `deflate` body is
//!   decompressed first.
//! - `GET` (any path): the model's metadata,
//!   `200 {"name", "versions"?, "platform": "onnx", "inputs": [{"name", "datatype", "shape"}],
//!   "outputs": [...]}`.
//! - Anything else: `405 invalid_request`.
//!
//! Config: `model_name` (default `model`) and `model_version` (default: left out) are what the
//! answers call the model; `max_decompressed_bytes` (default 256 MiB) bounds a compressed body
//! once decompressed. Errors are `{"error", "code"}`: a malformed request or one that does not fit
//! the model is `400 invalid_input` (checked here first, against the model's signature, so the
//! message names the input and both sides), a body that decompresses past the limit
//! `413 payload_too_large`, a missing model `404 not_found`, a failed run `500 internal`.

use maas_guest::oip::{self, InferRequest, ModelMetadata};
use maas_guest::{Handler, Request, Response};

/// The manifest alias of the model this function serves.
const MODEL: &str = "model";

/// The `builtin:tensor` function.
pub struct TensorFunction;

impl Handler for TensorFunction {
    fn handle(req: Request) -> Response {
        let result = match req.method.as_str() {
            "POST" => infer(req),
            "GET" => metadata(),
            other => Err(Response::error(
                405,
                "invalid_request",
                format!("method {other} is not allowed: POST an infer request, or GET the model's metadata"),
            )
            .with_header("allow", "GET, POST")),
        };
        result.unwrap_or_else(|response| response)
    }
}

maas_guest::export!(TensorFunction);

/// Runs one OIP infer request.
fn infer(req: Request) -> Result<Response, Response> {
    let limit = max_decompressed_bytes(maas_guest::config("max_decompressed_bytes"))?;
    let body = oip::request_body(&req, limit)?;
    let request = InferRequest::from_body(&body, req.header(oip::INFERENCE_HEADER_CONTENT_LENGTH))?;
    // Check names, datatypes, shapes and requested outputs before decoding or running anything.
    request.validate(&maas_guest::describe(MODEL)?)?;
    let inputs = request.tensors()?;
    let plan = request.response_plan();
    // The request is in the tensors now: free its body before the outputs arrive.
    drop(request);
    drop(body);
    drop(req);
    let outputs = maas_guest::infer(MODEL, &inputs)?;
    drop(inputs);
    let response = plan.respond(model_name(), maas_guest::config("model_version"), outputs);
    Ok(Response::from(&response))
}

/// The model's OIP metadata.
fn metadata() -> Result<Response, Response> {
    let signature = maas_guest::describe(MODEL)?;
    let versions = maas_guest::config("model_version").into_iter().collect();
    let mut metadata = ModelMetadata::new(model_name(), versions, &signature);
    metadata.platform = Some("onnx".into());
    Ok(Response::json(200, &metadata))
}

/// What the answers call the model.
fn model_name() -> String {
    maas_guest::config("model_name").unwrap_or_else(|| MODEL.to_owned())
}

/// The most bytes a compressed request body may decompress to: the config value `configured`
/// (a number of bytes), or [`oip::DEFAULT_MAX_DECOMPRESSED_BYTES`]. A value that is not a number
/// is the deployer's mistake, not the caller's: `500 internal`.
fn max_decompressed_bytes(configured: Option<String>) -> Result<u64, Response> {
    match configured {
        None => Ok(oip::DEFAULT_MAX_DECOMPRESSED_BYTES),
        Some(value) => value.trim().parse().map_err(|_| {
            Response::error(
                500,
                "internal",
                format!("the function's config max_decompressed_bytes is {value:?}, not a number of bytes"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_decompressed_bytes_from_config() {
        assert_eq!(max_decompressed_bytes(None).ok(), Some(oip::DEFAULT_MAX_DECOMPRESSED_BYTES));
        assert_eq!(max_decompressed_bytes(Some(" 1024 ".into())).ok(), Some(1024));
        let bad = max_decompressed_bytes(Some("1GB".into())).unwrap_err();
        assert_eq!(bad.status, 500);
        let body = String::from_utf8(bad.body).unwrap();
        assert!(body.contains("max_decompressed_bytes is \\\"1GB\\\""), "{body}");
    }
}
