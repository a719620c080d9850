"""Help and configuration (issue 10): vigil's own help screen built from the real bindings, the
footer at 80 columns, settings files that are broken or name unknown things, `--version`, the
palette screenshot, the empty-log hint, theme contrast, and cancelling a run from the console."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from textual.color import Color
from textual.theme import Theme
from textual.widgets._footer import FooterKey

from console.app import VigilApp
from console.screens.live import LiveScreen
from console.screens.prompt import PromptScreen
from console.screens.runs import RunsScreen
from console.screens.scrubber import ScrubberScreen
from console.widgets.runlist import RunList
from kernel.events import RunCancelled
from console.workflows import default_registry
from conftest import NOW
from ui_helpers import until

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, monkeypatch, **files: str) -> Path:
    cfg = tmp_path / "cfg"
    (cfg / "vigil").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (cfg / "vigil" / f"{name}.toml").write_text(text)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    return cfg / "vigil"


async def _runs_ready(pilot, count: int = 3) -> RunList:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count == count)
    runs = app.screen.query_one(RunList)
    if count:
        await until(pilot, lambda: runs.item(count - 1) is not None)
    return runs


def _warnings(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "warning"]


# help ----------------------------------------------------------------------------------------


def test_question_mark_opens_vigils_help_for_the_screen_and_the_prompt(make_app):
    from console.screens.help import HelpScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            help_screen = app.screen
            text = help_screen.text()
            # every key of the runs screen, the list, the app and the prompt, with its id
            for cls in (RunsScreen, PromptScreen, VigilApp, RunList):
                for binding in cls.BINDINGS:
                    assert binding.id in text, binding.id
                    assert binding.description in text
            assert "Scroll Left" not in text and "scroll_left" not in text
            # grouped by area: this screen first, then the prompt, then everywhere
            assert text.index("runs") < text.index("approval prompt") < text.index("everywhere")
            # it scrolls at 80x24
            body = help_screen.query_one("#help-body")
            assert body.max_scroll_y > 0
            # a held-down j: five presses before the next frame scroll five lines, not one
            for _ in range(5):
                help_screen.action_scroll(1)
            await pilot.pause(0.1)
            assert body.scroll_y == 5
            await pilot.press("end")
            await until(pilot, lambda: body.scroll_y == body.max_scroll_y)
            for key in ("question_mark", "escape", "q"):
                await pilot.press(key)
                await until(pilot, lambda: isinstance(app.screen, RunsScreen))
                if key != "q":
                    await pilot.press("question_mark")
                    await until(pilot, lambda: isinstance(app.screen, HelpScreen))

    asyncio.run(go())


def test_help_on_the_scrubber_lists_the_scrubbers_keys(make_app):
    from console.screens.help import HelpScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            app.open_scrubber("run-support-done")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and app.focused is not None
                        and app.focused.id == "timeline")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = app.screen.text()
            for binding in ScrubberScreen.BINDINGS:
                assert binding.id in text
            assert "runs.open" not in text  # another screen's keys are not this screen's
            # every description ends before the id column, so no id runs into its description
            shown = [line for rows in app.screen.query(".help-rows") for line in str(rows.render()).splitlines()]
            ids = {b.id for b in ScrubberScreen.BINDINGS}
            for line in shown:
                keys_and_what, _, binding_id = line.rpartition(" ")
                assert len(keys_and_what) == 40 and keys_and_what.endswith("  "), line
            notes = next(line for line in shown if line.endswith("scrubber.notes"))
            assert notes.split() == ["w", "notes", "only", "scrubber.notes"], notes
            assert ids <= {line.rpartition(" ")[2] for line in shown}
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen))

    asyncio.run(go())


def test_help_opens_on_the_prompt_too(make_app):
    from console.screens.help import HelpScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert "prompt.approve" in app.screen.text()
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))

    asyncio.run(go())


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
@pytest.mark.parametrize("key,modal", [("question_mark", "HelpScreen"), ("i", "PromptScreen"), ("n", "NewRunScreen")])
def test_notices_do_not_cover_a_modal(make_app, size, key, modal):
    """Toasts are drawn on the top screen: at 80x24 two of them covered half the help's keys and
    the prompt's approve keys (found running `vigil demo` in tmux; the prompt is what "press i"
    opens, while that notice is up). Over a modal they wait; those still live show again when it
    closes."""

    def covered(app) -> list[tuple[int, int, str]]:
        panel = next(w for w in app.screen.children if w.id not in ("textual-toastrack", "textual-tooltip"))
        out = []
        for y in range(panel.region.y, panel.region.bottom):
            for x in range(panel.region.x, panel.region.right):
                widget, _ = app.screen.get_widget_at(x, y)
                if widget is not panel and panel not in widget.ancestors:
                    out.append((x, y, type(widget).__name__))
        return out

    async def go():
        app = make_app()
        # run_test leaves notices out unless asked: no test saw a toast over a screen before this
        async with app.run_test(size=size, notifications=True) as pilot:
            await _runs_ready(pilot)
            app.notify("demo runs started: press i when something waits for you", timeout=30)
            app.notify("2 new: Which environment is affected?; refund needs your approval · press i",
                       title="waiting for you", timeout=30)
            await until(pilot, lambda: len(app.screen.query("Toast")) == 2)
            await pilot.press(key)
            await until(pilot, lambda: type(app.screen).__name__ == modal)
            await pilot.pause(0.2)
            assert covered(app) == []
            app.notify("a notice while the modal is open", severity="warning", timeout=30)
            await pilot.pause(0.3)
            assert covered(app) == []
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await until(pilot, lambda: len([t for t in app.screen.query("Toast") if t.visible]) == 3)

    asyncio.run(go())


def test_help_shows_remapped_keys(make_app, tmp_path, monkeypatch):
    from console.screens.help import HelpScreen

    _config(tmp_path, monkeypatch, keys='"runs.scrub" = "z"\n"app.help" = "f1"\n')

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("f1")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            line = next(x for x in app.screen.text().splitlines() if "runs.scrub" in x)
            assert re.match(r"\s*z\s", line), line
            line = next(x for x in app.screen.text().splitlines() if "app.help" in x)
            assert line.split()[0] == "f1", line

    asyncio.run(go())


def test_every_binding_id_is_in_the_readme():
    from console.screens.help import known_bindings

    readme = (ROOT / "README.md").read_text()
    missing = [i for i in known_bindings() if f"`{i}`" not in readme]
    assert not missing, missing


def test_footer_hints_fit_at_80_columns(make_app):
    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            async def check():
                await until(pilot, lambda: len(app.screen.query(FooterKey)) > 0)  # drawn (slow under load)
                await pilot.pause(0.3)
                keys = list(app.screen.query(FooterKey))
                assert keys
                palette = [k for k in keys if k.has_class("-command-palette")]
                edge = palette[0].region.x if palette else 80
                for k in keys:
                    if k in palette:
                        assert k.region.right <= 80
                    else:
                        assert k.region.right <= edge, f"{type(app.screen).__name__}: {k.description!r} is cut"

            await _runs_ready(pilot)
            await check()
            app.open_panes(["run-support-done"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            await check()
            await pilot.press("q")
            app.open_scrubber("run-support-done")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen))
            await check()

    asyncio.run(go())


def test_the_footer_keeps_its_keys_across_panes_and_follows_a_remap(make_app):
    """Tab in the grid changes nothing the footer shows, so its keys stay as they are (Textual's
    footer built them all again on every focus change); a remap is shown at once."""

    def shown(app) -> list[tuple[str, str]]:
        return [(k.key, k.description) for k in app.screen.query(FooterKey)]

    async def go():
        app = make_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await _runs_ready(pilot)
            app.open_panes(["run-support-done", "run-deploy-fail"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(FooterKey)) > 0)
            await pilot.pause(0.3)
            keys = list(app.screen.query(FooterKey))
            before = shown(app)
            assert ("s", "scrubber") in before and ("tab", "next pane") in before
            for _ in range(3):
                await pilot.press("tab")
                await pilot.pause(0.1)
            assert shown(app) == before
            assert all(a is b for a, b in zip(app.screen.query(FooterKey), keys, strict=True))
            app.update_keymap({"live.scrub": "S"})
            await until(pilot, lambda: ("S", "scrubber") in shown(app))
            assert ("s", "scrubber") not in shown(app)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await until(pilot, lambda: ("n", "new run") in shown(app))  # the runs screen's own keys
            assert ("tab", "next pane") not in shown(app)

    asyncio.run(go())


# settings that are broken or name unknown things -----------------------------------------------


@pytest.mark.parametrize("files, expect", [
    ({"keys": '"runs.scrub" = = "z"\n'}, "keys.toml"),
    ({"config": 'theme = "vigil-light\n'}, "config.toml"),
    ({"keys": '"runs.nope" = "z"\n'}, "runs.nope"),
    ({"keys": '"runs.scrub" = 5\n'}, "runs.scrub"),
    ({"config": 'theme = "solarized-nope"\n'}, "solarized-nope"),
], ids=["malformed-keys", "malformed-config", "unknown-id", "not-a-key", "unknown-theme"])
def test_bad_settings_give_a_notice_and_fall_back(make_app, tmp_path, monkeypatch, files, expect):
    _config(tmp_path, monkeypatch, **files)

    async def go():
        app = make_app(theme=None)
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await until(pilot, lambda: any(expect in m for m in _warnings(app)))
            assert app.theme == "vigil-dark"
            await pilot.press("s")  # the default keys still work
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen))

    asyncio.run(go())


def test_a_malformed_file_names_its_line(make_app, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, keys='"runs.scrub" = "z"\n\n"runs.grid" = = "x"\n')

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await until(pilot, lambda: any("line 3" in m for m in _warnings(app)))

    asyncio.run(go())


def test_an_unknown_theme_option_falls_back(make_app):
    async def go():
        app = make_app(theme="no-such-theme")
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await until(pilot, lambda: any("no-such-theme" in m for m in _warnings(app)))
            assert app.theme == "vigil-dark"

    asyncio.run(go())


def test_bad_settings_in_a_real_terminal_start_with_a_notice(tmp_path):
    import shutil

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    from test_terminal import Tmux

    cfg = tmp_path / "cfg"
    (cfg / "vigil").mkdir(parents=True)
    (cfg / "vigil" / "keys.toml").write_text('"runs.scrub" = = "z"\n')
    (cfg / "vigil" / "config.toml").write_text('theme = "nope"\n')
    env = {"VIGIL_DB": str(tmp_path / "v.db"), "XDG_CONFIG_HOME": str(cfg), "TERM": "xterm-256color",
           "HOME": str(tmp_path)}
    # Textual draws on stderr, so a traceback would be left on the screen after it exits
    tmux = Tmux("vigil-cfg", f"{sys.executable} -m console.cli --theme nope; echo exited $?; sleep 30", env,
                size=(100, 30))
    try:
        shown = tmux.wait_for("keys.toml")
        assert "Traceback" not in shown
        tmux.wait_for("nothing waiting")
        tmux.keys("q")
        shown = tmux.wait_for("exited 0")
        assert "Traceback" not in shown
    finally:
        tmux.close()


# --version, screenshot, empty log --------------------------------------------------------------


def test_version():
    out = subprocess.run([sys.executable, "-m", "console.cli", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    from importlib.metadata import version

    assert out.stdout.strip() == f"vigil {version('vigil-console')}"


def test_palette_screenshot_without_a_downloads_directory(make_app, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(work)

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"Screenshot")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(pilot, lambda: list(work.glob("*.svg")))
            saved = list(work.glob("*.svg"))[0]
            await until(pilot, lambda: any(str(saved) in n.message for n in app._notifications))
            assert "<svg" in saved.read_text()
            assert not any(n.severity == "error" for n in app._notifications)

    asyncio.run(go())


def test_an_empty_log_shows_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))

    async def go():
        app = VigilApp(tmp_path / "v.db", default_registry(), adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await until(pilot, lambda: "vigil demo" in str(app.screen.query_one("#bar").render()))
            bar = str(app.screen.query_one("#bar").render())
            assert "n" in bar and len(bar) <= 78
            await app.runtime.start("research", {"topic": "x"})
            await until(pilot, lambda: "vigil demo" not in str(app.screen.query_one("#bar").render()))

    asyncio.run(go())


# contrast ------------------------------------------------------------------------------------

# The colour pairs the console draws text with (foreground variable, background variable), and
# where: body text ($foreground) on the screen ($background), the lists ($surface) and the bars,
# modals and footer ($panel); dimmed text ($text-muted: `.hint`, the lists' dim columns, Textual's
# placeholders) on the same; status colours ($primary running, $warning waiting and the prompt's
# title, $success/$error the runs list and the scrubber's hash, $secondary cancelled and the
# scrubber's rules, $accent Textual's highlights) on all three; the footer's keys and descriptions.
TEXT_PAIRS = [
    (fg, bg)
    for fg in ("foreground", "text-muted", "primary", "secondary", "accent", "warning", "error", "success")
    for bg in ("background", "surface", "panel")
] + [("footer-key-foreground", "footer-background"), ("footer-description-foreground", "footer-background")]


def _luminance(c: Color) -> float:
    def channel(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)


def contrast(fg: Color, bg: Color) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _resolve(variables: dict[str, str], spec: str, under: Color | None = None) -> Color:
    name, _, alpha = spec.partition(" ")
    value, _, own_alpha = variables[name].partition(" ")
    alpha = alpha or own_alpha
    # "auto" is Textual's black-or-white text chosen for the background it is drawn on
    colour = under.get_contrast_text() if value == "auto" else Color.parse(value)
    if alpha:
        colour = colour.with_alpha(colour.a * float(alpha.rstrip("%")) / 100)
    return (under + colour) if under is not None else colour


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "themes").glob("*.toml") if "ansi" not in p.name),
                         ids=lambda p: p.stem)
def test_theme_text_contrast_is_at_least_4_5(path):
    fields = tomllib.loads(path.read_text())
    variables = Theme(**fields).to_color_system().generate()
    failures = []
    for fg, bg in TEXT_PAIRS:
        back = _resolve(variables, bg)
        front = _resolve(variables, fg, under=back)
        ratio = contrast(front, back)
        if ratio < 4.5:
            failures.append(f"{fg} on {bg}: {ratio:.2f}")
    assert not failures, failures


# cancel --------------------------------------------------------------------------------------


async def _select(pilot, runs: RunList, run_id: str) -> None:
    for _ in range(runs.count):
        if runs.selected() and runs.selected().run_id == run_id:
            return
        await pilot.press("j")
        await pilot.pause(0.05)
    assert runs.selected().run_id == run_id


def test_cancel_a_waiting_run_with_the_key(make_app):
    from console.screens.confirm import ConfirmScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            await _select(pilot, runs, "run-support-wait")
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "run-support-wait" in app.screen.question and "support" in app.screen.question
            await pilot.press("y")
            await until(pilot, lambda: any("cancelled run-support-wait" in n.message for n in app._notifications))
            cancelled = await app.store.events("run-support-wait", types=["RunCancelled"])
            assert len(cancelled) == 1 and isinstance(cancelled[0].event, RunCancelled)
            assert cancelled[0].event.actor is not None and cancelled[0].event.actor.user
            assert (await app.store.run("run-support-wait")).status == "cancelled"

    asyncio.run(go())


def test_cancel_a_waiting_run_from_the_palette(make_app):
    from console.screens.confirm import ConfirmScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            await _select(pilot, runs, "run-support-wait")
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"Cancel run")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: any("cancelled run-support-wait" in n.message for n in app._notifications))
            cancelled = await app.store.events("run-support-wait", types=["RunCancelled"])
            assert len(cancelled) == 1 and cancelled[0].event.actor is not None

    asyncio.run(go())


def test_no_at_the_confirmation_cancels_nothing(make_app):
    from console.screens.confirm import ConfirmScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            await _select(pilot, runs, "run-support-wait")
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await pilot.pause(0.5)
            assert await app.store.events("run-support-wait", types=["RunCancelled"]) == []
            assert (await app.store.run("run-support-wait")).status == "waiting"

    asyncio.run(go())


def test_cancel_from_a_live_pane(make_app):
    from console.screens.confirm import ConfirmScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            app.open_panes(["run-support-wait"])
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "run-support-wait" in app.screen.question
            await pilot.press("y")
            await until(pilot, lambda: any("cancelled run-support-wait" in n.message for n in app._notifications))

    asyncio.run(go())


def test_an_ended_run_is_not_offered_for_cancel(make_app):
    from console.screens.confirm import ConfirmScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            await _select(pilot, runs, "run-support-done")
            await pilot.press("C")
            await until(pilot, lambda: any("already" in n.message for n in app._notifications))
            assert not isinstance(app.screen, ConfirmScreen)

    asyncio.run(go())


@pytest.mark.parametrize("theme", ["vigil-dark", "vigil-light"])
def test_rendered_dim_text_keeps_the_contrast(make_app, theme):
    """The same check on what the console really draws: the list's dim columns, a modal's hint
    and the footer's keys, as Textual resolves them (alpha and "auto" included)."""
    from console.screens.confirm import ConfirmScreen

    def ratio(widget, component=None):
        style = widget.get_component_rich_style(component) if component else widget.rich_style
        back = widget.background_colors[1]
        front = Color.from_rich_color(style.color)
        return contrast(back + front, back)

    async def go():
        app = make_app(theme)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            assert ratio(runs, "vlist--dim") >= 4.5
            await until(pilot, lambda: bool(app.screen.query(FooterKey)))
            key = app.screen.query(FooterKey).first()
            assert ratio(key, "footer-key--key") >= 4.5
            await _select(pilot, runs, "run-support-wait")
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.pause(0.2)
            assert ratio(app.screen.query_one(".hint")) >= 4.5

    asyncio.run(go())


