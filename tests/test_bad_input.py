"""Steering survives bad input: malformed signals, stale writers, bad imports, bad files and
arguments. Real SQLite files and real subprocesses; nothing is mocked."""

import asyncio
import base64
import json
import math
import os
import sqlite3
import subprocess
import time

import msgspec
import pytest

from cli_helpers import vigil
from helpers import counter_steps, record_steps
from kernel.errors import ConcurrencyError, StoreError
from kernel.events import ActionSucceeded, Actor, InterruptResolved, Patch, RunCompleted, RunPaused, RunStarted
from kernel.owner import current_actor
from kernel.store import Store
from cli_helpers import ROOT
from input_workflows import filler, gate
from runtime_helpers import events_of, pending, run, runtime

WORKFLOWS_PATH = f"{ROOT}{os.pathsep}{ROOT / 'tests'}"  # PYTHONPATH for --workflows input_workflows


def one_line_exit_2(out) -> str:
    err = out.stderr.decode()
    assert out.returncode == 2, (out.returncode, err)
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("vigil: "), err
    return err


# signals ---------------------------------------------------------------------------------


def _raw_signal(db, run_id: str, kind: str, body: bytes, sender: str | None) -> int:
    conn = sqlite3.connect(db)
    with conn:
        cur = conn.execute(
            "INSERT INTO signals(run_id, kind, body, created_ns, sender) VALUES (?, ?, ?, ?, ?)",
            (run_id, kind, body, time.time_ns(), sender),
        )
    conn.close()
    return cur.lastrowid


