//! The binary as an operator meets it: exit codes, every config problem at once, the start-up
//! log line, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-tap");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env_remove("RUST_LOG").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-tap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn version_and_help_exit_zero() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("mcp-tap {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("check-config") && out.contains("--upstream"), "{out}");
}

#[test]
fn check_config_accepts_the_example() {
    // The example's file paths, pointed at files that exist here.
    let key = temp_file("fingerprint.key", "0123456789abcdef0123");
    let app_config = temp_file("app-config.yaml", "backend: {}\n");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mcp-tap.example.yaml"))
        .unwrap()
        .replace("/etc/mcp-tap/fingerprint.key", key.to_str().unwrap())
        .replace("/etc/backstage/app-config.yaml", app_config.to_str().unwrap());
    let example = temp_file("example.yaml", &text);
    let example = example.to_str().unwrap();
    let (code, out, _) = run(&["check-config", example]);
    assert_eq!(code, 0);
    assert!(out.ends_with(": ok\n"), "{out}");
}

#[test]
fn check_config_prints_every_problem_and_exits_64() {
    let bad = temp_file("bad.yaml", "listen: 127.0.0.1:1\nadmin_listen: 127.0.0.1:1\nupstream:\n  url: backstage\n  timeout: 3s\nlog:\n  level: '[[['\n");
    let (code, _, err) = run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 64);
    let lines: Vec<&str> = err.lines().collect();
    let path = bad.display().to_string();
    assert_eq!(
        lines,
        vec![
            format!("{path}: unknown key `upstream.timeout`"),
            format!("{path}: upstream.url `backstage` must be an absolute http:// or https:// URL"),
            format!("{path}: listen and admin_listen are both 127.0.0.1:1; give each its own port"),
            format!("{path}: log.level `[[[` is not a valid filter such as `info` or `mcp_tap=debug`"),
        ]
    );
}

#[test]
fn unreadable_or_unparsable_files_exit_64() {
    let (code, _, err) = run(&["check-config", "/nonexistent/mcp-tap.yaml"]);
    assert_eq!(code, 64);
    assert!(err.contains("cannot read the config file"), "{err}");
    let broken = temp_file("broken.yaml", "listen: [\n");
    let (code, _, err) = run(&["check-config", broken.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(!err.is_empty());
}

#[test]
fn bad_usage_exits_64() {
    assert_eq!(run(&["--listen", "not-an-address"]).0, 64);
    assert_eq!(run(&["no-such-command"]).0, 64);
    assert_eq!(run(&["--upstream", "ftp://x", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]).0, 64);
}

#[test]
fn a_port_in_use_is_a_runtime_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["--listen", &addr, "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("cannot listen on {addr} (listen)")), "{err}");
}

/// Kills the child if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn runs_logs_json_and_exits_zero_on_sigterm() {
    // Only the state directory is set: everything else is the built-in default.
    let state = std::env::temp_dir().join(format!("mcp-tap-cli-state-{}", std::process::id()));
    let config = std::env::temp_dir().join(format!("mcp-tap-cli-{}.yaml", std::process::id()));
    std::fs::write(&config, format!("checklist:\n  state_dir: {}\n", state.display())).unwrap();
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--upstream", "http://127.0.0.1:9"])
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("MCP_TAP_FINGERPRINT_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let logs: Vec<serde_json::Value> =
        lines.by_ref().take(4).map(|l| serde_json::from_str(&l.unwrap()).expect("every log line is JSON")).collect();
    // Without a fingerprint key the operator is warned that fingerprints will not survive a restart.
    assert!(logs.iter().any(
        |l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("fingerprints change at every restart")
    ));
    let first =
        logs.iter().find(|l| l["message"].as_str().unwrap().starts_with("mcp-tap is proxying")).expect("start-up line");
    assert_eq!(first["level"], "INFO");
    assert!(first["message"].as_str().unwrap().starts_with("mcp-tap is proxying MCP traffic"));
    assert_eq!(first["upstream"], "http://127.0.0.1:9/");
    let admin = first["admin"].as_str().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&admin).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = child.0.wait().unwrap();
        let _ = tx.send(status);
    });
    let status = rx.recv_timeout(Duration::from_secs(10)).expect("the tap stops on SIGTERM within 10 s");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_readmes_config_file_starts_the_tap() {
    // README.md: `cargo run --release -- --config config/mcp-tap.example.yaml`, run from the
    // repository, with only the ports moved so that it cannot collide with other tests.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- --config config/mcp-tap.example.yaml"));
    let child = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", "config/mcp-tap.example.yaml"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.map_while(Result::ok).take(40) {
        if line.contains("mcp-tap is proxying") {
            assert!(child.0.try_wait().unwrap().is_none(), "the tap exited after starting");
            return;
        }
        seen.push(line);
    }
    panic!("the example config did not start the tap; it logged:\n{}", seen.join("\n"));
}
