"""The throwaway PostgreSQL server the Postgres tests run on (tests/pgserver.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

if os.environ.get("VIGIL_REQUIRE_POSTGRES") == "1":
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")


def user_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")]


def test_server_starts_on_loopback_with_test_settings(pg_server):
    with psycopg.connect(pg_server.dsn()) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('listen_addresses', 'port', 'fsync', 'max_connections', 'unix_socket_directories')"))
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert int(settings["port"]) == pg_server.port
    assert settings["fsync"] == "off"
    assert settings["max_connections"] == "200"
    assert settings["unix_socket_directories"] == str(pg_server.base)
    assert str(pg_server.base).startswith("/tmp/vigil-pg-")
    if os.geteuid() == 0:  # postgres refuses root: it runs as the unprivileged user
        assert os.stat(pg_server.data).st_uid != 0


def test_fresh_databases_are_distinct_and_empty(pg_server, pg_dsn):
    other = pg_server.create_database()
    try:
        assert other != pg_dsn
        assert user_tables(pg_dsn) == [] and user_tables(other) == []
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("CREATE TABLE events (pos bigserial PRIMARY KEY, body bytea)")
        assert user_tables(pg_dsn) == ["events"]
        assert user_tables(other) == []
    finally:
        pg_server.drop_database(other)


def test_a_subprocess_connects_and_can_be_killed_midway(pg_dsn):
    code = ("import sys, psycopg\n"
            "with psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
            "    c.execute('CREATE TABLE t (x int)'); c.execute('INSERT INTO t VALUES (1)')\n"
            "    print(c.execute('SELECT current_database()').fetchone()[0], flush=True)\n"
            "    c.execute('BEGIN'); c.execute('INSERT INTO t VALUES (2)')\n"
            "    sys.stdin.read()\n")  # hold the open transaction until killed
    proc = subprocess.Popen([sys.executable, "-c", code, pg_dsn], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == pg_dsn.rsplit("/", 1)[1]
        proc.send_signal(signal.SIGKILL)  # what the crash tests do to workers
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()
    with psycopg.connect(pg_dsn) as conn:
        assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1]  # the open txn is gone


async def test_listen_notify_between_two_connections(pg_dsn):
    listener = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    notifier = await psycopg.AsyncConnection.connect(pg_dsn)
    try:
        await listener.execute("LISTEN vigil_events")
        async with notifier.transaction():
            await notifier.execute("SELECT pg_notify('vigil_events', 'run-1:42')")
        t0 = time.monotonic()
        got = [n async for n in listener.notifies(timeout=5, stop_after=1)]
        assert [(n.channel, n.payload) for n in got] == [("vigil_events", "run-1:42")]
        assert time.monotonic() - t0 < 5
    finally:
        await listener.close()
        await notifier.close()
