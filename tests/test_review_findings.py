"""Found in review: suspension inside task groups, forks of a run with an in-doubt question, a
writer that exits without closing the store, and the children of a cancelled run."""

import asyncio

import anyio

from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import pending, run, runtime, types_of


def one_node(name, fn, *, tools=(), version="1", **kw):
    g = Graph(name, version=version, tools=list(tools), **kw)
    g.add_node("work", fn)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g


def test_interrupt_inside_an_anyio_task_group_waits(db):
    async def work(state, ctx):
        got = {}

        async def ask():
            got["a"] = await ctx.interrupt("which region?")

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
        return {"region": got["a"]}

    async def go():
        async with runtime(db, one_node("tg", work)) as (store, rt):
            run_id = await rt.start("tg")
            await asyncio.wait_for(rt.settle(), 5)
            driver = rt.drivers.get(run_id)
            crash = driver.task.exception() if driver and driver.task.done() else None
            return await store.run(run_id), crash, pending(rt, run_id) if driver else []

    info, crash, asked = run(go())
    assert crash is None, f"the driver task died with {crash!r}"
    assert info.status == "waiting" and [q.title for q in asked] == ["which region?"]



def test_interrupt_inside_an_asyncio_taskgroup_waits(db):
    async def work(state, ctx):
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(ctx.interrupt("which region?"))
        return {"region": t.result()}

    async def go():
        async with runtime(db, one_node("tg2", work)) as (store, rt):
            run_id = await rt.start("tg2")
            await asyncio.wait_for(rt.settle(), 5)
            driver = rt.drivers.get(run_id)
            crash = driver.task.exception() if driver and driver.task.done() else None
            return await store.run(run_id), crash

    info, crash = run(go())
    assert crash is None, f"the driver task died with {crash!r}"
    assert info.status == "waiting"



