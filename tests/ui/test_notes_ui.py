"""The scrubber and notes: `m`/`M` jump to the next/previous Note, `w` shows only notes (again:
everything), `e` only failures; the help lists the keys."""

from __future__ import annotations

import asyncio

from conftest import NOW, T0
from console.app import VigilApp
from console.screens.help import HelpScreen
from console.screens.runs import RunsScreen
from console.screens.scrubber import ScrubberScreen
from console.widgets.runlist import RunList
from console.widgets.timeline import Timeline
from console.workflows import default_registry
from kernel.events import (
    ErrorInfo,
    Note,
    Patch,
    RunCompleted,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from kernel.store import Store
from ui_helpers import screen_text, until

LIMIT = ErrorInfo(code="http_429", category="rate_limit", retryable=True, message="slow down")
EVENTS = [
    RunStarted(graph="support", input={}, start_at=("work",)),                       # 1
    StepStarted(step_id="1.work", node="work"),                                      # 2
    Note(note_id="1.work#0", step_id="1.work", name="order.checked", payload={"order": "A-1"}),  # 3
    StepFailed(step_id="1.work", node="work", attempt=1, error="ModelError: 429", error_info=LIMIT),  # 4
    StepStarted(step_id="1.work", node="work", attempt=2),                           # 5
    Note(note_id="1.work#1@2", step_id="1.work", name="refund.decided", payload={"amount": 89}),  # 6
    Note(note_id="1.work#2@2", step_id="1.work", name="customer.told", payload={"via": "mail"}),  # 7
    StepCompleted(step_id="1.work", node="work", update=(Patch("set", "done", True),), next=()),  # 8
    RunCompleted(output={"done": True}),                                             # 9
]


async def _build(path) -> None:
    async with await Store.open(path) as store:
        for i, event in enumerate(EVENTS):
            await store.append("run-notes", [event], expected_seq=i, ts_ns=T0 + i * 10**9)


def test_the_scrubber_jumps_to_notes_and_filters_to_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "notes.db"
    asyncio.run(_build(db))

    async def go():
        app = VigilApp(db, default_registry(), theme="vigil-dark", now=lambda: NOW, adopt=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == 1)
            app.open_scrubber("run-notes")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and bool(app.screen.query(Timeline))
                        and app.screen.query_one(Timeline).count == 9)
            t = app.screen.query_one(Timeline)

            def at() -> int:
                return t.seq_at(t.cursor)

            await until(pilot, lambda: at() == 9)
            await pilot.press("g")
            await until(pilot, lambda: at() == 1)
            await pilot.press("m")
            await until(pilot, lambda: at() == 3)
            doc = app.screen.query_one("#doc")  # the detail: a DocView (lines as shown)
            await until(pilot, lambda: any("order.checked" in line for line in doc.lines))
            await pilot.press("m")
            await until(pilot, lambda: at() == 6)
            await pilot.press("M")
            await until(pilot, lambda: at() == 3)

            await pilot.press("w")  # notes only
            await until(pilot, lambda: t.types == ("Note",) and t.count == 3)
            assert at() == 3
            await until(pilot, lambda: "seq 3 · 1 of 3 shown · notes only" in screen_text(app))
            await pilot.press("right")
            await until(pilot, lambda: at() == 6)
            await until(pilot, lambda: "seq 6 · 2 of 3 shown · notes only" in screen_text(app))
            await pilot.press("right")
            await until(pilot, lambda: at() == 7)
            await pilot.press("w")  # again: every event, the cursor where it was
            await until(pilot, lambda: t.types is None and t.count == 9)
            await until(pilot, lambda: at() == 7)

            await pilot.press("e")  # failures only: the rate-limited attempt
            await until(pilot, lambda: t.types is not None and "StepFailed" in t.types and t.count == 1)
            await until(pilot, lambda: at() == 4)
            await until(pilot, lambda: any("rate_limit" in line for line in doc.lines))
            await until(pilot, lambda: "seq 4 · 1 of 1 shown · errors only" in screen_text(app))
            await pilot.press("e")
            await until(pilot, lambda: t.types is None and t.count == 9)

            # `t` cycles through the type filters, notes among them: steps, actions, interrupts, notes
            for _ in range(4):
                await pilot.press("t")
            await until(pilot, lambda: t.types == ("Note",) and t.count == 3)
            await until(pilot, lambda: "notes only" in screen_text(app))
            await pilot.press("t")  # then failures
            await until(pilot, lambda: t.types is not None and "StepFailed" in t.types)
            await pilot.press("t")  # and every event again
            await until(pilot, lambda: t.types is None and t.count == 9)

            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause(0.2)
            text = screen_text(app)
            for words in ("next note", "prev note", "notes only", "errors only", "scrubber.notes"):
                assert words in text, words

    asyncio.run(go())


def test_the_runs_list_shows_a_failed_runs_category(tmp_path, monkeypatch):
    from kernel.events import RunFailed

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "failed.db"

    async def build():
        async with await Store.open(db) as store:
            await store.append("run-limited", [RunStarted(graph="support", input={}, start_at=("work",)),
                                               RunFailed(error="node work failed", error_info=LIMIT)],
                               expected_seq=0, ts_ns=T0)

    asyncio.run(build())

    async def go(size, status):
        app = VigilApp(db, default_registry(), theme="vigil-dark", now=lambda: NOW, adopt=False)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == 1)
            await until(pilot, lambda: "run-limited" in screen_text(app))
            lines = screen_text(app).splitlines()
            header = next(line for line in lines if "STATUS" in line)
            row = next(line for line in lines if "run-limited" in line)
            # the category is in the STATUS cell, under its title, and the OWNER cell is the owner's
            at = header.index("STATUS")
            assert row[at:].startswith(status), (header, row)
            assert row[header.index("OWNER"):].split()[0] == "-", (header, row)
            assert len(row.rstrip()) <= size[0]

    asyncio.run(go((80, 24), "✗ rate_limit "))  # narrow: the ✗ (and the colour) say failed
    asyncio.run(go((200, 50), "✗ failed (rate_limit) "))


