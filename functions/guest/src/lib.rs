//! Write a maas function in a few lines of Rust.
//!
//! A maas function is a WebAssembly component of the function world (`wit/world.wit`): it exports
//! one `handle` function that turns an HTTP [`Request`] into a [`Response`], and it may call
//! [`infer`] and [`describe`] on the models its manifest names, and read its manifest's
//! [`config`]. This crate holds the bindings to that world and the helpers that make such a
//! function short: [`Response::json`] and [`Response::error`] for answers in the platform's
//! shape, typed [`Tensor`] constructors and accessors, and [`oip`] for Open Inference Protocol
//! (KServe v2) infer requests and responses: JSON, Triton's binary tensor data extension and
//! compressed bodies, checked against the model's signature.
//!
//! # Writing a function, step by step
//!
//! 1. Create a library crate whose `Cargo.toml` has `crate-type = ["cdylib"]` under `[lib]` and
//!    depends on `maas-guest` (and `serde_json` if you build JSON with `json!`). The quickest
//!    start is a copy of `functions/template`, a working function with these steps in its docs.
//! 2. Implement [`Handler`] for a type and name that type in [`export!`]. Each request runs in a
//!    fresh instance, so there is no state to set up or tear down.
//! 3. Build the component: `cargo build --target wasm32-wasip2 --profile guest -p <crate>` (the
//!    workspace's `guest` profile is `release` without debug info). The file
//!    `target/wasm32-wasip2/guest/<crate_name>.wasm` is the component.
//! 4. Upload it (`POST /v1/tenants/{t}/components`, `application/wasm`); the answer names its
//!    `sha256:` digest.
//! 5. Deploy a function with a manifest naming that digest, the models by the aliases the code
//!    uses, and its config: `PUT /v1/tenants/{t}/functions/{f}` with
//!    `{"component": "sha256:…", "models": {"model": "iris@2"}, "config": {"labels": "a,b,c"}}`.
//!    The CLI does steps 4 and 5 at once:
//!    `maas functions deploy acme scores path/to/<crate_name>.wasm --model model=iris@2 --config labels=a,b,c`.
//! 6. Invoke it at `/fn/{t}/{f}/{rest}`: the function sees the method, `/{rest}`, the query,
//!    the headers (without `authorization`) and the body (`maas invoke acme scores --json '[1, 2]'`).
//!
//! # Example
//!
//! A function that reads a JSON array of numbers, runs the model aliased `model` and answers
//! with its first output, in the order the calls happen at run time:
//!
//! ```no_run
//! use maas_guest::{Handler, Request, Response, Tensor};
//! use serde_json::json;
//!
//! struct Scores;
//!
//! impl Handler for Scores {
//!     fn handle(req: Request) -> Response {
//!         // 1. Parse the request; a malformed one is the caller's error.
//!         let Ok(features) = serde_json::from_slice::<Vec<f32>>(&req.body) else {
//!             return Response::error(400, "invalid_input", "expected a JSON array of numbers");
//!         };
//!         // 2. Build the input tensor and run the model the manifest aliases `model`.
//!         let input = Tensor::from_f32("input", [1, features.len() as u64], &features);
//!         let outputs = match maas_guest::infer("model", &[input]) {
//!             Ok(outputs) => outputs,
//!             // Inference errors map to the platform's status codes and error shape.
//!             Err(err) => return err.into(),
//!         };
//!         // 3. Read the output and answer.
//!         let scores = outputs.first().and_then(Tensor::to_f32).unwrap_or_default();
//!         let model = maas_guest::config("model_label").unwrap_or_else(|| "model".into());
//!         Response::json(200, &json!({ "model": model, "scores": scores }))
//!     }
//! }
//!
//! maas_guest::export!(Scores);
//! # fn main() {}
//! ```
//!
//! The host links the component with WASI preview 2 and an empty context: Rust's `std` may use
//! `wasi:cli` and `wasi:io` (for example to print a panic message), but there is no filesystem,
//! network, environment or clock to speak of. A panic traps the instance and the caller gets
//! `500 function_trapped`.
//!
//! Off `wasm32` (for `cargo check`, clippy and unit tests on the host) everything compiles, but
//! calling [`infer`], [`describe`] or [`config`] panics: there is no host to answer.

