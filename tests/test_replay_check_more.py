"""`vigil replay`, continued: child runs, pauses and cancels, restarts that reorder siblings,
retry timers, code that is not deterministic, failed effects, notes, and the CLI (exit codes,
--json, --all streaming with progress). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from cli_helpers import vigil
from kernel.engine.replaycheck import replay_all, replay_run
from kernel.events import ActionRequested, InterruptRaised, StepCompleted
from kernel.graph import END, START, Graph
from kernel.store import Store
from kernel.tools import tool
from replay_helpers import record, replay, seq_of, shop, status_of
from runtime_helpers import events_of, pending, registry, run, runtime

def family(started: list) -> tuple[Graph, Graph]:
    @tool()
    async def double(n: int) -> int:
        started.append(n)
        return 2 * n

    async def work(state, ctx):
        return {"n": await ctx.tool("double", n=state["n"])}

    kid = Graph("kid", tools=[double])
    kid.add_node("work", work)
    kid.add_edge(START, "work")
    kid.add_edge("work", END)

    async def ask_kid(state, ctx):
        return {"got": await ctx.child("kid", {"n": 21})}

    parent = Graph("parent")
    parent.add_node("ask_kid", ask_kid)
    parent.add_edge(START, "ask_kid")
    parent.add_edge("ask_kid", END)
    return parent, kid


def test_a_parent_replays_its_child_runs_outcome_without_starting_it(both_backends):
    db = both_backends
    started: list = []
    parent, kid = family(started)

    async def go():
        async with runtime(db, parent, kid) as (store, rt):
            run_id = await rt.start("parent")
            for _ in range(500):
                await rt.settle()
                if (await store.run(run_id)).status == "completed":
                    break
                await asyncio.sleep(0.01)
            return run_id, (await store.state_at(run_id)).state

    run_id, state = run(go())
    assert state["got"] == {"n": 42} and started == [21]

    async def check():
        async with await Store.open(db, readonly=True) as store:
            verdicts = [v async for v in replay_all(store, registry(*family(started)))]
            return verdicts, await store.count_runs()

    verdicts, runs = run(check())
    assert [v.status for v in verdicts] == ["ok", "ok"] and runs == 2
    assert started == [21], "replay ran the child's tool"


def test_a_paused_then_cancelled_run_replays_ok(both_backends, tmp_path):
    db = both_backends
    run_id = record(db, shop(out=tmp_path), approve=False)

    async def steer():
        async with runtime(db, shop(out=tmp_path)) as (store, rt):
            await rt.pause(run_id, "lunch")
            await rt.unpause(run_id, drive=False)
            await rt.cancel(run_id, "changed my mind")
            return (await store.run(run_id)).status

    assert run(steer()) == "cancelled"
    verdict = replay(db, shop(out=tmp_path), run_id)
    assert verdict.ok and not verdict.in_flight, verdict


def test_siblings_completed_in_another_order_after_a_restart_replay_ok(both_backends):
    """A slow branch's effect was in flight when its process stopped; after the restart its
    sibling (approved meanwhile) completed first. The replay completes them in that order."""
    db = both_backends

    def fan(gate: asyncio.Event) -> Graph:
        @tool(idempotent=True)
        async def slow(n: int) -> int:
            await gate.wait()
            return n

        @tool(requires_approval=True)
        async def risky(n: int) -> int:
            return n

        async def a(state, ctx):
            return {"log": await ctx.tool("slow", n=1)}

        async def b(state, ctx):
            return {"log": await ctx.tool("risky", n=2)}

        g = Graph("fan", tools=[slow, risky], reducers={"log": "append"})
        g.add_node("a", a)
        g.add_node("b", b)
        g.add_edge(START, "a")
        g.add_edge(START, "b")
        g.add_edge("a", END)
        g.add_edge("b", END)
        return g

    async def first():
        async with runtime(db, fan(asyncio.Event())) as (store, rt):
            run_id = await rt.start("fan")
            while len([e for e in await events_of(store, run_id)
                       if isinstance(e, (ActionRequested, InterruptRaised))]) < 2:
                await asyncio.sleep(0.01)
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            return run_id  # stops with a's effect in flight and b approved, not yet re-run

    run_id = run(first())

    async def second():
        gate = asyncio.Event()
        async with runtime(db, fan(gate)) as (store, rt):
            await rt.resume()
            while not [e for e in await events_of(store, run_id) if isinstance(e, StepCompleted)]:
                await asyncio.sleep(0.01)
            gate.set()
            await rt.settle()
            return [e.step_id for e in await events_of(store, run_id) if isinstance(e, StepCompleted)]

    assert run(second()) == ["1.b", "1.a"]
    verdict = replay(db, fan(asyncio.Event()), run_id)
    assert verdict.ok, verdict


def test_a_run_waiting_for_a_retry_hours_away_replays_without_waiting(both_backends):
    db = both_backends
    from kernel.graph import RetryPolicy

    def patient() -> Graph:
        async def work(state, ctx):
            await ctx.now()
            raise ValueError("not yet")

        g = Graph("patient")
        g.add_node("work", work, retry=RetryPolicy(attempts=3, backoff="fixed", initial=3600, jitter=False))
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    async def go():
        async with runtime(db, patient()) as (store, rt):
            run_id = await rt.start("patient")
            while "StepFailed" not in [type(e).__name__ for e in await events_of(store, run_id)]:
                await asyncio.sleep(0.01)
            return run_id  # the process stops while the run sleeps until its retry

    run_id = run(go())

    async def check():
        async with await Store.open(db, readonly=True) as store:
            # A guard against a hang, not a timing assertion: the retry is an hour away.
            return await asyncio.wait_for(replay_run(store, registry(patient()), run_id), 120)

    verdict = run(check())
    assert verdict.ok and verdict.in_flight, verdict


def test_code_that_is_not_deterministic_is_caught_by_the_engines_own_matcher(both_backends):
    """A node that calls with other arguments when it runs again (after the decision) matches
    its recording the first time; the engine's own matcher (effects.py `expect`) names it."""
    db = both_backends

    def checkout(amounts) -> Graph:
        @tool()
        async def pay(amount: int) -> dict:
            return {"paid": amount}

        async def buy(state, ctx):
            await ctx.tool("pay", amount=next(amounts))
            return {"ok": await ctx.interrupt("receipt?")}

        g = Graph("checkout", tools=[pay])
        g.add_node("buy", buy)
        g.add_edge(START, "buy")
        g.add_edge("buy", END)
        return g

    run_id = record(db, checkout(iter([5, 5])))
    assert status_of(db, run_id) == "completed"
    verdict = replay(db, checkout(iter([5, 6])), run_id)
    call = seq_of(db, run_id, lambda e: isinstance(e, ActionRequested) and e.action_id == "1.buy#0")
    assert verdict.status == "diverged" and verdict.seq == call, verdict
    assert verdict.reason.startswith('1.buy#0: the log has tool pay {"amount":5}, the code now calls tool pay {"amount":6}')


