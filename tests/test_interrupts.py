"""Interrupts: per-branch suspension, out-of-order resolution, refusals, reject and edit."""

import json

import pytest

from kernel.demos import support
from kernel.events import InterruptResolved, ToolApprovedForRun
from kernel.graph import END, START, Graph
from kernel.engine.runtime import InterruptRefused
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


def three_questions() -> Graph:
    g = Graph("ask3", reducers={"answers": "append"})
    for name in ("x", "y", "z"):
        async def ask(state, ctx, name=name):
            return {"answers": [name, await ctx.interrupt(f"value for {name}?", {"field": name})]}
        g.add_node(name, ask)
        g.add_edge(START, name)
        g.add_edge(name, END)
    async def other(state, ctx):
        return {"other": "ran"}
    g.add_node("other", other)
    g.add_edge(START, "other")
    g.add_edge("other", END)
    return g


def test_several_pending_resolved_out_of_order_and_other_branches_go_on(db):
    async def go():
        async with runtime(db, three_questions()) as (store, rt):
            run_id = await rt.start("ask3")
            await rt.settle()
            waiting = {i.payload["field"]: i for i in pending(rt, run_id)}
            state_while_waiting = (await store.state_at(run_id)).state
            info = await store.run(run_id)
            for field in ("z", "x", "y"):
                i = waiting[field]
                await rt.resolve(run_id, i.interrupt_id, "answer", field.upper(), payload_hash=i.payload_hash)
                await rt.settle()
            return info, state_while_waiting, await store.run(run_id), (await store.state_at(run_id)).state

    info, before, after, state = run(go())
    assert info.status == "waiting" and info.pending == 3
    assert before == {"other": "ran"}  # the branch without a question completed
    assert after.status == "completed" and after.pending == 0
    assert sorted(map(tuple, state["answers"])) == [("x", "X"), ("y", "Y"), ("z", "Z")]


def test_stale_unknown_and_double_resolutions_are_refused_and_not_recorded(db):
    async def go():
        async with runtime(db, three_questions()) as (store, rt):
            run_id = await rt.start("ask3")
            await rt.settle()
            first = pending(rt, run_id)[0]
            with pytest.raises(InterruptRefused, match="changed since it was shown"):
                await rt.resolve(run_id, first.interrupt_id, "answer", 1, payload_hash="0" * 64)
            with pytest.raises(InterruptRefused, match="has no interrupt 'nope'"):
                await rt.resolve(run_id, "nope", "answer", 1, payload_hash=first.payload_hash)
            with pytest.raises(InterruptRefused, match="does not answer a input interrupt"):
                await rt.resolve(run_id, first.interrupt_id, "edit", 1, payload_hash=first.payload_hash)
            await rt.resolve(run_id, first.interrupt_id, "answer", 1, payload_hash=first.payload_hash)
            with pytest.raises(InterruptRefused, match="already resolved"):
                await rt.resolve(run_id, first.interrupt_id, "answer", 2, payload_hash=first.payload_hash)
            await rt.settle()
            return [e for e in await events_of(store, run_id) if isinstance(e, InterruptResolved)]

    resolutions = run(go())
    assert len(resolutions) == 1 and resolutions[0].value == 1
    assert resolutions[0].actor is not None and resolutions[0].actor.pid > 0


def test_reject_reaches_the_agent_as_the_tools_error(db):
    async def go():
        async with runtime(db, support.graph) as (store, rt):
            run_id = await rt.start("support", support.SAMPLE_INPUT)
            await rt.settle()
            approval = pending(rt, run_id)[0]
            assert approval.payload["tool"] == "refund" and approval.payload["args"]["amount"] == 89.0
            await rt.resolve(run_id, approval.interrupt_id, "reject", "refunded by phone already",
                             payload_hash=approval.payload_hash)
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state["messages"]

    info, messages = run(go())
    assert info.status == "completed"
    refund = next(m for m in messages if m["role"] == "tool" and m["name"] == "refund")
    assert "refunded by phone already" in json.loads(refund["content"])["error"]
    reply = next(m for m in messages if m["role"] == "tool" and m["name"] == "send_reply")
    assert reply  # the agent adapted and still answered the customer
    sent = [m for m in messages if m["role"] == "assistant" and m["tool_calls"] and m["tool_calls"][0]["name"] == "send_reply"]
    assert "could not refund" in sent[0]["tool_calls"][0]["arguments"]["text"]


