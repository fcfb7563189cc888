//! Tasks (the `io.modelcontextprotocol/tasks` extension of MCP 2026-07-28) through the tap,
//! against a server built on the official Python SDK's extension mechanism that implements the
//! extension as its specification says (`tests/peers/py_tasks_server.py`): a task that asks for
//! input and completes, one cancelled, one nobody follows past its TTL, and a poll from another
//! principal. In cluster mode, a task polled on two replicas is one task.

use crate::common;

use std::time::Duration;

use common::*;

const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"task-agent","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;
pub const OWNER_TOKEN: &str = "task-owner-token-8e41c0";
const OTHER_TOKEN: &str = "task-other-token-51d7aa";

pub async fn tasks_server() -> Peer {
    spawn_peer("the Python tasks server", |port| {
        let mut cmd = std::process::Command::new(python());
        cmd.arg(repo().join("tests/peers/py_tasks_server.py")).arg("--port").arg(port.to_string());
        cmd
    })
    .await
}

/// One request as a 2026-07-28 client with the extension sends it; its result.
pub async fn send(url: &str, token: &str, method: &str, name: &str, params: &str) -> serde_json::Value {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{{params},{META}}}}}"#);
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("mcp-name", name),
    ];
    let (status, _, answer) = post_mcp(url, &headers, &body).await;
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON answer");
    assert_eq!(status, 200, "{answer}");
    answer["result"].clone()
}

