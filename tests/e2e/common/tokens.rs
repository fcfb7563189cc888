//! Backstage user tokens for the tests: real ones minted by the test Backstage's guest provider,
//! and variants signed with its test key pair (tests/backstage/keys) or another one.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

use super::{get_with, repo};

/// The `kid` of the test Backstage's static signing key.
pub const BACKSTAGE_KID: &str = "mcp-tap-test-key-1";

/// The wall clock: the tests' one reading of it, as `mcp_tap`'s is `clock::now`.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> SystemTime {
    SystemTime::now()
}

pub fn unix_now() -> i64 {
    wall_clock().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A real user token for `user:development/guest`, from the guest provider of the Backstage on
/// `port`.
pub async fn guest_token(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/api/auth/guest/refresh");
    let (status, body) = get_with(&url, &[("x-requested-with", "XMLHttpRequest")]).await;
    assert_eq!(status, 200, "the guest provider: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["backstageIdentity"]["token"].as_str().expect("a guest token").to_string()
}

/// A token signed with `key` (`backstage` or `other`, in tests/backstage/keys) under `kid`, with
/// header `typ` (none when empty).
pub fn sign(key: &str, kid: &str, typ: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(repo().join(format!("tests/backstage/keys/{key}.key.pem"))).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    header.typ = (!typ.is_empty()).then(|| typ.to_string());
    encode(&header, claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

/// Claims like a guest token's, for `aud`, issued at `iat` and expiring at `exp`.
pub fn claims(aud: &str, iat: i64, exp: i64) -> serde_json::Value {
    serde_json::json!({"iss": "http://127.0.0.1/api/auth", "sub": "user:development/guest", "aud": aud, "iat": iat, "exp": exp})
}
