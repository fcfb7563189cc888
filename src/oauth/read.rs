//! Readers of the OAuth bodies the tap looks at: form-encoded token and revocation requests
//! (RFC 6749, RFC 7009), JSON registration (RFC 7591), token answers, errors, protected-resource
//! metadata (RFC 9728) and Backstage's consent page. A body that does not read is `None`: the
//! exchange is relayed as it was, and the caller counts it.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;

use super::{known_code, Outcome};

/// The grant type of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    AuthorizationCode,
    RefreshToken,
    Other,
}

/// What a token request says. `refresh_token` is a secret: fingerprint it and drop it.
#[derive(Debug, Default)]
pub(crate) struct TokenRequest {
    pub grant: Option<Grant>,
    pub client_id: Option<String>,
    pub refresh_token: Option<String>,
}

/// The form fields of a body, each decoded; `None` when it is not form-encoded text.
fn form(body: &[u8]) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).collect())
}

/// The `client_id` of HTTP Basic client authentication (`client_secret_basic`), never the secret.
fn basic_client_id(authorization: Option<&[u8]>) -> Option<String> {
    let value = std::str::from_utf8(authorization?).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (id, _secret) = decoded.split_at(decoded.iter().position(|b| *b == b':')?);
    let id = form_urlencoded::parse(&[b"x=", id].concat()).next()?.1.into_owned();
    (!id.is_empty()).then_some(id)
}

/// A token request (`application/x-www-form-urlencoded`), with the Basic `client_id` if any.
pub(crate) fn token_request(body: &[u8], authorization: Option<&[u8]>) -> Option<TokenRequest> {
    let mut out = TokenRequest { client_id: basic_client_id(authorization), ..TokenRequest::default() };
    for (key, value) in form(body)? {
        match &*key {
            "grant_type" => {
                out.grant = Some(match &*value {
                    "authorization_code" => Grant::AuthorizationCode,
                    "refresh_token" => Grant::RefreshToken,
                    _ => Grant::Other,
                });
            }
            "client_id" if out.client_id.is_none() => out.client_id = Some(value.into_owned()),
            "refresh_token" => out.refresh_token = Some(value.into_owned()),
            _ => {}
        }
    }
    Some(out)
}

/// What a revocation request says. `token` is a secret: fingerprint it and drop it.
#[derive(Debug, Default)]
pub(crate) struct RevokeRequest {
    pub token: Option<String>,
    pub client_id: Option<String>,
}

pub(crate) fn revoke_request(body: &[u8], authorization: Option<&[u8]>) -> Option<RevokeRequest> {
    let mut out = RevokeRequest { client_id: basic_client_id(authorization), ..RevokeRequest::default() };
    for (key, value) in form(body)? {
        match &*key {
            "token" => out.token = Some(value.into_owned()),
            "client_id" if out.client_id.is_none() => out.client_id = Some(value.into_owned()),
            _ => {}
        }
    }
    Some(out)
}

/// The `client_name` of a registration request (JSON), if it has one.
pub(crate) fn register_request(body: &[u8]) -> Option<Option<String>> {
    #[derive(Deserialize)]
    struct Register {
        client_name: Option<String>,
    }
    serde_json::from_slice::<Register>(body).ok().map(|r| r.client_name)
}

/// The `client_id` a registration answer issued (never its `client_secret`).
pub(crate) fn register_response(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
    }
    serde_json::from_slice::<Registered>(body).ok().map(|r| r.client_id)
}

/// What a token answer issued. Both tokens are secrets: fingerprint them and drop them.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

pub(crate) fn token_response(body: &[u8]) -> Option<TokenResponse> {
    serde_json::from_slice(body).ok()
}

/// What Backstage's consent page is shown about a session: the client asking, by id and name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsentPage {
    pub client_id: String,
    pub client_name: Option<String>,
}

pub(crate) fn consent_page(body: &[u8]) -> Option<ConsentPage> {
    serde_json::from_slice(body).ok()
}

/// The `resource` protected-resource metadata names.
pub(crate) fn protected_resource(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Metadata {
        resource: String,
    }
    serde_json::from_slice::<Metadata>(body).ok().map(|m| m.resource)
}

/// The error of an answer: an OAuth `error` code, or Backstage's own error object by its name.
pub(crate) fn error_code(body: &[u8]) -> Option<Outcome> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Error {
        OAuth(String),
        Backstage { name: String },
    }
    #[derive(Deserialize)]
    struct Body {
        error: Error,
    }
    match serde_json::from_slice::<Body>(body).ok()?.error {
        Error::OAuth(code) => Some(known_code(&code)),
        Error::Backstage { name } => Some(match name.as_str() {
            "InputError" => Outcome::InvalidRequest,
            "AuthenticationError" => Outcome::Unauthenticated,
            "NotAllowedError" => Outcome::AccessDenied,
            "NotFoundError" => Outcome::NotFound,
            _ => Outcome::OtherError,
        }),
    }
}

/// The `error` of an authorize redirect back to the client, if it is one.
pub(crate) fn redirect_error(location: &str) -> Option<Outcome> {
    let query = location.split_once('?')?.1.split('#').next()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "error").map(|(_, code)| known_code(&code))
}

/// The `client_id` of an authorize request's query.
pub(crate) fn authorize_client_id(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned())
}