pub async fn start_job(url: &str, arguments: &str) -> String {
    let params = format!(r#""name":"long_job","arguments":{arguments}"#);
    let handle = send(url, OWNER_TOKEN, "tools/call", "long_job", &params).await;
    assert_eq!(handle["resultType"], "task", "{handle}");
    handle["taskId"].as_str().unwrap().to_string()
}

pub async fn task_verb(url: &str, token: &str, method: &str, task: &str, extra: &str) -> serde_json::Value {
    send(url, token, method, task, &format!(r#""taskId":"{task}"{extra}"#)).await
}

/// Polls every 250 ms (the server asks for 200 ms) until the task shows `status`.
pub async fn poll_until(urls: &[&str], task: &str, status: &str) -> u32 {
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    for n in 0..40u32 {
        ticks.tick().await;
        let state = task_verb(urls[n as usize % urls.len()], OWNER_TOKEN, "tasks/get", task, "").await;
        if state["status"] == status {
            return n + 1;
        }
    }
    panic!("task never reached {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_followed_from_creation_to_their_end() {
    let server = tasks_server().await;
    let mut config = config_for(&format!("http://127.0.0.1:{}", server.port), "jobs");
    // Tasks past their TTL are looked for every 200 ms.
    config.sessions.idle_timeout = Duration::from_secs(2);
    let tap = Tap::start(config.clone()).await;
    let url = tap.url("/mcp");

    // A job that asks the person first: created → input_required → (1 s later) working → completed.
    let asking = start_job(&url, r#"{"ask":true,"seconds":0.3}"#).await;
    poll_until(&[&url], &asking, "input_required").await;
    let mut person = tokio::time::interval(Duration::from_secs(1));
    person.tick().await;
    person.tick().await;
    let answer = r#","inputResponses":{"confirm-1":{"action":"accept","content":{"ok":true}}}"#;
    task_verb(&url, OWNER_TOKEN, "tasks/update", &asking, answer).await;
    // Two polls at once: sooner than the 200 ms the server asked for.
    task_verb(&url, OWNER_TOKEN, "tasks/get", &asking, "").await;
    poll_until(&[&url], &asking, "completed").await;

    // A long job another principal polls (twice), then its owner cancels.
    let cancelled = start_job(&url, r#"{"seconds":30}"#).await;
    for _ in 0..2 {
        task_verb(&url, OTHER_TOKEN, "tasks/get", &cancelled, "").await;
    }
    task_verb(&url, OWNER_TOKEN, "tasks/cancel", &cancelled, "").await;
    poll_until(&[&url], &cancelled, "cancelled").await;

    // A job nobody polls, with a TTL of 1 s.
    let orphan = start_job(&url, r#"{"seconds":30,"ttl_ms":1000}"#).await;

    what_the_tap_recorded(&tap, &config, &[&asking, &cancelled, &orphan]).await;
    drop(server);
}

/// The three tasks of `tasks_are_followed_from_creation_to_their_end`, as the tap recorded them.
async fn what_the_tap_recorded(tap: &Tap, config: &mcp_tap::config::Config, ids: &[&str]) {
    let tool = ("gen_ai_tool_name", "long_job");
    let m = metrics_when(tap, Duration::from_secs(5), "the orphan counted", |m| {
        metric(m, "mcp_tap_tasks_orphaned_total", &[tool]) == 1.0
    })
    .await;
    let of =
        |name: &str, extra: &[(&str, &str)]| metric(&m, name, &[&[("mcp_route", "jobs"), tool][..], extra].concat());
    assert_eq!(of("mcp_tap_tasks_created_total", &[]), 3.0);
    assert_eq!(of("mcp_tap_task_duration_seconds_count", &[("task_status", "completed")]), 1.0);
    assert_eq!(of("mcp_tap_task_duration_seconds_count", &[("task_status", "cancelled")]), 1.0);
    let lifetime = of("mcp_tap_task_duration_seconds_sum", &[("task_status", "completed")]);
    let waited = of("mcp_tap_task_input_wait_seconds_sum", &[]);
    println!("the asking task lived {lifetime:.2} s, {waited:.2} s of it waiting for the person");
    assert!(waited >= 0.9 && lifetime > waited, "lived {lifetime} s, waited {waited} s");
    assert_eq!(of("mcp_tap_task_input_wait_seconds_count", &[]), 1.0, "only the asking task waited");
    assert!(of("mcp_tap_task_fast_polls_total", &[]) >= 1.0);
    assert_eq!(of("mcp_tap_task_cancels_total", &[]), 1.0);
    let ops = metric(&m, "mcp_server_operation_duration_seconds_count", &[("mcp_method_name", "tasks/get")]);
    assert!(ops >= 4.0, "each poll is an operation of its own: {ops}");
    // The audit line is written on the writer's thread, a moment after the count.
    let is_foreign = |l: &serde_json::Value| l["event"] == "task_foreign_access";
    let lines = audit_when(config, Duration::from_secs(10), "the task_foreign_access line", is_foreign).await;
    let foreign: Vec<_> = lines.into_iter().filter(is_foreign).collect();
    assert_eq!(foreign.len(), 1, "once for the task, however often it is polled: {foreign:#?}");
    assert_eq!(
        (foreign[0]["owner_client"].as_str(), foreign[0]["mcp_method"].as_str()),
        (Some("task-agent"), Some("tasks/get"))
    );
    assert_eq!(metric(&m, "mcp_tap_findings_total", &[("kind", "task_foreign_access")]), 1.0);
    // Task ids and tokens are never labels or audit text.
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    for secret in ids.iter().copied().chain([OWNER_TOKEN, OTHER_TOKEN]) {
        assert!(!m.contains(secret) && !audit.contains(secret), "{secret} leaked");
    }
}

/// Two replicas and one store: a task made on one replica and polled, answered and polled to its
/// end through both is one task in the cluster, and another principal polling it on the second
/// replica is one finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_polled_on_two_replicas_is_one_task() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-tasks-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = redis_server(&dir).await;
    let server = tasks_server().await;
    let configs = [replica(server.port, store.port), replica(server.port, store.port)];
    let taps = [Tap::start(configs[0].clone()).await, Tap::start(configs[1].clone()).await];
    for tap in &taps {
        metrics_when(tap, Duration::from_secs(10), "the replica reaches its store", |m| {
            metric(m, "mcp_tap_store_up", &[("cluster", "tasks")]) == 1.0
        })
        .await;
    }
    let urls = [taps[0].url("/mcp"), taps[1].url("/mcp")];
    let both = [urls[0].as_str(), urls[1].as_str()];
    let task = start_job(&urls[0], r#"{"ask":true,"seconds":0.3}"#).await;
    let mut polls = poll_until(&both, &task, "input_required").await;
    let mut person = tokio::time::interval(Duration::from_secs(1));
    person.tick().await;
    person.tick().await;
    task_verb(&urls[1], OTHER_TOKEN, "tasks/get", &task, "").await;
    let answer = r#","inputResponses":{"confirm-1":{"action":"accept","content":{"ok":true}}}"#;
    task_verb(&urls[1], OWNER_TOKEN, "tasks/update", &task, answer).await;
    polls += poll_until(&both, &task, "completed").await;

    let tool = ("gen_ai_tool_name", "long_job");
    let sum = |texts: &[String], name: &str, extra: &[(&str, &str)]| -> f64 {
        texts.iter().map(|m| metric(m, name, &[&[tool][..], extra].concat())).sum()
    };
    let texts = cluster_metrics(&taps, |t| {
        sum(t, "mcp_tap_task_duration_seconds_count", &[("task_status", "completed")]) == 1.0
    })
    .await;
    let per_replica: Vec<f64> = texts.iter().map(|m| metric(m, "mcp_tap_task_polls_sum", &[tool])).collect();
    println!("{polls} polls over two replicas; recorded {per_replica:?}");
    assert_eq!(sum(&texts, "mcp_tap_tasks_created_total", &[]), 1.0);
    assert_eq!(sum(&texts, "mcp_tap_task_polls_sum", &[]), f64::from(polls) + 1.0, "every poll, the foreign one too");
    assert!(sum(&texts, "mcp_tap_task_input_wait_seconds_sum", &[]) >= 0.9, "the person's second");
    let foreign: usize =
        configs.iter().map(|c| audit_lines(c).iter().filter(|l| l["event"] == "task_foreign_access").count()).sum();
    assert_eq!(foreign, 1, "one finding in the cluster");
    for tap in taps {
        tap.stop().await;
    }
    drop(server);
}

fn replica(server: u16, store: u16) -> mcp_tap::config::Config {
    let mut c = config_for(&format!("http://127.0.0.1:{server}"), "jobs");
    c.cluster.store_url = Some(format!("redis://127.0.0.1:{store}/0"));
    c.cluster.password_env = Some("STORE_PASSWORD".into());
    c.cluster.name = "tasks".into();
    // One fingerprint key for every replica, as a cluster is deployed: one principal is one.
    c.env = mcp_tap::config::Environment::fixed([
        ("STORE_PASSWORD", STORE_PASSWORD),
        ("MCP_TAP_FINGERPRINT_KEY", "tasks-e2e-fingerprint-key-0123456789"),
    ]);
    c
}

/// Every replica's metrics, once `done` holds for them.
async fn cluster_metrics(taps: &[Tap], done: impl Fn(&[String]) -> bool) -> Vec<String> {
    eventually(Duration::from_secs(5), "the end recorded in the cluster", || async {
        let mut texts = Vec::new();
        for tap in taps {
            texts.push(tap.metrics().await);
        }
        if done(&texts) {
            Ok(texts)
        } else {
            Err(texts.join("\n"))
        }
    })
    .await
}
