//! Upload → deploy → invoke, custom components, symbolic shapes, invalid models, restart.

use maas_tests::TestServer;
use maas_tests::models;
use serde_json::json;
use tract_onnx::prelude::*;

use super::*;

pub(crate) fn tract_mlp(model: &[u8], input: &[f32], batch: usize) -> Vec<f32> {
    let tensor = tract_ndarray::Array2::from_shape_vec((batch, 100), input.to_vec()).unwrap().into_tensor();
    let out = models::run_tract(model, vec![tensor]).expect("tract runs the model");
    out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn upload_deploy_invoke_matches_tract() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let mlp = models::mlp(7);
    let meta = upload(&admin, "acme", "mlp", &mlp);
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["size_bytes"], mlp.len());
    assert_eq!(meta["inputs"][0]["datatype"], "FP32");
    assert_eq!(meta["inputs"][0]["shape"], json!([1, 100]));
    assert_eq!(meta["outputs"][0]["shape"], json!([1, 10]));

    let r = deploy(&admin, "acme", "mlp", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["revision"], 1);
    assert_eq!(r.json()["status"]["state"], "cold");

    let input = models::seeded_input(1, &[1, 100]);
    let expected = tract_mlp(&mlp, &input, 1);
    let input_name = meta["inputs"][0]["name"].as_str().unwrap();
    for round in 0..3 {
        let r = admin.post_json("/fn/acme/mlp", &oip_request(input_name, &[1, 100], &input));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-maas-cold-start"), Some(if round == 0 { "true" } else { "false" }));
        assert!(r.header("x-maas-duration-us").unwrap().parse::<u64>().unwrap() > 0);
        assert!(r.header("x-request-id").is_some());
        assert!(r.header("x-maas-model").unwrap().starts_with("mlp@1 sha256:"));
        let got = output_f32(&r.json(), 0);
        assert!(max_abs_diff(&got, &expected) <= 1e-5, "maas {got:?} vs tract {expected:?}");
    }
    let status = admin.get("/v1/tenants/acme/functions/mlp").json()["status"].clone();
    assert_eq!(status["state"], "warm");
    assert_eq!(status["invocations"], 3);
    assert_eq!(status["cold_starts"], 1);
}

#[test]
fn custom_component_ranks_labels() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let mlp = models::mlp(3);
    upload(&admin, "acme", "mlp", &mlp);
    let digest = upload_component(&admin, "acme", "maas_fn_classify");
    let labels: Vec<String> = (0..10).map(|i| format!("class-{i}")).collect();
    let r = deploy(
        &admin,
        "acme",
        "classify",
        json!({ "component": digest, "models": { "model": "mlp@1" }, "config": { "labels": labels.join(","), "top_k": "3" } }),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let features = models::seeded_input(5, &[1, 100]);
    let r = admin.post_json("/fn/acme/classify", &json!({ "features": features }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let predictions = r.json()["predictions"].as_array().unwrap().clone();
    assert_eq!(predictions.len(), 3);

    let probs = tract_mlp(&mlp, &features, 1);
    let mut order: Vec<usize> = (0..10).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    for (p, &ix) in predictions.iter().zip(&order) {
        assert_eq!(p["index"], ix);
        assert_eq!(p["label"], labels[ix]);
        assert!((p["score"].as_f64().unwrap() as f32 - probs[ix]).abs() <= 1e-5);
    }
}

/// A component built against the previous function world (`maas:function@0.1.0`, before the
/// never-produced `busy` error was dropped) still uploads, links and runs inference.
#[test]
fn components_built_for_the_previous_world_still_run() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp(3));
    let digest = upload_component(&admin, "acme", "maas_fn_compat");
    let r = deploy(&admin, "acme", "old", json!({ "component": digest, "models": { "model": "mlp" } }));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = admin.get("/fn/acme/old");
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (200, "1 FP32 1"));
    // Its errors arrive in its own vocabulary: no model under the alias.
    let r = deploy(&admin, "acme", "bare", json!({ "component": digest }));
    assert_eq!(r.status, 201);
    let r = admin.get("/fn/acme/bare");
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("names no model"), "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn symbolic_batch_serves_batch_1_and_8() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let model = models::mlp_batch(11);
    let meta = upload(&admin, "acme", "mlpb", &model);
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 100]));
    let name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    let r = deploy(&admin, "acme", "f", json!({ "component": "builtin:tensor", "models": { "model": "mlpb" } }));
    assert_eq!(r.status, 201);
    for batch in [1usize, 8, 1] {
        let input = models::seeded_input(batch as u64, &[batch, 100]);
        let r = admin.post_json("/fn/acme/f", &oip_request(&name, &[batch, 100], &input));
        assert_eq!(r.status, 200, "batch {batch}: {}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        assert_eq!(body["outputs"][0]["shape"], json!([batch, 10]));
        let expected = tract_mlp(&model, &input, batch);
        assert!(max_abs_diff(&output_f32(&body, 0), &expected) <= 1e-5);
    }
}

