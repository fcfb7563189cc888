//! The auth audit: every 401/403 (and delegated-access denial) explained with a reason, named by
//! client (never by token), fed to the burst detector, and written once to metrics, logs and the
//! JSON-lines audit trail from one emit point.

mod announce;
mod approved;
pub(crate) mod event;
mod expiry;
mod failure;
mod finding;
pub(crate) mod oauth;
pub(crate) mod outbox;
mod preinit;
mod reach;
pub(crate) mod reason;
mod sharing;
pub(crate) mod sink;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use self::event::{AuditEvent, AuditLine, AuthFailureLine};
use self::outbox::Outbox;
use self::reason::{Reason, SuccessHistory};
use self::sink::AuditSink;
use crate::bounded;
use crate::config::Config;
use crate::detect::{burst, Detectors};
use crate::identity::{Fingerprinter, Identities, KeySource, Known, CLIENT_UNKNOWN};
use crate::mcp::method::Method;
use crate::metrics::Metrics;
pub(crate) use failure::AuthFailure;

pub(crate) struct Auditor {
    /// Who is calling: token directory, fingerprints, client names, user-token keys.
    pub who: Identities,
    /// Which credentials worked lately (a refusal of one is `revoked_token`).
    pub history: SuccessHistory,
    /// What is wrong: bursts, shared credentials, expired-token storms, approved networks.
    detect: Detectors,
    sink: AuditSink,
    metrics: Arc<Metrics>,
    pager: Option<Box<dyn Pages>>,
    max_user_agent: AtomicUsize,
    /// Cluster mode: what this replica counted and decided for the cluster (`cluster` takes it).
    pub(crate) shared: Option<Outbox>,
    /// Routes whose zero series exist (new subjects after a reload get theirs too).
    routes: Mutex<Vec<String>>,
    /// Refusals explained later (when the upstream's signing keys arrive): run on the runtime
    /// the auditor was made on, which outlives the proxy's workers, and counted so that a stop
    /// waits for them (`settle`).
    later: (Option<tokio::runtime::Handle>, Arc<AtomicUsize>),
}

/// Where burst pages go (Alertmanager, `export::alertmanager`): the audit decides that a burst
/// started or ended, the pager delivers it.
pub(crate) trait Pages: Send + Sync {
    fn burst_started(&self, key: &burst::BurstKey, client: &str);
    fn burst_ended(&self, key: &burst::BurstKey, client: &str);
    /// Every active burst again, so Alertmanager keeps it firing.
    fn resend(&self);
}

/// A fingerprint key made at start: fingerprints change at every restart, and in cluster mode
/// differ between replicas.
fn warn_about_the_key(config: &Config, fingerprinter: &Fingerprinter) {
    if fingerprinter.source == KeySource::Random && config.cluster.url(&config.env).is_some() {
        tracing::error!(
            env = %config.audit.fingerprint_key_env,
            "cluster mode without a fingerprint key: every replica fingerprints a credential \
             differently, so credential bursts and shared credentials are not seen across \
             replicas; give every replica the same key"
        );
    } else if fingerprinter.source == KeySource::Random {
        tracing::warn!(
            env = %config.audit.fingerprint_key_env,
            "no fingerprint key configured: credential fingerprints change at every restart; \
             set audit.fingerprint_key_file or the environment variable"
        );
    }
}

