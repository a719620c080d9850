"""How a driver writes its run's log: appends queued in order after the view's last seq and folded
into the view at once, waited for only where durability matters."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import Lost, RunEnded, VigilError
from ..log.groupcommit import shielded

__all__ = ["Appends"]


class Appends:
    """Mixed into RunDriver: `view`, `store`, `run_id`, `_last` and `_error` come from it."""

    def post(self, *events: Any) -> asyncio.Future[int]:
        """Queue an append after the view's last seq and fold it into the view now, so that
        concurrent branches always extend the same sequence. Nothing waits for the commit:
        appends commit in the order they are queued, so whatever must be durable before an
        effect runs (`emit`) or before the driver stops (`flush`) carries everything before it."""
        if self.view.terminal is not None:
            # Nothing follows a run's end: a late sibling, a decision racing a cancel.
            raise RunEnded(f"run {self.run_id} has ended ({type(self.view.terminal).__name__})")
        expected = self.view.seq
        future = self.store.submit(self.run_id, events, expected_seq=expected)
        for i, event in enumerate(events, 1):
            self.view.feed(expected + i, event)
        future.add_done_callback(self._check)
        self._last = future
        return future

    def _check(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    async def emit(self, *events: Any) -> int:
        """Append and wait until it (and all before it) is committed."""
        return await self._wait(self.post(*events))

    def adopt_pending(self, future: asyncio.Future[int]) -> None:
        """Track an append queued for this run by someone else (the runtime's RunStarted)."""
        future.add_done_callback(self._check)
        self._last = self._started = future

    async def started(self) -> None:
        """Wait until the run's RunStarted is committed, if this process just appended it: no
        effect runs for a run the log may not hold yet."""
        if self._started is not None and not self._started.done():
            await self._wait(self._started)

    async def flush_until(self, future: asyncio.Future[int]) -> None:
        await self._wait(future)

    async def flush(self) -> None:
        if self._last is not None:
            await self._wait(self._last)

    async def _wait(self, future: asyncio.Future[int]) -> int:
        try:
            # Shielded: a cancelled driver still lets its queued appends commit, so the view
            # it already folded and the log never part. (A committed append needs no shield.)
            seq = future.result() if future.done() else await shielded(future)
        except VigilError as exc:
            self._error = self._error or exc
        if self._error is not None:
            raise Lost(f"run {self.run_id}: {self._error}") from self._error
        return seq
