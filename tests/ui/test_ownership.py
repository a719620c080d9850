"""A console never takes runs over silently, asks before quitting with runs it drives, and can
hand a new run to a worker; only runs it can steer count as waiting for you."""

from __future__ import annotations

import asyncio

from console.app import VigilApp
from console.screens.quitting import QuitScreen
from console.screens.runs import RunsScreen
from kernel.events import RunCancelled
from console.workflows import default_registry
from kernel.engine.runtime import Runtime
from kernel.store import Store

from ui_helpers import until

TRIAGE = {"alert": "disk full on db-1"}


async def _orphan(db) -> str:
    """A triage run left waiting with no owner (its process closed and released it)."""
    async with await Store.open(db) as store:
        async with Runtime(store, default_registry()) as rt:
            run_id = await rt.start("triage", TRIAGE)
            await rt.settle()
    return run_id


async def _owner(db, run_id: str):
    async with await Store.open(db, readonly=True) as store:
        return (await store.run(run_id)).owner


def test_opening_a_console_offers_orphans_and_adopts_only_when_asked(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        run_id = await _orphan(db)
        app = VigilApp(db, default_registry())
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.orphaned == [run_id])
            await pilot.pause(0.3)
            assert await _owner(db, run_id) is None, "the console adopted a run without asking"
            assert any("orphaned" in n.title for n in app._notifications)
            await pilot.press("ctrl+p")
            await pilot.press(*"Adopt orphaned")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: run_id in app.runtime.drivers)
            assert await _owner(db, run_id) == app.runtime.owner
            assert app.orphaned == []

    asyncio.run(go())


def test_quitting_with_runs_asks_and_cancel_cancels_them(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        app = VigilApp(db, default_registry())
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            run_id = await app.runtime.start("triage", TRIAGE)
            await app.runtime.settle()
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("escape")  # stay
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            assert app.is_running
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("c")
            await until(pilot, lambda: not app.is_running)
        async with await Store.open(db, readonly=True) as store:
            last = (await store.events(run_id))[-1].event
            return await store.run(run_id), last

    info, last = asyncio.run(go())
    assert info.status == "cancelled" and isinstance(last, RunCancelled) and last.actor is not None


def test_quitting_and_handing_runs_to_a_worker_releases_them(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        app = VigilApp(db, default_registry())
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            run_id = await app.runtime.start("triage", TRIAGE)
            await app.runtime.settle()
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("w")
            await until(pilot, lambda: not app.is_running)
        return run_id

    run_id = asyncio.run(go())
    assert asyncio.run(_owner(db, run_id)) is None


def test_the_new_run_form_can_queue_a_run_for_a_worker(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        app = VigilApp(db, default_registry())
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await pilot.press("n")
            await pilot.pause(0.3)
            await pilot.press("ctrl+w")
            await until(pilot, lambda: any("queued for a worker" in n.message for n in app._notifications))
            runs = await app.store.runs()
            assert len(runs) == 1 and runs[0].owner is None and not app.runtime.drivers
            await pilot.press("escape")
            await pilot.press("q")  # drives nothing: quits without asking
            await until(pilot, lambda: not app.is_running)

    asyncio.run(go())


def test_only_runs_this_console_can_steer_count_as_waiting_for_you(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        run_id = await _orphan(db)
        app = VigilApp(db, default_registry())
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(app.pending) == 1)
        # the same log, opened by a console without the triage graph registered
        from kernel.registry import Registry

        other = VigilApp(db, Registry())
        async with other.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(other.pending_elsewhere) == 1)
            assert other.pending == []
        return run_id

    asyncio.run(go())


def test_questions_arriving_together_are_one_notice(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        app = VigilApp(db, default_registry(), adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            for _ in range(3):
                await app.runtime.start("triage", TRIAGE)
            await until(pilot, lambda: len(app.pending) == 3)
            await pilot.pause(1.5)
            notices = [n for n in app._notifications if n.title == "waiting for you"]
            assert len(notices) == 1 and notices[0].message.startswith("3 new: "), [n.message for n in notices]

    asyncio.run(go())


def test_p_pauses_and_unpauses_the_selected_run(tmp_path):
    from kernel.registry import Registry
    from test_pause import steps_graph

    db = tmp_path / "v.db"
    registry = Registry()
    registry.add(steps_graph(6, 0.2))

    async def go():
        app = VigilApp(db, registry)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            run_id = await app.runtime.start("steps")
            await pilot.pause(0.3)
            await pilot.press("P")
            await until(pilot, lambda: any("paused" in n.message for n in app._notifications))
            assert (await app.store.run(run_id)).status == "paused"
            await app.runtime.settle()
            events = len(await app.store.events(run_id))
            await pilot.pause(0.6)
            assert len(await app.store.events(run_id)) == events  # nothing moves
            await pilot.press("P")
            await until(pilot, lambda: any("unpaused" in n.message for n in app._notifications))
            await app.runtime.settle()
            assert (await app.store.run(run_id)).status == "completed"

            queued = await app.runtime.enqueue("steps")  # nobody drives it
            await until(pilot, lambda: app.screen.query_one("RunList").count == 2)
            await pilot.press("home")  # the newest; the cursor stays on its run when rows move
            await until(pilot, lambda: app.screen.query_one("RunList").selected() is not None
                        and app.screen.query_one("RunList").selected().run_id == queued)
            await pilot.press("P")
            await until(pilot, lambda: sum("paused" in n.message for n in app._notifications) >= 3)
            info = await app.store.run(queued)
            assert info.status == "paused" and info.owner is None  # paused, not adopted

    asyncio.run(go())
