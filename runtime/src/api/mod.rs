//! The HTTP API: parse, authorize, call the domain ([`Platform`]), render.
//!
//! [`handle`] takes any request whose body is an [`http_body::Body`] of bytes (hyper's from the
//! server, an in-memory one in tests), so the whole API can be driven without a socket. For
//! each request it
//!
//! 1. finds the [`Route`] ([`routes::find`] over the one table, [`ROUTES`]);
//! 2. authenticates the caller ([`crate::auth`]) and checks the route's [`Access`], charging a
//!    tenant key one token of its rate (invocations are charged by [`crate::invocation`]);
//! 3. calls the route's handler, which parses the request, calls the platform and renders a
//!    typed answer from `maas-types`;
//! 4. turns an error into the contract's JSON ([`error`]), stamps the platform headers of
//!    metered work ([`response::Stamp`]) and `x-request-id`, counts and logs the request
//!    (never its payload).

mod audit;
mod body;
mod cards;
pub mod error;
mod functions;
mod invoke;
mod models;
mod oip;
pub mod response;
pub mod routes;
mod system;
mod tenants;
mod trust;
mod usage;

pub use body::RequestBody;
pub use error::ApiError;
pub use response::{Body, Stamp};
pub use routes::{Access, ROUTES, Route};

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use maas_types::Tenant;
use tracing::Instrument;

use self::body::{BodyError, Leftover};
use self::routes::{Found, Params};
use crate::admission::BodyHold;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// The address of the client a request came from, put in the request's extensions by the
/// server (in-process callers have none).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// One request as a handler sees it.
pub struct Call {
    /// Who is calling.
    pub principal: Principal,
    /// The path's parameters.
    pub params: Params,
    /// The request; its body is read by the handler, if at all.
    pub request: Request<RequestBody>,
    /// The request's id (`x-request-id`).
    pub request_id: String,
    /// When the request arrived.
    pub started: Instant,
    /// For [`Access::Owner`] routes: the path's tenant, which exists.
    pub tenant: Option<Tenant>,
}

impl Call {
    /// The tenant of an [`Access::Owner`] route.
    pub fn tenant(&self) -> Result<&Tenant> {
        self.tenant.as_ref().ok_or_else(|| Error::internal("a tenant route without its tenant"))
    }

    /// The path's `{version}`, when it has one.
    pub fn version(&self) -> Result<Option<u32>> {
        parse_version(self.params.opt("version"))
    }
}

/// Entry point for every request: assigns a request id, dispatches inside a tracing span
/// (never logging payloads), and stamps `x-request-id` and the platform headers.
pub async fn handle<B>(platform: Arc<Platform>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    let found = routes::find(req.method(), req.uri().path());
    let (route_path, invocation) = match &found {
        Found::Route(route, _) => (route.path, route.access == Access::Invoke),
        _ => ("unmatched", false),
    };
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = route_path,
        tenant = tracing::field::Empty,
        function = tracing::field::Empty,
        status = tracing::field::Empty,
        duration_us = tracing::field::Empty,
        cold_start = tracing::field::Empty,
        otel.kind = "server",
    );
    crate::telemetry::set_parent(&span, req.headers());
    if let Found::Route(_, params) = &found {
        for name in ["tenant", "function"] {
            if let Some(value) = params.opt(name) {
                span.record(name, value);
            }
        }
    }
    let leftover = Leftover::default();
    let expects_continue =
        req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let idle_timeout = platform.config.body_idle_timeout;
    let req = req.map(|body| RequestBody::new(body, leftover.clone(), idle_timeout));
    let call = dispatch(&platform, found, req, request_id.clone(), started).instrument(span.clone()).await;
    let mut response = call.unwrap_or_else(|e| ApiError::from(e).into_response());
    // A refusal decided before the body was read: let the client finish sending a small one,
    // so that it reads this answer rather than a broken pipe.
    if !leftover.drain(expects_continue).await {
        // Part of the body stays unread, so hyper closes the connection after this answer:
        // say so, rather than let the client find out on its next request.
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if let Some(traceparent) = crate::telemetry::traceparent(&span) {
        response.headers_mut().insert("traceparent", traceparent);
    }
    // Metered work says what to stamp. An invocation refused before it reached its function
    // gets the headers too, with no energy, except a 401/403/404: its timing would tell a
    // private function from a missing one.
    let status = response.status();
    let stamp = response.extensions_mut().remove::<Stamp>();
    if let Some(cold) = stamp.as_ref().and_then(|s| s.cold_start) {
        span.record("cold_start", cold);
    }
    match stamp {
        Some(stamp) => response::stamp(response.headers_mut(), &stamp, started.elapsed()),
        None if invocation && !matches!(status.as_u16(), 401 | 403 | 404) => {
            let refused = Stamp { cold_start: Some(false), ..Stamp::default() };
            response::stamp(response.headers_mut(), &refused, started.elapsed());
        }
        None => {}
    }
    platform.metrics.request(routes::label(route_path), status.as_u16(), started.elapsed());
    span.record("status", status.as_u16());
    span.record("duration_us", started.elapsed().as_micros() as u64);
    span.in_scope(|| tracing::info!("done"));
    response
}

