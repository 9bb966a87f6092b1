//! Models as exporters write them (unnamed and unknown dimensions, computed sizes, exporter
//! symbols, parameter inputs), uploaded and served over HTTP through `builtin:tensor` at two
//! shapes each, and compared with tract in process; declared input specs; an operator tract
//! lacks refused by name.

use maas_tests::{TestServer, models};
use serde_json::{Value, json};
use tract_onnx::prelude::*;

use super::*;

/// One request input: its name, shape and values (FP32 or INT64).
enum Input {
    F32(&'static str, Vec<usize>, Vec<f32>),
    I64(&'static str, Vec<i64>),
}

impl Input {
    fn json(&self) -> Value {
        match self {
            Input::F32(name, shape, data) => json!({ "name": name, "shape": shape, "datatype": "FP32", "data": data }),
            Input::I64(name, data) => json!({ "name": name, "shape": [data.len()], "datatype": "INT64", "data": data }),
        }
    }

    fn tensor(&self) -> Tensor {
        match self {
            Input::F32(_, shape, data) => Tensor::from_shape(shape, data).unwrap(),
            Input::I64(_, data) => Tensor::from_shape(&[data.len()], data).unwrap(),
        }
    }
}

/// A client with an owner key of `acme`, for the Open Inference Protocol's routes.
fn owner(server: &TestServer, admin: &maas_tests::Client) -> maas_tests::Client {
    let r = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "owner" }));
    assert_eq!(r.status, 201);
    server.client(r.json()["key"].as_str().unwrap())
}

fn f32_input(name: &'static str, shape: &[usize], seed: u64) -> Input {
    Input::F32(name, shape.to_vec(), models::seeded_input(seed, shape))
}

/// Uploads `bytes` as model `name` (with `query` on the upload) and deploys function `name`
/// on it with `builtin:tensor`; returns the model view.
fn serve(admin: &maas_tests::Client, name: &str, bytes: &[u8], query: &str) -> Value {
    let r = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}{query}"), bytes);
    assert_eq!(r.status, 201, "upload {name}: {}", String::from_utf8_lossy(&r.body));
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": name } });
    let r = deploy(admin, "acme", name, manifest);
    assert!(r.status == 201 || r.status == 200, "deploy {name}: {}", String::from_utf8_lossy(&r.body));
    r.json();
    admin.get(&format!("/v1/tenants/acme/models/{name}")).json()
}

