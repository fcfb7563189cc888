//! One HTTP exchange on an MCP route: the requests it carried, the response messages decoded as
//! they pass, pairing by id, and the operations recorded when each answer (or the end) is seen.

use std::sync::Arc;

use tokio::time::Instant;

pub use super::request::{Caller, Pending, RequestInfo, SessionRef};
use super::route::RouteState;
use super::Shared;
use crate::audit::reason::{is_delegation_denied, BackstageError};
use crate::mcp::jsonrpc::{self, Kind, Message, ResultInfo};
use crate::mcp::names::{self, method_label, protocol_version_label, OTHER};
use crate::mcp::sse::{SseDecoder, SseItem};
use crate::metrics::{DecodeErrorKind, ErrorType, Operation, Outcome, UnparsedReason};

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Complete,
    /// The upstream broke the stream.
    Aborted,
    /// The client went away first.
    Cancelled,
}

enum Decoder {
    Sse(SseDecoder),
    Json { buf: Vec<u8>, overflow: bool },
    None,
}

pub struct Exchange {
    pub(super) shared: Arc<Shared>,
    pub(super) route: Arc<RouteState>,
    started: Instant,
    http_version: &'static str,
    protocol_version: &'static str,
    pub(super) status: u16,
    pub(super) pending: Vec<Pending>,
    pub(super) caller: Caller,
    decoder: Decoder,
    max_message: usize,
    /// A JSON-RPC error with `"id": null` (a transport rejection answering the whole exchange).
    null_id_error: Option<i64>,
    /// Some message could not be decoded, so an unanswered request may have been answered.
    undecodable: bool,
    session: Option<SessionRef>,
    /// `Mcp-Session-Id` on the response (a header session starts with the `initialize` answer).
    new_session_id: Option<Box<str>>,
    client_name: Option<String>,
}

impl Exchange {
    pub fn new(
        shared: Arc<Shared>,
        route: Arc<RouteState>,
        req: RequestInfo,
        status: u16,
        headers: &http::HeaderMap,
    ) -> Self {
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let max_message = shared.config.load().decode.max_message_bytes;
        let decoder = match mime.as_str() {
            "text/event-stream" => Decoder::Sse(SseDecoder::new(max_message)),
            "application/json" => Decoder::Json { buf: Vec::new(), overflow: false },
            _ => Decoder::None,
        };
        let mut session = req.session;
        // A route key learned from this very answer was provisionally `_OTHER` on the request side.
        if let Some(SessionRef::Inferred(key)) = &mut session {
            if *key.route != *route.label {
                key.route = route.label.clone();
            }
        }
        let new_session_id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(Into::into);
        let mut ex = Self {
            shared,
            route,
            started: req.started,
            http_version: req.http_version,
            protocol_version: req.protocol_version,
            status,
            pending: req.pending,
            decoder,
            max_message,
            null_id_error: None,
            undecodable: false,
            session,
            new_session_id,
            client_name: req.client_name,
            caller: req.caller,
        };
        if status < 400 {
            if let Some(fp) = ex.caller.credential.fingerprint() {
                ex.shared.auditor.history.succeeded(fp);
            }
        }
        // Notifications (and client answers to server requests) are done at the headers: 202.
        let now = Instant::now();
        let error = if status >= 400 { ErrorType::Http(status) } else { ErrorType::None };
        let notifications: Vec<Pending> = {
            let (n, rest) = std::mem::take(&mut ex.pending).into_iter().partition(|p| p.id.is_none());
            ex.pending = rest;
            n
        };
        if status < 400 {
            for mut p in notifications {
                ex.record(&mut p, error, now);
            }
        } else {
            // A rejected notification waits for the body, which may carry the JSON-RPC error.
            ex.pending.extend(notifications);
        }
        if matches!(ex.decoder, Decoder::None) && !ex.pending.is_empty() && status < 400 && status != 202 {
            ex.shared.metrics.record_unparsed(UnparsedReason::ContentType);
            ex.undecodable = true;
        }
        ex
    }

    pub fn route_label(&self) -> &str {
        &self.route.label
    }

