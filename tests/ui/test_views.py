"""What is shown is exactly what is in the log: each seq once in a pane, a runs-list selection
that follows the run (not the row), visible marks, a grid whose keys act on the focused pane,
a runs list that explains itself and ticks, and a feed that survives a SQLite error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import console.app
from conftest import NOW
from console.app import VigilApp
from console.screens.live import LiveScreen
from console.screens.runs import RunsScreen
from console.screens.scrubber import ScrubberScreen
from console.widgets.runlist import RunList
from console.widgets.runpane import RunPane
from kernel.demos import samples
from console.workflows import default_registry
from textual.widgets import Log, Tree
from ui_helpers import screen_text, until


def _app(db, **kw) -> VigilApp:
    kw.setdefault("now", lambda: NOW)
    return VigilApp(db, default_registry(), theme="vigil-dark", adopt=False, **kw)


async def _loaded(pilot, count: int) -> RunList:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == count)
    runs = app.screen.query_one(RunList)
    await until(pilot, lambda: all(runs.item(i) is not None for i in range(count)))
    return runs


def _selected(runs: RunList) -> str | None:
    run = runs.selected()
    return run.run_id if run else None


def _bar(app) -> str:
    return str(app.screen.query_one("#bar").render())


def _seqs(pane: RunPane) -> list[int]:
    return [int(line.split()[0]) for line in pane.query_one(Log).lines if line.strip()]


# each seq once ------------------------------------------------------------------------------


def test_a_pane_opened_on_a_just_started_run_shows_each_seq_once(tmp_path):
    async def go():
        app = _app(tmp_path / "v.db", now=time.time_ns)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            run_id = await app.runtime.start("research", samples()["research"])
            app.open_panes([run_id])  # at once, while its first events are still in the feed
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.query(RunPane)))
            pane = app.screen.query_one(RunPane)
            await app.runtime.settle()
            last = (await app.store.run(run_id)).last_seq
            await until(pilot, lambda: bool(_seqs(pane)) and _seqs(pane)[-1] == last)
            await pilot.pause(0.3)  # a late duplicate would land by now
            assert _seqs(pane) == list(range(1, last + 1))
            steps = len(await app.store.seqs(run_id, ["StepCompleted"]))
            await until(pilot, lambda: f"{steps} steps" in str(pane.query_one("#head").render()))

    asyncio.run(go())


def test_a_pane_on_a_long_run_counts_every_step_not_only_the_tail(tmp_path):
    from kernel.events import Patch, RunStarted, StepCompleted, StepStarted
    from kernel.state import apply, state_hash
    from kernel.store import Store

    async def seed():
        state: dict = {}
        events: list = [RunStarted(graph="chain", input={}, start_at=("n",))]
        for i in range(1, 151):
            update = (Patch("set", "i", i),)
            apply(state, update)
            events += [StepStarted(step_id=f"{i}.n", node="n"),
                       StepCompleted(step_id=f"{i}.n", node="n", update=update, next=("n",), state_hash=state_hash(state))]
        async with await Store.open(tmp_path / "v.db") as store:
            await store.append("run-long", events, expected_seq=0, ts_ns=NOW - 10**9)

    asyncio.run(seed())

    async def go():
        app = _app(tmp_path / "v.db")
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot, 1)
            app.open_panes(["run-long"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.query(RunPane)))
            pane = app.screen.query_one(RunPane)
            await until(pilot, lambda: pane.info is not None and _seqs(pane) and _seqs(pane)[-1] == 301)
            await pilot.pause(0.2)
            assert _seqs(pane) == list(range(102, 302))  # the tail: the last 200
            assert "301 events · 150 steps" in str(pane.query_one("#head").render())

    asyncio.run(go())


# the selection follows the run -------------------------------------------------------------


def test_the_selection_follows_the_run_when_rows_move(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _loaded(pilot, 3)
            await pilot.press("j")
            await until(pilot, lambda: _selected(runs) == "run-support-done")
            await app.runtime.start("research", samples()["research"])  # newest: lands on top
            await until(pilot, lambda: runs.count == 4 and runs.item(0) is not None and runs.item(0)[0].run_id not in (
                "run-deploy-fail", "run-support-done", "run-support-wait"))
            await pilot.pause(0.3)
            assert _selected(runs) == "run-support-done"
            assert runs.cursor == 2
            await pilot.press("o", "o")  # sorted by status: the selection still follows the run
            await until(pilot, lambda: runs.order == "status")
            await until(pilot, lambda: _selected(runs) == "run-support-done")

    asyncio.run(go())


# marks and the grid --------------------------------------------------------------------------


def test_space_marks_the_cursor_row_visibly_and_keeps_the_cursor_on_it(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _loaded(pilot, 3)
            await pilot.press("j", "space")
            await pilot.pause(0.2)
            assert _selected(runs) == "run-support-done"  # the cursor still means the run just marked
            assert app.screen.marked == ["run-support-done"]
            shown = screen_text(app).splitlines()
            row = next(line for line in shown if "run-support-done" in line)
            assert "●" in row
            assert not any("●" in line for line in shown if "run-deploy-fail" in line)
            assert "1 marked" in _bar(app)

    asyncio.run(go())


def test_marks_clear_when_the_grid_closes(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot, 3)
            await pilot.press("space", "j", "space", "g")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 2)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await pilot.pause(0.2)
            assert app.screen.marked == []
            assert "●" not in screen_text(app)
            assert "marked" not in _bar(app)

    asyncio.run(go())


def test_tab_moves_to_the_next_pane_and_s_scrubs_the_focused_one(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot, 3)
            app.open_panes(["run-support-done", "run-deploy-fail"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 2)
            first, second = app.screen.query(RunPane)
            await pilot.pause(0.2)
            assert app.screen.focused is first
            await pilot.press("tab")
            assert app.screen.focused is second  # the pane, whose border shows it
            await pilot.press("tab")
            assert app.screen.focused is first  # round again
            await pilot.press("shift+tab")
            assert app.screen.focused is second
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen))
            assert app.screen.run_id == "run-deploy-fail"
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            await pilot.press("x")  # close the focused pane: the other one stays
            await until(pilot, lambda: len(app.screen.query(RunPane)) == 1)
            assert app.screen.query_one(RunPane).run_id == "run-support-done"

    asyncio.run(go())


def _lit(app) -> list[str]:
    """The runs whose pane shows focus on screen (as painted): a heavy top-left corner."""
    lines = screen_text(app).splitlines()
    return [p.run_id for p in app.screen.query(RunPane) if lines[p.region.y][p.region.x] == "┏"]


async def _three_panes(pilot) -> list[RunPane]:
    """The log's three runs in the live grid, settled, the first pane focused."""
    app = pilot.app
    await _loaded(pilot, 3)
    app.open_panes(["run-support-done", "run-deploy-fail", "run-support-wait"])
    await until(pilot, lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 3)
    await pilot.pause(0.2)
    return list(app.screen.query(RunPane))


