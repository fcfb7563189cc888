//! The demo's live summary: the status view in at most 80 columns and a fixed number of lines,
//! so it can be redrawn in place under the banner.

use std::fmt::Write;

use super::View;

/// Operations rows shown; the busiest first.
const MAX_ROWS: usize = 6;
pub(crate) const WIDTH: usize = 80;

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:width$}")
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{:.1}", s * 1000.0))
}

/// The summary, every line at most `WIDTH` columns, always `lines()` lines long.
pub(crate) fn render(view: &View, status_url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<42}{:>8}{:>9}{:>9}{:>7}", "operation (last 5 min)", "ops/s", "p50 ms", "p99 ms", "err%");
    let mut rows: Vec<_> = view.operations.iter().collect();
    rows.sort_by(|a, b| b.per_second.total_cmp(&a.per_second).then(a.key.cmp(&b.key)));
    for i in 0..MAX_ROWS {
        let Some(r) = rows.get(i) else {
            out.push('\n');
            continue;
        };
        let name = if r.key.target.is_empty() { r.key.method.clone() } else { r.key.target.clone() };
        let err = r.error_ratio.map_or_else(|| "-".to_string(), |e| format!("{:.0}", e * 100.0));
        let _ = writeln!(out, "{}{:>8.1}{:>9}{:>9}{:>7}", fit(&name, 42), r.per_second, ms(r.p50), ms(r.p99), err);
    }
    let mut by_reason: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for ((reason, _), _, recent) in &view.auth {
        *by_reason.entry(reason.as_str()).or_default() += recent;
    }
    let failures: Vec<String> =
        by_reason.iter().filter(|(_, n)| **n > 0.0).map(|(r, n)| format!("{r} {n:.0}")).collect();
    let failures = if failures.is_empty() { "none".to_string() } else { failures.join(", ") };
    let _ = writeln!(out, "{}", fit(&format!("auth failures: {failures}"), WIDTH));
    let active: Vec<String> =
        view.now.bursts_active.iter().filter(|(_, n)| **n > 0.0).map(|(s, n)| format!("{s} {n:.0}")).collect();
    let bursts = if active.is_empty() { "none".to_string() } else { active.join(", ") };
    let sessions: f64 = view.now.sessions_active.values().sum();
    let line = format!("active bursts: {bursts}   sessions open: {sessions:.0}");
    let _ = writeln!(out, "{}", fit(&line, WIDTH));
    let _ = writeln!(out, "{}", fit(&format!("status page: {status_url}"), WIDTH));
    out
}

/// How many lines `render` prints.
pub(crate) const fn lines() -> usize {
    MAX_ROWS + 4
}
