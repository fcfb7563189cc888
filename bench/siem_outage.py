#!/usr/bin/env python3
"""A SIEM outage under load: the tap sends every audit event (an `operation` event per MCP request,
`audit.operations: all`) to an OTLP collector and to a syslog receiver over TCP, and both are down
for 60 s while clients send 2,000 requests a second. Traffic must not notice: no failed request,
throughput and latency as a tap without those outputs measured in the same run, memory flat, and
every event the outputs could not deliver counted. Then the syslog receiver comes back, and what
waited in the queue reaches it.

    bench/siem_outage.py --binary target/release/mcp-tap            # 60 s outage (CI)
    bench/siem_outage.py --outage 300 --binary target/release/mcp-tap

Needs nginx and wrk (Debian `nginx-light`, `wrk`). Traffic stays on 127.0.0.1.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402  (the shared helpers of the speed benchmark)

RATE_CONNECTIONS, RATE_DELAY_MS = 16, 7  # 2,000 req/s or a little more
SEGMENT = 10  # seconds between RSS samples
LOG_QUEUE, SYSLOG_QUEUE = 2048, 10_000


def start_tap(binary, work, name, upstream_port, audit_extra="", extra=""):
    """speed.py's production tap with an `operation` event per MCP request, plus `audit_extra`
    (keys under `audit:`) and `extra` (top-level sections)."""
    port, admin = speed.free_port(), speed.free_port()
    tap_dir = os.path.join(work, name)
    os.makedirs(tap_dir, exist_ok=True)
    text = speed.TAP_CONF.format(port=port, admin=admin, upstream=upstream_port, dir=tap_dir)
    text = text.replace("audit:\n", "audit:\n  operations: all\n" + audit_extra, 1) + extra
    conf = os.path.join(work, f"{name}.yaml")
    with open(conf, "w") as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "RUST_LOG"}
    env["MCP_TAP_FINGERPRINT_KEY"] = "bench-fingerprint-key-0123456789"
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen([binary, "--config", conf], env=env, stdout=subprocess.DEVNULL, stderr=log)
    speed.wait_port(port, name, proc)
    return proc, port, admin


def metric_sum(text, prefix):
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(prefix))


def refused(text):
    """HTTP exchanges the tap answered with anything but 200, whatever order the labels come in,
    by status. 499 is left out: the client closed its connection with a request in flight (wrk
    does at the end of each segment), which the tap records as cancelled; nothing failed."""
    import re

    by_status = {}
    for line in text.splitlines():
        if line.startswith("mcp_tap_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            status = labels.get("http_response_status_code")
            if status not in ("200", "499") and float(line.split()[-1]) > 0:
                by_status[status] = by_status.get(status, 0.0) + float(line.split()[-1])
    return by_status


class SyslogReceiver(threading.Thread):
    """A TCP syslog receiver (octet counting) that counts the messages it gets."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", port))
        self.messages = 0

    def run(self):
        conn, _ = self.sock.accept()
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b" " in buf:
                length, rest = buf.split(b" ", 1)
                if len(rest) < int(length):
                    break
                buf = rest[int(length):]
                self.messages += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--outage", type=int, default=60, help="seconds both receivers are down under load")
    args = ap.parse_args()
    nginx, wrk = speed.need("nginx", "nginx-light"), speed.need("wrk", "wrk")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release` (or pass --binary)")
    work = tempfile.mkdtemp(prefix="mcp-tap-siem-")
    procs = []
    otlp_port, syslog_port = speed.free_port(), speed.free_port()  # nothing listens: both down
    audit_outputs = f"  syslog: tcp://127.0.0.1:{syslog_port}\n  syslog_queue_size: {SYSLOG_QUEUE}\n"
    otlp = f"otlp:\n  endpoint: http://127.0.0.1:{otlp_port}\n  protocol: http/protobuf\n  log_queue_size: {LOG_QUEUE}\n"
    try:
        up_port = speed.free_port()
        conf = speed.UPSTREAM_CONF.format(dir=work, port=up_port, answers=speed.ANSWERS, relay=speed.RELAY_PATH)
        procs.append(speed.start_nginx(nginx, conf, "upstream", up_port, work))
        plain, plain_port, _ = start_tap(args.binary, work, "tap", up_port)
        procs.append(plain)
        siem, siem_port, siem_admin = start_tap(args.binary, work, "tap-siem", up_port, audit_outputs, otlp)
        procs.append(siem)
        script = os.path.join(work, "fixed.lua")
        with open(script, "w") as f:
            f.write(speed.lua_script("fixed rate", RATE_DELAY_MS))
        targets = {"tap": speed.Target("tap", plain_port, [plain.pid]),
                   "tap, SIEM down": speed.Target("tap, SIEM down", siem_port, [siem.pid])}
        for t in targets.values():  # warm-up
            speed.run_wrk(wrk, t, script, 1, RATE_CONNECTIONS)
        baseline = speed.run_wrk(wrk, targets["tap"], script, SEGMENT, RATE_CONNECTIONS)
        segments, rss = [], []
        for _ in range(max(1, args.outage // SEGMENT)):
            segments.append(speed.run_wrk(wrk, targets["tap, SIEM down"], script, SEGMENT, RATE_CONNECTIONS))
            rss.append(speed.proc_status(siem.pid, "VmRSS"))
        during = speed.scrape(siem_admin)
        receiver = SyslogReceiver(syslog_port)
        receiver.start()
        deadline = time.time() + 20
        while receiver.messages == 0 and time.time() < deadline:
            time.sleep(0.2)
        recovered = receiver.messages
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)

    requests = sum(s["requests"] for s in segments)
    rps = requests / sum(s["duration_us"] / 1e6 for s in segments)
    p99 = max(s["p99"] for s in segments) / 1000
    events = metric_sum(during, 'mcp_tap_audit_events_total{event="operation"}')
    failed_by_status = refused(during)
    failed = sum(failed_by_status.values())
    dropped = {o: metric_sum(during, f'mcp_tap_audit_forward_dropped_total{{cause="queue_full",output="{o}"}}')
               + metric_sum(during, f'mcp_tap_audit_forward_dropped_total{{cause="export_failed",output="{o}"}}')
               for o in ("otlp", "syslog")}
    print(f"SIEM outage under load: {args.outage} s, wrk -c{RATE_CONNECTIONS} with {RATE_DELAY_MS} ms pauses")
    print()
    print("| | tap (no SIEM outputs) | tap, OTLP and syslog receivers down |")
    print("|---|---|---|")
    print(f"| requests/s | {baseline['rps']:,.0f} | {rps:,.0f} |")
    print(f"| p99 latency | {baseline['p99'] / 1000:.2f} ms | {p99:.2f} ms (worst {SEGMENT} s segment) |")
    print(f"| failed requests | 0 | {failed:.0f} |")
    print()
    print("RSS every 10 s (MiB): " + ", ".join(f"{r / 1024:.1f}" for r in rss))
    print(f"operation events: {events:,.0f}; not delivered, counted: OTLP {dropped['otlp']:,.0f}, "
          f"syslog {dropped['syslog']:,.0f}; syslog receiver back: {recovered:,} queued events arrived")
    verdicts = [
        (failed == 0 and requests > 0, f"no request failed ({requests:,} requests; non-200 by status: {failed_by_status})"),
        # Fixed-rate load: the rate follows latency, and two shared cores move it by a few percent;
        # a tap that waited on a dead receiver (5 s write timeouts) would fall far below.
        (rps >= 0.9 * baseline["rps"], f"throughput {rps / baseline['rps']:.2f}x the tap without outputs (>= 0.9x)"),
        (rss[-1] - rss[0] <= 8 * 1024, f"RSS from {SEGMENT} s to the end: {(rss[-1] - rss[0]) / 1024:+.1f} MiB (<= +8 MiB)"),
        (dropped["otlp"] >= events - 2 * LOG_QUEUE, f"OTLP: every event not queued is counted ({dropped['otlp']:,.0f} of {events:,.0f})"),
        (dropped["syslog"] >= events - SYSLOG_QUEUE - 512, f"syslog: every event not queued is counted ({dropped['syslog']:,.0f} of {events:,.0f})"),
        (recovered > 0, "the syslog receiver gets the queued events once it is back"),
    ]
    for ok, text in verdicts:
        print(("PASS " if ok else "FAIL ") + text)
    if not all(ok for ok, _ in verdicts):
        sys.exit(1)


if __name__ == "__main__":
    main()
