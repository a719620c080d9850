"""The PostgreSQL schema: created once by the first writer, refused when newer than this vigil,
and a database with no vigil log in it is one line to a reader, never a traceback."""

import asyncio

import psycopg
import pytest

from cli_helpers import vigil
from kernel.errors import SchemaError
from kernel.log.postgres.schema import SCHEMA_VERSION
from kernel.store import Store


def test_two_first_opens_at_once_create_the_schema_once(pg_dsn):
    async def go():
        stores = await asyncio.gather(*(Store.open(pg_dsn) for _ in range(4)))
        for s in stores:
            await s.close()
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            cur = await conn.execute("SELECT value FROM vigil.meta WHERE key = 'schema_version'")
            return await cur.fetchall()

    assert asyncio.run(go()) == [(str(SCHEMA_VERSION),)]


def test_a_newer_schema_is_refused_in_one_line(pg_dsn):
    async def go():
        async with await Store.open(pg_dsn):
            pass
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute("UPDATE vigil.meta SET value = %s", (str(SCHEMA_VERSION + 1),))
        for readonly in (False, True):
            with pytest.raises(SchemaError, match="newer than this vigil understands"):
                await Store.open(pg_dsn, readonly=readonly)

    asyncio.run(go())
    out = vigil("runs", db=pg_dsn)
    err = out.stderr.decode()
    assert out.returncode != 0 and "newer than this vigil" in err and len(err.strip().splitlines()) == 1


def test_reading_a_database_without_a_log_says_so(pg_dsn):
    out = vigil("runs", db=pg_dsn)
    err = out.stderr.decode()
    assert out.returncode != 0 and "no vigil log in this database yet" in err and "Traceback" not in err


def test_the_writer_outlives_a_server_restart():
    """The server goes away mid-run (a crash, a failover): appends fail with a one-line reason,
    not a hang and not a dead writer; once it is back, the same store appends again."""
    import time

    import pgserver
    from kernel.errors import StoreError
    from kernel.events import ActionSucceeded, RunStarted

    # Durable: the test crashes the server right after an acknowledged append, which only a
    # server with synchronous_commit on promises to keep (with it off, the append's WAL could
    # still be in memory, and whether it is depends on the WAL writer's timing).
    server = pgserver.PgServer(durable=True)
    server.start()
    try:
        dsn = server.create_database()

        async def go():
            async with await Store.open(dsn) as store:
                seq = await store.append("r", [RunStarted(graph="g")], expected_seq=0)
                server.halt()
                started = time.monotonic()
                for attempt in range(2):  # the connection is lost, then cannot be made
                    with pytest.raises(StoreError, match="append to run r failed"):
                        await store.append("r", [ActionSucceeded(action_id=f"lost{attempt}")], expected_seq=seq)
                assert time.monotonic() - started < 15
                server.resume()
                for _ in range(50):  # reads reconnect too
                    try:
                        assert await store.last_seq("r") == seq
                        break
                    except StoreError:
                        await asyncio.sleep(0.1)
                assert await store.append("r", [ActionSucceeded(action_id="back")], expected_seq=seq) == seq + 1
                return [r.type for r in await store.events("r")]

        assert asyncio.run(go()) == ["RunStarted", "ActionSucceeded"]
    finally:
        server.stop()


def test_small_write_transactions_never_nest_inside_one_another(pg_dsn):
    """Leases, signals and snapshots each write in a transaction of their own. They used to share
    the reader's one connection, where psycopg runs a second task's transaction as a savepoint
    inside the first's: a write that had returned could be rolled back with someone else's."""

    async def go():
        async with await Store.open(pg_dsn) as store:
            started = asyncio.Event()

            async def slow_then_fail(conn):
                await conn.execute("INSERT INTO vigil.meta VALUES ('first', '1')")
                started.set()
                await asyncio.sleep(0.3)
                raise ValueError("the first transaction fails")

            async def quick(conn):
                await conn.execute("INSERT INTO vigil.meta VALUES ('second', '1')")
                return "committed"

            async def second():
                await started.wait()
                return await store._write(quick)

            first, done = await asyncio.gather(store._write(slow_then_fail), second(), return_exceptions=True)
            assert isinstance(first, ValueError) and done == "committed", (first, done)
        conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
        async with conn:
            cur = await conn.execute("SELECT key FROM vigil.meta WHERE key IN ('first', 'second')")
            return [r[0] for r in await cur.fetchall()]

    assert asyncio.run(go()) == ["second"]
