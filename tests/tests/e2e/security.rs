//! Multi-tenancy and security: who may use which route (401 vs 403, the same 403 whether or
//! not the resource exists), cross-tenant isolation, key revocation, tenant deletion and
//! suspension, every quota, encryption at rest (no plaintext on disk, tampering detected) and
//! the audit trail.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use maas_tests::{ADMIN_KEY, Client, Response, TestServer, models};
use rand::Rng;
use serde_json::{Value, json};
use tract_onnx::prelude::*;

use super::*;

/// A well-formed tenant key (`maas_<16 hex>_<64 hex>`) that was never issued.
const UNKNOWN_KEY: &str = "maas_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000";

/// A request body with its content type, if any.
type Payload = Option<(Vec<u8>, &'static str)>;

/// A JSON request body.
fn json_body(v: &Value) -> Payload {
    Some((v.to_string().into_bytes(), "application/json"))
}

/// A quota that keeps the rate limiter out of tests that are not about it.
fn unlimited_rate() -> Value {
    json!({ "rate_per_second": 100000 })
}

/// The body as text, for failure messages.
fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The error `code` of a response, or `""` when the body is not a JSON error (never panics).
fn code_of(r: &Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Asserts `r` is the error `status`/`code`, naming `what` on failure.
#[track_caller]
fn assert_error(r: &Response, status: u16, code: &str, what: &str) {
    assert_eq!((r.status, code_of(r).as_str()), (status, code), "{what}: {}", text(r));
}

/// Creates tenant `name` with `quota` (as admin) and returns the admin client.
fn tenant_with(server: &TestServer, name: &str, quota: Value) -> Client {
    let admin = server.admin();
    let r = admin.post_json("/v1/tenants", &json!({ "name": name, "quota": quota }));
    assert_eq!(r.status, 201, "create tenant {name}: {}", text(&r));
    admin
}

/// Creates a `role` key of `tenant` with `client`; returns `(id, secret)`.
fn new_key(client: &Client, tenant: &str, role: &str) -> (String, String) {
    let r = client.post_json(&format!("/v1/tenants/{tenant}/keys"), &json!({ "role": role, "label": role }));
    assert_eq!(r.status, 201, "create {role} key of {tenant}: {}", text(&r));
    let body = r.json();
    assert_eq!(body["role"], role);
    let id = body["id"].as_str().expect("key id").to_string();
    let secret = body["key"].as_str().expect("key secret").to_string();
    (id, secret)
}

/// `PUT` of raw bytes that the server may refuse from the headers alone: it still lets a
/// small body arrive, so an ordinary client reads the refusal rather than a broken pipe.
fn put_early(client: &Client, path: &str, bytes: &[u8]) -> Response {
    client.send("PUT", path, Some((bytes, "application/octet-stream")))
}

/// The `usage` object of `GET /v1/tenants/{tenant}` (as admin).
fn usage(admin: &Client, tenant: &str) -> Value {
    let r = admin.get(&format!("/v1/tenants/{tenant}"));
    assert_eq!(r.status, 200, "show tenant {tenant}: {}", text(&r));
    r.json()["usage"].clone()
}

/// The sorted names in `GET /v1/tenants/{tenant}/{what}` (`models` or `functions`), as admin.
fn names(admin: &Client, tenant: &str, what: &str) -> Vec<String> {
    let r = admin.get(&format!("/v1/tenants/{tenant}/{what}"));
    assert_eq!(r.status, 200, "list {what} of {tenant}: {}", text(&r));
    let mut names: Vec<String> = r.json()[what]
        .as_array()
        .unwrap_or_else(|| panic!("no {what} array: {}", text(&r)))
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

/// The `Retry-After` of a 429, which must be a whole number of seconds ≥ 1.
#[track_caller]
fn retry_after(r: &Response) -> u64 {
    let value = r.header("retry-after").unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers));
    let secs: u64 = value.trim().parse().unwrap_or_else(|e| panic!("Retry-After {value:?} is not an integer: {e}"));
    assert!(secs >= 1, "Retry-After {secs}");
    secs
}

/// Calls `attempt` every 50 ms until `done` holds for its result, at most `within`.
fn poll<T: std::fmt::Debug>(
    within: Duration,
    what: &str,
    mut attempt: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let result = attempt();
        if done(&result) {
            return result;
        }
        assert!(Instant::now() < deadline, "{what}: still {result:?} after {within:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// What tract computes for the seed model `model` on `input` (batch 1).
fn tract_mlp(model: &[u8], input: &[f32]) -> Vec<f32> {
    let tensor = tract_ndarray::Array2::from_shape_vec((1, 100), input.to_vec()).unwrap().into_tensor();
    let out = models::run_tract(model, vec![tensor]).expect("tract runs the model");
    out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

/// The seed-model OIP request the tests send to `builtin:tensor` functions.
fn mlp_request(seed: u64) -> Value {
    oip_request("input", &[1, 100], &models::seeded_input(seed, &[1, 100]))
}

/// The manifest of a `builtin:tensor` function over model `model`.
fn tensor_manifest(model: &str) -> Value {
    json!({ "component": "builtin:tensor", "models": { "model": model } })
}

// ---------------------------------------------------------------------------------------------
// 1. Role × route matrix
// ---------------------------------------------------------------------------------------------

/// The callers of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header.
    Anonymous,
    /// A well-formed key that was never issued.
    UnknownKey,
    /// A bearer value that is not a key at all.
    Nonsense,
    /// The operator.
    Admin,
    /// An owner key of tenant `a`.
    OwnerA,
    /// An invoker key of tenant `a`.
    InvokerA,
    /// An owner key of tenant `b`.
    OwnerB,
}

impl Who {
    /// Every caller, in the order the table tries them.
    const ALL: [Who; 7] =
        [Who::Anonymous, Who::UnknownKey, Who::Nonsense, Who::Admin, Who::OwnerA, Who::InvokerA, Who::OwnerB];

    /// The answer when this caller is not allowed: 401 without a valid key, else 403.
    fn denied(self) -> (u16, &'static str) {
        match self {
            Who::Anonymous | Who::UnknownKey | Who::Nonsense => (401, "unauthenticated"),
            _ => (403, "forbidden"),
        }
    }
}

/// One row of the matrix: a request, who may make it and what they get.
struct Case {
    method: &'static str,
    path: String,
    body: Payload,
    allowed: Vec<Who>,
    /// Status (and error code, for error answers) an allowed caller gets.
    ok: (u16, Option<&'static str>),
    /// Callers not sent this request (it would destroy the fixtures).
    skip: Vec<Who>,
    /// Callers that get another answer than `ok` or the refusal.
    except: Vec<(Who, (u16, Option<&'static str>))>,
}

/// A row: `method path`, which callers are `allowed` and what they get.
fn case(method: &'static str, path: impl Into<String>, allowed: &[Who], ok: (u16, Option<&'static str>)) -> Case {
    Case { method, path: path.into(), body: None, allowed: allowed.to_vec(), ok, skip: Vec::new(), except: Vec::new() }
}

impl Case {
    /// With a JSON body.
    fn json(mut self, v: Value) -> Self {
        self.body = json_body(&v);
        self
    }

    /// With a raw body of `content_type`.
    fn bytes(mut self, b: Vec<u8>, content_type: &'static str) -> Self {
        self.body = Some((b, content_type));
        self
    }

    /// `who` gets `answer` instead (the OIP paths name no tenant: another tenant's key asks
    /// its own tenant, which has no such model).
    fn except(mut self, who: Who, answer: (u16, Option<&'static str>)) -> Self {
        self.except.push((who, answer));
        self
    }

    /// Not sent by `who` (it would destroy the fixtures).
    fn skip(mut self, who: &[Who]) -> Self {
        self.skip = who.to_vec();
        self
    }
}

/// Every route of the contract × every kind of caller: allowed callers get the route's real
/// answer (exact status and code), others 401 `unauthenticated` without a valid key and 403
/// `forbidden` with one, and tenant `b`'s owner gets the same 403 on `a`'s existing and
/// missing resources and on a tenant that does not exist. Fixtures survive the whole table.
/// Uploads refused from their headers alone are read by the plain client: the server lets
/// small bodies arrive before it answers.
#[test]
fn role_route_matrix() {
    use Who::*;
    let server = TestServer::start();
    let admin = tenant_with(&server, "a", unlimited_rate());
    tenant_with(&server, "b", unlimited_rate());
    let meta = upload(&admin, "a", "mlp", &models::mlp(1));
    assert_eq!(meta["inputs"][0]["name"], "input");
    assert_eq!(deploy(&admin, "a", "f", tensor_manifest("mlp")).status, 201);
    let mut public = tensor_manifest("mlp");
    public["public"] = json!(true);
    assert_eq!(deploy(&admin, "a", "pub", public).status, 201);
    let (_, owner_a) = new_key(&admin, "a", "owner");
    let (invoker_a_id, invoker_a) = new_key(&admin, "a", "invoker");
    let (_, owner_b) = new_key(&admin, "b", "owner");
    upload(&server.client(&owner_b), "b", "own", &models::mlp(2));

    let client = |who: Who| match who {
        Anonymous => server.anonymous(),
        UnknownKey => server.client(UNKNOWN_KEY),
        Nonsense => server.client("nonsense"),
        Admin => server.admin(),
        OwnerA => server.client(&owner_a),
        InvokerA => server.client(&invoker_a),
        OwnerB => server.client(&owner_b),
    };

    const ADMIN: &[Who] = &[Admin];
    const OWNER_A: &[Who] = &[Admin, OwnerA];
    const MEMBER_A: &[Who] = &[Admin, OwnerA, InvokerA];
    let ok = (200, None);
    let err = |status, code| (status, Some(code));
    let t = "/v1/tenants/a";
    let cases = vec![
        case("GET", "/metrics", ADMIN, ok),
        case("GET", "/v1/audit", ADMIN, ok),
        // Tenants: the operator's alone, even a tenant's own owner is refused.
        case("GET", "/v1/tenants", ADMIN, ok),
        case("POST", "/v1/tenants", ADMIN, err(409, "conflict")).json(json!({ "name": "a" })),
        case("GET", t, ADMIN, ok),
        case("GET", "/v1/tenants/b", ADMIN, ok),
        case("GET", "/v1/tenants/ghost", ADMIN, err(404, "not_found")),
        case("PATCH", t, ADMIN, ok).json(json!({})),
        case("PATCH", "/v1/tenants/ghost", ADMIN, err(404, "not_found")).json(json!({})),
        case("DELETE", t, ADMIN, (204, None)).skip(&[Admin]),
        case("DELETE", "/v1/tenants/ghost", ADMIN, err(404, "not_found")),
        // Keys: admin or the tenant's owner.
        case("POST", format!("{t}/keys"), OWNER_A, (201, None)).json(json!({ "role": "invoker", "label": "matrix" })),
        case("GET", format!("{t}/keys"), OWNER_A, ok),
        case("DELETE", format!("{t}/keys/0000000000000000"), OWNER_A, err(404, "not_found")),
        case("DELETE", format!("{t}/keys/{invoker_a_id}"), OWNER_A, (204, None)).skip(&[Admin, OwnerA]),
        case("GET", "/v1/tenants/ghost/keys", ADMIN, err(404, "not_found")),
        // Models.
        case("GET", format!("{t}/models"), OWNER_A, ok),
        case("GET", format!("{t}/models/mlp"), OWNER_A, ok),
        case("GET", format!("{t}/models/nope"), OWNER_A, err(404, "not_found")),
        case("GET", format!("{t}/models/mlp/versions/1"), OWNER_A, ok),
        case("GET", format!("{t}/models/mlp/versions/9"), OWNER_A, err(404, "not_found")),
        case("PUT", format!("{t}/models/junk"), OWNER_A, err(400, "invalid_model"))
            .bytes(models::invalid_onnx(), "application/octet-stream"),
        case("DELETE", format!("{t}/models/mlp"), OWNER_A, err(409, "conflict")),
        case("DELETE", format!("{t}/models/nope"), OWNER_A, err(404, "not_found")),
        case("DELETE", format!("{t}/models/mlp/versions/9"), OWNER_A, err(404, "not_found")),
        case("GET", "/v1/tenants/ghost/models", ADMIN, err(404, "not_found")),
        case("GET", "/v1/tenants/ghost/models/mlp", ADMIN, err(404, "not_found")),
        case("GET", "/v1/tenants/b/models", &[Admin, OwnerB], ok),
        case("GET", "/v1/tenants/b/models/own", &[Admin, OwnerB], ok),
        // Components.
        case("POST", format!("{t}/components"), OWNER_A, err(400, "invalid_component"))
            .bytes(b"not wasm at all".to_vec(), "application/wasm"),
        case("GET", format!("{t}/components"), OWNER_A, ok),
        // Functions.
        case("GET", format!("{t}/functions"), OWNER_A, ok),
        case("GET", format!("{t}/functions/f"), OWNER_A, ok),
        case("GET", format!("{t}/functions/nope"), OWNER_A, err(404, "not_found")),
        case("PUT", format!("{t}/functions/f"), OWNER_A, ok).json(tensor_manifest("mlp")),
        case("PUT", format!("{t}/functions/g"), OWNER_A, err(400, "invalid_request")).json(tensor_manifest("nope")),
        case("DELETE", format!("{t}/functions/f"), OWNER_A, (204, None)).skip(&[Admin, OwnerA]),
        case("DELETE", format!("{t}/functions/nope"), OWNER_A, err(404, "not_found")),
        case("GET", "/v1/tenants/ghost/functions", ADMIN, err(404, "not_found")),
        case("GET", "/v1/tenants/ghost/functions/f", ADMIN, err(404, "not_found")),
        // Invocation: members of the tenant; anyone for a public function.
        case("POST", "/fn/a/f", MEMBER_A, ok).json(mlp_request(1)),
        case("POST", "/fn/a/nope", MEMBER_A, err(404, "not_found")).json(mlp_request(1)),
        case("POST", "/fn/a/pub", &[Admin, OwnerA, InvokerA, Anonymous], ok).json(mlp_request(1)),
        case("POST", "/fn/ghost/f", ADMIN, err(404, "not_found")).json(mlp_request(1)),
        // Open Inference Protocol: health for anyone, the rest for the key's own tenant (the
        // admin key has none).
        case("GET", "/v2/health/live", &Who::ALL, ok),
        case("GET", "/v2/health/ready", &Who::ALL, ok),
        case("GET", "/v2", &[Admin, OwnerA, InvokerA, OwnerB], ok),
        case("GET", "/v2/models/mlp", &[OwnerA, InvokerA], ok).except(OwnerB, err(404, "not_found")),
        case("GET", "/v2/models/mlp/versions/1/ready", &[OwnerA, InvokerA], ok).except(OwnerB, err(404, "not_found")),
        case("POST", "/v2/models/mlp/infer", &[OwnerA, InvokerA], ok)
            .json(mlp_request(1))
            .except(OwnerB, err(404, "not_found")),
        case("GET", "/v2/models/own", &[OwnerB], ok)
            .except(OwnerA, err(404, "not_found"))
            .except(InvokerA, err(404, "not_found")),
    ];

    let mut failures = Vec::new();
    let mut checked = 0;
    for c in &cases {
        for who in Who::ALL {
            if c.skip.contains(&who) {
                continue;
            }
            let (status, code) = if let Some((_, answer)) = c.except.iter().find(|(w, _)| *w == who) {
                *answer
            } else if c.allowed.contains(&who) {
                c.ok
            } else {
                let (status, code) = who.denied();
                (status, Some(code))
            };
            let body = c.body.as_ref().map(|(b, ct)| (b.as_slice(), *ct));
            let r = client(who).send(c.method, &c.path, body);
            checked += 1;
            let got_code = code_of(&r);
            // The contract's platform headers are on every invocation response but the
            // 401/403/404 refusals, where their timing would be an existence oracle.
            let platform = ["x-request-id", "x-maas-cold-start", "x-maas-duration-us", "x-maas-energy-uj"];
            if c.path.starts_with("/fn/") {
                let refused = matches!(r.status, 401 | 403 | 404);
                for name in platform {
                    let expected = !refused || name == "x-request-id";
                    if r.header(name).is_some() != expected {
                        let has = if expected { "without" } else { "with" };
                        failures.push(format!("{who:?} {} {}: {} {has} {name}", c.method, c.path, r.status));
                    }
                }
            }
            if r.status != status || code.is_some_and(|code| code != got_code) {
                failures.push(format!(
                    "{who:?} {} {}: expected {status} {}, got {} {got_code:?}: {}",
                    c.method,
                    c.path,
                    code.unwrap_or(""),
                    r.status,
                    text(&r).chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} checks failed:\n{}", failures.len(), failures.join("\n"));

    // Nothing the table did destroyed the fixtures.
    assert_eq!(names(&admin, "a", "models"), ["mlp"]);
    assert_eq!(admin.get("/v1/tenants/a/models/mlp").json()["version"], 1);
    assert_eq!(names(&admin, "a", "functions"), ["f", "pub"]);
    assert_eq!(server.client(&invoker_a).post_json("/fn/a/f", &mlp_request(1)).status, 200);
    assert_eq!(names(&admin, "b", "models"), ["own"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Cross-tenant isolation
// ---------------------------------------------------------------------------------------------

/// Tenant `b`'s owner can read, list, change, delete and invoke nothing of tenant `a` (403
/// every time), and `a`'s models, functions and keys are unchanged afterwards.
#[test]
fn another_tenants_owner_can_touch_nothing() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    tenant(&server, "b");
    let mlp_a = models::mlp(1);
    upload(&admin, "a", "mlp", &mlp_a);
    assert_eq!(deploy(&admin, "a", "f", tensor_manifest("mlp")).status, 201);
    let (owner_a_id, owner_a) = new_key(&admin, "a", "owner");
    let (_, owner_b) = new_key(&admin, "b", "owner");
    let b = server.client(&owner_b);
    let before = server.client(&owner_a).post_json("/fn/a/f", &mlp_request(4));
    assert_eq!(before.status, 200, "{}", text(&before));

    let wasm = maas_tests::guest_wasm("maas_fn_misbehave");
    let attempts: Vec<(&str, String, Payload)> = vec![
        ("GET", "/v1/tenants/a".into(), None),
        ("GET", "/v1/tenants/a/models".into(), None),
        ("GET", "/v1/tenants/a/models/mlp".into(), None),
        ("GET", "/v1/tenants/a/models/mlp/versions/1".into(), None),
        ("PUT", "/v1/tenants/a/models/mlp".into(), Some((models::mlp(9), "application/octet-stream"))),
        ("PUT", "/v1/tenants/a/models/new".into(), Some((models::mlp(9), "application/octet-stream"))),
        ("DELETE", "/v1/tenants/a/models/mlp/versions/1".into(), None),
        ("DELETE", "/v1/tenants/a/models/mlp".into(), None),
        ("GET", "/v1/tenants/a/components".into(), None),
        ("POST", "/v1/tenants/a/components".into(), Some((wasm, "application/wasm"))),
        ("GET", "/v1/tenants/a/functions".into(), None),
        ("GET", "/v1/tenants/a/functions/f".into(), None),
        ("PUT", "/v1/tenants/a/functions/f".into(), json_body(&json!({ "component": "builtin:tensor" }))),
        ("PUT", "/v1/tenants/a/functions/new".into(), json_body(&tensor_manifest("mlp"))),
        ("DELETE", "/v1/tenants/a/functions/f".into(), None),
        ("POST", "/fn/a/f".into(), json_body(&mlp_request(4))),
        ("GET", "/fn/a/f/anything?x=1".into(), None),
        ("GET", "/v1/tenants/a/keys".into(), None),
        ("POST", "/v1/tenants/a/keys".into(), json_body(&json!({ "role": "owner" }))),
        ("DELETE", format!("/v1/tenants/a/keys/{owner_a_id}"), None),
        ("PATCH", "/v1/tenants/a".into(), json_body(&json!({ "suspended": true }))),
        ("DELETE", "/v1/tenants/a".into(), None),
    ];
    for (method, path, body) in &attempts {
        let r = b.send(method, path, body.as_ref().map(|(bytes, ct)| (bytes.as_slice(), *ct)));
        assert_error(&r, 403, "forbidden", &format!("owner of b: {method} {path}"));
    }

    // a is exactly as it was.
    let a = server.client(&owner_a);
    let models_a = a.get("/v1/tenants/a/models");
    assert_eq!(models_a.status, 200, "{}", text(&models_a));
    let list = models_a.json()["models"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "mlp");
    assert_eq!(list[0]["latest_version"], 1);
    let f = a.get("/v1/tenants/a/functions/f").json();
    assert_eq!((f["revision"].clone(), f["component"].clone()), (json!(1), json!("builtin:tensor")), "{f}");
    assert_eq!(names(&admin, "a", "functions"), ["f"]);
    assert!(a.get("/v1/tenants/a/components").json()["components"].as_array().unwrap().is_empty());
    let after = a.post_json("/fn/a/f", &mlp_request(4));
    assert_eq!(after.status, 200, "{}", text(&after));
    assert_eq!(after.json()["outputs"], before.json()["outputs"]);
    let tenant_a = admin.get("/v1/tenants/a").json();
    assert_eq!(tenant_a["suspended"], false, "{tenant_a}");
    assert_eq!(names(&admin, "b", "models"), Vec::<String>::new());
    assert_eq!(names(&admin, "b", "functions"), Vec::<String>::new());
}

/// A manifest names models in its own tenant's namespace: `b` cannot deploy over `a`'s "mlp"
/// (400 `invalid_request`, nothing deployed), and once `b` has its own "mlp", `b`'s function
/// computes with `b`'s model, `a`'s with `a`'s (each checked against tract).
#[test]
fn manifests_resolve_models_in_their_own_tenant() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    tenant(&server, "b");
    let (mlp_a, mlp_b) = (models::mlp(1), models::mlp(2));
    let meta_a = upload(&admin, "a", "mlp", &mlp_a);
    assert_eq!(deploy(&admin, "a", "f", tensor_manifest("mlp")).status, 201);
    let (_, owner_b) = new_key(&admin, "b", "owner");
    let b = server.client(&owner_b);

    let r = deploy(&b, "b", "g", tensor_manifest("mlp"));
    assert_error(&r, 400, "invalid_request", "b deploys over a model only a has");
    assert_error(&b.get("/v1/tenants/b/functions/g"), 404, "not_found", "the refused function");
    assert_eq!(names(&admin, "b", "functions"), Vec::<String>::new());
    let r = deploy(&b, "b", "g", tensor_manifest("mlp@1"));
    assert_error(&r, 400, "invalid_request", "b deploys over a's mlp@1");

    let meta_b = upload(&b, "b", "mlp", &mlp_b);
    assert_ne!(meta_a["sha256"], meta_b["sha256"]);
    let r = deploy(&b, "b", "g", tensor_manifest("mlp"));
    assert_eq!(r.status, 201, "{}", text(&r));

    let input = models::seeded_input(7, &[1, 100]);
    let request = oip_request("input", &[1, 100], &input);
    let (want_a, want_b) = (tract_mlp(&mlp_a, &input), tract_mlp(&mlp_b, &input));
    assert!(max_abs_diff(&want_a, &want_b) > 1e-3, "the two seeds must give different outputs");
    let got_b = b.post_json("/fn/b/g", &request);
    assert_eq!(got_b.status, 200, "{}", text(&got_b));
    let out_b = output_f32(&got_b.json(), 0);
    assert!(max_abs_diff(&out_b, &want_b) <= 1e-5, "b's function: {out_b:?} vs b's model {want_b:?}");
    let used = got_b.header("x-maas-model").unwrap_or_default();
    assert!(used.contains(meta_b["sha256"].as_str().unwrap()), "x-maas-model {used:?}");
    let got_a = admin.post_json("/fn/a/f", &request);
    assert_eq!(got_a.status, 200, "{}", text(&got_a));
    let out_a = output_f32(&got_a.json(), 0);
    assert!(max_abs_diff(&out_a, &want_a) <= 1e-5, "a's function: {out_a:?} vs a's model {want_a:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Keys, tenant deletion, suspension
// ---------------------------------------------------------------------------------------------

/// A revoked key is refused (401) on the very next request, for invocation and management
/// alike, while the key that revoked it keeps working.
#[test]
fn revoked_keys_stop_working_at_once() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    upload(&admin, "a", "mlp", &models::mlp(1));
    deploy(&admin, "a", "f", tensor_manifest("mlp"));
    let (_, owner) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner);
    let (invoker_id, invoker_secret) = new_key(&owner, "a", "invoker");
    let (second_owner_id, second_owner_secret) = new_key(&owner, "a", "owner");
    let invoker = server.client(&invoker_secret);
    let second_owner = server.client(&second_owner_secret);
    assert_eq!(invoker.post_json("/fn/a/f", &mlp_request(1)).status, 200);
    assert_eq!(second_owner.get("/v1/tenants/a/models").status, 200);

    assert_eq!(owner.delete(&format!("/v1/tenants/a/keys/{invoker_id}")).status, 204);
    assert_error(&invoker.post_json("/fn/a/f", &mlp_request(1)), 401, "unauthenticated", "revoked invoker key");
    assert_eq!(admin.delete(&format!("/v1/tenants/a/keys/{second_owner_id}")).status, 204);
    assert_error(&second_owner.get("/v1/tenants/a/models"), 401, "unauthenticated", "revoked owner key");
    assert_error(
        &second_owner.post_json("/v1/tenants/a/keys", &json!({ "role": "owner" })),
        401,
        "unauthenticated",
        "revoked owner key minting a new one",
    );
    // Revocation is for good: still refused later, and gone from the list.
    assert_error(&invoker.post_json("/fn/a/f", &mlp_request(1)), 401, "unauthenticated", "revoked invoker key");
    let listed = owner.get("/v1/tenants/a/keys").json();
    let ids: Vec<&str> = listed["keys"].as_array().unwrap().iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(!ids.contains(&invoker_id.as_str()) && !ids.contains(&second_owner_id.as_str()), "{listed}");
    assert_eq!(owner.post_json("/fn/a/f", &mlp_request(1)).status, 200);
}

/// `GET .../keys` lists every key with its id, role and label but never a secret: no `key`
/// field, and no secret string anywhere in the body (as admin or as owner).
#[test]
fn key_list_never_shows_secrets() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    let (owner_id, owner_secret) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner_secret);
    let (invoker_id, invoker_secret) = new_key(&owner, "a", "invoker");
    for (who, client) in [("admin", &admin), ("owner", &owner)] {
        let r = client.get("/v1/tenants/a/keys");
        assert_eq!(r.status, 200, "{who}: {}", text(&r));
        let body = text(&r);
        for secret in [&owner_secret, &invoker_secret] {
            assert!(!body.contains(secret.as_str()), "{who} sees a secret: {body}");
            // Not even the random part of it.
            let tail = secret.rsplit('_').next().unwrap();
            assert!(!body.contains(tail), "{who} sees part of a secret: {body}");
        }
        let keys = r.json()["keys"].as_array().cloned().unwrap_or_default();
        assert_eq!(keys.len(), 2, "{body}");
        for k in &keys {
            assert!(k.get("key").is_none() && k.get("hash").is_none() && k.get("secret").is_none(), "{k}");
        }
        let mut seen: Vec<(String, String, String)> = keys
            .iter()
            .map(|k| {
                let s = |f: &str| k[f].as_str().unwrap_or_default().to_string();
                (s("id"), s("role"), s("label"))
            })
            .collect();
        seen.sort();
        let mut want = vec![
            (owner_id.clone(), "owner".into(), "owner".into()),
            (invoker_id.clone(), "invoker".into(), "invoker".into()),
        ];
        want.sort();
        assert_eq!(seen, want, "{who}");
    }
}

/// Deleting a tenant revokes its keys on the next request and removes its models and
/// functions: a tenant re-created under the same name starts empty and the old keys stay dead.
#[test]
fn deleted_tenant_leaves_nothing_behind() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    tenant(&server, "b");
    upload(&admin, "a", "mlp", &models::mlp(1));
    upload_component(&admin, "a", "maas_fn_misbehave");
    deploy(&admin, "a", "f", tensor_manifest("mlp"));
    upload(&admin, "b", "mlp", &models::mlp(2));
    deploy(&admin, "b", "f", tensor_manifest("mlp"));
    let (_, owner_secret) = new_key(&admin, "a", "owner");
    let (_, invoker_secret) = new_key(&admin, "a", "invoker");
    let (owner, invoker) = (server.client(&owner_secret), server.client(&invoker_secret));
    assert_eq!(owner.get("/v1/tenants/a/models").status, 200);
    assert_eq!(invoker.post_json("/fn/a/f", &mlp_request(1)).status, 200);

    assert_eq!(admin.delete("/v1/tenants/a").status, 204);
    assert_error(&owner.get("/v1/tenants/a/models"), 401, "unauthenticated", "owner key of the deleted tenant");
    assert_error(&invoker.post_json("/fn/a/f", &mlp_request(1)), 401, "unauthenticated", "invoker of deleted tenant");
    assert_error(&admin.get("/v1/tenants/a"), 404, "not_found", "deleted tenant");
    assert_error(&admin.post_json("/fn/a/f", &mlp_request(1)), 404, "not_found", "function of the deleted tenant");

    let r = admin.post_json("/v1/tenants", &json!({ "name": "a" }));
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(names(&admin, "a", "models"), Vec::<String>::new());
    assert_eq!(names(&admin, "a", "functions"), Vec::<String>::new());
    let components = admin.get("/v1/tenants/a/components").json();
    assert_eq!(components["components"], json!([]), "{components}");
    assert_eq!(admin.get("/v1/tenants/a/keys").json()["keys"], json!([]));
    let u = usage(&admin, "a");
    assert_eq!(
        (u["storage_bytes"].clone(), u["models"].clone(), u["functions"].clone()),
        (json!(0), json!(0), json!(0))
    );
    assert_error(&admin.get("/v1/tenants/a/models/mlp"), 404, "not_found", "old model in the new tenant");
    assert_error(&admin.post_json("/fn/a/f", &mlp_request(1)), 404, "not_found", "old function in the new tenant");
    // The old keys do not come back with the name.
    assert_error(&owner.get("/v1/tenants/a/models"), 401, "unauthenticated", "old owner key, re-created tenant");
    assert_error(&invoker.post_json("/fn/a/f", &mlp_request(1)), 401, "unauthenticated", "old invoker key");
    // The other tenant was not touched.
    assert_eq!(admin.post_json("/fn/b/f", &mlp_request(1)).status, 200);
    assert_eq!(names(&admin, "b", "models"), ["mlp"]);
}

/// A suspended tenant's owner and invoker keys get 403 `forbidden` everywhere, invocation
/// included, while other tenants carry on; lifting the suspension restores them.
#[test]
fn suspended_tenant_is_refused_until_resumed() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    tenant(&server, "b");
    upload(&admin, "a", "mlp", &models::mlp(1));
    deploy(&admin, "a", "f", tensor_manifest("mlp"));
    upload(&admin, "b", "mlp", &models::mlp(2));
    deploy(&admin, "b", "f", tensor_manifest("mlp"));
    let (_, owner) = new_key(&admin, "a", "owner");
    let (_, invoker) = new_key(&admin, "a", "invoker");
    let (_, invoker_b) = new_key(&admin, "b", "invoker");
    let (owner, invoker, invoker_b) = (server.client(&owner), server.client(&invoker), server.client(&invoker_b));
    assert_eq!(invoker.post_json("/fn/a/f", &mlp_request(1)).status, 200);

    let r = admin.patch_json("/v1/tenants/a", &json!({ "suspended": true }));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["suspended"], true);
    assert_eq!(admin.get("/v1/tenants/a").json()["suspended"], true);
    assert_error(&owner.get("/v1/tenants/a/models"), 403, "forbidden", "suspended owner lists models");
    assert_error(&put_early(&owner, "/v1/tenants/a/models/m2", &models::mlp(3)), 403, "forbidden", "suspended upload");
    assert_error(&owner.post_json("/v1/tenants/a/keys", &json!({ "role": "owner" })), 403, "forbidden", "new key");
    assert_error(&owner.post_json("/fn/a/f", &mlp_request(1)), 403, "forbidden", "suspended owner invokes");
    assert_error(&invoker.post_json("/fn/a/f", &mlp_request(1)), 403, "forbidden", "suspended invoker invokes");
    assert_eq!(invoker_b.post_json("/fn/b/f", &mlp_request(1)).status, 200, "b is not suspended");
    assert_eq!(names(&admin, "a", "models"), ["mlp"], "the refused upload stored nothing");

    let r = admin.patch_json("/v1/tenants/a", &json!({ "suspended": false }));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["suspended"], false);
    assert_eq!(owner.get("/v1/tenants/a/models").status, 200);
    let r = invoker.post_json("/fn/a/f", &mlp_request(1));
    assert_eq!(r.status, 200, "{}", text(&r));
}

// ---------------------------------------------------------------------------------------------
// 4. Quotas
// ---------------------------------------------------------------------------------------------

/// Sends `head` (request line and headers, no body) over a raw connection and returns the
/// response's status line, or fails when none arrives within 5 s.
fn raw_status_line(addr: SocketAddr, head: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(head.as_bytes()).expect("send headers");
    stream.flush().unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |r: &[u8]| {
        let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
        let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
            .unwrap_or(0);
        r.len() >= end + 4 + length
    };
    while !complete(&received) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!(
                    "no response within 5 s (the server waits for the body?); got {:?}",
                    String::from_utf8_lossy(&received)
                )
            }
            Err(e) if !received.is_empty() => {
                eprintln!("read after a partial response: {e}");
                break;
            }
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let response = String::from_utf8_lossy(&received).into_owned();
    let status_line = response.lines().next().unwrap_or_default().to_string();
    (status_line, response)
}

/// `max_request_bytes`: an invocation body one byte over the quota is 413
/// `payload_too_large` (one at the quota passes), and a request that merely declares a huge
/// `Content-Length` is refused from its headers, without the server waiting for the body.
#[test]
fn request_bytes_quota_refuses_large_bodies_before_reading_them() {
    let server = TestServer::start();
    let admin = tenant_with(&server, "a", json!({ "max_request_bytes": 4096 }));
    let digest = upload_component(&admin, "a", "maas_fn_misbehave");
    let r = deploy(&admin, "a", "echo", json!({ "component": digest, "config": { "mode": "echo" } }));
    assert_eq!(r.status, 201, "{}", text(&r));
    let (_, invoker) = new_key(&admin, "a", "invoker");
    let client = server.client(&invoker);

    let r = client.post_bytes("/fn/a/echo", &[b'x'; 4096], "application/octet-stream");
    assert_eq!(r.status, 200, "a body at the quota: {}", text(&r));
    assert_eq!(r.json()["body_len"], 4096);
    let r = client.send("POST", "/fn/a/echo", Some((&[b'x'; 4097], "application/octet-stream")));
    assert_error(&r, 413, "payload_too_large", "a body one byte over the quota");

    let head = format!(
        "POST /fn/a/echo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {invoker}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000000000\r\n\r\n",
        server.addr()
    );
    let (status_line, response) = raw_status_line(server.addr(), &head);
    assert!(status_line.starts_with("HTTP/1.1 413"), "declared 1 GB body: {response}");
    assert!(response.contains("payload_too_large"), "{response}");
    // The server is fine afterwards.
    assert_eq!(client.post_bytes("/fn/a/echo", b"small", "text/plain").status, 200);
}

/// `max_model_bytes`: a model larger than the quota is 403 `quota_exceeded` and no version
/// of it is stored; a model under it is accepted.
#[test]
fn model_bytes_quota_refuses_large_models() {
    let server = TestServer::start();
    let small = models::mlp(1);
    let big = models::mlp_sized(1, 64);
    assert!(big.len() > small.len() + 4096, "{} vs {}", big.len(), small.len());
    let admin = tenant_with(&server, "a", json!({ "max_model_bytes": small.len() + 1024 }));
    let (_, owner) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner);
    upload(&owner, "a", "small", &small);

    let r = put_early(&owner, "/v1/tenants/a/models/big", &big);
    assert_error(&r, 403, "quota_exceeded", "model over max_model_bytes");
    let r = put_early(&owner, "/v1/tenants/a/models/small", &big);
    assert_error(&r, 403, "quota_exceeded", "new version over max_model_bytes");
    assert_error(&owner.get("/v1/tenants/a/models/big"), 404, "not_found", "the refused model");
    assert_error(&owner.get("/v1/tenants/a/models/small/versions/2"), 404, "not_found", "the refused version");
    assert_eq!(names(&admin, "a", "models"), ["small"]);
    let u = usage(&admin, "a");
    assert_eq!((u["storage_bytes"].clone(), u["models"].clone()), (json!(small.len()), json!(1)), "{u}");
    // Nothing of the refused upload was kept: the name's first version is still 1.
    assert_eq!(upload(&owner, "a", "big", &models::mlp(2))["version"], 1);
}

/// `max_storage_bytes`: an upload that would take the tenant past it is 403
/// `quota_exceeded` with `storage_bytes` unchanged; deleting a model frees its space again.
#[test]
fn storage_quota_counts_every_stored_byte() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    let len = models::mlp(1).len();
    let r = admin.patch_json("/v1/tenants/a", &json!({ "quota": { "max_storage_bytes": 2 * len + len / 2 } }));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["quota"]["max_storage_bytes"], 2 * len + len / 2);
    let (_, owner) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner);
    upload(&owner, "a", "m1", &models::mlp(1));
    upload(&owner, "a", "m2", &models::mlp(2));
    assert_eq!(usage(&admin, "a")["storage_bytes"], 2 * len);

    assert_error(&put_early(&owner, "/v1/tenants/a/models/m3", &models::mlp(3)), 403, "quota_exceeded", "third model");
    assert_error(&put_early(&owner, "/v1/tenants/a/models/m1", &models::mlp(3)), 403, "quota_exceeded", "new version");
    assert_eq!(usage(&admin, "a")["storage_bytes"], 2 * len);
    assert_eq!(names(&admin, "a", "models"), ["m1", "m2"]);
    assert_error(&owner.get("/v1/tenants/a/models/m1/versions/2"), 404, "not_found", "refused version");

    assert_eq!(owner.delete("/v1/tenants/a/models/m2").status, 204);
    assert_eq!(usage(&admin, "a")["storage_bytes"], len);
    assert_eq!(upload(&owner, "a", "m3", &models::mlp(3))["version"], 1);
    assert_eq!(usage(&admin, "a")["storage_bytes"], 2 * len);
}

