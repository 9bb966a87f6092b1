//! The Open Inference Protocol (KServe v2) over plain HTTP: health, metadata, JSON and binary
//! inference compared with tract, and precise 400s for malformed requests.

use maas_tests::{Response, TestServer, models};
use serde_json::{Value, json};
use tract_onnx::prelude::*;

use super::*;

/// A tenant `acme` with an invoker key, the MLP (two versions, different seeds) and the INT64
/// model uploaded. Returns the invoker client.
fn setup(server: &TestServer) -> maas_tests::Client {
    let admin = tenant(server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp(1));
    upload(&admin, "acme", "mlp", &models::mlp(2));
    upload(&admin, "acme", "tokens", &models::int64_model());
    let r = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" }));
    assert_eq!(r.status, 201);
    server.client(r.json()["key"].as_str().unwrap())
}

fn tract_f32(model: &[u8], input: &[f32]) -> Vec<f32> {
    let tensor = tract_ndarray::Array2::from_shape_vec((1, 100), input.to_vec()).unwrap().into_tensor();
    let out = models::run_tract(model, vec![tensor]).unwrap();
    out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

/// tract's outputs of the INT64 model: `sum` (i64) and `scaled` (f32).
fn tract_tokens(tokens: &[i64], rows: usize) -> (Vec<i64>, Vec<f32>) {
    let tensor = tract_ndarray::Array2::from_shape_vec((rows, 4), tokens.to_vec()).unwrap().into_tensor();
    let out = models::run_tract(&models::int64_model(), vec![tensor]).unwrap();
    let sum = out[0].try_as_plain_ram().unwrap().as_slice::<i64>().unwrap().to_vec();
    let scaled = out[1].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
    (sum, scaled)
}

/// POSTs `body` with extra headers and the client's key.
fn post_raw(server: &TestServer, key: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Response {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    server.client(key).send_with_headers("POST", path, &headers, Some((body, "application/octet-stream")))
}

/// A binary-extension body: the JSON header followed by the raw tensors.
fn binary_body(header: &Value, tensors: &[&[u8]]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let json = header.to_string().into_bytes();
    let headers = vec![("Inference-Header-Content-Length", json.len().to_string())];
    let mut body = json;
    for t in tensors {
        body.extend_from_slice(t);
    }
    (headers, body)
}

/// Splits a binary-extension response into its JSON header and the raw bytes after it.
fn split_binary(r: &Response) -> (Value, Vec<u8>) {
    let n: usize = r
        .header("inference-header-content-length")
        .unwrap_or_else(|| panic!("no Inference-Header-Content-Length: {}", String::from_utf8_lossy(&r.body)))
        .parse()
        .unwrap();
    (serde_json::from_slice(&r.body[..n]).unwrap(), r.body[n..].to_vec())
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn health_and_metadata() {
    let server = TestServer::start();
    let invoker = setup(&server);
    let anonymous = server.anonymous();
    assert_eq!(anonymous.get("/v2/health/live").status, 200);
    assert_eq!(anonymous.get("/v2/health/ready").status, 200);
    assert_eq!(anonymous.get("/v2").code(), "unauthenticated");
    let meta = invoker.get("/v2");
    assert_eq!(meta.status, 200);
    assert!(meta.json()["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));

    let model = invoker.get("/v2/models/mlp").json();
    assert_eq!(model["name"], "mlp");
    assert_eq!(model["versions"], json!(["1", "2"]));
    assert_eq!(model["inputs"][0], json!({ "name": "input", "datatype": "FP32", "shape": [1, 100] }));
    assert_eq!(model["outputs"][0], json!({ "name": "output", "datatype": "FP32", "shape": [1, 10] }));
    assert_eq!(invoker.get("/v2/models/mlp/versions/1").json()["versions"], json!(["1"]));
    let tokens = invoker.get("/v2/models/tokens").json();
    assert_eq!(tokens["inputs"][0], json!({ "name": "tokens", "datatype": "INT64", "shape": [-1, 4] }));

    assert_eq!(invoker.get("/v2/models/mlp/ready").status, 200);
    assert_eq!(invoker.get("/v2/models/mlp/versions/2/ready").status, 200);
    let missing = invoker.get("/v2/models/mlp/versions/3/ready");
    assert_eq!((missing.status, missing.code().as_str()), (404, "not_found"));
    assert!(missing.json()["error"].as_str().unwrap().contains("no version 3"));
    assert_eq!(invoker.get("/v2/models/nope").status, 404);

    // The tenant is the key's: another tenant's key sees none of acme's models, and the admin
    // key, which has no tenant, is refused.
    let other = tenant(&server, "other");
    let key = other.post_json("/v1/tenants/other/keys", &json!({ "role": "owner" })).json()["key"].clone();
    assert_eq!(server.client(key.as_str().unwrap()).get("/v2/models/mlp").status, 404);
    assert_eq!(server.admin().get("/v2/models/mlp").code(), "forbidden");
}

#[test]
fn json_infer_matches_tract() {
    let server = TestServer::start();
    let invoker = setup(&server);
    let input = models::seeded_input(5, &[1, 100]);
    let mut request = oip_request("input", &[1, 100], &input);
    request["id"] = json!("req-42");

    for (path, seed, version) in [("/v2/models/mlp/infer", 2, "2"), ("/v2/models/mlp/versions/1/infer", 1, "1")] {
        let r = invoker.post_json(path, &request);
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        assert_eq!(body["id"], "req-42");
        assert_eq!(body["model_name"], "mlp");
        assert_eq!(body["model_version"], version);
        let expected = tract_f32(&models::mlp(seed), &input);
        let got = output_f32(&body, 0);
        assert!(max_abs_diff(&got, &expected) <= 1e-5, "{path}: maas {got:?} vs tract {expected:?}");
        assert!(r.header("x-maas-model").unwrap().starts_with(&format!("mlp@{version} sha256:")));
    }

    // INT64 in, INT64 and FP32 out, nested data, two rows; only the requested output.
    let tokens: Vec<i64> = vec![1, 2, 3, 4, -10, 20, 1 << 40, 7];
    let (sum, scaled) = tract_tokens(&tokens, 2);
    let nested = json!([[1, 2, 3, 4], [-10, 20, 1_i64 << 40, 7]]);
    let request = json!({ "inputs": [{ "name": "tokens", "shape": [2, 4], "datatype": "INT64", "data": nested }] });
    let body = invoker.post_json("/v2/models/tokens/infer", &request).json();
    assert_eq!(body["outputs"][0]["name"], "sum");
    assert_eq!(body["outputs"][0]["datatype"], "INT64");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 1]));
    assert_eq!(body["outputs"][0]["data"], json!(sum));
    assert_eq!(output_f32(&body, 1), scaled);
    let mut only_scaled = request.clone();
    only_scaled["outputs"] = json!([{ "name": "scaled" }]);
    let body = invoker.post_json("/v2/models/tokens/infer", &only_scaled).json();
    assert_eq!(body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(body["outputs"][0]["name"], "scaled");
}

#[test]
fn binary_infer_matches_tract() {
    let server = TestServer::start();
    setup(&server);
    let key = invoker_key(&server);
    let input = models::seeded_input(9, &[1, 100]);
    let expected = tract_f32(&models::mlp(2), &input);

    let header = json!({
        "id": "bin-1",
        "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "parameters": { "binary_data_size": 400 } }],
        "outputs": [{ "name": "output", "parameters": { "binary_data": true } }],
    });
    let (headers, body) = binary_body(&header, &[&f32_bytes(&input)]);
    let r = post_raw(&server, &key, "/v2/models/mlp/infer", &headers, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (json, raw) = split_binary(&r);
    assert_eq!(json["id"], "bin-1");
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 40);
    assert!(json["outputs"][0].get("data").is_none());
    let got: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert!(max_abs_diff(&got, &expected) <= 1e-5, "maas {got:?} vs tract {expected:?}");

    // Binary INT64 input; one output in binary, the other in JSON.
    let tokens: Vec<i64> = vec![3, 1, 4, 1, 5, 9, 2, 6, -5, 3, 5, 8];
    let (sum, scaled) = tract_tokens(&tokens, 3);
    let header = json!({
        "inputs": [{ "name": "tokens", "shape": [3, 4], "datatype": "INT64", "parameters": { "binary_data_size": 96 } }],
        "outputs": [{ "name": "sum", "parameters": { "binary_data": true } }, { "name": "scaled" }],
    });
    let (headers, body) = binary_body(&header, &[&i64_bytes(&tokens)]);
    let r = post_raw(&server, &key, "/v2/models/tokens/infer", &headers, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (json, raw) = split_binary(&r);
    let outputs = json["outputs"].as_array().unwrap();
    let sum_out = outputs.iter().find(|o| o["name"] == "sum").unwrap();
    let scaled_out = outputs.iter().find(|o| o["name"] == "scaled").unwrap();
    assert_eq!(sum_out["parameters"]["binary_data_size"], 24);
    assert_eq!(raw, i64_bytes(&sum));
    let scaled_got: Vec<f32> =
        scaled_out["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(scaled_got, scaled);
}

/// A fresh invoker key of `acme`, as a string (for raw requests).
fn invoker_key(server: &TestServer) -> String {
    let r = server.admin().post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" }));
    r.json()["key"].as_str().unwrap().to_string()
}

/// A malformed request: what it is, extra headers, body, words the message must contain.
type Malformed = (&'static str, Vec<(&'static str, String)>, Vec<u8>, &'static [&'static str]);

#[test]
fn malformed_requests_get_precise_400s() {
    let server = TestServer::start();
    let invoker = setup(&server);
    let key = invoker_key(&server);
    let input = f32_bytes(&models::seeded_input(1, &[1, 100]));
    let binary_header = |size: usize| json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "parameters": { "binary_data_size": size } }] });

    let mut cases: Vec<Malformed> = Vec::new();
    let (h, b) = binary_body(&binary_header(400), &[&input[..200]]);
    cases.push(("truncated binary part", h, b, &["input"]));
    let (h, b) = binary_body(&binary_header(396), &[&input[..396]]);
    cases.push(("binary size mismatch", h, b, &["396", "400"]));
    let (h, mut b) = binary_body(&binary_header(400), &[&input]);
    b.truncate(10);
    cases.push(("header longer than the body", h, b, &["Inference-Header-Content-Length"]));
    let unknown = json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP33", "data": [0.0] }] });
    cases.push(("unknown datatype", vec![], unknown.to_string().into_bytes(), &["FP33"]));
    let wrong_shape = oip_request("input", &[1, 99], &vec![0.0; 99]);
    cases.push(("wrong shape", vec![], wrong_shape.to_string().into_bytes(), &["99", "100"]));
    let wrong_name = oip_request("pixels", &[1, 100], &vec![0.0; 100]);
    cases.push(("wrong input name", vec![], wrong_name.to_string().into_bytes(), &["pixels", "input"]));
    let wrong_type =
        json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "INT64", "data": vec![0; 100] }] });
    cases.push(("wrong datatype", vec![], wrong_type.to_string().into_bytes(), &["INT64", "FP32"]));
    let count = oip_request("input", &[1, 100], &[1.0, 2.0]);
    cases.push(("element count", vec![], count.to_string().into_bytes(), &["2", "100"]));
    cases.push(("malformed JSON", vec![], b"{\"inputs\": [".to_vec(), &["JSON"]));
    // Deep nesting must end in a 400, not in the guest running out of its (small) stack.
    for depth in [120, 1000] {
        let data = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let body =
            format!(r#"{{"inputs": [{{"name": "input", "shape": [1, 100], "datatype": "FP32", "data": {data}}}]}}"#);
        cases.push(("deeply nested data", vec![], body.into_bytes(), &[]));
    }

    for (what, headers, body, words) in cases {
        let r = post_raw(&server, &key, "/v2/models/mlp/infer", &headers, &body);
        let message = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(r.status, 400, "{what}: {message}");
        assert_eq!(r.code(), "invalid_input", "{what}: {message}");
        for word in words {
            assert!(message.contains(word), "{what}: {message:?} does not mention {word:?}");
        }
    }
    // The server and the model are fine afterwards.
    let ok = invoker.post_json("/v2/models/mlp/infer", &oip_request("input", &[1, 100], &vec![0.5; 100]));
    assert_eq!(ok.status, 200);
    assert_eq!(server.anonymous().get("/healthz").status, 200);
}
