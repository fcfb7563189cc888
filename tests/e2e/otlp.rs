//! OTLP export against real OTLP receivers on loopback (HTTP/protobuf and gRPC, built on the
//! official opentelemetry-proto definitions): after the same traffic, the decoded OTLP metrics
//! translate (OpenTelemetry→Prometheus rules) to exactly the series /metrics shows. A dead
//! collector never affects traffic and is counted; the config file wins over OTEL_* variables.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as Number};
use prost::Message;

type Exports = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

async fn http_receiver() -> (String, Exports) {
    let got: Exports = Arc::default();
    let g = got.clone();
    let url = otlp_http_receiver(move |path, body| {
        assert_eq!(path, "/v1/metrics");
        g.lock().unwrap().push(ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf"));
    })
    .await;
    (url, got)
}

struct Grpc(Exports);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (String, Exports) {
    let got: Exports = Arc::default();
    let service = MetricsServiceServer::new(Grpc(got.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
    (format!("http://127.0.0.1:{port}"), got)
}

/// A small MCP upstream: tools/list, a tool that works, one that fails, and a 401 without a token.
async fn mcp_upstream() -> String {
    let addr = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt;
        if !req.headers().contains_key("authorization") {
            return json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"}}"#);
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = m["id"].clone();
        let result = match (m["method"].as_str().unwrap(), m["params"]["name"].as_str()) {
            ("tools/list", _) => serde_json::json!({"tools": [{"name": "ok-tool"}, {"name": "bad-tool"}]}),
            ("tools/call", Some("bad-tool")) => {
                serde_json::json!({"content": [{"type": "text", "text": "Error: no"}], "isError": true})
            }
            _ => serde_json::json!({"content": []}),
        };
        json_response(200, &serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
    })
    .await;
    format!("http://{addr}")
}

async fn traffic(tap: &Tap) {
    let url = tap.url("/mcp");
    let auth = [("authorization", "Bearer tap-test-otlp-token")];
    post_mcp(&url, &auth, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    for (i, tool) in ["ok-tool", "ok-tool", "bad-tool"].iter().enumerate() {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"{tool}"}}}}"#, i + 2);
        assert_eq!(post_mcp(&url, &auth, &body).await.0, 200);
    }
    assert_eq!(post_mcp(&url, &[], r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#).await.0, 401);
}

type Series = BTreeMap<String, f64>;

fn key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let l: Vec<String> = labels.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", l.join(","))
}

/// OTLP attributes as Prometheus labels (every value a string, dots turned into underscores).
fn attrs(a: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    a.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                other => panic!("non-string attribute {other:?}"),
            };
            (kv.key.replace('.', "_"), v)
        })
        .collect()
}