/// `max_models` and `max_functions`: a new model name or function past the count is 403
/// `quota_exceeded` and nothing is stored; a new version of an existing model and a redeploy
/// of an existing function are still allowed (they add no name); deleting frees a slot.
#[test]
fn model_and_function_count_quotas() {
    let server = TestServer::start();
    let admin = tenant(&server, "a");
    let r = admin.patch_json("/v1/tenants/a", &json!({ "quota": { "max_models": 2, "max_functions": 1 } }));
    assert_eq!(r.status, 200, "{}", text(&r));
    let (_, owner) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner);
    let len = models::mlp(1).len();
    upload(&owner, "a", "m1", &models::mlp(1));
    upload(&owner, "a", "m2", &models::mlp(2));

    assert_error(&put_early(&owner, "/v1/tenants/a/models/m3", &models::mlp(3)), 403, "quota_exceeded", "third name");
    assert_eq!(names(&admin, "a", "models"), ["m1", "m2"]);
    let u = usage(&admin, "a");
    assert_eq!((u["models"].clone(), u["storage_bytes"].clone()), (json!(2), json!(2 * len)), "{u}");
    assert_eq!(upload(&owner, "a", "m1", &models::mlp(4))["version"], 2, "a new version of a known name");
    assert_eq!(usage(&admin, "a")["models"], 2);

    assert_eq!(deploy(&owner, "a", "f1", tensor_manifest("m1")).status, 201);
    assert_error(&deploy(&owner, "a", "f2", tensor_manifest("m2")), 403, "quota_exceeded", "second function");
    assert_eq!(names(&admin, "a", "functions"), ["f1"]);
    assert_eq!(usage(&admin, "a")["functions"], 1);
    assert_error(&owner.get("/v1/tenants/a/functions/f2"), 404, "not_found", "the refused function");
    let r = deploy(&owner, "a", "f1", tensor_manifest("m2"));
    assert_eq!((r.status, r.json()["revision"].clone()), (200, json!(2)), "redeploy: {}", text(&r));

    assert_eq!(owner.delete("/v1/tenants/a/functions/f1").status, 204);
    assert_eq!(deploy(&owner, "a", "f2", tensor_manifest("m2")).status, 201);
    assert_eq!(names(&admin, "a", "functions"), ["f2"]);
}

