//! The OAuth journey on the side of the request path: a request to one of its endpoints has its
//! small form or JSON body read whole (within `oauth.max_body_bytes`, then forwarded as the same
//! bytes) and its answer watched as it streams to the client; at the end the audit learns what
//! happened (`Auditor::oauth`). Nothing here changes an exchange, except the opt-in
//! `WWW-Authenticate` on an MCP route's 401 (`www_authenticate`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::body::{read_capped, ReadBody};
use super::request::Caller;
use super::Shared;
use crate::audit::oauth::{Issued, Observed};
use crate::config::{Config, UserIdentity, WwwAuthenticate};
use crate::metrics::Limit;
use crate::oauth::{self, Endpoint, Grant, Outcome, Step};

/// A request body of the journey, as the tap read it.
pub(crate) enum Read {
    Whole(Bytes, Option<HeaderMap>),
    /// Not read (no declared length, or over `oauth.max_body_bytes`): it streams upstream.
    Untouched(Incoming),
    /// Too slow (`limits.request_body_timeout`): refused as any slow request is.
    Refused(Limit),
    ClientGone(hyper::Error),
}

/// The OAuth side of one request: its journey step, if it is one, and for an MCP route the
/// `WWW-Authenticate` the option may add to a 401 (origin, route path, whether a token was sent).
pub(crate) struct Side {
    pub start: Option<Start>,
    www: Option<(String, String, bool)>,
}

impl Side {
    pub(crate) fn new(
        config: &Config,
        mcp: bool,
        parts: &http::request::Parts,
        caller: &Caller,
        peer: std::net::IpAddr,
        tls: bool,
    ) -> Self {
        let start = (!mcp).then(|| Start::new(config, parts, caller, peer, tls)).flatten();
        let www = (mcp && config.oauth.www_authenticate != WwwAuthenticate::Off)
            .then(|| public_origin(config, &parts.headers, &parts.uri, peer, tls))
            .flatten()
            .map(|origin| {
                (origin, parts.uri.path().to_string(), parts.headers.contains_key(http::header::AUTHORIZATION))
            });
        Self { start, www }
    }

    /// The upstream never answered (the tap answered 502 or 504).
    pub(crate) fn unanswered(&mut self, shared: &Shared) {
        if let Some(start) = self.start.take() {
            shared.metrics.record_oauth_step(start.step(), Outcome::UpstreamUnavailable);
        }
    }

    /// The answer's headers, on their way to the client: a 401 may get its `WWW-Authenticate`.
    pub(crate) fn www_authenticate(
        &self,
        shared: &Shared,
        config: &Config,
        status: u16,
        headers: &mut HeaderMap,
        label: &str,
    ) {
        let Some((origin, path, token_sent)) = &self.www else { return };
        if www_authenticate(config, headers, status, Some(origin), path, *token_sent) {
            shared.metrics.record_www_authenticate_added(label);
        }
    }
}

/// An OAuth request on its way: what its headers and body said.
pub(crate) struct Start {
    endpoint: Endpoint,
    grant: Option<Grant>,
    source: std::net::IpAddr,
    client_id: Option<String>,
    client_name: Option<String>,
    session: Option<u64>,
    /// The caller's own Backstage user (approve, reject).
    user: Option<String>,
    presented: Option<crate::identity::Fingerprint>,
    /// Protected-resource metadata: the URL the client dialled for it.
    dialled: Option<String>,
    /// The request body could not be read (malformed, or too large to hold).
    unread: bool,
    max_body: usize,
    name_users: bool,
}

fn hash(value: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x5e55).hash_one(value)
}

fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.split(',').next()?.trim()).filter(|v| !v.is_empty() && v.len() <= 256)
}

/// The origin clients dial: `oauth.public_url`, else the request's own scheme and host (the
/// forwarding headers only from `audit.trusted_proxies`).
pub(crate) fn public_origin(
    config: &Config,
    headers: &HeaderMap,
    uri: &http::Uri,
    peer: std::net::IpAddr,
    tls: bool,
) -> Option<String> {
    if let Some(url) = &config.oauth.public_url {
        return Some(url.clone());
    }
    let trusted = config.audit.trusted_proxies.iter().any(|net| net.contains(&peer));
    let proto = trusted.then(|| first_value(headers, "x-forwarded-proto")).flatten();
    let host = trusted.then(|| first_value(headers, "x-forwarded-host")).flatten();
    let host =
        host.or_else(|| first_value(headers, "host")).or_else(|| uri.authority().map(http::uri::Authority::as_str))?;
    Some(format!("{}://{host}", proto.unwrap_or(if tls { "https" } else { "http" })))
}

