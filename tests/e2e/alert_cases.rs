//! The alert scenarios `alert_rules.rs` runs through promtool: for each rule, the series that
//! make it fire, when, with which labels, and when it must stay silent.

/// An alert scenario: series (30 s apart), when it must fire and with which labels, and times
/// at which it must still be silent.
pub struct Case {
    pub alert: &'static str,
    pub interval: &'static str,
    pub series: Vec<(&'static str, &'static str)>,
    pub fires_at: &'static str,
    pub labels: Vec<(&'static str, &'static str)>,
    pub silent_at: Vec<&'static str>,
}

pub fn s(name: &str, labels: &str) -> String {
    format!("{name}{{job=\"mcp-tap\",instance=\"tap-0:9464\"{labels}}}")
}

pub fn cases() -> Vec<Case> {
    [auth_cases(), finding_cases(), health_cases(), upstream_cases(), slo_cases(), latency_cases(), output_cases()]
        .into_iter()
        .flatten()
        .collect()
}

/// Refusals and bursts: the pages and tickets of the auth audit.
fn auth_cases() -> Vec<Case> {
    let req = "mcp_tap_http_requests_total";
    vec![
        Case {
            alert: "MCPTapAuthFailureBurst",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_auth_burst_active", ",scope=\"source\"")), "0x4 1x10 0x30")],
            fires_at: "4m",
            labels: vec![("severity", "page"), ("scope", "source")],
            // Pending during `for`, and keep_firing_for ends 5 min after the burst (7m + 5m).
            silent_at: vec!["1m", "2m", "14m"],
        },
        Case {
            alert: "MCPTapCredentialStuffing",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_auth_burst_active", ",scope=\"stuffing\"")), "0x4 1x10 0x60")],
            // Recording and alert groups run at the same timestamps in no fixed order: leave a
            // full interval of margin after `for`.
            fires_at: "4m",
            labels: vec![("severity", "page"), ("scope", "stuffing")],
            silent_at: vec!["1m", "25m"],
        },
        Case {
            alert: "MCPTapElevatedAuthFailures",
            interval: "30s",
            series: vec![
                (leak(s("mcp_tap_auth_failures_total", ",mcp_route=\"default\",reason=\"unknown_token\",client=\"unknown\",http_response_status_code=\"401\",mcp_method_name=\"tools/call\"")), "0+3x60"),
                (leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"200\"")), "0+15x60"),
            ],
            fires_at: "25m",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["10m"],
        },
        Case {
            alert: "MCPTapRevokedTokenInUse",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_auth_failures_total", ",mcp_route=\"default\",reason=\"revoked_token\",client=\"ci-agent\",http_response_status_code=\"401\",mcp_method_name=\"tools/list\"")), "0x10 1x40")],
            fires_at: "8m",
            labels: vec![("severity", "ticket"), ("client", "ci-agent"), ("reason", "revoked_token")],
            silent_at: vec!["4m"],
        },
        Case {
            alert: "MCPTapUnapprovedSource",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_unapproved_source_total", ",client=\"ci-agent\"")), "0x10 3 3x40")],
            fires_at: "7m",
            labels: vec![("severity", "ticket"), ("client", "ci-agent")],
            silent_at: vec!["4m", "85m"],
        },
    ]
}

/// Findings a person should look at.
fn finding_cases() -> Vec<Case> {
    vec![
        Case {
            alert: "MCPTapCredentialNotRotated",
            interval: "30s",
            // A token first seen at 0, a one-hour rotation period: too old from 60 min, firing
            // after 15 min more.
            series: vec![
                (leak(s("mcp_tap_credential_first_seen_timestamp_seconds", ",client=\"ci-agent\"")), "0x200"),
                (leak(s("mcp_tap_credential_rotation_period_seconds", "")), "3600x200"),
            ],
            fires_at: "80m",
            labels: vec![("severity", "ticket"), ("client", "ci-agent")],
            silent_at: vec!["50m", "70m"],
        },
        Case {
            alert: "MCPTapClientStoppedRefreshing",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_expired_token_requests_total", ",client=\"vscode\"")), "0x10 0+5x40")],
            // Over 10 in 15 min from about 6 min, then 5 min of `for`.
            fires_at: "14m",
            labels: vec![("severity", "ticket"), ("client", "vscode")],
            silent_at: vec!["4m", "8m"],
        },
        Case {
            alert: "MCPTapHeaderBodyMismatch",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_header_mismatch_total", ",kind=\"name\"")), "0x10 1 2 2x40")],
            fires_at: "7m",
            labels: vec![("severity", "ticket"), ("kind", "name")],
            // Silent before the first mismatch and once 15 min of window and 30 min of
            // keep_firing_for have passed.
            silent_at: vec!["4m", "55m"],
        },
    ]
}

