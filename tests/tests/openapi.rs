//! Keeps `docs/openapi.json` in agreement with the server: every documented path is one the
//! router matches, the document has exactly the (method, path) pairs the dispatcher handles,
//! and every operation declares its errors (as `Error`) and its security.

use std::collections::BTreeSet;

use maas_runtime::routes::Route;
use serde_json::Value;

/// Every (method, sample path) that `dispatch` in `runtime/src/api/mod.rs` handles. This list
/// must follow `dispatch`: a route or method added there is added here and to the document.
/// `ANY` stands for every HTTP method.
const DISPATCHED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("ANY", "/fn/acme/f"),
    ("ANY", "/fn/acme/f/a/b"),
    ("POST", "/v2/models/mlp/infer"),
    ("POST", "/v2/models/mlp/versions/1/infer"),
    ("GET", "/metrics"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants"),
    ("GET", "/v1/tenants/acme"),
    ("PATCH", "/v1/tenants/acme"),
    ("DELETE", "/v1/tenants/acme"),
    ("GET", "/v1/audit"),
    ("POST", "/v1/tenants/acme/keys"),
    ("GET", "/v1/tenants/acme/keys"),
    ("DELETE", "/v1/tenants/acme/keys/0123456789abcdef"),
    ("GET", "/v1/tenants/acme/models"),
    ("PUT", "/v1/tenants/acme/models/mlp"),
    ("GET", "/v1/tenants/acme/models/mlp"),
    ("DELETE", "/v1/tenants/acme/models/mlp"),
    ("GET", "/v1/tenants/acme/models/mlp/versions/1"),
    ("DELETE", "/v1/tenants/acme/models/mlp/versions/1"),
    ("GET", "/v1/tenants/acme/usage"),
    ("PUT", "/v1/tenants/acme/models/mlp/card"),
    ("GET", "/v1/tenants/acme/models/mlp/card"),
    ("POST", "/v1/tenants/acme/models/mlp/explain"),
    ("POST", "/v1/tenants/acme/models/mlp/audit"),
    ("POST", "/v1/tenants/acme/models/mlp/versions/1/explain"),
    ("POST", "/v1/tenants/acme/models/mlp/versions/1/audit"),
    ("POST", "/v1/tenants/acme/components"),
    ("GET", "/v1/tenants/acme/components"),
    ("GET", "/v1/tenants/acme/functions"),
    ("PUT", "/v1/tenants/acme/functions/f"),
    ("GET", "/v1/tenants/acme/functions/f"),
    ("DELETE", "/v1/tenants/acme/functions/f"),
    ("GET", "/v2"),
    ("GET", "/v2/models/mlp"),
    ("GET", "/v2/models/mlp/versions/1"),
    ("GET", "/v2/models/mlp/ready"),
    ("GET", "/v2/models/mlp/versions/1/ready"),
];

/// The value each path parameter of the document takes in [`DISPATCHED`].
const SAMPLES: &[(&str, &str)] = &[
    ("tenant", "acme"),
    ("model", "mlp"),
    ("version", "1"),
    ("function", "f"),
    ("id", "0123456789abcdef"),
    ("rest", "a/b"),
];

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"];

/// Paths that need no key at all (invocations need one unless the function is public).
const PUBLIC: &[&str] = &["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"];

/// The contract's error codes by status.
const ERROR_CODES: &[(&str, &[&str])] = &[
    ("400", &["invalid_request", "invalid_model", "invalid_component", "invalid_input"]),
    ("401", &["unauthenticated"]),
    ("403", &["forbidden", "quota_exceeded"]),
    ("404", &["not_found"]),
    ("409", &["conflict"]),
    ("413", &["payload_too_large"]),
    ("429", &["rate_limited"]),
    ("500", &["function_trapped", "internal"]),
    ("504", &["function_timeout"]),
];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// A path template with each `{param}` replaced by its sample value.
fn fill(template: &str) -> String {
    let filled = SAMPLES.iter().fold(template.to_string(), |t, (name, value)| t.replace(&format!("{{{name}}}"), value));
    assert!(!filled.contains('{'), "{template}: a path parameter without a sample value");
    filled
}

