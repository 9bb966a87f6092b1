//! [`Client`]: one method per route of the HTTP contract.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use maas_registry::{AuditEntry, KeyInfo, Manifest, ModelCard, QuotaPatch, Role};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::error::{ApiError, Error, Result};
use crate::oip::{InferRequest, InferResponse, ModelMetadata, ServerMetadata};
use crate::trust::{CardFormat, ExplainRequest, Explanation, FairnessReport, FairnessRequest, ModelCardDocument};
use crate::types::{
    AuditQuery, ComponentInfo, CreatedKey, Deployment, FunctionInfo, ModelEntry, ModelInfo, TenantInfo, TenantUpdate,
    UsageReport,
};
use crate::upload::{Upload, UploadStream};

type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How long to wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle pooled connections are dropped before the server's own idle limit (30 s) would close
/// them under a request.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

const USER_AGENT: &str = concat!("maas-sdk/", env!("CARGO_PKG_VERSION"));

/// A client of one maas server, with one key (or none, for health checks and public functions).
///
/// Cheap to clone: clones share the connection pool. Every method is one request; errors carry
/// the server's `code` and `message` ([`Error::Api`]). Calls need a tokio runtime with I/O and
/// time enabled (`#[tokio::main]` has both).
///
/// Only `http://` URLs are supported: put a TLS-terminating proxy in front of a server that is
/// reached over a network.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpConnector, ReqBody>,
    /// `http://host:port[/prefix]`, without a trailing `/`.
    base: Arc<str>,
    /// `host[:port]` as the URL gives it (the `Host` header of uploads).
    authority: Arc<str>,
    /// `host:port` to connect uploads to.
    address: Arc<str>,
    /// The URL's path, without a trailing `/` (usually empty).
    prefix: Arc<str>,
    key: Option<Arc<str>>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client").field("base", &self.base).field("has_key", &self.key.is_some()).finish()
    }
}

