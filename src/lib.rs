//! mcp-tap: a transparent reverse proxy in front of MCP servers (Backstage MCP Actions first) that
//! measures every MCP operation and session without changing a byte.
//!
//! - [`config`]: the YAML file, strict parsing and validation.
//! - [`app`]: wiring of listeners and background tasks.
//! - [`proxy`]: accept, decode the request, forward, tap the response.
//! - [`mcp`]: JSON-RPC envelopes, the SSE decoder, sessions, bounded label names.
//! - [`metrics`]: the one `Metrics` struct.
//! - [`admin`]: the status page `/`, `/metrics`, `/healthz`, `/readyz`.
//! - [`status`]: what the status page and the demo summary show, from the metrics.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod checklist;
pub mod cli;
pub mod config;
pub mod demo;
pub mod export;
pub mod http_client;
mod labels;
pub mod mcp;
pub mod metrics;
pub mod probe;
pub mod proxy;
pub mod reload;
pub mod report;
pub mod session;
pub mod status;
