"""The PostgreSQL schema: vigil's tables in their own schema (`vigil`), so a database shared with
other software (DBOS, an application) never mixes names. Same tables and meanings as SQLite's."""

from __future__ import annotations

import psycopg

from ...errors import SchemaError

__all__ = ["SCHEMA_VERSION", "NOW_NS", "migrate", "check_readable", "LOG_CHANNEL"]

# The database's clock in ns: leases and lease checks use it, never a host's (hosts disagree).
NOW_NS = "(extract(epoch from clock_timestamp()) * 1000000000)::bigint"
LOG_CHANNEL = "vigil_log"  # NOTIFY'd in every append's transaction: delivered at its commit
_MIGRATE_LOCK = 0x76696769_6C000001  # advisory lock ids: 'vigil' + a number
APPEND_LOCK = 0x76696769_6C000002

# run_id is COLLATE "C": byte order, so a prefix LIKE uses the index and ids compare as in SQLite.
_V1 = """
CREATE TABLE vigil.meta(key text PRIMARY KEY, value text NOT NULL);
CREATE SEQUENCE vigil.pos AS bigint;
CREATE TABLE vigil.events(
    pos bigint PRIMARY KEY DEFAULT nextval('vigil.pos'),
    run_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    ts_ns bigint NOT NULL,
    type text NOT NULL,
    step_id text,
    body bytea NOT NULL,
    crc bigint NOT NULL,
    UNIQUE(run_id, seq)
);
CREATE TABLE vigil.runs(
    run_id text COLLATE "C" PRIMARY KEY,
    graph text NOT NULL DEFAULT '',
    graph_version text NOT NULL DEFAULT '',
    status text NOT NULL,
    created_ns bigint NOT NULL,
    pending integer NOT NULL DEFAULT 0,
    owner text,
    lease_until_ns bigint,
    parent_run_id text,
    labels text NOT NULL DEFAULT '{}',
    error text
);
CREATE INDEX runs_by_created ON vigil.runs(created_ns);
CREATE INDEX runs_by_status ON vigil.runs(status, created_ns);
CREATE INDEX runs_by_owner ON vigil.runs(owner) WHERE owner IS NOT NULL;
CREATE TABLE vigil.snapshots(
    run_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    state bytea NOT NULL,
    state_hash text NOT NULL,
    PRIMARY KEY(run_id, seq)
);
CREATE TABLE vigil.signals(
    id bigserial PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    body bytea NOT NULL,
    created_ns bigint NOT NULL,
    sender text,
    applied_ns bigint,
    result text
);
CREATE INDEX signals_unapplied ON vigil.signals(run_id) WHERE applied_ns IS NULL;
CREATE TABLE vigil.interrupts(
    run_id text COLLATE "C" NOT NULL,
    interrupt_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    title text NOT NULL,
    raised_ns bigint NOT NULL,
    resolved_seq bigint,
    PRIMARY KEY(run_id, interrupt_id)
);
CREATE INDEX interrupts_pending ON vigil.interrupts(raised_ns) WHERE resolved_seq IS NULL
"""

# v2: tamper evidence (kernel/chain.py), as SQLite's v4: the hash chain column, chained for the
# rows already there at migration (then NOT NULL), and the seals table (kernel/seals.py).
_V2 = """
CREATE TABLE IF NOT EXISTS vigil.seals(
    run_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    chain bytea NOT NULL,
    key_id text NOT NULL,
    sealed_ns bigint NOT NULL,
    signature bytea NOT NULL,
    PRIMARY KEY(run_id, key_id, seq)
)
"""


async def _backfill_chain(conn: psycopg.AsyncConnection, page: int = 5000) -> None:
    from ...chain import Backfill

    cur = await conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_schema = 'vigil' AND table_name = 'events' AND column_name = 'chain'"
    )
    if (await cur.fetchone())[0]:
        # Its meta names an older version but it has the chain (set back by hand): kept as it
        # is, never chained again (that would launder any edit in it).
        return
    await conn.execute("ALTER TABLE vigil.events ADD COLUMN chain bytea")

    backfill = Backfill()
    while True:
        cur = await conn.execute(
            "SELECT pos, run_id, seq, ts_ns, type, body FROM vigil.events WHERE (run_id, seq) > (%s, %s)"
            " ORDER BY run_id, seq LIMIT %s", (*backfill.key, page),
        )
        rows = await cur.fetchall()
        if not rows:
            break
        async with conn.cursor() as c:
            await c.executemany("UPDATE vigil.events SET chain = %s WHERE pos = %s", backfill.page(rows))
    await conn.execute("ALTER TABLE vigil.events ALTER COLUMN chain SET NOT NULL")


