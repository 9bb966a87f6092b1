//! Scale to zero: a function idle past `idle_timeout_s` goes cold; the next call wakes it.

use std::time::{Duration, Instant};

use maas_tests::{TestServer, models};
use serde_json::json;

use super::*;

#[test]
fn idle_function_scales_to_zero_and_wakes() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let meta = upload(&admin, "acme", "mlp", &models::mlp(4));
    let name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    let r = deploy(
        &admin,
        "acme",
        "f",
        json!({ "component": "builtin:tensor", "models": { "model": "mlp" }, "scale": { "idle_timeout_s": 1 } }),
    );
    assert_eq!(r.status, 201);
    let request = oip_request(&name, &[1, 100], &models::seeded_input(3, &[1, 100]));
    let status = || admin.get("/v1/tenants/acme/functions/f").json()["status"].clone();

    let first = admin.post_json("/fn/acme/f", &request);
    assert_eq!(first.header("x-maas-cold-start"), Some("true"));
    assert_eq!(status()["state"], "warm");
    // A cold start says where its time went; a warm call has nothing to split.
    let timing = first.header("server-timing").expect("server-timing on a cold start").to_string();
    for part in ["component;dur=", "models;dur=", "run;dur="] {
        assert!(timing.contains(part), "{timing}");
    }
    let warm = admin.post_json("/fn/acme/f", &request);
    assert_eq!((warm.header("x-maas-cold-start"), warm.header("server-timing")), (Some("false"), None));

    // Wait for the reaper (idle 1 s), with a generous bound for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status()["state"] != "cold" {
        assert!(Instant::now() < deadline, "function never scaled to zero: {}", status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = admin.get("/metrics");
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert_eq!(maas_tests::metrics::sum(&text, "maas_warm_functions", &[("tenant", "acme")]), 0.0, "{text}");
    assert_eq!(maas_tests::metrics::sum(&text, "maas_loaded_models", &[]), 0.0, "{text}");
    assert_eq!(maas_tests::metrics::sum(&text, "maas_function_warm", &[("function", "f")]), 0.0, "{text}");
    let cold_starts = maas_tests::metrics::sum(&text, "maas_cold_start_duration_seconds", &[("function", "f")]);
    assert_eq!(cold_starts, 1.0, "{text}");

    let again = admin.post_json("/fn/acme/f", &request);
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-maas-cold-start"), Some("true"));
    assert_eq!(again.json()["outputs"], first.json()["outputs"]);
    let s = status();
    assert_eq!(s["state"], "warm");
    assert_eq!(s["cold_starts"], 2);
    assert_eq!(s["invocations"], 3);
}

#[test]
fn concurrent_requests_to_a_cold_function_share_one_wake() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let meta = upload(&admin, "acme", "mlp", &models::mlp(4));
    let name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    deploy(&admin, "acme", "f", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    let request = oip_request(&name, &[1, 100], &models::seeded_input(3, &[1, 100]));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (client, request) = (admin.clone(), request.clone());
            std::thread::spawn(move || client.post_json("/fn/acme/f", &request))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(admin.get("/v1/tenants/acme/functions/f").json()["status"]["cold_starts"], 1);
}

#[test]
fn redeploy_bumps_revision_and_rewarms() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp(4));
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
    assert_eq!(deploy(&admin, "acme", "f", manifest.clone()).status, 201);
    let r = deploy(&admin, "acme", "f", manifest);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revision"], 2);
    let r = admin.delete("/v1/tenants/acme/models/mlp");
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    assert_eq!(admin.delete("/v1/tenants/acme/functions/f").status, 204);
    assert_eq!(admin.delete("/v1/tenants/acme/models/mlp").status, 204);
    assert_eq!(admin.get("/v1/tenants/acme/functions/f").status, 404);
}

/// Dynamic batching over HTTP: concurrent requests to a batching function each get exactly
/// their own rows (as tract computes them alone), some of them ran in a shared batch, and the
/// manifest's bounds are checked at deploy.
#[test]
fn batching_function_runs_concurrent_requests_as_one_batch() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let model = models::mlp_batch(5);
    upload(&admin, "acme", "mlp", &model);
    for bad in [json!({ "max_batch_size": 0 }), json!({ "max_batch_size": 8, "max_queue_delay_us": 1_000_000 })] {
        let r = deploy(&admin, "acme", "f", json!({ "component": "builtin:tensor", "batching": bad }));
        assert_eq!((r.status, r.json()["code"].as_str()), (400, Some("invalid_request")), "{bad}");
        assert!(r.json()["error"].as_str().unwrap().contains("batching."), "{}", r.json());
    }
    // A long delay so that requests started together meet in one batch even on a slow machine.
    let manifest = json!({
        "component": "builtin:tensor",
        "models": { "model": "mlp" },
        "batching": { "max_batch_size": 8, "max_queue_delay_us": 100_000 },
    });
    assert_eq!(deploy(&admin, "acme", "f", manifest.clone()).status, 201);
    assert_eq!(admin.get("/v1/tenants/acme/functions/f").json()["batching"], manifest["batching"]);
    // Warm it first, so the requests below meet at the model rather than at the cold start.
    let warmup = oip_request("input", &[1, 100], &models::seeded_input(99, &[1, 100]));
    assert_eq!(admin.post_json("/fn/acme/f", &warmup).header("x-maas-batch-size"), Some("1"));

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6u64)
        .map(|i| {
            let (client, barrier) = (admin.clone(), barrier.clone());
            std::thread::spawn(move || {
                let input = models::seeded_input(i, &[1, 100]);
                barrier.wait();
                (input.clone(), client.post_json("/fn/acme/f", &oip_request("input", &[1, 100], &input)))
            })
        })
        .collect();
    let mut largest = 0;
    for h in handles {
        let (input, r) = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        largest = largest.max(r.header("x-maas-batch-size").unwrap().parse::<usize>().unwrap());
        let expected = super::platform::tract_mlp(&model, &input, 1);
        let got: Vec<f64> =
            r.json()["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got.len(), 10);
        for (a, b) in expected.iter().zip(&got) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} alone vs {b} batched");
        }
    }
    assert!(largest > 1, "no request shared a batch");
    let metrics = String::from_utf8_lossy(&admin.get("/metrics").body).to_string();
    // One observation per run of the model: the 7 calls' rows in fewer runs, one of them merged.
    let batch = |le: &str| {
        let scrape = maas_tests::metrics::parse(&metrics);
        let sample = scrape.samples.iter().find(|s| s.metric == "maas_inference_batch_size").expect("batch sizes");
        let prometheus_parse::Value::Histogram(buckets) = &sample.value else { panic!("{metrics}") };
        buckets.iter().find(|b| b.less_than == le.parse::<f64>().unwrap()).unwrap().count
    };
    let (runs, merged) = (batch("+Inf"), batch("+Inf") - batch("1"));
    let rows = maas_tests::metrics::sum(&metrics, "maas_inference_batch_size_sum", &[]);
    assert_eq!(rows, 7.0, "{metrics}");
    assert!(runs < 7.0 && merged >= 1.0, "{metrics}");
}
