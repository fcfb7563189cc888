//! MCP spans over OTLP, against a real OTLP/HTTP receiver: one SERVER span per request named
//! `{method} {target}`, parented on the client's `traceparent` (or `params._meta.traceparent`),
//! with the semantic-convention attributes, ERROR status on failures, and the upstream receiving
//! a `traceparent` whose trace id matches the tap's span.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const META_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const META_PARENT: &str = "b7ad6b7169203331";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    })
}

/// An OTLP/HTTP trace receiver; the spans it got.
async fn trace_receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let s = spans.clone();
    let receiver = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let s = s.clone();
        async move {
            use http_body_util::BodyExt;
            if req.uri().path() == "/v1/traces" {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let export = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in export.resource_spans {
                    for ss in rs.scope_spans {
                        assert_eq!(ss.scope.unwrap().name, "mcp-tap");
                        s.lock().unwrap().extend(ss.spans);
                    }
                }
                return http::Response::builder()
                    .status(200)
                    .body(full(ExportTraceServiceResponse::default().encode_to_vec()))
                    .unwrap();
            }
            http::Response::builder().status(200).body(full(Vec::<u8>::new())).unwrap()
        }
    })
    .await;
    (receiver, spans)
}

/// An MCP upstream that remembers the `traceparent` of each request; it offers `ok-tool` and
/// `bad-tool` (which fails).
async fn tracing_mcp_upstream() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sn = seen.clone();
    let mcp = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let sn = sn.clone();
        async move {
            use http_body_util::BodyExt;
            sn.lock()
                .unwrap()
                .push(req.headers().get("traceparent").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default());
            let m: serde_json::Value =
                serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes()).unwrap();
            let result = match m["params"]["name"].as_str() {
                Some("bad-tool") => serde_json::json!({"content": [], "isError": true}),
                _ => serde_json::json!({"tools": [{"name": "ok-tool"}, {"name": "bad-tool"}]}),
            };
            json_response(200, &serde_json::json!({"jsonrpc":"2.0","id":m["id"],"result":result}).to_string())
        }
    })
    .await;
    (mcp, seen)
}

