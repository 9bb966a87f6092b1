//! Bounds on what a model can make tract allocate, checked before tract allocates it.
//!
//! tract folds constants while it types a model: a 140-byte file whose `ConstantOfShape`
//! reads a constant `[16384, 16384]` makes it allocate and fill 1 GiB at upload, before any
//! fact could be looked at. So there are three checks, each before the work it guards:
//!
//! 1. [`check_graph`], on the ONNX graph as parsed: every op that makes a tensor larger than
//!    its inputs from constant operands (`ConstantOfShape`, `Expand`, `Tile`, `Range`, `TopK`,
//!    `OneHot`, `Resize`, `Upsample`, random generators) asks for a size within the cap, and
//!    operands tract would divide by (a `Slice` step, a `Range` delta) are not zero;
//! 2. [`check_facts`], on the typed model: every tensor the model declares (symbols taken as 1)
//!    is within the cap;
//! 3. [`working_set`], on each plan (the request's shapes bound): the largest step of the plan,
//!    a node's inputs and outputs, is what a run needs at least; it must fit the memory limit
//!    of the function that runs it.
//!
//! Weights are not counted: they are in the file, bounded by the upload quota, and shared.
//! Subgraphs (`If`, `Loop`, `Scan` bodies) are not walked by the first check.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

use super::InferenceError;

/// ONNX `TensorProto.DataType` codes the checks read.
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Checks the graph of `proto` before tract builds anything from it (see the module docs).
pub(super) fn check_graph(proto: &ModelProto, max_bytes: u64) -> Result<(), InferenceError> {
    let Some(graph) = &proto.graph else {
        return Err(InferenceError::InvalidModel("the model has no graph".into()));
    };
    let constants = constants(graph);
    let sizes = element_sizes(graph);
    let produced: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter())
        .chain(graph.input.iter().map(|i| &i.name))
        .chain(graph.initializer.iter().map(|t| &t.name))
        .map(String::as_str)
        .collect();
    for output in &graph.output {
        if !produced.contains(output.name.as_str()) {
            return Err(InferenceError::InvalidModel(format!(
                "graph output {:?} is produced by no node, input or initializer",
                output.name
            )));
        }
    }
    for node in &graph.node {
        check_node(node, &constants, &sizes, max_bytes)?;
    }
    Ok(())
}

/// The constant operand `index` of `node`, as numbers, when it is a constant.
fn operand<'a>(node: &NodeProto, index: usize, constants: &'a HashMap<&str, Vec<f64>>) -> Option<&'a [f64]> {
    let name = node.input.get(index).filter(|n| !n.is_empty())?;
    constants.get(name.as_str()).map(Vec::as_slice)
}

/// Elements of a tensor of shape `dims`, saturating; a negative size counts as zero.
fn elements(dims: &[f64]) -> f64 {
    dims.iter().map(|&d| d.max(0.0)).product()
}

