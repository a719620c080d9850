"""Pause stops a run at its next step boundary (the step under way finishes), unpause lets it go
on; both are events with their actor, applied by the owner wherever the command comes from.
Taking a run over is an event too."""

import asyncio
import json
import signal

from kernel.events import RunAdopted, RunPaused, RunResumed, StepCompleted, StepStarted
from kernel.graph import END, START, Graph
from runtime_helpers import events_of, run, runtime
from test_worker import _env, _events, _info, _run, _until, _worker


def steps_graph(n: int = 5, pause: float = 0.15) -> Graph:
    g = Graph("steps", reducers={"done": "append"})
    for i in range(1, n + 1):
        async def step(state, ctx, i=i):
            await asyncio.sleep(pause)
            return {"done": i}

        g.add_node(f"s{i}", step)
        g.add_edge(START if i == 1 else f"s{i - 1}", f"s{i}")
    g.add_edge(f"s{n}", END)
    return g


def test_pause_stops_at_the_step_boundary_and_unpause_goes_on(db):
    async def go():
        async with runtime(db, steps_graph()) as (store, rt):
            run_id = await rt.start("steps")
            await asyncio.sleep(0.2)  # inside the second step
            await rt.pause(run_id, "looks wrong")
            await rt.settle()
            paused = await store.run(run_id)
            await asyncio.sleep(0.4)  # nothing moves while paused
            still = await events_of(store, run_id)
            await rt.unpause(run_id)
            await rt.settle()
            return paused, still, await store.run(run_id), await events_of(store, run_id)

    paused, still, done, events = run(go())
    assert paused.status == "paused"
    at = next(i for i, e in enumerate(still) if isinstance(e, RunPaused))
    assert still[at].reason == "looks wrong" and still[at].actor is not None
    after = still[at + 1:]
    assert [type(e) for e in after] == [StepCompleted], "the step under way finishes, none starts"
    assert done.status == "completed"
    resumed = next(e for e in events if isinstance(e, RunResumed))
    assert resumed.actor is not None
    assert not any(isinstance(e, StepStarted) for e in events[at + 1:events.index(resumed)])


def test_pause_and_unpause_from_another_process_through_the_worker(tmp_path):
    env = _env(tmp_path / "vigil.db", tmp_path / "ledger.txt")
    worker = _worker(env)
    try:
        run_id = _run(env, "run", "slow", "--queue").stdout.split()[1]
        _until(lambda: any(e["type"] == "StepCompleted" for e in _events(env, run_id)))
        out = _run(env, "pause", run_id, "--reason", "checking")
        assert out.returncode == 0 and "applied by its owner" in out.stdout, out.stderr
        _until(lambda: _info(env, run_id)["status"] == "paused")
        assert _run(env, "pause", run_id).returncode == 2  # already paused: one line, exit 2
        before = len(_events(env, run_id))
        _until(lambda: _events(env, run_id)[-1]["type"] == "StepCompleted")
        settled = len(_events(env, run_id))
        asyncio.run(asyncio.sleep(1.0))
        assert len(_events(env, run_id)) == settled >= before
        out = _run(env, "unpause", run_id)
        assert out.returncode == 0 and "applied by its owner" in out.stdout, out.stderr
        _until(lambda: _info(env, run_id)["status"] == "completed")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    events = _events(env, run_id)
    types = [e["type"] for e in events]
    assert types.count("RunPaused") == 1 and types.count("RunResumed") == 1
    adopted = [e for e in events if e["type"] == "RunAdopted"]
    assert len(adopted) == 1 and adopted[0]["previous"] is None  # a queued run, picked up


def test_a_paused_run_nobody_drives_is_unpaused_for_a_worker(tmp_path):
    env = _env(tmp_path / "vigil.db", tmp_path / "ledger.txt")
    run_id = _run(env, "run", "slow", "--queue").stdout.split()[1]
    out = _run(env, "pause", run_id)
    assert out.returncode == 0 and "applied here" in out.stdout, out.stderr
    assert _info(env, run_id)["status"] == "paused" and _info(env, run_id)["owner"] is None
    worker = _worker(env)
    try:
        asyncio.run(asyncio.sleep(0.8))
        assert _info(env, run_id)["status"] == "paused"  # a worker leaves a paused run alone
        out = _run(env, "unpause", run_id)
        assert out.returncode == 0, out.stderr
        _until(lambda: _info(env, run_id)["status"] == "completed")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)


def test_adopting_an_orphan_records_who_took_it_over(db):
    g = steps_graph(3, 0.3)

    async def first():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("steps")
            await asyncio.sleep(0.1)
            return run_id, rt.owner

    run_id, first_owner = run(first())  # closing releases: the next process adopts a free run

    async def second():
        async with runtime(db, g) as (store, rt):
            await rt.resume()
            await rt.settle()
            return await events_of(store, run_id), rt.owner

    events, second_owner = run(second())
    adopted = [e for e in events if isinstance(e, RunAdopted)]
    assert [a.owner for a in adopted] == [second_owner]
