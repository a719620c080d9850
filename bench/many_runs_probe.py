"""N concurrent agent runs in this one process against the loopback model server
(bench/openai_stream_server.py), on vigil or on LangGraph. Prints one JSON object.

    python -m bench.many_runs_probe vigil|langgraph|langgraph_lc|client URL N TARGET

TARGET is a SQLite path (or, for vigil, a postgresql:// DSN). The agent: a system prompt and
one user message (langgraph_lc: LangGraph with langchain-openai's ChatOpenAI, as its users write
the agent; the others call the kernel's OpenAIChat); the model (5 turns) calls the `lookup` tool on each of its first 4 turns and
answers on the 5th, so a run is 9 steps: think, act, think, act, ..., think.

Measured (the same way for both):
- wall: from the first start to the last run completing; runs/s = N / wall.
- model time: each call of `complete()` on the model, entry to return (HTTP wait, stream read).
- step overhead: per run, each gap between one model call returning and the next one starting.
  A gap holds exactly two steps (the end of `think`: its result recorded, the step completed; all
  of `act`: started, tool requested, run, recorded, completed) and the start of the next `think`
  (started, the model call requested), so overhead per step = gap / 2. Nothing else happens in a
  gap (the tool returns at once), so it is the runtime's own time per step, queueing for the
  event loop and for commits included.
- RSS per waiting run: the server holds every first-turn reply (/hold) until all N model calls are
  in flight; (RSS then - RSS before the first start) / N; then /release.
"""

from __future__ import annotations

import asyncio
import gc
import json
import operator
import os
import resource
import sys
import time
import urllib.request
from typing import Annotated, Any, Awaitable, Callable, TypedDict

from kernel.agents.models.openai import OpenAIChat

SYSTEM = "You are an order desk agent. Look orders up with the lookup tool, then answer in one line."


def rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def control(url: str, what: str) -> dict:
    with urllib.request.urlopen(f"{url}/{what}", timeout=30) as r:
        return json.loads(r.read())


class BenchModel:
    """The kernel's OpenAI-compatible client, timed per call and keyed by the run's user message."""

    def __init__(self, url: str) -> None:
        self.name = "openai:bench"
        # one client: its connections are kept per origin with no limit on their number
        self._model = OpenAIChat("bench", base_url=f"{url}/v1", key_env=None, timeout=600.0)
        self.calls: dict[str, list[tuple[float, float]]] = {}
        self.inflight = 0

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_token: Any) -> dict[str, Any]:
        key = next(m["content"] for m in messages if m["role"] == "user")
        self.inflight += 1
        t0 = time.perf_counter()
        try:
            return await self._model.complete(messages, tools, on_token)
        finally:
            self.inflight -= 1
            self.calls.setdefault(key, []).append((t0, time.perf_counter()))

    def gaps_ms(self) -> list[float]:
        out = []
        for calls in self.calls.values():
            calls.sort()
            out += [(b[0] - a[1]) * 1000 for a, b in zip(calls, calls[1:])]
        return out


async def lookup(order: str) -> dict:
    """Look up an order by its id."""
    return {"order": order, "item": "blender", "amount": 89.0, "status": "shipped"}


def _user(i: int) -> dict:
    return {"role": "user", "content": f"Where is my order? (customer {i})"}


