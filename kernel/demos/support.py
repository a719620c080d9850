"""Support agent: looks up an order, refunds it (the refund needs a human's approval), replies."""

from __future__ import annotations

import asyncio
import json
import re

from ..agents.agent import agent_graph
from ..agents.models.scripted import ScriptedModel, call, reply
from ..tools import tool

ORDERS = {
    "A-7731": {"order": "A-7731", "item": "blender", "amount": 89.0, "paid": "card", "status": "delivered"},
    "B-1180": {"order": "B-1180", "item": "kettle", "amount": 34.5, "paid": "paypal", "status": "delivered"},
    "C-2093": {"order": "C-2093", "item": "espresso machine", "amount": 429.0, "paid": "card", "status": "delivered"},
}


@tool(idempotent=True)
async def lookup_order(order: str) -> dict:
    """Look up an order by its id."""
    await asyncio.sleep(0.2)
    if order not in ORDERS:
        raise ValueError(f"no order {order}")
    return ORDERS[order]


@tool(requires_approval=True)
async def refund(order: str, amount: float, reason: str) -> dict:
    """Refund (part of) an order to the original payment method. Moves money: needs approval."""
    await asyncio.sleep(0.3)
    return {"refund_id": f"rf-{abs(hash((order, amount))) % 10000:04d}", "order": order, "amount": amount}


@tool(idempotent=True)
async def send_reply(customer: str, text: str) -> dict:
    """Email the customer."""
    await asyncio.sleep(0.1)
    return {"sent_to": customer, "chars": len(text)}


def _script(messages: list[dict]) -> dict:
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    order = (re.search(r"[A-Z]-\d{4}", user) or [""])[0]
    if not order:
        return reply("Which order is this about? I need its number (like A-7731) to help.")
    tools_done = {m["name"]: json.loads(m["content"]) for m in messages if m["role"] == "tool"}
    if "lookup_order" not in tools_done:
        return call("lookup_order", {"order": order}, text=f"Let me look up order {order}.")
    found = tools_done["lookup_order"]
    if "error" in found:
        return reply(f"I could not find that order ({found['error']}). Could you check the number?")
    if "refund" not in tools_done:
        return call(
            "refund",
            {"order": order, "amount": found["amount"], "reason": "arrived damaged"},
            text=f"The {found['item']} cost {found['amount']:.2f}; I will refund it in full.",
        )
    refunded = tools_done["refund"]
    if "send_reply" not in tools_done:
        if "error" in refunded:
            text = (f"I'm sorry about your {found['item']}. I could not refund it right now "
                    f"({refunded['error']}); a colleague will contact you today.")
        else:
            text = (f"I'm sorry your {found['item']} arrived broken. I've refunded "
                    f"{refunded['amount']:.2f} to your {found['paid']} ({refunded['refund_id']}).")
        return call("send_reply", {"customer": "c-1042", "text": text}, text="Writing to the customer.")
    return reply("Done: the customer has been answered and the case can be closed.")


model = ScriptedModel("support", _script, token_delay=0.01)

graph = agent_graph(
    "support",
    model=model,
    tools=[lookup_order, refund, send_reply],
    system="You are a support agent. Refunds need a human's approval.",
    description="a support agent whose refund tool needs approval",
)

SAMPLE_INPUT = {"messages": [{"role": "user", "content": "My order A-7731 arrived broken. Refund please."}]}
