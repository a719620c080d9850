"""export / import round-trips a run into another database with identical events."""

import asyncio
import json
import sqlite3
import zlib

import msgspec

from cli_helpers import vigil
from helpers import counter_steps, record_steps
from kernel.events import ActionRequested, InterruptRaised, RunStarted
from kernel.store import Store

ROWS = "SELECT run_id, seq, ts_ns, type, step_id, body, crc FROM events WHERE run_id=? ORDER BY seq"


def _make(db, run_id="run-x", steps=25):
    async def go():
        async with await Store.open(db) as store:
            await record_steps(store, run_id, counter_steps(steps))
            last = await store.last_seq(run_id)
            await store.append(
                run_id,
                [ActionRequested(action_id="a", step_id="s", kind="tool", name="t",
                                 input={"unicode": "héllo ✓", "nested": [1, 2.5, {"b": None}]}),
                 InterruptRaised(interrupt_id="i", step_id="s", kind="approval", title="ok?")],
                expected_seq=last,
            )

    asyncio.run(go())


def test_round_trip_identical_rows(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    _make(src)
    export = tmp_path / "run.jsonl"
    out = vigil("export", "run-x", "-o", str(export), db=src)
    assert out.returncode == 0, out.stderr
    lines = export.read_bytes().splitlines()
    assert len(lines) == 53 and json.loads(lines[0])["type"] == "RunStarted"

    out = vigil("import", str(export), db=dst)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "imported run run-x (53 events)"
    a = sqlite3.connect(src).execute(ROWS, ("run-x",)).fetchall()
    b = sqlite3.connect(dst).execute(ROWS, ("run-x",)).fetchall()
    assert a == b
    runs = [json.loads(x) for x in vigil("runs", "--json", db=dst).stdout.splitlines()]
    assert runs[0]["status"] == "waiting" and runs[0]["pending"] == 1 and runs[0]["last_seq"] == 53
    assert vigil("verify", db=dst).returncode == 0


def test_import_from_stdin_and_conflict(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    _make(src)
    data = vigil("export", "run-x", db=src).stdout
    assert vigil("import", "-", db=dst, input=data).returncode == 0
    again = vigil("import", "-", db=dst, input=data)
    assert again.returncode == 2 and "run run-x already exists" in again.stderr.decode()


def test_corrupt_and_unknown_rows_survive_the_round_trip(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    _make(src, steps=3)
    future = msgspec.msgpack.encode({"type": "NewThing", "x": 1})
    with sqlite3.connect(src) as conn:
        conn.execute("UPDATE events SET type='NewThing', body=?, crc=? WHERE seq=2", (future, zlib.crc32(future)))
        conn.execute("UPDATE events SET body=X'00FF' WHERE seq=3")
    data = vigil("export", "run-x", db=src).stdout
    assert vigil("import", "-", db=dst, input=data).returncode == 0
    a = sqlite3.connect(src).execute(ROWS, ("run-x",)).fetchall()
    b = sqlite3.connect(dst).execute(ROWS, ("run-x",)).fetchall()
    assert a == b
    out = vigil("verify", db=dst).stdout.decode()
    assert "seq 2: unknown event type 'NewThing'" in out and "seq 3: corrupt" in out


def test_a_bad_line_imports_nothing(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    _make(src, steps=5)
    lines = vigil("export", "run-x", db=src).stdout.splitlines()
    edited = json.loads(lines[7])
    edited["event"]["node"] = "tampered"
    lines[7] = json.dumps(edited).encode()
    out = vigil("import", "-", db=dst, input=b"\n".join(lines) + b"\n")
    assert out.returncode == 2
    assert "line 8 (seq 8): the re-encoded event differs" in out.stderr.decode()
    assert vigil("runs", "--json", db=dst).stdout == b""

    out = vigil("import", "-", db=dst, input=b'{"nope": 1}\n')
    assert out.returncode == 2 and out.stderr.decode().startswith("vigil: line 1: not a vigil export line")


def test_import_preserves_fork_lineage_fields(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"

    async def go():
        async with await Store.open(src) as store:
            await store.append("child", [RunStarted(graph="g", parent_run_id="p", parent_seq=7, labels={"k": "v"})], expected_seq=0)

    asyncio.run(go())
    assert vigil("import", "-", db=dst, input=vigil("export", "child", db=src).stdout).returncode == 0
    run = json.loads(vigil("runs", "--json", db=dst).stdout)
    assert run["parent_run_id"] == "p" and run["labels"] == {"k": "v"}
