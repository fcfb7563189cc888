//! The fuzz targets' entry points (`fuzz/`, run by `scripts/fuzz.sh`): one per parser of untrusted
//! bytes, each checking what must hold for any input, not only that it does not panic. The unit
//! tests at the bottom replay the committed seed corpus and every crash the fuzzer ever found, on
//! the stable toolchain, with the ordinary test suite.

use base64::Engine as _;

use crate::identity::jwt;
use crate::mcp::actions_path::{self, ActionsPath};
use crate::mcp::jsonrpc;
use crate::mcp::response::ResponseDecoder;
use crate::mcp::sse::{SseDecoder, SseItem};
use crate::oauth as read;

/// The batch cap the proxy uses by default.
const MAX_BATCH: usize = 64;

/// The JSON-RPC envelope decoder (request bodies, JSON answers, list answers).
pub fn jsonrpc_envelope(data: &[u8]) {
    let _ = jsonrpc::decode(data, MAX_BATCH);
    if let Some(Ok((_, Some(span)))) = jsonrpc::decode_single(data) {
        // The id's place in the body is where the tap rewrites nothing but reads the id again.
        let text = data.get(span).expect("the id's span lies inside the body");
        assert!(jsonrpc::decode_id(text).is_some(), "the id's span holds one JSON value");
    }
    let mut decoder = ResponseDecoder::for_content_type("application/json", 1 << 16, MAX_BATCH).answering_lists();
    decoder.feed(data, &mut Vec::new());
    let _ = decoder.finish(true);
}

/// The SSE decoder: the first byte chooses where the stream is cut into chunks; any cut decodes
/// to the same events as the whole stream.
pub fn sse_stream(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else { return };
    let whole = sse_items(&[stream]);
    let step = usize::from(step % 17) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(step).collect();
    assert_eq!(whole, sse_items(&chunks), "chunks of {step} bytes decode as the whole stream");
    let mut decoder = ResponseDecoder::for_content_type("text/event-stream", 256, MAX_BATCH);
    let mut out = Vec::new();
    for chunk in &chunks {
        decoder.feed(chunk, &mut out);
    }
    let _ = decoder.finish(true);
}

/// What an SSE decoder with a 256-byte cap emits for `chunks`, owned.
fn sse_items(chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let mut decoder = SseDecoder::new(256);
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut |item| {
            items.push(match item {
                SseItem::Message(m) => {
                    assert!(m.len() <= 256 + 1, "an event's data stays within the cap");
                    Some(m.to_vec())
                }
                SseItem::OtherEvent | SseItem::TooLarge => None,
            });
        });
    }
    items
}

/// JWT header and claims: the bytes as a token, and split into a header and claims that are
/// base64url-encoded, so the JSON readers see arbitrary JSON.
pub fn jwt_token(data: &[u8]) {
    let keys = jwt::SigningKeys::default();
    let now = 1_765_000_000;
    let text = String::from_utf8_lossy(data);
    let _ = (jwt::is_jwt(&text), jwt::key_id(&text), jwt::subject(&text));
    let _ = jwt::explain(&text, &keys, now);
    let cut = data.iter().position(|b| *b == 0).unwrap_or(data.len() / 2);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!("{}.{}.c2ln", b64.encode(&data[..cut]), b64.encode(data.get(cut + 1..).unwrap_or_default()));
    if let Some(sub) = jwt::subject(&token) {
        assert!(sub.len() <= crate::bounded::USER_REF, "a user ref is cut");
    }
    let (_verdict, user) = jwt::explain(&token, &keys, now);
    assert!(user.is_none(), "no user is vouched for without a signing key");
}

/// Backstage's Express reading of an MCP Actions path, and of a plugin's actions API path.
pub fn express_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let parsed = actions_path::parse(path);
    if let Some(ActionsPath::Server(key)) = &parsed {
        assert!(!key.is_empty() && !key.contains('/'), "a server key is one path segment");
        assert!(path.contains(key), "a server key is a part of the path as sent");
    }
    let upper = path.to_ascii_uppercase();
    assert_eq!(parsed.is_some(), actions_path::parse(&upper).is_some(), "matching ignores ASCII case");
    // A plugin's actions API: bounded names, never a path of their own.
    if let Some(api) = actions_path::actions_api(path) {
        assert!(!api.plugin.is_empty() && api.plugin.len() <= 64 && path.contains(api.plugin));
        if let Some(action) = &api.action {
            assert!(action.len() <= 256, "an action id is at most 256 bytes: {action:?}");
            assert!(!actions_path::tool_name(action).is_empty());
        }
    }
}

/// The config loader: any text is a config or a list of errors.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = crate::config::Config::parse(text) {
        let _ = config.validate();
        assert!(config.restart_only_changes(&config).is_empty(), "a config equals itself");
    }
}

/// The OAuth body readers. The first line is the `Authorization` header, the rest the body.
pub fn oauth_bodies(data: &[u8]) {
    let (auth, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let _ = read::token_request(body, auth);
    let _ = read::revoke_request(body, auth);
    let _ = read::register_request(body);
    let _ = read::register_response(body);
    let _ = read::token_response(body);
    let _ = read::consent_page(body);
    let _ = read::protected_resource(body);
    let _ = read::error_code(body);
    let text = String::from_utf8_lossy(body);
    let _ = read::redirect_error(&text);
    let _ = read::authorize_client_id(Some(&text));
}

#[cfg(test)]
mod tests;
