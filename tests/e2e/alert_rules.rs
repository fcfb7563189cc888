//! The alert rules under a real `promtool` (Debian `prometheus`): the file checks, and every alert
//! fires on its fixture and stays silent on healthy and on zero traffic. The promtool test file
//! is generated from the table below so expected annotations come from the rules themselves.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

const RULES: &str = "alerts/mcp-tap.rules.yml";

fn promtool() -> &'static str {
    let p = "/usr/bin/promtool";
    assert!(
        std::path::Path::new(p).exists(),
        "promtool is missing: run scripts/test.sh, or `apt-get install prometheus`"
    );
    p
}

/// An alert scenario: series (30 s apart), when it must fire and with which labels, and times
/// at which it must still be silent.
struct Case {
    alert: &'static str,
    interval: &'static str,
    series: Vec<(&'static str, &'static str)>,
    fires_at: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    silent_at: Vec<&'static str>,
}

fn s(name: &str, labels: &str) -> String {
    format!("{name}{{job=\"mcp-tap\",instance=\"tap-0:9464\"{labels}}}")
}

fn cases() -> Vec<Case> {
    let ops = "mcp_server_operation_duration_seconds_count";
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
                (leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"502\"")), "0x4 0+10x20"),
            ],
            fires_at: "8m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["2m"],
        },
        Case {
            alert: "MCPTapRouteNotFound",
            interval: "30s",
            series: vec![(leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"404\"")), "0+10x30")],
            fires_at: "12m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["3m"],
        },
        Case {
            alert: "MCPTapUpstreamTimeouts",
            interval: "30s",
            series: vec![
                (leak(s("mcp_tap_upstream_errors_total", ",mcp_route=\"default\",kind=\"timeout\"")), "0+1x60"),
                (leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"200\"")), "0+9x60"),
                (leak(s(req, ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"504\"")), "0+1x60"),
            ],
            fires_at: "20m",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["8m"],
        },
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
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"502\"")), "0x30 0+20x90"),
            ],
            fires_at: "70m",
            labels: vec![("severity", "page"), ("mcp_route", "default")],
            silent_at: vec!["20m", "33m"],
        },
        Case {
            alert: "MCPTapErrorBudgetBurnSlow",
            interval: "10m",
            // Healthy for 12 hours, then 2% server faults.
            series: vec![
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"")), "0+980x300"),
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"-32603\"")), "0x72 0+20x228"),
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
                (leak(s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"30\"")), "0+30x60"),
                (leak(s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"+Inf\"")), "0+30x60"),
                (leak(s(ops, ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"")), "0+30x60"),
            ],
            fires_at: "25m",
            labels: vec![("severity", "ticket"), ("mcp_route", "default")],
            silent_at: vec!["10m"],
        },
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
                (leak(s("mcp_tap_audit_forward_dropped_total", ",output=\"syslog\",cause=\"queue_full\"")), "0x10 0+50x40"),
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

/// Alert name → (annotations, static labels) from the rules file.
fn rules() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(common::repo().join(RULES)).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for group in doc["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(name) = rule["alert"].as_str() {
                out.insert(name.to_string(), rule.clone());
            }
        }
    }
    out
}

fn render(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    assert!(!out.contains("{{"), "a template the test cannot render: {out}");
    out
}

