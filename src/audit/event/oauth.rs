//! The audit lines of MCP clients' OAuth journey: registrations, consent decisions, token
//! errors, revocations, and the findings only a proxy sees. Clients by name and `client_id`,
//! users by entity ref (`audit.user_identity`), refresh tokens by keyed fingerprint: never a
//! token, code, verifier, secret or state.

use serde::Serialize;

use crate::oauth::{Outcome, Step};

/// A dynamic client registration and how it ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Registration {
    pub outcome: Outcome,
    /// The `client_name` it registered (bounded), `unknown` without one.
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub source: String,
}

/// A person's decision at the consent page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Consent {
    /// `approved` or `rejected`; `outcome` says whether Backstage took it.
    pub decision: &'static str,
    pub outcome: Outcome,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub source: String,
}

/// A token request the token endpoint refused.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenError {
    pub step: Step,
    pub error: Outcome,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The refresh token presented (keyed fingerprint), on a refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub source: String,
}

/// A token revocation. `known` says whether the tap saw the revoked refresh token issued: its
/// access tokens keep working until they expire.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Revocation {
    pub outcome: Outcome,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub known: bool,
    pub source: String,
}

/// A rotated refresh token presented again (once per token family).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Replay {
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The replayed refresh token's keyed fingerprint.
    pub refresh_token: String,
    /// What the token endpoint answered (Backstage: `invalid_grant`, and the family lives on).
    pub outcome: Outcome,
    pub source: String,
}

/// Protected-resource metadata naming another URL than the one clients dial (once per pair).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Mismatch {
    /// What the metadata says (Backstage: from `backend.baseUrl`).
    pub resource: String,
    /// The URL the client dialled through the tap.
    pub dialled: String,
    pub fix: String,
}
