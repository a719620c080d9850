"""Workflows for the approval tests, registered in CLI subprocesses with --workflows: payments
that need approval (each paid bill is appended to VIGIL_LEDGER) and a question with choices."""

from __future__ import annotations

import os

from kernel.graph import END, START, Graph
from kernel.tools import tool


@tool(requires_approval=lambda args: args["amount"] > 10)
async def pay(to: str, amount: float) -> dict:
    ledger = os.environ.get("VIGIL_LEDGER")
    if ledger:
        with open(ledger, "a") as f:
            f.write(f"{to} {amount}\n")
    return {"paid": amount, "to": to}


payments = Graph("payments", tools=[pay], reducers={"paid": "append"})


async def _pay_all(state, ctx):
    out = []
    for to, amount in state["bills"]:
        out.append(await ctx.tool("pay", to=to, amount=amount))
    return {"paid": out}


payments.add_node("pay_all", _pay_all)
payments.add_edge(START, "pay_all")
payments.add_edge("pay_all", END)


pick = Graph("pick", description="asks a question with declared choices")


async def _ask(state, ctx):
    return {"colour": await ctx.interrupt("Which colour?", {"choices": ["red", "green"], "default": "red"})}


pick.add_node("ask", _ask)
pick.add_edge(START, "ask")
pick.add_edge("ask", END)

GRAPHS = [payments, pick]
