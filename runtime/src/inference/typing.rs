//! How a model gets typed: with the facts its file and its owner declare, or per request.
//!
//! Exported models often carry too little for tract to type them once for every request:
//! unnamed (`?`) dimensions, inputs of unknown rank, symbolic sizes tract cannot prove equal,
//! a Reshape's shape or a Pad's pads left as graph inputs. Such a model is still stored
//! ([`signature_of_inference`] reads what is known) and gets a plan per request shape, built
//! by the first [`Strategy`] that works, in this order:
//!
//! 1. the declared facts ([`declare`]: the owner's input specs, and a symbol of its own for
//!    every unnamed dimension), typed once at load: one general plan when tract can optimize
//!    with symbols open, the symbols bound per request ([`Strategy::Bound`]) when not;
//! 2. every input pinned to the request's shape before analysis ([`Strategy::Pinned`]);
//! 3. the request's small integer inputs frozen as constants ([`Strategy::Frozen`]), their
//!    values part of the plan's key.
//!
//! Only a file tract cannot parse, or a graph with an operator tract lacks
//! ([`check_operators`]), is refused.

use tract_onnx::pb::{ModelProto, ValueInfoProto, type_proto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, InferenceModelExt, ShapeFactoid};

use super::{Datatype, InferenceError, RawTensor, Signature, TensorSpec, TractDatatype};

/// Most elements an integer input of rank 0 or 1 may have to be frozen as a parameter: a
/// shape, pads, axes or sizes, never data.
pub(super) const PARAMETER_ELEMENTS: usize = 64;

/// How a per-shape plan was typed. The one that worked last is tried first for the next shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Strategy {
    /// The model typed at load, its symbols bound to the request's dimensions.
    Bound = 1,
    /// Every input pinned to the request's shape, then typed.
    Pinned = 2,
    /// Pinned, and the small integer inputs replaced by the request's values.
    Frozen = 3,
    /// Pinned, and every small input of rank 0 or 1 replaced by the request's values, floats
    /// too (a Resize's scales, a Pad's value, quantization scales).
    FrozenAll = 4,
}

impl Strategy {
    /// In the order they are tried.
    pub(super) const ALL: [Strategy; 4] = [Strategy::Bound, Strategy::Pinned, Strategy::Frozen, Strategy::FrozenAll];

    pub(super) fn from_u8(n: u8) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| *s as u8 == n)
    }

    /// The order to try them in, `first` (the one that worked last) first.
    pub(super) fn order(first: Option<Strategy>) -> impl Iterator<Item = Strategy> {
        first.into_iter().chain(Strategy::ALL.into_iter().filter(move |s| Some(*s) != first))
    }

    /// The inputs this strategy freezes, of `inputs`.
    pub(super) fn freezes(self, inputs: &[RawTensor]) -> Vec<usize> {
        match self {
            Strategy::Bound | Strategy::Pinned => Vec::new(),
            Strategy::Frozen => parameters(inputs, false),
            Strategy::FrozenAll => parameters(inputs, true),
        }
    }
}

/// Refuses a graph that uses an operator tract does not implement, naming the operator, its
/// domain and the node, rather than letting tract fail later with its internal chain.
pub(super) fn check_operators(proto: &ModelProto, onnx: &tract_onnx::Onnx) -> Result<(), InferenceError> {
    let Some(graph) = &proto.graph else { return Ok(()) };
    for (ix, node) in graph.node.iter().enumerate() {
        if !onnx.op_register.0.contains_key(&node.op_type) {
            let domain = if node.domain.is_empty() { "ai.onnx" } else { node.domain.as_str() };
            let name = if node.name.is_empty() { "(unnamed)".to_string() } else { format!("{:?}", node.name) };
            return Err(InferenceError::InvalidModel(format!(
                "operator {} ({domain}) is not supported, node #{ix} {name}",
                node.op_type
            )));
        }
    }
    Ok(())
}

