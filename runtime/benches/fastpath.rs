//! The fast path in process, without HTTP: raw tract on the seed MLP, then one invocation of
//! `builtin:tensor` (a fresh instance from the pool, the guest decoding OIP JSON, `infer`,
//! the guest encoding the answer), the same with the binary tensor data extension (no
//! numbers in JSON), a fresh instance alone (store + instantiation, no call),
//! and a call that does no inference (the metadata `GET`: instance + `describe` + a small
//! JSON answer).
//!
//! Then the parts of a cold start: deserializing a precompiled component, linking it into an
//! `InstancePre`, loading and optimizing the model, and its first run (which builds the plan
//! for the input's shape).
//!
//! Run: `cargo bench -p maas-runtime --bench fastpath` (figures are medians and p99 over
//! 5000 calls on one thread, after 500 warm-up calls; 50 rounds for the cold-start parts).
//!
//! To compare builds of a guest (say `builtin:tensor` before and after a change) on the same
//! machine at the same moment: `MAAS_FASTPATH_AB=before.wasm,after.wasm cargo bench -p
//! maas-runtime --bench fastpath` compiles each component into the same host and runs the JSON
//! invocation in alternating blocks of 500 calls, 12 blocks each, then prints each build's
//! median block p50 instead of the figures above.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use maas_fixtures as models;
use maas_runtime::host::{BoundModel, Capabilities, HandlerPre, Host, HostConfig, HostState, Limits, Request};
use maas_runtime::inference::{Datatype, LoadedModel, RawTensor};
use maas_runtime::pool::Handoff;

const CALLS: usize = 5000;

fn time(f: impl FnMut()) -> (f64, f64) {
    time_n(500, CALLS, f)
}

/// p50 and p99 in µs of `calls` runs of `f` after `warmup` unmeasured ones.
fn time_n(warmup: usize, calls: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warmup {
        f();
    }
    let mut us: Vec<f64> = (0..calls)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    (us[calls / 2], us[calls * 99 / 100])
}

