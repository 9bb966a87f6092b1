//! The `ai.onnx.ml` operators of scikit-learn models that tract lacks or gets wrong.
//!
//! skl2onnx converts scikit-learn models, with its defaults, into graphs of the `ai.onnx.ml`
//! domain. tract implements `TreeEnsembleClassifier`, `LinearClassifier`, `LinearRegressor`,
//! `Normalizer` and `CategoryMapper`; [`register`] adds the three others skl2onnx emits, and
//! replaces tract's `TreeEnsembleClassifier`:
//!
//! - `TreeEnsembleRegressor` (random forests, gradient boosting): run by tract's own tree
//!   ensemble evaluator, the one behind its `TreeEnsembleClassifier`;
//! - `TreeEnsembleClassifier`, run by the same evaluator: tract's refuses skl2onnx's binary
//!   gradient boosting (one base value for two classes) and labels every row of a binary random
//!   forest with the first class; [`TreeEnsembleClassifier`] lays out two-class scores as
//!   onnxruntime does;
//! - `ZipMap`, the last node of every skl2onnx classifier, which turns the `[N, C]`
//!   probabilities into a sequence of `{class: probability}` maps. maas has no sequences nor
//!   maps: it serves the probability tensor the maps wrap, so `ZipMap` is an identity;
//! - `Binarizer` (`sklearn.preprocessing.Binarizer`): `x > threshold ? 1 : 0`.
//!
//! Each is an [`Expansion`]: inference rules, so a model types with a symbolic batch, and a
//! wiring into tract's typed operators, so it declutters and optimizes as tract's own.
//! Results are onnxruntime's, the reference of skl2onnx; [`TreeEnsembleRegressor`] says where
//! tract's tree evaluator would differ and how the wiring makes up for it.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::pb_helpers::AttrTVecType;
use tract_onnx::tract_core::ops::array::{Gather, Slice, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::logic::{Iff, comp_gt};
use tract_onnx::tract_core::ops::math::{add, div, neg, sub};
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, sigmoid};
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::logic::wire_with_rank_broadcast;
use tract_onnx_opl::ml::tree::{Aggregate, Cmp, TreeEnsemble, TreeEnsembleData};
use tract_onnx_opl::ml::tree_ensemble_classifier::TreeEnsembleClassifier as TreeEnsembleScores;

/// What an operator builder of tract's ONNX register returns: the op, and no closures.
type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// Most distinct leaf weights a MIN or MAX ensemble may have: their ranks must be exact `f32`s.
const MAX_RANKS: usize = 1 << 24;

/// Registers the ai.onnx.ml operators tract lacks, and maas's `TreeEnsembleClassifier` in place
/// of tract's (a later insert replaces an earlier one).
pub(super) fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("TreeEnsembleRegressor", tree_ensemble_regressor);
    onnx.op_register.insert("TreeEnsembleClassifier", tree_ensemble_classifier);
    onnx.op_register.insert("ZipMap", zip_map);
    onnx.op_register.insert("Binarizer", binarizer);
}

/// Builds a `TreeEnsembleRegressor` node (ai.onnx.ml opsets 1 and 3).
fn tree_ensemble_regressor(ctx: &ParsingContext, node: &NodeProto) -> Built {
    Ok((expand(TreeEnsembleRegressor::parse(ctx, node)?), vec![]))
}

/// Builds a `TreeEnsembleClassifier` node (ai.onnx.ml opsets 1 and 3), in place of tract's.
fn tree_ensemble_classifier(ctx: &ParsingContext, node: &NodeProto) -> Built {
    Ok((expand(TreeEnsembleClassifier::parse(ctx, node)?), vec![]))
}

/// Builds a `ZipMap` node.
fn zip_map(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let ints = node.get_attr_opt_slice::<i64>("classlabels_int64s")?.map(<[i64]>::len);
    let strings = node.get_attr_opt_tvec::<&str>("classlabels_strings")?.map(|labels| labels.len());
    let classes = match (ints, strings) {
        (Some(n), None) | (None, Some(n)) => n,
        _ => return node.bail("exactly one of classlabels_int64s and classlabels_strings must be set"),
    };
    Ok((expand(ZipMap { classes }), vec![]))
}

/// Builds a `Binarizer` node.
fn binarizer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    Ok((expand(Binarizer { threshold }), vec![]))
}

/// `TreeEnsembleRegressor`: `Y [N, n_targets]`, for each row of `X [N, F]` the weights of the
/// leaves it reaches in every tree, aggregated per target (SUM, AVERAGE, MIN or MAX), plus
/// `base_values`. `X` may be of any number type: it is read as `f32`, as tract does for its
/// `TreeEnsembleClassifier`. Only `post_transform` NONE is supported (skl2onnx's regressors).
///
/// The trees are run by tract's evaluator (`tract_onnx_opl::ml::tree`). Where it would
/// disagree with onnxruntime, the parsing or the wiring makes up for it:
///
/// - it decodes no `BRANCH_GTE` node (it takes one for a leaf): `x >= t` is run as `x < t`
///   with the two children swapped;
/// - it sends NaN to the false child unless the node tracks missing values to the true one,
///   whereas onnxruntime compares, and `NaN != t` holds: `BRANCH_NEQ` nodes track NaN to true;
/// - its MIN and MAX start from 0, not from the first weight (the MIN of positive weights would
///   be 0): the leaves carry ranks instead of weights (`1..=K` for MAX, `-K..=-1` for MIN, 0
///   for no weight), which a `Gather` looks up in `[0, distinct weights ascending]`;
/// - its AVERAGE divides by the number of weights a target got, onnxruntime's by the number of
///   trees: AVERAGE is run as SUM, then divided by the number of trees;
/// - its thresholds are `f32`: double thresholds (`nodes_values_as_tensor`) become the `f32`
///   that compares to every `f32` input as the double does (rounded down for `<=` and `>`,
///   up for `<` and `>=`), double weights the nearest `f32`.
///
/// One difference is left: a target that no weight of any tree reached gets its base value,
/// as the specification reads; onnxruntime, with more than one target, writes 0. No converter
/// writes such ensembles (skl2onnx gives every leaf a weight for every target).
///
/// A tree is the nodes of one `nodes_treeids` value; its first node in the attributes is its
/// root, as in onnxruntime. Node ids need not be contiguous. Every child, every weight's node
/// and every target id is checked at load (tract's evaluator does not check them), and every
/// tree must be one: no node reached twice from the root. `nodes_hitrates` is ignored, as
/// onnxruntime does.
#[derive(Clone, Debug)]
struct TreeEnsembleRegressor {
    /// The trees as tract's evaluator takes them; SUM for SUM and AVERAGE, ranks for MIN and MAX.
    ensemble: TreeEnsemble,
    /// The model's aggregate function.
    aggregate: Aggregate,
    /// Number of trees: AVERAGE divides by it.
    trees: usize,
    /// MIN and MAX: the weights the leaves' ranks stand for, `[0, distinct weights ascending]`.
    ranked: Option<Arc<Tensor>>,
    /// Added to every row, `[1, n_targets]`.
    base_values: Option<Arc<Tensor>>,
}

impl TreeEnsembleRegressor {
    /// Reads the node's attributes, and checks that they make trees.
    fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<TreeEnsembleRegressor> {
        let n_targets: usize = node.get_attr("n_targets")?;
        node.expect_attr("n_targets", n_targets > 0, "at least one target")?;
        let post_transform = node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE");
        node.expect_attr("post_transform", post_transform == "NONE", || {
            format!("NONE, the only one supported, got {post_transform}")
        })?;
        let aggregate = match node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM") {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Avg,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => {
                return node.bail_attr("aggregate_function", &format!("SUM, AVERAGE, MIN or MAX, got {other}"));
            }
        };
        let base_values = match float_list(ctx, node, "base_values")? {
            Some(values) if !values.is_empty() => {
                node.expect_attr("base_values", values.len() == n_targets, || {
                    format!("{n_targets} values (n_targets), got {}", values.len())
                })?;
                let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                Some(tensor1(&values).into_shape(&[1, n_targets])?.into_arc_tensor())
            }
            _ => None,
        };

        let weights = Weights { prefix: "target", outputs: n_targets, bound: "n_targets" };
        let mut forest = Forest::parse(ctx, node, weights)?;
        let ranked = match aggregate {
            Aggregate::Min | Aggregate::Max => Some(forest.rank_weights(aggregate == Aggregate::Max)?),
            Aggregate::Sum | Aggregate::Avg => None,
        };
        let trees = forest.roots.len();
        let evaluated = if aggregate == Aggregate::Avg { Aggregate::Sum } else { aggregate };
        let ensemble = TreeEnsemble::build(forest.data()?, forest.max_feature, n_targets, evaluated)?;
        Ok(TreeEnsembleRegressor { ensemble, aggregate, trees, ranked, base_values })
    }
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} trees, {} targets, {:?}", self.trees, self.ensemble.n_classes(), self.aggregate)])
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_classes().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let x = model.outlet_fact(inputs[0])?;
        ensure!(x.rank() == 2, "TreeEnsembleRegressor: input must be [N, F], got {:?}", x.shape);
        ensure!(x.datum_type.is_number(), "TreeEnsembleRegressor: input must be numbers, got {:?}", x.datum_type);
        if let Ok(features) = x.shape[1].to_usize() {
            self.ensemble.check_n_features(features).context("TreeEnsembleRegressor")?;
        }
        let scores = TreeEnsembleScores { ensemble: self.ensemble.clone() };
        let mut y = model.wire_node(format!("{prefix}.trees"), scores, inputs)?[0];
        if self.aggregate == Aggregate::Avg {
            let trees = model.add_const(format!("{prefix}.n_trees"), rctensor2(&[[self.trees as f32]]))?;
            y = model.wire_node(format!("{prefix}.average"), div(), &[y, trees])?[0];
        }
        if let Some(ranked) = &self.ranked {
            let ranks = model.wire_node(format!("{prefix}.ranks"), cast(i64::datum_type()), &[y])?[0];
            let weights = model.add_const(format!("{prefix}.ranked_weights"), ranked.clone())?;
            y = model.wire_node(format!("{prefix}.weights"), Gather::new(0), &[weights, ranks])?[0];
        }
        if let Some(base_values) = &self.base_values {
            let base = model.add_const(format!("{prefix}.base_values"), base_values.clone())?;
            y = model.wire_node(format!("{prefix}.base"), add(), &[y, base])?[0];
        }
        Ok(tvec!(y))
    }
}

