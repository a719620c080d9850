"""A small MCP server for the tests, on the official SDK: over stdio, or streamable HTTP on
loopback (`--http PORT`). Its `append` tool is neither read-only nor idempotent and can be made
slow, so a test can kill a process while a call is in flight."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("vigil-test")


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False))
def append(path: str, line: str, delay: float = 0.0) -> str:
    """Append a line to a file."""
    time.sleep(delay)
    with Path(path).open("a") as f:
        f.write(line + "\n")
    return f"appended to {path}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def echo(text: str) -> str:
    """Say it back."""
    return text


@server.tool()
def fail(why: str) -> str:
    """Always fails."""
    raise ValueError(why)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
