//! Fetching the upstream's public keys for Backstage user tokens (`user_tokens.jwks_path`):
//! periodically once user tokens are seen, and when a refused token names a `kid` the tap does
//! not hold; never two fetches within `user_tokens.min_refresh_interval`. A refusal never waits
//! for a fetch: it is answered at once, and explained when the fetch ends.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use tokio::sync::watch;
use tokio::time::Instant;

use super::request::Caller;
use super::Shared;
use crate::config::Config;
use crate::http_client::UpstreamBody;
use crate::identity::jwt;

/// A JWKS larger than this is refused (Backstage's is well under 2 KB).
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Time allowed for one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the explanation of a refusal waits for a fetch under way (the client never waits).
pub(crate) const EXPLAIN_WAIT: Duration = FETCH_TIMEOUT;

/// Fetches the keys and replaces the held ones; `None` when the fetch failed (counted, logged).
pub(crate) async fn fetch(shared: &Shared, config: &Config) -> Option<usize> {
    let url = format!("{}{}", config.upstream.url.trim_end_matches('/'), config.user_tokens.jwks_path);
    let result = tokio::time::timeout(FETCH_TIMEOUT, async {
        let req = http::Request::get(&url).body(UpstreamBody::Full { data: None, trailers: None })?;
        let resp = shared.client.load().shared.request(req).await?;
        anyhow::ensure!(resp.status().is_success(), "answered {}", resp.status());
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| anyhow::anyhow!(e))?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&body.to_bytes())?;
        Ok(shared.auditor.who.signing_keys.replace(&set))
    })
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {FETCH_TIMEOUT:?}")));
    let keys = match result {
        Ok(n) => {
            tracing::debug!(%url, keys = n, "user-token signing keys fetched");
            Some(n)
        }
        Err(e) => {
            tracing::warn!(%url, "user-token signing keys not fetched: {e}; refusals of user tokens are explained with the keys held");
            None
        }
    };
    shared.metrics.record_jwks_fetch(keys);
    shared.auditor.who.signing_keys.fetch_ended();
    keys
}

/// Backstage refused `caller`'s request: if it carried a user token signed by a key the tap does
/// not hold, start a fetch when one is due. Returns, while a fetch is under way, what changes
/// when it ends, so the refusal is explained with the new keys; the response never waits for it.
pub(crate) fn fetch_for_refusal(
    shared: &Arc<Shared>,
    config: &Config,
    caller: &Caller,
) -> Option<watch::Receiver<u64>> {
    let token = caller.user_token.as_ref()?;
    let keys = &shared.auditor.who.signing_keys;
    if jwt::key_id(token.as_str()).is_none_or(|kid| keys.contains(&kid)) {
        return None;
    }
    keys.want_refresh();
    let t = &config.user_tokens;
    if keys.fetch_due(Instant::now(), t.min_refresh_interval, t.refresh_interval) {
        let (shared, config) = (shared.clone(), shared.config.load_full());
        tokio::spawn(async move { fetch(&shared, &config).await });
    }
    keys.fetch_in_flight()
}

/// Keeps the keys fresh until `stop`.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let config = shared.config.load_full();
        let t = &config.user_tokens;
        tokio::select! {
            _ = tokio::time::sleep(t.min_refresh_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if shared.auditor.who.signing_keys.fetch_due(Instant::now(), t.min_refresh_interval, t.refresh_interval) {
            fetch(&shared, &config).await;
        }
    }
}
