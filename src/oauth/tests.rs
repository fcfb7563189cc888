use http::Method;

use super::*;

const AUTH: &str = "/api/auth";

#[test]
fn every_step_of_backstages_journey_is_recognised_and_nothing_else() {
    let cases = [
        (Method::GET, "/.well-known/oauth-protected-resource/api/mcp-actions/v1", Some(Endpoint::ProtectedResource)),
        (Method::GET, "/.well-known/oauth-protected-resource", Some(Endpoint::ProtectedResource)),
        (Method::GET, "/.well-known/oauth-authorization-server/api/auth", Some(Endpoint::ServerMetadata)),
        (Method::GET, "/.well-known/openid-configuration/api/auth", Some(Endpoint::ServerMetadata)),
        (Method::GET, "/api/auth/.well-known/openid-configuration", Some(Endpoint::ServerMetadata)),
        (Method::GET, "/.well-known/oauth-authorization-server", Some(Endpoint::ServerMetadata)),
        (Method::POST, "/api/auth/v1/register", Some(Endpoint::Register)),
        (Method::GET, "/api/auth/v1/authorize", Some(Endpoint::Authorize)),
        (Method::GET, "/api/auth/v1/sessions/abc", Some(Endpoint::ConsentPage)),
        (Method::POST, "/api/auth/v1/sessions/abc/approve", Some(Endpoint::Approve)),
        (Method::POST, "/api/auth/v1/sessions/abc/reject", Some(Endpoint::Reject)),
        (Method::POST, "/api/auth/v1/token", Some(Endpoint::Token)),
        (Method::POST, "/api/auth/v1/revoke", Some(Endpoint::Revoke)),
        // Not steps: other methods, other paths, the user-token endpoints of the app itself.
        (Method::GET, "/api/auth/v1/token", None),
        (Method::GET, "/api/auth/guest/refresh", None),
        (Method::GET, "/api/auth/.well-known/jwks.json", None),
        (Method::POST, "/api/auth/v1/sessions//approve", None),
        (Method::POST, "/api/auth/v1/sessions/abc/approve/x", None),
        (Method::GET, "/.well-known/oauth-authorization-server/elsewhere", None),
        (Method::POST, "/api/mcp-actions/v1", None),
    ];
    for (method, path, want) in cases {
        assert_eq!(Endpoint::of(&method, path, AUTH), want, "{method} {path}");
    }
}

#[test]
fn a_token_request_is_one_step_per_grant_type() {
    let code = token_request(b"grant_type=authorization_code&code=c&client_id=abc&code_verifier=v", None).unwrap();
    assert_eq!(Endpoint::Token.step(code.grant), Step::TokenAuthorizationCode);
    assert_eq!(code.client_id.as_deref(), Some("abc"));
    let refresh = token_request(b"grant_type=refresh_token&refresh_token=r%2Bx", None).unwrap();
    assert_eq!(Endpoint::Token.step(refresh.grant), Step::TokenRefresh);
    assert_eq!(refresh.refresh_token.as_deref(), Some("r+x"));
    let other = token_request(b"grant_type=client_credentials", None).unwrap();
    assert_eq!(Endpoint::Token.step(other.grant), Step::TokenOtherGrant);
    assert_eq!(Endpoint::Token.step(token_request(b"", None).unwrap().grant), Step::TokenOtherGrant);
    // client_secret_basic: the client_id from the header, never the secret.
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "my%20client:s3cret");
    let header = format!("Basic {basic}");
    let with_basic = token_request(b"grant_type=refresh_token", Some(header.as_bytes())).unwrap();
    assert_eq!(with_basic.client_id.as_deref(), Some("my client"));
    assert!(token_request(&[0xff, 0xfe], None).is_none(), "not text: unread");
}

