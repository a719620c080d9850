# docs/examples/approvals.py
"""A tool that needs a human's approval above a threshold, and is safe to run twice."""

from kernel.graph import END, START, Graph
from kernel.tools import ToolRejected, tool


@tool(requires_approval=lambda args: args["amount"] > 100, idempotent=True)
async def pay(to: str, amount: float, idempotency_key: str) -> dict:
    """Pay a supplier. The key is the same every time this call is re-run."""
    # A real tool would send `idempotency_key` to the payment API, which then pays once.
    return {"to": to, "amount": amount, "ref": idempotency_key}


graph = Graph("bills", tools=[pay], reducers={"paid": "extend", "refused": "extend"})


@graph.node()
async def pay_all(state, ctx):
    paid, refused = [], []
    for to, amount in state["bills"]:
        try:
            paid.append(await ctx.tool("pay", to=to, amount=amount))
        except ToolRejected as why:             # the approver rejected it; the reason is in `why`
            refused.append({"to": to, "why": str(why)})
    return {"paid": paid, "refused": refused}


graph.add_edge(START, "pay_all")
graph.add_edge("pay_all", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"bills": [["acme", 500], ["bob", 20], ["cyd", 300], ["dan", 250], ["eve", 900]]}
