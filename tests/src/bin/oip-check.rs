//! Runs the stock Python `tritonclient[http]` against a real maas server.
//!
//! ```text
//! oip-check [--python PATH]
//! ```
//!
//! Starts a server on loopback over a temporary data directory, creates a tenant and an
//! invoker key, uploads the seed MLP (two versions) and the INT64 model, computes their
//! outputs with tract, writes them to a fixture file and runs `tests/python/test_tritonclient.py`
//! with the given interpreter (default `python3`; `.ci/run` makes a virtual environment with
//! `tritonclient[http]` for it). The exit code is the script's.

use std::process::{Command, ExitCode};

use maas_tests::{TestServer, models};
use serde_json::{Value, json};
use tract_onnx::prelude::*;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut python = "python3".to_string();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--python", Some(path)) => python = path,
            _ => {
                eprintln!("usage: oip-check [--python PATH]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&python) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("oip-check: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(python: &str) -> anyhow::Result<bool> {
    let server = TestServer::start();
    let admin = server.admin();
    admin.post_json("/v1/tenants", &json!({ "name": "acme" }));
    let mut cases = Vec::new();
    for (seed, version) in [(1, "1"), (2, "2")] {
        let model = models::mlp(seed);
        anyhow::ensure!(admin.put_bytes("/v1/tenants/acme/models/mlp", &model).status == 201, "upload mlp");
        let input = models::seeded_input(seed + 10, &[1, 100]);
        let out = models::run_tract(&model, vec![tensor(&input, &[1, 100])?])?;
        cases.push(json!({
            "model": "mlp",
            "version": version,
            "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 100], "data": input }],
            "expected": { "output": expected(&out[0])? },
        }));
    }
    let int64 = models::int64_model();
    anyhow::ensure!(admin.put_bytes("/v1/tenants/acme/models/tokens", &int64).status == 201, "upload tokens");
    let tokens: Vec<i64> = vec![1, -2, 3, 1 << 40, 5, 6, 7, 8];
    let out = models::run_tract(&int64, vec![tensor(&tokens, &[2, 4])?])?;
    cases.push(json!({
        "model": "tokens",
        "inputs": [{ "name": "tokens", "datatype": "INT64", "shape": [2, 4], "data": tokens }],
        "expected": { "sum": expected(&out[0])?, "scaled": expected(&out[1])? },
    }));
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" })).json()["key"].clone();

    let dir = tempfile::tempdir()?;
    let fixture = dir.path().join("fixture.json");
    let url = server.addr().to_string();
    std::fs::write(&fixture, json!({ "url": url, "key": key, "cases": cases }).to_string())?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/test_tritonclient.py");
    let status = Command::new(python).arg(script).arg(&fixture).status()?;
    server.stop();
    Ok(status.success())
}

fn tensor<T: Datum + Copy>(data: &[T], shape: &[usize]) -> anyhow::Result<Tensor> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, data.to_vec())?.into_tensor())
}

/// A tract output as the fixture's `{"datatype", "shape", "data"}`.
fn expected(t: &Tensor) -> anyhow::Result<Value> {
    let plain = t.try_as_plain_ram()?;
    let (datatype, data) = match t.datum_type() {
        DatumType::F32 => ("FP32", json!(plain.as_slice::<f32>()?)),
        DatumType::I64 => ("INT64", json!(plain.as_slice::<i64>()?)),
        other => anyhow::bail!("no fixture datatype for {other:?}"),
    };
    Ok(json!({ "datatype": datatype, "shape": t.shape(), "data": data }))
}
