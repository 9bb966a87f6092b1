//! Typed access to [`Tensor`]s: their bytes are little-endian, row-major, `bool` one byte 0/1.

use crate::{Datatype, Tensor, TensorInfo};

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

    /// The Open Inference Protocol name: `BOOL`, `UINT8`, …, `FP64`.
    pub fn name(self) -> &'static str {
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

    /// The datatype with Open Inference Protocol name `name` (exact, upper case), if any.
    pub fn from_name(name: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|datatype| datatype.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
        }
    }

    /// Whether this is `FP16`, `FP32` or `FP64`.
    pub fn is_float(self) -> bool {
        matches!(self, Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64)
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An IEEE 754 half-precision float, stored as its bits: the element type of `FP16` tensors.
///
/// Convert with [`F16::from_f32`] (round to nearest, ties to even) and [`F16::to_f32`] (exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct F16(pub u16);

impl F16 {
    /// The half-precision value nearest to `value` (ties to even); out of range becomes ±infinity,
    /// NaN stays NaN.
    pub fn from_f32(value: f32) -> F16 {
        let bits = value.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exponent = ((bits >> 23) & 0xff) as i32;
        let mantissa = bits & 0x007f_ffff;
        if exponent == 0xff {
            // Infinity keeps a zero mantissa; NaN keeps its top bits and stays quiet.
            let nan = if mantissa == 0 { 0 } else { 0x0200 | (mantissa >> 13) as u16 };
            return F16(sign | 0x7c00 | nan);
        }
        // The exponent rebiased for half precision (bias 15 instead of 127).
        let half_exponent = exponent - 127 + 15;
        if half_exponent >= 0x1f {
            return F16(sign | 0x7c00);
        }
        if half_exponent <= 0 {
            // Subnormal (or zero) in half precision: the value is m · 2^-24 with m < 1024.
            // Below 2^-25 everything rounds to zero.
            if half_exponent < -10 {
                return F16(sign);
            }
            let full = mantissa | 0x0080_0000;
            let shift = (14 - half_exponent) as u32;
            return F16(sign | round_shift(full, shift) as u16);
        }
        // Normal: a carry out of the mantissa correctly bumps the exponent (up to infinity).
        let unrounded = ((half_exponent as u32) << 10) | (mantissa >> 13);
        let rest = mantissa & 0x1fff;
        F16(sign | round_bits(unrounded, rest, 0x1000) as u16)
    }

    /// The exact single-precision value.
    pub fn to_f32(self) -> f32 {
        let bits = u32::from(self.0);
        let sign = (bits & 0x8000) << 16;
        let exponent = (bits >> 10) & 0x1f;
        let mantissa = bits & 0x03ff;
        let magnitude = match exponent {
            // Zero or subnormal: m · 2^-24, exact in f32.
            0 => return f32::from_bits(sign | (mantissa as f32 * (1.0 / 16_777_216.0)).to_bits()),
            0x1f => 0x7f80_0000 | (mantissa << 13),
            _ => ((exponent + 127 - 15) << 23) | (mantissa << 13),
        };
        f32::from_bits(sign | magnitude)
    }
}

/// `value >> shift`, rounded to nearest with ties to even.
fn round_shift(value: u32, shift: u32) -> u32 {
    let rest = value & ((1 << shift) - 1);
    round_bits(value >> shift, rest, 1 << (shift - 1))
}

/// Rounds `unrounded` up by one when the dropped bits `rest` exceed `half`, or equal it and
/// `unrounded` is odd.
fn round_bits(unrounded: u32, rest: u32, half: u32) -> u32 {
    if rest > half || (rest == half && unrounded & 1 == 1) { unrounded + 1 } else { unrounded }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that is the element type of one [`Datatype`]: `bool`, `u8`…`u64`, `i8`…`i64`,
/// [`F16`], `f32` and `f64`.
///
/// Used by [`Tensor::from_slice`] and [`Tensor::to_vec`]; implemented only in this crate.
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The datatype whose elements are `Self`.
    const DATATYPE: Datatype;
    /// Bytes per element, as [`Datatype::size`] of [`Element::DATATYPE`].
    const SIZE: usize;
    /// Appends the little-endian bytes of `self` to `out`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from exactly [`Element::SIZE`] little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! numeric_element {
    ($($ty:ty => $datatype:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const DATATYPE: Datatype = Datatype::$datatype;
            const SIZE: usize = std::mem::size_of::<$ty>();
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut le = [0; std::mem::size_of::<$ty>()];
                le.copy_from_slice(bytes);
                <$ty>::from_le_bytes(le)
            }
        }
    )*};
}

