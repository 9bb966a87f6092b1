//! Host bindings of the function world (`wit/world.wit`): the one `bindgen!` of the runtime.

// The generated items carry the WIT doc comments where the WIT has them; the rest (type
// aliases, generated helpers) cannot be documented from here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
});

pub use maas::function::inference::{Error as InferError, Signature as WitSignature};
pub use maas::function::types::{Datatype as WitDatatype, Tensor, TensorInfo};
