//! What a client can make the tap hold, bounded: the bytes held for decoding (one budget over all
//! requests, reserved before the first byte is read), and the answers a client gets when a limit
//! refuses it. Every refusal is counted in `mcp_tap_requests_refused_total{limit}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use super::body::ClientBody;
use crate::metrics::Limit;

/// Bytes reserved for reading request bodies, over all connections.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    held: AtomicUsize,
}

/// A reservation, given back when dropped (after the body went upstream).
#[derive(Debug)]
pub(crate) struct Reserved {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// Reserves `bytes` if the total stays within `capacity`.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize, capacity: usize) -> Option<Reserved> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= capacity)
            })
            .ok()
            .map(|_| Reserved { budget: self.clone(), bytes })
    }

    /// Bytes reserved now (the tests watch reservations come and go).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The status and explanation a refused client gets.
pub(crate) fn refusal(limit: Limit) -> (StatusCode, &'static str) {
    match limit {
        Limit::RequestBodyBytes => {
            (StatusCode::PAYLOAD_TOO_LARGE, "mcp-tap: the request body is larger than limits.max_request_body_bytes")
        }
        Limit::RequestBodyTimeout => {
            (StatusCode::REQUEST_TIMEOUT, "mcp-tap: the request body did not arrive within limits.request_body_timeout")
        }
        Limit::HeaderReadTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            "mcp-tap: the request headers did not arrive within limits.header_read_timeout",
        ),
        Limit::Connections => {
            (StatusCode::SERVICE_UNAVAILABLE, "mcp-tap: too many connections (limits.max_connections); retry later")
        }
    }
}

/// A JSON-RPC error body (`id` null: the request was not read) with the refusal's status.
pub(crate) fn refused(limit: Limit) -> Response<ClientBody> {
    let (status, message) = refusal(limit);
    let mut response = Response::new(ClientBody::own(error_body(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_body(message: &str) -> Bytes {
    let v = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": message}});
    Bytes::from(v.to_string())
}

/// The whole HTTP/1.1 answer to a connection over the cap, written before it is closed.
pub(crate) fn connection_refused_bytes() -> Vec<u8> {
    let (status, message) = refusal(Limit::Connections);
    let body = error_body(message);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_never_holds_more_than_its_capacity_and_frees_on_drop() {
        let b = Arc::new(Budget::default());
        let first = b.reserve(60, 100).expect("room");
        assert!(b.reserve(50, 100).is_none(), "60 + 50 > 100");
        let second = b.reserve(40, 100).expect("exactly full");
        assert_eq!(b.held(), 100);
        drop(first);
        drop(second);
        assert_eq!(b.held(), 0);
        assert!(b.reserve(usize::MAX, usize::MAX).is_some() && b.held() == 0, "dropped at once");
    }
}
