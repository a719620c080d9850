"""A headless, long-lived owner of runs (`vigil worker`): it adopts runs nobody drives - queued
ones (`vigil run --queue`) and those whose owner died - drives up to `concurrency` of them at once,
renews their leases and applies their signals (the Runtime does both), and on stop finishes the
steps in progress and releases its runs, so another worker adopts them at once.

    async with Runtime(store, registry) as rt:
        await Worker(rt, concurrency=8).run(stop_event)
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .runtime import Runtime

__all__ = ["Worker"]


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 16,
        graphs: set[str] | None = None,
        poll: float = 0.2,
        grace: float = 30.0,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.rt = runtime
        self.concurrency = max(1, concurrency)
        self.graphs = graphs
        self.poll = poll
        self.grace = grace
        self.say = say
        runtime.max_active = self.concurrency  # restarts (decisions, wakes) queue for a slot too
        runtime.listen(self._heard)

    def _heard(self, what: str, run_id: str, data: object) -> None:
        if what == "finished":
            self.say(f"run {run_id} {type(data).__name__ if data is not None else 'ended'}")
        elif what == "lost":
            self.say(f"run {run_id} lost: {data}")
        elif what == "interrupt":
            self.say(f"run {run_id} waits for a human: {getattr(data, 'title', '')}")

    def busy(self) -> int:
        """Runs being driven now or queued for a slot (a run waiting for a human takes none)."""
        return self.rt.active() + self.rt.queued()

    async def adopt_some(self) -> list[str]:
        """Adopt orphaned runs, oldest first, while there are free slots."""
        adopted: list[str] = []
        if self.busy() >= self.concurrency:
            return adopted
        async for info in self.rt.orphans(order="oldest"):
            if self.graphs is not None and info.graph not in self.graphs:
                continue
            if await self.rt.adopt_or_tell(info.run_id):
                adopted.append(info.run_id)
                self.say(f"run {info.run_id} ({info.graph}) adopted")
            if self.busy() >= self.concurrency:
                break
        return adopted

    async def run(self, stop: asyncio.Event) -> None:
        """Adopt and drive until `stop` is set; then drain and release (see Runtime.drain)."""
        while not stop.is_set():
            await self.adopt_some()
            try:
                await asyncio.wait_for(stop.wait(), self.poll)
            except asyncio.TimeoutError:
                pass
        self.say(f"stopping: finishing the steps in progress (up to {self.grace:g}s)")
        left = await self.rt.drain(self.grace)
        if left:
            self.say(f"{left} run(s) were still in a step after {self.grace:g}s; stopped mid-step")
