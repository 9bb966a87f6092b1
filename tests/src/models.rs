//! ONNX test models, built in code from the protobuf types tract itself uses
//! (`tract_onnx::pb`), so the test suite needs no Python and no binary fixtures.
//!
//! Every builder returns the serialized `ModelProto` bytes (IR version 8, default-domain
//! opset 13), exactly what a client would upload to the registry.
//!
//! | builder | inputs → outputs | what it is for |
//! |---|---|---|
//! | [`mlp`] | `input` FP32 `[1, 100]` → `output` FP32 `[1, 10]` | **the seed model**: MatMul+Add → Relu → MatMul+Add → Softmax, seeded Xavier weights; quick start, happy-path inference |
//! | [`mlp_with_marker`] | as [`mlp`] | [`mlp`] plus caller-chosen bytes in an initializer no node reads; encryption-at-rest tests look for them on disk |
//! | [`mlp_batch`] | `input` FP32 `["N", 100]` → `output` FP32 `["N", 10]` | the same network (same weights for the same seed) with a symbolic batch dimension; batching tests |
//! | [`mlp_sized`] | `input` FP32 `["N", 100]` → `output` FP32 `["N", 10]` | a deeper/wider MLP (`100 → hidden → hidden → 10`); with [`LARGE_HIDDEN`] it costs far more than 10× the seed model's CPU time (energy / metering tests) |
//! | [`linear`] | `x` FP32 `["N", n]` → `y` FP32 `["N", 1]` | `y = x·w + b` with caller-chosen weights; explanation / attribution tests with known answers |
//! | [`int64_model`] | `tokens` INT64 `["N", 4]` → `sum` INT64 `["N", 1]`, `scaled` FP32 `["N", 4]` | non-float input, two outputs of different types |
//! | [`identity`] | `x` `<T>` `["N", 3]` → `y` `<T>` `["N", 3]` | datatype round trips for every OIP datatype tract supports ([`IDENTITY_DATATYPES`]) |
//! | [`invalid_onnx`] | — | bytes that are not protobuf at all: upload must be rejected |
//! | [`broken_graph`] | — | a well-formed `ModelProto` whose graph has a dangling edge: tract fails to load it |
//! | [`unknown_op`] | — | a well-formed, loadable `ModelProto` using an op tract does not implement: fails when typed/optimized |
//!
//! [`run_tract`] is the reference runner: it loads bytes with tract directly, so tests can
//! compare what the platform returns with what tract computes. [`seeded_input`] makes
//! reproducible FP32 input data.

use anyhow::{Context, bail, ensure};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::prelude::*;

/// ONNX IR version written into every model.
pub const IR_VERSION: i64 = 8;
/// Default-domain (`ai.onnx`) operator-set version written into every model.
pub const OPSET: i64 = 13;
/// Number of input features of the MLP models ([`mlp`], [`mlp_batch`], [`mlp_sized`]).
pub const MLP_INPUTS: usize = 100;
/// Width of the single hidden layer of [`mlp`] and [`mlp_batch`].
pub const MLP_HIDDEN: usize = 64;
/// Number of output classes of the MLP models (softmax probabilities).
pub const MLP_OUTPUTS: usize = 10;
/// Hidden width that makes [`mlp_sized`] the "large" model for energy tests:
/// `100 → 1536 → 1536 → 10` (≈2.5 M multiply-adds per row, ≈350× [`mlp`]'s; file ≈10 MB,
/// under the default 16 MiB request cap). Measured with tract (optimized plan, warm, best
/// of 5): ≈0.8 ms vs ≈33 µs for [`mlp`] at batch 1 (≈21–25×), ≈20–35× at batch 8.
/// (1024 gives only ≈9–13×, since small runs are dominated by fixed per-run cost; 2048
/// gives ≈35–65× but the file is 17.7 MB.)
pub const LARGE_HIDDEN: usize = 1536;

/// The OIP datatypes (KServe v2 names) for which [`identity`] builds a model that tract
/// loads and runs. `BYTES` (ONNX `STRING`) is deliberately not in the list.
pub const IDENTITY_DATATYPES: &[&str] =
    &["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"];

