//! JSON-RPC 2.0 envelopes as MCP uses them, single or batch. Only what the metrics need is read
//! (method, id, tool or prompt name, error code, `isError`, advertised names); payloads are skipped.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::lenient::{hashed_or_skip, integer_or_skip, key_set_or_skip, loose_id, string_or_skip};
use super::method::Method;
use super::param::{Mirrored, RawSchema};
pub(crate) use super::task::{RetryOf, TaskSeen, TaskStatus};

/// A request id in canonical form, so `1` and `"1"` stay distinct as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Id {
    Num(Box<str>),
    Str(Box<str>),
}

impl Id {
    /// The id as the client wrote it (without quotes for strings).
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Id::Num(n) | Id::Str(n) => n,
        }
    }
}

/// One decoded message.
#[derive(Debug, Default, PartialEq, Clone)]
pub(crate) struct Message {
    pub id: Option<Id>,
    /// Present on requests and notifications; names MCP does not define are `Method::Other`.
    pub method: Option<Method>,
    /// `params.name` of `tools/call` / `prompts/get`.
    pub target: Option<String>,
    /// `params.clientInfo.name` of `initialize`, or `params._meta["io.modelcontextprotocol/clientInfo"]
    /// .name`, which MCP 2026-07-28 clients send on every request.
    pub client_name: Option<String>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (2026-07-28 and later).
    pub protocol_version: Option<String>,
    /// `params.cursor` was present (a follow-up page of a list).
    pub has_cursor: bool,
    /// `params._meta.traceparent`: trace context carried inside the message.
    pub traceparent: Option<String>,
    /// `params._meta.tracestate`, when it is at most 512 bytes (the W3C limit).
    pub tracestate: Option<String>,
    /// A retry of a multi round-trip request (MCP 2026-07-28): what links it to its first round.
    pub retry: Option<RetryOf>,
    /// `params.requestId` of `notifications/cancelled`: the request the client gave up.
    pub cancels: Option<Id>,
    /// Where `params.arguments` sits in the body (a single message only), read again only to
    /// check `Mcp-Param-*` headers.
    pub arguments: Option<Range<usize>>,
    /// `params.taskId` (its hash) of a `tasks/*` request, and `params.status` of a
    /// `notifications/tasks` (the Tasks extension).
    pub task: Option<TaskSeen>,
    pub kind: Kind,
}

#[derive(Debug, Default, PartialEq, Clone)]
pub(crate) enum Kind {
    /// A request or notification (see `method`).
    #[default]
    Call,
    Result(ResultInfo),
    Error {
        code: i64,
    },
    /// Valid JSON but not a JSON-RPC message.
    Invalid,
}

#[derive(Debug, Default, PartialEq, Clone)]
pub(crate) struct ResultInfo {
    pub is_error: bool,
    /// First text content of the result, truncated: tool failures say `<ErrorName>: <message>`.
    pub error_text: Option<String>,
    pub protocol_version: Option<String>,
    /// `resultType: "input_required"` (MCP 2026-07-28): the server needs more input from the
    /// client, which retries the request; a normal round, not an error.
    pub input_required: bool,
    /// With `input_required`: the hash of `requestState` (the text is never kept) and of the key
    /// set of `inputRequests`, which the retry's `inputResponses` answers.
    pub request_state: Option<u64>,
    pub input_keys: u64,
    /// A task handle (`resultType: "task"`) or a task's state (a `tasks/get` answer).
    pub task: Option<TaskSeen>,
    /// Tools of a `tools/list` answer whose schema mirrors arguments into `Mcp-Param-*` headers.
    pub mirrored: Vec<(String, Vec<Mirrored>)>,
    /// Names from a `tools/list` answer.
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
}

impl Message {
    pub(crate) fn is_response(&self) -> bool {
        matches!(self.kind, Kind::Result(_) | Kind::Error { .. })
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum DecodeError {
    /// Not JSON at all (or truncated).
    Malformed,
    /// JSON, but a batch larger than the cap.
    BatchTooLarge,
}

/// Decodes a body that holds one message or a batch of them.
pub(crate) fn decode(body: &[u8], max_batch: usize) -> Result<Vec<Message>, DecodeError> {
    match decode_single(body) {
        Some(one) => one.map(|(message, _)| vec![message]),
        None => decode_batch(body, max_batch),
    }
}

/// A message, and where the value of its id sits in the body it came from.
pub(crate) type Located = (Message, Option<Range<usize>>);

/// A body that is not a batch (`None` for a batch).
pub(crate) fn decode_single(body: &[u8]) -> Option<Result<Located, DecodeError>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        return None;
    }
    Some(match serde_json::from_slice::<Raw<'_>>(body) {
        Ok(raw) => {
            let span = raw.id.and_then(|id| span_in(body, id.get().as_bytes()));
            let arguments =
                raw.params.as_ref().and_then(|p| p.arguments).and_then(|a| span_in(body, a.get().as_bytes()));
            let mut message = raw.into_message();
            message.arguments = arguments;
            Ok((message, span))
        }
        // Valid JSON of the wrong shape is a counted oddity, not a parse failure.
        Err(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() && first != Some(b'{') => {
            Ok((Message { kind: Kind::Invalid, ..Message::default() }, None))
        }
        Err(_) => Err(DecodeError::Malformed),
    })
}

