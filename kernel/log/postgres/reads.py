"""Queries on a PostgreSQL reader connection: the same pages and folds as SQLite's reads."""

from __future__ import annotations

from typing import Any

import psycopg

from ...codec import Record, canonical_hash, decode
from ...projection import RUN_COLUMNS, RunInfo, run_info
from ..folding import (
    FOLD_TYPES, KNOWN_TYPES, InterruptInfo, StateAt, encode_state, fold_next, fold_rows,
    pick_snapshot,
)
from ..queries import ORDERS, contains_pattern, interrupt_infos, interrupts_query
from .schema import NOW_NS

Conn = psycopg.AsyncConnection
_PAGE = 2000
_FOLD_FILTER = "(type = ANY(%s) OR NOT (type = ANY(%s)))"


async def _all(conn: Conn, sql: str, args: Any = ()) -> list[tuple]:
    cur = await conn.execute(sql, args)
    return await cur.fetchall()


async def _one(conn: Conn, sql: str, args: Any = ()) -> tuple | None:
    cur = await conn.execute(sql, args)
    return await cur.fetchone()


async def events_page(conn: Conn, run_id: str, lo: int, hi: int | None, limit: int, types) -> list[Record]:
    sql = "SELECT pos, seq, ts_ns, type, body, crc FROM vigil.events WHERE run_id = %s AND seq >= %s"
    args: list[Any] = [run_id, lo]
    if hi is not None:
        sql += " AND seq <= %s"
        args.append(hi)
    if types:
        sql += " AND type = ANY(%s)"
        args.append(list(types))
    sql += " ORDER BY seq LIMIT %s"
    args.append(limit)
    return [
        Record(pos=p, run_id=run_id, seq=s, ts_ns=t, type=ty, event=decode(ty, b, c))
        for p, s, t, ty, b, c in await _all(conn, sql, args)
    ]


async def after_pos(conn: Conn, pos: int, limit: int) -> list[Record]:
    rows = await _all(
        conn,
        "SELECT pos, run_id, seq, ts_ns, type, body, crc FROM vigil.events WHERE pos > %s ORDER BY pos LIMIT %s",
        (pos, limit),
    )
    return [Record(pos=p, run_id=r, seq=s, ts_ns=t, type=ty, event=decode(ty, b, c)) for p, r, s, t, ty, b, c in rows]


async def head(conn: Conn) -> int:
    return (await _one(conn, "SELECT max(pos) FROM vigil.events"))[0] or 0


async def find_seq(conn: Conn, run_id: str, seq: int, forward: bool, types) -> int | None:
    row = await _one(
        conn,
        f"SELECT seq FROM vigil.events WHERE run_id = %s AND seq {'>' if forward else '<'} %s AND type = ANY(%s)"
        f" ORDER BY seq {'ASC' if forward else 'DESC'} LIMIT 1",
        (run_id, seq, list(types)),
    )
    return row[0] if row else None


async def seqs_of_types(conn: Conn, run_id: str, types) -> list[int]:
    rows = await _all(
        conn, "SELECT seq FROM vigil.events WHERE run_id = %s AND type = ANY(%s) ORDER BY seq", (run_id, list(types))
    )
    return [r[0] for r in rows]


async def last_seq(conn: Conn, run_id: str) -> int:
    return (await _one(conn, "SELECT max(seq) FROM vigil.events WHERE run_id = %s", (run_id,)))[0] or 0


async def state_at(conn: Conn, run_id: str, seq: int | None, use_snapshots: bool = True) -> StateAt:
    if seq is None:
        seq = await last_seq(conn, run_id)
    start, state = 0, {}
    if use_snapshots:
        start, state = pick_snapshot(await _all(
            conn,
            "SELECT seq, state, state_hash FROM vigil.snapshots WHERE run_id = %s AND seq <= %s"
            " ORDER BY seq DESC LIMIT 4",
            (run_id, seq),
        ))
    problems: list[tuple[int, str]] = []
    lo = start
    while True:  # page by seq: a replay from the first event never holds the run in memory
        rows = await _all(
            conn,
            f"SELECT seq, type, body, crc FROM vigil.events WHERE run_id = %s AND seq > %s AND seq <= %s"
            f" AND {_FOLD_FILTER} ORDER BY seq LIMIT %s",
            (run_id, lo, seq, list(FOLD_TYPES), list(KNOWN_TYPES), _PAGE),
        )
        fold_rows(state, rows, problems)
        if len(rows) < _PAGE:
            break
        lo = rows[-1][0]
    return StateAt(run_id=run_id, seq=seq, state=state, problems=problems, snapshot_seq=start)


