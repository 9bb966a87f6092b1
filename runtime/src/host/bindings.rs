//! Host bindings of the function world (`wit/world.wit`, `maas:function@0.2.0`), and of the
//! previous version (`wit/compat/`, 0.1.0) that components built before the change import.
//! The `types` interface maps onto [`super::wit`], so tensors, datatypes and signatures are
//! maas's own types on both sides of the call.

// The generated items carry the WIT doc comments where the WIT has them; the rest (type
// aliases, generated helpers) cannot be documented from here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    with: { "maas:function/types": crate::host::wit::v0_2 },
    // `infer` may wait for the pool; `handle` runs on a fiber the caller polls.
    imports: { "maas:function/inference.infer": async },
    exports: { default: async },
});

/// `maas:function@0.1.0`: the same world with an inference error case (`busy`) the platform
/// never produced. Linked beside the current one ([`super::compat`]), so that components built
/// against it still run.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/compat/maas-function-0.1.0.wit",
        world: "handler",
        with: { "maas:function/types": crate::host::wit::v0_1 },
        imports: { "maas:function/inference.infer": async },
        exports: { default: async },
    });
}

pub use maas::function::inference::{Error as InferError, Signature as WitSignature};
