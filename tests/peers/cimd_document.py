"""A client ID metadata document served over HTTPS, as an MCP client's vendor serves it.

python cimd_document.py --port P --cert CERT --key KEY --name NAME
Serves GET /oauth/client.json: its client_id is its own URL (https://localhost:P/oauth/client.json).
"""
import argparse
import http.server
import json
import ssl

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--name", required=True)
args = parser.parse_args()

url = f"https://localhost:{args.port}/oauth/client.json"
document = json.dumps(
    {
        "client_id": url,
        "client_name": args.name,
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/oauth/client.json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(document)))
        self.end_headers()
        self.wfile.write(document)

    def log_message(self, *_):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(args.cert, args.key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