/// `max_memory_mb` and `max_timeout_ms` bound manifests: asking for more is 400
/// `invalid_request` and nothing is deployed; asking for exactly the quota is fine, and raising
/// the quota admits the larger manifest.
#[test]
fn manifest_limits_are_bounded_by_the_quota() {
    let server = TestServer::start();
    let admin = tenant_with(&server, "a", json!({ "max_memory_mb": 32, "max_timeout_ms": 1000 }));
    let (_, owner) = new_key(&admin, "a", "owner");
    let owner = server.client(&owner);
    upload(&owner, "a", "mlp", &models::mlp(1));
    let manifest = |memory_mb: u32, timeout_ms: u64| {
        let mut m = tensor_manifest("mlp");
        m["limits"] = json!({ "memory_mb": memory_mb, "timeout_ms": timeout_ms });
        m
    };

    assert_error(&deploy(&owner, "a", "f", manifest(64, 1000)), 400, "invalid_request", "memory over the quota");
    assert_error(&deploy(&owner, "a", "f", manifest(32, 2000)), 400, "invalid_request", "timeout over the quota");
    assert_eq!(names(&admin, "a", "functions"), Vec::<String>::new());
    assert_eq!(usage(&admin, "a")["functions"], 0);
    assert_error(&owner.get("/v1/tenants/a/functions/f"), 404, "not_found", "the refused function");

    let r = deploy(&owner, "a", "f", manifest(32, 1000));
    assert_eq!(r.status, 201, "limits at the quota: {}", text(&r));
    let r = admin.patch_json("/v1/tenants/a", &json!({ "quota": { "max_memory_mb": 64 } }));
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = deploy(&owner, "a", "f", manifest(64, 1000));
    assert_eq!((r.status, r.json()["revision"].clone()), (200, json!(2)), "{}", text(&r));
    assert_eq!(r.json()["limits"]["memory_mb"], 64);
}

