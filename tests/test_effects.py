"""Effects are recorded once and replayed, never re-run; divergence parks; forks keep lineage."""

import pytest

from kernel.events import RunStarted
from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


def counting_graph(calls: list, *, arg: int = 1, version: str = "1") -> Graph:
    @tool(idempotent=True)
    async def charge(amount: int) -> dict:
        calls.append(amount)
        return {"charged": amount}

    g = Graph("pay", version=version, tools=[charge])

    async def work(state, ctx):
        receipt = await ctx.tool("charge", amount=arg)
        r = await ctx.random()
        t = await ctx.now()
        answer = await ctx.interrupt("ok to finish?", {"receipt": receipt})
        return {"receipt": receipt, "r": r, "t": t, "answer": answer}

    g.add_node("work", work)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g


def test_re_executing_a_step_replays_recorded_results(db):
    calls: list = []

    async def go():
        async with runtime(db, counting_graph(calls)) as (store, rt):
            run_id = await rt.start("pay")
            await rt.settle()
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            return run_id, (await store.state_at(run_id)).state, await events_of(store, run_id)

    run_id, state, events = run(go())
    assert calls == [1]  # the node ran twice; the charge once
    assert state["receipt"] == {"charged": 1} and state["answer"] == "yes"
    first_random = next(e for e in events if type(e).__name__ == "ActionSucceeded" and e.action_id == "1.work#1")
    assert state["r"] == first_random.output


def test_a_new_process_replays_too(db):
    calls: list = []

    async def first():
        async with runtime(db, counting_graph(calls)) as (store, rt):
            run_id = await rt.start("pay")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())

    async def second():
        async with runtime(db, counting_graph(calls)) as (store, rt):
            await rt.resolve(run_id, raised.interrupt_id, "answer", "later", payload_hash=raised.payload_hash)
            await rt.settle()
            return await store.run(run_id)

    info = run(second())
    assert info.status == "completed" and calls == [1]


def test_divergence_parks_the_run_naming_both_calls(db):
    calls: list = []

    async def first():
        async with runtime(db, counting_graph(calls, arg=1)) as (store, rt):
            run_id = await rt.start("pay")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())

    async def second():  # the code changed: it now charges 2
        async with runtime(db, counting_graph(calls, arg=2, version="2")) as (store, rt):
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            return await store.run(run_id)

    info = run(second())
    assert info.status == "diverged"
    assert '1.work#0: the log has tool charge {"amount":1}, the code now calls tool charge {"amount":2}' in info.error
    assert calls == [1]


def test_fork_has_lineage_and_the_state_at_the_fork_point(db):
    g = Graph("steps", reducers={"done": "append"})
    for name in ("a", "b", "c"):
        async def fn(state, ctx, name=name):
            return {"done": name, "last": name}
        g.add_node(name, fn)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            parent = await rt.start("steps", {"k": 1})
            await rt.settle()
            # the seq of b's StepCompleted
            b_done = next(r.seq for r in await store.events(parent, types=["StepCompleted"]) if r.event.node == "b")
            child = await rt.fork(parent, b_done)
            first = (await store.events(child, 1, 1))[0].event
            at_fork = (await store.state_at(child, b_done)).state  # the parent's log up to there
            expected = (await store.state_at(parent, b_done)).state
            await rt.adopt(child)
            await rt.settle()
            return first, at_fork, expected, await store.run(child), (await store.state_at(child)).state

    first, at_fork, expected, info, final = run(go())
    assert isinstance(first, RunStarted) and first.lineage == "fork" and first.parent_seq > 0
    assert first.start_at == ("a",)  # the parent's: the fork carries its history, not a new start
    assert at_fork == expected == {"k": 1, "done": ["a", "b"], "last": "b"}
    assert info.status == "completed" and info.parent_run_id == first.parent_run_id
    assert final["done"] == ["a", "b", "c"]


def test_a_durable_sleep_wakes_when_due_after_a_restart(db):
    import time

    g = Graph("nap")

    async def nap(state, ctx):
        await ctx.sleep(0.6)
        return {"woke": True}

    g.add_node("nap", nap)
    g.add_edge(START, "nap")
    g.add_edge("nap", END)

    async def first():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("nap")
            import asyncio
            await asyncio.sleep(0.2)  # asleep now; the process stops here
            return run_id

    started = time.monotonic()
    run_id = run(first())

    async def second():
        async with runtime(db, g) as (store, rt):
            await rt.resume(run_id)
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(second())
    elapsed = time.monotonic() - started
    assert info.status == "completed"
    assert 0.55 < elapsed < 3
    requested = [e for e in events if type(e).__name__ == "ActionRequested"]
    assert len(requested) == 1 and requested[0].due_ns is not None


@pytest.mark.sqlite_only  # sets the lease with sqlite3; tests/test_hosts.py is the PostgreSQL case
def test_a_run_owned_on_another_host_is_adopted_only_after_its_lease_expires(db):
    import sqlite3
    import time as _time

    calls: list = []

    async def start():
        async with runtime(db, counting_graph(calls)) as (store, rt):
            run_id = await rt.start("pay")
            await rt.settle()
            return run_id

    run_id = run(start())

    def owned_elsewhere(lease_ns: int) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE runs SET owner = 'elsewhere:4242:99', lease_until_ns = ? WHERE run_id = ?",
                         (lease_ns, run_id))

    async def try_resume():
        async with runtime(db, counting_graph(calls)) as (store, rt):
            return await rt.resume(), (await store.run(run_id)).owner

    owned_elsewhere(_time.time_ns() + 60 * 10**9)
    adopted, owner = run(try_resume())
    assert adopted == [] and owner == "elsewhere:4242:99"
    owned_elsewhere(_time.time_ns() - 10**9)
    adopted, owner = run(try_resume())
    assert adopted == [run_id]
