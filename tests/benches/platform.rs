//! Platform figures for the seed MLP, printed in one run on one machine:
//! cold start (first call after deploy, and after scale to zero, each function on its own
//! model so every cold start loads one), warm latency over HTTP on loopback against raw tract
//! in process, throughput at 1/16/64 clients (and the same for the ceiling of maas's own stack:
//! the model behind a minimal hyper + tract server), dynamic batching on a compute-bound model, and
//! the server's RSS at baseline, with 100 warm functions, after every function scaled to
//! zero, and with 1,000 idle functions; and what the metrics cost: the series a warm
//! invocation records (against the hand-written counters before them) and one scrape.
//!
//! Run: `cargo bench -p maas-tests --bench platform` (the server runs in a child process, this
//! binary again, on a temporary sled directory; figures are medians unless marked p99).
//!
//! Profiling the warm path: `MAAS_BENCH_WARM_ONLY=8 perf record -D 4000 -g <bench binary>`
//! makes only warm calls, for 8 seconds, after the setup (which `-D` skips).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use maas_tests::bench::{ServerProcess, percentile, serve_if_child};
use maas_tests::{Client, models};
use serde_json::{Value, json};
use tract_onnx::prelude::*;

/// Warm functions for the RSS figures (all on the seed MLP).
const FUNCTIONS: usize = 100;
/// Functions for the cold-start figures, each on its own copy of the MLP.
const COLD: usize = 10;
const WARM_REQUESTS: usize = 3000;

/// One call; returns (client wall µs, server x-maas-duration-us, cold?).
fn call(client: &Client, path: &str, body: &Value) -> (f64, f64, bool) {
    let (wall, server, parts) = call_timed(client, path, body);
    (wall, server, parts.is_some())
}

