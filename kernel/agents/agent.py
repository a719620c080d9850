"""The agent loop as a graph: `think` asks the model, `act` runs the tools it called, until the
model answers without tools or the turn limit. Every model and tool call is a recorded action,
so approvals apply and a replay re-runs nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..engine.scopes import inline
from ..errors import ActionError, ToolError
from ..graph import END, START, Graph, RetryPolicy
from ..tools import Tool

__all__ = ["agent_graph"]


def agent_graph(
    name: str,
    *,
    model: Any,
    tools: list[Tool],
    system: str,
    max_turns: int = 8,
    version: str = "1",
    description: str = "",
) -> Graph:
    graph = Graph(
        name, version, reducers={"messages": "extend"}, tools=list(tools),
        description=description, step_limit=2 * max_turns + 2,
        input_schema={"messages": list[dict[str, Any]]},
    )

    async def think(state: dict, ctx: Any) -> dict:
        history = state.get("messages", [])
        turns = sum(1 for m in history if m["role"] == "assistant")
        if turns >= max_turns:
            note = f"(stopped: the turn limit of {max_turns} was reached)"
            return {"messages": [{"role": "assistant", "content": note, "tool_calls": []}]}
        reply = await ctx.llm(model, [{"role": "system", "content": system}, *history], tools=tools)
        message = {"role": "assistant", "content": reply.get("content", ""), "tool_calls": reply.get("tool_calls", [])}
        usage = state.get("usage") or {"input_tokens": 0, "output_tokens": 0}
        got = reply.get("usage") or {}
        return {
            "messages": [message],
            "usage": {k: usage.get(k, 0) + got.get(k, 0) for k in ("input_tokens", "output_tokens")},
        }

    async def act(state: dict, ctx: Any) -> dict:
        calls = state["messages"][-1].get("tool_calls", [])
        # Each call runs in a task of its own, numbered in creation order (kernel.engine.scopes), so its
        # positions replay the same however the calls interleave; the step ends when all have.
        # The usual turn calls one tool: it runs where its task would, with the same positions,
        # without the task's two turns of the loop (bench/NOTES.md, engine).
        if len(calls) == 1:
            results = [await inline(_run_call(ctx, calls[0]))]
        else:
            results = await asyncio.gather(*(_run_call(ctx, call) for call in calls))
        return {"messages": list(results)}

    def route(state: dict) -> str:
        last = state["messages"][-1]
        return "act" if last.get("tool_calls") else END

    graph.add_node("think", think, retry=RetryPolicy(attempts=3, initial=1.0))
    # A tool error marked retryable (the only kind _run_call re-raises) runs the step again on a
    # durable timer; calls that already succeeded in it replay from the log, never run twice.
    graph.add_node("act", act, retry=RetryPolicy(attempts=3, initial=1.0, retry_on=(ActionError,)))
    graph.add_edge(START, "think")
    graph.add_branch("think", route, ["act", END])
    graph.add_edge("act", "think")
    return graph


async def _run_call(ctx: Any, call: dict) -> dict:
    try:
        output = await ctx.tool(call["name"], **(call.get("arguments") or {}))
        content = json.dumps(output, ensure_ascii=False)
    except (ToolError, ActionError) as exc:
        if getattr(exc, "retryable", False):
            raise  # the node's retry policy runs it again
        content = json.dumps({"error": str(exc)}, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call.get("id", ""), "name": call["name"], "content": content}
