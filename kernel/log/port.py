"""The event log port: everything the kernel and the console ask of a log, and nothing a backend
could leak through (no connections, no SQL, no backend callables cross it).

    async with await EventLog.open("vigil.db") as log:                  # SQLite, the default
    async with await EventLog.open("postgresql://host/vigil") as log:   # PostgreSQL

Backends: `sqlite.store.SqliteLog` and `postgres.store.PostgresLog`. Both keep the same
semantics: a gap-free seq per run (expected_seq, a unique (run_id, seq)), group commit, the
runs/interrupts projections advanced in the append's transaction, a global commit order `pos`
for tails, schema versions with newer ones refused, lease times from the database's clock.
"""

from __future__ import annotations

import abc
import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

from ..codec import Record, seal
from ..errors import Ambiguous, NotFound
from ..events import Event
from ..projection import RunInfo
from .folding import InterruptInfo, StateAt

if TYPE_CHECKING:  # pragma: no cover
    from array import array

    from ..secretscan import Finding
    from ..signals import Signal

__all__ = ["EventLog", "is_postgres", "describe_target"]


def is_postgres(target: str | os.PathLike | None) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe_target(target: str | os.PathLike) -> str:
    """A log's address fit for messages: a URL's password is never shown."""
    if not is_postgres(target):
        return str(target)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def sealed_rows(run_id: str, events: Sequence[Event], expected_seq: int, ts: int) -> tuple[list, list]:
    """Rows `(run_id, seq, ts_ns, type, step_id, body, crc)` and the redacted events they hold
    (the projections are advanced from those). Encoding errors raise here, before any queueing."""
    rows, sealed = [], []
    for seq, event in enumerate(events, expected_seq + 1):
        event, body, crc = seal(event)
        sealed.append(event)
        rows.append((run_id, seq, ts, type(event).__name__, getattr(event, "step_id", None), body, crc))
    return rows, sealed