    /// A frame of the response body went by.
    pub fn on_data(&mut self, data: &[u8]) {
        let mut messages: Vec<Result<Vec<Message>, DecodeFailure>> = Vec::new();
        let max_batch = self.shared.config.load().decode.max_batch;
        match &mut self.decoder {
            Decoder::Sse(d) => d.feed(data, &mut |item| match item {
                SseItem::Message(m) if m.iter().all(u8::is_ascii_whitespace) => {}
                SseItem::Message(m) => messages.push(decode(m, max_batch)),
                SseItem::OtherEvent => {}
                SseItem::TooLarge => messages.push(Err(DecodeFailure::TooLarge)),
            }),
            Decoder::Json { buf, overflow } => {
                if !*overflow {
                    if buf.len() + data.len() > self.max_message {
                        *overflow = true;
                        *buf = Vec::new();
                    } else {
                        buf.extend_from_slice(data);
                    }
                }
            }
            Decoder::None => {}
        }
        for m in messages {
            self.on_messages(m);
        }
    }

    fn on_messages(&mut self, decoded: Result<Vec<Message>, DecodeFailure>) {
        let metrics = self.shared.metrics.clone();
        match decoded {
            Ok(list) => {
                for m in list {
                    self.on_message(m);
                }
            }
            Err(f) => {
                self.undecodable = true;
                match f {
                    DecodeFailure::TooLarge => metrics.record_unparsed(UnparsedReason::MessageTooLarge),
                    DecodeFailure::BatchTooLarge => metrics.record_unparsed(UnparsedReason::BatchTooLarge),
                    DecodeFailure::Malformed => metrics.record_decode_error(DecodeErrorKind::ResponseJson),
                }
            }
        }
    }

    fn on_message(&mut self, m: Message) {
        let now = Instant::now();
        if let Some(method) = &m.method {
            // The server asks or tells the client something on this stream: not a client operation.
            self.shared.metrics.record_server_message(&self.route.label, method_label(method));
            self.touch_session();
            return;
        }
        if !m.is_response() {
            // Rejections carry the upstream's own error bodies (Backstage JSON errors): expected.
            if self.status < 400 {
                self.shared.metrics.record_decode_error(DecodeErrorKind::NotJsonRpc);
            }
            return;
        }
        let Some(id) = &m.id else {
            if let Kind::Error { code } = m.kind {
                self.null_id_error = Some(code);
            }
            return;
        };
        let Some(pos) = self.pending.iter().position(|p| p.id.as_ref() == Some(id)) else {
            self.shared.metrics.record_unparsed(UnparsedReason::Unmatched);
            return;
        };
        let mut p = self.pending.swap_remove(pos);
        let error = match &m.kind {
            Kind::Error { code } => ErrorType::JsonRpc(*code),
            Kind::Result(r) => {
                self.on_result(&p, r);
                if r.is_error && p.method == "tools/call" {
                    let advertised =
                        p.target.as_deref().is_some_and(|t| self.route.tools.lock().expect("route lock").contains(t));
                    if r.error_text.as_deref().is_some_and(|text| is_delegation_denied(text, advertised)) {
                        p.denied = true;
                        self.delegation_denied(&p);
                    }
                    ErrorType::ToolError
                } else {
                    ErrorType::None
                }
            }
            _ => ErrorType::None,
        };
        self.record(&mut p, error, now);
    }

    fn on_result(&mut self, p: &Pending, r: &ResultInfo) {
        let metrics = &self.shared.metrics;
        match p.method {
            "initialize" => {
                let version =
                    r.protocol_version.as_deref().map(protocol_version_label).unwrap_or(self.protocol_version);
                self.protocol_version = version;
                let sessions = &self.shared.sessions;
                if let Some(id) = &self.new_session_id {
                    sessions.header_started(&self.route.label, id, version);
                } else if let Some(SessionRef::Inferred(key)) = &self.session {
                    let name = self.client_name.as_deref().unwrap_or("");
                    sessions.inferred_started(key.clone(), name, version);
                }
            }
            "tools/list" => {
                if let Some(tools) = &r.tools {
                    let mut set = self.route.tools.lock().expect("route lock");
                    let overflow = tools.iter().filter(|t| !set.learn(t)).count();
                    drop(set);
                    if overflow > 0 {
                        metrics.record_label_overflow("gen_ai_tool_name");
                    }
                    if p.cursor {
                        metrics.add_tools_advertised(&self.route.label, tools.len());
                    } else {
                        metrics.set_tools_advertised(&self.route.label, tools.len());
                    }
                }
            }
            "prompts/list" => {
                if let Some(prompts) = &r.prompts {
                    let mut set = self.route.prompts.lock().expect("route lock");
                    for name in prompts {
                        set.learn(name);
                    }
                }
            }
            _ => {}
        }
    }

