//! Tiny ONNX models for the trust tests, built from tract's own protobuf types (as
//! `maas-tests` does; that crate depends on this one, so it is not used here).

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use crate::inference::{Datatype, LoadedModel, RawTensor};

/// A dimension: fixed or the symbol `N`.
#[derive(Clone, Copy)]
pub enum Dim {
    Fixed(i64),
    N,
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Fixed(n) => Value::DimValue(n),
                Dim::N => Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32_init(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: output.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn load(graph: pb::GraphProto) -> LoadedModel {
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    LoadedModel::load(&model.encode_to_vec()).expect("test model loads")
}

/// `y = x·w + b`: input `x` FP32 `[batch, n]`, output `y` FP32 `[batch, 1]`.
pub fn linear(weights: &[f32], bias: f32, batch: Dim) -> LoadedModel {
    let n = weights.len();
    load(pb::GraphProto {
        name: "linear".into(),
        node: vec![node("MatMul", &["x", "w"], "xw", vec![]), node("Add", &["xw", "b"], "y", vec![])],
        initializer: vec![f32_init("w", &[n, 1], weights), f32_init("b", &[1], &[bias])],
        input: vec![value_info("x", DataType::Float, &[batch, Dim::Fixed(n as i64)])],
        output: vec![value_info("y", DataType::Float, &[batch, Dim::Fixed(1)])],
        ..Default::default()
    })
}

/// `y = float(x)·w + b` with an INT64 input `x` `[N, n]`.
pub fn int_linear(weights: &[f32], bias: f32) -> LoadedModel {
    let n = weights.len();
    load(pb::GraphProto {
        name: "int_linear".into(),
        node: vec![
            node("Cast", &["x"], "xf", vec![attr_int("to", DataType::Float as i64)]),
            node("MatMul", &["xf", "w"], "xw", vec![]),
            node("Add", &["xw", "b"], "y", vec![]),
        ],
        initializer: vec![f32_init("w", &[n, 1], weights), f32_init("b", &[1], &[bias])],
        input: vec![value_info("x", DataType::Int64, &[Dim::N, Dim::Fixed(n as i64)])],
        output: vec![value_info("y", DataType::Float, &[Dim::N, Dim::Fixed(1)])],
        ..Default::default()
    })
}

/// Two inputs: `y = a·wa + c·wc`, `a` and `c` FP32 `[N, n]`.
pub fn two_inputs(wa: &[f32], wc: &[f32]) -> LoadedModel {
    let n = wa.len();
    assert_eq!(n, wc.len());
    load(pb::GraphProto {
        name: "two_inputs".into(),
        node: vec![
            node("MatMul", &["a", "wa"], "aw", vec![]),
            node("MatMul", &["c", "wc"], "cw", vec![]),
            node("Add", &["aw", "cw"], "y", vec![]),
        ],
        initializer: vec![f32_init("wa", &[n, 1], wa), f32_init("wc", &[n, 1], wc)],
        input: vec![
            value_info("a", DataType::Float, &[Dim::N, Dim::Fixed(n as i64)]),
            value_info("c", DataType::Float, &[Dim::N, Dim::Fixed(n as i64)]),
        ],
        output: vec![value_info("y", DataType::Float, &[Dim::N, Dim::Fixed(1)])],
        ..Default::default()
    })
}

/// The seed MLP with a batch dimension (as `maas_tests::models::mlp_batch`): `input` FP32
/// `[N, 100]` → 64 (Relu) → 10 → Softmax `output` FP32 `[N, 10]`, seeded Xavier weights.
pub fn mlp_batch(seed: u64) -> LoadedModel {
    mlp(seed, &[100, 64, 10])
}

/// A dense network `sizes[0] → … → sizes[last]` (Relu between layers, Softmax at the end):
/// `input` FP32 `[N, sizes[0]]` → `output` FP32 `[N, sizes[last]]`.
pub fn mlp(seed: u64, sizes: &[usize]) -> LoadedModel {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes = Vec::new();
    let mut initializer = Vec::new();
    let mut current = "input".to_string();
    for (i, pair) in sizes.windows(2).enumerate() {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-limit..limit)).collect();
        let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-0.05..0.05)).collect();
        let (wn, bn, mm, z) = (format!("w{i}"), format!("b{i}"), format!("mm{i}"), format!("z{i}"));
        initializer.push(f32_init(&wn, &[fan_in, fan_out], &w));
        initializer.push(f32_init(&bn, &[fan_out], &b));
        nodes.push(node("MatMul", &[&current, &wn], &mm, vec![]));
        nodes.push(node("Add", &[&mm, &bn], &z, vec![]));
        current = if i + 2 < sizes.len() {
            let relu = format!("relu{i}");
            nodes.push(node("Relu", &[&z], &relu, vec![]));
            relu
        } else {
            z
        };
    }
    nodes.push(node("Softmax", &[&current], "output", vec![attr_int("axis", 1)]));
    load(pb::GraphProto {
        name: "mlp".into(),
        node: nodes,
        initializer,
        input: vec![value_info("input", DataType::Float, &[Dim::N, Dim::Fixed(sizes[0] as i64)])],
        output: vec![value_info("output", DataType::Float, &[Dim::N, Dim::Fixed(sizes[sizes.len() - 1] as i64)])],
        ..Default::default()
    })
}

/// An image classifier that is linear per class: `image` FP32 `[N, c, h, w]` (or
/// `[N, h, w, c]` with `nhwc`) → Flatten → MatMul `weights` (`c·h·w × 2`) → `logits` `[N, 2]`.
pub fn image_linear(c: usize, h: usize, w: usize, nhwc: bool, weights: &[f32]) -> LoadedModel {
    let n = c * h * w;
    assert_eq!(weights.len(), n * 2);
    let dims = if nhwc {
        [Dim::N, Dim::Fixed(h as i64), Dim::Fixed(w as i64), Dim::Fixed(c as i64)]
    } else {
        [Dim::N, Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)]
    };
    load(pb::GraphProto {
        name: "image_linear".into(),
        node: vec![
            node("Flatten", &["image"], "flat", vec![attr_int("axis", 1)]),
            node("MatMul", &["flat", "w"], "logits", vec![]),
        ],
        initializer: vec![f32_init("w", &[n, 2], weights)],
        input: vec![value_info("image", DataType::Float, &dims)],
        output: vec![value_info("logits", DataType::Float, &[Dim::N, Dim::Fixed(2)])],
        ..Default::default()
    })
}

/// An FP32 tensor.
pub fn f32_tensor(name: &str, shape: &[usize], data: &[f32]) -> RawTensor {
    RawTensor {
        name: name.into(),
        datatype: Datatype::Fp32,
        shape: shape.to_vec(),
        data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Reproducible values uniform in `[-1, 1)`.
pub fn seeded(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}
