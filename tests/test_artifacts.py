"""Artifacts: content-addressed bytes beside the events, in the same database, on both backends.
ctx.artifact is recorded once and replayed; a big tool output leaves its event for an artifact
and still reaches the node, live and on replay; export/import, copy and verify carry and check
them (the shell's side: tests/test_artifact_cli.py)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from kernel.artifacts import ArtifactMissing
from kernel.errors import Ambiguous, NotFound, VigilError
from kernel.events import ActionSucceeded, ArtifactStored
from kernel.graph import END, START, Graph
from kernel.log.sqlite import schema as sqlite_schema
from kernel.store import Store
from kernel.tools import tool
from runtime_helpers import events_of, pending, run, runtime


def one_node(name: str, fn, *, tools=(), version: str = "1") -> Graph:
    g = Graph(name, version=version, tools=list(tools))
    g.add_node("work", fn)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g


async def raw(db, sql_sqlite: str, sql_pg: str, args=()):
    """Rows straight from the database (not through vigil), to see what is really stored."""
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return conn.execute(sql_sqlite, args).fetchall()
    import psycopg

    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        cur = await conn.execute(sql_pg, args)
        return await cur.fetchall() if cur.description else []


# the port -----------------------------------------------------------------------------------


def test_put_is_content_addressed_idempotent_and_info_skips_the_bytes(both_backends):
    db = both_backends

    async def go():
        async with await Store.open(db) as store:
            a = await store.put_artifact(b"hello world", "text/plain")
            again = await store.put_artifact(b"hello world", "application/other")
            b = await store.put_artifact(bytearray(b"\x00\xff" * 1000), "application/octet-stream")
            assert a == again  # the same bytes: one row, the first kind kept
            assert a.artifact_id == hashlib.sha256(b"hello world").hexdigest()
            assert (a.kind, a.size) == ("text/plain", 11) and a.created_ns > 0
            assert await store.get_artifact(a.artifact_id) == b"hello world"
            assert await store.get_artifact(b.artifact_id) == b"\x00\xff" * 1000
            assert await store.artifact_info(b.artifact_id) == b
            assert await store.artifact_info("0" * 64) is None
            with pytest.raises(ArtifactMissing):
                await store.get_artifact("0" * 64)
            listed = [i async for i in store.iter_artifacts(page=1)]
            assert listed == sorted([a, b], key=lambda i: i.artifact_id)
            rows = await raw(db, "SELECT artifact_id, size FROM artifacts", "SELECT artifact_id, size FROM vigil.artifacts")
            assert sorted(rows) == sorted([(a.artifact_id, 11), (b.artifact_id, 2000)])  # one row per content
            assert await store.resolve_artifact(a.artifact_id[:10].upper()) == a.artifact_id
            with pytest.raises(NotFound):
                await store.resolve_artifact("f" * 64 if not a.artifact_id.startswith("f") else "e" * 64)
            # 17 artifacts: two of them share a first hex digit, so that digit is ambiguous
            ids = [(await store.put_artifact(str(i).encode(), "text/plain")).artifact_id for i in range(17)]
            shared = next(x[0] for x in ids if sum(y[0] == x[0] for y in ids) > 1)
            with pytest.raises(Ambiguous):
                await store.resolve_artifact(shared)
            with pytest.raises(VigilError, match="not an artifact id"):
                await store.resolve_artifact("")
            with pytest.raises(VigilError, match="not an artifact id"):
                await store.resolve_artifact("xyz%")

    run(go())


def test_a_read_only_log_refuses_put(both_backends):
    async def go():
        async with await Store.open(both_backends) as store:
            await store.put_artifact(b"x", "text/plain")
        async with await Store.open(both_backends, readonly=True) as store:
            assert await store.get_artifact(hashlib.sha256(b"x").hexdigest()) == b"x"
            with pytest.raises(VigilError, match="read-only"):
                await store.put_artifact(b"y", "text/plain")

    run(go())


# ctx.artifact ---------------------------------------------------------------------------------


def report_graph(made: list, content: bytes = b"a,b\n1,2\n", version: str = "1") -> Graph:
    async def work(state, ctx):
        made.append(content)
        ref = await ctx.artifact(content, "text/csv")
        answer = await ctx.interrupt("publish it?", {"artifact": ref.artifact_id})
        return {"ref": {"id": ref.artifact_id, "kind": ref.kind, "size": ref.size}, "answer": answer}

    return one_node("report", work, version=version)


def test_ctx_artifact_is_stored_and_recorded_once_across_a_restart(both_backends):
    db = both_backends
    made: list = []

    async def first():
        async with runtime(db, report_graph(made)) as (store, rt):
            run_id = await rt.start("report")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())

    async def second():  # another process: the node runs again from the top
        async with runtime(db, report_graph(made)) as (store, rt):
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state, await events_of(store, run_id)

    info, state, events = run(second())
    assert info.status == "completed" and len(made) == 2  # the node ran twice...
    stored = [e for e in events if isinstance(e, ArtifactStored)]
    assert len(stored) == 1  # ...the artifact was recorded once
    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert (stored[0].artifact_id, stored[0].kind, stored[0].size, stored[0].step_id) == (digest, "text/csv", 8, "1.work")
    assert state["ref"] == {"id": digest, "kind": "text/csv", "size": 8}
    rows = run(raw(db, "SELECT count(*) FROM artifacts", "SELECT count(*) FROM vigil.artifacts"))
    assert rows == [(1,)]


def test_ctx_artifact_with_other_bytes_on_replay_diverges(both_backends):
    db = both_backends

    async def first():
        async with runtime(db, report_graph([])) as (store, rt):
            run_id = await rt.start("report")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())

    async def second():
        async with runtime(db, report_graph([], b"other", version="2")) as (store, rt):
            await rt.resolve(run_id, raised.interrupt_id, "answer", "yes", payload_hash=raised.payload_hash)
            await rt.settle()
            return await store.run(run_id)

    info = run(second())
    assert info.status == "diverged" and "artifact text/csv" in info.error


def test_ctx_artifact_refuses_text(both_backends):
    async def work(state, ctx):
        try:
            await ctx.artifact("not bytes", "text/plain")
        except TypeError as exc:
            return {"error": str(exc)}
        return {}

    async def go():
        async with runtime(both_backends, one_node("t", work)) as (store, rt):
            run_id = await rt.start("t")
            await rt.settle()
            return (await store.state_at(run_id)).state

    assert run(go()) == {"error": "ctx.artifact takes bytes, not str"}


# tool outputs over the threshold ---------------------------------------------------------------


def big_output_graph(calls: list, make) -> Graph:
    @tool(idempotent=True)
    async def fetch() -> object:
        calls.append(1)
        return make()

    async def work(state, ctx):
        out = await ctx.tool("fetch")
        digest = hashlib.sha256(repr(out).encode()).hexdigest()
        answer = await ctx.interrupt("go on?", {"digest": digest})
        return {"digest": digest, "answer": answer, "type": type(out).__name__}

    return one_node("fetch", work, tools=[fetch])


@pytest.mark.parametrize("make", [
    lambda: "line of tool output\n" * 600,
    lambda: {"rows": [{"n": i, "text": "é" * 10} for i in range(400)]},
], ids=["text", "structured"])
def test_a_tool_output_over_the_threshold_is_an_artifact_and_replays_whole(both_backends, make):
    db = both_backends
    calls: list = []
    expected = hashlib.sha256(repr(make()).encode()).hexdigest()

    async def first():
        async with runtime(db, big_output_graph(calls, make)) as (store, rt):
            rt.artifact_threshold = 1024
            run_id = await rt.start("fetch")
            await rt.settle()
            raised = pending(rt, run_id)[0]
            assert raised.payload == {"digest": expected}  # the node saw the real output live
            return run_id, raised

    run_id, raised = run(first())

    async def second():  # a new process: the node re-executes, the tool does not
        async with runtime(db, big_output_graph(calls, make)) as (store, rt):
            rt.artifact_threshold = 1024
            await rt.resolve(run_id, raised.interrupt_id, "answer", "ok", payload_hash=raised.payload_hash)
            await rt.settle()
            return (await store.state_at(run_id)).state, await events_of(store, run_id), store

    state, events, _ = run(second())
    assert calls == [1]
    assert state["digest"] == expected and state["type"] == type(make()).__name__  # and on replay
    out = next(e for e in events if isinstance(e, ActionSucceeded))
    stored = next(e for e in events if isinstance(e, ArtifactStored))
    assert out.output == {"artifact_id": stored.artifact_id, "kind": stored.kind, "size": stored.size}
    assert stored.action_id == out.action_id and stored.size > 1024


def test_a_small_tool_output_stays_in_its_event(both_backends):
    calls: list = []

    async def go():
        async with runtime(both_backends, big_output_graph(calls, lambda: "small")) as (store, rt):
            run_id = await rt.start("fetch")
            await rt.settle()
            return await events_of(store, run_id)

    events = run(go())
    assert not [e for e in events if isinstance(e, ArtifactStored)]
    assert next(e for e in events if isinstance(e, ActionSucceeded)).output == "small"


def test_a_100_mb_tool_output_is_not_in_any_event_row(both_backends):
    db = both_backends
    line = "2026-11-30T08:00:00Z INFO request served in 12 ms, bytes=123456\n"  # 64 characters
    size = 100 * 1024 * 1024
    calls: list = []

    async def go():
        async with runtime(db, big_output_graph(calls, lambda: line * (size // len(line)))) as (store, rt):
            run_id = await rt.start("fetch")
            await rt.settle()
            return run_id

    run_id = run(go())
    biggest = run(raw(db, "SELECT max(length(body)), count(*) FROM events WHERE run_id = ?",
                      "SELECT max(octet_length(body)), count(*) FROM vigil.events WHERE run_id = %s", (run_id,)))
    assert biggest[0][0] < 4096, f"an event row of {biggest[0][0]} bytes"
    stored = run(raw(db, "SELECT size, length(data) FROM artifacts", "SELECT size, octet_length(data) FROM vigil.artifacts"))
    assert stored == [(size, size)]


# export/import, copy, verify, `vigil artifact` -------------------------------------------------

CSV = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(200))


def shipping_graph() -> Graph:
    @tool(idempotent=True)
    async def crawl() -> str:
        return "<html>" + "page text " * 500 + "</html>"

    async def work(state, ctx):
        ref = await ctx.artifact(CSV, "text/csv")
        page = await ctx.tool("crawl")
        return {"csv": ref.artifact_id, "page_len": len(page)}

    return one_node("ship", work, tools=[crawl])


async def shipped_run(db) -> str:
    async with runtime(db, shipping_graph()) as (store, rt):
        rt.artifact_threshold = 1024
        run_id = await rt.start("ship")
        await rt.settle()
        assert (await store.run(run_id)).status == "completed"
        return run_id


# a real crash (kill -9) between ctx.artifact and the end of the step ----------------------------

CRASH_WORKER = '''
import asyncio, hashlib, os, sys
from pathlib import Path
from kernel.engine.runtime import Runtime
from kernel.graph import END, START, Graph
from kernel.registry import Registry
from kernel.store import Store
from kernel.tools import tool

MARK = Path(sys.argv[2])

@tool(idempotent=True)
async def build() -> str:
    if not MARK.exists():  # the first time: say so, then hang until killed
        MARK.write_text("started")
        await asyncio.sleep(3600)
    return "compiled object code\\n" * 10000

async def work(state, ctx):
    ref = await ctx.artifact(b"the report", "text/plain")
    out = await ctx.tool("build")
    return {"report": ref.artifact_id, "build": hashlib.sha256(out.encode()).hexdigest()}

g = Graph("crashy", tools=[build])
g.add_node("work", work)
g.add_edge(START, "work")
g.add_edge("work", END)

async def main():
    reg = Registry()
    reg.add(g)
    async with await Store.open(sys.argv[1]) as store:
        async with Runtime(store, reg) as rt:
            if sys.argv[3] == "start":
                print(await rt.start("crashy"), flush=True)
            await rt.resume()
            await rt.settle()

asyncio.run(main())
'''


def test_after_a_kill_9_ctx_artifact_is_not_stored_or_recorded_twice(both_backends, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from cli_helpers import ROOT

    db, mark = both_backends, tmp_path / "mark"

    def worker(mode: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", CRASH_WORKER, str(db), str(mark), mode], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    proc = worker("start")
    run_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 60
    while not mark.exists():  # ctx.artifact has committed; the tool is running
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    async def before():
        async with await Store.open(db, readonly=True) as store:
            return [type(e).__name__ for e in await events_of(store, run_id)]

    assert run(before()).count("ArtifactStored") == 1
    # Same host: the dead owner's pid frees the run at once, and the new process resumes it.
    out, err = worker("resume").communicate(timeout=120)
    assert "Traceback" not in err, err

    async def after():
        async with await Store.open(db, readonly=True) as store:
            return await store.run(run_id), (await store.state_at(run_id)).state, await events_of(store, run_id)

    info, state, events = run(after())
    assert info.status == "completed", info
    stored = [e for e in events if isinstance(e, ArtifactStored)]
    assert [(s.action_id, s.kind) for s in stored] == [
        ("1.work#0", "text/plain"), ("1.work#1", "text/plain; charset=utf-8")]  # the report once; the output
    assert state == {"report": hashlib.sha256(b"the report").hexdigest(),
                     "build": hashlib.sha256(("compiled object code\n" * 10000).encode()).hexdigest()}
    rows = run(raw(db, "SELECT count(*) FROM artifacts", "SELECT count(*) FROM vigil.artifacts"))
    assert rows == [(2,)]


def test_a_fork_replays_artifact_outputs_and_cuts_one_in_flight(both_backends):
    db = both_backends
    run_id = run(shipped_run(db))

    async def go():
        async with runtime(db, shipping_graph()) as (store, rt):
            rt.artifact_threshold = 1024
            events = [r async for r in store.iter_events(run_id)]
            output_stored = next(r.seq for r in events if isinstance(r.event, ArtifactStored)
                                 and r.event.action_id == "1.work#1")
            forks = [await rt.fork(run_id, output_stored), await rt.fork(run_id, output_stored + 1)]
            for fork in forks:
                await rt.adopt(fork)
            await rt.settle()
            return [(await store.run(f), (await store.state_at(f)).state, await events_of(store, f)) for f in forks]

    parent_state = run(_state(db, run_id))
    for info, state, events in run(go()):
        assert info.status == "completed", info.error
        assert state == parent_state  # the same output reached the node
        outputs = [e for e in events if isinstance(e, ArtifactStored) and e.action_id == "1.work#1"]
        assert len(outputs) == 1  # cut and stored afresh, or kept: never both


async def _state(db, run_id):
    async with await Store.open(db, readonly=True) as store:
        return (await store.state_at(run_id)).state


def test_a_log_from_before_artifacts_is_migrated_and_keeps_its_runs(both_backends):
    """The artifacts table is one self-contained migration step on each backend."""
    db = both_backends
    run_id = run(shipped_run(db))
    run(raw(db, "DROP TABLE artifacts", "DROP TABLE vigil.artifacts"))
    old = "5" if isinstance(db, Path) else "3"  # the version before the step, per backend
    run(raw(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'",
            "UPDATE vigil.meta SET value = %s WHERE key = 'schema_version'", (old,)))

    async def reopen():
        async with await Store.open(db) as store:
            assert (await store.run(run_id)).status == "completed"
            info = await store.put_artifact(b"after the upgrade", "text/plain")
            return await store.get_artifact(info.artifact_id)

    assert run(reopen()) == b"after the upgrade"
    version = run(raw(db, "SELECT value FROM meta WHERE key = 'schema_version'",
                      "SELECT value FROM vigil.meta WHERE key = 'schema_version'"))
    assert version == [(str(sqlite_schema.SCHEMA_VERSION),)] if isinstance(db, Path) else [("4",)]


def test_a_log_that_refuses_the_bytes_loses_the_run_and_a_later_process_finishes_it(both_backends):
    """The artifacts table refuses writes (a trigger standing in for a full disk): the driver
    stops as it does when an append fails; the run is let go, nothing references missing bytes;
    once the table takes writes again, the next process drives the run to its end."""
    db = both_backends
    calls: list = []
    make = lambda: "x" * 5000  # noqa: E731
    sqlite_trigger = ("CREATE TRIGGER refuse BEFORE INSERT ON artifacts "
                      "BEGIN SELECT RAISE(ABORT, 'no space left on device'); END")
    pg_trigger = ("CREATE FUNCTION vigil.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$;")
    run(shipped_run(db))  # makes the tables
    run(raw(db, sqlite_trigger, pg_trigger))
    if not isinstance(db, Path):
        run(raw(db, "", "CREATE TRIGGER refuse BEFORE INSERT ON vigil.artifacts FOR EACH ROW EXECUTE FUNCTION vigil.refuse()"))

    async def first():
        async with runtime(db, big_output_graph(calls, make)) as (store, rt):
            rt.artifact_threshold = 1024
            run_id = await rt.start("fetch")
            await rt.settle()
            assert run_id not in rt.drivers  # lost, and let go: its owner is cleared (by a task)
            for _ in range(200):
                if (await store.run(run_id)).owner is None:
                    break
                await asyncio.sleep(0.05)
            assert (await store.run(run_id)).owner is None
            return run_id, await events_of(store, run_id)

    run_id, events = run(first())
    assert calls == [1] and not [e for e in events if isinstance(e, (ArtifactStored, ActionSucceeded))]
    run(raw(db, "DROP TRIGGER refuse", "DROP TRIGGER refuse ON vigil.artifacts"))

    async def second():
        async with runtime(db, big_output_graph(calls, make)) as (store, rt):
            rt.artifact_threshold = 1024
            await rt.resume()
            await rt.settle()
            return pending(rt, run_id)

    waiting = run(second())
    assert [w.title for w in waiting] == ["go on?"] and calls == [1, 1]  # idempotent: run again


def test_a_bad_threshold_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """VIGIL_ARTIFACT_THRESHOLD was read after an effect had run: a bad value failed the step
    there, leaving the effect's request with no outcome. Now the runtime refuses it at start."""
    from cli_helpers import vigil

    db = tmp_path / "t.db"
    for bad, why in (("64k", "is not a number of bytes"), ("-1", "is negative")):
        monkeypatch.setenv("VIGIL_ARTIFACT_THRESHOLD", bad)
        out = vigil("run", "triage", "--headless", "--input", '{"alert": "disk full"}', db=db)
        err = out.stderr.decode()
        assert out.returncode == 2 and why in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.delenv("VIGIL_ARTIFACT_THRESHOLD")
    listed = vigil("runs", "--json", db=db)
    assert listed.stdout.strip() == b""  # no run was started
