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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