fn decode_batch(body: &[u8], max_batch: usize) -> Result<Vec<Message>, DecodeError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(|_| DecodeError::Malformed)?;
    if items.len() > max_batch {
        return Err(DecodeError::BatchTooLarge);
    }
    // One bad element does not hide the others.
    Ok(items
        .into_iter()
        .map(|item| match serde_json::from_str::<Raw<'_>>(item.get()) {
            Ok(raw) => raw.into_message(),
            Err(_) => Message { kind: Kind::Invalid, ..Message::default() },
        })
        .collect())
}

/// An id from the text of exactly one JSON value (`None` if it is not one); a value that is not
/// an id the tap tracks is `Some(None)`, as in a whole message.
pub(crate) fn decode_id(text: &[u8]) -> Option<Option<Id>> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let id = loose_id(&mut de).ok()?;
    de.end().ok()?;
    Some(id)
}

/// Where `part`, a slice serde borrowed from `whole`, sits in it.
fn span_in(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let span = start..start + part.len();
    (whole.get(span.clone()) == Some(part)).then_some(span)
}

// The wire shapes. Borrowed `Cow`s avoid copies for strings without escapes; unknown fields and
// whole payloads (arguments, contents, schemas) are skipped by serde without allocating.

#[derive(Deserialize)]
struct Raw<'a> {
    /// Kept raw so that its place in the body is known (see `repeat`).
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<RawParams<'a>>,
    #[serde(borrow, default)]
    result: Option<RawResult<'a>>,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    jsonrpc: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawParams<'a> {
    #[serde(borrow, deserialize_with = "string_or_skip")]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "clientInfo")]
    client_info: Option<RawClientInfo<'a>>,
    cursor: Option<IgnoredAny>,
    #[serde(rename = "_meta", borrow)]
    meta: Option<RawMeta<'a>>,
    #[serde(rename = "requestState", deserialize_with = "hashed_or_skip")]
    request_state: Option<u64>,
    #[serde(rename = "inputResponses", deserialize_with = "key_set_or_skip")]
    input_responses: Option<u64>,
    #[serde(rename = "requestId", deserialize_with = "loose_id")]
    request_id: Option<Id>,
    #[serde(rename = "taskId", deserialize_with = "hashed_or_skip")]
    task_id: Option<u64>,
    #[serde(borrow, deserialize_with = "string_or_skip")]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta<'a> {
    #[serde(borrow, deserialize_with = "string_or_skip")]
    traceparent: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "string_or_skip")]
    tracestate: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, deserialize_with = "string_or_skip")]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow)]
    client_info: Option<RawClientInfo<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawClientInfo<'a> {
    #[serde(borrow, deserialize_with = "string_or_skip")]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawResult<'a> {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
    /// Kept raw: only a failed result's text is read, so a large success is never unescaped.
    #[serde(borrow)]
    content: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "protocolVersion", borrow, deserialize_with = "string_or_skip")]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "resultType", borrow, deserialize_with = "string_or_skip")]
    result_type: Option<Cow<'a, str>>,
    #[serde(rename = "requestState", deserialize_with = "hashed_or_skip")]
    request_state: Option<u64>,
    #[serde(rename = "inputRequests", deserialize_with = "key_set_or_skip")]
    input_requests: Option<u64>,
    #[serde(rename = "taskId", deserialize_with = "hashed_or_skip")]
    task_id: Option<u64>,
    #[serde(borrow, deserialize_with = "string_or_skip")]
    status: Option<Cow<'a, str>>,
    #[serde(rename = "ttlMs", deserialize_with = "integer_or_skip")]
    ttl_ms: Option<i64>,
    #[serde(rename = "pollIntervalMs", deserialize_with = "integer_or_skip")]
    poll_interval_ms: Option<i64>,
    #[serde(borrow)]
    tools: Option<Vec<RawNamed<'a>>>,
    #[serde(borrow)]
    prompts: Option<Vec<RawNamed<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContent<'a> {
    #[serde(borrow, deserialize_with = "string_or_skip")]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNamed<'a> {
    #[serde(borrow, deserialize_with = "string_or_skip")]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "inputSchema")]
    input_schema: Option<RawSchema>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default, deserialize_with = "integer_or_skip")]
    code: Option<i64>,
}

