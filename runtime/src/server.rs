//! Accepting connections and shutting down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use maas_registry::Registry;
use tokio::net::TcpListener;

use crate::api;
use crate::auth::Authenticator;
use crate::config::{Config, Secrets};
use crate::host::Host;
use crate::platform::Platform;

/// A bound server: the registry is open, the host built, the socket listening.
pub struct Server {
    platform: Arc<Platform>,
    listener: TcpListener,
    admin_key_file: Option<std::path::PathBuf>,
}

impl Server {
    /// Opens the registry, builds the host and binds the listener. Call from a tokio runtime.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        crate::memory::fix_mmap_threshold();
        crate::inference::set_threads(config.inference_threads);
        let secrets = Secrets::load(&config)?;
        let registry = {
            let (dir, key) = (config.data_dir.join("db"), secrets.master_key);
            tokio::task::spawn_blocking(move || Registry::open(&dir, key)).await?.context("opening the registry")?
        };
        let host_config = config.host.clone();
        let host = tokio::task::spawn_blocking(move || {
            let host = Host::new(&host_config);
            crate::memory::release_free();
            host
        })
        .await?
        .context("building the wasm host")?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let platform = Platform::new(config, registry, host, Authenticator::new(secrets.admin_key_hash));
        Ok(Self { platform, listener, admin_key_file: secrets.admin_key_file })
    }

    /// The address the server accepts on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Where a generated admin key was written, if the admin key was not given.
    pub fn admin_key_file(&self) -> Option<&std::path::Path> {
        self.admin_key_file.as_deref()
    }

    /// The platform the server serves (for tests and embedding).
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// (up to the configured grace period) and flushes the registry.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Server { platform, listener, .. } = self;
        let reaper = platform.scaler.spawn_reaper();
        let flusher = platform.meter.spawn_flusher(platform.registry.clone());
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let platform = platform.clone();
                    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(api::Peer(peer));
                        let platform = platform.clone();
                        async move { Ok::<_, std::convert::Infallible>(api::handle(platform, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: waiting for in-flight requests");
        if tokio::time::timeout(platform.config.shutdown_grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("grace period over; closing remaining connections");
        }
        reaper.abort();
        flusher.abort();
        let _ = reaper.await;
        let _ = flusher.await;
        tokio::task::spawn_blocking(move || {
            platform.meter.flush(&platform.registry);
            platform.registry.flush()
        })
        .await?
        .context("flushing the registry")?;
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