/// `TreeEnsembleClassifier`: for each row of `X [N, F]`, its label `Y [N]` and the scores
/// `Z [N, C]` of the `C` classes of `classlabels_int64s`, as onnxruntime computes them. `X` is
/// read as `f32`, and the trees are parsed, checked and run as [`TreeEnsembleRegressor`]'s,
/// from the `class_*` attributes. A class's score is the SUM of its weights in the leaves the
/// row reaches (a classifier has no `aggregate_function`), plus its base value;
/// `post_transform` NONE, LOGISTIC or SOFTMAX makes `Z` of the scores.
///
/// More than two classes: `base_values` has a value per class or none (onnxruntime refuses
/// other counts). `Z` is the transformed scores, `Y` the label of the highest score *before*
/// the transform (LOGISTIC may make two scores 1), the first on ties, among the classes the
/// row scored: those with a base value or a weight in a leaf it reached. When some class is
/// scored by some rows only, the trees are run a second time to count each class's weights. A
/// row that scores no class, which onnxruntime fails on, gets the first label.
///
/// Two classes: onnxruntime's layout depends on whether the weights are all of one class
/// (skl2onnx's binary layout: all of class 0), on their signs and on the number of base
/// values, 0, 1 or 2 (skl2onnx writes one for gradient boosting). With `S0`, `S1` the sums of
/// each class's weights, `b0`, `b1` the base values and `T` the transform:
///
/// - weights of class 0 alone, at most one base value: one score `P = S0 + b0`, and
///   `Y = P > 0.5 ? L1 : L0` if every weight is `>= 0` (`P` is then a probability), else
///   `P > 0`. `Z` is `[σ(-P), σ(P)]` for LOGISTIC; for NONE and SOFTMAX (which onnxruntime
///   leaves out here), `[1 - P, P]` if every weight is `>= 0`, else `[-P, P]`;
/// - weights of class 0 alone, two base values: `Z = T([S0 + b0, 0])`, `Y` as above;
/// - weights of class 1: `Z = T([c0, c1])` with, for at most one base value, `c0 = S0 + b0`,
///   `c1 = S1`, and for two, `c1 = S0 + b1` (not `S1`: onnxruntime's), `c0 = -c1`; `c0` is
///   0 when no weight is of class 0. `Y` is `c1 > 0` (`> 0.5` if every weight is `>= 0`)
///   as `L1` or `L0` when all weights are of class 1, and as `1` or `0` — not the labels —
///   when both classes have weights.
///
/// Whether a row scores a class (has one of its weights) changes this layout in onnxruntime;
/// a two-class ensemble where it depends on the leaves a row reaches is refused, but for
/// class 0 without base values, where it makes no difference. Labels must be `int64`: maas
/// serves no string tensors. PROBIT and SOFTMAX_ZERO are refused, as tract's own operator
/// does. tract's own operator, which this one replaces, wants a base value per class and
/// takes a two-class label from its expanded scores (always the first class for skl2onnx's
/// random forests).
#[derive(Clone, Debug)]
struct TreeEnsembleClassifier {
    /// The score columns as tract's evaluator takes them: one per class, or the one or two
    /// of a two-class layout.
    ensemble: TreeEnsemble,
    /// Number of trees.
    trees: usize,
    /// Added to the score columns, `[1, columns]`.
    base_values: Option<Arc<Tensor>>,
    /// Attribute `post_transform`.
    post_transform: PostTransform,
    /// How the label and `Z` come of the scores.
    output: ClassifierOutput,
}

/// A classifier's `post_transform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PostTransform {
    None,
    Logistic,
    Softmax,
}

/// How a [`TreeEnsembleClassifier`]'s label and `Z` come of its score columns.
#[derive(Clone, Debug)]
enum ClassifierOutput {
    /// More than two classes, a column each: `Z` is the transformed columns, the label that of
    /// the highest column among those the row scored.
    Classes {
        /// The class labels, `[C]`.
        labels: Arc<Tensor>,
        /// When some class is scored by some rows only: the trees with every weight 1, which
        /// count a row's weights of each class, and `[1, C]` 1 for the classes every row scores.
        scored: Option<(TreeEnsemble, Arc<Tensor>)>,
    },
    /// Two classes: the label is `labels[1]` when score column `column` is above `threshold`,
    /// else `labels[0]`.
    Binary {
        /// `[L0, L1]`, or `[0, 1]` when both classes have weights (onnxruntime's).
        labels: Arc<Tensor>,
        /// The column the label is decided on.
        column: usize,
        /// 0.5 when every weight is `>= 0` and all are of one class, else 0.
        threshold: f32,
        /// `None`: two columns, transformed into `Z`; else one score `P`, made into `Z` so.
        complement: Option<Complement>,
    },
}

/// How onnxruntime makes the two columns of `Z` of a two-class ensemble's one score `P`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Complement {
    /// `[σ(-P), σ(P)]`: LOGISTIC.
    Logistic,
    /// `[1 - P, P]`: NONE or SOFTMAX, every weight `>= 0`.
    OneMinus,
    /// `[-P, P]`: NONE or SOFTMAX, some weight negative.
    Negate,
}

impl TreeEnsembleClassifier {
    /// Reads the node's attributes, checks that they make trees, and lays out its scores.
    fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<TreeEnsembleClassifier> {
        let ints = node.get_attr_opt_slice::<i64>("classlabels_int64s")?;
        let strings = node.get_attr_opt_tvec::<&str>("classlabels_strings")?;
        let labels: Vec<i64> = match (ints, strings) {
            (Some(labels), None) => labels.to_vec(),
            (None, Some(_)) => {
                return node.bail_attr(
                    "classlabels_strings",
                    "string class labels are not supported, as maas serves no string tensors: convert the model \
                     with integer class labels",
                );
            }
            _ => return node.bail("exactly one of classlabels_int64s and classlabels_strings must be set"),
        };
        let classes = labels.len();
        node.expect_attr("classlabels_int64s", classes >= 2, || format!("at least two classes, got {classes}"))?;
        let post_transform = match node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            other => {
                return node.bail_attr("post_transform", &format!("NONE, LOGISTIC or SOFTMAX, got {other}"));
            }
        };
        let base: Vec<f32> =
            float_list(ctx, node, "base_values")?.unwrap_or_default().iter().map(|&v| v as f32).collect();
        let forest = Forest::parse(ctx, node, Weights { prefix: "class", outputs: classes, bound: "the class count" })?;
        let trees = forest.roots.len();
        let (forest, base_values, output) = if classes > 2 {
            Self::classes(node, forest, labels, base)?
        } else {
            Self::binary(node, forest, labels, base, post_transform)?
        };
        let columns = base_values.len();
        let ensemble = TreeEnsemble::build(forest.data()?, forest.max_feature, columns, Aggregate::Sum)?;
        let base_values = if base_values.iter().any(|&v| v != 0.0) {
            Some(tensor1(&base_values).into_shape(&[1, columns])?.into_arc_tensor())
        } else {
            None
        };
        Ok(TreeEnsembleClassifier { ensemble, trees, base_values, post_transform, output })
    }

    /// More than two classes: a column per class, and each column's base value.
    fn classes(
        node: &NodeProto,
        forest: Forest,
        labels: Vec<i64>,
        base: Vec<f32>,
    ) -> TractResult<(Forest, Vec<f32>, ClassifierOutput)> {
        let classes = labels.len();
        node.expect_attr("base_values", base.is_empty() || base.len() == classes, || {
            format!("a value per class ({classes}) or none, got {}", base.len())
        })?;
        let always = if base.is_empty() { forest.always_weighted(classes) } else { vec![true; classes] };
        let scored = if always.iter().all(|&always| always) {
            None
        } else {
            let counts = forest.map_weights(|class, _, weights| weights.push((class, 1.0)))?;
            let counts = TreeEnsemble::build(counts.data()?, counts.max_feature, classes, Aggregate::Sum)?;
            let always: Vec<f32> = always.iter().map(|&always| if always { 1.0 } else { 0.0 }).collect();
            Some((counts, tensor1(&always).into_shape(&[1, classes])?.into_arc_tensor()))
        };
        let base = if base.is_empty() { vec![0.0; classes] } else { base };
        Ok((forest, base, ClassifierOutput::Classes { labels: rctensor1(&labels), scored }))
    }

    /// Two classes: onnxruntime's layout of the score columns, their base values, and how the
    /// label and `Z` come of them.
    fn binary(
        node: &NodeProto,
        forest: Forest,
        labels: Vec<i64>,
        base: Vec<f32>,
        post_transform: PostTransform,
    ) -> TractResult<(Forest, Vec<f32>, ClassifierOutput)> {
        node.expect_attr("base_values", base.len() <= 2, || format!("at most 2 values, got {}", base.len()))?;
        let weighted = forest.weighted(2);
        let always = forest.always_weighted(2);
        let (scores_0, scores_1) = (weighted[0], weighted[1]);
        let sometimes = |class: usize| weighted[class] && !always[class];
        if sometimes(1) || (sometimes(0) && !base.is_empty()) {
            let class = if sometimes(1) { 1 } else { 0 };
            return node.bail_attr(
                "class_nodeids",
                &format!(
                    "class {class} has weights in some leaves only, in no tree in all of them: whether a row scores it \
                     depends on the leaves it reaches, which changes onnxruntime's two-class layout; not supported"
                ),
            );
        }
        let one_class = scores_0 != scores_1;
        let positive = forest.leaves.iter().all(|(_, w)| *w >= 0.0 || w.is_nan());
        let threshold = if one_class && positive { 0.5 } else { 0.0 };
        let labels = if one_class { rctensor1(&labels) } else { rctensor1(&[0i64, 1]) };
        let b = |class: usize| base.get(class).copied().unwrap_or(0.0);
        let binary = |column, complement| ClassifierOutput::Binary { labels, column, threshold, complement };
        Ok(if !scores_1 && base.len() < 2 {
            // One score, class 0's.
            let complement = match (post_transform, positive) {
                (PostTransform::Logistic, _) => Complement::Logistic,
                (_, true) => Complement::OneMinus,
                (_, false) => Complement::Negate,
            };
            (forest, vec![b(0)], binary(0, Some(complement)))
        } else if !scores_1 {
            // Two base values: [S0 + b0, 0].
            (forest, vec![b(0), 0.0], binary(0, None))
        } else if base.len() == 2 {
            // c1 = S0 + b1, c0 = -c1 (0 without weights of class 0): class 0's weights twice,
            // class 1's dropped.
            let forest = forest.map_weights(|class, value, weights| {
                if class == 0 {
                    weights.extend([(1, value), (0, -value)]);
                }
            })?;
            let c0 = if scores_0 { -b(1) } else { 0.0 };
            (forest, vec![c0, b(1)], binary(1, None))
        } else {
            // [S0 + b0 (0 without weights of class 0), S1].
            (forest, vec![if scores_0 { b(0) } else { 0.0 }, 0.0], binary(1, None))
        })
    }

    /// `Z` of score columns `scores`: `post_transform` applied.
    fn transform(&self, prefix: &str, model: &mut TypedModel, scores: OutletId) -> TractResult<OutletId> {
        Ok(match self.post_transform {
            PostTransform::None => scores,
            PostTransform::Logistic => model.wire_node(format!("{prefix}.logistic"), sigmoid(), &[scores])?[0],
            PostTransform::Softmax => {
                let softmax = Softmax { axes: tvec!(1), ..Softmax::default() };
                model.wire_node(format!("{prefix}.softmax"), softmax, &[scores])?[0]
            }
        })
    }
}

