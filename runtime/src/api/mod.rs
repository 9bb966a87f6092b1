//! The HTTP API: one dispatcher from (route, method) to handlers, and the shared [`App`].
//!
//! Handlers are thin: check who calls ([`Principal`]), parse, call the registry, the host or
//! the scaler, and shape JSON. Errors become responses in [`crate::error`] only.

mod audit;
mod body;
mod cards;
mod functions;
mod invoke;
mod models;
mod oip;
mod tenants;
mod trust;
mod usage;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use maas_registry::Registry;
use tokio::sync::Semaphore;
use tracing::Instrument;

use self::body::{Leftover, RequestBody};
use crate::admission::Admission;
use crate::auth::{Authenticator, Principal};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::inference::ModelCache;
use crate::metering::Meter;
use crate::routes::{OipAction, Route};
use crate::scale::Scaler;

/// Everything a request handler can reach. One per server, shared by `Arc`.
pub struct App {
    /// The server's configuration.
    pub config: Config,
    /// The store.
    pub registry: Registry,
    /// The wasmtime host.
    pub host: Host,
    /// Loaded models, shared across functions.
    pub models: ModelCache,
    /// Deployed functions and their warm state.
    pub scaler: Arc<Scaler>,
    /// Per-tenant rate and concurrency.
    pub admission: Admission,
    /// CPU, energy and CO2e per tenant, function and day.
    pub meter: Arc<Meter>,
    pub(crate) auth: Authenticator,
    blocking: Arc<Semaphore>,
    metrics: Metrics,
}

/// Process-wide counters for `/metrics`.
#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    invocations: AtomicU64,
    cold_starts: AtomicU64,
    cold_start_us_total: AtomicU64,
    inference_us_total: AtomicU64,
    /// Invocations whose inference ran in a batch with others.
    batched_invocations: AtomicU64,
}

impl App {
    pub(crate) fn new(config: Config, registry: Registry, host: Host, auth: Authenticator) -> Arc<Self> {
        let blocking = Arc::new(Semaphore::new(config.max_blocking));
        let meter = Meter::new(config.energy);
        Arc::new(Self {
            config,
            registry,
            host,
            models: ModelCache::default(),
            scaler: Scaler::new(),
            admission: Admission::default(),
            meter,
            auth,
            blocking,
            metrics: Metrics::default(),
        })
    }

    /// Runs CPU-bound work (wasm, inference, compilation) on the blocking pool, at most
    /// `max_blocking` jobs at once; waiting callers queue here, not on threads.
    pub async fn blocking<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.blocking.clone().acquire_owned().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Reads a whole body of at most `limit` bytes; a longer one is `413` (refused from its
/// `Content-Length` before reading when the client declares it).
pub(crate) async fn read_body(req: Request<RequestBody>, limit: u64) -> Result<Bytes, ApiError> {
    if declared_length(&req).is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let limited = Limited::new(req.into_body(), limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::invalid_request(format!("could not read the request body: {e}"))),
    }
}

/// `403 quota_exceeded` for an upload that passed `received` bytes while the tenant allows
/// `limit` per file and has `room` left in its storage.
pub(crate) fn upload_over_quota(received: u64, limit: u64, room: u64) -> ApiError {
    ApiError::from(maas_registry::Error::QuotaExceeded(format!(
        "the upload is at least {received} bytes: more than the tenant's max_model_bytes ({limit}) \
         or its remaining storage ({room} bytes left of max_storage_bytes)"
    )))
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Parses a JSON body into `T`, with serde's message on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_request(format!("malformed JSON body: {e}")))
}

/// Entry point for every request: assigns a request id, runs the handler inside a tracing
/// span (never logging payloads), and stamps `x-request-id`.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let route = Route::of(req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = route_name(&route),
        tenant = route.tenant().unwrap_or(""),
        function = tracing::field::Empty,
        status = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    let invocation = matches!(route, Route::Invoke { .. });
    if let Route::Invoke { function, .. } = &route {
        span.record("function", function.as_str());
    }
    let leftover = Leftover::default();
    let expects_continue =
        req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let req = req.map(|body| RequestBody::new(body, leftover.clone()));
    let mut response =
        dispatch(&app, route, req, &request_id).instrument(span.clone()).await.unwrap_or_else(ApiError::into_response);
    // A refusal decided before the body was read: let the client finish sending a small one,
    // so that it reads this answer rather than a broken pipe.
    leftover.drain(expects_continue).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if invocation && !response.headers().contains_key(invoke::DURATION_HEADER) {
        invoke::platform_headers(response.headers_mut(), false, started.elapsed(), 0.0);
    }
    let status = response.status();
    app.metrics.requests.fetch_add(1, Ordering::Relaxed);
    if status.is_client_error() {
        app.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if status.is_server_error() {
        app.metrics.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    span.record("status", status.as_u16());
    span.record("duration_us", started.elapsed().as_micros() as u64);
    span.in_scope(|| tracing::info!("done"));
    response
}

/// The client's `x-request-id` when it is short and plain, else a new random one.
fn request_id<B>(req: &Request<B>) -> String {
    let given = req.headers().get("x-request-id").and_then(|v| v.to_str().ok());
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_string()
        }
        _ => format!("{:016x}", rand::random::<u64>()),
    }
}