/// The tap itself and its upstream's reachability: down, unscraped, unreachable.
fn health_cases() -> Vec<Case> {
    let req = "mcp_tap_http_requests_total";
    vec![
        Case {
            alert: "MCPTapDown",
            interval: "30s",
            series: vec![(leak(s("up", "")), "1x4 0x20")],
            fires_at: "6m",
            labels: vec![("severity", "page")],
            silent_at: vec!["2m", "3m"],
        },
        Case {
            alert: "MCPTapNotScraped",
            interval: "30s",
            series: vec![("up{job=\"other\"}", "1x40")],
            fires_at: "15m",
            labels: vec![("severity", "page"), ("job", "mcp-tap")],
            silent_at: vec!["5m"],
        },
        Case {
            alert: "MCPTapUpstreamUnreachable",
            interval: "30s",
            series: vec![
                (leak(s("mcp_tap_upstream_errors_total", ",mcp_route=\"default\",kind=\"connect\"")), "0x4 0+10x20"),
                (
                    leak(s(
                        req,
                        ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"502\"",
                    )),
                    "0x4 0+10x20",
                ),
            ],
            fires_at: "8m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["2m"],
        },
    ]
}

/// The upstream as the tap sees it: wrong routes and timeouts.
fn upstream_cases() -> Vec<Case> {
    let req = "mcp_tap_http_requests_total";
    vec![
        Case {
            alert: "MCPTapRouteNotFound",
            interval: "30s",
            series: vec![(
                leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"404\"")),
                "0+10x30",
            )],
            fires_at: "12m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["3m"],
        },
        Case {
            alert: "MCPTapUpstreamTimeouts",
            interval: "30s",
            series: vec![
                (leak(s("mcp_tap_upstream_errors_total", ",mcp_route=\"default\",kind=\"timeout\"")), "0+1x60"),
                (
                    leak(s(
                        req,
                        ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"200\"",
                    )),
                    "0+9x60",
                ),
                (
                    leak(s(
                        req,
                        ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"504\"",
                    )),
                    "0+1x60",
                ),
            ],
            fires_at: "20m",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["8m"],
        },
    ]
}

/// What clients get: advertised tools, and the fast burn of the error budget.
fn slo_cases() -> Vec<Case> {
    let ops = "mcp_server_operation_duration_seconds_count";
    vec![
        Case {
            alert: "MCPTapToolsAdvertisedDropped",
            interval: "5m",
            series: vec![(leak(s("mcp_tap_tools_advertised", ",mcp_route=\"default\"")), "7x36 5x24")],
            fires_at: "4h",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["2h", "3h"],
        },
        Case {
            alert: "MCPTapErrorBudgetBurnFast",
            interval: "1m",
            // Healthy for 30 minutes, then 20% server faults.
            series: vec![
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"")), "0+80x120"),
                (
                    leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"502\"")),
                    "0x30 0+20x90",
                ),
            ],
            fires_at: "70m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["20m", "33m"],
        },
    ]
}

/// The slow burn of the error budget, and latency.
fn latency_cases() -> Vec<Case> {
    let ops = "mcp_server_operation_duration_seconds_count";
    vec![
        Case {
            alert: "MCPTapErrorBudgetBurnSlow",
            interval: "10m",
            // Healthy for 12 hours, then 2% server faults.
            series: vec![
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"")), "0+980x300"),
                (
                    leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"-32603\"")),
                    "0x72 0+20x228",
                ),
            ],
            fires_at: "1d6h",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["6h", "13h"],
        },
        Case {
            alert: "MCPTapHighLatencyP99",
            interval: "30s",
            series: vec![
                (leak(s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"10\"")), "0x60"),
                (
                    leak(s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"30\"")),
                    "0+30x60",
                ),
                (
                    leak(s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"+Inf\"")),
                    "0+30x60",
                ),
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"")), "0+30x60"),
            ],
            fires_at: "25m",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["10m"],
        },
    ]
}

/// The tap's own outputs and state: the store, audit events, OTLP, config reloads.
fn output_cases() -> Vec<Case> {
    vec![
        Case {
            alert: "MCPTapStoreDown",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_store_up", ",cluster=\"prod\"")), "1x10 0x20 1x20")],
            fires_at: "8m",
            labels: vec![("severity", "ticket"), ("cluster", "prod"), ("instance", "tap-0:9464")],
            silent_at: vec!["4m", "6m", "20m"],
        },
        Case {
            alert: "MCPTapAuditEventsLost",
            interval: "30s",
            series: vec![
                (
                    leak(s("mcp_tap_audit_forward_dropped_total", ",output=\"syslog\",cause=\"queue_full\"")),
                    "0x10 0+50x40",
                ),
                (leak(s("mcp_tap_audit_forward_dropped_total", ",output=\"otlp\",cause=\"queue_full\"")), "0x50"),
                (leak(s("mcp_tap_audit_write_errors_total", ",cause=\"queue_full\"")), "0x50"),
            ],
            fires_at: "18m",
            labels: vec![("severity", "ticket"), ("output", "syslog")],
            silent_at: vec!["4m", "9m"],
        },
        Case {
            alert: "MCPTapOTLPExportFailing",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_otlp_export_failures_total", ",signal=\"metrics\"")), "0x10 0+1x60")],
            fires_at: "25m",
            labels: vec![("severity", "ticket"), ("signal", "metrics")],
            silent_at: vec!["4m", "12m"],
        },
        Case {
            alert: "MCPTapConfigReloadFailing",
            interval: "30s",
            series: vec![(leak(s("mcp_tap_config_last_reload_successful", "")), "1x4 0x40")],
            fires_at: "15m",
            labels: vec![("severity", "ticket")],
            silent_at: vec!["5m"],
        },
    ]
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
