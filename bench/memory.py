#!/usr/bin/env python3
"""Memory under hostile clients: the tap with its default limits, hit by slow HTTP/1.1 clients that
send most of a large MCP body and then stall, and by HTTP/2 connections that open every stream
they may and do the same. Prints peak RSS against the documented ceiling; exits 1 above it.

    target/peers-venv/bin/python bench/memory.py --binary target/release/mcp-tap
    target/peers-venv/bin/python bench/memory.py --quick --binary target/debug/mcp-tap   # CI

Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events

CEILING_MIB = 64  # the ceiling with default limits (docs/operations.md, Memory ceiling)
BODY = 100_000  # declared body size: under the default 128 KiB cap, over Backstage's 100 kB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


async def slow_http1(port, held, stop):
    """Headers and all but one byte of the body, then nothing until the tap gives up."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /api/mcp-actions/v1 HTTP/1.1\r\nhost: tap\r\ncontent-type: application/json\r\n"
            f"accept: application/json, text/event-stream\r\ncontent-length: {BODY}\r\n\r\n"
        )
        writer.write(head.encode() + b" " * (BODY - 1))
        await writer.drain()
        held.append(1)
        await asyncio.wait_for(stop.wait(), timeout=120)
        writer.close()
    except (OSError, asyncio.TimeoutError):
        pass


async def h2_flood(port, streams, held, stop):
    """One HTTP/2 connection: every stream it may open, each with an almost-complete body."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        for i in range(streams):
            sid = conn.get_next_available_stream_id()
            headers = [
                (":method", "POST"),
                (":path", "/api/mcp-actions/v1"),
                (":scheme", "http"),
                (":authority", "tap"),
                ("content-type", "application/json"),
                ("content-length", str(BODY)),
            ]
            conn.send_headers(sid, headers)
            chunk = b" " * min(conn.local_flow_control_window(sid), BODY - 1, 16_384)
            conn.send_data(sid, chunk)
        writer.write(conn.data_to_send())
        await writer.drain()
        held.append(streams)
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(65_536), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.WindowUpdated):
                    pass
            writer.write(conn.data_to_send())
        writer.close()
    except (OSError, h2.exceptions.ProtocolError):
        pass


async def attack(port, slow, h2_conns, streams, hold_seconds, pid):
    stop = asyncio.Event()
    held_http1, held_h2 = [], []
    # The HTTP/2 connections first, so the slow clients cannot take every connection slot.
    tasks = [asyncio.create_task(h2_flood(port, streams, held_h2, stop)) for _ in range(h2_conns)]
    await asyncio.sleep(0.5)
    tasks += [asyncio.create_task(slow_http1(port, held_http1, stop)) for _ in range(slow)]
    peak = 0
    end = time.monotonic() + hold_seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_kib(pid, "VmRSS"))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(held_http1), sum(held_h2), peak


def metrics(admin):
    import urllib.request

    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("mcp_tap_requests_refused_total", "mcp_tap_unparsed_messages_total"):
            if line.startswith(name + "{"):
                out[line.split(" ")[0]] = float(line.split(" ")[1])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mcp-tap")
    ap.add_argument("--quick", action="store_true", help="a small run for CI (about 10 s)")
    args = ap.parse_args()
    slow, h2_conns, streams, hold = (1000, 40, 16, 8.0) if not args.quick else (200, 8, 16, 4.0)

    port, admin_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{free_port()}"  # nothing listens: no body ever completes anyway
    work = tempfile.mkdtemp(prefix="mcp-tap-bench-")
    config = os.path.join(work, "mcp-tap.yaml")
    with open(config, "w") as f:
        f.write(
            f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin_port}\nupstream:\n  url: {upstream}\n"
            f"audit:\n  output: {os.path.join(work, 'audit.jsonl')}\nlog:\n  level: warn\n"
            f"checklist:\n  state_dir: {os.path.join(work, 'state')}\n"
        )
    env = dict(os.environ, MCP_TAP_FINGERPRINT_KEY="bench-fingerprint-key-0123456789")
    env.pop("RUST_LOG", None)
    tap = subprocess.Popen([args.binary, "--config", config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        idle = rss_kib(tap.pid, "VmRSS")
        held1, held2, peak = asyncio.run(attack(port, slow, h2_conns, streams, hold, tap.pid))
        hwm = rss_kib(tap.pid, "VmHWM")
        m = metrics(f"127.0.0.1:{admin_port}")
    finally:
        tap.terminate()
        tap.wait(timeout=30)
    rows = [
        ("slow HTTP/1.1 clients (body 1 byte short)", slow, held1),
        ("HTTP/2 connections x streams", f"{h2_conns} x {streams}", held2),
    ]
    print(f"{'attack':44} {'sent':>10} {'held open':>10}")
    for name, sent, held in rows:
        print(f"{name:44} {str(sent):>10} {held:>10}")
    print()
    print(f"RSS idle          {idle / 1024:8.1f} MiB")
    print(f"RSS peak (VmHWM)  {hwm / 1024:8.1f} MiB   ceiling {CEILING_MIB} MiB")
    for k, v in sorted(m.items()):
        if v:
            print(f"{k:80} {v:g}")
    if hwm / 1024 > CEILING_MIB:
        print(f"FAIL: peak RSS {hwm / 1024:.1f} MiB is over the {CEILING_MIB} MiB ceiling", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"peak_rss_mib": round(hwm / 1024, 1), "ceiling_mib": CEILING_MIB}))


if __name__ == "__main__":
    main()