/// A dimension of a graph input/output: fixed size or a named symbol (ONNX `dim_param`).
#[derive(Clone, Copy)]
enum Dim {
    Fixed(i64),
    Sym(&'static str),
}

fn tensor_type(elem: DataType, dims: &[Dim]) -> pb::TypeProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Fixed(n) => Value::DimValue(n),
                Dim::Sym(s) => Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: elem as i32,
            shape: Some(pb::TensorShapeProto { dim }),
        })),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> pb::ValueInfoProto {
    pb::ValueInfoProto { name: name.to_string(), r#type: Some(tensor_type(elem, dims)), ..Default::default() }
}

/// An FP32 initializer stored little-endian in `raw_data`, as exporters (PyTorch) do.
fn f32_init(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}");
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An INT64 initializer stored in the typed `int64_data` field.
fn i64_init(name: &str, dims: &[usize], data: &[i64]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}");
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn node(
    name: &str,
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: name.to_string(),
        op_type: op_type.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn model_proto(graph: pb::GraphProto, doc: &str) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "maas-tests".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        model_version: 1,
        doc_string: doc.to_string(),
        graph: Some(graph),
        ..Default::default()
    }
}

fn encode(graph: pb::GraphProto, doc: &str) -> Vec<u8> {
    model_proto(graph, doc).encode_to_vec()
}

/// A stack of dense layers `sizes[0] → sizes[1] → … → sizes[last]`, Relu between layers,
/// Softmax at the end. Weights are Xavier-uniform, biases uniform ±0.05, all from
/// `StdRng::seed_from_u64(seed)`, drawn layer by layer (so equal `sizes` and `seed` give
/// equal weights whatever the batch dimension).
fn dense_softmax(seed: u64, batch: Dim, sizes: &[usize], graph_name: &str, doc: &str) -> Vec<u8> {
    assert!(sizes.len() >= 2, "need at least an input and an output size");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes = Vec::new();
    let mut initializer = Vec::new();
    let mut current = "input".to_string();
    let layers = sizes.len() - 1;
    for (i, pair) in sizes.windows(2).enumerate() {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-limit..limit)).collect();
        let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-0.05..0.05)).collect();
        let layer = format!("fc{}", i + 1);
        let (w_name, b_name) = (format!("{layer}.weight"), format!("{layer}.bias"));
        initializer.push(f32_init(&w_name, &[fan_in, fan_out], &w));
        initializer.push(f32_init(&b_name, &[fan_out], &b));
        let mm = format!("{layer}/matmul");
        let z = format!("{layer}/add");
        nodes.push(node(&mm, "MatMul", &[&current, &w_name], &[&mm], vec![]));
        nodes.push(node(&z, "Add", &[&mm, &b_name], &[&z], vec![]));
        current = if i + 1 < layers {
            let relu = format!("{layer}/relu");
            nodes.push(node(&relu, "Relu", &[&z], &[&relu], vec![]));
            relu
        } else {
            z
        };
    }
    nodes.push(node("softmax", "Softmax", &[&current], &["output"], vec![attr_int("axis", 1)]));
    let out = *sizes.last().unwrap();
    let graph = pb::GraphProto {
        name: graph_name.to_string(),
        node: nodes,
        initializer,
        input: vec![value_info("input", DataType::Float, &[batch, Dim::Fixed(sizes[0] as i64)])],
        output: vec![value_info("output", DataType::Float, &[batch, Dim::Fixed(out as i64)])],
        ..Default::default()
    };
    encode(graph, doc)
}

/// The seed model: input `"input"` FP32 `[1, 100]` → MatMul+Add (64) → Relu →
/// MatMul+Add (10) → Softmax → output `"output"` FP32 `[1, 10]`.
///
/// Weights are Xavier-uniform (biases ±0.05) from `StdRng::seed_from_u64(seed)`, so the
/// output is a non-degenerate probability vector that depends on the input. The same `seed`
/// always gives the same bytes.
pub fn mlp(seed: u64) -> Vec<u8> {
    dense_softmax(
        seed,
        Dim::Fixed(1),
        &[MLP_INPUTS, MLP_HIDDEN, MLP_OUTPUTS],
        "mlp",
        "maas seed model: 100 -> 64 (relu) -> 10 softmax, batch 1",
    )
}

