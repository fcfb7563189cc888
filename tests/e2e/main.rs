//! The integration suite in one test binary (one link of the crate instead of one per file):
//! the tap in front of real peers (Backstage, the Python MCP SDK, server-everything, Prometheus,
//! Alertmanager, OTLP receivers), the CLI, and the repository's own artefacts.
#![allow(dead_code)]
// A test binary has no public API: `pub` here only shares helpers between its modules.
#![allow(unreachable_pub)]

mod common;

mod actions_api;
mod alert_cases;
mod alert_rules;
mod auth_audit;
mod backstage_e2e;
mod cancellation;
mod checklist;
mod cli;
mod client_names;
mod cluster;
mod cluster_edges;
mod cluster_story;
mod dashboards_lint;
mod demo;
mod deploy;
mod docs;
mod faults;
mod findings;
mod hygiene;
mod limits;
mod oauth;
mod otlp;
mod otlp_traces;
mod paging;
mod paths;
mod prometheus_e2e;
mod protocol_2026;
mod proxy_behaviour;
mod real_peers;
mod reload;
mod rolling_restart;
pub(crate) mod securing;
mod shutdown;
mod siem;
mod status_page;
mod structure;
mod syslog;
mod tasks;
mod upstream_connections;
mod upstream_tls_and_ready;
mod user_tokens;
