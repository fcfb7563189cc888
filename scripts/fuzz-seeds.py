#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/) from real traffic.

scripts/fuzz-seeds.py [--keep-old]

Starts the test Backstage (tests/backstage, OAuth kind: dynamic client registration and refresh
tokens) behind a recording relay, and drives it with real clients: the official Python SDK's
OAuth client (registration, consent, code exchange, refresh, MCP over SSE), the SDK's ordinary
client with a static token (tool calls, a refused token), and a few refused requests. Every
request and answer the relay saw becomes seeds for the target that parses it. Secrets are
replaced before anything is written: bearer tokens, codes, verifiers, refresh tokens, client
secrets; JWTs keep their header and claims, never a signature.

Needs what scripts/test.sh installs (node and tests/backstage, target/peers-venv).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
PYTHON = os.path.join(ROOT, "target", "peers-venv", "bin", "python")
TOKEN = "fuzz-seed-static-token-0123456789"
SECRET_FIELDS = ("code", "code_verifier", "refresh_token", "access_token", "client_secret", "id_token", "token", "state")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redact(text):
    """The text with every secret value replaced by a placeholder of the same shape."""
    def jwt(m):
        return f"{m.group(1)}.{m.group(2)}.c2lnbmF0dXJl"

    text = re.sub(r"(eyJ[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+", jwt, text)
    for field in SECRET_FIELDS:
        text = re.sub(rf'("{field}"\s*:\s*")[^"]*(")', rf"\1redacted-{field}\2", text)
        text = re.sub(rf"(^|[&?])({field}=)[^&\"\s#]*", rf"\1\2redacted-{field}", text)
    text = text.replace(TOKEN, "redacted-static-token")
    return re.sub(r"(Bearer|Basic) [A-Za-z0-9._~+/=-]+", r"\1 redacted", text)


class Recorder:
    def __init__(self, upstream):
        self.upstream = upstream
        self.exchanges = []
        self.lock = threading.Lock()