impl Expansion for TreeEnsembleClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let layout = match &self.output {
            ClassifierOutput::Classes { scored, .. } => {
                format!("a column per class{}", if scored.is_some() { ", classes scored per row" } else { "" })
            }
            ClassifierOutput::Binary { column, threshold, complement, .. } => {
                format!("two classes, label on column {column} > {threshold}, {complement:?}")
            }
        };
        Ok(vec![format!("{} trees, {:?}, {layout}", self.trees, self.post_transform)])
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        let classes = match &self.output {
            ClassifierOutput::Classes { labels, .. } => labels.len(),
            ClassifierOutput::Binary { .. } => 2,
        };
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, i64::datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], classes.to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let x = model.outlet_fact(inputs[0])?;
        ensure!(x.rank() == 2, "TreeEnsembleClassifier: input must be [N, F], got {:?}", x.shape);
        ensure!(x.datum_type.is_number(), "TreeEnsembleClassifier: input must be numbers, got {:?}", x.datum_type);
        if let Ok(features) = x.shape[1].to_usize() {
            self.ensemble.check_n_features(features).context("TreeEnsembleClassifier")?;
        }
        let scores = TreeEnsembleScores { ensemble: self.ensemble.clone() };
        let mut scores = model.wire_node(format!("{prefix}.trees"), scores, inputs)?[0];
        if let Some(base_values) = &self.base_values {
            let base = model.add_const(format!("{prefix}.base_values"), base_values.clone())?;
            scores = model.wire_node(format!("{prefix}.base"), add(), &[scores, base])?[0];
        }
        let (labels, index, z) = match &self.output {
            ClassifierOutput::Classes { labels, scored } => {
                let mut decisive = scores;
                if let Some((counts, always)) = scored {
                    let counts = TreeEnsembleScores { ensemble: counts.clone() };
                    let counts = model.wire_node(format!("{prefix}.weight_counts"), counts, inputs)?[0];
                    let always = model.add_const(format!("{prefix}.always_scored"), always.clone())?;
                    let counts = model.wire_node(format!("{prefix}.score_counts"), add(), &[counts, always])?[0];
                    let zero = model.add_const(format!("{prefix}.zero"), tensor0(0f32))?;
                    let scored = TypedBinOp(comp_gt(), None);
                    let scored = wire_with_rank_broadcast(format!("{prefix}.scored"), model, scored, &[counts, zero])?;
                    let unscored = model.add_const(format!("{prefix}.unscored"), rctensor2(&[[f32::NEG_INFINITY]]))?;
                    decisive =
                        model.wire_node(format!("{prefix}.scored_scores"), Iff, &[scored[0], scores, unscored])?[0];
                }
                let argmax = Reduce::new(tvec!(1), Reducer::ArgMax(false));
                let winner = model.wire_node(format!("{prefix}.argmax"), argmax, &[decisive])?[0];
                let winner = model.wire_node(format!("{prefix}.winner"), AxisOp::Rm(1), &[winner])?[0];
                (labels, winner, self.transform(prefix, model, scores)?)
            }
            ClassifierOutput::Binary { labels, column, threshold, complement } => {
                let decisive = Slice::new(1, *column, *column + 1);
                let decisive = model.wire_node(format!("{prefix}.decisive"), decisive, &[scores])?[0];
                let decisive = model.wire_node(format!("{prefix}.decisive_score"), AxisOp::Rm(1), &[decisive])?[0];
                let threshold = model.add_const(format!("{prefix}.threshold"), tensor0(*threshold))?;
                let above = TypedBinOp(comp_gt(), None);
                let above = wire_with_rank_broadcast(format!("{prefix}.above"), model, above, &[decisive, threshold])?;
                let index = model.wire_node(format!("{prefix}.label_index"), cast(i64::datum_type()), &above)?[0];
                let z = match complement {
                    None => self.transform(prefix, model, scores)?,
                    Some(complement) => {
                        let other = if *complement == Complement::OneMinus {
                            let one = model.add_const(format!("{prefix}.one"), rctensor2(&[[1f32]]))?;
                            model.wire_node(format!("{prefix}.complement"), sub(), &[one, scores])?[0]
                        } else {
                            model.wire_node(format!("{prefix}.opposite"), neg(), &[scores])?[0]
                        };
                        let z =
                            model.wire_node(format!("{prefix}.two_columns"), TypedConcat::new(1), &[other, scores])?[0];
                        if *complement == Complement::Logistic {
                            model.wire_node(format!("{prefix}.logistic"), sigmoid(), &[z])?[0]
                        } else {
                            z
                        }
                    }
                };
                (labels, index, z)
            }
        };
        let labels = model.add_const(format!("{prefix}.class_labels"), labels.clone())?;
        let label = model.wire_node(format!("{prefix}.label"), Gather::new(0), &[labels, index])?[0];
        Ok(tvec!(label, z))
    }
}

/// The attributes that weigh a forest's leaves, and how many outputs their ids index.
#[derive(Clone, Copy, Debug)]
struct Weights {
    /// `target` (`TreeEnsembleRegressor`) or `class` (`TreeEnsembleClassifier`): the weights are
    /// `<prefix>_treeids`, `<prefix>_nodeids`, `<prefix>_ids` and `<prefix>_weights`.
    prefix: &'static str,
    /// Number of outputs, which the ids must be below.
    outputs: usize,
    /// What the node calls that number, for errors.
    bound: &'static str,
}

/// The trees of a tree ensemble in the layout of tract's [`TreeEnsembleData`].
#[derive(Clone, Debug)]
struct Forest {
    /// The row of each tree's root in `nodes`.
    roots: Vec<u32>,
    /// A branch: feature, true child row, false child row, threshold bits, comparison
    /// (`| 0x100` when NaN goes to the true child). A leaf: its first and end `leaves`, 0, 0, 0.
    nodes: Vec<[u32; 5]>,
    /// Output (target or class) and value of every weight, the weights of a leaf together.
    leaves: Vec<(u32, f32)>,
    /// The highest feature a branch reads.
    max_feature: usize,
}

