#!/usr/bin/env python3
"""A soak: the tap in cluster mode under 30 minutes of mixed traffic, and what a day in
production does to it, sampled every minute. It is flat or it fails.

    bench/soak.py --binary target/release/mcp-tap               # 30 minutes
    bench/soak.py --minutes 4 --binary target/release/mcp-tap   # a check of the bench itself

Traffic, all at once:
- ~500 req/s of tools/call and tools/list (SSE answers: byte-exact Backstage answers served by
  nginx) over 5,000 credentials taken in turn, so every table that remembers clients fills and
  evicts; one request in 200 is refused (403, a token whose restrictions leave out MCP);
- a 401 every 10 s, too few for a burst, and every 4 minutes a burst: 12 s of 401s;
- a config reload every 2 minutes (a burst threshold changed back and forth);
- the store (a real redis-server) restarted in the middle of the run.

Every minute it prints the tap's RSS, open file descriptors, metric series, audit lines written
in that minute and requests answered. Verdicts (warm-up: the first 5 minutes, or the first
third of a shorter run): RSS, descriptors and series of the second half no higher than the first
half's (RSS within 15 %, descriptors within 8, series within 5 %); no socket error; every reload
applied; the store back within a minute of its restart.

Needs nginx, wrk and redis-server (Debian `nginx-light`, `wrk`, `redis-server`).
"""

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402  (the shared helpers of the speed benchmark)

CONNECTIONS, DELAY_MS = 8, 15  # ~500 req/s
CREDENTIALS = 5000
BURST_EVERY, BURST_SECONDS = 240, 12
RELOAD_EVERY = 120
MIB = 1024


def lua(delay_ms):
    """Valid calls and lists over CREDENTIALS tokens in turn; one request in 200 forbidden."""
    return f"""
wrk.method = "POST"
local list, call = {speed.json.dumps(speed.LIST)}, {speed.json.dumps(speed.CALL)}
local n = 0
function request()
  n = n + 1
  local h = {{}}
  h["Content-Type"] = "application/json"
  h["Accept"] = "application/json, text/event-stream"
  local body = list
  if n % 200 == 0 then
    h["Authorization"] = "Bearer forbidden-soak-" .. (n % 7)
  else
    h["Authorization"] = string.format("Bearer soak-client-%05d-token", n % {CREDENTIALS})
    if n % 3 ~= 0 then h["x-bench-answer"] = "call"; body = call end
  end
  return wrk.format("POST", "{speed.MCP_PATH}", h, body)
end
function delay() return {delay_ms} end
function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format('BENCH {{"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p99":%d,"p999":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


TAP_CONF = """
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
upstream:
  url: http://127.0.0.1:{upstream}
audit:
  output: {dir}/audit.jsonl
bursts:
  source: {{failures: {failures}, window: 60s}}
checklist:
  state_dir: {dir}/state
cluster:
  store_url: redis://127.0.0.1:{store}/0
log:
  level: warn
"""


class Store:
    """A real redis-server on a fixed port, restartable."""

    def __init__(self, work, port):
        self.work, self.port, self.proc = work, port, None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        speed.wait_port(self.port, "redis-server", self.proc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def post(port, token):
    """One MCP request outside wrk; its status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", speed.MCP_PATH, body=speed.LIST, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def refusals(port, stop, seconds, log):
    """A 401 every 10 s, and a burst of 401s (about 25 a second) every BURST_EVERY seconds."""
    start = time.time()
    next_burst = start + BURST_EVERY / 2
    while not stop.wait(0.0):
        now = time.time()
        if now >= next_burst:
            log.append(("burst", round(now - start)))
            while time.time() < next_burst + BURST_SECONDS and not stop.is_set():
                post(port, None)
                time.sleep(0.04)
            next_burst += BURST_EVERY
        else:
            post(port, None)
            stop.wait(10)
        if time.time() - start > seconds:
            return