const MAX_TEXT: usize = 256;
/// W3C Trace Context: a `tracestate` longer than this may be dropped.
const MAX_TRACESTATE: usize = 512;

fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl RawResult<'_> {
    fn into_info(self) -> ResultInfo {
        let r = self;
        let is_error = r.is_error.unwrap_or(false);
        let error_text = if is_error {
            r.content
                .and_then(|c| serde_json::from_str::<Vec<RawContent<'_>>>(c.get()).ok())
                .and_then(|c| c.into_iter().find_map(|c| c.text))
                .map(|t| truncated(&t, MAX_TEXT))
        } else {
            None
        };
        let mirrored = r.tools.iter().flatten().filter_map(|t| {
            let marked = t.input_schema.as_ref().map(|s| s.properties.clone()).filter(|p| !p.is_empty())?;
            Some((truncated(t.name.as_deref()?, MAX_TEXT), marked))
        });
        let mirrored = mirrored.collect();
        let names = |v: Option<Vec<RawNamed<'_>>>| {
            v.map(|v| v.into_iter().filter_map(|n| n.name.map(|n| truncated(&n, MAX_TEXT))).collect())
        };
        ResultInfo {
            is_error,
            error_text,
            protocol_version: r.protocol_version.map(|v| truncated(&v, 32)),
            input_required: r.result_type.as_deref() == Some("input_required"),
            request_state: r.request_state,
            input_keys: r.input_requests.unwrap_or(0),
            task: r.task_id.map(|id| TaskSeen {
                id,
                status: r.status.as_deref().and_then(TaskStatus::parse),
                created: r.result_type.as_deref() == Some("task"),
                ttl_ms: r.ttl_ms.and_then(|n| u64::try_from(n).ok()),
                poll_ms: r.poll_interval_ms.and_then(|n| u64::try_from(n).ok()),
            }),
            mirrored,
            tools: names(r.tools),
            prompts: names(r.prompts),
        }
    }
}

impl Raw<'_> {
    fn into_message(self) -> Message {
        let mut params = self.params.unwrap_or_default();
        let mut meta = params.meta.take();
        let kind = if let Some(err) = self.error {
            // Backstage's own error bodies have `error` without a code: not JSON-RPC.
            match err.code {
                Some(code) => Kind::Error { code },
                None => Kind::Invalid,
            }
        } else if let Some(r) = self.result {
            Kind::Result(r.into_info())
        } else if self.method.is_some() {
            Kind::Call
        } else {
            Kind::Invalid
        };
        let _ = self.jsonrpc;
        Message {
            id: self.id.and_then(|id| decode_id(id.get().as_bytes()).flatten()),
            method: self.method.as_deref().map(Method::parse),
            target: params.name.map(|n| truncated(&n, MAX_TEXT)),
            client_name: params
                .client_info
                .and_then(|c| c.name)
                .or_else(|| meta.as_mut().and_then(|m| m.client_info.take()).and_then(|c| c.name))
                .map(|n| truncated(&n, 64)),
            protocol_version: meta.as_mut().and_then(|m| m.protocol_version.take()).map(|v| truncated(&v, 32)),
            has_cursor: params.cursor.is_some(),
            tracestate: meta
                .as_mut()
                .and_then(|m| m.tracestate.take())
                .filter(|t| t.len() <= MAX_TRACESTATE)
                .map(Cow::into_owned),
            traceparent: meta.and_then(|m| m.traceparent).filter(|t| t.len() <= 128).map(Cow::into_owned),
            retry: (params.request_state.is_some() || params.input_responses.is_some()).then(|| RetryOf {
                request_state: params.request_state,
                input_keys: params.input_responses.unwrap_or(0),
            }),
            arguments: None,
            cancels: params.request_id,
            task: params.task_id.map(|id| TaskSeen {
                id,
                status: params.status.as_deref().and_then(TaskStatus::parse),
                ..TaskSeen::default()
            }),
            kind,
        }
    }
}

#[cfg(test)]
mod tests;
