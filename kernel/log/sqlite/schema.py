"""The database file: where it lives, its permissions, its pragmas and its schema migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

from ...errors import SchemaError

__all__ = [
    "SCHEMA_VERSION",
    "default_path",
    "connect",
    "migrate",
    "schema_version",
    "check_readable",
]

_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events(
    pos INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    type TEXT NOT NULL,
    step_id TEXT,
    body BLOB NOT NULL,
    crc INTEGER NOT NULL,
    UNIQUE(run_id, seq)
);
-- last_seq and updated_ns are not stored: they are the run's last row in `events`, one index
-- probe away, so most appends (tool results, steps) write no `runs` row at all.
CREATE TABLE runs(
    run_id TEXT PRIMARY KEY,
    graph TEXT NOT NULL DEFAULT '',
    graph_version TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until_ns INTEGER,
    parent_run_id TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    error TEXT
);
CREATE INDEX runs_by_created ON runs(created_ns);
CREATE INDEX runs_by_status ON runs(status, created_ns);
CREATE TABLE snapshots(
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state BLOB NOT NULL,
    state_hash TEXT NOT NULL,
    PRIMARY KEY(run_id, seq)
) WITHOUT ROWID;
CREATE TABLE signals(
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    sender TEXT,
    applied_ns INTEGER,
    result TEXT
);
CREATE INDEX signals_unapplied ON signals(run_id) WHERE applied_ns IS NULL;
"""

# v2: pending interrupts across all runs, so a console can queue them without scanning logs.
_V2 = """
CREATE TABLE interrupts(
    run_id TEXT NOT NULL,
    interrupt_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    raised_ns INTEGER NOT NULL,
    resolved_seq INTEGER,
    PRIMARY KEY(run_id, interrupt_id)
) WITHOUT ROWID;
CREATE INDEX interrupts_pending ON interrupts(raised_ns) WHERE resolved_seq IS NULL;
"""


def _backfill_interrupts(conn: sqlite3.Connection) -> None:
    from ...codec import decode
    from ...events import InterruptRaised, InterruptResolved
    from ...redact import redact

    rows = conn.execute(
        "SELECT run_id, seq, ts_ns, type, body, crc FROM events"
        " WHERE type IN ('InterruptRaised', 'InterruptResolved') ORDER BY pos"
    )
    for run_id, seq, ts_ns, type_, body, crc in rows.fetchall():
        event = decode(type_, body, crc)
        if isinstance(event, InterruptRaised):
            conn.execute(
                "INSERT OR IGNORE INTO interrupts VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (run_id, event.interrupt_id, seq, event.kind, redact(event.title), ts_ns),
            )
        elif isinstance(event, InterruptResolved):
            conn.execute(
                "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND interrupt_id = ?",
                (seq, run_id, event.interrupt_id),
            )


# v3: a run's end closes its pending interrupts (before, they stayed pending after the end).
_V3 = """
UPDATE interrupts SET resolved_seq = (SELECT max(seq) FROM events e WHERE e.run_id = interrupts.run_id)
 WHERE resolved_seq IS NULL
   AND run_id IN (SELECT run_id FROM runs WHERE status IN ('completed', 'failed', 'cancelled', 'diverged'));
UPDATE runs SET pending = 0
 WHERE pending != 0 AND status IN ('completed', 'failed', 'cancelled', 'diverged')
"""


# v4: tamper evidence (kernel/chain.py). Every event row gets its run's hash chain; the rows
# already there are chained at migration, as they are then (so for them the chain proves only
# that nothing changed since). `chain` stays nullable: SQLite adds a NOT NULL column only with a
# default, and a default chain would be a lie. `seals`: signed checkpoints of a run's chain
# (kernel/seals.py), kept beside the log, not in it: sealing must not append to a run someone
# else owns, nor write after a run's end.
_V4 = """
CREATE TABLE IF NOT EXISTS seals(
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chain BLOB NOT NULL,
    key_id TEXT NOT NULL,
    sealed_ns INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY(run_id, key_id, seq)
) WITHOUT ROWID
"""


def _backfill_chain(conn: sqlite3.Connection, page: int = 5000) -> None:
    from ...chain import Backfill

    # Keyset pages over the (run_id, seq) index: never the whole table in memory, and no cursor
    # left open over rows being updated.
    backfill = Backfill()
    while rows := conn.execute(
        "SELECT pos, run_id, seq, ts_ns, type, body FROM events WHERE (run_id, seq) > (?, ?)"
        " ORDER BY run_id, seq LIMIT ?", (*backfill.key, page),
    ).fetchall():
        conn.executemany("UPDATE events SET chain = ? WHERE pos = ?", backfill.page(rows))


