//! Health checks and metrics.

use std::sync::Arc;

use http::Response;
use maas_types::Health;

use super::Call;
use super::response::{Body, ok, text};
use crate::error::Result;
use crate::platform::Platform;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Health { status: "ok".into() }))
}

/// `GET /readyz`: the registry is open (it is before the server accepts).
pub(super) async fn readyz(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Health { status: "ready".into() }))
}

/// `GET /metrics` (admin): the Prometheus text.
pub(super) async fn metrics(platform: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    let exposition = platform.metrics.render(
        platform.scaler.warm_count(),
        platform.models().loaded_count(),
        platform.models().plan_budget(),
    );
    Ok(text(exposition, "text/plain; version=0.0.4"))
}