def relay(recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            conn = http.client.HTTPConnection("127.0.0.1", recorder.upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            headers["Host"] = self.headers.get("host", "")
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
            with recorder.lock:
                recorder.exchanges.append({
                    "method": self.command, "path": self.path, "authorization": self.headers.get("authorization"),
                    "body": body, "status": resp.status, "content_type": resp.getheader("content-type", ""),
                    "answer": answer,
                })
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_DELETE = do_PUT = handle_any

    return Handler


def start_backstage(port, origin, tmp):
    overrides = os.path.join(tmp, "backstage.yaml")
    with open(overrides, "w") as f:
        f.write(f"backend:\n  baseUrl: {origin}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n")
    env = dict(os.environ, MCP_TAP_TEST_TOKEN=TOKEN, MCP_TAP_TEST_CATALOG_TOKEN="fuzz-seed-catalog-token",
               MCP_TAP_TEST_MCP_ONLY_TOKEN="fuzz-seed-mcp-only-token", MCP_TAP_TEST_INSPECTOR_TOKEN="fuzz-seed-i",
               NODE_ENV="development")
    proc = subprocess.Popen(
        ["node", "index.js", "--config", "app-config.yaml", "--config", "app-config.oauth.yaml", "--config", overrides],
        cwd=os.path.join(ROOT, "tests", "backstage"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/catalog/entities/by-name/component/default/payments-api",
                         headers={"Authorization": f"Bearer {TOKEN}"})
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit("the test Backstage did not get ready in 120 s (is tests/backstage installed? run scripts/test.sh)")


def drive(origin, tmp):
    mcp = f"{origin}/api/mcp-actions/v1"
    peers = os.path.join(ROOT, "tests", "peers")
    run = lambda *a: subprocess.run([PYTHON, *a], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(os.path.join(peers, "oauth_client.py"), mcp, "--origin", origin, "--name", "Fuzz Seeds",
        "--refresh", "--secrets", os.path.join(tmp, "secrets"))
    run(os.path.join(peers, "py_client.py"), mcp, "--token", TOKEN,
        "--call", 'catalog.get-catalog-entity={"kind":"component","namespace":"default","name":"payments-api"}',
        "--call", "no.such-tool={}")
    subprocess.run([PYTHON, os.path.join(peers, "py_client.py"), mcp, "--token", "not-a-token"],
                   capture_output=True, timeout=60)
    host = origin.split("//")[1]
    for method, path, body, ctype in [
        ("POST", "/api/auth/v1/token", b"grant_type=authorization_code&code=nope&code_verifier=x&client_id=x",
         "application/x-www-form-urlencoded"),
        ("POST", "/api/auth/v1/token", b"grant_type=refresh_token&refresh_token=nope", "application/x-www-form-urlencoded"),
        ("POST", "/api/auth/v1/register", b'{"client_name":"x","redirect_uris":["ftp://x"]}', "application/json"),
        ("POST", "/api/auth/v1/revoke", b"token=nope", "application/x-www-form-urlencoded"),
        ("GET", "/.well-known/oauth-protected-resource/api/mcp-actions/v1", b"", ""),
        ("POST", "/api/mcp-actions/v1", b'{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}',
         "application/json"),
    ]:
        conn = http.client.HTTPConnection(host, timeout=30)
        headers = {"Content-Type": ctype, "Accept": "application/json, text/event-stream"} if ctype else {}
        if path.startswith("/api/mcp"):
            headers["Authorization"] = f"Bearer {TOKEN}"
        conn.request(method, path, body=body, headers=headers)
        conn.getresponse().read()


def name(data):
    return hashlib.sha1(data).hexdigest()[:16]


def write(target, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    if data:
        with open(os.path.join(CORPUS, target, name(data)), "wb") as f:
            f.write(data)


def jwt_parts(text):
    for m in re.finditer(r"(eyJ[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.", text):
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        yield base64.urlsafe_b64decode(pad(m.group(1))) + b"\0" + base64.urlsafe_b64decode(pad(m.group(2)))
        yield m.group(0).encode() + b"c2lnbmF0dXJl"


def seeds(exchanges):
    for x in exchanges:
        req = redact(x["body"].decode("utf-8", "replace")).encode()
        answer = redact(x["answer"].decode("utf-8", "replace")).encode()
        auth = redact(x["authorization"] or "")
        path = x["path"].split("?")[0]
        write("express_path", path.encode())
        if path.lower().startswith("/api/mcp-actions"):
            write("jsonrpc_envelope", req)
            if "event-stream" in x["content_type"]:
                write("sse_stream", b"\x00" + answer)
                write("sse_stream", b"\x04" + answer.replace(b"\n", b"\r\n"))
                for line in answer.split(b"\n"):
                    if line.startswith(b"data:"):
                        write("jsonrpc_envelope", line[5:].strip())
            else:
                write("jsonrpc_envelope", answer)
        if "/auth/" in path or "well-known" in path:
            write("oauth_bodies", auth.encode() + b"\n" + req)
            write("oauth_bodies", b"\n" + answer)
            if x["status"] in (301, 302, 303):
                write("oauth_bodies", b"\n" + redact(x["path"]).encode())
        for part in jwt_parts(x["authorization"] or "") if x["authorization"] else []:
            write("jwt_token", part)
        for part in jwt_parts(x["answer"].decode("utf-8", "replace")):
            write("jwt_token", part)
    for path in (
        "/api/mcp-actions/v1/catalog",
        "/API/MCP-ACTIONS//V1//",
        "/api/mcp-actions/v1/a/b",
        "/api/catalog/.backstage/actions/v1/actions",
        "/api/catalog/.backstage/actions/v1/actions/catalog%3Aget-catalog-entity/invoke",
        "/api/catalog/.backstage/actions/v1/actions/catalog:get-catalog-entity/INVOKE/",
    ):
        write("express_path", path.encode())
    for f in os.listdir(os.path.join(ROOT, "config")):
        with open(os.path.join(ROOT, "config", f), "rb") as fh:
            write("config_file", fh.read())
    write("config_file", b"listen: 127.0.0.1:8080\nupstream: http://127.0.0.1:7007\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-old", action="store_true", help="add to the corpus instead of replacing it")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mcp-tap-fuzz-seeds-")
    backstage_port, relay_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{relay_port}"
    recorder = Recorder(backstage_port)
    server = ThreadingHTTPServer(("127.0.0.1", relay_port), relay(recorder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = start_backstage(backstage_port, origin, tmp)
    try:
        drive(origin, tmp)
    finally:
        proc.terminate()
        server.shutdown()
    if not args.keep_old:
        shutil.rmtree(CORPUS, ignore_errors=True)
    seeds(recorder.exchanges)
    for target in sorted(os.listdir(CORPUS)):
        print(f"{target}: {len(os.listdir(os.path.join(CORPUS, target)))} seeds")
    with open(os.path.join(tmp, "secrets")) as f:
        secrets = [s for s in f.read().split() if len(s) >= 8]
    leaked = [t for t in os.listdir(CORPUS) for s in os.listdir(os.path.join(CORPUS, t))
              if any(sec.encode() in open(os.path.join(CORPUS, t, s), "rb").read() for sec in secrets + [TOKEN])]
    if leaked:
        sys.exit(f"a secret is still in {len(leaked)} seeds: {leaked[:3]}")


if __name__ == "__main__":
    main()
