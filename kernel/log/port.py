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
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence

from ..codec import Record, seal
from ..errors import Ambiguous, NotFound
from ..events import Event
from ..projection import RunInfo
from .folding import InterruptInfo, StateAt

if TYPE_CHECKING:  # pragma: no cover
    from array import array

    from ..artifacts import ArtifactInfo
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
    if len(events) == 1:  # most appends: one event from a driver, awaited by a waiting caller
        event, body, crc = seal(events[0])
        return [(run_id, expected_seq + 1, ts, type(event).__name__, getattr(event, "step_id", None),
                 body, crc)], [event]
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
        # What submit does, without its keyword call: this is every awaited append's path.
        rows, sealed = sealed_rows(run_id, events, expected_seq, ts_ns if ts_ns is not None else time.time_ns())
        return await self._submit_rows(run_id, expected_seq, rows, sealed, None)

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
        """Append pre-encoded rows `(run_id, seq, ts_ns, type, step_id, body, crc[, chain])`
        (import, copy); a row without its chain is chained by the writer."""
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

    # how a backend is reached ----------------------------------------------------------------
    # Every read and small write below is one call of a function of the backend's `_reads` or
    # `_leases` module (the same names and arguments in sqlite/ and postgres/), run by `_read`
    # (the backend's reader) or `_write` (its own transaction); errors come out as StoreError.

    _reads: Any
    _leases: Any
    _scan: Callable

    @abc.abstractmethod
    async def _read(self, fn: Callable, *args: Any) -> Any: ...

    @abc.abstractmethod
    async def _write(self, fn: Callable, *args: Any) -> Any: ...

    # reading one run ------------------------------------------------------------------------

    async def events(
        self, run_id: str, from_seq: int = 1, to_seq: int | None = None, *,
        limit: int = 1000, types: Sequence[str] | None = None,
    ) -> list[Record]:
        """One page of a run's events in seq order."""
        return await self._read(self._reads.events_page, run_id, from_seq, to_seq, limit, tuple(types) if types else None)

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

    async def raw_rows(self, run_id: str, from_seq: int = 1, limit: int = 2000) -> list[tuple]:
        """Rows exactly as stored, for export: (seq, ts_ns, type, step_id, body, crc)."""
        return await self._read(self._reads.raw_page, run_id, from_seq, limit)

    async def snapshot_rows(self, run_id: str) -> dict[int, tuple[bytes, str]]:
        return await self._read(self._reads.snapshot_rows, run_id)

    async def find(self, run_id: str, seq: int, types: Sequence[str], *, forward: bool = True) -> int | None:
        """The nearest seq after (or before) `seq` holding one of `types`."""
        return await self._read(self._reads.find_seq, run_id, seq, forward, tuple(types))

    async def seqs(self, run_id: str, types: Sequence[str]) -> "array[int]":
        """Every seq of a run holding one of `types`, compactly (8 bytes each)."""
        from array import array

        return array("q", await self._read(self._reads.seqs_of_types, run_id, tuple(types)))

    async def last_seq(self, run_id: str) -> int:
        return await self._read(self._reads.last_seq, run_id)

    async def state_at(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` (default: the last): the nearest snapshot plus a short fold."""
        return await self._read(self._reads.state_at, run_id, seq)

    async def state_pair(self, run_id: str, seq: int) -> tuple[StateAt, StateAt]:
        """The state just before `seq` and as of it (what the scrubber diffs). The two share the
        values the event at `seq` did not change: read them, do not change them."""
        return await self._read(self._reads.state_pair, run_id, seq)

    async def replay(self, run_id: str, seq: int | None = None) -> StateAt:
        """The state as of `seq` folded from the first event, ignoring snapshots."""
        return await self._read(self._reads.state_at, run_id, seq, False)

    # the whole log --------------------------------------------------------------------------

    async def head(self) -> int:
        """The pos of the newest event (0 for an empty log): where a new tail starts."""
        return await self._read(self._reads.head)

    async def read_after(self, pos: int, limit: int = 1000) -> list[Record]:
        """Up to `limit` events of every run after global position `pos`, in commit order."""
        return await self._read(self._reads.after_pos, pos, limit)

    @abc.abstractmethod
    def tail(self, after: int = 0, *, page: int = 1000) -> AsyncIterator[list[Record]]:
        """Batches of new events from every run, in commit order, forever."""

    async def run(self, run_id: str) -> RunInfo:
        info = await self._read(self._reads.get_run, run_id)
        if info is None:
            raise NotFound(f"no run {run_id!r}")
        return info

    async def resolve(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one (exactly, case-sensitively)."""
        if await self._read(self._reads.get_run, run_id):
            return run_id
        matches = await self._read(self._reads.match_runs, run_id)
        if not matches:
            raise NotFound(f"no run {run_id!r}")
        if len(matches) > 1:
            raise Ambiguous(f"{run_id!r} matches more than one run; give more of the id")
        return matches[0]

    async def runs(
        self, *, status: str | None = None, graph: str | None = None, search: str | None = None,
        limit: int = 100, offset: int = 0, order: str = "newest", error_category: str | None = None,
    ) -> list[RunInfo]:
        """One page of runs (newest first, or oldest / status / graph); `error_category`: only
        failed runs whose failure was of that category."""
        return await self._read(
            self._reads.list_runs, status, graph, search, limit, offset, order, error_category
        )

    async def count_runs(
        self, *, status: str | None = None, graph: str | None = None, search: str | None = None,
        error_category: str | None = None,
    ) -> int:
        return await self._read(self._reads.count_runs, status, graph, search, error_category)

    async def interrupts(self, run_id: str | None = None, *, pending_only: bool = True) -> list[InterruptInfo]:
        return await self._read(self._reads.list_interrupts, run_id, pending_only)

    # ownership and signals (lease times by the database's clock) ----------------------------

    async def claim(self, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
        """Take a live run if it is free, ours, its lease has run out (by the database's clock),
        or it is still held by `previous` (found dead by the caller)."""
        return await self._write(self._leases.claim, run_id, owner, lease_ns, previous)

    async def renew(self, owner: str, lease_ns: int) -> None:
        await self._write(self._leases.renew, owner, lease_ns)

    async def release(self, run_ids: list[str], owner: str) -> None:
        await self._write(self._leases.release, run_ids, owner)

    async def send_signal(self, run_id: str, kind: str, body: dict, sender: Any) -> int:
        """Queue a signal for the run's owner; `sender` is an Actor (or an owner id for a wake)."""
        return await self._write(self._leases.send, run_id, kind, body, sender)

    async def pending_signals(self, owner: str) -> "list[Signal]":
        """Unapplied signals for the runs `owner` holds, oldest first, as stored (unchecked)."""
        return await self._read(self._leases.pending, owner)

    async def finish_signal(self, signal_id: int, outcome: str) -> None:
        await self._write(self._leases.finish, signal_id, outcome)

    async def signal_result(self, signal_id: int) -> str | None:
        """The outcome the owner recorded, or None while it is not applied."""
        return await self._read(self._leases.result, signal_id)

    async def scan_secrets(self, run_id: str | None = None) -> "tuple[list[Finding], int]":
        """`vigil verify --secrets`: findings, and how many rows were looked at."""
        return await self._read(self._scan, run_id)

    # tamper evidence: the hash chain and seals (kernel/chain.py, kernel/seals.py) ---------------

    _chains: Any  # the backend's chainrows module

    async def chain_rows(self, run_id: str, from_seq: int = 1, limit: int = 2000) -> list[tuple]:
        """One page of a run's rows for the chain: (seq, ts_ns, type, body, chain)."""
        return await self._read(self._chains.chain_page, run_id, from_seq, limit)

    async def chain_head(self, run_id: str) -> tuple[int, bytes | None] | None:
        """(seq, chain) of the run's last row; None for a run with no events."""
        return await self._read(self._chains.chain_head, run_id)

    async def seals(self, run_id: str) -> list[tuple]:
        """The run's seals: (seq, chain, key_id, sealed_ns, signature), oldest seq first."""
        return await self._read(self._chains.seal_rows, run_id)

    async def add_seal(self, run_id: str, seq: int, chain: bytes, key_id: str, sealed_ns: int, signature: bytes) -> bool:
        """Record a seal (False: this key had already sealed this seq; the first one stays)."""
        return await self._write(self._chains.add_seal, (run_id, seq, chain, key_id, sealed_ns, signature))

    # artifacts (kernel/artifacts.py): content-addressed bytes beside the events ----------------
    # `_artifacts` is the backend's artifacts module (put, get, info, page, match).

    _artifacts: Any

    async def _bulk(self, write: bool, fn: Callable, *args: Any) -> Any:
        """Where an artifact's bytes go over: `_write`/`_read` here; a backend may give them a
        connection of their own (PostgreSQL does)."""
        return await (self._write(fn, *args) if write else self._read(fn, *args))

    async def put_artifact(self, data: bytes, kind: str, *, created_ns: int | None = None) -> "ArtifactInfo":
        """Store `data` under its sha256 (once: the same bytes again are not sent or stored
        again) and return its info; committed when this returns."""
        from ..artifacts import ArtifactInfo, artifact_id

        data = bytes(data)
        aid = artifact_id(data)
        known = await self.artifact_info(aid)
        if known is None:
            await self._bulk(True, self._artifacts.put, aid, kind, data, created_ns)
            known = await self.artifact_info(aid)
        return known or ArtifactInfo(artifact_id=aid, kind=kind, size=len(data), created_ns=created_ns or 0)

    async def get_artifact(self, artifact_id: str) -> bytes:
        """One artifact's bytes (loaded whole: one artifact, never a run's)."""
        from ..artifacts import ArtifactMissing

        data = await self._bulk(False, self._artifacts.get, artifact_id)
        if data is None:
            raise ArtifactMissing(f"no artifact {artifact_id} in {self.where}")
        return data

    async def artifact_info(self, artifact_id: str) -> "ArtifactInfo | None":
        """Kind, size and creation time, without reading the bytes."""
        return await self._read(self._artifacts.info, artifact_id)

    async def artifact_infos(self, after: str = "", limit: int = 500) -> "list[ArtifactInfo]":
        """One page of every artifact's info, in id order after `after`."""
        return await self._read(self._artifacts.page, after, limit)

    async def iter_artifacts(self, *, page: int = 500) -> "AsyncIterator[ArtifactInfo]":
        after = ""
        while batch := await self.artifact_infos(after, page):
            for info in batch:
                yield info
            if len(batch) < page:
                return
            after = batch[-1].artifact_id

    async def resolve_artifact(self, prefix: str) -> str:
        """A full artifact id from a unique prefix of one."""
        from ..artifacts import check_id

        prefix = check_id(prefix)
        matches = await self._read(self._artifacts.match, prefix)
        if not matches:
            raise NotFound(f"no artifact {prefix!r}")
        if len(matches) > 1:
            raise Ambiguous(f"{prefix!r} matches more than one artifact; give more of the id")
        return matches[0]
