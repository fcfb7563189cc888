//! OTLP push of the metrics: exactly what `/metrics` shows, under their OpenTelemetry names,
//! units and dotted attribute keys, so the OpenTelemetry→Prometheus translation of a Collector
//! (or Prometheus' OTLP receiver) gives back the same series. Counters and gauges are read from
//! the one registry at each collection; histograms are recorded into SDK histograms with the
//! same bucket bounds. Export failures are counted and never touch proxied traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use prometheus::proto::{MetricFamily, MetricType};

use crate::config::{Otlp, OtlpProtocol};
use crate::metrics::Metrics;

/// Counters and gauges bridged from the registry. Histograms are recorded directly (see `Histograms`).
const COUNTERS: &[&str] = &[
    "mcp_tap_http_requests_total",
    "mcp_tap_sessions_ended_total",
    "mcp_tap_upstream_errors_total",
    "mcp_tap_decode_errors_total",
    "mcp_tap_unparsed_messages_total",
    "mcp_tap_label_overflow_total",
    "mcp_tap_server_messages_total",
    "mcp_tap_auth_failures_total",
    "mcp_tap_client_operations_total",
    "mcp_tap_auth_bursts_total",
    "mcp_tap_auth_burst_keys_evicted_total",
    "mcp_tap_audit_events_total",
    "mcp_tap_audit_write_errors_total",
    "mcp_tap_config_reloads_total",
    "mcp_tap_otlp_export_failures_total",
    "process_cpu_seconds_total",
];
const GAUGES: &[&str] = &[
    "mcp_tap_sessions_active",
    "mcp_tap_tools_advertised",
    "mcp_tap_build_info",
    "mcp_tap_auth_burst_active",
    "mcp_tap_config_last_reload_successful",
    "mcp_tap_config_last_reload_success_timestamp_seconds",
    "mcp_tap_probe_success",
    "mcp_tap_probe_duration_seconds",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// The OpenTelemetry name and unit of a Prometheus metric name (the inverse of the
/// OpenTelemetry→Prometheus rules: dots to underscores, a unit suffix, `_total` on counters).
pub fn otel_name(prometheus: &str) -> (String, &'static str) {
    match prometheus {
        "mcp_server_operation_duration_seconds" => return ("mcp.server.operation.duration".into(), "s"),
        "mcp_server_session_duration_seconds" => return ("mcp.server.session.duration".into(), "s"),
        _ => {}
    }
    let base = prometheus.strip_suffix("_total").unwrap_or(prometheus);
    let (base, unit) = if let Some(b) = base.strip_suffix("_seconds") {
        (b, "s")
    } else if let Some(b) = base.strip_suffix("_bytes") {
        (b, "By")
    } else {
        (base, "")
    };
    let name = if let Some(rest) = base.strip_prefix("mcp_tap_") {
        format!("mcp_tap.{rest}")
    } else if let Some(rest) = base.strip_prefix("process_") {
        format!("process.{rest}")
    } else {
        base.to_string()
    };
    (name, unit)
}

/// The dotted OpenTelemetry attribute key of a Prometheus label.
pub fn otel_key(label: &str) -> &str {
    match label {
        "mcp_method_name" => "mcp.method.name",
        "gen_ai_tool_name" => "gen_ai.tool.name",
        "gen_ai_prompt_name" => "gen_ai.prompt.name",
        "gen_ai_operation_name" => "gen_ai.operation.name",
        "error_type" => "error.type",
        "rpc_response_status_code" => "rpc.response.status_code",
        "mcp_protocol_version" => "mcp.protocol.version",
        "network_transport" => "network.transport",
        "network_protocol_name" => "network.protocol.name",
        "network_protocol_version" => "network.protocol.version",
        "mcp_route" => "mcp.route",
        "http_request_method" => "http.request.method",
        "http_response_status_code" => "http.response.status_code",
        other => other,
    }
}

/// Attributes from label pairs; empty values are left out, as Prometheus treats them as absent.
pub fn attributes(labels: &[(&str, &str)]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| KeyValue::new(otel_key(k).to_string(), v.to_string()))
        .collect()
}

