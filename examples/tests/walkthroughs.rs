//! Every walk-through of `maas_examples` against a real server started in process (loopback
//! port, temporary sled directory), as `cargo test --workspace` runs them; and the template
//! function users copy, deployed and called.

use maas_examples::{LABELS, sample_features};
use maas_sdk::{Client, Role, Upload};
use maas_tests::{ADMIN_KEY, TestServer};

fn url(server: &TestServer) -> String {
    format!("http://{}", server.addr())
}

/// What tract computes for the seed model on the walk-throughs' features.
fn reference_probabilities() -> Vec<f32> {
    use maas_tests::models;
    let input = tract_onnx::prelude::Tensor::from_shape(&[1, 100], &sample_features()).unwrap();
    let outputs = models::run_tract(&models::mlp(42), vec![input]).unwrap();
    outputs[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

#[tokio::test]
async fn quickstart() {
    let server = TestServer::start();
    let done = maas_examples::quickstart(&url(&server), ADMIN_KEY).await.unwrap();
    assert_eq!((done.model.name.as_str(), done.model.version), ("mlp", 1));
    assert_eq!(done.cold_starts, (true, false));
    let expected = reference_probabilities();
    assert_eq!(done.probabilities.len(), 10);
    for (got, want) in done.probabilities.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-5, "{:?} vs tract's {expected:?}", done.probabilities);
    }
}

#[tokio::test]
async fn custom_function() {
    let server = TestServer::start();
    let done = maas_examples::custom_function(&url(&server), ADMIN_KEY).await.unwrap();
    assert!(done.digest.starts_with("sha256:"), "{}", done.digest);
    assert_eq!(done.predictions.len(), 3);
    // The top 3 of tract's own answer (ties in either order), with the manifest's labels.
    let expected = reference_probabilities();
    let mut top: Vec<f32> = expected.clone();
    top.sort_by(|a, b| b.total_cmp(a));
    for (p, want) in done.predictions.iter().zip(&top) {
        assert_eq!(p.label, LABELS[p.index], "{:?}", done.predictions);
        assert!((p.score - expected[p.index]).abs() < 1e-5, "{:?} vs {expected:?}", done.predictions);
        assert!((p.score - want).abs() < 1e-5, "{:?} is not the top 3 of {expected:?}", done.predictions);
    }
}

#[tokio::test]
async fn tenant_admin() {
    let server = TestServer::start();
    let done = maas_examples::tenant_admin(&url(&server), ADMIN_KEY).await.unwrap();
    assert_eq!((done.invoker_upload.status, done.invoker_upload.code.as_str()), (403, "forbidden"));
    assert_eq!(done.invoker_invocation, 200);
    assert_eq!((done.after_revocation.status, done.after_revocation.code.as_str()), (401, "unauthenticated"));
    assert_eq!((done.while_suspended.status, done.while_suspended.code.as_str()), (403, "forbidden"));
    assert!(done.while_suspended.message.contains("suspended"), "{}", done.while_suspended.message);
    for action in ["tenant.update", "key.revoke", "function.deploy", "model.upload", "key.create", "tenant.create"] {
        assert!(done.audit_actions.iter().any(|a| a == action), "{action} not in {:?}", done.audit_actions);
    }
}

/// The template in functions/template, as its crate doc tells users to deploy it.
#[tokio::test]
async fn the_template_function_works_as_documented() {
    let server = TestServer::start();
    let admin = Client::new(&url(&server)).unwrap().with_key(ADMIN_KEY);
    admin.create_tenant("acme", None).await.unwrap();
    let owner = admin.clone().with_key(admin.create_key("acme", Role::Owner, None).await.unwrap().key);
    owner.upload_model("acme", "mlp", Upload::bytes(maas_tests::models::mlp(42))).await.unwrap();
    let component = owner.upload_component("acme", Upload::bytes(maas_examples::template_wasm())).await.unwrap();
    let mut manifest = maas_sdk::Manifest::new(component.digest.parse().unwrap());
    manifest.models.insert("model".into(), "mlp".parse().unwrap());
    manifest.config.insert("greeting".into(), "hi".into());
    owner.deploy("acme", "hello", &manifest).await.unwrap();

    // GET: an echo and the model's signature.
    let request = maas_sdk::Invoke::get().path("/anything").query("x=1");
    let answer = owner.invoke("acme", "hello", request).await.unwrap().error_for_status().unwrap();
    let body: serde_json::Value = answer.json().unwrap();
    assert_eq!(body["greeting"], "hi");
    assert_eq!(
        (body["method"].as_str(), body["path"].as_str(), body["query"].as_str()),
        (Some("GET"), Some("/anything"), Some("x=1"))
    );
    assert_eq!(
        body["model"]["inputs"][0],
        serde_json::json!({ "name": "input", "datatype": "FP32", "shape": [1, 100] })
    );

    // POST: features in, every output out.
    let answer =
        owner.invoke_json("acme", "hello", &serde_json::json!({ "features": sample_features() })).await.unwrap();
    let body: serde_json::Value = answer.error_for_status().unwrap().json().unwrap();
    let got: Vec<f32> =
        body["outputs"]["output"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let expected = reference_probabilities();
    assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5), "{got:?} vs {expected:?}");

    // A malformed body is the caller's error, in the platform's shape.
    let bad = owner.invoke_json("acme", "hello", &serde_json::json!([1, 2])).await.unwrap();
    let e = bad.error_for_status().unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some("invalid_input")));
}
