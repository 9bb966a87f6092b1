//! Element types in the Open Inference Protocol vocabulary: the one `Datatype` of maas.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A tensor element type maas can carry between clients, guests and tract. On the wire it is
/// its OIP name (`"FP32"`, `"INT64"`, ...).
///
/// With the `component` feature it is also the WIT `datatype` enum of the function world, so
/// the host's bindings use this type itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "component", derive(wasmtime::component::ComponentType))]
#[cfg_attr(feature = "component", derive(wasmtime::component::Lift, wasmtime::component::Lower))]
#[cfg_attr(feature = "component", component(enum))]
#[repr(u8)]
pub enum Datatype {
    /// One byte, 0 or 1.
    #[cfg_attr(feature = "component", component(name = "bool"))]
    Bool,
    /// Unsigned 8-bit integer.
    #[cfg_attr(feature = "component", component(name = "uint8"))]
    Uint8,
    /// Unsigned 16-bit integer.
    #[cfg_attr(feature = "component", component(name = "uint16"))]
    Uint16,
    /// Unsigned 32-bit integer.
    #[cfg_attr(feature = "component", component(name = "uint32"))]
    Uint32,
    /// Unsigned 64-bit integer.
    #[cfg_attr(feature = "component", component(name = "uint64"))]
    Uint64,
    /// Signed 8-bit integer.
    #[cfg_attr(feature = "component", component(name = "int8"))]
    Int8,
    /// Signed 16-bit integer.
    #[cfg_attr(feature = "component", component(name = "int16"))]
    Int16,
    /// Signed 32-bit integer.
    #[cfg_attr(feature = "component", component(name = "int32"))]
    Int32,
    /// Signed 64-bit integer.
    #[cfg_attr(feature = "component", component(name = "int64"))]
    Int64,
    /// IEEE half precision.
    #[cfg_attr(feature = "component", component(name = "fp16"))]
    Fp16,
    /// IEEE single precision.
    #[cfg_attr(feature = "component", component(name = "fp32"))]
    Fp32,
    /// IEEE double precision.
    #[cfg_attr(feature = "component", component(name = "fp64"))]
    Fp64,
}

impl Datatype {
    /// Every datatype, in the order of the WIT enum.
    pub const ALL: [Datatype; 12] = [
        Datatype::Bool,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Fp16,
        Datatype::Fp32,
        Datatype::Fp64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
        }
    }

    /// The OIP name (`FP32`, `INT64`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
        }
    }

    /// Parses an OIP name (exact, upper case). `BF16` and `BYTES` are OIP names maas cannot
    /// carry: `None`, like any unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Datatype {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Datatype {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Datatype::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown or unsupported datatype {name:?} (maas carries BOOL, UINT8-64, INT8-64, FP16, FP32, FP64)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Datatype::ALL {
            assert_eq!(Datatype::parse(d.as_str()), Some(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(serde_json::from_str::<Datatype>(&json).unwrap(), d);
        }
        assert_eq!(Datatype::parse("BYTES"), None);
        assert!(serde_json::from_str::<Datatype>("\"fp32\"").is_err());
        assert_eq!(Datatype::Fp16.size(), 2);
    }
}