/// `rate_per_second` 1: the tenant gets one request per second across its invocations and
/// key requests; the one right after is 429 `rate_limited` with an integer `Retry-After`,
/// while another tenant is served at the same moment.
#[test]
fn rate_limit_is_per_tenant() {
    let server = TestServer::start();
    let admin = tenant_with(&server, "r", json!({ "rate_per_second": 1 }));
    tenant(&server, "o");
    for t in ["r", "o"] {
        upload(&admin, t, "mlp", &models::mlp(1));
        assert_eq!(deploy(&admin, t, "f", tensor_manifest("mlp")).status, 201);
    }
    let (_, owner_r) = new_key(&admin, "r", "owner");
    let (_, invoker_r) = new_key(&admin, "r", "invoker");
    let (_, invoker_o) = new_key(&admin, "o", "invoker");
    let (owner_r, invoker_r, invoker_o) =
        (server.client(&owner_r), server.client(&invoker_r), server.client(&invoker_o));
    assert_eq!(invoker_o.post_json("/fn/o/f", &mlp_request(1)).status, 200, "warm o");

    // A fresh bucket holds one token: the first call succeeds (and warms the function).
    let first = invoker_r.post_json("/fn/r/f", &mlp_request(1));
    assert_eq!(first.status, 200, "first call: {}", text(&first));
    // Wait for the next token, so that the bucket is empty right after a fast, warm call.
    let refilled = poll(
        Duration::from_secs(10),
        "r's bucket never refilled",
        || invoker_r.post_json("/fn/r/f", &mlp_request(1)),
        |r| r.status != 429,
    );
    assert_eq!(refilled.status, 200, "{}", text(&refilled));
    let limited = invoker_r.post_json("/fn/r/f", &mlp_request(1));
    assert_error(&limited, 429, "rate_limited", "a call right after");
    retry_after(&limited);
    let by_key = owner_r.get("/v1/tenants/r/models");
    assert_error(&by_key, 429, "rate_limited", "a management request with r's key, right after");
    retry_after(&by_key);
    // The same moment, another tenant is not affected.
    for _ in 0..3 {
        let r = invoker_o.post_json("/fn/o/f", &mlp_request(1));
        assert_eq!(r.status, 200, "o while r is limited: {}", text(&r));
    }
    assert_eq!(admin.get("/v1/tenants/r").status, 200, "the operator is not r's client");
}

