//! The routes of the HTTP contract, declared once.
//!
//! [`ROUTES`] gives each route's method, path pattern, who may call it and its handler.
//! [`super::handle`] dispatches with it; the contract check (`tests/tests/contract.rs`) compares it
//! with `docs/openapi.json`, and the README's route table is [`markdown_table`] of it (checked by
//! a test), so no list is kept by hand anywhere else.
//!
//! A pattern's `{name}` matches one non-empty path segment; `{rest}`, last, matches the rest of
//! the path, slashes and all. Trailing slashes are ignored, except in `{rest}`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use http::{Method, Response};

use super::response::Body;
use super::{Call, audit, cards, functions, invoke, models, oip, system, tenants, trust, usage};
use crate::error::Result;
use crate::platform::Platform;

/// Who may call a route. The dispatcher checks it before the handler runs, except for
/// [`Access::Invoke`], which depends on the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Public,
    /// The admin key.
    Admin,
    /// The admin key, or an owner key of the path's `{tenant}`; the tenant must exist.
    Owner,
    /// The admin key, an owner or invoker key of the path's `{tenant}`, or anyone when the
    /// function is public (the handler decides, once it knows the function).
    Invoke,
    /// Any valid key.
    AnyKey,
    /// An owner or invoker key; the route serves the key's own tenant (the admin key has none).
    TenantKey,
}

impl Access {
    /// The roles this access admits, as `docs/openapi.json` lists them (`x-maas-roles`).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public => &["anyone"],
            Access::Admin => &["admin"],
            Access::Owner => &["admin", "owner"],
            Access::Invoke => &["admin", "owner", "invoker", "anyone (public functions)"],
            Access::AnyKey => &["admin", "owner", "invoker"],
            Access::TenantKey => &["owner", "invoker"],
        }
    }
}

/// A handler: the platform and the call in, the answer out.
pub type Handler = fn(Arc<Platform>, Call) -> Pin<Box<dyn Future<Output = Result<Response<Body>>> + Send>>;

/// One route of the contract.
pub struct Route {
    /// The method; `None` for every method (invocations).
    pub method: Option<Method>,
    /// The path pattern (`/v1/tenants/{tenant}/models/{model}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether the route runs metered work admitted by the invocation path itself (rate and
    /// concurrency are charged there), rather than charged one token of rate on entry.
    pub admitted: bool,
    /// What it does, in a few words (the README's table).
    pub summary: &'static str,
    /// The handler.
    pub handler: Handler,
}

macro_rules! route {
    ($method:expr, $path:literal, $access:ident, $admitted:literal, $handler:path, $summary:literal) => {
        Route {
            method: $method,
            path: $path,
            access: Access::$access,
            admitted: $admitted,
            summary: $summary,
            handler: |platform, call| Box::pin($handler(platform, call)),
        }
    };
}

const GET: Option<Method> = Some(Method::GET);
const POST: Option<Method> = Some(Method::POST);
const PUT: Option<Method> = Some(Method::PUT);
const PATCH: Option<Method> = Some(Method::PATCH);
const DELETE: Option<Method> = Some(Method::DELETE);
const ANY: Option<Method> = None;

