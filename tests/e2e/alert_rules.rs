//! The alert rules under a real `promtool` (Debian `prometheus`): the file checks, and every alert
//! fires on its fixture and stays silent on healthy and on zero traffic. The promtool test file
//! is generated from the table in `alert_cases.rs`, so expected annotations come from the rules
//! themselves.

use crate::common;

use super::alert_cases::{cases, s};

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

/// Every client in auto mode against a server on the handshake generation (Backstage): each
/// session starts with a `server/discover` the server refuses (-32000 with HTTP 400 when the
/// client sends the 2026-07-28 version header, -32601 without), then `initialize` and its calls.
fn auto_mode_series() -> Vec<Value> {
    let op = |method: &str, error: &str| {
        s(
            "mcp_server_operation_duration_seconds_count",
            &format!(",mcp_route=\"default\",mcp_method_name=\"{method}\",error_type=\"{error}\""),
        )
    };
    let mut series = healthy_series();
    series.extend([
        json!({"series": op("server/discover", "-32000"), "values": "0+20x120"}),
        json!({"series": op("server/discover", "-32601"), "values": "0+10x120"}),
        json!({"series": op("initialize", ""), "values": "0+30x120"}),
        json!({"series": s("mcp_tap_client_operations_total", ",client=\"claude-code\",mcp_method_name=\"server/discover\",gen_ai_tool_name=\"\",outcome=\"version_refused\""), "values": "0+30x120"}),
    ]);
    series
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
    let quiet = [
        ("healthy traffic", healthy_series()),
        ("every client in auto mode", auto_mode_series()),
        ("zero traffic", zero_traffic_series()),
    ];
    for (name, series) in quiet {
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