fn number(v: &Option<Number>) -> f64 {
    match v {
        Some(Number::AsDouble(d)) => *d,
        Some(Number::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

/// The Prometheus name of an OTLP metric without the type's suffix (`_total`), by its unit.
fn base_name(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> String {
    let suffix = match m.unit.as_str() {
        "s" => "_seconds",
        "By" => "_bytes",
        "" => "",
        u => panic!("unexpected unit {u} on {}", m.name),
    };
    format!("{}{suffix}", m.name.replace('.', "_"))
}

/// The OTLP metrics of one export as Prometheus series, by the OpenTelemetry→Prometheus rules.
fn translate(req: &ExportMetricsServiceRequest) -> (Series, Vec<(String, String, Vec<f64>)>) {
    let mut out = Series::new();
    let mut histograms = Vec::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            assert_eq!(sm.scope.as_ref().unwrap().name, "mcp-tap", "instrumentation scope");
            for m in &sm.metrics {
                let base = base_name(m);
                let prometheus =
                    if matches!(m.data, Some(Data::Sum(_))) { format!("{base}_total") } else { base.clone() };
                let catalogue = &mcp_tap::catalogue::ALL;
                let spec = catalogue.iter().copied().chain(mcp_tap::catalogue::PROCESS).find(|s| s.name == prometheus);
                let spec = spec.unwrap_or_else(|| panic!("{prometheus} is exported but not in the catalogue"));
                assert_eq!(m.description, spec.help, "{prometheus}: the OTLP description is the catalogue's help");
                match m.data.as_ref().unwrap() {
                    Data::Sum(s) => {
                        assert!(s.is_monotonic, "{} is a counter", m.name);
                        for p in &s.data_points {
                            out.insert(key(&format!("{base}_total"), &attrs(&p.attributes)), number(&p.value));
                        }
                    }
                    Data::Gauge(g) => {
                        for p in &g.data_points {
                            out.insert(key(&base, &attrs(&p.attributes)), number(&p.value));
                        }
                    }
                    Data::Histogram(h) => {
                        for p in &h.data_points {
                            let labels = attrs(&p.attributes);
                            histograms.push((m.name.clone(), m.unit.clone(), p.explicit_bounds.clone()));
                            out.insert(key(&format!("{base}_count"), &labels), p.count as f64);
                            out.insert(key(&format!("{base}_sum"), &labels), p.sum.unwrap_or(0.0));
                            let mut cumulative = 0;
                            for (i, c) in p.bucket_counts.iter().enumerate() {
                                cumulative += c;
                                let le = p.explicit_bounds.get(i).map_or("+Inf".to_string(), ToString::to_string);
                                let mut l = labels.clone();
                                l.insert("le".into(), le);
                                out.insert(key(&format!("{base}_bucket"), &l), cumulative as f64);
                            }
                        }
                    }
                    other => panic!("unexpected data {other:?}"),
                }
            }
        }
    }
    (out, histograms)
}

fn scraped(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        for (labels, value) in series(text, name) {
            out.insert(key(name, &labels), value);
        }
    }
    out
}

/// Waits for an export that carries the whole traffic, then compares it with /metrics.
async fn exported_equals_scraped(tap: &Tap, got: &Exports) {
    let m = tap.metrics().await;
    let want = metric(&m, "mcp_server_operation_duration_seconds_count", &[]);
    assert!(want >= 5.0);
    let (otlp, histograms) = eventually(Duration::from_secs(20), "an export with every operation", || async {
        let last = got.lock().unwrap().last().cloned();
        let Some(req) = last else { return Err("no export yet".to_string()) };
        let (s, h) = translate(&req);
        let ops: f64 = s
            .iter()
            .filter(|(k, _)| k.starts_with("mcp_server_operation_duration_seconds_count{"))
            .map(|(_, v)| v)
            .sum();
        if ops == want {
            Ok((s, h))
        } else {
            Err(format!("{ops} of {want} operations exported"))
        }
    })
    .await;
    let m = scraped(&tap.metrics().await);
    for (k, v) in &m {
        if k.starts_with("process_") {
            assert!(otlp.keys().any(|o| o.split('{').next() == k.split('{').next()), "{k} is missing from OTLP");
            continue;
        }
        // The export's own failure counter may have moved since; its series must exist.
        let exported = otlp.get(k).unwrap_or_else(|| panic!("{k} is in /metrics but not in the OTLP export"));
        if !k.starts_with("mcp_tap_otlp_") && !k.starts_with("mcp_tap_proxy_overhead") {
            assert!((exported - v).abs() < 1e-9, "{k}: /metrics {v}, OTLP {exported}");
        }
    }
    for k in otlp.keys().filter(|k| k.starts_with("mcp_")) {
        assert!(m.contains_key(k), "{k} is in the OTLP export but not in /metrics");
    }
    let (name, unit, bounds) = histograms.iter().find(|(n, _, _)| n == "mcp.server.operation.duration").unwrap();
    assert_eq!((name.as_str(), unit.as_str()), ("mcp.server.operation.duration", "s"));
    assert_eq!(bounds, &mcp_tap::catalogue::OPERATION_BUCKETS.to_vec(), "semantic-convention bucket bounds");
}

fn otlp_config(upstream: &str, endpoint: &str, protocol: mcp_tap::config::OtlpProtocol) -> mcp_tap::config::Config {
    let mut c = config_for(upstream, "t");
    c.otlp.endpoint = Some(endpoint.to_string());
    c.otlp.protocol = Some(protocol);
    c.otlp.interval = Some(Duration::from_millis(300));
    c.otlp.headers.insert("x-tenant".into(), "platform".into());
    // These receivers take metrics only; audit events as logs are tested in siem.rs.
    c.otlp.logs = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_matches_metrics() {
    let (endpoint, got) = http_receiver().await;
    let tap =
        Tap::start(otlp_config(&mcp_upstream().await, &endpoint, mcp_tap::config::OtlpProtocol::HttpProtobuf)).await;
    traffic(&tap).await;
    exported_equals_scraped(&tap, &got).await;
    let req = got.lock().unwrap().last().cloned().unwrap();
    let resource = req.resource_metrics[0].resource.as_ref().unwrap();
    let attr = |k: &str| resource.attributes.iter().find(|a| a.key == k).and_then(|a| a.value.clone());
    assert!(format!("{:?}", attr("service.name")).contains("mcp-tap"));
    assert!(attr("service.version").is_some() && attr("service.instance.id").is_some());
    // Dotted semantic-convention attribute keys on the wire.
    let ops = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "mcp.server.operation.duration")
        .unwrap();
    let Some(Data::Histogram(h)) = &ops.data else { panic!() };
    assert!(h.data_points.iter().any(|p| p.attributes.iter().any(|a| a.key == "gen_ai.tool.name")));
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_matches_metrics() {
    let (endpoint, got) = grpc_receiver().await;
    let tap = Tap::start(otlp_config(&mcp_upstream().await, &endpoint, mcp_tap::config::OtlpProtocol::Grpc)).await;
    traffic(&tap).await;
    exported_equals_scraped(&tap, &got).await;
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_never_affects_traffic_and_is_counted() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut config = otlp_config(&mcp_upstream().await, &dead, mcp_tap::config::OtlpProtocol::HttpProtobuf);
    config.otlp.timeout = Some(Duration::from_millis(200));
    let tap = Tap::start(config).await;
    let m = eventually(Duration::from_secs(10), "two export failures counted", || async {
        traffic(&tap).await;
        let m = tap.metrics().await;
        if metric(&m, "mcp_tap_otlp_export_failures_total", &[("signal", "metrics")]) >= 2.0 {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await;
    assert_eq!(metric(&m, "mcp_tap_http_requests_total", &[("http_response_status_code", "502")]), 0.0);
    let stopped = Instant::now();
    tap.stop().await;
    assert!(stopped.elapsed() < Duration::from_secs(8), "shutdown must not hang on a dead collector");
}

async fn exports_arrive(got: &Exports, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        if got.lock().unwrap().is_empty() {
            Err("nothing received".to_string())
        } else {
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_wins_over_otel_environment_variables() {
    // A dead endpoint in the environment; the config names the live receiver.
    let (endpoint, got) = http_receiver().await;
    let mut config = otlp_config(&mcp_upstream().await, &endpoint, mcp_tap::config::OtlpProtocol::HttpProtobuf);
    let dead = format!("http://127.0.0.1:{}", free_port());
    config.env = mcp_tap::config::Environment::fixed([
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", dead.as_str()),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
    ]);
    let tap = Tap::start(config).await;
    traffic(&tap).await;
    exports_arrive(&got, "an export at the configured endpoint").await;
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_names_the_collector_when_the_config_does_not() {
    let (endpoint, got) = http_receiver().await;
    let mut config = otlp_config(&mcp_upstream().await, &endpoint, mcp_tap::config::OtlpProtocol::HttpProtobuf);
    config.otlp.endpoint = None;
    config.otlp.protocol = None;
    config.env = mcp_tap::config::Environment::fixed([("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]);
    let tap = Tap::start(config).await;
    traffic(&tap).await;
    exports_arrive(&got, "an export at the endpoint from OTEL_EXPORTER_OTLP_ENDPOINT").await;
    tap.stop().await;
}
