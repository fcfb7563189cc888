//! The decoder of one HTTP response body as it streams past: SSE events or one JSON body, chosen
//! by content type, each message capped. Pure: bytes in, decoded messages out, no I/O, so every
//! way a body can be cut into frames is testable without a network.

use super::jsonrpc::{self, Message};
use super::sse::{SseDecoder, SseItem};

/// Why a message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeFailure {
    /// Larger than the per-message cap: passed through unread.
    TooLarge,
    BatchTooLarge,
    Malformed,
}

/// The messages of one SSE event or JSON body, or why they could not be read.
pub(crate) type Decoded = Result<Vec<Message>, DecodeFailure>;

/// How the body ended, as far as the decoder can tell.
#[derive(Debug, Default)]
pub(crate) struct Ended {
    /// A JSON body, decoded now that it is complete.
    pub last: Option<Decoded>,
    /// An SSE stream that stopped in the middle of an event.
    pub truncated: bool,
    /// The whole JSON body, when it fit the cap (error bodies are read from it).
    pub body: Option<Vec<u8>>,
}

pub(crate) enum ResponseDecoder {
    Sse {
        decoder: SseDecoder,
        max_batch: usize,
        lists: bool,
    },
    Json {
        buf: Vec<u8>,
        overflow: bool,
        max_message: usize,
        max_batch: usize,
        lists: bool,
    },
    /// A content type the tap does not read.
    None,
}

impl ResponseDecoder {
    pub(crate) fn for_content_type(content_type: &str, max_message: usize, max_batch: usize) -> Self {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("text/event-stream") {
            ResponseDecoder::Sse { decoder: SseDecoder::new(max_message), max_batch, lists: false }
        } else if mime.eq_ignore_ascii_case("application/json") {
            ResponseDecoder::Json { buf: Vec::new(), overflow: false, max_message, max_batch, lists: false }
        } else {
            ResponseDecoder::None
        }
    }

    /// The answers are to list requests (`tools/list`, `prompts/list`, ...), which repeat the
    /// same bytes for every session: a repeat is recognised instead of parsed (see `repeat`).
    pub(crate) fn answering_lists(mut self) -> Self {
        if let ResponseDecoder::Sse { lists, .. } | ResponseDecoder::Json { lists, .. } = &mut self {
            *lists = true;
        }
        self
    }

    pub(crate) fn reads_nothing(&self) -> bool {
        matches!(self, ResponseDecoder::None)
    }

    /// A frame of the body went by; completed SSE events are appended to `out`.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<Decoded>) {
        match self {
            ResponseDecoder::Sse { decoder, max_batch, lists } => decoder.feed(data, &mut |item| match item {
                SseItem::Message(m) if m.iter().all(u8::is_ascii_whitespace) => {}
                SseItem::Message(m) => out.push(decode(m, *max_batch, *lists)),
                SseItem::OtherEvent => {}
                SseItem::TooLarge => out.push(Err(DecodeFailure::TooLarge)),
            }),
            ResponseDecoder::Json { buf, overflow, max_message, .. } => {
                if !*overflow {
                    if buf.len() + data.len() > *max_message {
                        *overflow = true;
                        *buf = Vec::new();
                    } else {
                        buf.extend_from_slice(data);
                    }
                }
            }
            ResponseDecoder::None => {}
        }
    }

    /// A refusal's body (401, 403, 429) ended whole. It is kept for its reason, and decoded as
    /// MCP only if it names `"jsonrpc"`: Backstage's own error bodies never do, so a flood of
    /// refusals is not parsed as JSON-RPC for nothing.
    pub(crate) fn finish_refusal(self) -> Ended {
        match self {
            ResponseDecoder::Json { buf, overflow: false, .. }
                if memchr::memmem::find(&buf, b"\"jsonrpc\"").is_none() =>
            {
                Ended { last: None, truncated: false, body: Some(buf) }
            }
            other => other.finish(true),
        }
    }

    /// The body ended; `complete` is false when it broke off or the client left.
    pub(crate) fn finish(self, complete: bool) -> Ended {
        match self {
            ResponseDecoder::Json { overflow: true, .. } => {
                Ended { last: Some(Err(DecodeFailure::TooLarge)), ..Ended::default() }
            }
            ResponseDecoder::Json { buf, max_batch, lists, .. } => {
                let last = (!buf.iter().all(u8::is_ascii_whitespace)).then(|| decode(&buf, max_batch, lists));
                Ended { last, truncated: false, body: Some(buf) }
            }
            ResponseDecoder::Sse { decoder, .. } => {
                Ended { truncated: complete && decoder.has_partial_event(), ..Ended::default() }
            }
            ResponseDecoder::None => Ended::default(),
        }
    }
}

