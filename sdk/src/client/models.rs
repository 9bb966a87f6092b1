//! Models and their versions, and components (owner).

use http::Method;
use maas_types::{ComponentInfo, ComponentList, ModelEntry, ModelInfo, ModelList, TensorSpec};

use super::{Client, check_digest, model_path, seg};
use crate::error::Result;
use crate::upload::Upload;

impl Client {
    /// `PUT /v1/tenants/{t}/models/{m}`: uploads an ONNX file as the model's next version.
    ///
    /// The body streams from `upload` (never whole in memory), with `Content-Length` when its
    /// size is known and `Expect: 100-continue`, so a refusal the server decides from the
    /// headers (`403 quota_exceeded`, `401`, ...) comes back as that error rather than as a
    /// broken connection. The sha256 computed while sending is checked against the one the
    /// server stored: a difference is [`Error::DigestMismatch`]. A file tract cannot load is
    /// `400 invalid_model`.
    pub async fn upload_model(&self, tenant: &str, name: &str, upload: Upload) -> Result<ModelInfo> {
        self.upload_model_with(tenant, name, upload, &[]).await
    }

    /// [`upload_model`](Client::upload_model) with declared input specs, which pin datatypes
    /// and dimensions the file leaves open (like Triton's model config), e.g.
    /// `"x:FP32:1,3,-1,-1".parse()?` (`-1` = free). The server checks them at upload (a run on
    /// zeros when every dimension is known) and refuses requests that break them.
    pub async fn upload_model_with(
        &self,
        tenant: &str,
        name: &str,
        upload: Upload,
        inputs: &[TensorSpec],
    ) -> Result<ModelInfo> {
        let mut path = format!("/v1/tenants/{}/models/{}", seg(tenant), seg(name));
        for (ix, spec) in inputs.iter().enumerate() {
            path.push(if ix == 0 { '?' } else { '&' });
            path.push_str("input=");
            path.push_str(&seg(&spec.to_string()));
        }
        let (answer, sent) = self.upload(Method::PUT, &path, "application/octet-stream", upload).await?;
        let model: ModelInfo = answer.json()?;
        check_digest(sent.as_deref(), &model.sha256)?;
        Ok(model)
    }

    /// `GET /v1/tenants/{t}/models`: every model with its versions.
    pub async fn models(&self, tenant: &str) -> Result<Vec<ModelEntry>> {
        Ok(self.get::<ModelList>(&format!("/v1/tenants/{}/models", seg(tenant))).await?.models)
    }

    /// `GET /v1/tenants/{t}/models/{m}[/versions/{v}]`: a version's metadata and signature
    /// (the latest without `version`).
    pub async fn model(&self, tenant: &str, name: &str, version: Option<u32>) -> Result<ModelInfo> {
        self.get(&model_path(tenant, name, version)).await
    }

    /// `DELETE /v1/tenants/{t}/models/{m}[/versions/{v}]`: one version, or the whole model
    /// without `version`. `409 conflict` while a function uses it.
    pub async fn delete_model(&self, tenant: &str, name: &str, version: Option<u32>) -> Result<()> {
        self.delete(&model_path(tenant, name, version)).await
    }

    /// `POST /v1/tenants/{t}/components`: uploads a WebAssembly component (streamed like
    /// [`Client::upload_model`], digest checked). `400 invalid_component` for a file that is
    /// not a component of the function world.
    pub async fn upload_component(&self, tenant: &str, upload: Upload) -> Result<ComponentInfo> {
        let path = format!("/v1/tenants/{}/components", seg(tenant));
        let (answer, sent) = self.upload(Method::POST, &path, "application/wasm", upload).await?;
        let component: ComponentInfo = answer.json()?;
        check_digest(sent.as_deref(), component.digest.strip_prefix("sha256:").unwrap_or(&component.digest))?;
        Ok(component)
    }

    /// `GET /v1/tenants/{t}/components`: the tenant's components.
    pub async fn components(&self, tenant: &str) -> Result<Vec<ComponentInfo>> {
        Ok(self.get::<ComponentList>(&format!("/v1/tenants/{}/components", seg(tenant))).await?.components)
    }
}
