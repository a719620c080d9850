"""The agent loop retries a step whose tool failed with a retryable error; the calls of that
step that had succeeded replay from the log and run once."""

from kernel.agents.agent import agent_graph
from kernel.graph import RetryPolicy
from kernel.agents.models.scripted import ScriptedModel, reply
from kernel.tools import ToolError, tool
from runtime_helpers import events_of, run, runtime


def test_a_retryable_tool_error_retries_the_act_step_and_replays_the_rest(db):
    calls: list = []

    @tool()  # not idempotent: must run once
    async def invoice(amount: int) -> dict:
        calls.append("invoice")
        return {"invoice": amount}

    @tool(idempotent=True)
    async def lookup(order: str) -> dict:
        calls.append("lookup")
        if calls.count("lookup") == 1:
            raise ToolError("upstream answered 503", retryable=True)
        return {"order": order}

    def script(messages):
        if messages[-1]["role"] == "tool":
            return reply("done")
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "name": "invoice", "arguments": {"amount": 5}},
            {"id": "c2", "name": "lookup", "arguments": {"order": "A-1"}},
        ]}

    g = agent_graph("billing", model=ScriptedModel("billing", script), tools=[invoice, lookup], system="s")
    g.nodes["act"].retry = RetryPolicy(attempts=3, initial=0.05, retry_on=g.nodes["act"].retry.retry_on)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("billing", {"messages": [{"role": "user", "content": "bill"}]})
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(go())
    assert info.status == "completed", info.error
    # the two calls run concurrently (gather): the idempotent lookup no longer waits for its
    # request to commit, so it may start first; what matters is how often each ran
    assert sorted(calls) == ["invoice", "lookup", "lookup"]
    assert [type(e).__name__ for e in events].count("StepFailed") == 1
