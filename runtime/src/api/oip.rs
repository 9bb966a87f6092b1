//! The Open Inference Protocol (KServe v2) under `/v2`, for the models of the key's tenant,
//! so that stock clients (tritonclient, KServe clients) work unchanged.
//!
//! Health, server metadata, model metadata and readiness come from the registry. Inference
//! runs through `builtin:tensor` like any function: each model version gets an implicit
//! function ([`Platform::oip_slot`]) that receives the request as it came. The tensor payload,
//! JSON or binary, is therefore decoded inside the sandbox; the host never parses it.

use std::sync::Arc;

use http::Response;
use maas_registry::ModelVersion;
use maas_types::Tenant;
use maas_types::oip::{Live, ModelMetadata, ModelReady, Ready, ServerMetadata};

use super::response::{Body, ok};
use super::{Call, invoke};
use crate::admission::Caller;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// The key's tenant: the OIP paths name none (the dispatcher let only tenant keys in).
fn key_tenant(call: &Call) -> Result<&Tenant> {
    call.principal.tenant().ok_or(Error::Unauthenticated)
}

/// The model version a path names: the latest one without `{version}`.
fn model_version(platform: &Platform, tenant: &str, call: &Call) -> Result<ModelVersion> {
    let (model, version) = (call.params.get("model"), call.version()?);
    platform.registry.model_version(tenant, model, version)?.ok_or_else(|| match version {
        Some(v) => Error::not_found(format!("model {model:?} has no version {v}")),
        None => Error::not_found(format!("no model {model:?}")),
    })
}

/// `GET /v2/health/live`.
pub(super) async fn live(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Live { live: true }))
}

/// `GET /v2/health/ready`.
pub(super) async fn ready_server(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&Ready { ready: true }))
}

/// `GET /v2`: server metadata.
pub(super) async fn server(_: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    Ok(ok(&ServerMetadata {
        name: "maas".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into()],
    }))
}

/// `GET /v2/models/{m}[/versions/{v}]`: the model's signature in OIP terms.
pub(super) async fn metadata(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = &key_tenant(&call)?.name;
    let found = model_version(&platform, tenant, &call)?;
    let model = call.params.get("model");
    let versions = match call.params.opt("version") {
        Some(_) => vec![found.version.to_string()],
        None => platform
            .registry
            .models(tenant)?
            .into_iter()
            .find(|m| m.name == model)
            .map(|m| m.versions.iter().map(|v| v.version.to_string()).collect())
            .unwrap_or_default(),
    };
    Ok(ok(&ModelMetadata {
        name: model.to_string(),
        versions,
        platform: "onnx".into(),
        inputs: found.inputs,
        outputs: found.outputs,
        declared_inputs: found.declared_inputs,
        per_request_shapes: found.per_request_shapes,
        notes: found.notes,
    }))
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 when the version exists (it is loaded on
/// the first inference), 404 otherwise.
pub(super) async fn ready(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let found = model_version(&platform, &key_tenant(&call)?.name, &call)?;
    Ok(ok(&ModelReady { name: call.params.get("model").to_string(), version: found.version.to_string(), ready: true }))
}

/// `POST /v2/models/{m}[/versions/{v}]/infer`: through the model version's implicit
/// `builtin:tensor` function.
pub(super) async fn infer(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = key_tenant(&call)?.clone();
    let found = model_version(&platform, &tenant.name, &call)?;
    let slot = platform.oip_slot(&tenant, &found);
    let span = tracing::Span::current();
    span.record("tenant", tenant.name.as_str());
    span.record("function", slot.record().name.as_str());
    let admitted = async {
        let mut ticket = platform.charge(&slot, &tenant.quota, Caller::Keyed)?;
        let path = call.request.uri().path().to_string();
        let limit = tenant.quota.max_request_bytes;
        let request = invoke::guest_request(call.request, path, limit, &mut ticket.body).await?;
        Ok((platform.admit(&slot, &tenant.quota, ticket, call.started).await?, request))
    };
    let (admitted, request) = admitted.await.map_err(|e| invoke::refused(&slot, e))?;
    Ok(invoke::render(admitted.invoke(request).await))
}
