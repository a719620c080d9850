"""Runtime cases: a 3-node chain, interrupt + resume round trips and bytes per step, each beside
LangGraph with SqliteSaver at the same durability (WAL, synchronous=FULL, durability="sync")."""

from __future__ import annotations

import asyncio
import sqlite3

from kernel.graph import END, START, Graph
from kernel.registry import Registry
from kernel.engine.runtime import Runtime
from kernel.store import Store

from . import peers_langgraph as lg
from .common import Timer, fresh_db


def _registry() -> Registry:
    reg = Registry()
    chain = Graph("chain")

    async def a(s, ctx):
        return {"a": s["x"] + 1}

    async def b(s, ctx):
        return {"b": s["a"] + 1}

    async def c(s, ctx):
        return {"c": s["b"] + 1}

    for name, fn in (("a", a), ("b", b), ("c", c)):
        chain.add_node(name, fn)
    chain.add_edge(START, "a")
    chain.add_edge("a", "b")
    chain.add_edge("b", "c")
    chain.add_edge("c", END)
    reg.add(chain)

    ask = Graph("ask")

    async def question(s, ctx):
        return {"a": await ctx.interrupt("ok?", {"question": "ok?", "x": s["x"]})}

    ask.add_node("ask", question)
    ask.add_edge(START, "ask")
    ask.add_edge("ask", END)
    reg.add(ask)

    log = Graph("log", reducers={"log": "append"}, step_limit=10_000)

    async def step(s, ctx):
        i = s.get("i", 0)
        return {"i": i + 1, "log": f"step {i}: checked the order and found it shipped"}

    log.add_node("step", step)
    log.add_edge(START, "step")
    log.add_branch("step", lambda s: END if s["i"] >= s["steps"] else "step", ["step", END])
    reg.add(log)
    return reg


async def _chain(runs: int) -> float:
    async with await Store.open(fresh_db("vigil-chain.db")) as store:
        async with Runtime(store, _registry()) as rt:
            with Timer() as t:
                for i in range(runs):
                    await rt.start("chain", {"x": i})
                    await rt.settle()
    return runs * 3 / t.seconds


async def _interrupts(runs: int) -> float:
    async with await Store.open(fresh_db("vigil-ask.db")) as store:
        async with Runtime(store, _registry()) as rt:
            with Timer() as t:
                for i in range(runs):
                    run_id = await rt.start("ask", {"x": i})
                    await rt.settle()
                    raised = rt.drivers[run_id].view.pending_interrupts()[0]
                    await rt.resolve(run_id, raised.interrupt_id, "answer", 1, payload_hash=raised.payload_hash)
                    await rt.settle()
    return runs / t.seconds


async def _bytes(steps: int) -> float:
    path = fresh_db("vigil-bytes.db")
    async with await Store.open(path) as store:
        async with Runtime(store, _registry()) as rt:
            await rt.start("log", {"i": 0, "steps": steps})
            await rt.settle()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = conn.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0]
    conn.close()
    return size / steps


def _dbos(runs: int) -> float:
    import subprocess
    import sys
    from pathlib import Path

    db = fresh_db("dbos.db")
    out = subprocess.run([sys.executable, "-m", "bench.peers_dbos", str(db), str(runs)],
                         cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600)
    return float(out.stdout.strip().splitlines()[-1])


def _dbos_version() -> str:
    from importlib.metadata import version

    return version("dbos")


def runtime(quick: bool) -> list[dict]:
    runs = 200 if quick else 1000
    ours, theirs = asyncio.run(_chain(runs)), lg.chain_steps_per_s(runs)
    rows = [dict(
        case="3-node chain, durable, sequential runs (node steps/s)",
        setup=f"{runs} runs one after another; WAL, synchronous=FULL on both; LangGraph SqliteSaver, durability='sync'",
        vigil=f"{ours:,.0f}/s", peer=f"{theirs:,.0f}/s LangGraph", ratio=ours / theirs,
        goal=">= 5x LangGraph", ok=ours / theirs >= 5,
    )]
    dbos = _dbos(runs // 2)
    rows.append(dict(
        case="3-node chain, durable, sequential runs (node steps/s), against DBOS",
        setup=f"vigil as above; DBOS {_dbos_version()} on SQLite (WAL, synchronous=FULL), {runs // 2} workflows of three steps, in its own process",
        vigil=f"{ours:,.0f}/s", peer=f"{dbos:,.0f}/s DBOS", ratio=ours / dbos,
        goal=">= 10x DBOS", ok=ours / dbos >= 10,
    ))
    ours, theirs = asyncio.run(_interrupts(runs // 2)), lg.interrupt_round_trips_per_s(runs // 2)
    rows.append(dict(
        case="interrupt + resume round trips/s",
        setup=f"{runs // 2} runs: start, stop at the interrupt, resume with an answer, complete; "
              "LangGraph interrupt() + Command(resume=)",
        vigil=f"{ours:,.0f}/s", peer=f"{theirs:,.0f}/s LangGraph", ratio=ours / theirs,
        goal=">= 5x LangGraph", ok=ours / theirs >= 5,
    ))
    ours, theirs = asyncio.run(_bytes(1000)), lg.bytes_per_step(1000)
    rows.append(dict(
        case="bytes per step on a 1,000-step run",
        setup="one node looping 1,000 times, appending a 50-character entry each step; database pages after a checkpoint",
        vigil=f"{ours:,.0f} B", peer=f"{theirs:,.0f} B LangGraph", ratio=ours / theirs,
        goal="<= 0.2x LangGraph", ok=ours / theirs <= 0.2,
    ))
    return rows