/// Every route of the contract, in the order the README lists them.
pub static ROUTES: &[Route] = &[
    route!(GET, "/healthz", Public, false, system::healthz, "liveness"),
    route!(GET, "/readyz", Public, false, system::readyz, "readiness: the registry is open"),
    route!(GET, "/v2/health/live", Public, false, oip::live, "OIP liveness"),
    route!(GET, "/v2/health/ready", Public, false, oip::ready_server, "OIP readiness"),
    route!(GET, "/metrics", Admin, false, system::metrics, "Prometheus text"),
    route!(POST, "/v1/tenants", Admin, false, tenants::create, "create a tenant"),
    route!(GET, "/v1/tenants", Admin, false, tenants::list, "list tenants with quotas and use"),
    route!(GET, "/v1/tenants/{tenant}", Admin, false, tenants::show, "a tenant with its quota and use"),
    route!(PATCH, "/v1/tenants/{tenant}", Admin, false, tenants::update, "change quota or suspension"),
    route!(DELETE, "/v1/tenants/{tenant}", Admin, false, tenants::delete, "delete a tenant and all it owns"),
    route!(GET, "/v1/audit", Admin, false, audit::list, "the audit trail, newest first (`?tenant=&limit=&before=`)"),
    route!(POST, "/v1/tenants/{tenant}/keys", Owner, false, tenants::create_key, "create a key (secret shown once)"),
    route!(GET, "/v1/tenants/{tenant}/keys", Owner, false, tenants::list_keys, "list keys, without secrets"),
    route!(DELETE, "/v1/tenants/{tenant}/keys/{id}", Owner, false, tenants::revoke_key, "revoke a key"),
    route!(GET, "/v1/tenants/{tenant}/models", Owner, false, models::list, "list models with their versions"),
    route!(
        PUT,
        "/v1/tenants/{tenant}/models/{model}",
        Owner,
        false,
        models::upload,
        "upload an ONNX file as the next version"
    ),
    route!(GET, "/v1/tenants/{tenant}/models/{model}", Owner, false, models::show, "the latest version's metadata"),
    route!(DELETE, "/v1/tenants/{tenant}/models/{model}", Owner, false, models::delete, "delete a model"),
    route!(
        GET,
        "/v1/tenants/{tenant}/models/{model}/versions/{version}",
        Owner,
        false,
        models::show,
        "a version's metadata"
    ),
    route!(
        DELETE,
        "/v1/tenants/{tenant}/models/{model}/versions/{version}",
        Owner,
        false,
        models::delete,
        "delete a version"
    ),
    route!(PUT, "/v1/tenants/{tenant}/models/{model}/card", Owner, false, cards::put, "write the model card"),
    route!(
        GET,
        "/v1/tenants/{tenant}/models/{model}/card",
        Owner,
        false,
        cards::get,
        "the card with the platform's facts (`?format=md|html`)"
    ),
    route!(POST, "/v1/tenants/{tenant}/models/{model}/explain", Owner, false, trust::explain, "explain a prediction"),
    route!(POST, "/v1/tenants/{tenant}/models/{model}/audit", Owner, false, trust::audit, "fairness audit of a batch"),
    route!(
        POST,
        "/v1/tenants/{tenant}/models/{model}/versions/{version}/explain",
        Owner,
        false,
        trust::explain,
        "explain a version's prediction"
    ),
    route!(
        POST,
        "/v1/tenants/{tenant}/models/{model}/versions/{version}/audit",
        Owner,
        false,
        trust::audit,
        "fairness audit of a version"
    ),
    route!(
        GET,
        "/v1/tenants/{tenant}/metrics",
        Owner,
        false,
        system::tenant_metrics,
        "the tenant's series of `/metrics` (Prometheus text)"
    ),
    route!(
        GET,
        "/v1/tenants/{tenant}/usage",
        Owner,
        false,
        usage::show,
        "usage, energy and CO2e, per function and day"
    ),
    route!(
        POST,
        "/v1/tenants/{tenant}/components",
        Owner,
        false,
        functions::upload_component,
        "upload a WebAssembly component"
    ),
    route!(GET, "/v1/tenants/{tenant}/components", Owner, false, functions::list_components, "list components"),
    route!(GET, "/v1/tenants/{tenant}/functions", Owner, false, functions::list, "list functions with live status"),
    route!(
        PUT,
        "/v1/tenants/{tenant}/functions/{function}",
        Owner,
        false,
        functions::deploy,
        "deploy or redeploy a function"
    ),
    route!(
        GET,
        "/v1/tenants/{tenant}/functions/{function}",
        Owner,
        false,
        functions::show,
        "a function's manifest and live status"
    ),
    route!(DELETE, "/v1/tenants/{tenant}/functions/{function}", Owner, false, functions::delete, "delete a function"),
    route!(ANY, "/fn/{tenant}/{function}", Invoke, true, invoke::invoke, "invoke a function"),
    route!(
        ANY,
        "/fn/{tenant}/{function}/{rest}",
        Invoke,
        true,
        invoke::invoke,
        "invoke a function at a path of its own"
    ),
    route!(GET, "/v2", AnyKey, false, oip::server, "OIP server metadata"),
    route!(GET, "/v2/models/{model}", TenantKey, false, oip::metadata, "OIP model metadata (the key's tenant)"),
    route!(GET, "/v2/models/{model}/ready", TenantKey, false, oip::ready, "OIP model readiness"),
    route!(POST, "/v2/models/{model}/infer", TenantKey, true, oip::infer, "OIP inference"),
    route!(GET, "/v2/models/{model}/versions/{version}", TenantKey, false, oip::metadata, "OIP version metadata"),
    route!(GET, "/v2/models/{model}/versions/{version}/ready", TenantKey, false, oip::ready, "OIP version readiness"),
    route!(
        POST,
        "/v2/models/{model}/versions/{version}/infer",
        TenantKey,
        true,
        oip::infer,
        "OIP inference on a version"
    ),
];

