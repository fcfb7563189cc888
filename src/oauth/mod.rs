//! OAuth for MCP clients as Backstage's auth backend serves it: which step of the journey a
//! request is, and what its bodies say. Pure (no I/O). Readers hand secrets (tokens, codes) to
//! the caller only to be fingerprinted; nothing here keeps one.

mod read;
#[cfg(test)]
mod tests;

pub(crate) use read::{
    authorize_client_id, consent_page, error_code, protected_resource, redirect_error, register_request,
    register_response, revoke_request, token_request, token_response, Grant,
};

use crate::labels::label_enum;

label_enum! {
    /// A step of the OAuth journey (`mcp_tap_oauth_requests_total{step}`), in the order a client
    /// takes them. The token endpoint is one step per grant type.
    pub(crate) enum Step {
        ProtectedResource = "protected_resource_metadata",
        ServerMetadata = "server_metadata",
        Register = "register",
        Authorize = "authorize",
        ConsentPage = "consent_page",
        Approve = "approve",
        Reject = "reject",
        TokenAuthorizationCode = "token_authorization_code",
        TokenRefresh = "token_refresh_token",
        TokenOtherGrant = "token_other_grant",
        Revoke = "revoke",
    }
}

label_enum! {
    /// How a step ended (`mcp_tap_oauth_requests_total{outcome}`): `ok`, the OAuth `error` code
    /// the client received (RFC 6749, RFC 7591), or what the answer was when it had none.
    pub(crate) enum Outcome {
        Ok = "ok",
        InvalidRequest = "invalid_request",
        InvalidClient = "invalid_client",
        InvalidGrant = "invalid_grant",
        UnauthorizedClient = "unauthorized_client",
        UnsupportedGrantType = "unsupported_grant_type",
        InvalidScope = "invalid_scope",
        AccessDenied = "access_denied",
        InvalidClientMetadata = "invalid_client_metadata",
        InvalidRedirectUri = "invalid_redirect_uri",
        ServerError = "server_error",
        TemporarilyUnavailable = "temporarily_unavailable",
        /// 401 with Backstage's own error (no user token where one is needed).
        Unauthenticated = "unauthenticated",
        NotFound = "not_found",
        OtherError = "other_error",
        /// The tap answered 502 or 504: the upstream could not be reached or did not answer.
        UpstreamUnavailable = "upstream_unavailable",
    }
}

/// Where a request goes on the journey, before its body says which grant a token request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ProtectedResource,
    ServerMetadata,
    Register,
    Authorize,
    ConsentPage,
    Approve,
    Reject,
    Token,
    Revoke,
}

impl Endpoint {
    /// The endpoint of a request, if it is one: `auth` is where the auth backend is mounted
    /// (`/api/auth`). Paths are compared exactly as clients build them from the metadata.
    pub(crate) fn of(method: &http::Method, path: &str, auth: &str) -> Option<Endpoint> {
        use http::Method;
        let get = method == Method::GET;
        let post = method == Method::POST;
        if get
            && (path == "/.well-known/oauth-protected-resource"
                || path.starts_with("/.well-known/oauth-protected-resource/"))
        {
            return Some(Endpoint::ProtectedResource);
        }
        if get && is_server_metadata(path, auth) {
            return Some(Endpoint::ServerMetadata);
        }
        let rest = path.strip_prefix(auth)?.strip_prefix("/v1/")?;
        match rest {
            "register" if post => Some(Endpoint::Register),
            "authorize" if get => Some(Endpoint::Authorize),
            "token" if post => Some(Endpoint::Token),
            "revoke" if post => Some(Endpoint::Revoke),
            _ => {
                let session = rest.strip_prefix("sessions/")?;
                match session.split_once('/') {
                    None if get && !session.is_empty() => Some(Endpoint::ConsentPage),
                    Some((id, "approve")) if post && !id.is_empty() => Some(Endpoint::Approve),
                    Some((id, "reject")) if post && !id.is_empty() => Some(Endpoint::Reject),
                    _ => None,
                }
            }
        }
    }