#[test]
fn invalid_models_are_refused_and_leave_nothing() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    for (bytes, what) in
        [(models::invalid_onnx(), "garbage"), (models::broken_graph(), "broken graph"), (Vec::new(), "empty")]
    {
        let r = admin.put_bytes("/v1/tenants/acme/models/bad", &bytes);
        assert_eq!(r.status, 400, "{what}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.code(), "invalid_model", "{what}");
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(admin.get("/v1/tenants/acme/models/bad").status, 404);
    assert_eq!(admin.get("/v1/tenants/acme/models").json()["models"], json!([]));
    // The next good upload is version 1: the refused ones took nothing.
    assert_eq!(upload(&admin, "acme", "bad", &models::mlp(1))["version"], 1);
    assert_eq!(admin.get("/v1/tenants/acme").json()["usage"]["storage_bytes"], models::mlp(1).len());
}

#[test]
fn invalid_inputs_get_precise_errors() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let meta = upload(&admin, "acme", "mlp", &models::mlp(1));
    let name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
    deploy(&admin, "acme", "f", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    let cases = [
        (oip_request(&name, &[1, 99], &[0.0; 99]), "shape"),
        (oip_request("nope", &[1, 100], &[0.0; 100]), "nope"),
        (oip_request(&name, &[1, 100], &[0.0; 10]), "100"),
        (
            json!({ "inputs": [{ "name": name, "shape": [1, 100], "datatype": "INT64", "data": vec![0; 100] }] }),
            "INT64",
        ),
    ];
    for (body, needle) in cases {
        let r = admin.post_json("/fn/acme/f", &body);
        assert_eq!(r.status, 400, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.code(), "invalid_input");
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{message:?} should mention {needle:?}");
    }
    let r = admin.post_bytes("/fn/acme/f", b"{not json", "application/json");
    assert_eq!(r.status, 400);
}

#[test]
fn datatypes_round_trip_through_builtin_tensor() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let cases: [(&str, Value); 7] = [
        ("FP32", json!([1.5, -2.0, 3.25, 0.0, 1.0, 2.0])),
        ("FP64", json!([1.5, -2.0, 3.25, 0.0, 1e300, 2.0])),
        ("INT32", json!([1, -2, 3, 2147483647, -2147483648, 0])),
        ("INT64", json!([1, -2, 3, 9007199254740993i64, -5, 0])),
        ("UINT8", json!([0, 1, 2, 255, 128, 7])),
        ("INT8", json!([0, -1, 2, 127, -128, 7])),
        ("BOOL", json!([true, false, true, true, false, false])),
    ];
    for (datatype, data) in cases {
        let model_name = datatype.to_ascii_lowercase();
        upload(&admin, "acme", &model_name, &models::identity(datatype).unwrap());
        let f = format!("id-{model_name}");
        assert_eq!(
            deploy(&admin, "acme", &f, json!({ "component": "builtin:tensor", "models": { "model": model_name } }))
                .status,
            201
        );
        let request = json!({ "inputs": [{ "name": "x", "shape": [2, 3], "datatype": datatype, "data": data }] });
        let r = admin.post_json(&format!("/fn/acme/{f}"), &request);
        assert_eq!(r.status, 200, "{datatype}: {}", String::from_utf8_lossy(&r.body));
        let out = &r.json()["outputs"][0];
        assert_eq!(out["datatype"], datatype);
        assert_eq!(out["shape"], json!([2, 3]));
        assert_eq!(out["data"], data, "{datatype}");
    }
}

#[test]
fn restarted_server_serves_the_same_functions() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = models::mlp(5);
    let input = models::seeded_input(9, &[1, 100]);
    let first = {
        let server = TestServer::start_in(dir.path());
        let admin = tenant(&server, "acme");
        let meta = upload(&admin, "acme", "mlp", &mlp);
        let name = meta["inputs"][0]["name"].as_str().unwrap().to_string();
        let digest = upload_component(&admin, "acme", "maas_fn_classify");
        deploy(&admin, "acme", "tensor", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
        deploy(&admin, "acme", "classify", json!({ "component": digest, "models": { "model": "mlp" } }));
        let a = admin.post_json("/fn/acme/tensor", &oip_request(&name, &[1, 100], &input)).json();
        let b = admin.post_json("/fn/acme/classify", &json!({ "features": input })).json();
        server.stop();
        (name, a, b)
    };
    let server = TestServer::start_in(dir.path());
    let admin = server.admin();
    let names: Vec<String> = admin.get("/v1/tenants/acme/functions").json()["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["classify", "tensor"]);
    let a = admin.post_json("/fn/acme/tensor", &oip_request(&first.0, &[1, 100], &input));
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-maas-cold-start"), Some("true"));
    assert_eq!(a.json()["outputs"], first.1["outputs"]);
    let b = admin.post_json("/fn/acme/classify", &json!({ "features": input }));
    assert_eq!(b.json(), first.2);
}

#[test]
fn authentication_is_required() {
    let server = TestServer::start();
    tenant(&server, "acme");
    let anonymous = server.anonymous();
    assert_eq!(anonymous.get("/healthz").status, 200);
    assert_eq!(anonymous.get("/readyz").status, 200);
    let r = anonymous.get("/v1/tenants");
    assert_eq!((r.status, r.code().as_str()), (401, "unauthenticated"));
    let r = server.client("wrong").get("/v1/tenants");
    assert_eq!((r.status, r.code().as_str()), (401, "unauthenticated"));
    let r = anonymous.post_json("/fn/acme/nothing", &json!({}));
    assert_eq!(r.status, 401);
    let r = server.admin().post_json("/v1/tenants", &json!({ "name": "acme" }));
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    let r = server.admin().post_json("/v1/tenants", &json!({ "name": "Bad_Name" }));
    assert_eq!(r.status, 400);
}