def _bar(app) -> str:
    return next(line for line in screen_text(app).splitlines() if line.strip().startswith("run "))


async def _open(pilot, app, run_id: str, count: int):
    app.open_scrubber(run_id)
    await until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and bool(app.screen.query(Timeline))
                and app.screen.query_one(Timeline).count == count)
    t = app.screen.query_one(Timeline)
    await until(pilot, lambda: t.seq_at(t.cursor) == count)
    doc = app.screen.query_one("#doc")
    await until(pilot, lambda: any("── event ──" in line for line in doc.lines))
    return t, doc


def test_a_filter_that_matches_nothing_says_so_and_a_long_bar_ends_in_an_ellipsis(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "plain.db"

    async def build():
        async with await Store.open(db) as store:
            await store.append("run-plain", [
                RunStarted(graph="support-ticket-triage-with-a-long-name", input={}, start_at=("work",)),
                StepStarted(step_id="1.work", node="work"),
                StepCompleted(step_id="1.work", node="work", update=(Patch("set", "done", True),), next=()),
                RunCompleted(output={"done": True}),
            ], expected_seq=0, ts_ns=T0)

    asyncio.run(build())

    async def go():
        app = VigilApp(db, default_registry(), theme="vigil-dark", now=lambda: NOW, adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == 1)
            t, doc = await _open(pilot, app, "run-plain", 4)
            await pilot.press("w")
            await until(pilot, lambda: t.types == ("Note",) and t.count == 0)
            await until(pilot, lambda: doc.lines == ["no notes in this run"])
            await until(pilot, lambda: "no notes in this run" in screen_text(app))
            assert "RunCompleted" not in "\n".join(doc.lines)
            assert "seq 4" not in screen_text(app)  # no hash line left from the event before
            await pilot.press("e")
            await until(pilot, lambda: t.types is not None and "StepFailed" in t.types)
            await until(pilot, lambda: doc.lines == ["no errors in this run"])
            await pilot.press("e")  # every event again, on the event it was on before the filters
            await until(pilot, lambda: t.types is None and t.count == 4 and t.seq_at(t.cursor) == 4)
            await until(pilot, lambda: any('"type": "RunCompleted"' in line for line in doc.lines))
            await pilot.press("e")
            await until(pilot, lambda: doc.lines == ["no errors in this run"])
            await pilot.press("colon", "2", "enter")  # a seq the filter leaves out: every event again
            await until(pilot, lambda: t.types is None and t.count == 4 and t.seq_at(t.cursor) == 2)
            await until(pilot, lambda: any('"type": "StepStarted"' in line for line in doc.lines))
            await pilot.press("t")  # steps: a header too long for 80 columns is cut visibly
            await until(pilot, lambda: t.types is not None and "StepStarted" in t.types and t.count == 2)
            await until(pilot, lambda: "· steps only" in str(app.screen.query_one("#bar").render()))
            bar = _bar(app).rstrip()
            assert bar.startswith(" run run-plain · support-ticket") and bar.endswith("…"), bar

    asyncio.run(go())


def test_a_filtered_view_of_a_live_run_shows_new_matching_events(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "live.db"
    head = EVENTS[:7]  # still running: three notes so far, the last event one of them

    async def build():
        async with await Store.open(db) as store:
            await store.append("run-notes", head, expected_seq=0, ts_ns=T0)
            await store.append("run-quiet", [RunStarted(graph="support", input={}, start_at=("work",)),
                                             StepStarted(step_id="1.work", node="work")],
                               expected_seq=0, ts_ns=T0)

    asyncio.run(build())

    async def go():
        app = VigilApp(db, default_registry(), theme="vigil-dark", now=lambda: NOW, adopt=False)
        async with app.run_test(size=(120, 40)) as pilot, await Store.open(db) as writer:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == 2)
            t, doc = await _open(pilot, app, "run-notes", 7)
            await pilot.press("w")
            await until(pilot, lambda: t.types == ("Note",) and t.count == 3 and t.seq_at(t.cursor) == 7)
            await writer.append("run-notes", [
                Note(note_id="1.work#3@2", step_id="1.work", name="ticket.closed", payload={}),  # 8
                StepCompleted(step_id="1.work", node="work", update=(), next=()),             # 9
            ], expected_seq=7)
            # the cursor was on the last note: it follows to the new one
            await until(pilot, lambda: t.count == 4 and t.seq_at(t.cursor) == 8)
            await until(pilot, lambda: any("ticket.closed" in line for line in doc.lines))
            await until(pilot, lambda: "seq 8 · 4 of 4 shown · notes only" in screen_text(app))
            await pilot.press("w")
            await until(pilot, lambda: t.types is None and t.count == 9)

            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            t, doc = await _open(pilot, app, "run-quiet", 2)
            await pilot.press("w")
            await until(pilot, lambda: t.count == 0 and doc.lines == ["no notes in this run"])
            await writer.append("run-quiet", [
                Note(note_id="1.work#0", step_id="1.work", name="first.word", payload={}),
            ], expected_seq=2)
            await until(pilot, lambda: t.count == 1 and t.seq_at(t.cursor) == 3)
            await until(pilot, lambda: any("first.word" in line for line in doc.lines))

    asyncio.run(go())