def test_the_focused_pane_and_only_it_is_lit(log_db):
    """Focus is shown by the pane's border, whether the pane itself or a widget inside it has it,
    and it follows tab, a click and a trip to the scrubber and back."""

    async def go():
        app = _app(log_db)
        async with app.run_test(size=(120, 40)) as pilot:
            first, second, third = await _three_panes(pilot)
            assert _lit(app) == ["run-support-done"]
            await pilot.press("tab")
            await pilot.pause(0.1)
            assert _lit(app) == ["run-deploy-fail"]
            await pilot.press("tab")
            await pilot.pause(0.1)
            assert _lit(app) == ["run-support-wait"]
            await pilot.click(second.query_one(Log), offset=(2, 1))  # focus inside a pane lights it too
            await pilot.pause(0.1)
            assert app.screen.focused is second.query_one(Log)
            assert _lit(app) == ["run-deploy-fail"]
            await pilot.press("tab")  # from inside a pane, tab goes on to the next pane
            await pilot.pause(0.1)
            assert app.screen.focused is third
            assert _lit(app) == ["run-support-wait"]
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen))
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            await pilot.pause(0.2)
            assert _lit(app) == ["run-support-wait"]
            await pilot.press("x")  # the focused pane closes; the first one takes focus
            await until(pilot, lambda: len(app.screen.query(RunPane)) == 2)
            await pilot.pause(0.2)
            assert _lit(app) == ["run-support-done"]

    asyncio.run(go())


def test_two_tabs_read_together_move_two_panes(log_db):
    """Keys that arrive in one read (a fast typist, a slow SSH link) are handled back to back:
    the second tab must start from the pane the first one chose, not from the old focus."""
    from textual import events

    async def go():
        app = _app(log_db)
        async with app.run_test(size=(120, 40)) as pilot:
            first, second, third = await _three_panes(pilot)
            assert app.screen.focused is first
            app.post_message(events.Key("tab", None))
            app.post_message(events.Key("tab", None))
            await pilot.pause(0.2)
            assert app.screen.focused is third
            assert _lit(app) == ["run-support-wait"]

    asyncio.run(go())


