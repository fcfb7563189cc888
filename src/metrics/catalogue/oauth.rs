//! The metrics of MCP clients' OAuth journey through the tap.

use super::{counter, Spec};

pub const OAUTH_REQUESTS: Spec = counter(
    "mcp_tap_oauth_requests_total",
    &["step", "outcome"],
    "Requests of MCP clients' OAuth journey (discovery, registration, consent, token by grant type, revocation), by step and outcome (ok or the OAuth error the client received).",
);

pub const OAUTH_REFRESHES: Spec = counter(
    "mcp_tap_oauth_refreshes_total",
    &["client"],
    "Refresh tokens exchanged for new tokens, by the OAuth client the user consented to.",
);

pub const OAUTH_REAUTHORIZATIONS: Spec = counter(
    "mcp_tap_oauth_reauthorizations_total",
    &["client"],
    "New authorization-code grants for a user and client whose earlier refresh token was never used (the user signed in again instead of a refresh), by client.",
);

pub const OAUTH_WWW_AUTHENTICATE: Spec = counter(
    "mcp_tap_oauth_www_authenticate_added_total",
    &["mcp_route"],
    "401 answers on an MCP route the tap added a WWW-Authenticate header to (oauth.www_authenticate), by route.",
);

pub const OAUTH_UNREAD: Spec = counter(
    "mcp_tap_oauth_unread_bodies_total",
    &["step"],
    "OAuth request or answer bodies the tap could not read (malformed, or over oauth.max_body_bytes), relayed unchanged, by step.",
);

pub const OAUTH_FORGOTTEN: Spec = counter(
    "mcp_tap_oauth_forgotten_total",
    &["table"],
    "OAuth clients and issued tokens forgotten to stay within oauth.max_clients and oauth.max_tokens (least recent first), by table.",
);
