"""Graphs that note domain events and fail in classified ways, for tests/test_notes.py and
tests/test_errors.py (also loaded by the real CLI with --workflows note_workflows)."""

from __future__ import annotations

import asyncio
import os

from kernel.errors import NodeError
from kernel.graph import END, START, Graph, RetryPolicy
from kernel.tools import tool

TOKEN = "sk-live-abcdefghijklmnopqrstuvwxyz012345"  # looks like an API key: must be redacted


def _linear(name: str, fn, *, tools=(), retry=None) -> Graph:
    g = Graph(name, tools=list(tools))
    g.add_node("work", fn, retry=retry)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g


async def _noting(state, ctx):
    ctx.note("order.checked", {"order": state.get("order", "A-1"), "ok": True})
    answer = await ctx.interrupt("ship it?", {"order": state.get("order", "A-1")})
    ctx.note("order.shipped", {"answer": answer, "token": TOKEN})
    return {"shipped": answer}


noting = _linear("noting", _noting)


@tool()  # not idempotent: its request and its result are committed before the call returns
async def stamp() -> str:
    return "stamped"


async def _crashing(state, ctx):
    ctx.note("before.crash", {"n": 1})
    await ctx.tool("stamp")  # the note before it is committed with it
    if os.environ.get("VIGIL_TEST_CRASH") == "1":
        os._exit(9)  # the process dies in the middle of the step
    return {"done": True}


crashing = _linear("crashing", _crashing, tools=[stamp])

_attempts: list[int] = []


async def _retrying(state, ctx):
    ctx.note("attempted", {"step": ctx.step_id})
    _attempts.append(ctx.attempt)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": ctx.attempt}


retrying = _linear("retrying", _retrying, retry=RetryPolicy(attempts=2, initial=0.01))


async def _gathering(state, ctx):
    async def branch(i: int):
        await asyncio.sleep(0.001 * (3 - i))
        ctx.note("branch", {"i": i})
        return i

    got = await asyncio.gather(*(branch(i) for i in range(3)))
    return {"got": got}


gathering = _linear("gathering", _gathering)


@tool()
async def flaky(what: str) -> dict:
    """A tool that always fails."""
    raise RuntimeError(f"{what} broke (key {TOKEN})")


async def _tool_fails(state, ctx):
    return {"r": await ctx.tool("flaky", what="the disk")}


tool_fails = _linear("tool_fails", _tool_fails, tools=[flaky])


async def _own_error(state, ctx):
    raise NodeError("the quota for today is used up", code="quota", category="rate_limit")


own_error = _linear("own_error", _own_error)


@tool(requires_approval=True)
async def deploy(env: str) -> dict:
    """Deploy, after a human says so."""
    return {"deployed": env}


async def _gated(state, ctx):
    return {"r": await ctx.tool("deploy", env="prod")}


gated = _linear("gated", _gated, tools=[deploy])


async def _slow(state, ctx):
    async with asyncio.timeout(0.01):
        await asyncio.sleep(5)
    return {}


slow = _linear("slow", _slow)


async def _plain(state, ctx):
    raise KeyError("missing")


plain = _linear("plain", _plain)

GRAPHS = [noting, crashing, retrying, gathering, tool_fails, own_error, gated, slow, plain]
