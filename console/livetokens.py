"""Model tokens of runs this console does not drive: it subscribes (kernel.live) for the runs
whose live panes are open and hands their deltas to the screens exactly as the in-process
runtime's tokens are handed (App._from_runtime), so a pane cannot tell where a token came from.
It also publishes the tokens of the runs this console drives, for the other consoles."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kernel.live.feed import LiveFeed
from kernel.live.wire import Delta
from kernel.live.publish import Publisher, start_publisher

__all__ = ["LiveTokens"]


class LiveTokens:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.publisher: Publisher | None = None
        self.feed: LiveFeed | None = None
        self._panes: Counter[str] = Counter()  # run -> open panes showing it

    async def start(self) -> None:
        app = self.app
        if not app.readonly:
            self.publisher = await start_publisher(app.store, app.runtime.owner)
            if self.publisher is not None:
                app.runtime.listen(self.publisher.listener)
        self.feed = LiveFeed(app.store, self._delta, self._reset, skip_owner=app.runtime.owner)
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

    def _reset(self, runs: set[str]) -> None:
        for screen in self.app.screen_stack:
            handler = getattr(screen, "on_token_gap", None)
            if handler is not None:
                for run_id in runs:
                    handler(run_id)