def test_a_failed_tool_call_replays_its_recorded_error(both_backends):
    db = both_backends
    tries: list = []

    def fragile() -> Graph:
        @tool()
        async def fetch(url: str) -> str:
            tries.append(url)
            raise ConnectionError(f"{url} is down")

        async def work(state, ctx):
            try:
                return {"page": await ctx.tool("fetch", url="http://example.invalid")}
            except Exception as exc:  # the node goes on with what the error said
                return {"page": f"unavailable: {exc}"}

        g = Graph("fragile", tools=[fetch])
        g.add_node("work", work)
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    run_id = record(db, fragile())
    assert status_of(db, run_id) == "completed" and len(tries) == 1
    verdict = replay(db, fragile(), run_id)
    assert verdict.ok, verdict
    assert len(tries) == 1, "replay ran the tool"


def test_a_changed_note_diverges_at_the_recorded_note(both_backends):
    """Any event a step appends is the code's to make again, a kind added later (ctx.note) too."""
    import pytest

    import kernel.events

    if not hasattr(kernel.events, "Note"):
        pytest.skip("ctx.note comes with the notes branch")
    db = both_backends

    def noted(amount: int) -> Graph:
        async def work(state, ctx):
            ctx.note("decided", {"amount": amount})
            return {"amount": amount}

        g = Graph("noted")
        g.add_node("work", work)
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    run_id = record(db, noted(5))
    assert replay(db, noted(5), run_id).ok
    verdict = replay(db, noted(6), run_id)
    note = seq_of(db, run_id, lambda e: type(e).__name__ == "Note")
    assert verdict.status == "diverged" and verdict.seq == note, verdict
    assert '{"amount":5}' in verdict.reason and '{"amount":6}' in verdict.reason

def test_artifacts_replay_ok_and_changed_artifact_bytes_diverge(both_backends):
    """A tool output big enough to be offloaded and a ctx.artifact: the replay gets the real
    output back from the artifact (the state hash after the step covers it) and stores nothing."""
    db = both_backends

    def reporting(text: str) -> Graph:
        @tool()
        async def fetch() -> str:
            return "row\n" * 40_000  # 160 KB: over the 64 KiB threshold, offloaded

        async def work(state, ctx):
            out = await ctx.tool("fetch")
            ref = await ctx.artifact(text.encode(), "text/plain")
            return {"lines": out.count("\n"), "report": ref.artifact_id}

        g = Graph("reporting", tools=[fetch])
        g.add_node("work", work)
        g.add_edge(START, "work")
        g.add_edge("work", END)
        return g

    run_id = record(db, reporting("v1"))
    assert replay(db, reporting("v1"), run_id).ok
    verdict = replay(db, reporting("v2"), run_id)
    stored = seq_of(db, run_id, lambda e: type(e).__name__ == "ArtifactStored" and e.kind == "text/plain")
    assert verdict.status == "diverged" and verdict.seq == stored, verdict


