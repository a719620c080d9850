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
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

from . import leases, reads, schema, secretscan, walguard
from ...codec import Record
from ...errors import StoreError
from ...projection import RunInfo
from ..folding import InterruptInfo, StateAt
from ..port import EventLog
from .sqlthread import SqlThread
from ..groupcommit import Committed
from .writer import sqlite_writer

if TYPE_CHECKING:  # pragma: no cover
    from array import array

__all__ = ["SqliteLog"]


class SqliteLog(EventLog):
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

    # reading ----------------------------------------------------------------------------

    async def events(
        self,
        run_id: str,
        from_seq: int = 1,
        to_seq: int | None = None,
        *,
        limit: int = 1000,
        types: Sequence[str] | None = None,
    ) -> list[Record]:
        """One page of a run's events in seq order."""
        return await self._reader.call(
            reads.events_page, run_id, from_seq, to_seq, limit, tuple(types) if types else None
        )

    async def raw_rows(self, run_id: str, from_seq: int = 1, limit: int = 2000) -> list[tuple]:
        """Rows exactly as stored, for export: (seq, ts_ns, type, step_id, body, crc)."""
        return await self._reader.call(reads.raw_page, run_id, from_seq, limit)

    async def snapshot_rows(self, run_id: str) -> dict[int, tuple[bytes, str]]:
        return await self._reader.call(reads.snapshot_rows, run_id)

    async def find(
        self, run_id: str, seq: int, types: Sequence[str], *, forward: bool = True
    ) -> int | None:
        """The nearest seq after (or before) `seq` holding one of `types`."""
        return await self._reader.call(reads.find_seq, run_id, seq, forward, tuple(types))

    async def seqs(self, run_id: str, types: Sequence[str]) -> "array[int]":
        """Every seq of a run holding one of `types`, compactly (8 bytes each)."""
        from array import array

        return array("q", await self._reader.call(reads.seqs_of_types, run_id, tuple(types)))

    async def head(self) -> int:
        """The pos of the newest event (0 for an empty log): where a new tail starts."""
        return await self._reader.call(reads.head)

    async def read_after(self, pos: int, limit: int = 1000) -> list[Record]:
        return await self._reader.call(reads.after_pos, pos, limit)

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

    async def state_at(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` (default: the last): the nearest snapshot plus a short fold."""
        return await self._reader.call(reads.state_at, run_id, seq)

    async def state_pair(self, run_id: str, seq: int) -> tuple[StateAt, StateAt]:
        """The state just before `seq` and as of it (what the scrubber diffs)."""
        return await self._reader.call(reads.state_pair, run_id, seq)

    async def replay(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` folded from the first event, ignoring snapshots."""
        return await self._reader.call(reads.state_at, run_id, seq, False)

    async def _get_run(self, run_id: str) -> RunInfo | None:
        return await self._reader.call(reads.get_run, run_id)

    async def _match_runs(self, prefix: str) -> list[str]:
        return await self._reader.call(reads.match_runs, prefix)

    async def last_seq(self, run_id: str) -> int:
        return await self._reader.call(reads.last_seq, run_id)

    async def runs(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order: str = "newest",
    ) -> list[RunInfo]:
        """One page of runs (newest first, or oldest / status / graph)."""
        return await self._reader.call(reads.list_runs, status, graph, search, limit, offset, order)

    async def count_runs(
        self, *, status: str | None = None, graph: str | None = None, search: str | None = None
    ) -> int:
        return await self._reader.call(reads.count_runs, status, graph, search)

    async def interrupts(
        self, run_id: str | None = None, *, pending_only: bool = True
    ) -> list[InterruptInfo]:
        return await self._reader.call(reads.list_interrupts, run_id, pending_only)

    # ownership and signals (this host's clock is the database's) ------------------------------

    async def claim(self, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
        return await self._write(leases.claim, run_id, owner, lease_ns, previous)

    async def renew(self, owner: str, lease_ns: int) -> None:
        await self._write(leases.renew, owner, lease_ns)

    async def release(self, run_ids: list[str], owner: str) -> None:
        await self._write(leases.release, run_ids, owner)

    async def send_signal(self, run_id: str, kind: str, body: dict, sender: Any) -> int:
        return await self._write(leases.send, run_id, kind, body, sender)

    async def pending_signals(self, owner: str) -> list:
        return await self._reader.call(leases.pending, owner)

    async def finish_signal(self, signal_id: int, outcome: str) -> None:
        await self._write(leases.finish, signal_id, outcome)

    async def signal_result(self, signal_id: int) -> str | None:
        return await self._reader.call(leases.result, signal_id)

    async def scan_secrets(self, run_id: str | None = None) -> tuple[list, int]:
        return await self._reader.call(secretscan.scan, run_id)