/// [`mlp`] with `marker` planted verbatim in an extra UINT8 initializer `"maas.marker"`
/// (shape `[marker.len()]`) that no node reads. The file contains `marker` byte for byte, and
/// tract loads it and computes exactly what [`mlp`] computes for the same `seed` (the unused
/// constant is pruned). For encryption-at-rest tests, which plant a random marker and look for
/// it in the server's data directory.
pub fn mlp_with_marker(seed: u64, marker: &[u8]) -> Vec<u8> {
    let mut model = pb::ModelProto::decode(&*mlp(seed)).expect("mlp is a valid ModelProto");
    let graph = model.graph.as_mut().expect("mlp has a graph");
    graph.initializer.push(pb::TensorProto {
        name: "maas.marker".to_string(),
        dims: vec![marker.len() as i64],
        data_type: DataType::Uint8 as i32,
        raw_data: marker.to_vec(),
        ..Default::default()
    });
    model.encode_to_vec()
}

/// [`mlp`] with a symbolic batch dimension: input `"input"` FP32 `["N", 100]`, output
/// `"output"` FP32 `["N", 10]`. For the same `seed` the weights are identical to [`mlp`]'s,
/// so each row of a batch gives exactly what [`mlp`] gives for that row alone.
pub fn mlp_batch(seed: u64) -> Vec<u8> {
    dense_softmax(
        seed,
        Dim::Sym("N"),
        &[MLP_INPUTS, MLP_HIDDEN, MLP_OUTPUTS],
        "mlp_batch",
        "maas seed model: 100 -> 64 (relu) -> 10 softmax, symbolic batch N",
    )
}

/// A bigger MLP with symbolic batch: input `"input"` FP32 `["N", 100]` → `hidden` (Relu) →
/// `hidden` (Relu) → 10 → Softmax → output `"output"` FP32 `["N", 10]`, same input/output
/// signature as [`mlp_batch`] so tests can swap one for the other.
///
/// Use `hidden = `[`LARGE_HIDDEN`] (1536) for the "much more expensive" model of energy /
/// metering tests: a run takes ≈20–35× the CPU time of [`mlp`] (see [`LARGE_HIDDEN`]). The
/// file is about `4 · (hidden² + 112 · hidden)` bytes. Weights are seeded like [`mlp`]'s but
/// are not the same (even at `hidden = 64` this is a different, deeper network).
pub fn mlp_sized(seed: u64, hidden: usize) -> Vec<u8> {
    assert!(hidden > 0, "hidden width must be positive");
    dense_softmax(
        seed,
        Dim::Sym("N"),
        &[MLP_INPUTS, hidden, hidden, MLP_OUTPUTS],
        "mlp_sized",
        &format!("maas large model: 100 -> {hidden} -> {hidden} (relu) -> 10 softmax, batch N"),
    )
}

/// A linear model with known weights: input `"x"` FP32 `["N", n]` (n = `weights.len()`) →
/// output `"y"` FP32 `["N", 1]` with `y = x·weights + bias` (MatMul + Add). For explanation
/// tests, where the exact attribution of each feature is known.
///
/// Panics if `weights` is empty.
pub fn linear(weights: &[f32], bias: f32) -> Vec<u8> {
    assert!(!weights.is_empty(), "linear model needs at least one weight");
    let n = weights.len();
    let graph = pb::GraphProto {
        name: "linear".to_string(),
        node: vec![
            node("matmul", "MatMul", &["x", "w"], &["xw"], vec![]),
            node("add", "Add", &["xw", "b"], &["y"], vec![]),
        ],
        initializer: vec![f32_init("w", &[n, 1], weights), f32_init("b", &[1], &[bias])],
        input: vec![value_info("x", DataType::Float, &[Dim::Sym("N"), Dim::Fixed(n as i64)])],
        output: vec![value_info("y", DataType::Float, &[Dim::Sym("N"), Dim::Fixed(1)])],
        ..Default::default()
    };
    encode(graph, "maas linear model: y = x.w + b")
}

