"""Workflows for the bad-input tests, importable by a `vigil` subprocess (--workflows).

`gate` waits for one approval. `filler` appends a big step many times over, to fill a small disk.
"""

from __future__ import annotations

from kernel.graph import END, START, Graph

FILLER_STEPS = 150
FILLER_BYTES = 40_000


def gate() -> Graph:
    g = Graph("gate")

    async def ask(state, ctx):
        await ctx.interrupt("go on?", {"what": "ship"}, kind="approval")
        return {"went": True}

    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g


def filler() -> Graph:
    g = Graph("filler", step_limit=FILLER_STEPS + 10)

    async def grow(state, ctx):
        i = state.get("i", 0) + 1
        return {"i": i, "blob": f"{i:08d}" + "x" * FILLER_BYTES}

    g.add_node("grow", grow)
    g.add_edge(START, "grow")
    g.add_branch("grow", lambda state: "grow" if state["i"] < FILLER_STEPS else END, ["grow", END])
    return g


GRAPHS = [gate(), filler()]
