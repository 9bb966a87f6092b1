//! The API in process: [`handle`] driven with in-memory requests, no socket, over a real
//! registry in a temporary directory, the real wasm host and real tract inference.

use std::time::Duration;

use http::Method;
use http_body_util::Full;
use maas_registry::Registry;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::host::{Host, HostConfig};

const ADMIN: &str = "the-admin-key";

/// A platform over a fresh store, with a small wasm host.
struct Harness {
    platform: Arc<Platform>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("db"), [9; 32]).unwrap();
    let mut config = Config::new(dir.path());
    config.host = HostConfig { max_memory_mb: 256, max_instances: 16 };
    let host = Host::new(&config.host).unwrap();
    let auth = Authenticator::new(Sha256::digest(ADMIN).into());
    Harness { platform: Platform::new(config, registry, host, auth), _dir: dir }
}

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: impl Into<Bytes>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = handle(self.platform.clone(), request.body(Full::new(body.into())).unwrap()).await;
        let (parts, body) = response.into_parts();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(Method::GET, path, key, Bytes::new()).await
    }

    async fn json(&self, method: Method, path: &str, key: Option<&str>, body: Value) -> Answer {
        self.send(method, path, key, body.to_string()).await
    }

    /// Tenant `name` with a quota patch, and an owner and an invoker key of it.
    async fn tenant(&self, name: &str, quota: Value) -> (String, String) {
        let created =
            self.json(Method::POST, "/v1/tenants", Some(ADMIN), json!({ "name": name, "quota": quota })).await;
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
        let key = |role: &'static str| async move {
            let path = format!("/v1/tenants/{name}/keys");
            let r = self.json(Method::POST, &path, Some(ADMIN), json!({ "role": role })).await;
            r.json()["key"].as_str().unwrap().to_string()
        };
        (key("owner").await, key("invoker").await)
    }

    /// The seed model as `mlp` and a `builtin:tensor` function `f` serving it.
    async fn mlp_function(&self, tenant: &str, owner: &str, manifest: Value) {
        let path = format!("/v1/tenants/{tenant}/models/mlp");
        let uploaded = self.send(Method::PUT, &path, Some(owner), maas_fixtures::mlp(42)).await;
        assert_eq!(uploaded.status, 201, "{}", String::from_utf8_lossy(&uploaded.body));
        let mut manifest = manifest;
        manifest["component"] = json!("builtin:tensor");
        manifest["models"] = json!({ "model": "mlp" });
        let path = format!("/v1/tenants/{tenant}/functions/f");
        let deployed = self.json(Method::PUT, &path, Some(owner), manifest).await;
        assert_eq!(deployed.status, 201, "{}", String::from_utf8_lossy(&deployed.body));
    }
}

fn mlp_request() -> Value {
    let data: Vec<f32> = (0..100).map(|i| i as f32 * 0.01).collect();
    json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": data }] })
}

#[tokio::test]
async fn auth_tells_401_from_403_and_404() {
    let h = harness();
    let (owner, invoker) = h.tenant("acme", json!({})).await;
    let (other, _) = h.tenant("other", json!({})).await;

    assert_eq!(h.get("/healthz", None).await.status, 200, "health needs no key");
    for (path, key, status, code) in [
        ("/v1/tenants", None, 401, "unauthenticated"),
        ("/v1/tenants", Some("maas_not_a_key"), 401, "unauthenticated"),
        ("/v1/tenants", Some(owner.as_str()), 403, "forbidden"),
        ("/v1/tenants/acme/models", Some(other.as_str()), 403, "forbidden"),
        ("/v1/tenants/nope/models", Some(other.as_str()), 403, "forbidden"),
        ("/v1/tenants/acme/models", Some(invoker.as_str()), 403, "forbidden"),
        ("/v1/tenants/nope/models", Some(ADMIN), 404, "not_found"),
        ("/v2/models/mlp", Some(ADMIN), 403, "forbidden"),
        ("/no/such/route", Some(ADMIN), 404, "not_found"),
        ("/no/such/route", None, 401, "unauthenticated"),
    ] {
        let r = h.get(path, key).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "GET {path} with {key:?}");
    }
    assert_eq!(h.get("/v1/tenants/acme/models", Some(&owner)).await.status, 200);
    assert_eq!(h.send(Method::PATCH, "/v1/tenants/acme/models/m", Some(&owner), "").await.status, 405);

    // A suspended tenant's keys are refused at once; the admin still manages it.
    let suspend = h.json(Method::PATCH, "/v1/tenants/acme", Some(ADMIN), json!({ "suspended": true })).await;
    assert_eq!(suspend.status, 200);
    let r = h.get("/v1/tenants/acme/models", Some(&owner)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    assert!(r.json()["error"].as_str().unwrap().contains("suspended"));
    // Deleting the tenant revokes its keys.
    assert_eq!(h.send(Method::DELETE, "/v1/tenants/acme", Some(ADMIN), "").await.status, 204);
    assert_eq!(h.get("/v1/tenants/acme/models", Some(&owner)).await.status, 401);
}

