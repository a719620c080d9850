"""The live channel (issue 14): model tokens of a run that a `vigil worker` drives in another
process reach a console's pane as they stream, on SQLite (a unix socket per owner) and on
PostgreSQL (NOTIFY, here with the worker on another "host"); nothing of them reaches the log;
a subscriber that never reads does not slow the worker; a dead owner's socket is harmless."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import ROOT, rest_of
from fake_providers import Provider, openai_stream

HERE = Path(__file__).resolve().parent
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel".split()
TEXT = " ".join(WORDS)


class Gated:
    """A streaming answer that stops at gates the test opens: before the first word (so the
    console is subscribed before anything is sent) and after the third."""

    def __init__(self, text: str = TEXT, gates: tuple[int, ...] = (0, 3)) -> None:
        self.chunks = openai_stream(text)
        self.gates = {g: threading.Event() for g in gates}
        self.reached = {g: threading.Event() for g in gates}
        self.calls = 0

    def plan(self, path: str, body: dict):
        self.calls += 1

        def chunks():
            yield self.chunks[0]  # the role
            for i, chunk in enumerate(self.chunks[1:]):
                if i in self.gates:
                    self.reached[i].set()
                    self.gates[i].wait(60)
                yield chunk
        return 200, chunks(), False


def _env(db, provider: Provider, **more: str) -> dict:
    return {**os.environ, "VIGIL_DB": str(db), "VIGIL_WORKFLOWS": "live_workflows",
            "VIGIL_TEST_PROVIDER": provider.url, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", **more}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _worker(env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("worker "), proc.stderr.read()
    return proc


def _queue(env: dict) -> str:
    out = _cli(env, "run", "livechat", "--queue", "--input",
               json.dumps({"messages": [{"role": "user", "content": "spell it"}]}))
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def _info(env: dict, run_id: str) -> dict:
    out = _cli(env, "runs", "--json", "--limit", "0")
    return next(r for r in map(json.loads, out.stdout.splitlines()) if r["run_id"] == run_id)


def _events(env: dict, run_id: str) -> list[dict]:
    return [json.loads(x) for x in _cli(env, "events", run_id, "--json").stdout.splitlines()]


def _answers(env: dict, events: list[dict]) -> list[str]:
    """The model answers the log holds (a big one as an artifact, read back as the node got it)."""
    from kernel.artifacts import decode_output, ref_of
    from kernel.store import Store

    async def read(ref):
        async with await Store.open(env["VIGIL_DB"], readonly=True) as store:
            return decode_output(await store.get_artifact(ref.artifact_id), ref.kind)

    outputs = [e["output"] for e in events if e["type"] == "ActionSucceeded"]
    outputs = [asyncio.run(read(ref_of(o))) if ref_of(o) is not None else o for o in outputs]
    return [o["content"].strip() for o in outputs if isinstance(o, dict) and "content" in o]


def _wait(event: threading.Event, what: str, timeout: float = 30) -> None:
    assert event.wait(timeout), f"timed out waiting for {what}"


async def _until(pilot, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the console"
        await pilot.pause(0.05)


def _stop(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    out, err = rest_of(worker, 30)
    return out + err


def _no_tokens_in_the_log(events: list[dict]) -> None:
    """Tokens are live only: the log holds the durable events and the whole answer, never a piece."""
    types = {e["type"] for e in events}
    assert types <= {"RunStarted", "RunAdopted", "StepStarted", "ActionRequested", "ActionSucceeded",
                     "StepCompleted", "RunCompleted"}, types
    for event in events:
        text = json.dumps(event)
        if "alpha" in text:
            assert TEXT in text, event  # only whole messages, never a partial stream


def test_a_console_sees_a_workers_tokens_as_they_stream(both_backends, tmp_path):
    from console.app import VigilApp
    from console.widgets.runpane import RunPane
    from kernel.registry import Registry

    answer = Gated()
    provider = Provider(answer.plan)
    postgres = str(both_backends).startswith("postgresql://")
    # on PostgreSQL the worker says it is on another host: only the database joins them
    env = _env(both_backends, provider, **({"VIGIL_HOST": "worker-host"} if postgres else {}))
    worker = _worker(env)
    try:
        run_id = _queue(env)

        async def go():
            app = VigilApp(both_backends, Registry(), adopt=False)  # the graph is not even known here
            async with app.run_test(size=(120, 30)) as pilot:
                app.open_panes([run_id])
                await _until(pilot, lambda: bool(app.screen.query(RunPane)))
                pane = app.screen.query_one(RunPane)
                await _until(pilot, lambda: answer.reached[0].is_set() and app.live_tokens.feed.listening(run_id))
                answer.gates[0].set()  # three words, then the model stalls mid-step
                await _until(pilot, lambda: "alpha bravo charlie" in pane.stream)
                await pilot.pause(0.1)  # the pane paints on its 50 ms flush
                painted = str(pane.query_one("#stream").render())
                records = await app.store.events(run_id, 1)
                mid_step = [r.type for r in records]
                answer.gates[3].set()
                await _until(pilot, lambda: pane.info is not None and pane.info.status == "completed"
                             and pane.shown_seq == pane.info.last_seq)
                await pilot.pause(0.1)
                return painted, mid_step, pane.stream, str(pane.query_one("#stream").render())

        painted, mid_step, stream_after, painted_after = asyncio.run(go())
        assert painted.startswith("✎ alpha bravo charlie") and "delta" not in painted
        assert "ActionSucceeded" not in mid_step and "StepCompleted" not in mid_step  # before the step ended
        # the durable answer replaced the streamed text: nothing left over, nothing shown twice
        assert stream_after == "" and painted_after == ""
        events = _events(env, run_id)
        assert events[-1]["type"] == "RunCompleted"
        _no_tokens_in_the_log(events)
    finally:
        for gate in answer.gates.values():
            gate.set()
        out = _stop(worker)
        provider.close()
    assert "Traceback" not in out, out
    if not postgres:
        assert not (Path(str(both_backends) + ".live")).exists()  # its socket went with it


def _owner_socket(db: Path, owner: str) -> Path:
    from kernel.live.paths import socket_path

    return socket_path(db, owner)


def test_a_subscriber_that_never_reads_does_not_stall_the_worker(tmp_path):
    from kernel.live.paths import addressable
    from kernel.live.unix import HIGH_WATER

    db = tmp_path / "vigil.db"
    big = " ".join(f"{i:04d}" + "x" * 995 for i in range(3000))  # 3 MB of tokens, 1 KB each
    answer = Gated(big, gates=(0,))
    provider = Provider(answer.plan)
    env = _env(db, provider)
    worker = _worker(env)
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        run_id = _queue(env)
        _wait(answer.reached[0], "the model call")
        owner = _info(env, run_id)["owner"]
        with addressable(_owner_socket(db, owner)) as name:
            deaf.connect(name)
        deaf.sendall(json.dumps({"type": "want", "runs": [run_id]}).encode() + b"\n")
        time.sleep(0.2)  # let the worker read the wish before the stream starts
        answer.gates[0].set()
        deadline = time.monotonic() + 60
        while _info(env, run_id)["status"] != "completed":
            assert time.monotonic() < deadline, "the worker stalled behind a subscriber that never reads"
            time.sleep(0.2)
        # Now read what was waiting: the worker dropped this subscriber instead of queueing 3 MB for it.
        got = 0
        deaf.settimeout(10)
        while chunk := deaf.recv(1 << 16):
            got += len(chunk)
        assert got < len(big) and got < 4 * HIGH_WATER + (1 << 20)
        events = _events(env, run_id)
        assert _answers(env, events) == [big]  # the log has the whole answer (in an artifact)
    finally:
        deaf.close()
        answer.gates[0].set()
        out = _stop(worker)
        provider.close()
    assert "Traceback" not in out, out


def test_a_listener_that_never_reads_does_not_stall_a_worker_on_postgres(pg_dsn):
    import psycopg

    from kernel.live.pgchan import channel

    big = " ".join(f"{i:04d}" + "x" * 995 for i in range(3000))
    answer = Gated(big, gates=(0,))
    provider = Provider(answer.plan)
    env = _env(pg_dsn, provider)
    worker = _worker(env)
    deaf = psycopg.connect(pg_dsn, autocommit=True)
    try:
        run_id = _queue(env)
        deaf.execute(f"LISTEN {channel(run_id)}")  # and never a look at what arrives
        _wait(answer.reached[0], "the model call")
        answer.gates[0].set()
        deadline = time.monotonic() + 60
        while _info(env, run_id)["status"] != "completed":
            assert time.monotonic() < deadline, "the worker stalled behind a listener that never reads"
            time.sleep(0.2)
        events = _events(env, run_id)
        assert _answers(env, events) == [big]  # the log has the whole answer (in an artifact)
    finally:
        deaf.close()
        answer.gates[0].set()
        out = _stop(worker)
        provider.close()
    assert "Traceback" not in out, out


def test_a_dead_owners_socket_is_ignored_then_cleaned(tmp_path):
    """A worker killed mid-stream leaves its socket file. A console watching the run carries on
    (nothing to connect to, no error); the next worker removes the stale file, adopts the run and
    its tokens reach the same pane."""
    from console.app import VigilApp
    from console.widgets.runpane import RunPane
    from kernel.live.unix import connect
    from kernel.registry import Registry

    db = tmp_path / "vigil.db"
    answers = [Gated(gates=(0,)), Gated()]
    provider = Provider(lambda path, body: answers[min(sum(a.calls for a in answers), 1)].plan(path, body))
    env = _env(db, provider)
    first = _worker(env)
    second = None
    try:
        run_id = _queue(env)
        _wait(answers[0].reached[0], "the first worker's model call")
        dead_owner = _info(env, run_id)["owner"]
        first.kill()
        first.wait(10)  # reaped: a zombie's pid still looks alive
        stale = _owner_socket(db, dead_owner)
        assert stale.exists()

        async def go():
            nonlocal second
            app = VigilApp(db, Registry(), adopt=False)
            async with app.run_test(size=(120, 30)) as pilot:
                app.open_panes([run_id])
                await _until(pilot, lambda: bool(app.screen.query(RunPane)))
                pane = app.screen.query_one(RunPane)
                await _until(pilot, lambda: pane._loaded)
                await pilot.pause(0.6)  # a few rounds of the feed with the stale socket there
                with pytest.raises(OSError):
                    await connect(stale, dead_owner)  # nobody answers on it
                assert not app.live_tokens.feed.connected
                second = await asyncio.to_thread(_worker, env)
                assert not stale.exists()  # the new owner cleaned it up
                await _until(pilot, lambda: answers[1].reached[0].is_set() and app.live_tokens.feed.listening(run_id))
                answers[1].gates[0].set()
                await _until(pilot, lambda: "alpha bravo charlie" in pane.stream)
                answers[1].gates[3].set()
                await _until(pilot, lambda: pane.info is not None and pane.info.status == "completed"
                             and pane.shown_seq == pane.info.last_seq)
                return [n.message for n in app._notifications]

        notices = asyncio.run(go())
        assert not any("Traceback" in str(n) or "error" in str(n).lower() for n in notices), notices
        _no_tokens_in_the_log(_events(env, run_id))
    finally:
        for answer in answers:
            for gate in answer.gates.values():
                gate.set()
        out = _stop(second) if second is not None else ""
        if first.poll() is None:
            first.kill()
        provider.close()
    assert "Traceback" not in out, out


def test_a_token_bigger_than_a_notify_payload_arrives_whole_on_postgres(pg_dsn):
    """NOTIFY refuses 8000 bytes: a long delta goes in pieces, and they join up in order."""
    from kernel.live.feed import LiveFeed
    from kernel.live.publish import start_publisher
    from kernel.store import Store

    text = "".join(chr(0x400 + i % 200) + "\"\\" for i in range(20_000))  # escapes and 2-byte UTF-8

    async def go():
        async with await Store.open(pg_dsn) as store:
            got: list = []
            feed = LiveFeed(store, got.append, interval=0.05)
            feed.want({"r1"})
            task = asyncio.create_task(feed.run())
            publisher = await start_publisher(store, "elsewhere:1:1")
            try:
                for _ in range(200):
                    if feed.listening("r1"):
                        break
                    await asyncio.sleep(0.05)
                publisher.publish("r1", "a1", text)
                publisher.publish("r2", "a1", "not wanted")
                for _ in range(200):
                    if sum(len(d.text) for d in got) >= len(text):
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await publisher.close()
            return got

    got = asyncio.run(go())
    assert len(got) > 1 and "".join(d.text for d in got) == text
    assert {d.run for d in got} == {"r1"} and all(d.owner == "elsewhere:1:1" for d in got)


def test_an_owners_socket_is_private_sends_each_subscriber_its_runs_and_goes_with_it(tmp_path):
    import stat

    from kernel.live.paths import live_dir
    from kernel.live.publish import start_publisher
    from kernel.live.unix import connect, want_line
    from kernel.live.wire import decode
    from kernel.store import Store

    db = tmp_path / "vigil.db"

    async def go():
        async with await Store.open(db) as store:
            publisher = await start_publisher(store, "here:1:1")
            path = publisher.sink.path
            modes = stat.S_IMODE(live_dir(db).stat().st_mode), stat.S_IMODE(path.stat().st_mode)
            (ra, wa), (rb, wb) = await connect(path, "here:1:1"), await connect(path, "here:1:1")
            wa.write(want_line({"r1"}))
            wb.write(want_line({"r2", "r3"}))
            while publisher.sink.wanted != {"r1", "r2", "r3"}:
                await asyncio.sleep(0.01)
            for run in ("r1", "r2", "r3", "r4"):
                publisher.publish(run, "a", f"to {run}")
            a = decode(await ra.readline())
            b = {decode(await rb.readline()).run for _ in range(2)}
            publisher.publish("r1", "a", "again")
            a2 = decode(await ra.readline())
            with pytest.raises(OSError):
                await connect(path, "someone:2:2")  # the hello names who answers
            await publisher.close()
            return modes, a, b, a2, await ra.readline(), live_dir(db).exists()

    modes, a, b, a2, eof, left = asyncio.run(go())
    assert modes == (0o700, 0o600)
    assert (a.run, a.text) == ("r1", "to r1") and b == {"r2", "r3"} and a2.text == "again"
    assert eof == b"" and not left  # closed: the subscriber is told, the socket and its dir are gone


def test_a_console_that_drives_a_run_publishes_its_tokens_to_other_viewers(both_backends):
    """The console is an owner too: a run it starts streams to a viewer in another process
    (here a bare LiveFeed on its own connection, as a second console's would be)."""
    from console.app import VigilApp
    from kernel.agents.agent import agent_graph
    from kernel.agents.models.openai import OpenAIChat
    from kernel.live.feed import LiveFeed
    from kernel.registry import Registry
    from kernel.store import Store

    answer = Gated()
    provider = Provider(answer.plan)
    registry = Registry()
    registry.add(agent_graph("livechat", model=OpenAIChat("m", base_url=provider.url + "/v1", key_env=None),
                             tools=[], system="Answer in a few words."))

    async def go():
        app = VigilApp(both_backends, registry, adopt=False)
        async with app.run_test(size=(120, 30)) as pilot:
            run_id = await app.runtime.start("livechat", {"messages": [{"role": "user", "content": "spell it"}]})
            async with await Store.open(both_backends) as other:
                got: list = []
                feed = LiveFeed(other, got.append, interval=0.05)  # another viewer: no skip_owner
                feed.want({run_id})
                task = asyncio.create_task(feed.run())
                try:
                    await _until(pilot, lambda: answer.reached[0].is_set() and feed.listening(run_id))
                    answer.gates[0].set()
                    await _until(pilot, lambda: "alpha bravo charlie" in "".join(d.text for d in got))
                    answer.gates[3].set()
                    await _until(pilot, lambda: TEXT in "".join(d.text for d in got))
                finally:
                    task.cancel()
            return got, app.runtime.owner

    try:
        got, owner = asyncio.run(go())
    finally:
        for gate in answer.gates.values():
            gate.set()
        provider.close()
    assert "".join(d.text for d in got).strip() == TEXT and {d.owner for d in got} == {owner}


def test_a_connect_cancelled_during_the_hello_closes_its_socket(tmp_path):
    """A follower is cancelled when its owner goes away, often while it waits for the owner's
    hello: the socket it opened must be closed then, not left open until garbage collection."""
    from kernel.live.unix import connect

    async def go():
        accepted: asyncio.Queue = asyncio.Queue()

        async def handler(reader, writer):  # an owner that never says hello
            await accepted.put(reader)

        server = await asyncio.start_unix_server(handler, str(tmp_path / "o.sock"))
        held = []  # keeps the cancelled client's objects alive: only an explicit close ends it
        task = asyncio.create_task(connect(tmp_path / "o.sock", "owner-1", timeout=30))
        task.add_done_callback(held.append)
        reader = await accepted.get()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        got = await asyncio.wait_for(reader.read(), 10)  # b"" once the client closed
        server.close()
        return got

    assert asyncio.run(go()) == b""


def test_a_failed_model_call_clears_its_streamed_text_and_late_tokens_stay_out(tmp_path):
    """The pane cleared streamed text when the call's ActionSucceeded arrived, not on an
    ActionFailed: a failed call's partial answer stayed up, and late tokens added to it."""
    from console.app import VigilApp
    from console.widgets.runpane import RunPane
    from kernel.events import ActionFailed, ActionRequested, RunStarted, StepStarted
    from kernel.registry import Registry
    from kernel.store import Store

    db = tmp_path / "v.db"

    async def go():
        async with await Store.open(db) as store:
            await store.append("r1", [RunStarted(graph="g"), StepStarted(step_id="1.think", node="think"),
                                      ActionRequested(action_id="1.think#0", step_id="1.think", kind="llm",
                                                      name="m", input=None)], expected_seq=0)
        app = VigilApp(db, Registry(), adopt=False)
        async with app.run_test(size=(120, 30)) as pilot:
            app.open_panes(["r1"])
            await _until(pilot, lambda: bool(app.screen.query(RunPane)))
            pane = app.screen.query_one(RunPane)
            await _until(pilot, lambda: pane.shown_seq == 3)
            pane.token("1.think#0", "half an ans")
            assert pane.stream == "half an ans"
            await app.store.append("r1", [ActionFailed(action_id="1.think#0", error="HTTP 500")], expected_seq=3)
            await _until(pilot, lambda: pane.shown_seq == 4)
            pane.token("1.think#0", "wer")  # late, from another process
            return pane.stream

    assert asyncio.run(go()) == ""


def test_an_owner_starting_while_another_closes_still_gets_its_socket(tmp_path, monkeypatch):
    """Two owners on one database: the one closing removes the socket directory (it looked empty)
    between the other's mkdir and its bind. The one starting must make it again, not go without a
    live channel for its whole life."""
    from kernel.live import unix
    from kernel.live.paths import live_dir

    db = tmp_path / "vigil.db"
    real_clean = unix.clean_stale
    closed = []

    def other_owner_closes_now(directory, keep):
        removed = real_clean(directory, keep=keep)
        if not closed:
            directory.rmdir()  # what UnixServer.close of the other owner does, at the worst moment
            closed.append(True)
        return removed

    monkeypatch.setattr(unix, "clean_stale", other_owner_closes_now)

    async def go():
        server = unix.UnixServer(db, "here:1:1")
        started = await server.start()
        exists = server.path.exists()
        await server.close()
        return started, exists

    started, exists = asyncio.run(go())
    assert started and exists and closed
    assert not live_dir(db).exists()