fn route_name(route: &Route) -> &'static str {
    match route {
        Route::Healthz => "healthz",
        Route::Readyz => "readyz",
        Route::Metrics => "metrics",
        Route::Tenants | Route::Tenant(_) => "tenants",
        Route::Audit => "audit",
        Route::Keys(_) | Route::Key(..) => "keys",
        Route::Models(_) | Route::Model(..) | Route::ModelVersion(..) => "models",
        Route::Components(_) => "components",
        Route::Usage(_) => "usage",
        Route::ModelCard(..) | Route::ModelTrust { .. } => "trust",
        Route::Functions(_) | Route::Function(..) => "functions",
        Route::Invoke { .. } => "invoke",
        Route::OipLive | Route::OipReady | Route::OipServer | Route::OipModel { .. } => "oip",
        Route::NotFound => "not_found",
    }
}

async fn dispatch(app: &Arc<App>, route: Route, req: Request<RequestBody>, request_id: &str) -> ApiResult {
    let method = req.method().clone();
    match (&route, &method) {
        (Route::Healthz, &Method::GET) => {
            return Ok(json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})));
        }
        (Route::Readyz, &Method::GET) => {
            return Ok(json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})));
        }
        (Route::OipLive, &Method::GET) => return Ok(json_response(StatusCode::OK, &serde_json::json!({"live": true}))),
        (Route::OipReady, &Method::GET) => {
            return Ok(json_response(StatusCode::OK, &serde_json::json!({"ready": true})));
        }
        _ => {}
    }
    let principal = app.auth.authenticate(&app.registry, req.headers())?;
    // Invocations are admitted (rate, concurrency) by the invocation path itself.
    match route {
        Route::Invoke { tenant, function, rest } => {
            return invoke::invoke(app, principal, &tenant, &function, rest, req, request_id).await;
        }
        Route::OipModel { model, version, action: OipAction::Infer } if method == Method::POST => {
            return oip::infer(app, &principal, &model, version.as_deref(), req, request_id).await;
        }
        _ => {}
    }
    match &principal {
        Principal::Anonymous => return Err(ApiError::unauthenticated()),
        Principal::Key(key, quota) => app.admission.charge(&key.tenant, quota)?,
        Principal::Admin => {}
    }
    let p = &principal;
    match (route, method) {
        (Route::Metrics, Method::GET) => {
            p.require_admin()?;
            Ok(metrics(app))
        }
        (Route::Tenants, Method::POST) => tenants::create(app, p, req).await,
        (Route::Tenants, Method::GET) => tenants::list(app, p),
        (Route::Tenant(t), Method::GET) => tenants::show(app, p, &t),
        (Route::Tenant(t), Method::PATCH) => tenants::update(app, p, &t, req).await,
        (Route::Tenant(t), Method::DELETE) => tenants::delete(app, p, &t),
        (Route::Audit, Method::GET) => audit::list(app, p, &req),
        (Route::Keys(t), Method::POST) => tenants::create_key(app, p, &t, req).await,
        (Route::Keys(t), Method::GET) => tenants::list_keys(app, p, &t),
        (Route::Key(t, id), Method::DELETE) => tenants::revoke_key(app, p, &t, &id),
        (Route::Models(t), Method::GET) => models::list(app, p, &t),
        (Route::Model(t, m), Method::PUT) => models::upload(app, p, &t, &m, req).await,
        (Route::Model(t, m), Method::GET) => models::show(app, p, &t, &m, None),
        (Route::Model(t, m), Method::DELETE) => models::delete(app, p, &t, &m, None),
        (Route::ModelVersion(t, m, v), Method::GET) => models::show(app, p, &t, &m, Some(&v)),
        (Route::ModelVersion(t, m, v), Method::DELETE) => models::delete(app, p, &t, &m, Some(&v)),
        (Route::Usage(t), Method::GET) => usage::show(app, p, &t).await,
        (Route::ModelCard(t, m), Method::PUT) => cards::put(app, p, &t, &m, req).await,
        (Route::ModelCard(t, m), Method::GET) => cards::get(app, p, &t, &m, &req),
        (Route::ModelTrust { tenant, model, version, action }, Method::POST) => {
            trust::handle(app, p, &tenant, &model, version.as_deref(), action, req).await
        }
        (Route::Components(t), Method::POST) => functions::upload_component(app, p, &t, req).await,
        (Route::Components(t), Method::GET) => functions::list_components(app, p, &t),
        (Route::Functions(t), Method::GET) => functions::list(app, p, &t, &req),
        (Route::Function(t, f), Method::PUT) => functions::deploy(app, p, &t, &f, req).await,
        (Route::Function(t, f), Method::GET) => functions::show(app, p, &t, &f, &req),
        (Route::Function(t, f), Method::DELETE) => functions::delete(app, p, &t, &f),
        (Route::OipServer, Method::GET) => oip::server(p),
        (Route::OipModel { model, version, action: OipAction::Metadata }, Method::GET) => {
            oip::metadata(app, p, &model, version.as_deref())
        }
        (Route::OipModel { model, version, action: OipAction::Ready }, Method::GET) => {
            oip::ready(app, p, &model, version.as_deref())
        }
        (Route::NotFound, _) => Err(ApiError::not_found("no such route")),
        (_, method) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("{method} is not allowed on this path"),
        )),
    }
}

