//! Logs and traces: the process's `tracing` subscriber, and the W3C trace context of requests.
//!
//! [`Telemetry::init`] installs one subscriber with two layers, each with its own filter:
//!
//! - **logs** on stderr, as text or one JSON object per line ([`LogFormat`]), filtered by
//!   `MAAS_LOG`. A JSON line carries the fields of its innermost span (`span`; for the line
//!   that ends a request, the request's: request id, route, tenant, function, status, duration,
//!   cold start) and of every span it is in (`spans`). No span or event of the server records
//!   a request's or a response's payload, or a key.
//! - **traces**, opt-in: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans go to that OpenTelemetry collector
//!   over OTLP/HTTP (protobuf), batched on a thread of the SDK's own. The exporter reads the
//!   standard variables itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_BSP_SCHEDULE_DELAY`, ...). The span tree of an invocation is request → auth →
//!   admission → cold_start (component, models) → instance → guest → infer (model, input
//!   shapes, batch size). The inner spans are at `debug` level: with export off and the
//!   default log filter they are never built.
//!
//! With export on, a request's `traceparent` header makes its span a child of the caller's,
//! and the answer carries the server span's own `traceparent` ([`traceparent`]).

use std::time::Duration;

use anyhow::Context;

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// What the OpenTelemetry layer records: the server's spans to `debug` (the inner ones of an
/// invocation), others' from `warn`, and never the exporter's own HTTP traffic.
const TRACE_FILTER: &str = "warn,maas_runtime=debug,hyper=off,hyper_util=off,opentelemetry=off,\
                            opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off";

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The installed subscriber's exporter; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's subscriber for `config`'s log filter and format, with trace
    /// export when the environment names a collector. Call it once, inside the tokio runtime
    /// that will run the server (the exporter sends on it).
    pub fn init(config: &Config) -> anyhow::Result<Self> {
        let provider = if set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(provider()?)
        } else {
            None
        };
        let traces = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer().with_tracer(p.tracer("maas")).with_filter(EnvFilter::new(TRACE_FILTER))
        });
        let filter = EnvFilter::try_new(&config.log_filter)
            .with_context(|| format!("MAAS_LOG={:?} is not a log filter", config.log_filter))?;
        let logs = match config.log_format {
            LogFormat::Text => {
                tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed()
            }
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
        };
        tracing_subscriber::registry().with(traces).with(logs).try_init()?;
        if provider.is_some() {
            tracing::info!("exporting traces over OTLP/HTTP");
        }
        Ok(Self { provider })
    }

    /// Exports the spans still queued. Waits on a blocking thread: the export itself runs on
    /// this runtime, which must still be running.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                eprintln!("exporting the last traces failed: {e}");
            }
        }
    }
}

/// Whether the environment variable `name` is set and not empty.
fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The tracer provider: a batch exporter over OTLP/HTTP to the collector the environment
/// names, described by the resource the environment gives (`OTEL_SERVICE_NAME`, else `maas`).
fn provider() -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let client = TokioHttp::new(tokio::runtime::Handle::try_current()?);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("maas");
    }
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

/// Makes `span` (not yet entered) a child of the trace context in `headers`' `traceparent`,
/// when there is a valid one and spans are exported.
pub(crate) fn set_parent(span: &Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when no exporter layer is installed: then there is nothing to join.
        let _ = span.set_parent(parent);
    }
}

/// `span`'s own W3C `traceparent`, when spans are exported.
pub(crate) fn traceparent(span: &Span) -> Option<HeaderValue> {
    let context = span.context();
    let span = context.span();
    let own = span.span_context();
    if !own.is_valid() {
        return None;
    }
    let value = format!("00-{}-{}-{:02x}", own.trace_id(), own.span_id(), own.trace_flags().to_u8());
    HeaderValue::from_str(&value).ok()
}

/// The exporter's HTTP client: hyper on the server's runtime. The SDK exports from a thread of
/// its own, with no runtime; each export is spawned onto the server's.
#[derive(Clone, Debug)]
struct TokioHttp {
    runtime: tokio::runtime::Handle,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl TokioHttp {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self { runtime, client }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        use http_body_util::BodyExt;
        use opentelemetry::context::FutureExt;
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, http_body_util::Full::new(body));
        let client = self.client.clone();
        // The export's context says "do not trace": the HTTP work of an export is not traced.
        let export = async move {
            let sent = async move {
                let (parts, body) = client.request(request).await?.into_parts();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(
                    parts,
                    body.collect().await?.to_bytes(),
                ))
            };
            tokio::time::timeout(EXPORT_TIMEOUT, sent).await.map_err(|_| "the OTLP export timed out")?
        };
        self.runtime.spawn(export.with_current_context()).await?
    }
}
