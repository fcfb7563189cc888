//! MCP 2026-07-28 request headers that disagree with the body: `Mcp-Method`, `Mcp-Name`, and
//! the `Mcp-Param-*` headers a tool's schema asks for.

use http::HeaderValue;

use super::super::route::RouteState;
use super::RequestHeaders;
use crate::mcp::jsonrpc::Message;
use crate::mcp::method::Method;
use crate::metrics::MismatchKind;

/// An `Mcp-Method` or `Mcp-Name` header that says something else than the body, with both
/// values cut to `bounded::MISMATCH_VALUE` bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeaderMismatch {
    pub kind: MismatchKind,
    pub header: String,
    pub body: String,
}

fn cut(s: &str) -> String {
    crate::bounded::cut(s, crate::bounded::MISMATCH_VALUE).to_string()
}

/// The headers MCP 2026-07-28 requires, checked against a single-message body. A batch, or a
/// body the tap could not decode, is not checked; names are compared for `tools/call` and
/// `prompts/get`, whose `params.name` the tap reads.
pub(in crate::proxy) fn header_mismatches(
    headers: &RequestHeaders<'_>,
    messages: &[Message],
    route_and_body: Option<(&RouteState, &[u8])>,
) -> Vec<HeaderMismatch> {
    let [message] = messages else { return Vec::new() };
    let Some(method) = message.method else { return Vec::new() };
    let mut out = match route_and_body {
        Some((route, body)) if method == Method::ToolsCall => param_mismatches(headers, route, message, body),
        _ => Vec::new(),
    };
    if let Some(header) = headers.mcp_method.map(|v| String::from_utf8_lossy(v.as_bytes())) {
        // A method the tap does not know cannot be compared (its name is not kept).
        if method != Method::Other && Method::parse(&header) != method {
            out.push(HeaderMismatch { kind: MismatchKind::Method, header: cut(&header), body: method.to_string() });
        }
    }
    if let (true, Some(header)) =
        (method.names_a_target(), headers.mcp_name.map(|v| String::from_utf8_lossy(v.as_bytes())))
    {
        let body = message.target.as_deref().unwrap_or("");
        if header != body {
            out.push(HeaderMismatch { kind: MismatchKind::Name, header: cut(&header), body: cut(body) });
        }
    }
    out
}

/// `Mcp-Param-*` headers of a `tools/call` that disagree with the arguments their tool's schema
/// mirrors (`mcp::param`). Only names are kept: the values are the call's arguments.
fn param_mismatches(
    headers: &RequestHeaders<'_>,
    route: &RouteState,
    call: &Message,
    body: &[u8],
) -> Vec<HeaderMismatch> {
    let (Some(tool), Some(span)) = (call.target.as_deref(), call.arguments.clone()) else { return Vec::new() };
    let declared = {
        let params = route.params.lock().expect("route lock");
        if params.is_empty() {
            return Vec::new();
        }
        match params.get(tool) {
            Some(declared) => declared.clone(),
            None => return Vec::new(),
        }
    };
    let find = |name: &str| headers.all.get(format!("mcp-param-{name}")).map(HeaderValue::as_bytes);
    let Some(arguments) = body.get(span) else { return Vec::new() };
    crate::mcp::param::mismatches(&declared, find, arguments)
        .into_iter()
        .map(|m| HeaderMismatch {
            kind: MismatchKind::Param,
            header: cut(&format!("Mcp-Param-{}", m.header)),
            body: cut(&m.param),
        })
        .collect()
}