fn decode(bytes: &[u8], max_batch: usize, lists: bool) -> Decoded {
    let decoded =
        if lists { super::repeat::decode_list_answer(bytes, max_batch) } else { jsonrpc::decode(bytes, max_batch) };
    decoded.map_err(|e| match e {
        jsonrpc::DecodeError::Malformed => DecodeFailure::Malformed,
        jsonrpc::DecodeError::BatchTooLarge => DecodeFailure::BatchTooLarge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::Kind;
    use proptest::prelude::*;

    const STREAM: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"}]}}\n\n\
                          : keepalive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601}}\n\n";

    fn ids(decoded: &[Decoded]) -> Vec<String> {
        decoded.iter().flatten().flatten().filter_map(|m| m.id.as_ref().map(|i| i.as_str().to_string())).collect()
    }

    #[test]
    fn sse_events_decode_as_they_complete() {
        let mut d = ResponseDecoder::for_content_type("text/event-stream; charset=utf-8", 1024, 8);
        let mut out = Vec::new();
        d.feed(STREAM.as_bytes(), &mut out);
        assert_eq!(ids(&out), ["1", "2"]);
        assert!(matches!(out[1].as_ref().unwrap()[0].kind, Kind::Error { code: -32601 }));
        let ended = d.finish(true);
        assert!(!ended.truncated && ended.last.is_none());
    }

    #[test]
    fn a_refusal_is_decoded_only_when_it_is_json_rpc() {
        let backstage = br#"{"error":{"name":"AuthenticationError","message":"Missing credentials"}}"#;
        let mut d = ResponseDecoder::for_content_type("application/json", 1024, 8);
        d.feed(backstage, &mut Vec::new());
        let ended = d.finish_refusal();
        assert!(ended.last.is_none());
        assert_eq!(ended.body.as_deref(), Some(&backstage[..]));
        let rpc = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"unauthorized"}}"#;
        let mut d = ResponseDecoder::for_content_type("application/json", 1024, 8);
        d.feed(rpc, &mut Vec::new());
        let last = d.finish_refusal().last.expect("decoded").expect("valid");
        assert_eq!(last[0].kind, Kind::Error { code: -32001 });
    }

    #[test]
    fn a_json_body_decodes_at_the_end_and_keeps_its_bytes() {
        let body = br#"{"error":{"name":"AuthenticationError","message":"Missing credentials"}}"#;
        let mut d = ResponseDecoder::for_content_type("Application/JSON", 1024, 8);
        d.feed(&body[..10], &mut Vec::new());
        d.feed(&body[10..], &mut Vec::new());
        let ended = d.finish(true);
        assert_eq!(ended.body.as_deref(), Some(&body[..]));
        assert!(matches!(ended.last.unwrap().unwrap()[0].kind, Kind::Invalid));
    }

    #[test]
    fn oversized_bodies_and_events_are_not_held() {
        let mut d = ResponseDecoder::for_content_type("application/json", 8, 8);
        d.feed(b"{\"jsonrpc\":\"2.0\"}", &mut Vec::new());
        assert!(matches!(d.finish(true).last, Some(Err(DecodeFailure::TooLarge))));
        let mut d = ResponseDecoder::for_content_type("text/event-stream", 8, 8);
        let mut out = Vec::new();
        d.feed(b"data: {\"jsonrpc\":\"2.0\",\"id\":1}\n\n", &mut out);
        assert!(matches!(out[..], [Err(DecodeFailure::TooLarge)]));
    }

    #[test]
    fn a_stream_cut_mid_event_is_truncated_only_when_it_claims_to_be_complete() {
        let mut d = ResponseDecoder::for_content_type("text/event-stream", 1024, 8);
        d.feed(b"data: {\"id\":1", &mut Vec::new());
        assert!(d.finish(true).truncated);
        let mut d = ResponseDecoder::for_content_type("text/event-stream", 1024, 8);
        d.feed(b"data: {\"id\":1", &mut Vec::new());
        assert!(!d.finish(false).truncated);
        assert!(ResponseDecoder::for_content_type("text/html", 1024, 8).reads_nothing());
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_the_same(cuts in proptest::collection::vec(0..STREAM.len(), 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut d = ResponseDecoder::for_content_type("text/event-stream", 1024, 8);
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([STREAM.len()]) {
                d.feed(&STREAM.as_bytes()[at..c], &mut out);
                at = c;
            }
            prop_assert_eq!(ids(&out), vec!["1".to_string(), "2".to_string()]);
        }
    }
}
