"""Concurrency limits: how many nodes of a superstep, calls of a tool or requests to a model
provider run at once in this process; the rest wait in line.

    search_api = Limit(2, name="search API")          # shared by whatever names it
    @tool(max_concurrency=2)                          # or limit=search_api
    Graph("fanout", max_concurrency=4)                # nodes of one superstep at once
    OpenAIChat("gpt-4o", max_concurrency=8)           # requests to that endpoint, every run

A limit is a process's, not the log's: it shapes when an effect runs, never what the log holds,
so replay is untouched (a replayed effect returns its record and takes no slot). Who waits is
in-process status too (`waiting()`), shown by a console that drives the run; it is not written
to the log because a queue position is gone the moment the process is, and a waiting effect
has not been requested yet (it is recorded when it gets its slot, so a crash while queued
leaves nothing in doubt).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import anyio

__all__ = ["Limit", "Waiting", "waiting", "describe", "changes"]


class Limit:
    """At most `max_concurrency` holders at once, first come first served, in this process.

    One anyio CapacityLimiter per event loop: a limiter's waiters belong to the loop they wait
    on, and a program (or a test session) may run several loops one after another."""

    _shared: dict[str, "Limit"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, max_concurrency: int, *, name: str = "") -> None:
        self._total = _checked(max_concurrency)
        self.name = name
        self._limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<Limit {self.name or '?'} {self.running}/{self.max_concurrency}>"

    @classmethod
    def shared(cls, name: str, max_concurrency: int) -> "Limit":
        """The process-wide limit called `name`: every client configured with the same name
        (two model clients for one endpoint) shares one line. The last value given wins, so
        reloading a workflow module with a new number takes effect."""
        with cls._shared_lock:
            limit = cls._shared.get(name)
            if limit is None:
                limit = cls._shared[name] = cls(max_concurrency, name=name)
            else:
                limit.max_concurrency = max_concurrency
            return limit

    @property
    def max_concurrency(self) -> int:
        return self._total

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        self._total = _checked(value)
        for limiter in list(self._limiters.values()):
            limiter.total_tokens = self._total  # a raise lets waiters in at once

    @property
    def running(self) -> int:
        """Holders now, on the running loop (0 outside one)."""
        loop = _loop()
        limiter = self._limiters.get(loop) if loop is not None else None
        return limiter.borrowed_tokens if limiter is not None else 0

    def _limiter(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self._total)
        return limiter

    @asynccontextmanager
    async def hold(self, run_id: str, kind: str, name: str) -> AsyncIterator[None]:
        """A slot for the body; while it waits for one, `waiting()` lists it as (run_id, kind,
        name). A cancel while waiting leaves the line; the slot is released however the body
        ends."""
        global _changes
        limiter = self._limiter()
        borrower = object()  # not the task: one task may hold slots of several calls in turn
        try:
            limiter.acquire_on_behalf_of_nowait(borrower)
        except anyio.WouldBlock:
            entry = _Entry(run_id, kind, name, self)
            _queued[id(entry)] = entry
            _changes += 1
            try:
                await limiter.acquire_on_behalf_of(borrower)
            finally:
                _queued.pop(id(entry), None)
                _changes += 1
        try:
            yield
        finally:
            limiter.release_on_behalf_of(borrower)


@dataclass(frozen=True)
class Waiting:
    """One call or node waiting for a slot: what it is, and how full its limit is."""

    run_id: str
    kind: str  # "node", "tool" or "llm"
    name: str
    running: int
    limit: int
    limit_name: str


@dataclass(frozen=True)
class _Entry:
    run_id: str
    kind: str
    name: str
    limit: Limit


# Entries live only while they wait; keyed by identity so two identical calls are two entries.
_queued: dict[int, _Entry] = {}
_changes = 0  # bumped whenever an entry comes or goes: a watcher skips a pass when it has not


def changes() -> int:
    return _changes


def waiting(run_id: str | None = None) -> list[Waiting]:
    """What waits for a slot in this process now (of one run, or of all), oldest first."""
    return [
        Waiting(e.run_id, e.kind, e.name, e.limit.running, e.limit.max_concurrency, e.limit.name)
        for e in list(_queued.values())
        if run_id is None or e.run_id == run_id
    ]


def describe(entries: list[Waiting]) -> str:
    """One line for a status bar: `queued: search_web ×3 (2 running, limit 2) · node b5 (...)`."""
    groups: dict[tuple, int] = {}
    for w in entries:
        key = (w.kind, w.name, w.running, w.limit)
        groups[key] = groups.get(key, 0) + 1
    parts = []
    for (kind, name, running, limit), count in groups.items():
        what = f"node {name}" if kind == "node" else name
        times = f" ×{count}" if count > 1 else ""
        parts.append(f"{what}{times} ({running} running, limit {limit})")
    return "queued: " + " · ".join(parts) if parts else ""


def _checked(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_concurrency must be a whole number of at least 1, not {value!r}")
    return value


def _loop() -> Any:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
