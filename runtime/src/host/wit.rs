//! The Rust types of the function world's `types` interface (`wit/world.wit`).
//!
//! `bindgen!` maps the whole interface onto this module (`with`: [`v0_2`], and [`v0_1`] for the
//! previous world), so the host's bindings use maas's own [`Datatype`] and
//! [`TensorSpec`](maas_types::TensorSpec) (as `tensor-info`) rather than generated twins that would
//! need converting. The records here derive wasmtime's component traits; wasmtime checks them
//! against a guest's imports when the host links it.

use wasmtime::component::{ComponentType, Lift, Lower};

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

impl Response {
    /// Why HTTP cannot carry this answer (a status outside 100–999, a header name or value that
    /// is not valid), if it cannot: the guest's fault, reported as a trap-like failure.
    pub fn check(&self) -> Result<(), String> {
        http::StatusCode::from_u16(self.status).map_err(|_| format!("an invalid status {}", self.status))?;
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("an invalid header name {name:?}"))?;
            http::HeaderValue::from_str(value).map_err(|_| format!("an invalid value for header {name:?}"))?;
        }
        Ok(())
    }
}

/// What `bindgen!` expects of a module it maps an interface onto: the interface's types, its
/// (empty: it has no functions) host traits, and the `add_to_linker` that defines its instance,
/// so that components importing its types link. One module per version of the world.
macro_rules! types_interface {
    ($module:ident, $instance:literal) => {
        #[doc = concat!("`", $instance, "`, mapped onto maas's own types.")]
        pub mod $module {
            use wasmtime::component::{HasData, Linker};

            pub use super::{Datatype, Request, Response, Tensor, TensorInfo};

            /// The interface's host trait: it has no functions, only types.
            pub trait Host {}

            impl<H: Host + ?Sized> Host for &mut H {}

            /// The interface's host trait for functions that take the store: none either.
            pub trait HostWithStore<T>: HasData {}

            impl<H: ?Sized + HasData, T> HostWithStore<T> for H {}

            /// Defines the interface's (empty) instance in `linker`; `bindgen!`'s
            /// `add_to_linker` calls it as it would its own.
            pub fn add_to_linker<T, D>(
                linker: &mut Linker<T>,
                _host_getter: fn(&mut T) -> D::Data<'_>,
            ) -> wasmtime::Result<()>
            where
                D: HostWithStore<T>,
                for<'a> D::Data<'a>: Host,
                T: 'static,
            {
                linker.instance($instance)?;
                Ok(())
            }
        }
    };
}

types_interface!(v0_2, "maas:function/types@0.2.0");
types_interface!(v0_1, "maas:function/types@0.1.0");