impl Forest {
    /// Reads the `nodes_*` attributes and the weights' (`target_*` or `class_*`).
    fn parse(ctx: &ParsingContext, node: &NodeProto, weighing: Weights) -> TractResult<Forest> {
        let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
        let n = tree_ids.len();
        node.expect_attr("nodes_treeids", n > 0, "at least one node")?;
        let node_ids: Vec<i64> = list(node, "nodes_nodeids", n)?;
        let features: Vec<usize> = list(node, "nodes_featureids", n)?;
        let modes: Vec<&str> = list(node, "nodes_modes", n)?;
        let true_ids: Vec<i64> = list(node, "nodes_truenodeids", n)?;
        let false_ids: Vec<i64> = list(node, "nodes_falsenodeids", n)?;
        let thresholds = required_float_list(ctx, node, "nodes_values", n)?;
        let nan_true: Vec<bool> = match node.get_attr_opt_vec::<bool>("nodes_missing_value_tracks_true")? {
            Some(_) => list(node, "nodes_missing_value_tracks_true", n)?,
            None => vec![false; n],
        };

        // Rows: the nodes of a tree together, trees in order of first appearance, each in
        // attribute order, so that a tree's first node is its root.
        let mut tree_of: HashMap<i64, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (ix, tree) in tree_ids.iter().enumerate() {
            let at = *tree_of.entry(*tree).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[at].push(ix);
        }
        let mut rows: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        let mut order = Vec::with_capacity(n);
        let mut roots = Vec::with_capacity(members.len());
        for ixs in &members {
            roots.push(row_u32(order.len())?);
            for &ix in ixs {
                if rows.insert((tree_ids[ix], node_ids[ix]), order.len()).is_some() {
                    return node.bail_attr(
                        "nodes_nodeids",
                        &format!("node {} of tree {} is listed twice", node_ids[ix], tree_ids[ix]),
                    );
                }
                order.push(ix);
            }
        }
        let child = |ix: usize, id: i64, attr: &str| -> TractResult<u32> {
            match rows.get(&(tree_ids[ix], id)) {
                Some(&row) if id != node_ids[ix] => row_u32(row),
                _ => node.bail_attr(
                    attr,
                    &format!("node {} of tree {} has no child node {id} in its tree", node_ids[ix], tree_ids[ix]),
                ),
            }
        };

        let mut nodes = Vec::with_capacity(n);
        let mut max_feature = 0;
        for &ix in &order {
            let Some(branch) = Branch::parse(modes[ix], thresholds[ix], nan_true[ix])
                .with_context(|| format!("node {} of tree {}", node_ids[ix], tree_ids[ix]))?
            else {
                nodes.push([0; 5]);
                continue;
            };
            let (yes, no) =
                (child(ix, true_ids[ix], "nodes_truenodeids")?, child(ix, false_ids[ix], "nodes_falsenodeids")?);
            let (yes, no) = if branch.swap { (no, yes) } else { (yes, no) };
            let feature = u32::try_from(features[ix]).context("nodes_featureids: feature id out of range")?;
            max_feature = max_feature.max(features[ix]);
            let flags = branch.cmp as u32 | if branch.nan_true { 0x100 } else { 0 };
            nodes.push([feature, yes, no, branch.threshold.to_bits(), flags]);
        }
        let is_leaf = |row: usize| modes[order[row]] == "LEAF";

        let Weights { prefix, outputs, bound } = weighing;
        let attr = |name: &str| format!("{prefix}_{name}");
        let weight_trees: Vec<i64> = node.get_attr_vec(&attr("treeids"))?;
        let m = weight_trees.len();
        node.expect_attr(&attr("treeids"), m > 0, "at least one weight")?;
        let weight_nodes: Vec<i64> = list(node, &attr("nodeids"), m)?;
        let targets: Vec<usize> = list(node, &attr("ids"), m)?;
        let weights = required_float_list(ctx, node, &attr("weights"), m)?;
        let mut votes: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for w in 0..m {
            let (tree, id) = (weight_trees[w], weight_nodes[w]);
            let row = match rows.get(&(tree, id)) {
                Some(&row) if is_leaf(row) => row,
                Some(_) => return node.bail_attr(&attr("nodeids"), &format!("node {id} of tree {tree} is no leaf")),
                None => return node.bail_attr(&attr("nodeids"), &format!("tree {tree} has no node {id}")),
            };
            node.expect_attr(&attr("ids"), targets[w] < outputs, || {
                format!("{prefix} ids below {bound} ({outputs}), got {}", targets[w])
            })?;
            votes[row].push((targets[w] as u32, weights[w] as f32));
        }
        let mut leaves = Vec::with_capacity(m);
        for (row, votes) in votes.into_iter().enumerate() {
            if is_leaf(row) {
                nodes[row][0] = row_u32(leaves.len())?;
                leaves.extend(votes);
                nodes[row][1] = row_u32(leaves.len())?;
            }
        }

        let forest = Forest { roots, nodes, leaves, max_feature };
        forest.check_trees().context("nodes_truenodeids, nodes_falsenodeids")?;
        Ok(forest)
    }

    /// Checks that every tree is one: walked from its root, no node is reached twice (tract's
    /// evaluator would loop forever on a cycle).
    fn check_trees(&self) -> TractResult<()> {
        let mut seen = vec![false; self.nodes.len()];
        for root in &self.roots {
            let mut stack = vec![*root as usize];
            while let Some(row) = stack.pop() {
                ensure!(!seen[row], "not a tree: row {row} is reached twice from root row {root}");
                seen[row] = true;
                let [_, yes, no, _, flags] = self.nodes[row];
                if flags & 0xFF != 0 {
                    stack.extend([yes as usize, no as usize]);
                }
            }
        }
        Ok(())
    }

    /// For each of `outputs`, whether some weight is of it.
    fn weighted(&self, outputs: usize) -> Vec<bool> {
        let mut weighted = vec![false; outputs];
        for (output, _) in &self.leaves {
            if let Some(weighted) = weighted.get_mut(*output as usize) {
                *weighted = true;
            }
        }
        weighted
    }

    /// For each of `outputs`, whether every row gets a weight of it: whether some tree has one in
    /// every leaf it can reach.
    fn always_weighted(&self, outputs: usize) -> Vec<bool> {
        let mut always = vec![false; outputs];
        // Per output, the last leaf seen with a weight of it, and how many leaves of the current
        // tree had one; the outputs the tree weighs.
        let (mut last, mut count, mut touched) = (vec![usize::MAX; outputs], vec![0usize; outputs], Vec::new());
        for root in &self.roots {
            let mut leaves = 0;
            let mut stack = vec![*root as usize];
            while let Some(row) = stack.pop() {
                let [first, end_or_yes, no, _, flags] = self.nodes[row];
                if flags & 0xFF != 0 {
                    stack.extend([end_or_yes as usize, no as usize]);
                    continue;
                }
                leaves += 1;
                for (output, _) in &self.leaves[first as usize..end_or_yes as usize] {
                    let output = *output as usize;
                    if output < outputs && last[output] != row {
                        if count[output] == 0 {
                            touched.push(output);
                        }
                        last[output] = row;
                        count[output] += 1;
                    }
                }
            }
            for output in touched.drain(..) {
                always[output] |= count[output] == leaves;
                count[output] = 0;
            }
        }
        always
    }

    /// The forest with each weight `(output, value)` replaced by those `map` pushes.
    fn map_weights(&self, map: impl Fn(u32, f32, &mut Vec<(u32, f32)>)) -> TractResult<Forest> {
        let mut leaves = Vec::with_capacity(self.leaves.len());
        let mut nodes = self.nodes.clone();
        for node in &mut nodes {
            if node[4] & 0xFF == 0 {
                let (first, end) = (node[0] as usize, node[1] as usize);
                node[0] = row_u32(leaves.len())?;
                for &(output, value) in &self.leaves[first..end] {
                    map(output, value, &mut leaves);
                }
                node[1] = row_u32(leaves.len())?;
            }
        }
        Ok(Forest { roots: self.roots.clone(), nodes, leaves, max_feature: self.max_feature })
    }

    /// MIN and MAX: replaces each weight by its rank among the distinct weights, `1..=K` for
    /// MAX and `-K..=-1` for MIN, and returns the weights they stand for, `[0, ascending…]`.
    fn rank_weights(&mut self, max: bool) -> TractResult<Arc<Tensor>> {
        ensure!(self.leaves.iter().all(|(_, w)| !w.is_nan()), "target_weights: NaN weight with MIN or MAX");
        let mut distinct: Vec<f32> = self.leaves.iter().map(|(_, w)| *w).collect();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup_by(|a, b| a.to_bits() == b.to_bits());
        let k = distinct.len();
        ensure!(k < MAX_RANKS, "target_weights: {k} distinct weights, MIN and MAX take at most {MAX_RANKS}");
        for (_, weight) in &mut self.leaves {
            let at = distinct.binary_search_by(|w| w.total_cmp(weight)).map_err(|_| format_err!("unranked weight"))?;
            *weight = if max { (at + 1) as f32 } else { at as f32 - k as f32 };
        }
        let mut table = Vec::with_capacity(k + 1);
        table.push(0f32);
        table.extend(distinct);
        Ok(rctensor1(&table))
    }

    /// The tensors of tract's evaluator.
    fn data(&self) -> TractResult<TreeEnsembleData> {
        let nodes: Vec<u32> = self.nodes.iter().flatten().copied().collect();
        let leaves: Vec<u32> = self.leaves.iter().flat_map(|(target, w)| [*target, w.to_bits()]).collect();
        Ok(TreeEnsembleData {
            trees: rctensor1(&self.roots),
            nodes: tensor1(&nodes).into_shape(&[self.nodes.len(), 5])?.into_arc_tensor(),
            leaves: tensor1(&leaves).into_shape(&[self.leaves.len(), 2])?.into_arc_tensor(),
        })
    }
}

/// A branch node as tract's evaluator runs it.
struct Branch {
    /// The comparison `x <cmp> threshold`.
    cmp: Cmp,
    /// The `f32` threshold that compares to `f32` inputs as the model's does.
    threshold: f32,
    /// Whether the comparison holding leads to the node's false child (`BRANCH_GTE`).
    swap: bool,
    /// Whether NaN leads to the (possibly swapped) true child.
    nan_true: bool,
}

impl Branch {
    /// The branch for `nodes_modes` `mode`, `threshold` and `nodes_missing_value_tracks_true`;
    /// `None` for a leaf. onnxruntime takes the true child when `x <mode> threshold`, or when
    /// `x` is NaN and the node tracks missing values to true.
    fn parse(mode: &str, threshold: f64, nan_true: bool) -> TractResult<Option<Branch>> {
        let branch = |cmp, threshold, swap, nan_true| Ok(Some(Branch { cmp, threshold, swap, nan_true }));
        if mode != "LEAF" {
            ensure!(!threshold.is_nan(), "nodes_values: NaN threshold");
        }
        match mode {
            "LEAF" => Ok(None),
            "BRANCH_LEQ" => branch(Cmp::LessEqual, round_down(threshold), false, nan_true),
            "BRANCH_LT" => branch(Cmp::Less, round_up(threshold), false, nan_true),
            "BRANCH_GT" => branch(Cmp::Greater, round_down(threshold), false, nan_true),
            // x >= t is not x < t: NaN fails both, so it goes where x < t leads unless tracked.
            "BRANCH_GTE" => branch(Cmp::Less, round_up(threshold), true, !nan_true),
            "BRANCH_EQ" => branch(Cmp::Equal, exactly(threshold), false, nan_true),
            // NaN != t holds.
            "BRANCH_NEQ" => branch(Cmp::NotEqual, exactly(threshold), false, true),
            other => bail!("nodes_modes: unsupported mode {other:?}"),
        }
    }
}

/// The largest `f32` not above `t`: `x <= t` and `x > t` hold for `f32` `x` as with it.
fn round_down(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}

/// The smallest `f32` not below `t`: `x < t` and `x >= t` hold for `f32` `x` as with it.
fn round_up(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) < t { r.next_up() } else { r }
}

/// `t` if it is an `f32`, else NaN, which no `f32` equals, as none equals `t`.
fn exactly(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) == t { r } else { f32::NAN }
}

