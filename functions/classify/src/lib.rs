//! An example custom function: a classifier with pre- and post-processing around the model.
//!
//! `POST {"features": [numbers]}` → `200 {"predictions": [{"label", "index", "score"}]}`, the
//! `top_k` best classes, best first.
//!
//! 1. Pre-processing: the features become a `[1, n]` tensor of the model's first input (its
//!    datatype, which must be `FP16`, `FP32` or `FP64`; its declared shape `[-1, n]` or `[1, n]`,
//!    `n` checked when fixed).
//! 2. Inference on the model the manifest aliases `model`.
//! 3. Post-processing of the first output: softmax when config `softmax` is `"true"` (by default
//!    the model is taken to output probabilities), the `top_k` highest scores (config, default 3),
//!    named by config `labels` (comma-separated, by class index; the index itself when missing).
//!
//! Manifest: `{"models": {"model": "iris"}, "config": {"labels": "setosa,versicolor,virginica",
//! "top_k": "2", "softmax": "false"}}`.

use maas_guest::{Datatype, F16, Handler, Request, Response, Tensor, TensorInfo};
use serde::{Deserialize, Serialize};

/// The manifest alias of the classifier model.
const MODEL: &str = "model";
/// Predictions returned when config `top_k` is not set.
const DEFAULT_TOP_K: usize = 3;

/// The classify function.
pub struct Classify;

impl Handler for Classify {
    fn handle(req: Request) -> Response {
        if req.method != "POST" {
            return Response::error(
                405,
                "invalid_request",
                format!("method {} is not allowed: POST {{\"features\": [numbers]}}", req.method),
            )
            .with_header("allow", "POST");
        }
        classify(&req.body).unwrap_or_else(|response| response)
    }
}

maas_guest::export!(Classify);

#[derive(Deserialize)]
struct ClassifyRequest {
    features: Vec<f64>,
}

#[derive(Serialize)]
struct ClassifyResponse {
    predictions: Vec<Prediction>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Prediction {
    label: String,
    index: usize,
    score: f32,
}

fn invalid_input(message: impl Into<String>) -> Response {
    Response::error(400, "invalid_input", message)
}

fn internal(message: impl Into<String>) -> Response {
    Response::error(500, "internal", message)
}

fn classify(body: &[u8]) -> Result<Response, Response> {
    let request: ClassifyRequest = serde_json::from_slice(body)
        .map_err(|err| invalid_input(format!("expected {{\"features\": [numbers]}}: {err}")))?;
    let top_k = top_k()?;

    let signature = maas_guest::describe(MODEL)?;
    let input = signature.inputs.first().ok_or_else(|| internal("the model has no inputs"))?;
    let tensor = input_tensor(input, &request.features)?;

    let outputs = maas_guest::infer(MODEL, &[tensor])?;
    let output = outputs.first().ok_or_else(|| internal("the model returned no outputs"))?;
    let mut scores = output
        .to_f64_lossy()
        .ok_or_else(|| internal(format!("the model's output {:?} has a partial element", output.name)))?;
    if maas_guest::config("softmax").as_deref() == Some("true") {
        softmax(&mut scores);
    }
    let labels = maas_guest::config("labels").unwrap_or_default();
    let predictions = top_predictions(&scores, top_k, &labels);
    Ok(Response::json(200, &ClassifyResponse { predictions }))
}

/// Config `top_k`, or [`DEFAULT_TOP_K`].
fn top_k() -> Result<usize, Response> {
    match maas_guest::config("top_k") {
        None => Ok(DEFAULT_TOP_K),
        Some(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&k| k > 0)
            .ok_or_else(|| internal(format!("config top_k must be a positive integer, not {value:?}"))),
    }
}

/// The `[1, n]` tensor of `features` for the model input `input`.
fn input_tensor(input: &TensorInfo, features: &[f64]) -> Result<Tensor, Response> {
    let n = features.len();
    if n == 0 {
        return Err(invalid_input("\"features\" must not be empty"));
    }
    let [batch, width] = input.shape[..] else {
        return Err(unsupported(input));
    };
    if batch != -1 && batch != 1 {
        return Err(unsupported(input));
    }
    if width != -1 && usize::try_from(width) != Ok(n) {
        return Err(invalid_input(format!("the model's input {:?} takes {width} features, got {n}", input.name)));
    }
    let shape = [1, n as u64];
    let name = input.name.clone();
    Ok(match input.datatype {
        Datatype::Fp32 => Tensor::from_slice(name, shape, &features.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        Datatype::Fp64 => Tensor::from_slice(name, shape, features),
        Datatype::Fp16 => {
            Tensor::from_slice(name, shape, &features.iter().map(|&x| F16::from_f32(x as f32)).collect::<Vec<_>>())
        }
        _ => return Err(unsupported(input)),
    })
}

fn unsupported(input: &TensorInfo) -> Response {
    internal(format!(
        "the model's input {:?} is {} {:?}; classify needs a floating-point [1, n] or [-1, n] input",
        input.name, input.datatype, input.shape
    ))
}

/// Replaces `scores` by their softmax (shifted by the maximum, so large scores do not overflow).
fn softmax(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        sum += *score;
    }
    for score in scores.iter_mut() {
        *score /= sum;
    }
}

/// The `k` highest `scores`, best first (ties by index), labelled from the comma-separated
/// `labels`.
fn top_predictions(scores: &[f64], k: usize, labels: &str) -> Vec<Prediction> {
    let labels: Vec<&str> = labels.split(',').map(str::trim).collect();
    let mut ranked: Vec<usize> = (0..scores.len()).collect();
    ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    ranked
        .into_iter()
        .take(k)
        .map(|index| Prediction {
            label: labels
                .get(index)
                .filter(|label| !label.is_empty())
                .map_or_else(|| index.to_string(), |label| (*label).to_owned()),
            index,
            score: scores[index] as f32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_sorted_and_labelled() {
        let predictions = top_predictions(&[0.1, 0.6, 0.3], 2, "a, b");
        assert_eq!(
            predictions,
            vec![
                Prediction { label: "b".into(), index: 1, score: 0.6 },
                Prediction { label: "2".into(), index: 2, score: 0.3 },
            ]
        );
        assert_eq!(top_predictions(&[0.5, 0.5], 5, "").len(), 2);
        assert_eq!(top_predictions(&[0.5, 0.5], 1, "")[0].index, 0);
    }

    #[test]
    fn softmax_normalizes() {
        let mut scores = [1000.0, 1000.0];
        softmax(&mut scores);
        assert_eq!(scores, [0.5, 0.5]);
        let mut scores = [0.0, (2.0f64).ln()];
        softmax(&mut scores);
        assert!((scores[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn input_shapes() {
        let info = |shape: Vec<i64>| TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape };
        let tensor = input_tensor(&info(vec![-1, 4]), &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(tensor.shape, vec![1, 4]);
        assert_eq!(tensor.to_f32(), Some(vec![1.0, 2.0, 3.0, 4.0]));
        assert!(input_tensor(&info(vec![1, -1]), &[1.0]).is_ok());
        assert_eq!(input_tensor(&info(vec![-1, 4]), &[1.0]).unwrap_err().status, 400);
        assert_eq!(input_tensor(&info(vec![-1, 4]), &[]).unwrap_err().status, 400);
        assert_eq!(input_tensor(&info(vec![2, 4]), &[1.0; 4]).unwrap_err().status, 500);
        assert_eq!(input_tensor(&info(vec![4]), &[1.0; 4]).unwrap_err().status, 500);
    }
}
