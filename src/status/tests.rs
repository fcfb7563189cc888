//! The status view from a real registry: totals match, rates and percentiles come from the window.
use std::time::Duration;

use super::*;
use crate::mcp::method::Method;
use crate::metrics::{ErrorType, Metrics, Operation, Reason, Scope};

fn call(metrics: &Metrics, tool: &str, error: ErrorType, ms: u64) {
    metrics.record_operation(&Operation {
        route: "default",
        method: Method::ToolsCall,
        tool,
        prompt: "",
        error,
        protocol_version: "2025-06-18",
        http_version: "1.1",
        duration: Duration::from_millis(ms),
        upstream: None,
    });
}

#[test]
fn quantiles_interpolate_within_buckets_like_prometheus() {
    let buckets = [(0.1, 0.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
    assert!((quantile(0.5, &buckets).unwrap() - 0.15).abs() < 1e-9);
    assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    // Everything above the last finite bound: that bound, as Prometheus answers.
    assert_eq!(quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 5.0)]), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn the_view_shows_totals_now_and_rates_over_the_window() {
    let metrics = Metrics::new(vec![1.0]);
    let history = History::default();
    call(&metrics, "catalog.get-catalog-entity", ErrorType::None, 3);
    history.record(Snapshot::from_families(&metrics.registry().gather(), Instant::now()));
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..19 {
        call(&metrics, "catalog.get-catalog-entity", ErrorType::None, 40);
    }
    call(&metrics, "catalog.get-catalog-entity", ErrorType::ToolError, 40);
    metrics.record_auth_failure("default", 401, Reason::MissingCredentials, "none", Some(Method::ToolsList));
    metrics.record_burst_started(Scope::Source);

    let view = history.view(Snapshot::from_families(&metrics.registry().gather(), Instant::now()));
    assert_eq!(view.window, 10.0);
    let row = view.operations.iter().find(|r| r.key.target == "catalog.get-catalog-entity").unwrap();
    assert_eq!((row.count, row.errors), (21.0, 1.0));
    assert!((row.per_second - 2.0).abs() < 1e-9, "20 in 10 s: {}", row.per_second);
    assert_eq!(row.error_ratio, Some(0.05));
    let p50 = row.p50.unwrap();
    assert!(p50 > 0.025 && p50 <= 0.05, "the window's calls took 40 ms, not the earlier 3 ms: {p50}");
    let missing = view.auth.iter().find(|((r, c), _, _)| r == "missing_credentials" && c == "none").unwrap();
    assert_eq!((missing.1, missing.2), (1.0, 1.0));
    assert_eq!(view.now.bursts_active.get("source"), Some(&1.0));

    let page = page::render(&view, &page::Upstream { url: "http://up", not_ready: None }, "", "1.0");
    assert!(page.contains("data-key=\"op|default|tools/call|catalog.get-catalog-entity|count\">21<"));
    assert!(page.contains("data-key=\"bursts|active\">1<"));
    assert!(!page.contains("<script") && !page.contains("http://up\"") && !page.contains("src="));
    let summary = terminal::render(&view, "http://127.0.0.1:9464/");
    assert_eq!(summary.lines().count(), terminal::lines());
    assert!(summary.lines().all(|l| l.chars().count() <= terminal::WIDTH), "{summary}");
    assert!(summary.contains("catalog.get-catalog-entity") && summary.contains("missing_credentials 1"));
}

#[test]
fn label_values_are_escaped_on_the_page() {
    assert_eq!(page::escape("<img src=x onerror=alert(1)>&\""), "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;");
}

#[test]
fn the_oauth_journey_has_its_section_and_clients_their_refreshes() {
    use crate::oauth::{Outcome, Step};
    let metrics = Metrics::new(vec![1.0]);
    metrics.preinit_oauth("unknown");
    let empty = History::default().view(Snapshot::from_families(&metrics.registry().gather(), Instant::now()));
    let page = page::render(&empty, &page::Upstream { url: "http://up", not_ready: None }, "", "1.0");
    assert!(page.contains("<h2>OAuth journey</h2>") && !page.contains("<h2>OAuth clients</h2>"), "zero rows stay out");
    for _ in 0..3 {
        metrics.record_oauth_step(Step::TokenRefresh, Outcome::Ok);
    }
    metrics.record_oauth_step(Step::TokenRefresh, Outcome::InvalidGrant);
    metrics.record_oauth_refresh("Acme <Agent>");
    metrics.record_oauth_reauthorization("Forgetful");
    let view = History::default().view(Snapshot::from_families(&metrics.registry().gather(), Instant::now()));
    let page = page::render(&view, &page::Upstream { url: "http://up", not_ready: None }, "", "1.0");
    assert!(page.contains("data-key=\"oauth|token_refresh_token|ok\">3<"), "{page}");
    assert!(page.contains("data-key=\"oauth|token_refresh_token|invalid_grant\">1<"));
    assert!(page.contains("data-key=\"oauth-refreshes|Acme &lt;Agent&gt;\">1<"));
    assert!(page.contains("data-key=\"oauth-reauthorizations|Forgetful\">1<"));
}