/// One call to each cold function `c0`…: client-side and server-side µs, and each call's
/// `Server-Timing` parts.
fn cold_starts(admin: &Client, body: &Value) -> (Vec<f64>, Vec<f64>, Vec<[f64; 3]>) {
    let (mut wall, mut server, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..COLD {
        let (w, s, p) = call_timed(admin, &format!("/fn/bench/c{i}"), body);
        parts.push(p.expect("a cold start"));
        wall.push(w);
        server.push(s);
    }
    (wall, server, parts)
}

/// One call; returns (client wall µs, server x-maas-duration-us, and for a cold start the
/// parts its `server-timing` names: component, models, first run, in µs).
fn call_timed(client: &Client, path: &str, body: &Value) -> (f64, f64, Option<[f64; 3]>) {
    let started = Instant::now();
    let r = client.post_json(path, body);
    let wall = started.elapsed().as_secs_f64() * 1e6;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let server = r.header("x-maas-duration-us").unwrap().parse().unwrap();
    let parts = (r.header("x-maas-cold-start") == Some("true")).then(|| {
        let timing = r.header("server-timing").expect("server-timing on a cold start");
        let dur = |name: &str| -> f64 {
            let part = timing.split(", ").find(|p| p.starts_with(name)).expect("part");
            part.rsplit("dur=").next().unwrap().parse::<f64>().unwrap() * 1e3
        };
        [dur("component;"), dur("models;"), dur("run;")]
    });
    (wall, server, parts)
}

/// Medians of each cold-start part.
fn median_parts(parts: &[[f64; 3]]) -> [f64; 3] {
    std::array::from_fn(|i| percentile(&mut parts.iter().map(|p| p[i]).collect::<Vec<_>>(), 0.5))
}

/// Waits until `/metrics` reports no warm function, then lets the freed memory settle.
fn wait_for_scale_to_zero(admin: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while maas_tests::metrics::sum(&String::from_utf8_lossy(&admin.get("/metrics").body), "maas_warm_functions", &[])
        > 0.0
    {
        assert!(Instant::now() < deadline, "functions did not scale to zero");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// What [`load`] measured.
struct Load {
    clients: usize,
    /// Requests per second.
    rps: f64,
    /// Client-side latency, µs.
    p50: f64,
    p99: f64,
    /// Answers other than 200.
    errors: usize,
    /// Mean `x-maas-batch-size` (1 for calls without batching).
    mean_batch: f64,
}

/// `clients` threads calling `path` back to back for `duration`.
fn load(server: &ServerProcess, path: &str, clients: usize, duration: Duration, body: &Value) -> Load {
    let started = Instant::now();
    let results: Vec<(Vec<f64>, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let client = server.admin();
                s.spawn(move || {
                    let (mut latencies, mut errors, mut batch_rows) = (Vec::new(), 0, 0);
                    while started.elapsed() < duration {
                        let t = Instant::now();
                        let r = client.post_json(path, body);
                        latencies.push(t.elapsed().as_secs_f64() * 1e6);
                        errors += usize::from(r.status != 200);
                        batch_rows += r.header("x-maas-batch-size").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
                    }
                    (latencies, errors, batch_rows)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors = results.iter().map(|(_, e, _)| e).sum();
    let rows: usize = results.iter().map(|(.., r)| r).sum();
    let mut all: Vec<f64> = results.into_iter().flat_map(|(l, ..)| l).collect();
    let rps = all.len() as f64 / elapsed;
    let mean_batch = rows as f64 / all.len() as f64;
    Load { clients, rps, p50: percentile(&mut all, 0.5), p99: percentile(&mut all, 0.99), errors, mean_batch }
}

/// Nanoseconds per invocation of what a warm invocation records in the metrics (the request's
/// route and status, both queue waits, one inference, the outcome and duration, the energy),
/// and of the four atomic counters the hand-written `/metrics` kept before; on `threads`
/// threads at once recording the same function's series (the contended case), wall time per
/// invocation over all of them.
fn metrics_cost(threads: usize) -> (f64, f64) {
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};

    use maas_runtime::metrics::{Metrics, Outcome, Queue};
    const N: u32 = 100_000;
    let metrics = Metrics::default();
    let (series, model) = (metrics.function("bench", "f0"), metrics.model("bench", "mlp@1"));
    let micros = |us: u64| black_box(Duration::from_micros(us));
    let timed = |work: &(dyn Fn() + Sync)| {
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| (0..N).for_each(|_| work()));
            }
        });
        started.elapsed().as_secs_f64() * 1e9 / (f64::from(N) * threads as f64)
    };
    let after = timed(&|| {
        metrics.request("/fn/:tenant/:function", black_box(200), micros(300));
        series.waited(Queue::Admission, micros(2));
        series.waited(Queue::Pool, micros(5));
        model.inferred(micros(6));
        series.invoked(Outcome::Ok, micros(290));
        series.energy(black_box(1e-6));
    });
    let counters: [AtomicU64; 4] = Default::default();
    let before = timed(&|| {
        for counter in &counters {
            counter.fetch_add(black_box(1), Ordering::Relaxed);
        }
    });
    (after, before)
}

/// What a slow model costs a small one beside it.
struct Beside {
    /// The slow model's p50 alone, milliseconds.
    slow_alone_ms: f64,
    /// The MLP at one client, alone.
    mlp_alone: Load,
    /// The MLP at one client while two clients call the slow model.
    mlp_beside: Load,
    /// Slow calls made meanwhile.
    slow_calls: usize,
}

impl std::fmt::Display for Beside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Beside { slow_alone_ms, mlp_alone: alone, mlp_beside: beside, slow_calls } = self;
        write!(
            f,
            "a slow model (100→256×40→10, 128 rows, p50 {slow_alone_ms:.1} ms alone) called by 2 clients beside the \
             MLP at 1 client: MLP p50 {:.1} → {:.1} µs (×{:.2}), p99 {:.1} → {:.1} µs (×{:.2}); {slow_calls} slow calls meanwhile",
            alone.p50,
            beside.p50,
            beside.p50 / alone.p50,
            alone.p99,
            beside.p99,
            beside.p99 / alone.p99
        )
    }
}

