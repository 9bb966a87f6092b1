//! Model routes: streamed upload validated by tract, listing, metadata, deletion.

use std::sync::Arc;

use http::{Response, StatusCode};
use maas_types::{ModelEntry, ModelList};

use super::response::{Body, empty, json, ok};
use super::{Call, declared_length, stream_upload};
use crate::error::{Error, Result};
use crate::platform::Platform;

/// `PUT /v1/tenants/{t}/models/{m}`: the body streams into the registry through a
/// [`crate::platform::Upload`]; nothing of a refused upload is kept.
pub(super) async fn upload(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let name = call.params.get("model");
    let declared = declared_length(&call.request);
    let mut upload = platform.begin_model_upload(&call.principal, call.tenant()?, name, declared)?;
    stream_upload(call.request, &mut upload).await?;
    let version = upload.finish_model().await?;
    Ok(json(StatusCode::CREATED, &version.info()))
}

pub(super) async fn list(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let models = platform
        .registry
        .models(&call.tenant()?.name)?
        .into_iter()
        .map(|m| ModelEntry {
            name: m.name,
            latest_version: m.latest_version,
            versions: m.versions.iter().map(|v| v.info()).collect(),
        })
        .collect();
    Ok(ok(&ModelList { models }))
}

/// `GET …/models/{m}[/versions/{v}]`: the latest version without `{version}`.
pub(super) async fn show(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let (tenant, name, version) = (&call.tenant()?.name, call.params.get("model"), call.version()?);
    let found = platform.registry.model_version(tenant, name, version)?;
    let found = found.ok_or_else(|| match version {
        Some(n) => Error::not_found(format!("no version {n} of model {name:?}")),
        None => Error::not_found(format!("no model {name:?}")),
    })?;
    Ok(ok(&found.info()))
}

pub(super) async fn delete(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let version = call.version()?;
    platform.delete_model(&call.principal, &call.tenant()?.name, call.params.get("model"), version).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
