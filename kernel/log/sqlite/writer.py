"""Group commit: one writer task per process folds every waiting append into one transaction.

Each caller's append returns after the COMMIT that holds it. A caller cancelled before its turn
is skipped; one cancelled during the commit is simply not told. The transaction itself runs as a
single call on the writer's SQLite thread, so it is never left open.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from typing import Any, Callable, Sequence

from ...errors import ConcurrencyError, StoreClosed, StoreError
from ...projection import PROJECTED, RUN_COLUMNS, advance, new_row
from .sqlthread import SqlThread

__all__ = ["Append", "GroupWriter"]

# Row layout: (run_id, seq, ts_ns, type, step_id, body, crc)
_INSERT_EVENT = (
    "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# An upsert, not INSERT OR REPLACE: REPLACE deletes and re-inserts, rewriting every index entry
# of the row on each change; an update leaves the entries of unchanged columns alone.
_UPSERT_RUN = (
    f"INSERT INTO runs({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    " ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
)
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id IN ({{}})"
# One probe per run: SQLite answers max() from the (run_id, seq) index only without GROUP BY.
_LAST_SEQ = "SELECT max(seq) FROM events WHERE run_id = ?"
_MAX_ROWS_PER_COMMIT = 20_000


def _in_chunks(conn: sqlite3.Connection, sql: str, keys: list[str]) -> list[tuple]:
    """`sql` with its `IN ({})` filled, run over the keys 500 at a time (SQLite's variable cap)."""
    out: list[tuple] = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        out.extend(conn.execute(sql.format(", ".join("?" * len(chunk))), chunk))
    return out


class Append:
    __slots__ = ("run_id", "expected_seq", "rows", "events", "future", "claim")

    def __init__(
        self,
        run_id: str,
        expected_seq: int,
        rows: list[tuple],
        events: Sequence[Any],
        future: asyncio.Future,
        claim: tuple[str, int] | None,
    ) -> None:
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.rows = rows
        self.events = events
        self.future = future
        self.claim = claim


Committed = list[tuple[str, int, int]]  # (run_id, last_seq before, last_seq after)


def _commit_group(
    conn: sqlite3.Connection, group: list[Append], known: dict[str, int]
) -> tuple[list, Committed]:
    """One transaction for the whole group. `known` caches each run's last seq as this writer
    left it; a cached value that disagrees with a caller is checked against the table, and the
    UNIQUE(run_id, seq) index catches another process having appended meanwhile."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        last: dict[str, int] = {}
        outcomes: list[Any] = []
        inserts: list[tuple] = []
        before: dict[str, int] = {}
        projecting: list[Append] = []
        for a in group:
            actual = last.get(a.run_id)
            if actual is None:
                actual = known.get(a.run_id)
                if actual != a.expected_seq:
                    actual = conn.execute(_LAST_SEQ, (a.run_id,)).fetchone()[0] or 0
            if actual != a.expected_seq:
                outcomes.append(ConcurrencyError(a.run_id, a.expected_seq, actual))
                continue
            last[a.run_id] = a.rows[-1][1]
            before.setdefault(a.run_id, actual)
            if actual == 0 or any(isinstance(e, PROJECTED) for e in a.events):
                projecting.append(a)
            inserts.extend(a.rows)
            outcomes.append(last[a.run_id])
        if inserts:
            conn.executemany(_INSERT_EVENT, inserts)
        if projecting:
            _project(conn, projecting)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for a in group:
            known.pop(a.run_id, None)
        raise
    known.update(last)
    return outcomes, [(rid, old, last[rid]) for rid, old in before.items()]


def _project(conn: sqlite3.Connection, appends: list[Append]) -> None:
    """Advance the runs and interrupts projections for the appends that change them."""
    rows = {
        r[0]: dict(zip(RUN_COLUMNS, r))
        for r in _in_chunks(conn, _SELECT_RUNS, list({a.run_id for a in appends}))
    }
    interrupt_ops: list[tuple] = []
    for a in appends:
        row = rows.get(a.run_id)
        if row is None:
            row = rows[a.run_id] = new_row(a.run_id, a.rows[0][2])
            if a.claim is not None:  # (owner, lease_ns): this host's clock is the log's
                row["owner"], row["lease_until_ns"] = a.claim[0], time.time_ns() + a.claim[1]
        for r, event in zip(a.rows, a.events):
            advance(row, event, r[1], r[2], interrupt_ops)
    conn.executemany(_UPSERT_RUN, [tuple(row[c] for c in RUN_COLUMNS) for row in rows.values()])
    for op in interrupt_ops:
        if op[0] == "raise":
            conn.execute("INSERT OR REPLACE INTO interrupts VALUES (?, ?, ?, ?, ?, ?, NULL)", op[1:])
        elif op[0] == "close":
            conn.execute(
                "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND resolved_seq IS NULL",
                (op[3], op[1]),
            )
        else:
            conn.execute(
                "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND interrupt_id = ?",
                (op[3], op[1], op[2]),
            )


class GroupWriter:
    def __init__(self, thread: SqlThread, on_commit: Callable[[Committed], None]) -> None:
        self._thread = thread
        self._on_commit = on_commit
        self._queue: deque[Append] = deque()
        self._known: dict[str, int] = {}  # run -> last seq, touched only on the writer thread
        self._wake = asyncio.Event()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="vigil-writer")

    def submit(
        self,
        run_id: str,
        expected_seq: int,
        rows: list[tuple],
        events: Sequence[Any],
        claim: tuple[str, int] | None = None,
    ) -> asyncio.Future[int]:
        """Queue an append; the future resolves to the run's new last seq after the commit."""
        if self._closing:
            raise StoreClosed("the store is closed")
        future = self._loop.create_future()
        self._queue.append(Append(run_id, expected_seq, rows, events, future, claim))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task

    async def _commit(self, group: list[Append], *, again: bool = True) -> tuple[list, Committed]:
        try:
            return await self._thread.call(_commit_group, group, self._known)
        except (sqlite3.Error, OverflowError, UnicodeError) as exc:  # a value SQLite cannot bind too
            if len(group) == 1:
                if again and isinstance(exc, sqlite3.IntegrityError):
                    # UNIQUE(run_id, seq): another process appended since this writer last did.
                    # Its cached last seq is dropped now; checked against the table this time,
                    # the stale caller gets a ConcurrencyError.
                    return await self._commit(group, again=False)
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
                # One turn of the loop first: tasks made ready with the first append (a driver
                # just started, callers just woken) queue theirs into the same commit.
                await asyncio.sleep(0)
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
            # Let the callers just woken append their next batch before the next group forms;
            # without this, 100 busy runs split into two half-size groups and twice the fsyncs.
            await asyncio.sleep(0)