/// A row or leaf index as tract's `u32` tables hold it.
fn row_u32(row: usize) -> TractResult<u32> {
    u32::try_from(row).context("tree ensemble too large for tract's u32 tables")
}

/// List attribute `name`, which must have `n` items (as the first list of its group).
fn list<'a, T: AttrTVecType<'a>>(node: &'a NodeProto, name: &str, n: usize) -> TractResult<Vec<T>> {
    let values: Vec<T> = node.get_attr_vec(name)?;
    node.expect_attr(name, values.len() == n, || format!("{n} items, got {}", values.len()))?;
    Ok(values)
}

/// A float list given as `name` (floats) or as `name_as_tensor` (a tensor, double in opset 3),
/// as `f64`s; `None` when neither is set.
fn float_list(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f64>>> {
    let as_tensor = format!("{name}_as_tensor");
    let floats: Option<Vec<f32>> = node.get_attr_opt_vec(name)?;
    let tensor: Option<&TensorProto> = node.get_attr_opt(&as_tensor)?;
    match (floats, tensor) {
        (Some(_), Some(_)) => node.bail(&format!("only one of {name} and {as_tensor} may be set")),
        (Some(floats), None) => Ok(Some(floats.into_iter().map(f64::from).collect())),
        (None, Some(tensor)) => {
            let tensor = ctx.load_tensor(tensor).with_context(|| format!("loading attribute {as_tensor}"))?;
            let tensor = tensor.cast_to::<f64>().with_context(|| format!("attribute {as_tensor} as doubles"))?;
            Ok(Some(tensor.to_plain_array_view::<f64>()?.iter().copied().collect()))
        }
        (None, None) => Ok(None),
    }
}

/// [`float_list`] `name`, which must be set and have `n` items.
fn required_float_list(ctx: &ParsingContext, node: &NodeProto, name: &str, n: usize) -> TractResult<Vec<f64>> {
    let Some(values) = float_list(ctx, node, name)? else {
        return node.bail(&format!("attribute {name} (or {name}_as_tensor) is required"));
    };
    node.expect_attr(name, values.len() == n, || format!("{n} items, got {}", values.len()))?;
    Ok(values)
}

/// `ZipMap`: the `[N, C]` float probabilities, passed through. The maps it would make (class →
/// probability, for `classlabels_int64s` or `classlabels_strings`) are the tensor's rows.
#[derive(Clone, Debug)]
struct ZipMap {
    /// Number of class labels: the input's second dimension.
    classes: usize,
}

impl Expansion for ZipMap {
    fn name(&self) -> StaticName {
        "ZipMap".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&inputs[0].shape[1], self.classes.to_dim())?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, Identity, inputs)
    }
}

/// `Binarizer`: `Y = X > threshold ? 1 : 0`, of `X`'s type and shape. NaN gives 0 (onnxruntime
/// refuses NaN). Floats are compared as they are (`f16` as `f32`), integers as `f64`: exact
/// but for `i64`/`u64` inputs beyond 2^53 with a threshold of the same magnitude.
#[derive(Clone, Debug)]
struct Binarizer {
    /// Attribute `threshold`, 0 by default.
    threshold: f32,
}

