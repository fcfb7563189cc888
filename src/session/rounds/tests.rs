use super::*;
use std::collections::HashMap;

fn waits(timeout: u64, max: usize) -> (Arc<Metrics>, InputWaits) {
    let m = Arc::new(Metrics::new(vec![1.0, 10.0, 100.0]));
    (m.clone(), InputWaits::new(m, Duration::from_secs(timeout), max))
}

pub(super) fn labels() -> CallLabels {
    CallLabels {
        route: "default".into(),
        method: Method::ToolsCall,
        tool: "delete_entity".into(),
        prompt: String::new(),
        client: "claude-code".into(),
        protocol_version: "2026-07-28",
        http_version: "1.1",
    }
}

const CALL: (Method, Option<&str>) = (Method::ToolsCall, Some("delete_entity"));

fn key(state: Option<u64>) -> RoundKey {
    RoundKey::new("default", 7, CALL, state, 42)
}

fn lines(m: &Metrics, prefix: &str) -> Vec<String> {
    m.render().lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

fn one(m: &Metrics, prefix: &str) -> String {
    let found = lines(m, prefix);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].rsplit(' ').next().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn a_retry_with_the_echoed_state_continues_the_call_and_its_wait_is_recorded() {
    let (m, w) = waits(600, 10);
    let started = Instant::now();
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(w.asked(key(Some(1)), Origin { started, rounds: 1 }, Instant::now(), labels()));
    tokio::time::advance(Duration::from_millis(1500)).await;
    let origin = w.resumed(key(Some(1)), Instant::now()).expect("linked");
    assert_eq!(origin, Origin { started, rounds: 2 });
    assert_eq!(one(&m, "mcp_tap_input_wait_duration_seconds_sum"), "1.5");
    assert_eq!(w.len(), 0);
    // The same state again is no call waiting: each round's answer is taken once.
    assert_eq!(w.resumed(key(Some(1)), Instant::now()), None);
}

#[tokio::test(start_paused = true)]
async fn a_second_round_keeps_the_first_request_as_its_start() {
    let (_, w) = waits(600, 10);
    let started = Instant::now();
    assert!(w.asked(key(Some(1)), Origin { started, rounds: 1 }, Instant::now(), labels()));
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = w.resumed(key(Some(1)), Instant::now()).unwrap();
    // The server asks again, with a fresh state.
    assert!(w.asked(key(Some(2)), second, Instant::now(), labels()));
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(w.resumed(key(Some(2)), Instant::now()), Some(Origin { started, rounds: 3 }));
}

#[tokio::test(start_paused = true)]
async fn without_the_state_a_retry_links_only_to_a_single_candidate() {
    let (_, w) = waits(600, 10);
    let origin = Origin { started: Instant::now(), rounds: 1 };
    // The server sent no requestState: the fallback key is the call itself.
    assert!(w.asked(key(None), origin, Instant::now(), labels()));
    assert_eq!(w.resumed(key(None), Instant::now()), Some(Origin { rounds: 2, ..origin }));
    // Two identical calls waiting: which one a retry answers is unknown, so neither is linked.
    assert!(w.asked(key(None), origin, Instant::now(), labels()));
    assert!(w.asked(key(None), origin, Instant::now(), labels()));
    assert_eq!(w.resumed(key(None), Instant::now()), None);
    assert_eq!(w.len(), 2);
    // Another credential, tool or route never matches.
    let other = RoundKey::new("default", 8, CALL, None, 42);
    let elsewhere = RoundKey::new("catalog", 7, CALL, None, 42);
    let tool = RoundKey::new("default", 7, (Method::ToolsCall, Some("add")), None, 42);
    assert!([other, elsewhere, tool].iter().all(|k| k.fallback != key(None).fallback));
    // An unknown state falls back to the one call waiting under the fallback key.
    let (_, w) = waits(600, 10);
    assert!(w.asked(key(Some(5)), origin, Instant::now(), labels()));
    assert!(w.resumed(key(Some(6)), Instant::now()).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_client_never_comes_back_is_cancelled_at_the_timeout() {
    let (m, w) = waits(60, 10);
    let started = Instant::now();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(w.asked(key(Some(1)), Origin { started, rounds: 1 }, Instant::now(), labels()));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(w.sweep(Instant::now()), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(w.sweep(Instant::now()), 1);
    let duration = lines(&m, "mcp_server_operation_duration_seconds_sum");
    assert_eq!(duration.len(), 1);
    assert!(duration[0].contains("error_type=\"cancelled\"") && duration[0].ends_with(" 2"), "{duration:?}");
    assert!(m.render().contains("mcp_tap_client_operations_total{client=\"claude-code\",gen_ai_tool_name=\"delete_entity\",mcp_method_name=\"tools/call\",outcome=\"error\",surface=\"mcp\"} 1"));
    assert_eq!(w.resumed(key(Some(1)), Instant::now()), None, "too late: the call was given up");
}

#[tokio::test(start_paused = true)]
async fn random_states_stay_within_the_bound() {
    let (m, w) = waits(600, 100);
    let origin = Origin { started: Instant::now(), rounds: 1 };
    let mut refused = 0;
    for i in 0..1_000u64 {
        let k = RoundKey::new("default", i, CALL, Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)), i);
        if !w.asked(k, origin, Instant::now(), labels()) {
            refused += 1;
        }
        // Retries with states nobody issued link to nothing.
        assert_eq!(w.resumed(RoundKey::new("default", i, CALL, Some(!i), i ^ 1), Instant::now()), None);
    }
    assert_eq!((w.len(), refused), (100, 900));
    assert_eq!(one(&m, "mcp_tap_label_overflow_total{label=\"input_wait\"}"), "900");
    assert!(lines(&m, "mcp_tap_input_wait_duration_seconds_count").is_empty());
}

/// Two replicas and the store between them, as the cluster exchange moves calls.
fn exchange(replica: &InputWaits, store: &mut HashMap<u64, SharedWait>) {
    let news = replica.take_news();
    store.extend(news.publish);
    for id in &news.claimed {
        store.remove(id);
    }
    let still_there: Vec<bool> = news.expired.iter().map(|id| store.remove(id).is_some()).collect();
    replica.cluster_news(&still_there, store.clone());
}

#[tokio::test(start_paused = true)]
async fn in_a_cluster_the_retry_links_on_another_replica_and_the_call_is_recorded_once() {
    let (ma, a) = waits(60, 10);
    let (mb, b) = waits(60, 10);
    a.share();
    b.share();
    let mut store = HashMap::new();
    let started = Instant::now();
    assert!(a.asked(key(Some(1)), Origin { started, rounds: 1 }, Instant::now(), labels()));
    exchange(&a, &mut store);
    exchange(&b, &mut store);
    // The retry reaches the other replica.
    let origin = b.resumed(key(Some(1)), Instant::now()).expect("linked through the store");
    assert_eq!(origin.rounds, 2);
    assert_eq!(one(&mb, "mcp_tap_input_wait_duration_seconds_count"), "1");
    exchange(&b, &mut store);
    assert!(store.is_empty(), "taken: gone from the store");
    exchange(&a, &mut store);
    assert_eq!(a.len(), 0, "the replica it waited on learned it was taken");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(a.sweep(Instant::now()), 0);
    exchange(&a, &mut store);
    assert!(lines(&ma, "mcp_server_operation_duration_seconds_count").is_empty(), "never given up");
}

#[tokio::test(start_paused = true)]
async fn in_a_cluster_a_call_nobody_took_is_given_up_once_by_its_replica() {
    let (ma, a) = waits(60, 10);
    let (mb, b) = waits(60, 10);
    a.share();
    b.share();
    let mut store = HashMap::new();
    assert!(a.asked(key(Some(1)), Origin { started: Instant::now(), rounds: 1 }, Instant::now(), labels()));
    exchange(&a, &mut store);
    exchange(&b, &mut store);
    assert_eq!(b.len(), 1, "a copy, for a retry that lands there");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!((a.sweep(Instant::now()), b.sweep(Instant::now())), (0, 0));
    exchange(&a, &mut store);
    exchange(&b, &mut store);
    assert!(one(&ma, "mcp_server_operation_duration_seconds_count{").ends_with('1'));
    assert!(lines(&mb, "mcp_server_operation_duration_seconds_count").is_empty());
    assert!(store.is_empty() && a.len() == 0 && b.len() == 0);
}

#[tokio::test(start_paused = true)]
async fn without_the_store_a_replica_decides_alone_and_sends_its_calls_again_later() {
    use crate::shares::Shares;
    let (m, a) = waits(60, 10);
    a.share();
    assert!(a.asked(key(Some(1)), Origin { started: Instant::now(), rounds: 1 }, Instant::now(), labels()));
    let _lost = a.take_news();
    a.decide_alone();
    let mut store = HashMap::new();
    exchange(&a, &mut store);
    assert_eq!((store.len(), a.len()), (1, 1), "sent again once the store is back, and still waiting");
    tokio::time::advance(Duration::from_secs(61)).await;
    a.sweep(Instant::now());
    a.decide_alone();
    assert_eq!(one(&m, "mcp_server_operation_duration_seconds_count{"), "1");
}