def _outcomes(db) -> dict[int, tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, applied_ns, result FROM signals").fetchall()
    conn.close()
    return {i: (applied, result) for i, applied, result in rows}


def test_malformed_signal_rows_are_refused_and_loop_survives(db):
    me = msgspec.json.encode(current_actor()).decode()

    async def go():
        async with runtime(db, gate(), signal_interval=0.02) as (store, rt):
            run_id = await rt.start("gate")
            await rt.settle()
            raised = pending(rt, run_id)[0]
            good = {"interrupt_id": raised.interrupt_id, "decision": "approve", "payload_hash": raised.payload_hash}
            bad = {
                "not JSON": (b"{nope", me),
                "not UTF-8": (b"\xff\xfe{}", me),
                "JSON not an object": (b"[1, 2, 3]", me),
                "missing interrupt_id": (json.dumps({k: v for k, v in good.items() if k != "interrupt_id"}).encode(), me),
                "missing payload_hash": (json.dumps({k: v for k, v in good.items() if k != "payload_hash"}).encode(), me),
                "wrong types": (json.dumps({**good, "interrupt_id": 5, "always": "yes"}).encode(), me),
                "decision not a string": (json.dumps({**good, "decision": ["approve"]}).encode(), me),
                "value not encodable": (json.dumps({**good, "value": 2**70}).encode(), me),
                "lone surrogate": (b'{"interrupt_id": "\\ud800", "decision": "approve", "payload_hash": "x"}', me),
                "deeply nested": (b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", me),
                "no sender recorded": (json.dumps(good).encode(), None),
                "sender not an actor": (json.dumps(good).encode(), "mallory"),
            }
            ids = {why: _raw_signal(db, run_id, "resolve", body, sender) for why, (body, sender) in bad.items()}
            ids["unknown kind"] = _raw_signal(db, run_id, "explode", json.dumps(good).encode(), me)
            ids["cancel with a bad reason"] = _raw_signal(db, run_id, "cancel", b'{"reason": 7}', me)
            ids["pause with a bad reason"] = _raw_signal(db, run_id, "pause", b'{"reason": ["x"]}', me)
            ids["unpause not an object"] = _raw_signal(db, run_id, "unpause", b'"go"', me)
            unknown_run = _raw_signal(db, "no-such-run", "resolve", json.dumps(good).encode(), me)
            # A good approve after all of them, from another process's store, whose body claims
            # to come from someone else: the owner must apply it, as the sender it recorded.
            liar = {**good, "actor": {"user": "mallory", "uid": 0, "host": "elsewhere", "pid": 1}}
            async with await Store.open(db) as other:
                good_id = await other.send_signal(run_id, "resolve", liar, current_actor())
                deadline = time.monotonic() + 20
                while await other.signal_result(good_id) is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            await rt.settle()
            return run_id, ids, unknown_run, good_id, await events_of(store, run_id), await store.run(run_id)

    run_id, ids, unknown_run, good_id, events, info = run(go())
    outcomes = _outcomes(db)
    for why, signal_id in ids.items():
        applied, result = outcomes[signal_id]
        assert applied is not None, f"{why}: never finished"
        assert result.startswith("error: refused"), f"{why}: {result}"
    assert outcomes[unknown_run] == (None, None)  # nobody owns that run; nobody touches it
    assert outcomes[good_id][1] == "ok"
    assert info.status == "completed"
    resolved = [e for e in events if isinstance(e, InterruptResolved)]
    assert len(resolved) == 1
    me_now = current_actor()
    assert resolved[0].actor.user == me_now.user and resolved[0].actor.uid == me_now.uid
    assert resolved[0].actor.claimed is True  # relayed by a signal: what the sender recorded
    assert "mallory" not in repr(events)


def test_bad_signals_do_not_poison_the_next_owner(db):
    """A row a dead owner never got to is refused by the next owner, which still applies the rest."""

    async def first():
        async with runtime(db, gate()) as (store, rt):
            run_id = await rt.start("gate")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(first())
    me = msgspec.json.encode(current_actor()).decode()
    bad_id = _raw_signal(db, run_id, "resolve", b"{nope", me)
    good = {"interrupt_id": raised.interrupt_id, "decision": "approve", "payload_hash": raised.payload_hash}
    good_id = _raw_signal(db, run_id, "resolve", json.dumps(good).encode(), me)

    async def second():
        async with runtime(db, gate(), signal_interval=0.02) as (store, rt):
            await rt.adopt(run_id, drive=False)
            deadline = time.monotonic() + 20
            while _outcomes(db)[good_id][0] is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await rt.settle()
            return await store.run(run_id)

    info = run(second())
    assert _outcomes(db)[bad_id][1].startswith("error: refused")
    assert _outcomes(db)[good_id][1] == "ok"
    assert info.status == "completed"


def test_relayed_pause_records_the_sender_it_claims(db):
    """The owner cannot check who sent a signal: it records the sender the row names, marked
    claimed, never itself and never an actor in the body."""
    alice = Actor(user="alice", uid=1001, host="other-host", pid=7, tty="/dev/pts/3")

    async def go():
        async with runtime(db, gate(), signal_interval=0.02) as (store, rt):
            run_id = await rt.start("gate")
            await rt.settle()
            body = {"reason": "lunch", "actor": {"user": "mallory", "uid": 0, "host": "x", "pid": 1}}
            async with await Store.open(db) as other:
                signal_id = await other.send_signal(run_id, "pause", body, alice)
                await _until(lambda: _finished(other, signal_id))
                outcome = await other.signal_result(signal_id)
            return outcome, await events_of(store, run_id)

    outcome, events = run(go())
    assert outcome == "ok"
    paused = next(e for e in events if isinstance(e, RunPaused))
    assert paused.actor == msgspec.structs.replace(alice, claimed=True)


async def _finished(store, signal_id) -> bool:
    return await store.signal_result(signal_id) is not None


def test_decisions_made_here_are_not_marked_claimed(db):
    async def go():
        async with runtime(db, gate()) as (store, rt):
            run_id = await rt.start("gate")
            await rt.settle()
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            await rt.settle()
            return await events_of(store, run_id)

    resolved = next(e for e in run(go()) if isinstance(e, InterruptResolved))
    assert resolved.actor.claimed is False
    assert b"claimed" not in msgspec.msgpack.encode(resolved)  # old bodies stay byte-identical


# the log -----------------------------------------------------------------------------------


def test_stale_writer_gets_concurrency_error(db):
    async def go():
        async with await Store.open(db) as a, await Store.open(db) as b:
            assert await a.append("r", [RunStarted(graph="g")], expected_seq=0) == 1
            assert await b.append("r", [ActionSucceeded(action_id="b")], expected_seq=1) == 2
            # `a` last left the run at 1 and still believes it; the log is at 2.
            with pytest.raises(ConcurrencyError) as caught:
                await a.append("r", [ActionSucceeded(action_id="a")], expected_seq=1)
            return caught.value, await a.append("r", [ActionSucceeded(action_id="a")], expected_seq=2)

    error, seq = run(go())
    assert (error.expected, error.actual) == (1, 2)
    assert seq == 3


def test_writer_survives_a_row_sqlite_cannot_bind(db):
    async def go():
        async with await Store.open(db) as store:
            with pytest.raises(StoreError, match="too large"):
                await store.append("r", [RunStarted(graph="g")], expected_seq=0, ts_ns=2**64 - 1)
            return await store.append("r", [RunStarted(graph="g")], expected_seq=0)

    assert run(go()) == 1


def _export(db, run_id) -> list[bytes]:
    out = vigil("export", run_id, db=db)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_import_refuses_seq_gaps(tmp_path):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"

    async def make():
        async with await Store.open(src) as store:
            await record_steps(store, "gappy", counter_steps(3))

    run(make())
    lines = _export(src, "gappy")
    for name, broken, expect in (
        ("gap", lines[:2] + lines[3:], "seq 3 is missing"),
        ("duplicate", lines[:3] + lines[2:], "seq 3 comes twice"),
        ("late start", lines[1:], "seq 1 is missing"),
    ):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(broken) + b"\n")
        err = one_line_exit_2(vigil("import", str(path), db=dst))
        assert expect in err and "gappy" in err, err
        assert vigil("runs", "--json", db=dst).stdout == b""  # nothing written


def test_an_import_refused_creates_no_database(tmp_path):
    """A file that fails validation leaves no new, empty log behind (as an empty file does)."""
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    run(_make_one(src))
    lines = _export(src, "kept")
    path = tmp_path / "gap.jsonl"
    path.write_bytes(b"\n".join(lines[:1] + lines[2:]) + b"\n")
    err = one_line_exit_2(vigil("import", str(path), db=dst))
    assert "seq 2 is missing" in err, err
    assert not list(tmp_path.glob("dst.db*"))
    run(_make_one(dst))  # an existing log is left where it was, not removed
    err = one_line_exit_2(vigil("import", str(path), db=dst))
    assert dst.exists() and vigil("runs", "--json", db=dst).stdout != b""


def test_import_of_a_file_with_no_runs_is_refused_and_creates_no_database(tmp_path):
    dst = tmp_path / "dst.db"
    empty, blank = tmp_path / "empty.jsonl", tmp_path / "blank.jsonl"
    empty.write_bytes(b"")
    blank.write_bytes(b"\n  \n\n")
    for path in (empty, blank):
        err = one_line_exit_2(vigil("import", str(path), db=dst))
        assert f"{path} has no runs to import" in err, err
        assert not dst.exists() and not list(tmp_path.glob("dst.db*"))  # no new, empty log left behind
    err = one_line_exit_2(vigil("import", "-", db=dst, input=b""))
    assert "stdin has no runs to import" in err and not dst.exists()

    run(_make_one(dst))  # an existing log: refused the same, and left as it was
    before = vigil("runs", "--json", db=dst).stdout
    err = one_line_exit_2(vigil("import", str(empty), db=dst))
    assert "has no runs to import" in err
    assert vigil("runs", "--json", db=dst).stdout == before != b""


async def _make_one(db) -> None:
    async with await Store.open(db) as store:
        await record_steps(store, "kept", counter_steps(1))


def test_import_refuses_integers_past_64_bits(tmp_path):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"

    async def make():
        async with await Store.open(src) as store:
            await record_steps(store, "wide", counter_steps(1))

    run(make())
    lines = _export(src, "wide")
    for field in ("ts_ns", "crc"):
        doc = json.loads(lines[0])
        doc[field] = 2**64 - 1
        path = tmp_path / f"{field}.jsonl"
        path.write_bytes(b"\n".join([json.dumps(doc).encode(), *lines[1:]]) + b"\n")
        err = one_line_exit_2(vigil("import", str(path), db=dst))
        assert "line 1" in err, err
        assert vigil("runs", "--json", db=dst).stdout == b""


def test_nan_inf_round_trip(tmp_path):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    weird = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "list": [1.5, math.nan]}

    async def make():
        async with await Store.open(src) as store:
            await store.append("floaty", [RunStarted(graph="g", input=weird)], expected_seq=0)
            await store.append("floaty", [RunCompleted(output=weird)], expected_seq=1)

    run(make())
    path = tmp_path / "floaty.jsonl"
    path.write_bytes(b"\n".join(_export(src, "floaty")) + b"\n")
    out = vigil("import", str(path), db=dst)
    assert out.returncode == 0, out.stderr

    def rows(p):
        conn = sqlite3.connect(p)
        found = conn.execute("SELECT seq, ts_ns, type, step_id, body, crc FROM events ORDER BY seq").fetchall()
        status = conn.execute("SELECT status FROM runs").fetchall()
        conn.close()
        return found, status

    assert rows(dst) == rows(src)
    assert rows(dst)[1] == [("completed",)]
    # The line stays readable: the event is there as JSON too, beside the exact body.
    first = json.loads(path.read_bytes().splitlines()[0])
    assert first["event"]["type"] == "RunStarted" and base64.b64decode(first["body_b64"])


