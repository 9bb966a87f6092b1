//! The Rust types of the function world's `types` interface (`wit/world.wit`).
//!
//! `bindgen!` maps the whole interface onto this module (`with`), so the host's bindings use
//! maas's own [`Datatype`] and [`TensorSpec`] (as `tensor-info`) rather than generated twins that
//! would need converting. The records here derive wasmtime's component traits; `bindgen!` checks
//! them against the WIT when the host links a guest.

use wasmtime::component::{ComponentType, HasData, Lift, Linker, Lower};

pub use maas_types::{Datatype, TensorSpec as TensorInfo};

/// A dense tensor: `data` holds the elements little-endian, row-major (bool as one byte).
#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct Tensor {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub datatype: Datatype,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// `product(shape) * datatype.size()` bytes.
    pub data: Vec<u8>,
}

/// The HTTP request as the function sees it (no `authorization` header).
#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path after `/fn/{tenant}/{function}` (at least `/`).
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The HTTP response the function gives back.
#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The interface's host trait: it has no functions, only types.
pub trait Host {}

impl<H: Host + ?Sized> Host for &mut H {}

/// The interface's host trait for functions that take the store: none either.
pub trait HostWithStore<T>: HasData {}

impl<H: ?Sized + HasData, T> HostWithStore<T> for H {}

/// Defines the interface's (empty) instance in `linker`, so that components importing its
/// types link; `bindgen!`'s `add_to_linker` calls it as it would its own.
pub fn add_to_linker<T, D>(linker: &mut Linker<T>, _host_getter: fn(&mut T) -> D::Data<'_>) -> wasmtime::Result<()>
where
    D: HostWithStore<T>,
    for<'a> D::Data<'a>: Host,
    T: 'static,
{
    linker.instance("maas:function/types@0.2.0")?;
    Ok(())
}
