"""A workflow whose tools write to an external ledger file (VIGIL_LEDGER), for the crash tests.
`credit` is idempotent (it checks the ledger for its key); `debit` is not."""

from __future__ import annotations

import asyncio
import os

from kernel.graph import END, START, Graph
from kernel.tools import tool

STEPS = 5


def _ledger() -> str:
    return os.environ["VIGIL_LEDGER"]


def _write(line: str) -> None:
    with open(_ledger(), "a") as f:
        f.write(line + "\n")
        f.flush()


@tool(idempotent=True)
async def credit(account: str, amount: int, idempotency_key: str) -> dict:
    """Credit an account, at most once per key."""
    await asyncio.sleep(0.005)
    if os.path.exists(_ledger()):
        with open(_ledger()) as f:
            if any(line.split(" ", 1)[0] == idempotency_key for line in f):
                return {"credited": amount, "again": True}
    _write(f"{idempotency_key} credit {account} {amount}")
    return {"credited": amount}


@tool()
async def debit(account: str, amount: int, idempotency_key: str) -> dict:
    """Debit an account. Not idempotent: running it twice debits twice."""
    await asyncio.sleep(0.01)
    _write(f"{idempotency_key} debit {account} {amount}")
    await asyncio.sleep(0.01)
    return {"debited": amount}


graph = Graph("ledger", reducers={"done": "append"}, tools=[credit, debit])
for _i in range(1, STEPS + 1):
    async def _step(state, ctx, i=_i):
        await ctx.tool("credit", account=f"acct-{state['n']}", amount=i)
        await ctx.sleep(0.01)
        await ctx.tool("debit", account=f"acct-{state['n']}", amount=i)
        return {"done": i}

    graph.add_node(f"step{_i}", _step)
    graph.add_edge(START if _i == 1 else f"step{_i - 1}", f"step{_i}")
graph.add_edge(f"step{STEPS}", END)

GRAPHS = [graph]


# The agent loop over the same tools: one tool call a turn (the act step's inline path,
# kernel.engine.scopes.inline), alternating credit and debit, then an answer.
from kernel.agents.agent import agent_graph  # noqa: E402
from kernel.agents.models.scripted import ScriptedModel, call, reply  # noqa: E402

AGENT_TURNS = 6


def _agent_script(messages):
    done = sum(1 for m in messages if m["role"] == "tool")
    if done >= AGENT_TURNS:
        return reply("all posted")
    account = messages[1]["content"]
    tool = "credit" if done % 2 == 0 else "debit"
    return call(tool, {"account": account, "amount": done + 1}, text=f"posting {done + 1}", call_id=f"c{done}")


agent = agent_graph("ledger-agent", model=ScriptedModel("ledger", _agent_script, token_delay=0.003),
                    tools=[credit, debit], system="post the ledger", max_turns=AGENT_TURNS + 1)

GRAPHS = [graph, agent]