    fn touch_session(&self) {
        if let Some(SessionRef::Header(id)) = &self.session {
            self.shared.sessions.touch_header(&self.route.label, id);
        }
    }

    fn record(&self, p: &mut Pending, error: ErrorType, now: Instant) {
        super::trace::end(p.span.take(), error);
        let metrics = &self.shared.metrics;
        let bounded = |set: &std::sync::Mutex<names::NameSet>, label: &'static str| -> String {
            match &p.target {
                Some(name) if set.lock().expect("route lock").contains(name) => name.clone(),
                Some(_) => {
                    metrics.record_label_overflow(label);
                    OTHER.to_string()
                }
                None => String::new(),
            }
        };
        let tool =
            if p.method == "tools/call" { bounded(&self.route.tools, "gen_ai_tool_name") } else { String::new() };
        let prompt =
            if p.method == "prompts/get" { bounded(&self.route.prompts, "gen_ai_prompt_name") } else { String::new() };
        metrics.record_operation(&Operation {
            route: &self.route.label,
            method: p.method,
            tool: &tool,
            prompt: &prompt,
            error,
            protocol_version: self.protocol_version,
            http_version: self.http_version,
            duration: now - self.started,
        });
        let outcome = match error {
            ErrorType::None => Outcome::Ok,
            ErrorType::ToolError if p.denied => Outcome::Denied,
            ErrorType::ToolError => Outcome::ToolError,
            ErrorType::Http(401 | 403) => Outcome::Denied,
            _ => Outcome::Error,
        };
        metrics.record_client_operation(self.caller.credential.client(), p.method, &tool, outcome);
    }

    /// The upstream never answered: every request of the exchange failed with `error`.
    pub fn fail(mut self, error: ErrorType) {
        let now = Instant::now();
        for mut p in std::mem::take(&mut self.pending) {
            self.record(&mut p, error, now);
        }
    }

    /// The response body ended: decode a JSON body, and settle every request still unanswered.
    pub fn finish(mut self, end: End) {
        if self.status == 401 || self.status == 403 {
            let body = match &self.decoder {
                Decoder::Json { buf, overflow: false } => BackstageError::parse(buf),
                _ => BackstageError::default(),
            };
            self.rejected(&body);
        }
        match std::mem::replace(&mut self.decoder, Decoder::None) {
            Decoder::Json { overflow: true, .. } => self.on_messages(Err(DecodeFailure::TooLarge)),
            Decoder::Json { buf, .. } if !buf.iter().all(u8::is_ascii_whitespace) => {
                let max_batch = self.shared.config.load().decode.max_batch;
                self.on_messages(decode(&buf, max_batch));
            }
            Decoder::Sse(d) if d.has_partial_event() && end == End::Complete => {
                self.undecodable = true;
                self.shared.metrics.record_decode_error(DecodeErrorKind::SseTruncated);
            }
            _ => {}
        }
        let now = Instant::now();
        let error = match (self.null_id_error, end) {
            (Some(code), _) => ErrorType::JsonRpc(code),
            (None, _) if self.status >= 400 => ErrorType::Http(self.status),
            (None, End::Cancelled) => ErrorType::Cancelled,
            (None, End::Aborted) => ErrorType::StreamAborted,
            // The answer was in a message the tap could not read: outcome unknown, counted as success.
            (None, End::Complete) if self.undecodable => ErrorType::None,
            (None, End::Complete) => ErrorType::StreamAborted,
        };
        for mut p in std::mem::take(&mut self.pending) {
            self.record(&mut p, error, now);
        }
    }
}

enum DecodeFailure {
    TooLarge,
    BatchTooLarge,
    Malformed,
}

fn decode(bytes: &[u8], max_batch: usize) -> Result<Vec<Message>, DecodeFailure> {
    jsonrpc::decode(bytes, max_batch).map_err(|e| match e {
        jsonrpc::DecodeError::Malformed => DecodeFailure::Malformed,
        jsonrpc::DecodeError::BatchTooLarge => DecodeFailure::BatchTooLarge,
    })
}
