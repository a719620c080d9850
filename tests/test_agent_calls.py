"""The agent's `act` step: a single tool call runs without a task of its own (kernel.engine.scopes
`inline`) but takes the position a task would have given it, so a run recorded either way
replays and resumes either way."""

from __future__ import annotations

import asyncio

from kernel.agents import agent
from kernel.agents.agent import agent_graph
from kernel.agents.models.scripted import ScriptedModel, reply
from kernel.events import ActionRequested
from kernel.tools import tool
from replay_helpers import record, replay
from runtime_helpers import events_of, run, runtime


@tool(idempotent=True)
async def lookup(order: str) -> dict:
    return {"order": order, "status": "shipped"}


def _script(calls: int):
    def script(messages):
        if messages[-1]["role"] == "tool":
            return reply("done")
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"c{i}", "name": "lookup", "arguments": {"order": f"A-{i}"}} for i in range(calls)
        ]}

    return script


def _graph(calls: int, *, task: bool = False):
    g = agent_graph("desk", model=ScriptedModel("desk", _script(calls)), tools=[lookup], system="s")
    if task:  # the agent before `inline`: every call in a task, even a single one
        async def act(state, ctx):
            wanted = state["messages"][-1].get("tool_calls", [])
            return {"messages": list(await asyncio.gather(*(agent._run_call(ctx, c) for c in wanted)))}

        g.nodes["act"].fn = act
    return g


def _requested(db, run_id: str, graph) -> list[str]:
    async def go():
        async with runtime(db, graph) as (store, rt):
            return [e.action_id for e in await events_of(store, run_id) if isinstance(e, ActionRequested)]

    return run(go())


def test_one_tool_call_takes_the_position_its_task_would_have(db):
    g = _graph(1)
    run_id = record(db, g, input={"messages": [{"role": "user", "content": "where?"}]})
    assert _requested(db, run_id, g) == ["1.think#0", "2.act#t0.0", "3.think#0"]


def test_several_tool_calls_still_run_in_tasks_numbered_in_order(db):
    g = _graph(3)
    run_id = record(db, g, input={"messages": [{"role": "user", "content": "where?"}]})
    assert _requested(db, run_id, g)[1:4] == ["2.act#t0.0", "2.act#t1.0", "2.act#t2.0"]


def test_a_run_recorded_with_a_task_replays_inline_and_back(db):
    recorded_with_task = record(db, _graph(1, task=True), input={"messages": [{"role": "user", "content": "a"}]})
    recorded_inline = record(db, _graph(1), input={"messages": [{"role": "user", "content": "b"}]})
    verdict = replay(db, _graph(1), recorded_with_task)
    assert verdict.ok and not verdict.in_flight, verdict
    verdict = replay(db, _graph(1, task=True), recorded_inline)
    assert verdict.ok and not verdict.in_flight, verdict