/// An image-shaped linear model: input `"image"` FP32 `["N", channels, side, side]` → output
/// `"score"` FP32 `["N", 1]` = Σ image ⊙ `weights` (Mul, Flatten, ReduceSum). `weights` has
/// `channels · side · side` elements in NCHW order. For explanation heatmaps: the attribution of
/// each pixel is known in closed form.
pub fn image_linear(channels: usize, side: usize, weights: &[f32]) -> Vec<u8> {
    let n = channels * side * side;
    assert_eq!(weights.len(), n, "one weight per pixel and channel");
    let (c, s) = (channels as i64, side as i64);
    let graph = pb::GraphProto {
        name: "image_linear".to_string(),
        node: vec![
            node("mul", "Mul", &["image", "w"], &["weighted"], vec![]),
            node("flatten", "Flatten", &["weighted"], &["flat"], vec![attr_int("axis", 1)]),
            node("sum", "ReduceSum", &["flat", "axes"], &["score"], vec![attr_int("keepdims", 1)]),
        ],
        initializer: vec![f32_init("w", &[1, channels, side, side], weights), i64_init("axes", &[1], &[1])],
        input: vec![value_info(
            "image",
            DataType::Float,
            &[Dim::Sym("N"), Dim::Fixed(c), Dim::Fixed(s), Dim::Fixed(s)],
        )],
        output: vec![value_info("score", DataType::Float, &[Dim::Sym("N"), Dim::Fixed(1)])],
        ..Default::default()
    };
    encode(graph, "maas image model: score = sum(image * w)")
}

/// An integer-input model with two outputs of different types: input `"tokens"` INT64
/// `["N", 4]` → `"sum"` INT64 `["N", 1]` (ReduceSum over axis 1, keepdims) and `"scaled"`
/// FP32 `["N", 4]` (Cast to float, × 0.5). Outputs are listed in that order.
pub fn int64_model() -> Vec<u8> {
    let n = Dim::Sym("N");
    let graph = pb::GraphProto {
        name: "int64_model".to_string(),
        node: vec![
            node("reduce_sum", "ReduceSum", &["tokens", "axes"], &["sum"], vec![attr_int("keepdims", 1)]),
            node("cast", "Cast", &["tokens"], &["tokens_f32"], vec![attr_int("to", DataType::Float as i64)]),
            node("mul", "Mul", &["tokens_f32", "half"], &["scaled"], vec![]),
        ],
        initializer: vec![i64_init("axes", &[1], &[1]), f32_init("half", &[], &[0.5])],
        input: vec![value_info("tokens", DataType::Int64, &[n, Dim::Fixed(4)])],
        output: vec![
            value_info("sum", DataType::Int64, &[n, Dim::Fixed(1)]),
            value_info("scaled", DataType::Float, &[n, Dim::Fixed(4)]),
        ],
        ..Default::default()
    };
    encode(graph, "maas int64 model: sum = reduce_sum(tokens, 1); scaled = float(tokens) * 0.5")
}

/// The ONNX element type for an OIP (KServe v2) datatype name, if tract supports it.
fn onnx_type(datatype: &str) -> Option<DataType> {
    Some(match datatype {
        "BOOL" => DataType::Bool,
        "UINT8" => DataType::Uint8,
        "UINT16" => DataType::Uint16,
        "UINT32" => DataType::Uint32,
        "UINT64" => DataType::Uint64,
        "INT8" => DataType::Int8,
        "INT16" => DataType::Int16,
        "INT32" => DataType::Int32,
        "INT64" => DataType::Int64,
        "FP16" => DataType::Float16,
        "FP32" => DataType::Float,
        "FP64" => DataType::Double,
        _ => return None,
    })
}

/// An Identity model for one OIP datatype: input `"x"` of that type, shape `["N", 3]` →
/// output `"y"` = `x` (same type and shape). tract optimizes the Identity away, so the
/// output is the input tensor.
///
/// Works for every name in [`IDENTITY_DATATYPES`]: BOOL, UINT8, UINT16, UINT32, UINT64, INT8,
/// INT16, INT32, INT64, FP16, FP32, FP64. Any other name (including `BYTES`) is an error.
pub fn identity(datatype: &str) -> anyhow::Result<Vec<u8>> {
    let Some(elem) = onnx_type(datatype) else {
        bail!("identity: unsupported datatype {datatype:?} (supported: {IDENTITY_DATATYPES:?})");
    };
    let dims = [Dim::Sym("N"), Dim::Fixed(3)];
    let graph = pb::GraphProto {
        name: format!("identity_{}", datatype.to_lowercase()),
        node: vec![node("identity", "Identity", &["x"], &["y"], vec![])],
        input: vec![value_info("x", elem, &dims)],
        output: vec![value_info("y", elem, &dims)],
        ..Default::default()
    };
    Ok(encode(graph, &format!("maas identity model for {datatype}")))
}