fn check_node(
    node: &NodeProto,
    constants: &HashMap<&str, Vec<f64>>,
    sizes: &HashMap<&str, u64>,
    max_bytes: u64,
) -> Result<(), InferenceError> {
    let what = || {
        let output = node.output.first().map(String::as_str).unwrap_or("?");
        format!("{} node {:?} (output {output:?})", node.op_type, node.name)
    };
    let zero = |operand: &str| {
        Err(InferenceError::InvalidModel(format!("{} has a {operand} of 0, which tract would divide by", what())))
    };
    let c = |index| operand(node, index, constants);
    // The element size of operand `index` where it is known; one byte keeps the check a
    // lower bound where it is not.
    let size_of = |index: usize| node.input.get(index).and_then(|n| sizes.get(n.as_str())).copied().unwrap_or(1);
    let attribute_type = |name: &str, default: i32| {
        let t = node.attribute.iter().find(|a| a.name == name);
        t.and_then(|a| a.t.as_ref().map(|t| t.data_type).or((a.i != 0).then_some(a.i as i32))).unwrap_or(default)
    };
    // Elements the node's output has at least, from its constant operands.
    let asked: Option<(f64, u64)> = match node.op_type.as_str() {
        "ConstantOfShape" => c(0).map(|shape| (elements(shape), element_size(attribute_type("value", FLOAT)))),
        "Expand" | "Tile" => c(1).map(|shape| (elements(shape), size_of(0))),
        "TopK" => c(1).and_then(|k| k.first().map(|&k| (k, size_of(0)))),
        "OneHot" => c(1).and_then(|depth| depth.first().map(|&d| (d, size_of(2)))),
        "Range" => match (c(0), c(1), c(2)) {
            (Some([start]), Some([limit]), Some([delta])) => {
                if *delta == 0.0 {
                    return zero("delta");
                }
                Some((((limit - start) / delta).ceil().max(0.0), size_of(0)))
            }
            _ => None,
        },
        "Slice" => {
            if c(4).is_some_and(|steps| steps.contains(&0.0)) {
                return zero("step");
            }
            None
        }
        // Scales multiply the input's size; sizes give the output's shape.
        "Resize" => c(3).filter(|s| !s.is_empty()).or_else(|| c(2)).map(|s| (elements(s), size_of(0))),
        "Upsample" => c(1).map(|scales| (elements(scales), size_of(0))),
        "RandomNormal" | "RandomUniform" => {
            let dtype = attribute_type("dtype", FLOAT);
            attribute_ints(node, "shape").map(|d| (elements(&d), element_size(dtype)))
        }
        _ => None,
    };
    match asked {
        Some((n, size)) if n * size as f64 > max_bytes as f64 => Err(InferenceError::InvalidModel(format!(
            "{} makes a tensor of {n:e} elements ({} bytes each), more than the {} a model of this tenant \
             may hold in one tensor (max_memory_mb)",
            what(),
            size,
            mib(max_bytes)
        ))),
        _ => Ok(()),
    }
}

fn attribute_ints(node: &NodeProto, name: &str) -> Option<Vec<f64>> {
    let attribute = node.attribute.iter().find(|a| a.name == name)?;
    Some(attribute.ints.iter().map(|&i| i as f64).collect())
}

/// Bytes per element of ONNX data type `code` (1 for a type not listed).
fn element_size(code: i32) -> u64 {
    match code {
        11 | 7 | 13 => 8,
        1 | 6 | 12 => 4,
        4 | 5 | 10 | 16 => 2,
        _ => 1,
    }
}

/// The element size of every tensor whose type the graph states: its inputs, initializers
/// and `Constant` nodes.
fn element_sizes(graph: &GraphProto) -> HashMap<&str, u64> {
    use tract_onnx::pb::type_proto::Value;
    let mut sizes = HashMap::new();
    for input in &graph.input {
        if let Some(Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            sizes.insert(input.name.as_str(), element_size(t.elem_type));
        }
    }
    for tensor in &graph.initializer {
        sizes.insert(tensor.name.as_str(), element_size(tensor.data_type));
    }
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref());
        if let (Some(tensor), Some(output)) = (value, node.output.first()) {
            sizes.insert(output.as_str(), element_size(tensor.data_type));
        }
    }
    sizes
}

/// The graph's small numeric constants (initializers and `Constant` nodes) by name.
fn constants(graph: &GraphProto) -> HashMap<&str, Vec<f64>> {
    let mut found = HashMap::new();
    for tensor in &graph.initializer {
        if let Some(values) = numbers(tensor) {
            found.insert(tensor.name.as_str(), values);
        }
    }
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref());
        if let (Some(tensor), Some(output)) = (value, node.output.first())
            && let Some(values) = numbers(tensor)
        {
            found.insert(output.as_str(), values);
        }
    }
    found
}

/// The values of a small numeric tensor (shape operands are short), else `None`.
fn numbers(tensor: &TensorProto) -> Option<Vec<f64>> {
    const MAX_VALUES: usize = 64;
    let raw = |size: usize| (tensor.raw_data.len() <= MAX_VALUES * size).then(|| tensor.raw_data.chunks_exact(size));
    let values: Vec<f64> = match tensor.data_type {
        INT64 if !tensor.int64_data.is_empty() => tensor.int64_data.iter().map(|&v| v as f64).collect(),
        INT64 => raw(8)?.map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64).collect(),
        INT32 if !tensor.int32_data.is_empty() => tensor.int32_data.iter().map(|&v| f64::from(v)).collect(),
        INT32 => raw(4)?.map(|b| f64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))).collect(),
        FLOAT if !tensor.float_data.is_empty() => tensor.float_data.iter().map(|&v| f64::from(v)).collect(),
        FLOAT => raw(4)?.map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))).collect(),
        DOUBLE if !tensor.double_data.is_empty() => tensor.double_data.clone(),
        DOUBLE => raw(8)?.map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
        _ => return None,
    };
    (values.len() <= MAX_VALUES).then_some(values)
}

