//! `mcp-tap demo`: the tap in front of an embedded upstream that behaves as Backstage's MCP
//! Actions endpoint does (stateless, SSE answers, static tokens with Backstage's 401/403 bodies,
//! a few tools, one of which always fails, user tokens from a demo auth backend), with a traffic
//! generator that includes auth failures, one burst and an OAuth client that stopped refreshing.
//! For a first look without a Backstage at hand.

mod user_tokens;

use std::convert::Infallible;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::config::{ClientToken, Config};
use crate::status::{terminal, History};

/// The demo's static tokens: (token, subject, may call MCP).
const TOKENS: [(&str, &str, bool); 2] =
    [("demo-token-vscode-7f3a91", "vscode-demo", true), ("demo-token-catalog-reader-22be", "catalog-reader", false)];
const BOGUS_TOKEN: &str = "demo-token-guessed-0000";
const MCP_PATH: &str = "/api/mcp-actions/v1";

/// Runs the demo until `shutdown` resolves. `log_file` is where log lines go (`None`: stderr).
pub async fn run(
    mut config: Config,
    proxy: TcpListener,
    admin: TcpListener,
    log_file: Option<&Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(serve_upstream(upstream));
    config.upstream.url = format!("http://{upstream_addr}");
    config.audit.output = std::env::temp_dir().join("mcp-tap-demo-audit.jsonl").to_string_lossy().into_owned();
    config.checklist.state_dir = Some(std::env::temp_dir().join("mcp-tap-demo-state"));
    // Ctrl-C ends the demo at once: nothing stands behind it to drain from.
    config.shutdown_drain_delay = Duration::ZERO;
    config.clients.tokens = TOKENS
        .iter()
        .map(|(token, subject, _)| ClientToken {
            subject: subject.to_string(),
            token_sha256: Some(Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()),
            ..Default::default()
        })
        .collect();
    let tap = proxy.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let status_url = format!("http://{admin_addr}/");
    let logs = log_file.map_or_else(|| "below (-v)".to_string(), |p| p.display().to_string());
    let banner = format!(
        "mcp-tap demo: the tap in front of an embedded Backstage-like MCP server\n\
         \n  status page  {status_url}\
         \n  tap          http://{tap}{MCP_PATH}\
         \n  metrics      http://{admin_addr}/metrics\
         \n  audit log    {audit}\
         \n  log lines    {logs}\n\
         \nTool calls (one tool always fails), 401s, 403s and an auth burst. Ctrl-C stops.\n\n",
        audit = config.audit.output,
    );
    // One write, and a reader that has gone (`mcp-tap demo | head`) stops nothing: `print!`
    // would panic on the closed pipe.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);
    let history = Arc::new(History::default());
    tokio::spawn(traffic(tap));
    if std::io::stdout().is_terminal() && log_file.is_some() {
        tokio::spawn(summary(history.clone(), status_url));
    }
    let options = crate::app::Options { status: Some(history), ..Default::default() };
    crate::app::run_with(config, proxy, admin, shutdown, options).await
}

/// Redraws the live summary in place under the banner, as often as the status snapshots change.
async fn summary(history: Arc<History>, status_url: String) {
    let mut drawn = false;
    let mut tick = tokio::time::interval(crate::status::SAMPLE_INTERVAL);
    loop {
        tick.tick().await;
        let Some(view) = history.latest_view() else { continue };
        let mut out = String::new();
        if drawn {
            // Back to the first line of the last summary, and clear from there down.
            out.push_str(&format!("\x1b[{}A\r\x1b[J", terminal::lines()));
        }
        out.push_str(&terminal::render(&view, &status_url));
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
        drawn = true;
    }
}

async fn serve_upstream(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req| async { Ok::<_, Infallible>(backstage(req).await) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: u16, content_type: Option<&str>, body: String) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::builder().status(status);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(Full::new(Bytes::from(body))).expect("valid response")
}

fn backstage_error(status: u16, name: &str, message: &str) -> http::Response<Full<Bytes>> {
    let body = json!({
        "error": {"name": name, "message": message},
        "request": {"method": "POST", "url": "/v1"},
        "response": {"statusCode": status},
    });
    respond(status, Some("application/json; charset=utf-8"), body.to_string())
}

/// Answers as Backstage's MCP Actions endpoint does (see shared/backstage-facts.md).
async fn backstage(req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    if req.uri().path() == "/.backstage/health/v1/readiness" {
        return respond(200, Some("application/json"), r#"{"status":"ok"}"#.into());
    }
    if req.uri().path() == user_tokens::JWKS_PATH {
        return respond(200, Some("application/json"), user_tokens::signer().jwks.clone());
    }
    if req.uri().path() != MCP_PATH {
        return respond(404, None, String::new());
    }
    // Auth runs before MCP, for every method.
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let token = match auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        Some(t) => t.trim().to_string(),
        None => return backstage_error(401, "AuthenticationError", "Missing credentials"),
    };
    let user_token = crate::identity::jwt::is_jwt(&token);
    match TOKENS.iter().find(|(t, _, _)| *t == token) {
        None if user_token && user_tokens::signer().verify(&token) => {}
        None if user_token => return backstage_error(401, "AuthenticationError", "Failed user token verification"),
        None => return backstage_error(401, "AuthenticationError", "Illegal token"),
        Some((_, _, false)) => {
            return backstage_error(403, "NotAllowedError", "This token's access is restricted to plugin(s) 'catalog'")
        }
        Some(_) => {}
    }
    if req.method() != http::Method::POST {
        return respond(
            405,
            None,
            r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Method not allowed."},"id":null}"#.into(),
        );
    }
    let body = req.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let messages: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(v)) => v,
        Ok(v) => vec![v],
        Err(_) => return backstage_error(400, "InputError", "Malformed JSON body"),
    };
    let mut events = String::new();
    for m in messages.iter().filter(|m| m.get("id").is_some() && m.get("method").is_some()) {
        let answer = answer(m).await;
        events.push_str(&format!("event: message\ndata: {answer}\n\n"));
    }
    if events.is_empty() {
        return respond(202, None, String::new());
    }
    respond(200, Some("text/event-stream"), events)
}

