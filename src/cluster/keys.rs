//! How the cluster's state is laid out in the store: key names, time buckets, thresholds, and
//! the store URL with its password (and without it, for logs).

use std::time::Duration;

use redis::{FromRedisValue, Value};

use crate::config::Bursts;
pub(super) use crate::detect::burst::windows;
use crate::detect::burst::{BurstKey, Scope};

pub(super) use crate::clock::unix_ms;

pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The store text of a burst key: scope and subject (an address, a network, a keyed fingerprint).
pub(super) fn key_text(key: &BurstKey) -> String {
    format!("{}:{}", key.scope.as_str(), key.key)
}

pub(super) fn threshold(cfg: &Bursts, scope: Scope) -> (Duration, u64) {
    match scope {
        Scope::Source => (cfg.source.window, u64::from(cfg.source.failures)),
        Scope::Credential => (cfg.credential.window, u64::from(cfg.credential.failures)),
        Scope::Global => (cfg.global.window, u64::from(cfg.global.failures)),
        Scope::Stuffing => (cfg.stuffing.window, u64::from(cfg.stuffing.credentials)),
    }
}

/// The URL with the password put in (percent-encoded), and the address alone, for logs.
pub(super) fn urls(url: &str, password: Option<&str>) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (userinfo, host) = rest.rsplit_once('@').map_or((None, rest), |(u, h)| (Some(u), h));
    let shown = format!("{scheme}://{}", host.split('/').next().unwrap_or(host));
    let Some(password) = password else { return (url.to_string(), shown) };
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let user = userinfo.map_or("", |u| u.split(':').next().unwrap_or(""));
    (format!("{scheme}://{user}:{encoded}@{host}"), shown)
}

pub(super) fn take<T: FromRedisValue>(values: &mut std::vec::IntoIter<Value>) -> redis::RedisResult<T> {
    let v = values.next().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Parse, "short reply")))?;
    T::from_redis_value(v).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_into_the_url_and_never_into_what_is_shown() {
        let (url, shown) = urls("redis://valkey:6379/0", Some("p@ss w:rd"));
        assert_eq!(url, "redis://:p%40ss%20w%3Ard@valkey:6379/0");
        assert_eq!(shown, "redis://valkey:6379");
        let (url, shown) = urls("rediss://tap:old@valkey:6380", Some("new"));
        assert_eq!((url.as_str(), shown.as_str()), ("rediss://tap:new@valkey:6380", "rediss://valkey:6380"));
        assert_eq!(urls("redis://u:secret@h:1", None).1, "redis://h:1");
    }
}
