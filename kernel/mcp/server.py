"""An MCP server a workflow declares, and the vigil Tools its tools become.

    git = McpServer("git", command=["mcp-server-git", "--repository", "."])
    graph = agent_graph("repo", model=model, tools=git.tools(), system="...")

`tools()` starts the server once in this process to list its tools, then stops it: the graph's
tool table must be known when the graph is built (the model is offered their schemas, an edited
approval is checked against one, `vigil graphs` shows the policy of each) and the engine keeps it
static, so replays and decisions work unchanged. Calls start the server again on first use, on
the loop that runs them, keep it for later calls, start it afresh after it died, and stop it when
the Runtime closes (kernel.tools.close_tools).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from ..errors import VigilError
from .connection import Connection, Gone, McpUnavailable, Transport
from .policy import Policy, load_policy

__all__ = ["McpServer", "McpUnavailable"]


class McpServer:
    def __init__(
        self,
        name: str,
        *,
        command: list[str] | None = None,
        url: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        prefix: str | None = None,
        start_timeout: float = 20.0,
        call_timeout: float = 60.0,
        policy: Policy | None = None,
    ) -> None:
        if bool(command) == bool(url):
            raise VigilError(f"MCP server {name!r}: give a command or a url, not both or neither")
        self.name = name
        self.transport = Transport(command=tuple(command or ()), url=url or "", env=dict(env or {}), cwd=cwd)
        # Model APIs allow [a-zA-Z0-9_-] in tool names, so no dot between server and tool.
        self.prefix = f"{name}_" if prefix is None else prefix
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._policy = policy
        self._tools: list[Any] | None = None
        self._conns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection]" = weakref.WeakKeyDictionary()
        self._starting: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<McpServer {self.name} {self.transport.describe()}>"

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy()
        return self._policy

    def tools(self) -> list[Any]:
        """Its tools as vigil Tools, listed once per process."""
        from .tool import McpTool

        if self._tools is None:
            listed = _run_in_thread(self._list())
            self._tools = [McpTool(self, t) for t in listed]
        return list(self._tools)

    async def _list(self) -> list[dict[str, Any]]:
        conn = Connection(self.name, self.transport)
        try:
            await conn.start(self.start_timeout)
            return [_plain(t) for t in conn.tools]
        finally:
            await conn.close()

    async def connection(self) -> Connection:
        """This loop's live connection, started (or started again) here if it has none."""
        loop = asyncio.get_running_loop()
        lock = self._starting.setdefault(loop, asyncio.Lock())
        async with lock:  # calls made together start one server, not one each
            conn = self._conns.get(loop)
            if conn is None or not conn.alive:
                if conn is not None:
                    await conn.close()
                conn = Connection(self.name, self.transport)
                await conn.start(self.start_timeout)
                self._conns[loop] = conn
            return conn

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        conn = await self.connection()
        try:
            return await conn.call(tool, args, self.call_timeout)
        except Gone:  # it died since the last call; this one was never sent: a fresh server
            conn = await self.connection()
            return await conn.call(tool, args, self.call_timeout)

    async def aclose(self) -> None:
        """Stop this loop's server, if it runs; the next call starts it again."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        conn = self._conns.pop(loop, None)
        if conn is not None:
            await conn.close()


def _plain(tool: Any) -> dict[str, Any]:
    annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    return {
        "name": tool.name,
        "description": tool.description or tool.title or "",
        "input_schema": dict(tool.input_schema or {"type": "object"}),
        "annotations": annotations,
    }


def _run_in_thread(coro: Any) -> Any:
    """Run a coroutine to the end on a loop of its own: listing happens while a workflow module
    is imported, which may be inside a running loop (the console's, a test's)."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=main, name="vigil-mcp-list", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
