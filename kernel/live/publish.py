"""The owner's side: a Runtime listener that coalesces the tokens of the runs it drives and
hands them to the backend's sink (unix socket or NOTIFY) from a task of its own, so a model's
stream never waits for a viewer, a socket or the database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator

from .. import limits
from .wire import Delta, Queue

__all__ = ["Publisher", "publishing", "MAX_PENDING"]

MAX_PENDING = 1 << 20  # characters waiting for the sink; past it they are dropped, not queued
QUEUE_INTERVAL = 0.25  # how often the queue lines are looked at (a pane polls at this rate too)
QUEUE_RESEND = 4  # every 4th look (a second) the lines are sent again, changed or not
QUEUE_RESEND_MAX = 500  # ... unless more runs than this wait: then only changes go


class Publisher:
    def __init__(self, owner: str, sink: Any) -> None:
        self.owner = owner
        self.sink = sink
        self.sent = 0  # deltas handed to the sink (bench, tests)
        self.dropped = 0  # characters dropped because the sink fell behind
        self._pending: dict[tuple[str, str], list] = {}  # (run, action) -> [parts, t0]
        self._size = 0
        self._reset: set[tuple[str, str]] = set()
        self._ready = asyncio.Event()
        self._n = 0
        self._task: asyncio.Task | None = None
        self._queues_task: asyncio.Task | None = None
        self.closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="vigil-live")
        self._queues_task = asyncio.create_task(self._watch_queues(), name="vigil-live-queues")

    def listener(self, what: str, run_id: str, data: Any) -> None:
        if what == "token" and not self.closed:
            action_id, token = data
            self.publish(run_id, action_id, token)

    def publish(self, run_id: str, action_id: str, token: str) -> None:
        """Called on the model's stream: O(1), never blocks, never raises."""
        wanted = self.sink.wanted
        if wanted is not None and run_id not in wanted:
            return  # nobody watches it: nothing to coalesce or send
        key = (run_id, action_id)
        if self._size + len(token) > MAX_PENDING:
            # the sink is stuck: forget what waits and tell viewers the text starts again
            self.dropped += self._size
            self._reset.update(self._pending)
            self._pending.clear()
            self._size = 0
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = [[token], time.monotonic_ns()]
        else:
            entry[0].append(token)
        self._size += len(token)
        self._ready.set()

    def take(self) -> list[Delta]:
        pending, self._pending, self._size = self._pending, {}, 0
        deltas = []
        for (run_id, action_id), (parts, t0) in pending.items():
            self._n += 1
            deltas.append(Delta(run=run_id, action=action_id, text="".join(parts), owner=self.owner,
                                n=self._n, t0=t0, reset=(run_id, action_id) in self._reset))
            self._reset.discard((run_id, action_id))
        return deltas

    async def _pump(self) -> None:
        # Tokens that arrive while a batch is being sent wait in _pending and go as one next.
        while True:
            await self._ready.wait()
            self._ready.clear()
            deltas = self.take()
            if not deltas:
                continue
            try:
                ok = await self.sink.send(deltas)
            except Exception:
                ok = False  # a live token is never worth a failed run or a dead pump
            if ok:
                self.sent += len(deltas)
            else:
                self._reset.update((d.run, d.action) for d in deltas)

    def queue_lines(self, sent: dict[str, str], resend: bool) -> tuple[dict[str, str], list[Queue]]:
        """The queue line of every wanted run that waits for a slot now, and the messages to send:
        lines that changed, lines gone ("" : nothing waits any more), and with `resend` all of
        them again (a viewer that connected since, or missed one)."""
        wanted = self.sink.wanted
        by_run: dict[str, list] = {}
        for w in limits.waiting():
            if wanted is None or w.run_id in wanted:
                by_run.setdefault(w.run_id, []).append(w)
        lines = {run: limits.describe(ws)[:1000] for run, ws in by_run.items()}
        again = resend and len(lines) <= QUEUE_RESEND_MAX
        out = [Queue(run=run, text=text, owner=self.owner) for run, text in lines.items()
               if again or sent.get(run) != text]
        out += [Queue(run=run, text="", owner=self.owner) for run in sent.keys() - lines.keys()]
        return lines, out

    async def _watch_queues(self) -> None:
        """Queue status is this process's memory, never the log's: it crosses to other consoles
        here, polled (a dict read when something waits, nothing when nobody watches)."""
        sent: dict[str, str] = {}
        seen, tick = -1, 0
        while True:
            await asyncio.sleep(QUEUE_INTERVAL)
            tick += 1
            resend = tick % QUEUE_RESEND == 0
            if self.sink.wanted is not None and not self.sink.wanted:
                sent = {}  # nobody subscribed: nothing to keep current
                continue
            if limits.changes() == seen and not (resend and sent):
                continue
            seen = limits.changes()
            sent, out = self.queue_lines(sent, resend)
            if out:
                try:
                    await self.sink.send(out)
                except Exception:
                    pass  # a queue line is never worth a dead watcher: the next one goes

    async def close(self) -> None:
        self.closed = True
        for task in (self._task, self._queues_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.sink.close()


async def start_publisher(store: Any, owner: str) -> Publisher | None:
    """The channel for this store's backend, or None when there can be none (a read-only log,
    a directory where no socket can be made)."""
    if getattr(store, "readonly", False):
        return None
    dsn = getattr(store, "dsn", None)
    if dsn is not None:
        from .pgchan import PgSink

        sink: Any = PgSink(dsn)
    else:
        from .unix import UnixServer

        sink = UnixServer(store.path, owner)
    if not await sink.start():
        return None
    publisher = Publisher(owner, sink)
    publisher.start()
    return publisher


@contextlib.asynccontextmanager
async def publishing(runtime: Any, store: Any) -> AsyncIterator[Publisher | None]:
    """Publish `runtime`'s tokens while the block runs; the socket goes with it."""
    publisher = await start_publisher(store, runtime.owner)
    if publisher is not None:
        runtime.listen(publisher.listener)
    try:
        yield publisher
    finally:
        if publisher is not None:
            await publisher.close()
