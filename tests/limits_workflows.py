"""A fan-out for the kill -9 test of concurrency limits: six branches, `max_concurrency=2`, each
calls an idempotent tool that waits until the test drops a release file. Nodes and the tool write
`<pid> <what> <branch>` lines to VIGIL_LEDGER: the counter, across processes, in the nodes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kernel.graph import END, START, Graph
from kernel.tools import tool

BRANCHES = [f"b{i}" for i in range(6)]


def _note(what: str, branch: str) -> None:
    with open(os.environ["VIGIL_LEDGER"], "a") as f:
        f.write(f"{os.getpid()} {what} {branch}\n")


@tool(idempotent=True)
async def work(branch: str) -> str:
    _note("tool", branch)
    release = Path(os.environ["VIGIL_LEDGER"]).with_name(f"release-{branch}")
    while not release.exists():
        await asyncio.sleep(0.01)
    return f"{branch} done"


graph = Graph("fanout6", reducers={"done": "append"}, tools=[work], max_concurrency=2)
for _b in BRANCHES:
    async def _branch(state, ctx, b=_b):
        _note("enter", b)
        try:
            return {"done": await ctx.tool("work", branch=b)}
        finally:
            _note("leave", b)

    graph.add_node(_b, _branch)
    graph.add_edge(START, _b)


async def _join(state, ctx):
    return {"joined": sorted(state["done"])}


graph.add_node("join", _join)
graph.add_edge(BRANCHES, "join")
graph.add_edge("join", END)

GRAPHS = [graph]
