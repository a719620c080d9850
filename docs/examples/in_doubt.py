# docs/examples/in_doubt.py
"""A tool that is not idempotent: if the process dies while it runs, a human says whether it ran."""

import asyncio
import os

from kernel.graph import END, START, Graph
from kernel.tools import tool


@tool
async def send_invoice(customer: str, amount: float) -> dict:
    """Email an invoice. Sending it twice would bill the customer twice."""
    await asyncio.sleep(float(os.environ.get("INVOICE_LATENCY", "0")))  # a slow mail server
    return {"sent_to": customer, "amount": amount}


graph = Graph("invoice", tools=[send_invoice])


@graph.node()
async def bill(state, ctx):
    receipt = await ctx.tool("send_invoice", customer=state["customer"], amount=state["amount"])
    return {"receipt": receipt}


graph.add_edge(START, "bill")
graph.add_edge("bill", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"customer": "acme", "amount": 120}
