from __future__ import annotations

import os
from pathlib import Path

import pytest

import pgserver


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "vigil.db"


def _no_postgres(why: str):
    # CI sets VIGIL_REQUIRE_POSTGRES=1 so the Postgres half of the suite can never silently vanish.
    if os.environ.get("VIGIL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{why} (VIGIL_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_server():
    """One real throwaway PostgreSQL server per session (tests/pgserver.py); fsync off."""
    try:
        pgserver.find_bindir()
    except pgserver.PgNotInstalled as e:
        _no_postgres(str(e))
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _no_postgres("psycopg is not installed (pip install -e '.[test]')")
    server = pgserver.PgServer()
    server.start()
    try:
        yield server
    finally:  # pytest tears session fixtures down on failures and on KeyboardInterrupt too
        server.stop()


@pytest.fixture
def pg_dsn(pg_server):
    """A DSN to this test's own fresh, empty database on the session's server."""
    dsn = pg_server.create_database()
    yield dsn
    pg_server.drop_database(dsn)
