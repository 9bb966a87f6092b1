//! Keeps the documents in agreement with the one route table of the server
//! (`maas_runtime::api::ROUTES`): `docs/openapi.json` has exactly its (method, path) pairs, with
//! its roles, and every operation declares its errors and security; the README's route table is
//! the one the route table renders.

use std::collections::BTreeSet;

use maas_runtime::api::{Access, ROUTES, routes};
use serde_json::Value;

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"];

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

/// The route of `method` and `template`, from the table.
fn route(method: &str, template: &str) -> Option<&'static routes::Route> {
    ROUTES.iter().find(|r| r.path == template && r.method.as_ref().is_none_or(|m| m.as_str() == method))
}

#[test]
fn documents_exactly_the_routes_with_their_roles() {
    let doc = document();
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(method, template, _)| (method, template.to_string())).collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|r| {
            let methods = match &r.method {
                Some(m) => vec![m.as_str()],
                None => METHODS.to_vec(),
            };
            methods.into_iter().map(|m| (m.to_string(), r.path.to_string()))
        })
        .collect();
    let missing: Vec<_> = routed.difference(&documented).map(|(m, p)| format!("{m} {p}")).collect();
    let extra: Vec<_> = documented.difference(&routed).map(|(m, p)| format!("{m} {p}")).collect();
    assert!(missing.is_empty(), "routed but not in docs/openapi.json: {missing:#?}");
    assert!(extra.is_empty(), "in docs/openapi.json but not routed: {extra:#?}");
    for (method, template, op) in operations(&doc) {
        let roles: Vec<&str> = op["x-maas-roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let route = route(&method, template).expect("checked above");
        assert_eq!(roles, route.access.roles(), "{method} {template}: x-maas-roles");
    }
}

#[test]
fn the_readme_lists_the_routes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table = routes::markdown_table();
    assert!(
        readme.contains(&format!("<!-- routes -->\n{table}<!-- /routes -->")),
        "README.md's route table (between <!-- routes --> and <!-- /routes -->) is not the server's; it should \
         be:\n{table}"
    );
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
        if route(&method, template).is_some_and(|r| r.access == Access::Public) {
            assert!(security.is_empty(), "{at}: a public route with a security requirement");
        } else if template.starts_with("/fn/") {
            assert!(bearer && anonymous, "{at}: an invocation takes a key, or none for a public function");
        } else {
            assert!(bearer && !anonymous, "{at}: needs a bearer key");
        }
    }
}