/// What a reader of the signature should know about how the model is served: an output a
/// scikit-learn `ZipMap` makes is the probability tensor the ZipMap wraps.
pub(super) fn notes(proto: &ModelProto) -> Vec<String> {
    let Some(graph) = &proto.graph else { return Vec::new() };
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    graph
        .node
        .iter()
        .filter(|node| node.op_type == "ZipMap")
        .flat_map(|node| node.output.iter().filter(|o| outputs.contains(&o.as_str())))
        .map(|output| {
            format!(
                "output {output:?} is served as the FP32 [N, classes] probability tensor its ZipMap wraps (onnxruntime \
                 gives a sequence of maps), columns in the order of the classifier's classes"
            )
        })
        .collect()
}

/// The name of input `ix` of `model`: its source node's.
fn input_name(model: &InferenceModel, ix: usize) -> TractResult<String> {
    Ok(model.node(model.input_outlets()?[ix].node).name.clone())
}

/// Applies the owner's declared input specs over the file's facts (a declared size wins, a
/// declared `-1` keeps the file's dimension), then gives every dimension still unnamed a
/// symbol of its own, so that tract can type the model with it open.
pub(super) fn declare(model: &mut InferenceModel, declared: &[TensorSpec]) -> Result<(), InferenceError> {
    let invalid = |e: TractError| InferenceError::InvalidModel(format!("{e:#}"));
    let inputs = model.input_outlets().map_err(invalid)?.len();
    let names: Vec<String> =
        (0..inputs).map(|ix| input_name(model, ix)).collect::<TractResult<_>>().map_err(invalid)?;
    for spec in declared {
        let Some(ix) = names.iter().position(|n| *n == spec.name) else {
            return Err(InferenceError::InvalidModel(format!(
                "the declared input {:?} is not an input of the model; its inputs are {names:?}",
                spec.name
            )));
        };
        let file = model.input_fact(ix).map_err(invalid)?.clone();
        let shape = if spec.any_rank() {
            file.shape.clone()
        } else {
            let file_dims: Option<Vec<_>> = (!file.shape.is_open() && file.shape.dims().count() == spec.shape.len())
                .then(|| file.shape.dims().cloned().collect());
            let dims = spec.shape.iter().enumerate().map(|(axis, &d)| match (d, &file_dims) {
                (d, _) if d >= 0 => GenericFactoid::Only(TDim::Val(d)),
                (_, Some(file)) => file[axis].clone(),
                (_, None) => GenericFactoid::Any,
            });
            ShapeFactoid::closed(dims.collect())
        };
        model.set_input_fact(ix, InferenceFact::dt_shape(spec.datatype.to_tract(), shape)).map_err(invalid)?;
    }
    for (ix, name) in names.iter().enumerate() {
        let fact = model.input_fact(ix).map_err(invalid)?.clone();
        if fact.shape.is_open() || fact.shape.dims().all(|d| d.is_concrete()) {
            continue;
        }
        let dims = fact.shape.dims().enumerate().map(|(axis, d)| match d.concretize() {
            Some(d) => GenericFactoid::Only(d),
            None => GenericFactoid::Only(TDim::Sym(model.symbols.sym(&format!("maas_{name}_{axis}")))),
        });
        let shape = ShapeFactoid::closed(dims.collect());
        model.set_input_fact(ix, fact.with_shape(shape)).map_err(invalid)?;
    }
    Ok(())
}

