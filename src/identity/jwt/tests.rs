//! Verdicts on tokens signed with the test Backstage's key (tests/backstage/keys), one per way a
//! token can fail.
use super::*;
use jsonwebtoken::{encode, EncodingKey, Header as JwtHeader};

const KID: &str = "mcp-tap-test-key-1";
/// The public half of tests/backstage/keys/backstage.key.pem, as Backstage's JWKS serves it.
const JWKS: &str = r#"{"keys":[{"kty":"EC","x":"7SLcOKW2PMmjawPCzze1lVYT5-ILzRtI_KKR_GoNOcg","y":"88C1XBewt6WeVE0z03E-GhIPjk6BuMz7j3zz0Vh__nY","crv":"P-256","kid":"mcp-tap-test-key-1","alg":"ES256","use":"sig"}]}"#;
const NOW: i64 = 1_800_000_000;

fn key(name: &str) -> EncodingKey {
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/backstage/keys/").to_string() + name).unwrap();
    EncodingKey::from_ec_pem(&pem).unwrap()
}

fn token(key_file: &str, kid: &str, typ: &str, claims: serde_json::Value) -> String {
    let mut h = JwtHeader::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    h.typ = (!typ.is_empty()).then(|| typ.to_string());
    encode(&h, &claims, &key(key_file)).unwrap()
}

fn claims(aud: &str, iat: i64, exp: i64) -> serde_json::Value {
    serde_json::json!({"iss": "http://127.0.0.1/api/auth", "sub": "user:default/alice", "aud": aud, "iat": iat, "exp": exp})
}

fn keys() -> SigningKeys {
    let k = SigningKeys::default();
    assert_eq!(k.replace(&serde_json::from_str(JWKS).unwrap()), 1);
    k
}

#[test]
fn every_way_a_user_token_fails_has_its_own_verdict() {
    let keys = keys();
    let good = token("backstage.key.pem", KID, USER_TOKEN_TYPE, claims("backstage", NOW - 10, NOW + 3600));
    let alice = Some("user:default/alice".to_string());
    assert!(is_jwt(&good));
    assert_eq!(explain(&good, &keys, NOW), (Verdict::Valid, alice.clone()));
    assert_eq!(subject(&good), alice);

    let expired = token("backstage.key.pem", KID, USER_TOKEN_TYPE, claims("backstage", NOW - 7200, NOW - 3600));
    assert_eq!(explain(&expired, &keys, NOW), (Verdict::Expired { seconds: 3600 }, alice.clone()));
    let early = token("backstage.key.pem", KID, USER_TOKEN_TYPE, claims("backstage", NOW + 600, NOW + 4200));
    assert_eq!(explain(&early, &keys, NOW).0, Verdict::NotYetValid);
    // Backstage checks the audience only of a token without `typ`.
    let elsewhere = token("backstage.key.pem", KID, "", claims("grafana", NOW, NOW + 3600));
    assert_eq!(explain(&elsewhere, &keys, NOW), (Verdict::WrongAudience, alice));
    let typed = token("backstage.key.pem", KID, USER_TOKEN_TYPE, claims("grafana", NOW, NOW + 3600));
    assert_eq!(explain(&typed, &keys, NOW).0, Verdict::Valid);
    let plugin = token("backstage.key.pem", KID, "vnd.backstage.plugin", claims("backstage", NOW, NOW + 3600));
    assert_eq!(explain(&plugin, &keys, NOW).0, Verdict::WrongType);

    // Another key pair: under a kid Backstage never published, or posing as Backstage's kid.
    let other = token("other.key.pem", "someone-elses-key", USER_TOKEN_TYPE, claims("backstage", NOW, NOW + 3600));
    assert_eq!(explain(&other, &keys, NOW), (Verdict::UnknownKey, None));
    let forged = token("other.key.pem", KID, USER_TOKEN_TYPE, claims("backstage", NOW, NOW + 3600));
    assert_eq!(explain(&forged, &keys, NOW), (Verdict::BadSignature, None));
    // One flipped signature byte, a truncated token, garbage.
    let mut flipped = good.clone().into_bytes();
    let i = flipped.len() - 10;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(explain(std::str::from_utf8(&flipped).unwrap(), &keys, NOW).0, Verdict::BadSignature);
    assert_eq!(explain(&good[..good.len() / 2], &keys, NOW).0, Verdict::Malformed);
    assert_eq!(explain("eyJ.eyJ.x", &keys, NOW).0, Verdict::Malformed);
    assert!(!is_jwt("tap-test-full-7c1e9a52d4"));
}

#[tokio::test(start_paused = true)]
async fn refreshes_are_rate_limited_whatever_the_unknown_kids() {
    let keys = SigningKeys::default();
    let (min, refresh) = (Duration::from_secs(30), Duration::from_secs(600));
    assert!(!keys.fetch_due(Instant::now(), min, refresh), "no user token seen: nothing to fetch");
    keys.token_seen();
    assert!(keys.fetch_due(Instant::now(), min, refresh), "the first fetch");
    for i in 0..10_000 {
        let forged = format!("forged-{i}");
        assert!(!keys.contains(&forged));
        keys.want_refresh();
        assert!(!keys.fetch_due(Instant::now(), min, refresh), "within the minimum interval");
    }
    tokio::time::advance(min).await;
    assert!(keys.fetch_due(Instant::now(), min, refresh), "wanted, and the interval passed");
    tokio::time::advance(min).await;
    assert!(!keys.fetch_due(Instant::now(), min, refresh), "nothing wanted since");
    tokio::time::advance(refresh).await;
    assert!(keys.fetch_due(Instant::now(), min, refresh), "the periodic refresh");
}

proptest::proptest! {
    /// Whatever a client puts in its `Authorization` header, the verdict is a verdict: no panic,
    /// and no user named unless a signature held.
    #[test]
    fn any_token_gets_a_verdict(token in "eyJ[A-Za-z0-9_.=-]{0,300}", raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let keys = keys();
        for t in [token, String::from_utf8_lossy(&raw).into_owned()] {
            let (verdict, user) = explain(&t, &keys, NOW);
            proptest::prop_assert!(user.is_none() || verdict.signed());
            let _ = (subject(&t), key_id(&t), is_jwt(&t));
        }
    }
}
