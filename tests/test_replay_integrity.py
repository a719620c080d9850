"""Replay never runs the wrong effect: every recorded call is matched by position, kind, name and
input; in-doubt questions are asked once per occurrence; suspensions cannot be swallowed; call
positions do not depend on timing; a driver that breaks leaves a recorded reason."""

import asyncio
import time

from kernel.events import ActionRequested, InterruptRaised, RunCancelled
from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


def one_node(name: str, fn, *, tools=(), version: str = "1", **kw) -> Graph:
    g = Graph(name, version=version, tools=list(tools), **kw)
    g.add_node("work", fn)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g


# in doubt, twice ------------------------------------------------------------------------


def transfer_graph(calls: list, hang: asyncio.Event | None) -> Graph:
    @tool()  # not idempotent: money moves
    async def transfer(amount: int) -> dict:
        calls.append(amount)
        if hang is not None:
            await hang.wait()  # the process dies while it runs
        return {"moved": amount}

    async def work(state, ctx):
        return {"result": await ctx.tool("transfer", amount=500)}

    return one_node("transfer", work, tools=[transfer])


def test_a_retry_answer_is_not_reused_after_the_next_crash(db):
    calls: list = []

    async def crash_first():
        async with runtime(db, transfer_graph(calls, asyncio.Event())) as (store, rt):
            run_id = await rt.start("transfer")
            while not calls:
                await asyncio.sleep(0.01)
            return run_id

    run_id = run(crash_first())

    async def retry_then_crash():
        async with runtime(db, transfer_graph(calls, asyncio.Event())) as (store, rt):
            await rt.resume()
            await rt.settle()
            doubt = pending(rt, run_id)
            assert [d.kind for d in doubt] == ["in_doubt"]
            await rt.resolve(run_id, doubt[0].interrupt_id, "retry", payload_hash=doubt[0].payload_hash)
            while len(calls) < 2:
                await asyncio.sleep(0.01)
            return doubt[0].interrupt_id  # the process dies again, mid-transfer

    first_question = run(retry_then_crash())

    async def resume_again():
        async with runtime(db, transfer_graph(calls, None)) as (store, rt):
            await rt.resume()
            await rt.settle()
            return pending(rt, run_id) if run_id in rt.drivers else [], await store.run(run_id)

    doubt, info = run(resume_again())
    assert len(calls) == 2, "the transfer ran a third time on an answer given for another crash"
    assert info.status == "waiting"
    assert [d.kind for d in doubt] == ["in_doubt"] and doubt[0].interrupt_id != first_question


# code changes are found, not guessed ------------------------------------------------------


def _two_versions(db, v1: Graph, v2: Graph, answer: str = "yes"):
    """Start on v1 until it waits, then resume on v2 answering whatever it asks once."""

    async def first():
        async with runtime(db, v1) as (store, rt):
            run_id = await rt.start(v1.name)
            await rt.settle()
            return run_id

    run_id = run(first())

    async def second():
        async with runtime(db, v2) as (store, rt):
            await rt.resume()
            await rt.settle()
            for raised in list(pending(rt, run_id)) if run_id in rt.drivers else []:
                decision = "approve" if raised.kind == "approval" else "answer"
                await rt.resolve(run_id, raised.interrupt_id, decision, answer, payload_hash=raised.payload_hash)
                await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    return run(second())


def payments(calls: list):
    @tool()
    async def pay(amount: int) -> dict:
        calls.append(amount)
        return {"paid": amount}

    return pay


def test_a_tool_call_replaced_by_an_interrupt_diverges(db):
    calls: list = []
    pay = payments(calls)

    async def v1(state, ctx):
        await ctx.tool("pay", amount=500)
        return {"ok": await ctx.interrupt("done?")}

    async def v2(state, ctx):
        await ctx.interrupt("pay 500?")  # where the payment used to be
        return {"ok": await ctx.interrupt("done?")}

    info, events = _two_versions(db, one_node("p", v1, tools=[pay]), one_node("p", v2, tools=[pay], version="2"))
    assert info.status == "diverged"
    assert "tool pay" in info.error and "interrupt" in info.error
    assert calls == [500]


