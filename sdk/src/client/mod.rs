//! [`Client`]: one method per route of the HTTP contract, in one file per resource:
//! [`tenants`](self::tenants) (tenants and keys), [`models`](self::models) (models and components),
//! [`functions`](self::functions), [`invoke`](self::invoke) (calling functions),
//! [`trust`](self::trust) (explanations, audits, cards), [`usage`](self::usage) (usage and the audit
//! trail) and [`oip`](self::oip) (the Open Inference Protocol). This file holds the client itself and
//! the plumbing every call shares.

mod functions;
mod invoke;
mod models;
mod oip;
mod tenants;
mod trust;
mod usage;

pub use invoke::{Invocation, Invoke};
pub use trust::CardFormat;
pub use usage::AuditQuery;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::error::{ApiError, Error, Result};
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

    /// `GET /healthz`: `Ok` when the server answers `200`.
    pub async fn health(&self) -> Result<()> {
        self.execute(Method::GET, "/healthz", empty()).await?.error_for_status().map(drop)
    }

    /// `GET /readyz`: `Ok` once the server's registry is open.
    pub async fn ready(&self) -> Result<()> {
        self.execute(Method::GET, "/readyz", empty()).await?.error_for_status().map(drop)
    }

    /// `GET /metrics` (admin): the Prometheus text of every series.
    pub async fn metrics(&self) -> Result<String> {
        let answer = self.execute(Method::GET, "/metrics", empty()).await?.error_for_status()?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// `GET /v1/tenants/{t}/metrics` (admin, owner): the Prometheus text of the tenant's
    /// series only.
    pub async fn tenant_metrics(&self, tenant: &str) -> Result<String> {
        let path = format!("/v1/tenants/{}/metrics", seg(tenant));
        let answer = self.execute(Method::GET, &path, empty()).await?.error_for_status()?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

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

pub(crate) fn model_path(tenant: &str, name: &str, version: Option<u32>) -> String {
    let base = format!("/v1/tenants/{}/models/{}", seg(tenant), seg(name));
    match version {
        Some(v) => format!("{base}/versions/{v}"),
        None => base,
    }
}

pub(crate) fn oip_path(model: &str, version: Option<u32>, tail: &str) -> String {
    match version {
        Some(v) => format!("/v2/models/{}/versions/{v}{tail}", seg(model)),
        None => format!("/v2/models/{}{tail}", seg(model)),
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
}