fn main() -> anyhow::Result<()> {
    let model = Arc::new(LoadedModel::load(&models::mlp(42), u64::MAX)?);
    let input = models::seeded_input(1, &[1, 100]);
    let raw = RawTensor {
        name: "input".into(),
        datatype: Datatype::Fp32,
        shape: vec![1, 100],
        data: input.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let (tract_p50, tract_p99) = time(|| {
        std::hint::black_box(model.run(vec![raw.clone()]).unwrap());
    });

    let host = Host::new(&HostConfig::default())?;
    let component = host.builtin(maas_types::Builtin::Tensor);
    let pre = host.prepare(&component).map_err(anyhow::Error::msg)?;
    let bound = BoundModel { label: "mlp@1".into(), digest: "sha256:x".into(), model: model.clone() };
    let caps = Arc::new(Capabilities {
        models: HashMap::from([("model".into(), bound)]),
        config: Default::default(),
        batching: None,
    });
    let limits = Limits { memory_bytes: 64 << 20, timeout_ms: 2000 };
    let body =
        serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": input }] })
            .to_string()
            .into_bytes();
    let request = |method: &str, body: Vec<u8>| Request {
        method: method.into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    };
    // The same input with the binary tensor data extension: a short JSON header, then the
    // 400 bytes of the tensor; the output comes back binary too. No numbers in JSON.
    let (binary_body, header_length) = maas_fixtures::oip_binary_body("input", &[1, 100], &input);
    let binary_request = || Request {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("inference-header-content-length".into(), header_length.to_string()),
        ],
        body: binary_body.clone(),
    };
    if let Ok(paths) = std::env::var("MAAS_FASTPATH_AB") {
        return compare_builds(&host, &paths, |pre| {
            let (response, _) = host.invoke_blocking(pre, caps.clone(), limits, request("POST", body.clone())).unwrap();
            assert_eq!(response.status, 200);
        });
    }
    let (infer_p50, infer_p99) = time(|| {
        let (response, _) = host.invoke_blocking(&pre, caps.clone(), limits, request("POST", body.clone())).unwrap();
        assert_eq!(response.status, 200);
    });
    let (binary_p50, binary_p99) = time(|| {
        let (response, _) = host.invoke_blocking(&pre, caps.clone(), limits, binary_request()).unwrap();
        assert_eq!(response.status, 200);
    });
    // A fresh instance alone: a new store, instantiated from the pool, dropped unused.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let (fresh_p50, fresh_p99) = time(|| {
        let instance = runtime.block_on(host.instance(&pre, caps.clone(), limits, Handoff::blocking()));
        std::hint::black_box(instance.unwrap());
    });
    let (meta_p50, meta_p99) = time(|| {
        let (response, _) = host.invoke_blocking(&pre, caps.clone(), limits, request("GET", Vec::new())).unwrap();
        assert_eq!(response.status, 200);
    });

    // The same call handed to another thread each time, as the server hands it from an async
    // worker to the blocking pool: what the hop costs.
    let (job_tx, job_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (hop_p50, hop_p99) = std::thread::scope(|s| {
        let (host, pre, caps, body, request) = (&host, &pre, &caps, &body, &request);
        s.spawn(move || {
            while job_rx.recv().is_ok() {
                let (response, _) =
                    host.invoke_blocking(pre, caps.clone(), limits, request("POST", body.clone())).unwrap();
                assert_eq!(response.status, 200);
                done_tx.send(()).unwrap();
            }
        });
        let figures = time(|| {
            job_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        drop(job_tx);
        figures
    });

    // The parts of a cold start.
    let artifact = component.serialize()?;
    let (deserialize_us, _) = time_n(3, 50, || {
        std::hint::black_box(host.load_artifact(&artifact).unwrap());
    });
    let (link_us, _) = time_n(3, 50, || {
        std::hint::black_box(host.prepare(&component).unwrap());
    });
    let mlp = models::mlp(42);
    let (model_us, _) = time_n(3, 50, || {
        std::hint::black_box(LoadedModel::load(&mlp, u64::MAX).unwrap());
    });
    let mut first_runs: Vec<f64> = (0..50)
        .map(|_| {
            let fresh = LoadedModel::load(&mlp, u64::MAX).unwrap();
            let started = Instant::now();
            std::hint::black_box(fresh.run(vec![raw.clone()]).unwrap());
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    first_runs.sort_by(f64::total_cmp);
    let first_run_us = first_runs[25];

    println!("maas fast path in process (seed MLP 100→64→10, one thread)");
    println!("raw tract run:                          p50 {tract_p50:8.1} µs   p99 {tract_p99:8.1} µs");
    println!("invocation, builtin:tensor + infer:     p50 {infer_p50:8.1} µs   p99 {infer_p99:8.1} µs");
    println!("  platform overhead over raw tract:     p50 {:8.1} µs", infer_p50 - tract_p50);
    println!("the same, binary tensor data (no JSON): p50 {binary_p50:8.1} µs   p99 {binary_p99:8.1} µs");
    println!("  platform overhead over raw tract:     p50 {:8.1} µs", binary_p50 - tract_p50);
    println!("the same (JSON), handed to another thread: p50 {hop_p50:8.1} µs   p99 {hop_p99:8.1} µs");
    println!("fresh instance alone (store + pool):    p50 {fresh_p50:8.1} µs   p99 {fresh_p99:8.1} µs");
    println!("invocation without inference (GET):     p50 {meta_p50:8.1} µs   p99 {meta_p99:8.1} µs");
    println!(
        "cold start parts (p50): deserialize component {deserialize_us:.1} µs, link {link_us:.1} µs, \
              load + optimize model {model_us:.1} µs, first run {first_run_us:.1} µs"
    );
    Ok(())
}

/// Runs `call` on each of the comma-separated component files in `paths`, in alternating
/// blocks so that every build sees the same machine, and prints each one's median block p50.
fn compare_builds(host: &Host, paths: &str, call: impl Fn(&HandlerPre<HostState>)) -> anyhow::Result<()> {
    let builds = paths
        .split(',')
        .map(|path| {
            let wasm = std::fs::read(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            let (component, _) = host.compile(&wasm)?;
            Ok((path, host.prepare(&component).map_err(anyhow::Error::msg)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut blocks = vec![Vec::new(); builds.len()];
    for _ in 0..12 {
        for ((_, pre), p50s) in builds.iter().zip(&mut blocks) {
            p50s.push(time_n(100, 500, || call(pre)).0);
        }
    }
    for ((path, _), mut p50s) in builds.iter().zip(blocks) {
        p50s.sort_by(f64::total_cmp);
        let (low, median, high) = (p50s[0], p50s[p50s.len() / 2], p50s[p50s.len() - 1]);
        println!("{path}: JSON invocation p50 {median:.1} µs (median of 12 blocks of 500; blocks {low:.1}–{high:.1})");
    }
    Ok(())
}
