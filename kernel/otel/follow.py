"""The live exporter: follows the log's tail and sends each span when the event ending it lands.

The cursor is the global `pos` through which every finished span has been sent. After each
batch of the tail: feed it, send what it finished (retried until the receiver takes it, never
skipped), then write the cursor atomically (temp file, fsync, rename). A crash between a send
and the cursor write re-sends that batch on restart: at-least-once, with identical ids (they
derive from run id and seq), so the receiver sees the same spans again, never different ones.

Open spans live in memory for runs still going, and only for them. A run first seen after a
restart (or a start mid-log) is rebuilt by folding its earlier events, which all lie at or
before the cursor (a run's seqs commit in order), so what they finished is not sent again.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import VigilError
from .lineage import context_of
from .mapping import RunContext, RunMapper
from .spans import Span

__all__ = ["Cursor", "Follower"]


class Cursor:
    """A pos in a small JSON file, replaced atomically so a crash leaves the old or the new one."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None

    def read(self) -> int | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            pos = json.loads(self.path.read_text())["after_pos"]
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise VigilError(f"cursor {self.path} is unreadable ({exc}); move it away to start over") from None
        if not isinstance(pos, int) or pos < 0:
            raise VigilError(f"cursor {self.path} holds no position; move it away to start over")
        return pos

    def write(self, pos: int) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"after_pos": pos}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        try:  # the rename itself is durable once the directory is
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


class Follower:
    def __init__(self, store: Any, send: Callable[[list[Span]], None], cursor: Cursor, *,
                 retry_max: float = 30.0, report: Callable[[str], None] | None = None) -> None:
        self.store, self.send, self.cursor = store, send, cursor
        self.retry_max = retry_max
        self.report = report or (lambda line: print(f"vigil: {line}", file=sys.stderr, flush=True))
        self.mappers: dict[str, RunMapper] = {}
        self._contexts: dict[str, RunContext] = {}
        self.sent = 0

    async def run(self, start: int | None = None) -> None:
        """Forever. `start` (no cursor yet): where to begin; None is the log's current head."""
        after = self.cursor.read()
        if after is None:
            after = await self.store.head() if start is None else start
            self.cursor.write(after)
        async for batch in self.store.tail(after):
            spans: list[Span] = []
            for record in batch:
                spans += await self._feed(record)
            if spans:
                await self._send(spans)
            self.cursor.write(batch[-1].pos)

    async def _feed(self, record: Any) -> list[Span]:
        mapper = self.mappers.get(record.run_id)
        if mapper is None:
            mapper = await self._rebuild(record)
        spans = mapper.feed(record)
        if mapper.ended:
            del self.mappers[record.run_id]
        return spans

    async def _rebuild(self, record: Any) -> RunMapper:
        run_id = record.run_id
        started = record.event if record.seq == 1 else None
        if started is None:
            from .lineage import started_of

            started = await started_of(self.store, run_id)
        if len(self._contexts) > 10_000:  # lineage lookups repeat for a while, then never
            self._contexts.clear()
        mapper = RunMapper(run_id, await context_of(self.store, run_id, started, self._contexts))
        if record.seq > 1:
            async for earlier in self.store.iter_events(run_id, 1, record.seq - 1):
                mapper.feed(earlier)  # sent before the cursor moved past it
        self.mappers[run_id] = mapper
        return mapper

    async def _send(self, spans: list[Span]) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self.send, spans)
                self.sent += len(spans)
                return
            except VigilError as exc:
                self.report(f"{exc}; retrying in {delay:g}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
