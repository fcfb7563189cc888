"""A real MCP server from the official Python SDK, for the tap's end-to-end tests.

python py_server.py --port N [--stateless] [--json]
Stateful mode issues Mcp-Session-Id and answers with SSE; --stateless --json answers JSON.
"""
import argparse
import asyncio
from typing import Annotated

from pydantic import BaseModel, Field

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--stateless", action="store_true")
parser.add_argument("--json", action="store_true")
parser.add_argument("--elicitation", action="store_true", help="add a tool that asks the client first")
parser.add_argument("--trace-tool", action="store_true", help="add a tool that answers the traceparent it got")
parser.add_argument("--param-tool", action="store_true", help="add a tool whose region argument rides an Mcp-Param header")
parser.add_argument("--events", help="a file the server appends what happened to: `slow cancelled`")
args = parser.parse_args()

server = MCPServer("tap-test-server")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@server.tool()
def explode(reason: str) -> str:
    """Always fails, so the tap sees a tool error."""
    raise ValueError(f"explode: {reason}")


@server.tool()
async def slow(seconds: float) -> str:
    """Answers after a delay."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        # The request was closed before the answer: the client (or a proxy) gave up.
        if args.events:
            with open(args.events, "a") as f:
                f.write("slow cancelled\n")
        raise
    return "done"


def traceparent(ctx: Context) -> str:
    """The W3C traceparent header this request arrived with (empty without one)."""
    return (ctx.headers or {}).get("traceparent", "")


class Confirm(BaseModel):
    ok: bool


def ask_first(name: str) -> Elicit[Confirm]:
    return Elicit(f"Really delete {name}?", Confirm)


def delete_entity(name: str, confirm: Annotated[Confirm, Resolve(ask_first)]) -> str:
    """Deletes an entity once the user confirms (2026-07-28 clients get an input_required round)."""
    return f"deleted {name}" if confirm.ok else "kept"


def in_region(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], query: str) -> str:
    """Runs a query in a region (2026-07-28 clients mirror the region into Mcp-Param-Region)."""
    return f"{query} in {region}"


if args.elicitation:
    server.tool()(delete_entity)
if args.param_tool:
    server.tool()(in_region)
if args.trace_tool:
    server.tool()(traceparent)


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Hello {name}"


server.run(
    "streamable-http",
    host="127.0.0.1",
    port=args.port,
    streamable_http_path="/mcp",
    stateless_http=args.stateless,
    json_response=args.json,
)