/// Authenticates, checks access and runs the route's handler.
async fn dispatch(
    platform: &Arc<Platform>,
    found: Found,
    request: Request<RequestBody>,
    request_id: String,
    started: Instant,
) -> Result<Response<Body>> {
    if let Found::Route(route, _) = &found
        && route.access == Access::Public
    {
        return run(platform, found, Principal::Anonymous, request, request_id, started, None).await;
    }
    let authorization = request.headers().get(http::header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let authenticated =
        tracing::debug_span!("auth").in_scope(|| platform.auth.authenticate(&platform.registry, authorization));
    let principal = match (authenticated, &found) {
        (Ok(principal), _) => principal,
        // A bad key on an invocation is a refusal of that function.
        (Err(e), Found::Route(route, params)) if route.access == Access::Invoke => {
            return Err(invoke::refused_held(platform, params, e));
        }
        (Err(e), _) => return Err(e),
    };
    let admitted = matches!(&found, Found::Route(route, _) if route.admitted);
    if !admitted {
        // Every other request of a tenant key costs one token of the tenant's rate; the admin is
        // not a tenant, and nobody reaches further without a key.
        match &principal {
            Principal::Anonymous => return Err(Error::Unauthenticated),
            Principal::Key { tenant, .. } => platform.admission.charge(&tenant.name, &tenant.quota)?,
            Principal::Admin => {}
        }
    }
    let Found::Route(route, params) = &found else {
        return Err(match found {
            Found::MethodNotAllowed => Error::MethodNotAllowed(request.method().to_string()),
            _ => Error::not_found("no such route"),
        });
    };
    let tenant = match route.access {
        Access::Public | Access::Invoke => None,
        Access::Admin => principal.require_admin().map(|()| None)?,
        Access::AnyKey => principal.require_key().map(|()| None)?,
        Access::TenantKey => match &principal {
            Principal::Key { .. } => None,
            Principal::Admin => {
                return Err(Error::ForbiddenBecause(
                    "the Open Inference Protocol serves the models of the key's tenant; the admin key has no tenant"
                        .into(),
                ));
            }
            Principal::Anonymous => return Err(Error::Unauthenticated),
        },
        Access::Owner => {
            let name = params.get("tenant");
            principal.require_owner(name)?;
            Some(platform.tenant(&principal, name)?)
        }
    };
    run(platform, found, principal, request, request_id, started, tenant).await
}

async fn run(
    platform: &Arc<Platform>,
    found: Found,
    principal: Principal,
    request: Request<RequestBody>,
    request_id: String,
    started: Instant,
    tenant: Option<Tenant>,
) -> Result<Response<Body>> {
    let Found::Route(route, params) = found else { return Err(Error::not_found("no such route")) };
    let call = Call { principal, params, request, request_id, started, tenant };
    (route.handler)(platform.clone(), call).await
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

/// Reads a whole body of at most `limit` bytes; a longer one is [`Error::PayloadTooLarge`]
/// (refused from its `Content-Length` before reading when the client declares it).
pub(crate) async fn read_body(req: Request<RequestBody>, limit: u64) -> Result<Bytes> {
    if declared_length(&req).is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let limited = Limited::new(req.into_body(), limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Error::PayloadTooLarge(limit)),
        Err(e) => Err(Error::invalid(format!("could not read the request body: {e}"))),
    }
}

/// [`read_body`] for the large bodies of invocations and model work: every byte is counted in
/// `hold`, the tenant's share of bodies in memory, before it is kept.
pub(crate) async fn read_body_held(req: Request<RequestBody>, limit: u64, hold: &mut BodyHold) -> Result<Bytes> {
    if declared_length(&req).is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let mut body = req.into_body();
    let mut kept = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::invalid(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if kept.len() as u64 + data.len() as u64 > limit {
            return Err(Error::PayloadTooLarge(limit));
        }
        hold.grow(data.len() as u64)?;
        kept.extend_from_slice(&data);
    }
    Ok(kept.freeze())
}

/// Streams the request's body into `upload`, frame by frame.
pub(crate) async fn stream_upload(req: Request<RequestBody>, upload: &mut crate::platform::Upload) -> Result<()> {
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::invalid(format!("could not read the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            upload.write(&data).await?;
        }
    }
    Ok(())
}

/// The body's size as the client declared it (`Content-Length`).
pub(crate) fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Parses a JSON body into `T`, with serde's message on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::invalid(format!("malformed JSON body: {e}")))
}

/// A `{version}` path parameter: a number.
pub(crate) fn parse_version(v: Option<&str>) -> Result<Option<u32>> {
    v.map(|v| v.parse::<u32>().map_err(|_| Error::invalid(format!("version {v:?} is not a number")))).transpose()
}

#[cfg(test)]
mod tests;
