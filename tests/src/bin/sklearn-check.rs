//! Serves scikit-learn models converted by skl2onnx with its defaults, and compares maas's
//! answers over HTTP with onnxruntime's.
//!
//! ```text
//! sklearn-check --python PATH
//! ```
//!
//! `tests/python/make_sklearn.py`, run with the given interpreter (`.ci/run` makes a virtual
//! environment with pinned scikit-learn, skl2onnx and onnxruntime for it), trains eight models
//! on seeded data and writes each as ONNX beside onnxruntime's outputs on 20 test rows: a
//! logistic regression, random forests and gradient boosting (binary and three-class
//! classifiers, regressors), and a `Binarizer` pipeline. Their graphs use `ZipMap`, `TreeEnsembleClassifier`,
//! `TreeEnsembleRegressor`, `LinearClassifier` and `Binarizer` (`ai.onnx.ml`). Each model is
//! uploaded to a server on loopback, a `builtin:tensor` function deployed on it and invoked
//! with the rows; labels must be equal, probabilities and regressions within 1e-4 (relative,
//! with an absolute floor of 1e-5). A classifier's model view must say how its ZipMap output
//! is served. Prints `N passed, M failed`; the exit code is non-zero when one failed.

use std::path::Path;
use std::process::{Command, ExitCode};

use maas_tests::TestServer;
use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let python = match (args.next().as_deref(), args.next()) {
        (Some("--python"), Some(path)) => path,
        _ => {
            eprintln!("usage: sklearn-check --python PATH");
            return ExitCode::from(2);
        }
    };
    match run(&python) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sklearn-check: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(python: &str) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/make_sklearn.py");
    let status = Command::new(python).arg(script).arg(dir.path()).status()?;
    anyhow::ensure!(status.success(), "{script} failed: {status}");
    let mut cases: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    anyhow::ensure!(!cases.is_empty(), "{script} wrote no model");

    let server = TestServer::start();
    let admin = server.admin();
    anyhow::ensure!(admin.post_json("/v1/tenants", &json!({ "name": "acme" })).status == 201, "create tenant");
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let name = case.file_stem().and_then(|s| s.to_str()).unwrap_or_default().replace('_', "-");
        match check(&admin, case, &name) {
            Ok(()) => {
                passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e:#}");
            }
        }
    }
    println!("scikit-learn models through maas against onnxruntime: {passed} passed, {failed} failed");
    server.stop();
    Ok(failed == 0)
}

/// Uploads, deploys and invokes one model, and compares every output with onnxruntime's.
fn check(admin: &maas_tests::Client, case: &Path, name: &str) -> anyhow::Result<()> {
    let record: Value = serde_json::from_slice(&std::fs::read(case)?)?;
    let model = std::fs::read(case.with_extension("onnx"))?;
    let r = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}"), &model);
    anyhow::ensure!(r.status == 201, "upload: {} {}", r.status, String::from_utf8_lossy(&r.body));
    let view = r.json();
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": name } });
    let r = admin.put_json(&format!("/v1/tenants/acme/functions/{name}"), &manifest);
    anyhow::ensure!(r.status == 201, "deploy: {} {}", r.status, String::from_utf8_lossy(&r.body));

    let rows = record["rows"].as_array().ok_or_else(|| anyhow::anyhow!("no rows"))?;
    let width = rows.first().and_then(Value::as_array).map_or(0, Vec::len);
    let data: Vec<f64> =
        rows.iter().flat_map(|r| r.as_array().into_iter().flatten()).filter_map(Value::as_f64).collect();
    let input = record["input"].as_str().unwrap_or("X");
    let request =
        json!({ "inputs": [{ "name": input, "shape": [rows.len(), width], "datatype": "FP32", "data": data }] });
    let r = admin.post_json(&format!("/fn/acme/{name}"), &request);
    anyhow::ensure!(r.status == 200, "invoke: {} {}", r.status, String::from_utf8_lossy(&r.body));
    let answer = r.json();

    let expected = record["outputs"].as_object().ok_or_else(|| anyhow::anyhow!("no outputs"))?;
    for (output, want) in expected {
        let got = answer["outputs"]
            .as_array()
            .and_then(|outputs| outputs.iter().find(|o| o["name"] == output.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no output {output:?} in {answer}"))?;
        let want: Vec<f64> = flatten(want);
        let got_data: Vec<f64> = flatten(&got["data"]);
        anyhow::ensure!(
            got_data.len() == want.len(),
            "{output}: {} values, onnxruntime has {}",
            got_data.len(),
            want.len()
        );
        let exact = got["datatype"].as_str().is_some_and(|d| d.starts_with("INT"));
        for (ix, (g, w)) in got_data.iter().zip(&want).enumerate() {
            let close = if exact { g == w } else { (g - w).abs() <= 1e-5_f64.max(1e-4 * w.abs()) };
            anyhow::ensure!(close, "{output}[{ix}]: maas {g}, onnxruntime {w}");
        }
    }
    if record.get("classes").is_some() {
        let notes = view["notes"].to_string();
        anyhow::ensure!(notes.contains("ZipMap"), "a classifier's view does not say how its ZipMap is served: {view}");
    }
    Ok(())
}

/// Every number of a nested JSON array, in order.
fn flatten(value: &Value) -> Vec<f64> {
    match value {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        Value::Number(n) => n.as_f64().into_iter().collect(),
        Value::Bool(b) => vec![f64::from(u8::from(*b))],
        _ => Vec::new(),
    }
}