/// Bytes of a tensor of `fact`, its symbols taken as `values` gives them, others as 1.
fn fact_bytes(fact: &TypedFact, values: &HashMap<Symbol, TDim>) -> u64 {
    let mut known = SymbolValues::default();
    for dim in fact.shape.iter() {
        for symbol in dim.symbols() {
            let value = values.get(&symbol).and_then(TDim::as_i64).unwrap_or(1);
            known.set(&symbol, value);
        }
    }
    let elements =
        fact.shape.iter().map(|d| d.eval(&known).as_i64().unwrap_or(1).max(0) as u64).fold(1u64, u64::saturating_mul);
    elements.saturating_mul(fact.datum_type.size_of() as u64)
}

/// Checks every tensor `model` declares, its symbols taken as 1 (the smallest request),
/// against `max_bytes`; constants (weights) are not counted.
pub(super) fn check_facts(model: &TypedModel, max_bytes: u64) -> Result<(), InferenceError> {
    for node in model.nodes() {
        if node.op_is::<tract_onnx::tract_core::ops::konst::Const>() {
            continue;
        }
        for (slot, output) in node.outputs.iter().enumerate() {
            let bytes = fact_bytes(&output.fact, &HashMap::new());
            if bytes > max_bytes {
                let label = model.outlet_label(OutletId::new(node.id, slot)).unwrap_or(&node.name);
                return Err(InferenceError::InvalidModel(format!(
                    "tensor {label:?} ({:?}, {:?}) would hold {}, more than the {} a model of this tenant may \
                     hold in one tensor (max_memory_mb)",
                    output.fact.datum_type,
                    output.fact.shape,
                    mib(bytes),
                    mib(max_bytes)
                )));
            }
        }
    }
    Ok(())
}

/// Checks the sizes a request gives a model typed per request shape, before tract types it:
/// typing folds every node whose inputs are known, so a `Range` or `ConstantOfShape` fed by
/// `Shape(x)` would allocate what `x`'s dimensions say, even for a zero-byte `x`. No input's
/// dimensions (zeros taken as 1) may multiply past `max_bytes`.
pub(super) fn check_request(inputs: &[super::RawTensor], max_bytes: u64) -> Result<(), InferenceError> {
    for input in inputs {
        let size = input.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d.max(1) as u64));
        if size > max_bytes {
            return Err(InferenceError::InvalidInput(format!(
                "input {:?} has shape {:?}, whose dimensions multiply past the {} a model of this tenant may hold \
                 in one tensor (max_memory_mb)",
                input.name,
                input.shape,
                mib(max_bytes)
            )));
        }
    }
    Ok(())
}

/// Checks the values of the inputs a plan freezes as constants (a shape, a count, a limit),
/// before tract folds them: no value, and not their product (zeros taken as 1), past
/// `max_bytes` elements.
pub(super) fn check_frozen(values: &[(&str, Vec<i64>)], max_bytes: u64) -> Result<(), InferenceError> {
    for (name, values) in values {
        let product = values.iter().fold(1u64, |n, &v| n.saturating_mul(v.unsigned_abs().max(1)));
        if product > max_bytes {
            return Err(InferenceError::InvalidInput(format!(
                "input {name:?} = {values:?}, frozen as a constant of the plan, asks for more than the {} a model \
                 of this tenant may hold in one tensor (max_memory_mb)",
                mib(max_bytes)
            )));
        }
    }
    Ok(())
}

/// What one run of `model` needs at least, its symbols taken as `values` gives them: the
/// largest step, a node's non-constant inputs and its outputs, in bytes, with that node's name.
pub(super) fn working_set(model: &TypedModel, values: &HashMap<Symbol, TDim>) -> TractResult<(u64, String)> {
    let mut largest = (0u64, String::new());
    for node in model.nodes() {
        if node.op_is::<tract_onnx::tract_core::ops::konst::Const>() {
            continue;
        }
        let mut bytes = 0u64;
        for input in &node.inputs {
            let fact = model.outlet_fact(*input)?;
            if fact.konst.is_none() {
                bytes = bytes.saturating_add(fact_bytes(fact, values));
            }
        }
        for output in &node.outputs {
            bytes = bytes.saturating_add(fact_bytes(&output.fact, values));
        }
        if bytes > largest.0 {
            largest = (bytes, node.name.clone());
        }
    }
    Ok(largest)
}

