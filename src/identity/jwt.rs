//! Backstage user tokens: the ES256 JWTs Backstage's auth backend hands to OAuth clients. Backstage
//! answers every failed verification with the same 401; the tap verifies a refused token itself,
//! against the upstream's public keys (JWKS), to say why. The tap never acts on its own verdict:
//! Backstage decides, the tap explains.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;

/// The `typ` of a Backstage user token.
pub(crate) const USER_TOKEN_TYPE: &str = "vnd.backstage.user";
/// The `typ` of the limited user token Backstage derives for cookies.
pub(crate) const LIMITED_USER_TOKEN_TYPE: &str = "vnd.backstage.limited-user";
/// The `aud` Backstage issues, and expects on a token without `typ`.
pub(crate) const AUDIENCE: &str = "backstage";
/// Signing keys kept from one JWKS; a larger set is cut (Backstage publishes a handful).
pub(crate) const MAX_KEYS: usize = 32;
/// Seconds of clock difference tolerated for `nbf` and `iat`.
const LEEWAY: i64 = 60;

/// Whether a bearer token looks like a JWT (a base64url JSON header, then a dot), whole or not:
/// a truncated one is a malformed JWT, not an unknown static token.
pub(crate) fn is_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.contains('.')
}

/// A user token held for the length of its request, to be explained if Backstage refuses it.
/// Never printed: its `Debug` says only that it is there.
#[derive(Clone)]
pub(crate) struct HeldToken(Arc<str>);