impl Auditor {
    pub(crate) fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        sink: AuditSink,
        fingerprinter: Fingerprinter,
        pager: Option<Box<dyn Pages>>,
        route_labels: &[&str],
    ) -> Self {
        warn_about_the_key(config, &fingerprinter);
        let auditor = Self {
            who: Identities::new(config, fingerprinter),
            history: SuccessHistory::new(config.audit.max_remembered_credentials, config.audit.revoked_retention),
            pager,
            max_user_agent: AtomicUsize::new(config.audit.max_user_agent),
            detect: Detectors::new(config),
            shared: config.cluster.url(&config.env).map(|_| Outbox::new(config.cluster.max_pending_keys)),
            routes: Mutex::new(Vec::new()),
            later: (tokio::runtime::Handle::try_current().ok(), Arc::default()),
            sink,
            metrics,
        };
        for route in route_labels {
            auditor.preinit_route(route);
        }
        auditor.preinit_unapproved();
        auditor.metrics.preinit_bursts();
        auditor.metrics.preinit_audit(&AuditEvent::NAMES);
        auditor.metrics.preinit_findings(&event::FINDINGS);
        auditor.metrics.preinit_user_tokens(&[CLIENT_UNKNOWN]);
        auditor.metrics.preinit_oauth(CLIENT_UNKNOWN);
        auditor
    }

    /// Applies a reloaded config: the token directory (writing the fingerprint diff to the audit
    /// log), burst thresholds and audit limits.
    pub(crate) fn reload(&self, config: &Config) {
        let (added, removed) = self.who.reload(config);
        if !added.is_empty() || !removed.is_empty() {
            for (fp, _) in &removed {
                // A token taken out of service counts as having worked: its next use is revoked.
                self.history.succeeded(*fp);
            }
            let names = |v: &[Known]| v.iter().map(|(f, s)| format!("{f} ({s})")).collect::<Vec<_>>();
            tracing::info!(added = ?names(&added), removed = ?names(&removed), "the set of known client tokens changed");
            self.write(AuditEvent::TokenSetChanged {
                added: added.iter().map(|(f, _)| f.to_string()).collect(),
                removed: removed.iter().map(|(f, _)| f.to_string()).collect(),
            });
        }
        self.history.set_limits(config.audit.max_remembered_credentials, config.audit.revoked_retention);
        self.detect.reconfigure(config);
        self.max_user_agent.store(config.audit.max_user_agent, Ordering::Relaxed);
        self.preinit_unapproved();
        let routes = self.routes.lock().expect("routes lock").clone();
        for route in routes {
            self.preinit_route(&route);
        }
    }

    /// Counts, logs, audits and feeds the burst detector: the one place an auth failure goes.
    pub(crate) fn emit(&self, f: &AuthFailure<'_>) {
        let client = f.client;
        self.metrics.record_auth_failure(f.route, f.status, f.reason, client, f.mcp_method);
        if f.reason == Reason::TokenExpired && self.expired(f) {
            return;
        }
        self.note_mcp_refusal(f);
        let fingerprint = f.credential.fingerprint();
        let (verdict, keys) = {
            let mut bursts = self.detect.bursts.lock().expect("burst lock");
            let verdict = bursts.failure(Instant::now(), f.source, fingerprint, f.reason, client);
            (verdict, self.shared.as_ref().map(|_| bursts.keys_for(f.source, fingerprint)))
        };
        if let (Some(shared), Some((source, keys))) = (&self.shared, keys) {
            shared.failure(&keys, source, fingerprint, client);
        }
        for scope in &verdict.evicted {
            self.metrics.record_burst_eviction(*scope);
        }
        let finding = self.first_finding(f);
        if verdict.write_line || finding.is_some() {
            let credential = fingerprint.map(|fp| fp.to_string());
            tracing::warn!(
                route = f.route,
                status = f.status,
                reason = f.reason.as_str(),
                client,
                credential = credential.as_deref().unwrap_or("-"),
                source = %f.source,
                mcp_method = f.mcp_method.map_or("", Method::as_str),
                "request refused by the upstream"
            );
            self.write(AuditEvent::AuthFailure(AuthFailureLine {
                status: f.status,
                reason: f.reason,
                route: f.route.to_string(),
                http_method: f.http_method.to_string(),
                mcp_method: f.mcp_method,
                tool: f.tool.map(|t| bounded::cut(t, bounded::TOOL_NAME).to_string()),
                client: client.to_string(),
                user: f.user.map(str::to_string),
                expired_seconds: f.expired_seconds,
                credential,
                source: f.source.to_string(),
                user_agent: f
                    .user_agent
                    .map(|ua| bounded::cut(ua, self.max_user_agent.load(Ordering::Relaxed)).to_string()),
                request_id: f.request_id.map(|r| bounded::cut(r, bounded::REQUEST_ID).to_string()),
                jsonrpc_id: f.jsonrpc_id.clone(),
                trace_id: f.trace_id.map(str::to_string),
                span_id: f.span_id.map(str::to_string),
                finding,
            }));
        }
        self.burst_events(verdict.events);
    }

    /// Runs `explain` (which emits a refusal once its reason is known) off the request path; a
    /// stop waits for it (`settle`).
    pub(crate) fn later(&self, explain: impl std::future::Future<Output = ()> + Send + 'static) {
        let pending = self.later.1.clone();
        pending.fetch_add(1, Ordering::AcqRel);
        let task = async move {
            explain.await;
            pending.fetch_sub(1, Ordering::AcqRel);
        };
        match &self.later.0 {
            Some(runtime) => drop(runtime.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
    }

    /// Waits, at most `within`, for the refusals still being explained (at shutdown, before
    /// `drain`): every refusal counted reaches the audit trail.
    pub(crate) async fn settle(&self, within: std::time::Duration) {
        let until = Instant::now() + within;
        while self.later.1.load(Ordering::Acquire) > 0 && Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.later.1.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(refusals = left, "refusals still waiting for the signing keys at the stop: not audited");
        }
    }

    /// Ends quiet bursts and writes due summaries; call about once a second.
    pub(crate) fn tick(&self) {
        let events = self.detect.bursts.lock().expect("burst lock").tick(Instant::now());
        self.burst_events(events);
        self.end_expired(false);
    }

    /// Ends every burst (shutdown).
    pub(crate) fn drain(&self) {
        let events = self.detect.bursts.lock().expect("burst lock").drain();
        self.burst_events(events);
        self.end_expired(true);
    }

    /// Re-sends active alerts so Alertmanager keeps them firing.
    pub(crate) fn resend_alerts(&self) {
        if let Some(p) = &self.pager {
            p.resend();
        }
    }
}

#[cfg(test)]
mod tests;
