//! End-to-end tests: a real server on loopback, a real sled directory, real components, real
//! tract inference. One test binary; one module per area.

mod exported;
mod hardening;
mod isolation;
mod observability;
mod oip;
mod platform;
mod scale;
mod sdk;
mod security;
mod trust;

use maas_tests::{Client, Response, TestServer};
use serde_json::{Value, json};

/// Creates tenant `name` (as admin) and returns the admin client for it.
pub fn tenant(server: &TestServer, name: &str) -> Client {
    let admin = server.admin();
    let r = admin.post_json("/v1/tenants", &json!({ "name": name }));
    assert_eq!(r.status, 201, "create tenant: {}", String::from_utf8_lossy(&r.body));
    admin
}

/// Uploads a model and returns the metadata.
pub fn upload(client: &Client, tenant: &str, name: &str, bytes: &[u8]) -> Value {
    let r = client.put_bytes(&format!("/v1/tenants/{tenant}/models/{name}"), bytes);
    assert_eq!(r.status, 201, "upload {name}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Uploads the guest component `wasm_name` (e.g. `maas_fn_classify`) and returns its digest.
pub fn upload_component(client: &Client, tenant: &str, wasm_name: &str) -> String {
    let r = client.post_bytes(
        &format!("/v1/tenants/{tenant}/components"),
        &maas_tests::guest_wasm(wasm_name),
        "application/wasm",
    );
    assert_eq!(r.status, 201, "upload {wasm_name}: {}", String::from_utf8_lossy(&r.body));
    let digest = r.json()["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

/// Deploys a function with `manifest`; returns the response.
pub fn deploy(client: &Client, tenant: &str, name: &str, manifest: Value) -> Response {
    client.put_json(&format!("/v1/tenants/{tenant}/functions/{name}"), &manifest)
}

/// An OIP infer request with one FP32 input.
pub fn oip_request(input: &str, shape: &[usize], data: &[f32]) -> Value {
    json!({ "inputs": [{ "name": input, "shape": shape, "datatype": "FP32", "data": data }] })
}

/// The `data` of output `index` of an OIP response, as f32.
pub fn output_f32(response: &Value, index: usize) -> Vec<f32> {
    response["outputs"][index]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs[{index}].data in {response}"))
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

/// Largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