impl Start {
    /// The journey step a request is, if it is one and the tap reads the journey.
    pub(crate) fn new(
        config: &Config,
        parts: &http::request::Parts,
        caller: &Caller,
        peer: std::net::IpAddr,
        tls: bool,
    ) -> Option<Self> {
        if !config.oauth.observe {
            return None;
        }
        let path = parts.uri.path();
        let endpoint = Endpoint::of(&parts.method, path, &config.oauth.auth_path)?;
        let session = match endpoint {
            Endpoint::ConsentPage | Endpoint::Approve | Endpoint::Reject => {
                let rest = path.rsplit_once("/sessions/").map(|(_, rest)| rest)?;
                Some(hash(rest.split('/').next()?))
            }
            _ => None,
        };
        let dialled = (endpoint == Endpoint::ProtectedResource).then(|| {
            let route = path.strip_prefix("/.well-known/oauth-protected-resource").unwrap_or("");
            public_origin(config, &parts.headers, &parts.uri, peer, tls).map(|origin| format!("{origin}{route}"))
        });
        let user = matches!(endpoint, Endpoint::Approve | Endpoint::Reject)
            .then(|| caller.user_token.as_ref().and_then(|t| crate::identity::jwt::subject(t.as_str())))
            .flatten();
        Some(Self {
            endpoint,
            grant: None,
            source: caller.source,
            client_id: (endpoint == Endpoint::Authorize)
                .then(|| oauth::authorize_client_id(parts.uri.query()))
                .flatten(),
            client_name: None,
            session,
            user,
            presented: None,
            dialled: dialled.flatten(),
            unread: false,
            max_body: config.oauth.max_body_bytes,
            name_users: config.audit.user_identity == UserIdentity::Ref,
        })
    }

    /// Whether the request body is read (a POST's form or JSON).
    pub(crate) fn reads_request(&self) -> bool {
        self.endpoint.reads_request()
    }

    /// Reads the request body whole when its declared length is within the bound; else hands it
    /// back to stream upstream untouched (counted as unread).
    pub(crate) async fn read(
        &mut self,
        shared: &Shared,
        headers: &HeaderMap,
        body: Incoming,
        timeout: std::time::Duration,
    ) -> Read {
        let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let Some(len) = declared.filter(|n| *n <= self.max_body) else {
            self.unread = true;
            return Read::Untouched(body);
        };
        let (bytes, trailers) = match tokio::time::timeout(timeout, read_capped(body, self.max_body, len)).await {
            Ok(Ok(ReadBody::Whole(bytes, trailers))) => (bytes, trailers),
            Ok(Err(e)) => return Read::ClientGone(e),
            // HTTP framing holds a body to its declared length: never over the bound.
            Ok(Ok(ReadBody::TooLarge)) => return Read::Refused(Limit::RequestBodyBytes),
            Err(_) => return Read::Refused(Limit::RequestBodyTimeout),
        };
        self.understand(&bytes, headers.get(http::header::AUTHORIZATION).map(HeaderValue::as_bytes), shared);
        Read::Whole(bytes, trailers)
    }

    fn understand(&mut self, body: &[u8], authorization: Option<&[u8]>, shared: &Shared) {
        let fingerprint = |t: &str| shared.auditor.who.fingerprinter.fingerprint(t);
        match self.endpoint {
            Endpoint::Token => match oauth::token_request(body, authorization) {
                Some(t) => {
                    self.grant = t.grant;
                    self.client_id = t.client_id;
                    self.presented = t.refresh_token.as_deref().map(fingerprint);
                }
                None => self.unread = true,
            },
            Endpoint::Revoke => match oauth::revoke_request(body, authorization) {
                Some(r) => {
                    self.client_id = r.client_id;
                    self.presented = r.token.as_deref().map(fingerprint);
                }
                None => self.unread = true,
            },
            Endpoint::Register => match oauth::register_request(body) {
                Some(name) => self.client_name = name,
                None => self.unread = true,
            },
            _ => {}
        }
    }

    pub(crate) fn step(&self) -> Step {
        self.endpoint.step(self.grant)
    }

    /// The answer's headers arrived: watch its body on the way to the client.
    pub(crate) fn answered(self, shared: &Arc<Shared>, status: StatusCode, headers: &HeaderMap) -> Box<Watch> {
        let location = headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        Box::new(Watch {
            start: self,
            shared: shared.clone(),
            status: status.as_u16(),
            location,
            body: BytesMut::new(),
            over: false,
        })
    }
}

