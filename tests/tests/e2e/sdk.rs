//! The SDK against a real server (`maas_tests::TestServer`: in process, on a loopback port,
//! over a temporary sled directory): every call at least once, and the errors a user sees.

use std::io::Write;
use std::sync::{Arc, Mutex};

use maas_sdk::{
    AuditQuery, Client, ComponentRef, Error, FunctionState, InferInput, InferRequest, Invoke, Manifest, QuotaPatch,
    Role, TenantUpdate, Upload,
};
use maas_tests::{ADMIN_KEY, TestServer, models};

/// The admin client of `server`.
fn admin(server: &TestServer) -> Client {
    Client::new(&format!("http://{}", server.addr())).expect("loopback URL").with_key(ADMIN_KEY)
}

/// A quota that keeps the rate limiter out of the way.
fn quota() -> QuotaPatch {
    QuotaPatch { rate_per_second: Some(10_000.0), ..QuotaPatch::default() }
}

/// An OIP request for the seed MLP.
fn mlp_request() -> InferRequest {
    let features: Vec<f32> = (0..100).map(|i| i as f32 * 0.01).collect();
    InferRequest::new(vec![InferInput::fp32("input", [1, 100], &features)])
}

/// `bytes` in a temporary file.
fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(bytes).expect("write temp file");
    file.flush().expect("flush temp file");
    file
}