/// `max_concurrency` 1: while one invocation of the tenant is in flight, an invocation of
/// another of its functions waits its turn: with a short `queue_timeout_ms` it is 429
/// `rate_limited` with `Retry-After` when the wait runs out, with the default it is served
/// once the first one ends. Another tenant's invocation is served at once.
#[test]
fn tenant_concurrency_quota_spans_its_functions() {
    let server = TestServer::start();
    let admin = tenant_with(&server, "c", json!({ "max_concurrency": 1 }));
    tenant(&server, "o");
    let digest = upload_component(&admin, "c", "maas_fn_misbehave");
    let r = deploy(
        &admin,
        "c",
        "slow",
        json!({ "component": digest, "config": { "mode": "/loop" }, "limits": { "timeout_ms": 1500 } }),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let short_wait = json!({ "component": digest, "limits": { "queue_timeout_ms": 300 } });
    assert_eq!(deploy(&admin, "c", "fast", short_wait).status, 201);
    assert_eq!(deploy(&admin, "c", "patient", json!({ "component": digest })).status, 201);
    upload(&admin, "o", "mlp", &models::mlp(1));
    assert_eq!(deploy(&admin, "o", "f", tensor_manifest("mlp")).status, 201);
    let (_, invoker_c) = new_key(&admin, "c", "invoker");
    let (_, invoker_o) = new_key(&admin, "o", "invoker");
    let (invoker_c, invoker_o) = (server.client(&invoker_c), server.client(&invoker_o));
    let fast = invoker_c.post_json("/fn/c/fast", &json!({}));
    assert_eq!(fast.status, 200, "fast alone: {}", text(&fast));
    assert_eq!(invoker_o.post_json("/fn/o/f", &mlp_request(1)).status, 200, "warm o");

    let slow = {
        let client = invoker_c.clone();
        thread::spawn(move || client.post_json("/fn/c/slow", &json!({})))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = admin.get("/v1/tenants/c/functions/slow").json()["status"].clone();
        if status["instances"] == 1 {
            break;
        }
        assert!(!slow.is_finished(), "the slow call ended before it was seen in flight: {status}");
        assert!(Instant::now() < deadline, "the slow call never got in flight: {status}");
        thread::sleep(Duration::from_millis(10));
    }
    let patient = {
        let client = invoker_c.clone();
        thread::spawn(move || client.post_json("/fn/c/patient", &json!({})))
    };
    let asked = Instant::now();
    let refused = invoker_c.post_json("/fn/c/fast", &json!({}));
    assert_error(&refused, 429, "rate_limited", "second invocation of the tenant, after its wait");
    assert!(asked.elapsed() >= Duration::from_millis(300), "refused before its wait: {:?}", asked.elapsed());
    assert!(text(&refused).contains("wait"), "{}", text(&refused));
    retry_after(&refused);
    let other = invoker_o.post_json("/fn/o/f", &mlp_request(1));
    assert_eq!(other.status, 200, "another tenant at the same moment: {}", text(&other));

    let slow = slow.join().unwrap();
    assert_error(&slow, 504, "function_timeout", "the spinning call");
    let patient = patient.join().unwrap();
    assert_eq!(patient.status, 200, "the queued call is served once the slot frees: {}", text(&patient));
    poll(
        Duration::from_secs(10),
        "c's slot never freed",
        || invoker_c.post_json("/fn/c/fast", &json!({})).status,
        |s| *s != 429,
    );
    assert_eq!(invoker_c.post_json("/fn/c/fast", &json!({})).status, 200);
}

// ---------------------------------------------------------------------------------------------
// 5. Encryption at rest
// ---------------------------------------------------------------------------------------------

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    assert!(files > 0, "no files under {}", dir.display());
    found
}

