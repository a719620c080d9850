"""The console's view of the log: one tail over every run, flushed to the screens at most
20 times a second, however fast events arrive."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field

from kernel.codec import Record
from kernel.errors import StoreError
from kernel.store import Store

__all__ = ["Batch", "follow"]

FLUSH_EVERY = 0.05
KEEP = 2000  # records handed on per flush at most; a screen that needs more reads the log
RETRY_FIRST = 1.0  # seconds before the tail is opened again after a SQLite error, doubling
RETRY_MAX = 8.0


@dataclass
class Batch:
    """What changed since the last flush."""

    runs: set[str] = field(default_factory=set)
    records: deque[Record] = field(default_factory=lambda: deque(maxlen=KEEP))
    count: int = 0
    interrupts: bool = False


async def follow(store: Store, after: int, deliver, trouble=None) -> None:
    """Tail `store` from pos `after`, calling `deliver(batch)` at most every FLUSH_EVERY s.

    A SQLite error (busy, locked, I/O) does not end the feed: `trouble(message)` is called, the
    tail is opened again from the last pos handed on (no event twice, none skipped) after a
    pause that grows to RETRY_MAX, and `trouble(None)` once the database answers again."""
    batch = Batch()
    last = 0.0
    pending: asyncio.Task | None = None
    delay = RETRY_FIRST
    failing = False

    async def flush_later(delay: float) -> None:
        nonlocal batch, last
        await asyncio.sleep(delay)
        out, batch = batch, Batch()
        last = time.monotonic()
        deliver(out)

    while True:
        try:
            if failing:
                await store.head()  # the database answers again
                failing, delay = False, RETRY_FIRST
                if trouble is not None:
                    trouble(None)
            async for records in store.tail(after):
                for record in records:
                    batch.runs.add(record.run_id)
                    batch.records.append(record)
                    if record.type.startswith(("Interrupt", "Run")):  # the queue or a run's status changed
                        batch.interrupts = True
                after = records[-1].pos
                batch.count += len(records)
                if pending is None or pending.done():
                    wait = max(0.0, FLUSH_EVERY - (time.monotonic() - last))
                    pending = asyncio.create_task(flush_later(wait))
        except (sqlite3.Error, OSError, StoreError) as exc:
            failing = True
            if trouble is not None:
                trouble(str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