numeric_element! {
    u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    f32 => Fp32, f64 => Fp64,
}

impl sealed::Sealed for bool {}
impl Element for bool {
    const DATATYPE: Datatype = Datatype::Bool;
    const SIZE: usize = 1;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl sealed::Sealed for F16 {}
impl Element for F16 {
    const DATATYPE: Datatype = Datatype::Fp16;
    const SIZE: usize = 2;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        F16(u16::from_le_bytes([bytes[0], bytes[1]]))
    }
}

impl Tensor {
    /// A tensor of `T`'s datatype holding `data`, row-major, in `shape`.
    ///
    /// The element count is not checked here: the host rejects a tensor whose byte count does
    /// not match its shape (see [`Tensor::element_count`]).
    pub fn from_slice<T: Element>(name: impl Into<String>, shape: impl Into<Vec<u64>>, data: &[T]) -> Tensor {
        let mut bytes = Vec::with_capacity(data.len() * T::SIZE);
        for &element in data {
            element.write_le(&mut bytes);
        }
        Tensor { name: name.into(), datatype: T::DATATYPE, shape: shape.into(), data: bytes }
    }

    /// An `FP32` tensor holding `data` in `shape`: `Tensor::from_f32("x", [1, 4], &features)`.
    pub fn from_f32(name: impl Into<String>, shape: impl Into<Vec<u64>>, data: &[f32]) -> Tensor {
        Tensor::from_slice(name, shape, data)
    }

    /// The elements as `T`, if the tensor's datatype is `T`'s and its bytes are whole elements.
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        if self.datatype != T::DATATYPE || !self.data.len().is_multiple_of(T::SIZE) {
            return None;
        }
        Some(self.data.chunks_exact(T::SIZE).map(T::read_le).collect())
    }

    /// The elements of an `FP32` tensor; `None` for any other datatype.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        self.to_vec()
    }

    /// The elements of any tensor converted to `f64` (`BOOL` as 0 or 1; 64-bit integers beyond
    /// 2^53 lose precision), or `None` if its bytes are not whole elements.
    pub fn to_f64_lossy(&self) -> Option<Vec<f64>> {
        let size = self.datatype.size();
        if !self.data.len().is_multiple_of(size) {
            return None;
        }
        let chunks = self.data.chunks_exact(size);
        Some(match self.datatype {
            Datatype::Bool => chunks.map(|b| f64::from(u8::from(bool::read_le(b)))).collect(),
            Datatype::Uint8 => chunks.map(|b| f64::from(u8::read_le(b))).collect(),
            Datatype::Uint16 => chunks.map(|b| f64::from(u16::read_le(b))).collect(),
            Datatype::Uint32 => chunks.map(|b| f64::from(u32::read_le(b))).collect(),
            Datatype::Uint64 => chunks.map(|b| u64::read_le(b) as f64).collect(),
            Datatype::Int8 => chunks.map(|b| f64::from(i8::read_le(b))).collect(),
            Datatype::Int16 => chunks.map(|b| f64::from(i16::read_le(b))).collect(),
            Datatype::Int32 => chunks.map(|b| f64::from(i32::read_le(b))).collect(),
            Datatype::Int64 => chunks.map(|b| i64::read_le(b) as f64).collect(),
            Datatype::Fp16 => chunks.map(|b| f64::from(F16::read_le(b).to_f32())).collect(),
            Datatype::Fp32 => chunks.map(|b| f64::from(f32::read_le(b))).collect(),
            Datatype::Fp64 => chunks.map(f64::read_le).collect(),
        })
    }

    /// The number of elements the shape holds (its product; 1 for a scalar), or `None` if that
    /// overflows `u64`.
    pub fn element_count(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |count, &dim| count.checked_mul(dim))
    }
}

