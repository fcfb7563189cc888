//! Audit events where security teams read them, in front of a real Backstage: every event of a
//! scripted sequence (three refusal reasons, a burst, a shared credential, tool calls that work
//! and fail) reaches a real OTLP receiver (HTTP/protobuf and gRPC, built on the official
//! opentelemetry-proto definitions) as one log record with the documented attributes, and
//! Debian's rsyslog as one RFC 5424 message; no token or JWT payload reaches either.

use crate::auth_audit::{audit_config, bearer, flipped, LIST};
use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mcp_tap::config::{AuditOperations, Config, OtlpProtocol};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;

type Records = Arc<Mutex<Vec<LogRecord>>>;

pub(crate) const UNKNOWN: &str = "siem-test-never-issued-7b7b7b7b";
const CLIENT_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4799";

fn keep(records: &Records, export: ExportLogsServiceRequest) {
    for rl in export.resource_logs {
        for sl in rl.scope_logs {
            assert_eq!(sl.scope.as_ref().map(|s| s.name.as_str()), Some("mcp-tap"));
            records.lock().unwrap().extend(sl.log_records);
        }
    }
}

async fn http_receiver() -> (String, Records) {
    let got: Records = Arc::default();
    let g = got.clone();
    // Metrics and traces are answered and not kept.
    let url = otlp_http_receiver(move |path, body| {
        if path == "/v1/logs" {
            keep(&g, ExportLogsServiceRequest::decode(body).expect("OTLP logs protobuf"));
        }
    })
    .await;
    (url, got)
}

struct Grpc(Records);

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (String, Records) {
    let got: Records = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder().add_service(LogsServiceServer::new(Grpc(got.clone())));
    tokio::spawn(server.serve_with_incoming(incoming));
    (format!("http://127.0.0.1:{port}"), got)
}

/// The tap for the sequence: tokens from the test Backstage, a low source-burst threshold, an
/// operation event per tool call, audit events to OTLP logs (and traces, for their ids).
pub(crate) fn siem_config(upstream: &str) -> Config {
    let mut c = audit_config(upstream);
    c.bursts.source.failures = 5;
    c.bursts.source.window = Duration::from_secs(60);
    c.audit.operations = AuditOperations::Tools;
    c.otlp.traces = true;
    c.otlp.interval = Some(Duration::from_millis(200));
    c
}

const CALL_OK: &str = r#"{"jsonrpc":"2.0","id":"ok-1","method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{"kind":"Component","name":"payments-api"}}}"#;
const CALL_BAD: &str =
    r#"{"jsonrpc":"2.0","id":"bad-1","method":"tools/call","params":{"name":"catalog.no-such-action","arguments":{}}}"#;

fn init(name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"{name}","version":"1"}}}}}}"#
    )
}

/// Refusals for three reasons (and a forged user token), enough of them for a source burst, one
/// credential declared by two programs, and a tool call that works and one that fails.
pub(crate) async fn scripted_sequence(url: &str, guest: &str) {
    assert_eq!(post_mcp(url, &[], LIST).await.0, 401);
    assert_eq!(post_mcp(url, &[("authorization", &bearer(UNKNOWN))], LIST).await.0, 401);
    assert_eq!(post_mcp(url, &[("authorization", &bearer(TOKEN_CATALOG_ONLY))], LIST).await.0, 403);
    assert_eq!(post_mcp(url, &[("authorization", &bearer(&flipped(guest)))], LIST).await.0, 401);
    for _ in 0..2 {
        assert_eq!(post_mcp(url, &[("authorization", &bearer(UNKNOWN))], LIST).await.0, 401);
    }
    let full = bearer(TOKEN_FULL);
    assert_eq!(post_mcp(url, &[("authorization", &full)], &init("vscode")).await.0, 200);
    assert_eq!(post_mcp(url, &[("authorization", &full)], &init("claude-code")).await.0, 200);
    assert_eq!(post_mcp(url, &[("authorization", &full)], LIST).await.0, 200);
    let traceparent = format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01");
    assert_eq!(post_mcp(url, &[("authorization", &full), ("traceparent", &traceparent)], CALL_OK).await.0, 200);
    assert_eq!(post_mcp(url, &[("authorization", &full)], CALL_BAD).await.0, 200);
}

