"""A real MCP server from the official Python SDK, for the tap's end-to-end tests.

python py_server.py --port N [--stateless] [--json]
Stateful mode issues Mcp-Session-Id and answers with SSE; --stateless --json answers JSON.
"""
import argparse
import asyncio

from mcp.server.mcpserver import MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--stateless", action="store_true")
parser.add_argument("--json", action="store_true")
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
    await asyncio.sleep(seconds)
    return "done"


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