/// The names a path gave a route's parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value of `name`; empty when the route has no such parameter.
    pub fn get(&self, name: &str) -> &str {
        self.opt(name).unwrap_or_default()
    }

    /// The value of `name`, if the route has it.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// What a request's method and path find.
pub enum Found {
    /// The route, and its parameters.
    Route(&'static Route, Params),
    /// Routes have this path, none this method.
    MethodNotAllowed,
    /// No route has this path.
    NotFound,
}

/// A route's pattern, split once: its segments and whether it ends in `{rest}`.
struct Pattern {
    segments: Vec<Segment>,
    tail: bool,
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

impl Pattern {
    fn new(path: &'static str) -> Self {
        let fixed = path.strip_suffix("/{rest}");
        let segments = fixed
            .unwrap_or(path)
            .trim_start_matches('/')
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s),
            })
            .collect();
        Pattern { segments, tail: fixed.is_some() }
    }

    /// The parameters of this pattern in `segments`, if it matches. Allocates only for a
    /// match: it runs for every route on every request.
    fn matches(&self, segments: &[&str]) -> Option<Params> {
        let count = self.segments.len();
        // Trailing slashes are ignored, except in the tail.
        let segments = if self.tail { segments } else { trim_trailing(segments) };
        let fits = if self.tail { segments.len() > count } else { segments.len() == count };
        let pairs = || self.segments.iter().zip(segments.iter());
        if !fits
            || !pairs().all(|(want, got)| match want {
                Segment::Literal(literal) => literal == got,
                Segment::Param(_) => !got.is_empty(),
            })
        {
            return None;
        }
        let mut params: Vec<(&'static str, String)> = pairs()
            .filter_map(|(want, got)| match want {
                Segment::Param(name) => Some((*name, got.to_string())),
                Segment::Literal(_) => None,
            })
            .collect();
        if self.tail {
            params.push(("rest", segments[count..].join("/")));
        }
        Some(Params(params))
    }
}

/// [`ROUTES`]' patterns, split on first use.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| ROUTES.iter().map(|r| Pattern::new(r.path)).collect());

/// Each route's pattern as a metric label: `{name}` written `:name`, since braces in a label
/// value trip up simple parsers of the Prometheus text (and PromQL matchers in dashboards).
static LABELS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    ROUTES.iter().map(|r| (r.path, &*Box::leak(r.path.replace('{', ":").replace('}', "").into_boxed_str()))).collect()
});

/// The metric label of the route whose pattern is `path` (`unmatched` for none).
pub fn label(path: &str) -> &'static str {
    LABELS.get(path).copied().unwrap_or("unmatched")
}

/// The route for `method` and `path` (without the query).
pub fn find(method: &Method, path: &str) -> Found {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut path_matched = false;
    for (route, pattern) in ROUTES.iter().zip(PATTERNS.iter()) {
        if let Some(params) = pattern.matches(&segments) {
            if route.method.as_ref().is_none_or(|m| m == method) {
                return Found::Route(route, params);
            }
            path_matched = true;
        }
    }
    if path_matched { Found::MethodNotAllowed } else { Found::NotFound }
}

