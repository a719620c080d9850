"""The viewer's side: deltas for the runs it watches, from whichever process drives them.

SQLite: every `interval` s the owners of the wanted runs are read from the log (a queued run is
adopted, a worker dies and another adopts) and each live owner's socket is kept open, told the
wanted runs. PostgreSQL: one LISTEN connection (pgchan.PgListener). Either way, a lost
connection calls `on_reset(runs)`: tokens may have been missed, the viewer starts the text again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Callable

import msgspec

from ..errors import VigilError
from ..owner import HOST, owner_alive, parse_owner
from ..projection import TERMINAL
from .paths import socket_path
from .wire import Delta, Queue, decode

__all__ = ["LiveFeed"]


class LiveFeed:
    def __init__(
        self,
        store: Any,
        on_delta: Callable[[Delta], None],
        on_reset: Callable[[set[str]], None] = lambda runs: None,
        *,
        on_queue: Callable[[Queue], None] = lambda queue: None,
        skip_owner: str | None = None,
        interval: float = 0.25,
    ) -> None:
        self.store = store
        self.on_delta = on_delta
        self.on_reset = on_reset
        self.on_queue = on_queue
        self.skip_owner = skip_owner  # this process's own runs reach it in-process already
        self.interval = interval
        self._want: set[str] = set()
        self._changed = asyncio.Event()
        self._writers: dict[str, asyncio.StreamWriter] = {}  # owner -> its socket
        self._owned: dict[str, set[str]] = {}  # owner -> wanted runs it drives
        self.connected: set[str] = set()  # owners whose socket is open (tests wait on it)

    def want(self, runs: set[str] | list[str]) -> None:
        runs = set(runs)
        if runs == self._want:
            return
        self._want = runs
        from .unix import want_line

        for writer in self._writers.values():
            writer.transport.write(want_line(runs))
        self._changed.set()

    def poke(self) -> None:
        """Look the owners up now (the log says a wanted run changed hands): a worker adopting
        a run starts streaming at once, and the next round could be `interval` away."""
        self._changed.set()

    @property
    def wanted(self) -> set[str]:
        return set(self._want)

    def listening(self, run_id: str) -> bool:
        """Whether a token of `run_id` published now would reach this feed."""
        listener = getattr(self, "listener", None)
        if listener is not None:
            return run_id in listener.listening
        return any(run_id in self._owned.get(owner, ()) for owner in self.connected)

    def _deliver(self, message: Delta | Queue) -> None:
        if message.run in self._want and message.owner != self.skip_owner:
            if isinstance(message, Queue):
                self.on_queue(message)
            else:
                self.on_delta(message)

    async def run(self) -> None:
        dsn = getattr(self.store, "dsn", None)
        if dsn is not None:
            from .pgchan import PgListener

            self.listener = PgListener(dsn, self._deliver, self.on_reset, self.interval)
            await self.listener.run(lambda: self._want)
            return
        tasks: dict[str, asyncio.Task] = {}
        try:
            while True:
                owners = await self._owners()
                for owner in owners.keys() - tasks.keys():
                    tasks[owner] = asyncio.create_task(self._follow(owner), name="vigil-live-feed")
                for owner in list(tasks):
                    if owner not in owners or tasks[owner].done():
                        tasks.pop(owner).cancel()  # retried next round if still wanted (a restart)
                self._owned = owners
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.interval)
        finally:
            for task in tasks.values():
                task.cancel()

    async def _owners(self) -> dict[str, set[str]]:
        owners: dict[str, set[str]] = {}
        for run_id in list(self._want):
            try:
                info = await self.store.run(run_id)
            except VigilError:
                continue  # not there (yet), or the log is busy: next round
            owner = info.owner
            if not owner or owner == self.skip_owner or info.status in TERMINAL:
                continue
            try:
                if parse_owner(owner)[0] != HOST:
                    continue  # a unix socket reaches this host only (PostgreSQL spans hosts)
            except ValueError:
                continue
            if owner_alive(owner, info.lease_until_ns, info.seen_ns):
                owners.setdefault(owner, set()).add(run_id)
        return owners

    async def _follow(self, owner: str) -> None:
        from .unix import connect, want_line

        try:
            reader, writer = await connect(socket_path(self.store.path, owner), owner)
        except (OSError, asyncio.TimeoutError):
            return  # no socket (an old vigil, a read-only dir) or a stale one: nothing live
        self._writers[owner] = writer
        self.connected.add(owner)
        writer.transport.write(want_line(self._want))
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    message = decode(line)
                except msgspec.DecodeError:
                    continue
                if isinstance(message, (Delta, Queue)):
                    self._deliver(message)
        except (OSError, ValueError):
            pass
        finally:
            self._writers.pop(owner, None)
            self.connected.discard(owner)
            writer.transport.abort()
            runs = self._owned.get(owner, set()) & self._want
            if runs:
                self.on_reset(runs)
