use super::*;
use crate::oauth::{Outcome, Step};

/// One event of each OAuth kind, and a task reached by another principal.
fn oauth_events() -> [AuditEvent; 7] {
    let (client, source) = (|| "Acme".to_string(), || "127.0.0.1".to_string());
    [
        AuditEvent::OauthRegistration(oauth::Registration {
            outcome: Outcome::Ok,
            client: client(),
            client_id: Some("id-1".into()),
            source: source(),
        }),
        AuditEvent::OauthConsent(oauth::Consent {
            decision: "approved",
            outcome: Outcome::Ok,
            client: client(),
            user: Some("user:default/alice".into()),
            source: source(),
        }),
        AuditEvent::OauthTokenError(oauth::TokenError {
            step: Step::TokenRefresh,
            error: Outcome::InvalidGrant,
            client: client(),
            user: None,
            refresh_token: Some("0123456789abcdef".into()),
            source: source(),
        }),
        AuditEvent::OauthRevocation(oauth::Revocation {
            outcome: Outcome::Ok,
            client: client(),
            user: None,
            known: true,
            source: source(),
        }),
        AuditEvent::RefreshTokenReplay(oauth::Replay {
            client: client(),
            user: None,
            refresh_token: "0123456789abcdef".into(),
            outcome: Outcome::InvalidGrant,
            source: source(),
        }),
        AuditEvent::ResourceMismatch(oauth::Mismatch {
            resource: "http://backstage:7007/api/mcp-actions/v1".into(),
            dialled: "https://mcp.example.com/api/mcp-actions/v1".into(),
            fix: "set backend.baseUrl".into(),
        }),
        AuditEvent::TaskForeignAccess(task::ForeignAccess {
            route: "jobs".into(),
            mcp_method: Method::TasksGet,
            tool: "long_job".into(),
            client: "other".into(),
            owner_client: "task-agent".into(),
            credential: Some("0123456789abcdef".into()),
            source: source(),
        }),
    ]
}

#[test]
fn every_event_serializes_with_its_name() {
    let events = [
        AuditEvent::AuthFailureSummary {
            scope: Scope::Source,
            key: "10.0.0.1".into(),
            count: 3,
            by_reason: BTreeMap::from([(Reason::UnknownToken, 3)]),
        },
        AuditEvent::BurstStart { scope: Scope::Global, key: "all".into(), client: "unknown".into(), count: 100 },
        AuditEvent::BurstEnd {
            scope: Scope::Global,
            key: "all".into(),
            client: "unknown".into(),
            count: 100,
            duration_seconds: 2.5,
        },
        AuditEvent::AuthFailure(AuthFailureLine {
            status: 401,
            reason: Reason::MissingCredentials,
            route: "default".into(),
            http_method: "POST".into(),
            mcp_method: None,
            tool: None,
            client: "none".into(),
            user: None,
            expired_seconds: None,
            credential: None,
            source: "127.0.0.1".into(),
            user_agent: None,
            request_id: None,
            jsonrpc_id: None,
            trace_id: None,
            span_id: None,
            finding: None,
        }),
        AuditEvent::TokenSetChanged { added: vec!["ab".into()], removed: vec![] },
        AuditEvent::ConfigReloaded,
        AuditEvent::ConfigReloadRefused { problems: vec!["listen can only change with a restart".into()] },
        AuditEvent::CredentialShared {
            route: "default".into(),
            client: "unknown".into(),
            credential: "0123456789abcdef".into(),
            clients: ["vscode".into(), "claude-code".into()],
            source: "127.0.0.1".into(),
        },
        AuditEvent::UnapprovedSource {
            route: "default".into(),
            client: "ci-agent".into(),
            user: None,
            credential: Some("0123456789abcdef".into()),
            source: "203.0.113.9".into(),
            status: 200,
        },
        AuditEvent::HeaderMismatch {
            route: "default".into(),
            kind: MismatchKind::Name,
            header: "add".into(),
            body: "explode".into(),
            client: "unknown".into(),
            credential: None,
            source: "127.0.0.1".into(),
        },
        AuditEvent::CredentialRotated {
            client: "ci-agent".into(),
            old_credential: "0123456789abcdef".into(),
            new_credential: "fedcba9876543210".into(),
            old_first_seen: "2026-09-01T10:00:00Z".into(),
            old_last_seen: "2026-12-01T09:00:00Z".into(),
            new_first_seen: "2026-12-01T08:55:00Z".into(),
        },
        AuditEvent::StoppedRefreshing {
            route: "default".into(),
            client: "vscode".into(),
            user: Some("user:default/alice".into()),
            credential: "0123456789abcdef".into(),
            source: "127.0.0.1".into(),
            expired_seconds: 3600,
        },
        AuditEvent::StoppedRefreshingEnd {
            route: "default".into(),
            client: "vscode".into(),
            user: None,
            credential: "0123456789abcdef".into(),
            source: "127.0.0.1".into(),
            first: "2026-12-01T08:00:00Z".into(),
            latest: "2026-12-01T09:00:00Z".into(),
            count: 200,
            expired_seconds: 7200,
        },
        AuditEvent::StoreLost {
            cluster: "default".into(),
            store: "redis://valkey:6379".into(),
            error: "refused".into(),
        },
        AuditEvent::StoreRegained { cluster: "default".into(), store: "redis://valkey:6379".into(), down_seconds: 4.5 },
        AuditEvent::Operation(OperationLine {
            route: "default".into(),
            mcp_method: Method::ToolsCall,
            tool: Some("catalog.get-catalog-entity".into()),
            client: "vscode".into(),
            user: None,
            credential: Some("0123456789abcdef".into()),
            source: "127.0.0.1".into(),
            status: 200,
            outcome: "tool_error".into(),
            duration_seconds: 0.25,
            response_bytes: 512,
            jsonrpc_id: Some("7".into()),
            session_id: None,
            trace_id: None,
            span_id: None,
        }),
    ];
    let reach = AuditEvent::ActionsApiReach(crate::detect::reach::Reached {
        client: "catalog-reader".into(),
        credential: "0123456789abcdef".into(),
        refused_route: "default".into(),
        refused_reason: "plugin_not_allowed".into(),
        plugin: "catalog".into(),
        tool: Some("catalog.get-catalog-entity".into()),
        at: 1,
    });
    let events = events.into_iter().chain(oauth_events()).chain([reach]);
    assert_eq!(events.clone().count(), AuditEvent::NAMES.len(), "every kind of event is checked");
    for e in events {
        let name = e.name();
        let v: serde_json::Value = serde_json::to_value(AuditLine::new(e)).unwrap();
        assert_eq!(v["event"], name);
        assert_eq!(v["schema"], SCHEMA);
    }
    let v = serde_json::to_value(AuditLine::new(AuditEvent::AuthFailureSummary {
        scope: Scope::Credential,
        key: "k".into(),
        count: 2,
        by_reason: BTreeMap::from([(Reason::RevokedToken, 2)]),
    }))
    .unwrap();
    assert_eq!(v["by_reason"]["revoked_token"], 2);
    assert_eq!(v["scope"], "credential");
}

#[test]
fn every_event_has_its_opentelemetry_name() {
    for (name, otel) in AuditEvent::NAMES.iter().zip(AuditEvent::OTEL_NAMES) {
        assert_eq!(otel, format!("mcp_tap.{name}"));
    }
}
