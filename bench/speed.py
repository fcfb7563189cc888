#!/usr/bin/env python3
"""The cost of the tap next to the nginx it sits beside, measured side by side in one run.

A fast upstream (nginx serving byte-exact Backstage MCP answers from bench/answers/, captured from
the real backend) is reached three ways: directly, through a stock Debian nginx reverse proxy
(keep-alive upstream, unbuffered, access log on as shipped), and through the tap (metrics, auth
audit to a file, session tracking: all on, as configured for production). wrk drives each
scenario against the three targets in turn, over several rounds, and the table shows medians:
requests/s, latency percentiles, CPU seconds of the proxy per 10k requests, each as a ratio.

    bench/speed.py                                  # full run (about 10 minutes), release binary
    bench/speed.py --quick --binary target/release/mcp-tap   # CI: under a minute, floors only

Needs nginx and wrk (Debian packages `nginx-light` and `wrk`; scripts/test.sh installs them).
Traffic stays on 127.0.0.1.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ANSWERS = os.path.join(HERE, "answers")
MCP_PATH = "/api/mcp-actions/v1"
LIST = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
CALL = (
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"catalog.get-catalog-entity",'
    '"arguments":{"kind":"component","namespace":"default","name":"payments-api"}}}'
)
# A path that is not MCP: the tap routes the request, rewrites the forwarding headers, counts it
# and decodes nothing. What the tap costs there is its floor, before any MCP work.
RELAY_PATH = "/api/catalog/bench-relay"
CREDENTIALS = 1000
TICKS = os.sysconf("SC_CLK_TCK")

# Floors for --quick (one 2 s round, the release build): full runs put these ratios at 0.88-1.39x
# nginx and one quick round moves them by about 20%, so 0.6 passes noise and fails a regression
# that makes the tap 1.7 times slower (a 3x one lands near 0.33).
QUICK_FLOORS = {"tools/list": 0.6, "tools/call": 0.6, "401 flood": 0.6, "403 flood": 0.6}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(program, package):
    path = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if not path:
        sys.exit(f"{program} is not installed: `apt-get install {package}` (scripts/test.sh does it)")
    return path


def wait_port(port, what, proc=None):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode} before listening on {port}")
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


UPSTREAM_CONF = """
worker_processes 2;
pid {dir}/upstream.pid;
error_log {dir}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  # Which captured answer: no token -> 401, a "forbidden-" token -> 403 (a token whose
  # accessRestrictions leave out mcp-actions), else the x-bench-answer header picks the method.
  map $http_authorization $auth_kind {{ "" missing; "~^Bearer forbidden-" forbidden; default ok; }}
  map "$auth_kind:$http_x_bench_answer" $answer {{
    "~^missing:" 401.json; "~^forbidden:" 403.json; "ok:call" tools-call.sse; default tools-list.sse;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /api/mcp-actions/ {{ rewrite ^ /answers/$answer last; }}
    # The relay floor: the same answer on a path that is not MCP, which the tap only relays.
    location = {relay} {{ rewrite ^ /answers/tools-call.sse last; }}
    # POST to a static file is a 405; error_page serves the file with the answer's status instead.
    location = /answers/tools-list.sse {{ internal; alias {answers}/tools-list.sse;
      default_type text/event-stream; error_page 405 =200 $uri; }}
    location = /answers/tools-call.sse {{ internal; alias {answers}/tools-call.sse;
      default_type text/event-stream; error_page 405 =200 $uri; }}
    location = /answers/401.json {{ internal; alias {answers}/401.json;
      default_type "application/json; charset=utf-8"; error_page 405 =401 $uri; }}
    location = /answers/403.json {{ internal; alias {answers}/403.json;
      default_type "application/json; charset=utf-8"; error_page 405 =403 $uri; }}
  }}
}}
"""

# What a platform team runs today: Debian's nginx as a keep-alive reverse proxy, SSE unbuffered.
PROXY_CONF = """
worker_processes auto;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log {dir}/proxy-access.log;
  upstream backstage {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backstage;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""

TAP_CONF = """
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
upstream:
  url: http://127.0.0.1:{upstream}
routes:
  server_keys: [catalog]
audit:
  output: {dir}/audit.jsonl
checklist:
  state_dir: {dir}/state
log:
  level: warn
"""


def lua_script(scenario, rate_delay_ms):
    """A wrk script: the request(s) of the scenario, and a done() that prints one JSON line."""
    head = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        'wrk.headers["Accept"] = "application/json, text/event-stream"',
        f"local list, call = {json.dumps(LIST)}, {json.dumps(CALL)}",
    ]
    if scenario == "relay":
        head.append(f'wrk.path = "{RELAY_PATH}"')
    if scenario in ("tools/list", "tools/call", "fixed rate", "relay"):
        body, answer = (LIST, "list") if scenario == "tools/list" else (CALL, "call")
        head += [
            f"wrk.body = {json.dumps(body)}",
            f'wrk.headers["x-bench-answer"] = "{answer}"',
            'wrk.headers["Authorization"] = "Bearer bench-agent-token-0001"',
        ]
    elif scenario == "403 flood":
        head += ["wrk.body = list", 'wrk.headers["Authorization"] = "Bearer forbidden-catalog-reader"']
    elif scenario == "401 flood":
        head += ["wrk.body = list"]
    elif scenario == "mixed":
        # 1,000 credentials; per 20 requests: 12 tools/call, 5 tools/list, 2 without a token, 1 forbidden.
        head += [
            "local reqs = {}",
            "local n = 0",
            "function init(args)",
            f"  for i = 1, {CREDENTIALS} do",
            '    local auth = string.format("Bearer bench-client-%04d-token", i)',
            "    for k = 1, 20 do",
            "      local h = {}",
            '      h["Content-Type"] = "application/json"',
            '      h["Accept"] = "application/json, text/event-stream"',
            "      local b = call",
            '      if k <= 12 then h["Authorization"] = auth; h["x-bench-answer"] = "call"',
            '      elseif k <= 17 then h["Authorization"] = auth; b = list',
            '      elseif k <= 19 then b = list',
            '      else h["Authorization"] = "Bearer forbidden-" .. i; b = list end',
            f'      reqs[#reqs + 1] = wrk.format("POST", "{MCP_PATH}", h, b)',
            "    end",
            "  end",
            "end",
            "function request()",
            "  n = n + 7919",
            "  return reqs[(n % #reqs) + 1]",
            "end",
        ]
    if rate_delay_ms:
        head += [f"function delay() return {rate_delay_ms} end"]
    head += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.stderr:write(string.format(\'BENCH {"requests":%d,"duration_us":%d,"errors":%d,'
        '"p50":%d,"p99":%d,"p999":%d}\\n\', summary.requests, summary.duration,'
        " e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),"
        " latency:percentile(99.9)))",
        "end",
    ]
    return "\n".join(head) + "\n"


def proc_cpu(pids):
    """CPU seconds of `pids` so far: (user, kernel)."""
    user = kernel = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            kernel += int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return user / TICKS, kernel / TICKS


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def nginx_pids(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        return [master] + [int(p) for p in f.read().split()]


class Target:
    def __init__(self, name, port, pids):
        self.name, self.port, self.pids = name, port, pids


def run_wrk(wrk, target, script, seconds, connections):
    before = proc_cpu(target.pids)
    out = subprocess.run(
        [wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "-s", script,
         f"http://127.0.0.1:{target.port}{MCP_PATH}"],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    user, kernel = (after - b for after, b in zip(proc_cpu(target.pids), before))
    line = next((l for l in out.stderr.splitlines() if l.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        sys.exit(f"wrk failed against {target.name}: {out.stdout}\n{out.stderr}")
    r = json.loads(line[6:])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    measured = target.pids and r["requests"]
    r["cpu_per_10k"] = (user + kernel) / r["requests"] * 10_000 if measured else None
    r["user_per_10k"] = user / r["requests"] * 10_000 if measured else None
    if r["errors"]:
        sys.exit(f"{target.name}: {r['errors']} socket errors in a run; the numbers would lie")
    return r


def nginx_main_directives():
    """`-g` directives for nginx. Started as root, nginx runs its workers as `nobody`, who may not
    read a checkout inside a private directory (a fresh clone in a `mktemp -d`, as CI makes): the
    upstream then answers 403 to everything, and every number measures that. So the workers run as
    whoever runs the bench."""
    if os.geteuid() != 0:
        return "daemon off;"
    import grp
    import pwd

    return f"daemon off; user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def check_upstream(port):
    """The captured answers are served: a tools/call with a token is a 200."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/api/mcp-actions/v1", body=CALL,
                 headers={"Authorization": "Bearer bench-agent-token-0001", "x-bench-answer": "call"})
    status = conn.getresponse().status
    conn.close()
    if status != 200:
        sys.exit(f"the upstream nginx answered {status} instead of 200: can its workers read {ANSWERS}?")


def start_nginx(nginx, conf_text, name, port, work):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    log = os.path.join(work, f"{name}-error.log")
    directives = nginx_main_directives()
    subprocess.run([nginx, "-t", "-q", "-c", conf, "-p", work, "-e", log, "-g", directives], check=True)
    proc = subprocess.Popen([nginx, "-c", conf, "-p", work, "-e", log, "-g", directives])
    wait_port(port, name, proc)
    time.sleep(0.2)  # workers forked
    if "/answers/" in conf_text:
        check_upstream(port)
    return proc


def start_tap(binary, work, upstream_port, store_port=None):
    port, admin = free_port(), free_port()
    name = "mcp-tap-store" if store_port else "mcp-tap"
    conf = os.path.join(work, f"{name}.yaml")
    tap_dir = os.path.join(work, name)
    os.makedirs(tap_dir, exist_ok=True)
    with open(conf, "w") as f:
        f.write(TAP_CONF.format(port=port, admin=admin, upstream=upstream_port, dir=tap_dir))
        if store_port:
            # Cluster mode, as 2+ replicas run it: bursts exchanged with the store every 250 ms.
            f.write(f"cluster:\n  store_url: redis://127.0.0.1:{store_port}/0\n")
    env = dict(os.environ, MCP_TAP_FINGERPRINT_KEY="bench-fingerprint-key-0123456789")
    env.pop("RUST_LOG", None)
    proc = subprocess.Popen([binary, "--config", conf], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, f"{name}.log"), "w"))
    wait_port(port, "the tap", proc)
    return proc, port, admin


def scrape(admin):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        return r.read().decode()


def fmt_ratio(a, b):
    return f"{a / b:5.2f}x" if a is not None and b else "    - "


def print_table(results, order):
    print(f"{'scenario':12} {'target':9} {'req/s':>8} {'/nginx':>7} {'/direct':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'p99.9 ms':>8} {'CPU s/10k':>9} {'/nginx':>7}")
    for scenario in order:
        rows = results[scenario]
        for name in ("direct", "nginx", "tap", "tap+store"):
            r = rows[name]
            cpu = f"{r['cpu_per_10k']:9.3f}" if r["cpu_per_10k"] is not None else f"{'-':>9}"
            print(f"{scenario:12} {name:9} {r['rps']:8.0f} {fmt_ratio(r['rps'], rows['nginx']['rps']):>7} "
                  f"{fmt_ratio(r['rps'], rows['direct']['rps']):>7} {r['p50'] / 1000:7.2f} {r['p99'] / 1000:7.2f} "
                  f"{r['p999'] / 1000:8.2f} {cpu} {fmt_ratio(r['cpu_per_10k'], rows['nginx']['cpu_per_10k']):>7}")
        print()


def median_run(runs):
    keys = ("rps", "p50", "p99", "p999")
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    for k in ("cpu_per_10k", "user_per_10k"):
        cpus = [r[k] for r in runs if r[k] is not None]
        out[k] = statistics.median(cpus) if cpus else None
    return out


def print_cpu_split(results, order):
    """Where each proxy's CPU went: a difference in user space is work the proxy does itself."""
    print("CPU s/10k split into user + kernel time (medians):")
    for scenario in order:
        parts = []
        for name in ("nginx", "tap"):
            r = results[scenario][name]
            parts.append(f"{name} {r['user_per_10k']:.3f} + {r['cpu_per_10k'] - r['user_per_10k']:.3f}")
        print(f"  {scenario:12} " + "   ".join(parts))
    print()


def memory_growth(wrk, work, binary, upstream_port, total):
    """A fresh tap under the mixed workload: RSS after the first 10k requests and after `total`."""
    proc, port, admin = start_tap(binary, os.path.join(work, "growth"), upstream_port)
    target = Target("tap", port, [proc.pid])
    script = os.path.join(work, "mixed.lua")
    done, after_10k = 0, None
    try:
        while done < total:
            seconds = 1 if after_10k is None else 10
            done += run_wrk(wrk, target, script, seconds, 32)["requests"]
            if after_10k is None:
                after_10k = (done, proc_status(proc.pid, "VmRSS"))
        return after_10k, (done, proc_status(proc.pid, "VmRSS"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--quick", action="store_true", help="CI: one short round, fail only below generous floors")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=2000, help="target req/s of the fixed-rate scenario")
    ap.add_argument("--growth-requests", type=int, default=1_000_000)
    ap.add_argument("--only", help="comma-separated scenarios to run (while profiling); the verdicts need all")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.growth_requests = 1, 2, 0
    nginx, wrk = need("nginx", "nginx-light"), need("wrk", "wrk")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release` (or pass --binary)")

    work = tempfile.mkdtemp(prefix="mcp-tap-speed-")
    os.makedirs(os.path.join(work, "growth"))
    procs = []
    try:
        up_port, proxy_port = free_port(), free_port()
        upstream_conf = UPSTREAM_CONF.format(dir=work, port=up_port, answers=ANSWERS, relay=RELAY_PATH)
        procs.append(start_nginx(nginx, upstream_conf, "upstream", up_port, work))
        proxy = start_nginx(nginx, PROXY_CONF.format(dir=work, port=proxy_port, upstream=up_port), "proxy",
                            proxy_port, work)
        procs.append(proxy)
        tap, tap_port, tap_admin = start_tap(args.binary, work, up_port)
        procs.append(tap)
        # The same tap in cluster mode, with a real Redis as its store (not on the request path).
        store_port = free_port()
        store = subprocess.Popen([need("redis-server", "redis-server"), "--port", str(store_port), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        procs.append(store)
        wait_port(store_port, "redis-server", store)
        clustered, clustered_port, _ = start_tap(args.binary, work, up_port, store_port)
        procs.append(clustered)
        targets = [Target("direct", up_port, []), Target("nginx", proxy_port, nginx_pids(proxy.pid)),
                   Target("tap", tap_port, [tap.pid]), Target("tap+store", clustered_port, [clustered.pid])]

        # Fixed rate: each connection waits `delay` ms after an answer, so the rate is about
        # connections * 1000 / (delay + latency); 16 connections at 8 ms give about 2,000 req/s.
        rate_conns = 16
        delay = max(1, round(rate_conns * 1000 / args.rate))
        scenarios = ["tools/list", "tools/call", "401 flood", "403 flood", "mixed", "fixed rate", "relay"]
        if args.only:
            scenarios = [s for s in scenarios if s in args.only.split(",")]
        scripts = {}
        for s in set(scenarios) | {"mixed"}:
            path = os.path.join(work, s.replace("/", "-").replace(" ", "-") + ".lua")
            with open(path, "w") as f:
                f.write(lua_script(s, delay if s == "fixed rate" else 0))
            scripts[s] = path
        runs = {s: {t.name: [] for t in targets} for s in scenarios}
        for t in targets:  # warm-up: pools filled, tools learned
            run_wrk(wrk, t, scripts["mixed"], 1, args.connections)
        for rnd in range(args.rounds):
            for s in scenarios:
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for t in order:
                    conns = rate_conns if s == "fixed rate" else args.connections
                    runs[s][t.name].append(run_wrk(wrk, t, scripts[s], args.seconds, conns))
        results = {s: {n: median_run(r) for n, r in by.items()} for s, by in runs.items()}
        peak = {"tap": proc_status(tap.pid, "VmHWM"),
                "nginx": sum(proc_status(p, "VmHWM") for p in targets[1].pids)}
        metrics = scrape(tap_admin)
        growth = None
        if args.growth_requests:
            growth = memory_growth(wrk, work, args.binary, up_port, args.growth_requests)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    # A full run leaves about 200 MB of audit and access logs; a failed run keeps them to read.
    shutil.rmtree(work, ignore_errors=True)

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"mcp-tap speed, {stamp}, {os.cpu_count()} cores, {platform.machine()}, {platform.platform()}")
    print(f"command: {' '.join(sys.argv)}  ({args.rounds} rounds x {args.seconds:g} s, wrk -t1 "
          f"-c{args.connections}; fixed rate: {rate_conns} connections, {delay} ms pause; medians)")
    print()
    print_table(results, scenarios)
    print_cpu_split(results, scenarios)
    print(f"peak RSS: tap {peak['tap'] / 1024:.1f} MiB, nginx (master + workers) {peak['nginx'] / 1024:.1f} MiB")
    if growth:
        (n1, r1), (n2, r2) = growth
        print(f"RSS growth under the mixed workload: {r1 / 1024:.1f} MiB after {n1:,} requests, "
              f"{r2 / 1024:.1f} MiB after {n2:,} ({(r2 / r1 - 1) * 100:+.1f}%)")
    audited = sum(float(l.split()[-1]) for l in metrics.splitlines()
                  if l.startswith("mcp_tap_auth_failures_total{"))
    print(f"the tap counted {audited:,.0f} auth failures (every one audited)")
    print()
    if args.only:
        return
    verdicts = check(results, growth, peak, args.quick)
    for ok, text in verdicts:
        print(("PASS " if ok else ("FAIL " if args.quick else "MISS ")) + text)
    if args.quick and not all(ok for ok, _ in verdicts):
        sys.exit(1)


def check(results, growth, peak, quick):
    out = []
    for s in ("tools/list", "tools/call", "401 flood", "403 flood"):
        ratio = results[s]["tap"]["rps"] / results[s]["nginx"]["rps"]
        floor = QUICK_FLOORS[s] if quick else 1.0
        out.append((ratio >= floor, f"{s}: throughput {ratio:.2f}x nginx (target >= {floor:g}x)"))
    # Cluster mode costs the request path a map insert per failure: its throughput is held to the
    # tap's own in the same run, where the store is exercised (floods of refusals, mixed).
    for s in ("401 flood", "mixed"):
        if s in results:
            ratio = results[s]["tap+store"]["rps"] / results[s]["tap"]["rps"]
            floor = 0.6 if quick else 0.95
            out.append((ratio >= floor, f"{s}: cluster mode throughput {ratio:.2f}x the tap without a store (target >= {floor:g}x)"))
    if quick:
        return out
    fixed = results["fixed rate"]
    extra = (fixed["tap"]["p99"] - fixed["nginx"]["p99"]) / 1000
    out.append((extra <= 0.3, f"fixed rate: p99 {extra:+.2f} ms against nginx (target <= +0.30 ms)"))
    for s in ("tools/list", "tools/call", "401 flood"):
        tap, ngx = results[s]["tap"]["cpu_per_10k"], results[s]["nginx"]["cpu_per_10k"]
        out.append((tap <= ngx, f"{s}: CPU per request {tap / ngx:.2f}x nginx (target <= 1x)"))
    if growth:
        (_, r1), (n2, r2) = growth
        out.append((r2 <= r1 * 1.1, f"RSS after {n2:,} requests {r2 / r1:.2f}x RSS after the first 10k (target <= 1.10x)"))
    return out


if __name__ == "__main__":
    main()
