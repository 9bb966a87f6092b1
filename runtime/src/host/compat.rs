//! The previous function world, `maas:function@0.1.0`, for components built before it changed.
//!
//! 0.2.0 dropped the inference error's `busy` case, which the platform never produced. A
//! component imports the world by version, and wasmtime links a 0.x import only to the same
//! minor version, so the host links both: these implementations answer a 0.1.0 guest with the
//! current ones, their errors mapped case for case. Nothing new goes into 0.1.0.

use super::HostState;
use super::bindings::v0_1::maas::function::{config, inference};
use super::bindings::{InferError, maas};
use super::wit::Tensor;

impl super::wit::v0_1::Host for HostState {}

impl inference::Host for HostState {
    async fn infer(&mut self, model: String, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, inference::Error> {
        maas::function::inference::Host::infer(self, model, inputs).await.map_err(previous)
    }

    fn describe(&mut self, model: String) -> Result<inference::Signature, inference::Error> {
        let signature = maas::function::inference::Host::describe(self, model).map_err(previous)?;
        Ok(inference::Signature { inputs: signature.inputs, outputs: signature.outputs })
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        maas::function::config::Host::get(self, key)
    }
}

/// An inference error as a 0.1.0 guest knows it.
fn previous(e: InferError) -> inference::Error {
    match e {
        InferError::ModelNotFound(m) => inference::Error::ModelNotFound(m),
        InferError::InvalidInput(m) => inference::Error::InvalidInput(m),
        InferError::Failed(m) => inference::Error::Failed(m),
    }
}
