"""Model tokens of runs this console does not drive: it subscribes (kernel.live) for the runs
whose live panes are open and hands their deltas to the screens exactly as the in-process
runtime's tokens are handed (App._from_runtime), so a pane cannot tell where a token came from.
It also publishes the tokens of the runs this console drives, for the other consoles. Queue
lines (what of a run waits for a concurrency slot in its owner's process) come the same way."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from kernel.live.feed import LiveFeed
from kernel.live.wire import Delta, Queue
from kernel.live.publish import Publisher, start_publisher

__all__ = ["LiveTokens"]

QUEUE_FRESH_S = 3.0  # owners repeat their queue lines every second; older than this, one died


class LiveTokens:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.publisher: Publisher | None = None
        self.feed: LiveFeed | None = None
        self._panes: Counter[str] = Counter()  # run -> open panes showing it
        self._queues: dict[str, tuple[str, float]] = {}  # run -> (its owner's queue line, when)

    async def start(self) -> None:
        app = self.app
        if not app.readonly:
            self.publisher = await start_publisher(app.store, app.runtime.owner)
            if self.publisher is not None:
                app.runtime.listen(self.publisher.listener)
        self.feed = LiveFeed(app.store, self._delta, self._lost, on_queue=self._queue,
                             skip_owner=app.runtime.owner)
        self.feed.want(set(self._panes))
        app.run_worker(self.feed.run(), group="live-tokens", exit_on_error=False)

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()

    def opened(self, run_id: str) -> None:
        self._panes[run_id] += 1
        if self.feed is not None:
            self.feed.want(set(self._panes))

    def closed(self, run_id: str) -> None:
        self._panes[run_id] -= 1
        if self._panes[run_id] <= 0:
            del self._panes[run_id]
        if self.feed is not None:
            self.feed.want(set(self._panes))

    def _delta(self, delta: Delta) -> None:
        if delta.reset:
            self._reset({delta.run})
        self.app._from_runtime("token", delta.run, (delta.action, delta.text))

    def _queue(self, queue: Queue) -> None:
        if queue.text:
            self._queues[queue.run] = (queue.text, time.monotonic())
        else:
            self._queues.pop(queue.run, None)

    def queue_text(self, run_id: str) -> str:
        """The queue line another process last sent for the run ("" if none, or none lately)."""
        text, when = self._queues.get(run_id, ("", 0.0))
        return text if time.monotonic() - when <= QUEUE_FRESH_S else ""

    def _lost(self, runs: set[str]) -> None:
        for run_id in runs:  # the owner went (or the run ended): its queue line goes with it
            self._queues.pop(run_id, None)
        self._reset(runs)

    def _reset(self, runs: set[str]) -> None:
        for screen in self.app.screen_stack:
            handler = getattr(screen, "on_token_gap", None)
            if handler is not None:
                for run_id in runs:
                    handler(run_id)
