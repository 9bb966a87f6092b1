//! Host bindings of the function world (`wit/world.wit`): the one `bindgen!` of the runtime.
//! The `types` interface maps onto [`super::wit`], so tensors, datatypes and signatures are
//! maas's own types on both sides of the call.

// The generated items carry the WIT doc comments where the WIT has them; the rest (type
// aliases, generated helpers) cannot be documented from here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    with: { "maas:function/types": crate::host::wit },
});

pub use maas::function::inference::{Error as InferError, Signature as WitSignature};
