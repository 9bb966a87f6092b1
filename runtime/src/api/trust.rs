//! `POST .../models/{m}[/versions/{v}]/explain` and `/audit`: explanations and fairness audits
//! the server computes with tract ([`crate::trust`]), admitted and metered like invocations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response};
use maas_registry::ModelVersion;
use maas_types::{ExplainRequest, FairnessRequest, Tenant};

use super::response::{Body, Stamp, ok, text};
use super::{Call, parse_json, read_body_held};
use crate::error::{Error, Result};
use crate::inference::{HostInput, LoadedModel, ModelKey, RawTensor, tensor_from_input};
use crate::platform::Platform;
use crate::trust::{self, HeatmapOptions};

/// What a job hands back: the answer and the model rows it evaluated.
type Outcome = (Response<Body>, u64);

/// Work that runs models in the host: the model version the path names, the tenant's limits,
/// the body read, then `job` on the pool with the model loaded; metered and stamped.
async fn run_model_work<F>(platform: Arc<Platform>, call: Call, job: F) -> Result<Response<Body>>
where
    F: FnOnce(&Platform, &ModelVersion, &LoadedModel, Bytes, trust::Limits) -> Result<Outcome> + Send + 'static,
{
    let tenant = call.tenant()?.clone();
    let (name, version) = (call.params.get("model"), call.version()?);
    let found = platform.registry.model_version(&tenant.name, name, version)?.ok_or_else(|| match version {
        Some(v) => Error::not_found(format!("model {name:?} has no version {v}")),
        None => Error::not_found(format!("no model {name:?}")),
    })?;
    // Explanations and audits run models many times: they count like invocations.
    let mut hold = platform.admission.hold_bodies(&tenant.name, &tenant.quota);
    let body = read_body_held(call.request, tenant.quota.max_request_bytes, &mut hold).await?;
    let permit = platform.admit_work(&tenant).await?;
    let deadline = Instant::now() + Duration::from_millis(tenant.quota.max_timeout_ms);
    let limits = trust::Limits { deadline: Some(deadline), ..trust::Limits::default() };
    let label = format!("{} sha256:{}", found.label(), found.sha256);
    let worked = {
        let (platform, tenant) = (platform.clone(), tenant.clone());
        permit
            .run(move || {
                // The body's bytes stay counted for as long as the work holds them.
                let _hold = hold;
                let model = load(&platform, &tenant, &found)?;
                job(&platform, &found, &model, body, limits)
            })
            .await?
    };
    let (mut response, rows) = worked.result?;
    response.headers_mut().insert("x-maas-rows-evaluated", HeaderValue::from(rows));
    response.extensions_mut().insert(Stamp { joules: worked.joules, models: vec![label], ..Stamp::default() });
    Ok(response)
}

/// The model, shared with warm functions when one holds it.
fn load(platform: &Platform, tenant: &Tenant, version: &ModelVersion) -> Result<Arc<LoadedModel>> {
    let (cap, tenant) = (tenant.quota.max_memory_bytes(), tenant.name.as_str());
    let key = ModelKey {
        tenant: tenant.to_string(),
        name: version.name.clone(),
        version: version.version,
        blob: version.blob.id,
    };
    platform.models().get_or_load(&key, &version.declared_inputs, cap, || {
        platform.registry.read_blob(tenant, &version.blob).map_err(Error::from)
    })
}

fn decode(inputs: &[HostInput]) -> Result<Vec<RawTensor>> {
    Ok(inputs.iter().map(tensor_from_input).collect::<Result<_, _>>()?)
}

/// `POST …/explain`: attributions as JSON, or a PNG heatmap with `Accept: image/png`.
pub(super) async fn explain(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let accept = call.request.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let wants_png = accept.is_some_and(|v| v.contains("image/png"));
    run_model_work(platform, call, move |_, _, model, body, limits| {
        let request: ExplainRequest<HostInput> = parse_json(&body)?;
        let inputs = decode(&request.inputs)?;
        let explained = trust::explain(model, &inputs, &request.params, &limits)?;
        let rows = explained.rows_evaluated;
        if wants_png {
            let options = HeatmapOptions { layout: request.params.layout, ..HeatmapOptions::default() };
            return Ok((text(explained.heatmap(&inputs, &options)?, "image/png"), rows));
        }
        Ok((ok(&explained.explanation), rows))
    })
    .await
}

/// `POST …/audit`: the fairness figures, kept as the version's latest audit.
pub(super) async fn audit(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let actor = call.principal.clone();
    let tenant = call.tenant()?.name.clone();
    run_model_work(platform, call, move |platform, version, model, body, limits| {
        let request: FairnessRequest<HostInput> = parse_json(&body)?;
        let inputs = decode(&request.inputs)?;
        let decisions = trust::favorable_decisions(model, inputs, &request.favorable, &limits)?;
        let mut report = trust::audit(
            &decisions.favorable,
            &request.groups,
            request.labels.as_deref(),
            request.reference_group.as_deref(),
        )?;
        report.audited_at = Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
        report.model = Some(version.label());
        report.rows = Some(decisions.favorable.len() as u64);
        platform.keep_fairness_report(&actor, &tenant, version, &report)?;
        Ok((ok(&report), decisions.rows_evaluated))
    })
    .await
}
