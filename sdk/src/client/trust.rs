//! Trust: explanations, fairness audits and model cards (owner).

use bytes::Bytes;
use http::Method;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use maas_types::{ExplainRequest, Explanation, FairnessReport, FairnessRequest, ModelCard, ModelCardDocument};

use super::{Client, empty, full, model_path};
use crate::error::{Error, Result};

/// The text renderings of a model card (`GET …/card?format=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardFormat {
    /// `?format=md`.
    Markdown,
    /// `?format=html`: a page.
    Html,
}

impl Client {
    /// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/explain`: attributions of one input row.
    pub async fn explain(
        &self,
        tenant: &str,
        model: &str,
        version: Option<u32>,
        request: &ExplainRequest,
    ) -> Result<Explanation> {
        let path = format!("{}/explain", model_path(tenant, model, version));
        self.send_json(Method::POST, &path, request).await?.json()
    }

    /// The same explanation as a PNG heatmap over an image-shaped input (`[1, C, H, W]` or
    /// `[1, H, W, C]`), asked with `Accept: image/png`.
    pub async fn explain_png(
        &self,
        tenant: &str,
        model: &str,
        version: Option<u32>,
        request: &ExplainRequest,
    ) -> Result<Bytes> {
        let path = format!("{}/explain", model_path(tenant, model, version));
        let bytes = serde_json::to_vec(request).map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?;
        let mut req = self.build(Method::POST, &path, full(bytes.into()))?;
        req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req.headers_mut().insert(ACCEPT, HeaderValue::from_static("image/png"));
        Ok(self.send(req).await?.error_for_status()?.body)
    }

    /// `POST /v1/tenants/{t}/models/{m}[/versions/{v}]/audit`: a fairness audit of a batch,
    /// kept by the server as the version's latest.
    pub async fn fairness_audit(
        &self,
        tenant: &str,
        model: &str,
        version: Option<u32>,
        request: &FairnessRequest,
    ) -> Result<FairnessReport> {
        let path = format!("{}/audit", model_path(tenant, model, version));
        self.send_json(Method::POST, &path, request).await?.json()
    }

    /// `PUT /v1/tenants/{t}/models/{m}/card`: replaces the model's card; returns the card with
    /// the platform's facts.
    pub async fn put_model_card(&self, tenant: &str, model: &str, card: &ModelCard) -> Result<ModelCardDocument> {
        let path = format!("{}/card", model_path(tenant, model, None));
        self.send_json(Method::PUT, &path, card).await?.json()
    }

    /// `GET /v1/tenants/{t}/models/{m}/card`: the card with the platform's facts.
    pub async fn model_card(&self, tenant: &str, model: &str) -> Result<ModelCardDocument> {
        self.get(&format!("{}/card", model_path(tenant, model, None))).await
    }

    /// `GET /v1/tenants/{t}/models/{m}/card?format=md|html`: the card as Markdown or a page.
    pub async fn model_card_text(&self, tenant: &str, model: &str, format: CardFormat) -> Result<String> {
        let format = match format {
            CardFormat::Markdown => "md",
            CardFormat::Html => "html",
        };
        let path = format!("{}/card?format={format}", model_path(tenant, model, None));
        let answer = self.execute(Method::GET, &path, empty()).await?.error_for_status()?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }
}