/// Every operation: (METHOD, path template, operation object).
fn operations(doc: &Value) -> Vec<(String, &str, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (template, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method.to_lowercase()) {
                out.push((method.to_string(), template.as_str(), op));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`); other values are returned as they are.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("unresolved $ref {r}")),
        None => value,
    }
}

#[test]
fn parses_as_openapi_3_1_with_resolvable_refs() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}, not 3.1.x");
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                resolve(doc, value);
                map.values().for_each(|v| walk(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
            _ => {}
        }
    }
    walk(&doc, &doc);
}

#[test]
fn every_documented_path_is_routed() {
    let doc = document();
    for template in doc["paths"].as_object().expect("paths is an object").keys() {
        let path = fill(template);
        assert_ne!(Route::of(&path), Route::NotFound, "{template} (as {path}) is no route of the server");
    }
}

#[test]
fn documents_exactly_what_dispatch_handles() {
    let doc = document();
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(method, template, _)| (method, fill(template))).collect();
    let dispatched: BTreeSet<(String, String)> = DISPATCHED
        .iter()
        .flat_map(|&(method, path)| {
            let methods = if method == "ANY" { METHODS.to_vec() } else { vec![method] };
            methods.into_iter().map(move |m| (m.to_string(), path.to_string()))
        })
        .collect();
    let missing: Vec<_> = dispatched.difference(&documented).map(|(m, p)| format!("{m} {p}")).collect();
    let extra: Vec<_> = documented.difference(&dispatched).map(|(m, p)| format!("{m} {p}")).collect();
    assert!(missing.is_empty(), "dispatched but not in docs/openapi.json: {missing:#?}");
    assert!(extra.is_empty(), "in docs/openapi.json but not dispatched: {extra:#?}");
}

#[test]
fn operations_declare_errors_roles_and_security() {
    let doc = document();
    for (method, template, op) in operations(&doc) {
        let at = format!("{method} {template}");
        let roles = op["x-maas-roles"].as_array().map_or(0, Vec::len);
        assert!(roles > 0 && op["description"].as_str().is_some_and(|d| d.contains("Who:")), "{at}: no roles");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
            let response = resolve(&doc, response);
            let json = &response["content"]["application/json"];
            assert_eq!(json["schema"]["$ref"], "#/components/schemas/Error", "{at} {status}: not an Error");
            let Some(&(_, codes)) = ERROR_CODES.iter().find(|(s, _)| s == status) else {
                panic!("{at}: status {status} is not in the contract");
            };
            let examples = json["examples"].as_object().filter(|e| !e.is_empty());
            for example in examples.unwrap_or_else(|| panic!("{at} {status}: no example codes")).values() {
                let code = example["value"]["code"].as_str().unwrap_or_default();
                assert!(codes.contains(&code), "{at} {status}: code {code:?} is not one of {codes:?}");
            }
            if status == "429" {
                assert!(response["headers"]["Retry-After"].is_object(), "{at} 429: no Retry-After");
            }
        }
        let security = op.get("security").unwrap_or(&doc["security"]).as_array().expect("security is a list");
        let bearer = security.iter().any(|s| s.get("bearer").is_some());
        let anonymous = security.iter().any(|s| s.as_object().is_some_and(|s| s.is_empty()));
        if PUBLIC.contains(&template) {
            assert!(security.is_empty(), "{at}: a public route with a security requirement");
        } else if template.starts_with("/fn/") {
            assert!(bearer && anonymous, "{at}: an invocation takes a key, or none for a public function");
        } else {
            assert!(bearer && !anonymous, "{at}: needs a bearer key");
        }
    }
}