/// The signature of a model tract cannot type yet: what analysis finds, and for outputs it
/// finds nothing about, what the file declares. A dimension not known is `-1`, a rank not
/// known `[-2]` ([`maas_types::ANY_RANK`]).
pub(super) fn signature_of_inference(
    model: &InferenceModel,
    file_outputs: &[ValueInfoProto],
) -> Result<Signature, InferenceError> {
    let invalid = |e: TractError| InferenceError::InvalidModel(format!("{e:#}"));
    let mut analysed = model.clone();
    // Best effort: what is known where analysis stops is still known.
    let _ = analysed.analyse(true);
    let spec = |fact: &InferenceFact, name: String, file: Option<&ValueInfoProto>, what: &str| {
        let file_tensor = file.and_then(|f| f.r#type.as_ref()).and_then(|t| match &t.value {
            Some(type_proto::Value::TensorType(tensor)) => Some(tensor),
            _ => None,
        });
        let datum_type = fact.datum_type.concretize().or_else(|| {
            let onnx = tract_onnx::pb::tensor_proto::DataType::try_from(file_tensor?.elem_type).ok()?;
            DatumType::try_from(onnx).ok()
        });
        let datatype = datum_type.map(super::served_type).and_then(Datatype::from_tract).ok_or_else(|| {
            InferenceError::InvalidModel(format!("{what} {name:?} has type {datum_type:?}, which maas cannot serve"))
        })?;
        let shape = if !fact.shape.is_open() {
            fact.shape.dims().map(|d| d.concretize().and_then(|d| d.as_i64()).unwrap_or(-1)).collect()
        } else if let Some(dims) = file_tensor.and_then(|t| t.shape.as_ref()) {
            use tract_onnx::pb::tensor_shape_proto::dimension::Value;
            dims.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(v)) if v >= 0 => v,
                    _ => -1,
                })
                .collect()
        } else {
            vec![maas_types::ANY_RANK]
        };
        Ok(TensorSpec { name, datatype, shape })
    };
    let inputs = analysed.input_outlets().map_err(invalid)?.to_vec();
    let outputs = analysed.output_outlets().map_err(invalid)?.to_vec();
    let inputs = inputs
        .iter()
        .map(|&o| spec(analysed.outlet_fact(o).map_err(invalid)?, analysed.node(o.node).name.clone(), None, "input"))
        .collect::<Result<_, _>>()?;
    let outputs = outputs
        .iter()
        .map(|&o| {
            let name =
                analysed.outlet_label(o).map(str::to_string).unwrap_or_else(|| analysed.node(o.node).name.clone());
            let file = file_outputs.iter().find(|f| f.name == name);
            spec(analysed.outlet_fact(o).map_err(invalid)?, name, file, "output")
        })
        .collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

/// Inputs that may be frozen as parameters: of rank 0 or 1 with at most
/// [`PARAMETER_ELEMENTS`] elements, integers only unless `any_type`.
pub(super) fn parameters(inputs: &[RawTensor], any_type: bool) -> Vec<usize> {
    inputs
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.shape.len() <= 1
                && t.shape.iter().product::<usize>() <= PARAMETER_ELEMENTS
                && (any_type || integer_values(t).is_some())
        })
        .map(|(ix, _)| ix)
        .collect()
}

/// The elements of an integer tensor, as `i64`.
pub(super) fn integer_values(t: &RawTensor) -> Option<Vec<i64>> {
    let size = t.datatype.size();
    let chunks = t.data.chunks_exact(size);
    Some(match t.datatype {
        Datatype::Int64 => chunks.map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        Datatype::Int32 => chunks.map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4 bytes")))).collect(),
        Datatype::Int16 => chunks.map(|c| i64::from(i16::from_le_bytes(c.try_into().expect("2 bytes")))).collect(),
        Datatype::Int8 => chunks.map(|c| i64::from(c[0] as i8)).collect(),
        Datatype::Uint8 => chunks.map(|c| i64::from(c[0])).collect(),
        Datatype::Uint16 => chunks.map(|c| i64::from(u16::from_le_bytes(c.try_into().expect("2 bytes")))).collect(),
        Datatype::Uint32 => chunks.map(|c| i64::from(u32::from_le_bytes(c.try_into().expect("4 bytes")))).collect(),
        _ => return None,
    })
}

