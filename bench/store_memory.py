#!/usr/bin/env python3
"""The cluster store's memory under a flood of random credentials from random addresses.

One tap in cluster mode (a real redis-server as its store, trusted X-Forwarded-For so each
request has its own address) in front of the benchmark's fast upstream, which refuses every
"forbidden-" token with 403. wrk sends N requests, each with a new random token and address;
the store's `INFO memory` and key count are read right after (the peak: keys expire after their
window) and printed as a table.

    bench/store_memory.py --binary target/release/mcp-tap --requests 100000

Needs nginx, wrk and redis-server (Debian packages nginx-light, wrk, redis-server).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402  (the benchmark's upstream, tap and wrk helpers)

LUA = """
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
wrk.path = "/api/mcp-actions/v1"
local n = 0
request = function()
  n = n + 1
  local token = string.format("forbidden-%08x%08x", math.random(0, 0x7fffffff), n)
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. token, ["X-Forwarded-For"] = ip})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format('BENCH {"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p99":%d,"p999":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    nginx, wrk, redis = speed.need("nginx", "nginx-light"), speed.need("wrk", "wrk"), speed.need("redis-server", "redis-server")
    work = tempfile.mkdtemp(prefix="mcp-tap-store-memory-")
    procs = []
    try:
        up_port = speed.free_port()
        conf = speed.UPSTREAM_CONF.format(dir=work, port=up_port, answers=speed.ANSWERS, relay=speed.RELAY_PATH)
        procs.append(speed.start_nginx(nginx, conf, "upstream", up_port, work))
        store_port = speed.free_port()
        procs.append(subprocess.Popen([redis, "--port", str(store_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        speed.wait_port(store_port, "redis-server", procs[-1])
        before = int(redis_cli(store_port, "INFO", "memory").split("used_memory:")[1].split()[0])
        # Each request's address from X-Forwarded-For, as behind an ingress.
        speed.TAP_CONF = speed.TAP_CONF.replace(
            "audit:\n  output: {dir}/audit.jsonl\n",
            "audit:\n  output: {dir}/audit.jsonl\n  source_from_forwarded_for: true\n  trusted_proxies: [127.0.0.1/32]\n",
        )
        tap, tap_port, admin = speed.start_tap(args.binary, work, up_port, store_port)
        procs.append(tap)
        script = os.path.join(work, "random.lua")
        with open(script, "w") as f:
            f.write(LUA)
        started = time.time()
        sent = 0
        while sent < args.requests:
            r = speed.run_wrk(wrk, speed.Target("tap", tap_port, [tap.pid]), script, 2, 16)
            sent += r["requests"]
        elapsed = time.time() - started
        time.sleep(1)  # the last exchange
        info = redis_cli(store_port, "INFO", "memory")
        used = int(info.split("used_memory:")[1].split()[0])
        peak = int(info.split("used_memory_peak:")[1].split()[0])
        keys = int(redis_cli(store_port, "DBSIZE").strip())
        metrics = speed.scrape(admin)
        up = [l for l in metrics.splitlines() if l.startswith("mcp_tap_store_up{")]
        print(f"{sent:,} requests in {elapsed:.0f} s, each with a new token from a new address")
        print(f"| store | value |\n|---|---|")
        print(f"| used_memory before | {before / 2**20:.1f} MiB |")
        print(f"| used_memory after | {used / 2**20:.1f} MiB |")
        print(f"| used_memory_peak | {peak / 2**20:.1f} MiB |")
        print(f"| keys | {keys:,} |")
        print(f"| bytes per request | {(used - before) / max(sent, 1):.0f} |")
        print(f"tap: {up[0] if up else 'no store_up series'}")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
