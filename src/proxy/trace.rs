//! One SERVER span per MCP request (OpenTelemetry MCP semantic conventions). The parent is the
//! trace context inside the message (`params._meta.traceparent`, SEP-414), else the HTTP
//! `traceparent` header; when both are there the header's context is linked. The first span's
//! context is sent upstream (unless `otlp.propagate_upstream` is off) so Backstage's own spans
//! join the same trace. Audit events of the request carry the span's ids (the client's, when the
//! tap makes no span).

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::request::{Caller, RequestInfo, SessionRef};
use super::Shared;
use crate::mcp::jsonrpc::Message;
use crate::mcp::method::Method;
use crate::metrics::ErrorType;

/// The parent of the request's spans and the context to link, from `_meta` and the header.
fn parents(headers: &http::HeaderMap, messages: &[Message]) -> (Context, Option<SpanContext>) {
    let propagator = TraceContextPropagator::new();
    let header = propagator.extract(&opentelemetry_http::HeaderExtractor(headers));
    let meta = messages.iter().find_map(|m| {
        let mut carrier = HashMap::from([("traceparent".to_string(), m.traceparent.clone()?)]);
        if let Some(state) = &m.tracestate {
            carrier.insert("tracestate".to_string(), state.clone());
        }
        Some(propagator.extract(&carrier)).filter(|cx| cx.span().span_context().is_valid())
    });
    match meta {
        Some(meta) => {
            let linked = header.span().span_context().clone();
            (meta, Some(linked).filter(SpanContext::is_valid))
        }
        None => (header, None),
    }
}

fn remember(caller: &mut Caller, cx: &SpanContext) {
    caller.trace_id = Some(cx.trace_id().to_string());
    caller.span_id = Some(cx.span_id().to_string());
}

/// Starts a span per pending request and, when `propagate`, injects the first one's context into
/// `headers` for the upstream.
pub(super) fn start(
    shared: &Shared,
    headers: &mut http::HeaderMap,
    messages: &[Message],
    info: &mut RequestInfo,
    propagate: bool,
) {
    let tracer = shared.tracer.get();
    if tracer.is_none() && messages.iter().all(|m| m.traceparent.is_none()) {
        // The header's ids, read with the caller, are the audit's.
        return;
    }
    let (parent, linked) = parents(headers, messages);
    if parent.span().span_context().is_valid() {
        remember(&mut info.call.caller, parent.span().span_context());
    }
    let Some(tracer) = tracer else { return };
    if info.open.pending.is_empty() {
        return;
    }
    let started = crate::clock::now() - info.call.started.elapsed();
    for i in 0..info.open.pending.len() {
        let (name, attrs) = span_attributes(&info.open.pending[i], info);
        let mut builder =
            tracer.span_builder(name).with_kind(SpanKind::Server).with_start_time(started).with_attributes(attrs);
        if let Some(l) = &linked {
            builder = builder.with_links(vec![Link::with_context(l.clone())]);
        }
        info.open.pending[i].span = Some(builder.start_with_context(tracer, &parent));
    }
    let Some(first) = info.open.pending.iter().find_map(|p| p.span.as_ref()) else { return };
    let first = first.span_context().clone();
    remember(&mut info.call.caller, &first);
    if propagate {
        let cx = Context::new().with_remote_span_context(first);
        TraceContextPropagator::new().inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

/// The span name (`{method} {target}`) and attributes of one pending request.
fn span_attributes(p: &super::request::Pending, info: &RequestInfo) -> (String, Vec<KeyValue>) {
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
        let target = crate::bounded::cut(target, crate::bounded::TOOL_NAME).to_string();
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
    (name, attrs)
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
