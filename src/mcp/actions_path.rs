//! Which request paths Backstage serves as its MCP Actions endpoint, read the way its Express
//! router reads them, so the tap sees as MCP every request the upstream treats as MCP. Measured
//! against a real backend (backend-defaults 0.18, mcp-actions 0.2.2; the table is in
//! `tests/e2e/paths.rs`): matching ignores ASCII case, takes one empty segment before `v1`,
//! and up to two trailing slashes; it decodes no percent-escapes and resolves no dot segments.
//! The query string is not part of the path.

/// What an MCP Actions path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionsPath<'a> {
    /// `/api/mcp-actions/v1`: the default server.
    Default,
    /// `/api/mcp-actions/v1/{key}`: a split server; the key as sent (Express matches it in any case).
    Server(&'a str),
}

const PREFIX: &str = "/api/mcp-actions";

/// Strips `prefix` from the start of `s`, ignoring ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Removes up to two trailing slashes (Express' non-strict matching takes `/x/` and `/x//`).
fn trim_trailing(s: &str) -> &str {
    let s = s.strip_suffix('/').unwrap_or(s);
    s.strip_suffix('/').unwrap_or(s)
}

/// The MCP Actions route a request path (without its query) names, if any.
pub(crate) fn parse(path: &str) -> Option<ActionsPath<'_>> {
    let rest = strip_prefix_ci(path, PREFIX)?;
    // The plugin router is mounted at the prefix; one empty segment before `v1` still reaches it.
    let rest = rest.strip_prefix('/')?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let tail = strip_prefix_ci(rest, "v1")?;
    if trim_trailing(tail).is_empty() {
        return Some(ActionsPath::Default);
    }
    let key = trim_trailing(tail.strip_prefix('/')?);
    if key.is_empty() || key.contains('/') {
        return None;
    }
    Some(ActionsPath::Server(key))
}

/// What a path of a plugin's actions API names: `/api/{plugin}/.backstage/actions/v1/actions`
/// (the list) or `…/actions/{action id}/invoke` (a call). The same tools as MCP, reached without
/// it (the Backstage CLI, scripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionsApi<'a> {
    /// The plugin id as sent (Backstage's are `[a-z0-9-]`), at most 64 bytes.
    pub plugin: &'a str,
    /// The action id of an invocation, percent-decoded (`catalog:get-catalog-entity`).
    pub action: Option<String>,
}

const ACTIONS: &str = ".backstage/actions/v1/actions";

/// The route label of the actions API in refusals, bursts, least privilege and audit lines (no
/// Backstage server key has an underscore, so it names no MCP server).
pub(crate) const ACTIONS_API_ROUTE: &str = "actions_api";

/// `%XX` escapes decoded (Express decodes route parameters); `None` for a bad escape or text
/// that is not UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    let (mut out, bytes) = (Vec::with_capacity(s.len()), s.as_bytes());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The actions API a request path (without its query) names, if any.
pub(crate) fn actions_api(path: &str) -> Option<ActionsApi<'_>> {
    let rest = strip_prefix_ci(path, "/api/")?;
    let (plugin, rest) = rest.split_once('/')?;
    let plugin_ok = plugin.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plugin.is_empty() || plugin.len() > 64 || !plugin_ok {
        return None;
    }
    let rest = trim_trailing(strip_prefix_ci(rest, ACTIONS)?);
    if rest.is_empty() {
        return Some(ActionsApi { plugin, action: None });
    }
    let rest = rest.strip_prefix('/')?;
    let cut = rest.len().checked_sub("/invoke".len())?;
    let (id, invoke) = (rest.get(..cut)?, rest.get(cut..)?);
    if !invoke.eq_ignore_ascii_case("/invoke") || id.is_empty() || id.len() > 256 || id.contains('/') {
        return None;
    }
    Some(ActionsApi { plugin, action: Some(percent_decoded(id)?) })
}

