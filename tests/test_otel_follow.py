"""`vigil otel follow`: spans sent as the log grows, a durable cursor, at-least-once with
identical ids. The real follower is SIGKILLed while the real demo runs write, and restarted;
what the receiver got is then compared with an after-the-fact export of the same log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from cli_helpers import ROOT, vigil
from otel_demo import demo_log
from otlp_receiver import Receiver

from kernel.otel.export import OtlpSender
from kernel.otel.follow import Cursor, Follower
from kernel.store import Store


def head(db) -> int:
    async def go():
        async with await Store.open(db, readonly=True) as store:
            return await store.head()
    return asyncio.run(go())


def cursor_pos(path) -> int | None:
    try:
        return json.loads(path.read_text())["after_pos"]
    except (FileNotFoundError, ValueError):
        return None


def follow(db, cursor, endpoint, *extra) -> subprocess.Popen:
    env = {**os.environ, "VIGIL_DB": str(db)}
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "otel", "follow", "--cursor", str(cursor), "--endpoint", endpoint, *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def key(s):
    return (s["trace_id"], s["span_id"])


def content(s):
    # The resource names the sending process (service.instance.id); the span is what must match.
    return json.dumps({k: v for k, v in s.items() if k != "resource"}, sort_keys=True)


def test_killed_and_restarted_follow_loses_nothing_and_repeats_only_identical_spans(tmp_path):
    db, cursor = tmp_path / "vigil.db", tmp_path / "cursor.json"
    assert vigil("demo", "--headless", "--approve", "all", db=db).returncode == 0
    with Receiver() as live:
        first = follow(db, cursor, live.endpoint, "--from-start")
        wait_for(lambda: cursor_pos(cursor) == head(db))
        env = {**os.environ, "VIGIL_DB": str(db)}
        more = subprocess.Popen([sys.executable, "-m", "console.cli", "demo", "--headless", "--approve", "all"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sent_before = len(live.spans)
        wait_for(lambda: len(live.spans) > sent_before)  # killed mid-way through the second demo
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = cursor_pos(cursor)
        assert more.wait(timeout=60) == 0, more.stderr.read()
        assert killed_at < head(db)
        second = follow(db, cursor, live.endpoint)  # no --from-start: the cursor decides
        try:
            wait_for(lambda: cursor_pos(cursor) == head(db))
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait()

    with Receiver() as after:
        assert vigil("otel", "export", "--all", "--endpoint", after.endpoint, db=db).returncode == 0
    expected = {key(s): content(s) for s in after.spans}
    got: dict = {}
    for s in live.spans:
        got.setdefault(key(s), set()).add(content(s))
    assert set(got) == set(expected), "the live spans are exactly the exported ones: none lost, none extra"
    differ = {k: (versions, expected[k]) for k, versions in got.items() if versions != {expected[k]}}
    assert not differ, f"a span sent twice is identical, and as exported: {next(iter(differ.values()))}"
    repeats = len(live.spans) - len(got)
    assert repeats <= 200, f"{repeats} spans resent: more than the one batch in flight"


def _follow_until_caught_up(store_path, sender, cursor, **kw):
    async def go():
        async with await Store.open(store_path, readonly=True) as store:
            follower = Follower(store, sender, cursor, retry_max=0.2, report=kw.get("report"))
            task = asyncio.create_task(follower.run(start=0))
            target = await store.head()
            try:
                while cursor.read() != target:
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.02)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return follower
    return asyncio.run(go())


@pytest.fixture
def demo_db():
    return demo_log()


def test_a_refused_batch_is_retried_never_skipped(demo_db, tmp_path):
    lines: list[str] = []
    with Receiver(refuse=2) as receiver:
        sender = OtlpSender(receiver.endpoint, timeout=5)
        _follow_until_caught_up(demo_db, sender.send, Cursor(tmp_path / "c.json"), report=lines.append)
    with Receiver() as after:
        sender = OtlpSender(after.endpoint, timeout=5)
        _follow_until_caught_up(demo_db, sender.send, Cursor(tmp_path / "fresh.json"))
    assert len(lines) == 2 and all("retrying" in line for line in lines)
    assert sorted(map(key, receiver.spans)) == sorted(map(key, after.spans))


class _CrashAfterSend(Cursor):
    """The process dies after a batch was sent and before the cursor moved past it."""

    def write(self, pos):
        if self.read() is not None:
            raise SystemExit("crash")
        super().write(pos)


def test_a_crash_between_send_and_cursor_resends_the_same_ids(demo_db, tmp_path):
    path = tmp_path / "c.json"
    with Receiver() as receiver:
        sender = OtlpSender(receiver.endpoint, timeout=5)

        async def crashing():
            async with await Store.open(demo_db, readonly=True) as store:
                with pytest.raises(SystemExit):
                    await Follower(store, sender.send, _CrashAfterSend(path)).run(start=0)
        asyncio.run(crashing())
        assert cursor_pos(path) == 0
        once = list(receiver.spans)
        assert once
        _follow_until_caught_up(demo_db, sender.send, Cursor(path))
    again = receiver.spans[len(once):]
    assert {key(s) for s in once} <= {key(s) for s in again}, "resent with the very same ids"
    assert len({key(s) for s in receiver.spans}) == len(again)