/// The three spans: the header's context is the parent of the first; the message's of the
/// second (a tool error); with both, the message's is the parent and the header's is linked;
/// the upstream gets the tap's span as its parent each time.
fn spans_join_the_callers_traces(spans: &[Span], seen: &[String]) {
    let ok = spans.iter().find(|s| s.name == "tools/call ok-tool").expect("a span named {method} {target}");
    assert_eq!(ok.kind, 2, "SERVER");
    assert_eq!(hex(&ok.trace_id), TRACE);
    assert_eq!(hex(&ok.parent_span_id), PARENT);
    assert_eq!(attr(ok, "mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(attr(ok, "gen_ai.tool.name").as_deref(), Some("ok-tool"));
    assert_eq!(attr(ok, "jsonrpc.request.id").as_deref(), Some("c1"));
    assert_eq!(attr(ok, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(ok, "mcp.protocol.version").as_deref(), Some("2025-03-26"));
    assert!(attr(ok, "error.type").is_none());
    assert_ne!(ok.status.as_ref().map_or(0, |s| s.code), 2, "not ERROR");
    // The upstream got the tap's span as its parent, in the caller's trace.
    let sent = seen[0].clone();
    assert_eq!(sent, format!("00-{TRACE}-{}-01", hex(&ok.span_id)));

    let bad = spans.iter().find(|s| s.name == "tools/call bad-tool").unwrap();
    assert_eq!(hex(&bad.trace_id), META_TRACE);
    assert_eq!(hex(&bad.parent_span_id), META_PARENT);
    assert_eq!(attr(bad, "error.type").as_deref(), Some("tool_error"));
    assert_eq!(bad.status.as_ref().unwrap().code, 2, "ERROR");

    let both = spans.iter().find(|s| s.name == "tools/call both-tool").unwrap();
    assert_eq!((hex(&both.trace_id), hex(&both.parent_span_id)), (META_TRACE.to_string(), META_PARENT.to_string()));
    assert_eq!(both.trace_state, "vendor=1", "the message's tracestate travels with its traceparent");
    let links: Vec<(String, String)> = both.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect();
    assert_eq!(links, vec![(TRACE.to_string(), PARENT.to_string())], "the header's context is linked");
    let sent = seen[2].clone();
    assert_eq!(sent, format!("00-{META_TRACE}-{}-01", hex(&both.span_id)), "upstream joins the message's trace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_span_per_request_joined_to_the_callers_trace() {
    let (receiver, spans) = trace_receiver().await;
    let (mcp, seen) = tracing_mcp_upstream().await;
    let mut config = config_for(&format!("http://{mcp}"), "t");
    config.otlp.endpoint = Some(format!("http://{receiver}"));
    config.otlp.protocol = Some(mcp_tap::config::OtlpProtocol::HttpProtobuf);
    config.otlp.traces = true;
    config.otlp.interval = Some(Duration::from_millis(200));
    let tap = Tap::start(config).await;
    let url = tap.url("/mcp");

    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let call = r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"ok-tool","arguments":{}}}"#;
    // A Backstage user token: neither it nor its claims may reach a span.
    let now = unix_now();
    let jwt = sign("backstage", BACKSTAGE_KID, "vnd.backstage.user", &claims("backstage", now, now + 600));
    let auth = format!("Bearer {jwt}");
    assert_eq!(post_mcp(&url, &[("traceparent", &traceparent), ("authorization", &auth)], call).await.0, 200);
    // Trace context inside the message when the transport carries none.
    let meta = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"bad-tool","_meta":{{"traceparent":"00-{META_TRACE}-{META_PARENT}-01"}}}}}}"#
    );
    assert_eq!(post_mcp(&url, &[], &meta).await.0, 200);
    // Both: the message's context is the parent (SEP-414), the transport's is linked.
    let both = format!(
        r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"both-tool","_meta":{{"traceparent":"00-{META_TRACE}-{META_PARENT}-01","tracestate":"vendor=1"}}}}}}"#
    );
    assert_eq!(post_mcp(&url, &[("traceparent", &traceparent)], &both).await.0, 200);

    eventually(Duration::from_secs(10), "three spans exported", || async {
        let n = spans.lock().unwrap().len();
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} spans"))
        }
    })
    .await;
    let spans = spans.lock().unwrap().clone();
    let exported = format!("{spans:?}");
    for secret in [jwt.as_str(), jwt.split('.').nth(1).unwrap(), "user:development/guest"] {
        assert!(!exported.contains(secret), "a user token or its claims in a span");
    }
    spans_join_the_callers_traces(&spans, &seen.lock().unwrap());
    tap.stop().await;

    // Propagation off: the client's own header reaches the upstream unchanged.
    let mut config = config_for(&format!("http://{mcp}"), "t");
    config.otlp.endpoint = Some(format!("http://{receiver}"));
    config.otlp.protocol = Some(mcp_tap::config::OtlpProtocol::HttpProtobuf);
    config.otlp.traces = true;
    config.otlp.propagate_upstream = false;
    let tap = Tap::start(config).await;
    assert_eq!(post_mcp(&tap.url("/mcp"), &[("traceparent", &traceparent)], call).await.0, 200);
    assert_eq!(seen.lock().unwrap().last().unwrap(), &traceparent);
    tap.stop().await;
}

/// A client that carries its trace context in `params._meta` (SEP-414) finds the tap's span in
/// its trace, and a real Python SDK server receives that span as its `traceparent` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_server_joins_the_trace_a_client_carries_in_meta() {
    let server = python_server_with(&["--stateless", "--json", "--trace-tool"]).await;
    let (receiver, spans) = trace_receiver().await;
    let mut config = config_for(&format!("http://127.0.0.1:{}", server.port), "python");
    config.otlp.endpoint = Some(format!("http://{receiver}"));
    config.otlp.protocol = Some(mcp_tap::config::OtlpProtocol::HttpProtobuf);
    config.otlp.traces = true;
    config.otlp.interval = Some(Duration::from_millis(200));
    let tap = Tap::start(config).await;
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"traceparent","arguments":{{}},"_meta":{{"traceparent":"00-{META_TRACE}-{META_PARENT}-01"}}}}}}"#
    );
    let (status, _, body) = post_mcp(&tap.url("/mcp"), &[], &call).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer (stateless server)");
    let received = answer["result"]["content"][0]["text"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), "the tap's span exported", || async {
        if spans.lock().unwrap().iter().any(|s| s.name == "tools/call traceparent") {
            Ok(())
        } else {
            Err("no span yet".to_string())
        }
    })
    .await;
    let span = spans.lock().unwrap().iter().find(|s| s.name == "tools/call traceparent").cloned().unwrap();
    assert_eq!((hex(&span.trace_id), hex(&span.parent_span_id)), (META_TRACE.to_string(), META_PARENT.to_string()));
    assert_eq!(received, format!("00-{META_TRACE}-{}-01", hex(&span.span_id)), "the server's parent is the tap's span");
    tap.stop().await;
}
