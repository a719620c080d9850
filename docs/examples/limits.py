# docs/examples/limits.py
"""Six searches fanned out in one superstep, at most two at once, through a search API that takes
one call at a time from this whole process (every run of the process shares that line)."""

import asyncio

from kernel.graph import END, START, Graph
from kernel.tools import tool

TOPICS = ["pricing", "refunds", "shipping", "returns", "warranty", "support"]


@tool(idempotent=True, max_concurrency=1)
async def search_api(topic: str) -> str:
    """Search the help centre (its API allows one call at a time)."""
    await asyncio.sleep(0.05)
    return f"3 articles on {topic}"


graph = Graph("survey", reducers={"found": "append"}, tools=[search_api], max_concurrency=2)


def searcher(topic):
    async def search(state, ctx):
        return {"found": await ctx.tool("search_api", topic=topic)}

    return search


async def report(state, ctx):
    return {"report": sorted(state["found"])}


for topic in TOPICS:
    graph.add_node(topic, searcher(topic))
    graph.add_edge(START, topic)
graph.add_node("report", report)
graph.add_edge(TOPICS, "report")   # a join over the six
graph.add_edge("report", END)

GRAPHS = [graph]
SAMPLE_INPUT = {}
