"""One group commit on PostgreSQL: the seq checks, the projections, the rows, in one transaction.

Global order: every append transaction takes one advisory lock just before its rows get their
`pos` (from a sequence) and holds it to its commit. So positions become visible in the order they
were handed out, and a tail that has read up to `pos` can never later meet a smaller one
committed late. (Without the lock, transaction A could take pos 10, B pos 11, B commit first, and
a tail reading after 11 would skip 10 for ever.) Gaps from rolled-back appends are harmless: no
row ever fills them. The lock is held only for the COPY and the commit, once per group, not per
append; appends from many processes serialize there and nowhere else.
"""

from __future__ import annotations

from typing import Any, Callable

import psycopg
from psycopg import errors as pgerrors

from ...errors import StoreError
from ...projection import RUN_COLUMNS, advance, new_row
from ..groupcommit import Append, Committed, GroupWriter, Heads, plan
from .schema import APPEND_LOCK, LOG_CHANNEL, NOW_NS

__all__ = ["postgres_writer", "text"]

_COPY_EVENTS = (
    "COPY vigil.events (run_id, seq, ts_ns, type, step_id, body, crc, chain) FROM STDIN (FORMAT BINARY)"
)
_EVENT_TYPES = ["text", "int8", "int8", "text", "text", "bytea", "int8", "bytea"]
# lease_until_ns is given as (absolute, or a lease to time from the database's clock): a claim
# made with a new run is timed in this statement, not by a separate query for the time.
_VALUES = ", ".join(
    f"COALESCE(%s::bigint, {NOW_NS} + %s::bigint)" if c == "lease_until_ns" else "%s" for c in RUN_COLUMNS
)
_UPSERT_RUN = (
    f"INSERT INTO vigil.runs({', '.join(RUN_COLUMNS)}) VALUES ({_VALUES})"
    " ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
)
# Row locks in run_id order, as every other writer of runs rows takes them: no deadlocks.
_LOCK_RUNS = (
    f"SELECT {', '.join(RUN_COLUMNS)} FROM vigil.runs WHERE run_id = ANY(%s) ORDER BY run_id FOR UPDATE"
)
# One index probe per run (max(seq) ... GROUP BY would read every row of every run asked about),
# with that row's chain, which the run's next rows continue.
_LAST_SEQS = (
    "SELECT r, e.seq, e.chain FROM unnest(%s::text[]) AS r LEFT JOIN LATERAL"
    " (SELECT seq, chain FROM vigil.events WHERE run_id = r ORDER BY seq DESC LIMIT 1) e ON true"
)