# v3: a failed run's error category, as SQLite's v5.
async def _v3_error_category(conn: psycopg.AsyncConnection) -> None:
    """A failed run's error category (ErrorInfo.category), for `vigil runs --error-category`;
    backfilled from the RunFailed rows already in the log."""
    from ...codec import decode
    from ...events import RunFailed
    from ...projection import failure_category

    await conn.execute("ALTER TABLE vigil.runs ADD COLUMN IF NOT EXISTS error_category text")
    cur = await conn.execute(
        "SELECT e.run_id, e.type, e.body, e.crc FROM vigil.events e JOIN vigil.runs r ON r.run_id = e.run_id"
        " WHERE e.type = 'RunFailed' AND r.status = 'failed'"
    )
    for run_id, type_, body, crc in await cur.fetchall():
        event = decode(type_, bytes(body), crc)
        category = failure_category(event) if isinstance(event, RunFailed) else "internal"
        await conn.execute("UPDATE vigil.runs SET error_category = %s WHERE run_id = %s", (category, run_id))


# v4: artifacts (kernel/artifacts.py), content-addressed by sha256, beside the events; a large
# bytea is TOASTed out of line, so reading kind/size/created_ns never reads the bytes.
_V4_ARTIFACTS = """
CREATE TABLE IF NOT EXISTS vigil.artifacts(
    artifact_id text COLLATE "C" PRIMARY KEY,
    kind text NOT NULL,
    size bigint NOT NULL,
    created_ns bigint NOT NULL,
    data bytea NOT NULL
)
"""


# MIGRATIONS[i] takes the schema from version i to i + 1 (its own numbering, not SQLite's): SQL
# run statement by statement, then an optional async step on the same transaction.
MIGRATIONS: list[tuple[str, object]] = [
    (_V1, None), (_V2, _backfill_chain), ("", _v3_error_category),
    (_V4_ARTIFACTS, None),
]
SCHEMA_VERSION = len(MIGRATIONS)


async def _version(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT to_regclass('vigil.meta') IS NOT NULL")
    if not (await cur.fetchone())[0]:
        cur = await conn.execute("SELECT to_regclass('vigil.events') IS NOT NULL")
        if (await cur.fetchone())[0]:
            raise SchemaError("not a vigil database (schema vigil has tables but no meta table)")
        return 0
    cur = await conn.execute("SELECT value FROM vigil.meta WHERE key = 'schema_version'")
    row = await cur.fetchone()
    if row is None:
        raise SchemaError("not a vigil database (no schema_version in vigil.meta)")
    try:
        return int(row[0])
    except ValueError:
        raise SchemaError(f"not a vigil database (its schema_version is {row[0]!r})") from None


def _newer(version: int) -> SchemaError:
    return SchemaError(
        f"the database has schema version {version}, newer than this vigil understands "
        f"({SCHEMA_VERSION}); upgrade vigil to open it"
    )


async def migrate(conn: psycopg.AsyncConnection, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to `upto` (default: the current one) in one transaction (one migrator
    at a time); refuse a newer."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        await conn.execute("CREATE SCHEMA IF NOT EXISTS vigil")
        version = await _version(conn)
        if version > SCHEMA_VERSION:
            raise _newer(version)
        for step in range(version, upto):
            script, then = MIGRATIONS[step]
            for statement in script.split(";"):
                if statement.strip():
                    await conn.execute(statement)
            if then is not None:
                await then(conn)
        if upto > version:
            await conn.execute(
                "INSERT INTO vigil.meta VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(upto),),
            )
    return max(version, upto)


async def check_readable(conn: psycopg.AsyncConnection) -> int:
    version = await _version(conn)
    if version > SCHEMA_VERSION:
        raise _newer(version)
    if version < SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {version} and needs migrating; open it once with write access"
            if version else "no vigil log in this database yet (open it once with write access)"
        )
    return version