#[test]
fn outcomes_are_the_oauth_error_the_client_received() {
    let t = Endpoint::Token;
    assert_eq!(outcome(t, 200, None, b"{}"), Outcome::Ok);
    assert_eq!(outcome(t, 400, None, br#"{"error":"invalid_grant","error_description":"x"}"#), Outcome::InvalidGrant);
    assert_eq!(outcome(t, 401, None, br#"{"error":"invalid_client"}"#), Outcome::InvalidClient);
    assert_eq!(outcome(t, 400, None, br#"{"error":"made_up_by_a_client"}"#), Outcome::OtherError);
    assert_eq!(outcome(t, 400, None, br#"{"error":{"name":"InputError","message":"bad"}}"#), Outcome::InvalidRequest);
    assert_eq!(outcome(t, 401, None, b"not json"), Outcome::Unauthenticated);
    assert_eq!(outcome(t, 503, None, b""), Outcome::ServerError);
    assert_eq!(outcome(Endpoint::ProtectedResource, 404, None, b""), Outcome::NotFound);
    assert_eq!(outcome(Endpoint::Reject, 200, None, br#"{"redirectUrl":"x"}"#), Outcome::AccessDenied);
    let consent = "http://127.0.0.1:3000/oauth2/authorize/abc";
    assert_eq!(outcome(Endpoint::Authorize, 302, Some(consent), b""), Outcome::Ok);
    let refused = "http://127.0.0.1:1/cb?error=invalid_scope&error_description=no&state=s";
    assert_eq!(outcome(Endpoint::Authorize, 302, Some(refused), b""), Outcome::InvalidScope);
}

#[test]
fn bodies_say_who_the_client_is_and_what_was_issued() {
    assert_eq!(register_request(br#"{"client_name":"Acme","redirect_uris":[]}"#), Some(Some("Acme".into())));
    assert_eq!(register_request(br#"{"redirect_uris":[]}"#), Some(None));
    assert_eq!(register_request(b"{"), None);
    assert_eq!(register_response(br#"{"client_id":"id-1","client_secret":"s"}"#).as_deref(), Some("id-1"));
    let issued = token_response(br#"{"access_token":"a","refresh_token":"r","expires_in":3600}"#).unwrap();
    assert_eq!((issued.access_token.as_str(), issued.refresh_token.as_deref()), ("a", Some("r")));
    let page = consent_page(br#"{"id":"s","clientId":"c","clientName":"Acme","scope":"openid"}"#).unwrap();
    assert_eq!((page.client_id.as_str(), page.client_name.as_deref()), ("c", Some("Acme")));
    assert_eq!(
        protected_resource(br#"{"resource":"https://x/api/mcp-actions/v1"}"#).as_deref(),
        Some("https://x/api/mcp-actions/v1")
    );
    let revoke = revoke_request(b"token=t&client_id=c", None).unwrap();
    assert_eq!((revoke.token.as_deref(), revoke.client_id.as_deref()), (Some("t"), Some("c")));
    assert_eq!(
        authorize_client_id(Some("response_type=code&client_id=https%3A%2F%2Fa.example%2Fc.json")).as_deref(),
        Some("https://a.example/c.json")
    );
}

#[test]
fn a_metadata_document_client_is_named_by_its_host() {
    assert_eq!(name_from_client_id("https://vscode.dev/oauth/client-metadata.json"), Some("vscode.dev"));
    assert_eq!(name_from_client_id("https://localhost:8443/oauth/client.json"), Some("localhost"));
    assert_eq!(name_from_client_id("https://u@claude.ai/x"), Some("claude.ai"));
    assert_eq!(name_from_client_id("https://[::1]:9/x"), Some("[::1]"));
    assert_eq!(name_from_client_id("0c6a5d2e-registered-id"), None);
    assert_eq!(name_from_client_id("http://plain.example/x"), None);
}

proptest::proptest! {
    #[test]
    fn readers_never_panic_on_any_bytes(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = token_request(&body, Some(&body));
        let _ = revoke_request(&body, None);
        let _ = register_request(&body);
        let _ = token_response(&body);
        let _ = error_code(&body);
        let text = String::from_utf8_lossy(&body);
        let _ = outcome(Endpoint::Authorize, 302, Some(&text), &body);
        let _ = name_from_client_id(&text);
        let _ = Endpoint::of(&Method::POST, &text, AUTH);
    }
}
