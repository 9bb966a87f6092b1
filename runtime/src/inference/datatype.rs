//! Element types in the Open Inference Protocol vocabulary and their tract counterparts.

use std::fmt;

use tract_onnx::prelude::DatumType;

/// A tensor element type maas can carry between guests and tract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    /// One byte, 0 or 1.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 64-bit integer.
    Uint64,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE half precision.
    Fp16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
}

impl Datatype {
    /// Every datatype, for tests and error messages.
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

    /// Parses an OIP name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The tract element type.
    pub fn to_tract(self) -> DatumType {
        match self {
            Datatype::Bool => DatumType::Bool,
            Datatype::Uint8 => DatumType::U8,
            Datatype::Uint16 => DatumType::U16,
            Datatype::Uint32 => DatumType::U32,
            Datatype::Uint64 => DatumType::U64,
            Datatype::Int8 => DatumType::I8,
            Datatype::Int16 => DatumType::I16,
            Datatype::Int32 => DatumType::I32,
            Datatype::Int64 => DatumType::I64,
            Datatype::Fp16 => DatumType::F16,
            Datatype::Fp32 => DatumType::F32,
            Datatype::Fp64 => DatumType::F64,
        }
    }

    /// The OIP type of a tract element type, if maas can carry it.
    pub fn from_tract(dt: DatumType) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.to_tract() == dt)
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