/// The shape `[-2]` of a tensor whose rank the model does not say: any shape fits it.
pub const ANY_RANK: i64 = -2;

impl TensorInfo {
    /// Whether the model does not say this tensor's rank (its shape is `[ANY_RANK]`).
    pub fn any_rank(&self) -> bool {
        self.shape == [ANY_RANK]
    }

    /// Whether `shape` fits this declared shape: any shape when the rank is not known, else
    /// the same rank and equal in every dimension that is not `-1`.
    pub fn accepts_shape(&self, shape: &[u64]) -> bool {
        self.any_rank()
            || self.shape.len() == shape.len()
                && self.shape.iter().zip(shape).all(|(&declared, &dim)| {
                    declared == -1 || u64::try_from(declared).is_ok_and(|declared| declared == dim)
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip() {
        for datatype in Datatype::ALL {
            assert_eq!(Datatype::from_name(datatype.name()), Some(datatype));
        }
        assert_eq!(Datatype::from_name("fp32"), None);
        assert_eq!(Datatype::from_name("BYTES"), None);
    }

    #[test]
    fn f16_known_values() {
        let cases: &[(f32, u16)] = &[
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00), // rounds up to infinity
            (65519.0, 0x7bff),
            (1e10, 0x7c00),
            (f32::INFINITY, 0x7c00),
            (f32::NEG_INFINITY, 0xfc00),
            (6.103_515_6e-5, 0x0400), // smallest normal
            (5.960_464_5e-8, 0x0001), // smallest subnormal
            (2.980_232_2e-8, 0x0000), // half of it: tie to even (zero)
            (4.0e-8, 0x0001),         // above half: rounds up
            (1e-10, 0x0000),
            (0.1, 0x2e66),
            (1.000_976_6, 0x3c01),
            (1.000_488_3, 0x3c00), // exact tie between 0x3c00 and 0x3c01: even
            (1.001_464_8, 0x3c02), // exact tie between 0x3c01 and 0x3c02: even
        ];
        for &(value, bits) in cases {
            assert_eq!(F16::from_f32(value), F16(bits), "{value}");
        }
        assert!(F16::from_f32(f32::NAN).to_f32().is_nan());
    }

    #[test]
    fn f16_round_trips_every_value() {
        for bits in 0..=u16::MAX {
            let half = F16(bits);
            let value = half.to_f32();
            if value.is_nan() {
                assert!(F16::from_f32(value).to_f32().is_nan());
            } else {
                assert_eq!(F16::from_f32(value), half, "{bits:#06x} -> {value}");
            }
        }
    }

    #[test]
    fn typed_round_trip() {
        let tensor = Tensor::from_slice("x", [2, 2], &[1i64, -2, 3, i64::MIN]);
        assert_eq!(tensor.datatype, Datatype::Int64);
        assert_eq!(tensor.data.len(), 32);
        assert_eq!(&tensor.data[8..16], &(-2i64).to_le_bytes());
        assert_eq!(tensor.to_vec::<i64>(), Some(vec![1, -2, 3, i64::MIN]));
        assert_eq!(tensor.to_vec::<u64>(), None);
        assert_eq!(tensor.to_f32(), None);
        assert_eq!(tensor.element_count(), Some(4));

        let flags = Tensor::from_slice("b", [3], &[true, false, true]);
        assert_eq!(flags.data, vec![1, 0, 1]);
        assert_eq!(flags.to_f64_lossy(), Some(vec![1.0, 0.0, 1.0]));

        let floats = Tensor::from_f32("f", vec![2], &[0.5, -1.25]);
        assert_eq!(floats.to_f32(), Some(vec![0.5, -1.25]));
        assert_eq!(Tensor::from_slice::<f32>("s", [], &[7.0]).element_count(), Some(1));
    }

    #[test]
    fn accepts_shape() {
        let info = TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 4] };
        assert!(info.accepts_shape(&[1, 4]));
        assert!(info.accepts_shape(&[7, 4]));
        assert!(!info.accepts_shape(&[1, 3]));
        assert!(!info.accepts_shape(&[4]));
        let any = TensorInfo { shape: vec![ANY_RANK], ..info };
        assert!(any.accepts_shape(&[]) && any.accepts_shape(&[2, 3, 4]));
    }
}
