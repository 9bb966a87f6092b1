//! A template maas function: copy this crate to start your own.
//!
//! It shows the three things a function does, in the order they happen on a request: read the
//! manifest's `config`, turn the request into input tensors and call [`maas_guest::infer`] on
//! a model the manifest names, and answer with JSON.
//!
//! | request | answer |
//! |---|---|
//! | `GET /…` | `200 {"greeting", "method", "path", "query", "model": {"inputs", "outputs"}}`: an echo of what the function sees, and the signature of the model aliased `model` |
//! | `POST /…` with `{"features": [numbers]}` | `200 {"greeting", "outputs": {"<name>": [numbers], …}}`: the features as a `[1, n]` `FP32` tensor into the model's first input, every output back as numbers |
//!
//! Config: `greeting` (default `"hello"`) is echoed in every answer.
//!
//! # Make it yours
//!
//! 1. Copy `functions/template/` to `functions/<your-function>/`, set `name` in its
//!    `Cargo.toml` (say `my-function`), and add the folder to the workspace `members` in the
//!    root `Cargo.toml` (leave `default-members` alone: guests are built for WebAssembly only).
//! 2. Edit `handle` below. Each request runs in a fresh instance, so there is nothing to set up
//!    or tear down; panicking traps the instance and the caller gets `500 function_trapped`.
//! 3. Build the component (the `guest` profile is `release` without debug info):
//!
//!    ```sh
//!    cargo build --target wasm32-wasip2 --profile guest -p my-function
//!    # → target/wasm32-wasip2/guest/my_function.wasm
//!    ```
//!
//! 4. Upload and deploy it with the `maas` CLI (the `.wasm` path is uploaded first, then
//!    deployed by its `sha256:` digest), with the models it calls by alias and its config:
//!
//!    ```sh
//!    export MAAS_URL=http://127.0.0.1:8080 MAAS_KEY=<an owner key of acme>
//!    maas models upload acme mlp mlp.onnx
//!    maas functions deploy acme hello target/wasm32-wasip2/guest/my_function.wasm \
//!        --model model=mlp --config greeting=hi
//!    ```
//!
//! 5. Invoke it:
//!
//!    ```sh
//!    maas invoke acme hello --json '{"features": [0.5, 0.1, …100 numbers…]}'
//!    maas invoke acme hello /anything?x=1 -X GET -i
//!    ```
//!
//! Unit tests of the parts that do not call the host (parsing, shaping the answer) run on the
//! host with `cargo test -p my-function`; calling [`maas_guest::infer`] off WebAssembly panics.

use std::collections::BTreeMap;

use maas_guest::{Handler, Request, Response, Tensor, TensorInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The manifest alias of the model this function calls (`"models": {"model": "<name>"}`).
const MODEL: &str = "model";

/// The answer's greeting when config `greeting` is not set.
const DEFAULT_GREETING: &str = "hello";

/// The template function.
pub struct Template;

impl Handler for Template {
    fn handle(req: Request) -> Response {
        // 1. Config comes from the manifest; read it per request (it is cheap).
        let greeting = maas_guest::config("greeting").unwrap_or_else(|| DEFAULT_GREETING.to_owned());
        match req.method.as_str() {
            "GET" => describe(&req, &greeting),
            "POST" => predict(&req.body, &greeting).unwrap_or_else(|response| response),
            other => Response::error(405, "invalid_request", format!("method {other} is not allowed: GET or POST"))
                .with_header("allow", "GET, POST"),
        }
    }
}

maas_guest::export!(Template);

/// `POST` body.
#[derive(Debug, Deserialize)]
struct PredictRequest {
    features: Vec<f32>,
}

/// `POST` answer.
#[derive(Debug, Serialize)]
struct PredictResponse {
    greeting: String,
    outputs: BTreeMap<String, Vec<f64>>,
}

/// `GET`: what the function sees, and the model's signature.
fn describe(req: &Request, greeting: &str) -> Response {
    let signature = match maas_guest::describe(MODEL) {
        Ok(signature) => signature,
        // Inference errors carry their own status and code (404 for an alias the manifest lacks).
        Err(err) => return err.into(),
    };
    let spec = |info: &TensorInfo| json!({ "name": info.name, "datatype": info.datatype.name(), "shape": info.shape });
    Response::json(
        200,
        &json!({
            "greeting": greeting,
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "model": {
                "inputs": signature.inputs.iter().map(spec).collect::<Vec<_>>(),
                "outputs": signature.outputs.iter().map(spec).collect::<Vec<_>>(),
            },
        }),
    )
}

/// `POST`: features in, every model output out. `Err` holds an error answer.
fn predict(body: &[u8], greeting: &str) -> Result<Response, Response> {
    // 2. Pre-processing: parse, then shape the input the way the model declares it.
    let request: PredictRequest = serde_json::from_slice(body)
        .map_err(|err| Response::error(400, "invalid_input", format!("expected {{\"features\": [numbers]}}: {err}")))?;
    let signature = maas_guest::describe(MODEL)?;
    let input = signature.inputs.first().ok_or_else(|| Response::error(500, "internal", "the model has no inputs"))?;
    let tensor = input_tensor(input, &request.features)?;

    // 3. Inference: the host checks the tensor against the signature before tract runs.
    let outputs = maas_guest::infer(MODEL, &[tensor])?;

    // 4. Post-processing: every output as plain numbers, by name.
    let outputs =
        outputs.iter().map(|output| (output.name.clone(), output.to_f64_lossy().unwrap_or_default())).collect();
    Ok(Response::json(200, &PredictResponse { greeting: greeting.to_owned(), outputs }))
}

/// The `[1, n]` `FP32` tensor of `features` for `input`, refused with `400 invalid_input` when
/// the model declares another shape.
fn input_tensor(input: &TensorInfo, features: &[f32]) -> Result<Tensor, Response> {
    let shape = [1, features.len() as u64];
    if features.is_empty() || !input.accepts_shape(&shape) {
        return Err(Response::error(
            400,
            "invalid_input",
            format!(
                "the model's input {:?} has shape {:?}; send {{\"features\": [...]}} with one row of numbers",
                input.name, input.shape
            ),
        ));
    }
    Ok(Tensor::from_f32(input.name.clone(), shape, features))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_guest::Datatype;

    fn info(shape: Vec<i64>) -> TensorInfo {
        TensorInfo { name: "input".into(), datatype: Datatype::Fp32, shape }
    }

    #[test]
    fn features_become_one_row() {
        let tensor = input_tensor(&info(vec![-1, 3]), &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(tensor.shape, vec![1, 3]);
        assert_eq!(tensor.to_f32(), Some(vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn wrong_width_or_empty_is_invalid_input() {
        assert_eq!(input_tensor(&info(vec![1, 4]), &[1.0]).unwrap_err().status, 400);
        assert_eq!(input_tensor(&info(vec![-1, 4]), &[]).unwrap_err().status, 400);
    }

    #[test]
    fn malformed_body_is_invalid_input() {
        let response = predict(b"[1, 2]", "hi").unwrap_err();
        assert_eq!(response.status, 400);
        assert!(String::from_utf8_lossy(&response.body).contains("invalid_input"));
    }
}