def approval_graph(calls: list) -> Graph:
    @tool(requires_approval=lambda args: args["amount"] > 10)
    async def pay(to: str, amount: float) -> dict:
        calls.append((to, amount))
        return {"paid": amount, "to": to}

    g = Graph("payments", tools=[pay], reducers={"paid": "append"})

    async def pay_all(state, ctx):
        out = []
        for to, amount in state["bills"]:
            out.append(await ctx.tool("pay", to=to, amount=amount))
        return {"paid": out}

    g.add_node("pay_all", pay_all)
    g.add_edge(START, "pay_all")
    g.add_edge("pay_all", END)
    return g


def test_edit_runs_the_edited_arguments_and_records_both(db):
    calls: list = []

    async def go():
        async with runtime(db, approval_graph(calls)) as (store, rt):
            run_id = await rt.start("payments", {"bills": [["ann", 5], ["bob", 500]]})
            await rt.settle()
            ask = pending(rt, run_id)[0]
            with pytest.raises(InterruptRefused, match="edited arguments do not fit"):
                await rt.resolve(run_id, ask.interrupt_id, "edit", {"to": "bob", "amount": "lots"},
                                 payload_hash=ask.payload_hash)
            await rt.resolve(run_id, ask.interrupt_id, "edit", {"to": "bob", "amount": 50},
                             payload_hash=ask.payload_hash)
            await rt.settle()
            return ask, await events_of(store, run_id)

    ask, events = run(go())
    assert ask.payload == {"tool": "pay", "args": {"to": "bob", "amount": 500.0}}
    assert calls == [("ann", 5.0), ("bob", 50.0)]  # the small bill needed no approval
    requested = [e for e in events if type(e).__name__ == "ActionRequested"]
    assert requested[-1].input == {"to": "bob", "amount": 50.0}
    resolved = next(e for e in events if isinstance(e, InterruptResolved))
    assert resolved.decision == "edit" and resolved.value == {"to": "bob", "amount": 50.0}


def test_approve_for_the_rest_of_the_run_is_recorded_and_honoured(db):
    calls: list = []

    async def go():
        async with runtime(db, approval_graph(calls)) as (store, rt):
            run_id = await rt.start("payments", {"bills": [["a", 20], ["b", 30], ["c", 40]]})
            await rt.settle()
            ask = pending(rt, run_id)[0]
            await rt.resolve(run_id, ask.interrupt_id, "approve", payload_hash=ask.payload_hash, always=True)
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(go())
    assert info.status == "completed" and calls == [("a", 20.0), ("b", 30.0), ("c", 40.0)]
    assert sum(type(e).__name__ == "InterruptRaised" for e in events) == 1
    assert any(isinstance(e, ToolApprovedForRun) and e.tool == "pay" for e in events)


def test_deny_mode_refuses_without_asking(db):
    calls: list = []

    async def go():
        async with runtime(db, approval_graph(calls), approvals="deny") as (store, rt):
            run_id = await rt.start("payments", {"bills": [["a", 20]]})
            await rt.settle()
            return await store.run(run_id)

    info = run(go())
    assert info.status == "failed" and "denies it" in info.error and calls == []


def test_bad_tool_arguments_from_the_model_go_back_to_it(db):
    from kernel.agents.agent import agent_graph
    from kernel.agents.models.scripted import ScriptedModel, call, reply

    seen = []

    @tool(idempotent=True)
    async def lookup(order: str) -> dict:
        seen.append(order)
        return {"order": order, "ok": True}

    def script(messages):
        tool_msgs = [m for m in messages if m["role"] == "tool"]
        if not tool_msgs:
            return call("lookup", {"order": 42})  # wrong type
        if len(tool_msgs) == 1:
            return call("lookup", {"order": "A-42"}, call_id="again")
        return reply("found it")

    g = agent_graph("fixer", model=ScriptedModel("fixer", script), tools=[lookup], system="s")

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("fixer", {"messages": [{"role": "user", "content": "find A-42"}]})
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state["messages"]

    info, messages = run(go())
    assert info.status == "completed" and seen == ["A-42"]
    first = json.loads([m for m in messages if m["role"] == "tool"][0]["content"])
    assert "Expected `str`, got `int`" in first["error"]