def text(value: Any) -> Any:
    """PostgreSQL text holds no NUL; SQLite's does. The event body (bytea) keeps the value exactly;
    a projected column shows U+FFFD in its place."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


async def _commit_group(
    conn: psycopg.AsyncConnection, group: list[Append], known: dict[str, int], heads: Heads
) -> tuple[list, Committed]:
    try:
        async with conn.transaction():
            # A new run's seq is not looked up: the unique (run_id, seq) index refuses a run that
            # exists, and after that failure (known[run] = -1) it is looked up like any other.
            # `heads` is kept with `known`, so a run `known` vouches for has its chain cached;
            # the second test only guards that pairing.
            unsure = sorted({
                a.run_id for a in group
                if (known.get(a.run_id) != a.expected_seq and (a.expected_seq or a.run_id in known))
                or (a.expected_seq and a.run_id not in heads)
            })
            table: dict[str, tuple[int, bytes | None]] = {}
            if unsure:
                cur = await conn.execute(_LAST_SEQS, (unsure,))
                table = {r: (seq or 0, chain) for r, seq, chain in await cur.fetchall()}
            p = plan(
                group, known, lambda run_id: table.get(run_id, (0, None))[0],
                heads, lambda run_id, seq: _chain_of(table, run_id, seq),
            )
            if p.projecting:
                await _project(conn, p.projecting)
            if p.rows:
                await conn.execute("SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '')", (APPEND_LOCK, LOG_CHANNEL))
                async with conn.cursor().copy(_COPY_EVENTS) as copy:
                    copy.set_types(_EVENT_TYPES)
                    for r in p.rows:
                        await copy.write_row((r[0], r[1], r[2], r[3], text(r[4]), r[5], r[6], r[7]))
    except BaseException:
        for a in group:
            known[a.run_id] = -1  # unknown now: looked up in the table next time
            heads.pop(a.run_id, None)
        raise
    known.update(p.last)
    heads.update(p.heads)
    return p.outcomes, p.committed()


def _chain_of(table: dict, run_id: str, seq: int) -> bytes | None:
    found = table.get(run_id)
    return bytes(found[1]) if found and found[0] == seq and found[1] is not None else None


def _values(row: dict, claimed: dict[str, int]) -> tuple:
    out: list = []
    for col in RUN_COLUMNS:
        if col == "lease_until_ns":
            lease = claimed.get(row["run_id"]) if row["owner"] is not None else None
            out += [row[col], lease]  # ended in this append: no owner, no lease
        else:
            out.append(text(row[col]))
    return tuple(out)


async def _project(conn: psycopg.AsyncConnection, appends: list[Append]) -> None:
    """Advance the runs and interrupts projections for the appends that change them."""
    cur = await conn.execute(_LOCK_RUNS, (sorted({a.run_id for a in appends}),))
    rows = {r[0]: dict(zip(RUN_COLUMNS, r)) for r in await cur.fetchall()}
    ops: list[tuple] = []
    claimed: dict[str, int] = {}
    for a in appends:
        row = rows.get(a.run_id)
        if row is None:
            row = rows[a.run_id] = new_row(a.run_id, a.rows[0][2])
            if a.claim is not None:  # (owner, lease_ns), timed by the database's clock
                row["owner"], claimed[a.run_id] = a.claim
        for r, event in zip(a.rows, a.events):
            advance(row, event, r[1], r[2], ops)
    async with conn.cursor() as c:
        await c.executemany(_UPSERT_RUN, [_values(row, claimed) for _, row in sorted(rows.items())])
        for op in ops:  # in order, as SQLite applies them: a raise, its resolve, a re-raise
            if op[0] == "raise":
                await c.execute(
                    "INSERT INTO vigil.interrupts VALUES (%s, %s, %s, %s, %s, %s, NULL)"
                    " ON CONFLICT (run_id, interrupt_id) DO UPDATE SET seq = excluded.seq,"
                    " kind = excluded.kind, title = excluded.title, raised_ns = excluded.raised_ns,"
                    " resolved_seq = NULL",
                    tuple(text(v) for v in op[1:]),
                )
            elif op[0] == "close":
                await c.execute(
                    "UPDATE vigil.interrupts SET resolved_seq = %s WHERE run_id = %s AND resolved_seq IS NULL",
                    (op[3], op[1]),
                )
            else:
                await c.execute(
                    "UPDATE vigil.interrupts SET resolved_seq = %s WHERE run_id = %s AND interrupt_id = %s",
                    (op[3], op[1], text(op[2])),
                )


def postgres_writer(connect: Callable, on_commit: Callable[[Committed], None]) -> GroupWriter:
    """`connect()` returns the writer's connection (a new one if the last was lost)."""
    known: dict[str, int] = {}
    heads: Heads = {}  # run -> (last seq, its chain)

    async def commit(group: list[Append]) -> tuple[list, Committed]:
        conn = await connect()
        return await _commit_group(conn, group, known, heads)

    # psycopg.Error covers a value the server refuses or a unique violation: each fails its
    # batch (retried alone). No connection (StoreError from connect) or a lost one
    # (OperationalError) fails the group at once. Never the writer.
    return GroupWriter(
        commit, on_commit,
        refused=(psycopg.Error, OverflowError, UnicodeError), conflict=(pgerrors.UniqueViolation,),
        unavailable=(StoreError, psycopg.OperationalError),
    )