async def _measure(url: str, n: int, model: BenchModel, start_one, settle, done=lambda: None, tune=None) -> dict:
    """Warm-up run, then N at once: the common protocol for both runtimes. After DEADLINE seconds
    (env BENCH_DEADLINE) the runs still going are left: runs/s is then those completed / DEADLINE,
    so a side too slow for this machine still gives its rate (marked timed_out)."""
    await start_one(-1)
    await settle()
    model.calls.clear()
    gc.collect()
    if tune is not None and os.environ.get("BENCH_VIGIL_GC") != "off":
        tune()  # what the program hosting the runs does once started (`vigil worker`)
    _gc_setting(os.environ.get("BENCH_GC", ""))
    base = rss_now_mb()
    control(url, "hold")
    gc_clock = _GcClock()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(start_one(i) for i in range(n)))
    started_s = time.perf_counter() - t0
    while model.inflight < n:
        await asyncio.sleep(0.02)
        if time.perf_counter() - t0 > 1200:
            raise TimeoutError(f"only {model.inflight} of {n} runs reached the model")
    waiting = rss_now_mb()
    all_waiting_s = time.perf_counter() - t0
    control(url, "release")
    deadline = float(os.environ.get("BENCH_DEADLINE") or 3600)
    base_done = done()
    try:
        await asyncio.wait_for(settle(), max(1.0, deadline - (time.perf_counter() - t0)))
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    collected = gc_clock.stop()
    gaps = sorted(model.gaps_ms())
    pick = lambda p: gaps[min(len(gaps) - 1, int(p / 100 * len(gaps)))] if gaps else float("nan")
    finished = n if not timed_out or base_done is None else done() - base_done
    return dict(n=n, wall_s=wall, runs_per_s=finished / wall, timed_out=timed_out, finished=finished, started_s=started_s, all_waiting_s=all_waiting_s,
                rss_base_mb=base, rss_waiting_mb=waiting, rss_per_run_kb=(waiting - base) * 1024 / n,
                cpu_cores=cpu / wall, gap_p50_ms=pick(50), gap_p99_ms=pick(99),
                step_p50_ms=pick(50) / 2, step_p99_ms=pick(99) / 2,
                model_calls=sum(len(c) for c in model.calls.values()), peak_rss_mb=_peak_mb(), **collected)


def _gc_setting(how: str) -> None:
    """BENCH_GC, to measure the collector's share: "freeze" (what start-up made is never walked
    again), "T0,T1,T2" (thresholds), or both joined by "+"."""
    for part in filter(None, how.split("+")):
        if part == "freeze":
            gc.freeze()
        else:
            gc.set_threshold(*map(int, part.split(",")))


class _GcClock:
    """CPU seconds spent in the garbage collector, per generation, while the runs go on."""

    def __init__(self) -> None:
        self.spent = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.process_time()
        else:
            self.spent[info["generation"]] += time.process_time() - self._t
            self.count[info["generation"]] += 1

    def stop(self) -> dict:
        gc.callbacks.remove(self._hook)
        return dict(gc_s=sum(self.spent), gc_s_by_gen=self.spent, gc_count_by_gen=self.count)


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def vigil(url: str, n: int, target: str) -> dict:
    from kernel.agents.agent import agent_graph
    from kernel.engine.runtime import Runtime
    from kernel.events import RunCompleted
    from kernel.registry import Registry
    from kernel.store import Store
    from kernel.tools import tool

    model = BenchModel(url)
    graph = agent_graph("many", model=model, tools=[tool(idempotent=True)(lookup)], system=SYSTEM)
    registry = Registry()
    registry.add(graph)
    completed = 0
    async with await Store.open(target) as store:
        async with Runtime(store, registry) as rt:
            def heard(what: str, run_id: str, data: Any) -> None:
                nonlocal completed
                if what == "finished" and isinstance(data, RunCompleted):
                    completed += 1

            rt.listen(heard)

            async def start_one(i: int) -> None:
                await rt.start("many", {"messages": [_user(i)]})

            from kernel.gctune import tune_gc_for_runs

            # `vigil worker` and `vigil resume` tune the collector once started; so does this
            # (BENCH_VIGIL_GC=off measures without it)
            out = await _measure(url, n, model, start_one, rt.settle, lambda: completed, tune=tune_gc_for_runs)
        events = await _count_events(store, target)
    out.update(completed=completed - 1, events=events, events_per_s=events / out["wall_s"])
    return out


