//! `GET /v1/tenants/{t}/usage`: what a tenant's invocations and inference cost, in total, per
//! function and per UTC day.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use maas_registry::Usage;
use serde_json::{Value, json};

use super::{App, json_response, require_tenant};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::metering::EnergyModel;

/// The counters of one aggregate as the contract shows them.
fn view(u: &Usage, model: &EnergyModel) -> Value {
    json!({
        "invocations": u.invocations,
        "errors": u.errors,
        "cold_starts": u.cold_starts,
        "wall_seconds": u.wall_seconds,
        "cpu_seconds": u.cpu_seconds,
        "inference_seconds": u.inference_seconds,
        "energy_joules": u.energy_joules,
        "co2e_grams": model.co2e_grams(u.energy_joules),
    })
}

pub(super) async fn show(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let (app2, name) = (app.clone(), tenant.to_string());
    let rows = app.blocking(move || app2.meter.usage(&app2.registry, &name)).await??;
    let storage_bytes = app.registry.storage_bytes(tenant)?;
    let model = app.meter.model();

    let mut total = Usage::default();
    let mut direct = Usage::default();
    let mut functions: BTreeMap<&str, Usage> = BTreeMap::new();
    let mut days: BTreeMap<&str, Usage> = BTreeMap::new();
    for row in &rows {
        total.add(&row.usage);
        days.entry(&row.day).or_default().add(&row.usage);
        match &row.function {
            Some(f) => functions.entry(f).or_default().add(&row.usage),
            None => direct.add(&row.usage),
        }
    }
    let mut body = view(&total, &model);
    body["tenant"] = json!(tenant);
    body["storage_bytes"] = json!(storage_bytes);
    body["functions"] = functions.iter().map(|(f, u)| (f.to_string(), view(u, &model))).collect();
    // Open Inference Protocol calls and explanations: no function of the tenant's own.
    body["direct_inference"] = view(&direct, &model);
    body["days"] = days
        .iter()
        .map(|(day, u)| {
            let mut v = view(u, &model);
            v["date"] = json!(day);
            v
        })
        .collect();
    body["energy_model"] = json!(model);
    Ok(json_response(StatusCode::OK, &body))
}