@pytest.mark.parametrize("theme", ["vigil-dark", "vigil-light"])
def test_rendered_cursor_row_keeps_the_contrast(make_app, theme):
    """Every run's row as the list draws it under the cursor, focused and not: each character's
    colour against the cursor's background (status colours and dim columns included)."""

    def low(runs: RunList) -> list[str]:
        y = runs.cursor - runs.scroll_offset.y
        out = []
        for segment in runs.render_line(y):
            if not segment.text.strip() or segment.style is None:
                continue
            front = Color.from_rich_color(segment.style.color)
            back = Color.from_rich_color(segment.style.bgcolor)
            if (r := contrast(front, back)) < 4.5:
                out.append(f"{segment.text.strip()!r} {front.hex} on {back.hex}: {r:.2f}")
        return out

    async def go():
        app = make_app(theme)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = await _runs_ready(pilot)
            failures = []
            for focused in (True, False):
                if focused:
                    runs.focus()
                else:
                    app.screen.set_focus(None)
                await pilot.pause(0.1)
                for index in range(runs.count):
                    runs.cursor = index
                    await pilot.pause(0.05)
                    status = runs.item(index)[0].status
                    failures += [f"{status} focused={focused}: {f}" for f in low(runs)]
            assert not failures, failures

    asyncio.run(go())