# the CLI ---------------------------------------------------------------------------------------

FLOWS = '''
from kernel.graph import END, START, Graph
from kernel.tools import tool

@tool()
async def pay(amount: int) -> dict:
    return {{"paid": amount}}

async def buy(state, ctx):
    return {{"paid": await ctx.tool("pay", amount={amount})}}

g = Graph("cli_shop", tools=[pay])
g.add_node("buy", buy)
g.add_edge(START, "buy")
g.add_edge("buy", END)
GRAPHS = [g]
'''


def test_the_cli_says_ok_diverged_or_bad_input_by_exit_code(both_backends, tmp_path):
    db = both_backends
    v1, v2 = tmp_path / "flows_v1.py", tmp_path / "flows_v2.py"
    v1.write_text(FLOWS.format(amount=5))
    v2.write_text(FLOWS.format(amount=9))
    ok = vigil("run", "cli_shop", "--headless", "--workflows", str(v1), db=db)
    assert ok.returncode == 0, ok.stderr
    run_id = run(_only_run(db))

    same = vigil("replay", "--all", "--workflows", str(v1), db=db)
    assert same.returncode == 0, same.stderr
    assert same.stdout.decode().split() == [run_id, "OK"]

    changed = vigil("replay", run_id[:8], "--workflows", str(v2), db=db)
    assert changed.returncode == 1
    assert changed.stdout.decode().startswith(f"{run_id}  DIVERGED at seq 3: 1.buy#0: the log has tool pay")

    js = vigil("replay", "--all", "--json", "--workflows", str(v2), db=db)
    assert js.returncode == 1 and b'"status":"diverged","seq":3' in js.stdout

    for bad in (("replay",), ("replay", run_id, "--all"), ("replay", "nosuchrun", "--workflows", str(v1)),
                ("replay", run_id)):  # the last: its graph is not registered without --workflows
        out = vigil(*bad, db=db)
        assert out.returncode == 2, (bad, out.stderr)
        assert out.stderr.decode().count("\n") == 1 and b"Traceback" not in out.stderr, out.stderr


async def _only_run(db) -> str:
    async with await Store.open(db, readonly=True) as store:
        (info,) = await store.runs()
        return info.run_id


def test_replay_all_streams_runs_with_progress_on_stderr(both_backends, tmp_path):
    db = both_backends
    flows = tmp_path / "flows_v1.py"
    flows.write_text(FLOWS.format(amount=5))
    from kernel.registry import Registry

    reg = Registry()
    reg.load(str(flows))

    async def queue():
        from kernel.engine.runtime import Runtime

        async with await Store.open(db) as store:
            async with Runtime(store, reg) as rt:
                for _ in range(120):  # queued, never driven: in flight at their first event
                    await rt.enqueue("cli_shop")

    run(queue())
    out = vigil("replay", "--all", "--workflows", str(flows), db=db)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 120 and all(line.endswith("OK (in flight: replayed up to seq 1)") for line in lines)
    err = out.stderr.decode().splitlines()
    assert err == ["replay: 100/120 runs", "replayed 120 runs: 120 ok, 0 diverged"]


def test_a_replay_takes_no_slot_of_a_tools_process_wide_limit(both_backends):
    """Nothing runs in a replay, so it must not wait for (or hold) a slot of a tool's limit that
    runs driven in the same process share: it used to queue behind them."""
    db = both_backends

    def limited() -> Graph:
        @tool(max_concurrency=1)
        async def pay(amount: int) -> dict:
            return {"paid": amount}

        async def buy(state, ctx):
            return {"paid": await ctx.tool("pay", amount=5)}

        g = Graph("limited", tools=[pay])
        g.add_node("buy", buy)
        g.add_edge(START, "buy")
        g.add_edge("buy", END)
        return g, pay

    graph, pay = limited()
    run_id = record(db, graph)

    async def go():
        async with pay.limit.hold("another-run", "tool", "pay"):  # a live run holds the one slot
            async with await Store.open(db, readonly=True) as store:
                return await asyncio.wait_for(replay_run(store, registry(graph), run_id), 30)

    assert run(go()).ok
