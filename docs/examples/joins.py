# docs/examples/joins.py
"""Fan out to two nodes that run in the same superstep, then join: `pick` waits for both."""

from kernel.graph import END, START, Graph

graph = Graph("quotes", reducers={"quotes": "merge", "sources": "extend"})


async def ask_acme(state, ctx):
    return {"quotes": {"acme": 120.0}, "sources": ["acme"]}


async def ask_globex(state, ctx):
    return {"quotes": {"globex": 95.5}, "sources": ["globex"]}


async def pick(state, ctx):
    best = min(state["quotes"], key=state["quotes"].get)
    return {"best": best, "price": state["quotes"][best]}


graph.add_node("ask_acme", ask_acme)
graph.add_node("ask_globex", ask_globex)
graph.add_node("pick", pick)
graph.add_edge(START, "ask_acme")
graph.add_edge(START, "ask_globex")
graph.add_edge(["ask_acme", "ask_globex"], "pick")   # a join: runs once both have completed
graph.add_edge("pick", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"item": "widget"}
