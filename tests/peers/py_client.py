"""The official Python MCP client, driven through the tap (or directly) by the tap's tests.

python py_client.py URL --mode legacy|auto [--token T] [--tool NAME --args JSON]...
Prints one JSON object with what the client saw, so a test can compare tap and direct runs.
"""
import argparse
import asyncio
import json
import sys

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--mode", default="legacy")
parser.add_argument("--token")
parser.add_argument(
    "--refresh-token",
    help="an OAuth client's next access token: on a 401 the client switches to it and retries at once",
)
parser.add_argument("--call", action="append", default=[], help="NAME=JSON_ARGS")
parser.add_argument("--prompt", action="append", default=[], help="NAME=JSON_ARGS")
parser.add_argument("--no-list", action="store_true")
parser.add_argument("--listen", type=float, help="hold a subscriptions/listen stream open this many seconds")
parser.add_argument("--name", help="clientInfo.name the client declares")
parser.add_argument("--ca-file", help="a PEM CA bundle to trust (a tap serving TLS with a private CA)")
parser.add_argument("--abandon-after", type=float, help="give up each call after this many seconds")
parser.add_argument("--accept-elicitation", action="store_true", help="answer every elicitation with ok=true")
parser.add_argument("--think", type=float, help="seconds the person takes to answer an elicitation")
args = parser.parse_args()


def content_text(result):
    out = []
    for c in result.content:
        out.append(getattr(c, "text", None) or c.type)
    return out


async def accept(context, params):
    if args.think:
        # The person reads the question before answering.
        await asyncio.sleep(args.think)
    return types.ElicitResult(action="accept", content={"ok": True})


class RefreshOnUnauthorized(httpx2.Auth):
    """How many OAuth clients (the SDK's own OAuth provider among them) handle an expired access
    token: send it, and on a 401 refresh and send the request again with the new one."""

    def __init__(self, token, fresh):
        self.token, self.fresh = token, fresh
        self.refreshed = False

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401 and self.fresh:
            self.token, self.fresh, self.refreshed = self.fresh, None, True
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


async def main():
    auth = None
    if args.refresh_token:
        auth = RefreshOnUnauthorized(args.token, args.refresh_token)
        headers = None
    else:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    if args.ca_file:
        import ssl

        # The SDK's own client factory, plus the CA that signed the tap's certificate.
        http = httpx2.AsyncClient(
            headers=headers,
            auth=auth,
            timeout=httpx2.Timeout(30.0, read=300.0),
            verify=ssl.create_default_context(cafile=args.ca_file),
        )
    else:
        http = create_mcp_http_client(headers=headers, auth=auth)
    seen = {}
    async with http:
        transport = streamable_http_client(args.url, http_client=http)
        info = types.Implementation(name=args.name, version="1.0") if args.name else None
        callback = accept if args.accept_elicitation else None
        async with Client(transport, mode=args.mode, cache=None, client_info=info, elicitation_callback=callback) as client:
            seen["protocol_version"] = client.protocol_version
            if not args.no_list:
                tools = await client.list_tools()
                seen["tools"] = sorted(t.name for t in tools.tools)
            seen["calls"] = []
            for spec in args.call:
                name, _, raw = spec.partition("=")
                call = client.call_tool(name, json.loads(raw or "{}"))
                try:
                    result = await asyncio.wait_for(call, args.abandon_after)
                except asyncio.TimeoutError:
                    # Given up: the SDK cancels the call by closing its stream.
                    seen["calls"].append({"tool": name, "abandoned": True})
                    continue
                seen["calls"].append({"tool": name, "is_error": bool(result.is_error), "content": content_text(result)})
            if args.listen:
                async with client.listen(tools_list_changed=True) as sub:
                    seen["listen_honored"] = bool(sub.honored)
                    await asyncio.sleep(args.listen)
            seen["prompts"] = []
            for spec in args.prompt:
                name, _, raw = spec.partition("=")
                result = await client.get_prompt(name, json.loads(raw or "{}"))
                seen["prompts"].append({"prompt": name, "messages": len(result.messages)})
    if auth is not None:
        seen["refreshed"] = auth.refreshed
    print(json.dumps(seen, sort_keys=True))


asyncio.run(main())
