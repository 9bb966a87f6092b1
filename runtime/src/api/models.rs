//! Model routes: streamed upload with validation by tract, listing, metadata, deletion.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use maas_registry::{ModelVersion, TensorSpec};
use serde_json::json;
use tokio::sync::mpsc;

use super::body::RequestBody;
use super::{App, declared_length, empty, json_response, require_tenant, upload_over_quota};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::inference::{self, LoadedModel};

/// Body pieces handed from the network task to the blocking writer.
enum Piece {
    Data(Bytes),
    /// The body ended normally. A channel that closes without it means the upload failed
    /// and the writer discards what it stored.
    End,
}

/// The public JSON of a model version (the blob reference stays internal).
pub(super) fn version_view(v: &ModelVersion) -> serde_json::Value {
    json!({
        "name": v.name,
        "version": v.version,
        "sha256": v.sha256,
        "size_bytes": v.size_bytes,
        "inputs": v.inputs,
        "outputs": v.outputs,
        "created_at": v.created_at,
    })
}

pub(super) async fn upload(
    app: &Arc<App>,
    p: &Principal,
    tenant: &str,
    name: &str,
    req: Request<RequestBody>,
) -> ApiResult {
    p.require_owner(tenant)?;
    let quota = require_tenant(app, tenant)?.quota;
    // Refused before a byte is stored when the declared size (or, without one, the model
    // count) already breaks a quota; the stream and the commit check again.
    app.registry.check_model_upload(tenant, name, declared_length(&req).unwrap_or(0))?;
    let limit = quota.max_model_bytes;
    let room = quota.max_storage_bytes.saturating_sub(app.registry.storage_bytes(tenant)?);

    // The body streams into the registry chunk by chunk on a blocking thread; memory stays
    // bounded by the channel, not by the model's size.
    let (tx, rx) = mpsc::channel::<Piece>(8);
    let writer = {
        let app = app.clone();
        let (tenant, name) = (tenant.to_string(), name.to_string());
        tokio::task::spawn_blocking(move || store_model(&app, &tenant, &name, rx))
    };
    let mut body = req.into_body();
    let mut received: u64 = 0;
    let pumped: Result<(), ApiError> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::invalid_request(format!("could not read the upload: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            received += data.len() as u64;
            if received > limit || received > room {
                return Err(upload_over_quota(received, limit, room));
            }
            if tx.send(Piece::Data(data)).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok(())
    }
    .await;
    if pumped.is_ok() {
        let _ = tx.send(Piece::End).await;
    }
    drop(tx);
    let stored = writer.await.map_err(ApiError::internal)?;
    pumped?;
    let version = stored?;
    app.scaler.model_changed(tenant, name);
    tracing::info!(tenant, model = name, version = version.version, size_bytes = version.size_bytes, "model uploaded");
    let target = format!("{name}@{}", version.version);
    app.audit(
        p,
        "model.upload",
        Some(tenant),
        &target,
        json!({ "sha256": version.sha256, "size_bytes": version.size_bytes }),
    );
    Ok(json_response(StatusCode::CREATED, &version_view(&version)))
}

/// Writes the upload, validates it with tract and commits the version, or leaves nothing.
fn store_model(app: &App, tenant: &str, name: &str, mut rx: mpsc::Receiver<Piece>) -> Result<ModelVersion, ApiError> {
    let mut writer = app.registry.blob_writer(tenant)?;
    let mut complete = false;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(data) => writer.write(&data)?,
            Piece::End => {
                complete = true;
                break;
            }
        }
    }
    if !complete {
        // Dropping the writer discards the chunks stored so far.
        return Err(ApiError::invalid_request("the upload ended before its body was complete"));
    }
    let blob = writer.finish()?;
    let commit = || -> Result<ModelVersion, ApiError> {
        if blob.size == 0 {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_model", "the model file is empty"));
        }
        let bytes = app.registry.read_blob(tenant, &blob)?;
        let model = LoadedModel::load(&bytes)?;
        let spec = |s: &inference::TensorSpec| TensorSpec {
            name: s.name.clone(),
            datatype: s.datatype.as_str().to_string(),
            shape: s.shape.clone(),
        };
        let sig = model.signature();
        let inputs = sig.inputs.iter().map(spec).collect();
        let outputs = sig.outputs.iter().map(spec).collect();
        Ok(app.registry.commit_model_version(tenant, name, blob.clone(), inputs, outputs)?)
    };
    commit().inspect_err(|_| {
        if let Err(e) = app.registry.discard_blob(&blob) {
            tracing::warn!(error = %e, "could not discard a refused upload; the next start sweeps it");
        }
    })
}

pub(super) fn list(app: &Arc<App>, p: &Principal, tenant: &str) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let models: Vec<_> = app
        .registry
        .models(tenant)?
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "latest_version": m.latest_version,
                "versions": m.versions.iter().map(version_view).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "models": models })))
}

fn parse_version(v: Option<&str>) -> Result<Option<u32>, ApiError> {
    v.map(|v| v.parse::<u32>().map_err(|_| ApiError::invalid_request(format!("version {v:?} is not a number"))))
        .transpose()
}

pub(super) fn show(app: &Arc<App>, p: &Principal, tenant: &str, name: &str, version: Option<&str>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let version = parse_version(version)?;
    let found = app.registry.model_version(tenant, name, version)?;
    let v = found.ok_or_else(|| match version {
        Some(n) => ApiError::not_found(format!("no version {n} of model {name:?}")),
        None => ApiError::not_found(format!("no model {name:?}")),
    })?;
    Ok(json_response(StatusCode::OK, &version_view(&v)))
}

pub(super) fn delete(app: &Arc<App>, p: &Principal, tenant: &str, name: &str, version: Option<&str>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let version = parse_version(version)?;
    app.registry.delete_model(tenant, name, version)?;
    tracing::info!(tenant, model = name, version, "model deleted");
    let target = version.map_or_else(|| name.to_string(), |v| format!("{name}@{v}"));
    app.audit(p, "model.delete", Some(tenant), &target, json!({}));
    Ok(empty(StatusCode::NO_CONTENT))
}
