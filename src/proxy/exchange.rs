//! One HTTP exchange on an MCP route: the requests it carried, paired by id with the response
//! messages decoded as they pass, and the outcome of each handed to the recorder when its answer
//! (or the end of the body) is seen. Sessions start and end here.

use std::sync::Arc;

use tokio::time::Instant;

use super::record::{Answered, Recorder};
use super::request::{OpenRequests, Pending, SessionRef};
use crate::audit::reason::{is_delegation_denied, BackstageError};
use crate::mcp::jsonrpc::{Kind, Message, ResultInfo};
use crate::mcp::method::Method;
use crate::mcp::names::protocol_version_label;
use crate::mcp::response::{DecodeFailure, Decoded, ResponseDecoder};
use crate::metrics::{DecodeErrorKind, ErrorType, UnparsedReason};
use crate::session::SessionTracker;

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Complete,
    /// The upstream broke the stream.
    Aborted,
    /// The client went away first.
    Cancelled,
}

pub(crate) struct Exchange {
    recorder: Recorder,
    sessions: Arc<SessionTracker>,
    status: u16,
    pending: Vec<Pending>,
    decoder: ResponseDecoder,
    /// A JSON-RPC error with `"id": null` (a transport rejection answering the whole exchange).
    null_id_error: Option<i64>,
    /// Some message could not be decoded, so an unanswered request may have been answered.
    undecodable: bool,
    session: Option<SessionRef>,
    /// `Mcp-Session-Id` on the response (a header session starts with the `initialize` answer).
    new_session_id: Option<Box<str>>,
    client_name: Option<String>,
    /// Response body bytes so far, and the exchange's one `tools/call`, if it is one.
    bytes: u64,
    tool_call: Option<Pending>,
}

