//! Model routes: streamed upload validated by tract, listing, metadata, deletion.

use std::sync::Arc;

use http::{Response, StatusCode};
use maas_types::{ModelEntry, ModelList, TensorSpec};

use super::response::{Body, empty, json, ok};
use super::{Call, declared_length, stream_upload};
use crate::error::{Error, Result};
use crate::platform::Platform;

/// `PUT /v1/tenants/{t}/models/{m}[?input=SPEC…]`: the body streams into the registry
/// through a [`crate::platform::Upload`]; nothing of a refused upload is kept. Each `input`
/// declares an input spec (`name:DATATYPE:d1,d2,…`, see [`TensorSpec`]'s `FromStr`).
pub(super) async fn upload(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let name = call.params.get("model");
    let declared = declared_length(&call.request);
    let inputs = declared_inputs(call.request.uri().query().unwrap_or_default())?;
    let mut upload = platform.begin_model_upload(&call.principal, call.tenant()?, name, declared, inputs)?;
    stream_upload(call.request, &mut upload).await?;
    let version = upload.finish_model().await?;
    Ok(json(StatusCode::CREATED, &version.info()))
}

/// Most input specs one upload may declare, and the most dimensions and name bytes of one.
const MAX_DECLARED: usize = 256;
const MAX_DECLARED_RANK: usize = 64;
const MAX_DECLARED_NAME: usize = 1024;

/// The `input` parameters of an upload's query, each a declared input spec, at most one per
/// input name.
fn declared_inputs(query: &str) -> Result<Vec<TensorSpec>> {
    let mut inputs: Vec<TensorSpec> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        if inputs.len() == MAX_DECLARED {
            return Err(Error::invalid(format!("an upload declares at most {MAX_DECLARED} inputs")));
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "input" {
            return Err(Error::invalid(format!("unknown query parameter {name:?}; an upload takes input=SPEC")));
        }
        let value = percent_decode(value)
            .ok_or_else(|| Error::invalid("an input spec is not correctly percent-encoded UTF-8"))?;
        let spec: TensorSpec = value.parse().map_err(Error::invalid)?;
        if spec.shape.len() > MAX_DECLARED_RANK || spec.name.len() > MAX_DECLARED_NAME {
            return Err(Error::invalid(format!(
                "a declared input has at most {MAX_DECLARED_RANK} dimensions and a name of at most \
                 {MAX_DECLARED_NAME} bytes"
            )));
        }
        if !names.insert(spec.name.clone()) {
            return Err(Error::invalid(format!("input {:?} is declared twice", spec.name)));
        }
        inputs.push(spec);
    }
    Ok(inputs)
}

/// `%XX` escapes (and `+` for a space) decoded, as a query's values are written.
fn percent_decode(value: &str) -> Option<String> {
    let (bytes, mut out) = (value.as_bytes(), Vec::with_capacity(value.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
