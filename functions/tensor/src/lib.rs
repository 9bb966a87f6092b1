//! `builtin:tensor`: Open Inference Protocol JSON over the model a manifest aliases `model`.
//!
//! A model owner deploys it without writing WebAssembly:
//! `{"component": "builtin:tensor", "models": {"model": "iris"}, "config": {"model_name": "iris"}}`.
//!
//! - `POST` (any path): an OIP infer request
//!   `{"id"?, "inputs": [{"name", "shape", "datatype", "data"}], "outputs"?: [{"name"}]}` →
//!   `200 {"id"?, "model_name", "model_version"?, "outputs": [{"name", "shape", "datatype", "data"}]}`
//!   with the outputs asked for (all when `outputs` is absent or empty), in the model's order.
//! - `GET` (any path): the model's metadata,
//!   `200 {"name", "versions"?, "inputs": [{"name", "datatype", "shape"}], "outputs": [...]}`.
//! - Anything else: `405 invalid_request`.
//!
//! Config: `model_name` (default `model`) and `model_version` (default: left out) are what the
//! answers call the model. Errors are `{"error", "code"}`: a malformed request or one the model
//! rejects is `400 invalid_input`, a missing model `404 not_found`, a failed run `500 internal`,
//! a busy platform `429 rate_limited`.

use maas_guest::oip::{InferRequest, InferResponse, ModelMetadata};
use maas_guest::{Handler, Request, Response};

/// The manifest alias of the model this function serves.
const MODEL: &str = "model";

/// The `builtin:tensor` function.
pub struct TensorFunction;

impl Handler for TensorFunction {
    fn handle(req: Request) -> Response {
        let result = match req.method.as_str() {
            "POST" => infer(&req.body),
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
fn infer(body: &[u8]) -> Result<Response, Response> {
    let request = InferRequest::from_json(body)?;
    // Check the requested outputs before running anything: a typo should not cost an inference.
    if let Some(mut requested) = request.requested_outputs() {
        let signature = maas_guest::describe(MODEL)?;
        let known = |name: &str| signature.outputs.iter().any(|output| output.name == name);
        if let Some(unknown) = requested.find(|name| !known(name)) {
            let names: Vec<&str> = signature.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(Response::error(
                400,
                "invalid_input",
                format!("requested output {unknown:?} is not an output of the model (outputs: {})", names.join(", ")),
            ));
        }
    }
    let inputs = request.tensors()?;
    let mut outputs = maas_guest::infer(MODEL, &inputs)?;
    drop(inputs);
    if let Some(requested) = request.requested_outputs() {
        let requested: Vec<&str> = requested.collect();
        outputs.retain(|output| requested.contains(&output.name.as_str()));
    }
    let response = InferResponse {
        id: request.id,
        model_name: model_name(),
        model_version: maas_guest::config("model_version"),
        outputs,
    };
    Ok(Response::from(&response))
}

/// The model's OIP metadata.
fn metadata() -> Result<Response, Response> {
    let signature = maas_guest::describe(MODEL)?;
    let versions = maas_guest::config("model_version").into_iter().collect();
    Ok(Response::json(200, &ModelMetadata::new(model_name(), versions, &signature)))
}

/// What the answers call the model.
fn model_name() -> String {
    maas_guest::config("model_name").unwrap_or_else(|| MODEL.to_owned())
}