impl Exchange {
    /// What an operation's audit event says of the exchange: response bytes so far, header session.
    fn answered(&self) -> Answered<'_> {
        let session = match &self.session {
            Some(SessionRef::Header(id)) => Some(&**id),
            _ => self.new_session_id.as_deref(),
        };
        Answered { bytes: self.bytes, session }
    }

    /// The response headers arrived with `status`; notifications are answered by them.
    pub(crate) fn new(
        recorder: Recorder,
        sessions: Arc<SessionTracker>,
        req: OpenRequests,
        status: u16,
        headers: &http::HeaderMap,
        decoder: ResponseDecoder,
    ) -> Self {
        let mut session = req.session;
        // A route key learned from this very answer was provisionally `_OTHER` on the request side.
        if let Some(SessionRef::Inferred(key)) = &mut session {
            if *key.route != *recorder.route().label {
                key.route = recorder.route().label.clone();
            }
        }
        let new_session_id = headers
            .get(&super::request::MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(Into::into);
        let mut ex = Self {
            recorder,
            sessions,
            status,
            pending: req.pending,
            decoder,
            null_id_error: None,
            undecodable: false,
            session,
            new_session_id,
            client_name: req.client_name,
            bytes: 0,
            tool_call: None,
        };
        if let [p] = ex.pending.as_slice() {
            if p.method == Method::ToolsCall && p.id.is_some() {
                ex.tool_call = Some(Pending::answered_in_bytes(p.method, p.target.clone()));
            }
        }
        for p in ex.pending.iter().filter(|p| p.task.is_some()) {
            ex.recorder.task_request(p, &ex.sessions.tasks);
        }
        if status < 400 {
            ex.recorder.credential_worked();
            // Cluster mode: the replica that holds the session learns it is still in use.
            match &ex.session {
                Some(SessionRef::Header(id)) => ex.sessions.header_answered(&ex.recorder.route().label, id),
                Some(SessionRef::Inferred(key)) => ex.sessions.client_answered(key),
                None => {}
            }
        }
        ex.settle_notifications();
        ex
    }

    /// Notifications (and client answers to server requests) are done at the headers: 202.
    fn settle_notifications(&mut self) {
        if self.pending.iter().any(|p| p.id.is_none()) {
            let (notifications, rest): (Vec<Pending>, Vec<Pending>) =
                std::mem::take(&mut self.pending).into_iter().partition(|p| p.id.is_none());
            self.pending = rest;
            if self.status < 400 {
                let now = Instant::now();
                for mut p in notifications {
                    self.recorder.operation(&mut p, ErrorType::None, now, self.answered());
                }
            } else {
                // A rejected notification waits for the body, which may carry the JSON-RPC error.
                self.pending.extend(notifications);
            }
        }
        if self.decoder.reads_nothing() && !self.pending.is_empty() && self.status < 400 && self.status != 202 {
            self.recorder.unparsed(UnparsedReason::ContentType);
            self.undecodable = true;
        }
    }

    /// A frame of the response body went by.
    pub(crate) fn on_data(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        let mut decoded = Vec::new();
        self.decoder.feed(data, &mut decoded);
        for d in decoded {
            self.on_decoded(d);
        }
    }

    fn on_decoded(&mut self, decoded: Decoded) {
        match decoded {
            Ok(list) => {
                for m in list {
                    self.on_message(m);
                }
            }
            Err(f) => {
                self.undecodable = true;
                match f {
                    DecodeFailure::TooLarge => self.recorder.unparsed(UnparsedReason::MessageTooLarge),
                    DecodeFailure::BatchTooLarge => self.recorder.unparsed(UnparsedReason::BatchTooLarge),
                    DecodeFailure::Malformed => self.recorder.decode_error(DecodeErrorKind::ResponseJson),
                }
            }
        }
    }

    fn on_message(&mut self, m: Message) {
        let now = Instant::now();
        if let Some(method) = m.method {
            // The server asks or tells the client something on this stream: not a client operation.
            self.recorder.server_message(method);
            if let (Some(id), Some(call), true) = (&m.id, self.pending.first(), method.asks_the_person()) {
                let key = super::request::request_key(&self.recorder.route().label, self.session.as_ref(), id);
                self.recorder.question_asked(call, key, now, &self.sessions.waits);
            }
            if let (Method::NotificationsTasks, Some(task)) = (method, &m.task) {
                self.recorder.task_seen(task, &self.sessions.tasks);
            }
            self.touch_session();
            return;
        }
        if !m.is_response() {
            // Rejections carry the upstream's own error bodies (Backstage JSON errors): expected.
            if self.status < 400 {
                self.recorder.decode_error(DecodeErrorKind::NotJsonRpc);
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
            self.recorder.unparsed(UnparsedReason::Unmatched);
            return;
        };
        let mut p = self.pending.swap_remove(pos);
        let error = match &m.kind {
            // The server's answer to a request its client cancelled: the client gave up.
            Kind::Error { .. } if self.cancelled(&p) => ErrorType::Cancelled,
            Kind::Error { code } => ErrorType::JsonRpc(*code),
            Kind::Result(r) => {
                let error = self.on_result(&mut p, r);
                // The call waits for its client's input: the operation ends with a later round.
                if r.input_required && self.recorder.input_required(&mut p, r, now, &self.sessions.waits) {
                    return;
                }
                error
            }
            _ => ErrorType::None,
        };
        self.recorder.operation(&mut p, error, now, self.answered());
    }

    /// A result for `p`: what it teaches (sessions, advertised names), and its outcome.
    fn on_result(&mut self, p: &mut Pending, r: &ResultInfo) -> ErrorType {
        match p.method {
            Method::Initialize => self.initialized(r),
            Method::ToolsList => {
                if let Some(tools) = &r.tools {
                    self.recorder.tools_listed(tools, p.cursor);
                    self.recorder.params_listed(tools, &r.mirrored);
                }
            }
            Method::PromptsList => {
                if let Some(prompts) = &r.prompts {
                    self.recorder.prompts_listed(prompts);
                }
            }
            // The server ran (or began) the tool: it has it, listed to this client or not.
            Method::ToolsCall if !r.is_error => {
                if let Some(name) = &p.target {
                    self.recorder.tool_answered(name);
                }
                if let Some(task) = r.task.as_ref().filter(|t| t.created) {
                    self.recorder.task_created(p, task, &self.sessions.tasks);
                }
            }
            Method::TasksGet => {
                if let Some(task) = &r.task {
                    self.recorder.task_seen(task, &self.sessions.tasks);
                }
            }
            _ => {}
        }
        if !(r.is_error && p.method == Method::ToolsCall) {
            return ErrorType::None;
        }
        let advertised = self.recorder.advertised(p.target.as_deref());
        if let Some(text) = r.error_text.as_deref().filter(|text| is_delegation_denied(text, advertised)) {
            p.denied = true;
            self.recorder.permission_denied(p, text);
        }
        ErrorType::ToolError
    }

    fn initialized(&mut self, r: &ResultInfo) {
        let version = r.protocol_version.as_deref().map_or(self.recorder.protocol_version(), protocol_version_label);
        self.recorder.set_protocol_version(version);
        let route = &self.recorder.route().label;
        if let Some(id) = &self.new_session_id {
            self.sessions.header_started(route, id, version);
        } else if let Some(SessionRef::Inferred(key)) = &self.session {
            let name = self.client_name.as_deref().unwrap_or("");
            self.sessions.inferred_started(key.clone(), name, version);
        }
    }

    /// The client cancelled `p` with `notifications/cancelled` (the handshake generation).
    fn cancelled(&self, p: &Pending) -> bool {
        let Some(id) = &p.id else { return false };
        let key = super::request::request_key(&self.recorder.route().label, self.session.as_ref(), id);
        self.sessions.cancels.take(key, Instant::now())
    }

    fn touch_session(&self) {
        if let Some(SessionRef::Header(id)) = &self.session {
            self.sessions.touch_header(&self.recorder.route().label, id);
        }
    }

    /// The upstream never answered: every request of the exchange failed with `error`.
    pub(crate) fn fail(mut self, error: ErrorType) {
        let now = Instant::now();
        for mut p in std::mem::take(&mut self.pending) {
            self.recorder.operation(&mut p, error, now, self.answered());
        }
    }

    /// The response body ended: decode a JSON body, and settle every request still unanswered.
    pub(crate) fn finish(mut self, end: End) {
        let decoder = std::mem::replace(&mut self.decoder, ResponseDecoder::None);
        let refused = matches!(self.status, 401 | 403 | 429);
        let ended = if refused && end == End::Complete {
            decoder.finish_refusal()
        } else {
            decoder.finish(end == End::Complete)
        };
        if refused {
            // Only a 403's reason depends on the body; a 401 flood is not parsed twice.
            let body = match ended.body.as_deref() {
                Some(body) if self.status == 403 => BackstageError::parse(body),
                _ => BackstageError::default(),
            };
            self.recorder.refused(self.status, &body, self.pending.first());
        }
        if let Some(last) = ended.last {
            self.on_decoded(last);
        }
        if ended.truncated {
            self.undecodable = true;
            self.recorder.decode_error(DecodeErrorKind::SseTruncated);
        }
        let error = match (self.null_id_error, end) {
            (Some(code), _) => ErrorType::JsonRpc(code),
            (None, _) if self.status >= 400 => ErrorType::Http(self.status),
            (None, End::Cancelled) => ErrorType::Cancelled,
            (None, End::Aborted) => ErrorType::StreamAborted,
            // The answer was in a message the tap could not read: outcome unknown, counted as success.
            (None, End::Complete) if self.undecodable => ErrorType::None,
            (None, End::Complete) => ErrorType::StreamAborted,
        };
        let now = Instant::now();
        for mut p in std::mem::take(&mut self.pending) {
            let error =
                if error == ErrorType::StreamAborted && self.cancelled(&p) { ErrorType::Cancelled } else { error };
            self.recorder.operation(&mut p, error, now, self.answered());
        }
        // A client may close an SSE stream once it has its answer: the bytes it got still count.
        if let (Some(call), true) = (self.tool_call.take(), self.bytes > 0 && self.status < 400) {
            self.recorder.tool_response_bytes(&call, self.bytes);
        }
    }
}
