//! Dashboard lint: importable classic JSON (schemaVersion ≥ 39, stable uid), a datasource
//! variable and job/instance/mcp_route variables, unique panel ids, a unit and a description on
//! every panel, `$__rate_interval` instead of hard-coded rate windows, and the committed files
//! equal to what `scripts/dashboards.py` generates.

use crate::common;

use std::collections::BTreeSet;

use serde_json::Value;

fn boards() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(common::repo().join("dashboards"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON"))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn there_are_three_dashboards_with_stable_uids() {
    let uids: Vec<String> = boards().iter().map(|(_, b)| b["uid"].as_str().unwrap().to_string()).collect();
    assert_eq!(uids, vec!["mcp-tap-auth", "mcp-tap-overview", "mcp-tap-health"]);
}

#[test]
fn every_dashboard_passes_the_lint() {
    for (name, b) in boards() {
        assert!(b["schemaVersion"].as_u64().unwrap() >= 39, "{name}: schemaVersion");
        assert!(b.get("id").is_none_or(Value::is_null), "{name}: no instance id, so it imports anywhere");
        let vars = b["templating"]["list"].as_array().unwrap();
        let ds =
            vars.iter().find(|v| v["type"] == "datasource").unwrap_or_else(|| panic!("{name}: datasource variable"));
        assert_eq!(ds["query"], "prometheus");
        for var in ["job", "instance", "mcp_route"] {
            assert!(vars.iter().any(|v| v["name"] == var), "{name}: variable {var}");
        }
        let mut ids = BTreeSet::new();
        for p in b["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{name}: duplicate panel id in {title}");
            if p["type"] == "row" {
                continue;
            }
            assert!(!p["description"].as_str().unwrap_or("").is_empty(), "{name}/{title}: description");
            assert!(!p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("").is_empty(), "{name}/{title}: unit");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}: datasource variable");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}/{title}: target datasource");
                let expr = t["expr"].as_str().unwrap();
                assert_no_fixed_windows(&format!("{name}/{title}"), expr);
                assert!(expr.contains("job=~\"$job\""), "{name}/{title}: filters on $job: {expr}");
            }
        }
        for a in b["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = a["expr"].as_str() {
                assert_no_fixed_windows(&format!("{name}/annotation"), expr);
            }
        }
    }
}

/// Range selectors must be `[$__rate_interval]` or `[$__range]`, never a literal like `[5m]`.
fn assert_no_fixed_windows(what: &str, expr: &str) {
    // Brackets inside quoted label values are regex classes, not range selectors.
    let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join("\"\"");
    for part in unquoted.split('[').skip(1) {
        let window = &part[..part.find(']').unwrap()];
        assert!(window == "$__rate_interval" || window == "$__range", "{what}: hard-coded window [{window}] in {expr}");
    }
}

#[test]
fn committed_dashboards_match_the_generator() {
    let out = std::env::temp_dir().join(format!("mcp-tap-dash-{}", std::process::id()));
    let status = std::process::Command::new("python3")
        .arg(common::repo().join("scripts/dashboards.py"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("python3 runs the generator");
    assert!(status.success());
    for (name, committed) in boards() {
        let generated: Value = serde_json::from_str(&std::fs::read_to_string(out.join(&name)).unwrap()).unwrap();
        assert_eq!(generated, committed, "dashboards/{name} differs from scripts/dashboards.py: run it and commit");
    }
}