async def _count_events(store: Any, target: str) -> int:
    """Events in the log (the warm-up run's ~25 included)."""
    if target.startswith("postgresql"):
        import psycopg

        async with await psycopg.AsyncConnection.connect(target) as conn:
            total = (await (await conn.execute("SELECT count(*) FROM vigil.events")).fetchone())[0]
    else:
        import sqlite3

        conn = sqlite3.connect(target)
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
    return total


class _S(TypedDict):
    messages: Annotated[list, operator.add]


async def langgraph(url: str, n: int, target: str) -> dict:
    from langgraph.graph import END, START, StateGraph

    model = BenchModel(url)

    async def think(s: _S) -> dict:
        reply = await model.complete([{"role": "system", "content": SYSTEM}, *s["messages"]], LOOKUP_SPECS, None)
        return {"messages": [{"role": "assistant", "content": reply.get("content", ""), "tool_calls": reply.get("tool_calls", [])}]}

    async def act(s: _S) -> dict:
        calls = s["messages"][-1]["tool_calls"]
        results = await asyncio.gather(*(lookup(**c["arguments"]) for c in calls))
        return {"messages": [{"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": json.dumps(r)}
                             for c, r in zip(calls, results)]}

    g = StateGraph(_S)
    g.add_node("think", think)
    g.add_node("act", act)
    g.add_edge(START, "think")
    g.add_conditional_edges("think", lambda s: "act" if s["messages"][-1].get("tool_calls") else END, ["act", END])
    g.add_edge("act", "think")
    return await _drive_langgraph(g, url, n, target, model)


LOOKUP_SPECS = [{"name": "lookup", "description": "Look up an order by its id.",
                 "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}}]


async def converse(model: Any, i: int) -> None:
    """Run i's conversation with no runtime: the model calls each turn would make, the tool
    results appended as the agent would (the client-only floor)."""
    messages = [_user(i)]
    while True:
        reply = await model.complete([{"role": "system", "content": SYSTEM}, *messages], LOOKUP_SPECS, None)
        messages.append({"role": "assistant", "content": reply["content"], "tool_calls": reply["tool_calls"]})
        if not reply["tool_calls"]:
            return
        for c in reply["tool_calls"]:
            messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"],
                             "content": json.dumps(await lookup(**c["arguments"]))})


def _tracked(one: Callable[[int], Awaitable[None]]):
    """(start_one, settle) for `_measure`: each start a task of its own, settle waits for all."""
    tasks: set[asyncio.Task] = set()

    async def start_one(i: int) -> None:
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def settle() -> None:
        while tasks:
            await asyncio.gather(*list(tasks))

    return start_one, settle


