//! Config of the limits that bound what a client can make the tap hold: body size and deadline,
//! header size and deadline, connections, HTTP/2 streams, and the bytes held for decoding.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// MCP request bodies larger than this are refused with 413 (Backstage refuses JSON over
    /// 100 kB itself). Bodies within it are held, decoded when within `decode.max_request_bytes`.
    pub max_request_body_bytes: usize,
    /// An MCP request body must arrive whole within this time, or the client gets 408.
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// A client must send its request headers within this time, or the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Request headers larger than this are refused (HTTP/1.1: 431; HTTP/2: the stream is reset).
    pub max_header_bytes: usize,
    /// Client connections open at once; beyond it a new connection gets 503 and is closed.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams a client may open on one connection.
    pub max_h2_streams: u32,
    /// Bytes held at once, over all requests, for reading MCP bodies before forwarding; beyond it
    /// bodies stream to the upstream undecoded (counted as `decode_budget`).
    pub decode_budget_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 128 << 10,
            request_body_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_connections: 512,
            max_h2_streams: 16,
            decode_budget_bytes: 16 << 20,
        }
    }
}

impl Limits {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.request_body_timeout.is_zero() || self.header_read_timeout.is_zero() {
            p.push("limits.request_body_timeout and limits.header_read_timeout must be greater than zero".into());
        }
        if self.max_request_body_bytes == 0 || self.max_request_body_bytes > 64 << 20 {
            p.push("limits.max_request_body_bytes must be between 1 byte and 64 MiB".into());
        }
        if self.max_header_bytes < 8192 {
            p.push("limits.max_header_bytes must be at least 8192 (HTTP/1.1 parsing needs that much)".into());
        }
        if self.max_connections == 0 || self.max_h2_streams == 0 {
            p.push("limits.max_connections and limits.max_h2_streams must be greater than zero".into());
        }
        if self.decode_budget_bytes < self.max_request_body_bytes {
            p.push(format!(
                "limits.decode_budget_bytes ({}) must hold at least one body of limits.max_request_body_bytes ({})",
                self.decode_budget_bytes, self.max_request_body_bytes
            ));
        }
    }
}
