"""An effect requested but never finished (the process died mid-call) is put to a human."""

import asyncio

import pytest

from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


def transfer_graph(calls: list, hang: asyncio.Event | None = None) -> Graph:
    @tool()  # not idempotent
    async def transfer(amount: int) -> dict:
        calls.append(amount)
        if hang is not None:
            await hang.wait()  # the process "dies" while the money moves
        return {"moved": amount}

    @tool(idempotent=True)
    async def audit(amount: int) -> dict:
        calls.append(("audit", amount))
        if hang is not None:
            await hang.wait()
        return {"logged": amount}

    g = Graph("transfer", tools=[transfer, audit])

    async def go(state, ctx):
        if state.get("idempotent"):
            return {"result": await ctx.tool("audit", amount=7)}
        return {"result": await ctx.tool("transfer", amount=7)}

    g.add_node("go", go)
    g.add_edge(START, "go")
    g.add_edge("go", END)
    return g


def _crash_mid_effect(db, calls, **input) -> str:
    async def first():
        hang = asyncio.Event()
        async with runtime(db, transfer_graph(calls, hang)) as (store, rt):
            run_id = await rt.start("transfer", input)
            while not calls:
                await asyncio.sleep(0.01)
            return run_id  # closing the runtime cancels the call half-way

    return run(first())


@pytest.mark.parametrize("decision, value, status, result, transfers", [
    ("answer", {"moved": 7, "ref": "bank-123"}, "completed", {"moved": 7, "ref": "bank-123"}, 1),
    ("retry", None, "completed", {"moved": 7}, 2),
    ("fail", None, "failed", None, 1),
])
def test_a_human_decides_an_in_doubt_effect(db, decision, value, status, result, transfers):
    calls: list = []
    run_id = _crash_mid_effect(db, calls)

    async def second():
        async with runtime(db, transfer_graph(calls)) as (store, rt):
            await rt.resume()
            await rt.settle()
            doubt = pending(rt, run_id)
            assert [d.kind for d in doubt] == ["in_doubt"]
            assert doubt[0].payload["name"] == "transfer" and doubt[0].payload["input"] == {"amount": 7}
            await rt.resolve(run_id, doubt[0].interrupt_id, decision, value, payload_hash=doubt[0].payload_hash)
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state

    info, state = run(second())
    assert info.status == status
    assert state.get("result") == result
    assert len(calls) == transfers


def test_an_idempotent_effect_is_simply_run_again(db):
    calls: list = []
    run_id = _crash_mid_effect(db, calls, idempotent=True)

    async def second():
        async with runtime(db, transfer_graph(calls)) as (store, rt):
            await rt.resume()
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(second())
    assert info.status == "completed" and calls == [("audit", 7), ("audit", 7)]
    requested = [e for e in events if type(e).__name__ == "ActionRequested"]
    assert len(requested) == 1 and requested[0].idempotency_key == f"{run_id}:1.go#0"
