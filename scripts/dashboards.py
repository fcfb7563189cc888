#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (classic JSON, schemaVersion 39).

Run `python3 scripts/dashboards.py` after editing; the generated files are committed so they can
be imported as they are. Every query filters on $job, $instance and $mcp_route (where the metric
has a route) and uses $__rate_interval, so the dashboards work whether Prometheus scrapes the tap
or receives its OTLP through a Collector (job = service.name there).
"""
import json
import pathlib

SEL = 'job=~"$job", instance=~"$instance"'
RSEL = SEL + ', mcp_route=~"$mcp_route"'
OPS = "mcp_server_operation_duration_seconds"
# The operations the SLO counts: version negotiation (server/discover, refused by servers older
# than MCP 2026-07-28 before the client falls back to initialize) is left out, as in the rules.
WORK = RSEL + ', mcp_method_name!="server/discover"'
SERVER_FAULT = 'error_type=~"-32603|-320[0-9][0-9]|5[0-9][0-9]|timeout|upstream_unavailable|stream_aborted"'


def variables():
    ds = {"type": "prometheus", "uid": "${datasource}"}
    def query_var(name, label, query, all_value=".*"):
        return {
            "name": name, "label": label, "type": "query", "datasource": ds,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": all_value,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
        }
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1},
        query_var("job", "Job", "label_values(mcp_tap_http_requests_total, job)"),
        query_var("instance", "Instance", 'label_values(mcp_tap_http_requests_total{job=~"$job"}, instance)'),
        query_var("mcp_route", "MCP route", 'label_values(mcp_tap_http_requests_total{job=~"$job"}, mcp_route)'),
    ]}


class Board:
    def __init__(self, uid, title, description, tags):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels, self.next_id, self.y, self.x = [], 1, 0, 0
        self.annotations = [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]

    def row(self, title):
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"id": self.next_id, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.next_id += 1
        self.y += 1

    def panel(self, title, description, unit, targets, kind="timeseries", w=12, h=8, extra=None):
        if self.x + w > 24:
            self.x = 0
            self.y += h
        p = {
            "id": self.next_id, "type": kind, "title": title, "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {}, "targets": [],
        }
        for i, t in enumerate(targets):
            expr, legend = t if isinstance(t, tuple) else (t, "")
            p["targets"].append({"refId": chr(65 + i), "expr": expr, "legendFormat": legend,
                                 "datasource": {"type": "prometheus", "uid": "${datasource}"}})
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        if extra:
            p.update(extra)
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        if self.x >= 24:
            self.x = 0
            self.y += h

    def annotation(self, name, expr, color):
        self.annotations.append({
            "name": name, "enable": True, "iconColor": color,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": expr, "step": "15s", "titleFormat": name, "tagKeys": "scope",
            "textFormat": "{{scope}} burst",
        })

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": self.tags,
            "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
            "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "",
            "templating": variables(), "annotations": {"list": self.annotations},
            "panels": self.panels, "links": [
                {"title": "mcp-tap dashboards", "type": "dashboards", "tags": ["mcp-tap"], "asDropdown": True},
            ],
        }


def overview():
    b = Board("mcp-tap-overview", "MCP overview",
              "MCP operations through mcp-tap: rate, success, latency, sessions, tools and upstream health.",
              ["mcp-tap", "mcp"])
    b.row("Traffic and success")
    b.panel("Operation rate by route", "MCP operations per second (requests and notifications), per route.", "reqps",
            [(f"sum by (mcp_route) (rate({OPS}_count{{{RSEL}}}[$__rate_interval]))", "{{mcp_route}}")])
    b.panel("Success ratio by route", "Share of operations without a server fault (5xx, -32603, -32000…-32099, transport). Tool errors and caller mistakes count as success here.", "percentunit",
            [(f"1 - (sum by (mcp_route) (rate({OPS}_count{{{WORK}, {SERVER_FAULT}}}[$__rate_interval])) or sum by (mcp_route) (rate({OPS}_count{{{WORK}}}[$__rate_interval])) * 0) / sum by (mcp_route) (rate({OPS}_count{{{WORK}}}[$__rate_interval]))", "{{mcp_route}}")],
            extra={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1}, "overrides": []}})
    b.panel("Error budget left (99.5% SLO, dashboard range)", "Share of the 0.5% server-fault budget not yet spent over the selected time range.", "percentunit",
            [(f"1 - ((sum(increase({OPS}_count{{{WORK}, {SERVER_FAULT}}}[$__range])) or vector(0)) / sum(increase({OPS}_count{{{WORK}}}[$__range]))) / 0.005", "budget left")],
            kind="stat", w=6)
    b.panel("Operations by method", "Operations per second by MCP method (unknown methods are _OTHER).", "reqps",
            [(f"sum by (mcp_method_name) (rate({OPS}_count{{{RSEL}}}[$__rate_interval]))", "{{mcp_method_name}}")], w=18)
    b.panel("Tool calls by tool", "tools/call per second by tool (tools the upstream never advertised are _OTHER).", "reqps",
            [(f'sum by (gen_ai_tool_name) (rate({OPS}_count{{{RSEL}, mcp_method_name="tools/call"}}[$__rate_interval]))', "{{gen_ai_tool_name}}")])
    b.panel("Tool use by surface and route", "tools/call per second on MCP by route (default or a named server), beside invocations of the plugins' actions API (/api/{plugin}/.backstage/actions/v1, the Backstage CLI and scripts) by plugin: the same tools reached two ways. Since Backstage 1.55 the default server exposes every action: traffic on it while named servers exist is outside their boundary (`mcp-tap report privileges` names the clients).", "reqps",
            [(f'sum by (mcp_route) (rate({OPS}_count{{{RSEL}, mcp_method_name="tools/call"}}[$__rate_interval]))', "mcp {{mcp_route}}"),
             (f'sum by (plugin) (rate(mcp_tap_actions_api_duration_seconds_count{{{SEL}, operation="invoke"}}[$__rate_interval]))', "actions_api {{plugin}}")])
    b.panel("Errors by error_type", "Failed operations per second by error_type: JSON-RPC code, tool_error, HTTP status, or transport failure (version negotiation left out).", "reqps",
            [(f'sum by (error_type) (rate({OPS}_count{{{WORK}, error_type!=""}}[$__rate_interval]))', "{{error_type}}")])
    b.panel("Version negotiation (server/discover)", "The probes MCP 2026-07-28 clients in auto mode send first: answered (empty error_type) or refused by a server on an older version (-32601, or -32000 with HTTP 400), after which the client falls back to initialize. Not errors.", "reqps",
            [(f'sum by (error_type) (rate({OPS}_count{{{RSEL}, mcp_method_name="server/discover"}}[$__rate_interval]))', "{{error_type}}")])
    b.panel("HTTP exchanges by status", "Every proxied HTTP exchange by status sent to the client.", "reqps",
            [(f"sum by (http_response_status_code) (rate(mcp_tap_http_requests_total{{{RSEL}}}[$__rate_interval]))", "{{http_response_status_code}}")])
    b.panel("Tool error ratio by tool", "Share of tools/call results with isError: true, by tool.", "percentunit",
            [(f'sum by (gen_ai_tool_name) (rate({OPS}_count{{{RSEL}, mcp_method_name="tools/call", error_type="tool_error"}}[$__rate_interval])) / sum by (gen_ai_tool_name) (rate({OPS}_count{{{RSEL}, mcp_method_name="tools/call"}}[$__rate_interval]))', "{{gen_ai_tool_name}}")])
    b.row("Latency")
    b.panel("Operation latency p50 / p95 / p99", "Request received to matching response sent to the client, all methods.", "s",
            [(f"histogram_quantile({q}, sum by (le) (rate({OPS}_bucket{{{RSEL}}}[$__rate_interval])))", f"p{int(q*100)}") for q in (0.5, 0.95, 0.99)])
    b.panel("Operation latency heatmap", "Distribution of mcp.server.operation.duration over time.", "s",
            [(f"sum by (le) (increase({OPS}_bucket{{{RSEL}}}[$__rate_interval]))", "{{le}}")], kind="heatmap",
            extra={"options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}}})
    b.panel("p95 latency by tool", "95th percentile of tools/call duration per tool.", "s",
            [(f'histogram_quantile(0.95, sum by (le, gen_ai_tool_name) (rate({OPS}_bucket{{{RSEL}, mcp_method_name="tools/call"}}[$__rate_interval])))', "{{gen_ai_tool_name}}")])
    b.panel("Backstage vs the path, p95", "The upstream hop alone (mcp.client.operation.duration: request sent to Backstage, answer back) beside what the client waited (mcp.server.operation.duration). A gap is the path (network, client, tap), not Backstage.", "s",
            [(f"histogram_quantile(0.95, sum by (le) (rate(mcp_client_operation_duration_seconds_bucket{{{RSEL}}}[$__rate_interval])))", "upstream (Backstage)"),
             (f"histogram_quantile(0.95, sum by (le) (rate({OPS}_bucket{{{RSEL}}}[$__rate_interval])))", "client waited")])
    b.panel("Tap overhead p99", "Time the tap itself adds per exchange (request and response header handling).", "s",
            [(f"histogram_quantile(0.99, sum by (le) (rate(mcp_tap_proxy_overhead_seconds_bucket{{{RSEL}}}[$__rate_interval])))", "p99")])
    b.row("Sessions and tools")
    b.panel("Sessions active", "Open MCP sessions (header sessions, and inferred ones for stateless Backstage).", "short",
            [(f"sum by (mcp_route) (mcp_tap_sessions_active{{{RSEL}}})", "{{mcp_route}}")], w=8)
    b.panel("Session duration p50 / p95", "How long sessions last, from initialize to delete, idle or shutdown.", "s",
            [(f"histogram_quantile({q}, sum by (le) (rate(mcp_server_session_duration_seconds_bucket{{{RSEL}}}[$__rate_interval])))", f"p{int(q*100)}") for q in (0.5, 0.95)], w=8)
    b.panel("Sessions ended by reason and kind", "Sessions ended per second by reason, and by how the tap knows them: header (Mcp-Session-Id), inferred (initialize to a stateless server) or stateless (MCP 2026-07-28 clients).", "ops",
            [(f"sum by (reason, session_kind) (rate(mcp_tap_sessions_ended_total{{{RSEL}}}[$__rate_interval]))", "{{session_kind}} {{reason}}")], w=8)
    b.panel("Input-required rounds by method", "MCP 2026-07-28 results that ask the client for more input (elicitation, sampling) before the request can finish: a normal extra round, not an error. Per tool: mcp_tap_input_required_total{gen_ai_tool_name}.", "ops",
            [(f"sum by (mcp_method_name) (rate(mcp_tap_input_required_total{{{RSEL}}}[$__rate_interval]))", "{{mcp_method_name}}")])
    b.panel("Tool answer size p95 by tool", "95th percentile of tools/call response body size per tool: the tools that flood an agent's context window.", "bytes",
            [(f'histogram_quantile(0.95, sum by (le, gen_ai_tool_name) (rate(mcp_tap_tool_response_bytes_bucket{{{RSEL}}}[$__rate_interval])))', "{{gen_ai_tool_name}}")])
    b.panel("Tools advertised", "Tools in the last tools/list answer per route. A drop means actions went missing (pluginSources).", "short",
            [(f"max by (mcp_route) (mcp_tap_tools_advertised{{{RSEL}}})", "{{mcp_route}}")])
    b.panel("Upstream errors by kind", "Failures talking to Backstage: connect, tls, reset, timeout.", "ops",
            [(f"sum by (kind) (rate(mcp_tap_upstream_errors_total{{{RSEL}}}[$__rate_interval]))", "{{kind}}")])
    return b


def auth():
    b = Board("mcp-tap-auth", "MCP auth audit",
              "Every 401/403 through mcp-tap with its reason and client (never the token), bursts and credential stuffing.",
              ["mcp-tap", "mcp", "security"])
    b.annotation("Burst started", f"increase(mcp_tap_auth_bursts_total{{{SEL}}}[$__rate_interval]) > 0", "red")
    af = "mcp_tap_auth_failures_total"
    b.row("Failures")
    for by, title in (("reason", "reason"), ("client", "client"), ("mcp_route", "route"), ("mcp_method_name", "MCP method")):
        b.panel(f"Auth failures by {title}", f"Refused requests per second by {title}. client is the Backstage static-token subject, unknown, or none.", "reqps",
                [(f"sum by ({by}) (rate({af}{{{RSEL}}}[$__rate_interval]))", "{{" + by + "}}")])
    b.row("Bursts")
    b.panel("Bursts active by scope", "Keys currently in an auth-failure burst: source address, credential, stuffing, global.", "short",
            [(f"sum by (scope) (mcp_tap_auth_burst_active{{{SEL}}})", "{{scope}}")])
    b.panel("Bursts started", "Bursts started in each interval, by scope.", "short",
            [(f"sum by (scope) (increase(mcp_tap_auth_bursts_total{{{SEL}}}[$__rate_interval]))", "{{scope}}")])
    b.panel("Credential stuffing signal", "Stuffing bursts active (many different tokens from one address) and the rate of unknown tokens.", "short",
            [(f'sum(mcp_tap_auth_burst_active{{{SEL}, scope="stuffing"}})', "stuffing bursts"),
             (f'sum(rate({af}{{{RSEL}, reason="unknown_token"}}[$__rate_interval]))', "unknown tokens/s")])
    b.panel("Revoked tokens still in use", "Refusals of credentials that worked before (rotated or removed in Backstage), by client, over the dashboard range.", "short",
            [(f'sum by (client) (increase({af}{{{RSEL}, reason="revoked_token"}}[$__range])) > 0', "{{client}}")], kind="table",
            extra={"options": {"showHeader": True}})
    b.panel("Credentials from unapproved networks", "Requests with a credential from outside audit.approved_networks, by client (audited as unapproved_source).", "reqps",
            [(f"sum by (client) (rate(mcp_tap_unapproved_source_total{{{SEL}}}[$__rate_interval]))", "{{client}}")])
    b.panel("Shared credentials", "Credentials presented by a second client name (clientInfo.name or User-Agent) within audit.shared_credential_window, by client (audited as credential_shared).", "short",
            [(f"sum by (client) (increase(mcp_tap_credential_shared_total{{{SEL}}}[$__rate_interval]))", "{{client}}")])
    b.panel("Clients that stopped refreshing", "Requests with an expired Backstage user token (genuine, only old), by client: OAuth clients that stopped refreshing (MCPTapClientStoppedRefreshing). Not counted as attacks.", "reqps",
            [(f"sum by (client) (rate(mcp_tap_expired_token_requests_total{{{SEL}}}[$__rate_interval]))", "{{client}}")])
    b.panel("Static token age by client", "Days since the tap first saw the static token each client uses now (min across replicas), against checklist.rotation_period (MCPTapCredentialNotRotated).", "d",
            [(f"(time() - min by (client) (mcp_tap_credential_first_seen_timestamp_seconds{{{SEL}}})) / 86400", "{{client}}"),
             (f"max(mcp_tap_credential_rotation_period_seconds{{{SEL}}}) / 86400", "rotation period")])
    b.panel("Least privilege: tools called / advertised", "Per client, distinct tools called within checklist.window over the tools advertised to it. Low means a token that can do far more than it does: `mcp-tap report privileges` lists the tools never called.", "percentunit",
            [(f"max by (mcp_route, client) (mcp_tap_client_tools_called{{{SEL}}}) / max by (mcp_route, client) (mcp_tap_client_tools_advertised{{{SEL}}} > 0)", "{{client}} on {{mcp_route}}")])
    b.panel("Header/body mismatches", "MCP 2026-07-28 requests whose Mcp-Method or Mcp-Name header disagreed with the JSON-RPC body (audited as header_mismatch).", "ops",
            [(f"sum by (kind) (rate(mcp_tap_header_mismatch_total{{{SEL}}}[$__rate_interval]))", "{{kind}}")])
    b.row("OAuth journey")
    oa = "mcp_tap_oauth_requests_total"
    b.panel("OAuth steps", "Requests of MCP clients' OAuth journey per second, by step (discovery, registration, consent, token by grant type, revocation) and outcome. Seen when the journey's paths go through the tap.", "reqps",
            [(f"sum by (step, outcome) (rate({oa}{{{SEL}}}[$__rate_interval]))", "{{step}} {{outcome}}")])
    b.panel("Where OAuth clients fail", "Failed journey steps per second, by step and the OAuth error the client received (invalid_grant, invalid_client, access_denied for a rejected consent, upstream_unavailable).", "reqps",
            [(f'sum by (step, outcome) (rate({oa}{{{SEL}, outcome!="ok"}}[$__rate_interval]))', "{{step}} {{outcome}}")])
    b.panel("Refreshes and re-authorizations by client", "Per OAuth client (the name the user consented to): token refreshes, and new sign-ins while the last refresh token was never used. Many re-authorizations and no refreshes: the client makes its users sign in every hour.", "short",
            [(f"sum by (client) (increase(mcp_tap_oauth_refreshes_total{{{SEL}}}[$__rate_interval]))", "{{client}} refreshes"),
             (f"sum by (client) (increase(mcp_tap_oauth_reauthorizations_total{{{SEL}}}[$__rate_interval]))", "{{client}} re-authorizations")])
    b.panel("OAuth findings", "Replayed refresh tokens (refresh_token_replay) and protected-resource metadata naming another URL than clients dial (resource_mismatch), over the dashboard range.", "short",
            [(f'sum by (kind) (increase(mcp_tap_findings_total{{{SEL}, kind=~"refresh_token_replay|resource_mismatch"}}[$__range]))', "{{kind}}")])
    b.row("Clients")
    b.panel("Operations by client and outcome", "MCP operations per second by client and outcome (ok, error, tool_error, denied).", "reqps",
            [(f"sum by (client, outcome) (rate(mcp_tap_client_operations_total{{{SEL}}}[$__rate_interval]))", "{{client}} {{outcome}}")])
    b.panel("Denied share by client", "Share of each client's operations that were denied.", "percentunit",
            [(f'sum by (client) (rate(mcp_tap_client_operations_total{{{SEL}, outcome="denied"}}[$__rate_interval])) / sum by (client) (rate(mcp_tap_client_operations_total{{{SEL}}}[$__rate_interval]))', "{{client}}")])
    return b


def health():
    b = Board("mcp-tap-health", "mcp-tap health",
              "The tap itself: config reloads, decoding, label overflow, audit trail, process CPU and memory.",
              ["mcp-tap"])
    b.row("Config")
    b.panel("Last config load successful", "1 if the last load of the config file succeeded on every instance.", "bool",
            [(f"min(mcp_tap_config_last_reload_successful{{{SEL}}})", "ok")], kind="stat", w=6)
    b.panel("Time since last good config", "Seconds since the last successful config load.", "s",
            [(f"time() - max(mcp_tap_config_last_reload_success_timestamp_seconds{{{SEL}}})", "age")], kind="stat", w=6)
    b.panel("Config reloads by result", "Reloads after start-up, by result.", "short",
            [(f"sum by (result) (increase(mcp_tap_config_reloads_total{{{SEL}}}[$__rate_interval]))", "{{result}}")])
    b.row("Decoding and labels")
    b.panel("Decode errors by kind", "Messages the tap could not decode. Traffic was forwarded unchanged.", "ops",
            [(f"sum by (kind) (rate(mcp_tap_decode_errors_total{{{SEL}}}[$__rate_interval]))", "{{kind}}")], w=8)
    b.panel("Unparsed messages by reason", "Messages forwarded without decoding (too large, unknown content type, unmatched ids).", "ops",
            [(f"sum by (reason) (rate(mcp_tap_unparsed_messages_total{{{SEL}}}[$__rate_interval]))", "{{reason}}")], w=8)
    b.panel("Label overflow by label", "Values folded into _OTHER to keep series bounded.", "ops",
            [(f"sum by (label) (rate(mcp_tap_label_overflow_total{{{SEL}}}[$__rate_interval]))", "{{label}}")], w=8)
    b.row("Audit trail")
    b.panel("Audit lines by event", "Audit lines queued per second by event.", "ops",
            [(f"sum by (event) (rate(mcp_tap_audit_events_total{{{SEL}}}[$__rate_interval]))", "{{event}}")], w=8)
    b.panel("Audit lines lost", "Lines dropped (queue full), write errors, failed Alertmanager posts.", "ops",
            [(f"sum by (cause) (rate(mcp_tap_audit_write_errors_total{{{SEL}}}[$__rate_interval]))", "{{cause}}")], w=8)
    b.panel("Burst keys evicted", "Burst-tracking keys forgotten at the per-scope cap.", "ops",
            [(f"sum by (scope) (rate(mcp_tap_auth_burst_keys_evicted_total{{{SEL}}}[$__rate_interval]))", "{{scope}}")], w=8)
    b.panel("OTLP export failures", "Failed OTLP pushes per second by signal (Collector down, slow or refusing). Traffic is never affected.", "ops",
            [(f"sum by (signal) (rate(mcp_tap_otlp_export_failures_total{{{SEL}}}[$__rate_interval]))", "{{signal}}")], w=12)
    b.panel("Audit events not delivered to the SIEM", "Audit events the OTLP-logs or syslog output dropped (queue full while the receiver is down or slow) or failed to send. Traffic is never affected.", "ops",
            [(f"sum by (output, cause) (rate(mcp_tap_audit_forward_dropped_total{{{SEL}}}[$__rate_interval]))", "{{output}} {{cause}}")], w=12)
    b.row("Cluster store")
    b.panel("Store up", "Cluster mode: 1 per replica that reached its Redis/Valkey store at its last exchange; 0 means it decides bursts alone.", "short",
            [(f"min by (instance, cluster) (mcp_tap_store_up{{{SEL}}})", "{{instance}} {{cluster}}")], w=12)
    b.panel("Store errors", "Failed connects and exchanges with the store, per second. Traffic is never affected.", "ops",
            [(f"sum by (operation) (rate(mcp_tap_store_errors_total{{{SEL}}}[$__rate_interval]))", "{{operation}}")], w=12)
    b.row("Securing the tap")
    b.panel("Admin requests refused", "Requests to the admin port refused with 401 by basic auth (web config file), by reason. A rise after a password change is a scraper with the old one.", "ops",
            [(f"sum by (reason) (rate(mcp_tap_admin_auth_failures_total{{{SEL}}}[$__rate_interval]))", "{{reason}}")], w=8)
    b.panel("TLS handshakes failed", "Failed TLS handshakes per listener: clients that do not trust the certificate, or plain HTTP on a TLS port.", "ops",
            [(f"sum by (listener) (rate(mcp_tap_tls_handshake_failures_total{{{SEL}}}[$__rate_interval]))", "{{listener}}")], w=8)
    b.panel("Certificate reloads", "Changed certificate files re-read, by listener and result; a failure keeps the certificate served.", "short",
            [(f"sum by (listener, result) (increase(mcp_tap_tls_certificate_reloads_total{{{SEL}}}[$__rate_interval]))", "{{listener}} {{result}}")], w=8)
    b.row("Process")
    b.panel("CPU", "CPU seconds used per second by each tap process.", "percentunit",
            [(f"rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval])", "{{instance}}")], w=8)
    b.panel("Resident memory", "Resident set size of each tap process.", "bytes",
            [(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}}")], w=8)
    b.panel("Open file descriptors", "Open file descriptors (client and upstream connections, audit file).", "short",
            [(f"process_open_fds{{{SEL}}}", "{{instance}}")], w=8)
    b.panel("Build", "Version and revision of each running tap.", "short",
            [(f"max by (instance, version, revision) (mcp_tap_build_info{{{SEL}}})", "{{instance}} {{version}}")], kind="table", w=24,
            extra={"options": {"showHeader": True}})
    return b


def main():
    import sys
    out = pathlib.Path(__file__).resolve().parent.parent / "dashboards"
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        out = pathlib.Path(sys.argv[2])
    out.mkdir(exist_ok=True)
    for board, name in ((overview(), "mcp-overview.json"), (auth(), "mcp-auth-audit.json"), (health(), "mcp-tap-health.json")):
        (out / name).write_text(json.dumps(board.json(), indent=2) + "\n")
        print(f"wrote dashboards/{name}")


if __name__ == "__main__":
    main()
