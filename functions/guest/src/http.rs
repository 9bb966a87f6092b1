//! Helpers on the HTTP [`Request`] and [`Response`] records.

use crate::{Error, Request, Response};
use serde::Serialize;

/// The content type of every JSON body this crate writes.
const APPLICATION_JSON: &str = "application/json";

impl Request {
    /// The value of the first header named `name` (compared ignoring ASCII case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

impl Response {
    /// A response with `status`, one `content-type` header and `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("content-type".into(), content_type.into())], body: body.into() }
    }

    /// A JSON response: `body` serialized, `content-type: application/json`.
    ///
    /// Serializing a `serde_json::Value` cannot fail; if another `body` fails to serialize (a map
    /// with non-string keys, say), the answer is `500 internal` instead.
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
        match serde_json::to_vec(body) {
            Ok(bytes) => Response::new(status, APPLICATION_JSON, bytes),
            Err(err) => Response::error(500, "internal", format!("cannot serialize response: {err}")),
        }
    }

    /// An error in the platform's shape: `{"error": "<message>", "code": "<code>"}`.
    ///
    /// `code` is snake_case; the platform's codes are `invalid_request`, `invalid_input`,
    /// `not_found`, `rate_limited` and `internal`, among others.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            code: &'a str,
        }
        let message = message.into();
        let body = ErrorBody { error: &message, code };
        // Two strings always serialize.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Response::new(status, APPLICATION_JSON, bytes)
    }

    /// Adds a header (after the ones already set).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value of the first header named `name` (compared ignoring ASCII case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Answers an inference error with [`Error::status`], [`Error::code`] and [`Error::message`].
impl From<Error> for Response {
    fn from(err: Error) -> Response {
        Response::error(err.status(), err.code(), err.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn error_shape() {
        let response = Response::error(400, "invalid_input", "bad \"x\"");
        assert_eq!(response.status, 400);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(body(&response), json!({"error": "bad \"x\"", "code": "invalid_input"}));
    }

    #[test]
    fn inference_errors_map_to_statuses() {
        let cases = [
            (Error::ModelNotFound("m".into()), 404, "not_found"),
            (Error::InvalidInput("i".into()), 400, "invalid_input"),
            (Error::Failed("f".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let message = err.message().to_owned();
            let response = Response::from(err);
            assert_eq!(response.status, status);
            assert_eq!(body(&response), json!({"error": message, "code": code}));
        }
    }

    #[test]
    fn json_response() {
        let response = Response::json(201, &json!({"ok": true}));
        assert_eq!(response.status, 201);
        assert_eq!(body(&response), json!({"ok": true}));
    }
}