fn healthy_series() -> Vec<Value> {
    let op = s(
        "mcp_server_operation_duration_seconds_count",
        ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\"",
    );
    vec![
        json!({"series": s("up", ""), "values": "1x120"}),
        json!({"series": op, "values": "0+30x120"}),
        json!({"series": s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"0.1\""), "values": "0+30x120"}),
        json!({"series": s("mcp_server_operation_duration_seconds_bucket", ",mcp_route=\"default\",le=\"+Inf\""), "values": "0+30x120"}),
        json!({"series": s("mcp_tap_http_requests_total", ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"200\""), "values": "0+30x120"}),
        json!({"series": s("mcp_tap_auth_failures_total", ",mcp_route=\"default\",reason=\"unknown_token\",client=\"unknown\",http_response_status_code=\"401\",mcp_method_name=\"tools/call\""), "values": "0x60 1x60"}),
        json!({"series": s("mcp_tap_auth_burst_active", ",scope=\"source\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_tools_advertised", ",mcp_route=\"default\""), "values": "7x120"}),
        json!({"series": s("mcp_tap_upstream_errors_total", ",mcp_route=\"default\",kind=\"timeout\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_config_last_reload_successful", ""), "values": "1x120"}),
        json!({"series": s("mcp_tap_otlp_export_failures_total", ",signal=\"metrics\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_credential_first_seen_timestamp_seconds", ",client=\"ci-agent\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_credential_rotation_period_seconds", ""), "values": "7776000x120"}),
        // OAuth clients that refresh on a 401: an expired request, then a refresh, all day long.
        json!({"series": s("mcp_tap_expired_token_requests_total", ",client=\"vscode\""), "values": "0+5x120"}),
        json!({"series": s("mcp_tap_user_token_refreshes_total", ",client=\"vscode\""), "values": "0+5x120"}),
        json!({"series": s("mcp_tap_auth_failures_total", ",mcp_route=\"default\",reason=\"token_expired\",client=\"vscode\",http_response_status_code=\"401\",mcp_method_name=\"tools/list\""), "values": "0+5x120"}),
    ]
}

fn zero_traffic_series() -> Vec<Value> {
    vec![
        json!({"series": s("up", ""), "values": "1x120"}),
        json!({"series": s("mcp_server_operation_duration_seconds_count", ",mcp_route=\"default\",mcp_method_name=\"tools/call\",error_type=\"\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_http_requests_total", ",mcp_route=\"default\",http_request_method=\"POST\",http_response_status_code=\"404\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_auth_failures_total", ",mcp_route=\"default\",reason=\"revoked_token\",client=\"ci-agent\",http_response_status_code=\"401\",mcp_method_name=\"tools/call\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_auth_burst_active", ",scope=\"stuffing\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_tools_advertised", ",mcp_route=\"default\""), "values": "0x120"}),
        json!({"series": s("mcp_tap_config_last_reload_successful", ""), "values": "1x120"}),
    ]
}

#[test]
fn rules_pass_promtool_check() {
    let out = Command::new(promtool()).args(["check", "rules", RULES]).current_dir(common::repo()).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_alert_fires_on_its_fixture_and_stays_silent_otherwise() {
    let rules = rules();
    let cases = cases();
    let covered: Vec<&str> = cases.iter().map(|c| c.alert).collect();
    for name in rules.keys() {
        assert!(covered.contains(&name.as_str()), "alert {name} has no fixture");
    }
    let mut tests = Vec::new();
    for case in &cases {
        let rule = &rules[case.alert];
        let mut labels: BTreeMap<String, String> =
            [("job", "mcp-tap")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in &case.labels {
            labels.insert(k.to_string(), v.to_string());
        }
        let annotations: BTreeMap<String, String> = rule["annotations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), render(v.as_str().unwrap(), &labels)))
            .collect();
        let mut checks: Vec<Value> =
            case.silent_at.iter().map(|t| json!({"eval_time": t, "alertname": case.alert, "exp_alerts": []})).collect();
        checks.push(json!({
            "eval_time": case.fires_at,
            "alertname": case.alert,
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
        }));
        tests.push(json!({
            "name": format!("{} fires", case.alert),
            "interval": case.interval,
            "input_series": case.series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
            "alert_rule_test": checks,
        }));
    }
    for (name, series) in [("healthy traffic", healthy_series()), ("zero traffic", zero_traffic_series())] {
        let checks: Vec<Value> = rules
            .keys()
            .flat_map(|alert| ["10m", "59m"].map(|t| json!({"eval_time": t, "alertname": alert, "exp_alerts": []})))
            .collect();
        tests.push(json!({"name": name, "interval": "30s", "input_series": series, "alert_rule_test": checks}));
    }
    let file = json!({
        "rule_files": [common::repo().join(RULES)],
        "evaluation_interval": "30s",
        "tests": tests,
    });
    let path = std::env::temp_dir().join(format!("mcp-tap-alert-tests-{}.yml", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let out = Command::new(promtool()).args(["test", "rules"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
