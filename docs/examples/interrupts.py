# docs/examples/interrupts.py
"""Ask a human a question and wait (for minutes or days) for the answer."""

from kernel.graph import END, START, Graph
from kernel.tools import ToolRejected

graph = Graph("release", input_schema={"version": str})


@graph.node()
async def ask(state, ctx):
    try:
        target = await ctx.interrupt(
            f"Where should {state['version']} go?",
            {"choices": ["staging", "production"], "version": state["version"]},
        )
    except ToolRejected as why:                 # `vigil reject` on an input interrupt
        return {"target": None, "note": str(why)}
    return {"target": target}


graph.add_edge(START, "ask")
graph.add_edge("ask", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"version": "2.4.1"}