def test_a_task_group_interrupt_does_not_cancel_a_parallel_branch(db):
    done: list = []

    @tool()  # not idempotent
    async def invoice(amount: int) -> dict:
        await asyncio.sleep(0.3)
        done.append(amount)
        return {"invoice": amount}

    async def ask(state, ctx):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctx.interrupt, "which region?")
        return {}

    async def bill(state, ctx):
        return {"inv": await ctx.tool("invoice", amount=5)}

    g = Graph("par", version="1", tools=[invoice])
    g.add_node("ask", ask)
    g.add_node("bill", bill)
    g.add_edge(START, "ask")
    g.add_edge(START, "bill")
    g.add_edge("ask", END)
    g.add_edge("bill", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("par")
            await asyncio.wait_for(rt.settle(), 5)
            return await types_of(store, run_id)

    types = run(go())

    assert done == [5], "the sibling's invoice was cancelled mid-run"



def test_a_fork_of_a_run_with_an_in_doubt_question_does_not_rerun_the_effect_silently(db):
    from test_replay_integrity import transfer_graph

    calls: list = []

    async def crash_first():
        async with runtime(db, transfer_graph(calls, asyncio.Event())) as (store, rt):
            run_id = await rt.start("transfer")
            while not calls:
                await asyncio.sleep(0.01)
            return run_id

    parent = run(crash_first())

    async def fork_it():
        async with runtime(db, transfer_graph(calls, None)) as (store, rt):
            await rt.resume()
            await rt.settle()
            assert [q.kind for q in pending(rt, parent)] == ["in_doubt"]
            head = (await store.run(parent)).last_seq
            fork = await rt.fork(parent, head)
            before = await store.run(fork)
            await rt.adopt(fork)
            await asyncio.wait_for(rt.settle(), 5)
            return before, await store.run(fork), await types_of(store, fork)

    before, after, types = run(fork_it())

    assert len(calls) == 1, "the fork moved the money again without asking whether it had run"



def test_a_writer_that_exits_without_store_close_does_not_brick_the_file(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from kernel.store import Store

    db = tmp_path / "vigil.db"
    script = (
        "import asyncio, sys\n"
        "from kernel.store import Store\n"
        "from kernel.events import RunStarted\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1])\n"
        "    await store.append('r1', [RunStarted(graph='g')], expected_seq=0)\n"
        "    raise RuntimeError('an unhandled error, not kill -9')\n"
        "asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script, str(db)], cwd=root, capture_output=True)
    assert not Path(f"{db}-wal").exists()  # sqlite checkpointed it all on the last close

    async def reopen():
        async with await Store.open(db, readonly=True) as store:
            return (await store.run("r1")).last_seq

    assert run(reopen()) == 1  # nothing is missing, yet the file is refused as a bad copy



def test_cancelling_a_parent_stops_its_child_run(db):
    async def kid(state, ctx):
        await ctx.sleep(0.5)
        return {"out": 1}

    c = Graph("kid2", version="1")
    c.add_node("k", kid).add_edge(START, "k").add_edge("k", END)

    async def parent(state, ctx):
        return {"got": await ctx.child("kid2", 1)}

    p = Graph("par2", version="1")
    p.add_node("p", parent).add_edge(START, "p").add_edge("p", END)

    async def go():
        async with runtime(db, c, p) as (store, rt):
            run_id = await rt.start("par2")
            await asyncio.sleep(0.1)
            child = next(r for r in rt.drivers if r != run_id)
            await rt.cancel(run_id, "stop everything")
            await asyncio.sleep(1.0)
            await rt.settle()
            return (await store.run(run_id)).status, (await store.run(child)).status

    parent_status, child_status = run(go())

    assert parent_status == "cancelled"
    assert child_status == "cancelled", f"the child of a cancelled run went on to {child_status}"


def test_a_retry_that_calls_a_fallback_tool_is_a_new_call_and_replays_as_one(db):
    from kernel.graph import RetryPolicy

    calls: list = []

    @tool()  # not idempotent: each must run exactly once
    async def primary() -> str:
        calls.append("primary")
        return "half"

    @tool()
    async def fallback() -> str:
        calls.append("fallback")
        return "whole"

    async def work(state, ctx):
        if ctx.attempt == 1:
            got = await ctx.tool("primary")
            raise ValueError(f"primary gave {got}")
        got = await ctx.tool("fallback")
        ok = await ctx.interrupt("keep it?")  # the step runs again after this: a replay
        return {"got": got, "ok": ok}

    g = Graph("fallback", version="1", tools=[primary, fallback])
    g.add_node("work", work, retry=RetryPolicy(attempts=2, backoff="fixed", initial=0.01, jitter=False))
    g.add_edge(START, "work")
    g.add_edge("work", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("fallback")
            await asyncio.wait_for(rt.settle(), 5)
            q = pending(rt, run_id)[0]
            await rt.resolve(run_id, q.interrupt_id, "answer", "yes", payload_hash=q.payload_hash)
            await asyncio.wait_for(rt.settle(), 5)
            return await store.run(run_id), (await store.state_at(run_id)).state

    info, state = run(go())
    assert info.status == "completed", f"{info.status}: {info.error}"
    assert state == {"got": "whole", "ok": "yes"}
    assert calls == ["primary", "fallback"]


def test_a_retry_that_asks_differently_gets_a_fresh_answer(db):
    from kernel.graph import RetryPolicy

    calls: list = []

    @tool(idempotent=True)
    async def model(prompt: str) -> str:
        calls.append(prompt)
        return "garbage" if len(calls) == 1 else '{"ok": true}'

    async def work(state, ctx):
        # the same call in a retry replays the recorded answer; a different prompt is a new call
        text = await ctx.tool("model", prompt=f"answer in JSON (attempt {ctx.attempt})")
        if text == "garbage":
            raise ValueError("unparseable reply")
        return {"text": text}

    g = Graph("reask", version="1", tools=[model])
    g.add_node("work", work, retry=RetryPolicy(attempts=3, backoff="fixed", initial=0.01, jitter=False))
    g.add_edge(START, "work")
    g.add_edge("work", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("reask")
            await asyncio.wait_for(rt.settle(), 5)
            return await store.run(run_id)

    info = run(go())
    assert info.status == "completed", info.error
    assert len(calls) == 2


def test_a_worker_never_drives_more_than_its_concurrency(db):
    from kernel.engine.worker import Worker

    now = {"n": 0, "max": 0}

    async def ask(state, ctx):
        return {"ok": await ctx.interrupt("go?")}

    async def busy(state, ctx):
        now["n"] += 1
        now["max"] = max(now["max"], now["n"])
        await asyncio.sleep(0.3)
        now["n"] -= 1
        return {"done": True}

    g = Graph("conc", version="1")
    g.add_node("ask", ask).add_node("busy", busy)
    g.add_edge(START, "ask").add_edge("ask", "busy").add_edge("busy", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            ids = [await rt.start("conc") for _ in range(3)]
            await rt.settle()
        # that process is gone, its runs released; a worker with one slot takes them
        async with runtime(db, g) as (store, rt):
            stop = asyncio.Event()
            worker = Worker(rt, concurrency=1, poll=0.05)
            task = asyncio.create_task(worker.run(stop))
            while len(rt.drivers) < 3:
                await asyncio.sleep(0.05)
            await rt.settle()
            for run_id in ids:
                q = pending(rt, run_id)[0]
                await rt.resolve(run_id, q.interrupt_id, "answer", "yes", payload_hash=q.payload_hash)
            while [(await store.run(r)).status for r in ids] != ["completed"] * 3:
                await asyncio.sleep(0.05)
            stop.set()
            await task

    run(asyncio.wait_for(go(), 20))
    assert now["max"] == 1, f"{now['max']} runs were driven at once by a worker with concurrency 1"
