//! Findings you can trust, measured with real clients in front of a real Backstage. A finding is
//! an audit line with a `finding` field (and one count in `mcp_tap_findings_total`): something a
//! person should look at. A healthy day of real clients raises none; an incident day raises
//! exactly one per incident, of the right kind, and nothing else. Both print their table
//! (incident, expected, found) and write it to `target/findings-<day>.md`.

use crate::auth_audit::{audit_config, bearer, LIST};
use crate::common;

use std::time::Duration;

use common::*;
use mcp_tap::config::Config;

const PATH: &str = "/api/mcp-actions/v1";
const ENTITY: &str = r#"catalog.get-catalog-entity={"kind":"Component","name":"payments-api"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{"kind":"Component","name":"payments-api"}}}"#;
/// ci-agent's next token: Backstage is restarted with it in place of `TOKEN_FULL`.
const ROTATED: &str = "tap-test-rotated-day-71c0e4a9b2";

fn sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A Backstage user token for `sub`, signed with the test Backstage's key, valid from `iat` to
/// `exp` (Unix seconds).
fn user_token(sub: &str, iat: i64, exp: i64) -> String {
    let claims =
        serde_json::json!({"iss": "http://127.0.0.1/api/auth", "sub": sub, "aud": "backstage", "iat": iat, "exp": exp});
    sign("backstage", BACKSTAGE_KID, "vnd.backstage.user", &claims)
}

/// The tap's config for a day: the tests' audit config (Backstage's tokens imported, a fixed
/// fingerprint key), the tests' own network approved, and ci-agent's rotated token known.
fn day_config(upstream: &str) -> Config {
    let mut c = audit_config(upstream);
    c.audit.approved_networks = vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    c.clients.tokens.push(mcp_tap::config::ClientToken {
        subject: "ci-agent".into(),
        token_sha256: Some(sha256(ROTATED)),
        ..Default::default()
    });
    c
}

/// Every finding in the audit trail of `config`.
fn findings(config: &Config) -> Vec<serde_json::Value> {
    audit_lines(config).into_iter().filter(|l| l.get("finding").is_some()).collect()
}

/// The table of a day: one row per incident with the kind expected, how many were expected and
/// how many were found; printed, and written under target/ for docs/auth-audit.md.
fn table(day: &str, rows: &[(&str, &str, usize, usize)]) -> String {
    let mut t = String::from("| incident | expected | found |\n|---|---|---|\n");
    for (incident, kind, expected, found) in rows {
        t.push_str(&format!("| {incident} | {expected} × {kind} | {found} |\n"));
    }
    println!("{day}:\n{t}");
    let _ = std::fs::write(repo().join(format!("target/findings-{day}.md")), &t);
    t
}

/// A `--refresh-token` OAuth client: it starts with an expired token for `user`, gets a 401 and
/// retries at once with a fresh one, then lists the tools its user may use (the test Backstage
/// offers user tokens none, so it calls none). Returns whether it refreshed.
async fn oauth_client(url: &str, expired: &str, fresh: &str, name: &str) -> bool {
    let args = ["--mode", "legacy", "--token", expired, "--refresh-token", fresh, "--name", name];
    let seen = python_client(url, &args).await;
    assert!(seen["tools"].is_array(), "{seen}");
    seen["refreshed"] == true
}

