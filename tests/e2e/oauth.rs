//! MCP clients on OAuth through the tap, in front of the OAuth kind of the real Backstage (one
//! Backstage for the whole story): the official Python SDK's journey with dynamic client
//! registration and with a client ID metadata document, each refreshing on its own; the failure
//! paths by a hand-scripted client (a rejected consent, a wrong PKCE verifier, a replayed and a
//! revoked refresh token, a client that signs in again instead of refreshing); a second tap
//! whose origin is not Backstage's `backend.baseUrl`; and no secret in any output.

use crate::auth_audit::{audit_config, Binary};
use crate::cluster::{cluster_config, lines_of};
use crate::common;
use crate::securing::Pki;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use mcp_tap::config::{Config, WwwAuthenticate};

fn step(m: &str, step: &str, outcome: &str) -> f64 {
    metric(m, "mcp_tap_oauth_requests_total", &[("step", step), ("outcome", outcome)])
}

fn events<'a>(lines: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// An OTLP receiver that keeps every body it is sent (metrics, traces, logs), for the search.
async fn otlp_sink() -> (String, Arc<Mutex<Vec<u8>>>) {
    let got: Arc<Mutex<Vec<u8>>> = Arc::default();
    let g = got.clone();
    let url = otlp_http_receiver(move |_, body| g.lock().unwrap().extend_from_slice(&body)).await;
    (url, got)
}

