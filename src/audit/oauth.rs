//! The OAuth journey made known: each step counted with its outcome; registrations, consent
//! decisions, token errors and revocations written to the audit trail; each issued access token
//! remembered with its client (`identity::oauth`), so its requests are named by it; refreshes
//! and re-authorizations counted per client; replays and resource mismatches raised once
//! (`detect::oauth` decides). Never a token: keyed fingerprints only.

use std::net::IpAddr;
use std::sync::Arc;

use super::event::{oauth as line, AuditEvent};
use super::Auditor;
use crate::bounded::{self, cut};
use crate::detect::oauth::{Family, Presented};
use crate::identity::{Fingerprint, CLIENT_UNKNOWN};
use crate::oauth::{Outcome, Step};

/// What a token answer issued, fingerprinted.
pub(crate) struct Issued {
    pub access: Fingerprint,
    pub refresh: Option<Fingerprint>,
    /// The access token's `sub`.
    pub user: Option<String>,
}

/// What the proxy read of one exchange of the journey.
pub(crate) struct Observed {
    pub step: Step,
    pub outcome: Outcome,
    pub source: IpAddr,
    /// The `client_id` the request or the answer named.
    pub client_id: Option<String>,
    /// A name for the client: a registration's `client_name`, or the consent page's.
    pub client_name: Option<String>,
    /// The consent session (hashed id) an authorize redirect opened or a decision is about.
    pub session: Option<u64>,
    /// The user whose own Backstage token made a consent decision.
    pub user: Option<String>,
    /// The refresh token presented (a refresh) or the token revoked.
    pub presented: Option<Fingerprint>,
    pub issued: Option<Issued>,
    /// Protected-resource metadata: the `resource` it names, and the URL the client dialled.
    pub resource: Option<(String, String)>,
    /// `audit.user_identity` lets the audit name users.
    pub name_users: bool,
}

fn user_ref(user: Option<&str>, name_users: bool) -> Option<String> {
    user.filter(|_| name_users).map(|u| cut(u, bounded::USER_REF).to_string())
}

/// The scheme and host of a URL.
fn origin(url: &str) -> &str {
    let Some(scheme_end) = url.find("://") else { return url };
    match url[scheme_end + 3..].find('/') {
        Some(path) => &url[..scheme_end + 3 + path],
        None => url,
    }
}

impl Auditor {
    /// One exchange of the OAuth journey ended.
    pub(crate) fn oauth(&self, mut o: Observed) {
        self.metrics.record_oauth_step(o.step, o.outcome);
        let clients = &self.who.oauth;
        if o.outcome == Outcome::Ok {
            if let (Some(session), Some(id), Step::Authorize) = (o.session, &o.client_id, o.step) {
                clients.opened(session, cut(id, bounded::CLIENT_ID));
            }
        }
        if o.client_id.is_none() && o.step != Step::Authorize {
            o.client_id = o.session.and_then(|s| clients.session_client(s)).map(|id| id.to_string());
        }
        let name = o.client_name.as_deref().map(|n| cut(n.trim(), bounded::CLIENT_NAME)).filter(|n| !n.is_empty());
        if let (Some(id), Some(name), Outcome::Ok) = (&o.client_id, name, o.outcome) {
            clients.learn(id, name);
        }
        let client: Arc<str> = match &o.client_id {
            Some(id) => clients.name_of(id).unwrap_or_else(|| CLIENT_UNKNOWN.into()),
            None => name.map_or_else(|| CLIENT_UNKNOWN.into(), Arc::from),
        };
        let source = o.source.to_string();
        match o.step {
            Step::Register => self.write(AuditEvent::OauthRegistration(line::Registration {
                outcome: o.outcome,
                client: client.to_string(),
                client_id: o.client_id.as_deref().map(|id| cut(id, bounded::CLIENT_ID).to_string()),
                source,
            })),
            Step::Approve | Step::Reject => self.write(AuditEvent::OauthConsent(line::Consent {
                decision: if o.step == Step::Approve { "approved" } else { "rejected" },
                outcome: o.outcome,
                client: client.to_string(),
                user: user_ref(o.user.as_deref(), o.name_users),
                source,
            })),
            Step::TokenAuthorizationCode | Step::TokenRefresh | Step::TokenOtherGrant => {
                self.token(&o, &client, source);
            }
            Step::Revoke => self.revocation(&o, &client, source),
            Step::ProtectedResource => self.resource(&o),
            Step::ServerMetadata | Step::Authorize | Step::ConsentPage => {}
        }
        let [clients_forgotten, tokens_forgotten] = clients.take_forgotten();
        let families_forgotten = self.detect.oauth.lock().expect("oauth lock").take_forgotten();
        self.metrics.record_oauth_forgotten("clients", clients_forgotten);
        self.metrics.record_oauth_forgotten("tokens", tokens_forgotten + families_forgotten);
    }

