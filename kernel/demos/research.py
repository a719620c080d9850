"""Research agent: plans, fans out to three searches in parallel, joins, and writes a brief."""

from __future__ import annotations

import asyncio

from ..graph import END, START, Graph
from ..agents.models.scripted import ScriptedModel, reply
from ..tools import tool


# Two searches at a time, whichever run asks (a rate limit of the search service, say): of the
# three parallel branches one waits its turn, and the live pane says so (`⧗ queued: search`).
@tool(idempotent=True, max_concurrency=2)
async def search(source: str, query: str) -> list:
    """Search one source; returns the top hits."""
    await asyncio.sleep({"web": 0.6, "papers": 1.0, "code": 0.4}.get(source, 0.5))
    return [f"{source}: {query} — finding {i}" for i in range(1, 4)]


def _brief(messages: list[dict]) -> dict:
    hits = messages[-1]["content"]
    return reply(f"Brief on the question. Across sources: {hits} Recommendation: start with the "
                 "most-cited finding and verify it against the code.")


writer = ScriptedModel("research-writer", _brief, token_delay=0.02)

graph = Graph(
    "research", reducers={"findings": "extend"}, tools=[search],
    description="a research agent that fans out to parallel branches and joins",
    input_schema={"topic": (str, "durable agent runtimes")},
)


@graph.node()
async def plan(state: dict, ctx) -> dict:
    topic = state.get("topic", "durable agent runtimes")
    started = await ctx.now()
    return {"queries": {s: f"{topic} ({s})" for s in ("web", "papers", "code")}, "started_at": started}


def _searcher(source: str):
    async def run(state: dict, ctx) -> dict:
        return {"findings": await ctx.tool("search", source=source, query=state["queries"][source])}

    run.__name__ = f"search_{source}"
    return run


for _source in ("web", "papers", "code"):
    graph.add_node(f"search_{_source}", _searcher(_source))


@graph.node()
async def synthesize(state: dict, ctx) -> dict:
    message = await ctx.llm(writer, [{"role": "user", "content": "; ".join(state["findings"])}])
    brief = message["content"]
    # The brief as a file of its own (`o` in the scrubber opens it; `vigil artifact RUN` prints
    # it), and a note for whoever audits the run later (`m` in the scrubber jumps to it).
    ref = await ctx.artifact(f"# {state.get('topic', 'brief')}\n\n{brief}\n".encode(), "text/markdown")
    ctx.note("brief.written", {"findings": len(state["findings"]), "artifact": ref.artifact_id})
    return {"brief": brief}


graph.add_edge(START, "plan")
for _source in ("web", "papers", "code"):
    graph.add_edge("plan", f"search_{_source}")
graph.add_edge(["search_web", "search_papers", "search_code"], "synthesize")
graph.add_edge("synthesize", END)

SAMPLE_INPUT = {"topic": "event-sourced agent runtimes"}