fn trim_trailing<'a, 'b>(mut segments: &'a [&'b str]) -> &'a [&'b str] {
    while segments.len() > 1 && segments.last() == Some(&"") {
        segments = &segments[..segments.len() - 1];
    }
    segments
}

/// The README's route table: one row per route, with who may call it and what it does.
pub fn markdown_table() -> String {
    let mut out = String::from("| method | path | who | what |\n|---|---|---|---|\n");
    for route in ROUTES {
        let method = route.method.as_ref().map_or("any", Method::as_str);
        out.push_str(&format!(
            "| {method} | `{}` | {} | {} |\n",
            route.path,
            route.access.roles().join(", "),
            route.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Option<(&'static str, Params)> {
        match find(&method, path) {
            Found::Route(route, params) => Some((route.path, params)),
            _ => None,
        }
    }

    #[test]
    fn matches_contract_paths() {
        let (path, params) = route(Method::GET, "/v1/tenants/acme/models/mlp/versions/2").unwrap();
        assert_eq!(path, "/v1/tenants/{tenant}/models/{model}/versions/{version}");
        assert_eq!((params.get("tenant"), params.get("model"), params.get("version")), ("acme", "mlp", "2"));
        assert_eq!(route(Method::GET, "/v1/tenants/").unwrap().0, "/v1/tenants");
        assert_eq!(route(Method::GET, "/v1/tenants/acme/usage").unwrap().0, "/v1/tenants/{tenant}/usage");
        assert_eq!(route(Method::POST, "/v1/tenants/acme/models/m/versions/2/audit").unwrap().1.get("version"), "2");
        assert_eq!(route(Method::GET, "/v2").unwrap().0, "/v2");
        assert_eq!(route(Method::POST, "/v2/models/mlp/versions/3/infer").unwrap().1.get("version"), "3");
        assert_eq!(route(Method::GET, "/v2/models/mlp/ready").unwrap().0, "/v2/models/{model}/ready");
        assert!(matches!(find(&Method::GET, "/v2/models/mlp/versions"), Found::NotFound));
        assert!(matches!(find(&Method::GET, "/v1/tenants/acme/unknown"), Found::NotFound));
        assert!(matches!(find(&Method::GET, "/"), Found::NotFound));
        assert!(matches!(find(&Method::GET, "/v1/tenants//keys"), Found::NotFound));
        assert!(matches!(find(&Method::POST, "/healthz"), Found::MethodNotAllowed));
        assert!(matches!(find(&Method::PATCH, "/v1/tenants/acme/models/m"), Found::MethodNotAllowed));
    }

    #[test]
    fn invocations_keep_their_path() {
        for (path, rest) in
            [("/fn/acme/f", None), ("/fn/acme/f/", None), ("/fn/acme/f/a/b", Some("a/b")), ("/fn/a/f/x/", Some("x/"))]
        {
            let (_, params) = route(Method::DELETE, path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((params.get("tenant").is_empty(), params.opt("rest")), (false, rest), "{path}");
        }
        assert!(matches!(find(&Method::GET, "/fn/acme"), Found::NotFound));
        assert!(matches!(find(&Method::GET, "/fn//f"), Found::NotFound));
    }

    #[test]
    fn every_route_is_reachable_and_the_table_lists_it() {
        let table = markdown_table();
        for r in ROUTES {
            let sample: Vec<String> =
                r.path.split('/').map(|s| if s.starts_with('{') { "x".to_string() } else { s.to_string() }).collect();
            let method = r.method.clone().unwrap_or(Method::OPTIONS);
            let Found::Route(found, _) = find(&method, &sample.join("/")) else { panic!("{} unreachable", r.path) };
            assert!(std::ptr::eq(found, r), "{} is shadowed by {}", r.path, found.path);
            assert!(table.contains(&format!("`{}`", r.path)));
        }
    }
}