/// Checks that `tenant` exists after the caller was allowed to act on it: callers that may
/// act on it are the admin (who learns it does not exist) or its own keys.
pub(crate) fn require_tenant(app: &App, tenant: &str) -> Result<maas_registry::Tenant, ApiError> {
    app.registry.tenant(tenant)?.ok_or_else(|| ApiError::not_found(format!("no tenant {tenant:?}")))
}

fn metrics(app: &App) -> Response<Body> {
    let m = &app.metrics;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let text = format!(
        "# HELP maas_requests_total HTTP requests handled.\n# TYPE maas_requests_total counter\nmaas_requests_total {}\n\
         # HELP maas_request_errors_total Requests answered with an error, by class.\n# TYPE maas_request_errors_total counter\n\
         maas_request_errors_total{{class=\"4xx\"}} {}\nmaas_request_errors_total{{class=\"5xx\"}} {}\n\
         # HELP maas_invocations_total Function invocations.\n# TYPE maas_invocations_total counter\nmaas_invocations_total {}\n\
         # HELP maas_cold_starts_total Cold starts.\n# TYPE maas_cold_starts_total counter\nmaas_cold_starts_total {}\n\
         # HELP maas_cold_start_seconds_total Time spent in cold starts.\n# TYPE maas_cold_start_seconds_total counter\nmaas_cold_start_seconds_total {}\n\
         # HELP maas_inference_seconds_total Time spent in tract.\n# TYPE maas_inference_seconds_total counter\nmaas_inference_seconds_total {}\n\
         # HELP maas_batched_invocations_total Invocations whose inference shared a batch with others.\n# TYPE maas_batched_invocations_total counter\nmaas_batched_invocations_total {}\n\
         # HELP maas_warm_functions Functions currently warm.\n# TYPE maas_warm_functions gauge\nmaas_warm_functions {}\n\
         # HELP maas_loaded_models Models currently loaded.\n# TYPE maas_loaded_models gauge\nmaas_loaded_models {}\n",
        get(&m.requests),
        get(&m.client_errors),
        get(&m.server_errors),
        get(&m.invocations),
        get(&m.cold_starts),
        get(&m.cold_start_us_total) as f64 / 1e6,
        get(&m.inference_us_total) as f64 / 1e6,
        get(&m.batched_invocations),
        app.scaler.warm_count(),
        app.models.loaded_count(),
    );
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
