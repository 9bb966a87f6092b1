//! A function that traps, one that loops forever and one that allocates past its limit each
//! get their error, while another function keeps answering.

use std::thread;

use maas_tests::{TestServer, models};
use serde_json::json;

use super::*;

#[test]
fn misbehaving_functions_fail_alone() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let meta = upload(&admin, "acme", "mlp", &models::mlp(2));
    let input_name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    let digest = upload_component(&admin, "acme", "maas_fn_misbehave");
    for (name, mode, limits) in [
        ("trap", "/trap", json!({})),
        ("loop", "/loop", json!({ "timeout_ms": 300 })),
        ("alloc", "/alloc", json!({ "memory_mb": 16 })),
        ("sleep", "/sleep", json!({ "timeout_ms": 300 })),
    ] {
        let r =
            deploy(&admin, "acme", name, json!({ "component": digest, "config": { "mode": mode }, "limits": limits }));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    deploy(&admin, "acme", "healthy", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    let healthy_request = oip_request(&input_name, &[1, 100], &models::seeded_input(1, &[1, 100]));
    let baseline = admin.post_json("/fn/acme/healthy", &healthy_request);
    assert_eq!(baseline.status, 200);

    // All three misbehave at the same time as the healthy function is called.
    let bad: Vec<_> = ["trap", "loop", "alloc", "sleep"]
        .into_iter()
        .map(|name| {
            let client = admin.clone();
            thread::spawn(move || (name, client.post_json(&format!("/fn/acme/{name}"), &json!({}))))
        })
        .collect();
    for _ in 0..10 {
        let r = admin.post_json("/fn/acme/healthy", &healthy_request);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["outputs"], baseline.json()["outputs"]);
    }
    for handle in bad {
        let (name, r) = handle.join().unwrap();
        let message = r.json()["error"].as_str().unwrap_or_default().to_string();
        match name {
            "trap" => {
                assert_eq!((r.status, r.code().as_str()), (500, "function_trapped"), "{message}");
                // A short message: what the guest wrote and its backtrace stay in the log.
                assert_eq!(message, "the function trapped");
            }
            // A guest asleep in the host (WASI's clock) is stopped at its deadline too.
            "loop" | "sleep" => assert_eq!((r.status, r.code().as_str()), (504, "function_timeout"), "{message}"),
            "alloc" => {
                assert_eq!((r.status, r.code().as_str()), (500, "function_trapped"), "{message}");
                assert!(message.contains("memory limit of 16 MiB"), "{message}");
            }
            _ => unreachable!(),
        }
        assert!(r.header("x-maas-duration-us").is_some());
    }
    // Each failure is per request: the same functions fail the same way again, and the
    // healthy one is still fine.
    assert_eq!(admin.post_json("/fn/acme/trap", &json!({})).status, 500);
    assert_eq!(admin.post_json("/fn/acme/healthy", &healthy_request).status, 200);
    let status = admin.get("/v1/tenants/acme/functions/trap").json()["status"].clone();
    assert_eq!(status["invocations"], 2);
    assert_eq!(status["errors"], 2);
    assert_eq!(status["instances"], 0);
}

#[test]
fn invalid_components_are_refused() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    for (bytes, what) in [(b"not wasm at all".to_vec(), "garbage"), (b"\0asm\x01\0\0\0".to_vec(), "core module")] {
        let r = admin.post_bytes("/v1/tenants/acme/components", &bytes, "application/wasm");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid_component"),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = deploy(&admin, "acme", "f", json!({ "component": format!("sha256:{}", "0".repeat(64)) }));
    assert!(r.status == 404 || r.status == 400, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn infer_reaches_only_the_models_the_manifest_names() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp(2));
    let digest = upload_component(&admin, "acme", "maas_fn_classify");
    // The tenant has a model called "mlp", but this manifest names no model: the guest's
    // `describe("model")` and `infer("model", ..)` find nothing.
    assert_eq!(deploy(&admin, "acme", "blind", json!({ "component": digest })).status, 201);
    let r = admin.post_json("/fn/acme/blind", &json!({ "features": models::seeded_input(1, &[1, 100]) }));
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"), "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"].as_str().unwrap().contains("names no model"), "{}", r.json());
    assert!(r.header("x-maas-model").is_none());
}

