"""Every screen pinned as SVG at 80x24 and 120x40, in the dark and the light theme, on a
deterministic log (fixed ids and clock, UTC, no blinking cursor)."""

from __future__ import annotations

import time

import pytest

from console.screens.live import LiveScreen
from console.screens.prompt import PromptScreen
from console.screens.runs import RunsScreen
from console.screens.scrubber import ScrubberScreen
from console.widgets.runlist import RunList
from console.widgets.runpane import RunPane
from console.widgets.timeline import Timeline
from ui_helpers import until

SIZES = [(80, 24), (120, 40)]
THEMES = ["vigil-dark", "vigil-light"]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


async def _runs_loaded(pilot):
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == 3
                and app.screen.query_one(RunList).item(2) is not None)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_runs(snap_compare, make_app, size, theme):
    assert snap_compare(make_app(theme), terminal_size=size, run_before=_runs_loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_prompt(snap_compare, make_app, size, theme):
    async def before(pilot):
        await _runs_loaded(pilot)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(pilot.app.screen, PromptScreen))
        await until(pilot, lambda: pilot.app.screen.context_text is not None)  # read in a worker
        await pilot.pause(0.2)

    assert snap_compare(make_app(theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_scrubber(snap_compare, make_app, size, theme):
    async def before(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_scrubber("run-support-done")
        await until(pilot, lambda: isinstance(pilot.app.screen, ScrubberScreen) and bool(pilot.app.screen.query(Timeline)))
        t = pilot.app.screen.timeline
        await until(pilot, lambda: t.count == 14 and t.item(t.cursor) is not None)
        await pilot.press("left_square_bracket")  # the last completed step: hash, diff, state
        await until(pilot, lambda: t.cursor == 12 and "verifies" in str(pilot.app.screen.query_one("#hash").render()))
        await pilot.pause(0.2)

    assert snap_compare(make_app(theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_live_grid(snap_compare, make_app, size, theme):
    async def before(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_panes(["run-support-done", "run-deploy-fail"])
        await until(pilot, lambda: isinstance(pilot.app.screen, LiveScreen) and len(pilot.app.screen.query(RunPane)) == 2)
        panes = list(pilot.app.screen.query(RunPane))
        await until(pilot, lambda: all(p.info is not None for p in panes))
        await pilot.pause(0.8)  # the state trees load on their half-second tick

    assert snap_compare(make_app(theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_new_run(snap_compare, make_app, size, theme):
    from console.screens.newrun import NewRunScreen

    async def before(pilot):
        await _runs_loaded(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen))
        await pilot.pause(0.3)

    assert snap_compare(make_app(theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_runs_marked(snap_compare, make_app, size, theme):
    """Two runs marked for a grid (the mark column), the cursor still on the second one marked."""

    async def before(pilot):
        await _runs_loaded(pilot)
        await pilot.press("space", "j", "space")
        await pilot.pause(0.2)

    assert snap_compare(make_app(theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("theme", THEMES)
def test_live_grid_second_pane_focused(snap_compare, make_app, theme):
    """After tab the second pane has the lit border: s and x act on it."""

    async def before(pilot):
        await _runs_loaded(pilot)
        pilot.app.open_panes(["run-support-done", "run-deploy-fail"])
        await until(pilot, lambda: isinstance(pilot.app.screen, LiveScreen) and len(pilot.app.screen.query(RunPane)) == 2)
        panes = list(pilot.app.screen.query(RunPane))
        await until(pilot, lambda: all(p.info is not None for p in panes))
        await pilot.press("tab")
        await pilot.pause(0.8)

    assert snap_compare(make_app(theme), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("theme", THEMES)
def test_help(snap_compare, make_app, theme):
    from console.screens.help import HelpScreen

    async def before(pilot):
        await _runs_loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause(0.2)

    assert snap_compare(make_app(theme), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("theme", THEMES)
def test_confirm_cancel(snap_compare, make_app, theme):
    from console.screens.confirm import ConfirmScreen

    async def before(pilot):
        await _runs_loaded(pilot)
        await pilot.press("end")  # the oldest run: run-support-wait
        await until(pilot, lambda: pilot.app.screen.query_one(RunList).selected().run_id == "run-support-wait")
        await pilot.press("C")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        await pilot.pause(0.2)

    assert snap_compare(make_app(theme), terminal_size=(80, 24), run_before=before)
