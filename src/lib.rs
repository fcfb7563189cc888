//! mcp-tap: a transparent reverse proxy in front of MCP servers (Backstage MCP Actions first) that
//! measures every MCP operation and session without changing a byte, and audits who is refused.
//!
//! The modules, bottom layer first (a module imports only from its own layer or below; the
//! structure test checks it, and which same-layer imports exist):
//!
//! 1. `labels` (closed sets of label values), `config` (the YAML file, strict parsing,
//!    validation), `mcp` (JSON-RPC envelopes, the SSE decoder, the method enum, bounded names).
//! 2. `metrics`: the one `Metrics` struct and the metric catalogue every output comes from.
//! 3. `session` (header, inferred and stateless sessions), `audit` (reasons, fingerprints,
//!    client names, bursts, findings, the audit log), `status` (the status page's view of the
//!    metrics), `checklist` (token ages, rotation, least privilege, and its state file).
//! 4. `http_client` (the one HTTP(S) client to the upstream), `tls` (the listeners' TLS,
//!    certificates re-read when they change) and `cluster` (bursts shared through a Redis/Valkey
//!    store).
//! 5. `proxy`: accept, read the request, forward, tap the response, record the exchange.
//! 6. `export` (OTLP push), `admin` (status page, `/metrics`, `/privileges`, health),
//!    `reload` (config hot reload), `probe` (the canary), `report` (`report privileges`).
//! 7. `app` (wiring: listeners, background tasks, shutdown) and `demo` (`mcp-tap demo`).
//! 8. `cli`: the command line, read by `main.rs`.
//!
//! Public are only what the binary and the integration tests use: `app`, `cli`, `config`,
//! `demo`, `probe`, `reload`, `report`, the metric `catalogue`, and the fingerprint and finding
//! names the tests check outputs against.
#![forbid(unsafe_code)]

mod admin;
pub mod app;
mod audit;
mod checklist;
pub mod cli;
mod cluster;
pub mod config;
pub mod demo;
mod detect;
mod export;
mod http_client;
mod identity;
mod labels;
mod mcp;
mod metrics;
pub mod probe;
mod proxy;
pub mod reload;
pub mod report;
mod session;
mod status;
mod tls;

/// The metric catalogue (every metric's name, kind, help, labels), for tools and tests that check
/// an output against it.
pub mod catalogue {
    pub use crate::metrics::catalogue::*;
    pub use crate::metrics::OPERATION_BUCKETS;
}
pub use audit::event::FINDINGS;
pub use identity::{Fingerprinter, KeySource};
