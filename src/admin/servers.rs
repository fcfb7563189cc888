//! The status page's section on which server each client reaches: per client, the MCP routes
//! (default or named) and the actions API it used within the least-privilege window, the tools
//! each advertised to it, what the report notes about the default server, and credentials
//! refused on MCP that the actions API answered. From the least-privilege report.

use std::fmt::Write;

use crate::checklist::privileges::Report;
use crate::status::page::escape;

/// The section; nothing while no client was seen.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.clients.is_empty() {
        return out;
    }
    out.push_str(
        "<h2>Clients and the servers they reach</h2><table><tr><th>client</th><th>surface</th><th>route</th>\
         <th>tools advertised</th><th>called</th><th>never called</th></tr>",
    );
    let mut lines: Vec<_> = report.clients.iter().collect();
    lines.sort_by(|a, b| (&a.client, &a.surface, &a.route).cmp(&(&b.client, &b.surface, &b.route)));
    for l in lines {
        let tools = if l.tools.is_empty() { "-".to_string() } else { l.tools.join(", ") };
        let never = if l.never_called.is_empty() { "-".to_string() } else { l.never_called.join(", ") };
        let _ = write!(
            &mut out,
            "<tr><td>{}</td><td>{}</td><td data-route=\"{}|{}\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&l.client),
            escape(&l.surface),
            escape(&l.client),
            escape(&l.route),
            escape(&l.route),
            escape(&tools),
            l.called.len(),
            escape(&never),
        );
    }
    out.push_str("</table>");
    for note in &report.notes {
        let _ = write!(out, "<p class=\"bad\" data-note>{}.</p>", escape(note));
    }
    for r in &report.actions_api_reach {
        let _ = write!(
            &mut out,
            "<p data-reach=\"{}\">{} (credential {}) was refused on MCP route {} ({}) and answered by the {} \
             actions API: its restrictions allow it.</p>",
            escape(&r.client),
            escape(&r.client),
            escape(&r.credential),
            escape(&r.refused_route),
            escape(&r.refused_reason),
            escape(&r.plugin),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::privileges::ReportLine;

    fn line(client: &str, route: &str) -> ReportLine {
        ReportLine {
            route: route.into(),
            surface: "mcp".into(),
            client: client.into(),
            advertised: 2,
            tools: vec!["catalog.get-catalog-entity".into(), "<b>".into()],
            called: vec!["catalog.get-catalog-entity".into()],
            called_on_other_surface: Vec::new(),
            never_called: vec!["<b>".into()],
        }
    }

    #[test]
    fn each_client_shows_the_servers_it_reaches_and_the_default_server_note() {
        let mut report = Report {
            window_seconds: 86_400,
            clients: Vec::new(),
            named_servers: vec!["catalog".into()],
            notes: Vec::new(),
            actions_api_reach: Vec::new(),
        };
        assert_eq!(render(&report), "", "no clients, no section");
        report.clients = vec![line("ci-agent", "default"), line("reader", "catalog")];
        report.notes = vec!["ci-agent uses the default server".into()];
        let html = render(&report);
        assert!(html.contains("<h2>Clients and the servers they reach</h2>"), "{html}");
        assert!(html.contains("data-route=\"ci-agent|default\">default<"));
        assert!(html.contains("data-route=\"reader|catalog\">catalog<"));
        assert!(html.contains("ci-agent uses the default server."));
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"), "names are escaped");
    }
}
