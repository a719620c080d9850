"""The PostgreSQL event log: the same port as SQLite's, for a log many hosts share.

Connections: one for the group-commit writer, one for reads and small writes (leases, signals,
snapshots), and one that LISTENs, opened by the first tail. Each is reopened on its next use
after it is lost; the call that met the loss fails with StoreError (the console's feed says
"reconnecting" and retries).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import psycopg
from psycopg import errors as pgerrors

from ...codec import Record
from ...errors import StoreError
from ..groupcommit import Committed
from ..port import EventLog, describe_target
from . import artifacts, chainrows, leases, reads, schema
from .secretscan import scan
from .writer import postgres_writer

__all__ = ["PostgresLog"]

T = TypeVar("T")
_RETRY = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)


class _Link:
    """One connection, opened on first use and again after it is lost."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.conn: psycopg.AsyncConnection | None = None
        self._opening = asyncio.Lock()

    async def get(self) -> psycopg.AsyncConnection:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        async with self._opening:
            if self.conn is None or self.conn.closed or self.conn.broken:
                try:
                    self.conn = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True, application_name=f"vigil {self.name}", connect_timeout=10
                    )
                except psycopg.Error as exc:
                    raise StoreError(f"cannot connect to the log: {_short(exc)}") from None
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class PostgresLog(EventLog):
    _reads = reads
    _leases = leases
    _chains = chainrows
    _scan = staticmethod(scan)
    _artifacts = artifacts

    def __init__(self, dsn: str, readonly: bool, snapshot_every: int, poll_interval: float) -> None:
        self.dsn = dsn
        self.where = describe_target(dsn)
        self.readonly = readonly
        self.snapshot_every = snapshot_every
        self.poll_interval = poll_interval
        self._reader = _Link(dsn, "reader")
        self._writer_link = _Link(dsn, "writer")
        self._bulk_link = _Link(dsn, "artifacts")
        self._bulk_lock = asyncio.Lock()
        # Small write transactions (leases, signals, snapshots, seals) one at a time on a
        # connection of their own: psycopg runs a transaction opened while another task's is
        # open on the same connection as a savepoint inside it, so sharing the reader's let one
        # task's rollback take back another's committed write (and reads ran inside writes).
        self._txn_link = _Link(dsn, "writes")
        self._txn_lock = asyncio.Lock()
        self._listen_link: _Link | None = None
        self._listening: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._writer = None if readonly else postgres_writer(self._writer_link.get, self._committed)
        self._snap_queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._snapshotter = (
            asyncio.create_task(self._snapshot_loop(), name="vigil-snapshots")
            if not readonly and snapshot_every > 0 else None
        )

    @classmethod
    async def open(
        cls, dsn: str, *, readonly: bool = False, snapshot_every: int = 1000, poll_interval: float = 0.05,
        synchronous: str | None = None,  # SQLite's; PostgreSQL's durability is the server's setting
    ) -> "PostgresLog":
        log = cls(dsn, readonly, snapshot_every, poll_interval)
        try:
            conn = await log._reader.get()
            try:
                if readonly:
                    await schema.check_readable(conn)
                else:
                    await schema.migrate(conn)
            except psycopg.Error as exc:
                raise StoreError(f"cannot open {log.where}: {_short(exc)}") from None
        except BaseException:
            await log.close()
            raise
        return log

    async def close(self) -> None:
        try:
            if self._writer is not None:
                await self._writer.close()
            for task in (self._snapshotter, self._listening):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        finally:
            for link in (self._reader, self._writer_link, self._listen_link, self._bulk_link, self._txn_link):
                if link is not None:
                    await link.close()

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        conn = await self._reader.get()
        try:
            return await fn(conn, *args)
        except psycopg.Error as exc:
            raise StoreError(f"the log cannot be read: {_short(exc)}") from None

    async def _write(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self.readonly:
            raise StoreError(f"{self.where} is open read-only")
        for attempt in range(3):
            try:
                async with self._txn_lock:
                    conn = await self._txn_link.get()
                    async with conn.transaction():
                        return await fn(conn, *args)
            except _RETRY:
                if attempt == 2:
                    raise StoreError("the log stayed busy (deadlock or serialization failure, 3 tries)") from None
            except (psycopg.Error, UnicodeError) as exc:
                raise StoreError(_short(exc)) from None
        raise AssertionError("unreachable")

    async def _bulk(self, write: bool, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Artifact bytes (up to hundreds of MB) on a connection of their own, one at a time:
        seconds of upload must not hold up the reader's small reads, nor run inside, or around,
        a lease or signal transaction another task has open on the reader's connection."""
        if write and self.readonly:
            raise StoreError(f"{self.where} is open read-only")
        async with self._bulk_lock:
            conn = await self._bulk_link.get()
            try:
                if not write:
                    return await fn(conn, *args)
                async with conn.transaction():
                    return await fn(conn, *args)
            except psycopg.Error as exc:
                raise StoreError(f"artifact {'write' if write else 'read'} failed: {_short(exc)}") from None

    # writing --------------------------------------------------------------------------------

    def _submit_rows(self, run_id, expected_seq, rows, events, claim) -> asyncio.Future[int]:
        if self._writer is None:
            raise StoreError(f"{self.where} is open read-only")
        return self._writer.submit(run_id, expected_seq, rows, events, claim)

    def _committed(self, committed: Committed) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self._snapshotter is None:
            return
        every = self.snapshot_every
        for run_id, before, after in committed:
            if before // every != after // every:  # most commits cross no boundary
                for boundary in range(before // every + 1, after // every + 1):
                    self._snap_queue.put_nowait((run_id, boundary * every))

    async def _snapshot_loop(self) -> None:
        while True:
            run_id, seq = await self._snap_queue.get()
            try:
                await self.snapshot(run_id, seq)
            except StoreError:
                pass  # snapshots only make replay faster; the next one will be taken
            finally:
                self._snap_queue.task_done()

    async def snapshot(self, run_id: str, seq: int) -> bool:
        row = await self._read(reads.snapshot_row, run_id, seq)
        if row is None or self.readonly:
            return False

        async def insert(conn):
            await conn.execute("INSERT INTO vigil.snapshots VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", row)

        await self._write(insert)
        return True

    async def flush_snapshots(self) -> None:
        await self._snap_queue.join()

    # reading --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Swap-and-set `_changed` on every NOTIFY (sent in each append's transaction, delivered
        at its commit). After a lost connection: reconnect, LISTEN again, and wake every tail
        once, for what was committed while nobody listened."""
        assert self._listen_link is not None
        while True:
            try:
                conn = await self._listen_link.get()
                await conn.execute(f"LISTEN {schema.LOG_CHANNEL}")
                self._wake()
                async for _ in conn.notifies():
                    self._wake()
            except (psycopg.Error, StoreError):
                await asyncio.sleep(0.5)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def tail(self, after: int = 0, *, page: int = 1000) -> AsyncIterator[list[Record]]:
        """Batches of new events from every run, in commit order, forever: woken by LISTEN/NOTIFY
        at each commit in any process; then a catch-up read after the last pos seen. The timed
        wait is a safety net only (a notification lost with a connection), not the path."""
        if self._listening is None:
            self._listen_link = _Link(self.dsn, "listener")
            self._listening = asyncio.create_task(self._listen(), name="vigil-listen")
        while True:
            changed = self._changed
            batch = await self.read_after(after, page)
            if batch:
                after = batch[-1].pos
                yield batch
                continue
            try:
                await asyncio.wait_for(changed.wait(), 2.0)
            except TimeoutError:
                pass