fn attrs(r: &LogRecord) -> BTreeMap<String, String> {
    r.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn body(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => panic!("the body is the JSON line, not {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One record per audit line, the line as its body, and the documented attributes.
fn check_records(lines: &[String], records: &[LogRecord], guest: &str) {
    let mut bodies: Vec<String> = records.iter().map(body).collect();
    let mut expected = lines.to_vec();
    bodies.sort();
    expected.sort();
    assert_eq!(bodies, expected, "one log record per audit event, its body the JSON line");
    let by_event = |event: &str| -> Vec<&LogRecord> {
        records.iter().filter(|r| r.event_name == format!("mcp_tap.{event}")).collect()
    };
    let refusals = by_event("auth_failure");
    let reasons: std::collections::BTreeSet<String> = refusals.iter().map(|r| attrs(r)["error.type"].clone()).collect();
    assert!(reasons.len() >= 3, "three reasons or more: {reasons:?}");
    for reason in ["missing_credentials", "unknown_token", "plugin_not_allowed"] {
        assert!(reasons.contains(reason), "{reason} in {reasons:?}");
    }
    for r in &refusals {
        let a = attrs(r);
        assert_eq!(a["client.address"], "127.0.0.1");
        assert!(a["http.response.status_code"] == "401" || a["http.response.status_code"] == "403", "{a:?}");
        assert_eq!(a["mcp.method.name"], "tools/list");
        assert_eq!(a["mcp.route"], "default");
        assert_eq!(a["mcp_tap.schema"], "mcp-tap.audit.v1");
    }
    let burst = by_event("burst_start");
    assert_eq!(burst.len(), 1, "one source burst");
    assert_eq!((burst[0].severity_text.as_str(), burst[0].severity_number), ("WARN", 13));
    assert_eq!(attrs(burst[0])["mcp_tap.finding"], "burst");
    assert_eq!(attrs(burst[0])["mcp_tap.scope"], "source");
    let shared = by_event("credential_shared");
    assert_eq!(shared.len(), 1, "one shared credential");
    assert_eq!(attrs(shared[0])["mcp_tap.finding"], "credential_shared");
    assert!(attrs(shared[0])["mcp_tap.clients"].contains("vscode"), "{:?}", attrs(shared[0]));
    let ops = by_event("operation");
    assert_eq!(ops.len(), 2, "one operation event per tools/call");
    let ok = ops.iter().find(|r| attrs(r)["gen_ai.tool.name"] == "catalog.get-catalog-entity").unwrap();
    let a = attrs(ok);
    assert_eq!((a["mcp_tap.outcome"].as_str(), a.get("error.type")), ("ok", None));
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["mcp_tap.client"], "ci-agent", "named by the token's Backstage subject");
    assert!(a["mcp_tap.duration_seconds"].parse::<f64>().unwrap() > 0.0);
    assert!(a["mcp_tap.response_bytes"].parse::<u64>().unwrap() > 100);
    assert_eq!(hex(&ok.trace_id), CLIENT_TRACE, "the tool call's record is in the client's trace");
    assert_eq!(ok.span_id.len(), 8);
    let bad = ops.iter().find(|r| attrs(r)["gen_ai.tool.name"] == "catalog.no-such-action").unwrap();
    assert_eq!(attrs(bad)["error.type"], "tool_error");
    assert!(!hex(&bad.trace_id).is_empty(), "the tap's own span, without a client trace");
    let everything = format!("{records:?}");
    let payload = guest.split('.').nth(1).unwrap();
    for secret in [TOKEN_FULL, TOKEN_CATALOG_ONLY, UNKNOWN, guest, payload, &flipped(guest)] {
        assert!(!everything.contains(secret), "a token or JWT payload in a log record");
    }
}

async fn audit_events_as_otlp_logs(protocol: OtlpProtocol, backstage_port: u16) {
    let (endpoint, records) = match protocol {
        OtlpProtocol::Grpc => grpc_receiver().await,
        OtlpProtocol::HttpProtobuf => http_receiver().await,
    };
    let mut config = siem_config(&format!("http://127.0.0.1:{backstage_port}"));
    config.otlp.endpoint = Some(endpoint);
    config.otlp.protocol = Some(protocol);
    let audit = config.audit.output.clone();
    let tap = Tap::start(config).await;
    let guest = guest_token(backstage_port).await;
    scripted_sequence(&tap.url("/api/mcp-actions/v1"), &guest).await;
    // Stopping flushes the audit trail into the log export, and the export to the receiver.
    tap.stop().await;
    let lines: Vec<String> = std::fs::read_to_string(&audit).unwrap().lines().map(str::to_string).collect();
    assert!(lines.len() >= 10, "{lines:#?}");
    let records = records.lock().unwrap().clone();
    check_records(&lines, &records, &guest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_event_reaches_an_otlp_receiver_as_a_log_record() {
    let backstage = backstage().await;
    audit_events_as_otlp_logs(OtlpProtocol::HttpProtobuf, backstage.port).await;
    audit_events_as_otlp_logs(OtlpProtocol::Grpc, backstage.port).await;
}