def test_a_read_that_comes_back_to_a_closing_pane_is_dropped(log_db):
    """Textual takes a closing pane's children down before it cancels the pane's workers, so a
    read in flight (a live run's events, its state) can come back to a pane without its parts;
    that must not take the console down (it did, now and then, leaving a grid of live runs)."""

    async def go():
        app = _app(log_db)
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot, 3)
            app.open_panes(["run-support-done"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.query(RunPane)))
            pane = app.screen.query_one(RunPane)
            await until(pilot, lambda: pane.info is not None)
            for child in list(pane.children):  # the pane's parts go first, as when it is closed
                await child.remove()
            pane.shown_seq = 0  # so the catch-up has events to write
            pane.refresh_info()
            pane.load_state()
            pane.catch_up()
            pane.token("1.think#0", "more")
            await pilot.pause(0.3)
            assert pane.shown_seq == 14  # read and taken in, with nowhere to show it
        assert app.return_code in (None, 0)

    asyncio.run(go())


# a runs list that explains itself -----------------------------------------------------------


def test_the_runs_list_has_column_headers_and_explains_the_owner_column(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot, 3)
            await pilot.pause(0.2)
            text = screen_text(app)
            header = next(line for line in text.splitlines() if "STATUS" in line)
            for column in ("RUN", "GRAPH", "AGE", "DUR", "EV", "OWNER"):
                assert column in header
            assert "OWNER: host:pid drives it" in text and "orphaned: owner died" in text

    asyncio.run(go())


def test_ages_tick_without_new_events(log_db):
    clock = [NOW]

    async def go():
        app = _app(log_db, now=lambda: clock[0])
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot, 3)
            await pilot.pause(0.2)
            row = next(line for line in screen_text(app).splitlines() if "run-support-wait" in line)
            assert "1m35s" in row
            clock[0] += 60 * 10**9
            await until(pilot, lambda: "2m35s" in next(
                line for line in screen_text(app).splitlines() if "run-support-wait" in line), timeout=3)

    asyncio.run(go())


def test_one_run_is_one_run(tmp_path):
    async def go():
        app = _app(tmp_path / "v.db")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await app.runtime.start("research", samples()["research"])
            await _loaded(pilot, 1)
            await until(pilot, lambda: "1 run " in _bar(app) + " ")
            assert "1 runs" not in _bar(app)

    asyncio.run(go())


def test_sort_by_status_puts_waiting_and_failed_first(log_db):
    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _loaded(pilot, 3)
            await pilot.press("o", "o")
            await until(pilot, lambda: runs.order == "status")
            await pilot.pause(0.3)
            await until(pilot, lambda: all(runs.item(i) is not None for i in range(3)))
            assert [runs.item(i)[0].status for i in range(3)] == ["waiting", "failed", "completed"]

    asyncio.run(go())


def test_a_waiting_pane_header_and_state_tree_stay_current(tmp_path):
    async def go():
        app = _app(tmp_path / "v.db", now=time.time_ns)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            run_id = await app.runtime.start("support", samples()["support"])
            app.open_panes([run_id])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.query(RunPane)))
            pane = app.screen.query_one(RunPane)
            head = lambda: str(pane.query_one("#head").render())  # noqa: E731
            await until(pilot, lambda: "waiting" in head() and "⚑ 1 waiting" in head())
            tree = pane.query_one(Tree)
            last = (await app.store.run(run_id)).last_seq
            await until(pilot, lambda: str(tree.root.label) == f"state @ {last}")
            pending = (await app.store.interrupts(run_id))[0]
            raised = (await app.store.events(run_id, pending.seq, pending.seq))[0].event
            await app.runtime.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            await app.runtime.settle()
            info = await app.store.run(run_id)
            assert info.status == "completed"
            steps = len(await app.store.seqs(run_id, ["StepCompleted"]))
            await until(pilot, lambda: head().startswith("✓ completed") and "waiting" not in head()
                        and f"{info.last_seq} events" in head() and f"{steps} steps" in head())
            await until(pilot, lambda: str(tree.root.label) == f"state @ {info.last_seq}")
            final = (await app.store.state_at(run_id)).state
            labels = {str(child.label) for child in tree.root.children}
            assert f"messages ({len(final['messages'])})" in labels

    asyncio.run(go())


