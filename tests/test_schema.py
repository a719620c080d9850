"""The database file: permissions, schema versions, migrations, read-only opens."""

import asyncio
import os
import sqlite3
import stat

import pytest

from cli_helpers import vigil
from kernel.log.sqlite import schema
from kernel.errors import SchemaError, StoreError
from kernel.events import InterruptRaised, InterruptResolved, RunStarted
from kernel.store import Store


def _open_close(path, **kw):
    async def go():
        async with await Store.open(path, **kw) as store:
            return store

    return asyncio.run(go())


def test_directory_0700_and_files_0600(tmp_path):
    path = tmp_path / "new" / "deeper" / "vigil.db"
    old = os.umask(0o022)
    try:
        async def go():
            async with await Store.open(path) as store:
                await store.append("r", [RunStarted(graph="g")], expected_seq=0)
                # the WAL and shm files exist while the store is open
                return sorted(p.name for p in path.parent.iterdir()), {
                    p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()
                }

        names, modes = asyncio.run(go())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert names == ["vigil.db", "vigil.db-shm", "vigil.db-wal"]
    assert set(modes.values()) == {0o600}


def test_newer_schema_is_a_clear_error(db):
    _open_close(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(SchemaError, match="schema version 99, newer than this vigil"):
        _open_close(db)
    out = vigil("runs", db=db)
    assert out.returncode == 2
    assert out.stderr.decode().count("\n") == 1 and "newer than this vigil" in out.stderr.decode()


def test_not_a_vigil_database(db):
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t(x)")
    with pytest.raises(SchemaError, match="not a vigil database"):
        _open_close(db)


def test_not_sqlite_at_all(db):
    db.write_bytes(b"hello, this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        _open_close(db)
    out = vigil("runs", db=db)
    assert out.returncode == 2 and "Traceback" not in out.stderr.decode()


def test_older_schema_is_migrated_with_its_data(db):
    """A v1 database (no interrupts table) opens as v2 with the pending interrupt backfilled."""
    conn = schema.connect(db)
    schema.migrate(conn, upto=1)
    conn.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == "1"
    conn.close()

    # write v1-era rows with the v1 writer's layout (no interrupts projection)
    from kernel.codec import encode

    events = [
        RunStarted(graph="g"),
        InterruptRaised(interrupt_id="a", step_id="s", kind="approval", title="first"),
        InterruptRaised(interrupt_id="b", step_id="s", kind="input", title="second"),
        InterruptResolved(interrupt_id="a", decision="approve"),
    ]
    with sqlite3.connect(db) as conn:
        for seq, ev in enumerate(events, 1):
            body, crc = encode(ev)
            conn.execute(
                "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc) VALUES (?,?,?,?,?,?,?)",
                ("r", seq, seq, type(ev).__name__, None, body, crc),
            )
        conn.execute(
            "INSERT INTO runs(run_id, graph, status, created_ns, pending) VALUES ('r', 'g', 'waiting', 1, 1)"
        )

    async def go():
        async with await Store.open(db) as store:
            return await store.interrupts()

    pending = asyncio.run(go())
    assert [(i.interrupt_id, i.title) for i in pending] == [("b", "second")]
    assert sqlite3.connect(db).execute("SELECT value FROM meta").fetchone()[0] == str(schema.SCHEMA_VERSION)


def test_readonly_store_reads_and_refuses_writes(db):
    async def go():
        async with await Store.open(db) as store:
            await store.append("r", [RunStarted(graph="g")], expected_seq=0)
        async with await Store.open(db, readonly=True) as ro:
            assert (await ro.run("r")).graph == "g"
            with pytest.raises(StoreError, match="read-only"):
                await ro.append("r", [RunStarted(graph="g")], expected_seq=1)

    asyncio.run(go())


def test_missing_database_is_a_clear_error(tmp_path):
    out = vigil("runs", db=tmp_path / "nope.db")
    assert out.returncode == 2
    assert out.stderr.decode().startswith("vigil: no database at")
    assert not (tmp_path / "nope.db").exists()
