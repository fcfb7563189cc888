//! The status page: one self-contained HTML document (inline style, no scripts, no external
//! resources) that reloads itself every few seconds. Cells that show a `/metrics` value carry a
//! `data-key`, so tests (and scrapers) can check them against the registry.

use std::fmt::Write;

use super::{OpRow, View};

/// How often the page reloads itself, in seconds.
pub(crate) const REFRESH_SECONDS: u32 = 5;

/// What the upstream's readiness endpoint said when the page was built.
pub(crate) struct Upstream<'a> {
    pub url: &'a str,
    /// `None` when ready, else why not.
    pub not_ready: Option<&'a str>,
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2329;background:#fafbfc}\
h1{font-size:20px;margin:0 0 .2em}h2{font-size:15px;margin:1.4em 0 .4em}\
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002}\
th,td{padding:.3em .8em;border-bottom:1px solid #e4e7eb;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f0f2f5;font-weight:600}\
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.muted{color:#6e7781}\
.grid{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}";

/// Escapes text for HTML (label values come from upstream answers and clients).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole number as the page shows counts.
fn count(v: f64) -> String {
    format!("{v:.0}")
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |s| format!("{:.1}", s * 1000.0))
}

fn cell(key: &str, text: &str) -> String {
    format!("<td class=\"n\" data-key=\"{}\">{}</td>", escape(key), escape(text))
}

fn operations(out: &mut String, rows: &[OpRow]) {
    out.push_str(
        "<h2>Operations</h2><table><tr><th>route</th><th>method</th><th>tool / prompt</th>\
        <th>total</th><th>errors</th><th>per second</th><th>error ratio</th><th>p50 ms</th><th>p99 ms</th></tr>",
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">no MCP operations yet</td></tr>");
    }
    for r in rows {
        let k = format!("op|{}|{}|{}", r.key.route, r.key.method, r.key.target);
        let ratio = r.error_ratio.map_or_else(|| "–".to_string(), |e| format!("{:.1}%", e * 100.0));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}<td class=\"n\">{:.2}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&r.key.route),
            escape(&r.key.method),
            escape(&r.key.target),
            cell(&format!("{k}|count"), &count(r.count)),
            cell(&format!("{k}|errors"), &count(r.errors)),
            r.per_second,
            ratio,
            ms(r.p50),
            ms(r.p99),
        );
    }
    out.push_str("</table>");
}

/// Counters by a pair of labels, with their increase over the window; rows that are still 0 are
/// left out. Cells carry `data-key` `{prefix}|{first}|{second}`.
fn pairs(
    out: &mut String,
    title: &str,
    (first, second): (&str, &str),
    prefix: &str,
    rows: &[((String, String), f64, f64)],
) {
    let _ = write!(
        out,
        "<h2>{title}</h2><table><tr><th>{first}</th><th>{second}</th><th>total</th><th>in window</th></tr>"
    );
    let mut any = false;
    for ((a, b), total, recent) in rows.iter().filter(|(_, total, _)| *total > 0.0) {
        any = true;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>{}<td class=\"n\">{}</td></tr>",
            escape(a),
            escape(b),
            cell(&format!("{prefix}|{a}|{b}"), &count(*total)),
            count(*recent),
        );
    }
    if !any {
        out.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    out.push_str("</table>");
}

/// OAuth clients: refreshes next to re-authorizations (users signing in again), by client.
fn oauth_clients(out: &mut String, view: &View) {
    let (refreshes, again) = (&view.now.oauth_refreshes, &view.now.oauth_reauthorizations);
    let clients: std::collections::BTreeSet<&String> =
        refreshes.iter().chain(again).filter(|(_, v)| **v > 0.0).map(|(k, _)| k).collect();
    if clients.is_empty() {
        return;
    }
    out.push_str("<h2>OAuth clients</h2><table><tr><th>client</th><th>refreshes</th><th>re-authorizations</th></tr>");
    for client in clients {
        let (r, a) = (refreshes.get(client).copied().unwrap_or(0.0), again.get(client).copied().unwrap_or(0.0));
        let _ = write!(
            out,
            "<tr><td>{}</td>{}{}</tr>",
            escape(client),
            cell(&format!("oauth-refreshes|{client}"), &count(r)),
            cell(&format!("oauth-reauthorizations|{client}"), &count(a)),
        );
    }
    out.push_str("</table>");
}

/// A two-column table of gauges by one label.
fn gauges(out: &mut String, title: &str, head: &str, prefix: &str, rows: &std::collections::BTreeMap<String, f64>) {
    let _ = write!(out, "<div><h2>{title}</h2><table><tr><th>{head}</th><th>now</th></tr>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td>{}</tr>", escape(k), cell(&format!("{prefix}|{k}"), &count(*v)));
    }
    out.push_str("</table></div>");
}

/// The whole page.
/// `sections`: more of the page, already HTML (the admin listener adds the servers clients reach).
pub(crate) fn render(view: &View, upstream: &Upstream<'_>, sections: &str, version: &str) -> String {
    let now = &view.now;
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mcp-tap status</title>\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><meta name=\"viewport\" content=\"width=device-width\">\
         <style>{STYLE}</style></head><body><h1>mcp-tap {}</h1><p>",
        escape(version)
    );
    let _ = match upstream.not_ready {
        None => write!(out, "upstream <b>{}</b>: <span class=\"ok\">ready</span>", escape(upstream.url)),
        Some(why) => {
            write!(
                out,
                "upstream <b>{}</b>: <span class=\"bad\">not ready</span> ({})",
                escape(upstream.url),
                escape(why)
            )
        }
    };
    let reload = match now.reload_ok {
        Some(true) => "<span class=\"ok\">last reload applied</span>",
        Some(false) => "<span class=\"bad\">last reload failed: the previous config is still in use</span>",
        None => "<span class=\"muted\">unknown</span>",
    };
    let bursts_now: f64 = now.bursts_active.values().sum();
    let _ = write!(
        out,
        " · config: {reload} · connections open: {} · active bursts: <b data-key=\"bursts|active\">{}</b>\
         <br><span class=\"muted\">rates and percentiles over the last {:.0} s (percentiles from histogram buckets, as \
         Prometheus's histogram_quantile); totals since start; refreshes every {REFRESH_SECONDS} s; the same \
         numbers as <a href=\"/metrics\">/metrics</a></span></p>",
        count(now.connections_open),
        count(bursts_now),
        view.window,
    );
    operations(&mut out, &view.operations);
    pairs(&mut out, "Auth failures", ("reason", "client"), "auth", &view.auth);
    pairs(&mut out, "OAuth journey", ("step", "outcome"), "oauth", &view.oauth);
    oauth_clients(&mut out, view);
    out.push_str(sections);
    out.push_str("<div class=\"grid\">");
    gauges(&mut out, "Active bursts", "scope", "burst", &now.bursts_active);
    gauges(&mut out, "Sessions", "route", "sessions", &now.sessions_active);
    gauges(&mut out, "Tools advertised", "route", "tools", &now.tools_advertised);
    out.push_str("</div></body></html>\n");
    out
}