def test_an_interrupt_inserted_before_a_recorded_payment_diverges(db):
    calls: list = []
    pay = payments(calls)

    async def v1(state, ctx):
        await ctx.tool("pay", amount=500)
        return {"ok": await ctx.interrupt("done?")}

    async def v2(state, ctx):
        await ctx.interrupt("sure?")  # new: asked before the payment
        await ctx.tool("pay", amount=500)
        return {"ok": await ctx.interrupt("done?")}

    info, events = _two_versions(db, one_node("p", v1, tools=[pay]), one_node("p", v2, tools=[pay], version="2"))
    assert calls == [500], "a completed payment ran again"
    assert info.status == "diverged"


def test_a_deleted_call_diverges_instead_of_asking_again(db):
    calls: list = []
    pay = payments(calls)

    async def v1(state, ctx):
        await ctx.interrupt("which account?")
        return {"ok": await ctx.interrupt("done?")}

    async def v2(state, ctx):
        return {"ok": await ctx.interrupt("done?")}  # the first question was deleted

    async def first():
        async with runtime(db, one_node("p", v1)) as (store, rt):
            run_id = await rt.start("p")
            await rt.settle()
            q = pending(rt, run_id)[0]
            await rt.resolve(run_id, q.interrupt_id, "answer", "acct-1", payload_hash=q.payload_hash)
            await rt.settle()
            return run_id

    run_id = run(first())

    async def second():
        async with runtime(db, one_node("p", v2, version="2")) as (store, rt):
            await rt.resume()
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(second())
    assert info.status == "diverged"
    titles = [e.title for e in events if isinstance(e, InterruptRaised)]
    assert titles == ["which account?", "done?"], "an answered question was asked again"


def test_a_step_that_ends_without_its_recorded_calls_diverges(db):
    calls: list = []
    pay = payments(calls)

    async def v1(state, ctx):
        await ctx.tool("pay", amount=1)
        await ctx.tool("pay", amount=2)
        return {"ok": await ctx.interrupt("done?")}

    async def v2(state, ctx):
        await ctx.tool("pay", amount=1)
        return {"ok": True}  # pay 2 and the question were removed

    info, _ = _two_versions(db, one_node("p", v1, tools=[pay]), one_node("p", v2, tools=[pay], version="2"))
    assert info.status == "diverged"
    assert "pay" in info.error
    assert calls == [1, 2]


# positions do not depend on timing -------------------------------------------------------


def test_two_calls_per_coroutine_under_gather_replay_without_divergence(db):
    calls: list = []

    @tool(idempotent=True)
    async def fetch(tag: str, delay: float) -> str:
        calls.append(tag)
        await asyncio.sleep(delay)
        return tag.upper()

    async def work(state, ctx):
        async def branch(name: str, delay: float):
            a = await ctx.tool("fetch", tag=f"{name}1", delay=delay)
            b = await ctx.tool("fetch", tag=f"{name}2", delay=delay)
            return a + b

        got = await asyncio.gather(branch("slow", 0.1), branch("fast", 0.0))
        return {"got": got, "ok": await ctx.interrupt("done?")}

    g = one_node("gather", work, tools=[fetch])

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("gather")
            await rt.settle()
            q = pending(rt, run_id)[0]
            await rt.resolve(run_id, q.interrupt_id, "answer", "yes", payload_hash=q.payload_hash)
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state

    info, state = run(go())
    assert info.status == "completed", info.error
    assert state["got"] == ["SLOW1SLOW2", "FAST1FAST2"]
    assert sorted(calls) == ["fast1", "fast2", "slow1", "slow2"]


# suspension cannot be swallowed ------------------------------------------------------------