/// The sled directory of a server's data dir (`<data>/db`, or the data dir itself).
fn sled_dir(data_dir: &Path) -> PathBuf {
    [data_dir.join("db"), data_dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join("conf").is_file())
        .unwrap_or_else(|| panic!("no sled database under {}", data_dir.display()))
}

/// Every blob chunk file of a stopped server's store: `<sled dir>/chunks/<blob id>/<chunk index>`.
fn chunk_files(data_dir: &Path) -> BTreeSet<PathBuf> {
    let blobs = std::fs::read_dir(sled_dir(data_dir).join("chunks")).expect("the store's chunks directory");
    blobs.flat_map(|blob| std::fs::read_dir(blob.unwrap().path()).unwrap()).map(|chunk| chunk.unwrap().path()).collect()
}

/// A model with a random 64-byte marker planted in it is stored and served, but after the
/// server stopped no file of its data directory contains the marker (while the same scan does
/// find it in the plain model file).
#[test]
fn models_are_not_stored_in_plaintext() {
    let mut marker = [0u8; 64];
    rand::rng().fill(&mut marker);
    let model = models::mlp_with_marker(3, &marker);

    // The scan can fail: it finds the marker in the plain file.
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("model.onnx"), &model).unwrap();
    assert_eq!(files_containing(plain.path(), &marker).len(), 1);

    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(data.path());
    let admin = tenant(&server, "a");
    let meta = upload(&admin, "a", "secret", &model);
    assert_eq!(meta["size_bytes"], model.len());
    assert_eq!(deploy(&admin, "a", "f", tensor_manifest("secret")).status, 201);
    let r = admin.post_json("/fn/a/f", &mlp_request(5));
    assert_eq!(r.status, 200, "{}", text(&r));
    let want = tract_mlp(&models::mlp(3), &models::seeded_input(5, &[1, 100]));
    assert!(max_abs_diff(&output_f32(&r.json(), 0), &want) <= 1e-5);
    server.stop();

    let leaks = files_containing(data.path(), &marker);
    assert!(leaks.is_empty(), "the model's plaintext is on disk in {leaks:?}");
}

