"""Rows damaged or written by a newer vigil, with plain sqlite3; nothing reading the log crashes."""

import asyncio
import json
import sqlite3
import zlib

import msgspec
import pytest

from cli_helpers import vigil
from helpers import counter_steps, record_steps
from kernel.store import Store


@pytest.fixture
def damaged(db):
    """A 21-event run: seq 5 has a flipped byte, seq 9 is an unknown type, seq 13 has a bad hash."""

    async def make():
        async with await Store.open(db) as store:
            await record_steps(store, "run-a", counter_steps(10))

    asyncio.run(make())
    conn = sqlite3.connect(db)
    body = bytearray(conn.execute("SELECT body FROM events WHERE run_id='run-a' AND seq=5").fetchone()[0])
    body[len(body) // 2] ^= 0x5A
    conn.execute("UPDATE events SET body=? WHERE run_id='run-a' AND seq=5", (bytes(body),))
    future = msgspec.msgpack.encode({"type": "PlanRevised", "plan": [1, 2]})
    conn.execute(
        "UPDATE events SET type='PlanRevised', body=?, crc=? WHERE run_id='run-a' AND seq=9",
        (future, zlib.crc32(future)),
    )
    # seq 13 is a StepCompleted; give it a plausible but wrong recorded hash, crc kept valid
    raw = msgspec.msgpack.decode(conn.execute("SELECT body FROM events WHERE run_id='run-a' AND seq=13").fetchone()[0])
    raw["state_hash"] = "0" * 64
    forged = msgspec.msgpack.encode(raw)
    conn.execute("UPDATE events SET body=?, crc=? WHERE run_id='run-a' AND seq=13", (forged, zlib.crc32(forged)))
    conn.commit()
    conn.close()
    return db


def test_events_shows_bad_rows_by_seq(damaged):
    out = vigil("events", "run-a", db=damaged)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 21
    assert "CORRUPT: checksum mismatch" in lines[4] and lines[4].split()[0] == "5"
    assert "PlanRevised" in lines[8] and "unknown event type" in lines[8]

    js = [json.loads(line) for line in vigil("events", "run-a", "--json", db=damaged).stdout.splitlines()]
    assert js[4]["seq"] == 5 and js[4]["corrupt"] == "checksum mismatch"
    assert js[8]["seq"] == 9 and js[8]["unknown"] is True and js[8]["type"] == "PlanRevised"


def test_state_reports_the_rows_it_skipped(damaged):
    out = vigil("state", "run-a", db=damaged)
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "seq 5: corrupt StepCompleted (checksum mismatch)" in err
    assert "seq 9: unknown event type 'PlanRevised'" in err
    assert "Traceback" not in err
    state = json.loads(out.stdout.decode().split("\n", 1)[1])
    assert state["i"] == 9  # the later steps still fold


def test_verify_names_every_bad_seq_and_exits_1(damaged):
    out = vigil("verify", db=damaged)
    assert out.returncode == 1
    text = out.stdout.decode()
    assert "run run-a seq 5: corrupt StepCompleted row (checksum mismatch)" in text
    assert "run run-a seq 9: unknown event type 'PlanRevised'" in text
    assert "run run-a seq 13: state hash mismatch" in text
    assert "Traceback" not in out.stderr.decode()


def test_verify_reports_a_gap(db):
    async def make():
        async with await Store.open(db) as store:
            await record_steps(store, "run-b", counter_steps(3))

    asyncio.run(make())
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE run_id='run-b' AND seq IN (3, 4)")
    out = vigil("verify", "run-b", db=db)
    assert out.returncode == 1
    assert "run run-b seq 3: gap: seq 3..4 missing" in out.stdout.decode()


def test_clean_log_verifies(db):
    async def make():
        async with await Store.open(db) as store:
            await record_steps(store, "run-c", counter_steps(30))

    asyncio.run(make())
    out = vigil("verify", db=db)
    assert out.returncode == 0
    assert "run run-c: ok (61 events, 30 state hashes" in out.stdout.decode()


def test_a_corrupt_snapshot_is_skipped_and_reported(db):
    async def make():
        async with await Store.open(db, snapshot_every=4) as store:
            await record_steps(store, "run-d", counter_steps(10))
            await store.flush_snapshots()
            return (await store.state_at("run-d")).state

    expected = asyncio.run(make())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshots SET state=? WHERE run_id='run-d'", (msgspec.msgpack.encode({"i": -1}),))

    async def read():
        async with await Store.open(db, readonly=True) as store:
            return await store.state_at("run-d")

    view = asyncio.run(read())
    assert view.state == expected and view.snapshot_seq == 0 and view.problems == []
    out = vigil("verify", "run-d", db=db)
    assert out.returncode == 1 and "snapshot does not match its hash" in out.stdout.decode()
