"""A real MCP server from the official Python SDK that implements the Tasks extension
(`io.modelcontextprotocol/tasks`, SEP-2663, MCP 2026-07-28) through the SDK's extension
mechanism, as the extension's specification says: `tools/call` of `long_job` answers a task
handle (`resultType: "task"`), `tasks/get` answers the task's state, `tasks/update` delivers
input for a task in `input_required`, `tasks/cancel` cancels it.

python py_tasks_server.py --port N

`long_job` arguments: `seconds` (work time), `ask` (ask the user to confirm first, through the
task's `inputRequests`), `ttl_ms` (the task's time to live), `poll_ms` (the suggested interval).
"""
import argparse
import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any

from mcp_types import RequestParams

from mcp.server.mcpserver import Extension, MCPServer, MethodBinding, require_client_extension
from mcp.shared.exceptions import MCPError

IDENTIFIER = "io.modelcontextprotocol/tasks"

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class TaskParams(RequestParams):
    taskId: str


class UpdateParams(RequestParams):
    taskId: str
    inputResponses: dict[str, Any]


class Task:
    def __init__(self, ttl_ms: int | None, poll_ms: int):
        self.id = str(uuid.uuid4())
        self.status = "working"
        self.created = now()
        self.updated = self.created
        self.ttl_ms = ttl_ms
        self.poll_ms = poll_ms
        self.input_requests: dict[str, Any] = {}
        self.answered = asyncio.Event()
        self.result: dict[str, Any] | None = None
        self.runner: asyncio.Task | None = None

    def set(self, status: str) -> None:
        if self.status in ("completed", "failed", "cancelled"):
            return
        self.status = status
        self.updated = now()

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taskId": self.id,
            "status": self.status,
            "createdAt": self.created,
            "lastUpdatedAt": self.updated,
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_ms,
        }
        if self.status == "input_required":
            out["inputRequests"] = self.input_requests
        if self.status == "completed":
            out["result"] = self.result
        return out


class Tasks(Extension):
    identifier = IDENTIFIER

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def methods(self):
        return [
            MethodBinding("tasks/get", TaskParams, self.get),
            MethodBinding("tasks/update", UpdateParams, self.update),
            MethodBinding("tasks/cancel", TaskParams, self.cancel),
        ]

    def known(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise MCPError(code=-32602, message="Failed to retrieve task: Task not found")
        return task

    async def get(self, ctx, params: TaskParams):
        require_client_extension(ctx, IDENTIFIER)
        return self.known(params.taskId).view()

    async def update(self, ctx, params: UpdateParams):
        require_client_extension(ctx, IDENTIFIER)
        task = self.known(params.taskId)
        # Responses to keys not outstanding are ignored, as the specification says.
        if any(key in task.input_requests for key in params.inputResponses):
            task.input_requests = {}
            task.answered.set()
        return {}

    async def cancel(self, ctx, params: TaskParams):
        require_client_extension(ctx, IDENTIFIER)
        task = self.known(params.taskId)
        if task.runner is not None:
            task.runner.cancel()
        task.set("cancelled")
        return {}

    async def run(self, task: Task, arguments: dict[str, Any]) -> None:
        try:
            if arguments.get("ask"):
                await asyncio.sleep(0.2)
                task.input_requests = {
                    "confirm-1": {
                        "method": "elicitation/create",
                        "params": {
                            "mode": "form",
                            "message": "Run the job?",
                            "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
                        },
                    }
                }
                task.set("input_required")
                await task.answered.wait()
                task.set("working")
            await asyncio.sleep(float(arguments.get("seconds", 0.5)))
            task.result = {"content": [{"type": "text", "text": "job done"}], "isError": False}
            task.set("completed")
        except asyncio.CancelledError:
            task.set("cancelled")

    async def intercept_tool_call(self, params, ctx, call_next):
        if params.name != "long_job":
            return await call_next(ctx)
        require_client_extension(ctx, IDENTIFIER)
        arguments = params.arguments or {}
        task = Task(arguments.get("ttl_ms", 60_000), int(arguments.get("poll_ms", 200)))
        self.tasks[task.id] = task
        task.runner = asyncio.get_running_loop().create_task(self.run(task, arguments))
        return {"resultType": "task", **task.view()}


server = MCPServer("tap-tasks-server", extensions=[Tasks()])


@server.tool()
def long_job(seconds: float = 0.5, ask: bool = False, ttl_ms: int | None = 60_000, poll_ms: int = 200) -> str:
    """A long job: answered as a task (the Tasks extension), never run inline."""
    return "never inline"


server.run("streamable-http", host="127.0.0.1", port=args.port, streamable_http_path="/mcp", json_response=True)
