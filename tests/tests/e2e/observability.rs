//! What an operator and a tenant see of a running server: `/metrics` labelled and parsed by a
//! Prometheus text parser, a tenant's own view of it, and the Grafana dashboard's queries.

use std::collections::BTreeSet;

use maas_tests::metrics::{has, parse, sum};
use maas_tests::{Client, TestServer, models};
use serde_json::{Value, json};

use super::{deploy, oip_request, tenant, upload, upload_component};

/// An owner key of `tenant`.
fn owner(server: &TestServer, admin: &Client, tenant: &str) -> Client {
    let r = admin.post_json(&format!("/v1/tenants/{tenant}/keys"), &json!({ "role": "owner" }));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    server.client(r.json()["key"].as_str().unwrap())
}

/// Two tenants with traffic of every kind the dashboard shows: warm calls, a cold start, a
/// trap, refusals, OIP inference, a batching function, an explanation.
fn workload(server: &TestServer) -> (Client, Client) {
    let admin = tenant(server, "acme");
    tenant(server, "umbrella");
    let input = oip_request("input", &[1, 100], &models::seeded_input(1, &[1, 100]));
    for t in ["acme", "umbrella"] {
        upload(&admin, t, "mlp", &models::mlp(3));
        let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
        assert_eq!(deploy(&admin, t, "f", manifest).status, 201);
        for _ in 0..3 {
            assert_eq!(admin.post_json(&format!("/fn/{t}/f"), &input).status, 200);
        }
    }
    let digest = upload_component(&admin, "acme", "maas_fn_misbehave");
    deploy(&admin, "acme", "trap", json!({ "component": digest, "config": { "mode": "/trap" } }));
    assert_eq!(admin.post_json("/fn/acme/trap", &json!({})).status, 500);
    upload(&admin, "acme", "mlpb", &models::mlp_batch(3));
    let batching = json!({ "component": "builtin:tensor", "models": { "model": "mlpb" },
                           "batching": { "max_batch_size": 4, "max_queue_delay_us": 1000 } });
    assert_eq!(deploy(&admin, "acme", "batched", batching).status, 201);
    assert_eq!(admin.post_json("/fn/acme/batched", &input).status, 200);
    let acme = owner(server, &admin, "acme");
    assert_eq!(acme.post_json("/v2/models/mlp/infer", &input).status, 200);
    let explain = json!({ "inputs": input["inputs"], "method": "occlusion" });
    let explained = acme.post_json("/v1/tenants/acme/models/mlp/explain", &explain);
    assert_eq!(explained.status, 200, "{}", String::from_utf8_lossy(&explained.body));
    // A key of acme calling umbrella's function: refused, counted against umbrella's function.
    assert_eq!(acme.post_json("/fn/umbrella/f", &input).status, 403);
    // A key that is no key at all, on a function the server holds: refused, counted too.
    assert_eq!(server.client("maas_not-a-key").post_json("/fn/acme/f", &input).status, 401);
    (admin, acme)
}