/// Invokes function `name` with `inputs` and checks every output against `reference` run by
/// tract in process: same shapes, values within 1e-5.
fn answers_as_tract(
    admin: &maas_tests::Client,
    name: &str,
    bytes: &[u8],
    inputs: &[Input],
    reference: fn(&[u8], Vec<Tensor>) -> anyhow::Result<Vec<Tensor>>,
) {
    let request = json!({ "inputs": inputs.iter().map(Input::json).collect::<Vec<_>>() });
    let r = admin.post_json(&format!("/fn/acme/{name}"), &request);
    assert_eq!(r.status, 200, "{name}: {}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let expected = reference(bytes, inputs.iter().map(Input::tensor).collect()).unwrap();
    assert_eq!(body["outputs"].as_array().unwrap().len(), expected.len(), "{name}: {body}");
    for (ix, want) in expected.iter().enumerate() {
        let shape: Vec<usize> =
            body["outputs"][ix]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(shape, want.shape(), "{name} output {ix}");
        let want = want.cast_to::<f32>().unwrap();
        let want = want.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        let got = output_f32(&body, ix);
        assert!(max_abs_diff(&got, &want) <= 1e-5, "{name} output {ix}: maas {got:?} vs tract {want:?}");
    }
}

#[test]
fn exported_patterns_are_served_at_two_shapes() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let tract = models::run_tract;

    let unnamed = models::exported::unnamed_dim();
    let view = serve(&admin, "unnamed", &unnamed, "");
    assert_eq!(view["inputs"][0]["shape"], json!([-1, 4]));
    assert_eq!(view["per_request_shapes"], false, "an unnamed dimension gets a symbol: one plan");
    for (rows, seed) in [(1, 1), (3, 2)] {
        answers_as_tract(&admin, "unnamed", &unnamed, &[f32_input("x", &[rows, 4], seed)], tract);
    }

    let rankless = models::exported::shape_of_unknown_rank();
    let view = serve(&admin, "rankless", &rankless, "");
    assert_eq!(view["inputs"][0]["shape"], json!([-2]), "any rank");
    assert_eq!(view["per_request_shapes"], true);
    for (shape, seed) in [(vec![3], 3), (vec![2, 3, 4], 4)] {
        answers_as_tract(&admin, "rankless", &rankless, &[f32_input("x", &shape, seed)], tract);
    }
    let metadata = owner(&server, &admin).get("/v2/models/rankless").json();
    assert_eq!(metadata["per_request_shapes"], true, "{metadata}");

    let concat = models::exported::symbolic_concat();
    serve(&admin, "concat", &concat, "");
    for (h, seed) in [(1, 5), (40, 6)] {
        answers_as_tract(&admin, "concat", &concat, &[f32_input("x", &[1, h], seed)], tract);
    }

    let fpn = models::exported::fpn_concat();
    let view = serve(&admin, "fpn", &fpn, "");
    assert_eq!(view["per_request_shapes"], true);
    assert_eq!(view["outputs"][0]["shape"], json!([1, 2, -1, 4]));
    for (h, seed) in [(2, 7), (6, 8)] {
        answers_as_tract(&admin, "fpn", &fpn, &[f32_input("x", &[1, 1, h, 4], seed)], tract);
    }
    let odd = admin.post_json("/fn/acme/fpn", &json!({ "inputs": [f32_input("x", &[1, 1, 3, 4], 9).json()] }));
    assert_eq!((odd.status, odd.code()), (400, "invalid_input".into()), "{}", String::from_utf8_lossy(&odd.body));

    let symbols = models::exported::exporter_symbols();
    serve(&admin, "symbols", &symbols, "");
    for (rows, seed) in [(1, 10), (5, 11)] {
        answers_as_tract(&admin, "symbols", &symbols, &[f32_input("x", &[rows, 4], seed)], tract);
    }

    let params = models::exported::parameter_inputs();
    let view = serve(&admin, "params", &params, "");
    assert_eq!(view["per_request_shapes"], true);
    for (shape, pads) in [(vec![3, 4], vec![0, 0, 0, 0]), (vec![4, 3], vec![1, 0, 0, 2])] {
        let inputs = [f32_input("x", &[2, 6], 12), Input::I64("shape", shape), Input::I64("pads", pads)];
        answers_as_tract(&admin, "params", &params, &inputs, models::run_tract_frozen);
    }
}

