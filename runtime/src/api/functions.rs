//! Component upload (compiled and checked once, stored with its precompiled artifact) and
//! function deployment.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use maas_registry::FunctionRecord;
use maas_types::{ComponentList, FunctionInfo, FunctionList, FunctionStatus, Manifest};

use super::response::{Body, empty, json, ok};
use super::{Call, declared_length, parse_json, read_body, stream_upload};
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Manifests are small JSON documents.
const MANIFEST_LIMIT: u64 = 256 << 10;

/// `POST /v1/tenants/{t}/components`: the body streams into the registry through an
/// [`Upload`](crate::platform::Upload), then is compiled; nothing of a refused one is kept.
pub(super) async fn upload_component(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let declared = declared_length(&call.request);
    let mut upload = platform.begin_component_upload(&call.principal, call.tenant()?, declared)?;
    stream_upload(call.request, &mut upload).await?;
    let record = upload.finish_component().await?;
    Ok(json(StatusCode::CREATED, &record.info()))
}

pub(super) async fn list_components(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let components = platform.registry.components(&call.tenant()?.name)?.iter().map(|c| c.info()).collect();
    Ok(ok(&ComponentList { components }))
}

/// The function as `GET` shows it: manifest, revision, URL and live status.
fn info<B>(platform: &Platform, record: FunctionRecord, req: &Request<B>) -> Result<FunctionInfo> {
    let status = match platform.scaler.slot(&record.tenant, &record.name)? {
        Some(slot) => slot.status(),
        None => FunctionStatus::default(),
    };
    let url = function_url(platform, req, &record.tenant, &record.name);
    Ok(FunctionInfo {
        name: record.name,
        manifest: record.manifest,
        revision: record.revision,
        created_at: record.created_at,
        updated_at: record.updated_at,
        url,
        status,
    })
}

/// Where the function is invoked, as the client reached this server.
fn function_url<B>(platform: &Platform, req: &Request<B>, tenant: &str, name: &str) -> String {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| platform.config.listen.to_string());
    format!("http://{host}/fn/{tenant}/{name}")
}

pub(super) async fn deploy(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = call.tenant()?.name.clone();
    let name = call.params.get("function").to_string();
    let (parts, body) = call.request.into_parts();
    let manifest: Manifest = parse_json(&read_body(Request::from_parts(parts.clone(), body), MANIFEST_LIMIT).await?)?;
    let (record, created) = platform.deploy(&call.principal, &tenant, &name, manifest)?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &info(&platform, record, &Request::from_parts(parts, ()))?))
}

pub(super) async fn list(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let records = platform.registry.functions(&call.tenant()?.name)?;
    let functions = records.into_iter().map(|f| info(&platform, f, &call.request)).collect::<Result<_>>()?;
    Ok(ok(&FunctionList { functions }))
}

pub(super) async fn show(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let name = call.params.get("function");
    let record = platform
        .registry
        .function(&call.tenant()?.name, name)?
        .ok_or_else(|| Error::not_found(format!("no function {name:?}")))?;
    Ok(ok(&info(&platform, record, &call.request)?))
}

pub(super) async fn delete(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    platform.delete_function(&call.principal, &call.tenant()?.name, call.params.get("function"))?;
    Ok(empty(StatusCode::NO_CONTENT))
}