async def _drive_langgraph(g: Any, url: str, n: int, target: str, model: Any) -> dict:
    """Both LangGraph peers: the graph compiled on AsyncSqliteSaver with vigil's durability (WAL,
    synchronous=FULL, each checkpoint saved before the next step), N runs through `_measure`, and
    the checkpoint and write rows counted as its events."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = await aiosqlite.connect(target)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    app = g.compile(checkpointer=AsyncSqliteSaver(conn))
    completed = 0

    async def one(i: int) -> None:
        nonlocal completed
        await app.ainvoke({"messages": [_user(i)]}, {"configurable": {"thread_id": f"t{i}"}}, durability="sync")
        completed += 1

    start_one, settle = _tracked(one)
    out = await _measure(url, n, model, start_one, settle, lambda: completed)
    rows = 0
    for table in ("checkpoints", "writes"):
        rows += (await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone())[0]
    await conn.close()
    out.update(completed=completed - 1, events=rows, events_per_s=rows / out["wall_s"])
    return out


class _Timed:
    """The model-call bookkeeping of BenchModel (calls per run, in flight) around any call."""

    calls: dict[str, list[tuple[float, float]]]
    inflight: int
    gaps_ms = BenchModel.gaps_ms

    def __init__(self) -> None:
        self.calls, self.inflight = {}, 0

    async def timed(self, key: str, call):
        self.inflight += 1
        t0 = time.perf_counter()
        try:
            return await call
        finally:
            self.inflight -= 1
            self.calls.setdefault(key, []).append((t0, time.perf_counter()))


async def langgraph_lc(url: str, n: int, target: str) -> dict:
    """LangGraph as its users write this agent: langchain-openai's ChatOpenAI (streaming,
    bind_tools) on its own client (the openai SDK on httpx), MessagesState, the prebuilt ToolNode
    and tools_condition; the same AsyncSqliteSaver, durability and protocol as `langgraph`. Its
    httpx pool is given no connection limit, as vigil's client has none."""
    import httpx
    from langchain_core.messages import SystemMessage
    from langchain_core.tools import tool as lc_tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    llm = ChatOpenAI(model="bench", base_url=f"{url}/v1", api_key="none", streaming=True, stream_usage=True,
                     http_async_client=httpx.AsyncClient(limits=limits, timeout=600.0))
    tools = [lc_tool(lookup)]
    bound = llm.bind_tools(tools)
    model = _Timed()

    async def think(s: MessagesState) -> dict:
        key = s["messages"][0].content
        reply = await model.timed(key, bound.ainvoke([SystemMessage(SYSTEM), *s["messages"]]))
        return {"messages": [reply]}

    g = StateGraph(MessagesState)
    g.add_node("think", think)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "think")
    g.add_conditional_edges("think", tools_condition)
    g.add_edge("tools", "think")
    return await _drive_langgraph(g, url, n, target, model)


async def client(url: str, n: int, target: str) -> dict:
    """The floor under both runtimes: the same model calls (the conversation each turn would
    send, tool results included) with no runtime and no log, N at once."""
    model = BenchModel(url)
    start_one, settle = _tracked(lambda i: converse(model, i))
    out = await _measure(url, n, model, start_one, settle)
    out.update(completed=n, events=0, events_per_s=0.0)
    return out


async def live(url: str, n: int, target: str, seconds: float) -> None:
    """Keep N long runs live (the server is started with many turns) for the console under load:
    prints "started" once all N are recorded, drives them for `seconds`, then stops."""
    from kernel.agents.agent import agent_graph
    from kernel.engine.runtime import Runtime
    from kernel.gctune import tune_gc_for_runs
    from kernel.live.publish import publishing
    from kernel.registry import Registry
    from kernel.store import Store
    from kernel.tools import tool

    model = BenchModel(url)
    registry = Registry()
    registry.add(agent_graph("many", model=model, tools=[tool(idempotent=True)(lookup)], system=SYSTEM, max_turns=1000))

    # as `vigil worker` does: tokens published for the consoles that watch, the collector tuned
    async with await Store.open(target) as store:
        async with Runtime(store, registry) as rt, publishing(rt, store):
            tune_gc_for_runs()
            await asyncio.gather(*(rt.start("many", {"messages": [_user(i)]}) for i in range(n)))
            print("started", flush=True)
            await asyncio.sleep(seconds)
            cpu = time.process_time()
            print(json.dumps({"driver_cpu_s": cpu, "model_calls": sum(len(c) for c in model.calls.values())}), flush=True)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per live run
    which, url, count, target = sys.argv[1:5]
    if which == "live":
        asyncio.run(live(url, int(count), target, float(sys.argv[5])))
        sys.exit(0)
    fn = {"vigil": vigil, "langgraph": langgraph, "langgraph_lc": langgraph_lc, "client": client}[which]
    out = asyncio.new_event_loop().run_until_complete(fn(url, int(count), target))
    print(json.dumps(out), flush=True)
    # Runs left going by the deadline are not cancelled one by one on the way out: on httpx (the
    # langgraph_lc peer) each cancelled stream's close scans the whole pool, and 10,000 of them
    # took longer than the runs.
    os._exit(0)
