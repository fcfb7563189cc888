//! MCP on the wire: JSON-RPC envelopes, the SSE decoder, sessions and bounded label values.

pub mod jsonrpc;
pub mod names;
pub mod session;
pub mod sse;
