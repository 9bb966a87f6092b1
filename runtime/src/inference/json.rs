//! OIP JSON tensors ([`InferInput`]: `{"name", "shape", "datatype", "data"}`, `data` flat or
//! nested) decoded on the host, for the requests the server itself computes on: explanations
//! and audits. (Invocations and `/v2` inference decode their payload inside the sandbox instead.)

use maas_types::oip::InferInput;
use serde_json::Value;

use super::{Datatype, InferenceError, RawTensor};

fn invalid(message: String) -> InferenceError {
    InferenceError::InvalidInput(message)
}

/// Decodes one OIP input tensor into bytes of its datatype.
pub fn tensor_from_input(input: &InferInput) -> Result<RawTensor, InferenceError> {
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
    let mut flat = Vec::new();
    flatten(&input.data, &mut flat).map_err(|what| invalid(format!("input {name:?}: {what}")))?;
    if Some(flat.len()) != expected {
        return Err(invalid(format!(
            "input {name:?}: {} values in data, shape {shape:?} needs {expected:?}",
            flat.len()
        )));
    }
    let mut data = Vec::with_capacity(flat.len() * datatype.size());
    for v in flat {
        push(datatype, v, &mut data).map_err(|what| invalid(format!("input {name:?}: {what}")))?;
    }
    Ok(RawTensor { name: name.to_string(), datatype, shape, data })
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| flatten(item, out)),
        Value::Number(_) | Value::Bool(_) => {
            out.push(value);
            Ok(())
        }
        Value::Null => Err("\"data\" is missing".into()),
        other => Err(format!("{other} is not a number")),
    }
}

fn push(datatype: Datatype, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let float = || v.as_f64().ok_or_else(|| format!("{v} is not a number"));
    let int = || {
        v.as_i64()
            .or_else(|| v.as_bool().map(i64::from))
            .ok_or_else(|| format!("{v} is not an integer for {datatype:?}"))
    };
    let ranged = |lo: i64, hi: i64| {
        int().and_then(|i| {
            if (lo..=hi).contains(&i) { Ok(i) } else { Err(format!("{i} is out of range for {datatype:?}")) }
        })
    };
    match datatype {
        Datatype::Bool => out.push(u8::from(v.as_bool().map_or_else(|| float().map(|f| f != 0.0), Ok)?)),
        Datatype::Uint8 => out.push(ranged(0, u8::MAX.into())? as u8),
        Datatype::Int8 => out.extend((ranged(i8::MIN.into(), i8::MAX.into())? as i8).to_le_bytes()),
        Datatype::Uint16 => out.extend((ranged(0, u16::MAX.into())? as u16).to_le_bytes()),
        Datatype::Int16 => out.extend((ranged(i16::MIN.into(), i16::MAX.into())? as i16).to_le_bytes()),
        Datatype::Uint32 => out.extend((ranged(0, u32::MAX.into())? as u32).to_le_bytes()),
        Datatype::Int32 => out.extend((ranged(i32::MIN.into(), i32::MAX.into())? as i32).to_le_bytes()),
        Datatype::Int64 => out.extend(int()?.to_le_bytes()),
        Datatype::Uint64 => out.extend(v.as_u64().ok_or_else(|| format!("{v} is not a UINT64"))?.to_le_bytes()),
        Datatype::Fp32 => out.extend((float()? as f32).to_le_bytes()),
        Datatype::Fp64 => out.extend(float()?.to_le_bytes()),
        Datatype::Fp16 => return Err("FP16 inputs are not supported here; send FP32".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tensor_from_json(value: &Value) -> Result<RawTensor, InferenceError> {
        tensor_from_input(&serde_json::from_value(value.clone()).expect("an OIP input"))
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
            (json!({"name": "x", "shape": [1], "datatype": "INT32", "data": ["a"]}), "not a number"),
            (json!({"name": "x", "shape": [1], "datatype": "FP32", "data": null}), "missing"),
        ] {
            let err = tensor_from_json(&v).unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
        }
    }
}