/// One flipped byte in each stored chunk file of a tenant's model: after a restart its function
/// answers 500 `internal` naming the integrity failure instead of serving the tampered model,
/// while the server stays healthy and another tenant's model (not tampered) is served as before.
#[test]
fn tampered_model_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let request = mlp_request(6);

    // a's model, alone in the store: its chunks are the only blobs.
    let server = TestServer::start_in(data.path());
    let admin = tenant(&server, "a");
    upload(&admin, "a", "mlp", &models::mlp(1));
    assert_eq!(deploy(&admin, "a", "f", tensor_manifest("mlp")).status, 201);
    assert_eq!(admin.post_json("/fn/a/f", &request).status, 200);
    server.stop();
    let tampered = chunk_files(data.path());
    assert!(!tampered.is_empty(), "no blob chunks in the store");

    // b's model, stored after: its chunks are not touched.
    let server = TestServer::start_in(data.path());
    let admin = tenant(&server, "b");
    upload(&admin, "b", "mlp", &models::mlp(2));
    assert_eq!(deploy(&admin, "b", "f", tensor_manifest("mlp")).status, 201);
    let baseline_b = admin.post_json("/fn/b/f", &request);
    assert_eq!(baseline_b.status, 200, "{}", text(&baseline_b));
    server.stop();

    {
        let all = chunk_files(data.path()).len();
        assert!(all > tampered.len(), "b's chunks are missing: {all} chunks in all");
        for chunk in &tampered {
            let mut value = std::fs::read(chunk).expect("a's chunk is still there");
            let middle = value.len() / 2;
            value[middle] ^= 0x5a;
            std::fs::write(chunk, value).unwrap();
        }
    }

    let server = TestServer::start_in(data.path());
    let admin = server.admin();
    let r = admin.post_json("/fn/a/f", &request);
    assert_error(&r, 500, "internal", "invoking over the tampered model");
    let message = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("integrity"), "{message}");
    assert!(r.json().get("outputs").is_none());
    // The same refusal the next time: no half-loaded model was cached.
    assert_error(&admin.post_json("/fn/a/f", &request), 500, "internal", "invoking again");
    assert_eq!(server.anonymous().get("/healthz").status, 200);
    let b = admin.post_json("/fn/b/f", &request);
    assert_eq!(b.status, 200, "the untouched tenant: {}", text(&b));
    assert_eq!(b.json()["outputs"], baseline_b.json()["outputs"]);
}

// ---------------------------------------------------------------------------------------------
// 6. Audit trail
// ---------------------------------------------------------------------------------------------

