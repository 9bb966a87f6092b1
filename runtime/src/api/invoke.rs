//! `ANY /fn/{t}/{f}[/{rest}]`: the invocation path, and the cold start that wakes a function.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use maas_registry::{FunctionRecord, ModelRef, Quota};

use super::body::RequestBody;
use super::{App, Body, read_body};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::host::{self, BoundModel, Capabilities, Limits};
use crate::inference::{BatchPolicy, ModelKey};
use crate::metering::{Sample, thread_cpu};
use crate::scale::{Slot, Warm};

pub(super) async fn invoke(
    app: &Arc<App>,
    principal: Principal,
    tenant: &str,
    function: &str,
    rest: String,
    req: Request<RequestBody>,
    request_id: &str,
) -> ApiResult {
    let started = Instant::now();
    // Who may call is decided before anything else is looked at, so that another tenant's
    // key learns nothing about whether the function exists.
    let slot = match &principal {
        Principal::Anonymous => {
            // A missing tenant is not told apart from a function that is not public.
            let slot = match app.scaler.slot(&app.registry, tenant, function) {
                Err(e) if e.status == StatusCode::NOT_FOUND => None,
                other => other?,
            };
            match slot {
                Some(slot) if slot.record().manifest.public => slot,
                _ => return Err(ApiError::unauthenticated()),
            }
        }
        p => {
            p.require_member(tenant)?;
            app.scaler
                .slot(&app.registry, tenant, function)?
                .ok_or_else(|| ApiError::not_found(format!("no function {function:?}")))?
        }
    };
    let owner = super::require_tenant(app, tenant)?;
    if owner.suspended {
        return Err(ApiError::suspended(tenant));
    }
    run(app, &owner.quota, &slot, rest, req, request_id, started).await
}

/// Runs one request through `slot`'s function: admission under the tenant's rate and
/// concurrency and the function's own concurrency, the body (at most `max_request_bytes`),
/// the warm state (waking the function if cold), a fresh instance on the blocking pool, and
/// the platform headers on the response, errors included. The caller has authorized it.
pub(super) async fn run(
    app: &Arc<App>,
    quota: &Quota,
    slot: &Arc<Slot>,
    rest: String,
    req: Request<RequestBody>,
    request_id: &str,
    started: Instant,
) -> ApiResult {
    let record = slot.record();
    let tenant = &record.tenant;
    app.meter.check_budget(&app.registry, tenant, quota)?;
    // The permits are held until the response is built.
    let _admitted = app.admission.enter(tenant, quota)?;
    let running = app.scaler.begin(slot)?;

    let mut cold = false;
    let mut timing = String::new();
    let mut sample = Sample::default();
    let result = async {
        let (parts, body) = req.into_parts();
        let body = read_body(Request::from_parts(parts.clone(), body), quota.max_request_bytes).await?;
        let (warm, was_cold) = app
            .scaler
            .warm(slot, |record| {
                let app = app.clone();
                async move {
                    let waker = app.clone();
                    app.blocking(move || wake(&waker, &record)).await?
                }
            })
            .await?;
        cold = was_cold;
        if cold {
            sample.cpu += warm.wake_cpu;
            app.metrics.cold_starts.fetch_add(1, Ordering::Relaxed);
            app.metrics.cold_start_us_total.fetch_add(warm.wake_time.as_micros() as u64, Ordering::Relaxed);
        }
        let guest_request = host::Request {
            method: parts.method.to_string(),
            path: rest,
            query: parts.uri.query().unwrap_or_default().to_string(),
            headers: parts
                .headers
                .iter()
                .filter(|(name, _)| *name != http::header::AUTHORIZATION)
                .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body: body.to_vec(),
        };
        let (app2, warm2) = (app.clone(), warm.clone());
        let invoked = Instant::now();
        let (outcome, cpu) = app
            .blocking(move || {
                let cpu = thread_cpu();
                let outcome = app2.host.invoke(&warm2.pre, warm2.caps.clone(), warm2.limits, guest_request);
                (outcome, thread_cpu().saturating_sub(cpu))
            })
            .await?;
        sample.cpu += cpu;
        if cold {
            // The parts of the cold start, for whoever wants to see where it went
            // (Server-Timing, milliseconds): component load, model load + optimize, and
            // this first run (fresh instance, guest, inference).
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            timing = format!(
                "component;dur={:.3}, models;dur={:.3}, run;dur={:.3}",
                ms(warm.wake_component),
                ms(warm.wake_models),
                ms(invoked.elapsed())
            );
        }
        app.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        let (response, report) = outcome?;
        sample.inference_cpu = report.inference_cpu;
        app.metrics.inference_us_total.fetch_add(report.inference.as_micros() as u64, Ordering::Relaxed);
        let models: Vec<&str> =
            report.models_used.iter().filter_map(|alias| warm.model_labels.get(alias).map(String::as_str)).collect();
        let mut response = to_http(response)?;
        if warm.caps.batching.is_some() && report.batch_rows > 0 {
            // How many rows the call's inference ran with: tells a client (and a test) that
            // batching took place without logging anything of the payload.
            response.headers_mut().insert("x-maas-batch-size", HeaderValue::from(report.batch_rows));
            if report.batch_shared {
                app.metrics.batched_invocations.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok::<_, ApiError>((response, models.join(", ")))
    }
    .await;
    running.finish(result.is_err());
    sample.wall = started.elapsed();
    sample.cold_start = cold;
    sample.error = result.is_err();
    // Implicit functions (OIP) have names no deployed function can have: their usage is the
    // tenant's direct inference.
    let function = Some(record.name.as_str()).filter(|name| maas_registry::validate_function_name(name).is_ok());
    let joules = app.meter.record(tenant, function, &sample);

    // Platform headers go on every invocation response, errors included.
    let (mut response, models) = result.unwrap_or_else(|e| {
        tracing::warn!(request_id, code = e.code, "invocation failed");
        (e.into_response(), String::new())
    });
    let headers = response.headers_mut();
    platform_headers(headers, cold, started.elapsed(), joules);
    if let Ok(value) = HeaderValue::from_str(&timing)
        && !timing.is_empty()
    {
        headers.insert("server-timing", value);
    }
    if !models.is_empty()
        && let Ok(value) = HeaderValue::from_str(&models)
    {
        headers.insert("x-maas-model", value);
    }
    Ok(response)
}

/// Stamps the headers the contract puts on every invocation response: whether it was a cold
/// start, the time the server spent on it and the energy it used. [`super::handle`] stamps them
/// on invocations refused before they reached [`run`] too (no key, another tenant's, no such
/// function), with no energy.
pub(super) fn platform_headers(headers: &mut HeaderMap, cold: bool, duration: Duration, joules: f64) {
    headers.insert("x-maas-cold-start", HeaderValue::from_static(if cold { "true" } else { "false" }));
    headers.insert(DURATION_HEADER, HeaderValue::from(duration.as_micros() as u64));
    headers.insert("x-maas-energy-uj", HeaderValue::from((joules * 1e6).round() as u64));
}

/// The header with the server's time on an invocation, in microseconds.
pub(super) const DURATION_HEADER: &str = "x-maas-duration-us";

/// Turns the guest's response into an HTTP response, refusing what HTTP cannot carry.
fn to_http(r: host::Response) -> Result<Response<Body>, ApiError> {
    let invalid = |what: String| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "function_trapped", format!("the function returned {what}"))
    };
    let status = StatusCode::from_u16(r.status).map_err(|_| invalid(format!("an invalid status {}", r.status)))?;
    let mut response = Response::new(Full::new(r.body.into()));
    *response.status_mut() = status;
    for (name, value) in r.headers {
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(format!("an invalid header name {name:?}")))?;
        let value =
            HeaderValue::from_str(&value).map_err(|_| invalid(format!("an invalid value for header {name:?}")))?;
        response.headers_mut().append(header, value);
    }
    Ok(response)
}