/// Bytes that are not a protobuf message at all: the first byte, `'N'` (0x4E), is a field
/// tag with the invalid wire type 6, so decoding fails immediately. Uploading this must be
/// rejected.
pub fn invalid_onnx() -> Vec<u8> {
    b"NOT AN ONNX MODEL: just some text pretending to be one.\n".to_vec()
}

/// A well-formed `ModelProto` that tract refuses to load: its Relu node reads `"ghost"`,
/// a tensor that is neither a graph input, an initializer nor any node's output (a
/// dangling edge). tract's loader fails with "Could not resolve inputs at top-level".
pub fn broken_graph() -> Vec<u8> {
    let dims = [Dim::Fixed(1), Dim::Fixed(4)];
    let graph = pb::GraphProto {
        name: "broken_graph".to_string(),
        node: vec![node("relu", "Relu", &["ghost"], &["r"], vec![]), node("add", "Add", &["x", "r"], &["y"], vec![])],
        input: vec![value_info("x", DataType::Float, &dims)],
        output: vec![value_info("y", DataType::Float, &dims)],
        ..Default::default()
    };
    encode(graph, "maas broken model: dangling input 'ghost'")
}

/// A well-formed `ModelProto` whose only node uses the op type `"MaasNoSuchOp"`, which tract
/// does not implement. Unlike [`broken_graph`] it *parses* (tract inserts a placeholder op),
/// but fails as soon as it is typed/optimized (e.g. in [`run_tract`]); a registry that only
/// parses at upload would accept it, one that optimizes would reject it.
pub fn unknown_op() -> Vec<u8> {
    let dims = [Dim::Fixed(1), Dim::Fixed(4)];
    let graph = pb::GraphProto {
        name: "unknown_op".to_string(),
        node: vec![node("mystery", "MaasNoSuchOp", &["x"], &["y"], vec![])],
        input: vec![value_info("x", DataType::Float, &dims)],
        output: vec![value_info("y", DataType::Float, &dims)],
        ..Default::default()
    };
    encode(graph, "maas broken model: unknown op type")
}

/// Parse model bytes with tract (no typing or optimization): what "tract can load it" means
/// for [`invalid_onnx`] and [`broken_graph`].
pub fn load_tract(model: &[u8]) -> anyhow::Result<InferenceModel> {
    tract_onnx::onnx().model_for_read(&mut &*model)
}

