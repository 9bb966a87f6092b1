//! Real architectures against onnxruntime: the light CNNs the `onnx` Python package ships
//! (`onnx/backend/test/data/light/`: the ImageNet networks, weights made at load), on a
//! 1×3×224×224 FP32 input.
//!
//! For each model it prints, side by side in one run:
//! - in process: a tract run (maas's [`LoadedModel`]) against onnxruntime, p50 of 20 runs, with
//!   one thread and with one per core;
//! - over HTTP (OIP, binary tensor data): maas's `builtin:tensor` against the FastAPI +
//!   onnxruntime peer, at 1 and 16 clients, with one thread per run and with one per core
//!   (`MAAS_INFERENCE_THREADS`, `ORT_THREADS`), and the cores each server used (its CPU time
//!   over the wall time).
//!
//! Needs the venv of `tests/python/setup-fastapi-peer.sh` (onnxruntime and onnx, pinned); says
//! so and stops without it. `cargo bench -p maas-tests --bench cnn`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maas_runtime::inference::{Datatype, LoadedModel, RawTensor, set_threads};
use maas_tests::bench::{ServerProcess, percentile, serve_if_child};
use maas_tests::{Client, models};
use serde_json::{Value, json};

/// The models: a name and the file under `onnx/backend/test/data/light/`.
const MODELS: &[(&str, &str)] = &[
    ("squeezenet", "light_squeezenet.onnx"),
    ("shufflenet", "light_shufflenet.onnx"),
    ("resnet50", "light_resnet50.onnx"),
];

const SHAPE: [usize; 4] = [1, 3, 224, 224];
const IN_PROCESS_RUNS: usize = 20;
const LOAD_TIME: Duration = Duration::from_secs(4);

/// Latency and throughput of one server at one client count, and the cores it used.
struct Load {
    rps: f64,
    p50: f64,
    cores: f64,
    errors: usize,
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>6.1} req/s  p50 {:>7.1} ms  {:.2} cores", self.rps, self.p50 / 1e3, self.cores)?;
        if self.errors > 0 {
            write!(f, "  {} errors", self.errors)?;
        }
        Ok(())
    }
}

/// An OIP request with binary tensor data: `input`, FP32, [`SHAPE`].
struct Request {
    body: Vec<u8>,
    header_length: String,
}

impl Request {
    fn new(input: &str, data: &[f32]) -> Self {
        let (body, header_length) = models::oip_binary_body(input, &SHAPE, data);
        Self { body, header_length: header_length.to_string() }
    }

    /// Sends it to `path`; returns the status and the first output's values.
    fn send(&self, client: &Client, path: &str) -> (u16, Vec<f64>) {
        let headers = [("inference-header-content-length", self.header_length.as_str())];
        let r = client.send_with_headers("POST", path, &headers, Some((&self.body, "application/octet-stream")));
        if r.status != 200 {
            return (r.status, Vec::new());
        }
        // maas answers a binary request in binary; the peer in JSON.
        if let Some(length) = r.header("inference-header-content-length").and_then(|l| l.parse::<usize>().ok()) {
            let raw = &r.body[length..];
            return (r.status, raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect());
        }
        let data = r.json()["outputs"][0]["data"].as_array().map(|d| d.iter().filter_map(Value::as_f64).collect());
        (r.status, data.unwrap_or_default())
    }
}

