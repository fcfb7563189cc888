use super::*;
use proptest::prelude::*;

fn one(s: &str) -> Message {
    let mut v = decode(s.as_bytes(), 8).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[test]
fn tools_call_request() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"catalog.get-catalog-entity","arguments":{"a":[1,2,{"b":null}]}}}"#,
    );
    assert_eq!(m.id, Some(Id::Num("3".into())));
    assert_eq!(m.method, Some(Method::ToolsCall));
    assert_eq!(m.target.as_deref(), Some("catalog.get-catalog-entity"));
    assert!(m.id.is_some() && !m.is_response(), "a request");
}

#[test]
fn string_and_number_ids_differ() {
    assert_ne!(one(r#"{"id":"1","method":"ping"}"#).id, one(r#"{"id":1,"method":"ping"}"#).id);
}

#[test]
fn initialize_both_ways() {
    let req = one(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"vscode","version":"1"}}}"#,
    );
    assert_eq!(req.client_name.as_deref(), Some("vscode"));
    let res = one(
        r#"{"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"backstage"}},"jsonrpc":"2.0","id":0}"#,
    );
    match res.kind {
        Kind::Result(r) => assert_eq!(r.protocol_version.as_deref(), Some("2025-06-18")),
        k => panic!("{k:?}"),
    }
}

#[test]
fn tool_error_text_and_tools_list() {
    let m = one(
        r#"{"result":{"content":[{"type":"text","text":"NotFoundError: Action \"x\" not found"}],"isError":true},"jsonrpc":"2.0","id":"a"}"#,
    );
    let Kind::Result(r) = m.kind else { panic!() };
    assert!(r.is_error);
    assert_eq!(r.error_text.as_deref(), Some("NotFoundError: Action \"x\" not found"));
    let m = one(
        r#"{"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b"}]},"jsonrpc":"2.0","id":1}"#,
    );
    let Kind::Result(r) = m.kind else { panic!() };
    assert_eq!(r.tools, Some(vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn errors_and_batches() {
    let v = decode(br#"[{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#, 8).unwrap();
    assert_eq!(v[0].kind, Kind::Error { code: -32601 });
    assert!(v[1].method.is_some() && v[1].id.is_none(), "a notification");
    assert_eq!(decode(b"[1,2,3]", 2), Err(DecodeError::BatchTooLarge));
    let mixed = decode(br#"[7,{"id":1,"method":"ping"}]"#, 2).unwrap();
    assert_eq!(mixed[0].kind, Kind::Invalid);
    assert!(mixed[1].method == Some(Method::Ping) && mixed[1].id.is_some(), "a request");
    assert_eq!(decode(b"{\"id\":1", 2), Err(DecodeError::Malformed));
    assert_eq!(one("42").kind, Kind::Invalid);
    assert_eq!(one(r#"{"id":{"x":1}}"#).kind, Kind::Invalid);
    let backstage_401 =
        r#"{"error":{"name":"AuthenticationError","message":"Missing credentials"},"response":{"statusCode":401}}"#;
    assert_eq!(one(backstage_401).kind, Kind::Invalid);
    // Wrongly typed envelope fields make the message undecodable; it is counted, never fatal.
    assert_eq!(decode(br#"{"id":1,"method":7}"#, 2), Err(DecodeError::Malformed));
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, 4);
    }

    #[test]
    fn any_names_roundtrip(method in ".{0,40}", tool in ".{0,40}", id in any::<i64>()) {
        let body = serde_json::json!({"jsonrpc":"2.0","id":id,"method":method,"params":{"name":tool}}).to_string();
        let m = one(&body);
        prop_assert_eq!(m.method, Some(Method::parse(&method)));
        prop_assert_eq!(m.target.as_deref(), Some(tool.as_str()));
    }
}

#[test]
fn a_multi_round_trip_retry_is_read_as_hashes_only() {
    let asking = one(
        r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","requestState":"sealed.abc","inputRequests":{"confirm":{"method":"elicitation/create"},"why":{}}}}"#,
    );
    let Kind::Result(r) = asking.kind else { panic!("a result") };
    assert!(r.input_required);
    let retry = one(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_entity","inputResponses":{"why":{},"confirm":{"action":"accept"}},"requestState":"sealed.abc"}}"#,
    );
    let of = retry.retry.expect("a retry");
    // The echoed state and the answered keys (in any order) are what the answer asked.
    assert_eq!((of.request_state, of.input_keys), (r.request_state, r.input_keys));
    assert!(of.request_state.is_some() && of.input_keys != 0);
    assert!(!format!("{retry:?}").contains("sealed.abc"), "the state itself is never kept");
    // A first request is no retry; hostile shapes are skipped.
    assert_eq!(one(r#"{"id":3,"method":"tools/call","params":{"name":"x"}}"#).retry, None);
    let odd = one(r#"{"id":4,"method":"tools/call","params":{"requestState":7,"inputResponses":[1]}}"#);
    assert_eq!(odd.retry, None);
}
