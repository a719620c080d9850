# docs/examples/child_runs.py
"""A node starts a child run of another graph and gets the child's final state back."""

from kernel.graph import END, START, Graph

summarise = Graph("summarise", input_schema={"text": str})


@summarise.node()
async def count(state, ctx):
    return {"words": len(state["text"].split())}


summarise.add_edge(START, "count")
summarise.add_edge("count", END)

report = Graph("report", input_schema={"docs": list[str]})


@report.node()
async def each(state, ctx):
    counts = []
    for text in state["docs"]:
        child = await ctx.child("summarise", {"text": text}, labels={"kind": "summary"})
        counts.append(child["words"])
    return {"counts": counts, "total": sum(counts)}


report.add_edge(START, "each")
report.add_edge("each", END)

GRAPHS = [summarise, report]
SAMPLE_INPUT = {"docs": ["one two three", "four five"]}
