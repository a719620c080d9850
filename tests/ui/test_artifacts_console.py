"""Artifacts in the console: the scrubber shows a reference's size and kind in the event detail;
`o` (listed in `?` help) hands the terminal to $PAGER on the artifact's bytes - headless it
says it cannot, in a real terminal (tmux) the pager gets the bytes and the console comes back."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.app import VigilApp
from console.screens.help import known_bindings
from console.screens.scrubber import ScrubberScreen
from console.widgets.timeline import Timeline
from console.workflows import default_registry
from kernel.events import (
    ActionRequested, ActionSucceeded, ArtifactStored, RunCompleted, RunStarted, StepCompleted, StepStarted,
)
from kernel.store import Store
from ui_helpers import until

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ("2026-11-30 build step ok\n" * 4096).encode()  # 100 KiB of tool output


async def build(path: Path) -> str:
    async with await Store.open(path) as store:
        info = await store.put_artifact(OUTPUT, "text/plain; charset=utf-8")
        ref = {"artifact_id": info.artifact_id, "kind": info.kind, "size": info.size}
        events = [
            RunStarted(graph="build"),
            StepStarted(step_id="1.work", node="work"),
            ActionRequested(action_id="1.work#0", step_id="1.work", kind="tool", name="make", input={}),
            ArtifactStored(artifact_id=info.artifact_id, kind=info.kind, size=info.size, step_id="1.work",
                           action_id="1.work#0"),
            ActionSucceeded(action_id="1.work#0", output=ref),
            StepCompleted(step_id="1.work", node="work"),
            RunCompleted(),
        ]
        await store.append("run-artifact", events, expected_seq=0)
        return info.artifact_id


def test_the_scrubber_shows_an_artifacts_size_and_kind_and_o_is_in_help(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "a.db"
    aid = asyncio.run(build(db))
    assert known_bindings()["scrubber.artifact"].key == "o"

    async def go():
        app = VigilApp(db, default_registry(), theme="vigil-dark", adopt=False)
        async with app.run_test(size=(140, 40)) as pilot:
            app.open_scrubber("run-artifact")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and bool(app.screen.query(Timeline))
                        and app.screen.timeline.count == 7)
            t = app.screen.timeline
            await until(pilot, lambda: t.cursor == 6)
            await pilot.press("left", "left")  # seq 5: the ActionSucceeded holding the reference
            doc = app.screen.query_one("#doc")
            await until(pilot, lambda: t.cursor == 4 and any("── artifact ──" in line for line in doc.lines))
            shown = "\n".join(doc.lines)
            assert f"{aid[:16]}…  100.0 KiB (102,400 bytes)  text/plain; charset=utf-8" in shown
            await pilot.press("left")  # seq 4: the ArtifactStored says the same
            await until(pilot, lambda: t.cursor == 3 and "ArtifactStored" in "\n".join(doc.lines))
            assert "100.0 KiB (102,400 bytes)" in "\n".join(doc.lines)
            await pilot.press("o")  # headless: no terminal to hand over, said so
            await until(pilot, lambda: any("cannot hand this terminal to a pager" in str(n.message)
                                           for n in app._notifications))
            await pilot.press("left")  # seq 3: a request, no artifact
            await until(pilot, lambda: t.cursor == 2 and "── artifact ──" not in "\n".join(doc.lines)
                        and "ActionRequested" in "\n".join(doc.lines))
            await pilot.press("question_mark")
            await pilot.pause(0.3)
            assert "open artifact in $PAGER" in "\n".join(
                str(w.render()) for w in app.screen.query(".help-rows"))

    asyncio.run(go())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_o_with_a_pager_that_is_not_there_says_so_and_the_scrubber_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PAGER", "nosuchpager -R")
    db = tmp_path / "a.db"
    asyncio.run(build(db))

    async def go():
        app = VigilApp(db, default_registry(), theme="vigil-dark", adopt=False)
        async with app.run_test(size=(140, 40)) as pilot:
            app.open_scrubber("run-artifact")
            await until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and bool(app.screen.query(Timeline))
                        and app.screen.timeline.count == 7)
            t = app.screen.timeline
            await until(pilot, lambda: t.cursor == 6)
            await pilot.press("left", "left")
            doc = app.screen.query_one("#doc")
            await until(pilot, lambda: t.cursor == 4 and any("── artifact ──" in line for line in doc.lines))
            await pilot.press("o")
            await until(pilot, lambda: any("cannot run the pager 'nosuchpager'" in str(n.message)
                                           for n in app._notifications))
            assert not any("cannot hand this terminal" in str(n.message) for n in app._notifications)
            await pilot.press("left")
            await until(pilot, lambda: t.cursor == 3 and "ArtifactStored" in "\n".join(doc.lines))

    asyncio.run(go())


def _tmux_console(tmp_path: Path, db: Path, pager: str):
    env = {"VIGIL_DB": str(db), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color",
           "PAGER": pager, "PATH": os.environ["PATH"]}
    socket = f"vigil-art-{os.getpid()}-{tmp_path.name}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout

    def wait_for(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-t", "v")
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared:\n{shown}")

    def kill() -> None:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)

    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    tmux("new-session", "-d", "-s", "v", "-x", "140", "-y", "40",
         f"cd {ROOT} && env {exports} {sys.executable} -m console.cli")
    return tmux, wait_for, kill


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("broken", ["missing", "cannot-exec"])
def test_a_pager_that_cannot_run_leaves_the_console_usable_in_a_real_terminal(tmp_path, broken):
    db = tmp_path / "a.db"
    asyncio.run(build(db))
    if broken == "missing":
        pager = "nosuchpager -R"  # not on PATH: refused before the terminal is handed over
    else:
        # On PATH and executable, but exec fails (no such interpreter): the error comes from
        # inside the suspended block, and the console must still come back.
        script = tmp_path / "badpager"
        script.write_text("#!/nonexistent/interpreter\n")
        script.chmod(0o755)
        pager = str(script)
    tmux, wait_for, kill = _tmux_console(tmp_path, db, pager)
    try:
        wait_for("run-artifact")
        tmux("send-keys", "-t", "v", "s")
        wait_for("RunCompleted")
        tmux("send-keys", "-t", "v", "Left")
        tmux("send-keys", "-t", "v", "Left")
        wait_for("── artifact ──")
        tmux("send-keys", "-t", "v", "o")
        wait_for("cannot run the pager")
        wait_for("seq 5 · state from snapshot")
        tmux("send-keys", "-t", "v", "Left")  # still answering keys: the event before it
        wait_for("seq 4 · state from snapshot")
    finally:
        kill()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_o_opens_the_artifact_in_the_pager_in_a_real_terminal(tmp_path):
    db = tmp_path / "a.db"
    asyncio.run(build(db))
    seen = tmp_path / "paged.txt"
    # The "pager" copies what it was given and waits a moment, as a pager holds the terminal.
    pager = f"sh -c 'cp \"$1\" {seen}; sleep 1' pager"
    env = {"VIGIL_DB": str(db), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color",
           "PAGER": pager, "PATH": os.environ["PATH"]}
    socket = f"vigil-art-{os.getpid()}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout

    def wait_for(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-t", "v")
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared:\n{shown}")

    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    tmux("new-session", "-d", "-s", "v", "-x", "140", "-y", "40",
         f"cd {ROOT} && env {exports} {sys.executable} -m console.cli")
    try:
        wait_for("run-artifact")
        tmux("send-keys", "-t", "v", "s")
        wait_for("RunCompleted")
        tmux("send-keys", "-t", "v", "Left")
        tmux("send-keys", "-t", "v", "Left")
        wait_for("── artifact ──")
        tmux("send-keys", "-t", "v", "o")
        deadline = time.monotonic() + 30
        while not (seen.exists() and seen.stat().st_size == len(OUTPUT)):
            assert time.monotonic() < deadline, "the pager never got the artifact"
            time.sleep(0.2)
        assert seen.read_bytes() == OUTPUT
        wait_for("── artifact ──")  # the console is back after the pager exits
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