/// The SDK's journeys: both complete, refresh on their own, and their MCP requests are named
/// by the client the user consented to.
async fn sdk_journeys(tap: &Tap, cimd: &str, secrets: &mut Vec<String>) {
    let origin = format!("http://{}", tap.proxy);
    let dcr = sdk_oauth_client(&origin, "Acme Registered Agent", None, secrets).await;
    assert_eq!((dcr["sessions"].as_u64(), dcr["refreshed"].as_bool()), (Some(2), Some(true)), "{dcr}");
    assert_eq!(dcr["client_id_is_url"], false);
    let by_document = sdk_oauth_client(&origin, "ignored", Some(cimd), secrets).await;
    assert_eq!(
        (by_document["refreshed"].as_bool(), by_document["client_id_is_url"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(by_document["consented"][0], "Acme Document Agent", "the consent page showed the document's name");
    let m = tap.metrics().await;
    for (s, n) in [("register", 1.0), ("authorize", 2.0), ("approve", 2.0), ("token_authorization_code", 2.0)] {
        assert_eq!(step(&m, s, "ok"), n, "{s}: {m}");
    }
    assert_eq!(step(&m, "token_refresh_token", "ok"), 2.0);
    assert!(step(&m, "protected_resource_metadata", "ok") >= 2.0 && step(&m, "server_metadata", "ok") >= 2.0);
    for client in ["Acme Registered Agent", "Acme Document Agent"] {
        let listed = [("client", client), ("mcp_method_name", "tools/list"), ("outcome", "ok")];
        assert_eq!(metric(&m, "mcp_tap_client_operations_total", &listed), 2.0, "{client}: {m}");
        assert_eq!(metric(&m, "mcp_tap_oauth_refreshes_total", &[("client", client)]), 1.0);
    }
    assert_eq!(metric(&m, "mcp_tap_findings_total", &[]), 0.0, "a healthy journey raises nothing");
    assert_eq!(metric(&m, "mcp_tap_oauth_reauthorizations_total", &[]), 0.0);
    // The status page shows the journey and the clients' refreshes, as /metrics counts them.
    let page = String::from_utf8(get(&format!("http://{}/", tap.admin)).await.2.to_vec()).unwrap();
    assert!(page.contains("data-key=\"oauth|token_refresh_token|ok\">2<"), "{page}");
    assert!(page.contains("data-key=\"oauth-refreshes|Acme Document Agent\">1<"));
}

/// The opt-in header: a tokenless 401 names the metadata, and that URL answers through the tap.
async fn www_authenticate_names_the_metadata(tap: &Tap) {
    let (status, headers, _) = post_mcp(&tap.url("/api/mcp-actions/v1"), &[], LIST).await;
    assert_eq!(status, 401);
    let value = headers["www-authenticate"].to_str().unwrap();
    let url = format!("http://{}/.well-known/oauth-protected-resource/api/mcp-actions/v1", tap.proxy);
    assert_eq!(value, format!("Bearer resource_metadata=\"{url}\""));
    let (status, body) = get_with(&url, &[]).await;
    let metadata: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, metadata["resource"].as_str()), (200, Some(&*tap.url("/api/mcp-actions/v1"))));
    let (_, headers, _) =
        post_mcp(&tap.url("/api/mcp-actions/v1"), &[("authorization", "Bearer not-a-token-at-all")], LIST).await;
    assert!(headers["www-authenticate"].to_str().unwrap().ends_with(", error=\"invalid_token\""));
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// The failure paths, each with its own outcome; a replay is one finding however often.
async fn failure_paths(tap: &Tap, client: &mut Scripted, guest: &str) {
    let (id, secret) = client.register("Scripted Agent").await;
    let (verifier, challenge) = pkce("one");
    assert_eq!(client.consent(&id, &challenge, guest, false).await, None, "rejected: no code");
    let code = client.consent(&id, &challenge, guest, true).await.unwrap();
    assert_eq!(client.exchange(&id, &code, "verifier-that-is-wrong-0123456789abcdefghijklmnop").await.0, 400);
    let code = client.consent(&id, &challenge, guest, true).await.unwrap();
    let (status, issued) = client.exchange(&id, &code, &verifier).await;
    assert_eq!(status, 200, "{issued}");
    let (access, first) =
        (issued["access_token"].as_str().unwrap().to_string(), issued["refresh_token"].as_str().unwrap().to_string());
    let auth = format!("Bearer {access}");
    assert_eq!(post_mcp(&tap.url("/api/mcp-actions/v1"), &[("authorization", &auth)], LIST).await.0, 200);
    let (status, rotated) = client.refresh(&id, &first).await;
    assert_eq!(status, 200);
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(client.refresh(&id, &first).await.0, 400, "a rotated token is refused");
    }
    assert_eq!(client.revoke((&id, &secret), &second).await, 200);
    assert_eq!(client.refresh(&id, &second).await.0, 400, "a revoked token is refused");
    // A client that never refreshes: its user signs in again.
    let (forgetful, _) = client.register("Forgetful Agent").await;
    for seed in ["f1", "f2"] {
        let (verifier, challenge) = pkce(seed);
        let code = client.consent(&forgetful, &challenge, guest, true).await.unwrap();
        assert_eq!(client.exchange(&forgetful, &code, &verifier).await.0, 200);
    }
}

async fn failure_paths_are_told_apart(tap: &Tap, config: &Config) {
    let m = metrics_when(tap, Duration::from_secs(5), "the replay", |m| {
        metric(m, "mcp_tap_findings_total", &[("kind", "refresh_token_replay")]) == 1.0
    })
    .await;
    assert_eq!(step(&m, "reject", "access_denied"), 1.0);
    assert_eq!(step(&m, "token_authorization_code", "invalid_grant"), 1.0, "the wrong verifier");
    assert_eq!(step(&m, "token_refresh_token", "invalid_grant"), 3.0, "two replays and the revoked token");
    assert_eq!(step(&m, "revoke", "ok"), 1.0);
    let scripted = [("client", "Scripted Agent"), ("mcp_method_name", "tools/list"), ("outcome", "ok")];
    assert_eq!(metric(&m, "mcp_tap_client_operations_total", &scripted), 1.0, "{m}");
    assert_eq!(metric(&m, "mcp_tap_oauth_reauthorizations_total", &[("client", "Forgetful Agent")]), 1.0);
    assert_eq!(metric(&m, "mcp_tap_findings_total", &[]), 1.0, "only the replay: {m}");
    let lines = audit_lines(config);
    let replay = events(&lines, "refresh_token_replay");
    assert_eq!(replay.len(), 1, "{replay:#?}");
    assert_eq!(
        (replay[0]["client"].as_str(), replay[0]["user"].as_str()),
        (Some("Scripted Agent"), Some("user:development/guest"))
    );
    let consent: Vec<_> = events(&lines, "oauth_consent").iter().map(|l| l["decision"].as_str().unwrap()).collect();
    assert_eq!(consent.iter().filter(|d| **d == "rejected").count(), 1);
    let revoked = events(&lines, "oauth_revocation");
    assert_eq!((revoked.len(), revoked[0]["known"].as_bool()), (1, Some(true)));
    assert_eq!(events(&lines, "oauth_token_error").len(), 4, "the verifier, two replays, the revoked token");
    assert_eq!(events(&lines, "oauth_registration").len(), 3);
}

/// A second tap, whose origin is not Backstage's `backend.baseUrl`: one `resource_mismatch`
/// with both URLs; and with the header option off, a 401's headers are Backstage's own.
async fn another_origin(backstage: u16) {
    let config = test_config(&format!("http://127.0.0.1:{backstage}"));
    let tap = Tap::start(config.clone()).await;
    let path = "/.well-known/oauth-protected-resource/api/mcp-actions/v1";
    for _ in 0..2 {
        assert_eq!(get(&tap.url(path)).await.0, 200);
    }
    let lines =
        audit_when(&config, Duration::from_secs(5), "the mismatch", |l| l["event"] == "resource_mismatch").await;
    let found = events(&lines, "resource_mismatch");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["dialled"].as_str(), Some(&*tap.url("/api/mcp-actions/v1")));
    assert!(found[0]["fix"].as_str().unwrap().contains("backend.baseUrl"));
    let (_, through, _) = post_mcp(&tap.url("/api/mcp-actions/v1"), &[], LIST).await;
    let (_, direct, _) = post_mcp(&format!("http://127.0.0.1:{backstage}/api/mcp-actions/v1"), &[], LIST).await;
    // Every end-to-end header, byte for byte (the date moves on; hop-by-hop headers are the hop's).
    let hop = ["date", "connection", "keep-alive"];
    let names = |h: &http::HeaderMap| {
        h.iter().filter(|(k, _)| !hop.contains(&k.as_str())).map(|(k, v)| format!("{k}: {v:?}")).collect::<Vec<_>>()
    };
    assert_eq!(names(&through), names(&direct), "the option off: headers as Backstage sent them");
    tap.stop().await;
}

