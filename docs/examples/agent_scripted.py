# docs/examples/agent_scripted.py
"""The agent loop with a scripted (deterministic, offline) model and two tools."""

import json

from kernel.agents.agent import agent_graph
from kernel.agents.models.scripted import ScriptedModel, call, reply
from kernel.tools import tool


@tool(idempotent=True)
async def lookup_order(order: str) -> dict:
    """Look up an order."""
    return {"order": order, "amount": 80.0, "status": "delivered"}


@tool(requires_approval=lambda args: args["amount"] > 50)
async def refund(order: str, amount: float) -> dict:
    """Refund an order."""
    return {"refunded": amount, "order": order}


def script(messages: list[dict]) -> dict:
    """Decides each reply from the conversation so far, as a real model would."""
    last = messages[-1]
    if last["role"] == "user":
        return call("lookup_order", {"order": "A-17"})
    if last["role"] == "tool" and last["name"] == "lookup_order":
        found = json.loads(last["content"])
        return call("refund", {"order": found["order"], "amount": found["amount"]})
    return reply(f"Done: {last['content']}")


support = agent_graph(
    "support_agent",
    model=ScriptedModel("support", script),
    tools=[lookup_order, refund],
    system="You resolve refund requests.",
    max_turns=4,
)

GRAPHS = [support]
SAMPLE_INPUT = {"messages": [{"role": "user", "content": "Please refund order A-17."}]}
