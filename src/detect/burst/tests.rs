//! The burst detector with paused time: thresholds, windows, quiet periods, stuffing, bounds.
use super::*;
use crate::config::{Stuffing, Threshold};
use crate::identity::{Fingerprinter, KeySource};

fn cfg() -> Bursts {
    Bursts {
        source: Threshold { failures: 5, window: Duration::from_secs(10) },
        credential: Threshold { failures: 100, window: Duration::from_secs(10) },
        stuffing: Stuffing { credentials: 3, window: Duration::from_secs(60) },
        global: Threshold { failures: 1000, window: Duration::from_secs(10) },
        quiet_period: Duration::from_secs(30),
        max_tracked_keys: 3,
        ipv6_prefix: 64,
    }
}

fn fp(t: &str) -> Fingerprint {
    Fingerprinter::new(b"0123456789abcdef", KeySource::File).fingerprint(t)
}

const IP: &str = "10.0.0.1";

#[tokio::test(start_paused = true)]
async fn a_burst_starts_at_the_threshold_and_ends_after_the_quiet_period() {
    let mut d = BurstDetector::new(cfg(), 2, Duration::from_secs(5));
    let ip: IpAddr = IP.parse().unwrap();
    let mut lines = 0;
    let mut started_at = None;
    for i in 0..10 {
        let v = d.failure(Instant::now(), ip, None, Reason::MissingCredentials, "none");
        lines += usize::from(v.write_line);
        if v.events.iter().any(|e| matches!(e, BurstEvent::Started { .. })) {
            started_at = Some(i);
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    // Five failures within the 10 s window reach the threshold of 5: the fifth starts the burst.
    assert_eq!(started_at, Some(4));
    assert_eq!(d.active(Scope::Source), 1);
    // 4 lines before the burst, then 2 inside it; the other 4 went into the summary.
    assert_eq!(lines, 6);
    tokio::time::advance(Duration::from_secs(5)).await;
    let events = d.tick(Instant::now());
    assert_eq!(
        events,
        vec![BurstEvent::Summary {
            key: BurstKey { scope: Scope::Source, key: Subject::Address(IP.parse().unwrap()) },
            summary: Summary { count: 4, by_reason: [(Reason::MissingCredentials, 4)].into() },
        }]
    );
    tokio::time::advance(Duration::from_secs(24)).await;
    assert!(d.tick(Instant::now()).is_empty(), "not quiet long enough yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    match d.tick(Instant::now()).as_slice() {
        [BurstEvent::Ended { failures, summary, .. }] => {
            assert_eq!(*failures, 6, "the crossing failure and the 5 after it");
            assert_eq!(summary.count, 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.active(Scope::Source), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_failures_stay_under_the_window_count_and_never_burst() {
    let mut d = BurstDetector::new(cfg(), 2, Duration::from_secs(5));
    for _ in 0..50 {
        let v = d.failure(Instant::now(), IP.parse().unwrap(), None, Reason::UnknownToken, "unknown");
        assert!(v.events.is_empty() && v.write_line);
        tokio::time::advance(Duration::from_secs(3)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn many_credentials_from_one_source_is_stuffing() {
    let mut c = cfg();
    c.source.failures = 1000;
    let mut d = BurstDetector::new(c, 10, Duration::from_secs(5));
    let mut scopes = Vec::new();
    for t in ["a", "b", "c", "c"] {
        for e in d.failure(Instant::now(), IP.parse().unwrap(), Some(fp(t)), Reason::UnknownToken, "unknown").events {
            if let BurstEvent::Started { key, .. } = e {
                scopes.push(key.scope);
            }
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(scopes, vec![Scope::Stuffing]);
}

#[tokio::test(start_paused = true)]
async fn tracked_keys_are_bounded_and_evictions_reported() {
    let mut d = BurstDetector::new(cfg(), 2, Duration::from_secs(5));
    let mut evicted = 0;
    for i in 0..10u8 {
        let ip = IpAddr::from([10, 0, 0, i]);
        evicted += d.failure(Instant::now(), ip, None, Reason::Other, "unknown").evicted.len();
    }
    assert_eq!(evicted, 7);
    assert_eq!(d.sources.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_new_attacker_gets_lines_of_its_own_during_a_global_burst() {
    let mut c = cfg();
    c.source = Threshold { failures: 1000, window: Duration::from_secs(10) };
    c.global = Threshold { failures: 5, window: Duration::from_secs(10) };
    let mut d = BurstDetector::new(c, 2, Duration::from_secs(5));
    let first: IpAddr = "10.0.0.1".parse().unwrap();
    for _ in 0..20 {
        d.failure(Instant::now(), first, None, Reason::UnknownToken, "unknown");
    }
    assert_eq!(d.active(Scope::Global), 1, "the first attacker set off the global burst");
    let second: IpAddr = "10.0.0.2".parse().unwrap();
    let lines = (0..3).filter(|_| d.failure(Instant::now(), second, None, Reason::UnknownToken, "x").write_line);
    assert_eq!(lines.count(), 3, "the second attacker is not hidden inside the first one's burst");
}

#[tokio::test(start_paused = true)]
async fn an_ipv6_attacker_rotating_through_its_64_is_one_source() {
    let mut d = BurstDetector::new(cfg(), 2, Duration::from_secs(5));
    let mut started = Vec::new();
    for i in 0..10u16 {
        let ip: IpAddr = format!("2001:db8:1:2:{i:x}::1").parse().unwrap();
        started.extend(d.failure(Instant::now(), ip, None, Reason::UnknownToken, "unknown").events);
    }
    assert_eq!(d.active(Scope::Source), 1);
    match started.as_slice() {
        [BurstEvent::Started { key, .. }] => assert_eq!(key.key.to_string(), "2001:db8:1:2::/64"),
        other => panic!("{other:?}"),
    }
    // Another /64 is another source.
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert!(d.failure(Instant::now(), other, None, Reason::UnknownToken, "unknown").write_line);
    assert_eq!(d.active(Scope::Source), 1);
}

#[test]
fn a_window_and_how_far_into_it() {
    assert_eq!(windows(Duration::from_secs(60), 90_000), (1, 0.5));
    assert_eq!(windows(Duration::from_millis(10), 2_500), (2, 0.5), "at least a second");
    assert_eq!(estimate(3, 10, 0.25), 10, "three now and three quarters of the ten before");
}
