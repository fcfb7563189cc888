//! mcp-tap: a transparent reverse proxy in front of MCP servers (Backstage MCP Actions first) that
//! measures every MCP operation and session without changing a byte, and audits who is refused.
//!
//! The modules, bottom layer first (a module imports only from its own layer or below; the
//! structure test checks it, which same-layer imports exist, and that this list, the one in
//! docs/architecture.md and its own agree):
//!
//! 1. `labels`, `config`, `mcp`, `oauth`, `shares`, `clock`, `bounded`: closed sets of label
//!    values; the YAML file, strict parsing, validation; JSON-RPC envelopes, the SSE decoder, the
//!    method enum, bounded names; the OAuth journey's steps and bodies; what cluster mode asks of
//!    the parts that share state; the wall clock; the one rule that cuts client text, with its
//!    named limits.
//! 2. `metrics`: the one `Metrics` struct and the metric catalogue every output comes from.
//! 3. `identity`, `session`, `status`: who is calling (fingerprints, client names, user tokens);
//!    header, inferred and stateless sessions; the status page's view of the metrics.
//! 4. `detect`: what is wrong: bursts, shared credentials, expired-token storms, approved
//!    networks, once-only findings (plain structures, the clock passed in).
//! 5. `audit`, `checklist`: the audit trail (events, the sink, the cluster outbox, the one emit
//!    point of a refusal); token age, rotation, least privilege and its state file.
//! 6. `http_client`, `tls`: the one HTTP(S) client to the upstream; the listeners' TLS.
//! 7. `proxy`: accept, read the request, forward, tap the response, record the exchange.
//! 8. `export`, `admin`, `reload`, `probe`, `report`: OTLP push, syslog and Alertmanager paging;
//!    status page, `/metrics`, `/privileges`, health; hot reload; the canary; `report privileges`.
//! 9. `cluster`: cluster mode through a Redis/Valkey store, the only place that knows whether the
//!    store is up; only `app` uses it.
//! 10. `app`, `demo`, `fuzz`: wiring (listeners, the state every part shares, background tasks,
//!     shutdown); `mcp-tap demo`; the fuzz targets' entry points into the parsers.
//! 11. `cli`: the command line, read by `main.rs`.
//!
//! Public are only what the binary, the fuzz targets and the integration tests use: `app`,
//! `cli`, `config`, `demo`, `fuzz`, `probe`, `reload`, `report`, the metric `catalogue`, and the
//! fingerprint and finding names the tests check outputs against.
#![forbid(unsafe_code)]

mod admin;
pub mod app;
mod audit;
mod bounded;
mod checklist;
pub mod cli;
mod clock;
mod cluster;
pub mod config;
pub mod demo;
mod detect;
mod export;
#[doc(hidden)]
pub mod fuzz;
mod http_client;
mod identity;
mod labels;
mod mcp;
mod metrics;
mod oauth;
pub mod probe;
mod proxy;
pub mod reload;
pub mod report;
mod session;
mod shares;
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
