//! `ANY /fn/{t}/{f}[/{rest}]`: hands the request to the function and its answer back.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use super::body::RequestBody;
use super::response::{Body, Stamp};
use super::{Call, Peer, read_body_held};
use crate::admission::{BodyHold, Caller};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::host;
use crate::invocation::{ColdStart, Invoked, rejection};
use crate::platform::Platform;
use crate::scale::Slot;

pub(super) async fn invoke(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let (tenant, function) = (call.params.get("tenant"), call.params.get("function"));
    // Who may call is decided before anything else is looked at, so that another tenant's
    // key learns nothing about whether the function exists.
    let slot = match &call.principal {
        Principal::Anonymous => {
            // A missing tenant is not told apart from a function that is not public.
            let slot = match platform.scaler.slot(tenant, function) {
                Err(Error::Registry(maas_registry::Error::NotFound(_))) => None,
                other => other?,
            };
            match slot {
                Some(slot) if slot.record().manifest.public => slot,
                Some(slot) => return Err(refused(&slot, Error::Unauthenticated)),
                None => return Err(Error::Unauthenticated),
            }
        }
        p => {
            if let Err(e) = p.require_member(tenant) {
                return Err(refused_held(&platform, &call.params, e));
            }
            platform
                .scaler
                .slot(tenant, function)?
                .ok_or_else(|| Error::not_found(format!("no function {function:?}")))?
        }
    };
    let admitted = async {
        let owner = platform.tenant(&call.principal, tenant)?;
        if owner.suspended {
            return Err(Error::Suspended(owner.name));
        }
        let caller = match &call.principal {
            Principal::Anonymous => Caller::Anonymous(call.request.extensions().get::<Peer>().map(|peer| peer.0.ip())),
            _ => Caller::Keyed,
        };
        let mut ticket = platform.charge(&slot, &owner.quota, caller)?;
        let rest = format!("/{}", call.params.get("rest"));
        // The body is read before the function's place is taken: a slow client holds none.
        let request = guest_request(call.request, rest, owner.quota.max_request_bytes, &mut ticket.body).await?;
        Ok((platform.admit(&slot, &owner.quota, ticket, call.started).await?, request))
    };
    let (admitted, request) = admitted.await.map_err(|e| refused(&slot, e))?;
    Ok(render(admitted.invoke(request).await))
}

/// [`refused`] for the function the path names, if the server already holds it: a label is
/// never made from a name a caller without a key of the tenant chose.
pub(super) fn refused_held(platform: &Platform, params: &super::routes::Params, e: Error) -> Error {
    match platform.scaler.held(params.get("tenant"), params.get("function")) {
        Some(slot) => refused(&slot, e),
        None => e,
    }
}

/// Counts `e`, if it is a refusal, in the metrics of `slot`'s function, and returns it.
pub(super) fn refused(slot: &Slot, e: Error) -> Error {
    if let Some(why) = rejection(&e) {
        slot.series().rejected(why);
    }
    e
}

/// The request as the guest sees it, with `path` as its path: the body read whole (at most
/// `limit` bytes, held in `hold`), the headers but `Authorization`.
pub(super) async fn guest_request(
    request: Request<RequestBody>,
    path: String,
    limit: u64,
    hold: &mut BodyHold,
) -> Result<host::Request> {
    let (parts, body) = request.into_parts();
    let body = read_body_held(Request::from_parts(parts.clone(), body), limit, hold).await?;
    Ok(host::Request {
        method: parts.method.to_string(),
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != http::header::AUTHORIZATION)
            .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
    })
}

/// The function's answer (or the error that stood in for it), with what the platform headers
/// must say.
pub(super) fn render(invoked: Invoked) -> Response<Body> {
    let Invoked { result, cold_start, joules } = invoked;
    let mut stamp = Stamp {
        cold_start: Some(cold_start.is_some()),
        joules,
        server_timing: cold_start.map(server_timing),
        ..Stamp::default()
    };
    let mut response = match result.and_then(|answer| {
        stamp.models = answer.models;
        stamp.batch_rows = answer.batch_rows;
        to_http(answer.response)
    }) {
        Ok(response) => response,
        Err(e) => {
            let e = super::ApiError::from(e);
            tracing::warn!(code = e.code.as_str(), "invocation failed");
            e.into_response()
        }
    };
    response.extensions_mut().insert(stamp);
    response
}

/// Where a cold start's time went (`Server-Timing`, milliseconds): component load, model load
/// and optimize, and the first run (fresh instance, guest, inference).
fn server_timing(parts: ColdStart) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "component;dur={:.3}, models;dur={:.3}, run;dur={:.3}",
        ms(parts.component),
        ms(parts.models),
        ms(parts.run)
    )
}

/// Headers a guest may not set, dropped from its answer:
/// - the framing and hop-by-hop headers: the server frames the body itself, and a guest's
///   `content-length: 0` before a non-empty body would desynchronise a keep-alive connection
///   (behind a pooling proxy, one tenant could then answer another's requests);
/// - `set-cookie`: every tenant's functions share one origin, so a cookie one sets would be
///   sent to all the others.
///
/// The platform's own `x-maas-*` headers are dropped too: only the platform stamps them.
const DROPPED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether the guest's header `name` (lower case) reaches the client.
fn allowed(name: &HeaderName) -> bool {
    !DROPPED_HEADERS.contains(&name.as_str()) && !name.as_str().starts_with("x-maas-")
}

/// Turns the guest's response into an HTTP response, refusing what HTTP cannot carry and
/// dropping what the guest may not say ([`DROPPED_HEADERS`]).
fn to_http(r: host::Response) -> Result<Response<Body>> {
    let status =
        StatusCode::from_u16(r.status).map_err(|_| Error::BadResponse(format!("an invalid status {}", r.status)))?;
    let mut response = Response::new(Full::new(r.body.into()));
    *response.status_mut() = status;
    for (name, value) in r.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::BadResponse(format!("an invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Error::BadResponse(format!("an invalid value for header {name:?}")))?;
        if allowed(&header) {
            response.headers_mut().append(header, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_cookies_and_platform_headers_from_a_guest_are_dropped() {
        let headers = [
            ("Content-Length", "0"),
            ("transfer-encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("set-cookie", "session=stolen; Path=/"),
            ("x-maas-energy-uj", "0"),
            ("content-type", "text/plain"),
            ("x-custom", "kept"),
        ];
        let answer = host::Response {
            status: 200,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: b"hello".to_vec(),
        };
        let response = to_http(answer).unwrap();
        let mut names: Vec<&str> = response.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-custom"]);
    }
}
