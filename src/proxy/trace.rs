//! One SERVER span per MCP request (OpenTelemetry MCP semantic conventions), parented on the
//! client's `traceparent` header or `params._meta.traceparent`. The first span's context is
//! forwarded upstream so Backstage's own spans join the same trace.

use std::collections::HashMap;
use std::time::SystemTime;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::request::{RequestInfo, SessionRef};
use super::Shared;
use crate::mcp::jsonrpc::Message;
use crate::mcp::method::Method;
use crate::metrics::ErrorType;

/// Starts a span per pending request and injects the first one's context into `headers`.
pub(super) fn start(shared: &Shared, headers: &mut http::HeaderMap, messages: &[Message], info: &mut RequestInfo) {
    let Some(tracer) = shared.tracer.get() else { return };
    if info.open.pending.is_empty() {
        return;
    }
    let propagator = TraceContextPropagator::new();
    let mut parent = propagator.extract(&opentelemetry_http::HeaderExtractor(headers));
    if !parent.span().span_context().is_valid() {
        if let Some(tp) = messages.iter().find_map(|m| m.traceparent.clone()) {
            parent = propagator.extract(&HashMap::from([("traceparent".to_string(), tp)]));
        }
    }
    let started = SystemTime::now() - info.call.started.elapsed();
    for p in &mut info.open.pending {
        let mut name = p.method.as_str().to_string();
        let mut attrs = vec![
            KeyValue::new("mcp.method.name", p.method.as_str()),
            KeyValue::new("mcp.protocol.version", info.call.protocol_version),
            KeyValue::new("network.transport", "tcp"),
            KeyValue::new("network.protocol.name", "http"),
            KeyValue::new("network.protocol.version", info.call.http_version),
            KeyValue::new("client.address", info.call.caller.source.to_string()),
        ];
        if let Some(target) = p.target.as_deref().filter(|_| p.method.names_a_target()) {
            let key = if p.method == Method::ToolsCall { "gen_ai.tool.name" } else { "gen_ai.prompt.name" };
            let target: String = target.chars().take(128).collect();
            name = format!("{} {target}", p.method);
            attrs.push(KeyValue::new(key, target));
            if p.method == Method::ToolsCall {
                attrs.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            }
        }
        if let Some(id) = &p.id {
            attrs.push(KeyValue::new("jsonrpc.request.id", id.as_str().to_string()));
        }
        if let Some(SessionRef::Header(sid)) = &info.open.session {
            attrs.push(KeyValue::new("mcp.session.id", sid.to_string()));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        p.span = Some(span);
    }
    if let Some(span) = info.open.pending.iter().find_map(|p| p.span.as_ref()) {
        let cx = Context::new().with_remote_span_context(span.span_context().clone());
        propagator.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

/// Ends a request's span with its outcome; status ERROR when `error.type` is set.
pub(super) fn end(span: Option<opentelemetry_sdk::trace::Span>, error: ErrorType) {
    let Some(mut span) = span else { return };
    if let Some(error_type) = error.label() {
        span.set_attribute(KeyValue::new("error.type", error_type.clone()));
        span.set_status(Status::error(error_type));
    }
    if let ErrorType::JsonRpc(code) = error {
        span.set_attribute(KeyValue::new("rpc.response.status_code", code.to_string()));
    }
    span.end();
}
