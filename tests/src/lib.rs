//! End-to-end test harness for maas: a real server on a loopback port over a real sled
//! directory, a small blocking HTTP client, and the guest components the tests deploy. The
//! ONNX models come from `maas-fixtures`, re-exported as [`models`].
//!
//! ```no_run
//! let server = maas_tests::TestServer::start();
//! let admin = server.admin();
//! let created = admin.post_json("/v1/tenants", &serde_json::json!({"name": "acme"}));
//! assert_eq!(created.status, 201);
//! ```

pub mod bench;
pub mod metrics;
pub mod otlp;

pub use maas_fixtures as models;
pub use maas_fixtures::oip_binary_body;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

/// The admin key every test server runs with.
pub const ADMIN_KEY: &str = "test-admin-key-of-enough-length";

/// The test servers' master key: 32 bytes in hex, as the server requires (not a secret).
pub const TEST_MASTER_KEY: &str = "5b1f0e2c9a7d4c3b8e6f1a2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69";

/// The compiled guest component `name` (`maas_fn_classify`, `maas_fn_misbehave`).
pub fn guest_wasm(name: &str) -> Vec<u8> {
    let path = Path::new(env!("MAAS_GUEST_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A maas server running on its own thread and tokio runtime, on `127.0.0.1:0`.
pub struct TestServer {
    addr: SocketAddr,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server on a fresh temporary data directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(temp.path());
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `data_dir` (kept after the server stops).
    pub fn start_in(data_dir: &Path) -> Self {
        Self::start_with(data_dir, |_| {})
    }

    /// Starts a server on `data_dir` after `adjust` changed the configuration.
    pub fn start_with(data_dir: &Path, adjust: impl FnOnce(&mut maas_runtime::Config)) -> Self {
        let mut config = maas_runtime::Config::new(data_dir);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.admin_key = Some(ADMIN_KEY.into());
        config.master_key = Some(TEST_MASTER_KEY.into());
        config.shutdown_grace = Duration::from_secs(5);
        adjust(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(async move {
                let server = match maas_runtime::Server::bind(config).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = addr_tx.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = addr_tx.send(Ok(server.local_addr()));
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("server failed to start: {e}"),
            Err(e) => panic!("server did not start: {e}"),
        };
        Self { addr, data_dir: data_dir.to_path_buf(), _temp: None, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Stops the server gracefully and waits until it has released the data directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("server ended with an error: {e:#}"),
                Err(_) => panic!("server thread panicked"),
            }
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A client without a key.
    pub fn anonymous(&self) -> Client {
        Client::new(self.addr, None)
    }

    /// A client with the admin key.
    pub fn admin(&self) -> Client {
        Client::new(self.addr, Some(ADMIN_KEY.to_string()))
    }

    /// A client with `key`.
    pub fn client(&self, key: &str) -> Client {
        Client::new(self.addr, Some(key.to_string()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP response as the tests look at it.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The error `code` of an error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// A small blocking HTTP client bound to one server and key.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `addr` with the admin key (for a server started with
    /// [`TestServer`] in another process).
    pub fn admin_at(addr: SocketAddr) -> Self {
        Self::new(addr, Some(ADMIN_KEY.to_string()))
    }

    /// A client of the server at `addr` with `key` (none: anonymous).
    pub fn new(addr: SocketAddr, key: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
        Self { base: format!("http://{addr}"), key, agent }
    }

    /// Sends a request with an optional body and content type.
    pub fn send(&self, method: &str, path: &str, body: Option<(&[u8], &str)>) -> Response {
        self.send_with_headers(method, path, &[], body)
    }

    /// Sends a request with extra headers, an optional body and content type.
    pub fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&[u8], &str)>,
    ) -> Response {
        self.try_send_with_headers(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Client::send_with_headers`], with a failure to reach the server or to read its answer
    /// (a connection it closed while the body was still being sent, say) as an error.
    pub fn try_send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&[u8], &str)>,
    ) -> Result<Response, String> {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        if let Some(key) = &self.key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let result = match body {
            Some((bytes, content_type)) => request.set("Content-Type", content_type).send_bytes(bytes),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| response.header(&name).map(|v| (name.to_ascii_lowercase(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).map_err(|e| e.to_string())?;
        Ok(Response { status, headers, body })
    }

    /// `GET`.
    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    /// `DELETE`.
    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None)
    }

    /// `POST` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, Some((body.to_string().as_bytes(), "application/json")))
    }

    /// `PUT` with a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Response {
        self.send("PUT", path, Some((body.to_string().as_bytes(), "application/json")))
    }

    /// `PATCH` with a JSON body.
    pub fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.send("PATCH", path, Some((body.to_string().as_bytes(), "application/json")))
    }

    /// `PUT` with raw bytes (a model upload).
    pub fn put_bytes(&self, path: &str, bytes: &[u8]) -> Response {
        self.send("PUT", path, Some((bytes, "application/octet-stream")))
    }

    /// `POST` with raw bytes and a content type.
    pub fn post_bytes(&self, path: &str, bytes: &[u8], content_type: &str) -> Response {
        self.send("POST", path, Some((bytes, content_type)))
    }
}
