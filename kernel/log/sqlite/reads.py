"""Queries that run on a reader's SQLite thread: short statements, paged, decoded there."""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from ...codec import Record, canonical_hash, decode
from ...projection import RUN_COLUMNS, RunInfo, run_info
from ..folding import (
    FOLD_TYPES, KNOWN_TYPES, InterruptInfo, StateAt, encode_state, fold_next, fold_rows,
    pick_snapshot,
)
from ..queries import ORDERS, contains_pattern, interrupt_infos, interrupts_query

__all__ = [
    "StateAt",
    "InterruptInfo",
    "events_page",
    "after_pos",
    "head",
    "find_seq",
    "seqs_of_types",
    "state_at",
    "state_pair",
    "list_runs",
    "count_runs",
    "get_run",
    "last_seq",
    "match_runs",
    "list_interrupts",
    "insert_snapshot",
    "snapshot_rows",
    "raw_page",
]

# A fold reads the state-changing rows, plus any type this version does not know: it may change
# state, so it is reported rather than silently skipped.
_FOLD_FILTER = (
    f"(type IN ({', '.join(repr(t) for t in FOLD_TYPES)})"
    f" OR type NOT IN ({', '.join(repr(t) for t in KNOWN_TYPES)}))"
)


def _records(run_id: str | None, rows: Iterable[tuple]) -> list[Record]:
    if run_id is None:
        return [
            Record(pos=p, run_id=r, seq=s, ts_ns=t, type=ty, event=decode(ty, b, c))
            for p, r, s, t, ty, b, c in rows
        ]
    return [
        Record(pos=p, run_id=run_id, seq=s, ts_ns=t, type=ty, event=decode(ty, b, c))
        for p, s, t, ty, b, c in rows
    ]


def events_page(
    conn: sqlite3.Connection,
    run_id: str,
    lo: int,
    hi: int | None,
    limit: int,
    types: tuple[str, ...] | None,
) -> list[Record]:
    sql = "SELECT pos, seq, ts_ns, type, body, crc FROM events WHERE run_id = ? AND seq >= ?"
    args: list[Any] = [run_id, lo]
    if hi is not None:
        sql += " AND seq <= ?"
        args.append(hi)
    if types:
        sql += f" AND type IN ({', '.join('?' * len(types))})"
        args.extend(types)
    sql += " ORDER BY seq LIMIT ?"
    args.append(limit)
    return _records(run_id, conn.execute(sql, args))


def find_seq(
    conn: sqlite3.Connection, run_id: str, seq: int, forward: bool, types: tuple[str, ...]
) -> int | None:
    """The nearest seq after (or before) `seq` whose type is one of `types`."""
    marks = ", ".join("?" * len(types))
    sql = (
        f"SELECT seq FROM events WHERE run_id = ? AND seq {'>' if forward else '<'} ? AND type IN ({marks})"
        f" ORDER BY seq {'ASC' if forward else 'DESC'} LIMIT 1"
    )
    row = conn.execute(sql, (run_id, seq, *types)).fetchone()
    return row[0] if row else None


def seqs_of_types(conn: sqlite3.Connection, run_id: str, types: tuple[str, ...]) -> list[int]:
    marks = ", ".join("?" * len(types))
    rows = conn.execute(
        f"SELECT seq FROM events WHERE run_id = ? AND type IN ({marks}) ORDER BY seq", (run_id, *types)
    )
    return [r[0] for r in rows]


def after_pos(conn: sqlite3.Connection, pos: int, limit: int) -> list[Record]:
    rows = conn.execute(
        "SELECT pos, run_id, seq, ts_ns, type, body, crc FROM events"
        " WHERE pos > ? ORDER BY pos LIMIT ?",
        (pos, limit),
    )
    return _records(None, rows)


