//! Tenant administration (admin) and tenant keys (admin or the tenant's owner).

use std::sync::Arc;

use http::{Request, StatusCode};
use maas_registry::{QuotaPatch, Role, Tenant};
use serde::Deserialize;
use serde_json::json;

use super::body::RequestBody;
use super::{App, empty, json_response, parse_json, read_body, require_tenant};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Bodies of admin requests are small JSON documents.
const ADMIN_BODY_LIMIT: u64 = 64 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
    #[serde(default)]
    quota: Option<QuotaPatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTenant {
    #[serde(default)]
    quota: Option<QuotaPatch>,
    #[serde(default)]
    suspended: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    role: Role,
    #[serde(default)]
    label: Option<String>,
}

fn view(app: &App, tenant: &Tenant) -> Result<serde_json::Value, ApiError> {
    let models = app.registry.models(&tenant.name)?.len();
    let functions = app.registry.functions(&tenant.name)?.len();
    let storage_bytes = app.registry.storage_bytes(&tenant.name)?;
    let mut value = serde_json::to_value(tenant).map_err(ApiError::internal)?;
    value["usage"] = json!({ "storage_bytes": storage_bytes, "models": models, "functions": functions });
    Ok(value)
}

pub(super) async fn create(app: &Arc<App>, p: &Principal, req: Request<RequestBody>) -> ApiResult {
    p.require_admin()?;
    let body: CreateTenant = parse_json(&read_body(req, ADMIN_BODY_LIMIT).await?)?;
    let tenant = app.registry.create_tenant(&body.name, body.quota)?;
    tracing::info!(tenant = %tenant.name, "tenant created");
    app.audit(p, "tenant.create", Some(&tenant.name), &tenant.name, json!({ "quota": tenant.quota }));
    Ok(json_response(StatusCode::CREATED, &view(app, &tenant)?))
}

pub(super) fn list(app: &Arc<App>, p: &Principal) -> ApiResult {
    p.require_admin()?;
    let tenants = app.registry.tenants()?;
    let views = tenants.iter().map(|t| view(app, t)).collect::<Result<Vec<_>, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({ "tenants": views })))
}

pub(super) fn show(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_admin()?;
    let t = require_tenant(app, tenant)?;
    Ok(json_response(StatusCode::OK, &view(app, &t)?))
}

pub(super) async fn update(app: &Arc<App>, p: &Principal, tenant: &str, req: Request<RequestBody>) -> ApiResult {
    p.require_admin()?;
    let body: UpdateTenant = parse_json(&read_body(req, ADMIN_BODY_LIMIT).await?)?;
    let detail = json!({ "quota": body.quota, "suspended": body.suspended });
    let t = app.registry.update_tenant(tenant, body.quota, body.suspended)?;
    tracing::info!(tenant = %t.name, suspended = t.suspended, "tenant updated");
    app.audit(p, "tenant.update", Some(tenant), tenant, detail);
    Ok(json_response(StatusCode::OK, &view(app, &t)?))
}

pub(super) fn delete(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_admin()?;
    app.registry.delete_tenant(tenant)?;
    app.scaler.tenant_removed(tenant);
    app.admission.forget(tenant);
    app.meter.forget(tenant);
    tracing::info!(tenant, "tenant deleted");
    app.audit(p, "tenant.delete", Some(tenant), tenant, json!({}));
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) async fn create_key(app: &Arc<App>, p: &Principal, tenant: &str, req: Request<RequestBody>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let body: CreateKey = parse_json(&read_body(req, ADMIN_BODY_LIMIT).await?)?;
    let (info, secret) = app.registry.create_key(tenant, body.role, body.label)?;
    tracing::info!(tenant, key_id = %info.id, role = info.role.as_str(), "key created");
    app.audit(p, "key.create", Some(tenant), &info.id, json!({ "role": info.role.as_str(), "label": info.label }));
    let mut value = serde_json::to_value(&info).map_err(ApiError::internal)?;
    value["key"] = json!(secret);
    Ok(json_response(StatusCode::CREATED, &value))
}

pub(super) fn list_keys(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let keys = app.registry.keys(tenant)?;
    Ok(json_response(StatusCode::OK, &json!({ "keys": keys })))
}

pub(super) fn revoke_key(app: &Arc<App>, p: &Principal, tenant: &str, id: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    app.registry.revoke_key(tenant, id)?;
    tracing::info!(tenant, key_id = id, "key revoked");
    app.audit(p, "key.revoke", Some(tenant), id, json!({}));
    Ok(empty(StatusCode::NO_CONTENT))
}