/// `clients` threads sending `request` to `path` back to back for [`LOAD_TIME`].
fn load(server: &ServerProcess, path: &str, clients: usize, request: &Request) -> Load {
    let (started, cpu) = (Instant::now(), server.cpu_seconds());
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let client = server.admin();
                s.spawn(move || {
                    let (mut latencies, mut errors) = (Vec::new(), 0);
                    while started.elapsed() < LOAD_TIME {
                        let t = Instant::now();
                        let (status, _) = request.send(&client, path);
                        latencies.push(t.elapsed().as_secs_f64() * 1e6);
                        errors += usize::from(status != 200);
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let cores = (server.cpu_seconds() - cpu) / wall;
    let errors = results.iter().map(|(_, e)| e).sum();
    let mut all: Vec<f64> = results.into_iter().flat_map(|(l, _)| l).collect();
    Load { rps: all.len() as f64 / wall, p50: percentile(&mut all, 0.5), cores, errors }
}

/// onnxruntime in process (`tests/python/ort_time.py`): p50 in µs and the first output.
fn ort_in_process(python: &Path, model: &Path, threads: usize, input: &[u8]) -> (f64, Vec<f64>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/ort_time.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(IN_PROCESS_RUNS.to_string())
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running ort_time.py");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ort_time.py failed");
    let figures: Value = serde_json::from_slice(&out.stdout).unwrap();
    let output = figures["output"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
    (figures["p50"].as_f64().unwrap(), output)
}

/// tract in this process, as maas loads and runs the model: p50 in µs.
fn tract_in_process(bytes: &[u8], input: &str, data: &[u8], threads: usize) -> f64 {
    set_threads(threads);
    let model = LoadedModel::load(bytes, u64::MAX).unwrap();
    let tensor =
        || RawTensor { name: input.into(), datatype: Datatype::Fp32, shape: SHAPE.to_vec(), data: data.to_vec() };
    for _ in 0..3 {
        model.run(vec![tensor()]).unwrap();
    }
    let mut times: Vec<f64> = (0..IN_PROCESS_RUNS)
        .map(|_| {
            let t = tensor();
            let started = Instant::now();
            std::hint::black_box(model.run(vec![t]).unwrap());
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    set_threads(1);
    percentile(&mut times, 0.5)
}

/// maas with one thread setting: per model, its loads at 1 and 16 clients and its answer.
struct MaasRun {
    threads: usize,
    loads: Vec<[Load; 2]>,
    outputs: Vec<Vec<f64>>,
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "outputs of different sizes");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn main() {
    if serve_if_child() {
        return;
    }
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fastapi-venv/bin/python"));
    let light = python.exists().then(|| {
        let out = Command::new(&python)
            .args(["-c", "import onnx, os; print(os.path.dirname(onnx.__file__))"])
            .output()
            .expect("running the venv's python");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("backend/test/data/light")
    });
    let Some(light) = light.filter(|dir| dir.is_dir()) else {
        println!("cnn bench: the venv with onnx and onnxruntime is not set up; run tests/python/setup-fastapi-peer.sh");
        return;
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = models::seeded_input(1, &SHAPE);
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let threads = [1, cores];

    // maas, once per thread setting, every model on it.
    let mut maas: Vec<MaasRun> = Vec::new();
    let mut inputs = Vec::new();
    for &t in &threads {
        let server = ServerProcess::with_inference_threads(t);
        let admin = server.admin();
        let quota = json!({ "rate_per_second": 1e9, "max_concurrency": 1024 });
        assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "bench", "quota": quota })).status, 201);
        let (mut loads, mut outputs) = (Vec::new(), Vec::new());
        for (name, file) in MODELS {
            let model = std::fs::read(light.join(file)).unwrap();
            let r = admin.put_bytes(&format!("/v1/tenants/bench/models/{name}"), &model);
            assert_eq!(r.status, 201, "{name}: {}", String::from_utf8_lossy(&r.body));
            let input = r.json()["inputs"][0]["name"].as_str().unwrap().to_string();
            let manifest = json!({ "component": "builtin:tensor", "models": { "model": name },
                                   "limits": { "max_concurrency": 64 } });
            let r = admin.put_json(&format!("/v1/tenants/bench/functions/{name}"), &manifest);
            assert_eq!(r.status, 201, "{name}: {}", String::from_utf8_lossy(&r.body));
            let request = Request::new(&input, &data);
            let path = format!("/fn/bench/{name}");
            let (status, output) = request.send(&admin, &path);
            assert_eq!(status, 200, "{name}");
            outputs.push(output);
            loads.push([1, 16].map(|c| load(&server, &path, c, &request)));
            if inputs.len() < MODELS.len() {
                inputs.push(input);
            }
        }
        maas.push(MaasRun { threads: t, loads, outputs });
    }

    println!("light CNNs of the onnx package, 1×3×224×224 FP32, {cores} cores");
    for (i, (name, file)) in MODELS.iter().enumerate() {
        let path = light.join(file);
        let model = std::fs::read(&path).unwrap();
        println!("{name}:");
        for &t in &threads {
            let tract = tract_in_process(&model, &inputs[i], &bytes, t);
            let (ort, ort_output) = ort_in_process(&python, &path, t, &bytes);
            let run = maas.iter().find(|run| run.threads == t).unwrap();
            let diff = max_abs_diff(&run.outputs[i], &ort_output);
            println!(
                "  in process, {t} thread(s): tract {:>7.1} ms, onnxruntime {:>7.1} ms: ×{:.2} (maas's answer over HTTP \
                 against onnxruntime's: max |Δ| {diff:.1e})",
                tract / 1e3,
                ort / 1e3,
                tract / ort
            );
        }
        for &t in &threads {
            let thread_env = t.to_string();
            let peer = ServerProcess::fastapi_with(&python, &path, &[("ORT_THREADS", &thread_env)]);
            let request = Request::new(&inputs[i], &data);
            let (status, _) = request.send(&peer.admin(), "/v2/models/m/infer");
            assert_eq!(status, 200, "the FastAPI peer on {name}");
            let run = maas.iter().find(|run| run.threads == t).unwrap();
            for (j, c) in [1, 16].into_iter().enumerate() {
                let ours = &run.loads[i][j];
                let theirs = load(&peer, "/v2/models/m/infer", c, &request);
                println!(
                    "  HTTP, {t} thread(s) per run, {c:>2} clients: maas {ours} | FastAPI + onnxruntime {theirs}: \
                     maas p50 ×{:.2}, throughput ×{:.2}",
                    ours.p50 / theirs.p50,
                    ours.rps / theirs.rps
                );
            }
        }
    }
}