/// Administrative changes by the operator and by an owner are recorded newest first with the
/// actor, key id, tenant and target; failed changes, invocations and reads are not; `?tenant=`
/// filters and `?limit=` caps; no key secret ever appears; only the operator may read it.
#[test]
fn audit_trail_records_administrative_changes() {
    let server = TestServer::start();
    let admin = server.admin();
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme" })).status, 201);
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "other" })).status, 201);
    assert_eq!(admin.patch_json("/v1/tenants/acme", &json!({ "quota": { "max_models": 10 } })).status, 200);
    let (owner_id, owner_secret) = new_key(&admin, "acme", "owner");
    let owner = server.client(&owner_secret);
    let (invoker_id, invoker_secret) = new_key(&owner, "acme", "invoker");
    upload(&owner, "acme", "mlp", &models::mlp(1));
    // Refused changes, reads and invocations leave no entry.
    assert_eq!(owner.put_bytes("/v1/tenants/acme/models/bad", &models::invalid_onnx()).status, 400);
    let digest = upload_component(&owner, "acme", "maas_fn_misbehave");
    assert_eq!(deploy(&owner, "acme", "f", tensor_manifest("mlp")).status, 201);
    assert_eq!(deploy(&owner, "acme", "g", tensor_manifest("nope")).status, 400);
    assert_eq!(server.client(&invoker_secret).post_json("/fn/acme/f", &mlp_request(1)).status, 200);
    assert_eq!(owner.get("/v1/tenants/acme/models").status, 200);
    assert_eq!(owner.delete("/v1/tenants/acme/functions/f").status, 204);
    assert_eq!(owner.delete("/v1/tenants/acme/models/mlp").status, 204);
    assert_eq!(owner.delete(&format!("/v1/tenants/acme/keys/{invoker_id}")).status, 204);
    assert_eq!(admin.delete("/v1/tenants/other").status, 204);

    const OWN: &str = "owner:acme";
    // (action, actor, tenant), oldest first.
    let expected: Vec<(&str, &str, &str)> = vec![
        ("tenant.create", "admin", "acme"),
        ("tenant.create", "admin", "other"),
        ("tenant.update", "admin", "acme"),
        ("key.create", "admin", "acme"),
        ("key.create", OWN, "acme"),
        ("model.upload", OWN, "acme"),
        ("component.upload", OWN, "acme"),
        ("function.deploy", OWN, "acme"),
        ("function.delete", OWN, "acme"),
        ("model.delete", OWN, "acme"),
        ("key.revoke", OWN, "acme"),
        ("tenant.delete", "admin", "other"),
    ];
    let r = admin.get("/v1/audit");
    assert_eq!(r.status, 200, "{}", text(&r));
    let body = text(&r);
    for secret in [owner_secret.as_str(), invoker_secret.as_str(), ADMIN_KEY] {
        assert!(!body.contains(secret), "a secret in the audit trail: {body}");
    }
    let entries = r.json()["entries"].as_array().cloned().unwrap_or_else(|| panic!("no entries: {body}"));
    let got: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let s = |f: &str| e[f].as_str().unwrap_or_default().to_string();
            (s("action"), s("actor"), s("tenant"))
        })
        .collect();
    let want: Vec<(String, String, String)> =
        expected.iter().rev().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(got, want, "{body}");

    for (i, e) in entries.iter().enumerate() {
        assert!(e["seq"].is_u64(), "{e}");
        if i > 0 {
            assert!(e["seq"].as_u64() < entries[i - 1]["seq"].as_u64(), "not newest first: {body}");
        }
        let at = e["at"].as_str().unwrap_or_default();
        assert!(at.len() >= 20 && at.as_bytes()[10] == b'T' && at.starts_with("20"), "at {at:?}");
        assert!(e["detail"].is_object(), "{e}");
        assert!(e["target"].is_string(), "{e}");
        let by_owner = e["actor"] == OWN;
        let key_id = if by_owner { json!(owner_id) } else { Value::Null };
        assert_eq!(e["key_id"], key_id, "{e}");
    }
    let target = |action: &str, tenant: &str| -> String {
        let e = entries
            .iter()
            .find(|e| e["action"] == action && e["tenant"] == tenant)
            .unwrap_or_else(|| panic!("no {action} of {tenant}"));
        e["target"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(target("tenant.delete", "other"), "other");
    assert_eq!(target("key.revoke", "acme"), invoker_id);
    assert_eq!(target("component.upload", "acme"), digest);
    assert_eq!(target("function.deploy", "acme"), "f");
    assert_eq!(target("function.delete", "acme"), "f");
    assert!(target("model.upload", "acme").starts_with("mlp"));
    assert!(target("model.delete", "acme").starts_with("mlp"));
    let key_targets: Vec<&str> =
        entries.iter().filter(|e| e["action"] == "key.create").filter_map(|e| e["target"].as_str()).collect();
    assert_eq!(key_targets, [invoker_id.as_str(), owner_id.as_str()]);

    // ?tenant= filters, also for a tenant that no longer exists.
    let other = admin.get("/v1/audit?tenant=other");
    assert_eq!(other.status, 200, "{}", text(&other));
    let actions: Vec<String> = other.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(actions, ["tenant.delete", "tenant.create"]);
    let acme = admin.get("/v1/audit?tenant=acme").json()["entries"].as_array().cloned().unwrap();
    assert_eq!(acme.len(), 10);
    assert!(acme.iter().all(|e| e["tenant"] == "acme"));
    // ?limit= caps, keeping the newest.
    let limited = admin.get("/v1/audit?limit=3").json()["entries"].as_array().cloned().unwrap();
    let seqs = |v: &[Value]| v.iter().map(|e| e["seq"].clone()).collect::<Vec<_>>();
    assert_eq!(seqs(&limited), seqs(&entries[..3]));

    // Only the operator reads it.
    assert_error(&owner.get("/v1/audit"), 403, "forbidden", "owner reads the audit trail");
    assert_error(&owner.get("/v1/audit?tenant=acme"), 403, "forbidden", "owner reads its own tenant's trail");
    assert_error(&server.anonymous().get("/v1/audit"), 401, "unauthenticated", "no key");
}

// ---------------------------------------------------------------------------------------------
// 7. Bad input (the README's table)
// ---------------------------------------------------------------------------------------------

/// A bad request: what it is, method, path, body, status, code, words the message must contain.
type BadInput = (&'static str, &'static str, String, Payload, u16, &'static str, &'static [&'static str]);

/// Bad names, malformed JSON, unknown fields, wrong types, bad manifests and unknown routes each
/// get their documented status and code, with a message naming what is wrong, and leave
/// nothing behind.
#[test]
fn bad_input_gets_a_clear_error() {
    let server = TestServer::start();
    let admin = tenant_with(&server, "a", unlimited_rate());
    upload(&admin, "a", "mlp", &models::mlp(1));
    let long = "x".repeat(64);
    let cases: Vec<BadInput> = vec![
        (
            "bad tenant name",
            "POST",
            "/v1/tenants".into(),
            json_body(&json!({ "name": "Acme!" })),
            400,
            "invalid_request",
            &["Acme!"],
        ),
        (
            "long tenant name",
            "POST",
            "/v1/tenants".into(),
            json_body(&json!({ "name": long })),
            400,
            "invalid_request",
            &["name"],
        ),
        ("existing tenant", "POST", "/v1/tenants".into(), json_body(&json!({ "name": "a" })), 409, "conflict", &["a"]),
        (
            "malformed JSON",
            "POST",
            "/v1/tenants".into(),
            Some((b"{\"name\": ".to_vec(), "application/json")),
            400,
            "invalid_request",
            &["malformed JSON"],
        ),
        (
            "unknown field",
            "POST",
            "/v1/tenants".into(),
            json_body(&json!({ "name": "c", "colour": "red" })),
            400,
            "invalid_request",
            &["colour"],
        ),
        (
            "wrong type",
            "PATCH",
            "/v1/tenants/a".into(),
            json_body(&json!({ "suspended": "yes" })),
            400,
            "invalid_request",
            &["bool"],
        ),
        (
            "bad quota value",
            "PATCH",
            "/v1/tenants/a".into(),
            json_body(&json!({ "quota": { "max_concurrency": 0 } })),
            400,
            "invalid_request",
            &["max_concurrency"],
        ),
        (
            "bad role",
            "POST",
            "/v1/tenants/a/keys".into(),
            json_body(&json!({ "role": "root" })),
            400,
            "invalid_request",
            &["root"],
        ),
        (
            "bad model name",
            "PUT",
            "/v1/tenants/a/models/-x".into(),
            Some((models::mlp(1), "application/octet-stream")),
            400,
            "invalid_request",
            &["-x"],
        ),
        (
            "bad function name",
            "PUT",
            format!("/v1/tenants/a/functions/{long}"),
            json_body(&tensor_manifest("mlp")),
            400,
            "invalid_request",
            &["name"],
        ),
        (
            "missing component",
            "PUT",
            "/v1/tenants/a/functions/f".into(),
            json_body(&json!({ "component": format!("sha256:{}", "0".repeat(64)) })),
            400,
            "invalid_request",
            &["component"],
        ),
        (
            "unknown builtin",
            "PUT",
            "/v1/tenants/a/functions/f".into(),
            json_body(&json!({ "component": "builtin:nope" })),
            400,
            "invalid_request",
            &["\"nope\"", "tensor"],
        ),
        (
            "missing version",
            "PUT",
            "/v1/tenants/a/functions/f".into(),
            json_body(&tensor_manifest("mlp@7")),
            400,
            "invalid_request",
            &["\"mlp\" version 7"],
        ),
        (
            "manifest without component",
            "PUT",
            "/v1/tenants/a/functions/f".into(),
            json_body(&json!({ "models": {} })),
            400,
            "invalid_request",
            &["component"],
        ),
        (
            "bad version number",
            "GET",
            "/v1/tenants/a/models/mlp/versions/one".into(),
            None,
            400,
            "invalid_request",
            &["one"],
        ),
        ("unknown route", "GET", "/v1/nothing".into(), None, 404, "not_found", &["route"]),
        ("missing model", "GET", "/v1/tenants/a/models/nope".into(), None, 404, "not_found", &["nope"]),
        (
            "wrong method",
            "PATCH",
            "/v1/tenants/a/models/mlp".into(),
            json_body(&json!({})),
            405,
            "invalid_request",
            &["PATCH"],
        ),
    ];
    for (what, method, path, body, status, code, words) in cases {
        let r = admin.send(method, &path, body.as_ref().map(|(b, ct)| (b.as_slice(), *ct)));
        let message = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert_eq!((r.status, code_of(&r).as_str()), (status, code), "{what}: {}", text(&r));
        for word in words {
            assert!(message.contains(word), "{what}: {message:?} does not mention {word:?}");
        }
    }
    // Nothing was created by the refused requests.
    assert_eq!(admin.get("/v1/tenants").json()["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(names(&admin, "a", "models"), ["mlp"]);
    assert!(names(&admin, "a", "functions").is_empty());
    assert_eq!(admin.get("/v1/tenants/a").json()["suspended"], false);
}
