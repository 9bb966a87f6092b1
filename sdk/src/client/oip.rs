//! The Open Inference Protocol (KServe v2) under `/v2`, for the models of the key's tenant.

use http::{Method, StatusCode};
use maas_types::oip::{InferRequest, InferResponse, Live, ModelMetadata, ModelReady, Ready, ServerMetadata};

use super::{Client, empty, oip_path};
use crate::error::Result;

impl Client {
    /// `GET /v2/health/live`.
    pub async fn oip_live(&self) -> Result<bool> {
        Ok(self.get::<Live>("/v2/health/live").await?.live)
    }

    /// `GET /v2/health/ready`.
    pub async fn oip_ready(&self) -> Result<bool> {
        Ok(self.get::<Ready>("/v2/health/ready").await?.ready)
    }

    /// `GET /v2`: server metadata (needs a key).
    pub async fn oip_server(&self) -> Result<ServerMetadata> {
        self.get("/v2").await
    }

    /// `GET /v2/models/{m}[/versions/{v}]`: a model of the key's tenant.
    pub async fn oip_model(&self, model: &str, version: Option<u32>) -> Result<ModelMetadata> {
        self.get(&oip_path(model, version, "")).await
    }

    /// `GET /v2/models/{m}[/versions/{v}]/ready`: `false` when the model (version) does not
    /// exist (`404`), other refusals are errors.
    pub async fn oip_model_ready(&self, model: &str, version: Option<u32>) -> Result<bool> {
        let answer = self.execute(Method::GET, &oip_path(model, version, "/ready"), empty()).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Ok(answer.json::<ModelReady>()?.ready)
    }

    /// `POST /v2/models/{m}[/versions/{v}]/infer` with a JSON body.
    pub async fn oip_infer(&self, model: &str, version: Option<u32>, request: &InferRequest) -> Result<InferResponse> {
        self.send_json(Method::POST, &oip_path(model, version, "/infer"), request).await?.json()
    }
}
