from __future__ import annotations

import os
from pathlib import Path

import pytest

import pgserver


# Modules whose every test runs on both backends ([sqlite] and [postgres]); a test in them that
# is about SQLite itself (its files, its pragmas, raw sqlite3 rows) is marked `sqlite_only`.
BOTH_BACKENDS = {
    "test_interrupts", "test_in_doubt", "test_pause", "test_fork_frontier", "test_replay_integrity",
    "test_effects", "test_approvals", "test_exchange", "test_cli_runtime", "test_agent_retry",
    "test_review_findings", "test_secrets",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself; not run on PostgreSQL")


def pytest_generate_tests(metafunc):
    # `new_log` (and `both_backends`) always run on both; `db` in the modules listed above.
    names = metafunc.fixturenames
    if "new_log" in names or ("db" in names and metafunc.module.__name__ in BOTH_BACKENDS):
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", ["sqlite"] if sqlite_only else ["sqlite", "postgres"])


@pytest.fixture
def backend() -> str:
    """Which backend `db` is: SQLite, unless the module runs on both (above) or
    VIGIL_TEST_BACKEND=postgres asks for PostgreSQL (to run any module against it by hand)."""
    return os.environ.get("VIGIL_TEST_BACKEND", "sqlite")


@pytest.fixture
def db(request, tmp_path: Path, backend: str):
    """The log a test writes: a SQLite file, or a fresh PostgreSQL database of its own."""
    # new_log looked up, not a parameter: a parameter would put every `db` test on both backends
    return tmp_path / "vigil.db" if backend == "sqlite" else request.getfixturevalue("new_log")()


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


# Both backends ---------------------------------------------------------------------------------
# A test that asks for `new_log` or `both_backends` runs twice, [sqlite] and [postgres].


@pytest.fixture
def new_log(request, tmp_path: Path, backend: str):
    """A factory of fresh, empty logs: SQLite paths, or PostgreSQL databases of their own."""
    if backend == "sqlite":
        counter = iter(range(1_000_000))
        yield lambda: tmp_path / f"log{next(counter)}.db"
        return
    server = request.getfixturevalue("pg_server")
    made: list[str] = []

    def new() -> str:
        made.append(server.create_database())
        return made[-1]

    yield new
    for dsn in made:
        server.drop_database(dsn)


@pytest.fixture
def both_backends(new_log):
    """A log target (a SQLite path or a postgresql:// URL), once per backend."""
    return new_log()
