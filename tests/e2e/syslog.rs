//! Audit events to Debian's rsyslog, over UDP, TCP (octet counting) and TLS (RFC 5425, a private
//! CA): each event of the scripted sequence arrives once as an RFC 5424 message that rsyslog
//! parses (priority, MSGID, structured data), its message the JSON line; no token arrives.

use crate::auth_audit::flipped;
use crate::common;
use crate::securing::Pki;
use crate::siem::{scripted_sequence, siem_config, UNKNOWN};

use std::time::Duration;

use common::*;

/// The fields rsyslog wrote for each message: input, priority, MSGID, structured data, message.
fn received(path: &std::path::Path) -> Vec<[String; 5]> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.splitn(5, '|').collect();
            (parts.len() == 5).then(|| std::array::from_fn(|i| parts[i].to_string()))
        })
        .collect()
}

/// Waits until rsyslog takes UDP: a datagram sent before it binds is lost without a trace.
async fn udp_ready(port: u16, log: &std::path::Path) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    eventually(Duration::from_secs(20), "rsyslog receiving UDP", || async {
        let probe = "<14>1 - - - - probe - ready";
        let _ = socket.send_to(probe.as_bytes(), ("127.0.0.1", port)).await;
        if received(log).iter().any(|r| r[2] == "probe") {
            Ok(())
        } else {
            Err("no probe yet".to_string())
        }
    })
    .await;
}

/// A message rsyslog received (input, PRI, MSGID, structured data, message) says what its audit
/// event says: MSGID the event, authpriv with warning for findings, the fields as structured data.
fn is_rfc5424_of_its_event([_, pri, msgid, sd, msg]: &[String; 5]) {
    let event: serde_json::Value = serde_json::from_str(msg).unwrap();
    assert_eq!(msgid, event["event"].as_str().unwrap(), "MSGID names the event");
    let expected = if event.get("finding").is_some() { "84" } else { "86" };
    assert_eq!(pri, expected, "authpriv, warning for findings, info otherwise: {msg}");
    assert!(sd.starts_with("[mcp-tap@32473 ") && sd.ends_with(']'), "{sd}");
    if event["event"] == "auth_failure" {
        let reason = event["reason"].as_str().unwrap();
        assert!(sd.contains(&format!("reason=\"{reason}\"")) && sd.contains("source=\"127.0.0.1\""), "{sd}");
    }
    if event["event"] == "credential_shared" {
        assert!(sd.contains(r#"clients="[\"vscode\",\"claude-code\"\]""#), "nested values escaped: {sd}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_event_reaches_rsyslog_as_an_rfc5424_message() {
    let backstage = backstage().await;
    let upstream = format!("http://127.0.0.1:{}", backstage.port);
    let pki = Pki::new("rsyslog");
    let (cert, key, _) = pki.issue();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tls = free_port();
    let dir = pki.dir.clone();
    let rsyslog = spawn_peer("rsyslogd", |port| rsyslog_command(port, udp, tls, &dir, &cert, &key)).await;
    let log = dir.join("received.log");
    udp_ready(udp, &log).await;
    let guest = guest_token(backstage.port).await;
    for (url, input) in [
        (format!("udp://127.0.0.1:{udp}"), "imudp"),
        (format!("tcp://127.0.0.1:{}", rsyslog.port), "imptcp"),
        (format!("tls://localhost:{tls}"), "imtcp"),
    ] {
        let mut config = siem_config(&upstream);
        config.audit.syslog = Some(url.clone());
        config.audit.syslog_ca_file = Some(pki.ca_file.clone());
        let audit = config.audit.output.clone();
        let tap = Tap::start(config).await;
        scripted_sequence(&tap.url("/api/mcp-actions/v1"), &guest).await;
        tap.stop().await;
        let lines: Vec<String> = std::fs::read_to_string(&audit).unwrap().lines().map(str::to_string).collect();
        assert!(lines.len() >= 10, "{lines:#?}");
        let got = eventually(Duration::from_secs(10), &format!("every event at rsyslog over {url}"), || async {
            let got: Vec<[String; 5]> =
                received(&log).into_iter().filter(|r| r[0] == input && r[2] != "probe").collect();
            let missing = lines.iter().filter(|l| !got.iter().any(|r| &r[4] == *l)).count();
            if missing == 0 {
                Ok(got)
            } else {
                Err(format!("{missing} of {} events missing; rsyslog has {got:#?}", lines.len()))
            }
        })
        .await;
        assert_eq!(got.len(), lines.len(), "each event once over {url}");
        got.iter().for_each(is_rfc5424_of_its_event);
        assert!(got.iter().any(|r| r[2] == "burst_start") && got.iter().any(|r| r[2] == "operation"));
    }
    let everything = std::fs::read_to_string(&log).unwrap();
    let payload = guest.split('.').nth(1).unwrap();
    for secret in [TOKEN_FULL, TOKEN_CATALOG_ONLY, UNKNOWN, guest.as_str(), payload, &flipped(&guest)] {
        assert!(!everything.contains(secret), "a token or JWT payload reached syslog");
    }
}
