"""Workflows for the MCP tests that run `vigil` in a subprocess: a slow, non-idempotent tool of
tests/mcp_slow_server.py, to kill a process in the middle of."""

import sys
from pathlib import Path

from kernel.graph import END, START, Graph
from kernel.mcp import McpServer


def register(registry):
    server = McpServer("t", command=[sys.executable, str(Path(__file__).with_name("mcp_slow_server.py"))])
    g = Graph("slow-append", tools=server.tools(), description="append a line, slowly")

    @g.node()
    async def go(state, ctx):
        return {"result": await ctx.tool("t_append", **state["args"])}

    g.add_edge(START, "go")
    g.add_edge("go", END)
    registry.add(g)
