//! Models and components as the API shows them: tensor specs and signatures, model versions,
//! uploaded components.

use serde::{Deserialize, Serialize};

pub use crate::datatype::Datatype;

/// Name, element type and shape of one model input or output; `-1` marks a dimension that
/// varies.
///
/// With the `component` feature it is also the WIT `tensor-info` record of the function world.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "component", derive(wasmtime::component::ComponentType))]
#[cfg_attr(feature = "component", derive(wasmtime::component::Lift, wasmtime::component::Lower))]
#[cfg_attr(feature = "component", component(record))]
pub struct TensorSpec {
    /// The tensor's name in the model.
    pub name: String,
    /// The element type.
    pub datatype: Datatype,
    /// Dimensions; `-1` for one that varies.
    pub shape: Vec<i64>,
}

/// The inputs and outputs of a model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Model inputs in graph order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs in graph order.
    pub outputs: Vec<TensorSpec>,
}

/// One version of a model: its file's digest and size and its signature
/// (`PUT`/`GET /v1/tenants/{t}/models/{m}[/versions/{v}]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model name.
    pub name: String,
    /// 1, 2, ... in upload order.
    pub version: u32,
    /// Lowercase hex sha256 of the ONNX file.
    pub sha256: String,
    /// File size, bytes.
    pub size_bytes: u64,
    /// The model's inputs (`-1` for a dimension that varies).
    pub inputs: Vec<TensorSpec>,
    /// The model's outputs.
    pub outputs: Vec<TensorSpec>,
    /// When it was uploaded, RFC 3339 UTC.
    pub created_at: String,
}

impl ModelInfo {
    /// `name@version`, as headers and logs name a version.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A model name with all its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The model name.
    pub name: String,
    /// The highest existing version.
    pub latest_version: u32,
    /// Every existing version, oldest first.
    pub versions: Vec<ModelInfo>,
}

/// `GET /v1/tenants/{t}/models`: `{"models": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The tenant's models, by name.
    pub models: Vec<ModelEntry>,
}

/// An uploaded WebAssembly component (`POST`/`GET /v1/tenants/{t}/components`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// `sha256:<hex>`: what a manifest's `component` names.
    pub digest: String,
    /// Size of the `.wasm` file, bytes.
    pub size_bytes: u64,
    /// When it was first uploaded, RFC 3339 UTC.
    pub created_at: String,
}

/// `GET /v1/tenants/{t}/components`: `{"components": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentList {
    /// The tenant's components, by digest.
    pub components: Vec<ComponentInfo>,
}