def _v4(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V4)
    # A file whose meta names an older version but that has the chain already (its meta was set
    # back by hand) keeps its chain as it is: chaining it again would launder any edit in it.
    if not any(r[1] == "chain" for r in conn.execute("PRAGMA table_info(events)")):
        conn.execute("ALTER TABLE events ADD COLUMN chain BLOB")
        _backfill_chain(conn)


# v5: a failed run's error category (ErrorInfo.category), for `vigil runs --error-category`.
def _v5_error_category(conn: sqlite3.Connection) -> None:
    from ...codec import decode
    from ...events import RunFailed
    from ...projection import failure_category

    # A file whose version was set back by hand (tests, a downgrade) may have the column already.
    if "error_category" not in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}:
        conn.execute("ALTER TABLE runs ADD COLUMN error_category TEXT")
    rows = conn.execute(
        "SELECT e.run_id, e.type, e.body, e.crc FROM events e JOIN runs r ON r.run_id = e.run_id"
        " WHERE e.type = 'RunFailed' AND r.status = 'failed'"
    )
    for run_id, type_, body, crc in rows.fetchall():
        event = decode(type_, body, crc)
        # A corrupt row still ended a failed run: it gets the catch-all, never no category.
        category = failure_category(event) if isinstance(event, RunFailed) else "internal"
        conn.execute("UPDATE runs SET error_category = ? WHERE run_id = ?", (category, run_id))


# v6: artifacts (kernel/artifacts.py), content-addressed by sha256, beside the events. A rowid
# table with `data` last: reading kind/size/created_ns never touches the blob's overflow pages.
_V6_ARTIFACTS = """
CREATE TABLE IF NOT EXISTS artifacts(
    artifact_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    data BLOB NOT NULL
)
"""


# v7: the chain column stays nullable (v4), so a vigil from before the chain that still had the
# file open when it was migrated would go on appending rows without one, and every later row of
# that run would chain from nothing: verify and seal would fail it for good. Refused instead, as
# PostgreSQL's NOT NULL does.
_V7_CHAIN_REQUIRED = """
CREATE TRIGGER IF NOT EXISTS events_need_a_chain BEFORE INSERT ON events WHEN NEW.chain IS NULL
BEGIN SELECT RAISE(ABORT, 'this log keeps a hash chain: upgrade vigil to write to it'); END
"""


# MIGRATIONS[i] takes a database from version i to i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    lambda conn: _run_script(conn, _V1),
    lambda conn: (_run_script(conn, _V2), _backfill_interrupts(conn)),
    lambda conn: _run_script(conn, _V3),
    lambda conn: _v4(conn),
    _v5_error_category,
    lambda conn: _run_script(conn, _V6_ARTIFACTS),
    lambda conn: conn.execute(_V7_CHAIN_REQUIRED),
]
SCHEMA_VERSION = len(MIGRATIONS)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() commits first; run statement by statement to stay in our transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "vigil" / "vigil.db"


def _prepare_file(path: Path) -> None:
    """Create the directory 0700 and the file 0600 before SQLite touches them.

    SQLite gives the -wal and -shm files the permissions of the database file.
    """
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def connect(
    path: str | os.PathLike, *, readonly: bool = False, synchronous: str = "FULL"
) -> sqlite3.Connection:
    path = Path(path)
    if readonly:
        if not path.exists():
            raise SchemaError(f"no database at {path}")
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        _prepare_file(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        raise SchemaError("not a vigil database (it has tables but no vigil meta table)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise SchemaError("not a vigil database (no schema_version in meta)")
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise SchemaError(
            f"not a vigil database (its schema_version is {row[0]!r}, not a number)"
        ) from None


def migrate(conn: sqlite3.Connection, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema to `upto` in one transaction; refuse a newer one. Returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the database has schema version {version}, newer than this vigil "
                f"understands ({SCHEMA_VERSION}); upgrade vigil to open it"
            )
        for step in range(version, upto):
            MIGRATIONS[step](conn)
        if upto > version:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(upto),)
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, upto)


def check_readable(conn: sqlite3.Connection) -> int:
    """For read-only opens: the schema must already be current."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {version}, newer than this vigil "
            f"understands ({SCHEMA_VERSION}); upgrade vigil to open it"
        )
    if version < SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {version} and needs migrating; "
            "open it once with write access"
        )
    return version
