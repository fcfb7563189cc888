//! Backstage user tokens (what OAuth clients send) through the tap, against a real Backstage with
//! its auth backend and guest provider: a real token works and is attributed to its user; each
//! way a token fails gets its own reason; a client that stopped refreshing is one finding, not an
//! attack; forged key ids cannot make the tap hammer Backstage.

use crate::auth_audit::LIST;
use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const PATH: &str = "/api/mcp-actions/v1";
const USER: &str = "user:development/guest";

fn reason(m: &str, reason: &str) -> f64 {
    metric(m, "mcp_tap_auth_failures_total", &[("reason", reason)])
}

async fn list_with(url: &str, token: &str) -> u16 {
    post_mcp(url, &[("authorization", &format!("Bearer {token}"))], LIST).await.0
}

/// A token for each way a user token fails, made from a real one (`guest`), by the reason the
/// tap should give.
fn failing_tokens(guest: &str) -> Vec<(&'static str, String)> {
    let now = unix_now();
    let mut flipped = guest.to_string().into_bytes();
    let i = flipped.len() - 5;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let mut early = claims("backstage", now, now + 7200);
    early["nbf"] = serde_json::json!(now + 3600);
    let user = "vnd.backstage.user";
    vec![
        ("bad_signature", String::from_utf8(flipped).unwrap()),
        ("unknown_signing_key", sign("other", "someone-elses-key", user, &claims("backstage", now, now + 600))),
        // Backstage checks `aud` only on a token without `typ`.
        ("wrong_audience", sign("backstage", BACKSTAGE_KID, "", &claims("grafana", now, now + 600))),
        ("malformed_jwt", guest[..guest.len() / 2].to_string()),
        ("token_expired", sign("backstage", BACKSTAGE_KID, user, &claims("backstage", now - 7200, now - 3600))),
        (
            "wrong_token_type",
            sign("backstage", BACKSTAGE_KID, "vnd.backstage.plugin", &claims("backstage", now, now + 600)),
        ),
        ("token_not_yet_valid", sign("backstage", BACKSTAGE_KID, user, &early)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_token_failure_gets_its_own_reason() {
    let backstage = backstage().await;
    let upstream = format!("http://127.0.0.1:{}", backstage.port);
    let mut config = test_config(&upstream);
    // The tests come from 127.0.0.1: every request with a credential is audited as unapproved,
    // which shows who the tap says the caller is.
    config.audit.approved_networks = vec!["10.0.0.0/8".parse().unwrap()];
    let tap = Tap::start(config.clone()).await;
    let url = tap.url(PATH);

    let guest = guest_token(backstage.port).await;
    assert_eq!(list_with(&url, &guest).await, 200, "a real user token works through the tap");
    let cases = failing_tokens(&guest);
    for (what, token) in &cases {
        assert_eq!(list_with(&url, token).await, 401, "Backstage refuses the {what} token");
    }
    let m = metrics_when(&tap, Duration::from_secs(5), "every refusal counted", |m| {
        cases.iter().all(|(r, _)| reason(m, r) == 1.0)
    })
    .await;
    assert_eq!(reason(&m, "revoked_token") + reason(&m, "unknown_token"), 0.0, "{m}");
    assert_eq!(metric(&m, "mcp_tap_jwks_keys", &[]), 1.0);
    tap.stop().await;

    let lines = audit_lines(&config);
    let line = |r: &str| lines.iter().find(|l| l["reason"] == r).unwrap_or_else(|| panic!("{r}: {lines:#?}")).clone();
    // Whose token it was, only when the signature holds; how long ago it expired.
    assert_eq!(line("wrong_audience")["user"], USER);
    assert_eq!(line("token_expired")["expired_seconds"].as_u64().map(|s| (3600..3700).contains(&s)), Some(true));
    assert!(line("bad_signature").get("user").is_none(), "a forged token names no one");
    let unapproved: Vec<_> = lines.iter().filter(|l| l["event"] == "unapproved_source" && l["status"] == 200).collect();
    assert_eq!(unapproved.len(), 1);
    assert_eq!(unapproved[0]["user"], USER, "the working token is attributed to its user");
    let everything = std::fs::read_to_string(&config.audit.output).unwrap();
    for token in cases.iter().map(|(_, t)| t).chain([&guest]) {
        let payload = token.split('.').nth(1).unwrap_or(token);
        assert!(!everything.contains(payload), "a token or its payload in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stopped_refreshing_is_one_finding_not_an_attack() {
    let backstage = backstage().await;
    let mut config = test_config(&format!("http://127.0.0.1:{}", backstage.port));
    config.user_tokens.refresh_grace = Duration::from_secs(1);
    let tap = Tap::start(config.clone()).await;
    let now = unix_now();
    let expired = sign("backstage", BACKSTAGE_KID, "vnd.backstage.user", &claims("backstage", now - 7200, now - 60));
    // Within the grace the client could still refresh: the finding opens once the same expired
    // token is still sent past it.
    let finding = |m: &str| metric(m, "mcp_tap_findings_total", &[("kind", "stopped_refreshing")]);
    let mut sent = 0u32;
    while sent < 200 || finding(&tap.metrics().await) == 0.0 {
        assert_eq!(list_with(&tap.url(PATH), &expired).await, 401);
        sent += 1;
        assert!(sent < 100_000, "no finding after {sent} expired requests");
    }
    let m = tap.metrics().await;
    assert_eq!(finding(&m), 1.0);
    assert_eq!(metric(&m, "mcp_tap_expired_token_requests_total", &[]), f64::from(sent));
    assert_eq!(reason(&m, "token_expired"), f64::from(sent));
    assert_eq!(metric(&m, "mcp_tap_auth_bursts_total", &[]), 0.0, "no attack burst");
    tap.stop().await;
    let lines = audit_lines(&config);
    let of = |event: &str| lines.iter().filter(|l| l["event"] == event).cloned().collect::<Vec<_>>();
    assert_eq!(of("stopped_refreshing").len(), 1, "one finding");
    assert_eq!(of("stopped_refreshing")[0]["user"], USER);
    let end = of("stopped_refreshing_end");
    assert_eq!((end.len(), end[0]["count"].as_u64()), (1, Some(u64::from(sent))), "{end:?}");
    assert!(end[0]["first"].as_str() <= end[0]["latest"].as_str());
    assert!(of("auth_failure").is_empty(), "the storm is the finding, not 200 lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_forged_key_ids_fetch_the_keys_at_the_documented_rate() {
    let jwks_hits = Arc::new(AtomicUsize::new(0));
    let hits = jwks_hits.clone();
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let hits = hits.clone();
        async move {
            if req.uri().path() == "/api/auth/.well-known/jwks.json" {
                hits.fetch_add(1, Ordering::SeqCst);
                return json_response(200, TEST_JWKS);
            }
            if req.headers().contains_key("x-flood") {
                return json_response(429, r#"{"error":{"name":"TooManyRequests","message":"Too many requests"}}"#);
            }
            json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Failed user token verification"}}"#)
        }
    })
    .await;
    let mut config = test_config(&format!("http://{addr}"));
    config.user_tokens.min_refresh_interval = Duration::from_secs(1);
    let tap = Tap::start(config).await;
    let url = tap.url(PATH);
    let started = tokio::time::Instant::now();
    let payload = b64(r#"{"sub":"user:default/mallory","aud":"backstage","exp":4102444800}"#);
    for batch in 0..100 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..100 {
            let header = b64(&format!(r#"{{"typ":"vnd.backstage.user","alg":"ES256","kid":"forged-{batch}-{i}"}}"#));
            let (url, token) = (url.clone(), format!("{header}.{payload}.c2lnbmF0dXJl"));
            sends.spawn(async move { list_with(&url, &token).await });
        }
        assert!(sends.join_all().await.iter().all(|s| *s == 401));
    }
    let elapsed = started.elapsed().as_secs();
    // Each refusal is explained once the fetch under way when it came ends.
    let m = metrics_when(&tap, Duration::from_secs(10), "every refusal explained", |m| {
        reason(m, "unknown_signing_key") == 10_000.0
    })
    .await;
    let fetches = jwks_hits.load(Ordering::SeqCst) as u64;
    assert!(fetches <= elapsed + 2, "{fetches} JWKS fetches in {elapsed} s: at most one per second and the first");
    assert_eq!(metric(&m, "mcp_tap_jwks_keys", &[]), 1.0, "no key is kept for a forged kid");
    // Backstage's rate limiter answers a flood with 429: its own reason.
    let (status, _, _) = post_mcp(&url, &[("x-flood", "1")], LIST).await;
    assert_eq!(status, 429);
    let m = tap.metrics().await;
    assert_eq!(reason(&m, "rate_limited"), 1.0);
    tap.stop().await;
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The test key the JWKS below publishes.
const TEST_JWKS: &str = r#"{"keys":[{"kty":"EC","x":"7SLcOKW2PMmjawPCzze1lVYT5-ILzRtI_KKR_GoNOcg","y":"88C1XBewt6WeVE0z03E-GhIPjk6BuMz7j3zz0Vh__nY","crv":"P-256","kid":"mcp-tap-test-key-1","alg":"ES256"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_never_waits_for_the_signing_keys() {
    // The upstream's JWKS answers only when the test lets it; every request is refused.
    let jwks_gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = jwks_gate.clone();
    let addr = upstream(move |req: http::Request<hyper::body::Incoming>| {
        let gate = gate.clone();
        async move {
            if req.uri().path() == "/api/auth/.well-known/jwks.json" {
                let _held = gate.acquire().await;
                return json_response(200, TEST_JWKS);
            }
            json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Failed user token verification"}}"#)
        }
    })
    .await;
    let config = test_config(&format!("http://{addr}"));
    let tap = Tap::start(config.clone()).await;
    let url = tap.url(PATH);
    // A token naming the published key, with a signature that does not hold: the tap can tell
    // only once it has the key.
    let header = b64(r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"mcp-tap-test-key-1"}"#);
    let payload = b64(r#"{"sub":"user:default/mallory","aud":"backstage","exp":4102444800}"#);
    let token = format!("{header}.{payload}.c2lnbmF0dXJl");

    // The 401 comes back at once while the key fetch it started is held upstream (the tap used
    // to hold such a 401 up to a second for the fetch).
    let answered = tokio::time::timeout(Duration::from_millis(900), list_with(&url, &token)).await;
    assert_eq!(answered, Ok(401), "the 401 waited for the signing keys");
    let m = tap.metrics().await;
    assert_eq!(reason(&m, "bad_signature") + reason(&m, "unknown_signing_key"), 0.0, "explained before the keys came");
    // The keys arrive: the refusal is explained with the reason they give.
    jwks_gate.add_permits(1);
    let m = metrics_when(&tap, Duration::from_secs(10), "the refusal explained", |m| reason(m, "bad_signature") == 1.0)
        .await;
    assert_eq!(reason(&m, "unknown_signing_key"), 0.0, "explained with the keys, not before them");
    let lines = audit_when(&config, Duration::from_secs(5), "its audit line", |l| l["reason"] == "bad_signature").await;
    assert_eq!(lines.iter().filter(|l| l["event"] == "auth_failure").count(), 1, "{lines:#?}");
    tap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_still_being_explained_at_the_stop_is_audited() {
    // The upstream's JWKS never answers: the refusal is explained with the keys held once the
    // fetch gives up, even though the tap was told to stop before that.
    let addr = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/api/auth/.well-known/jwks.json" {
            std::future::pending::<()>().await;
        }
        json_response(401, r#"{"error":{"name":"AuthenticationError","message":"Failed user token verification"}}"#)
    })
    .await;
    let config = test_config(&format!("http://{addr}"));
    let tap = Tap::start(config.clone()).await;
    let header = b64(r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"mcp-tap-test-key-1"}"#);
    let payload = b64(r#"{"sub":"user:default/mallory","aud":"backstage","exp":4102444800}"#);
    assert_eq!(list_with(&tap.url(PATH), &format!("{header}.{payload}.c2lnbmF0dXJl")).await, 401);
    tap.stop().await;
    let lines = audit_lines(&config);
    let refused: Vec<_> = lines.iter().filter(|l| l["event"] == "auth_failure").collect();
    assert_eq!(refused.len(), 1, "the refusal reached the audit trail before the stop: {lines:#?}");
    assert_eq!(refused[0]["reason"], "unknown_signing_key", "explained with the keys held: none came");
}
