//! What a request says of earlier ones: a retry with input (MCP 2026-07-28) continues a call
//! that waited for it; `notifications/cancelled` ends one; a response answers the server's
//! question on a call's stream (the handshake generation).

use tokio::time::Instant;

use std::hash::BuildHasher;

use super::{Caller, Pending, SessionRef};
use crate::identity::Credential;
use crate::mcp::jsonrpc::{Id, Message};
use crate::mcp::method::Method;
use crate::proxy::Shared;
use crate::session::RoundKey;

/// What names a request in its session, for a `notifications/cancelled` of its client or a
/// client's answer to a server's request: route, session, id.
pub(crate) fn request_key(route: &str, session: Option<&SessionRef>, id: &Id) -> u64 {
    let session = match session {
        Some(SessionRef::Header(id)) => (Some(&**id), None),
        Some(SessionRef::Inferred(key)) => (None, Some((key.credential, key.source))),
        None => (None, None),
    };
    foldhash::quality::FixedState::with_seed(0x6361_6e63_656c).hash_one((route, session, id))
}

/// Who a request acts for, as tasks are owned: the user of a Backstage user token (its
/// subject), else the credential. A keyed hash either way.
pub(crate) fn principal(user: Option<&str>, credential: &Credential) -> u64 {
    match user {
        Some(user) => foldhash::quality::FixedState::with_seed(0x7573_6572).hash_one(user),
        None => credential.key(),
    }
}

/// What the request says of earlier ones: a retry with input continues a call that waited for
/// it; `notifications/cancelled` ends one; a response answers a server's question.
pub(super) fn requests(
    shared: &Shared,
    (route, session, caller): (&str, Option<&SessionRef>, &Caller),
    messages: &[Message],
    pending: &mut [Pending],
    started: Instant,
) {
    if messages.iter().any(|m| m.retry.is_some()) {
        resume_calls(shared, route, caller.credential.key(), messages, pending);
    }

    let cancelled = messages.iter().filter(|m| m.method == Some(Method::NotificationsCancelled));
    for id in cancelled.filter_map(|m| m.cancels.as_ref()) {
        shared.sessions.cancels.note(request_key(route, session, id), started);
    }

    // The client's answers to what the server asked on a call's stream: the person's wait ends.
    for id in messages.iter().filter(|m| m.is_response()).filter_map(|m| m.id.as_ref()) {
        shared.sessions.waits.question_answered(request_key(route, session, id), started);
    }
}

/// Retries with input (MCP 2026-07-28) continue the operation of the call that waited for it.
fn resume_calls(shared: &Shared, route: &str, credential: u64, messages: &[Message], pending: &mut [Pending]) {
    let retries = messages.iter().filter(|m| m.method.is_some());
    for (m, p) in retries.zip(pending.iter_mut()) {
        if let (Some(retry), Some(_)) = (m.retry, &m.id) {
            let key = RoundKey::new(
                route,
                credential,
                (p.method, p.target.as_deref()),
                retry.request_state,
                retry.input_keys,
            );
            p.origin = shared.sessions.waits.resumed(key, Instant::now());
        }
    }
}