/// The SDK histograms that mirror the registry's.
pub struct Histograms {
    pub operation: Histogram<f64>,
    pub session: Histogram<f64>,
    pub overhead: Histogram<f64>,
}

/// The running export; `shutdown` flushes what is pending.
pub struct Export {
    provider: SdkMeterProvider,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Export {
    /// The tracer for MCP spans, when `otlp.traces` is on.
    pub fn tracer(&self) -> Option<opentelemetry_sdk::trace::SdkTracer> {
        use opentelemetry::trace::TracerProvider;
        let scope = InstrumentationScope::builder("mcp-tap").with_version(env!("CARGO_PKG_VERSION")).build();
        self.traces.as_ref().map(|p| p.tracer_with_scope(scope))
    }

    pub fn shutdown(&self) {
        if let Some(t) = &self.traces {
            if let Err(e) = t.shutdown() {
                tracing::warn!(error = %e, "the last OTLP span export at shutdown failed");
            }
        }
        if let Err(e) = self.provider.shutdown() {
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
            self.metrics.record_otlp_export_failure("traces");
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
        .with_resource(resource())
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
            self.metrics.record_otlp_export_failure("metrics");
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
    client: crate::proxy::forward::UpstreamClient,
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
            crate::proxy::body::UpstreamBody::Full { data: Some(body), trailers: None },
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

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
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
    let client = crate::proxy::forward::build_client(&crate::config::Upstream::default())?;
    let http_client = RuntimeHttpClient {
        client,
        runtime: tokio::runtime::Handle::current(),
        timeout: config.timeout.unwrap_or(Duration::from_secs(10)),
    };
    let mut b = b.with_protocol(Protocol::HttpBinary).with_http_client(http_client);
    if let Some(e) = &config.endpoint {
        // Like OTEL_EXPORTER_OTLP_ENDPOINT, a base URL gets the signal path.
        let e = e.trim_end_matches('/');
        let e = e.strip_suffix("/v1/metrics").or_else(|| e.strip_suffix("/v1/traces")).unwrap_or(e);
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

/// Starts the OTLP export if the config or the environment names an endpoint.
pub fn start(config: &Otlp, metrics: Arc<Metrics>) -> anyhow::Result<Option<Export>> {
    let env_endpoint = env(&["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
    if config.endpoint.is_none() && env_endpoint.is_none() {
        return Ok(None);
    }
    let protocol = config.protocol.unwrap_or_else(|| {
        match env(&["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]).as_deref() {
            Some("grpc") => OtlpProtocol::Grpc,
            // The OpenTelemetry default.
            _ => OtlpProtocol::HttpProtobuf,
        }
    });
    let exporter = match protocol {
        OtlpProtocol::Grpc => {
            tonic_options(opentelemetry_otlp::MetricExporter::builder().with_tonic(), config)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            http_options(opentelemetry_otlp::MetricExporter::builder().with_http(), config, "/v1/metrics")?.build()?
        }
    };
    let mut reader = PeriodicReader::builder(Counting { inner: exporter, metrics: metrics.clone() });
    if let Some(i) = config.interval {
        reader = reader.with_interval(i);
    }
    let provider = SdkMeterProvider::builder().with_reader(reader.build()).with_resource(resource()).build();
    let scope = InstrumentationScope::builder("mcp-tap").with_version(env!("CARGO_PKG_VERSION")).build();
    let meter = provider.meter_with_scope(scope);
    metrics.set_otel_histograms(histograms(&meter, &metrics));
    let metrics_for_traces = metrics.clone();
    bridge(&meter, metrics);
    let traces = if config.traces { Some(traces(config, protocol, metrics_for_traces)?) } else { None };
    tracing::info!(
        ?protocol,
        endpoint = config.endpoint.as_deref().or(env_endpoint.as_deref()).unwrap_or(""),
        traces = config.traces,
        "OTLP export on"
    );
    Ok(Some(Export { provider, traces }))
}

/// `service.name` is `mcp-tap` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name it.
fn resource() -> opentelemetry_sdk::Resource {
    let named_by_env = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
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

fn histograms(meter: &Meter, metrics: &Metrics) -> Histograms {
    let h = |prom: &str, help: &str, bounds: Vec<f64>| {
        let (name, unit) = otel_name(prom);
        meter.f64_histogram(name).with_unit(unit).with_description(help.to_string()).with_boundaries(bounds).build()
    };
    Histograms {
        operation: h(
            "mcp_server_operation_duration_seconds",
            "MCP request received to matching response sent to the client.",
            crate::metrics::OPERATION_BUCKETS.to_vec(),
        ),
        session: h(
            "mcp_server_session_duration_seconds",
            "Duration of MCP sessions.",
            metrics.session_buckets().to_vec(),
        ),
        overhead: h(
            "mcp_tap_proxy_overhead_seconds",
            "Time the tap itself adds to an exchange.",
            crate::metrics::OVERHEAD_BUCKETS.to_vec(),
        ),
    }
}

/// One registry read per collection, shared by every bridged instrument's callback.
struct Snapshot {
    metrics: Arc<Metrics>,
    cached: Mutex<(std::time::Instant, Arc<Vec<MetricFamily>>)>,
}

impl Snapshot {
    fn families(&self) -> Arc<Vec<MetricFamily>> {
        let mut c = self.cached.lock().expect("snapshot lock");
        if c.0.elapsed() > Duration::from_millis(500) {
            *c = (std::time::Instant::now(), Arc::new(self.metrics.registry().gather()));
        }
        c.1.clone()
    }
}

fn series(snapshot: &Snapshot, name: &str) -> Vec<(f64, Vec<KeyValue>)> {
    let families = snapshot.families();
    let Some(f) = families.iter().find(|f| f.name() == name) else { return Vec::new() };
    f.get_metric()
        .iter()
        .map(|m| {
            let labels: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.name(), l.value())).collect();
            let value = match f.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                _ => m.get_gauge().get_value(),
            };
            (value, attributes(&labels))
        })
        .collect()
}

fn bridge(meter: &Meter, metrics: Arc<Metrics>) {
    let snapshot = Arc::new(Snapshot {
        cached: Mutex::new((std::time::Instant::now() - Duration::from_secs(1), Arc::new(Vec::new()))),
        metrics,
    });
    for name in COUNTERS {
        let (otel, unit) = otel_name(name);
        let s = snapshot.clone();
        meter
            .f64_observable_counter(otel)
            .with_unit(unit)
            .with_callback(move |obs| {
                for (v, attrs) in series(&s, name) {
                    obs.observe(v, &attrs);
                }
            })
            .build();
    }
    for name in GAUGES {
        let (otel, unit) = otel_name(name);
        let s = snapshot.clone();
        meter
            .f64_observable_gauge(otel)
            .with_unit(unit)
            .with_callback(move |obs| {
                for (v, attrs) in series(&s, name) {
                    obs.observe(v, &attrs);
                }
            })
            .build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_translate_back_to_the_prometheus_names() {
        assert_eq!(otel_name("mcp_server_operation_duration_seconds"), ("mcp.server.operation.duration".into(), "s"));
        assert_eq!(otel_name("mcp_tap_http_requests_total"), ("mcp_tap.http_requests".into(), ""));
        assert_eq!(otel_name("process_resident_memory_bytes"), ("process.resident_memory".into(), "By"));
        assert_eq!(otel_name("mcp_tap_config_last_reload_success_timestamp_seconds").1, "s");
        assert_eq!(otel_key("gen_ai_tool_name"), "gen_ai.tool.name");
        assert_eq!(attributes(&[("error_type", ""), ("mcp_route", "default")]).len(), 1);
    }
}