/// An OAuth answer streaming to the client, its first `oauth.max_body_bytes` kept for reading.
pub(crate) struct Watch {
    start: Start,
    shared: Arc<Shared>,
    status: u16,
    location: Option<String>,
    body: BytesMut,
    over: bool,
}

impl super::body::BodyWatch for Watch {
    fn on_data(&mut self, data: &Bytes) {
        if self.body.len() + data.len() > self.start.max_body {
            self.over = true;
        } else {
            self.body.extend_from_slice(data);
        }
    }

    /// The answer ended (`complete`: all of it reached the client).
    fn finish(self: Box<Self>, complete: bool) {
        let Watch { start, shared, status, location, body, over } = *self;
        let step = start.step();
        let readable = complete && !over;
        let body: &[u8] = if readable { &body } else { b"" };
        let outcome = oauth::outcome(start.endpoint, status, location.as_deref(), body);
        let mut observed = Observed {
            step,
            outcome,
            source: start.source,
            client_id: start.client_id,
            client_name: start.client_name,
            session: start.session,
            user: start.user,
            presented: start.presented,
            issued: None,
            resource: None,
            name_users: start.name_users,
        };
        let wanted = read_answer(&mut observed, start.endpoint, &location, body, &shared);
        if start.unread || (wanted && (!readable || !answer_read(&observed, start.endpoint, outcome))) {
            shared.metrics.record_oauth_unread(step);
        }
        if let (Some(dialled), Some(resource)) = (start.dialled, observed.resource.take()) {
            observed.resource = Some((resource.0, dialled));
        }
        shared.auditor.oauth(observed);
    }
}

/// Reads what an answer says into `o`; true when the step's answer has something to read.
fn read_answer(o: &mut Observed, endpoint: Endpoint, location: &Option<String>, body: &[u8], shared: &Shared) -> bool {
    if o.outcome != Outcome::Ok {
        return false;
    }
    let fingerprint = |t: &str| shared.auditor.who.fingerprinter.fingerprint(t);
    match endpoint {
        Endpoint::Register => o.client_id = oauth::register_response(body),
        Endpoint::ConsentPage => {
            if let Some(page) = oauth::consent_page(body) {
                o.client_id = Some(page.client_id);
                o.client_name = page.client_name;
            }
        }
        Endpoint::Authorize => {
            // The consent session the redirect opens, for the decision that follows.
            let session = location.as_deref().and_then(|l| l.split('?').next()?.rsplit_once("/authorize/"));
            o.session = session.map(|(_, id)| hash(id.trim_end_matches('/')));
            return false;
        }
        Endpoint::Token => {
            if let Some(t) = oauth::token_response(body) {
                let user = crate::identity::jwt::subject(&t.access_token);
                o.issued = Some(Issued {
                    access: fingerprint(&t.access_token),
                    refresh: t.refresh_token.as_deref().map(fingerprint),
                    user,
                });
            }
        }
        Endpoint::ProtectedResource => o.resource = oauth::protected_resource(body).map(|r| (r, String::new())),
        _ => return false,
    }
    true
}

/// Whether the answer of a step that has one was read.
fn answer_read(o: &Observed, endpoint: Endpoint, outcome: Outcome) -> bool {
    outcome != Outcome::Ok
        || match endpoint {
            Endpoint::Register | Endpoint::ConsentPage => o.client_id.is_some(),
            Endpoint::Token => o.issued.is_some(),
            Endpoint::ProtectedResource => o.resource.is_some(),
            _ => true,
        }
}

/// `oauth.www_authenticate`: a 401 on an MCP route without `WWW-Authenticate` gets one naming
/// the route's protected-resource metadata, and `error="invalid_token"` when a token was sent.
/// Any other answer, or the option off, is left exactly as the upstream sent it.
pub(crate) fn www_authenticate(
    config: &Config,
    headers: &mut HeaderMap,
    status: u16,
    origin: Option<&str>,
    path: &str,
    token_sent: bool,
) -> bool {
    if status != 401
        || config.oauth.www_authenticate == WwwAuthenticate::Off
        || headers.contains_key(http::header::WWW_AUTHENTICATE)
    {
        return false;
    }
    let Some(origin) = origin else { return false };
    let error = if token_sent { ", error=\"invalid_token\"" } else { "" };
    let value = format!("Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource{path}\"{error}");
    match HeaderValue::from_str(&value) {
        Ok(v) => {
            headers.insert(http::header::WWW_AUTHENTICATE, v);
            true
        }
        Err(_) => false,
    }
}
