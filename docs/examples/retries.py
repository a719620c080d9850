# docs/examples/retries.py
"""A node retried on a durable timer: the tool fails twice, the third attempt succeeds."""

from kernel.graph import END, START, Graph, RetryPolicy
from kernel.tools import ToolError, tool

calls = 0  # per process: enough to show the retries, not how to count them durably


@tool(idempotent=True)
async def fetch_rate(currency: str) -> float:
    """Exchange rate to EUR from a flaky upstream."""
    global calls
    calls += 1
    if calls < 3:
        raise ToolError("upstream answered 503", retryable=True)
    return 0.92


graph = Graph("rates", tools=[fetch_rate])


async def convert(state, ctx):
    rate = await ctx.tool("fetch_rate", currency="USD")
    return {"eur": round(state["usd"] * rate, 2), "attempt": ctx.attempt}


policy = RetryPolicy(attempts=4, backoff="exponential", initial=0.1, maximum=2.0, jitter=False)
graph.add_node("convert", convert, retry=policy)
graph.add_edge(START, "convert")
graph.add_edge("convert", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"usd": 100}