/// A slow model beside the MLP (`/fn/bench/load`): the MLP's latency at one client alone,
/// then while two clients call a model that takes tens of milliseconds (40 dense layers of 256
/// on 128 rows, binary tensor data): its runs go to the pool and must not hold the MLP's.
fn slow_beside(server: &ServerProcess, admin: &Client, body: &Value) -> Beside {
    // Deep rather than wide, like a real network: many nodes of a fraction of a millisecond.
    let sizes: Vec<usize> = std::iter::once(100).chain(std::iter::repeat_n(256, 40)).chain([10]).collect();
    let slow_model = models::dense(11, &sizes);
    assert_eq!(admin.put_bytes("/v1/tenants/bench/models/slow", &slow_model).status, 201);
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "slow" },
                           "limits": { "max_concurrency": 64 }, "scale": { "idle_timeout_s": 1 } });
    assert_eq!(admin.put_json("/v1/tenants/bench/functions/slow", &manifest).status, 201);
    let (slow_body, slow_header) =
        maas_tests::oip_binary_body("input", &[128, 100], &models::seeded_input(5, &[128, 100]));
    let slow_header = slow_header.to_string();
    let call_slow = |client: &Client| {
        let started = Instant::now();
        let headers = [("inference-header-content-length", slow_header.as_str())];
        let r = client.send_with_headers(
            "POST",
            "/fn/bench/slow",
            &headers,
            Some((&slow_body, "application/octet-stream")),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        started.elapsed().as_secs_f64() * 1e6
    };
    let mut slow_alone: Vec<f64> = (0..20).map(|_| call_slow(admin)).collect();
    call(admin, "/fn/bench/load", body);
    let mlp_alone = load(server, "/fn/bench/load", 1, Duration::from_secs(3), body);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mlp_beside, slow_calls) = std::thread::scope(|s| {
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let (client, stop, call_slow) = (server.admin(), &stop, &call_slow);
                s.spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        call_slow(&client);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let beside = load(server, "/fn/bench/load", 1, Duration::from_secs(3), body);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (beside, slow.into_iter().map(|h| h.join().unwrap()).sum::<usize>())
    });

    Beside { slow_alone_ms: percentile(&mut slow_alone, 0.5) / 1e3, mlp_alone, mlp_beside, slow_calls }
}