async fn answer(m: &Value) -> Value {
    let id = m["id"].clone();
    let result = |r: Value| json!({"result": r, "jsonrpc": "2.0", "id": id});
    let text = |t: String, is_error: bool| json!({"content": [{"type": "text", "text": t}], "isError": is_error});
    match m["method"].as_str().unwrap_or("") {
        "initialize" => result(json!({
            "protocolVersion": m["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "backstage-demo", "version": "0.0.0"},
        })),
        "ping" => result(json!({})),
        "tools/list" => result(json!({"tools": [
            {"name": "catalog.get-catalog-entity", "description": "Get an entity", "inputSchema": {"type": "object"}},
            {"name": "catalog.query-catalog-entities", "description": "Query entities", "inputSchema": {"type": "object"}},
            {"name": "demo.broken-action", "description": "Always fails", "inputSchema": {"type": "object"}},
        ]})),
        "tools/call" => match m["params"]["name"].as_str().unwrap_or("") {
            "catalog.get-catalog-entity" => result(text(
                json!({"kind": "Component", "metadata": {"name": "payments-api"}, "spec": {"owner": "team-payments"}})
                    .to_string(),
                false,
            )),
            "catalog.query-catalog-entities" => {
                // A slower action, so latency histograms have something to show.
                tokio::time::sleep(Duration::from_millis(150)).await;
                result(text(json!({"items": [{"metadata": {"name": "payments-api"}}]}).to_string(), false))
            }
            "demo.broken-action" => result(text("InputError: the demo action always fails".into(), true)),
            other => result(text(format!("NotFoundError: Action \"{other}\" not found"), true)),
        },
        _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
    }
}

type DemoClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// One MCP POST to the tap as a client with User-Agent `agent` and bearer `token`.
async fn post(client: DemoClient, url: String, agent: &'static str, token: Option<String>, body: String) {
    let mut req = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("user-agent", agent);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Ok(resp) = client.request(req.body(Full::new(Bytes::from(body))).expect("valid request")).await {
        let _ = resp.into_body().collect().await;
    }
}

/// A small, endless traffic generator against the tap.
async fn traffic(tap: SocketAddr) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{tap}{MCP_PATH}");
    let send_as = |agent, token, body| post(client.clone(), url.clone(), agent, token, body);
    let send = |token: Option<&'static str>, body: String| send_as("mcp-tap-demo/1.0", token.map(str::to_string), body);
    let call = |id: u64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
            .to_string()
    };
    let good = Some(TOKENS[0].0);
    let signer = user_tokens::signer();
    let stale = signer.token("user:default/bob", -600);
    let mut id = 0u64;
    for round in 0u64.. {
        id += 10;
        if round % 20 == 0 {
            let init = json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "demo-agent", "version": "1"}}});
            send(good, init.to_string()).await;
            send(good, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into()).await;
        }
        send(good, json!({"jsonrpc": "2.0", "id": id + 1, "method": "tools/list"}).to_string()).await;
        send(good, call(id + 2, "catalog.get-catalog-entity")).await;
        send(good, call(id + 3, "catalog.query-catalog-entities")).await;
        if round % 3 == 0 {
            send(good, call(id + 4, "demo.broken-action")).await;
        }
        if round % 4 == 1 {
            send(None, json!({"jsonrpc": "2.0", "id": id + 5, "method": "tools/list"}).to_string()).await;
        }
        if round % 5 == 2 {
            send(Some(TOKENS[1].0), json!({"jsonrpc": "2.0", "id": id + 6, "method": "tools/list"}).to_string()).await;
        }
        // OAuth clients with Backstage user tokens: VS Code signed in; Claude Code's token expired
        // and it stopped refreshing (now and then, so it stays a finding, not a burst).
        let list = json!({"jsonrpc": "2.0", "id": id + 7, "method": "tools/list"}).to_string();
        send_as("Visual Studio Code/1.99.0", Some(signer.token("user:default/alice", 3600)), list.clone()).await;
        if round % 30 == 5 {
            send_as("claude-code/2.1.0 (cli)", Some(stale.clone()), list).await;
        }
        if round == 3 || round % 120 == 60 {
            // A client stuck with a bad token: a burst.
            for i in 0..25 {
                send(Some(BOGUS_TOKEN), call(id + 100 + i, "catalog.get-catalog-entity")).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
