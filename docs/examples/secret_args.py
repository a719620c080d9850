# docs/examples/secret_args.py
"""A value the log must never hold, handed to a tool as a Secret."""

import os

from kernel import Secret
from kernel.graph import END, START, Graph
from kernel.tools import tool


@tool
async def post_status(channel: str, auth: str, text: str) -> dict:
    """Post to a chat channel; `auth` is the plain string here."""
    return {"channel": channel, "auth_length": len(auth), "text": text}


graph = Graph("status", tools=[post_status])


@graph.node()
async def announce(state, ctx):
    auth = Secret(os.environ["STATUS_AUTH"])          # the log and prompts see [REDACTED:secret]
    sent = await ctx.tool("post_status", channel=state["channel"], auth=auth, text="deployed")
    return {"sent": sent}


graph.add_edge(START, "announce")
graph.add_edge("announce", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"channel": "#ops"}