fn main() {
    if serve_if_child() {
        return;
    }
    let server = ServerProcess::start();
    // Let the allocator and runtime settle before the baseline.
    std::thread::sleep(Duration::from_millis(500));
    let rss_baseline = server.rss();
    let admin = server.admin();
    // The bench measures the platform, not the default per-tenant admission limits.
    let quota = json!({ "rate_per_second": 1e9, "max_concurrency": 1024, "max_functions": 1000, "max_models": 100 });
    admin.post_json("/v1/tenants", &json!({ "name": "bench", "quota": quota }));
    let mlp = models::mlp(42);
    let r = admin.put_bytes("/v1/tenants/bench/models/mlp", &mlp);
    assert_eq!(r.status, 201);
    let input = models::seeded_input(1, &[1, 100]);
    let body = json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": input }] });

    // Raw tract in process: the floor the platform adds to.
    let plan = tract_onnx::onnx()
        .model_for_read(&mut mlp.as_slice())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let tensor = tract_ndarray::Array2::from_shape_vec((1, 100), input.clone()).unwrap().into_tensor();
    let mut raw: Vec<f64> = (0..WARM_REQUESTS)
        .map(|_| {
            let t = tensor.clone();
            let started = Instant::now();
            let out = plan.run(tvec![t.into_tvalue()]).unwrap();
            std::hint::black_box(out);
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();

    // Cold start after deploy: each function on its own model, so each loads one.
    for i in 0..COLD {
        let r = admin.put_bytes(&format!("/v1/tenants/bench/models/mlp{i}"), &models::mlp(100 + i as u64));
        assert_eq!(r.status, 201);
        let manifest = json!({ "component": "builtin:tensor", "models": { "model": format!("mlp{i}") },
                               "scale": { "idle_timeout_s": 1 } });
        assert_eq!(admin.put_json(&format!("/v1/tenants/bench/functions/c{i}"), &manifest).status, 201);
    }
    for i in 0..FUNCTIONS {
        let manifest =
            json!({ "component": "builtin:tensor", "models": { "model": "mlp" }, "scale": { "idle_timeout_s": 1 } });
        assert_eq!(admin.put_json(&format!("/v1/tenants/bench/functions/f{i}"), &manifest).status, 201);
    }
    // Everything deployed, nothing run yet: the registry holds its records, nothing is warm.
    std::thread::sleep(Duration::from_millis(500));
    let rss_deployed = server.rss();
    let (mut cold_deploy_wall, mut cold_deploy_server, cold_deploy_parts) = cold_starts(&admin, &body);

    // For profiling the fast path (`perf record` on this binary): only warm calls, for the
    // given number of seconds.
    if let Some(secs) = std::env::var("MAAS_BENCH_WARM_ONLY").ok().and_then(|s| s.parse::<u64>().ok()) {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut n = 0u64;
        while Instant::now() < until {
            call(&admin, "/fn/bench/f0", &body);
            n += 1;
        }
        println!("{n} warm calls in {secs} s");
        return;
    }

    // For tuning the pool against the async workers: only the slow model beside the MLP.
    if std::env::var("MAAS_BENCH_ONLY").as_deref() == Ok("beside") {
        let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" },
                               "limits": { "max_concurrency": 64 } });
        assert_eq!(admin.put_json("/v1/tenants/bench/functions/load", &manifest).status, 201);
        println!("{}", slow_beside(&server, &admin, &body));
        return;
    }

    // Warm latency (sequential, one keep-alive connection).
    let mut warm_wall = Vec::new();
    let mut warm_server = Vec::new();
    for _ in 0..WARM_REQUESTS {
        let (wall, server_us, _) = call(&admin, "/fn/bench/f0", &body);
        warm_wall.push(wall);
        warm_server.push(server_us);
    }
    // The same with the binary tensor data extension: no numbers in JSON either way.
    let (binary_body, header_length) = maas_tests::oip_binary_body("input", &[1, 100], &input);
    let header_length = header_length.to_string();
    let headers = [("inference-header-content-length", header_length.as_str())];
    let mut binary_wall = Vec::new();
    let mut binary_server = Vec::new();
    for _ in 0..WARM_REQUESTS {
        let started = Instant::now();
        let r =
            admin.send_with_headers("POST", "/fn/bench/f0", &headers, Some((&binary_body, "application/octet-stream")));
        binary_wall.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        binary_server.push(r.header("x-maas-duration-us").unwrap().parse::<f64>().unwrap());
    }
    for i in 0..FUNCTIONS {
        call(&admin, &format!("/fn/bench/f{i}"), &body);
    }
    let rss_warm = server.rss();

    // Scale to zero, then cold start after it.
    wait_for_scale_to_zero(&admin);
    let rss_zero = server.rss();
    let (mut cold_zero_wall, mut cold_zero_server, cold_zero_parts) = cold_starts(&admin, &body);

    // Throughput under concurrency: `c` clients, each on its own keep-alive connection, on one
    // warm function allowed to run them all at once.
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" },
                           "limits": { "max_concurrency": 64 }, "scale": { "idle_timeout_s": 1 } });
    assert_eq!(admin.put_json("/v1/tenants/bench/functions/load", &manifest).status, 201);
    call(&admin, "/fn/bench/load", &body);
    // The server's RSS is sampled while 64 clients load it; its peak is the figure.
    let mut rss_at_64 = None;
    let throughput: Vec<Load> = [1, 16, 64]
        .into_iter()
        .map(|c| {
            if c < 64 {
                return load(&server, "/fn/bench/load", c, Duration::from_secs(3), &body);
            }
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                let sampler = s.spawn(|| {
                    let mut peak = server.rss();
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        let now = server.rss();
                        if now.total > peak.total {
                            peak = now;
                        }
                    }
                    peak
                });
                let loaded = load(&server, "/fn/bench/load", c, Duration::from_secs(3), &body);
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                rss_at_64 = Some(sampler.join().unwrap());
                loaded
            })
        })
        .collect();
    let rss_at_64 = rss_at_64.expect("sampled during the 64-client run");
    // The ceiling of maas's own stack, the same model and OIP JSON behind a minimal hyper +
    // tract server (`maas_tests::bench::ceiling`), loaded the same way right after; it must
    // answer what maas answers.
    let ceiling_server = ServerProcess::ceiling();
    let from_maas = admin.post_json("/fn/bench/load", &body).json()["outputs"][0]["data"].clone();
    let from_ceiling = ceiling_server.admin().post_json("/", &body).json()["outputs"][0]["data"].clone();
    assert_eq!(from_maas, from_ceiling, "the ceiling server answers what maas answers");
    let ceiling: Vec<Load> =
        [1, 16, 64].into_iter().map(|c| load(&ceiling_server, "/", c, Duration::from_secs(3), &body)).collect();
    drop(ceiling_server);
    // The peer a Python team would run: FastAPI + onnxruntime, one uvicorn worker, when
    // `tests/python/setup-fastapi-peer.sh` has made its venv.
    let python = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fastapi-venv/bin/python"));
    let fastapi: Option<Vec<Load>> = python.exists().then(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("mlp.onnx");
        std::fs::write(&model, &mlp).unwrap();
        let peer = ServerProcess::fastapi(python, &model);
        let answer = peer.admin().post_json("/v2/models/mlp/infer", &body).json()["outputs"][0]["data"].clone();
        let close = |a: &Value, b: &Value| {
            a.as_array()
                .unwrap()
                .iter()
                .zip(b.as_array().unwrap())
                .all(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5)
        };
        assert!(close(&answer, &from_maas), "the FastAPI peer answers what maas answers: {answer} vs {from_maas}");
        [1, 16, 64].into_iter().map(|c| load(&peer, "/v2/models/mlp/infer", c, Duration::from_secs(3), &body)).collect()
    });

    let beside = slow_beside(&server, &admin, &body);

    // A burst past a function's concurrency queues rather than being refused: 64 clients on a
    // function with the default `max_concurrency` 8 and its default queue.
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" },
                           "scale": { "idle_timeout_s": 1 } });
    assert_eq!(admin.put_json("/v1/tenants/bench/functions/queued", &manifest).status, 201);
    call(&admin, "/fn/bench/queued", &body);
    let queued = load(&server, "/fn/bench/queued", 64, Duration::from_secs(3), &body);

    // The same after the load: the blocking pool and the 64 client threads (this process too)
    // have come and gone.
    wait_for_scale_to_zero(&admin);
    let rss_after_load = server.rss();

    // Scale to zero frees what warm functions hold: three functions on three ~10 MB models.
    let rss_before_large = server.rss();
    let large_input = models::seeded_input(2, &[1, 100]);
    let large_body =
        json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": large_input }] });
    for i in 0..3 {
        let r =
            admin.put_bytes(&format!("/v1/tenants/bench/models/big{i}"), &models::mlp_sized(i, models::LARGE_HIDDEN));
        assert_eq!(r.status, 201);
        let manifest = json!({ "component": "builtin:tensor", "models": { "model": format!("big{i}") }, "scale": { "idle_timeout_s": 1 } });
        assert_eq!(admin.put_json(&format!("/v1/tenants/bench/functions/g{i}"), &manifest).status, 201);
        call(&admin, &format!("/fn/bench/g{i}"), &large_body);
    }
    let rss_large_warm = server.rss();
    // One of them called with batch sizes 1 to 12: one plan serves them all (one copy of the
    // packed weights), where each size had its own before.
    for n in 1..=12usize {
        let data = models::seeded_input(n as u64, &[n, 100]);
        let batch = json!({ "inputs": [{ "name": "input", "shape": [n, 100], "datatype": "FP32", "data": data }] });
        call(&admin, "/fn/bench/g0", &batch);
    }
    let rss_large_shapes = server.rss();
    wait_for_scale_to_zero(&admin);
    let rss_large_zero = server.rss();

    // Dynamic batching on a compute-bound model (100 → 3072 → 3072 → 10, one row per
    // request): the same function without and with batching, at 1 and 16 clients, in
    // alternating rounds so that both see the same machine.
    let wide = models::mlp_sized(7, 3072);
    assert_eq!(admin.put_bytes("/v1/tenants/bench/models/wide", &wide).status, 201);
    for (name, policy) in [("wide", Value::Null), ("wide-batched", json!({ "max_batch_size": 16 }))] {
        let mut manifest = json!({ "component": "builtin:tensor", "models": { "model": "wide" },
                                   "limits": { "max_concurrency": 64 } });
        if !policy.is_null() {
            manifest["batching"] = policy;
        }
        assert_eq!(admin.put_json(&format!("/v1/tenants/bench/functions/{name}"), &manifest).status, 201);
        call(&admin, &format!("/fn/bench/{name}"), &large_body);
    }
    let mut batching: Vec<(&str, Vec<Load>)> = Vec::new();
    for c in [1, 16] {
        let mut rounds: [Vec<Load>; 2] = Default::default();
        for _ in 0..6 {
            for (i, name) in ["wide", "wide-batched"].into_iter().enumerate() {
                rounds[i].push(load(&server, &format!("/fn/bench/{name}"), c, Duration::from_secs(1), &large_body));
            }
        }
        let [plain, batched] = rounds;
        batching.push(("wide", plain));
        batching.push(("wide-batched", batched));
    }
    println!(
        "maas platform figures (seed MLP 100→64→10, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "raw tract run, in process:           p50 {:>9.1} µs   p99 {:>9.1} µs",
        percentile(&mut raw, 0.5),
        percentile(&mut raw, 0.99)
    );
    println!(
        "warm invocation, HTTP loopback:      p50 {:>9.1} µs   p99 {:>9.1} µs   (server-side p50 {:.1} µs, p99 {:.1} µs)",
        percentile(&mut warm_wall, 0.5),
        percentile(&mut warm_wall, 0.99),
        percentile(&mut warm_server, 0.5),
        percentile(&mut warm_server, 0.99)
    );
    println!(
        "the same, binary tensor data:        p50 {:>9.1} µs   p99 {:>9.1} µs   (server-side p50 {:.1} µs, p99 {:.1} µs)",
        percentile(&mut binary_wall, 0.5),
        percentile(&mut binary_wall, 0.99),
        percentile(&mut binary_server, 0.5),
        percentile(&mut binary_server, 0.99)
    );
    println!(
        "cold start, first call after deploy: p50 {:>9.1} µs   (server-side {:.1} µs), {COLD} functions, one model each",
        percentile(&mut cold_deploy_wall, 0.5),
        percentile(&mut cold_deploy_server, 0.5)
    );
    println!(
        "cold start, after scale to zero:     p50 {:>9.1} µs   (server-side {:.1} µs), {COLD} functions, one model each",
        percentile(&mut cold_zero_wall, 0.5),
        percentile(&mut cold_zero_server, 0.5)
    );
    for (when, parts) in [("after deploy", &cold_deploy_parts), ("after scale to zero", &cold_zero_parts)] {
        let [component, models, run] = median_parts(parts);
        println!(
            "  cold start {when}, parts (p50): component {component:.0} µs, model load + optimize {models:.0} µs, first run {run:.0} µs"
        );
    }
    println!("server RSS baseline (started, idle):  {rss_baseline}");
    println!("RSS with {} functions deployed, none run: {rss_deployed}", FUNCTIONS + COLD);
    println!("RSS with {FUNCTIONS} warm functions:          {rss_warm}");
    println!(
        "RSS after all scaled to zero:          {rss_zero}: {}; {}",
        rss_zero.against(rss_baseline, "baseline"),
        rss_zero.against(rss_deployed, "deployed")
    );
    println!(
        "RSS scaled to zero after the throughput runs: {rss_after_load}: {}",
        rss_after_load.against(rss_baseline, "baseline")
    );
    for Load { clients: c, rps, p50, p99, errors, .. } in &throughput {
        println!(
            "throughput, {c:>2} concurrent clients:  {rps:>7.0} req/s   p50 {p50:>8.1} µs   p99 {p99:>8.1} µs   {errors} errors"
        );
    }
    for (maas, top) in throughput.iter().zip(&ceiling) {
        println!(
            "  ceiling (hyper + tract, no maas), {:>2} clients: {:>7.0} req/s   p50 {:>8.1} µs   p99 {:>8.1} µs: \
             maas at {:.0} % of its throughput, p50 ×{:.2}",
            top.clients,
            top.rps,
            top.p50,
            top.p99,
            maas.rps / top.rps * 100.0,
            maas.p50 / top.p50
        );
    }
    match &fastapi {
        Some(peer) => {
            for (maas, peer) in throughput.iter().zip(peer) {
                println!(
                    "  FastAPI + onnxruntime, {:>2} clients:     {:>7.0} req/s   p50 {:>8.1} µs   p99 {:>8.1} µs: \
                     maas ×{:.2} its throughput, p50 ×{:.2}",
                    peer.clients,
                    peer.rps,
                    peer.p50,
                    peer.p99,
                    maas.rps / peer.rps,
                    maas.p50 / peer.p50
                );
            }
        }
        None => println!("  FastAPI + onnxruntime: not set up (run tests/python/setup-fastapi-peer.sh first)"),
    }
    println!("server RSS at 64 clients (peak of 100 ms samples): {rss_at_64}");
    println!("{beside}");
    println!(
        "queueing, 64 clients, max_concurrency 8: {:>7.0} req/s   p50 {:>8.1} µs   p99 {:>8.1} µs   {} errors",
        queued.rps, queued.p50, queued.p99, queued.errors
    );
    assert_eq!(queued.errors, 0, "a burst past max_concurrency must queue, not be refused");
    println!("RSS before 3 functions on ~10 MB models: {rss_before_large}");
    println!("RSS with those 3 warm:                {rss_large_warm}");
    println!(
        "RSS after one of them ran batch sizes 1–12: {rss_large_shapes}: {:+.1} MiB",
        rss_large_shapes.total - rss_large_warm.total
    );
    println!("RSS after they scaled to zero:        {rss_large_zero}");
    let mut rates = HashMap::new();
    for (name, rounds) in &batching {
        let c = rounds[0].clients;
        let rps = rounds.iter().map(|l| l.rps).sum::<f64>() / rounds.len() as f64;
        let errors: usize = rounds.iter().map(|l| l.errors).sum();
        let mut p50s: Vec<f64> = rounds.iter().map(|l| l.p50).collect();
        let mean_batch = rounds.iter().map(|l| l.mean_batch).sum::<f64>() / rounds.len() as f64;
        println!(
            "{name:>12}, {c:>2} clients (100→3072→3072→10): {rps:>7.0} req/s   p50 {:>8.1} µs   {errors} errors   mean batch {mean_batch:.1}",
            percentile(&mut p50s, 0.5)
        );
        rates.insert((*name, c), rps);
    }
    println!(
        "dynamic batching at 16 clients: {:.2}× the throughput without; at 1 client: {:.2}×",
        rates[&("wide-batched", 16)] / rates[&("wide", 16)],
        rates[&("wide-batched", 1)] / rates[&("wide", 1)]
    );

    // What the metrics cost: the series one warm invocation records, timed in this process,
    // against the hand-written counters they replaced; and a scrape of every function's series.
    let server_p50 = percentile(&mut warm_server, 0.5);
    for threads in [1, 16] {
        let (after_ns, before_ns) = metrics_cost(threads);
        println!(
            "metrics recorded per warm invocation, {threads:>2} threads on one function: {after_ns:.0} ns \
             (the hand-written counters before: {before_ns:.0} ns): {:.2} % of the warm server-side p50 ({server_p50:.1} µs)",
            after_ns / 1e3 / server_p50 * 100.0
        );
    }
    let mut exposition = String::new();
    let mut scrapes: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let r = admin.get("/metrics");
            let took = started.elapsed().as_secs_f64() * 1e6;
            assert_eq!(r.status, 200);
            exposition = String::from_utf8(r.body).unwrap();
            took
        })
        .collect();
    let functions =
        maas_tests::metrics::parse(&exposition).samples.iter().filter(|s| s.metric == "maas_function_warm").count();
    println!(
        "GET /metrics with {functions} functions' series ({} KiB): p50 {:.0} µs",
        exposition.len() / 1024,
        percentile(&mut scrapes, 0.5)
    );

    // 1,000 deployed, idle functions across 100 tenants: what they cost when nobody calls.
    let rss_before_idle = server.rss();
    for t in 0..100 {
        let tenant = format!("idle{t}");
        assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": tenant })).status, 201);
        assert_eq!(admin.put_bytes(&format!("/v1/tenants/{tenant}/models/mlp"), &mlp).status, 201);
        for f in 0..10 {
            let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
            assert_eq!(admin.put_json(&format!("/v1/tenants/{tenant}/functions/f{f}"), &manifest).status, 201);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = server.rss();
    println!(
        "RSS with 1,000 idle functions (100 tenants): {rss_idle}: {:+.1} MiB over {:.1}",
        rss_idle.total - rss_before_idle.total,
        rss_before_idle.total
    );
    drop(server);
}