class EventLog(abc.ABC):
    """The port. `where` names the log in messages; `readonly` logs refuse every write."""

    where: str
    readonly: bool
    poll_interval: float = 0.05

    @staticmethod
    async def open(target: str | os.PathLike | None = None, *, readonly: bool = False, **options: Any) -> "EventLog":
        """A path (or `sqlite:PATH`) opens SQLite; `postgresql://...` opens PostgreSQL."""
        if is_postgres(target):
            from .postgres.store import PostgresLog

            return await PostgresLog.open(str(target), readonly=readonly, **options)
        from .sqlite.store import SqliteLog

        if isinstance(target, str) and target.startswith("sqlite:"):
            target = target.removeprefix("sqlite:").removeprefix("//")
        return await SqliteLog.open(target, readonly=readonly, **options)

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "EventLog":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # writing --------------------------------------------------------------------------------

    async def append(
        self, run_id: str, events: Sequence[Event], *, expected_seq: int, ts_ns: int | None = None
    ) -> int:
        """Append atomically after `expected_seq`; returns the run's new last seq once committed.

        Raises ConcurrencyError (writing nothing) if the run's last seq is not `expected_seq`.
        """
        if not events:
            return expected_seq
        return await self.submit(run_id, events, expected_seq=expected_seq, ts_ns=ts_ns)

    def submit(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        ts_ns: int | None = None,
        claim: tuple[str, int] | None = None,
    ) -> asyncio.Future[int]:
        """Queue an append now (encoding errors raise here, before anything is queued); the
        future resolves after its commit. `claim` (owner, lease_ns) makes a new run's row owned,
        its lease timed by the database's clock, in the transaction that creates it."""
        rows, sealed = sealed_rows(run_id, events, expected_seq, ts_ns if ts_ns is not None else time.time_ns())
        return self._submit_rows(run_id, expected_seq, rows, sealed, claim)

    async def append_rows(self, run_id: str, rows: list[tuple], events: list, *, expected_seq: int) -> int:
        """Append pre-encoded rows `(run_id, seq, ts_ns, type, step_id, body, crc)` (import, copy)."""
        return await self._submit_rows(run_id, expected_seq, rows, events, None)

    @abc.abstractmethod
    def _submit_rows(
        self, run_id: str, expected_seq: int, rows: list[tuple], events: Sequence[Any],
        claim: tuple[str, int] | None,
    ) -> asyncio.Future[int]: ...

    @abc.abstractmethod
    async def snapshot(self, run_id: str, seq: int) -> bool:
        """Store the state at `seq`; False if the fold there has problems (none is stored)."""

    @abc.abstractmethod
    async def flush_snapshots(self) -> None: ...

    # reading one run ------------------------------------------------------------------------

    @abc.abstractmethod
    async def events(
        self, run_id: str, from_seq: int = 1, to_seq: int | None = None, *,
        limit: int = 1000, types: Sequence[str] | None = None,
    ) -> list[Record]:
        """One page of a run's events in seq order."""

    async def iter_events(
        self, run_id: str, from_seq: int = 1, to_seq: int | None = None, *,
        page: int = 2000, types: Sequence[str] | None = None,
    ) -> AsyncIterator[Record]:
        """Every event of a run from `from_seq`, fetched page by page, never all at once."""
        lo = from_seq
        while True:
            batch = await self.events(run_id, lo, to_seq, limit=page, types=types)
            for record in batch:
                yield record
            if len(batch) < page:
                return
            lo = batch[-1].seq + 1

    @abc.abstractmethod
    async def raw_rows(self, run_id: str, from_seq: int = 1, limit: int = 2000) -> list[tuple]:
        """Rows exactly as stored, for export: (seq, ts_ns, type, step_id, body, crc)."""

    @abc.abstractmethod
    async def snapshot_rows(self, run_id: str) -> dict[int, tuple[bytes, str]]: ...

    @abc.abstractmethod
    async def find(self, run_id: str, seq: int, types: Sequence[str], *, forward: bool = True) -> int | None:
        """The nearest seq after (or before) `seq` holding one of `types`."""

    @abc.abstractmethod
    async def seqs(self, run_id: str, types: Sequence[str]) -> "array[int]":
        """Every seq of a run holding one of `types`, compactly (8 bytes each)."""

    @abc.abstractmethod
    async def last_seq(self, run_id: str) -> int: ...

    @abc.abstractmethod
    async def state_at(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` (default: the last): the nearest snapshot plus a short fold."""

    @abc.abstractmethod
    async def state_pair(self, run_id: str, seq: int) -> tuple[StateAt, StateAt]:
        """The state just before `seq` and as of it (what the scrubber diffs)."""

    @abc.abstractmethod
    async def replay(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` folded from the first event, ignoring snapshots."""

    # the whole log --------------------------------------------------------------------------

    @abc.abstractmethod
    async def head(self) -> int:
        """The pos of the newest event (0 for an empty log): where a new tail starts."""

    @abc.abstractmethod
    async def read_after(self, pos: int, limit: int = 1000) -> list[Record]:
        """Up to `limit` events of every run after global position `pos`, in commit order."""

    @abc.abstractmethod
    def tail(self, after: int = 0, *, page: int = 1000) -> AsyncIterator[list[Record]]:
        """Batches of new events from every run, in commit order, forever."""

    async def run(self, run_id: str) -> RunInfo:
        info = await self._get_run(run_id)
        if info is None:
            raise NotFound(f"no run {run_id!r}")
        return info

    async def resolve(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one."""
        if await self._get_run(run_id):
            return run_id
        matches = await self._match_runs(run_id)
        if not matches:
            raise NotFound(f"no run {run_id!r}")
        if len(matches) > 1:
            raise Ambiguous(f"{run_id!r} matches more than one run; give more of the id")
        return matches[0]

    @abc.abstractmethod
    async def _get_run(self, run_id: str) -> RunInfo | None: ...

    @abc.abstractmethod
    async def _match_runs(self, prefix: str) -> list[str]:
        """Up to two run ids starting with `prefix` (exactly, case-sensitively)."""

    @abc.abstractmethod
    async def runs(
        self, *, status: str | None = None, graph: str | None = None, search: str | None = None,
        limit: int = 100, offset: int = 0, order: str = "newest",
    ) -> list[RunInfo]:
        """One page of runs (newest first, or oldest / status / graph)."""

    @abc.abstractmethod
    async def count_runs(
        self, *, status: str | None = None, graph: str | None = None, search: str | None = None
    ) -> int: ...

    @abc.abstractmethod
    async def interrupts(self, run_id: str | None = None, *, pending_only: bool = True) -> list[InterruptInfo]: ...

    # ownership and signals ------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
        """Take a live run if it is free, ours, its lease has run out (by the database's clock),
        or it is still held by `previous` (found dead by the caller)."""

    @abc.abstractmethod
    async def renew(self, owner: str, lease_ns: int) -> None: ...

    @abc.abstractmethod
    async def release(self, run_ids: list[str], owner: str) -> None: ...

    @abc.abstractmethod
    async def send_signal(self, run_id: str, kind: str, body: dict, sender: Any) -> int:
        """Queue a signal for the run's owner; `sender` is an Actor (or an owner id for a wake)."""

    @abc.abstractmethod
    async def pending_signals(self, owner: str) -> "list[Signal]":
        """Unapplied signals for the runs `owner` holds, oldest first, as stored (unchecked)."""

    @abc.abstractmethod
    async def finish_signal(self, signal_id: int, outcome: str) -> None: ...

    @abc.abstractmethod
    async def signal_result(self, signal_id: int) -> str | None:
        """The outcome the owner recorded, or None while it is not applied."""

    @abc.abstractmethod
    async def scan_secrets(self, run_id: str | None = None) -> "tuple[list[Finding], int]":
        """`vigil verify --secrets`: findings, and how many rows were looked at."""
