# docs/examples/effects.py
"""The clock, randomness and a durable timer, each recorded once and replayed after."""

from kernel.graph import END, START, Graph

graph = Graph("raffle")


@graph.node()
async def draw(state, ctx):
    opened = await ctx.now()                 # wall-clock seconds, recorded
    await ctx.sleep(0.2)                     # a durable timer: survives a restart
    roll = await ctx.random()                # a float in [0, 1), recorded
    winner = state["entrants"][int(roll * len(state["entrants"]))]
    return {"opened_at": opened, "roll": roll, "winner": winner}


graph.add_edge(START, "draw")
graph.add_edge("draw", END)

GRAPHS = [graph]
SAMPLE_INPUT = {"entrants": ["ana", "bo", "cy"]}