def head(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT max(pos) FROM events").fetchone()[0] or 0


def data_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _best_snapshot(conn: sqlite3.Connection, run_id: str, seq: int) -> tuple[int, dict]:
    return pick_snapshot(conn.execute(
        "SELECT seq, state, state_hash FROM snapshots WHERE run_id = ? AND seq <= ?"
        " ORDER BY seq DESC LIMIT 4",
        (run_id, seq),
    ))


def state_at(
    conn: sqlite3.Connection, run_id: str, seq: int | None, use_snapshots: bool = True
) -> StateAt:
    if seq is None:
        seq = last_seq(conn, run_id)
    start, state = _best_snapshot(conn, run_id, seq) if use_snapshots else (0, {})
    problems: list[tuple[int, str]] = []
    rows = conn.execute(
        f"SELECT seq, type, body, crc FROM events WHERE run_id = ? AND seq > ? AND seq <= ?"
        f" AND {_FOLD_FILTER} ORDER BY seq",
        (run_id, start, seq),
    )
    while batch := rows.fetchmany(1024):
        fold_rows(state, batch, problems)
    return StateAt(run_id=run_id, seq=seq, state=state, problems=problems, snapshot_seq=start)


def state_pair(conn: sqlite3.Connection, run_id: str, seq: int) -> tuple[StateAt, StateAt]:
    """The state just before `seq` and as of it, for one fold instead of two."""
    before = state_at(conn, run_id, seq - 1) if seq > 1 else StateAt(run_id=run_id, seq=0, state={})
    problems = list(before.problems)
    row = conn.execute(
        "SELECT type, body, crc FROM events WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    after = dict(before.state) if row is None else fold_next(before.state, seq, *row, problems)
    return before, StateAt(run_id=run_id, seq=seq, state=after, problems=problems, snapshot_seq=before.snapshot_seq)


def snapshot_row(conn: sqlite3.Connection, run_id: str, seq: int) -> tuple | None:
    """The snapshot to store at `seq`, or None if the fold there is not trustworthy."""
    view = state_at(conn, run_id, seq)
    if view.problems:
        return None
    return (run_id, seq, encode_state(view.state), canonical_hash(view.state))


def snapshot_rows(conn: sqlite3.Connection, run_id: str) -> dict[int, tuple[bytes, str]]:
    rows = conn.execute("SELECT seq, state, state_hash FROM snapshots WHERE run_id = ?", (run_id,))
    return {seq: (blob, digest) for seq, blob, digest in rows}


def raw_page(conn: sqlite3.Connection, run_id: str, lo: int, limit: int) -> list[tuple]:
    """Rows exactly as stored: (seq, ts_ns, type, step_id, body, crc)."""
    return conn.execute(
        "SELECT seq, ts_ns, type, step_id, body, crc FROM events"
        " WHERE run_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
        (run_id, lo, limit),
    ).fetchall()


def insert_snapshot(conn: sqlite3.Connection, row: tuple) -> None:
    conn.execute("INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?)", row)


# The runs row plus its last event's seq and time (one probe of the events index per run).
_RUN_SELECT = (
    f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)}, e.seq, e.ts_ns FROM runs r"
    " LEFT JOIN events e ON e.run_id = r.run_id"
    " AND e.seq = (SELECT max(seq) FROM events WHERE run_id = r.run_id)"
)


def last_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT max(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] or 0


def _run_filter(
    status: str | None, graph: str | None, search: str | None, category: str | None = None
) -> tuple[str, list]:
    clauses, args = [], []
    if status:
        clauses.append("r.status = ?")
        args.append(status)
    if category:
        clauses.append("r.error_category = ?")
        args.append(category)
    if graph:
        clauses.append("r.graph = ?")
        args.append(graph)
    if search:
        clauses.append("(r.run_id LIKE ? ESCAPE '\\' OR r.labels LIKE ? ESCAPE '\\'"
                       " OR r.graph LIKE ? ESCAPE '\\')")
        like = contains_pattern(search)
        args.extend([like, like, like])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def list_runs(
    conn: sqlite3.Connection,
    status: str | None,
    graph: str | None,
    search: str | None,
    limit: int,
    offset: int,
    order: str = "newest",
    category: str | None = None,
) -> list[RunInfo]:
    where, args = _run_filter(status, graph, search, category)
    rows = conn.execute(
        f"{_RUN_SELECT}{where} ORDER BY {ORDERS[order]} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [run_info(r) for r in rows]


def count_runs(
    conn: sqlite3.Connection, status: str | None, graph: str | None, search: str | None,
    category: str | None = None,
) -> int:
    where, args = _run_filter(status, graph, search, category)
    return conn.execute(f"SELECT count(*) FROM runs r{where}", args).fetchone()[0]


def get_run(conn: sqlite3.Connection, run_id: str) -> RunInfo | None:
    row = conn.execute(f"{_RUN_SELECT} WHERE r.run_id = ?", (run_id,)).fetchone()
    return run_info(row) if row else None


def match_runs(conn: sqlite3.Connection, prefix: str) -> list[str]:
    # GLOB, not LIKE: ids may hold '_' and LIKE is case-insensitive.
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
    return [
        r[0] for r in conn.execute("SELECT run_id FROM runs WHERE run_id GLOB ? LIMIT 2", (escaped + "*",))
    ]


def list_interrupts(
    conn: sqlite3.Connection, run_id: str | None, pending_only: bool
) -> list[InterruptInfo]:
    sql, args = interrupts_query("interrupts", "?", run_id, pending_only)
    return interrupt_infos(conn.execute(sql, args))