impl HeldToken {
    /// The bearer token of `authorization`, if it has the shape of a JWT.
    pub(crate) fn from_header(authorization: Option<&http::HeaderValue>) -> Option<Self> {
        let token = super::bearer_token(authorization?.as_bytes())?;
        is_jwt(token).then(|| Self(token.into()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HeldToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldToken(redacted)")
    }
}

/// What the tap concludes about a user token Backstage refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a decodable JWT (bad base64, bad JSON, missing parts).
    Malformed,
    /// A JWT, but not a Backstage user token (`typ`).
    WrongType,
    /// Signed with a key (`kid`) that is not in the upstream's JWKS.
    UnknownKey,
    BadSignature,
    WrongAudience,
    /// `exp` passed this many seconds ago.
    Expired {
        seconds: u64,
    },
    /// `nbf` (or `iat`) is in the future.
    NotYetValid,
    /// Signed, addressed and in date: a refusal of it is a revocation.
    Valid,
}

impl Verdict {
    /// Whether the signature was checked and holds, so the claims (the user) can be believed
    /// (what `explain` promises about the user it returns; the property tests check it).
    #[cfg(test)]
    pub(crate) fn signed(self) -> bool {
        matches!(self, Verdict::WrongAudience | Verdict::Expired { .. } | Verdict::NotYetValid | Verdict::Valid)
    }
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

fn part<T: serde::de::DeserializeOwned>(b64: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `kid` a token names, if it decodes.
pub(crate) fn key_id(token: &str) -> Option<String> {
    part::<Header>(token.split('.').next()?)?.kid
}

/// The user entity ref (`sub`) of a token, not verified: for a token Backstage accepted.
pub(crate) fn subject(token: &str) -> Option<String> {
    let claims: Claims = part(token.split('.').nth(1)?)?;
    claims.sub.map(|s| crate::bounded::cut(&s, crate::bounded::USER_REF).to_string())
}

/// The verdict on `token` at Unix time `now`, and its user (`sub`) when the signature holds.
/// A `kid` not in `keys` asks them for a refresh.
pub(crate) fn explain(token: &str, keys: &SigningKeys, now: i64) -> (Verdict, Option<String>) {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return (Verdict::Malformed, None);
    };
    let (Some(header), Some(claims)) = (part::<Header>(h), part::<Claims>(c)) else {
        return (Verdict::Malformed, None);
    };
    // Backstage checks `aud` only on a token without `typ` (the older user tokens); a typed one
    // must be a user token, and its `aud` is not checked (measured on backend-defaults 0.18).
    let check_audience = match header.typ.as_deref() {
        Some(USER_TOKEN_TYPE | LIMITED_USER_TOKEN_TYPE) => false,
        None => true,
        Some(_) => return (Verdict::WrongType, None),
    };
    let Some(key) = header.kid.as_deref().and_then(|kid| keys.get(kid)) else {
        keys.want_refresh();
        return (Verdict::UnknownKey, None);
    };
    let alg = match header.alg.as_deref() {
        Some("ES256") => Algorithm::ES256,
        Some("ES384") => Algorithm::ES384,
        _ => return (Verdict::BadSignature, None),
    };
    let signing_input = &token[..h.len() + 1 + c.len()];
    if !jsonwebtoken::crypto::verify(sig, signing_input.as_bytes(), &key, alg).unwrap_or(false) {
        return (Verdict::BadSignature, None);
    }
    let user = claims.sub.as_ref().map(|s| crate::bounded::cut(s, crate::bounded::USER_REF).to_string());
    let addressed = match &claims.aud {
        Some(Audience::One(a)) => a == AUDIENCE,
        Some(Audience::Many(v)) => v.iter().any(|a| a == AUDIENCE),
        None => false,
    };
    let verdict = if check_audience && !addressed {
        Verdict::WrongAudience
    } else if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        Verdict::Expired { seconds: u64::try_from(now - exp).unwrap_or(0) }
    } else if claims.nbf.is_some_and(|t| t > now + LEEWAY) || claims.iat.is_some_and(|t| t > now + LEEWAY) {
        Verdict::NotYetValid
    } else {
        Verdict::Valid
    };
    (verdict, user)
}

/// The upstream's signing keys by `kid`, replaced whole by each JWKS fetch, and the fetch
/// schedule: every refresh interval once user tokens have been seen, and early when a refused
/// token names an unknown `kid`; never two fetches within the minimum interval, so forged `kid`s
/// cannot make the tap hammer Backstage.
pub(crate) struct SigningKeys {
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    /// An unknown `kid` was seen since the last fetch.
    wanted: AtomicBool,
    /// A user token was seen at all (before that, nothing is fetched).
    seen: AtomicBool,
    last_fetch: Mutex<Option<Instant>>,
    /// A fetch is under way.
    fetching: AtomicBool,
    /// Counts the fetches that ended (keys replaced or not): refusals explained late wait on it.
    fetches: tokio::sync::watch::Sender<u64>,
}

impl Default for SigningKeys {
    fn default() -> Self {
        Self {
            keys: ArcSwap::from_pointee(HashMap::new()),
            wanted: false.into(),
            seen: false.into(),
            last_fetch: Mutex::new(None),
            fetching: false.into(),
            fetches: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl SigningKeys {
    pub(crate) fn get(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.load().get(kid).cloned()
    }

    pub(crate) fn contains(&self, kid: &str) -> bool {
        self.keys.load().contains_key(kid)
    }

    /// Replaces the keys with those of `set` (EC and RSA keys with a `kid`, at most `MAX_KEYS`).
    pub(crate) fn replace(&self, set: &JwkSet) -> usize {
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .take(MAX_KEYS)
            .collect();
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        n
    }

    /// A user token went by: from now on the keys are kept fresh.
    pub(crate) fn token_seen(&self) {
        if !self.seen.load(Ordering::Relaxed) {
            self.seen.store(true, Ordering::Relaxed);
        }
    }

    /// A refused token named a `kid` the keys do not have.
    pub(crate) fn want_refresh(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// Whether a fetch may start at `now`, and if so marks it started: user tokens were seen, a
    /// refresh is wanted or `refresh` passed since the last fetch, and `min` passed too.
    pub(crate) fn fetch_due(&self, now: Instant, min: Duration, refresh: Duration) -> bool {
        if !self.seen.load(Ordering::Relaxed) {
            return false;
        }
        let mut last = self.last_fetch.lock().expect("jwks lock");
        let since = last.map(|l| now.saturating_duration_since(l));
        let wanted = self.wanted.load(Ordering::Relaxed) || since.is_none_or(|s| s >= refresh);
        if !wanted || since.is_some_and(|s| s < min) {
            return false;
        }
        *last = Some(now);
        self.wanted.store(false, Ordering::Relaxed);
        self.fetching.store(true, Ordering::Release);
        true
    }

    /// A fetch ended, whether it replaced the keys or not.
    pub(crate) fn fetch_ended(&self) {
        self.fetching.store(false, Ordering::Release);
        self.fetches.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// While a fetch is under way, a receiver that changes when it ends.
    pub(crate) fn fetch_in_flight(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        // Subscribed before the check: a fetch that ends in between still changes it.
        let ended = self.fetches.subscribe();
        self.fetching.load(Ordering::Acquire).then_some(ended)
    }
}

#[cfg(test)]
mod tests;