/// Asserts that `result` is the server's refusal with `status` and `code`; returns the message.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Error>, status: u16, code: &str) -> String {
    match result {
        Err(Error::Api(e)) => {
            assert_eq!((e.status, e.code.as_str()), (status, code), "unexpected refusal: {e}");
            assert!(!e.message.is_empty(), "refusal without a message");
            e.message
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_call_against_a_real_server() {
    let server = TestServer::start();
    let admin = admin(&server);

    // Health, readiness, metrics, OIP health.
    admin.health().await.unwrap();
    admin.ready().await.unwrap();
    assert!(maas_tests::metrics::has(&admin.metrics().await.unwrap(), "maas_http_requests_total"));
    assert!(admin.clone().without_key().oip_live().await.unwrap());
    assert!(admin.clone().without_key().oip_ready().await.unwrap());

    // Tenants.
    let created = admin.create_tenant("acme", Some(quota())).await.unwrap();
    let t = &created.tenant;
    assert_eq!((t.name.as_str(), t.suspended, t.quota.rate_per_second), ("acme", false, 10_000.0));
    refused(admin.create_tenant("acme", None).await, 409, "conflict");
    assert!(admin.tenants().await.unwrap().iter().any(|t| t.tenant.name == "acme"));
    let patched = admin.set_quota("acme", QuotaPatch { max_models: Some(7), ..QuotaPatch::default() }).await.unwrap();
    assert_eq!(patched.tenant.quota.max_models, 7);
    assert!(admin.set_suspended("acme", true).await.unwrap().tenant.suspended);
    let back = admin.update_tenant("acme", &TenantUpdate { suspended: Some(false), quota: None }).await.unwrap();
    assert!(!back.tenant.suspended);

    // Keys.
    let owner_key = admin.create_key("acme", Role::Owner, Some("sdk test")).await.unwrap();
    assert_eq!((owner_key.info.role, owner_key.info.label.as_deref()), (Role::Owner, Some("sdk test")));
    assert!(owner_key.key.starts_with("maas_"), "{}", owner_key.key);
    let owner = admin.clone().with_key(owner_key.key.clone());
    let invoker_key = owner.create_key("acme", Role::Invoker, None).await.unwrap();
    let invoker = admin.clone().with_key(invoker_key.key.clone());
    let keys = owner.keys("acme").await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k.id == invoker_key.info.id && k.role == Role::Invoker));

    // Models: a streamed file upload with progress, a second version, metadata, versions.
    let mlp = models::mlp(42);
    let file = temp_file(&mlp);
    let progress = Arc::new(Mutex::new(Vec::new()));
    let seen = progress.clone();
    let upload = Upload::file(file.path()).await.unwrap().on_progress(move |sent, total| {
        seen.lock().unwrap().push((sent, total));
    });
    let v1 = owner.upload_model("acme", "mlp", upload).await.unwrap();
    assert_eq!((v1.name.as_str(), v1.version, v1.size_bytes), ("mlp", 1, mlp.len() as u64));
    assert_eq!(v1.inputs[0].name, "input");
    assert_eq!(v1.inputs[0].shape, vec![1, 100]);
    assert_eq!(v1.outputs[0].datatype, maas_sdk::types::Datatype::Fp32);
    let total = mlp.len() as u64;
    assert_eq!(progress.lock().unwrap().last(), Some(&(total, Some(total))), "progress ends at the total");
    let v2 = owner.upload_model("acme", "mlp", Upload::bytes(models::mlp(7))).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v1.sha256, v2.sha256);
    assert_eq!(owner.model("acme", "mlp", None).await.unwrap().version, 2);
    assert_eq!(owner.model("acme", "mlp", Some(1)).await.unwrap().sha256, v1.sha256);
    let listed = owner.models("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].latest_version, listed[0].versions.len()), (2, 2));
    owner.delete_model("acme", "mlp", Some(1)).await.unwrap();
    refused(owner.model("acme", "mlp", Some(1)).await, 404, "not_found");

    // Components.
    let wasm = maas_tests::guest_wasm("maas_fn_classify");
    let component = owner.upload_component("acme", Upload::bytes(wasm.clone())).await.unwrap();
    assert!(component.digest.starts_with("sha256:"), "{}", component.digest);
    assert_eq!(component.size_bytes, wasm.len() as u64);
    assert_eq!(owner.components("acme").await.unwrap()[0].digest, component.digest);

    // Functions: builtin:tensor, deployed then redeployed.
    let mut manifest = Manifest::new(ComponentRef::TENSOR);
    manifest.models.insert("model".into(), "mlp".parse().unwrap());
    let first = owner.deploy("acme", "tensor", &manifest).await.unwrap();
    assert!(first.created);
    assert_eq!((first.function.revision, first.function.status.state), (1, FunctionState::Cold));
    assert!(first.function.url.ends_with("/fn/acme/tensor"), "{}", first.function.url);
    manifest.scale.idle_timeout_s = 300;
    let second = owner.deploy("acme", "tensor", &manifest).await.unwrap();
    assert!(!second.created);
    assert_eq!((second.function.revision, second.function.manifest.scale.idle_timeout_s), (2, 300));

    // Invocation: OIP JSON through builtin:tensor, cold then warm, by the invoker.
    let answer = invoker.invoke_json("acme", "tensor", &mlp_request()).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.cold_start(), Some(true));
    assert!(answer.duration_us().is_some() && answer.request_id().is_some());
    assert!(answer.header("x-maas-model").is_some_and(|m| m.starts_with("mlp@2 sha256:")), "{:?}", answer.headers);
    let outputs = answer.infer_response().unwrap();
    let probabilities = outputs.output("output").and_then(|o| o.to_f32()).expect("output");
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{probabilities:?}");
    let warm = invoker.invoke_json("acme", "tensor", &mlp_request()).await.unwrap();
    assert_eq!(warm.cold_start(), Some(false));

    // A custom component, with a path, query and header, and its own error answer.
    let mut manifest = Manifest::new(component.digest.parse().unwrap());
    manifest.models.insert("model".into(), "mlp".parse().unwrap());
    manifest.config.insert("labels".into(), "zero,one,two,three,four,five,six,seven,eight,nine".into());
    owner.deploy("acme", "classify", &manifest).await.unwrap();
    let features: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.1).collect();
    let request = Invoke::json(&serde_json::json!({ "features": features }))
        .unwrap()
        .path("/predict")
        .query("verbose=1")
        .header("x-trace", "abc");
    let answer = owner.invoke("acme", "classify", request).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body: serde_json::Value = answer.json().unwrap();
    assert_eq!(body["predictions"].as_array().map(Vec::len), Some(3), "{body}");
    let refusal = owner.invoke("acme", "classify", Invoke::get()).await.unwrap();
    assert_eq!(refusal.status, 405);
    refused(refusal.error_for_status(), 405, "invalid_request");

    let functions = owner.functions("acme").await.unwrap();
    assert_eq!(functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["classify", "tensor"]);
    let status = owner.function("acme", "tensor").await.unwrap().status;
    assert_eq!((status.invocations, status.cold_starts), (2, 1));

    // The Open Inference Protocol, with the tenant's key.
    let meta = owner.oip_server().await.unwrap();
    assert_eq!(meta.name, "maas");
    let model = owner.oip_model("mlp", None).await.unwrap();
    assert_eq!((model.name.as_str(), model.inputs[0].shape.as_slice()), ("mlp", &[1, 100][..]));
    assert_eq!(owner.oip_model("mlp", Some(2)).await.unwrap().versions, ["2"]);
    assert!(owner.oip_model_ready("mlp", None).await.unwrap());
    assert!(!owner.oip_model_ready("mlp", Some(1)).await.unwrap(), "version 1 was deleted");
    let inferred = invoker.oip_infer("mlp", Some(2), &mlp_request()).await.unwrap();
    assert_eq!(inferred.outputs[0].to_f32().unwrap(), probabilities);

    // Usage: every invocation counted, per function too.
    let report = owner.usage("acme").await.unwrap();
    assert_eq!(report.tenant, "acme");
    assert!(report.totals.usage.invocations >= 4, "{report:?}");
    assert_eq!(report.functions["tensor"].usage.invocations, 2, "{report:?}");
    assert!(report.storage_bytes > 0 && !report.days.is_empty(), "{report:?}");

    // The audit trail (admin), filtered and limited.
    let entries =
        admin.audit(&AuditQuery { tenant: Some("acme".into()), limit: Some(500), before: None }).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for action in ["tenant.create", "key.create", "model.upload", "component.upload", "function.deploy"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert!(entries.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let newest = admin.audit(&AuditQuery { limit: Some(1), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(newest.len(), 1);
    let page = AuditQuery { before: Some(newest[0].seq), limit: Some(1), ..AuditQuery::default() };
    assert!(admin.audit(&page).await.unwrap()[0].seq < newest[0].seq);

    // Any other route, as JSON.
    let raw = owner.request_json(http::Method::GET, "/v1/tenants/acme/functions/tensor", None).await.unwrap();
    assert_eq!(raw["revision"], 2);

    // Revocation, deletion.
    owner.revoke_key("acme", &invoker_key.info.id).await.unwrap();
    refused(
        invoker.invoke_json("acme", "tensor", &mlp_request()).await.unwrap().error_for_status(),
        401,
        "unauthenticated",
    );
    owner.delete_function("acme", "classify").await.unwrap();
    refused(owner.function("acme", "classify").await, 404, "not_found");
    refused(owner.delete_model("acme", "mlp", None).await, 409, "conflict");
    owner.delete_function("acme", "tensor").await.unwrap();
    owner.delete_model("acme", "mlp", None).await.unwrap();
    admin.delete_tenant("acme").await.unwrap();
    refused(admin.tenant("acme").await, 404, "not_found");
    refused(owner.models("acme").await, 401, "unauthenticated");
}

#[tokio::test]
async fn errors_carry_the_servers_code_and_message() {
    let server = TestServer::start();
    let admin = admin(&server);
    admin.create_tenant("acme", Some(quota())).await.unwrap();

    // A bad key.
    let stranger = admin.clone().with_key("maas_0123456789abcdef_nope");
    let message = refused(stranger.tenants().await, 401, "unauthenticated");
    assert!(message.contains("valid key"), "{message}");
    let e = stranger.tenants().await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("unauthenticated")));
    assert!(e.to_string().contains("(unauthenticated, HTTP 401)"), "{e}");

    // A missing model.
    let message = refused(admin.model("acme", "ghost", None).await, 404, "not_found");
    assert!(message.contains("ghost"), "{message}");

    // An invalid model file: refused with tract's reason, nothing kept.
    let message =
        refused(admin.upload_model("acme", "junk", Upload::bytes(models::invalid_onnx())).await, 400, "invalid_model");
    assert!(message.contains("tract"), "{message}");
    refused(admin.model("acme", "junk", None).await, 404, "not_found");

    // An invalid component.
    refused(admin.upload_component("acme", Upload::bytes(&b"\0asm not really"[..])).await, 400, "invalid_component");

    // A role that may not: the invoker cannot upload.
    let invoker = admin.create_key("acme", Role::Invoker, None).await.unwrap();
    let invoker = admin.clone().with_key(invoker.key);
    refused(invoker.upload_model("acme", "m", Upload::bytes(models::mlp(1))).await, 403, "forbidden");

    // Invalid arguments are refused before anything is sent.
    let bad = admin.invoke("acme", "f", Invoke::get().header("bad header", "x")).await;
    assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");

    // A server that accepts but never answers: the client's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = Client::new(&format!("http://{}", silent.local_addr().unwrap()))
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(300));
    let e = slow.health().await.unwrap_err();
    assert!(e.to_string().contains("no complete answer within 300ms"), "{e}");
    drop(silent);

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = Client::new(&format!("http://127.0.0.1:{port}")).unwrap().health().await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("GET http://127.0.0.1:{port}/healthz")), "{e}");
    assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
}