/// The MCP tool name of an action: `catalog:get-catalog-entity` is `catalog.get-catalog-entity`.
pub(crate) fn tool_name(action: &str) -> String {
    action.replacen(':', ".", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_actions_api_of_every_plugin_is_read() {
        let list = actions_api("/api/catalog/.backstage/actions/v1/actions").unwrap();
        assert_eq!((list.plugin, list.action), ("catalog", None));
        for p in [
            "/api/catalog/.backstage/actions/v1/actions/catalog:get-catalog-entity/invoke",
            "/api/catalog/.backstage/actions/v1/actions/catalog%3Aget-catalog-entity/invoke",
            "/api/catalog/.backstage/actions/v1/actions/catalog%3aget-catalog-entity/invoke/",
        ] {
            let call = actions_api(p).unwrap();
            assert_eq!(call.action.as_deref(), Some("catalog:get-catalog-entity"), "{p}");
            assert_eq!(tool_name(call.action.as_deref().unwrap()), "catalog.get-catalog-entity");
        }
        for p in [
            "/api/catalog/.backstage/actions/v1",
            "/api/catalog/.backstage/actions/v1/actions/x",
            "/api/catalog/.backstage/actions/v1/actions/a/b/invoke",
            "/api/catalog/.backstage/actions/v1/actions/%zz/invoke",
            "/api/cat/alog/.backstage/actions/v1/actions",
            "/api/mcp-actions/v1",
            "/api/catalog/entities",
        ] {
            assert_eq!(actions_api(p), None, "{p}");
        }
    }

    proptest! {
        #[test]
        fn any_path_is_read_or_refused_without_a_panic(path in "\\PC{0,120}") {
            let _ = actions_api(&path);
        }
    }

    #[test]
    fn the_variants_backstage_serves_are_mcp() {
        for p in [
            "/api/mcp-actions/v1",
            "/api/mcp-actions/v1/",
            "/api/mcp-actions/v1//",
            "/API/MCP-ACTIONS/V1",
            "/api/mcp-actions//v1",
            "/api/mcp-actions//v1//",
        ] {
            assert_eq!(parse(p), Some(ActionsPath::Default), "{p}");
        }
        for p in ["/api/mcp-actions/v1/catalog", "/api/mcp-actions//v1/catalog//", "/api/mcp-actions/V1/Catalog/"] {
            assert!(matches!(parse(p), Some(ActionsPath::Server(k)) if k.eq_ignore_ascii_case("catalog")), "{p}");
        }
    }

    #[test]
    fn the_variants_backstage_refuses_are_not() {
        for p in [
            "/api/mcp-actions///v1",
            "/api//mcp-actions/v1",
            "//api/mcp-actions/v1",
            "/api/mcp-actions/v1///",
            "/api/mcp-actions/v1//catalog",
            "/api/mcp-actions/v1/catalog///",
            "/api/mcp-actions/v1/catalog/x",
            "/api/mcp-actions/v1%2F",
            "/api/mcp-actions/v1;x",
            "/api/mcp-actions/./v1",
            "/api/mcp-actions/v1.json",
            "/api/mcp-actions",
            "/api/catalog/entities",
        ] {
            assert!(!matches!(parse(p), Some(ActionsPath::Default)), "{p}");
        }
        // Not a default-server path; whether a key is served is the upstream's answer to give.
        assert_eq!(parse("/api/mcp-actions/v1/%63atalog"), Some(ActionsPath::Server("%63atalog")));
    }

    proptest! {
        #[test]
        fn any_path_parses_without_panicking(path in "\\PC{0,64}") {
            let _ = parse(&path);
        }

        #[test]
        fn case_and_up_to_two_trailing_slashes_never_change_the_route(
            key in "[a-z0-9][a-z0-9-]{0,20}", upper in any::<bool>(), slashes in 0usize..3,
        ) {
            let path = format!("/api/mcp-actions/v1/{key}{}", "/".repeat(slashes));
            let path = if upper { path.to_ascii_uppercase() } else { path };
            let parsed = parse(&path);
            let ok = matches!(parsed, Some(ActionsPath::Server(k)) if k.eq_ignore_ascii_case(&key));
            prop_assert!(ok);
        }
    }
}