/// A guest cannot set the framing of its answer (a `content-length: 0` before a non-empty body
/// would desynchronise the connection), cookies for the shared origin, or the platform's own
/// headers: they are dropped, and the next request on the same connection is answered right.
#[test]
fn guests_cannot_set_framing_cookies_or_platform_headers() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let digest = upload_component(&admin, "acme", "maas_fn_misbehave");
    let r = deploy(&admin, "acme", "liar", json!({ "component": digest, "config": { "mode": "headers" } }));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    for _ in 0..3 {
        let r = admin.post_json("/fn/acme/liar", &json!({}));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"a body the framing headers lie about");
        assert_eq!(r.header("content-length"), Some("36"));
        for dropped in ["set-cookie", "transfer-encoding", "connection"] {
            assert_eq!(r.header(dropped), None, "{dropped}");
        }
        assert_ne!(r.header("x-maas-energy-uj"), None);
        assert_eq!(r.header("x-kept"), Some("yes"));
    }
}

/// Short invocations run on the async workers that read their requests, with no thread hop;
/// a slow model's runs must not. With the server's two workers, if calls of a model that
/// takes a few hundred milliseconds ran there, a call of the MLP sent while they run would
/// wait for one of them to finish. The slow model's runs go to the pool, so it does not.
#[test]
fn a_slow_model_never_holds_the_async_workers() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let meta = upload(&admin, "acme", "mlp", &models::mlp(2));
    let input = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    upload(&admin, "acme", "large", &models::mlp_sized(3, models::LARGE_HIDDEN));
    deploy(&admin, "acme", "fast", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    deploy(&admin, "acme", "slow", json!({ "component": "builtin:tensor", "models": { "model": "large" } }));
    let fast = oip_request(&input, &[1, 100], &models::seeded_input(1, &[1, 100]));
    // Binary tensor data: the guest only copies the bytes, so nearly all of a slow call's time
    // is the model's run, in the host.
    let rows = 1024;
    let (slow_body, header_length) =
        models::oip_binary_body("input", &[rows, 100], &models::seeded_input(2, &[rows, 100]));
    let header_length = header_length.to_string();
    let call_slow = move |client: &maas_tests::Client| {
        let headers = [("inference-header-content-length", header_length.as_str())];
        client
            .send_with_headers("POST", "/fn/acme/slow", &headers, Some((&slow_body, "application/octet-stream")))
            .status
    };
    // Both warm, and the slow model's cost measured by a warm run alone.
    assert_eq!(call_slow(&admin), 200);
    let took = std::time::Instant::now();
    assert_eq!(call_slow(&admin), 200);
    let slow_alone = took.elapsed();
    let baseline = admin.post_json("/fn/acme/fast", &fast);
    assert_eq!(baseline.status, 200);

    let started = std::time::Instant::now();
    let slow_calls: Vec<_> = (0..4)
        .map(|_| {
            let (client, call_slow) = (admin.clone(), call_slow.clone());
            thread::spawn(move || (call_slow(&client), started.elapsed()))
        })
        .collect();
    thread::sleep(slow_alone / 4);
    for _ in 0..3 {
        let r = admin.post_json("/fn/acme/fast", &fast);
        assert_eq!((r.status, r.json()["outputs"].clone()), (200, baseline.json()["outputs"].clone()));
    }
    let fast_done = started.elapsed();
    let slow_done: Vec<_> = slow_calls.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(slow_done.iter().all(|(status, _)| *status == 200), "{slow_done:?}");
    let first_slow = slow_done.iter().map(|(_, at)| *at).min().unwrap();
    assert!(
        fast_done < first_slow,
        "the MLP's calls ended at {fast_done:?}, after the first slow call ({first_slow:?}; one alone took {slow_alone:?})"
    );
}
