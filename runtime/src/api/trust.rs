//! `POST .../models/{m}[/versions/{v}]/explain` and `/audit`: explanations and fairness audits
//! the server computes with tract ([`crate::trust`]), metered and admitted like invocations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use maas_registry::ModelVersion;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::RequestBody;
use super::{App, Body, json_response, parse_json, read_body, require_tenant};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::inference::{LoadedModel, ModelKey, RawTensor, tensor_from_json};
use crate::metering::{Sample, thread_cpu};
use crate::routes::TrustAction;
use crate::trust::{self, AuditParams, ExplainParams, HeatmapOptions};

#[derive(Deserialize)]
struct ExplainRequest {
    inputs: Vec<Value>,
    #[serde(flatten)]
    params: ExplainParams,
}

#[derive(Deserialize)]
struct AuditRequest {
    inputs: Vec<Value>,
    #[serde(flatten)]
    params: AuditParams,
}

/// What the blocking job hands back: the answer, and the model rows it evaluated.
type Outcome = Result<(Response<Body>, u64), ApiError>;

pub(super) async fn handle(
    app: &Arc<App>,
    p: &Principal,
    tenant: &str,
    model: &str,
    version: Option<&str>,
    action: TrustAction,
    req: Request<RequestBody>,
) -> ApiResult {
    let started = Instant::now();
    p.require_owner(tenant)?;
    let quota = require_tenant(app, tenant)?.quota;
    let number = version
        .map(|v| v.parse::<u32>().map_err(|_| ApiError::invalid_request(format!("version {v:?} is not a number"))))
        .transpose()?;
    let found = app.registry.model_version(tenant, model, number)?.ok_or_else(|| match version {
        Some(v) => ApiError::not_found(format!("model {model:?} has no version {v}")),
        None => ApiError::not_found(format!("no model {model:?}")),
    })?;
    // Explanations and audits run models many times: they count like invocations.
    app.meter.check_budget(&app.registry, tenant, &quota)?;
    let _admitted = app.admission.enter(tenant, &quota)?;
    let wants_png =
        req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("image/png"));
    let body = read_body(req, quota.max_request_bytes).await?;
    let deadline = Instant::now() + Duration::from_millis(quota.max_timeout_ms);
    let limits = trust::Limits { deadline: Some(deadline), ..trust::Limits::default() };

    let job = {
        let (app, tenant, found) = (app.clone(), tenant.to_string(), found.clone());
        move || -> (Outcome, Duration) {
            let cpu = thread_cpu();
            let outcome = (|| {
                let loaded = load(&app, &tenant, &found)?;
                match action {
                    TrustAction::Explain => explain(&loaded, &body, &limits, wants_png),
                    TrustAction::Audit => audit(&app, &tenant, &found, &loaded, &body, &limits),
                }
            })();
            (outcome, thread_cpu().saturating_sub(cpu))
        }
    };
    let (outcome, cpu) = app.blocking(job).await?;
    let sample = Sample {
        wall: started.elapsed(),
        cpu,
        // All of it is model work but the decoding: close enough to call it inference.
        inference_cpu: cpu,
        cold_start: false,
        error: outcome.is_err(),
    };
    let joules = app.meter.record(tenant, None, &sample);
    let (mut response, rows) = outcome?;
    if action == TrustAction::Audit {
        app.audit(p, "model.audit", Some(tenant), &format!("{model}@{}", found.version), json!({ "rows": rows }));
    }
    let headers = response.headers_mut();
    headers.insert("x-maas-energy-uj", HeaderValue::from((joules * 1e6).round() as u64));
    headers.insert("x-maas-duration-us", HeaderValue::from(started.elapsed().as_micros() as u64));
    headers.insert("x-maas-rows-evaluated", HeaderValue::from(rows));
    if let Ok(label) = HeaderValue::from_str(&format!("{model}@{} sha256:{}", found.version, found.sha256)) {
        headers.insert("x-maas-model", label);
    }
    Ok(response)
}

/// The model, shared with warm functions when one holds it.
fn load(app: &App, tenant: &str, version: &ModelVersion) -> Result<Arc<LoadedModel>, ApiError> {
    let key = ModelKey { tenant: tenant.to_string(), name: version.name.clone(), version: version.version };
    app.models.get_or_load(&key, || app.registry.read_blob(tenant, &version.blob).map_err(ApiError::from))
}

fn decode(inputs: &[Value]) -> Result<Vec<RawTensor>, ApiError> {
    Ok(inputs.iter().map(tensor_from_json).collect::<Result<_, _>>()?)
}

fn explain(model: &LoadedModel, body: &[u8], limits: &trust::Limits, wants_png: bool) -> Outcome {
    let request: ExplainRequest = parse_json(body)?;
    let inputs = decode(&request.inputs)?;
    let explanation = trust::explain(model, &inputs, &request.params, limits)?;
    let rows = explanation.rows_evaluated;
    if wants_png {
        let options = HeatmapOptions { layout: request.params.layout, ..HeatmapOptions::default() };
        let png = explanation.heatmap(&inputs, &options)?;
        let mut response = Response::new(Full::new(Bytes::from(png)));
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        return Ok((response, rows));
    }
    let value = serde_json::to_value(&explanation).map_err(ApiError::internal)?;
    Ok((json_response(StatusCode::OK, &value), rows))
}

fn audit(
    app: &App,
    tenant: &str,
    version: &ModelVersion,
    model: &LoadedModel,
    body: &[u8],
    limits: &trust::Limits,
) -> Outcome {
    let request: AuditRequest = parse_json(body)?;
    let inputs = decode(&request.inputs)?;
    let decisions = trust::fairness::favorable_decisions(model, inputs, &request.params.favorable, limits)?;
    let report = request.params.audit(&decisions.favorable)?;
    let mut value = serde_json::to_value(&report).map_err(ApiError::internal)?;
    value["audited_at"] = json!(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    value["model"] = json!(format!("{}@{}", version.name, version.version));
    value["rows"] = json!(decisions.favorable.len());
    app.registry.put_model_audit(tenant, &version.name, version.version, &value)?;
    Ok((json_response(StatusCode::OK, &value), decisions.rows_evaluated))
}