#[test]
fn declared_inputs_pin_shapes_and_are_checked() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let rankless = models::exported::shape_of_unknown_rank();

    // Declared through the query, percent-encoded as clients do: the rank and a size pinned.
    let view = serve(&admin, "pinned", &rankless, "?input=x%3AFP32%3A-1%2C3");
    assert_eq!(view["inputs"][0]["shape"], json!([-1, 3]));
    assert_eq!(view["declared_inputs"], json!([{ "name": "x", "datatype": "FP32", "shape": [-1, 3] }]));
    let metadata = owner(&server, &admin).get("/v2/models/pinned").json();
    assert_eq!(metadata["declared_inputs"][0]["shape"], json!([-1, 3]), "{metadata}");
    answers_as_tract(&admin, "pinned", &rankless, &[f32_input("x", &[2, 3], 1)], models::run_tract);
    let r = admin.post_json("/fn/acme/pinned", &json!({ "inputs": [f32_input("x", &[2, 4], 1).json()] }));
    assert_eq!((r.status, r.code()), (400, "invalid_input".into()), "{}", String::from_utf8_lossy(&r.body));

    // Bad specs are the request's fault; specs that do not fit the model are the model's.
    for (query, code, needle) in [
        ("?input=x:FLOAT:1", "invalid_request", "unknown datatype"),
        ("?input=x:FP32:1&input=x:FP32:2", "invalid_request", "declared twice"),
        ("?inputs=x:FP32:1", "invalid_request", "unknown query parameter"),
        ("?input=y:FP32:1", "invalid_model", "not an input of the model"),
    ] {
        let r = admin.put_bytes(&format!("/v1/tenants/acme/models/bad{query}"), &rankless);
        assert_eq!((r.status, r.code()), (400, code.into()), "{query}: {}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains(needle), "{query}: {}", String::from_utf8_lossy(&r.body));
    }
    // Every dimension declared: checked by one run on zeros, which an FPN neck with an odd
    // number of rows fails (its two maps have 2 and 3). Nothing is kept.
    let r = admin.put_bytes("/v1/tenants/acme/models/bad?input=x:FP32:1,1,3,4", &models::exported::fpn_concat());
    assert_eq!((r.status, r.code()), (400, "invalid_model".into()), "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("does not run on zeros"), "{}", String::from_utf8_lossy(&r.body));
    // The same model declared with an even number of rows is stored.
    let view = serve(&admin, "even", &models::exported::fpn_concat(), "?input=x:FP32:1,1,4,4");
    assert_eq!(view["inputs"][0]["shape"], json!([1, 1, 4, 4]));
    answers_as_tract(
        &admin,
        "even",
        &models::exported::fpn_concat(),
        &[f32_input("x", &[1, 1, 4, 4], 2)],
        models::run_tract,
    );
    assert_eq!(admin.get("/v1/tenants/acme/models/bad").status, 404);
}

#[test]
fn an_operator_tract_lacks_is_refused_by_name() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let r = admin.put_bytes("/v1/tenants/acme/models/encoder", &models::exported::unsupported_op());
    assert_eq!((r.status, r.code()), (400, "invalid_model".into()));
    let message = r.json()["error"].as_str().unwrap().to_string();
    let expected = "operator LabelEncoder (ai.onnx.ml) is not supported, node #1 \"LabelEncoder\"";
    assert!(message.ends_with(expected), "{message}");
    assert_eq!(admin.get("/v1/tenants/acme/models/encoder").status, 404);
}

#[test]
fn warm_up_shapes_are_planned_during_the_cold_start() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let fpn = models::exported::fpn_concat();
    assert_eq!(admin.put_bytes("/v1/tenants/acme/models/fpn", &fpn).status, 201);
    let warmup = json!([{ "model": "model", "inputs": { "x": [1, 1, 8, 4] } }]);
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "fpn" }, "warmup": warmup });
    assert_eq!(deploy(&admin, "acme", "fpn", manifest.clone()).status, 201);
    let plans = |admin: &maas_tests::Client| -> f64 {
        let text = String::from_utf8(admin.get("/metrics").body).unwrap();
        maas_tests::metrics::sum(&text, "maas_plan_bytes", &[])
    };
    // The cold start (woken by a request of another shape) plans the warm-up shape too.
    answers_as_tract(&admin, "fpn", &fpn, &[f32_input("x", &[1, 1, 2, 4], 1)], models::run_tract);
    let after_cold_start = plans(&admin);
    answers_as_tract(&admin, "fpn", &fpn, &[f32_input("x", &[1, 1, 8, 4], 2)], models::run_tract);
    assert_eq!(plans(&admin), after_cold_start, "the warm-up shape's plan was there already");
    answers_as_tract(&admin, "fpn", &fpn, &[f32_input("x", &[1, 1, 4, 4], 3)], models::run_tract);
    assert!(plans(&admin) > after_cold_start, "a shape not warmed up gets a plan of its own");

    // A warm-up naming an alias the manifest lacks is refused at deploy.
    let mut bad = manifest;
    bad["warmup"][0]["model"] = json!("other");
    let r = deploy(&admin, "acme", "bad", bad);
    assert_eq!((r.status, r.code()), (400, "invalid_request".into()), "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("warmup[0].model"));
}
