use super::*;

fn tasks(max: usize) -> (Arc<Metrics>, Tasks) {
    let m = Arc::new(Metrics::new(vec![1.0, 10.0, 100.0, 3600.0]));
    (m.clone(), Tasks::new(m, max, Duration::from_secs(24 * 3600)))
}

fn labels() -> TaskLabels {
    TaskLabels { route: "default".into(), tool: "long_job".into(), client: "agent".into() }
}

fn seen(id: u64, status: TaskStatus) -> TaskSeen {
    TaskSeen { id, status: Some(status), created: false, ttl_ms: Some(60_000), poll_ms: Some(1_000) }
}

fn value(m: &Metrics, prefix: &str) -> String {
    let found: Vec<String> = m.render().lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect();
    assert_eq!(found.len(), 1, "{prefix}: {found:?}");
    found[0].rsplit(' ').next().unwrap().to_string()
}

const OWNER: u64 = 1;

fn who(method: Method) -> Requester {
    Requester { route: "default".into(), method, client: "agent".into(), credential: None, source: "127.0.0.1".into() }
}

#[tokio::test(start_paused = true)]
async fn a_task_is_followed_through_input_required_to_its_end() {
    let (m, t) = tasks(10);
    let key = Tasks::key("default", &seen(7, TaskStatus::Working));
    t.created(key, OWNER, labels(), &TaskSeen { created: true, ..seen(7, TaskStatus::Working) }, Instant::now());
    assert_eq!(value(&m, "mcp_tap_tasks_created_total"), "1");
    for (after, status) in [(1, TaskStatus::Working), (1, TaskStatus::InputRequired), (3, TaskStatus::InputRequired)] {
        tokio::time::advance(Duration::from_secs(after)).await;
        assert_eq!(t.request(key, OWNER, who(Method::TasksGet), Instant::now()), Access::Own);
        t.observed(key, &seen(7, status), Instant::now());
    }
    // The client answers with tasks/update; the task works again, then completes.
    tokio::time::advance(Duration::from_secs(1)).await;
    t.request(key, OWNER, who(Method::TasksUpdate), Instant::now());
    t.request(key, OWNER, who(Method::TasksGet), Instant::now());
    t.request(key, OWNER, who(Method::TasksGet), Instant::now());
    t.observed(key, &seen(7, TaskStatus::Working), Instant::now());
    tokio::time::advance(Duration::from_secs(2)).await;
    t.request(key, OWNER, who(Method::TasksGet), Instant::now());
    t.observed(key, &seen(7, TaskStatus::Completed), Instant::now());
    assert_eq!(t.len(), 0);
    let lifetime = "mcp_tap_task_duration_seconds_sum{gen_ai_tool_name=\"long_job\",mcp_route=\"default\",task_status=\"completed\"}";
    assert_eq!(value(&m, lifetime), "8");
    assert_eq!(
        value(&m, "mcp_tap_task_input_wait_seconds_sum"),
        "4",
        "from the poll that showed input_required to the one that showed working"
    );
    assert_eq!(value(&m, "mcp_tap_task_polls_sum"), "6");
    assert_eq!(value(&m, "mcp_tap_task_fast_polls_total"), "1", "two polls 0 s apart, the server asked for 1 s");
}

#[tokio::test(start_paused = true)]
async fn cancels_orphans_and_foreign_principals() {
    let (m, t) = tasks(10);
    let (a, b) =
        (Tasks::key("default", &seen(1, TaskStatus::Working)), Tasks::key("default", &seen(2, TaskStatus::Working)));
    t.created(a, OWNER, labels(), &seen(1, TaskStatus::Working), Instant::now());
    t.created(b, OWNER, labels(), &TaskSeen { ttl_ms: Some(5_000), ..seen(2, TaskStatus::Working) }, Instant::now());
    // Another principal polls the first task: reported once, with the client that made it.
    let foreign = Access::Foreign { owner: "agent".into(), tool: "long_job".into() };
    assert_eq!(t.request(a, 99, who(Method::TasksGet), Instant::now()), foreign);
    assert_eq!(t.request(a, 99, who(Method::TasksGet), Instant::now()), Access::Own, "once per task");
    assert_eq!(t.request(a, OWNER, who(Method::TasksCancel), Instant::now()), Access::Own);
    assert_eq!(value(&m, "mcp_tap_task_cancels_total"), "1");
    t.observed(a, &seen(1, TaskStatus::Cancelled), Instant::now());
    assert!(m.render().contains("task_status=\"cancelled\"} 1"));
    // Nobody follows the second past its ttlMs.
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(t.sweep(Instant::now()), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(t.sweep(Instant::now()), 1);
    assert_eq!(value(&m, "mcp_tap_tasks_orphaned_total"), "1");
    assert_eq!(t.request(b, OWNER, who(Method::TasksGet), Instant::now()), Access::Unknown);
}

#[tokio::test(start_paused = true)]
async fn random_task_ids_stay_within_the_bound_and_mint_no_series() {
    let (m, t) = tasks(50);
    for id in 0..1_000u64 {
        let s = seen(id.wrapping_mul(0x9e37_79b9_7f4a_7c15), TaskStatus::Working);
        let key = Tasks::key("default", &s);
        t.created(key, id, labels(), &s, Instant::now());
        // Polls of ids nobody created touch nothing.
        assert_eq!(t.request(!key, id, who(Method::TasksGet), Instant::now()), Access::Unknown);
    }
    assert_eq!(t.len(), 50);
    assert_eq!(value(&m, "mcp_tap_label_overflow_total{label=\"task\"}"), "950");
    assert_eq!(m.render().lines().filter(|l| l.starts_with("mcp_tap_tasks_created_total")).count(), 1);
}
