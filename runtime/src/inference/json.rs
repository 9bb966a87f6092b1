//! OIP JSON tensors (`{"name", "shape", "datatype", "data"}`, `data` flat or nested) decoded
//! on the host, for the requests the server itself computes on: explanations and audits.
//! (Invocations and `/v2` inference decode their payload inside the sandbox instead.)
//!
//! `data` is read straight into numbers as the body is parsed ([`HostInput`]), 8 bytes an
//! element and at most [`MAX_ELEMENTS`] of them, never into a tree of JSON values (a 16 MiB
//! body of numbers took some 350 MB as one).

use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Datatype, InferenceError, RawTensor};

/// Most elements one input may hold.
pub const MAX_ELEMENTS: usize = 1 << 23;

/// Largest integer an element carries exactly (2⁵³).
const EXACT: u64 = 1 << 53;

/// An OIP JSON input tensor as the host reads it: its `data` already numbers.
#[derive(Debug, Deserialize)]
pub struct HostInput {
    /// The model's input name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// An OIP datatype: `FP32`, `INT64`, `BOOL`, ...
    pub datatype: String,
    /// The elements, flattened in row-major order.
    pub data: Numbers,
}

/// The elements of a tensor, flattened as they are parsed: booleans as 0 and 1, integers
/// exact up to 2⁵³ (a larger one is refused rather than rounded).
#[derive(Debug, Default)]
pub struct Numbers(pub Vec<f64>);

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut numbers = Vec::new();
        deserializer.deserialize_any(Flatten(&mut numbers))?;
        Ok(Numbers(numbers))
    }
}

/// Pushes every number of a (nested) array into the vector it holds.
struct Flatten<'a>(&'a mut Vec<f64>);

impl Flatten<'_> {
    fn push<E: de::Error>(self, value: f64) -> Result<(), E> {
        if self.0.len() >= MAX_ELEMENTS {
            return Err(E::custom(format!("an input holds more than {MAX_ELEMENTS} elements")));
        }
        self.0.push(value);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"data\": numbers or booleans, in a flat or nested array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(f64::from(u8::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if v.unsigned_abs() > EXACT {
            return Err(E::custom(format!("{v} is too large to be carried exactly (at most 2^53)")));
        }
        self.push(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if v > EXACT {
            return Err(E::custom(format!("{v} is too large to be carried exactly (at most 2^53)")));
        }
        self.push(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("\"data\" is missing"))
    }
}

fn invalid(message: String) -> InferenceError {
    InferenceError::InvalidInput(message)
}

/// Converts one input to bytes of its datatype, checking its shape and each value's range.
pub fn tensor_from_input(input: &HostInput) -> Result<RawTensor, InferenceError> {
    let name = &input.name;
    let datatype_name = &input.datatype;
    let datatype = Datatype::parse(datatype_name)
        .ok_or_else(|| invalid(format!("input {name:?}: unknown or unsupported datatype {datatype_name:?}")))?;
    let shape: Vec<usize> = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(format!("input {name:?}: a dimension is too large")))?;
    let expected = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    let values = &input.data.0;
    if Some(values.len()) != expected {
        return Err(invalid(format!(
            "input {name:?}: {} values in data, shape {shape:?} needs {expected:?}",
            values.len()
        )));
    }
    let mut data = Vec::with_capacity(values.len() * datatype.size());
    for &v in values {
        push(datatype, v, &mut data).map_err(|what| invalid(format!("input {name:?}: {what}")))?;
    }
    Ok(RawTensor { name: name.to_string(), datatype, shape, data })
}

fn push(datatype: Datatype, v: f64, out: &mut Vec<u8>) -> Result<(), String> {
    let ranged = |lo: f64, hi: f64| {
        if v.fract() != 0.0 {
            Err(format!("{v} is not an integer for {datatype:?}"))
        } else if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is out of range for {datatype:?}"))
        }
    };
    match datatype {
        Datatype::Bool => out.push(u8::from(v != 0.0)),
        Datatype::Uint8 => out.push(ranged(0.0, u8::MAX.into())? as u8),
        Datatype::Int8 => out.extend((ranged(i8::MIN.into(), i8::MAX.into())? as i8).to_le_bytes()),
        Datatype::Uint16 => out.extend((ranged(0.0, u16::MAX.into())? as u16).to_le_bytes()),
        Datatype::Int16 => out.extend((ranged(i16::MIN.into(), i16::MAX.into())? as i16).to_le_bytes()),
        Datatype::Uint32 => out.extend((ranged(0.0, u32::MAX.into())? as u32).to_le_bytes()),
        Datatype::Int32 => out.extend((ranged(i32::MIN.into(), i32::MAX.into())? as i32).to_le_bytes()),
        Datatype::Int64 => out.extend((ranged(-(EXACT as f64), EXACT as f64)? as i64).to_le_bytes()),
        Datatype::Uint64 => out.extend((ranged(0.0, EXACT as f64)? as u64).to_le_bytes()),
        Datatype::Fp32 => out.extend((v as f32).to_le_bytes()),
        Datatype::Fp64 => out.extend(v.to_le_bytes()),
        Datatype::Fp16 => return Err("FP16 inputs are not supported here; send FP32".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn tensor_from_json(value: &Value) -> Result<RawTensor, InferenceError> {
        let input: HostInput = serde_json::from_value(value.clone())
            .map_err(|e| InferenceError::InvalidInput(format!("malformed JSON body: {e}")))?;
        tensor_from_input(&input)
    }

    #[test]
    fn decodes_flat_and_nested_data() {
        let flat = tensor_from_json(&json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, 3, 4]}));
        let nested =
            tensor_from_json(&json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [3, 4]]}));
        let t = flat.unwrap();
        assert_eq!(t.shape, [2, 2]);
        assert_eq!(t.data, nested.unwrap().data);
        assert_eq!(&t.data[4..8], &2.5f32.to_le_bytes());
        let i =
            tensor_from_json(&json!({"name": "t", "shape": [2], "datatype": "INT64", "data": [-1, 1099511627776i64]}));
        assert_eq!(i.unwrap().data[8..], 1099511627776i64.to_le_bytes());
    }

    #[test]
    fn refuses_what_does_not_fit() {
        for (v, words) in [
            (json!({"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}), "2 values"),
            (json!({"name": "x", "shape": [1], "datatype": "FP33", "data": [1]}), "FP33"),
            (json!({"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}), "out of range"),
            (json!({"name": "x", "shape": [1], "datatype": "INT32", "data": ["a"]}), "numbers or booleans"),
            (json!({"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}), "not an integer"),
            (json!({"name": "x", "shape": [1], "datatype": "INT64", "data": [9007199254740993u64]}), "exactly"),
            (json!({"name": "x", "shape": [1], "datatype": "FP32", "data": null}), "missing"),
        ] {
            let err = tensor_from_json(&v).unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
        }
    }

    /// The element cap is checked as the numbers are read: a body past it fails without
    /// holding more than the cap.
    #[test]
    fn element_cap_is_checked_while_reading() {
        let mut body = String::from(r#"{"name": "x", "shape": [1], "datatype": "FP32", "data": ["#);
        body.push_str(&"0,".repeat(MAX_ELEMENTS));
        body.push_str("0]}");
        let err = serde_json::from_str::<HostInput>(&body).unwrap_err().to_string();
        assert!(err.contains("more than 8388608 elements"), "{err}");
    }
}
