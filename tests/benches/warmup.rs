//! What warm-up shapes (`warmup` in the manifest) save the first request of a model served per
//! request shape: the cold start's `Server-Timing` parts (`models`: loading, and with warm-up
//! the plan for the shape; `run`: the first request's instance, guest and inference, plan
//! included without warm-up) and the client's latency, medians over fresh model versions.
//!
//! Run: `cargo bench -p maas-tests --bench warmup` (about 20 seconds).

use std::time::Instant;

use maas_tests::bench::percentile;
use maas_tests::{TestServer, models};
use serde_json::json;

/// Cold starts measured with and without warm-up.
const SAMPLES: usize = 12;
/// The model's width: each plan packs `4 × WIDTH²` bytes of weights.
const WIDTH: usize = 1024;
/// Rows of the request.
const ROWS: usize = 8;

fn main() {
    let server = TestServer::start();
    let admin = server.admin();
    let quota =
        json!({ "rate_per_second": 1e6, "max_storage_bytes": 1u64 << 34, "max_models": 1000, "max_functions": 1000 });
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme", "quota": quota })).status, 201);
    let model = models::exported::wide_per_shape(WIDTH, 1);
    let (body, header) = maas_tests::oip_binary_body("x", &[ROWS, WIDTH], &models::seeded_input(2, &[ROWS, WIDTH]));
    let header = header.to_string();
    // (models ms, run ms, client ms) of one cold start, on a model version no function held.
    let cold = |name: &str, warmup: bool| -> (f64, f64, f64) {
        let r = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}"), &model);
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let mut manifest = json!({ "component": "builtin:tensor", "models": { "model": name } });
        if warmup {
            manifest["warmup"] = json!([{ "model": "model", "inputs": { "x": [ROWS, WIDTH] } }]);
        }
        let r = admin.put_json(&format!("/v1/tenants/acme/functions/{name}"), &manifest);
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let started = Instant::now();
        let headers = [("Inference-Header-Content-Length", header.as_str())];
        let r = admin.send_with_headers(
            "POST",
            &format!("/fn/acme/{name}"),
            &headers,
            Some((&body, "application/octet-stream")),
        );
        let client = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let timing = r.header("server-timing").expect("a cold start's Server-Timing").to_string();
        let part = |name: &str| -> f64 {
            let value = timing.split(", ").find_map(|p| p.strip_prefix(&format!("{name};dur="))).expect("part");
            value.parse().expect("milliseconds")
        };
        (part("models"), part("run"), client)
    };
    let mut rows = Vec::new();
    for warmup in [false, true] {
        let (mut models_ms, mut run_ms, mut client_ms) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..SAMPLES {
            let (m, r, c) = cold(&format!("{}-{i}", if warmup { "warm" } else { "cold" }), warmup);
            models_ms.push(m);
            run_ms.push(r);
            client_ms.push(c);
        }
        let median = |v: &mut Vec<f64>| percentile(v, 0.5);
        rows.push((warmup, median(&mut models_ms), median(&mut run_ms), median(&mut client_ms)));
    }
    println!(
        "first request on a model served per request shape ({WIDTH}x{WIDTH} weights, [{ROWS}, {WIDTH}] input), medians of {SAMPLES} cold starts:"
    );
    for (warmup, models_ms, run_ms, client_ms) in &rows {
        let label = if *warmup { "with warm-up" } else { "without" };
        println!("  {label:<13} models {models_ms:>7.2} ms   first run {run_ms:>7.2} ms   client {client_ms:>7.2} ms");
    }
    println!("  first run, without / with warm-up: {:.1}x", rows[0].2 / rows[1].2);
}
