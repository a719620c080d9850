"""The SQLite event log: appends through the group-commit writer, reads on their own connection.

    async with await SqliteLog.open(path) as log:
        seq = await log.append(run_id, [RunStarted(graph="g")], expected_seq=0)
        view = await log.state_at(run_id)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from . import artifacts, chainrows, leases, reads, schema, secretscan, walguard
from ...codec import Record
from ...errors import StoreError
from ..port import EventLog
from .sqlthread import SqlThread
from ..groupcommit import Committed
from .writer import sqlite_writer

__all__ = ["SqliteLog"]


class SqliteLog(EventLog):
    _reads = reads
    _leases = leases
    _chains = chainrows
    _scan = staticmethod(secretscan.scan)
    _artifacts = artifacts

    def __init__(
        self,
        path: Path,
        reader: SqlThread,
        writer_thread: SqlThread | None,
        snapshot_every: int,
        poll_interval: float,
    ) -> None:
        self.path = path
        self.where = str(path)
        self.readonly = writer_thread is None
        self.snapshot_every = snapshot_every
        self.poll_interval = poll_interval
        self._reader = reader
        self._writer_thread = writer_thread
        self._writer = sqlite_writer(writer_thread, self._committed) if writer_thread else None
        self._changed = asyncio.Event()
        self._snap_queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._snapshotter = (
            asyncio.create_task(self._snapshot_loop(), name="vigil-snapshots")
            if writer_thread and snapshot_every > 0
            else None
        )
        self._marker = (
            asyncio.create_task(self._mark_loop(), name="vigil-wal-mark") if writer_thread else None
        )

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike | None = None,
        *,
        readonly: bool = False,
        synchronous: str = "FULL",
        snapshot_every: int = 1000,
        poll_interval: float = 0.05,
    ) -> "SqliteLog":
        path = Path(path) if path is not None else schema.default_path()
        walguard.check(path)
        writer_thread = None
        reader = SqlThread(
            lambda: schema.connect(path, readonly=True), "vigil-reader", raw_errors=False
        )
        started: list[SqlThread] = []
        try:
            if not readonly:
                writer_thread = SqlThread(
                    lambda: schema.connect(path, synchronous=synchronous), "vigil-writer"
                )
                started.append(writer_thread)
                await writer_thread.start()
                await writer_thread.call(schema.migrate)
                await writer_thread.call(walguard.mark)
                walguard.clear_at_exit(path)
            started.append(reader)
            await reader.start()
            if readonly:
                await reader.call(schema.check_readable)
        except BaseException as exc:
            for thread in started:
                await thread.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StoreError(f"cannot open {path}: {exc}") from None
            raise
        return cls(path, reader, writer_thread, snapshot_every, poll_interval)

    async def close(self) -> None:
        try:
            if self._writer is not None:
                await self._writer.close()
            if self._snapshotter is not None:
                self._snapshotter.cancel()
                await asyncio.gather(self._snapshotter, return_exceptions=True)
            if self._marker is not None:
                self._marker.cancel()
                await asyncio.gather(self._marker, return_exceptions=True)
        finally:
            # The read-only connection first: the last to close checkpoints only if it may write.
            await self._reader.close()
            if self._writer_thread is not None:
                await self._writer_thread.call(walguard.checkpoint_and_clear)
                await self._writer_thread.close()
                walguard.forget(self.path)

    # writing ----------------------------------------------------------------------------

    def _submit_rows(
        self, run_id: str, expected_seq: int, rows: list[tuple], events: Sequence[Any],
        claim: tuple[str, int] | None,
    ) -> asyncio.Future[int]:
        if self._writer is None:
            raise StoreError(f"{self.path} is open read-only")
        return self._writer.submit(run_id, expected_seq, rows, events, claim)

    async def _read(self, fn, *args):
        return await self._reader.call(fn, *args)

    async def _write(self, fn, *args):
        """Run `fn(connection, *args)` on the writer's thread (small writes outside the log:
        ownership, signals); `fn` runs its own transaction."""
        if self._writer_thread is None:
            raise StoreError(f"{self.path} is open read-only")
        try:
            return await self._writer_thread.call(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from None

    def _committed(self, committed: Committed) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        every = self.snapshot_every
        if self._snapshotter is None:
            return
        # Every boundary crossed gets its snapshot (each folds from the one before), so a big
        # batch never leaves state_at more than `every` events to fold.
        for run_id, before, after in committed:
            if before // every != after // every:  # most commits cross no boundary
                for boundary in range(before // every + 1, after // every + 1):
                    self._snap_queue.put_nowait((run_id, boundary * every))

    async def _mark_loop(self) -> None:
        """Re-assert wal_in_use: another writer that closed meanwhile cleared it (walguard)."""
        while True:
            await asyncio.sleep(3.0)
            try:
                await self._writer_thread.call(walguard.mark)
            except sqlite3.Error:
                pass  # busy now; the next round will do

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
        """Store the state at `seq`; False if the fold there has problems (none is stored)."""
        row = await self._reader.call(reads.snapshot_row, run_id, seq)
        if row is None or self._writer_thread is None:
            return False
        try:
            await self._writer_thread.call(reads.insert_snapshot, row)
        except sqlite3.Error as exc:  # a full disk, say: the snapshot loop must go on
            raise StoreError(f"snapshot of run {run_id} at seq {seq}: {exc}") from None
        return True

    async def flush_snapshots(self) -> None:
        await self._snap_queue.join()

    # reading (the rest is the port's, through _read) -----------------------------------------

    async def tail(self, after: int = 0, *, page: int = 1000) -> AsyncIterator[list[Record]]:
        """Batches of new events from every run, in commit order, forever.

        Woken at once by this process's commits; other processes' commits are noticed by
        polling PRAGMA data_version, which costs no read of the log when nothing changed.
        """
        seen_version = -1
        while True:
            changed = self._changed
            version = await self._reader.call(reads.data_version)
            if version != seen_version or changed.is_set():
                batch = await self.read_after(after, page)
                if batch:
                    after = batch[-1].pos
                    yield batch
                    continue
                seen_version = version
            try:
                await asyncio.wait_for(changed.wait(), self.poll_interval)
            except TimeoutError:
                pass
