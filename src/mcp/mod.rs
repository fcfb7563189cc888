//! MCP on the wire: JSON-RPC envelopes, the SSE decoder, and bounded label values.

pub mod actions_path;
pub mod jsonrpc;
mod lenient;
pub mod method;
pub mod names;
mod repeat;
pub mod response;
pub mod sse;