/// The MCP Inspector's CLI, a second product on its own token: lists the tools and calls one.
async fn inspector_lists_and_calls(url: &str) {
    let listed = inspector_cli(url, TOKEN_INSPECTOR, &["--method", "tools/list"]).await;
    assert!(listed["tools"].as_array().is_some_and(|t| !t.is_empty()), "{listed}");
    let entity = ["--method", "tools/call", "--tool-name", "catalog.get-catalog-entity"];
    let args = [&entity[..], &["--tool-arg", "kind=Component", "name=payments-api"]].concat();
    let called = inspector_cli(url, TOKEN_INSPECTOR, &args).await;
    assert_ne!(called["isError"], true, "{called}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_day_of_real_clients_raises_no_finding() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let backstage = backstage_on(port, TOKEN_FULL).await;
    let config = day_config(&upstream);
    let mut tap = Tap::start(config.clone()).await;
    // MCP 2026-07-28 clients, through a tap in front of the Python SDK's server (Backstage's
    // MCP Actions speaks the handshake generation only).
    let py = python_server(false).await;
    let mut py_config = day_config(&format!("http://127.0.0.1:{}", py.port));
    py_config.routes.extra = vec![mcp_tap::config::ExtraRoute { path: "/mcp".into(), label: "py".into() }];
    let py_tap = Tap::start(py_config.clone()).await;
    let (url, now, mut refreshes) = (tap.url(PATH), unix_now(), 0);
    // The Python SDK, handshake generation, then `auto` (it probes server/discover first), then
    // the stateless generation; one product on its own token.
    let legacy = ["--mode", "legacy", "--token", TOKEN_FULL, "--call", ENTITY];
    python_client(&url, &legacy).await;
    python_client(&url, &["--mode", "auto", "--token", TOKEN_FULL]).await;
    let current = ["--mode", "2026-07-28", "--token", TOKEN_FULL, "--call", r#"add={"a":1,"b":2}"#];
    assert_eq!(python_client(&py_tap.url("/mcp"), &current).await["protocol_version"], "2026-07-28");
    inspector_lists_and_calls(&url).await;
    // OAuth clients whose user tokens expired: each refreshes on its 401 and goes on.
    let guest_expired = user_token("user:development/guest", now - 7200, now - 3600);
    refreshes += usize::from(oauth_client(&url, &guest_expired, &guest_token(port).await, "vscode").await);
    let alice_expired = user_token("user:default/alice", now - 7200, now - 60);
    let alice = user_token("user:default/alice", now, now + 3600);
    refreshes += usize::from(oauth_client(&url, &alice_expired, &alice, "claude-ai").await);

    // Backstage rotates ci-agent's token; the client moves to the new one.
    drop(backstage);
    let backstage = backstage_on(port, ROTATED).await;
    python_client(&url, &["--mode", "legacy", "--token", ROTATED, "--call", ENTITY]).await;

    // The tap restarts (a deploy); the same clients go on.
    tap.stop().await;
    tap = Tap::start(config.clone()).await;
    let url = tap.url(PATH);
    python_client(&url, &["--mode", "legacy", "--token", ROTATED, "--call", ENTITY]).await;
    inspector_cli(&url, TOKEN_INSPECTOR, &["--method", "tools/list"]).await;
    let guest_expired = user_token("user:development/guest", now - 3600, now - 1);
    refreshes += usize::from(oauth_client(&url, &guest_expired, &guest_token(port).await, "vscode").await);
    assert_eq!(refreshes, 3, "every OAuth client met its 401 and refreshed");
    let m = metrics_when(&tap, Duration::from_secs(5), "the refresh counted", |m| {
        metric(m, "mcp_tap_user_token_refreshes_total", &[]) == 1.0
    })
    .await;
    assert_eq!(metric(&m, "mcp_tap_findings_total", &[]), 0.0, "{m}");
    tap.stop().await;
    py_tap.stop().await;
    drop(backstage);

    let found: Vec<_> = findings(&config).into_iter().chain(findings(&py_config)).collect();
    let kind = |k: &str| found.iter().filter(|f| f["finding"] == k).count();
    let rows: Vec<(&str, &str, usize, usize)> =
        mcp_tap::FINDINGS.iter().map(|k| ("the whole healthy day", *k, 0, kind(k))).collect();
    let t = table("healthy-day", &rows);
    assert!(found.is_empty(), "a healthy day raised findings:\n{t}\n{found:#?}");
}

/// From outside: a scanner (36 requests without a token in a few seconds from one address),
/// and credential stuffing (a list of leaked-looking tokens, one try each, from another).
async fn outside_attacks(url: &str) {
    for _ in 0..36 {
        assert_eq!(post_mcp(url, &[("x-forwarded-for", "10.66.0.1")], LIST).await.0, 401);
    }
    for i in 0..8 {
        let token = bearer(&format!("tap-test-stuffed-{i}-0f9e8d7c6b"));
        let headers = [("x-forwarded-for", "10.77.0.1"), ("authorization", token.as_str())];
        assert_eq!(post_mcp(url, &headers, LIST).await.0, 401);
    }
}

/// An OAuth client that stopped refreshing: its expired token, again and again, past the grace,
/// until the tap finds it. Returns the `Authorization` value it sent.
async fn client_that_stopped_refreshing(tap: &Tap, url: &str) -> String {
    let now = unix_now();
    let stale = bearer(&user_token("user:default/bob", now - 7200, now - 3600));
    let stopped = |m: &str| metric(m, "mcp_tap_findings_total", &[("kind", "stopped_refreshing")]);
    let mut retries = 0;
    while stopped(&tap.metrics().await) == 0.0 {
        let headers = [("authorization", stale.as_str()), ("user-agent", "stale-agent/1.0")];
        assert_eq!(post_mcp(url, &headers, LIST).await.0, 401);
        retries += 1;
        assert!(retries < 100_000, "no finding after {retries} expired requests");
    }
    stale
}

/// Each incident of the day, the findings it should raise, and those it raised.
fn incident_rows(found: &[serde_json::Value]) -> Vec<(&'static str, &'static str, usize, usize)> {
    let count = |kind: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        found.iter().filter(|f| f["finding"] == kind && check(f)).count()
    };
    let fp = crate::auth_audit::fingerprint(TOKEN_FULL);
    vec![
        (
            "scanner (36 tokenless requests)",
            "burst",
            1,
            count("burst", &|f| f["scope"] == "source" && f["key"] == "10.66.0.1"),
        ),
        (
            "credential stuffing (8 tokens)",
            "burst",
            1,
            count("burst", &|f| f["scope"] == "stuffing" && f["key"] == "10.77.0.1"),
        ),
        (
            "stolen token, second product",
            "credential_shared",
            1,
            count("credential_shared", &|f| f["credential"] == fp),
        ),
        (
            "client stopped refreshing",
            "stopped_refreshing",
            1,
            count("stopped_refreshing", &|f| f["user"] == "user:default/bob"),
        ),
        ("hidden denial (called twice)", "hidden_denial", 1, count("hidden_denial", &|f| f["client"] == "mcp-only")),
        ("revoked token retried (3 times)", "revoked_token", 1, count("revoked_token", &|f| f["credential"] == fp)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_day_finds_each_incident_exactly_once() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let backstage = backstage_on(port, TOKEN_FULL).await;
    let mut config = day_config(&upstream);
    // The incidents from the outside come through the tests' own gateway (127.0.0.1), which
    // says where each came from.
    config.audit.source_from_forwarded_for = true;
    config.audit.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.user_tokens.refresh_grace = Duration::from_secs(2);
    let tap = Tap::start(config.clone()).await;
    let url = tap.url(PATH);
    // The day starts with the CI agent at work: its token works.
    python_client(&url, &["--mode", "legacy", "--token", TOKEN_FULL, "--call", ENTITY]).await;

    outside_attacks(&url).await;
    // The CI agent's token, stolen and used by another client product.
    inspector_cli(&url, TOKEN_FULL, &["--method", "tools/list"]).await;
    let stale = client_that_stopped_refreshing(&tap, &url).await;
    // A denial Backstage hides: a token that may not reach the catalog calls its tool (twice).
    let mcp_only = bearer(TOKEN_MCP_ONLY);
    assert_eq!(post_mcp(&url, &[("authorization", &mcp_only)], LIST).await.0, 200);
    for _ in 0..2 {
        assert_eq!(post_mcp(&url, &[("authorization", &mcp_only)], CALL).await.0, 200);
    }
    // Backstage revokes the CI agent's token (restarted with another); a client retries it.
    drop(backstage);
    let _backstage = backstage_on(port, ROTATED).await;
    for _ in 0..3 {
        assert_eq!(post_mcp(&url, &[("authorization", &bearer(TOKEN_FULL))], LIST).await.0, 401);
    }
    let m = metrics_when(&tap, Duration::from_secs(5), "six findings counted", |m| {
        metric(m, "mcp_tap_findings_total", &[]) >= 6.0
    })
    .await;
    tap.stop().await;

    let found = findings(&config);
    let rows = incident_rows(&found);
    let t = table("incident-day", &rows);
    for (incident, _, expected, got) in &rows {
        assert_eq!(got, expected, "{incident}:\n{t}\n{found:#?}");
    }
    assert_eq!(found.len(), rows.len(), "nothing else:\n{t}\n{found:#?}");
    assert_eq!(metric(&m, "mcp_tap_findings_total", &[]), rows.len() as f64);
    let shared = found.iter().find(|f| f["finding"] == "credential_shared").unwrap();
    let names: Vec<_> = shared["clients"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(names[0] == "mcp" && names[1].contains("inspector"), "both products, by their declared names: {shared}");
    let all = std::fs::read_to_string(&config.audit.output).unwrap();
    for token in [TOKEN_FULL, TOKEN_MCP_ONLY, &stale[7..]] {
        assert!(!all.contains(token), "a token in the audit trail");
    }
}
