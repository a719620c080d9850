"""`vigil serve` as a real subprocess on a loopback port: refused without its token, and in
headless Chromium (Debian's package, driven by Playwright) the runs list shows and an approval
made in the page lands in the log with a web actor. The page's screenshot is kept as an artifact."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from test_terminal import ROOT, vigil

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# What the terminal draws arrives as escape sequences around plain text; the text is enough.
_ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


def _need(ok: bool, why: str) -> None:
    # CI exports VIGIL_REQUIRE_TOOLS=1 so the browser test can never silently vanish.
    if ok:
        return
    if os.environ.get("VIGIL_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{why} (VIGIL_REQUIRE_TOOLS=1)", pytrace=False)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[1] == str(pid):  # field 4, the parent pid
            found.append(stat.parent.name)
    return found


SEED = """
import asyncio, sys
from console.workflows import default_registry
from kernel.demos import samples
from kernel.engine.runtime import Runtime
from kernel.store import Store

async def main(db):
    async with await Store.open(db) as store:
        async with Runtime(store, default_registry()) as rt:
            run_id = await rt.start("support", samples()["support"])
            await rt.settle()
            print(run_id, (await store.run(run_id)).status)

asyncio.run(main(sys.argv[1]))
"""


class Served:
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.db = tmp_path / "v.db"
        self.env = {**os.environ, "VIGIL_DB": str(self.db), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
        self.env.pop("VIGIL_VIA", None)
        seeded = subprocess.run([sys.executable, "-c", SEED, str(self.db)], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=60, check=True)
        self.run_id, status = seeded.stdout.split()
        assert status == "waiting"  # the refund waits for someone's approval
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "serve", "--db", str(self.db), "--port", str(self.port), *extra],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), self.proc.stderr.read()
        self.token = self.url.split("token=", 1)[1]

    def get(self, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def close(self) -> tuple[str, str]:
        """What it wrote after the link: stdout, stderr."""
        self.proc.terminate()
        try:
            return self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()


@pytest.fixture
def served(tmp_path):
    server = Served(tmp_path)
    yield server
    server.close()


WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_refused_without_the_token(served):
    assert served.url == f"http://127.0.0.1:{served.port}/?token={served.token}"
    assert len(served.token) >= 32
    # The token with its last character changed (a token ending in "x" made "...x" the token itself).
    wrong = served.token[:-1] + ("y" if served.token.endswith("x") else "x")
    for path in ("/", "/ws", "/static/js/textual.js", "/?token=", f"/?token={wrong}"):
        assert served.get(path).status == 401, path
    assert served.get("/ws", {**WS_HEADERS, "Cookie": "vigil_token=wrong"}).status == 401

    # The link trades its token for a cookie and drops it from the address bar.
    first = served.get(f"/?token={served.token}")
    assert first.status == 302 and first.getheader("Location") == "/"
    cookie = first.getheader("Set-Cookie")
    assert f"vigil_token={served.token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": f"vigil_token={served.token}"}
    assert served.get("/", jar).status == 200
    assert served.get("/static/js/textual.js", jar).status == 200
    # A page on another site cannot open the console with this browser's cookie.
    assert served.get("/ws", {**WS_HEADERS, **jar, "Origin": "http://evil.example"}).status == 403

    # Printed once: the access log shows each request line, but not the token in it.
    out, err = served.close()
    shown = "".join((out + err).split())  # rich wraps long lines
    assert "GET/?token=...HTTP/1.1" in shown
    assert served.token not in shown


def test_any_address_is_allowed_with_a_warning(tmp_path):
    server = Served(tmp_path, "--host", "0.0.0.0")
    try:
        assert server.get("/").status == 401
    finally:
        _, err = server.close()
    assert "exposes the console to the network" in err
    assert server.url == f"http://{socket.gethostname()}:{server.port}/?token={server.token}"


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = vigil("serve", "--db", str(tmp_path / "v.db"), "--port", str(port), env=dict(os.environ))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"vigil: cannot serve on 127.0.0.1:{port}:") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_a_port_that_is_not_one_is_refused(port):
    done = vigil("serve", "--port", port, env=dict(os.environ))
    assert done.returncode == 2 and done.stdout == ""
    assert "is not a port (1-65535)" in done.stderr and done.stderr.count("\n") == 1


def test_each_session_command_keeps_odd_paths_and_addresses_whole(tmp_path):
    import argparse

    from console.serve import console_command

    db = str(tmp_path / "it's a log; rm -rf ~.db")
    command = console_command(argparse.Namespace(db=db, workflows=None, theme="vigil-light"), "vigil serve from [::1]:5")
    words = shlex.split(command)
    assert words[0] == "VIGIL_VIA=vigil serve from [::1]:5" and words[1] == "exec"
    assert words[2:] == [sys.executable, "-m", "console.cli", "--db", db, "--theme", "vigil-light"]


def test_an_actor_recorded_before_via_existed_still_decodes():
    from console.format import _by
    from kernel.events import Actor, InterruptResolved

    old = msgspec.msgpack.encode({"type": "InterruptResolved", "interrupt_id": "1.a#0", "decision": "approve",
                                  "payload_hash": "h", "actor": {"user": "ann", "uid": 1, "host": "h", "pid": 2}})
    event = msgspec.msgpack.decode(old, type=InterruptResolved)
    assert event.actor.via is None and _by(event.actor) == " by ann"
    web = Actor(user="ann", uid=1, host="h", pid=2, via="vigil serve from 127.0.0.1:5")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(web), type=Actor) == web
    assert "via" not in msgspec.to_builtins(Actor(user="ann", uid=1, host="h", pid=2))  # old logs unchanged
    assert _by(web) == " by ann via vigil serve from 127.0.0.1:5"


def test_approve_in_headless_chromium(served, tmp_path):
    _need(os.path.exists(CHROMIUM), f"needs Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "needs the playwright package (the test extra)")

    frames: list[str] = []

    def screen() -> str:
        return _ANSI.sub("", "".join(frames))

    def wait_for(page, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in screen():
            assert time.monotonic() < deadline, f"{text!r} never appeared; the page showed:\n{screen()[-2000:]}"
            page.wait_for_timeout(100)

    shot = tmp_path / "serve.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            # The terminal is painted on a canvas; the websocket carries the text it paints.
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda data: frames.append(data if isinstance(data, str) else data.decode("utf-8", "replace"))))
            assert page.goto(served.url.split("?")[0]).status == 401
            assert page.goto(served.url).status == 200
            assert page.url == f"http://127.0.0.1:{served.port}/"  # the token left the address bar
            wait_for(page, "1 waiting for you")
            wait_for(page, served.run_id)
            page.wait_for_timeout(300)
            page.screenshot(path=str(tmp_path / "serve-waiting.png"))
            page.focus(".xterm-helper-textarea")  # where xterm.js takes the keyboard
            page.keyboard.press("i")
            wait_for(page, "refund needs your approval")
            page.keyboard.press("a")
            wait_for(page, "approve sent for refund needs your approval")
            page.wait_for_timeout(300)  # let the notification paint before the picture
            page.screenshot(path=str(shot))

            # SIGTERM with the tab still open: the server ends the session and its console, at once.
            sessions = _children(served.proc.pid)
            assert len(sessions) == 1
            served.proc.terminate()
            served.proc.wait(10)
            assert served.proc.returncode == 0
            assert not os.path.exists(f"/proc/{sessions[0]}")
            assert "Traceback" not in served.proc.stderr.read()
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("serve-waiting.png", "serve.png"):  # before and after the approval
        shutil.copy(tmp_path / name, ARTIFACTS / name)
        print(f"screenshot: {ARTIFACTS / name}")

    events = [json.loads(x) for x in vigil("events", served.run_id, "--json", env=served.env).stdout.splitlines()]
    resolved = [e for e in events if e["type"] == "InterruptResolved"]
    assert len(resolved) == 1 and resolved[0]["decision"] == "approve"
    actor = resolved[0]["actor"]
    assert re.fullmatch(r"vigil serve from 127\.0\.0\.1:\d+", actor["via"]), actor
    assert actor["pid"] not in (served.proc.pid, os.getpid())  # the session's own console decided