/// A tract tensor of `input`'s bytes.
pub(super) fn tensor_of(input: &RawTensor) -> TractResult<Tensor> {
    // SAFETY: inputs reach here checked (`order_and_check`): the byte count fits the
    // datatype and shape, and booleans are 0 or 1, so every bit pattern is a valid element.
    unsafe { Tensor::from_raw_dt(input.datatype.to_tract(), &input.shape, &input.data) }
}

/// `model` with every input pinned to the shape of `inputs`.
pub(super) fn pin(model: &InferenceModel, inputs: &[RawTensor]) -> TractResult<InferenceModel> {
    let mut model = model.clone();
    for (ix, input) in inputs.iter().enumerate() {
        model.set_input_fact(ix, InferenceFact::dt_shape(input.datatype.to_tract(), input.shape.as_slice()))?;
    }
    Ok(model)
}

/// `model` pinned to `inputs`, with the inputs at `frozen` replaced by constants of their
/// values: the model's inputs are then the others, in order.
pub(super) fn freeze(model: &InferenceModel, inputs: &[RawTensor], frozen: &[usize]) -> TractResult<InferenceModel> {
    let mut model = pin(model, inputs)?;
    let outlets = model.input_outlets()?.to_vec();
    for &ix in frozen {
        let tensor = tensor_of(&inputs[ix])?;
        let outlet = outlets[ix];
        let konst = tract_onnx::tract_hir::ops::konst::Const::new(tensor.clone().into_arc_tensor())?;
        model.node_mut(outlet.node).op = Box::new(konst);
        model.set_outlet_fact(outlet, InferenceFact::from(tensor))?;
    }
    let kept: Vec<OutletId> =
        outlets.iter().enumerate().filter(|(ix, _)| !frozen.contains(ix)).map(|(_, &o)| o).collect();
    model.set_input_outlets(&kept)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use maas_fixtures::exported;

    use super::*;
    use crate::inference::LoadedModel;
    use crate::inference::testing::{f32_tensor, seeded};

    fn i64_tensor(name: &str, values: &[i64]) -> RawTensor {
        RawTensor {
            name: name.into(),
            datatype: Datatype::Int64,
            shape: vec![values.len()],
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn to_tract(t: &RawTensor) -> Tensor {
        tensor_of(t).unwrap()
    }

    /// Runs `inputs` on `model` and on tract in process (`reference`), and checks that both
    /// give the same outputs, shapes and bytes.
    fn same_as_tract(
        model: &LoadedModel,
        bytes: &[u8],
        inputs: Vec<RawTensor>,
        reference: fn(&[u8], Vec<Tensor>) -> anyhow::Result<Vec<Tensor>>,
    ) -> Vec<RawTensor> {
        let expected = reference(bytes, inputs.iter().map(to_tract).collect()).unwrap();
        let got = model.run(inputs).unwrap();
        assert_eq!(got.len(), expected.len());
        for (got, want) in got.iter().zip(&expected) {
            assert_eq!(got.shape, want.shape(), "{}", got.name);
            assert_eq!(got.data, want.try_as_plain_ram().unwrap().as_bytes(), "{}", got.name);
        }
        got
    }

    #[test]
    fn an_unnamed_dimension_gets_a_symbol_of_its_own() {
        let bytes = exported::unnamed_dim();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        assert_eq!(model.signature().inputs[0].shape, vec![-1, 4]);
        assert!(!model.per_request_shapes(), "typed once, with the dimension open");
        for rows in [1, 5] {
            let x = f32_tensor("x", &[rows, 4], &seeded(rows as u64, rows * 4));
            same_as_tract(&model, &bytes, vec![x], maas_fixtures::run_tract);
        }
        assert_eq!(model.plan_count(), 1);
    }

    #[test]
    fn an_input_of_unknown_rank_is_served_per_shape() {
        let bytes = exported::shape_of_unknown_rank();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        assert_eq!(model.signature().inputs[0].shape, vec![maas_types::ANY_RANK]);
        assert!(model.per_request_shapes());
        for shape in [vec![3], vec![2, 3, 4]] {
            let n = shape.iter().product();
            let x = f32_tensor("x", &shape, &seeded(n as u64, n));
            let out = same_as_tract(&model, &bytes, vec![x], maas_fixtures::run_tract);
            assert_eq!(out[1].shape, shape);
        }
        assert_eq!(model.strategy.load(std::sync::atomic::Ordering::Relaxed), Strategy::Pinned as u8);
    }

    #[test]
    fn sizes_computed_two_ways_are_served() {
        // tract proves 8*((H+31)/32) and 4*(2*((H+31)/32)) equal: one general plan.
        let bytes = exported::symbolic_concat();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        for h in [1, 40] {
            let out =
                same_as_tract(&model, &bytes, vec![f32_tensor("x", &[1, h], &seeded(2, h))], maas_fixtures::run_tract);
            assert_eq!(out[0].shape, vec![2, 8 * h.div_ceil(32)]);
        }
        // An FPN's 2*(H/2) against H: tract types it only with H known.
        let bytes = exported::fpn_concat();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        assert!(model.per_request_shapes());
        assert_eq!(model.signature().outputs[0].shape, vec![1, 2, -1, 4]);
        for h in [2, 6] {
            let x = f32_tensor("x", &[1, 1, h, 4], &seeded(3, h * 4));
            same_as_tract(&model, &bytes, vec![x], maas_fixtures::run_tract);
        }
        let odd = model.run(vec![f32_tensor("x", &[1, 1, 3, 4], &seeded(3, 12))]);
        assert!(matches!(odd, Err(InferenceError::InvalidInput(_))), "{odd:?}");
    }

    #[test]
    fn exporter_symbols_in_value_info_are_bound() {
        let bytes = exported::exporter_symbols();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        for rows in [1, 3] {
            let x = f32_tensor("x", &[rows, 4], &seeded(4, rows * 4));
            same_as_tract(&model, &bytes, vec![x], maas_fixtures::run_tract);
        }
    }

    #[test]
    fn parameter_inputs_are_frozen_per_value() {
        let bytes = exported::parameter_inputs();
        let model = LoadedModel::load(&bytes, u64::MAX).unwrap();
        assert!(model.per_request_shapes());
        let x = f32_tensor("x", &[2, 6], &seeded(5, 12));
        let run = |shape: &[i64], pads: &[i64]| {
            let inputs = vec![x.clone(), i64_tensor("shape", shape), i64_tensor("pads", pads)];
            same_as_tract(&model, &bytes, inputs, maas_fixtures::run_tract_frozen)
        };
        assert_eq!(run(&[3, 4], &[0, 0, 0, 0])[0].shape, vec![3, 4]);
        assert_eq!(run(&[4, 3], &[1, 0, 0, 2])[0].shape, vec![5, 5]);
        // The same shapes with other values are another plan, not the first one's answer.
        assert_eq!(run(&[6, 2], &[0, 0, 0, 0])[0].shape, vec![6, 2]);
        assert_eq!(model.plan_count(), 3);
        assert_eq!(model.strategy.load(std::sync::atomic::Ordering::Relaxed), Strategy::Frozen as u8);
    }

    #[test]
    fn declared_specs_pin_what_the_file_leaves_open() {
        let bytes = exported::shape_of_unknown_rank();
        let declared: Vec<TensorSpec> = vec!["x:FP32:-1,3".parse().unwrap()];
        let model =
            LoadedModel::load_within(&bytes, &declared, u64::MAX, crate::inference::PlanAccount::unbounded()).unwrap();
        assert_eq!(model.signature().inputs[0].shape, vec![-1, 3]);
        let refused = model.run(vec![f32_tensor("x", &[2, 4], &[0.0; 8])]);
        assert!(matches!(refused, Err(InferenceError::InvalidInput(_))), "{refused:?}");
        same_as_tract(&model, &bytes, vec![f32_tensor("x", &[2, 3], &seeded(6, 6))], maas_fixtures::run_tract);
        // Concrete declared shapes are checked by a run on zeros; a name the model lacks is
        // refused.
        let fixed: Vec<TensorSpec> = vec!["x:FP32:2,3".parse().unwrap()];
        let model = LoadedModel::load_within(&bytes, &fixed, u64::MAX, crate::inference::PlanAccount::unbounded());
        model.unwrap().check_runs().unwrap();
        let wrong: Vec<TensorSpec> = vec!["y:FP32:2".parse().unwrap()];
        let refused = LoadedModel::load_within(&bytes, &wrong, u64::MAX, crate::inference::PlanAccount::unbounded());
        assert!(matches!(refused, Err(InferenceError::InvalidModel(m)) if m.contains("\"y\"")));
    }

    #[test]
    fn sizes_a_request_gives_typing_are_bounded() {
        const CAP: u64 = 64 << 20;
        // A zero-byte input whose dimensions would size what typing folds from its shape.
        let model = LoadedModel::load(&exported::shape_of_unknown_rank(), CAP).unwrap();
        let empty = f32_tensor("x", &[0, 1 << 31], &[]);
        let refused = model.run(vec![empty]);
        assert!(matches!(&refused, Err(InferenceError::InvalidInput(m)) if m.contains("multiply past")), "{refused:?}");
        // A frozen shape of 2^33 elements.
        let model = LoadedModel::load(&exported::parameter_inputs(), CAP).unwrap();
        let inputs = vec![
            f32_tensor("x", &[2, 6], &seeded(1, 12)),
            i64_tensor("shape", &[1 << 31, 4]),
            i64_tensor("pads", &[0, 0, 0, 0]),
        ];
        let refused = model.run(inputs);
        assert!(matches!(&refused, Err(InferenceError::InvalidInput(m)) if m.contains("frozen")), "{refused:?}");
        assert_eq!(model.plan_count(), 0);
    }

    #[test]
    fn inputs_no_strategy_plans_are_remembered() {
        let model = LoadedModel::load(&exported::fpn_concat(), u64::MAX).unwrap();
        let odd = || model.run(vec![f32_tensor("x", &[1, 1, 3, 4], &seeded(3, 12))]);
        let first = odd();
        assert!(matches!(&first, Err(InferenceError::InvalidInput(_))), "{first:?}");
        assert_eq!(model.unplannable.lock().unwrap().len(), 1);
        assert_eq!(format!("{:?}", odd()), format!("{first:?}"), "refused again, with the same reason");
    }

    #[test]
    fn warm_up_builds_the_plan_a_request_then_uses() {
        let model = LoadedModel::load(&exported::fpn_concat(), u64::MAX).unwrap();
        assert_eq!(model.plan_count(), 0);
        let shapes = std::collections::BTreeMap::from([("x".to_string(), vec![1, 1, 6, 4])]);
        model.warm(&shapes).unwrap();
        assert_eq!(model.plan_count(), 1);
        model.run(vec![f32_tensor("x", &[1, 1, 6, 4], &seeded(1, 24))]).unwrap();
        assert_eq!(model.plan_count(), 1, "the request used the warm-up's plan");
        let unknown = std::collections::BTreeMap::from([("y".to_string(), vec![1])]);
        assert!(matches!(model.warm(&unknown), Err(InferenceError::InvalidInput(m)) if m.contains("no input \"y\"")));
    }

    #[test]
    fn an_operator_tract_lacks_is_named() {
        let Err(InferenceError::InvalidModel(message)) = LoadedModel::load(&exported::unsupported_op(), u64::MAX)
        else {
            panic!("a LabelEncoder model loaded");
        };
        assert_eq!(message, "operator LabelEncoder (ai.onnx.ml) is not supported, node #1 \"LabelEncoder\"");
    }
}
