//! OTLP push of the metrics: exactly what `/metrics` shows, under their OpenTelemetry names,
//! units and dotted attribute keys, so the OpenTelemetry→Prometheus translation of a Collector
//! (or Prometheus' OTLP receiver) gives back the same series. Counters and gauges are read from
//! the one registry at each collection; histograms are recorded into SDK histograms with the
//! same bucket bounds. Export failures are counted and never touch proxied traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::config::{Environment, Otlp, OtlpProtocol};
use crate::metrics::{Metrics, OtlpSignal};

pub(crate) mod alertmanager;
mod bridge;
mod logs;
pub(crate) mod syslog;
use bridge::bridge;

/// The running export; `shutdown` flushes what is pending.
pub(crate) struct Export {
    provider: Option<SdkMeterProvider>,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    logs: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    audit_logs: Option<logs::AuditLogs>,
}

impl Export {
    /// The tracer for MCP spans, when `otlp.traces` is on.
    pub(crate) fn tracer(&self) -> Option<opentelemetry_sdk::trace::SdkTracer> {
        use opentelemetry::trace::TracerProvider;
        let scope = InstrumentationScope::builder("mcp-tap").with_version(env!("CARGO_PKG_VERSION")).build();
        self.traces.as_ref().map(|p| p.tracer_with_scope(scope))
    }

    /// The audit trail's OTLP-logs output, when logs are exported (taken once).
    pub(crate) fn take_audit_logs(&mut self) -> Option<Box<dyn crate::audit::sink::Forward>> {
        self.audit_logs.take().map(|l| Box::new(l) as Box<dyn crate::audit::sink::Forward>)
    }

    pub(crate) fn shutdown(&self) {
        if let Some(l) = &self.logs {
            if let Err(e) = l.shutdown() {
                tracing::warn!(error = %e, "the last OTLP log export at shutdown failed");
            }
        }
        if let Some(t) = &self.traces {
            if let Err(e) = t.shutdown() {
                tracing::warn!(error = %e, "the last OTLP span export at shutdown failed");
            }
        }
        if let Err(e) = self.provider.as_ref().map_or(Ok(()), SdkMeterProvider::shutdown) {
            tracing::warn!(error = %e, "the last OTLP export at shutdown failed");
        }
    }
}

/// Counts failed span exports, as `Counting` does for metrics.
struct CountingSpans<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for CountingSpans<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingSpans").field("inner", &self.inner).finish()
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter for CountingSpans<E> {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "OTLP span export failed; those spans are dropped");
            self.metrics.record_otlp_export_failure(OtlpSignal::Traces);
        }
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Spans waiting for export are capped; beyond it the SDK drops them rather than grow.
const SPAN_QUEUE: usize = 2048;

fn traces(
    config: &Otlp,
    protocol: OtlpProtocol,
    resource: opentelemetry_sdk::Resource,
    metrics: Arc<Metrics>,
) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler};
    let exporter = match protocol {
        OtlpProtocol::Grpc => {
            tonic_options(opentelemetry_otlp::SpanExporter::builder().with_tonic(), config)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            http_options(opentelemetry_otlp::SpanExporter::builder().with_http(), config, "/v1/traces")?.build()?
        }
    };
    let delay = config.interval.unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(5));
    let batch = BatchConfigBuilder::default().with_max_queue_size(SPAN_QUEUE).with_scheduled_delay(delay).build();
    let processor =
        BatchSpanProcessor::builder(CountingSpans { inner: exporter, metrics }).with_batch_config(batch).build();
    let ratio = config.trace_sample_ratio.unwrap_or(1.0);
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(resource)
        .build())
}

/// Counts failed exports in the tap's own metrics, so a dead collector is visible.
struct Counting<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

impl<E: PushMetricExporter> PushMetricExporter for Counting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "OTLP metrics export failed; the next interval tries again");
            self.metrics.record_otlp_export_failure(OtlpSignal::Metrics);
        }
        result
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The HTTP client of the HTTP/protobuf exporter. The SDK exports from its own thread, which has
/// no Tokio reactor, so each request runs on the tap's runtime and the SDK awaits its result.
#[derive(Debug)]
struct RuntimeHttpClient {
    client: crate::http_client::UpstreamClient,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

/// Collector answers are tiny; anything larger is not read.
const MAX_COLLECTOR_ANSWER: usize = 1 << 20;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        use http_body_util::BodyExt;
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(
            parts,
            crate::http_client::UpstreamBody::Full { data: Some(body), trailers: None },
        );
        let (client, timeout) = (self.client.clone(), self.timeout);
        let task = self.runtime.spawn(async move {
            let response = tokio::time::timeout(timeout, client.request(request))
                .await
                .map_err(|_| format!("the collector did not answer within {timeout:?}"))??;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_COLLECTOR_ANSWER).collect().await?.to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        });
        task.await?
    }
}

/// Endpoint, timeout and headers (as gRPC metadata) from the config, on any tonic exporter.
fn tonic_options<B: WithExportConfig + WithTonicConfig>(mut b: B, config: &Otlp) -> anyhow::Result<B> {
    if let Some(e) = &config.endpoint {
        b = b.with_endpoint(e.clone());
    }
    if let Some(t) = config.timeout {
        b = b.with_timeout(t);
    }
    if !config.headers.is_empty() {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| anyhow::anyhow!("otlp.headers: `{k}` is not a valid header name: {e}"))?;
            let value = http::HeaderValue::from_str(v).map_err(|e| anyhow::anyhow!("otlp.headers.{k}: {e}"))?;
            headers.insert(name, value);
        }
        b = b.with_metadata(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers));
    }
    Ok(b)
}

