"""Concurrency limits (kernel/limits.py): a graph's max_concurrency caps the nodes of a superstep,
a tool's and a model's cap every run of the process together; what waits is visible in-process
and never in the log; replay takes no slot. Counted in the nodes and tools, never timed.
Model clients, a killed `vigil run` and `vigil graphs`: test_limits_clients.py."""

from __future__ import annotations

import asyncio

import pytest

from kernel.agents.models.openai import OpenAIChat
from kernel.errors import GraphError
from kernel.events import ActionRequested, StepStarted
from kernel.graph import END, START, Graph
from kernel.limits import Limit, describe, waiting
from kernel.registry import Registry
from kernel.tools import tool
from kernel.verify import verify_run
from runtime_helpers import events_of, pending, run, runtime

BRANCHES = [f"b{i}" for i in range(6)]


class Gauge:
    """How many are inside now, the most ever at once, and who got in, in order."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.entered: list[str] = []

    def enter(self, who: str) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.entered.append(who)

    def leave(self) -> None:
        self.now -= 1


async def until(condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


# a graph's max_concurrency --------------------------------------------------------------------


def fanout(gauge: Gauge, gates: dict[str, asyncio.Event], *, limit: int | None = 2) -> Graph:
    """START -> six parallel branches (each records one idempotent tool call) -> a join -> END."""

    @tool(idempotent=True)
    async def work(branch: str) -> str:
        await gates[branch].wait()
        return f"{branch} done"

    g = Graph("fanout", reducers={"done": "append"}, tools=[work], max_concurrency=limit)
    for name in BRANCHES:
        async def branch(state, ctx, name=name):
            gauge.enter(name)
            try:
                return {"done": await ctx.tool("work", branch=name)}
            finally:
                gauge.leave()

        g.add_node(name, branch)
        g.add_edge(START, name)

    async def join(state, ctx):
        return {"joined": sorted(state["done"])}

    g.add_node("join", join)
    g.add_edge(BRANCHES, "join")
    g.add_edge("join", END)
    return g


def test_six_branches_with_max_concurrency_two_never_run_more_than_two(both_backends):
    gauge = Gauge()
    gates = {b: asyncio.Event() for b in BRANCHES}

    async def go():
        async with runtime(both_backends, fanout(gauge, gates)) as (store, rt):
            run_id = await rt.start("fanout")
            await until(lambda: gauge.now == 2 and len(waiting(run_id)) == 4)
            queued = waiting(run_id)
            assert {w.kind for w in queued} == {"node"} and {(w.running, w.limit) for w in queued} == {(2, 2)}
            assert sorted(w.name for w in queued) == sorted(set(BRANCHES) - set(gauge.entered))
            # queued nodes have not started: the log shows only the two that run (once their
            # tool calls are requested, everything before them is committed)
            while sum(isinstance(e, ActionRequested) for e in await events_of(store, run_id)) < 2:
                await asyncio.sleep(0.01)
            started = [e.node for e in await events_of(store, run_id) if isinstance(e, StepStarted)]
            assert sorted(started) == sorted(gauge.entered)
            for gate in gates.values():
                gate.set()
            await rt.settle()
            info = await store.run(run_id)
            state = (await store.state_at(run_id)).state
            assert waiting(run_id) == []
            return info, state

    info, state = run(go())
    assert gauge.peak == 2
    assert sorted(gauge.entered) == BRANCHES
    assert info.status == "completed"
    assert state["joined"] == sorted(f"{b} done" for b in BRANCHES)


def test_without_a_limit_the_same_graph_runs_all_six_at_once(tmp_path):
    # The gauge measures what it claims: unlimited, all six are inside together.
    gauge = Gauge()
    gates = {b: asyncio.Event() for b in BRANCHES}

    async def go():
        async with runtime(tmp_path / "v.db", fanout(gauge, gates, limit=None)) as (store, rt):
            run_id = await rt.start("fanout")
            await until(lambda: gauge.now == 6)
            for gate in gates.values():
                gate.set()
            await rt.settle()
            return await store.run(run_id)

    assert run(go()).status == "completed"
    assert gauge.peak == 6


def test_a_crash_mid_fanout_resumes_under_the_limit_and_replays_what_was_done(both_backends):
    calls: list[str] = []
    gauge = Gauge()

    def graph(gates):
        g = fanout(gauge, gates)
        inner = g.tools[0].fn

        async def counted(branch: str) -> str:
            calls.append(branch)
            return await inner(branch)

        g.tools[0].fn = counted
        return g

    async def crash():
        gates = {b: asyncio.Event() for b in BRANCHES}
        async with runtime(both_backends, graph(gates)) as (store, rt):
            run_id = await rt.start("fanout")
            await until(lambda: gauge.now == 2)
            first = list(gauge.entered)
            for b in first:
                gates[b].set()  # two finish
            await until(lambda: len(gauge.entered) == 4 and gauge.now == 2)
            while sum(isinstance(e, ActionRequested) for e in await events_of(store, run_id)) < 4:
                await asyncio.sleep(0.01)
            types = [type(e).__name__ for e in await events_of(store, run_id)]
            # the process dies with two branches mid-tool and two still queued
            return run_id, first, gauge.entered[2:], types

    run_id, done_first, in_flight, types = run(crash())
    assert waiting(run_id) == []  # the two queued nodes were cancelled out of the line
    assert types.count("StepStarted") == 4 and types.count("StepCompleted") == 2
    gauge.now, gauge.peak, gauge.entered = 0, 0, []

    async def resume():
        gates = {b: asyncio.Event() for b in BRANCHES}
        for gate in gates.values():
            gate.set()
        async with runtime(both_backends, graph(gates)) as (store, rt):
            await rt.resume()
            await rt.settle()
            return await store.run(run_id), await events_of(store, run_id), (await store.state_at(run_id)).state, \
                (await verify_run(store, run_id)).problems

    info, events, state, problems = run(resume())
    assert info.status == "completed" and problems == []
    assert gauge.peak <= 2  # the resumed superstep is under the limit too
    assert sorted(gauge.entered) == sorted(set(BRANCHES) - set(done_first))  # completed ones replayed
    for b in done_first:
        assert calls.count(b) == 1, "a completed branch's tool ran again"
    for b in in_flight:
        assert calls.count(b) == 2  # idempotent: re-run after the crash, as without a limit
    for b in set(BRANCHES) - set(done_first) - set(in_flight):
        assert calls.count(b) == 1
    assert state["joined"] == sorted(f"{b} done" for b in BRANCHES)
    requested = [e.action_id for e in events if isinstance(e, ActionRequested)]
    assert len(requested) == len(set(requested)) == 6  # one action per branch, at the same positions


def test_max_concurrency_must_be_at_least_one():
    g = Graph("bad", max_concurrency=0)
    g.add_node("a", _noop)
    g.add_edge(START, "a")
    g.add_edge("a", END)
    with pytest.raises(GraphError, match="max_concurrency"):
        Registry().add(g)
    with pytest.raises(ValueError, match="max_concurrency"):
        tool(max_concurrency=0)(_lookup)
    with pytest.raises(ValueError, match="max_concurrency"):
        Limit(True)
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIChat("m", base_url="http://127.0.0.1:9/v1", max_concurrency=0)


async def _noop(state, ctx):
    return None


async def _lookup(q: str) -> str:
    return q


def test_a_node_waiting_to_retry_holds_no_slot(tmp_path):
    """max_concurrency=1: `flaky` fails first and waits half a second to retry; `other` runs in
    that wait (it would run only after flaky's retry if the wait held the slot)."""
    from kernel.graph import RetryPolicy

    entered: list[str] = []

    async def flaky(state, ctx):
        entered.append("flaky")
        if entered.count("flaky") == 1:
            raise RuntimeError("first attempt fails")
        return {"saw_other": "other" in entered}

    async def other(state, ctx):
        entered.append("other")
        return {"other": True}

    g = Graph("retrying", max_concurrency=1)
    g.add_node("flaky", flaky, retry=RetryPolicy(attempts=2, backoff="fixed", initial=0.5, jitter=False))
    g.add_node("other", other)
    for name in ("flaky", "other"):
        g.add_edge(START, name)
        g.add_edge(name, END)

    async def go():
        async with runtime(tmp_path / "v.db", g) as (store, rt):
            run_id = await rt.start("retrying")
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state, await events_of(store, run_id)

    info, state, events = run(go())
    assert info.status == "completed" and state["saw_other"] is True
    assert entered == ["flaky", "other", "flaky"]
    assert [(e.node, e.attempt) for e in events if isinstance(e, StepStarted)] == [
        ("flaky", 1), ("other", 1), ("flaky", 2)]


# a tool's limit, shared by every run of the process ------------------------------------------


def lookup_graph(gauge: Gauge, gate: asyncio.Event | dict[str, asyncio.Event], limit: int = 1) -> Graph:
    """One run asks search_web once; the call is held until `gate` opens (or, given one gate per
    query, its own)."""

    @tool(max_concurrency=limit)
    async def search_web(q: str) -> str:
        gauge.enter(q)
        try:
            await (gate[q] if isinstance(gate, dict) else gate).wait()
            return f"found {q}"
        finally:
            gauge.leave()

    async def ask(state, ctx):
        return {"answer": await ctx.tool("search_web", q=state["q"])}

    g = Graph("lookup", tools=[search_web])
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g


def test_a_tool_limit_of_one_is_shared_by_five_concurrent_runs(both_backends):
    gauge = Gauge()
    gate = asyncio.Event()

    async def go():
        async with runtime(both_backends, lookup_graph(gauge, gate)) as (store, rt):
            run_ids = [await rt.start("lookup", {"q": f"q{i}"}) for i in range(5)]
            await until(lambda: gauge.now == 1 and len(waiting()) == 4)
            queued = waiting()
            assert {(w.kind, w.name, w.running, w.limit) for w in queued} == {("tool", "search_web", 1, 1)}
            assert describe(queued) == "queued: search_web ×4 (1 running, limit 1)"
            # a queued call is not requested yet: a crash now would leave nothing in doubt
            requested = [
                rid for rid in run_ids
                if any(isinstance(e, ActionRequested) for e in await events_of(store, rid))
            ]
            assert len(requested) == 1
            gate.set()
            await rt.settle()
            return [await store.run(rid) for rid in run_ids]

    infos = run(go())
    assert gauge.peak == 1
    assert sorted(gauge.entered) == [f"q{i}" for i in range(5)]
    assert [i.status for i in infos] == ["completed"] * 5


def test_a_replayed_call_takes_no_slot(both_backends):
    """The tool's one slot is held elsewhere while the run replays its recorded call: the run
    completes anyway, because a replay returns the record and never waits in line."""
    ran: list[str] = []

    @tool(max_concurrency=1)
    async def fetch(url: str) -> str:
        ran.append(url)
        return "page"

    async def work(state, ctx):
        page = await ctx.tool("fetch", url="https://example.org")
        ok = await ctx.interrupt("publish?")
        return {"page": page, "ok": ok}

    g = Graph("fetcher", tools=[fetch])
    g.add_node("work", work)
    g.add_edge(START, "work")
    g.add_edge("work", END)

    async def go():
        async with runtime(both_backends, g) as (store, rt):
            run_id = await rt.start("fetcher")
            await rt.settle()
            (raised,) = pending(rt, run_id)
            async with fetch.limit.hold("someone-else", "tool", "fetch"):
                await rt.resolve(run_id, raised.interrupt_id, "answer", True, payload_hash=raised.payload_hash)
                await rt.settle()
                return await store.run(run_id)

    assert run(go()).status == "completed"
    assert ran == ["https://example.org"]


# the console's live pane ------------------------------------------------------------------


def test_the_live_pane_shows_what_is_queued_while_a_limit_is_held(tmp_path):
    import time

    from console.app import VigilApp
    from console.screens.live import LiveScreen
    from console.screens.runs import RunsScreen
    from console.widgets.runpane import RunPane
    from ui.ui_helpers import screen_text
    from ui.ui_helpers import until as ui_until

    gauge = Gauge()
    gate = asyncio.Event()
    registry = Registry()
    registry.add(lookup_graph(gauge, gate))

    async def go():
        app = VigilApp(tmp_path / "v.db", registry, theme="vigil-dark", adopt=False, now=time.time_ns)
        async with app.run_test(size=(120, 30)) as pilot:
            await ui_until(pilot, lambda: isinstance(app.screen, RunsScreen))
            first = await app.runtime.start("lookup", {"q": "first"})
            await ui_until(pilot, lambda: gauge.now == 1)  # `first` holds the tool's one slot
            second = await app.runtime.start("lookup", {"q": "second"})
            app.open_panes([first, second])
            await ui_until(pilot, lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 2)
            panes = {p.run_id: p for p in app.screen.query(RunPane)}
            line = lambda rid: str(panes[rid].query_one("#queue").render())  # noqa: E731
            await ui_until(pilot, lambda: "queued: search_web (1 running, limit 1)" in line(second))
            await ui_until(pilot, lambda: "queued: search_web (1 running, limit 1)" in screen_text(app))
            assert line(first) == "" and not panes[first].query_one("#queue").display
            gate.set()
            await app.runtime.settle()
            await ui_until(pilot, lambda: line(second) == "" and "queued" not in screen_text(app))
            assert [(await app.store.run(r)).status for r in (first, second)] == ["completed"] * 2

    run(go())