def test_a_node_catching_exception_does_not_swallow_a_suspension(db):
    async def careless(state, ctx):
        try:
            answer = await ctx.interrupt("which region?")
        except Exception:  # noqa: BLE001 - the point of the test
            answer = "default"
        return {"region": answer}

    async def go():
        async with runtime(db, one_node("careless", careless)) as (store, rt):
            run_id = await rt.start("careless")
            await rt.settle()
            info = await store.run(run_id)
            q = pending(rt, run_id)
            await rt.resolve(run_id, q[0].interrupt_id, "answer", "eu", payload_hash=q[0].payload_hash)
            await rt.settle()
            return info, await store.run(run_id), (await store.state_at(run_id)).state

    waiting, done, state = run(go())
    assert waiting.status == "waiting" and waiting.pending == 1
    assert done.status == "completed" and state["region"] == "eu"


# the agent loop settles its siblings --------------------------------------------------------


def agent_with_two_calls(invoices: list, payments_: list):
    from kernel.agents.agent import agent_graph
    from kernel.agents.models.scripted import ScriptedModel, reply

    @tool(requires_approval=True)
    async def pay(amount: int) -> dict:
        payments_.append(amount)
        return {"paid": amount}

    @tool()  # not idempotent, no approval, slow
    async def invoice(amount: int) -> dict:
        await asyncio.sleep(0.3)
        invoices.append(amount)
        return {"invoice": f"inv-{amount}"}

    def script(messages):
        if messages[-1]["role"] == "tool":
            return reply("done")
        return {"role": "assistant", "content": "paying", "tool_calls": [
            {"id": "c1", "name": "pay", "arguments": {"amount": 500}},
            {"id": "c2", "name": "invoice", "arguments": {"amount": 500}},
        ]}

    return agent_graph("billing", model=ScriptedModel("billing", script), tools=[pay, invoice], system="bill")


def test_an_approval_pause_settles_sibling_tool_calls(db):
    invoices: list = []
    paid: list = []

    async def first():
        async with runtime(db, agent_with_two_calls(invoices, paid)) as (store, rt):
            run_id = await rt.start("billing", {"messages": [{"role": "user", "content": "bill"}]})
            await rt.settle()
            return run_id, [e for e in await events_of(store, run_id)]

    run_id, events = run(first())  # the process ends right after the run paused
    assert invoices == [500], "the sibling call was not finished before the pause"

    async def second():
        async with runtime(db, agent_with_two_calls(invoices, paid)) as (store, rt):
            await rt.resume()
            await rt.settle()
            kinds = [p.kind for p in pending(rt, run_id)]
            q = pending(rt, run_id)[0]
            await rt.resolve(run_id, q.interrupt_id, "approve", payload_hash=q.payload_hash)
            await rt.settle()
            return kinds, await store.run(run_id), await events_of(store, run_id)

    kinds, info, events = run(second())
    assert kinds == ["approval"], "a false in-doubt question after a pause with no crash"
    assert info.status == "completed" and invoices == [500] and paid == [500]


def test_cancelling_a_paused_agent_appends_nothing_after_the_cancel(db):
    invoices: list = []
    paid: list = []

    async def go():
        async with runtime(db, agent_with_two_calls(invoices, paid)) as (store, rt):
            run_id = await rt.start("billing", {"messages": [{"role": "user", "content": "bill"}]})
            while not any(isinstance(e, InterruptRaised) for e in await events_of(store, run_id)):
                await asyncio.sleep(0.01)
            await rt.cancel(run_id, "wrong customer")
            await asyncio.sleep(0.5)  # the invoice call would have finished by now
            return await events_of(store, run_id)

    events = run(go())
    cancelled = next(i for i, e in enumerate(events) if isinstance(e, RunCancelled))
    assert cancelled == len(events) - 1, [type(e).__name__ for e in events[cancelled:]]


# a broken driver leaves a reason ----------------------------------------------------------


