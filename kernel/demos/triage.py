"""Incident triage: asks the human a question, starts a research child run, summarises."""

from __future__ import annotations

from ..graph import END, START, Graph

graph = Graph(
    "triage", description="an agent that asks the human a question and starts a child run",
    input_schema={"alert": str},
)


@graph.node()
async def ask(state: dict, ctx) -> dict:
    environment = await ctx.interrupt(
        "Which environment is affected?",
        {"question": f"Alert: {state['alert']}. Which environment is affected?",
         "choices": ["production", "staging"], "default": "staging"},
    )
    return {"environment": environment}


@graph.node()
async def investigate(state: dict, ctx) -> dict:
    result = await ctx.child("research", {"topic": f"{state['alert']} in {state['environment']}"})
    return {"research": result.get("brief", "") if isinstance(result, dict) else result}


@graph.node()
async def summarise(state: dict, ctx) -> dict:
    return {"summary": f"{state['environment']}: {state['alert']}. {state['research'][:120]}"}


graph.add_edge(START, "ask")
graph.add_edge("ask", "investigate")
graph.add_edge("investigate", "summarise")
graph.add_edge("summarise", END)

SAMPLE_INPUT = {"alert": "p99 latency above 2s on checkout"}
