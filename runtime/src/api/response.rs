//! Answers: JSON, text and empty bodies, and the platform headers of metered work.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// `value` as JSON with `status`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    // The contract's types always serialize.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `200` with `value` as JSON.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json(StatusCode::OK, value)
}

/// An empty answer with `status`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// `200` with `body` of `content_type`.
pub fn text(body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// What the platform headers of metered work say: handlers of invocations and of model work
/// attach it to their answer (a response extension), and [`super::handle`] stamps it, so the
/// headers are written in one place.
#[derive(Clone, Debug, Default)]
pub struct Stamp {
    /// Whether the request woke its function (`x-maas-cold-start`); `None` for work that has
    /// no function.
    pub cold_start: Option<bool>,
    /// Energy the work took, joules (`x-maas-energy-uj`).
    pub joules: f64,
    /// `name@version sha256:<hex>` of the models used (`x-maas-model`).
    pub models: Vec<String>,
    /// The parts of a cold start (`Server-Timing`, milliseconds).
    pub server_timing: Option<String>,
    /// Rows of the batch the inference ran in (`x-maas-batch-size`), with batching.
    pub batch_rows: Option<usize>,
}

/// The header with the server's time on metered work, in microseconds.
pub const DURATION_HEADER: &str = "x-maas-duration-us";

/// Writes `stamp`'s headers, and the server's time `duration`.
pub(super) fn stamp(headers: &mut HeaderMap, stamp: &Stamp, duration: Duration) {
    if let Some(cold) = stamp.cold_start {
        headers.insert("x-maas-cold-start", HeaderValue::from_static(if cold { "true" } else { "false" }));
    }
    headers.insert(DURATION_HEADER, HeaderValue::from(duration.as_micros() as u64));
    headers.insert("x-maas-energy-uj", HeaderValue::from((stamp.joules * 1e6).round() as u64));
    if let Some(timing) = stamp.server_timing.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert("server-timing", timing);
    }
    if let Some(models) = Some(stamp.models.join(", ")).filter(|m| !m.is_empty())
        && let Ok(value) = HeaderValue::from_str(&models)
    {
        headers.insert("x-maas-model", value);
    }
    if let Some(rows) = stamp.batch_rows {
        // How many rows the call's inference ran with: tells a client (and a test) that
        // batching took place without logging anything of the payload.
        headers.insert("x-maas-batch-size", HeaderValue::from(rows));
    }
}