def test_renaming_the_waiting_node_ends_the_run_with_a_reason(db):
    def graph(node: str, version: str) -> Graph:
        async def ask(state, ctx):
            return {"ok": await ctx.interrupt("go on?")}

        g = Graph("renamed", version=version)
        g.add_node(node, ask)
        g.add_edge(START, node)
        g.add_edge(node, END)
        return g

    async def first():
        async with runtime(db, graph("review", "1")) as (store, rt):
            run_id = await rt.start("renamed")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, q = run(first())

    async def second():
        async with runtime(db, graph("check", "2")) as (store, rt):
            try:
                await rt.resolve(run_id, q.interrupt_id, "answer", "yes", payload_hash=q.payload_hash)
            except Exception:
                pass
            await rt.settle()
            return await store.run(run_id)

    info = asyncio.run(asyncio.wait_for(second(), 10))
    assert info.status in ("diverged", "failed")
    assert "review" in info.error


def test_an_undecodable_error_text_fails_the_run_with_a_reason(db):
    async def bad(state, ctx):
        raise ValueError("bad byte \udcff here")

    async def go():
        async with runtime(db, one_node("bad", bad)) as (store, rt):
            run_id = await rt.start("bad")
            await rt.settle()
            return await store.run(run_id)

    info = run(go())
    assert info.status == "failed" and "bad byte" in info.error


def test_a_state_the_log_cannot_encode_fails_the_run_with_a_reason(db):
    async def bad(state, ctx):
        return {"big": 2**70}

    async def go():
        async with runtime(db, one_node("big", bad)) as (store, rt):
            run_id = await rt.start("big")
            await rt.settle()
            return await store.run(run_id)

    info = run(go())
    assert info.status == "failed" and "big" in info.error


def test_a_cpu_bound_loop_is_cancelled_at_the_next_step_boundary(db):
    steps: list = []

    async def spin(state, ctx):
        end = time.perf_counter() + 0.005
        while time.perf_counter() < end:  # CPU-bound, never awaits
            pass
        steps.append(1)
        return {"n": state.get("n", 0) + 1}

    g = Graph("spin", step_limit=100_000)
    g.add_node("spin", spin)
    g.add_edge(START, "spin")
    g.add_branch("spin", lambda s: "spin" if s["n"] < 10**9 else END, ["spin", END])

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("spin")
            await asyncio.sleep(0.2)
            await asyncio.wait_for(rt.cancel(run_id, "runaway"), 5)
            at_cancel = len(steps)
            await asyncio.sleep(0.2)
            return await store.run(run_id), at_cancel, len(steps)

    info, at_cancel, later = asyncio.run(asyncio.wait_for(go(), 30))
    assert info.status == "cancelled"
    assert later == at_cancel and at_cancel < 1000


def test_a_loop_of_blocking_steps_lets_the_loop_go_round_at_every_boundary(db):
    """A node that blocks the thread (time.sleep, a sync HTTP call) uses almost no CPU: the
    boundary's busy window must still close on the wall clock, or such a loop would starve
    every other task for many steps at a time."""
    steps: list = []

    async def block(state, ctx):
        time.sleep(0.06)  # blocks the event loop, never awaits
        steps.append(1)
        return {"n": state.get("n", 0) + 1}

    g = Graph("block", step_limit=100_000)
    g.add_node("block", block)
    g.add_edge(START, "block")
    g.add_branch("block", lambda s: "block" if s["n"] < 10**9 else END, ["block", END])

    async def go():
        seen = []  # the steps done each time another task got a turn

        async def ticker():
            while len(steps) < 12:
                seen.append(len(steps))
                await asyncio.sleep(0)

        async with runtime(db, g) as (store, rt):
            ticking = asyncio.create_task(ticker())  # from before the run starts
            run_id = await rt.start("block")
            await ticking
            await asyncio.wait_for(rt.cancel(run_id, "runaway"), 5)
            return await store.run(run_id), seen

    info, seen = asyncio.run(asyncio.wait_for(go(), 60))
    assert info.status == "cancelled"
    # each step blocks longer than the window: the loop goes round between any two steps
    assert max(b - a for a, b in zip(seen, seen[1:] + [12])) <= 2, seen
