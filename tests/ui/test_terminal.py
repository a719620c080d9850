"""The real console in a real terminal: tmux runs `vigil`, send-keys drives it, capture-pane
reads it, and the log shows what it did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


def vigil(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


class Tmux:
    def __init__(self, name: str, command: str, env: dict, size=(100, 30)) -> None:
        self.name = name
        self.socket = f"vigil-test-{os.getpid()}"
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self.run("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
                 f"cd {ROOT} && env {exports} {command}")

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.mark.parametrize("term", ["xterm-256color", "screen"])
def test_approve_an_interrupt_end_to_end_in_tmux(tmp_path, term):
    env = {**os.environ, "VIGIL_DB": str(tmp_path / "v.db"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    out = vigil("demo", "--headless", env=env)
    assert "3 waiting" in out.stdout, out.stderr
    support = next(json.loads(r) for r in vigil("runs", "--json", "--graph", "support", env=env).stdout.splitlines())

    clean = {"VIGIL_DB": env["VIGIL_DB"], "XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"], "TERM": term}
    theme = "--theme vigil-ansi" if term == "screen" else ""
    tmux = Tmux("vigil", f"{sys.executable} -m console.cli {theme}", clean)
    try:
        tmux.wait_for("3 waiting for you")
        tmux.run("resize-window", "-t", "vigil", "-x", "80", "-y", "24")  # resized mid-session
        tmux.wait_for("waiting for you")
        for _ in range(6):  # go through the queue until the support run's refund comes up
            tmux.keys("i")
            shown = tmux.wait_for("waiting in all")
            if "refund needs your approval" in shown:
                break
            tmux.keys("s")
            time.sleep(0.5)
        tmux.keys("a")
        tmux.wait_for("2 waiting for you", timeout=20)
        # the console adopted the orphaned run and drives it to the end
        deadline = time.monotonic() + 30
        while json.loads(vigil("runs", "--json", "--graph", "support", env=env).stdout.splitlines()[0])["status"] != "completed":
            assert time.monotonic() < deadline, f"the approved run did not complete:\n{tmux.screen()}"
            time.sleep(0.5)
        tmux.wait_for("completed")
        tmux.keys("q")
        time.sleep(1)
    finally:
        tmux.close()

    events = [json.loads(x) for x in vigil("events", support["run_id"], "--json", env=env).stdout.splitlines()]
    resolved = [e for e in events if e["type"] == "InterruptResolved"]
    assert len(resolved) == 1 and resolved[0]["decision"] == "approve"
    assert resolved[0]["actor"]["tty"] and resolved[0]["actor"]["tty"].startswith("/dev/pts/")
