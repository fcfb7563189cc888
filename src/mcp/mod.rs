//! MCP on the wire: JSON-RPC envelopes, the SSE decoder, and bounded label values.

pub mod jsonrpc;
pub mod names;
pub mod sse;
