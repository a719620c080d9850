"""One live client session to one MCP server, on one event loop.

The SDK's session is a pair of anyio context managers that must be entered and left in the
same task, so a background task holds them open and calls are made from node tasks through it.
The `mcp` package is imported here, on first connect, not when a workflow is imported: it costs
over half a second and pulls in click, and most `vigil` commands never call a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import ToolError
from ..events import ErrorInfo

__all__ = ["Transport", "Connection", "McpUnavailable"]


class McpUnavailable(ToolError):
    """The server could not be started or reached, or broke off: running again may help."""

    def __init__(self, message: str, *, code: str = "mcp_unavailable", category: str = "transport") -> None:
        super().__init__(message, retryable=True, info=ErrorInfo(
            code=code, category=category, retryable=True, message=message,
        ))


class Gone(Exception):
    """The server did not answer a ping before a call: the call was not sent."""


@dataclass(frozen=True)
class Transport:
    """How to reach a server: a command spoken to over stdio, or a streamable HTTP URL."""

    command: tuple[str, ...] = ()
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def open(self, errlog: Any) -> Any:
        if self.url:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.url)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=self.command[0], args=list(self.command[1:]), env=self.env or None, cwd=self.cwd,
        )
        return stdio_client(params, errlog=errlog)

    def describe(self) -> str:
        return self.url or " ".join(self.command)


class Connection:
    def __init__(self, name: str, transport: Transport) -> None:
        self.name = name
        self.transport = transport
        self.session: Any = None
        self.tools: list[Any] = []
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task | None = None
        # The server's stderr: never the terminal (it would tear through the console's screen),
        # and its last line says why a server that would not start did not.
        self.errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stop.is_set()

    async def start(self, timeout: float) -> None:
        self._task = asyncio.create_task(self._hold(), name=f"vigil-mcp-{self.name}")
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            await self.close(wait=0)  # it is stuck in the handshake: nothing to finish
            raise McpUnavailable(
                f"MCP server {self.name!r} ({self.transport.describe()}) did not start within {timeout:g}s"
            ) from None
        if self.session is None:
            why = f"{_why(self._error)}{self._stderr_tail()}"
            await self.close()
            raise McpUnavailable(f"MCP server {self.name!r} ({self.transport.describe()}) could not start: {why}")

    async def _hold(self) -> None:
        from mcp import ClientSession

        try:
            async with self.transport.open(self.errlog) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    # Listed on every connection: the SDK checks results against the output
                    # schemas it saw listed, and a restarted server may offer other tools.
                    self.tools = await list_all(session)
                    self.session = session
                    self._ready.set()
                    await self._stop.wait()
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:  # an ExceptionGroup from the SDK's task groups, an OSError
            self._error = exc
        finally:
            self.session = None
            self._stop.set()
            self._ready.set()

    async def call(self, tool: str, args: dict[str, Any], timeout: float) -> Any:
        session = self.session
        if session is None:
            raise McpUnavailable(f"MCP server {self.name!r} is not running")
        try:
            # A server that died since the last call is found out here, before the call is
            # sent, so the call never reached it and can go to a fresh one (server.call).
            async with asyncio.timeout(min(timeout, 5)):
                await session.send_ping()
        except Exception as exc:
            self._stop.set()
            raise Gone(self.name) from exc
        try:
            async with asyncio.timeout(timeout):
                return await session.call_tool(tool, args)
        except TimeoutError:
            # A server that does not answer in time is restarted on the next call, so one stuck
            # call does not block every later one.
            self._stop.set()
            raise McpUnavailable(
                f"{self.name}.{tool} did not answer within {timeout:g}s", code="timeout", category="timeout"
            ) from None
        except Exception as exc:
            if self.alive and not _closed(exc):
                raise ToolError(f"{self.name}.{tool}: {_why(exc)}") from None
            self._stop.set()
            raise McpUnavailable(f"MCP server {self.name!r} went away during {tool}: {_why(exc)}") from None

    def _stderr_tail(self) -> str:
        try:
            self.errlog.seek(0)
            lines = [line.strip() for line in self.errlog.read()[-4000:].splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return f" (its stderr: {lines[-1][:200]})" if lines else ""

    async def close(self, wait: float = 5) -> None:
        """Leave the session (the SDK ends the process: stdin closed, then terminate, then kill),
        cancelling it if it has not gone after `wait` seconds."""
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(wait):
                    await asyncio.shield(task)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.errlog.close()


async def list_all(session: Any) -> list[Any]:
    tools, cursor = [], None
    while True:
        if cursor is None:
            page = await session.list_tools()
        else:
            from mcp.types import PaginatedRequestParams

            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _closed(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "closed" in text or "broken" in text or type(exc).__name__ in (
        "ClosedResourceError", "BrokenResourceError", "EndOfStream",
    )


def _why(exc: BaseException | None) -> str:
    """One line: the innermost real error of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "it exited"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
