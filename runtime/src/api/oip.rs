//! The Open Inference Protocol (KServe v2) under `/v2`, for the models of the key's tenant,
//! so that stock clients (tritonclient, KServe clients) work unchanged.
//!
//! Health, server metadata, model metadata and readiness come from the registry. Inference
//! runs through `builtin:tensor` like any function: each model version gets an implicit
//! function (made on first use, scaled to zero like the others) that receives the request as
//! it came. The tensor payload, JSON or binary, is therefore decoded inside the sandbox; the
//! host never parses it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, StatusCode};
use maas_registry::{FunctionRecord, KeyInfo, Limits, Manifest, ModelVersion, Quota, Scale};
use serde_json::json;

use super::body::RequestBody;
use super::{App, json_response, models::version_view};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Memory cap of the implicit inference functions (further capped by the tenant's
/// `max_memory_mb`): room for a request at the default `max_request_bytes`, its tensors and
/// the outputs.
const OIP_MEMORY_MB: u32 = 256;

/// The key's tenant: the OIP paths name no tenant. The admin key has none.
fn member(p: &Principal) -> Result<(&KeyInfo, &Quota), ApiError> {
    match p {
        Principal::Key(key, quota) => Ok((key, quota)),
        Principal::Admin => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the Open Inference Protocol serves the models of the key's tenant; the admin key has no tenant",
        )),
        Principal::Anonymous => Err(ApiError::unauthenticated()),
    }
}

/// The model version a path names: the latest one without `version`.
fn model_version(app: &App, tenant: &str, model: &str, version: Option<&str>) -> Result<ModelVersion, ApiError> {
    let number = version
        .map(|v| v.parse::<u32>().map_err(|_| ApiError::invalid_request(format!("version {v:?} is not a number"))))
        .transpose()?;
    app.registry.model_version(tenant, model, number)?.ok_or_else(|| match version {
        Some(v) => ApiError::not_found(format!("model {model:?} has no version {v}")),
        None => ApiError::not_found(format!("no model {model:?}")),
    })
}

/// `GET /v2`: server metadata.
pub(super) fn server(p: &Principal) -> ApiResult {
    if matches!(p, Principal::Anonymous) {
        return Err(ApiError::unauthenticated());
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "name": "maas", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }),
    ))
}

/// `GET /v2/models/{m}[/versions/{v}]`: the model's signature in OIP terms.
pub(super) fn metadata(app: &Arc<App>, p: &Principal, model: &str, version: Option<&str>) -> ApiResult {
    let (key, _) = member(p)?;
    let found = model_version(app, &key.tenant, model, version)?;
    let versions: Vec<String> = match version {
        Some(_) => vec![found.version.to_string()],
        None => app
            .registry
            .models(&key.tenant)?
            .into_iter()
            .find(|m| m.name == model)
            .map(|m| m.versions.iter().map(|v| v.version.to_string()).collect())
            .unwrap_or_default(),
    };
    let view = version_view(&found);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "name": model,
            "versions": versions,
            "platform": "onnx",
            "inputs": view["inputs"],
            "outputs": view["outputs"],
        }),
    ))
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 when the version exists (it is loaded on
/// the first inference), 404 otherwise.
pub(super) fn ready(app: &Arc<App>, p: &Principal, model: &str, version: Option<&str>) -> ApiResult {
    let (key, _) = member(p)?;
    let found = model_version(app, &key.tenant, model, version)?;
    Ok(json_response(StatusCode::OK, &json!({ "name": model, "version": found.version.to_string(), "ready": true })))
}

/// `POST /v2/models/{m}[/versions/{v}]/infer`: through the model version's implicit
/// `builtin:tensor` function.
pub(super) async fn infer(
    app: &Arc<App>,
    p: &Principal,
    model: &str,
    version: Option<&str>,
    req: Request<RequestBody>,
    request_id: &str,
) -> ApiResult {
    let started = Instant::now();
    let (key, quota) = member(p)?;
    let found = model_version(app, &key.tenant, model, version)?;
    let slot = app.scaler.implicit(implicit_function(&key.tenant, &found, quota));
    let path = req.uri().path().to_string();
    super::invoke::run(app, quota, &slot, path, req, request_id, started).await
}

/// The function that serves OIP inference for one model version. Requests without a version
/// use the latest one's, so a new upload is served from the next request on.
fn implicit_function(tenant: &str, version: &ModelVersion, quota: &Quota) -> FunctionRecord {
    let manifest = Manifest {
        component: "builtin:tensor".into(),
        models: BTreeMap::from([("model".into(), format!("{}@{}", version.name, version.version))]),
        config: BTreeMap::from([
            ("model_name".into(), version.name.clone()),
            ("model_version".into(), version.version.to_string()),
            // A compressed body may not grow past what an uncompressed one may be.
            ("max_decompressed_bytes".into(), quota.max_request_bytes.to_string()),
        ]),
        limits: Limits {
            memory_mb: quota.max_memory_mb.min(OIP_MEMORY_MB),
            timeout_ms: quota.max_timeout_ms,
            max_concurrency: quota.max_concurrency,
        },
        scale: Scale::default(),
        public: false,
        require_audit: None,
        batching: None,
    };
    FunctionRecord {
        tenant: tenant.into(),
        // `:` is not allowed in function names, so this never meets a deployed function.
        name: format!("v2:{}@{}", version.name, version.version),
        manifest,
        revision: 1,
        created_at: version.created_at.clone(),
        updated_at: version.created_at.clone(),
    }
}
