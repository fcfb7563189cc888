use super::*;
use std::collections::HashMap;

fn tracker(idle: u64, cap: usize) -> (Arc<Metrics>, SessionTracker) {
    let m = Arc::new(Metrics::new(vec![1.0, 10.0, 100.0]));
    (m.clone(), SessionTracker::new(m, Duration::from_secs(idle), cap))
}

fn key() -> ClientKey {
    ClientKey { route: "default".into(), credential: 7, source: "127.0.0.1".parse().unwrap() }
}

fn line(m: &Metrics, prefix: &str) -> String {
    m.render().lines().filter(|l| l.starts_with(prefix)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(start_paused = true)]
async fn header_session_lifecycle() {
    let (m, t) = tracker(60, 10);
    t.header_started("everything", "abc", "2025-06-18");
    assert_eq!(line(&m, "mcp_tap_sessions_active"), "mcp_tap_sessions_active{mcp_route=\"everything\"} 1");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(t.touch_header("everything", "abc"), Some("2025-06-18"));
    t.end_header("everything", "abc", SessionEnd::Delete);
    assert_eq!(t.active(), 0);
    let ended = "mcp_tap_sessions_ended_total{mcp_route=\"everything\",reason=\"delete\",session_kind=\"header\"} 1";
    assert!(m.render().contains(ended));
    assert!(m.render().contains("mcp_server_session_duration_seconds_sum{error_type=\"\",mcp_protocol_version=\"2025-06-18\",mcp_route=\"everything\",network_protocol_name=\"http\",network_transport=\"tcp\"} 5"));
}

#[tokio::test(start_paused = true)]
async fn inferred_sessions_end_on_idle_and_reinitialize() {
    let (m, t) = tracker(60, 10);
    t.inferred_started(key(), "vscode", "2025-06-18");
    t.inferred_started(key(), "claude", "2025-06-18");
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(t.touch_inferred(&key()), Some("2025-06-18"));
    t.inferred_started(key(), "vscode", "2025-06-18");
    assert!(m.render().contains("reason=\"reinitialized\",session_kind=\"inferred\"} 1"));
    assert_eq!(t.active(), 2);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(t.sweep(), 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(t.sweep(), 2);
    assert!(m.render().contains("reason=\"idle\",session_kind=\"inferred\"} 2"));
    assert_eq!(line(&m, "mcp_tap_sessions_active"), "mcp_tap_sessions_active{mcp_route=\"default\"} 0");
}

#[tokio::test(start_paused = true)]
async fn a_reinitialized_session_ends_at_its_last_activity_not_at_the_new_initialize() {
    let (m, t) = tracker(3600, 10);
    t.inferred_started(key(), "vscode", "2025-06-18");
    tokio::time::advance(Duration::from_secs(4)).await;
    t.touch_inferred(&key());
    tokio::time::advance(Duration::from_secs(600)).await; // the client was closed for 10 minutes
    t.inferred_started(key(), "vscode", "2025-06-18");
    assert!(m.render().contains("mcp_server_session_duration_seconds_sum{error_type=\"\",mcp_protocol_version=\"2025-06-18\",mcp_route=\"default\",network_protocol_name=\"http\",network_transport=\"tcp\"} 4\n"));
}

#[tokio::test(start_paused = true)]
async fn a_stateless_client_has_one_session_per_name_until_it_goes_quiet() {
    let (m, t) = tracker(60, 10);
    t.stateless_request(&key(), "agent", "2026-07-28");
    t.stateless_request(&key(), "other-agent", "2026-07-28");
    tokio::time::advance(Duration::from_secs(20)).await;
    t.stateless_request(&key(), "agent", "2026-07-28");
    assert_eq!(t.active(), 2);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(t.sweep(), 2);
    let ended = "mcp_tap_sessions_ended_total{mcp_route=\"default\",reason=\"idle\",session_kind=\"stateless\"} 2";
    assert!(m.render().contains(ended), "{}", line(&m, "mcp_tap_sessions_ended_total"));
    // Session time runs to the last request: 20 s and 0 s, not the idle minute after.
    assert!(m.render().contains("mcp_server_session_duration_seconds_sum{error_type=\"\",mcp_protocol_version=\"2026-07-28\",mcp_route=\"default\",network_protocol_name=\"http\",network_transport=\"tcp\"} 20\n"));
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_and_shutdown_ends_all() {
    let (m, t) = tracker(60, 2);
    for id in ["a", "b", "c"] {
        t.header_started("r", id, "2025-03-26");
    }
    assert_eq!(t.active(), 2);
    assert!(m.render().contains("mcp_tap_label_overflow_total{label=\"session\"} 1"));
    t.shutdown();
    assert!(m.render().contains("reason=\"shutdown\",session_kind=\"header\"} 2"));
}

#[tokio::test(start_paused = true)]
async fn in_a_cluster_a_session_lives_as_long_as_any_replica_answers_it() {
    let (m, t) = tracker(60, 10);
    t.share();
    t.inferred_started(key(), "vscode", "2025-06-18");
    let sent = t.take_news();
    assert_eq!(sent.inits.len(), 1, "the initialize is shared");
    // Another replica answered the client 30 s later; this one saw nothing since the initialize.
    tokio::time::advance(Duration::from_secs(30)).await;
    let seen = HashMap::from([(cluster::client_key(&key()), unix_ms())]);
    t.cluster_news(&News { seen, inits: HashMap::new() });
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(t.sweep(), 0, "idle for 59 s only, counted from the cluster's last answer");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(t.sweep(), 1);
    assert!(m.render().contains("mcp_server_session_duration_seconds_sum{error_type=\"\",mcp_protocol_version=\"2025-06-18\",mcp_route=\"default\",network_protocol_name=\"http\",network_transport=\"tcp\"} 30\n"));
}

#[tokio::test(start_paused = true)]
async fn in_a_cluster_an_initialize_on_another_replica_ends_the_session_here() {
    let (m, t) = tracker(3600, 10);
    t.share();
    t.inferred_started(key(), "vscode", "2025-06-18");
    tokio::time::advance(Duration::from_secs(10)).await;
    // Its own initialize coming back is no news.
    let own = HashMap::from([(cluster::init_key(&key(), "vscode"), unix_ms() - 10_000)]);
    t.cluster_news(&News { seen: HashMap::new(), inits: own });
    assert_eq!(t.active(), 1);
    let later = HashMap::from([(cluster::init_key(&key(), "vscode"), unix_ms())]);
    t.cluster_news(&News { seen: HashMap::new(), inits: later });
    assert_eq!(t.active(), 0);
    assert!(m.render().contains("reason=\"reinitialized\",session_kind=\"inferred\"} 1"));
}

#[test]
fn without_a_cluster_nothing_is_noted() {
    let (_, t) = tracker(60, 10);
    t.client_answered(&key());
    let news = t.take_news();
    assert!(news.seen.is_empty() && news.inits.is_empty());
}

#[tokio::test(start_paused = true)]
async fn in_a_cluster_the_replica_that_claims_a_stateless_session_counts_it() {
    let (winner_metrics, winner) = tracker(60, 10);
    let (other_metrics, other) = tracker(60, 10);
    for t in [&winner, &other] {
        t.share();
        t.stateless_request(&key(), "agent", "2026-07-28");
    }
    let active = |m: &Metrics| {
        let l = line(m, "mcp_tap_sessions_active");
        if l.is_empty() {
            "mcp_tap_sessions_active 0".to_string()
        } else {
            l
        }
    };
    assert!(active(&winner_metrics).ends_with(" 0"), "not counted before the claim");
    let (pending, _) = winner.claims();
    assert_eq!(pending.len(), 1);
    winner.claimed(&HashMap::from([(pending[0], true)]));
    other.claimed(&HashMap::from([(pending[0], false)]));
    assert!(active(&winner_metrics).ends_with(" 1"));
    assert!(active(&other_metrics).ends_with(" 0"));
    assert_eq!(winner.claims().1, pending, "the winner keeps its claim");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!((winner.sweep(), other.sweep()), (1, 1));
    assert!(line(&winner_metrics, "mcp_tap_sessions_ended_total").contains("session_kind=\"stateless\"} 1"));
    assert!(!line(&other_metrics, "mcp_tap_sessions_ended_total").contains("session_kind=\"stateless\"} 1"));
    assert_eq!(winner.take_released(), pending, "the claim is freed for the client's next session");
}

#[tokio::test(start_paused = true)]
async fn with_the_store_down_a_replica_counts_the_stateless_sessions_it_started() {
    let (m, t) = tracker(60, 10);
    t.share();
    t.stateless_request(&key(), "agent", "2026-07-28");
    crate::shares::Shares::decide_alone(&t);
    assert!(line(&m, "mcp_tap_sessions_active").ends_with(" 1"));
}