    /// Whether the request body says something the tap reads (a POST's form or JSON).
    pub(crate) fn reads_request(self) -> bool {
        matches!(self, Endpoint::Register | Endpoint::Token | Endpoint::Revoke)
    }

    /// The step, once a token request's grant type is known.
    pub(crate) fn step(self, grant: Option<Grant>) -> Step {
        match self {
            Endpoint::ProtectedResource => Step::ProtectedResource,
            Endpoint::ServerMetadata => Step::ServerMetadata,
            Endpoint::Register => Step::Register,
            Endpoint::Authorize => Step::Authorize,
            Endpoint::ConsentPage => Step::ConsentPage,
            Endpoint::Approve => Step::Approve,
            Endpoint::Reject => Step::Reject,
            Endpoint::Revoke => Step::Revoke,
            Endpoint::Token => match grant {
                Some(Grant::AuthorizationCode) => Step::TokenAuthorizationCode,
                Some(Grant::RefreshToken) => Step::TokenRefresh,
                _ => Step::TokenOtherGrant,
            },
        }
    }
}

/// RFC 8414 and OpenID discovery, at the root (`/.well-known/x/api/auth`) or under the issuer.
fn is_server_metadata(path: &str, auth: &str) -> bool {
    ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"].iter().any(|well_known| {
        path.strip_prefix(well_known).is_some_and(|rest| rest.is_empty() || rest == auth)
            || path.strip_prefix(auth).is_some_and(|rest| rest == *well_known)
    })
}

/// The outcome of a step answered with `status`: the OAuth error in the answer (`body`, or the
/// `error` parameter of an authorize redirect's `location`), else what the status says. A
/// rejected consent is `access_denied`: it is what the client receives.
pub(crate) fn outcome(endpoint: Endpoint, status: u16, location: Option<&str>, body: &[u8]) -> Outcome {
    if endpoint == Endpoint::Reject && (200..300).contains(&status) {
        return Outcome::AccessDenied;
    }
    if endpoint == Endpoint::Authorize && (300..400).contains(&status) {
        return location.and_then(redirect_error).unwrap_or(Outcome::Ok);
    }
    if status < 400 {
        return Outcome::Ok;
    }
    if let Some(code) = error_code(body) {
        return code;
    }
    match status {
        401 => Outcome::Unauthenticated,
        404 => Outcome::NotFound,
        500.. => Outcome::ServerError,
        _ => Outcome::OtherError,
    }
}

/// An OAuth error code as the label it is counted under; codes outside the registry are one
/// value, so a client cannot mint label values.
fn known_code(code: &str) -> Outcome {
    match code {
        "invalid_request" => Outcome::InvalidRequest,
        "invalid_client" => Outcome::InvalidClient,
        "invalid_grant" => Outcome::InvalidGrant,
        "unauthorized_client" => Outcome::UnauthorizedClient,
        "unsupported_grant_type" => Outcome::UnsupportedGrantType,
        "invalid_scope" => Outcome::InvalidScope,
        "access_denied" => Outcome::AccessDenied,
        "invalid_client_metadata" => Outcome::InvalidClientMetadata,
        "invalid_redirect_uri" => Outcome::InvalidRedirectUri,
        "server_error" => Outcome::ServerError,
        "temporarily_unavailable" => Outcome::TemporarilyUnavailable,
        _ => Outcome::OtherError,
    }
}

/// The name an OAuth client goes by when the tap saw no `client_name` for it: the host of a
/// client ID metadata document's URL (the client's vendor), else nothing (a registered client's
/// `client_id` is an opaque id, not a name).
pub(crate) fn name_from_client_id(client_id: &str) -> Option<&str> {
    let rest = client_id.strip_prefix("https://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') { host.split_inclusive(']').next()? } else { host.split(':').next()? };
    (!host.is_empty()).then_some(host)
}