# the CLI on bad input: one line, exit 2 ------------------------------------------------------


def _db_with_a_run(db) -> str:
    async def make():
        async with await Store.open(db) as store:
            await record_steps(store, "somerun", counter_steps(3))

    run(make())
    return "somerun"


def test_cli_deep_json_input_is_one_line(db, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", WORKFLOWS_PATH)
    # 60,000 levels: one argument may not pass 128 KiB on Linux (MAX_ARG_STRLEN). 500 levels
    # parse, and are refused further in.
    deep, medium = "[" * 60_000 + "]" * 60_000, "[" * 500 + "]" * 500
    err = one_line_exit_2(vigil("run", "support", "--headless", "--input", deep, db=db))
    assert "--input" in err and "nested too deeply" in err
    err = one_line_exit_2(vigil("run", "support", "--headless", "--input", medium, db=db))
    assert "nested too deeply" in err

    async def waiting():
        async with runtime(db, gate()) as (store, rt):
            run_id = await rt.start("gate")
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    run_id, raised = run(waiting())
    seen = ("--interrupt", raised.interrupt_id, "--hash", raised.payload_hash)
    for value in (deep, medium):
        err = one_line_exit_2(vigil("approve", run_id, *seen, "--workflows", "input_workflows", "--edit", value, db=db))
        assert "nested too deeply" in err


def test_cli_lone_surrogates_are_one_line(db):
    err = one_line_exit_2(vigil("run", "support", "--headless", "--input", '"\\ud800"', db=db))
    assert "surrogate" in err
    _db_with_a_run(db)
    one_line_exit_2(vigil("events", "some\udcffrun", db=db))  # argv bytes that are not UTF-8


def test_cli_huge_seq_arguments_are_one_line(db):
    run_id = _db_with_a_run(db)
    for args in (("state", run_id, "--at"), ("events", run_id, "--from"), ("events", run_id, "--to"),
                 ("fork", run_id, "--at")):
        err = one_line_exit_2(vigil(*args, "99999999999999999999", db=db))
        assert "99999999999999999999" in err


def test_cli_workflows_register_that_raises_is_one_line(db, tmp_path, monkeypatch):
    (tmp_path / "badwf.py").write_text("def register(registry):\n    raise RuntimeError('boom in register')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    err = one_line_exit_2(vigil("graphs", "--workflows", "badwf", db=db))
    assert "badwf" in err and "boom in register" in err


def test_cli_bad_schema_version_is_one_line(db):
    _db_with_a_run(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    conn.close()
    for args in (("runs",), ("events", "somerun"), ("import", "/dev/null")):
        err = one_line_exit_2(vigil(*args, db=db))
        assert "schema_version" in err and "abc" in err


def test_cli_page_corruption_is_one_line(db):
    async def make():
        async with await Store.open(db) as store:
            await record_steps(store, "big", [(Patch("append", "log", "x" * 300),)] * 400)

    run(make())
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    page = 4096
    with open(db, "r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(b"\xa5" * page)
    for args in (("events", "big"), ("verify",), ("state", "big")):
        one_line_exit_2(vigil(*args, db=db))


def test_cli_labels_not_json_is_one_line(db):
    run_id = _db_with_a_run(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET labels = '{oops' WHERE run_id = ?", (run_id,))
    conn.close()
    for args in (("runs",), ("runs", "--json"), ("state", run_id)):
        err = one_line_exit_2(vigil(*args, db=db))
        assert run_id in err and "labels" in err


# a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB filesystem (tmpfs): SQLite gets a real ENOSPC, SQLITE_FULL."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _grow(where) -> None:
    subprocess.run(["mount", "-o", "remount,size=64m", str(where)], check=True, capture_output=True)


def _fill(path) -> None:
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


async def _until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_owner_that_hits_disk_full_releases_its_runs_and_another_adopts(small_disk, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", WORKFLOWS_PATH)
    db = small_disk / "vigil.db"

    async def go():
        async with runtime(db, filler(), gate()) as (store, rt):
            told: list[tuple] = []
            rt.listen(lambda what, run_id, data: told.append((what, run_id, data)))
            run_id = await rt.start("filler")

            async def lost():
                return any(what == "lost" for what, *_ in told)

            await _until(lost)
            assert run_id not in rt.drivers
            why = next(data for what, _, data in told if what == "lost")
            # Not a byte left: the release (a write too) fails; the owner keeps trying, alive.
            _fill(small_disk / "filler")

            async def released():
                return (await store.run(run_id)).owner is None

            async def retried_or_released():
                retries = sum(what == "error" and "cannot release" in data for what, _, data in told)
                return retries >= 2 or await released()

            await _until(retried_or_released)
            _grow(small_disk)  # someone makes room
            await _until(released)
            # Another process adopts it while this one, its old owner, is still alive.
            out = await asyncio.to_thread(
                vigil, "resume", run_id, "--workflows", "input_workflows", db=db, timeout=120
            )
            return run_id, why, out, await store.run(run_id)

    run_id, why, out, info = run(go())
    assert "database or disk is full" in why
    assert out.returncode == 0, out.stderr
    assert f"run {run_id}: completed" in out.stdout.decode()
    assert info.status == "completed"
    assert vigil("verify", run_id, db=db).returncode == 0


def test_vigil_run_on_a_full_disk_is_one_line(small_disk, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", WORKFLOWS_PATH)
    db = small_disk / "vigil.db"
    out = vigil("run", "filler", "--headless", "--workflows", "input_workflows", db=db, timeout=120)
    err = one_line_exit_2(out)
    assert "database or disk is full" in err and "vigil resume" in err
    _grow(small_disk)
    run_id = json.loads(vigil("runs", "--json", db=db).stdout)["run_id"]
    resumed = vigil("resume", run_id, "--workflows", "input_workflows", db=db, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(vigil("runs", "--json", db=db).stdout)["status"] == "completed"
    assert vigil("verify", run_id, db=db).returncode == 0


def test_a_patch_of_the_wrong_kind_is_a_problem_not_a_traceback(tmp_path):
    """A log written by hand or by a bug: `extend` with a number, `merge` of a list. Every fold
    (replay's, the verifier's, the scrubber's) names the seq; nothing crashes."""
    from kernel.events import StepCompleted, StepStarted
    from kernel.log.folding import fold_one, fold_rows
    from kernel.codec import encode

    db = tmp_path / "crafted.db"
    bad = [StepCompleted(step_id="1.a", node="a", update=(Patch("extend", "x", 5),), next=("b",)),
           StepCompleted(step_id="2.b", node="b", update=(Patch("merge", "m", [1, 2]),), next=())]

    async def make():
        async with await Store.open(db) as store:
            await store.append("r1", [RunStarted(graph="g", update=(Patch("set", "m", {}),)),
                                      StepStarted(step_id="1.a", node="a"), bad[0],
                                      StepStarted(step_id="2.b", node="b"), bad[1]], expected_seq=0)

    run(make())
    out = vigil("verify", db=db)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 1 and "Traceback" not in out.stderr.decode(), out
    assert "run r1 seq 3: patch does not apply: extend of 'x' with a int, not a list" in lines
    assert "run r1 seq 5: patch does not apply: merge into 'm' of a list, not a mapping" in lines
    out = vigil("state", "r1", db=db)
    assert out.returncode == 1 and "Traceback" not in out.stderr.decode(), out
    assert "seq 3: extend of 'x' with a int, not a list" in out.stderr.decode()
    # both folds agree on what they say
    rows = [(3, "StepCompleted", *encode(bad[0])), (5, "StepCompleted", *encode(bad[1]))]
    inline, one = [], []
    fold_rows({"m": {}}, rows, inline)
    state: dict = {"m": {}}
    for seq, type_, body, crc in rows:
        fold_one(state, seq, type_, body, crc, one)
    assert inline == one == [(3, "extend of 'x' with a int, not a list"),
                             (5, "merge into 'm' of a list, not a mapping")]