async def state_pair(conn: Conn, run_id: str, seq: int) -> tuple[StateAt, StateAt]:
    before = await state_at(conn, run_id, seq - 1) if seq > 1 else StateAt(run_id=run_id, seq=0, state={})
    problems = list(before.problems)
    row = await _one(conn, "SELECT type, body, crc FROM vigil.events WHERE run_id = %s AND seq = %s", (run_id, seq))
    after = dict(before.state) if row is None else fold_next(before.state, seq, *row, problems)
    return before, StateAt(run_id=run_id, seq=seq, state=after, problems=problems, snapshot_seq=before.snapshot_seq)


async def snapshot_row(conn: Conn, run_id: str, seq: int) -> tuple | None:
    view = await state_at(conn, run_id, seq)
    if view.problems:
        return None
    return (run_id, seq, encode_state(view.state), canonical_hash(view.state))


async def snapshot_rows(conn: Conn, run_id: str) -> dict[int, tuple[bytes, str]]:
    rows = await _all(conn, "SELECT seq, state, state_hash FROM vigil.snapshots WHERE run_id = %s", (run_id,))
    return {seq: (bytes(blob), digest) for seq, blob, digest in rows}


async def raw_page(conn: Conn, run_id: str, lo: int, limit: int) -> list[tuple]:
    rows = await _all(
        conn,
        "SELECT seq, ts_ns, type, step_id, body, crc FROM vigil.events WHERE run_id = %s AND seq >= %s"
        " ORDER BY seq LIMIT %s",
        (run_id, lo, limit),
    )
    return [(s, t, ty, st, bytes(b), c) for s, t, ty, st, b, c in rows]


# The runs row, its last event's seq and time, and the database's clock (for lease checks).
_RUN_SELECT = (
    f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)}, e.seq, e.ts_ns, {NOW_NS} FROM vigil.runs r"
    " LEFT JOIN LATERAL (SELECT seq, ts_ns FROM vigil.events WHERE run_id = r.run_id"
    " ORDER BY seq DESC LIMIT 1) e ON true"
)


def _info(row: tuple) -> RunInfo:
    return run_info(row[:-1], seen_ns=row[-1])


def _run_filter(
    status: str | None, graph: str | None, search: str | None, category: str | None = None
) -> tuple[str, list]:
    clauses, args = [], []
    if status:
        clauses.append("r.status = %s")
        args.append(status)
    if category:
        clauses.append("r.error_category = %s")
        args.append(category)
    if graph:
        clauses.append("r.graph = %s")
        args.append(graph)
    if search:  # ILIKE: SQLite's LIKE ignores ASCII case, and the two must find the same runs
        clauses.append("(r.run_id ILIKE %s OR r.labels ILIKE %s OR r.graph ILIKE %s)")
        like = contains_pattern(search)
        args.extend([like, like, like])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def list_runs(
    conn: Conn, status, graph, search, limit: int, offset: int, order: str = "newest", category=None
) -> list[RunInfo]:
    where, args = _run_filter(status, graph, search, category)
    rows = await _all(conn, f"{_RUN_SELECT}{where} ORDER BY {ORDERS[order]} LIMIT %s OFFSET %s", [*args, limit, offset])
    return [_info(r) for r in rows]


async def count_runs(conn: Conn, status, graph, search, category=None) -> int:
    where, args = _run_filter(status, graph, search, category)
    return (await _one(conn, f"SELECT count(*) FROM vigil.runs r{where}", args))[0]


async def get_run(conn: Conn, run_id: str) -> RunInfo | None:
    row = await _one(conn, f"{_RUN_SELECT} WHERE r.run_id = %s", (run_id,))
    return _info(row) if row else None


async def match_runs(conn: Conn, prefix: str) -> list[str]:
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [r[0] for r in await _all(conn, "SELECT run_id FROM vigil.runs WHERE run_id LIKE %s LIMIT 2", (like,))]


async def list_interrupts(conn: Conn, run_id: str | None, pending_only: bool) -> list[InterruptInfo]:
    sql, args = interrupts_query("vigil.interrupts", "%s", run_id, pending_only)
    return interrupt_infos(await _all(conn, sql, args))