#[tokio::test]
async fn admission_charges_tenant_keys_not_the_admin() {
    let h = harness();
    let (owner, _) = h.tenant("acme", json!({ "rate_per_second": 2.0 })).await;
    for _ in 0..2 {
        assert_eq!(h.get("/v1/tenants/acme/models", Some(&owner)).await.status, 200);
    }
    let refused = h.get("/v1/tenants/acme/models", Some(&owner)).await;
    assert_eq!((refused.status, refused.code().as_str()), (429, "rate_limited"));
    assert!(refused.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)));
    for _ in 0..5 {
        assert_eq!(h.get("/v1/tenants/acme/models", Some(ADMIN)).await.status, 200, "the admin is not charged");
    }
}

#[tokio::test]
async fn invocations_run_the_function_and_carry_the_platform_headers() {
    let h = harness();
    let (owner, invoker) = h.tenant("acme", json!({ "rate_per_second": 1000.0 })).await;
    h.mlp_function("acme", &owner, json!({})).await;

    let first = h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    let probabilities: Vec<f64> =
        first.json()["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(first.header("x-maas-cold-start"), Some("true"));
    assert!(first.header("server-timing").is_some_and(|t| t.contains("component;dur=")));
    assert!(first.header("x-maas-model").is_some_and(|m| m.starts_with("mlp@1 sha256:")));
    assert!(first.header("x-maas-energy-uj").is_some() && first.header("x-maas-duration-us").is_some());
    let warm = h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await;
    assert_eq!((warm.status, warm.header("x-maas-cold-start")), (200, Some("false")));
    assert_eq!(warm.body, first.body, "the same input gives the same answer");

    // The guest checks the tensors against the signature.
    let bad = json!({ "inputs": [{ "name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }] });
    let r = h.json(Method::POST, "/fn/acme/f", Some(&invoker), bad).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_input"));
    // Without a key, a private function is a 401; a missing one too. None carries the
    // platform's timing headers, whose figures would tell them apart.
    for path in ["/fn/acme/f", "/fn/acme/nope", "/fn/nope/f"] {
        let r = h.json(Method::POST, path, None, mlp_request()).await;
        assert_eq!(r.status, 401, "{path}");
        for header in ["x-maas-duration-us", "x-maas-cold-start", "x-maas-energy-uj", "server-timing"] {
            assert_eq!(r.header(header), None, "{path} {header}");
        }
    }
    // Made public, anyone may call it.
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" }, "public": true });
    assert_eq!(h.json(Method::PUT, "/v1/tenants/acme/functions/f", Some(&owner), manifest).await.status, 200);
    assert_eq!(h.json(Method::POST, "/fn/acme/f", None, mlp_request()).await.status, 200);
    // Usage counts them, per function.
    let usage = h.get("/v1/tenants/acme/usage", Some(&owner)).await.json();
    assert!(usage["functions"]["f"]["invocations"].as_u64().unwrap() >= 4, "{usage}");
}

#[tokio::test]
async fn a_refused_upload_leaves_nothing() {
    let h = harness();
    let (owner, _) = h.tenant("acme", json!({})).await;
    let r = h.send(Method::PUT, "/v1/tenants/acme/models/m", Some(&owner), maas_fixtures::invalid_onnx()).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_model"));
    assert_eq!(h.get("/v1/tenants/acme/models", Some(&owner)).await.json(), json!({ "models": [] }));
    assert_eq!(h.platform.registry.storage_bytes("acme").unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_to_a_cold_function_share_one_wake() {
    let h = harness();
    let (owner, invoker) = h.tenant("acme", json!({ "rate_per_second": 1000.0 })).await;
    h.mlp_function("acme", &owner, json!({ "limits": { "max_concurrency": 16 } })).await;
    let h = Arc::new(h);
    let calls = (0..8).map(|_| {
        let (h, invoker) = (h.clone(), invoker.clone());
        tokio::spawn(async move { h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await })
    });
    let mut cold = 0;
    for call in calls.collect::<Vec<_>>() {
        let answer = call.await.unwrap();
        assert_eq!(answer.status, 200);
        cold += usize::from(answer.header("x-maas-cold-start") == Some("true"));
    }
    let status = h.get("/v1/tenants/acme/functions/f", Some(&owner)).await.json()["status"].clone();
    assert_eq!((status["cold_starts"].as_u64(), status["invocations"].as_u64()), (Some(1), Some(8)), "{status}");
    // Every request that waited for the wake was a cold one; at least the first was.
    assert!(cold >= 1, "no request reported the cold start");
}

#[tokio::test]
async fn idle_functions_scale_to_zero_and_wake_again() {
    let h = harness();
    let (owner, invoker) = h.tenant("acme", json!({ "rate_per_second": 1000.0 })).await;
    h.mlp_function("acme", &owner, json!({ "scale": { "idle_timeout_s": 1 } })).await;
    let status = |h: &Harness| {
        let slot = h.platform.scaler.slot("acme", "f").unwrap().unwrap();
        slot.status()
    };
    assert_eq!(h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await.status, 200);
    assert_eq!(status(&h).state, maas_types::FunctionState::Warm);
    assert_eq!(h.platform.models().loaded().len(), 1);

    // Not yet idle long enough: nothing goes.
    assert_eq!(h.platform.scaler.reap_at(0).1, 0);
    // Past its idle timeout: the warm state and the model go.
    let (_, dropped) = h.platform.scaler.reap_at(u64::MAX / 2);
    assert_eq!(dropped, 1);
    assert_eq!(status(&h).state, maas_types::FunctionState::Cold);
    assert_eq!(h.platform.models().loaded().len(), 0, "the model is freed with the last warm function");

    // The next request wakes it again.
    let again = h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await;
    assert_eq!((again.status, again.header("x-maas-cold-start")), (200, Some("true")));
    assert_eq!(status(&h).cold_starts, 2);
    // The reaper task does it on its own, in about the idle timeout.
    let reaper = h.platform.scaler.spawn_reaper();
    tokio::time::timeout(Duration::from_secs(10), async {
        while status(&h).state == maas_types::FunctionState::Warm {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the reaper scaled the function to zero");
    reaper.abort();
}

/// A tenant deleted and created again under its name numbers its model versions from 1
/// again; while the old tenant's model is still held (by a request in flight, say), the new
/// tenant's function must load its own.
#[tokio::test]
async fn a_recreated_tenant_never_meets_its_namesakes_models() {
    let h = harness();
    let (owner, invoker) = h.tenant("acme", json!({ "rate_per_second": 1000.0 })).await;
    h.mlp_function("acme", &owner, json!({})).await;
    let old = h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await;
    assert_eq!(old.status, 200);
    let version = h.platform.registry.model_version("acme", "mlp", Some(1)).unwrap().unwrap();
    let key =
        crate::inference::ModelKey { tenant: "acme".into(), name: "mlp".into(), version: 1, blob: version.blob.id };
    let held = h.platform.models().get(&key).expect("the warm function holds the model");

    assert_eq!(h.send(Method::DELETE, "/v1/tenants/acme", Some(ADMIN), Bytes::new()).await.status, 204);
    let (owner, invoker) = h.tenant("acme", json!({ "rate_per_second": 1000.0 })).await;
    let uploaded = h.send(Method::PUT, "/v1/tenants/acme/models/mlp", Some(&owner), maas_fixtures::mlp(7)).await;
    assert_eq!(uploaded.status, 201);
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
    assert_eq!(h.json(Method::PUT, "/v1/tenants/acme/functions/f", Some(&owner), manifest).await.status, 201);
    let new = h.json(Method::POST, "/fn/acme/f", Some(&invoker), mlp_request()).await;
    assert_eq!(new.status, 200);
    assert_ne!(new.json()["outputs"], old.json()["outputs"], "the new tenant was served the old model");
    drop(held);
}
