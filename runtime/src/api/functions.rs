//! Component upload (compiled and checked once, stored with its precompiled artifact) and
//! function deployment.

use std::sync::Arc;

use http::{Request, StatusCode};
use maas_registry::{FunctionRecord, Manifest};
use serde_json::json;

use super::body::RequestBody;
use super::{App, declared_length, empty, json_response, parse_json, read_body, require_tenant, upload_over_quota};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::scale::Status;

/// Manifests are small JSON documents.
const MANIFEST_LIMIT: u64 = 256 << 10;

pub(super) async fn upload_component(
    app: &Arc<App>,
    p: &Principal,
    tenant: &str,
    req: Request<RequestBody>,
) -> ApiResult {
    p.require_owner(tenant)?;
    let quota = require_tenant(app, tenant)?.quota;
    let room = quota.max_storage_bytes.saturating_sub(app.registry.storage_bytes(tenant)?);
    let limit = quota.max_model_bytes.min(room);
    if let Some(n) = declared_length(&req).filter(|n| *n > limit) {
        return Err(upload_over_quota(n, quota.max_model_bytes, room));
    }
    let wasm = read_body(req, limit).await.map_err(|e| match e.code {
        "payload_too_large" => upload_over_quota(limit + 1, quota.max_model_bytes, room),
        _ => e,
    })?;
    let job = {
        let (app, tenant) = (app.clone(), tenant.to_string());
        move || -> Result<maas_registry::ComponentRecord, ApiError> {
            // Compile first: an invalid component is refused before anything is stored.
            let (_component, artifact) = app.host.compile(&wasm)?;
            let mut writer = app.registry.blob_writer(&tenant)?;
            writer.write(&wasm)?;
            let blob = writer.finish()?;
            let record = app.registry.put_component(&tenant, blob.clone()).inspect_err(|_| {
                let _ = app.registry.discard_blob(&blob);
            })?;
            app.registry.put_artifact(&tenant, &record.digest, app.host.fingerprint(), &artifact)?;
            Ok(record)
        }
    };
    let record = app.blocking(job).await??;
    tracing::info!(tenant, digest = %record.digest, size_bytes = record.size_bytes, "component uploaded");
    app.audit(p, "component.upload", Some(tenant), &record.digest, json!({ "size_bytes": record.size_bytes }));
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "digest": record.digest, "size_bytes": record.size_bytes, "created_at": record.created_at }),
    ))
}

pub(super) fn list_components(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let components: Vec<_> = app
        .registry
        .components(tenant)?
        .iter()
        .map(|c| json!({ "digest": c.digest, "size_bytes": c.size_bytes, "created_at": c.created_at }))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "components": components })))
}

/// The function as `GET` shows it: manifest, revision, URL and live status.
fn view<B>(app: &App, record: &FunctionRecord, req: &Request<B>) -> Result<serde_json::Value, ApiError> {
    let status = match app.scaler.slot(&app.registry, &record.tenant, &record.name)? {
        Some(slot) => slot.status(),
        None => {
            Status { state: "cold", instances: 0, last_invoked_at: None, invocations: 0, cold_starts: 0, errors: 0 }
        }
    };
    let mut value = serde_json::to_value(&record.manifest).map_err(ApiError::internal)?;
    value["name"] = json!(record.name);
    value["revision"] = json!(record.revision);
    value["created_at"] = json!(record.created_at);
    value["updated_at"] = json!(record.updated_at);
    value["url"] = json!(function_url(app, req, &record.tenant, &record.name));
    value["status"] = serde_json::to_value(status).map_err(ApiError::internal)?;
    Ok(value)
}

/// Where the function is invoked, as the client reached this server.
fn function_url<B>(app: &App, req: &Request<B>, tenant: &str, name: &str) -> String {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| app.config.listen.to_string());
    format!("http://{host}/fn/{tenant}/{name}")
}

pub(super) async fn deploy(
    app: &Arc<App>,
    p: &Principal,
    tenant: &str,
    name: &str,
    req: Request<RequestBody>,
) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let (parts, body) = req.into_parts();
    let manifest: Manifest = parse_json(&read_body(Request::from_parts(parts.clone(), body), MANIFEST_LIMIT).await?)?;
    let (record, created) = app.registry.put_function(tenant, name, manifest)?;
    app.scaler.deployed(record.clone());
    tracing::info!(tenant, function = name, revision = record.revision, "function deployed");
    let detail = json!({ "revision": record.revision, "component": record.manifest.component, "models": record.manifest.models });
    app.audit(p, "function.deploy", Some(tenant), name, detail);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(status, &view(app, &record, &Request::from_parts(parts, ()))?))
}

pub(super) fn list<B>(app: &Arc<App>, p: &Principal, tenant: &str, req: &Request<B>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let functions = app.registry.functions(tenant)?;
    let views = functions.iter().map(|f| view(app, f, req)).collect::<Result<Vec<_>, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({ "functions": views })))
}

pub(super) fn show<B>(app: &Arc<App>, p: &Principal, tenant: &str, name: &str, req: &Request<B>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let record =
        app.registry.function(tenant, name)?.ok_or_else(|| ApiError::not_found(format!("no function {name:?}")))?;
    Ok(json_response(StatusCode::OK, &view(app, &record, req)?))
}

pub(super) fn delete(app: &Arc<App>, p: &Principal, tenant: &str, name: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    app.registry.delete_function(tenant, name)?;
    app.scaler.removed(tenant, name);
    tracing::info!(tenant, function = name, "function deleted");
    app.audit(p, "function.delete", Some(tenant), name, json!({}));
    Ok(empty(StatusCode::NO_CONTENT))
}