#[test]
fn metrics_are_labelled_and_a_tenant_sees_only_its_own() {
    let server = TestServer::start();
    let (admin, acme) = workload(&server);
    let all = String::from_utf8(admin.get("/metrics").body).unwrap();
    parse(&all);
    let f = [("tenant", "acme"), ("function", "f")];
    let with = |extra: (&'static str, &'static str)| [f[0], f[1], extra];
    assert_eq!(sum(&all, "maas_invocations_total", &with(("outcome", "ok"))), 3.0, "{all}");
    let trapped = [("tenant", "acme"), ("function", "trap"), ("outcome", "trapped")];
    assert_eq!(sum(&all, "maas_invocations_total", &trapped), 1.0, "{all}");
    let refused = [("tenant", "umbrella"), ("function", "f"), ("reason", "auth")];
    assert_eq!(sum(&all, "maas_invocations_rejected_total", &refused), 1.0, "{all}");
    assert_eq!(sum(&all, "maas_invocations_rejected_total", &with(("reason", "auth"))), 1.0, "{all}");
    assert_eq!(sum(&all, "maas_invocation_duration_seconds", &f), 3.0, "{all}");
    assert_eq!(sum(&all, "maas_cold_start_duration_seconds", &f), 1.0, "{all}");
    assert_eq!(sum(&all, "maas_cold_start_phase_duration_seconds", &with(("phase", "models"))), 1.0, "{all}");
    assert_eq!(sum(&all, "maas_queue_wait_seconds", &with(("queue", "pool"))), 3.0, "{all}");
    assert_eq!(sum(&all, "maas_function_warm", &f), 1.0, "{all}");
    let oip = [("tenant", "acme"), ("function", "v2:mlp@1"), ("outcome", "ok")];
    assert_eq!(sum(&all, "maas_invocations_total", &oip), 1.0, "{all}");
    let model = [("tenant", "acme"), ("model", "mlp@1")];
    // Three calls of f, one OIP call; explanations run the model in the host.
    assert_eq!(sum(&all, "maas_inference_duration_seconds", &model), 4.0, "{all}");
    let batched = [("tenant", "acme"), ("model", "mlpb@1")];
    assert_eq!(sum(&all, "maas_inference_batch_size", &batched), 1.0, "one run of the batching function: {all}");
    assert_eq!(sum(&all, "maas_inference_batch_size", &model), 0.0, "{all}");
    assert_eq!(sum(&all, "maas_plan_builds_total", &model), 1.0, "one general plan: {all}");
    assert!(sum(&all, "maas_loaded_model_bytes", &model) > 0.0, "{all}");
    assert!(sum(&all, "maas_energy_joules_total", &f) > 0.0, "{all}");
    assert!(sum(&all, "maas_energy_joules_total", &[("tenant", "acme"), ("function", "host:trust")]) > 0.0, "{all}");
    assert_eq!(sum(&all, "maas_warm_functions", &[("tenant", "acme")]), 4.0, "f, trap, batched, v2:mlp@1: {all}");
    let invoke_ok = [("route", "/fn/:tenant/:function"), ("status", "2xx")];
    assert!(sum(&all, "maas_http_requests_total", &invoke_ok) >= 7.0, "{all}");
    assert!(has(&all, "process_resident_memory_bytes"), "{all}");
    // Never a request id, a key or a path of a request as a label value.
    for line in all.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("maas_") || line.starts_with("maas_"), "{line}");
        assert!(!line.contains("Bearer") && !line.contains("/fn/acme"), "{line}");
    }

    // The tenant's view: its series only, with its owner key.
    let view = acme.get("/v1/tenants/acme/metrics");
    assert_eq!(view.status, 200);
    assert!(view.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let mine = String::from_utf8(view.body).unwrap();
    let scrape = parse(&mine);
    assert!(!scrape.samples.is_empty());
    assert!(scrape.samples.iter().all(|s| s.labels.get("tenant") == Some("acme")), "{mine}");
    assert!(!mine.contains("umbrella"), "{mine}");
    assert!(!has(&mine, "maas_http_requests_total") && !has(&mine, "process_resident_memory_bytes"), "{mine}");
    assert_eq!(sum(&mine, "maas_invocations_total", &with(("outcome", "ok"))), 3.0, "{mine}");
    // Another tenant's view is not acme's to read; the admin reads any.
    assert_eq!(acme.get("/v1/tenants/umbrella/metrics").status, 403);
    let theirs = String::from_utf8(admin.get("/v1/tenants/umbrella/metrics").body).unwrap();
    assert!(!theirs.contains("acme") && has(&theirs, "maas_invocations_total"), "{theirs}");
    assert_eq!(acme.get("/metrics").status, 403);

    // A deleted function's series go with it, and a deleted model's with its OIP endpoint.
    assert_eq!(acme.delete("/v1/tenants/acme/functions/trap").status, 204);
    upload(&admin, "acme", "other", &models::mlp(5));
    let input = oip_request("input", &[1, 100], &models::seeded_input(2, &[1, 100]));
    assert_eq!(acme.post_json("/v2/models/other/infer", &input).status, 200);
    let before = String::from_utf8(admin.get("/metrics").body).unwrap();
    assert!(before.contains("\"v2:other@1\"") && before.contains("model=\"other@1\""), "{before}");
    assert_eq!(acme.delete("/v1/tenants/acme/models/other").status, 204);
    let after = String::from_utf8(admin.get("/metrics").body).unwrap();
    assert!(!after.contains("function=\"trap\""), "{after}");
    assert!(!after.contains("other@1"), "{after}");
    assert!(after.contains("model=\"mlp@1\""), "{after}");
}

/// Every metric name in a PromQL expression: identifiers followed by `{`, `[`, `)` or the end,
/// that are not PromQL's own words.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            // Inside braces, words are label names; quoted values are skipped below.
            if word.starts_with("maas_") || word.starts_with("process_") {
                names.insert(word.to_string());
            }
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Every `expr` in the dashboard's panels and every `query` of its variables.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn every_metric_the_dashboard_queries_exists() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/maas.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 20, "the dashboard queries {wanted:?}");

    let server = TestServer::start();
    let (admin, _) = workload(&server);
    let text = String::from_utf8(admin.get("/metrics").body).unwrap();
    // Names as the text has them: a histogram's `_bucket`, `_sum` and `_count` series included.
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| &l[..l.find(['{', ' ']).unwrap_or(l.len())])
        .collect();
    let missing: Vec<&String> = wanted.iter().filter(|name| !exposed.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries {missing:?}, which /metrics does not have: {text}");
}