/// The server refuses an oversized upload from its headers: the client waits for
/// `100 Continue`, gets the refusal instead, and never sends the body.
#[tokio::test]
async fn quota_refusals_arrive_before_the_body_is_sent() {
    let server = TestServer::start();
    let admin = admin(&server);
    let small = QuotaPatch { max_model_bytes: Some(64 << 10), max_models: Some(1), ..quota() };
    admin.create_tenant("tiny", Some(small)).await.unwrap();

    // Bigger than max_model_bytes, declared by the file's size, and bigger than what the server
    // drains of a refused body (1 MiB): not a byte of it is sent.
    let big = models::mlp_sized(1, 640); // ≈ 1.9 MB
    assert!(big.len() > 1 << 20);
    let file = temp_file(&big);
    let sent = Arc::new(Mutex::new(0u64));
    let seen = sent.clone();
    let upload = Upload::file(file.path()).await.unwrap().on_progress(move |n, _| *seen.lock().unwrap() = n);
    let message = refused(admin.upload_model("tiny", "big", upload).await, 403, "quota_exceeded");
    assert!(message.contains("max_model_bytes"), "{message}");
    assert_eq!(*sent.lock().unwrap(), 0, "no body byte is sent after a refusal from the headers");

    // A smaller one the server lets the client finish sending (it drains it): the same answer.
    let medium = models::mlp_sized(1, 256); // ≈ 0.4 MB
    assert!(medium.len() > 64 << 10);
    let message = refused(admin.upload_model("tiny", "medium", Upload::bytes(medium)).await, 403, "quota_exceeded");
    assert!(message.contains("max_model_bytes"), "{message}");

    // max_models: a second model name is refused from the headers too.
    admin.upload_model("tiny", "first", Upload::bytes(models::mlp(1))).await.unwrap();
    let message =
        refused(admin.upload_model("tiny", "second", Upload::bytes(models::mlp(2))).await, 403, "quota_exceeded");
    assert!(message.contains("max_models"), "{message}");
}