def test_the_state_tree_shows_text_as_written_and_nested_values_when_opened(tmp_path):
    """A value that looks like markup is shown as written (as markup "[/x]" raised and took the
    console down); a branch's values are there when it is opened."""
    from kernel.events import Patch, RunStarted
    from kernel.store import Store

    async def go():
        db = tmp_path / "s.db"
        async with await Store.open(db) as store:
            await store.append("run-state", [RunStarted(graph="support", update=(
                Patch("set", "note", "see [/x] and [b]this[/b]"),
                Patch("set", "nested", {"a": {"b": 1}, "items": [1, 2]}),
            ))], expected_seq=0)
        app = _app(db)
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot, 1)
            app.open_panes(["run-state"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and bool(app.screen.query(RunPane)))
            tree = app.screen.query_one(RunPane).query_one(Tree)
            await until(pilot, lambda: str(tree.root.label) == "state @ 1")
            top = {str(child.label): child for child in tree.root.children}
            assert "note: see [/x] and [b]this[/b]" in top
            nested = top["nested (2)"]
            nested.expand()
            await pilot.pause(0.1)
            assert [str(c.label) for c in nested.children] == ["a (1)", "items (2)"]
            nested.children[0].expand()
            await pilot.pause(0.1)
            assert [str(c.label) for c in nested.children[0].children] == ["b: 1"]

    asyncio.run(go())


# a feed that survives a SQLite error ---------------------------------------------------------

# Another process takes every WAL lock of the database (what a stuck checkpointer or a crashed
# process holding the shm locks looks like): readers get SQLITE_PROTOCOL ("locking protocol")
# after SQLite's own retries, about 10 s.
_HOLD_WAL_LOCKS = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1] + '-shm', os.O_RDWR)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 120)\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


class _Recording(VigilApp):
    """The real app; it also keeps what the feed delivered, in order."""

    CSS_PATH = str(Path(console.app.__file__).parent / VigilApp.CSS_PATH)

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.delivered: list[tuple[int, str, int]] = []

    def _delivered(self, batch) -> None:
        self.delivered.extend((r.pos, r.run_id, r.seq) for r in batch.records)
        super()._delivered(batch)


def test_the_feed_survives_a_sqlite_error_and_resumes_from_its_last_pos(tmp_path):
    db = tmp_path / "v.db"

    async def go():
        app = _Recording(db, default_registry(), theme="vigil-dark", adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            first = await app.runtime.start("research", samples()["research"])
            await app.runtime.settle()
            last = (await app.store.run(first)).last_seq
            await until(pilot, lambda: len(app.delivered) == last)
            holder = subprocess.Popen([sys.executable, "-c", _HOLD_WAL_LOCKS, str(db)], stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout.readline().strip() == "locked"
                await until(pilot, lambda: "reconnecting" in _bar(app), timeout=30)
            finally:
                holder.kill()
                holder.wait()
            # written while the feed is down: it must pick them up from where it stopped
            second = await app.runtime.start("research", samples()["research"])
            assert "reconnecting" in _bar(app)
            await app.runtime.settle()
            total = last + (await app.store.run(second)).last_seq
            await until(pilot, lambda: len(app.delivered) >= total, timeout=20)
            await until(pilot, lambda: "reconnecting" not in _bar(app))
            await pilot.pause(0.3)
            positions = [p for p, _, _ in app.delivered]
            assert positions == sorted(set(positions)), "a pos delivered twice or out of order"
            for run_id in (first, second):
                seqs = [s for _, r, s in app.delivered if r == run_id]
                assert seqs == list(range(1, len(seqs) + 1)), f"a gap or a duplicate in {run_id}"
            assert len(app.delivered) == total
            # and the list shows both runs
            runs = app.screen.query_one(RunList)
            await until(pilot, lambda: runs.count == 2)

    asyncio.run(go())


def test_the_runs_list_is_not_reloaded_while_hidden_and_is_current_when_back(log_db, monkeypatch):
    """Under the grid (or the scrubber) the runs list is not on screen: new events do not reload
    it (that was up to 20 reads of the log a second for nothing), and going back shows them."""
    from kernel.events import RunStarted
    from kernel.store import Store

    reloads: list[int] = []
    real = RunList.reload

    async def counted(self, *a, **kw):
        reloads.append(1)
        return await real(self, *a, **kw)

    monkeypatch.setattr(RunList, "reload", counted)

    async def go():
        app = _app(log_db)
        async with app.run_test(size=(80, 24)) as pilot, await Store.open(log_db) as writer:
            runs = await _loaded(pilot, 3)
            await pilot.press("space", "g")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            await pilot.pause(0.3)
            before = len(reloads)
            for i in range(5):
                await writer.append(f"new-{i}", [RunStarted(graph="support", input={})], expected_seq=0)
                await pilot.pause(0.15)
            await pilot.pause(0.5)
            hidden = len(reloads) - before
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and runs.count == 8)
            return hidden

    assert asyncio.run(go()) == 0
