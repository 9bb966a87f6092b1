//! `ANY /fn/{t}/{f}[/{rest}]`: hands the request to the function and its answer back.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use super::body::RequestBody;
use super::response::{Body, Stamp};
use super::{Call, read_body};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::host;
use crate::invocation::{Admitted, ColdStart, Invoked};
use crate::platform::Platform;

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
                _ => return Err(Error::Unauthenticated),
            }
        }
        p => {
            p.require_member(tenant)?;
            platform
                .scaler
                .slot(tenant, function)?
                .ok_or_else(|| Error::not_found(format!("no function {function:?}")))?
        }
    };
    let owner = platform.tenant(&call.principal, tenant)?;
    if owner.suspended {
        return Err(Error::Suspended(owner.name));
    }
    let admitted = platform.admit(&slot, &owner.quota, call.started)?;
    let rest = format!("/{}", call.params.get("rest"));
    Ok(render(run(admitted, call.request, rest, owner.quota.max_request_bytes).await))
}

/// Runs an admitted invocation: the body (at most `limit` bytes) and the request the guest
/// sees, with `path` as its path.
pub(super) async fn run(admitted: Admitted, request: Request<RequestBody>, path: String, limit: u64) -> Invoked {
    admitted
        .invoke(async move {
            let (parts, body) = request.into_parts();
            let body = read_body(Request::from_parts(parts.clone(), body), limit).await?;
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
        })
        .await
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

/// Turns the guest's response into an HTTP response, refusing what HTTP cannot carry.
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
        response.headers_mut().append(header, value);
    }
    Ok(response)
}
