"""Recording and replaying runs in the replay-check tests: one graph in the variants a new
deploy might bring, a live run of it, and `replay_run` over a read-only log."""

from __future__ import annotations

from pathlib import Path

from kernel.engine.replaycheck import replay_run
from kernel.graph import END, START, Graph
from kernel.store import Store
from kernel.tools import tool
from runtime_helpers import pending, registry, run, runtime

def shop(*, amount: int = 5, ask: bool = False, drop_receipt: bool = False, reducer: str = "append",
         wrap: bool = False, calls: list | None = None, out: Path | None = None) -> Graph:
    """One graph, in the variants a new deploy might bring. `write` puts a file on disk."""

    @tool()
    async def pay(amount: int) -> dict:
        if calls is not None:
            calls.append(amount)
        return {"paid": amount}

    @tool(requires_approval=True)
    async def write(name: str) -> str:
        assert out is not None
        (out / name).write_text("written")
        return name

    async def buy(state, ctx):
        if ask:
            await ctx.interrupt("sure?", {"amount": amount})
        paid = await ctx.tool("pay", amount=amount)
        if not drop_receipt:
            await ctx.tool("pay", amount=1)  # the receipt fee
        return {"log": paid["paid"]}

    async def ship(state, ctx):
        return {"log": await ctx.tool("write", name="label.txt")}

    g = Graph("shop", tools=[pay, write], reducers={"log": reducer})
    g.add_node("buy", buy)
    g.add_node("ship", ship)
    g.add_edge(START, "buy")
    if wrap:  # a new node between the two
        async def wrap_it(state, ctx):
            return {}

        g.add_node("wrap", wrap_it)
        g.add_edge("buy", "wrap")
        g.add_edge("wrap", "ship")
    else:
        g.add_edge("buy", "ship")
    g.add_edge("ship", END)
    return g


def record(db, graph: Graph, *, approve: bool = True, **start) -> str:
    """Drive a run of `graph` live until it ends (approving what it asks) or waits."""

    async def go():
        async with runtime(db, graph) as (store, rt):
            run_id = await rt.start(graph.name, **start)
            await rt.settle()
            while approve and run_id in rt.drivers and (asked := pending(rt, run_id)):
                for raised in asked:
                    await rt.resolve(run_id, raised.interrupt_id, "approve" if raised.kind == "approval" else "answer",
                                     "yes", payload_hash=raised.payload_hash)
                await rt.settle()
            return run_id

    return run(go())


def replay(db, graph: Graph, run_id: str):
    async def go():
        async with await Store.open(db, readonly=True) as store:
            return await replay_run(store, registry(graph), run_id)

    return run(go())


def seq_of(db, run_id: str, match) -> int:
    async def go():
        async with await Store.open(db, readonly=True) as store:
            return [r.seq for r in await store.events(run_id, limit=10_000) if match(r.event)]

    return run(go())[0]


def status_of(db, run_id: str) -> str:
    async def go():
        async with await Store.open(db, readonly=True) as store:
            return (await store.run(run_id)).status

    return run(go())
