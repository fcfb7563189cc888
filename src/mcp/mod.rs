//! MCP on the wire: JSON-RPC envelopes, the SSE decoder, and bounded label values.

pub(crate) mod actions_path;
pub(crate) mod jsonrpc;
mod lenient;
pub(crate) mod method;
pub(crate) mod names;
pub(crate) mod param;
mod repeat;
pub(crate) mod response;
pub(crate) mod sse;
mod task;