def test_a_question_mark_typed_into_search_is_text(make_app):
    from console.screens.help import HelpScreen
    from textual.widgets import Input

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("slash")
            await until(pilot, lambda: isinstance(app.focused, Input))
            await pilot.press("a", "question_mark", "b")
            await pilot.pause(0.2)
            assert app.focused.value == "a?b"
            assert not isinstance(app.screen, HelpScreen)

    asyncio.run(go())


def test_keys_in_the_palette_opens_vigils_help(make_app):
    from console.screens.help import HelpScreen

    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"Keys")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert "runs.open" in app.screen.text()

    asyncio.run(go())


def test_no_two_bindings_of_one_class_share_a_key():
    """Two features once both took `o` in the scrubber (open an artifact, show only notes): the
    second binding silently won. Every key of a screen or widget does one thing."""
    import importlib
    import pkgutil

    from textual.dom import DOMNode

    from console import app, screens, widgets
    from console.screens.help import _own_bindings

    classes: list[type] = [app.VigilApp]
    for package in (screens, widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            classes += [c for c in vars(module).values()
                        if isinstance(c, type) and issubclass(c, DOMNode) and c.__module__ == module.__name__]
    clashes = []
    for cls in classes:
        seen: dict[str, str] = {}
        for binding in _own_bindings(cls):
            for key in binding.key.split(","):
                if key in seen and seen[key] != binding.id:
                    clashes.append(f"{cls.__name__}: {key!r} is {seen[key]} and {binding.id}")
                seen.setdefault(key, binding.id)
    assert clashes == []