#![deny(missing_docs)]

mod http;
pub mod oip;
mod tensor;

pub use tensor::{ANY_RANK, Element, F16};

/// The bindings `wit-bindgen` generates for the `handler` world.
///
/// Public only so that [`export!`] can name it from the user's crate: use the re-exports at
/// the crate root instead. The generated items document themselves from the WIT file, but not
/// every enum case has a doc comment there, and the generated ABI glue takes one argument per
/// pointer and length, hence the `allow`s.
#[doc(hidden)]
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "maas_guest::__bindings",
        additional_derives: [PartialEq],
    });

    /// Connects every [`Handler`](crate::Handler) to the generated export glue.
    impl<T: crate::Handler> Guest for T {
        fn handle(req: Request) -> Response {
            <T as crate::Handler>::handle(req)
        }
    }
}

pub use __bindings::maas::function::inference::{Error, Signature};
pub use __bindings::maas::function::types::{Datatype, Request, Response, Tensor, TensorInfo};

/// A function: turns one HTTP request into one response.
///
/// Implement it for a type of your own and name that type in [`export!`]. Each request runs in a
/// fresh instance of the component, so `handle` takes no `self`: there is no state that outlives
/// a request.
pub trait Handler {
    /// Handles one request. Panicking traps the instance; the caller gets `500 function_trapped`.
    fn handle(req: Request) -> Response;
}

/// Exports a [`Handler`] as the component's `handle` function.
///
/// Use it once per crate, at the top level, with the name of a type that implements [`Handler`]:
///
/// ```no_run
/// struct Hello;
///
/// impl maas_guest::Handler for Hello {
///     fn handle(_req: maas_guest::Request) -> maas_guest::Response {
///         maas_guest::Response::json(200, &serde_json::json!({"hello": "world"}))
///     }
/// }
///
/// maas_guest::export!(Hello);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export {
    ($handler:ident) => {
        $crate::__bindings::__export_handler!($handler with_types_in $crate::__bindings);
    };
}

/// Runs the model the manifest names `model` (an alias, not the model's own name) on `inputs` and
/// returns every output of the model, in the model's order.
///
/// The host checks `inputs` against the model's signature (names, datatypes, shapes, byte counts)
/// before it runs anything; a mismatch is [`Error::InvalidInput`].
pub fn infer(model: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
    __bindings::maas::function::inference::infer(model, inputs)
}

/// The inputs and outputs of the model the manifest names `model`.
pub fn describe(model: &str) -> Result<Signature, Error> {
    __bindings::maas::function::inference::describe(model)
}

/// The value of `key` in the function manifest's `config`, if it is set.
pub fn config(key: &str) -> Option<String> {
    __bindings::maas::function::config::get(key)
}

impl Error {
    /// The host's explanation, without the variant.
    pub fn message(&self) -> &str {
        match self {
            Error::ModelNotFound(message) | Error::InvalidInput(message) | Error::Failed(message) => message,
        }
    }

    /// The HTTP status this error is answered with by `Response::from(error)`:
    /// `404` model not found, `400` invalid input, `500` failed.
    pub fn status(&self) -> u16 {
        match self {
            Error::ModelNotFound(_) => 404,
            Error::InvalidInput(_) => 400,
            Error::Failed(_) => 500,
        }
    }

    /// The platform error code this error is answered with by `Response::from(error)`:
    /// `not_found`, `invalid_input` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelNotFound(_) => "not_found",
            Error::InvalidInput(_) => "invalid_input",
            Error::Failed(_) => "internal",
        }
    }
}