/// The same for an HTTP/protobuf exporter; `path` is the signal's (`/v1/metrics`, `/v1/traces`).
fn http_options<B: WithExportConfig + WithHttpConfig>(b: B, config: &Otlp, path: &str) -> anyhow::Result<B> {
    let client = crate::http_client::build_client(&crate::config::Upstream::default())?;
    let http_client = RuntimeHttpClient {
        client,
        runtime: tokio::runtime::Handle::current(),
        timeout: config.timeout.unwrap_or(Duration::from_secs(10)),
    };
    let mut b = b.with_protocol(Protocol::HttpBinary).with_http_client(http_client);
    if let Some(e) = &config.endpoint {
        // Like OTEL_EXPORTER_OTLP_ENDPOINT, a base URL gets the signal path.
        let e = e.trim_end_matches('/');
        let e = ["/v1/metrics", "/v1/traces", "/v1/logs"].iter().find_map(|s| e.strip_suffix(s)).unwrap_or(e);
        b = b.with_endpoint(format!("{e}{path}"));
    }
    if let Some(t) = config.timeout {
        b = b.with_timeout(t);
    }
    if !config.headers.is_empty() {
        b = b.with_headers(config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>());
    }
    Ok(b)
}

/// Starts the OTLP export if the config or the environment names an endpoint: metrics (and
/// traces) with a metrics endpoint, audit events as logs with a logs endpoint.
pub(crate) fn start(config: &Otlp, env: &Environment, metrics: Arc<Metrics>) -> anyhow::Result<Option<Export>> {
    let endpoint = |signal: &str| {
        let var = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
        config.endpoint.clone().or_else(|| env.first(&[var.as_str(), "OTEL_EXPORTER_OTLP_ENDPOINT"]))
    };
    let metrics_endpoint = endpoint("METRICS");
    let logs_off = !config.logs || env.var("OTEL_LOGS_EXPORTER").is_some_and(|e| e.trim() == "none");
    let logs_endpoint = endpoint("LOGS").filter(|_| !logs_off);
    if metrics_endpoint.is_none() && logs_endpoint.is_none() {
        return Ok(None);
    }
    let resource = resource(env);
    let mut export = Export { provider: None, traces: None, logs: None, audit_logs: None };
    if let Some(e) = &metrics_endpoint {
        let metrics_config = Otlp { endpoint: Some(e.clone()), ..config.clone() };
        export.provider = Some(meters(&metrics_config, protocol(config, env, "METRICS"), &resource, metrics.clone())?);
        if config.traces {
            let traces_config = Otlp { endpoint: endpoint("TRACES").or(Some(e.clone())), ..config.clone() };
            let traces = traces(&traces_config, protocol(config, env, "TRACES"), resource.clone(), metrics.clone())?;
            export.traces = Some(traces);
        }
    }
    if let Some(e) = &logs_endpoint {
        let logs_config = Otlp { endpoint: Some(e.clone()), ..config.clone() };
        let (provider, audit) = logs::start(&logs_config, protocol(config, env, "LOGS"), resource, metrics)?;
        export.logs = Some(provider);
        export.audit_logs = Some(audit);
    }
    tracing::info!(
        metrics = metrics_endpoint.as_deref().unwrap_or("off"),
        traces = config.traces && metrics_endpoint.is_some(),
        audit_logs = logs_endpoint.as_deref().unwrap_or("off"),
        "OTLP export on"
    );
    Ok(Some(export))
}

/// The signal's protocol: the config's, else `OTEL_EXPORTER_OTLP_{signal}_PROTOCOL` or
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, else http/protobuf (the OpenTelemetry default).
fn protocol(config: &Otlp, env: &Environment, signal: &str) -> OtlpProtocol {
    let var = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
    config.protocol.unwrap_or_else(|| match env.first(&[var.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"]).as_deref() {
        Some("grpc") => OtlpProtocol::Grpc,
        _ => OtlpProtocol::HttpProtobuf,
    })
}

/// The metrics pipeline: the periodic reader, the bridged registry and the mirrored histograms.
fn meters(
    config: &Otlp,
    protocol: OtlpProtocol,
    resource: &opentelemetry_sdk::Resource,
    metrics: Arc<Metrics>,
) -> anyhow::Result<SdkMeterProvider> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => {
            tonic_options(opentelemetry_otlp::MetricExporter::builder().with_tonic(), config)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            let builder = opentelemetry_otlp::MetricExporter::builder().with_http();
            http_options(builder, config, "/v1/metrics")?.build()?
        }
    };
    let mut reader = PeriodicReader::builder(Counting { inner: exporter, metrics: metrics.clone() });
    if let Some(i) = config.interval {
        reader = reader.with_interval(i);
    }
    let provider = SdkMeterProvider::builder().with_reader(reader.build()).with_resource(resource.clone()).build();
    let scope = InstrumentationScope::builder("mcp-tap").with_version(env!("CARGO_PKG_VERSION")).build();
    let meter = provider.meter_with_scope(scope);
    metrics.mirror_histograms(&meter);
    bridge(&meter, metrics);
    Ok(provider)
}

/// `service.name` is `mcp-tap` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name it.
fn resource(env: &Environment) -> opentelemetry_sdk::Resource {
    let named_by_env = env.var("OTEL_SERVICE_NAME").is_some()
        || env.var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    let mut b = opentelemetry_sdk::Resource::builder();
    if !named_by_env {
        b = b.with_service_name("mcp-tap");
    }
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    let instance: String = id.iter().map(|b| format!("{b:02x}")).collect();
    b.with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance),
    ])
    .build()
}
