"""An agent whose model is the loopback streaming provider at VIGIL_TEST_PROVIDER (tests/
fake_providers.py), for the live channel tests: a `vigil worker` drives it in a subprocess."""

from __future__ import annotations

import os

from kernel.agents.agent import agent_graph
from kernel.agents.models.openai import OpenAIChat

_URL = os.environ.get("VIGIL_TEST_PROVIDER", "http://127.0.0.1:9")

GRAPHS = [agent_graph("livechat", model=OpenAIChat("m", base_url=_URL + "/v1", key_env=None),
                      tools=[], system="Answer in a few words.")]


# Two branches calling a tool that allows one call at a time in the process: one of them waits
# for a slot until the file named by VIGIL_TEST_GATE exists (the queue line tests).
def _limited_graph():
    import asyncio
    from pathlib import Path

    from kernel.graph import END, START, Graph
    from kernel.tools import tool

    @tool(idempotent=True, max_concurrency=1)
    async def hold(branch: str) -> str:
        gate = Path(os.environ.get("VIGIL_TEST_GATE", "/nonexistent"))
        while not gate.exists():
            await asyncio.sleep(0.05)
        return branch

    g = Graph("limited", reducers={"done": "append"}, tools=[hold])
    for branch in ("left", "right"):
        async def node(state, ctx, branch=branch):
            return {"done": await ctx.tool("hold", branch=branch)}
        g.add_node(branch, node)
        g.add_edge(START, branch)
        g.add_edge(branch, END)
    return g


GRAPHS.append(_limited_graph())
