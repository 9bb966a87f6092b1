//! Tenant administration (admin) and tenant keys (admin or the tenant's owner).

use std::sync::Arc;

use http::{Response, StatusCode};
use maas_types::{CreateKey, CreateTenant, KeyList, Tenant, TenantInfo, TenantList, TenantUpdate, TenantUsage};

use super::response::{Body, empty, json, ok};
use super::{Call, parse_json, read_body};
use crate::error::Result;
use crate::platform::Platform;

/// Bodies of admin requests are small JSON documents.
const ADMIN_BODY_LIMIT: u64 = 64 << 10;

/// A tenant with what it uses now.
fn info(platform: &Platform, tenant: Tenant) -> Result<TenantInfo> {
    let registry = &platform.registry;
    let usage = TenantUsage {
        storage_bytes: registry.storage_bytes(&tenant.name)?,
        models: registry.models(&tenant.name)?.len() as u64,
        functions: registry.functions(&tenant.name)?.len() as u64,
    };
    Ok(TenantInfo { tenant, usage })
}

pub(super) async fn create(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let body: CreateTenant = parse_json(&read_body(call.request, ADMIN_BODY_LIMIT).await?)?;
    let tenant = platform.create_tenant(&call.principal, &body.name, body.quota)?;
    Ok(json(StatusCode::CREATED, &info(&platform, tenant)?))
}

pub(super) async fn list(platform: Arc<Platform>, _: Call) -> Result<Response<Body>> {
    let tenants = platform.registry.tenants()?;
    let tenants = tenants.into_iter().map(|t| info(&platform, t)).collect::<Result<_>>()?;
    Ok(ok(&TenantList { tenants }))
}

pub(super) async fn show(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = platform.tenant(&call.principal, call.params.get("tenant"))?;
    Ok(ok(&info(&platform, tenant)?))
}

pub(super) async fn update(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let name = call.params.get("tenant").to_string();
    let body: TenantUpdate = parse_json(&read_body(call.request, ADMIN_BODY_LIMIT).await?)?;
    let tenant = platform.update_tenant(&call.principal, &name, body.quota, body.suspended)?;
    Ok(ok(&info(&platform, tenant)?))
}

pub(super) async fn delete(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    platform.delete_tenant(&call.principal, call.params.get("tenant")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) async fn create_key(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = call.tenant()?.name.clone();
    let body: CreateKey = parse_json(&read_body(call.request, ADMIN_BODY_LIMIT).await?)?;
    let created = platform.create_key(&call.principal, &tenant, body)?;
    Ok(json(StatusCode::CREATED, &created))
}

pub(super) async fn list_keys(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    Ok(ok(&KeyList { keys: platform.registry.keys(&call.tenant()?.name)? }))
}

pub(super) async fn revoke_key(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    platform.revoke_key(&call.principal, &call.tenant()?.name, call.params.get("id"))?;
    Ok(empty(StatusCode::NO_CONTENT))
}
