"""Group commit: one writer task per process folds every waiting append into one transaction.

Each caller's append returns after the COMMIT that holds it. A caller cancelled before its turn
is skipped; one cancelled during the commit is simply not told. The transaction itself runs as a
single call on the writer's SQLite thread, so it is never left open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from typing import Any, Callable

from .errors import ConcurrencyError, StoreClosed, StoreError
from .projection import RUN_COLUMNS, advance, new_row
from .sqlthread import SqlThread

__all__ = ["Append", "GroupWriter"]

# Row layout: (run_id, seq, ts_ns, type, step_id, body, crc)
_INSERT_EVENT = (
    "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_RUN = (
    f"INSERT OR REPLACE INTO runs({', '.join(RUN_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id IN "
_MAX_ROWS_PER_COMMIT = 20_000


class Append:
    __slots__ = ("run_id", "expected_seq", "rows", "events", "future")

    def __init__(self, run_id: str, expected_seq: int, rows: list[tuple], events: list) -> None:
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.rows = rows
        self.events = events
        self.future: asyncio.Future[int] = asyncio.get_running_loop().create_future()


Committed = list[tuple[str, int, int]]  # (run_id, last_seq before, last_seq after)


def _commit_group(conn: sqlite3.Connection, group: list[Append]) -> tuple[list, Committed]:
    run_ids = list({a.run_id for a in group})
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows: dict[str, dict[str, Any]] = {}
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i : i + 500]
            sql = _SELECT_RUNS + f"({', '.join('?' * len(chunk))})"
            for r in conn.execute(sql, chunk):
                rows[r[0]] = dict(zip(RUN_COLUMNS, r))
        outcomes: list[Any] = []
        inserts: list[tuple] = []
        before: dict[str, int] = {}
        interrupt_ops: list[tuple] = []
        for a in group:
            row = rows.get(a.run_id)
            actual = row["last_seq"] if row else 0
            if actual != a.expected_seq:
                outcomes.append(ConcurrencyError(a.run_id, a.expected_seq, actual))
                continue
            if row is None:
                row = rows[a.run_id] = new_row(a.run_id, a.rows[0][2])
            before.setdefault(a.run_id, actual)
            for r, event in zip(a.rows, a.events):
                advance(row, event, r[1], r[2], interrupt_ops)
            inserts.extend(a.rows)
            outcomes.append(row["last_seq"])
        if inserts:
            conn.executemany(_INSERT_EVENT, inserts)
            conn.executemany(
                _UPSERT_RUN, [tuple(rows[rid][c] for c in RUN_COLUMNS) for rid in before]
            )
            for op in interrupt_ops:
                if op[0] == "raise":
                    conn.execute(
                        "INSERT OR REPLACE INTO interrupts VALUES (?, ?, ?, ?, ?, ?, NULL)",
                        op[1:],
                    )
                else:
                    conn.execute(
                        "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND interrupt_id = ?",
                        (op[3], op[1], op[2]),
                    )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes, [(rid, old, rows[rid]["last_seq"]) for rid, old in before.items()]


class GroupWriter:
    def __init__(self, thread: SqlThread, on_commit: Callable[[Committed], None]) -> None:
        self._thread = thread
        self._on_commit = on_commit
        self._queue: deque[Append] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="vigil-writer")

    async def submit(self, append: Append) -> int:
        if self._closing:
            raise StoreClosed("the store is closed")
        self._queue.append(append)
        self._wake.set()
        return await append.future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task

    async def _commit(self, group: list[Append]) -> tuple[list, Committed]:
        try:
            return await self._thread.call(_commit_group, group)
        except sqlite3.Error as exc:
            if len(group) == 1:
                return [StoreError(f"append to run {group[0].run_id} failed: {exc}")], []
        # One bad batch must not fail the others that shared its transaction: retry each alone.
        outcomes: list = []
        committed: Committed = []
        for a in group:
            one, done = await self._commit([a])
            outcomes.extend(one)
            committed.extend(done)
        return outcomes, committed

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group: list[Append] = []
            n = 0
            while self._queue and n < _MAX_ROWS_PER_COMMIT:
                a = self._queue.popleft()
                if not a.future.cancelled():
                    group.append(a)
                    n += len(a.rows)
            if not group:
                continue
            try:
                outcomes, committed = await self._commit(group)
            except BaseException:
                for a in group:
                    if not a.future.done():
                        a.future.set_exception(StoreClosed("the store closed during a commit"))
                raise
            for a, outcome in zip(group, outcomes):
                if a.future.done():
                    continue
                if isinstance(outcome, Exception):
                    a.future.set_exception(outcome)
                else:
                    a.future.set_result(outcome)
            if committed:
                self._on_commit(committed)