/// `working_set` as a refusal: the run needs more than `limit` bytes.
pub(super) fn too_large(shapes: &[Vec<usize>], needed: u64, node: &str, limit: u64) -> InferenceError {
    InferenceError::InvalidInput(format!(
        "with input shapes {shapes:?} the model needs at least {} at node {node:?}, more than this function's \
         memory limit of {}",
        mib(needed),
        mib(limit)
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use maas_fixtures::hostile;

    use super::super::{Datatype, LoadedModel, RawTensor};
    use super::*;

    const MIB: u64 = 1 << 20;

    fn limit(memory_bytes: u64) -> super::super::RunLimits {
        super::super::RunLimits { memory_bytes, deadline: None }
    }

    fn refused(bytes: &[u8]) -> String {
        match LoadedModel::load(bytes, 512 * MIB) {
            Err(InferenceError::InvalidModel(why)) => why,
            Err(other) => panic!("refused as {other:?}, not as an invalid model"),
            Ok(_) => panic!("accepted"),
        }
    }

    /// Each hostile model is refused at load, quickly, naming what it asked for, without
    /// tract allocating it.
    #[test]
    fn hostile_models_are_refused_at_load() {
        let started = Instant::now();
        for (model, says) in [
            (hostile::constant_of_shape(16384), "ConstantOfShape node"),
            (hostile::constant_of_shape(1 << 20), "ConstantOfShape node"),
            (hostile::expand(), "Expand node"),
            (hostile::top_k(), "TopK node"),
            (hostile::slice_zero_step(), "step of 0"),
            (hostile::dangling_output(), "\"nowhere\" is produced by no node"),
        ] {
            let why = refused(&model);
            assert!(why.contains(says), "{why}");
        }
        // Under a second for all of them: nothing was built (16384² alone took 18 s before).
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        // A small one of the same shape is fine.
        assert!(LoadedModel::load(&hostile::constant_of_shape(8), 512 * MIB).is_ok());
    }

    /// A request of zero bytes that binds a huge dimension is refused before the plan is
    /// built, against the caller's memory limit, and a panic in tract is never an internal
    /// error.
    #[test]
    fn empty_inputs_that_bind_huge_dimensions_are_refused() {
        let model = LoadedModel::load(&hostile::empty_input_amplifier(), 512 * MIB).unwrap();
        let input = |shape: Vec<usize>| {
            let data = vec![0u8; shape.iter().product::<usize>() * 4];
            vec![RawTensor { name: "x".into(), datatype: Datatype::Fp32, shape, data }]
        };
        let (started, plans) = (Instant::now(), model.plan_count());
        match model.run_within(input(vec![1 << 28, 0]), limit(64 * MIB)) {
            Err(InferenceError::InvalidInput(why)) => assert!(why.contains("memory limit of 64.0 MiB"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert_eq!(model.plan_count(), plans, "no plan built for the refused shapes");
        // A sensible request runs.
        let out = model.run_within(input(vec![2, 3]), limit(64 * MIB)).unwrap();
        assert_eq!(out[0].shape, vec![2, 1]);
    }

    /// A run whose caller's deadline has passed stops before its next node, reported as such.
    #[test]
    fn runs_stop_at_the_callers_deadline() {
        let model = LoadedModel::load(&maas_fixtures::mlp(1), 512 * MIB).unwrap();
        let input = vec![RawTensor {
            name: "input".into(),
            datatype: Datatype::Fp32,
            shape: vec![1, 100],
            data: vec![0u8; 400],
        }];
        let past = super::super::RunLimits { memory_bytes: 64 * MIB, deadline: Some(Instant::now()) };
        assert!(matches!(model.run_within(input.clone(), past), Err(InferenceError::DeadlineExceeded)));
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let future = super::super::RunLimits { memory_bytes: 64 * MIB, deadline: Some(later) };
        assert_eq!(model.run_within(input, future).unwrap()[0].shape, vec![1, 10]);
    }
}
