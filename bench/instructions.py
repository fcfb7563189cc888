#!/usr/bin/env python3
"""The overhead budget per exchange, in user-space CPU instructions: the tap and a stock nginx
reverse proxy, each run under valgrind's callgrind in front of the same fast upstream, each given
the same requests. Instruction counts do not depend on what else the machine is doing, so this
table is repeatable where timings on a shared 2-core machine are not. Kernel time (the sockets)
is not counted; bench/speed.py measures that side by side.

    bench/instructions.py --binary target/release/mcp-tap

Needs valgrind, nginx and wrk (scripts/test.sh installs them). Takes about two minutes.
"""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402

# "relay": the `tools/call` exchange on a path that is not MCP, the floor of what the tap costs.
SCENARIOS = ["tools/list", "tools/call", "401 flood", "403 flood", "mixed", "relay"]

SINGLE_PROCESS_PROXY = speed.PROXY_CONF.replace("worker_processes auto;", "master_process off;\ndaemon off;")


def total_instructions(path):
    out = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "PROGRAM TOTALS" in l)
    return int(line.split()[0].replace(",", ""))


def measure(command, port, lua, work, name, seconds, env=None):
    """Starts `command` under callgrind, warms it up, counts the instructions of one wrk run."""
    out = os.path.join(work, f"cg.{name}")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        speed.wait_port(port, name, proc)
        target = speed.Target(name, port, [])
        speed.run_wrk(wrk_path, target, lua, 2, 4)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        r = speed.run_wrk(wrk_path, target, lua, seconds, 4)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(f for f in os.listdir(work) if f.startswith(f"cg.{name}."))
    return total_instructions(os.path.join(work, dumps[-1])) / r["requests"]


def main():
    global wrk_path
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--seconds", type=float, default=8)
    args = ap.parse_args()
    nginx, wrk_path = speed.need("nginx", "nginx-light"), speed.need("wrk", "wrk")
    speed.need("valgrind", "valgrind")
    work = tempfile.mkdtemp(prefix="mcp-tap-instructions-")
    up = speed.free_port()
    upstream_conf = speed.UPSTREAM_CONF.format(dir=work, port=up, answers=speed.ANSWERS, relay=speed.RELAY_PATH)
    upstream = speed.start_nginx(nginx, upstream_conf, "upstream", up, work)
    rows = []
    try:
        for scenario in SCENARIOS:
            slug = scenario.replace("/", "-").replace(" ", "-")
            lua = os.path.join(work, slug + ".lua")
            with open(lua, "w") as f:
                f.write(speed.lua_script(scenario, 0))
            port = speed.free_port()
            conf = os.path.join(work, f"proxy-{slug}.conf")
            with open(conf, "w") as f:
                f.write(SINGLE_PROCESS_PROXY.format(dir=work, port=port, upstream=up))
            ngx = measure([nginx, "-c", conf, "-p", work], port, lua, work, f"nginx-{slug}", args.seconds)
            tap_port, admin = speed.free_port(), speed.free_port()
            tap_conf = os.path.join(work, f"tap-{slug}.yaml")
            with open(tap_conf, "w") as f:
                f.write(speed.TAP_CONF.format(port=tap_port, admin=admin, upstream=up, dir=work))
            env = dict(os.environ, MCP_TAP_FINGERPRINT_KEY="bench-fingerprint-key-0123456789")
            tap = measure([args.binary, "--config", tap_conf], tap_port, lua, work, f"tap-{slug}", args.seconds, env)
            rows.append((scenario, ngx, tap))
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    print(f"user-space instructions per exchange (callgrind; {args.binary})")
    print(f"{'scenario':12} {'nginx':>9} {'tap':>9} {'tap/nginx':>9}")
    for scenario, ngx, tap in rows:
        print(f"{scenario:12} {ngx:9,.0f} {tap:9,.0f} {tap / ngx:8.2f}x")


if __name__ == "__main__":
    main()