/// Reference runner: loads `model` with tract, pins input `i`'s fact to the datum type and
/// shape of `inputs[i]`, optimizes, runs once and returns the outputs in graph order.
///
/// Errors if the model does not load/optimize or the number of inputs does not match.
pub fn run_tract(model: &[u8], inputs: Vec<Tensor>) -> anyhow::Result<Vec<Tensor>> {
    let mut m = load_tract(model).context("loading model in tract")?;
    ensure!(m.inputs.len() == inputs.len(), "model has {} inputs, {} tensors given", m.inputs.len(), inputs.len());
    for (i, t) in inputs.iter().enumerate() {
        m.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let plan = m.into_optimized().context("optimizing model in tract")?.into_runnable()?;
    let outputs = plan.run(inputs.into_iter().map(TValue::from).collect())?;
    Ok(outputs.into_iter().map(|v| v.into_tensor()).collect())
}

/// `shape.iter().product()` reproducible FP32 values, uniform in `[-1, 1)`, from
/// `StdRng::seed_from_u64(seed)` (row-major; turn into a tensor with
/// `Tensor::from_shape(shape, &data)`).
pub fn seeded_input(seed: u64, shape: &[usize]) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::from_shape(shape, data).unwrap()
    }

    fn values<T: Datum + Clone>(t: &Tensor) -> Vec<T> {
        t.try_as_plain_ram().unwrap().as_slice::<T>().unwrap().to_vec()
    }

    fn run_f32(model: &[u8], shape: &[usize], data: &[f32]) -> Vec<f32> {
        let out = run_tract(model, vec![f32_tensor(shape, data)]).unwrap();
        assert_eq!(out.len(), 1);
        values::<f32>(&out[0])
    }

    #[test]
    fn every_model_loads_in_tract() {
        let mut models = vec![
            mlp(1),
            mlp_batch(1),
            mlp_sized(1, 32),
            linear(&[1.0, 2.0], 0.5),
            int64_model(),
            mlp_with_marker(1, &[7; 64]),
            image_linear(3, 4, &[0.5; 48]),
        ];
        for dt in IDENTITY_DATATYPES {
            models.push(identity(dt).unwrap());
        }
        for m in models {
            load_tract(&m).unwrap().into_optimized().unwrap();
        }
    }

    #[test]
    fn builders_are_deterministic() {
        assert_eq!(mlp(7), mlp(7));
        assert_ne!(mlp(7), mlp(8));
        assert_eq!(seeded_input(3, &[2, 5]), seeded_input(3, &[2, 5]));
        assert_ne!(seeded_input(3, &[10]), seeded_input(4, &[10]));
        let large = mlp_sized(1, LARGE_HIDDEN).len();
        assert!(large > 100 * mlp(1).len() && large < 16 << 20, "{large} bytes");
    }

    #[test]
    fn mlp_is_a_softmax_that_depends_on_its_input() {
        let m = mlp(42);
        let a = run_f32(&m, &[1, 100], &seeded_input(1, &[1, 100]));
        let b = run_f32(&m, &[1, 100], &seeded_input(2, &[1, 100]));
        for out in [&a, &b] {
            assert_eq!(out.len(), 10);
            assert!(out.iter().all(|p| (0.0..=1.0).contains(p)), "{out:?}");
            assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{out:?}");
            let spread = out.iter().cloned().fold(f32::MIN, f32::max) - out.iter().cloned().fold(f32::MAX, f32::min);
            assert!(spread > 1e-3, "outputs nearly all equal: {out:?}");
        }
        let diff: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
        assert!(diff > 1e-3, "different inputs gave the same output: {a:?} {b:?}");
    }

    #[test]
    fn mlp_with_marker_holds_the_marker_and_computes_like_mlp() {
        let marker: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let model = mlp_with_marker(42, &marker);
        assert!(model.windows(marker.len()).any(|w| w == marker.as_slice()), "marker not in the file");
        assert!(!mlp(42).windows(marker.len()).any(|w| w == marker.as_slice()));
        let x = seeded_input(3, &[1, 100]);
        assert_eq!(run_f32(&model, &[1, 100], &x), run_f32(&mlp(42), &[1, 100], &x));
    }

    #[test]
    fn mlp_rejects_a_wrong_input_shape() {
        assert!(run_tract(&mlp(42), vec![f32_tensor(&[1, 99], &[0.0; 99])]).is_err());
    }

    #[test]
    fn mlp_batch_matches_mlp_row_by_row() {
        let single = mlp(42);
        let batched = mlp_batch(42);
        for batch in [1usize, 8] {
            let x = seeded_input(batch as u64, &[batch, 100]);
            let out = run_f32(&batched, &[batch, 100], &x);
            assert_eq!(out.len(), batch * 10);
            for row in 0..batch {
                let expected = run_f32(&single, &[1, 100], &x[row * 100..(row + 1) * 100]);
                let got = &out[row * 10..(row + 1) * 10];
                for (g, e) in got.iter().zip(&expected) {
                    assert!((g - e).abs() < 1e-6, "batch {batch} row {row}: {got:?} vs {expected:?}");
                }
            }
        }
    }

    #[test]
    fn mlp_sized_runs_with_the_mlp_signature() {
        let m = mlp_sized(5, 48);
        let out = run_f32(&m, &[3, 100], &seeded_input(9, &[3, 100]));
        assert_eq!(out.len(), 30);
        for row in out.chunks(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn linear_is_x_dot_w_plus_b() {
        let w = [0.5f32, -1.25, 2.0, 0.125];
        let b = 0.75f32;
        let x = [1.0f32, 2.0, 3.0, 4.0, -0.5, 0.25, 8.0, -2.0, 0.1, 0.2, 0.3, 0.4];
        let out = run_f32(&linear(&w, b), &[3, 4], &x);
        assert_eq!(out.len(), 3);
        for (row, y) in x.chunks(4).zip(&out) {
            let expected: f32 = row.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + b;
            assert!((y - expected).abs() < 1e-6, "{y} vs {expected}");
        }
    }

    #[test]
    fn int64_model_sums_and_scales() {
        let tokens: Vec<i64> = vec![1, 2, 3, 4, -5, 10, 0, 7];
        let out = run_tract(&int64_model(), vec![Tensor::from_shape(&[2, 4], &tokens).unwrap()]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].datum_type(), DatumType::I64);
        assert_eq!(out[0].shape(), &[2, 1]);
        assert_eq!(values::<i64>(&out[0]), vec![10, 12]);
        assert_eq!(out[1].datum_type(), DatumType::F32);
        assert_eq!(out[1].shape(), &[2, 4]);
        assert_eq!(values::<f32>(&out[1]), vec![0.5, 1.0, 1.5, 2.0, -2.5, 5.0, 0.0, 3.5]);
    }

    fn round_trip<T: Datum + Copy + PartialEq + std::fmt::Debug>(datatype: &str, data: [T; 6]) {
        let model = identity(datatype).unwrap();
        let input = Tensor::from_shape(&[2, 3], &data).unwrap();
        let out = run_tract(&model, vec![input]).unwrap();
        assert_eq!(out.len(), 1, "{datatype}");
        assert_eq!(out[0].datum_type(), T::datum_type(), "{datatype}");
        assert_eq!(out[0].shape(), &[2, 3], "{datatype}");
        assert_eq!(values::<T>(&out[0]), data.to_vec(), "{datatype}");
    }

    #[test]
    fn identity_round_trips_every_supported_datatype() {
        round_trip("BOOL", [true, false, true, true, false, false]);
        round_trip("UINT8", [0u8, 1, 2, 127, 200, 255]);
        round_trip("UINT16", [0u16, 1, 2, 300, 40000, u16::MAX]);
        round_trip("UINT32", [0u32, 1, 2, 70000, 3_000_000_000, u32::MAX]);
        round_trip("UINT64", [0u64, 1, 2, 1 << 40, 1 << 63, u64::MAX]);
        round_trip("INT8", [i8::MIN, -1, 0, 1, 100, i8::MAX]);
        round_trip("INT16", [i16::MIN, -1, 0, 1, 1000, i16::MAX]);
        round_trip("INT32", [i32::MIN, -1, 0, 1, 100_000, i32::MAX]);
        round_trip("INT64", [i64::MIN, -1, 0, 1, 1 << 40, i64::MAX]);
        let h = |v: f32| f16::from_f32(v);
        round_trip("FP16", [h(-2.5), h(0.0), h(1.0), h(0.333), h(65504.0), h(-0.001)]);
        round_trip("FP32", [-2.5f32, 0.0, 1.0, 1e-30, 3.4e38, f32::MIN_POSITIVE]);
        round_trip("FP64", [-2.5f64, 0.0, 1.0, 1e-300, 1.7e308, f64::MIN_POSITIVE]);
    }

    #[test]
    fn identity_rejects_unknown_datatypes() {
        for dt in ["BYTES", "BF16", "fp32", ""] {
            assert!(identity(dt).is_err(), "{dt}");
        }
    }

    #[test]
    fn invalid_onnx_is_not_protobuf() {
        let err = load_tract(&invalid_onnx()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("Reading proto model"), "{msg}");
        assert!(pb::ModelProto::decode(&*invalid_onnx()).is_err());
    }

    #[test]
    fn broken_graph_is_protobuf_but_does_not_load() {
        pb::ModelProto::decode(&*broken_graph()).expect("broken_graph must be valid protobuf");
        let err = load_tract(&broken_graph()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("Could not resolve inputs") && msg.contains("ghost"), "{msg}");
    }

    #[test]
    fn unknown_op_loads_but_does_not_optimize() {
        let model = load_tract(&unknown_op()).expect("unknown_op parses");
        let err = model.into_optimized().unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("MaasNoSuchOp"), "{msg}");
        assert!(run_tract(&unknown_op(), vec![f32_tensor(&[1, 4], &[0.0; 4])]).is_err());
    }
}