impl Expansion for Binarizer {
    fn name(&self) -> StaticName {
        "Binarizer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let dt = model.outlet_fact(inputs[0])?.datum_type;
        let (compared, threshold) = match dt {
            DatumType::F32 => (None, tensor0(self.threshold)),
            DatumType::F64 => (None, tensor0(f64::from(self.threshold))),
            DatumType::F16 => (Some(DatumType::F32), tensor0(self.threshold)),
            dt if dt.is_integer() && !dt.is_quantized() => (Some(DatumType::F64), tensor0(f64::from(self.threshold))),
            dt => bail!("Binarizer: input must be float, double or integers, got {dt:?}"),
        };
        let mut x = inputs[0];
        if let Some(compared) = compared {
            x = model.wire_node(format!("{prefix}.compared"), cast(compared), &[x])?[0];
        }
        let threshold = model.add_const(format!("{prefix}.threshold"), threshold)?;
        let above =
            wire_with_rank_broadcast(format!("{prefix}.above"), model, TypedBinOp(comp_gt(), None), &[x, threshold])?;
        model.wire_node(format!("{prefix}.cast"), cast(dt), &above)
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb;
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::internal::{Approximation, TractErrorContext, bail, ensure};

    use super::register;

    /// Attribute `name` of `kind`, its value set by `set`.
    fn attr(name: &str, kind: AttributeType, set: impl FnOnce(&mut pb::AttributeProto)) -> pb::AttributeProto {
        let mut attr = pb::AttributeProto { name: name.to_string(), r#type: kind as i32, ..Default::default() };
        set(&mut attr);
        attr
    }

    fn int(name: &str, i: i64) -> pb::AttributeProto {
        attr(name, AttributeType::Int, |a| a.i = i)
    }

    fn float(name: &str, f: f32) -> pb::AttributeProto {
        attr(name, AttributeType::Float, |a| a.f = f)
    }

    fn string(name: &str, s: &str) -> pb::AttributeProto {
        attr(name, AttributeType::String, |a| a.s = s.as_bytes().to_vec())
    }

    fn ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
        attr(name, AttributeType::Ints, |a| a.ints = ints.to_vec())
    }

    fn floats(name: &str, floats: &[f32]) -> pb::AttributeProto {
        attr(name, AttributeType::Floats, |a| a.floats = floats.to_vec())
    }

    fn strings(name: &str, strings: &[&str]) -> pb::AttributeProto {
        attr(name, AttributeType::Strings, |a| a.strings = strings.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    /// A DOUBLE tensor attribute, as opset 3's `*_as_tensor` attributes are.
    fn doubles(name: &str, values: &[f64]) -> pb::AttributeProto {
        attr(name, AttributeType::Tensor, |a| {
            a.t = Some(pb::TensorProto {
                dims: vec![values.len() as i64],
                data_type: DataType::Double as i32,
                double_data: values.to_vec(),
                ..Default::default()
            })
        })
    }

    fn node(
        domain: &str,
        op_type: &str,
        input: &str,
        output: &str,
        attribute: Vec<pb::AttributeProto>,
    ) -> pb::NodeProto {
        pb::NodeProto {
            name: output.to_string(),
            op_type: op_type.to_string(),
            domain: domain.to_string(),
            input: vec![input.to_string()],
            output: vec![output.to_string()],
            attribute,
            ..Default::default()
        }
    }

    /// An ai.onnx.ml node.
    fn ml(op_type: &str, input: &str, output: &str, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
        node("ai.onnx.ml", op_type, input, output, attribute)
    }

    /// A model of `nodes` from input `X` `elem` `["N", features]` to output `Y`, with the
    /// default opset 13 and ai.onnx.ml opset `ml_opset`. `Y` has no type: a ZipMap's would be a
    /// sequence of maps, which tract's protobuf types cannot say.
    fn model(nodes: Vec<pb::NodeProto>, elem: DataType, features: i64, ml_opset: i64) -> pb::ModelProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value};
        let dim = |value| Dimension { value: Some(value), ..Default::default() };
        let input = pb::ValueInfoProto {
            name: "X".to_string(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: elem as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![dim(Value::DimParam("N".to_string())), dim(Value::DimValue(features))],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let output = pb::ValueInfoProto { name: "Y".to_string(), ..Default::default() };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![
                pb::OperatorSetIdProto { domain: String::new(), version: 13 },
                pb::OperatorSetIdProto { domain: "ai.onnx.ml".to_string(), version: ml_opset },
            ],
            graph: Some(pb::GraphProto {
                name: "ml".to_string(),
                node: nodes,
                input: vec![input],
                output: vec![output],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Loads `proto` with [`register`], types it with its symbolic batch, optimizes it, and runs
    /// it once per input.
    fn run(proto: &pb::ModelProto, inputs: &[Tensor]) -> TractResult<Vec<Tensor>> {
        Ok(run_all(proto, inputs)?.into_iter().map(|mut outputs| outputs.remove(0)).collect())
    }

    /// [`run`], giving every output.
    fn run_all(proto: &pb::ModelProto, inputs: &[Tensor]) -> TractResult<Vec<Vec<Tensor>>> {
        let mut onnx = tract_onnx::onnx();
        register(&mut onnx);
        let typed = onnx.model_for_proto_model(proto)?.into_typed()?;
        let batch = &typed.input_fact(0)?.shape[0];
        ensure!(batch.to_i64().is_err(), "the batch dimension is symbolic, got {batch}");
        let plan = typed.into_optimized()?.into_runnable()?;
        inputs
            .iter()
            .map(|x| Ok(plan.run(tvec!(x.clone().into_tvalue()))?.into_iter().map(|y| y.into_tensor()).collect()))
            .collect()
    }

    /// Two trees over features `f0`, `f1`, in the attributes of `TreeEnsembleRegressor`:
    ///
    /// - tree 0 (ids 0..=4): `f0 <= 0.5` (NaN → true) ? leaf 1 : (`f1 < 2` ? leaf 3 : leaf 4);
    /// - tree 7 (ids 0, 5, 9): `f1 >= 1` ? leaf 5 : leaf 9.
    ///
    /// `weights` are those of leaves 1, 3, 4 of tree 0 and 5, 9 of tree 7, all of target 0,
    /// listed in another order than the nodes.
    fn two_trees(weights: [f32; 5]) -> Vec<pb::AttributeProto> {
        vec![
            ints("nodes_treeids", &[0, 0, 0, 0, 0, 7, 7, 7]),
            ints("nodes_nodeids", &[0, 1, 2, 3, 4, 0, 5, 9]),
            ints("nodes_featureids", &[0, 0, 1, 0, 0, 1, 0, 0]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "BRANCH_LT", "LEAF", "LEAF", "BRANCH_GTE", "LEAF", "LEAF"]),
            floats("nodes_values", &[0.5, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
            ints("nodes_truenodeids", &[1, 0, 3, 0, 0, 5, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 4, 0, 0, 9, 0, 0]),
            ints("nodes_missing_value_tracks_true", &[1, 0, 0, 0, 0, 0, 0, 0]),
            ints("target_treeids", &[7, 7, 0, 0, 0]),
            ints("target_nodeids", &[9, 5, 4, 3, 1]),
            ints("target_ids", &[0, 0, 0, 0, 0]),
            floats("target_weights", &[weights[4], weights[3], weights[2], weights[1], weights[0]]),
        ]
    }

    /// The regressor of [`two_trees`] with `aggregate` and base value 0.5.
    fn regressor(aggregate: &str, weights: [f32; 5]) -> pb::ModelProto {
        let mut attributes = two_trees(weights);
        attributes.extend([
            int("n_targets", 1),
            string("aggregate_function", aggregate),
            floats("base_values", &[0.5]),
            string("post_transform", "NONE"),
        ]);
        model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 2, 1)
    }

    /// Batch 1 then batch 3. Leaves reached (tree 0, tree 7):
    /// `[0, 0]` → (1, 9); `[1, 1]` → (3, 5), `f1 >= 1` at equality; `[0.5, 2]` → (1, 5),
    /// `f0 <= 0.5` at equality; `[2, 2]` → (4, 5), `f1 < 2` false at equality.
    fn regressor_inputs() -> Vec<Tensor> {
        vec![tensor2(&[[0f32, 0.0]]), tensor2(&[[1f32, 1.0], [0.5, 2.0], [2.0, 2.0]])]
    }

    /// Leaf weights 1, 2, 3 (tree 0) and 10, 20 (tree 7).
    const WEIGHTS: [f32; 5] = [1.0, 2.0, 3.0, 10.0, 20.0];

    /// SUM adds the leaves of the two trees, plus the base value.
    #[test]
    fn tree_ensemble_regressor_sum() -> TractResult<()> {
        let y = run(&regressor("SUM", WEIGHTS), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[1f32 + 20.0 + 0.5]]));
        assert_eq!(y[1], tensor2(&[[2f32 + 10.0 + 0.5], [1.0 + 10.0 + 0.5], [3.0 + 10.0 + 0.5]]));
        Ok(())
    }

    /// AVERAGE divides the sum by the number of trees, then adds the base value.
    #[test]
    fn tree_ensemble_regressor_average() -> TractResult<()> {
        let y = run(&regressor("AVERAGE", WEIGHTS), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[(1f32 + 20.0) / 2.0 + 0.5]]));
        assert_eq!(
            y[1],
            tensor2(&[[(2f32 + 10.0) / 2.0 + 0.5], [(1.0 + 10.0) / 2.0 + 0.5], [(3.0 + 10.0) / 2.0 + 0.5]])
        );
        Ok(())
    }

    /// MIN of positive weights and MAX of negative ones (tract's own start from 0).
    #[test]
    fn tree_ensemble_regressor_min_max() -> TractResult<()> {
        let y = run(&regressor("MIN", WEIGHTS), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[1f32 + 0.5]]));
        assert_eq!(y[1], tensor2(&[[2f32 + 0.5], [1.0 + 0.5], [3.0 + 0.5]]));
        let y = run(&regressor("MAX", WEIGHTS.map(|w| -w)), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[-1f32 + 0.5]]));
        assert_eq!(y[1], tensor2(&[[-2f32 + 0.5], [-1.0 + 0.5], [-3.0 + 0.5]]));
        Ok(())
    }

    /// NaN follows `nodes_missing_value_tracks_true` (tree 0's root) and fails `>=` otherwise.
    #[test]
    fn tree_ensemble_regressor_nan() -> TractResult<()> {
        let y = run(&regressor("SUM", WEIGHTS), &[tensor2(&[[f32::NAN, 5.0], [0.0, f32::NAN]])])?;
        assert_eq!(y[0], tensor2(&[[1f32 + 10.0 + 0.5], [1.0 + 20.0 + 0.5]]));
        Ok(())
    }

    /// Three targets: target 0 as in [`regressor`], target 1 weighted by tree 7 only (leaf 5:
    /// 100, leaf 9: 200), target 2 by no tree; base values 0.5, 0, 0. AVERAGE divides by the
    /// number of trees (onnxruntime), not by the number of weights; MIN of no weight is 0.
    /// onnxruntime 1.32 gives the same values.
    #[test]
    fn tree_ensemble_regressor_sparse_targets() -> TractResult<()> {
        let proto = |aggregate: &str| {
            let mut attributes = two_trees(WEIGHTS);
            attributes.retain(|a| !a.name.starts_with("target_"));
            attributes.extend([
                ints("target_treeids", &[7, 7, 0, 0, 0, 7, 7]),
                ints("target_nodeids", &[9, 5, 4, 3, 1, 5, 9]),
                ints("target_ids", &[0, 0, 0, 0, 0, 1, 1]),
                floats("target_weights", &[20.0, 10.0, 3.0, 2.0, 1.0, 100.0, 200.0]),
                int("n_targets", 3),
                string("aggregate_function", aggregate),
                floats("base_values", &[0.5, 0.0, 0.0]),
            ]);
            model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 2, 1)
        };
        let y = run(&proto("AVERAGE"), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[11f32, 100.0, 0.0]]));
        assert_eq!(y[1], tensor2(&[[6.5f32, 50.0, 0.0], [6.0, 50.0, 0.0], [7.0, 50.0, 0.0]]));
        let y = run(&proto("MIN"), &regressor_inputs())?;
        assert_eq!(y[0], tensor2(&[[1.5f32, 200.0, 0.0]]));
        assert_eq!(y[1], tensor2(&[[2.5f32, 100.0, 0.0], [1.5, 100.0, 0.0], [3.5, 100.0, 0.0]]));
        Ok(())
    }

    /// One stump per mode on `x <mode> 1`, leaf weights `4^k` (true) and `2·4^k` (false) for
    /// tree `k`, so the sum says which way each went. NaN, tracked nowhere, goes false but for
    /// `BRANCH_NEQ` (`NaN != 1` holds). onnxruntime 1.32 gives the same four sums.
    #[test]
    fn tree_ensemble_regressor_modes() -> TractResult<()> {
        let modes = ["BRANCH_EQ", "BRANCH_NEQ", "BRANCH_GT", "BRANCH_LT", "BRANCH_GTE", "BRANCH_LEQ"];
        let (mut nodes, mut votes) = (Vec::new(), Vec::new());
        for (k, mode) in (0i64..).zip(modes) {
            nodes.extend([(k, 0, mode, 1, 2), (k, 1, "LEAF", 0, 0), (k, 2, "LEAF", 0, 0)]);
            let weight = 4f32.powi(k as i32);
            votes.extend([(k, 1, weight), (k, 2, 2.0 * weight)]);
        }
        let attributes = vec![
            ints("nodes_treeids", &nodes.iter().map(|n| n.0).collect::<Vec<_>>()),
            ints("nodes_nodeids", &nodes.iter().map(|n| n.1).collect::<Vec<_>>()),
            strings("nodes_modes", &nodes.iter().map(|n| n.2).collect::<Vec<_>>()),
            ints("nodes_truenodeids", &nodes.iter().map(|n| n.3).collect::<Vec<_>>()),
            ints("nodes_falsenodeids", &nodes.iter().map(|n| n.4).collect::<Vec<_>>()),
            ints("nodes_featureids", &vec![0; nodes.len()]),
            floats("nodes_values", &vec![1.0; nodes.len()]),
            ints("target_treeids", &votes.iter().map(|v| v.0).collect::<Vec<_>>()),
            ints("target_nodeids", &votes.iter().map(|v| v.1).collect::<Vec<_>>()),
            ints("target_ids", &vec![0; votes.len()]),
            floats("target_weights", &votes.iter().map(|v| v.2).collect::<Vec<_>>()),
            int("n_targets", 1),
        ];
        let proto = model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 1, 1);
        let y = run(&proto, &[tensor2(&[[1f32]]), tensor2(&[[0f32], [2.0], [f32::NAN]])])?;
        // x = 1: EQ 1, NEQ 8, GT 32, LT 128, GTE 256, LEQ 1024.
        assert_eq!(y[0], tensor2(&[[1449f32]]));
        // x = 0: 2 + 4 + 32 + 64 + 512 + 1024; x = 2: 2 + 4 + 16 + 128 + 256 + 2048;
        // NaN: 2 + 4 + 32 + 128 + 512 + 2048.
        assert_eq!(y[1], tensor2(&[[1638f32], [2454.0], [2726.0]]));
        Ok(())
    }

    /// Opset 3: two targets, double thresholds, weights and base values `*_as_tensor`. A
    /// double threshold 0.1 is below the f32 0.1, which `f0 <= 0.1` must then refuse.
    #[test]
    fn tree_ensemble_regressor_as_tensor_two_targets() -> TractResult<()> {
        let attributes = vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[0, 0, 0]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            doubles("nodes_values_as_tensor", &[0.1, 0.0, 0.0]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("target_treeids", &[0, 0, 0]),
            ints("target_nodeids", &[1, 1, 2]),
            ints("target_ids", &[0, 1, 1]),
            doubles("target_weights_as_tensor", &[4.0, 5.0, 6.0]),
            doubles("base_values_as_tensor", &[0.25, -0.25]),
            int("n_targets", 2),
        ];
        let proto = model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 1, 3);
        let y = run(&proto, &[tensor2(&[[0.0f32]]), tensor2(&[[0.1f32], [0.099_999_99], [1.0]])])?;
        // Leaf 2 has no weight of target 0: its sum is the base value alone.
        assert_eq!(y[0], tensor2(&[[4.25f32, 4.75]]));
        assert_eq!(y[1], tensor2(&[[0.25f32, 5.75], [4.25, 4.75], [0.25, 5.75]]));
        Ok(())
    }

    /// A double input is read as f32, and the ensemble's input width is checked.
    #[test]
    fn tree_ensemble_regressor_double_input_and_width() -> TractResult<()> {
        let mut attributes = two_trees(WEIGHTS);
        attributes.push(int("n_targets", 1));
        let proto = model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes.clone())], DataType::Double, 2, 3);
        let y = run(&proto, &[tensor2(&[[0f64, 0.0]])])?;
        assert_eq!(y[0], tensor2(&[[21f32]]));
        let narrow = model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 1, 3);
        let err = run(&narrow, &[]).expect_err("one feature for trees that read two");
        assert!(format!("{err:?}").contains("features"), "{err:?}");
        Ok(())
    }

    /// Malformed ensembles are refused at load, naming what is wrong; none panics.
    #[test]
    fn tree_ensemble_regressor_refuses_malformed_trees() {
        let with = |name: &str, replacement: pb::AttributeProto| {
            let mut attributes = two_trees(WEIGHTS);
            attributes.push(int("n_targets", 1));
            attributes.retain(|a| a.name != name);
            attributes.push(replacement);
            model(vec![ml("TreeEnsembleRegressor", "X", "Y", attributes)], DataType::Float, 2, 1)
        };
        for (proto, says) in [
            (with("nodes_truenodeids", ints("nodes_truenodeids", &[1, 0, 8, 0, 0, 5, 0, 0])), "no child node 8"),
            (with("nodes_truenodeids", ints("nodes_truenodeids", &[1, 0, 2, 0, 0, 5, 0, 0])), "no child node 2"),
            // A cycle (node 2 → root), and a node with two parents.
            (with("nodes_falsenodeids", ints("nodes_falsenodeids", &[2, 0, 0, 0, 0, 9, 0, 0])), "reached twice"),
            (with("nodes_falsenodeids", ints("nodes_falsenodeids", &[2, 0, 1, 0, 0, 9, 0, 0])), "reached twice"),
            (with("target_ids", ints("target_ids", &[0, 0, 1, 0, 0])), "below n_targets"),
            (with("target_nodeids", ints("target_nodeids", &[9, 5, 4, 3, 2])), "is no leaf"),
            (with("nodes_values", floats("nodes_values", &[0.5])), "8 items, got 1"),
            (with("nodes_modes", strings("nodes_modes", &["BRANCH_LEQ"; 8])), "is no leaf"),
            (with("post_transform", string("post_transform", "LOGISTIC")), "NONE"),
            (with("aggregate_function", string("aggregate_function", "MEDIAN")), "MEDIAN"),
        ] {
            let mut onnx = tract_onnx::onnx();
            register(&mut onnx);
            let err = onnx.model_for_proto_model(&proto).expect_err(says);
            assert!(format!("{err:?}").contains(says), "{says}: {err:?}");
        }
    }

    /// Two stumps over `f0`, in the attributes of `TreeEnsembleClassifier`: tree 0 `f0 <= 0`,
    /// tree 1 `f0 <= 1`, each with leaves 1 (true) and 2 (false). `weights` are
    /// `(tree, leaf, class, weight)`.
    fn stumps(weights: &[(i64, i64, i64, f32)]) -> Vec<pb::AttributeProto> {
        vec![
            ints("nodes_treeids", &[0, 0, 0, 1, 1, 1]),
            ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2]),
            ints("nodes_featureids", &[0; 6]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]),
            floats("nodes_values", &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
            ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0]),
            ints("class_treeids", &weights.iter().map(|w| w.0).collect::<Vec<_>>()),
            ints("class_nodeids", &weights.iter().map(|w| w.1).collect::<Vec<_>>()),
            ints("class_ids", &weights.iter().map(|w| w.2).collect::<Vec<_>>()),
            floats("class_weights", &weights.iter().map(|w| w.3).collect::<Vec<_>>()),
        ]
    }

    /// A `TreeEnsembleClassifier` of [`stumps`] `weights`, `classlabels_int64s` `labels`,
    /// `post_transform` and `base_values` (none if empty), from `X` to `Y` (the labels) and `Z`.
    fn classifier(weights: &[(i64, i64, i64, f32)], labels: &[i64], post: &str, base: &[f32]) -> pb::ModelProto {
        let mut attributes = stumps(weights);
        attributes.extend([ints("classlabels_int64s", labels), string("post_transform", post)]);
        if !base.is_empty() {
            attributes.push(floats("base_values", base));
        }
        classifier_model(attributes)
    }

    /// A model of one `TreeEnsembleClassifier` with `attributes`, from `X` `[N, 1]` to `Y`, `Z`.
    fn classifier_model(attributes: Vec<pb::AttributeProto>) -> pb::ModelProto {
        let mut node = ml("TreeEnsembleClassifier", "X", "Y", attributes);
        node.output.push("Z".to_string());
        let mut proto = model(vec![node], DataType::Float, 1, 1);
        if let Some(graph) = &mut proto.graph {
            graph.output.push(pb::ValueInfoProto { name: "Z".to_string(), ..Default::default() });
        }
        proto
    }

    /// Runs a [`classifier`] on batch 1 `[[-1]]` and batch 3 `[[-1], [0.5], [2]]`, whose rows
    /// reach leaves (1, 1), (2, 1) and (2, 2) of [`stumps`]. Checks that batch 1 gives the first
    /// row of batch 3, and returns batch 3's `Y` and `Z`.
    fn classify(proto: &pb::ModelProto) -> TractResult<(Tensor, Tensor)> {
        let outputs = run_all(proto, &[tensor2(&[[-1f32]]), tensor2(&[[-1f32], [0.5], [2.0]])])?;
        let ([one_y, one_z], [y, z]) = (&outputs[0][..], &outputs[1][..]) else {
            bail!("two outputs expected, got {outputs:?}")
        };
        ensure!(y.shape() == [3] && z.shape()[0] == 3, "batch 3 gave {y:?} and {z:?}");
        ensure!(one_y == &y.slice(0, 0, 1)? && one_z == &z.slice(0, 0, 1)?, "batch 1 gave {one_y:?}, {one_z:?}");
        Ok((y.clone(), z.clone()))
    }

    /// `Z` as expected, to tract's sigmoid and softmax precision.
    fn assert_z(z: &Tensor, expected: Tensor) -> TractResult<()> {
        z.close_enough(&expected, Approximation::Approximate).with_context(|| format!("{z:?} is not {expected:?}"))
    }

    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    fn softmax<const C: usize>(row: [f32; C]) -> [f32; C] {
        let sum: f32 = row.iter().map(|x| x.exp()).sum();
        row.map(|x| x.exp() / sum)
    }

    /// skl2onnx's binary random forest: class 0's weights only, the probability of class 1,
    /// all `>= 0`, no base value. `P` is `0.125 + 0.25`, `0.375 + 0.25`, `0.375 + 0.125`: the
    /// label is class 1 (7) above 0.5 only, decided on `P` whatever the transform. `Z` is
    /// `[1 - P, P]` for NONE and SOFTMAX (onnxruntime does not apply it), `[σ(-P), σ(P)]` for
    /// LOGISTIC.
    #[test]
    fn tree_ensemble_classifier_binary_forest() -> TractResult<()> {
        let weights = [(0, 1, 0, 0.125), (0, 2, 0, 0.375), (1, 1, 0, 0.25), (1, 2, 0, 0.125)];
        let p = [0.375f32, 0.625, 0.5];
        for post in ["NONE", "SOFTMAX", "LOGISTIC"] {
            let (y, z) = classify(&classifier(&weights, &[3, 7], post, &[]))?;
            assert_eq!(y, tensor1(&[3i64, 7, 3]), "{post}");
            if post == "LOGISTIC" {
                assert_z(&z, tensor2(&p.map(|p| [sigmoid(-p), sigmoid(p)])))?;
            } else {
                assert_eq!(z, tensor2(&[[0.625f32, 0.375], [0.375, 0.625], [0.5, 0.5]]), "{post}");
            }
        }
        Ok(())
    }

    /// skl2onnx's binary gradient boosting: class 0's weights of both signs and one base value,
    /// `P = S0 + 0.25` = `-1.25`, `0.25`, `1.75`; the label is class 1 above 0. `Z` is
    /// `[σ(-P), σ(P)]` for LOGISTIC, `[-P, P]` for NONE and SOFTMAX. With two base values,
    /// `Z = T([S0 + b0, 0])`.
    #[test]
    fn tree_ensemble_classifier_binary_boosting() -> TractResult<()> {
        let weights = [(0, 1, 0, -1.0), (0, 2, 0, 0.5), (1, 1, 0, -0.5), (1, 2, 0, 1.0)];
        let p = [-1.25f32, 0.25, 1.75];
        for post in ["NONE", "SOFTMAX", "LOGISTIC"] {
            let (y, z) = classify(&classifier(&weights, &[3, 7], post, &[0.25]))?;
            assert_eq!(y, tensor1(&[3i64, 7, 7]), "{post}");
            if post == "LOGISTIC" {
                assert_z(&z, tensor2(&p.map(|p| [sigmoid(-p), sigmoid(p)])))?;
            } else {
                assert_eq!(z, tensor2(&p.map(|p| [-p, p])), "{post}");
            }
        }
        let (y, z) = classify(&classifier(&weights, &[3, 7], "LOGISTIC", &[0.25, 9.0]))?;
        assert_eq!(y, tensor1(&[3i64, 7, 7]));
        assert_z(&z, tensor2(&p.map(|p| [sigmoid(p), 0.5])))?;
        Ok(())
    }

    /// Weights of both classes: two columns `S0`, `S1` = `[1.25, -0.25]`, `[0.75, 0.25]`,
    /// `[-0.25, 1.25]`, transformed; the label is 1 when `S1 > 0`, else 0, not the class labels
    /// (onnxruntime's). With two base values, `c1 = S0 + b1`, `c0 = -c1`.
    #[test]
    fn tree_ensemble_classifier_binary_two_columns() -> TractResult<()> {
        let weights = [
            (0, 1, 0, 0.75),
            (0, 1, 1, 0.25),
            (0, 2, 0, 0.25),
            (0, 2, 1, 0.75),
            (1, 1, 0, 0.5),
            (1, 1, 1, -0.5),
            (1, 2, 0, -0.5),
            (1, 2, 1, 0.5),
        ];
        let s = [[1.25f32, -0.25], [0.75, 0.25], [-0.25, 1.25]];
        for (post, z_of) in [
            ("NONE", (|s| s) as fn([f32; 2]) -> [f32; 2]),
            ("SOFTMAX", softmax),
            ("LOGISTIC", |s: [f32; 2]| s.map(sigmoid)),
        ] {
            let (y, z) = classify(&classifier(&weights, &[3, 7], post, &[]))?;
            assert_eq!(y, tensor1(&[0i64, 1, 1]), "{post}");
            assert_z(&z, tensor2(&s.map(z_of)))?;
        }
        let (y, z) = classify(&classifier(&weights, &[3, 7], "NONE", &[0.5, 0.125]))?;
        assert_eq!(y, tensor1(&[1i64, 1, 0]));
        assert_eq!(z, tensor2(&[[-1.375f32, 1.375], [-0.875, 0.875], [0.125, -0.125]]));
        Ok(())
    }

    /// Three classes, weights of each in every leaf, base values `[0.5, -0.5, 0]`: scores
    /// `[1.5, 1.5, 0]` (a tie: the first wins), `[0.5, 1.5, 1]`, `[0.5, -0.5, 3]`. The expected
    /// values of every classifier test are onnxruntime 1.32's.
    #[test]
    fn tree_ensemble_classifier_three_classes() -> TractResult<()> {
        let mut weights = Vec::new();
        for (tree, leaf, scores) in
            [(0, 1, [1.0, 0.0, 0.0]), (0, 2, [0.0, 0.0, 1.0]), (1, 1, [0.0, 2.0, 0.0]), (1, 2, [0.0, 0.0, 2.0])]
        {
            weights.extend((0..).zip(scores).map(|(class, w)| (tree, leaf, class, w)));
        }
        let s = [[1.5f32, 1.5, 0.0], [0.5, 1.5, 1.0], [0.5, -0.5, 3.0]];
        for (post, z_of) in [
            ("NONE", (|s| s) as fn([f32; 3]) -> [f32; 3]),
            ("SOFTMAX", softmax),
            ("LOGISTIC", |s: [f32; 3]| s.map(sigmoid)),
        ] {
            let (y, z) = classify(&classifier(&weights, &[4, 5, 6], post, &[0.5, -0.5, 0.0]))?;
            assert_eq!(y, tensor1(&[4i64, 5, 6]), "{post}");
            assert_z(&z, tensor2(&s.map(z_of)))?;
        }
        Ok(())
    }

    /// The label is that of the highest score before the transform: LOGISTIC makes 20 and 30
    /// both 1. And it is among the classes the row scored: leaf 1 of tree 0 has no weight of
    /// class 2, so `[-1, -2, (0)]` is class 0's; `[-3, -2, -1]`, `[-3, 0, -1]` score them all.
    #[test]
    fn tree_ensemble_classifier_labels_of_scores() -> TractResult<()> {
        let weights = [(0, 1, 0, 20.0), (0, 1, 1, 30.0), (0, 2, 2, 1.0), (1, 1, 2, 0.0), (1, 2, 2, 0.0)];
        let (y, z) = classify(&classifier(&weights, &[4, 5, 6], "LOGISTIC", &[]))?;
        assert_eq!(y, tensor1(&[5i64, 6, 6]));
        assert_z(&z, tensor2(&[[1f32, 1.0, 0.5], [0.5, 0.5, sigmoid(1.0)], [0.5, 0.5, sigmoid(1.0)]]))?;
        let weights = [
            (0, 1, 0, -1.0),
            (0, 1, 1, -2.0),
            (0, 2, 0, -3.0),
            (0, 2, 1, -2.0),
            (0, 2, 2, -1.0),
            (1, 1, 0, 0.0),
            (1, 1, 1, 0.0),
            (1, 2, 1, 2.0),
        ];
        let (y, z) = classify(&classifier(&weights, &[4, 5, 6], "NONE", &[]))?;
        assert_eq!(y, tensor1(&[4i64, 6, 5]));
        assert_eq!(z, tensor2(&[[-1f32, -2.0, 0.0], [-3.0, -2.0, -1.0], [-3.0, 0.0, -1.0]]));
        Ok(())
    }

    /// What maas cannot serve as onnxruntime does, or onnxruntime refuses too (the base value
    /// counts), is refused at load, naming why; none panics.
    #[test]
    fn tree_ensemble_classifier_refuses() {
        let binary = [(0, 1, 0, 0.5), (0, 2, 0, 0.5), (1, 1, 0, 0.5), (1, 2, 0, 0.5)];
        let with = |replacements: Vec<pb::AttributeProto>| {
            let mut attributes = stumps(&binary);
            attributes.extend([ints("classlabels_int64s", &[0, 1]), string("post_transform", "NONE")]);
            attributes.retain(|a| replacements.iter().all(|r| r.name != a.name));
            attributes.extend(replacements);
            classifier_model(attributes)
        };
        let three = |base: &[f32]| with(vec![ints("classlabels_int64s", &[0, 1, 2]), floats("base_values", base)]);
        for (proto, says) in [
            (with(vec![strings("classlabels_strings", &["no", "yes"])]), "exactly one of"),
            (
                {
                    let mut proto = with(vec![strings("classlabels_strings", &["no", "yes"])]);
                    if let Some(graph) = &mut proto.graph {
                        graph.node[0].attribute.retain(|a| a.name != "classlabels_int64s");
                    }
                    proto
                },
                "string class labels",
            ),
            (with(vec![ints("classlabels_int64s", &[0])]), "at least two classes"),
            (with(vec![string("post_transform", "PROBIT")]), "NONE, LOGISTIC or SOFTMAX, got PROBIT"),
            (with(vec![floats("base_values", &[0.0, 0.0, 0.0])]), "at most 2 values"),
            (three(&[0.0, 0.0]), "a value per class (3) or none"),
            (with(vec![ints("class_ids", &[0, 2, 0, 0])]), "class ids below the class count (2), got 2"),
            // Class 1 weighted in a leaf of tree 0 only.
            (with(vec![ints("class_ids", &[1, 0, 0, 0])]), "class 1 has weights in some leaves only"),
            (with(vec![ints("class_nodeids", &[1, 0, 1, 2])]), "is no leaf"),
        ] {
            let mut onnx = tract_onnx::onnx();
            register(&mut onnx);
            let err = onnx.model_for_proto_model(&proto).expect_err(says);
            assert!(format!("{err:?}").contains(says), "{says}: {err:?}");
        }
    }

    /// ZipMap after a Softmax serves the probabilities: `exp([0, ln 2, ln 3]) / 6`.
    #[test]
    fn zip_map_passes_softmax_probabilities() -> TractResult<()> {
        let nodes = vec![
            node("", "Softmax", "X", "probabilities", vec![int("axis", 1)]),
            ml("ZipMap", "probabilities", "Y", vec![ints("classlabels_int64s", &[0, 1, 2])]),
        ];
        let proto = model(nodes, DataType::Float, 3, 1);
        let (ln2, ln3) = (2f32.ln(), 3f32.ln());
        let y = run(
            &proto,
            &[tensor2(&[[0f32, ln2, ln3]]), tensor2(&[[0f32, 0.0, 0.0], [ln3, ln2, 0.0], [1.0, 1.0, 1.0]])],
        )?;
        let third = 1f32 / 3.0;
        y[0].close_enough(&tensor2(&[[1f32 / 6.0, 2.0 / 6.0, 3.0 / 6.0]]), Approximation::Close)?;
        y[1].close_enough(
            &tensor2(&[[third, third, third], [3.0 / 6.0, 2.0 / 6.0, 1.0 / 6.0], [third, third, third]]),
            Approximation::Close,
        )?;
        Ok(())
    }

    /// ZipMap's string labels count as its int labels do; a count that is not the input's
    /// width fails typing.
    #[test]
    fn zip_map_checks_its_classes() -> TractResult<()> {
        let labels = strings("classlabels_strings", &["a", "b"]);
        let proto = model(vec![ml("ZipMap", "X", "Y", vec![labels.clone()])], DataType::Float, 2, 1);
        let y = run(&proto, &[tensor2(&[[0.25f32, 0.75]])])?;
        assert_eq!(y[0], tensor2(&[[0.25f32, 0.75]]));
        let wide = model(vec![ml("ZipMap", "X", "Y", vec![labels])], DataType::Float, 3, 1);
        assert!(run(&wide, &[]).is_err(), "three probabilities for two labels");
        let neither = model(vec![ml("ZipMap", "X", "Y", vec![])], DataType::Float, 2, 1);
        assert!(run(&neither, &[]).is_err(), "no labels");
        Ok(())
    }

    /// Binarizer with threshold 0.5: strictly above gives 1, in the input's type.
    #[test]
    fn binarizer_thresholds() -> TractResult<()> {
        let binarizer = || vec![ml("Binarizer", "X", "Y", vec![float("threshold", 0.5)])];
        let y = run(
            &model(binarizer(), DataType::Float, 3, 1),
            &[tensor2(&[[0.5f32, 0.6, -1.0]]), tensor2(&[[0f32, 1.0, 0.5], [2.0, 0.499, f32::NAN], [-0.6, 0.51, 7.0]])],
        )?;
        assert_eq!(y[0], tensor2(&[[0f32, 1.0, 0.0]]));
        assert_eq!(y[1], tensor2(&[[0f32, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]));
        let y = run(&model(binarizer(), DataType::Int64, 3, 1), &[tensor2(&[[0i64, 1, -3]])])?;
        assert_eq!(y[0], tensor2(&[[0i64, 1, 0]]));
        let y = run(&model(binarizer(), DataType::Double, 3, 1), &[tensor2(&[[0.5f64, 0.500_000_1, 3.0]])])?;
        assert_eq!(y[0], tensor2(&[[0f64, 1.0, 1.0]]));
        // The default threshold is 0.
        let default = model(vec![ml("Binarizer", "X", "Y", vec![])], DataType::Float, 3, 1);
        let y = run(&default, &[tensor2(&[[0f32, 1e-9, -1e-9]])])?;
        assert_eq!(y[0], tensor2(&[[0f32, 1.0, 0.0]]));
        Ok(())
    }
}
