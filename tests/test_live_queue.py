"""Queue lines cross processes (kernel/live): what of a run waits for a concurrency slot lives in
its owner's memory, never in the log, and reaches the consoles of other processes over the live
channel (unix socket on SQLite, NOTIFY on PostgreSQL); a viewer whose owner stops repeating it
forgets it."""

from __future__ import annotations

import asyncio
import os
import time

from kernel.events import ActionRequested
from kernel.live.feed import LiveFeed
from kernel.live.publish import publishing
from kernel.live.wire import Queue
from runtime_helpers import events_of, run, runtime
from test_limits import Gauge, lookup_graph
from test_livechan import HERE, ROOT, _cli, _stop, _worker

LINE = "queued: search_web (1 running, limit 1)"


async def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_runs_queue_line_reaches_a_feed_and_goes_when_the_slot_comes(both_backends):
    gauge = Gauge()
    gates = {"first": asyncio.Event(), "second": asyncio.Event()}
    got: list[Queue] = []

    async def go():
        async with runtime(both_backends, lookup_graph(gauge, gates)) as (store, rt):
            async with publishing(rt, store) as publisher:
                assert publisher is not None
                first = await rt.start("lookup", {"q": "first"})
                await _until(lambda: gauge.now == 1)
                second = await rt.start("lookup", {"q": "second"})
                # skip_owner=None: this test's feed watches runs its own process drives
                feed = LiveFeed(store, lambda delta: None, on_queue=got.append, skip_owner=None)
                feed.want({first, second})
                task = asyncio.create_task(feed.run())
                try:
                    await _until(lambda: any(q.run == second and q.text == LINE for q in got))
                    assert not any(q.run == first and q.text for q in got)  # it holds the slot
                    gates["first"].set()
                    await _until(lambda: gauge.entered == ["first", "second"])  # `second` got the slot
                    await _until(lambda: got[-1].run == second and got[-1].text == "")
                    gates["second"].set()
                    await rt.settle()
                finally:
                    task.cancel()
                return [e for e in await events_of(store, second)]

    events = run(go())
    assert sum(isinstance(e, ActionRequested) for e in events) == 1
    assert all("queued" not in repr(e) for e in events)  # never in the log


def test_a_console_shows_the_queue_line_of_a_run_a_worker_drives(tmp_path):
    from console.app import VigilApp
    from console.widgets.runpane import RunPane
    from kernel.registry import Registry

    db, gate = tmp_path / "v.db", tmp_path / "gate"
    env = {**os.environ, "VIGIL_DB": str(db), "VIGIL_WORKFLOWS": "live_workflows",
           "VIGIL_TEST_GATE": str(gate), "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    worker = _worker(env)
    try:
        out = _cli(env, "run", "limited", "--queue")
        assert out.returncode == 0, out.stderr
        run_id = out.stdout.split()[1]

        async def go():
            app = VigilApp(db, Registry(), adopt=False)  # the graph is not even known here
            async with app.run_test(size=(120, 30)) as pilot:
                app.open_panes([run_id])
                deadline = time.monotonic() + 30
                while not app.screen.query(RunPane) or "queued: hold (1 running, limit 1)" not in str(
                        app.screen.query_one(RunPane).query_one("#queue").render()):
                    assert time.monotonic() < deadline, "no queue line"
                    await pilot.pause(0.05)
                line = str(app.screen.query_one(RunPane).query_one("#queue").render())
                gate.touch()
                pane = app.screen.query_one(RunPane)
                while not (pane.info is not None and pane.info.status == "completed"
                           and str(pane.query_one("#queue").render()) == ""):
                    assert time.monotonic() < deadline, "the queue line stayed"
                    await pilot.pause(0.05)
                return line

        assert asyncio.run(go()) == "⧗ queued: hold (1 running, limit 1)"
    finally:
        gate.touch()
        out = _stop(worker)
    assert "Traceback" not in out, out
