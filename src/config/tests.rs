//! Every rejected config has its exact message here; the example file must parse.
use std::path::Path;

use super::*;

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let err = Config::parse("listne: 1.2.3.4:5\nupstream:\n  urll: x\n  url: http://a\nfoo: 1\n").unwrap_err();
    assert_eq!(err.problems, vec!["unknown key `listne`", "unknown key `upstream.urll`", "unknown key `foo`"]);
}

#[test]
fn unknown_keys_in_every_section_are_reported_at_once() {
    let err = Config::parse(
        "cluster:\n  store_ur: redis://x\ntls:\n  cert_file: /c\n  key_file: /k\n  cert_fil: /c\naudit:\n  outptu: x\nzzz_last: 1\n",
    )
    .unwrap_err();
    // Then the certificate that cannot be read: every problem, unknown keys first.
    assert_eq!(
        err.problems[..4],
        [
            "unknown key `cluster.store_ur`",
            "unknown key `tls.cert_fil`",
            "unknown key `audit.outptu`",
            "unknown key `zzz_last`",
        ]
    );
}

#[test]
fn semantic_problems_are_all_reported() {
    let err = Config::parse(
        "upstream:\n  url: ftp://x\n  connect_timeout: 0s\nroutes:\n  server_keys: [Bad]\n  extra:\n    - {path: mcp, label: default}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "upstream.url `ftp://x` must be an absolute http:// or https:// URL",
            "upstream.connect_timeout must be greater than zero",
            "routes.server_keys: `Bad` is not a Backstage server key (^[a-z0-9][a-z0-9-]*$)",
            "routes.extra[0].path `mcp` must start with `/`",
            "routes.extra[0].label `default` is used by another route",
        ]
    );
}

#[test]
fn a_type_error_names_the_place() {
    let err = Config::parse("upstream:\n  connect_timeout: soon\n").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].contains("upstream.connect_timeout"), "{}", err.problems[0]);
}

/// The example with its file paths pointed at files that exist here.
pub(super) fn example_with_local_files() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mcp-tap.example.yaml");
    let dir = std::env::temp_dir().join(format!("mcp-tap-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("fingerprint.key");
    std::fs::write(&key, "0123456789abcdef0123").unwrap();
    let app_config = dir.join("app-config.yaml");
    std::fs::write(&app_config, "backend: {}\n").unwrap();
    std::fs::read_to_string(path)
        .unwrap()
        .replace("/etc/mcp-tap/fingerprint.key", key.to_str().unwrap())
        .replace("/etc/backstage/app-config.yaml", app_config.to_str().unwrap())
}

#[test]
fn the_example_file_parses() {
    let c = Config::parse(&example_with_local_files()).unwrap();
    assert_eq!(c.routes.extra[0].path, "/mcp");
    assert_eq!(c.clients.tokens.len(), 3);
    assert_eq!(c.alertmanager.url.as_deref(), Some("http://alertmanager:9093"));
}

#[test]
fn restart_only_settings_are_named() {
    let a = Config::default();
    let mut b = a.clone();
    b.listen = "127.0.0.1:1".parse().unwrap();
    b.sessions.idle_timeout = Duration::from_secs(1);
    assert_eq!(a.restart_only_changes(&b), vec!["listen"]);
}

#[test]
fn limits_are_checked() {
    let err = Config::parse(
        "limits:\n  request_body_timeout: 0s\n  max_request_body_bytes: 0\n  max_header_bytes: 100\n  max_connections: 0\n  decode_budget_bytes: 10\n  max_h2_streams: 4\n",
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "limits.request_body_timeout and limits.header_read_timeout must be greater than zero",
            "limits.max_request_body_bytes must be between 1 byte and 64 MiB",
            "limits.max_header_bytes must be at least 8192 (HTTP/1.1 parsing needs that much)",
            "limits.max_connections and limits.max_h2_streams must be greater than zero",
        ]
    );
    let err = Config::parse("limits:\n  max_request_body_bytes: 4096\n  decode_budget_bytes: 1024\n").unwrap_err();
    assert_eq!(
        err.problems,
        vec!["limits.decode_budget_bytes (1024) must hold at least one body of limits.max_request_body_bytes (4096)"]
    );
}

#[test]
fn forwarded_for_needs_trusted_proxies() {
    let err = Config::parse("audit:\n  source_from_forwarded_for: true\n").unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "audit.source_from_forwarded_for needs audit.trusted_proxies: the proxies (CIDRs) whose X-Forwarded-For is believed; otherwise any client could choose its own source address"
        ]
    );
    let ok = Config::parse("audit:\n  source_from_forwarded_for: true\n  trusted_proxies: [10.0.0.0/8, 'fd00::/8']\n");
    assert_eq!(ok.unwrap().audit.trusted_proxies.len(), 2);
    let err = Config::parse("bursts:\n  ipv6_prefix: 8\n").unwrap_err();
    assert_eq!(err.problems, vec!["bursts.ipv6_prefix 8 must be between 16 and 128"]);
}

#[test]
fn a_web_config_file_reports_every_problem_with_its_key() {
    let dir = std::env::temp_dir().join(format!("mcp-tap-web-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n  min_version: TLS11\n  \
         client_auth_type: RequireAnyClientCert\nhttp_server_config:\n  headers:\n    X-Powered-By: me\nbasic_auth_users:\n  \
         prometheus: not-a-hash\n",
    )
    .unwrap();
    let problems = WebConfig::load(&file).unwrap_err();
    let at = |p: &str| format!("{}: {p}", file.display());
    assert!(problems.contains(&at("tls_server_config.min_version: TLS 1.0 and 1.1 are not offered (TLS12 or TLS13)")));
    assert!(problems
        .iter()
        .any(|p| p.contains("client_auth_type RequireAnyClientCert accepts certificates nobody checked")));
    assert!(problems.iter().any(|p| p.contains("/nonexistent/cert.pem: cannot read PEM certificates")));
    assert!(problems.iter().any(|p| p.contains("`X-Powered-By` is not one of")));
    assert!(problems.iter().any(|p| p.starts_with(&at("basic_auth_users.prometheus: not a bcrypt hash"))));
    assert!(problems.iter().all(|p| !p.contains("not-a-hash")), "the hash is never echoed: {problems:?}");
    std::fs::write(&file, "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n").unwrap();
    let unknown = WebConfig::load(&file).unwrap_err();
    assert!(unknown[0].contains("unknown field `cipher_suites`"), "{unknown:?}");
    // Through the tap's own config, as check-config sees it.
    let config = Config::parse(&format!("web_config_file: {}\nadmin_open_paths: [metrics]\n", file.display()));
    let problems = config.unwrap_err().problems;
    assert!(problems.iter().any(|p| p.starts_with("web_config_file: ")), "{problems:?}");
    assert!(problems.contains(&"admin_open_paths: `metrics` must start with `/`".to_string()), "{problems:?}");
}