    /// A token request answered: tokens issued are remembered with their client; a refused one
    /// is a `oauth_token_error` line, and a replayed refresh token a finding.
    fn token(&self, o: &Observed, client: &Arc<str>, source: String) {
        let presented = match (o.step, o.presented) {
            (Step::TokenRefresh, Some(fp)) => {
                let new = o.issued.as_ref().and_then(|i| i.refresh).filter(|_| o.outcome == Outcome::Ok);
                let label = self.who.names.admit(client).label;
                self.detect.oauth.lock().expect("oauth lock").refreshed(fp, new, &label)
            }
            _ => Presented::Unknown,
        };
        let family = match &presented {
            Presented::Current(f) | Presented::Revoked(f) | Presented::Replayed { family: f, .. } => Some(f.clone()),
            Presented::Unknown => None,
        };
        if let Presented::Replayed { family, first: true } = &presented {
            self.replay(o, family, source.clone());
        }
        if o.outcome != Outcome::Ok {
            let user = family.as_ref().and_then(|f| f.user.as_deref());
            return self.write(AuditEvent::OauthTokenError(line::TokenError {
                step: o.step,
                error: o.outcome,
                client: family.as_ref().map_or_else(|| client.to_string(), |f| f.client.to_string()),
                user: user_ref(user, o.name_users),
                refresh_token: o.presented.filter(|_| o.step == Step::TokenRefresh).map(|fp| fp.to_string()),
                source,
            }));
        }
        let Some(issued) = &o.issued else { return };
        let label = match &family {
            Some(f) => f.client.clone(),
            None => self.who.names.admit(client).label,
        };
        self.who.oauth.issued(issued.access, label.clone());
        let user: Option<Arc<str>> = issued.user.as_deref().map(|u| cut(u, bounded::USER_REF).into());
        if o.step == Step::TokenRefresh {
            self.metrics.record_oauth_refresh(&label);
        } else if o.step == Step::TokenAuthorizationCode {
            let again = self.detect.oauth.lock().expect("oauth lock").granted(issued.refresh, label.clone(), user);
            if again {
                tracing::info!(client = %label, "an OAuth client signed its user in again instead of refreshing");
                self.metrics.record_oauth_reauthorization(&label);
            }
        }
    }

    fn replay(&self, o: &Observed, family: &Family, source: String) {
        let fp = o.presented.map(|fp| fp.to_string()).unwrap_or_default();
        tracing::warn!(client = %family.client, refresh_token = %fp, "a rotated refresh token was presented again");
        let event = AuditEvent::RefreshTokenReplay(line::Replay {
            client: family.client.to_string(),
            user: user_ref(family.user.as_deref(), o.name_users),
            refresh_token: fp,
            outcome: o.outcome,
            source,
        });
        self.raise(family.id, event);
    }

    /// A finding about `key` (a token family, a pair of URLs): once per cluster in cluster mode
    /// (the cluster claims it, or hands it back), else written now.
    pub(crate) fn raise(&self, key: Fingerprint, event: AuditEvent) {
        match &self.shared {
            Some(outbox) => outbox.finding(key, event),
            None => self.findings_decided(vec![event]),
        }
    }

    fn revocation(&self, o: &Observed, client: &Arc<str>, source: String) {
        let family = match (o.outcome, o.presented) {
            (Outcome::Ok, Some(fp)) => self.detect.oauth.lock().expect("oauth lock").revoked(fp),
            _ => None,
        };
        self.write(AuditEvent::OauthRevocation(line::Revocation {
            outcome: o.outcome,
            client: family.as_ref().map_or_else(|| client.to_string(), |f| f.client.to_string()),
            user: user_ref(family.as_ref().and_then(|f| f.user.as_deref()), o.name_users),
            known: family.is_some(),
            source,
        }));
    }

    /// Protected-resource metadata that names another URL than the one the client dialled: the
    /// SDKs and VS Code refuse to connect. Raised once per pair.
    fn resource(&self, o: &Observed) {
        let Some((resource, dialled)) = &o.resource else { return };
        let (resource, dialled) = (cut(resource, bounded::URL), cut(dialled, bounded::URL));
        if !self.detect.oauth.lock().expect("oauth lock").mismatch(resource, dialled) {
            return;
        }
        tracing::warn!(%resource, %dialled, "the protected-resource metadata names another URL than clients dial");
        let key = self.who.fingerprinter.fingerprint(&format!("{resource}\n{dialled}"));
        self.raise(
            key,
            AuditEvent::ResourceMismatch(line::Mismatch {
                resource: resource.to_string(),
                dialled: dialled.to_string(),
                fix: format!(
                    "set Backstage's backend.baseUrl to the origin clients dial ({}): clients refuse a resource \
                 that is not the URL they connect to",
                    origin(dialled)
                ),
            }),
        );
    }
}

/// Cluster mode: the journey's state every replica needs (`cluster` exchanges it with the store).
impl Auditor {
    /// Note what changes from now on for the other replicas.
    pub(crate) fn share_oauth(&self) {
        self.who.oauth.share();
        self.detect.oauth.lock().expect("oauth lock").share();
    }

    /// Tokens issued here (access token → client) and refresh tokens whose state changed
    /// (fingerprint → the family's state as text), since the last call.
    pub(crate) fn oauth_for_cluster(&self) -> OAuthChanges {
        let families = self.detect.oauth.lock().expect("oauth lock").for_cluster();
        OAuthChanges { issued: self.who.oauth.for_cluster(), families }
    }

    /// Changes the store did not take, for the next exchange.
    pub(crate) fn oauth_put_back(&self, changes: OAuthChanges) {
        self.who.oauth.put_back(changes.issued);
        self.detect.oauth.lock().expect("oauth lock").put_back(changes.families);
    }

    /// Other replicas' changes: their clients admitted under this replica's cap.
    pub(crate) fn oauth_from_cluster(&self, changes: OAuthChanges) {
        for (access, client) in changes.issued {
            self.who.oauth.adopt(access, self.who.names.admit(&client).label);
        }
        let mut journey = self.detect.oauth.lock().expect("oauth lock");
        for (token, text) in changes.families {
            journey.adopt(token, &text);
        }
    }
}

/// What one replica tells the others about the OAuth journey.
#[derive(Default)]
pub(crate) struct OAuthChanges {
    pub issued: Vec<(Fingerprint, Arc<str>)>,
    pub families: Vec<(Fingerprint, String)>,
}