/// Two replicas sharing a redis-server: the code exchanged on one, the refresh on the other,
/// the rotated token replayed on both. One family, one `refresh_token_replay` in the cluster;
/// the access token issued on one replica is named by its client on the other.
async fn across_two_replicas(backstage: u16, client: &mut Scripted, guest: &str) {
    let dir = std::env::temp_dir().join(format!("mcp-tap-oauth-store-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = redis_server(&dir).await;
    let upstream = format!("http://127.0.0.1:{backstage}");
    let configs = [cluster_config(&upstream, store.port, "oauth"), cluster_config(&upstream, store.port, "oauth")];
    let (a, b) = (Tap::start(configs[0].clone()).await, Tap::start(configs[1].clone()).await);
    let origin = std::mem::replace(&mut client.origin, format!("http://{}", a.proxy));
    let (id, _) = client.register("Cluster Agent").await;
    let (verifier, challenge) = pkce("cluster");
    let code = client.consent(&id, &challenge, guest, true).await.unwrap();
    let (_, issued) = client.exchange(&id, &code, &verifier).await;
    let auth = format!("Bearer {}", issued["access_token"].as_str().unwrap());
    let named = [("client", "Cluster Agent"), ("mcp_method_name", "tools/list")];
    eventually(Duration::from_secs(10), "replica b names the token a saw issued", || async {
        assert_eq!(post_mcp(&b.url("/api/mcp-actions/v1"), &[("authorization", &auth)], LIST).await.0, 200);
        let m = b.metrics().await;
        if metric(&m, "mcp_tap_client_operations_total", &named) > 0.0 {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
    let first = issued["refresh_token"].as_str().unwrap().to_string();
    client.origin = format!("http://{}", b.proxy);
    assert_eq!(client.refresh(&id, &first).await.0, 200, "refreshed on the other replica");
    // Replayed on a, until a has learned of the rotation on b; then on b too.
    let replay: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("grant_type", "refresh_token"), ("refresh_token", first.as_str()), ("client_id", id.as_str())])
        .finish();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let token_on_a = format!("http://{}/api/auth/v1/token", a.proxy);
    let replays = eventually(Duration::from_secs(10), "the replay seen on a", || async {
        assert_eq!(request("POST", &token_on_a, &form, replay.clone()).await.0, 400);
        let found = lines_of(&configs, "refresh_token_replay");
        if found.is_empty() {
            Err("not yet".to_string())
        } else {
            Ok(found)
        }
    })
    .await;
    client.origin = format!("http://{}", b.proxy);
    assert_eq!(client.refresh(&id, &first).await.0, 400);
    a.stop().await;
    b.stop().await;
    client.origin = origin;
    let all = lines_of(&configs, "refresh_token_replay");
    assert_eq!((replays.len(), all.len()), (1, 1), "one family, one finding in the cluster: {all:#?}");
    assert_eq!(all[0]["client"], "Cluster Agent");
}

/// Where the binary's outputs go and what it wrote: its logs, audit trail, metrics and the
/// messages rsyslog received.
struct Outputs {
    logs: String,
    audit: String,
    metrics: String,
    syslog: String,
}

/// The real binary (debug logs, its audit also to a real rsyslogd over TCP) in front of the same
/// Backstage: the scripted client's journey through it, with a replay and a revocation.
async fn through_the_binary(backstage: u16, pki: &Pki, guest: &str, client: &mut Scripted) -> Outputs {
    let (cert, key) = (pki.dir.join("cert.pem"), pki.dir.join("key.pem"));
    let (udp, tls, dir) = (free_port(), free_port(), pki.dir.clone());
    let rsyslog = spawn_peer("rsyslogd", |port| rsyslog_command(port, udp, tls, &dir, &cert, &key)).await;
    let upstream = format!("http://127.0.0.1:{backstage}");
    let mut config = audit_config(&upstream);
    config.audit.syslog = Some(format!("tcp://127.0.0.1:{}", rsyslog.port));
    let binary = Binary::start(&config, &upstream);
    let origin = std::mem::replace(&mut client.origin, format!("http://{}", binary.proxy));
    let (id, secret) = client.register("Binary Agent").await;
    let (verifier, challenge) = pkce("binary");
    let code = client.consent(&id, &challenge, guest, true).await.unwrap();
    let (_, issued) = client.exchange(&id, &code, &verifier).await;
    let first = issued["refresh_token"].as_str().unwrap().to_string();
    let second = client.refresh(&id, &first).await.1["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(client.refresh(&id, &first).await.0, 400);
    assert_eq!(client.revoke((&id, &secret), &second).await, 200);
    let auth = format!("Bearer {}", issued["access_token"].as_str().unwrap());
    assert_eq!(
        post_mcp(&format!("http://{}/api/mcp-actions/v1", binary.proxy), &[("authorization", &auth)], LIST).await.0,
        200
    );
    client.origin = origin;
    let metrics = String::from_utf8(get(&format!("http://{}/metrics", binary.admin)).await.2.to_vec()).unwrap();
    assert_eq!(metric(&metrics, "mcp_tap_findings_total", &[("kind", "refresh_token_replay")]), 1.0);
    let (logs, _) = binary.stop();
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    let received = pki.dir.join("received.log");
    let syslog = eventually(Duration::from_secs(10), "every audit line at rsyslog", || async {
        let got = std::fs::read_to_string(&received).unwrap_or_default();
        let lines = audit.lines().count();
        if got.lines().count() >= lines {
            Ok(got)
        } else {
            Err(format!("{} of {lines}", got.lines().count()))
        }
    })
    .await;
    assert!(syslog.contains("refresh_token_replay") && syslog.contains("oauth_revocation"), "{syslog}");
    Outputs { logs, audit, metrics, syslog }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_journey_through_the_tap_is_seen_step_by_step_and_leaks_nothing() {
    let pki = Pki::new("cimd");
    let (cert, key, _) = pki.issue();
    let (_cimd, cimd_url) = cimd_server(&cert, &key, "Acme Document Agent").await;
    let (otlp, exported) = otlp_sink().await;
    let backstage_port = free_port();
    let mut config = test_config(&format!("http://127.0.0.1:{backstage_port}"));
    config.oauth.www_authenticate = WwwAuthenticate::ResourceMetadata;
    config.otlp.endpoint = Some(otlp);
    config.otlp.interval = Some(Duration::from_millis(200));
    // The tap first: Backstage's backend.baseUrl is the tap's origin, as a deployment sets it.
    let tap = Tap::start(config.clone()).await;
    let backstage = oauth_backstage(backstage_port, &format!("http://{}", tap.proxy), &pki.ca_file, &cimd_url).await;
    let mut secrets = Vec::new();
    sdk_journeys(&tap, &cimd_url, &mut secrets).await;
    www_authenticate_names_the_metadata(&tap).await;
    let mut client = Scripted { origin: format!("http://{}", tap.proxy), secrets: Vec::new() };
    let guest = guest_token(backstage.port).await;
    failure_paths(&tap, &mut client, &guest).await;
    failure_paths_are_told_apart(&tap, &config).await;
    another_origin(backstage.port).await;
    let binary = through_the_binary(backstage.port, &pki, &guest, &mut client).await;
    across_two_replicas(backstage.port, &mut client, &guest).await;
    let metrics = tap.metrics().await;
    tap.stop().await;
    secrets.extend(client.secrets);
    secrets.push(guest);
    assert!(secrets.len() >= 20, "the clients handled tokens, codes, verifiers, secrets and states");
    let audit = std::fs::read_to_string(&config.audit.output).unwrap();
    let exported = Bytes::from(exported.lock().unwrap().clone());
    let outputs = [
        ("audit", audit.as_bytes()),
        ("metrics", metrics.as_bytes()),
        ("OTLP", &exported[..]),
        ("binary's logs", binary.logs.as_bytes()),
        ("binary's audit", binary.audit.as_bytes()),
        ("binary's metrics", binary.metrics.as_bytes()),
        ("syslog", binary.syslog.as_bytes()),
    ];
    for (i, secret) in secrets.iter().enumerate() {
        for (what, output) in outputs {
            assert!(!output.windows(secret.len()).any(|w| w == secret.as_bytes()), "secret #{i} in the {what}");
        }
    }
}