/// The cold start: load the component (deserializing its stored artifact), link it, and
/// load the models the manifest names. Runs on a blocking thread.
fn wake(app: &App, record: &FunctionRecord) -> Result<Warm, ApiError> {
    let (started, cpu) = (Instant::now(), thread_cpu());
    let tenant = &record.tenant;
    let manifest = &record.manifest;
    let component = match app.host.builtin(&manifest.component) {
        Some(component) => component,
        None => load_component(app, tenant, &manifest.component)?,
    };
    let pre = app.host.prepare(&component).map_err(ApiError::internal)?;
    let wake_component = started.elapsed();

    let mut models = HashMap::new();
    let mut model_labels = HashMap::new();
    for (alias, reference) in &manifest.models {
        let r = ModelRef::parse(reference)?;
        let version = app.registry.model_version(tenant, &r.name, r.version)?.ok_or_else(|| {
            ApiError::internal(format!("function {tenant}/{} names model {reference}, which is gone", record.name))
        })?;
        let key = ModelKey { tenant: tenant.clone(), name: version.name.clone(), version: version.version };
        let model =
            app.models.get_or_load(&key, || app.registry.read_blob(tenant, &version.blob).map_err(ApiError::from))?;
        let label = format!("{}@{}", version.name, version.version);
        let digest = format!("sha256:{}", version.sha256);
        model_labels.insert(alias.clone(), format!("{label} {digest}"));
        models.insert(alias.clone(), BoundModel { label, digest, model });
    }
    let batching = manifest.batching.as_ref().filter(|b| b.max_batch_size > 1).map(|b| BatchPolicy {
        max_batch_size: b.max_batch_size as usize,
        max_queue_delay: Duration::from_micros(b.max_queue_delay_us),
    });
    let caps = Arc::new(Capabilities { models, config: manifest.config.clone().into_iter().collect(), batching });
    let limits =
        Limits { memory_bytes: manifest.limits.memory_mb as usize * (1 << 20), timeout_ms: manifest.limits.timeout_ms };
    let wake_time = started.elapsed();
    let wake_models = wake_time.saturating_sub(wake_component);
    tracing::info!(tenant = %tenant, function = %record.name, wake_us = wake_time.as_micros() as u64, "cold start");
    let wake_cpu = thread_cpu().saturating_sub(cpu);
    Ok(Warm {
        revision: record.revision,
        pre,
        caps,
        limits,
        model_labels,
        wake_time,
        wake_component,
        wake_models,
        wake_cpu,
    })
}

/// A tenant's component from its stored artifact; compiled again (and the artifact stored)
/// only when no artifact matches this engine, e.g. after an upgrade.
fn load_component(app: &App, tenant: &str, digest: &str) -> Result<wasmtime::component::Component, ApiError> {
    if let Some(artifact) = app.registry.artifact(tenant, digest, app.host.fingerprint())? {
        match app.host.load_artifact(&artifact) {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(error = %e, digest, "stored artifact unusable; recompiling"),
        }
    }
    let record = app
        .registry
        .component(tenant, digest)?
        .ok_or_else(|| ApiError::internal(format!("component {digest} is gone")))?;
    let wasm = app.registry.read_blob(tenant, &record.blob)?;
    let (component, artifact) = app.host.compile(&wasm)?;
    app.registry.put_artifact(tenant, digest, app.host.fingerprint(), &artifact)?;
    Ok(component)
}