/// Without a declared size the server can only refuse once it has read past the limit; the
/// client still reports the server's answer, not the broken connection.
#[tokio::test]
async fn quota_refusal_in_the_middle_of_a_stream() {
    let server = TestServer::start();
    let admin = admin(&server);
    admin.create_tenant("tiny", Some(QuotaPatch { max_model_bytes: Some(256 << 10), ..quota() })).await.unwrap();
    let big = models::mlp_sized(1, 1024); // ≈ 4.6 MB
    let upload = Upload::reader(std::io::Cursor::new(big), None);
    let message = refused(admin.upload_model("tiny", "big", upload).await, 403, "quota_exceeded");
    assert!(message.contains("max_model_bytes"), "{message}");
    // Nothing of it was kept.
    refused(admin.model("tiny", "big", None).await, 404, "not_found");
}

/// A server whose stored digest differs from what was sent: the upload is an error.
#[tokio::test]
async fn a_digest_mismatch_is_an_error() {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A one-request server that reads the upload and claims another digest.
    let fake = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut writer = stream;
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = serde_json::json!({
            "name": "m", "version": 1, "sha256": "0".repeat(64), "size_bytes": length,
            "inputs": [], "outputs": [], "created_at": "2025-01-01T00:00:00Z",
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(answer.as_bytes()).unwrap();
        body
    });
    let client = Client::new(&format!("http://{addr}")).unwrap();
    let e = client.upload_model("t", "m", Upload::bytes(&b"model bytes"[..])).await.unwrap_err();
    match &e {
        Error::DigestMismatch { sent, stored } => {
            assert_eq!(stored, &"0".repeat(64));
            use sha2::Digest;
            assert_eq!(sent, &hex::encode(sha2::Sha256::digest(b"model bytes")));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(fake.join().unwrap(), b"model bytes");
}

/// Explanations (JSON and PNG), fairness audits and model cards on models whose answers are
/// known in closed form.
#[tokio::test]
async fn trust_routes() {
    use maas_sdk::{CardFormat, ExplainRequest, FairnessRequest, Favorable, Method, ModelCard};
    let server = TestServer::start();
    let admin = admin(&server);
    admin.create_tenant("acme", Some(quota())).await.unwrap();
    // y = x·[1, 2, 3, 4] + 0.5
    admin.upload_model("acme", "lin", Upload::bytes(models::linear(&[1.0, 2.0, 3.0, 4.0], 0.5))).await.unwrap();

    // Occlusion against a zero baseline: each feature's attribution is weight × value.
    let request = ExplainRequest::new(Method::Occlusion, vec![InferInput::fp32("x", [1, 4], &[1.0, 1.0, 2.0, 0.5])]);
    let explanation = admin.explain("acme", "lin", None, &request).await.unwrap();
    assert_eq!((explanation.method, explanation.output.as_str()), (Method::Occlusion, "y"));
    assert!((explanation.prediction - 11.5).abs() < 1e-5, "{explanation:?}");
    assert!((explanation.baseline_prediction - 0.5).abs() < 1e-5, "{explanation:?}");
    let attribution = &explanation.attributions[0];
    assert_eq!((attribution.name.as_str(), attribution.shape.as_slice()), ("x", &[1, 4][..]));
    for (got, want) in attribution.data.iter().zip([1.0, 2.0, 6.0, 2.0]) {
        assert!((got - want).abs() < 1e-5, "{:?}", attribution.data);
    }

    // A heatmap over an image-shaped input.
    let (c, side) = (3, 8);
    let weights: Vec<f32> = (0..c * side * side).map(|i| (i % 5) as f32 - 2.0).collect();
    admin.upload_model("acme", "img", Upload::bytes(models::image_linear(c, side, &weights))).await.unwrap();
    let image: Vec<f32> = (0..c * side * side).map(|i| (i % 3) as f32).collect();
    let shape = [1, c as u64, side as u64, side as u64];
    let mut request = ExplainRequest::new(Method::Occlusion, vec![InferInput::fp32("image", shape, &image)]);
    request.params.patch = Some(4);
    let png = admin.explain_png("acme", "img", Some(1), &request).await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A fairness audit: group a is always selected (y ≥ 5), group b half the time.
    let rows = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    let audit = FairnessRequest {
        inputs: vec![InferInput::fp32("x", [4, 4], &rows)],
        groups: vec!["a".into(), "a".into(), "b".into(), "b".into()],
        labels: Some(vec![true, true, true, true]),
        favorable: Favorable::threshold(5.0),
        reference_group: None,
    };
    let report = admin.fairness_audit("acme", "lin", None, &audit).await.unwrap();
    assert_eq!((report.groups["a"].selection_rate, report.groups["b"].selection_rate), (1.0, 0.5));
    assert_eq!(report.reference_group, "a");
    assert!((report.statistical_parity_difference + 0.5).abs() < 1e-9, "{report:?}");
    assert_eq!(report.disparate_impact_ratio, Some(0.5));
    assert_eq!(report.groups["b"].tpr, Some(Some(0.5)));
    assert!(!report.passes_four_fifths_rule);
    assert_eq!((report.model.as_deref(), report.rows), (Some("lin@1"), Some(4)));

    // The model card: what the owner wrote, plus the facts (with the audit just made).
    let card = ModelCard {
        description: Some("A linear scorer.".into()),
        license: Some("Apache-2.0".into()),
        ..ModelCard::default()
    };
    let document = admin.put_model_card("acme", "lin", &card).await.unwrap();
    assert_eq!(document.card, card);
    let document = admin.model_card("acme", "lin").await.unwrap();
    assert_eq!((document.name.as_str(), document.latest_version), ("lin", 1));
    let audited = document.versions[0].audit.as_ref().expect("the latest audit is on the card");
    assert_eq!(audited.disparate_impact_ratio, Some(0.5));
    assert_eq!(document.versions[0].info.inputs[0].name, "x");
    let markdown = admin.model_card_text("acme", "lin", CardFormat::Markdown).await.unwrap();
    assert!(markdown.contains("A linear scorer."), "{markdown}");
    let html = admin.model_card_text("acme", "lin", CardFormat::Html).await.unwrap();
    assert!(html.contains("A linear scorer.") && html.contains("<"), "{html}");
    refused(admin.model_card("acme", "ghost").await, 404, "not_found");
}