def metric_sum(text, prefix):
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def series(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def sample(tap, admin, audit, prev):
    text = speed.scrape(admin)
    fds = len(os.listdir(f"/proc/{tap.pid}/fd"))
    answered = metric_sum(text, "mcp_tap_http_requests_total")
    audit_lines = lines(audit)
    return {
        "rss": speed.proc_status(tap.pid, "VmRSS"), "fds": fds, "series": series(text),
        "audit": audit_lines - prev.get("audit_total", 0), "audit_total": audit_lines,
        "answered": answered - prev.get("answered_total", 0), "answered_total": answered,
        "store_up": metric_sum(text, "mcp_tap_store_up"),
        "reloads": metric_sum(text, 'mcp_tap_config_reloads_total{result="success"}'),
    }


def write_conf(path, failures, **kw):
    with open(path + ".tmp", "w") as f:
        f.write(TAP_CONF.format(failures=failures, **kw))
    os.replace(path + ".tmp", path)


def run(args, work):
    nginx, wrk = speed.need("nginx", "nginx-light"), speed.need("wrk", "wrk")
    speed.need("redis-server", "redis-server")
    procs, rows, events = [], [], []
    up_port = speed.free_port()
    conf_text = speed.UPSTREAM_CONF.format(dir=work, port=up_port, answers=speed.ANSWERS, relay=speed.RELAY_PATH)
    procs.append(speed.start_nginx(nginx, conf_text, "upstream", up_port, work))
    store = Store(work, speed.free_port())
    store.start()
    port, admin = speed.free_port(), speed.free_port()
    tap_dir = os.path.join(work, "tap")
    os.makedirs(tap_dir)
    conf = os.path.join(work, "tap.yaml")
    kw = dict(port=port, admin=admin, upstream=up_port, dir=tap_dir, store=store.port)
    write_conf(conf, 20, **kw)
    env = dict(os.environ, MCP_TAP_FINGERPRINT_KEY="bench-fingerprint-key-0123456789")
    env.pop("RUST_LOG", None)
    tap = subprocess.Popen([args.binary, "--config", conf], env=env, stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(work, "tap.log"), "w"))
    procs.append(tap)
    speed.wait_port(port, "the tap", tap)
    seconds = args.minutes * 60
    script = os.path.join(work, "soak.lua")
    with open(script, "w") as f:
        f.write(lua(DELAY_MS))
    result = {}
    load = threading.Thread(target=lambda: result.update(
        speed.run_wrk(wrk, speed.Target("tap", port, [tap.pid]), script, seconds, CONNECTIONS)))
    stop = threading.Event()
    refuse = threading.Thread(target=refusals, args=(port, stop, seconds, events))
    load.start()
    refuse.start()
    start, prev, reloads, restarted = time.time(), {}, 0, None
    audit = os.path.join(tap_dir, "audit.jsonl")
    try:
        for minute in range(1, args.minutes + 1):
            while time.time() < start + minute * 60:
                elapsed = time.time() - start
                if elapsed >= (reloads + 1) * RELOAD_EVERY and elapsed < seconds - 30:
                    reloads += 1
                    write_conf(conf, 20 + reloads % 2, **kw)
                if restarted is None and elapsed >= seconds / 2:
                    store.stop()
                    time.sleep(3)
                    store.start()
                    restarted = elapsed
                    events.append(("store restart", round(elapsed)))
                time.sleep(0.5)
            prev = sample(tap, admin, audit, prev)
            prev["minute"] = minute
            rows.append(prev)
            print(f"  minute {minute}: RSS {prev['rss'] / MIB:.1f} MiB, fds {prev['fds']}, series {prev['series']}, "
                  f"audit lines {prev['audit']}, answered {prev['answered']:.0f}", flush=True)
        load.join()
    finally:
        stop.set()
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        store.stop()
    return rows, result, reloads, events, restarted


def verdicts(rows, result, reloads, events, minutes):
    warm = 5 if minutes >= 15 else max(1, minutes // 3)
    steady = rows[warm:]
    half = len(steady) // 2
    first, second = steady[:half] or steady, steady[half:] or steady
    top = lambda rs, k: max(r[k] for r in rs)  # noqa: E731
    checks = [
        ("RSS flat (second half ≤ first half + 15 %)", top(second, "rss") <= top(first, "rss") * 1.15,
         f"{top(first, 'rss') / MIB:.1f} → {top(second, 'rss') / MIB:.1f} MiB"),
        ("open descriptors flat (± 8)", top(second, "fds") <= top(first, "fds") + 8,
         f"{top(first, 'fds')} → {top(second, 'fds')}"),
        ("series flat (second half ≤ first half + 5 %)", top(second, "series") <= top(first, "series") * 1.05,
         f"{top(first, 'series')} → {top(second, 'series')}"),
        ("no socket error", result.get("errors", 1) == 0, f"{result.get('errors')} errors"),
        ("every reload applied", rows[-1]["reloads"] >= reloads, f"{rows[-1]['reloads']:.0f} of {reloads}"),
        ("store up at the end", rows[-1]["store_up"] >= 1, f"mcp_tap_store_up {rows[-1]['store_up']:.0f}"),
    ]
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--minutes", type=int, default=30)
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release` (or pass --binary)")
    work = tempfile.mkdtemp(prefix="mcp-tap-soak-")
    print(f"soak: {args.minutes} minutes, ~{1000 // DELAY_MS * CONNECTIONS} req/s over {CREDENTIALS:,} credentials")
    rows, result, reloads, events, restarted = run(args, work)
    shutil.rmtree(work, ignore_errors=True)
    print("\n| minute | RSS (MiB) | open fds | series | audit lines | requests answered |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minute']} | {r['rss'] / MIB:.1f} | {r['fds']} | {r['series']} | {r['audit']} | "
              f"{r['answered']:,.0f} |")
    print(f"\nwrk: {result.get('requests', 0):,} requests, p99 {result.get('p99', 0) / 1000:.2f} ms, "
          f"p99.9 {result.get('p999', 0) / 1000:.2f} ms; reloads {reloads}; events: "
          + ", ".join(f"{what} at {at} s" for what, at in events))
    failed = False
    for name, ok, detail in verdicts(rows, result, reloads, events, args.minutes):
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
