//! Calling functions: [`Invoke`] describes the request, [`Invocation`] is the answer as the function gave it.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use maas_types::InferResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Client, api_error, full, seg};
use crate::error::{Error, Result};

impl Client {
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
    fn invoke_builder_reports_bad_parts() {
        assert!(Invoke::get().path("no-slash").problem.is_some());
        assert!(Invoke::get().path("/a b").problem.is_some());
        assert!(Invoke::get().header("bad name", "v").problem.is_some());
        assert!(Invoke::get().path("/a/b").query("x=1&y=2").header("x-a", "1").problem.is_none());
    }
}
