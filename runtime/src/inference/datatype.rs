//! tract's element types for maas's [`Datatype`].

use maas_types::Datatype;
use tract_onnx::prelude::DatumType;

/// Conversions between maas's [`Datatype`] and tract's [`DatumType`].
pub trait TractDatatype: Sized {
    /// The tract element type.
    fn to_tract(self) -> DatumType;
    /// The datatype of a tract element type, if maas can carry it.
    fn from_tract(dt: DatumType) -> Option<Self>;
}

impl TractDatatype for Datatype {
    fn to_tract(self) -> DatumType {
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

    fn from_tract(dt: DatumType) -> Option<Self> {
        Datatype::ALL.into_iter().find(|d| d.to_tract() == dt)
    }
}
