"""An MCP client that signs in with OAuth, as Claude or VS Code do: the official Python SDK's
`OAuthClientProvider`, with dynamic client registration or a client ID metadata document.

python oauth_client.py MCP_URL --origin ORIGIN --name NAME [--cimd URL] --secrets FILE [--refresh]

The person at the consent page is the guest user: the redirect handler reads the consent
session as Backstage's consent page does and approves it over HTTP with the guest's Backstage
token, all through ORIGIN. With --refresh, the client runs a second session after its access
token expired (its expiry moved into the past), so the SDK refreshes on its own.

Prints one JSON object without secrets; every secret the client saw or made (tokens, code,
state, PKCE verifier, client secret) is written to FILE, one per line, so the test can search
the tap's outputs for them.
"""
import argparse
import asyncio
import json
import time
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth import oauth2
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--origin", required=True)
parser.add_argument("--name", required=True)
parser.add_argument("--cimd")
parser.add_argument("--secrets", required=True)
parser.add_argument("--refresh", action="store_true")
args = parser.parse_args()

secrets = set()
seen = {"consented": [], "sessions": 0}


_generate = oauth2.PKCEParameters.generate


def generate_remembered():
    pkce = _generate()
    secrets.add(pkce.code_verifier)
    return pkce


oauth2.PKCEParameters.generate = staticmethod(generate_remembered)


class Memory:
    """Token storage: the tokens and the registration, kept for the client's second session."""

    def __init__(self):
        self.tokens, self.client = None, None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens
        for s in (tokens.access_token, tokens.refresh_token, getattr(tokens, "id_token", None)):
            if s:
                secrets.add(s)

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info
        if info.client_secret:
            secrets.add(info.client_secret)


async def guest_token(http):
    r = await http.get(f"{args.origin}/api/auth/guest/refresh", headers={"X-Requested-With": "XMLHttpRequest"})
    r.raise_for_status()
    token = r.json()["backstageIdentity"]["token"]
    secrets.add(token)
    return token


class Consent:
    """The person at Backstage's consent page, approving every request."""

    def __init__(self, http):
        self.http, self.result = http, None

    async def redirect(self, authorization_url):
        query = parse_qs(urlparse(authorization_url).query)
        secrets.update(query.get("state", []))
        r = await self.http.get(authorization_url, follow_redirects=False)
        assert r.status_code == 302, f"authorize answered {r.status_code}"
        session = urlparse(r.headers["location"]).path.rstrip("/").rsplit("/", 1)[-1]
        user = await guest_token(self.http)
        auth = {"Authorization": f"Bearer {user}"}
        shown = await self.http.get(f"{args.origin}/api/auth/v1/sessions/{session}", headers=auth)
        shown.raise_for_status()
        seen["consented"].append(shown.json().get("clientName"))
        r = await self.http.post(f"{args.origin}/api/auth/v1/sessions/{session}/approve", headers=auth)
        r.raise_for_status()
        back = parse_qs(urlparse(r.json()["redirectUrl"]).query)
        secrets.update(back.get("code", []))
        self.result = AuthorizationCodeResult(code=back["code"][0], state=back.get("state", [None])[0])

    async def callback(self):
        return self.result


async def session(provider):
    """One MCP session: list the tools and read one catalog entity."""
    async with create_mcp_http_client(auth=provider) as http:
        async with Client(streamable_http_client(args.url, http_client=http), mode="legacy") as client:
            tools = await client.list_tools()
            seen["tools"] = len(tools.tools)
            seen["sessions"] += 1


async def main():
    storage = Memory()
    async with httpx2.AsyncClient(timeout=30) as http:
        consent = Consent(http)
        metadata = OAuthClientMetadata(
            client_name=args.name,
            redirect_uris=["http://127.0.0.1:33418/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope="openid offline_access",
        )
        provider = OAuthClientProvider(
            server_url=args.url,
            client_metadata=metadata,
            storage=storage,
            redirect_handler=consent.redirect,
            callback_handler=consent.callback,
            client_metadata_url=args.cimd,
        )
        await session(provider)
        first = storage.tokens.access_token
        if args.refresh:
            # An hour later: the access token has expired and the SDK refreshes it by itself.
            provider.context.token_expiry_time = time.time() - 1
            await session(provider)
            seen["refreshed"] = storage.tokens.access_token != first
    seen["client_id_is_url"] = storage.client.client_id.startswith("https://")
    secrets.discard(None)
    with open(args.secrets, "w") as f:
        f.write("\n".join(sorted(secrets)) + "\n")
    print(json.dumps(seen, sort_keys=True))


asyncio.run(main())