impl Client {
    /// A client of the server at `url` (`http://127.0.0.1:8080`), without a key.
    ///
    /// [`Error::InvalidArgument`] for a URL that is not `http://host[:port][/prefix]`.
    pub fn new(url: &str) -> Result<Self> {
        let uri: Uri = url.trim().parse().map_err(|e| Error::InvalidArgument(format!("server URL {url:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(Error::InvalidArgument(format!(
                    "server URL {url:?}: https is not supported by this client; reach the server over http \
                     (through a TLS-terminating proxy when it is remote)"
                )));
            }
            _ => return Err(Error::InvalidArgument(format!("server URL {url:?} must start with http://"))),
        }
        let authority =
            uri.authority().ok_or_else(|| Error::InvalidArgument(format!("server URL {url:?} has no host")))?;
        if uri.query().is_some() {
            return Err(Error::InvalidArgument(format!("server URL {url:?} must not have a query")));
        }
        let prefix = uri.path().trim_end_matches('/');
        let base = format!("http://{authority}{prefix}");
        let address = match authority.port_u16() {
            Some(_) => authority.as_str().to_string(),
            None => format!("{}:80", authority.as_str()),
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Client {
            http,
            base: base.into(),
            authority: authority.as_str().into(),
            address: address.into(),
            prefix: prefix.into(),
            key: None,
            timeout: None,
        })
    }

    /// This client with `key` sent as `Authorization: Bearer <key>` on every request.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().into());
        self
    }

    /// This client without a key (for public functions and health checks).
    pub fn without_key(mut self) -> Self {
        self.key = None;
        self
    }

    /// This client giving up on requests (uploads excepted) that have no complete answer
    /// after `timeout`. By default there is no limit besides the connect timeout (10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The server's base URL, as normalized (`http://host:port`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ---- Health and metrics -------------------------------------------------------------

    /// `GET /healthz`: `Ok` when the server answers `200`.
    pub async fn health(&self) -> Result<()> {
        self.execute(Method::GET, "/healthz", empty()).await?.error_for_status().map(drop)
    }

    /// `GET /readyz`: `Ok` once the server's registry is open.
    pub async fn ready(&self) -> Result<()> {
        self.execute(Method::GET, "/readyz", empty()).await?.error_for_status().map(drop)
    }

    /// `GET /metrics` (admin): the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let answer = self.execute(Method::GET, "/metrics", empty()).await?.error_for_status()?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    // ---- Tenants (admin) ----------------------------------------------------------------

    /// `POST /v1/tenants`: a tenant with the default quota changed by `quota`.
    /// `409 conflict` if the name is taken, `400 invalid_request` for a bad name or value.
    pub async fn create_tenant(&self, name: &str, quota: Option<QuotaPatch>) -> Result<TenantInfo> {
        #[derive(Serialize)]
        struct Body<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            quota: Option<QuotaPatch>,
        }
        self.send_json(Method::POST, "/v1/tenants", &Body { name, quota }).await?.json()
    }

    /// `GET /v1/tenants`: every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<TenantInfo>> {
        #[derive(serde::Deserialize)]
        struct List {
            tenants: Vec<TenantInfo>,
        }
        Ok(self.get::<List>("/v1/tenants").await?.tenants)
    }

    /// `GET /v1/tenants/{t}`: one tenant with its quota and usage.
    pub async fn tenant(&self, tenant: &str) -> Result<TenantInfo> {
        self.get(&format!("/v1/tenants/{}", seg(tenant))).await
    }

    /// `PATCH /v1/tenants/{t}`: changes quota fields and/or suspension; returns the tenant.
    pub async fn update_tenant(&self, tenant: &str, update: &TenantUpdate) -> Result<TenantInfo> {
        self.send_json(Method::PATCH, &format!("/v1/tenants/{}", seg(tenant)), update).await?.json()
    }

    /// Changes quota fields of a tenant (a [`Client::update_tenant`] with only `quota`).
    pub async fn set_quota(&self, tenant: &str, quota: QuotaPatch) -> Result<TenantInfo> {
        self.update_tenant(tenant, &TenantUpdate { quota: Some(quota), suspended: None }).await
    }

    /// Suspends (`true`: its keys get `403`) or reinstates (`false`) a tenant.
    pub async fn set_suspended(&self, tenant: &str, suspended: bool) -> Result<TenantInfo> {
        self.update_tenant(tenant, &TenantUpdate { quota: None, suspended: Some(suspended) }).await
    }

    /// `DELETE /v1/tenants/{t}`: the tenant and everything it owns; its keys stop working at once.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}", seg(tenant))).await
    }

    // ---- Keys (admin or owner) ----------------------------------------------------------

    /// `POST /v1/tenants/{t}/keys`: a new key; the secret is in the answer, this once.
    pub async fn create_key(&self, tenant: &str, role: Role, label: Option<&str>) -> Result<CreatedKey> {
        #[derive(Serialize)]
        struct Body<'a> {
            role: Role,
            #[serde(skip_serializing_if = "Option::is_none")]
            label: Option<&'a str>,
        }
        self.send_json(Method::POST, &format!("/v1/tenants/{}/keys", seg(tenant)), &Body { role, label }).await?.json()
    }

    /// `GET /v1/tenants/{t}/keys`: the tenant's keys, without secrets.
    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyInfo>> {
        #[derive(serde::Deserialize)]
        struct List {
            keys: Vec<KeyInfo>,
        }
        Ok(self.get::<List>(&format!("/v1/tenants/{}/keys", seg(tenant))).await?.keys)
    }

    /// `DELETE /v1/tenants/{t}/keys/{id}`: revokes a key at once.
    pub async fn revoke_key(&self, tenant: &str, id: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}/keys/{}", seg(tenant), seg(id))).await
    }

    // ---- Models (owner) -----------------------------------------------------------------

    /// `PUT /v1/tenants/{t}/models/{m}`: uploads an ONNX file as the model's next version.
    ///
    /// The body streams from `upload` (never whole in memory), with `Content-Length` when its
    /// size is known and `Expect: 100-continue`, so a refusal the server decides from the
    /// headers (`403 quota_exceeded`, `401`, ...) comes back as that error rather than as a
    /// broken connection. The sha256 computed while sending is checked against the one the
    /// server stored: a difference is [`Error::DigestMismatch`]. A file tract cannot load is
    /// `400 invalid_model`.
    pub async fn upload_model(&self, tenant: &str, name: &str, upload: Upload) -> Result<ModelInfo> {
        let path = format!("/v1/tenants/{}/models/{}", seg(tenant), seg(name));
        let (answer, sent) = self.upload(Method::PUT, &path, "application/octet-stream", upload).await?;
        let model: ModelInfo = answer.json()?;
        check_digest(sent.as_deref(), &model.sha256)?;
        Ok(model)
    }

    /// `GET /v1/tenants/{t}/models`: every model with its versions.
    pub async fn models(&self, tenant: &str) -> Result<Vec<ModelEntry>> {
        #[derive(serde::Deserialize)]
        struct List {
            models: Vec<ModelEntry>,
        }
        Ok(self.get::<List>(&format!("/v1/tenants/{}/models", seg(tenant))).await?.models)
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

    // ---- Components and functions (owner) -----------------------------------------------

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
        #[derive(serde::Deserialize)]
        struct List {
            components: Vec<ComponentInfo>,
        }
        Ok(self.get::<List>(&format!("/v1/tenants/{}/components", seg(tenant))).await?.components)
    }

    /// `PUT /v1/tenants/{t}/functions/{f}`: deploys (or redeploys) a function.
    pub async fn deploy(&self, tenant: &str, name: &str, manifest: &Manifest) -> Result<Deployment> {
        let path = format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name));
        let answer = self.send_json(Method::PUT, &path, manifest).await?;
        let created = answer.status == StatusCode::CREATED;
        Ok(Deployment { created, function: answer.json()? })
    }

    /// `GET /v1/tenants/{t}/functions`: every function with its live status.
    pub async fn functions(&self, tenant: &str) -> Result<Vec<FunctionInfo>> {
        #[derive(serde::Deserialize)]
        struct List {
            functions: Vec<FunctionInfo>,
        }
        Ok(self.get::<List>(&format!("/v1/tenants/{}/functions", seg(tenant))).await?.functions)
    }

    /// `GET /v1/tenants/{t}/functions/{f}`: the manifest, revision, URL and live status.
    pub async fn function(&self, tenant: &str, name: &str) -> Result<FunctionInfo> {
        self.get(&format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name))).await
    }

    /// `DELETE /v1/tenants/{t}/functions/{f}`.
    pub async fn delete_function(&self, tenant: &str, name: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name))).await
    }

    // ---- Invocation ---------------------------------------------------------------------

    /// `ANY /fn/{t}/{f}[/rest]`: hands `request` to the function and returns its answer as it
    /// is, whatever the status: a function may answer `404` for a path of its own. Use
    /// [`Invocation::error_for_status`] to turn error statuses into [`Error::Api`].
    ///
    /// Errors here are the ones where no answer came (connection) or the request could not be
    /// built (a bad header or path).
    pub async fn invoke(&self, tenant: &str, function: &str, request: Invoke) -> Result<Invocation> {
        if let Some(problem) = request.problem {
            return Err(Error::InvalidArgument(problem));
        }
        let mut path = format!("/fn/{}/{}", seg(tenant), seg(function));
        if request.path != "/" {
            path.push_str(&request.path);
        }
        if let Some(query) = &request.query {
            path.push('?');
            path.push_str(query);
        }
        let mut req = self.build(request.method, &path, full(request.body))?;
        req.headers_mut().extend(request.headers);
        let answer = self.send(req).await?;
        Ok(Invocation { status: answer.status.as_u16(), headers: answer.headers, body: answer.body })
    }

    /// `POST /fn/{t}/{f}` with `body` as JSON: the usual way to call a function.
    pub async fn invoke_json<B: Serialize + ?Sized>(
        &self,
        tenant: &str,
        function: &str,
        body: &B,
    ) -> Result<Invocation> {
        self.invoke(tenant, function, Invoke::json(body)?).await
    }

    // ---- Trust: explanations, fairness audits, model cards -------------------------------

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

    // ---- Usage and audit ----------------------------------------------------------------

    /// `GET /v1/tenants/{t}/usage`: invocations, errors, CPU and inference time, energy,
    /// storage, per function and per day.
    pub async fn usage(&self, tenant: &str) -> Result<UsageReport> {
        self.get(&format!("/v1/tenants/{}/usage", seg(tenant))).await
    }

    /// `GET /v1/audit` (admin): administrative changes, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        #[derive(serde::Deserialize)]
        struct List {
            entries: Vec<AuditEntry>,
        }
        let mut params = Vec::new();
        if let Some(t) = &query.tenant {
            params.push(format!("tenant={}", seg(t)));
        }
        if let Some(n) = query.limit {
            params.push(format!("limit={n}"));
        }
        if let Some(seq) = query.before {
            params.push(format!("before={seq}"));
        }
        let path = if params.is_empty() { "/v1/audit".to_string() } else { format!("/v1/audit?{}", params.join("&")) };
        Ok(self.get::<List>(&path).await?.entries)
    }

    // ---- Open Inference Protocol --------------------------------------------------------

    /// `GET /v2/health/live`.
    pub async fn oip_live(&self) -> Result<bool> {
        #[derive(serde::Deserialize)]
        struct Live {
            live: bool,
        }
        Ok(self.get::<Live>("/v2/health/live").await?.live)
    }

    /// `GET /v2/health/ready`.
    pub async fn oip_ready(&self) -> Result<bool> {
        #[derive(serde::Deserialize)]
        struct Ready {
            ready: bool,
        }
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
        #[derive(serde::Deserialize)]
        struct Ready {
            ready: bool,
        }
        let answer = self.execute(Method::GET, &oip_path(model, version, "/ready"), empty()).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Ok(answer.json::<Ready>()?.ready)
    }

    /// `POST /v2/models/{m}[/versions/{v}]/infer` with a JSON body.
    pub async fn oip_infer(&self, model: &str, version: Option<u32>, request: &InferRequest) -> Result<InferResponse> {
        self.send_json(Method::POST, &oip_path(model, version, "/infer"), request).await?.json()
    }

    // ---- Anything else ------------------------------------------------------------------

    /// Any request with an optional JSON body, answered with JSON: for routes newer than this
    /// client. `path` starts with `/` and may hold a query.
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let answer = match body {
            Some(body) => self.send_json(method, path, body).await?,
            None => self.execute(method, path, empty()).await?,
        };
        answer.json()
    }

    // ---- Plumbing -----------------------------------------------------------------------

    fn build(&self, method: Method, path: &str, body: ReqBody) -> Result<Request<ReqBody>> {
        let uri = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method).uri(&uri).header(http::header::USER_AGENT, USER_AGENT);
        if let Some(key) = &self.key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::InvalidArgument("the key holds characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(body).map_err(|e| Error::InvalidArgument(format!("{uri}: {e}")))
    }

    async fn execute(&self, method: Method, path: &str, body: ReqBody) -> Result<Answer> {
        let req = self.build(method, path, body)?;
        self.send(req).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.execute(Method::GET, path, empty()).await?.json()
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.execute(Method::DELETE, path, empty()).await?.error_for_status().map(drop)
    }

    async fn send_json<B: Serialize + ?Sized>(&self, method: Method, path: &str, body: &B) -> Result<Answer> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?;
        let mut req = self.build(method, path, full(bytes.into()))?;
        req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.send(req).await
    }

    /// Sends a request and reads the whole answer, within the client's timeout.
    async fn send(&self, req: Request<ReqBody>) -> Result<Answer> {
        let context = format!("{} {}", req.method(), req.uri());
        let exchange = self.exchange(req, context.clone());
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| Error::transport(context, format!("no complete answer within {limit:?}")))?,
            None => exchange.await,
        }
    }

    async fn exchange(&self, req: Request<ReqBody>, context: String) -> Result<Answer> {
        let response = self.http.request(req).await.map_err(|e| Error::transport(context.clone(), e))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| Error::transport(format!("{context}: reading the answer"), e))?;
        Ok(Answer { status: parts.status, headers: parts.headers, body: body.to_bytes(), context })
    }

    /// Streams `upload` as the body; returns the answer and the sha256 of what was sent (when
    /// the whole source was sent).
    ///
    /// Each upload has its own connection (an [`UploadStream`]), so that an answer the server
    /// gives before it has read the whole body is read rather than lost to a write error.
    async fn upload(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        upload: Upload,
    ) -> Result<(Answer, Option<String>)> {
        let len = upload.len();
        let stopped = Arc::new(AtomicBool::new(false));
        let (body, sent, open) = upload.into_body(stopped.clone());
        let mut req = self.build(method, path, body.boxed_unsync())?;
        let context = format!("{} {}", req.method(), req.uri());
        *req.uri_mut() =
            format!("{}{path}", self.prefix).parse().map_err(|e| Error::InvalidArgument(format!("{context}: {e}")))?;
        let headers = req.headers_mut();
        let host =
            HeaderValue::from_str(&self.authority).map_err(|e| Error::InvalidArgument(format!("{context}: {e}")))?;
        headers.insert(HOST, host);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        let open = Mutex::new(Some(open));
        hyper::ext::on_informational(&mut req, move |response| {
            if response.status() == StatusCode::CONTINUE
                && let Some(open) = open.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                let _ = open.send(());
            }
        });

        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*self.address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::transport(format!("{context}: connecting to {}", self.address), e)),
            Err(_) => {
                return Err(Error::transport(
                    format!("{context}: connecting to {}", self.address),
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(UploadStream::new(stream, stopped.clone()));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| Error::transport(context.clone(), e))?;
        let driver = tokio::spawn(connection);
        let exchange = async {
            let response = sender.send_request(req).await.map_err(|e| Error::transport(context.clone(), e))?;
            let (parts, body) = response.into_parts();
            let body =
                body.collect().await.map_err(|e| Error::transport(format!("{context}: reading the answer"), e))?;
            Ok::<_, Error>(Answer {
                status: parts.status,
                headers: parts.headers,
                body: body.to_bytes(),
                context: context.clone(),
            })
        };
        let result = exchange.await;
        // The connection may still wait on a body the server will never read.
        driver.abort();
        let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()));
        match result {
            Ok(answer) => Ok((answer, sent.sha256)),
            Err(Error::Transport { source, .. }) => {
                let total = len.map_or_else(String::new, |n| format!(" of {n}"));
                let early = if stopped.load(Ordering::Relaxed) { ", the server stopped reading" } else { "" };
                Err(Error::Transport {
                    context: format!(
                        "{context} (the connection failed after {}{total} bytes were sent{early})",
                        sent.bytes
                    ),
                    source,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// A complete answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    context: String,
}

impl Answer {
    fn error_for_status(self) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(Error::Api(api_error(self.status, &self.headers, &self.body)))
    }

    fn json<T: DeserializeOwned>(self) -> Result<T> {
        let answer = self.error_for_status()?;
        serde_json::from_slice(&answer.body).map_err(|source| Error::Decode { context: answer.context, source })
    }
}

fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    ApiError::from_response(status.as_u16(), retry_after, body)
}

fn check_digest(sent: Option<&str>, stored: &str) -> Result<()> {
    match sent {
        Some(sent) if sent == stored => Ok(()),
        Some(sent) => Err(Error::DigestMismatch { sent: sent.to_string(), stored: stored.to_string() }),
        None => Err(Error::DigestMismatch { sent: "(the upload did not reach its end)".into(), stored: stored.into() }),
    }
}

fn empty() -> ReqBody {
    full(Bytes::new())
}

fn full(bytes: Bytes) -> ReqBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// A path segment, percent-encoded beyond the unreserved characters, so that a name cannot
/// reach another route (the server's names never need encoding).
pub(crate) fn seg(s: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if s.bytes().all(plain) && !s.is_empty() && s != "." && s != ".." {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if plain(b) && b != b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

fn model_path(tenant: &str, name: &str, version: Option<u32>) -> String {
    let base = format!("/v1/tenants/{}/models/{}", seg(tenant), seg(name));
    match version {
        Some(v) => format!("{base}/versions/{v}"),
        None => base,
    }
}

fn oip_path(model: &str, version: Option<u32>, tail: &str) -> String {
    match version {
        Some(v) => format!("/v2/models/{}/versions/{v}{tail}", seg(model)),
        None => format!("/v2/models/{}{tail}", seg(model)),
    }
}

/// A request to a function: method, the path and query the function sees, headers and body.
///
/// ```
/// use maas_sdk::Invoke;
/// let request = Invoke::post(r#"{"features": [1, 2, 3]}"#)
///     .path("/v1/predict")
///     .query("explain=true")
///     .header("content-type", "application/json");
/// ```
#[derive(Clone, Debug)]
pub struct Invoke {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    /// Why this request cannot be sent (reported by [`Client::invoke`]).
    problem: Option<String>,
}

impl Invoke {
    /// A request with `method`, path `/`, no query, headers or body.
    pub fn new(method: Method) -> Self {
        Invoke { method, path: "/".into(), query: None, headers: HeaderMap::new(), body: Bytes::new(), problem: None }
    }

    /// A `GET`.
    pub fn get() -> Self {
        Self::new(Method::GET)
    }

    /// A `POST` with `body`.
    pub fn post(body: impl Into<Bytes>) -> Self {
        Self::new(Method::POST).body(body)
    }

    /// A `POST` of `body` as JSON, with `content-type: application/json`.
    pub fn json<B: Serialize + ?Sized>(body: &B) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?;
        Ok(Self::post(bytes).header("content-type", "application/json"))
    }

    /// Sets the method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Sets the path the function sees (`/` by default); it must start with `/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() || path.contains('?') {
            self.problem = Some(format!("invocation path {path:?} must start with / and be a valid URL path"));
        }
        self.path = path;
        self
    }

    /// Sets the query string the function sees (without `?`).
    pub fn query(mut self, query: impl Into<String>) -> Self {
        let query = query.into();
        if format!("/?{query}").parse::<http::uri::PathAndQuery>().is_err() {
            self.problem = Some(format!("invocation query {query:?} holds characters a URL cannot carry"));
        }
        self.query = Some(query);
        self
    }

    /// Adds a header (the function sees every header but `authorization`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.problem = Some(format!("header {name:?}: {value:?} is not a valid HTTP header")),
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A function's answer as it gave it, plus the platform's headers (`x-request-id`,
/// `x-maas-cold-start`, `x-maas-duration-us`, `x-maas-model`).
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Invocation {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-maas-cold-start`: whether this call woke the function.
    pub fn cold_start(&self) -> Option<bool> {
        self.header("x-maas-cold-start").map(|v| v == "true")
    }

    /// `x-maas-duration-us`: the server's time for the call, microseconds.
    pub fn duration_us(&self) -> Option<u64> {
        self.header("x-maas-duration-us")?.parse().ok()
    }

    /// `x-request-id`.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id")
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|source| Error::Decode { context: format!("invocation answer (HTTP {})", self.status), source })
    }

    /// `Ok(self)` for a 2xx status, else [`Error::Api`] with the body's `code` and `message`
    /// (the platform's errors, and functions that answer in the same shape).
    pub fn error_for_status(self) -> Result<Self> {
        if self.is_success() {
            return Ok(self);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Err(Error::Api(api_error(status, &self.headers, &self.body)))
    }

    /// The answer of a `builtin:tensor` function, as an OIP infer response (after
    /// [`Invocation::error_for_status`]).
    pub fn infer_response(self) -> Result<InferResponse> {
        self.error_for_status()?.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("acme-1.v2_x"), "acme-1.v2_x");
        assert_eq!(seg("a/b"), "a%2Fb");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("a b?"), "a%20b%3F");
    }

    #[test]
    fn base_url_is_normalized() {
        assert_eq!(Client::new("http://127.0.0.1:8080/").unwrap().base_url(), "http://127.0.0.1:8080");
        assert_eq!(Client::new("http://h:1/maas/").unwrap().base_url(), "http://h:1/maas");
        for bad in ["https://h", "ftp://h", "127.0.0.1:8080", "http://h/?q=1", ""] {
            assert!(matches!(Client::new(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    #[test]
    fn invoke_builder_reports_bad_parts() {
        assert!(Invoke::get().path("no-slash").problem.is_some());
        assert!(Invoke::get().path("/a b").problem.is_some());
        assert!(Invoke::get().header("bad name", "v").problem.is_some());
        assert!(Invoke::get().path("/a/b").query("x=1&y=2").header("x-a", "1").problem.is_none());
    }
}
