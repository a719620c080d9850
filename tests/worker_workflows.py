"""A slow workflow for the worker tests: each step writes one line to a ledger file (VIGIL_LEDGER)
through a non-idempotent tool, then works a while, so a stop lands mid-step."""

from __future__ import annotations

import asyncio
import os

from kernel.graph import END, START, Graph
from kernel.tools import tool

STEPS = 4


@tool()  # not idempotent: a second run of it would be a second line
async def record(step: int, idempotency_key: str) -> dict:
    with open(os.environ["VIGIL_LEDGER"], "a") as f:
        f.write(f"{idempotency_key} step {step}\n")
    return {"recorded": step}


graph = Graph("slow", reducers={"done": "append"}, tools=[record])
for _i in range(1, STEPS + 1):
    async def _step(state, ctx, i=_i):
        await ctx.tool("record", step=i)
        await asyncio.sleep(float(state.get("pause", 0.4)))
        return {"done": i}

    graph.add_node(f"step{_i}", _step)
    graph.add_edge(START if _i == 1 else f"step{_i - 1}", f"step{_i}")
graph.add_edge(f"step{STEPS}", END)


@tool(requires_approval=True)  # money: a human approves it, and it must run once
async def pay(amount: int, idempotency_key: str) -> dict:
    with open(os.environ["VIGIL_LEDGER"], "a") as f:
        f.write(f"{idempotency_key} pay {amount}\n")
    return {"paid": amount}


async def _prepare(state, ctx):
    await ctx.tool("record", step=1)
    await asyncio.sleep(float(state.get("pause", 3.0)))  # a worker is killed in here
    return {"done": 1}


async def _pay(state, ctx):
    await ctx.tool("pay", amount=40)
    return {"done": 2}


payout = Graph("payout", reducers={"done": "append"}, tools=[record, pay])
payout.add_node("prepare", _prepare)
payout.add_node("pay", _pay)
payout.add_edge(START, "prepare")
payout.add_edge("prepare", "pay")
payout.add_edge("pay", END)

GRAPHS = [graph, payout]
