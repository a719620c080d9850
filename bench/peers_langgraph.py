"""LangGraph doing the same work, for side-by-side figures (installed by the `bench` extra)."""

from __future__ import annotations

import operator
import sqlite3
from typing import Annotated, TypedDict

from .common import Timer, fresh_db


def _saver(path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    # Same durability as vigil: WAL, synchronous=FULL (LangGraph's best SQLite setting).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return SqliteSaver(conn), conn


class _S(TypedDict, total=False):
    x: int
    a: int
    b: int
    c: int


class Log(TypedDict, total=False):
    i: int
    log: Annotated[list, operator.add]


def chain_steps_per_s(runs: int) -> float:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(_S)
    g.add_node("a", lambda s: {"a": s["x"] + 1})
    g.add_node("b", lambda s: {"b": s["a"] + 1})
    g.add_node("c", lambda s: {"c": s["b"] + 1})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    saver, conn = _saver(fresh_db("lg-chain.db"))
    app = g.compile(checkpointer=saver)
    with Timer() as t:
        for i in range(runs):
            app.invoke({"x": i}, {"configurable": {"thread_id": f"t{i}"}}, durability="sync")
    conn.close()
    return runs * 3 / t.seconds


def interrupt_round_trips_per_s(runs: int) -> float:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    def ask(state):
        answer = interrupt({"question": "ok?", "x": state["x"]})
        return {"a": answer}

    g = StateGraph(_S)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    saver, conn = _saver(fresh_db("lg-interrupt.db"))
    app = g.compile(checkpointer=saver)
    with Timer() as t:
        for i in range(runs):
            config = {"configurable": {"thread_id": f"t{i}"}}
            app.invoke({"x": i}, config, durability="sync")
            app.invoke(Command(resume=1), config, durability="sync")
    conn.close()
    return runs / t.seconds


def bytes_per_step(steps: int) -> float:
    """A 1,000-step thread: one node looping, appending a message-sized entry each step."""
    from langgraph.graph import END, START, StateGraph

    def step(s):
        return {"i": s.get("i", 0) + 1, "log": [f"step {s.get('i', 0)}: checked the order and found it shipped"]}

    g = StateGraph(Log)
    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: END if s["i"] >= steps else "step", ["step", END])
    path = fresh_db("lg-bytes.db")
    saver, conn = _saver(path)
    app = g.compile(checkpointer=saver)
    app.invoke({"i": 0}, {"configurable": {"thread_id": "long"}, "recursion_limit": steps + 10}, durability="sync")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = conn.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0] if _has_dbstat(conn) else path.stat().st_size
    conn.close()
    return size / steps


def _has_dbstat(conn) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1")
        return True
    except sqlite3.Error:
        return False


def version() -> str:
    from importlib.metadata import version as v

    return f"langgraph {v('langgraph')}, langgraph-checkpoint-sqlite {v('langgraph-checkpoint-sqlite')}"
