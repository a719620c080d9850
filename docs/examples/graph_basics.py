# docs/examples/graph_basics.py
"""Nodes, static edges, a conditional branch with a loop, reducers, an input schema, a step limit."""

from kernel.graph import END, START, Graph

graph = Graph(
    "countdown",
    reducers={"log": "append"},          # each update to "log" is appended; other keys replace
    input_schema={"start": int, "label": (str, "launch")},
    step_limit=20,                       # the run fails if it has not ended after 20 supersteps
)


@graph.node()
async def tick(state, ctx):
    n = state.get("n", state["start"])
    return {"n": n - 1, "log": f"{state['label']}: {n}"}


async def done(state, ctx):
    return {"log": f"{state['label']}: liftoff"}


graph.add_node("done", done)
graph.add_edge(START, "tick")
graph.add_branch("tick", lambda state: "tick" if state["n"] > 0 else "done", targets=["tick", "done"])
graph.add_edge("done", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"start": 3}
