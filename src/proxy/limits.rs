//! What a client can make the tap hold, bounded: the bytes held for decoding (one budget over all
//! requests, reserved before the first byte is read), and the answers a client gets when a limit
//! refuses it. Every refusal is counted in `mcp_tap_requests_refused_total{limit}`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::ClientBody;
use crate::metrics::Limit;

/// Bytes reserved for reading request bodies, over all connections.
#[derive(Debug, Default)]
pub struct Budget {
    held: AtomicUsize,
}

/// A reservation, given back when dropped (after the body went upstream).
#[derive(Debug)]
pub struct Reserved {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// Reserves `bytes` if the total stays within `capacity`.
    pub fn reserve(self: &Arc<Self>, bytes: usize, capacity: usize) -> Option<Reserved> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= capacity)
            })
            .ok()
            .map(|_| Reserved { budget: self.clone(), bytes })
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The status and explanation a refused client gets.
pub fn refusal(limit: Limit) -> (StatusCode, &'static str) {
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
pub fn refused(limit: Limit) -> Response<ClientBody> {
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
pub fn connection_refused_bytes() -> Vec<u8> {
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

/// A client connection's IO with a deadline for its first request: reads fail with `TimedOut`
/// once `limits.header_read_timeout` passes before the first request reached the tap. This covers
/// the protocol sniffing before HTTP/1.1 or HTTP/2 starts (where a silent client would otherwise
/// wait forever); hyper's own `header_read_timeout` covers later requests on the connection.
pub struct FirstRequestDeadline<T> {
    io: T,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Set by the service when the first request arrives.
    pub served: Arc<AtomicBool>,
    /// Set when the deadline cut the connection.
    pub expired: Arc<AtomicBool>,
}

impl<T> FirstRequestDeadline<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        Self { io, deadline: Box::pin(tokio::time::sleep(timeout)), served: Arc::default(), expired: Arc::default() }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstRequestDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.served.load(Ordering::Acquire) && self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request within the header deadline")));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstRequestDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
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
