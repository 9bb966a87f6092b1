//! Health checks and metrics.

use std::sync::Arc;

use http::Response;
use maas_types::Health;

use super::Call;
use super::response::{Body, ok, text as text_response};
use crate::error::Result;
use crate::metrics::{FunctionGauge, Gauges, ModelGauge};
use crate::platform::Platform;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Health { status: "ok".into() }))
}

/// `GET /readyz`: the registry is open (it is before the server accepts).
pub(super) async fn readyz(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Health { status: "ready".into() }))
}

/// `GET /metrics` (admin): the Prometheus text of every series.
pub(super) async fn metrics(platform: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    exposition(platform, None).await
}

/// `GET /v1/tenants/{tenant}/metrics` (admin, owner): the Prometheus text of the tenant's
/// series only.
pub(super) async fn tenant_metrics(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = call.tenant()?.name.clone();
    exposition(platform, Some(tenant)).await
}

/// The exposition of `tenant`'s series, or of all, with the gauges read now. Written on the
/// pool: a server with many functions writes megabytes.
async fn exposition(platform: Arc<Platform>, tenant: Option<String>) -> Result<Response<Body>> {
    let text = platform.pool.clone().run(move || render(&platform, tenant.as_deref())).await?;
    Ok(text_response(text, prometheus_client::encoding::prometheus_text::CONTENT_TYPE))
}

/// [`exposition`]'s text: the exposition keeps only `tenant`'s series, when given.
fn render(platform: &Arc<Platform>, tenant: Option<&str>) -> String {
    let functions = platform
        .scaler
        .slots()
        .into_iter()
        .map(|slot| {
            let record = slot.record();
            FunctionGauge {
                tenant: record.tenant.clone(),
                function: record.name.clone(),
                warm: slot.warm_state().is_some(),
                instances: slot.in_flight(),
            }
        })
        .collect();
    let models = platform
        .models()
        .loaded()
        .into_iter()
        .map(|(key, model)| ModelGauge {
            model: key.label(),
            tenant: key.tenant,
            bytes: model.weight_bytes(),
            plans: model.plan_count(),
            plan_bytes: model.plan_bytes(),
        })
        .collect();
    let (pool_running, pool_waiting) = platform.pool.load();
    let gauges =
        Gauges { functions, models, pool_waiting, pool_running, resident_bytes: crate::memory::resident_bytes() };
    platform.metrics.render(gauges, tenant)
}
